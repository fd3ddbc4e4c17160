"""What a run changed, and whether the marts can be updated in place or must be rebuilt.

The runner (:func:`transforms.runner.run_marts` with ``incremental=True``) rebuilds only the
partitions of the marts a batch can change. This module keeps the bookkeeping:

* **Change set** (``ops.mart_changes``): :func:`record_changes` is called by the *load* step
  before and after the upsert (``pulse.steps.load``), so it records each landed row's keys
  both as staging held them before (an edit that moves an item to another day or thread,
  a deletion) and after (a new or late row); :func:`record_decisions` records the items
  moderators decided on (a removal takes an item out of ``staging.live_content``). A row
  holds ``source``, ``stream`` (``content``, ``engagement_events``, ``users``, ``decision``),
  ``content_id`` (for ``users`` the member's ``user_id``), ``root_id`` (the thread root:
  ``coalesce(thread_id, content_id)``, for an event that of its content) and ``occurred_at``
  (naive UTC). Rows of runs whose transform
  never ran (a failed run) stay until a build consumes them.
* **Scope** (:func:`create_scope`): temporary tables the SQL models read,
  ``pulse_scope_days (source, day)`` (the UTC and the local date of every changed timestamp,
  and every day between a source's previous and new last activity), ``pulse_scope_threads
  (source, root_id)`` (the threads of changed items and events) and ``pulse_scope_roots
  (source, root_id)`` (roots whose own row changed). A full rebuild fills them with everything
  (every day from each source's first to last activity, every root), so full and incremental
  builds run the same SQL.
* **State** (``ops.mart_state``, ``ops.mart_extents``): the fingerprint of the last build
  (a SHA-256 of the models' SQL, the parameters, the time zones, the privacy keys and erasure
  counts, the applied migrations) and each source's first and last activity.

:func:`plan` decides: a **full rebuild** on the first build, when the fingerprint differs
(a model or parameter changed, a time zone, a pseudonym key, an erasure ran, a migration was
applied, another scoring model, language policy or flag thresholds), when a source's first activity moved or a source appeared or vanished, when a mart
table is missing, or when the changed rows exceed ``max_changed_share`` of staging's rows;
otherwise an **incremental** update.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb

#: Above this share of staging's rows changed, a full rebuild is cheaper than partitions.
DEFAULT_MAX_CHANGED_SHARE = 0.25

_DDL = (
    """
    create table if not exists ops.mart_changes (
        run_id varchar not null, source varchar not null, stream varchar not null,
        content_id varchar, root_id varchar, occurred_at timestamp
    )
    """,
    """
    create table if not exists ops.mart_state (
        name varchar primary key, fingerprint varchar not null, built_at timestamp not null, mode varchar not null
    )
    """,
    """
    create table if not exists ops.mart_extents (
        source varchar not null, stream varchar not null, first_at timestamp, last_at timestamp,
        primary key (source, stream)
    )
    """,
)

# Each source's first and last activity per stream the marts span (each mart spans its own
# streams: trending_topics live content, engagement_daily all three, the clock exact events too).
_EXTENTS = """
select source, 'live_content' as stream, min(created_at) as first_at, max(created_at) as last_at
from staging.live_content group by source
union all
select source, 'events_' || time_precision, min(occurred_at), max(occurred_at)
from staging.engagement_events group by source, time_precision
union all
select source, 'users', min(created_at), max(created_at)
from staging.users where created_at is not null group by source
"""


# Each extent's stream (for events the prefix of 'events_<time_precision>'), table and time column.
_EXTENT_STREAMS = (
    ("live_content", "staging.live_content", "created_at"),
    ("events_", "staging.engagement_events", "occurred_at"),
    ("users", "staging.users", "created_at"),
)


def compute_extents(con: duckdb.DuckDBPyConnection, *, from_changes: bool) -> None:
    """Create the temporary table ``pulse_extents (source, stream, first_at, last_at)``: each source's extents now.

    With ``from_changes`` (an incremental build, whose change set records every change to
    staging), from the recorded extents (``ops.mart_extents``) when the change set allows it: a
    source's first and last activity in a stream stay unless a change record sits exactly on
    one of them (that row changed, moved or went), and can only grow by rows earlier than the
    first or later than the last, which ``ts < first`` / ``ts > last`` find by the tables' zone
    maps (new rows are appended: the scan reads the newest row groups, not the history).
    Otherwise (a full build, the first build, a change on an extent, a change in a stream without
    a recorded extent) every row is scanned (``_EXTENTS``).
    """
    ensure_tables(con)
    con.execute("create or replace temp table pulse_extents as select * from ops.mart_extents limit 0")
    old = con.execute("select source, stream, first_at, last_at from ops.mart_extents").fetchall()
    if not from_changes:
        old = []
    on_edge = int(
        con.execute(
            """
            select count(*) from ops.mart_changes as m
            inner join ops.mart_extents as e
                on e.source = m.source and m.occurred_at in (e.first_at, e.last_at)
            """
        ).fetchall()[0][0]
    )
    if not old or on_edge:
        con.execute(f"insert into pulse_extents {_EXTENTS}")
        return
    # a change in a stream without a recorded extent may start one (a new source, its first
    # user, its first exact-precision event): scan everything
    recorded = {(src, stream) for src, stream, _, _ in old}
    needed = {"content": "live_content", "decision": "live_content", "users": "users"}
    for src, stream, low, high in con.execute(
        "select source, stream, min(occurred_at), max(occurred_at) from ops.mart_changes group by all"
    ).fetchall():
        if stream == "engagement_events" and low is not None:
            # the precisions of the changed events: they lie within the change set's times
            precisions = con.execute(
                "select distinct time_precision from staging.engagement_events"
                " where source = ? and occurred_at between ? and ?",
                [src, low, high],
            ).fetchall()
            new_stream = any((src, f"events_{p}") not in recorded for (p,) in precisions)
        else:
            new_stream = stream in needed and (src, needed[stream]) not in recorded
        if new_stream:
            con.execute(f"insert into pulse_extents {_EXTENTS}")
            return
    rows = []
    for src, stream, first_at, last_at in old:
        prefix, table, column = next(x[:3] for x in _EXTENT_STREAMS if stream.startswith(x[0]))
        where = f"source = ? and {column} is not null"
        params: list[Any] = [src]
        if prefix == "events_":
            where += " and time_precision = ?"
            params.append(stream.removeprefix(prefix))
        earlier, later = con.execute(
            f"""
            select
                (select min({column}) from {table} where {where} and {column} < ?),
                (select max({column}) from {table} where {where} and {column} > ?)
            """,
            [*params, first_at, *params, last_at],
        ).fetchall()[0]
        rows.append((src, stream, earlier or first_at, later or last_at))
    con.executemany("insert into pulse_extents values (?, ?, ?, ?)", rows)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``ops.mart_changes``, ``ops.mart_state`` and ``ops.mart_extents`` when missing."""
    for ddl in _DDL:
        con.execute(ddl)


