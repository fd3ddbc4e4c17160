"""Build the marts from staging: one SQL model per file in ``transforms/marts/``, plus Python models.

Each SQL model is a CTE chain ending in ``select * from final`` (dbt's jaffle_shop style).
**The list of marts is derived, never kept by hand:** it is the SQL files of
``transforms/marts/`` plus the Python models of :data:`PYTHON_MODELS` (``thread_topics`` runs
YAKE keyphrase extraction for sources without tags). A SQL model depends on the marts it names
as ``marts.<name>`` (comments and string literals aside); a Python model declares them
(``DEPENDS_ON`` in its module). :data:`MART_NAMES` is that graph in dependency order
(:class:`graphlib.TopologicalSorter`, each ready batch in name order); a cycle or a reference
to an unknown mart fails at import with a :class:`ValueError` naming them. Each mart declares
its grain once, the columns one row is unique on: a ``-- grain: source, day`` header line in
the SQL, ``GRAIN`` in a Python model; :data:`MART_GRAINS` collects them for the marts
expectation suite (``pulse.steps.validate_marts``).

:func:`run_marts` first creates the shared staging models (``transforms/staging/<name>.sql``,
as views ``staging.<name>``, e.g. ``staging.community_sources``: each source's time zone and the
streams it has rows in), then applies the marts in order as ``create or replace table
marts.<name> as <model>``, all inside one transaction, so a failure leaves the previous marts
untouched (all marts or none). Tables of the ``marts`` schema that are no mart (left by a mart
since removed or renamed) are dropped in the same transaction: the schema holds exactly
:data:`MART_NAMES`, which is what ``warehouse.publish`` publishes. Marts are rebuilt from
staging on every run and depend only on staging, ``moderation.*``, ``ops.sources`` and the
marts they name: the same inputs give identical marts (no ``now()``; "current" means the
data's last day).

Time zones: staging timestamps are naive UTC; each model converts them to the community's
local time with the IANA zone of ``staging.community_sources`` (``ops.sources.timezone``, NULL
or empty: ``'UTC'``). The runner checks every configured zone against
:func:`zoneinfo.available_timezones` first, so a typo fails before anything is written.
Parameters (``$min_support``, ``$window_days``, ``$min_posts``,
``$repeat_offender_window_days``) are bound by DuckDB, never formatted into the SQL; each
model is given the ones its SQL names.

Incremental updates (``run_marts(..., incremental=True)``, what the pipeline's transform step
uses): a model's ``-- incremental: days|threads`` header and its ``-- @scope``, ``-- @delete``
and ``-- @refresh`` sections (:func:`model_sections`) say how it updates; the runner rebuilds
only the partitions the recorded changes touch, or everything when
:func:`transforms.incremental.plan` says so. A full rebuild runs the same SQL with every day
and thread in scope, so both give the same marts (``transforms/README.md``, "Incremental
updates").

Model documentation (grain, columns, units, formulas and their sources):
``transforms/README.md``.
"""

from __future__ import annotations

import graphlib
import logging
import re
import time
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from transforms import incremental as inc
from transforms import thread_topics

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).with_name("marts")
STAGING_DIR = Path(__file__).with_name("staging")


@dataclass(frozen=True)
class PythonModel:
    """A mart written in Python.

    Attributes:
        build: ``build(con, full=...) -> row count``; writes ``marts.<name>`` on the runner's
            connection, inside its transaction: everything with ``full=True``, else only the
            partitions of the runner's scope tables.
        grain: the columns one row is unique on.
        depends_on: the marts it reads (built before it).
        incremental: how it updates (:data:`INCREMENTAL_KEYS`); ``full``: always called with
            ``full=True``.
    """

    build: Callable[..., int]
    grain: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    incremental: str = "full"


#: Marts written in Python, by name; every other mart is a SQL file in :data:`MODELS_DIR`.
PYTHON_MODELS: dict[str, PythonModel] = {
    "thread_topics": PythonModel(
        thread_topics.build_thread_topics, thread_topics.GRAIN, thread_topics.DEPENDS_ON, incremental="threads"
    ),
}

