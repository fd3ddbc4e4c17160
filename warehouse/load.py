"""Landing, reference checks and upserts: how an :class:`~warehouse.canonical.Extract` reaches staging.

The three stages, each idempotent for a ``run_id``:

1. :func:`land` writes the extract's frames into the ``raw.*`` landing tables (the run's
   previous batch, if any, is replaced) and its bad records into ``raw.quarantine``.
2. :func:`quarantine_dangling` moves batch records whose references resolve neither in
   staging nor in the batch itself (e.g. a vote on a deleted post) to the quarantine.
3. :func:`upsert_batch` upserts the batch into ``staging.*`` by natural key in one
   transaction, touching only rows whose content changed, so a re-run changes nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import polars as pl

from warehouse.db import frame, one
from warehouse.watermarks import advance_watermarks
from warehouse.canonical import NATURAL_KEYS, SCHEMAS, STREAMS, Extract, StreamCounts
from warehouse.sources.events import land_files, record_loaded_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpsertCounts:
    """Rows of one stream's batch: ``inserted`` (new key), ``updated`` (changed), ``unchanged``."""

    inserted: int
    updated: int
    unchanged: int


def _cols(stream: str) -> list[str]:
    return list(SCHEMAS[stream])


def land(con: duckdb.DuckDBPyConnection, extract: Extract, run_id: str) -> dict[str, int]:
    """Write ``extract`` into ``raw.<stream>`` for ``run_id`` and its bad records into ``raw.quarantine``.

    Runs in one transaction. Re-landing the same ``run_id`` (an Airflow retry) replaces its
    batch; quarantine rows are keyed by (source, stream, fingerprint, reason), so the same bad
    record is recorded once however often it is read.

    Returns:
        Rows landed per stream, plus ``"quarantine"``: the bad records of this extract.
    """
    from warehouse.privacy import apply_tombstones

    # Erased users stay erased: their records are dropped or redacted as at erasure (skip rule
    # "erased user (tombstone)", so the counts still reconcile). Idempotent on a retry.
    apply_tombstones(con, extract)
    landed: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for stream in STREAMS:
            df = extract.frame(stream).with_columns(pl.lit(run_id).alias("run_id"))  # noqa: F841
            con.execute(f"delete from raw.{stream} where run_id = ?", [run_id])
            con.execute(f"insert into raw.{stream} by name select * from df")
            landed[stream] = extract.frame(stream).height
        landed["quarantine"] = _quarantine_frame(con, extract.quarantine, run_id)
        land_files(con, extract, run_id)  # event exports: the files this batch came from
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    log.info("landed run %s: %s", run_id, landed)
    return landed


def _quarantine_frame(con: duckdb.DuckDBPyConnection, q: pl.DataFrame, run_id: str) -> int:
    """Insert quarantine rows not yet recorded; return how many rows ``q`` holds."""
    if q.height == 0:
        return 0
    qdf = q.unique(subset=["source", "stream", "fingerprint", "reason"], keep="first").with_columns(  # noqa: F841
        pl.lit(run_id).alias("first_run_id")
    )
    con.execute(
        "insert into raw.quarantine by name select * from qdf "
        "on conflict (source, stream, fingerprint, reason) do nothing"
    )
    return q.height


