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

import json
import logging
import os
import shutil
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
    con: duckdb.DuckDBPyConnection,
    serving_path: Path,
    tables: Sequence[str] = SERVING_TABLES,
    *,
    incremental: bool = False,
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

    With ``incremental``, each file is a copy of the previous one brought up to date table by
    table (:func:`_write`); without, it is written from scratch, which is what a privacy request
    needs: a row deleted from a copied file may leave its bytes in the file's blocks.

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
    _write(con, restricted_path(serving_path), restricted, incremental=incremental)
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
    counts = _write(con, serving_path, selects, incremental=incremental)
    log.info("published %s (%d tables, %d rows)", serving_path, len(counts), sum(counts.values()))
    return counts


#: A table whose changed rows exceed this share of its rows is rewritten whole (cheaper than a
#: delta that large, and it leaves no deleted rows behind).
DELTA_MAX_SHARE = 0.5

#: A changed table of fewer rows (in the previous snapshot) is rewritten whole: one statement
#: instead of the delta's five or so, which cost more than writing a few thousand rows.
DELTA_MIN_ROWS = 5_000


def _write(
    con: duckdb.DuckDBPyConnection, path: Path, selects: dict[str, str], *, incremental: bool = False
) -> dict[str, int]:
    """Create ``path`` holding one table per ``schema.table -> select`` (SQL after ``select``), atomically.

    ``incremental`` (issue #17): a publish copies the previous snapshot at ``path`` (when its tables
    carry their state: a JSON comment on each table, ``COMMENT ON TABLE``, holding the select it
    was published from, its columns and its fingerprint) to the temporary file and brings each
    table up to date there instead of writing every row again. A table whose fingerprint (row count and the sum
    of its rows' 64-bit ``hash``) is unchanged is kept; a changed one gets the rows whose hash
    the snapshot lacks and loses those the warehouse lacks (:func:`_delta`, which checks first
    that this gives the warehouse's fingerprint); duplicate rows, a new select or column list,
    fewer than :data:`DELTA_MIN_ROWS` rows or a delta over :data:`DELTA_MAX_SHARE` of its rows
    rewrite it whole, as does a previous snapshot
    with more free than used blocks (a fresh file). The cost follows what changed, plus one hash
    scan per table (~0.1 s for 383k score rows) and a file copy, instead of writing every row
    (2.1 s at 100x history). Readers still never block: the temporary file is ``os.replace``d in.

    Returns:
        Row count per table (``selects`` order).
    """
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    state = _attach_copy(con, path if incremental else None, tmp)
    counts: dict[str, int] = {}
    try:
        for name, select in selects.items():
            schema, table = name.split(".")
            target = f"snapshot.{schema}.{table}"
            previous = state.get(name)
            counts[name], fingerprint, columns, how = _sync(con, target, select, previous)
            log.debug("publish: %s %s (%d rows)", target, how, counts[name])
            comment = json.dumps([select, columns, counts[name], str(fingerprint)])
            if previous is None or comment != json.dumps([*previous[:3], str(previous[3])]):
                con.execute(f"comment on table {target} is '{comment.replace(chr(39), chr(39) * 2)}'")
        for name in set(state) - set(selects):
            con.execute(f"drop table if exists snapshot.{name}")
        con.execute("checkpoint snapshot")
    finally:
        con.execute("detach snapshot")
    private_file(tmp)  # owner-only (PULSE_FILE_MODE) before the name points at it
    os.replace(tmp, path)
    return counts


def _attach_copy(con: duckdb.DuckDBPyConnection, path: Path | None, tmp: Path) -> dict[str, tuple[str, str, int, int]]:
    """Attach ``tmp`` as ``snapshot``: a copy of the previous snapshot ``path`` when it can be
    updated, else a new file.

    Returns:
        ``name -> (select, columns, row_count, row_hash)`` read from the copy's table comments;
        empty for a new file (``path`` None or no file there, one unreadable, one with a table without
        state, i.e. written before incremental publishing, or one with more free than used blocks).
    """
    quoted = str(tmp).replace("'", "''")  # ATTACH takes no bound parameters
    if path is not None and path.is_file():
        shutil.copyfile(path, tmp)
        try:
            con.execute(f"attach '{quoted}' as snapshot")
        except duckdb.Error as exc:
            log.warning("publish: previous snapshot %s unreadable (%s); writing a fresh one", path, exc)
        else:
            rows = con.execute(
                "select schema_name || '.' || table_name, comment from duckdb_tables() where database_name = 'snapshot'"
            ).fetchall()
            used, free = one(
                con, "select used_blocks, free_blocks from pragma_database_size() where database_name = 'snapshot'"
            )
            state = {}
            try:
                for name, comment in rows:
                    select, columns, count, row_hash = json.loads(comment or "")
                    state[name] = (select, columns, int(count), int(row_hash))
            except (ValueError, TypeError):
                state = {}
            if state and free <= used:
                return state
            con.execute("detach snapshot")
        for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
            stale.unlink(missing_ok=True)
    con.execute(f"attach '{quoted}' as snapshot")
    return {}