def record_changes(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Append the keys of the run's landed rows, as ``staging`` holds them now, to ``ops.mart_changes``.

    Called before the upsert (old values of edited or deleted rows; new rows are not in
    staging yet) and after it (new values). Joins the batch (``raw.* where run_id``) with
    staging on the natural keys.

    Returns:
        The rows appended.
    """
    ensure_tables(con)
    before = _count(con)
    con.execute(
        """
        insert into ops.mart_changes
        select ?, s.source, 'content', s.content_id, coalesce(s.thread_id, s.content_id), s.created_at
        from staging.content as s
        where (s.source, s.content_id) in (select source, content_id from raw.content where run_id = ?)
        """,
        [run_id, run_id],
    )
    con.execute(
        """
        insert into ops.mart_changes
        select ?, e.source, 'engagement_events', e.content_id,
            coalesce(c.thread_id, c.content_id, e.content_id), e.occurred_at
        from staging.engagement_events as e
        left join staging.content as c on c.source = e.source and c.content_id = e.content_id
        where (e.source, e.event_id) in (select source, event_id from raw.engagement_events where run_id = ?)
        """,
        [run_id, run_id],
    )
    con.execute(
        """
        insert into ops.mart_changes
        select ?, s.source, 'users', s.user_id, null, s.created_at
        from staging.users as s
        where (s.source, s.user_id) in (select source, user_id from raw.users where run_id = ?)
        """,
        [run_id, run_id],
    )
    return _count(con) - before


def record_decisions(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Append the items of the decisions ingested by ``run_id`` to ``ops.mart_changes``; return the rows appended."""
    ensure_tables(con)
    before = _count(con)
    con.execute(
        """
        insert into ops.mart_changes
        select distinct ?, c.source, 'decision', c.content_id, coalesce(c.thread_id, c.content_id), c.created_at
        from staging.content as c
        where (c.source, c.content_id) in (select source, content_id from moderation.decisions where ingested_run_id = ?)
        """,
        [run_id, run_id],
    )
    return _count(con) - before


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("select count(*) from ops.mart_changes").fetchall()[0][0])