def quarantine_dangling(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """Move batch records with unresolvable references to ``raw.quarantine`` (reason ``dangling_reference``).

    Checked: engagement events whose ``content_id`` is in neither ``staging.content`` nor
    the batch; content whose ``parent_id`` is in neither. A later interval that brings the
    referenced item does not resurrect the quarantined record (re-load the interval instead).

    Returns:
        Records quarantined per stream.
    """
    checks = {
        "engagement_events": ("event_id", "content_id"),
        "content": ("content_id", "parent_id"),
    }
    moved: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for stream, (key, ref) in checks.items():
            cols = _cols(stream)
            dangling = frame(con, 
                f"""
                select b.* exclude (run_id) from raw.{stream} b
                where b.run_id = ? and b.{ref} is not null
                  and not exists (select 1 from staging.content c
                                  where c.source = b.source and c.content_id = b.{ref})
                  and not exists (select 1 from raw.content r
                                  where r.run_id = b.run_id and r.source = b.source and r.content_id = b.{ref})
                """,
                [run_id],
            )
            moved[stream] = dangling.height
            if dangling.height == 0:
                continue
            payload = dangling.select(cols).with_columns(
                pl.struct(cols).map_elements(lambda s: json.dumps(s, default=str), return_dtype=pl.String).alias("payload")
            )
            q = payload.select(  # noqa: F841
                pl.col("source"),
                pl.lit(stream).alias("stream"),
                pl.col(key).alias("record_key"),
                pl.lit("dangling_reference").alias("reason"),
                (pl.lit(f"{ref} not found in staging.content or this batch: ") + pl.col(ref)).alias("detail"),
                pl.col("payload"),
                pl.col("payload").map_elements(_sha256, return_dtype=pl.String).alias("fingerprint"),
                pl.lit(run_id).alias("first_run_id"),
            )
            con.execute(
                "insert into raw.quarantine by name select * from q "
                "on conflict (source, stream, fingerprint, reason) do nothing"
            )
            con.execute(
                f"delete from raw.{stream} where run_id = ? and {key} in (select {key} from dangling)",
                [run_id],
            )
            # Same transaction as the move, so a retried validate never counts a record twice.
            con.execute(
                "update ops.stream_counts set quarantined = quarantined + ? where run_id = ? and stream = ?",
                [dangling.height, run_id, stream],
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    if any(moved.values()):
        log.warning("run %s: quarantined dangling references %s", run_id, moved)
    return moved


def _sha256(text: str) -> str:
    from warehouse.canonical import fingerprint

    return fingerprint(text)


def batch_frame(con: duckdb.DuckDBPyConnection, stream: str, run_id: str) -> pl.DataFrame:
    """The run's landed batch for ``stream`` with the canonical columns (no ``run_id``)."""
    cols = ", ".join(_cols(stream))
    return frame(con, f"select {cols} from raw.{stream} where run_id = ?", [run_id])


def upsert_batch(con: duckdb.DuckDBPyConnection, run_id: str, now: datetime | None = None) -> dict[str, UpsertCounts]:
    """Upsert the run's batch into ``staging.*`` by natural key, all streams in one transaction.

    Only rows whose content differs from staging are written (``IS DISTINCT FROM`` on every
    column), so re-running an interval leaves staging byte-for-byte unchanged. The streams'
    watermarks (``ops.watermarks``) advance in the same transaction.

    Returns:
        :class:`UpsertCounts` per stream.

    Raises:
        duckdb.ConstraintException: when the batch holds a natural key twice (the staging
            expectation suite checks this first).
    """
    out: dict[str, UpsertCounts] = {}
    con.execute("begin transaction")
    try:
        for stream in STREAMS:
            keys = NATURAL_KEYS[stream]
            cols = _cols(stream)
            values = [c for c in cols if c not in keys]
            on = " and ".join(f"s.{k} = b.{k}" for k in keys)
            differs = " or ".join(f"s.{c} is distinct from b.{c}" for c in values)
            inserted, updated, total = one(con, 
                f"""
                select count(*) filter (where s.{keys[-1]} is null),
                       count(*) filter (where s.{keys[-1]} is not null and ({differs})),
                       count(*)
                from raw.{stream} b left join staging.{stream} s on {on}
                where b.run_id = ?
                """,
                [run_id],
            )
            set_clause = ", ".join(f"{c} = excluded.{c}" for c in values)
            where = " or ".join(f"{stream}.{c} is distinct from excluded.{c}" for c in values)
            con.execute(
                f"""
                insert into staging.{stream} by name
                select {", ".join(cols)} from raw.{stream} where run_id = ?
                on conflict ({", ".join(keys)}) do update set {set_clause} where {where}
                """,
                [run_id],
            )
            out[stream] = UpsertCounts(inserted, updated, total - inserted - updated)
        advance_watermarks(con, run_id, now or datetime.now(UTC).replace(tzinfo=None))
        record_loaded_files(con, run_id, now or datetime.now(UTC).replace(tzinfo=None))  # ops.loaded_files
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    log.info("run %s upserted: %s", run_id, {k: vars(v) for k, v in out.items()})
    return out


def record_extract_counts(
    con: duckdb.DuckDBPyConnection, run_id: str, source: str, counts: dict[str, StreamCounts]
) -> None:
    """Write this run's extract reconciliation into ``ops.stream_counts`` (replacing a retry's rows).

    Later stages complete the rows: :func:`quarantine_dangling` adds to ``quarantined`` and
    :func:`record_upserts` fills ``inserted``/``updated``/``unchanged``, so that once loaded
    ``read = inserted + updated + unchanged + skipped + quarantined`` for every stream.
    """
    rows = [
        {
            "run_id": run_id,
            "source": source,
            "stream": stream,
            "read": counts[stream].read,
            "skipped": counts[stream].skipped,
            "quarantined": counts[stream].quarantined,
            "skip_rules": json.dumps(counts[stream].skip_rules, sort_keys=True),
        }
        for stream in STREAMS
        if stream in counts
    ]
    df = pl.DataFrame(rows)  # noqa: F841
    con.execute("delete from ops.stream_counts where run_id = ?", [run_id])
    con.execute("insert into ops.stream_counts by name select * from df")


def record_upserts(con: duckdb.DuckDBPyConnection, run_id: str, upserts: dict[str, UpsertCounts]) -> None:
    """Fill ``inserted``/``updated``/``unchanged`` of this run's ``ops.stream_counts`` rows."""
    for stream, u in upserts.items():
        con.execute(
            "update ops.stream_counts set inserted = ?, updated = ?, unchanged = ? where run_id = ? and stream = ?",
            [u.inserted, u.updated, u.unchanged, run_id, stream],
        )
