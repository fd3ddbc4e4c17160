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

Least privilege (SECURITY.md, "Least privilege"): the serving snapshot is opened by every page
of every role, so it carries no raw quarantine payloads and no moderators' private notes.
``raw.quarantine`` travels there only as counts (:data:`REDACTED_TABLES`: ``raw.quarantine_counts``
per source, stream, reason and run, every quarantined record counted, stored or not) and ``moderation.decisions`` without its ``note``
column. The full tables (:data:`RESTRICTED_TABLES`) go to a separate restricted snapshot,
``serving_restricted.duckdb`` beside the serving file (``PULSE_SERVING_RESTRICTED`` overrides;
:func:`restricted_path`), written in the same publish step with the same temp-file +
``os.replace`` pattern; only the data access layer's role-checked reader opens it
(``dashboards.data.restricted_query``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import duckdb

from warehouse.db import one
from warehouse.files import file_mode, private_dir, private_file

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
)

#: Tables published in the serving snapshot as a redacted query of the warehouse table
#: (``name -> (source table, select list)``): no payload, record key, detail or note.
REDACTED_TABLES: dict[str, tuple[str, str]] = {
    # every record counted per run (warehouse.load: the payload sample is capped); rows of
    # raw.quarantine that no count covers (written before migration 010) are counted as rows
    "raw.quarantine_counts": (
        "raw.quarantine_counts",
        "source, stream, reason, run_id as first_run_id, records from raw.quarantine_counts "
        "union all select source, stream, reason, first_run_id, count(*)::bigint from raw.quarantine q "
        "where not exists (select 1 from raw.quarantine_counts c where c.run_id = q.first_run_id "
        "and c.source = q.source and c.stream = q.stream and c.reason = q.reason) group by all",
    ),
    "moderation.decisions": ("moderation.decisions", "* exclude (note) from moderation.decisions"),
}

#: Tables copied whole into the restricted snapshot only (raw source records, private notes).
RESTRICTED_TABLES: tuple[str, ...] = ("raw.quarantine", "moderation.decisions")

RESTRICTED_NAME = "serving_restricted.duckdb"


def restricted_path(serving_path: Path) -> Path:
    """The restricted snapshot's path: ``PULSE_SERVING_RESTRICTED``, else :data:`RESTRICTED_NAME`
    in the serving snapshot's folder."""
    configured = os.environ.get("PULSE_SERVING_RESTRICTED")
    return Path(configured) if configured else Path(serving_path).with_name(RESTRICTED_NAME)


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
    """Publish the serving snapshot and the restricted snapshot from the open warehouse ``con``, atomically.

    The serving snapshot (``serving_path``) gets the marts (every table of the ``marts`` schema,
    :func:`mart_tables`), ``tables`` and :data:`REDACTED_TABLES`; the restricted snapshot
    (:func:`restricted_path`) gets :data:`RESTRICTED_TABLES`. Each is written as
    ``<path>.tmp`` through ``ATTACH``, checkpointed, detached and ``os.replace``d into place, the
    restricted one first (a crash between the two leaves both consistent with some run). Both
    files get :func:`warehouse.files.file_mode` (0600 by default), folders created 0700.
    Tables missing from the warehouse are skipped (logged). A crash at any point leaves the
    previous snapshots intact.

    Returns:
        Row count per table of the serving snapshot, the marts first.

    Raises:
        duckdb.Error: when a temporary file cannot be written.
        ValueError: ``PULSE_FILE_MODE`` is invalid (nothing written).
    """
    serving_path = Path(serving_path)
    file_mode()  # a bad PULSE_FILE_MODE fails here, before any file is written
    existing = {
        f"{s}.{t}"
        for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = current_database()"
        ).fetchall()
    }
    restricted = {name: f"* from {name}" for name in RESTRICTED_TABLES if name in existing}
    _write(con, restricted_path(serving_path), restricted)
    selects: dict[str, str] = {}
    for name in dict.fromkeys((*mart_tables(con), *tables)):
        if name not in existing:
            log.warning("publish: %s does not exist in the warehouse; not published", name)
            continue
        if name in RESTRICTED_TABLES:
            continue  # only in the restricted snapshot (or redacted, below)
        selects[name] = f"* from {name}"
    for name, (source, select) in REDACTED_TABLES.items():
        if source in existing:
            selects[name] = select
    counts = _write(con, serving_path, selects)
    log.info("published %s (%d tables, %d rows)", serving_path, len(counts), sum(counts.values()))
    return counts


def _write(con: duckdb.DuckDBPyConnection, path: Path, selects: dict[str, str]) -> dict[str, int]:
    """Create ``path`` holding one table per ``schema.table -> select`` (SQL after ``select``), atomically."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    quoted = str(tmp).replace("'", "''")
    con.execute(f"attach '{quoted}' as snapshot")  # ATTACH takes no bound parameters
    try:
        for name, select in selects.items():
            schema, table = name.split(".")
            con.execute(f"create schema if not exists snapshot.{schema}")
            con.execute(f"create table snapshot.{schema}.{table} as select {select}")
            counts[name] = one(con, f"select count(*) from snapshot.{schema}.{table}")[0]
        con.execute("checkpoint snapshot")
    finally:
        con.execute("detach snapshot")
    private_file(tmp)  # owner-only (PULSE_FILE_MODE) before the name points at it
    os.replace(tmp, path)
    return counts
