"""What has been loaded from each source: stream watermarks, source watermarks, the file ledger.

Sources that pull "changed since" (a platform database, an API) read the watermark at
extract time and ask for rows changed after it; every successful load advances it, in the
same transaction as the upsert, so a crash can never move a watermark past data that was not
loaded. A watermark never moves backwards (a backfill of an old interval leaves it alone).

Three ledgers live here, each committed in the load transaction (the connector bookkeeping
contract in :mod:`warehouse.canonical`): ``ops.watermarks`` per source and canonical stream
(computed from the landed batch); ``ops.source_watermarks`` per source and mapping query, in
the source's own terms (a PostgreSQL replica's ``updated_at`` + primary key), staged at landing
and advanced by :func:`advance_watermarks`; ``ops.loaded_files``, the files an event-export run
landed (``raw.event_files``), recorded by :func:`record_loaded_files`. None of them knows a
connector.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from warehouse.db import frame

log = logging.getLogger(__name__)

#: The change timestamp of each stream: an edit counts as a change of content.
WATERMARK_COLUMNS: dict[str, tuple[str, str]] = {
    "users": ("created_at", "user_id"),
    "content": ("coalesce(edited_at, created_at)", "content_id"),
    "engagement_events": ("occurred_at", "event_id"),
}


@dataclass(frozen=True)
class Watermark:
    """The high-water mark of one stream: ``value`` (naive UTC) and the tie-breaking ``key``."""

    source: str
    stream: str
    value: datetime
    key: str | None


def get_watermark(con: duckdb.DuckDBPyConnection, source: str, stream: str) -> Watermark | None:
    """The stream's watermark, or None when nothing has been loaded from it yet."""
    rows = con.execute(
        "select watermark_value, watermark_key from ops.watermarks where source = ? and stream = ?", [source, stream]
    ).fetchall()
    return Watermark(source, stream, rows[0][0], rows[0][1]) if rows else None


def advance_watermarks(con: duckdb.DuckDBPyConnection, run_id: str, now: datetime) -> dict[str, datetime]:
    """Advance each stream's watermark to the newest change in the run's landed batch.

    Call inside the load transaction. Rows are compared as ``(timestamp, key)`` so rows sharing
    a timestamp are ordered; the stored watermark only moves forward.

    Returns:
        ``{stream: new watermark}`` for the streams whose batch had rows.
    """
    moved: dict[str, datetime] = {}
    for stream, (column, key) in WATERMARK_COLUMNS.items():
        top = frame(
            con,
            f"""
            select source, {column} as value, {key} as key from raw.{stream}
            where run_id = ? and {column} is not null
            qualify row_number() over (partition by source order by {column} desc, {key} desc) = 1
            """,
            [run_id],
        )
        for row in top.iter_rows(named=True):
            con.execute(
                """
                insert into ops.watermarks values (?, ?, ?, ?, ?, ?, ?)
                on conflict (source, stream) do update set
                    watermark_value = excluded.watermark_value, watermark_key = excluded.watermark_key,
                    run_id = excluded.run_id, updated_at = excluded.updated_at
                where (excluded.watermark_value, excluded.watermark_key)
                      > (watermarks.watermark_value, coalesce(watermarks.watermark_key, ''))
                """,
                [row["source"], stream, column, row["value"], row["key"], run_id, now],
            )
            moved[stream] = row["value"]
    advance_source_watermarks(con, run_id, now)
    return moved


# ---------------------------------------------------------------------------------------------
# Source watermarks: a live source's own change column per mapping query (migration 005).
# A PostgreSQL replica is read by its change column (Discourse ``posts.updated_at`` + ``id``),
# which is not a canonical column; the extract stages what it reached per query
# (``ops.source_watermarks_pending``) and the load transaction advances ``ops.source_watermarks``.


@dataclass(frozen=True)
class QueryWatermark:
    """How far one query of a source has been read: the last ``(value, key)`` in ``(watermark, key)`` order.

    ``value`` is naive UTC (a date column's date at midnight); ``key`` the key column's value
    (int or str).
    """

    query: str
    watermark_column: str
    key_column: str
    value: datetime
    key: Any


def _key_order(key: Any) -> tuple[int, Any]:
    """Sort key for JSON-decoded watermark keys: numbers before strings, each in its own order."""
    return (0, key) if isinstance(key, (int, float)) and not isinstance(key, bool) else (1, str(key))