# SQL comments and string literals: neither names a mart or a parameter.
_NOT_CODE = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.DOTALL)
_MART_REF = re.compile(r"\bmarts\.([a-z_][a-z0-9_]*)", re.IGNORECASE)
_PARAMETER = re.compile(r"\$([a-z_][a-z0-9_]*)", re.IGNORECASE)
_GRAIN = re.compile(r"^--\s*grain:\s*(.+?)\s*$", re.MULTILINE)
_INCREMENTAL = re.compile(r"^--\s*incremental:\s*([a-z]+)\b", re.MULTILINE)
# A model file is its query, then optional sections each opened by a line `-- @scope`,
# `-- @delete` or `-- @refresh` (statements separated by `;` at a line's end).
_SECTION = re.compile(r"^--\s*@(scope|delete|refresh)\b[^\n]*$", re.MULTILINE)
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)
# A line ending in `-- @partition` is a partition filter (a condition on the scope tables): a
# full build drops it, so the query runs set-based over everything.
_PARTITION_LINE = re.compile(r"^[^\n]*--\s*@partition[ \t]*(?:\n|\Z)", re.MULTILINE)

#: How a mart may be updated: ``full`` (rebuilt every run), ``days`` (the partitions of the
#: days in ``pulse_scope_days`` and the window the model derives from them), ``threads`` (the
#: rows of the threads in ``pulse_scope_threads``), ``items`` (the rows of the items its
#: ``@scope`` derives from the change set).
INCREMENTAL_KEYS = ("full", "days", "threads", "items")


def _code(sql: str) -> str:
    """``sql`` without its comments and string literals (each replaced by a space)."""
    return _NOT_CODE.sub(" ", sql)


def sql_grain(sql: str, name: str) -> tuple[str, ...]:
    """The columns of the ``-- grain: a, b`` header line of the model ``name``.

    Raises:
        ValueError: no such line, more than one, or an empty column name.
    """
    found = _GRAIN.findall(sql)
    if len(found) != 1:
        raise ValueError(f"model {name!r} needs exactly one '-- grain: col, col' header line, found {len(found)}")
    columns = tuple(c.strip() for c in found[0].split(","))
    if not all(columns):
        raise ValueError(f"model {name!r}: empty column in its grain {found[0]!r}")
    return columns


def sql_parameters(sql: str) -> tuple[str, ...]:
    """The named parameters (``$name``) ``sql`` uses, in order of first use."""
    return tuple(dict.fromkeys(_PARAMETER.findall(_code(sql))))


def mart_dependencies() -> dict[str, frozenset[str]]:
    """``{mart: the marts it reads}`` for every SQL file of :data:`MODELS_DIR` and Python model.

    Raises:
        ValueError: a model reads a mart that does not exist (names both), or a name is both a
            SQL file and a Python model.
    """
    deps: dict[str, frozenset[str]] = {
        # a model's @delete and @refresh sections update its own table: not a dependency
        path.stem: frozenset(m.lower() for m in _MART_REF.findall(_code(path.read_text(encoding="utf-8"))))
        - {path.stem}
        for path in sorted(MODELS_DIR.glob("*.sql"))
    }
    both = sorted(set(deps) & set(PYTHON_MODELS))
    if both:
        raise ValueError(f"marts defined both in SQL and in Python: {both}")
    deps.update({name: frozenset(model.depends_on) for name, model in PYTHON_MODELS.items()})
    unknown = [
        f"marts.{name} reads {', '.join(f'marts.{u}' for u in sorted(reads - set(deps)))}"
        for name, reads in sorted(deps.items())
        if reads - set(deps)
    ]
    if unknown:
        raise ValueError("reference to an unknown mart: " + "; ".join(unknown))
    return deps