def fingerprint(con: duckdb.DuckDBPyConnection, models: dict[str, str], parameters: dict[str, Any]) -> str:
    """SHA-256 (hex) of everything besides staging rows that the marts depend on.

    Args:
        models: ``{name: text}`` of every model (SQL files, staging models, Python models' SQL).
        parameters: the runner's parameters.
    """
    h = hashlib.sha256()
    for name in sorted(models):
        h.update(f"{name}\0{models[name]}\0".encode())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    for sql in (
        "select source, coalesce(timezone, '') from ops.sources order by source",
        # the session's pseudonym key (warehouse.privacy_keys.install), hashed: never stored
        "select sha256(coalesce(getvariable('pulse_pseudonym_key')::varchar, ''))",
        "select key_id, status from ops.privacy_key_ids order by key_id",
        "select count(*) from ops.tombstones",
        "select count(*) from ops.privacy_requests",
        "select name from ops.migrations order by name",
        # the moderation queue's model, language policy and flag thresholds (a change re-flags
        # or re-routes every item, not only the batch's)
        "select model_id, supported_languages, min_confidence from moderation.language_policy"
        " order by updated_at desc, model_id limit 1",
        "select distinct model_id, thresholds_json from moderation.flags order by all",
    ):
        try:
            rows = con.execute(sql).fetchall()
        except (duckdb.CatalogException, duckdb.BinderException):
            rows = []
        h.update(repr(rows).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Plan:
    """The runner's decision for one build.

    Attributes:
        full: rebuild every mart (else update the changed partitions).
        reason: why, in words (logged and returned in the transform step's info).
        changes: change rows the build consumes.
    """

    full: bool
    reason: str
    changes: int


def plan(
    con: duckdb.DuckDBPyConnection,
    print_: str,
    mart_names: tuple[str, ...],
    *,
    max_changed_share: float = DEFAULT_MAX_CHANGED_SHARE,
) -> Plan:
    """Decide between a full rebuild and an incremental update (see the module docstring)."""
    ensure_tables(con)
    changes = _count(con)
    state = dict(con.execute("select name, fingerprint from ops.mart_state").fetchall())
    if not state:
        return Plan(True, "first build", changes)
    if state.get("marts") != print_:
        return Plan(True, "models, parameters, time zones, privacy keys, erasures or migrations changed", changes)
    present = {
        t
        for (t,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()
    }
    missing = sorted(set(mart_names) - present)
    if missing:
        return Plan(True, f"mart tables missing: {missing}", changes)
    old = {(s, t): f for s, t, f, _ in con.execute("select * from ops.mart_extents").fetchall()}
    new = {(s, t): f for s, t, f, _ in con.execute("select * from pulse_extents").fetchall()}
    if set(old) != set(new):
        return Plan(True, "a source or a stream of one appeared or vanished", changes)
    moved = sorted({k for k in new if new[k] != old[k]})
    if moved:
        return Plan(True, f"first activity moved for {moved}", changes)
    total = sum(
        int(con.execute(f"select count(*) from staging.{t}").fetchall()[0][0])
        for t in ("content", "engagement_events", "users")
    )
    if changes > max_changed_share * max(total, 1):
        return Plan(True, f"{changes} changed rows exceed {max_changed_share:.0%} of {total} staging rows", changes)
    return Plan(False, f"{changes} changed rows", changes)


def create_scope(con: duckdb.DuckDBPyConnection, *, full: bool) -> dict[str, int]:
    """Create the temporary scope tables the models read (see the module docstring); return their row counts."""
    ensure_tables(con)
    if full:
        con.execute(
            """
            create or replace temp table pulse_scope_days as
            select distinct source, unnest(generate_series(first_at::date - 1, last_at::date + 1, interval 1 day))::date as day
            from pulse_extents
            """
        )
        roots = "select distinct source, coalesce(thread_id, content_id) as root_id from staging.content"
        con.execute(f"create or replace temp table pulse_scope_threads as {roots}")
        con.execute(f"create or replace temp table pulse_scope_roots as {roots}")
    else:
        # A changed timestamp's UTC date and its local date; and, for a source whose last activity
        # moved, every day between the previous and the new last activity (new zero-filled days,
        # the partial last week and day, days left behind by a deletion at the end).
        con.execute(
            """
            create or replace temp table pulse_scope_days as
            with zones as (
                select source, coalesce(nullif(timezone, ''), 'UTC') as timezone from ops.sources
            ),
            extents as (select * from pulse_extents)
            select distinct source, day
            from (
                select source, occurred_at::date as day from ops.mart_changes where occurred_at is not null
                union all
                select m.source, timezone(coalesce(z.timezone, 'UTC'), timezone('UTC', m.occurred_at))::date
                from ops.mart_changes as m
                left join zones as z using (source)
                where m.occurred_at is not null
                union all
                select e.source,
                    unnest(generate_series(
                        least(e.last_at, o.last_at)::date - 1, greatest(e.last_at, o.last_at)::date + 1, interval 1 day
                    ))::date
                from extents as e
                inner join ops.mart_extents as o using (source, stream)
                where e.last_at is distinct from o.last_at
            )
            """
        )
        con.execute(
            """
            create or replace temp table pulse_scope_threads as
            select distinct source, root_id from ops.mart_changes where root_id is not null
            """
        )
        con.execute(
            """
            create or replace temp table pulse_scope_roots as
            select distinct source, root_id from ops.mart_changes
            where stream in ('content', 'decision') and content_id = root_id
            """
        )
    return {
        t: int(con.execute(f"select count(*) from {t}").fetchall()[0][0])
        for t in ("pulse_scope_days", "pulse_scope_threads", "pulse_scope_roots")
    }


def drop_scope(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the temporary scope tables."""
    for t in ("pulse_scope_days", "pulse_scope_threads", "pulse_scope_roots", "pulse_extents"):
        con.execute(f"drop table if exists {t}")


def save_state(con: duckdb.DuckDBPyConnection, print_: str, mode: str, built_at: Any) -> None:
    """Record the build: its fingerprint, each source's extent; the consumed change rows are deleted."""
    con.execute("delete from ops.mart_state")
    con.execute("insert into ops.mart_state values ('marts', ?, ?, ?)", [print_, built_at, mode])
    con.execute("delete from ops.mart_extents")
    con.execute("insert into ops.mart_extents select * from pulse_extents")
    con.execute("delete from ops.mart_changes")
