"""Build the marts from staging: one SQL model per file in ``transforms/marts/``, plus Python models.

Each SQL model is a CTE chain ending in ``select * from final`` (dbt's jaffle_shop style). The
runner applies the models in the fixed order :data:`MART_NAMES` as
``create or replace table marts.<name> as <model>`` inside one transaction, so a failure
leaves the previous marts untouched (all marts or none). Where SQL is awkward a model is a
Python function (:data:`PYTHON_MODELS`: ``thread_topics`` runs YAKE keyphrase extraction for
sources without tags) that writes its table on the same connection, inside the same
transaction. Marts are rebuilt from staging on every run and depend only on staging,
``moderation.*``, ``ops.sources`` and marts built earlier in the order: the same inputs give
identical marts (no ``now()``; "current" means the data's last day).

Time zones: staging timestamps are naive UTC; each model converts them to the community's
local time with the IANA zone in ``ops.sources.timezone`` (NULL or empty: ``'UTC'``), read by
join inside the SQL. The runner checks every configured zone against
:func:`zoneinfo.available_timezones` first, so a typo fails before anything is written.
Parameters (``min_support``, ``window_days``, ``min_posts``, ``repeat_offender_window_days``) are bound by DuckDB, never
formatted into the SQL.

Model documentation (grain, columns, units, formulas and their sources):
``transforms/README.md``.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from transforms.thread_topics import build_thread_topics

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).with_name("marts")

#: The marts in build order. A model may read marts built before it: engagement_daily,
#: response_times_by_slot, best_time_to_post and hot_content read response_times;
#: best_time_to_post takes its weekday x hour grid from response_times_by_slot;
#: trending_topics reads thread_topics.
MART_NAMES: tuple[str, ...] = (
    "thread_topics",
    "activity_heatmap",
    "activity_timeline",
    "response_times",
    "engagement_daily",
    "response_times_by_slot",
    "best_time_to_post",
    "trending_topics",
    "hot_content",
    "moderation_queue",
)

#: Models written in Python: ``name -> function(con) -> row count``; the rest are SQL files.
PYTHON_MODELS: dict[str, Callable[[duckdb.DuckDBPyConnection], int]] = {
    "thread_topics": build_thread_topics,
}

#: The named parameters (``$name``) each SQL model uses; DuckDB rejects unused ones.
MODEL_PARAMETERS: dict[str, tuple[str, ...]] = {
    "response_times": ("window_days",),
    "engagement_daily": ("window_days",),
    "best_time_to_post": ("min_posts",),
    "trending_topics": ("min_support",),
    "moderation_queue": ("repeat_offender_window_days",),
}


def model_sql(name: str) -> str:
    """Return the SQL text of the mart model ``name`` (``transforms/marts/<name>.sql``).

    Raises:
        ValueError: ``name`` is not one of :data:`MART_NAMES`, or it is a Python model
            (:data:`PYTHON_MODELS`).
    """
    if name not in MART_NAMES:
        raise ValueError(f"unknown mart {name!r}; expected one of {MART_NAMES}")
    if name in PYTHON_MODELS:
        raise ValueError(f"mart {name!r} is a Python model ({PYTHON_MODELS[name].__module__}), not SQL")
    return (MODELS_DIR / f"{name}.sql").read_text(encoding="utf-8")


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
            "ops.sources.timezone must be an IANA time zone name (e.g. 'Europe/Berlin'); "
            "invalid: " + ", ".join(bad)
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
) -> dict[str, int]:
    """Rebuild every mart from staging in one transaction; return ``{mart name: row count}``.

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

    Returns:
        The row count of each mart, in :data:`MART_NAMES` order.

    Raises:
        TypeError: a parameter is not an integer.
        ValueError: a parameter is below its minimum, or a time zone in ``ops.sources`` is not
            a valid IANA name (nothing is written).
        duckdb.Error: a model failed; the transaction is rolled back and the previous marts
            stay as they were.
    """
    _check_int("min_support", min_support, 1)
    _check_int("window_days", window_days, 1)
    _check_int("min_posts", min_posts, 2)
    _check_int("repeat_offender_window_days", repeat_offender_window_days, 1)
    check_source_timezones(con)
    parameters: dict[str, Any] = {"min_support": min_support, "window_days": window_days, "min_posts": min_posts,
                                  "repeat_offender_window_days": repeat_offender_window_days}

    counts: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for name in MART_NAMES:
            if name in PYTHON_MODELS:
                PYTHON_MODELS[name](con)
            else:
                sql = model_sql(name)
                bound = {key: parameters[key] for key in MODEL_PARAMETERS.get(name, ())}
                # `name` comes from MART_NAMES, never from input; values are bound, not formatted.
                con.execute(f"create or replace table marts.{name} as\n{sql}", bound or None)
            # fetchall, not fetchone: DuckDB 2.0 keeps a partly fetched result open on the
            # connection, which then refuses con.sql(...) until it is drained
            counts[name] = int(con.execute(f"select count(*) from marts.{name}").fetchall()[0][0])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    for name, rows in counts.items():
        log.info("built mart marts.%s: %d rows", name, rows)
    return counts
