"""Watermarks per source stream (``ops.watermarks``): how far each stream has been loaded.

Sources that pull "changed since" (a platform database, an API) read the watermark at
extract time and ask for rows changed after it; every successful load advances it, in the
same transaction as the upsert, so a crash can never move a watermark past data that was not
loaded. A watermark never moves backwards (a backfill of an old interval leaves it alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from warehouse.db import frame

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
    return moved
