"""Publishing the read-only serving snapshot the dashboards open.

In DuckDB a process holding a file open (even read-only) blocks a writer in another process,
and the reverse. So the dashboards never open the live warehouse: each successful run copies
what they need into a new file next to the snapshot and ``os.replace``s it into place, an
atomic rename. A dashboard that has the old file open keeps reading the old inode; the next
query opens the new one. The snapshot keeps the warehouse's ``schema.table`` names.

What is published: every table of the ``marts`` schema, read from the warehouse's catalog
(``information_schema.tables``), plus :data:`SERVING_TABLES`. The marts are not listed here:
the transform step (``transforms.runner``, a layer above) derives them from its models and
keeps the ``marts`` schema holding exactly those, so a new mart is published without an edit
here, and this module never imports ``transforms``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import duckdb

from warehouse.db import one

log = logging.getLogger(__name__)

#: Tables the serving snapshot carries besides the marts: moderation results, quality and run
#: history. Staging (all raw text of every item) stays in the warehouse; flagged items' text
#: travels in marts.moderation_queue only, and thread titles (never bodies) in marts.hot_content
#: and marts.trending_topics.example_titles.
SERVING_TABLES: tuple[str, ...] = (
    "moderation.scores",
    "moderation.flags",
    "moderation.decisions",
    "moderation.model_evaluations",
    "moderation.bias_audit",
    "quality.validation_results",
    "ops.runs",
    "ops.stream_counts",
    "ops.step_log",
    "ops.sources",
    "raw.quarantine",
)


def mart_tables(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """Every table of the warehouse's ``marts`` schema, as ``marts.<name>``, in name order."""
    return tuple(
        f"marts.{name}"
        for (name,) in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = current_database() and table_schema = 'marts' order by table_name"
        ).fetchall()
    )


def publish_snapshot(
    con: duckdb.DuckDBPyConnection, serving_path: Path, tables: Sequence[str] = SERVING_TABLES
) -> dict[str, int]:
    """Copy the marts and ``tables`` from the open warehouse ``con`` into ``serving_path``, atomically.

    The marts are every table of the ``marts`` schema (:func:`mart_tables`). Writes
    ``<serving_path>.tmp`` through ``ATTACH``, checkpoints and detaches it, then
    ``os.replace``s it over ``serving_path``. Tables of ``tables`` missing from the warehouse
    are skipped (logged). A crash at any point leaves the previous snapshot intact.

    Returns:
        Row count per published table, the marts first.

    Raises:
        duckdb.Error: when the temporary file cannot be written.
    """
    serving_path = Path(serving_path)
    serving_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = serving_path.with_name(serving_path.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    existing = {
        f"{s}.{t}"
        for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = current_database()"
        ).fetchall()
    }
    names = dict.fromkeys((*mart_tables(con), *tables))
    counts: dict[str, int] = {}
    quoted = str(tmp).replace("'", "''")
    con.execute(f"attach '{quoted}' as snapshot")  # ATTACH takes no bound parameters
    try:
        for name in names:
            if name not in existing:
                log.warning("publish: %s does not exist in the warehouse; not published", name)
                continue
            schema, table = name.split(".")
            con.execute(f"create schema if not exists snapshot.{schema}")
            con.execute(f"create table snapshot.{schema}.{table} as select * from {schema}.{table}")
            counts[name] = one(con, f"select count(*) from snapshot.{schema}.{table}")[0]
        con.execute("checkpoint snapshot")
    finally:
        con.execute("detach snapshot")
    os.replace(tmp, serving_path)
    log.info("published %s (%d tables, %d rows)", serving_path, len(counts), sum(counts.values()))
    return counts