def _sync(
    con: duckdb.DuckDBPyConnection, target: str, select: str, previous: tuple[str, str, int, int] | None
) -> tuple[int, int, str, str]:
    """Bring ``target`` (a table of the attached snapshot) to ``select`` from the warehouse.

    Returns:
        ``(row_count, row_hash, columns, how)``: the fingerprint (sum of the rows' 64-bit hashes
        as a HUGEINT) and the column names and types (JSON), as recorded in the table's comment,
        and what was done: ``kept``, ``delta`` or ``rewritten``.
    """
    description = con.execute(f"select * from (select {select}) limit 0").description
    columns = json.dumps([[d[0], str(d[1])] for d in description])
    same_shape = previous is not None and previous[:2] == (select, columns)
    if not same_shape or previous[2] < DELTA_MIN_ROWS:  # small or new: fingerprint, then keep or rewrite
        count, row_hash = one(con, f"select count(*), coalesce(sum(hash(t)::hugeint), 0) from (select {select}) t")
        if same_shape and (previous[2], previous[3]) == (count, row_hash):
            return count, row_hash, columns, "kept"
        return _rewrite(con, target, select, count, row_hash, columns)
    con.execute(f"create or replace temp table _publish_hashes as select hash(t) as h from (select {select}) t")
    try:
        count, row_hash = one(con, "select count(*), coalesce(sum(h::hugeint), 0) from _publish_hashes")
        if (previous[2], previous[3]) == (count, row_hash):
            return count, row_hash, columns, "kept"
        if _delta(con, target, select, count):
            return count, row_hash, columns, "delta"
        return _rewrite(con, target, select, count, row_hash, columns)
    finally:
        con.execute("drop table if exists _publish_hashes")


def _rewrite(
    con: duckdb.DuckDBPyConnection, target: str, select: str, count: int, row_hash: int, columns: str
) -> tuple[int, int, str, str]:
    """Write ``target`` whole from ``select``; :func:`_sync`'s return value."""
    con.execute(f"create schema if not exists {target.rsplit('.', 1)[0]}")
    con.execute(f"create or replace table {target} as select {select}")
    return count, row_hash, columns, "rewritten"


def _delta(con: duckdb.DuckDBPyConnection, target: str, select: str, count: int) -> bool:
    """Delete from ``target`` the rows whose hash is not in ``_publish_hashes`` (the warehouse's)
    and insert the rows of ``select`` whose hash ``target`` lacks.

    Returns:
        True when done; False, with nothing done, when that would touch more than
        :data:`DELTA_MAX_SHARE` of the rows, or when a side holds a hash twice (duplicate rows:
        the delta by hash would not give the warehouse's rows).
    """
    con.execute(
        "create or replace temp table _publish_diff as select o.r, n.h as new_h, o.h is not null and n.h is not null as matched "
        f"from (select rowid as r, hash(t) as h from {target} t) o full join _publish_hashes n on o.h = n.h"
    )
    try:
        gone, new, matched, old_rows = one(
            con,
            "select count(*) filter (where new_h is null), count(*) filter (where r is null), "
            f"count(*) filter (where matched), (select count(*) from {target}) from _publish_diff",
        )
        # a hash on several rows of a side makes the pairs outnumber that side's matched rows
        unique = old_rows == gone + matched and count == new + matched
        if not unique or gone + new > DELTA_MAX_SHARE * max(count, 1):
            return False
        if gone:
            con.execute(f"delete from {target} where rowid in (select r from _publish_diff where new_h is null)")
        if new:
            con.execute(
                f"insert into {target} select * from (select {select}) t "
                "where hash(t) in (select new_h from _publish_diff where r is null)"
            )
        return True
    finally:
        con.execute("drop table if exists _publish_diff")