def get_source_watermarks(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, QueryWatermark]:
    """The source's query watermarks: ``{query: QueryWatermark}`` (empty: none yet)."""
    rows = con.execute(
        "select query, watermark_column, key_column, watermark_value, watermark_key "
        "from ops.source_watermarks where source = ?",
        [source],
    ).fetchall()
    return {q: QueryWatermark(q, col, kcol, value, json.loads(key)) for q, col, kcol, value, key in rows}


def stage_source_watermarks(
    con: duckdb.DuckDBPyConnection, run_id: str, source: str, marks: Iterable[QueryWatermark]
) -> int:
    """Record what run ``run_id``'s extract reached per query (replacing a retried extract's rows).

    Call at landing (a connector's ``Extract.stage_bookkeeping``); :func:`advance_source_watermarks`
    consumes the rows in the load transaction.

    Returns:
        rows staged.
    """
    con.execute("delete from ops.source_watermarks_pending where run_id = ?", [run_id])
    n = 0
    for m in marks:
        con.execute(
            "insert into ops.source_watermarks_pending values (?, ?, ?, ?, ?, ?, ?)",
            [run_id, source, m.query, m.watermark_column, m.key_column, m.value, json.dumps(m.key, default=str)],
        )
        n += 1
    return n


def advance_source_watermarks(con: duckdb.DuckDBPyConnection, run_id: str, now: datetime) -> dict[str, datetime]:
    """Move each query's source watermark forward to what run ``run_id`` staged; call inside the load transaction.

    A staged ``(value, key)`` replaces the stored one only when it is greater, compared as
    (timestamp, typed key), so a re-run or a backfill of an old interval never moves it back.
    The staged rows are consumed.

    Returns:
        ``{"<source>/<query>": new watermark value}`` for the watermarks that moved.
    """
    staged = con.execute(
        "select p.source, p.query, p.watermark_column, p.key_column, p.watermark_value, p.watermark_key, "
        "w.watermark_value, w.watermark_key from ops.source_watermarks_pending p "
        "left join ops.source_watermarks w on w.source = p.source and w.query = p.query where p.run_id = ?",
        [run_id],
    ).fetchall()
    moved: dict[str, datetime] = {}
    for source, query, col, kcol, value, key, old_value, old_key in staged:
        if old_value is not None and (value, _key_order(json.loads(key))) <= (
            old_value,
            _key_order(json.loads(old_key)),
        ):
            continue
        con.execute(
            "insert or replace into ops.source_watermarks values (?, ?, ?, ?, ?, ?, ?, ?)",
            [source, query, col, kcol, value, key, run_id, now],
        )
        moved[f"{source}/{query}"] = value
    con.execute("delete from ops.source_watermarks_pending where run_id = ?", [run_id])
    return moved


# ---------------------------------------------------------------------------------------------
# File ledger (ops.loaded_files, migration 006): the files an event-export run landed
# (raw.event_files, one row per file; raw.event_file_events, which file each event came from).


def record_loaded_files(con: duckdb.DuckDBPyConnection, run_id: str, now: datetime) -> int:
    """Record the run's landed files in ``ops.loaded_files`` and clear them from ``raw``.

    Call inside the load transaction (after the upsert), so the ledger and staging commit
    together. Per file: ``rows_loaded`` = events passed on minus those *validate*
    quarantined as dangling; ``rows_quarantined`` counts both kinds. A file already in the
    ledger (same source and sha256) is left as recorded.

    Returns:
        Files recorded.
    """
    n = con.execute("select count(*) from raw.event_files where run_id = ?", [run_id]).fetchone()[0]
    if not n:
        return 0
    con.execute(
        """
        insert into ops.loaded_files
        select f.source, f.sha256, f.path, f.size_bytes, f.mtime, f.format, f.rows_read,
               f.rows_emitted - coalesce(d.dangling, 0) as rows_loaded,
               f.rows_skipped,
               f.rows_quarantined + coalesce(d.dangling, 0) as rows_quarantined,
               f.run_id, ?::timestamp as loaded_at
        from raw.event_files f
        left join (
            select m.source, m.sha256, count(*) as dangling
            from raw.event_file_events m
            where m.run_id = ?
              and not exists (select 1 from raw.engagement_events e
                              where e.run_id = m.run_id and e.source = m.source and e.event_id = m.event_id)
            group by m.source, m.sha256
        ) d on d.source = f.source and d.sha256 = f.sha256
        where f.run_id = ?
        on conflict (source, sha256) do nothing
        """,
        [now, run_id, run_id],
    )
    con.execute("delete from raw.event_file_events where run_id = ?", [run_id])
    con.execute("delete from raw.event_files where run_id = ?", [run_id])
    log.info("run %s: %d event export files recorded in ops.loaded_files", run_id, n)
    return int(n)