def build_order(deps: Mapping[str, frozenset[str] | set[str]]) -> tuple[str, ...]:
    """The marts in an order where each comes after every mart it reads; ties by name.

    Kahn's algorithm as :class:`graphlib.TopologicalSorter` runs it: all marts whose inputs
    are built form a batch, and each batch is taken in name order, so the order is stable.

    Raises:
        ValueError: the marts read each other in a cycle; the message names it, e.g.
            ``marts.a reads marts.b reads marts.a``.
    """
    sorter = graphlib.TopologicalSorter(deps)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        # args[1] lists each node before a node that reads it; reversed, each node reads the next
        cycle = " reads ".join(f"marts.{n}" for n in reversed(exc.args[1]))
        raise ValueError(f"the marts read each other in a cycle: {cycle}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order += ready
        sorter.done(*ready)
    return tuple(order)


def _grains(names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {
        name: PYTHON_MODELS[name].grain if name in PYTHON_MODELS else sql_grain(model_sql(name), name) for name in names
    }


def model_sql(name: str) -> str:
    """Return the query of the mart model ``name`` (``transforms/marts/<name>.sql`` up to its first section).

    Raises:
        ValueError: ``name`` is not one of :data:`MART_NAMES`, or it is a Python model
            (:data:`PYTHON_MODELS`).
    """
    if name in PYTHON_MODELS:
        raise ValueError(f"mart {name!r} is a Python model ({PYTHON_MODELS[name].build.__module__}), not SQL")
    return model_sections(name)["model"][0]


def model_sections(name: str) -> dict[str, list[str]]:
    """The statements of the SQL model ``name``: ``{"model": [query], "scope": [...], "delete": [...], "refresh": [...]}``.

    The file's text up to the first ``-- @scope|@delete|@refresh`` line is the query (a
    trailing ``;`` removed); each section holds statements ending with ``;`` at a line's end.
    ``scope`` creates the temporary tables the query and ``delete`` read; ``delete`` removes the
    rows an incremental run rebuilds; ``refresh`` runs after every build (full or incremental)
    and updates the columns that depend on the whole mart (e.g. a rank, the data's end).

    Raises:
        ValueError: ``name`` is not a SQL mart.
    """
    if name in PYTHON_MODELS:
        raise ValueError(f"mart {name!r} is a Python model ({PYTHON_MODELS[name].build.__module__}), not SQL")
    path = MODELS_DIR / f"{name}.sql"
    if not path.is_file():
        raise ValueError(f"unknown mart {name!r}; expected one of {sorted(p.stem for p in MODELS_DIR.glob('*.sql'))}")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    out: dict[str, list[str]] = {
        "model": [parts[0].rstrip().removesuffix(";").rstrip()],
        "scope": [],
        "delete": [],
        "refresh": [],
    }
    for kind, body in zip(parts[1::2], parts[2::2], strict=True):
        out[kind] += [s.strip() for s in _STATEMENT_END.split(body) if _code(s).strip()]
    return out


def incremental_key(name: str) -> str:
    """How mart ``name`` updates: its ``-- incremental: <key>`` header (:data:`INCREMENTAL_KEYS`); ``full`` without one.

    Raises:
        ValueError: an unknown key, or ``days``/``threads`` without a ``-- @delete`` section.
    """
    if name in PYTHON_MODELS:
        return PYTHON_MODELS[name].incremental
    text = (MODELS_DIR / f"{name}.sql").read_text(encoding="utf-8")
    found = _INCREMENTAL.findall(text)
    key = found[0] if found else "full"
    if key not in INCREMENTAL_KEYS or len(found) > 1:
        raise ValueError(
            f"model {name!r}: '-- incremental:' must be one line with one of {INCREMENTAL_KEYS}, found {found}"
        )
    if key != "full" and not model_sections(name)["delete"]:
        raise ValueError(f"model {name!r} is incremental by {key} but has no '-- @delete' section")
    return key


#: The marts in build order, derived from the models (see the module docstring).
MART_NAMES: tuple[str, ...] = build_order(mart_dependencies())

#: Each mart's grain, ``{name: (column, ...)}``, from the models' declarations.
MART_GRAINS: dict[str, tuple[str, ...]] = _grains(MART_NAMES)

#: The shared staging models, built as views ``staging.<name>`` before the marts, in name order.
STAGING_MODELS: tuple[str, ...] = tuple(p.stem for p in sorted(STAGING_DIR.glob("*.sql")))


def check_source_timezones(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Return ``{source: timezone}`` from ``ops.sources`` (NULL or empty meaning ``'UTC'``).

    Raises:
        ValueError: a configured time zone is not an IANA name known to
            :func:`zoneinfo.available_timezones` (e.g. ``'CET+1'`` or a typo).
    """
    rows = con.execute("select source, timezone from ops.sources order by source").fetchall()
    known = zoneinfo.available_timezones()
    zones: dict[str, str] = {}
    bad: list[str] = []
    for source, tz in rows:
        zone = tz or "UTC"
        if zone not in known:
            bad.append(f"{source!r}: {tz!r}")
        zones[source] = zone
    if bad:
        raise ValueError(
            "ops.sources.timezone must be an IANA time zone name (e.g. 'Europe/Berlin'); invalid: " + ", ".join(bad)
        )
    return zones


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def run_marts(
    con: duckdb.DuckDBPyConnection,
    *,
    min_support: int = 3,
    window_days: int = 7,
    min_posts: int = 5,
    repeat_offender_window_days: int = 90,
    incremental: bool = False,
    max_changed_share: float = inc.DEFAULT_MAX_CHANGED_SHARE,
    info: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Build every mart from staging in one transaction; return ``{mart name: row count}``.

    A full rebuild by default. With ``incremental=True`` the runner updates in place only the
    partitions the recorded changes (``ops.mart_changes``) can touch, for the marts whose
    ``-- incremental:`` header allows it (``days``, ``threads``; others are rebuilt), unless
    :func:`transforms.incremental.plan` calls for a full rebuild (first build, a model,
    parameter, time zone or privacy key changed, a source's first activity moved, too many
    changes). Either way the same SQL runs: a full rebuild is the incremental update with every
    day and thread in scope, so the result is identical (``tests/transforms/test_incremental_oracle.py``).

    Args:
        con: a writable warehouse connection with migrations applied and no open
            transaction.
        min_support: the least volume (items per day or per week) for a topic to be ranked,
            hot, rising or emerging in ``marts.trending_topics``; an integer >= 1.
        window_days: the response window in days: engagement and responses within this many
            days of a thread's start count (``response_times``, ``engagement_daily``,
            ``best_time_to_post``); an integer >= 1.
        min_posts: the least number of posts (with a complete window) a weekday-hour slot
            needs to be ranked in ``marts.best_time_to_post``; an integer >= 2 (a confidence
            interval needs two observations).
        repeat_offender_window_days: ``marts.moderation_queue`` counts an author's earlier
            flagged and removed items created this many days before each queued item; an
            integer >= 1.
        incremental: update only what changed when possible (see above).
        max_changed_share: with ``incremental``, rebuild everything when more than this share
            of staging's rows changed.
        info: filled with ``mode`` (``full`` or ``incremental``), ``reason``, ``scope`` (row
            counts of the scope tables) and ``seconds`` (each mart's build time).

    Returns:
        The row count of each mart, in :data:`MART_NAMES` order.

    Raises:
        TypeError: a parameter is not an integer.
        ValueError: a parameter is below its minimum, a time zone in ``ops.sources`` is not
            a valid IANA name, or a model uses a parameter that does not exist (nothing is
            written).
        duckdb.Error: a model failed; the transaction is rolled back and the previous marts
            stay as they were.
    """
    _check_int("min_support", min_support, 1)
    _check_int("window_days", window_days, 1)
    _check_int("min_posts", min_posts, 2)
    _check_int("repeat_offender_window_days", repeat_offender_window_days, 1)
    check_source_timezones(con)
    parameters: dict[str, Any] = {
        "min_support": min_support,
        "window_days": window_days,
        "min_posts": min_posts,
        "repeat_offender_window_days": repeat_offender_window_days,
    }

    counts: dict[str, int] = {}
    print_ = inc.fingerprint(con, model_texts(), parameters)
    con.execute("begin transaction")
    try:
        for name in STAGING_MODELS:
            # `name` is a file name of STAGING_DIR, never input
            con.execute(f"create or replace view staging.{name} as\n{(STAGING_DIR / f'{name}.sql').read_text()}")
        stale = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts' order by table_name"
            ).fetchall()
            if t not in MART_NAMES
        ]
        for table in stale:
            log.info("dropping marts.%s: not a mart (left by a mart since removed or renamed)", table)
            con.execute(f'drop table if exists marts."{table}"')  # DROP takes no bound identifier
        inc.compute_extents(con, from_changes=incremental)
        if incremental:
            plan = inc.plan(con, print_, MART_NAMES, max_changed_share=max_changed_share)
            if plan.full:
                inc.compute_extents(con, from_changes=False)  # also right after changes the set missed
        else:
            plan = inc.Plan(True, "full rebuild requested", 0)
        scope = inc.create_scope(con, full=plan.full)
        log.info("marts: %s build (%s); scope %s", "full" if plan.full else "incremental", plan.reason, scope)
        seconds: dict[str, float] = {}
        for name in MART_NAMES:
            t0 = time.perf_counter()
            if name in PYTHON_MODELS:
                model = PYTHON_MODELS[name]
                full = plan.full or model.incremental == "full"
                origins = _topic_origins(con) if name == "thread_topics" and not full else None
                model.build(con, full=full)
                if origins is not None and _topic_origins(con) != origins:
                    # a source gained its first tag or lost its last: its threads' topics changed
                    # from tags to keyphrases or back, so every root is rebuilt and in scope (rare)
                    model.build(con, full=True)
                    con.execute(
                        "insert into pulse_scope_roots "
                        "select distinct source, coalesce(thread_id, content_id) from staging.content"
                    )
            else:
                _build_sql_mart(con, name, parameters, full=plan.full)
            # fetchall, not fetchone: DuckDB 2.0 keeps a partly fetched result open on the
            # connection, which then refuses con.sql(...) until it is drained
            counts[name] = int(con.execute(f"select count(*) from marts.{name}").fetchall()[0][0])
            seconds[name] = round(time.perf_counter() - t0, 3)
        inc.save_state(con, print_, "full" if plan.full else "incremental", datetime.now(UTC).replace(tzinfo=None))
        inc.drop_scope(con)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    for name, rows in counts.items():
        log.info("built mart marts.%s: %d rows", name, rows)
    if info is not None:
        info.update(mode="full" if plan.full else "incremental", reason=plan.reason, scope=scope, seconds=seconds)
    return counts


def _topic_origins(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute("select distinct source, topic_origin from marts.thread_topics order by all").fetchall()


def model_texts() -> dict[str, str]:
    """Every model's text by name (marts, staging models, the Python models' SQL): what the build fingerprint hashes."""
    texts = {f"marts/{p.stem}": p.read_text(encoding="utf-8") for p in sorted(MODELS_DIR.glob("*.sql"))}
    texts |= {f"staging/{p.stem}": p.read_text(encoding="utf-8") for p in sorted(STAGING_DIR.glob("*.sql"))}
    texts["python/thread_topics"] = thread_topics._MODEL + thread_topics._ALL_SOURCES + thread_topics._SCOPED_SOURCES
    return texts


def _bound(sql: str, parameters: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    unknown = [p for p in sql_parameters(sql) if p not in parameters]
    if unknown:
        raise ValueError(f"mart {name!r} uses unknown parameters {unknown}; known: {sorted(parameters)}")
    return {key: parameters[key] for key in sql_parameters(sql)} or None


def full_build_sql(sql: str) -> str:
    """``sql`` without its partition filters (lines ending in ``-- @partition``): what a full build runs.

    With every day and thread in scope those filters keep every row, but DuckDB cannot know
    that: it plans their semi-joins with tiny cardinality estimates, and at 100x history the
    full rebuild of ``trending_topics`` took 5.1 s with them and 1.x s without.
    """
    return _PARTITION_LINE.sub("", sql)


def _build_sql_mart(con: duckdb.DuckDBPyConnection, name: str, parameters: Mapping[str, Any], *, full: bool) -> None:
    """Build ``marts.<name>``: its scope statements, then a full ``create or replace`` or its
    delete statements and an insert of the query's rows, then its refresh statements.

    A full build runs the query and the scope statements without their partition filters
    (:func:`full_build_sql`). ``name`` comes from :data:`MART_NAMES`, never from input; values
    are bound, not formatted.
    """
    sql = model_sql(name)
    sections = model_sections(name)
    full = full or incremental_key(name) == "full"
    if full:
        sql = full_build_sql(sql)
        sections["scope"] = [full_build_sql(s) for s in sections["scope"]]
    for stmt in (*sections["scope"], *sections["delete"], *sections["refresh"]):
        _bound(stmt, parameters, name)  # an unknown parameter anywhere fails before any statement runs
    query_parameters = _bound(sql, parameters, name)
    for stmt in sections["scope"]:
        con.execute(stmt, _bound(stmt, parameters, name))
    if full:
        con.execute(f"create or replace table marts.{name} as\n{sql}", query_parameters)
    else:
        for stmt in sections["delete"]:
            con.execute(stmt, _bound(stmt, parameters, name))
        con.execute(f"insert into marts.{name} by name\n{sql}", query_parameters)
    for stmt in sections["refresh"]:
        con.execute(stmt, _bound(stmt, parameters, name))
