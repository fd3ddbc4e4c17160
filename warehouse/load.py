"""Landing, reference checks and upserts: how an :class:`~warehouse.canonical.Extract` reaches staging.

The three stages, each idempotent for a ``run_id``:

1. :func:`land` writes the extract's frames into the ``raw.*`` landing tables (the run's
   previous batch, if any, is replaced), its quarantine counts into ``raw.quarantine_counts``
   and its stored bad records (a bounded sample: :class:`~warehouse.canonical.QuarantineLog`)
   into ``raw.quarantine``, and stages the connector's bookkeeping
   (:meth:`~warehouse.canonical.Extract.stage_bookkeeping`).
2. :func:`quarantine_implausible` moves batch records dated before the floor or events dated
   before their content to the quarantine; then :func:`quarantine_dangling` moves records
   whose references resolve neither in staging nor in the batch itself (e.g. a vote on a
   deleted post), and with them, cascading, everything depending on a quarantined item
   (``parent_quarantined``), so one bad record never leaves a reference dangling.
3. :func:`upsert_batch` upserts the batch into ``staging.*`` by natural key in one
   transaction, touching only rows whose content changed, so a re-run changes nothing; the
   staged bookkeeping commits in the same transaction.

No connector is imported here: the bookkeeping contract is in :mod:`warehouse.canonical`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl

from warehouse.canonical import NATURAL_KEYS, SCHEMAS, STREAMS, Extract, StreamCounts
from warehouse.db import frame, one
from warehouse.watermarks import advance_watermarks, record_loaded_files

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

    Rows a connector handed over on disk (:attr:`~warehouse.canonical.Extract.spilled`) are
    inserted from their Parquet file by DuckDB, never through Python objects. Runs in one
    transaction, which also stages the connector's bookkeeping
    (``extract.stage_bookkeeping``: files read, source watermarks reached). Re-landing the same
    ``run_id`` (an Airflow retry) replaces its batch and its ``raw.quarantine_counts`` rows
    (:meth:`~warehouse.canonical.Extract.quarantine_summary`: every bad record counted);
    stored quarantine rows are keyed by (source, stream, fingerprint, reason), so the same bad
    record is stored once however often it is read, and inserted in chunks of
    :data:`QUARANTINE_CHUNK_ROWS`.

    Returns:
        Rows landed per stream, plus ``"quarantine"``: the bad records of this extract (counted,
        stored or not).
    """
    from warehouse.privacy import apply_tombstones

    # Erased users stay erased: their records are dropped or redacted as at erasure (skip rule
    # "erased user (tombstone)", so the counts still reconcile). Idempotent on a retry.
    apply_tombstones(con, extract)
    landed: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for stream in STREAMS:
            df = extract.frame(stream).with_columns(pl.lit(run_id).alias("run_id"))
            con.execute(f"delete from raw.{stream} where run_id = ?", [run_id])
            spill = extract.spilled.get(stream)
            # Never an empty insert before the spill's: DuckDB 2.0 then loses a later insert of a
            # row group or more in the same transaction (count(*) has them, scans do not).
            if df.height or spill is None:
                con.execute(f"insert into raw.{stream} by name select * from df")
            if spill is not None:  # rows on disk: DuckDB streams them from the Parquet file
                con.execute(
                    f"insert into raw.{stream} by name select {', '.join(_cols(stream))}, ?::varchar as run_id "
                    "from read_parquet(?)",
                    [run_id, str(spill.path)],
                )
            landed[stream] = extract.height(stream)
        landed["quarantine"] = _land_quarantine(con, extract, run_id)
        extract.stage_bookkeeping(con, run_id)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    log.info("landed run %s: %s", run_id, landed)
    return landed


#: Stored quarantine rows inserted per statement by :func:`land` (payloads are at most
#: ``PULSE_QUARANTINE_PAYLOAD_BYTES`` each, so a chunk stays a few hundred MiB at worst).
QUARANTINE_CHUNK_ROWS = 2_000


def _land_quarantine(con: duckdb.DuckDBPyConnection, extract: Extract, run_id: str) -> int:
    """Record the extract's quarantine counts for ``run_id`` and insert its stored rows not yet recorded.

    Returns:
        Records quarantined (the counts, not the stored rows).
    """
    counts = extract.quarantine_summary().with_columns(pl.lit(run_id).alias("run_id"))
    con.execute("delete from raw.quarantine_counts where run_id = ?", [run_id])
    con.execute("insert into raw.quarantine_counts by name select * from counts")
    q = extract.quarantine.unique(subset=["source", "stream", "fingerprint", "reason"], keep="first")
    for start in range(0, q.height, QUARANTINE_CHUNK_ROWS):
        chunk = q.slice(start, QUARANTINE_CHUNK_ROWS).with_columns(pl.lit(run_id).alias("first_run_id"))  # noqa: F841
        con.execute(
            "insert into raw.quarantine by name select * from chunk "
            "on conflict (source, stream, fingerprint, reason) do nothing"
        )
    return int(counts["records"].sum())


#: Default of ``PULSE_TIMESTAMP_FLOOR``: nothing in an online community is dated before it.
#: It lies after the sentinel dates that broken exports produce (0001-01-01, 1900-01-01, the
#: Unix epoch 1970-01-01 and its time-zone-shifted 1969-12-31, the DOS/ZIP epoch 1980-01-01)
#: and before the Web (1991), so the archives of real forums are later (Stack Exchange started
#: in 2008, Discourse in 2013). A source imported from an older archive lowers it.
DEFAULT_TIMESTAMP_FLOOR = datetime(1990, 1, 1)
#: Default of ``PULSE_EVENT_BEFORE_CONTENT_TOLERANCE``: how much earlier than its content an
#: event may be dated. One day, because Stack Exchange truncates vote dates to the UTC day (a
#: vote on a post from 20:26 is dated 00:00 the same day).
DEFAULT_EVENT_TOLERANCE = timedelta(days=1)

_KEYS = {"users": "user_id", "content": "content_id", "engagement_events": "event_id"}


def _move_to_quarantine(
    con: duckdb.DuckDBPyConnection, run_id: str, stream: str, reason: str, bad: pl.DataFrame
) -> int:
    """Move the batch rows ``bad`` (canonical columns plus ``reason`` and ``detail``) of ``stream`` to the quarantine.

    Call inside a transaction: inserts them into ``raw.quarantine`` (payload = the canonical
    record as JSON; batch records are few and already held, so all are stored), deletes them
    from ``raw.<stream>`` and adds them to the run's ``ops.stream_counts.quarantined`` and
    ``raw.quarantine_counts``, so a retried validate never counts a record twice.

    Returns:
        Rows moved.
    """
    if bad.height == 0:
        return 0
    cols, key = _cols(stream), _KEYS[stream]
    q = bad.select(  # noqa: F841
        pl.col("source"),
        pl.lit(stream).alias("stream"),
        pl.col(key).alias("record_key"),
        pl.col("reason") if "reason" in bad.columns else pl.lit(reason).alias("reason"),
        pl.col("detail"),
        pl.struct(cols).map_elements(lambda s: json.dumps(s, default=str), return_dtype=pl.String).alias("payload"),
    ).with_columns(
        pl.col("payload").map_elements(_sha256, return_dtype=pl.String).alias("fingerprint"),
        pl.lit(run_id).alias("first_run_id"),
    )
    con.execute(
        "insert into raw.quarantine by name select * from q on conflict (source, stream, fingerprint, reason) do nothing"
    )
    con.execute(
        f"delete from raw.{stream} b where b.run_id = ? and exists "
        f"(select 1 from q where q.source = b.source and q.record_key = b.{key})",
        [run_id],
    )
    con.execute(
        "update ops.stream_counts set quarantined = quarantined + ? where run_id = ? and stream = ?",
        [bad.height, run_id, stream],
    )
    con.execute(
        """insert into raw.quarantine_counts
           select ?, source, stream, reason, count(*), count(*) from q group by all
           on conflict do update set records = records + excluded.records, stored = stored + excluded.stored""",
        [run_id],
    )
    return bad.height


def quarantine_implausible(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    floor: datetime = DEFAULT_TIMESTAMP_FLOOR,
    event_tolerance: timedelta = DEFAULT_EVENT_TOLERANCE,
) -> dict[str, int]:
    """Move batch records with implausible dates to ``raw.quarantine`` (reason ``implausible_timestamp``).

    Implausible: a user's ``created_at``, an item's ``created_at`` or ``edited_at`` or an
    event's ``occurred_at`` before ``floor`` (``PULSE_TIMESTAMP_FLOOR``); an event dated more
    than ``event_tolerance`` (``PULSE_EVENT_BEFORE_CONTENT_TOLERANCE``) before the creation of
    the item it refers to (the batch's version of the item, else staging's), hence before the
    source's first content; an item whose new ``created_at`` falls more than ``event_tolerance``
    after an event already in staging on it (the item's re-read moved its creation after its
    own votes: the item is quarantined, staging keeps its earlier version, so no loaded event
    ever precedes its item). Items are judged first, then events against the surviving
    version. Users are held to the floor only: members sign up before they post, and an
    incremental load reads old members long after the first content it holds. Run it before
    :func:`quarantine_dangling`, which quarantines what depends on these records.

    Returns:
        Records quarantined per stream.
    """
    floor_text = f"the floor {floor:%Y-%m-%d} (PULSE_TIMESTAMP_FLOOR)"
    checks = {
        "users": f"""
            select b.*, 'created_at ' || b.created_at::varchar || ' is before {floor_text}' as detail
            from raw.users b where b.run_id = $run and b.created_at < $floor""",
        "content": f"""
            select b.* exclude (first_event),
                   case when b.created_at < $floor then 'created_at ' || b.created_at::varchar || ' is before {floor_text}'
                        when b.edited_at < $floor then 'edited_at ' || b.edited_at::varchar || ' is before {floor_text}'
                        else 'created_at ' || b.created_at::varchar || ' is more than ' || $tol_text
                             || ' after the first event already loaded on it (' || b.first_event::varchar
                             || '; PULSE_EVENT_BEFORE_CONTENT_TOLERANCE)' end as detail
            from (
                select b.*, (select min(e.occurred_at) from staging.engagement_events e
                             where e.source = b.source and e.content_id = b.content_id) as first_event
                from raw.content b where b.run_id = $run
            ) b
            where b.created_at < $floor or b.edited_at < $floor or b.first_event < b.created_at - $tol""",
        "engagement_events": f"""
            select b.*, case when b.occurred_at < $floor then 'occurred_at ' || b.occurred_at::varchar || ' is before {floor_text}'
                        else 'occurred_at ' || b.occurred_at::varchar || ' is more than ' || $tol_text || ' before the creation of content '
                             || b.content_id || ' (' || coalesce(r.created_at, s.created_at)::varchar
                             || '; PULSE_EVENT_BEFORE_CONTENT_TOLERANCE)' end as detail
            from raw.engagement_events b
            left join raw.content r on r.run_id = b.run_id and r.source = b.source and r.content_id = b.content_id
            left join staging.content s on s.source = b.source and s.content_id = b.content_id
            where b.run_id = $run
              and (b.occurred_at < $floor or b.occurred_at < coalesce(r.created_at, s.created_at) - $tol)""",
    }
    tol_text = f"{event_tolerance.total_seconds() / 86400:g} day(s)"
    moved: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for stream in ("content", "engagement_events", "users"):  # events are judged by the content that survives
            params = {"run": run_id, "floor": floor}
            if stream != "users":
                params.update(tol=event_tolerance, tol_text=tol_text)
            bad = frame(con, checks[stream], params)
            moved[stream] = _move_to_quarantine(con, run_id, stream, "implausible_timestamp", bad)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    if any(moved.values()):
        log.warning("run %s: quarantined implausible timestamps %s", run_id, moved)
    return moved


def quarantine_dangling(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """Move batch records with unresolvable references to ``raw.quarantine``, cascading.

    Checked: engagement events whose ``content_id``, and content whose ``parent_id`` or
    ``thread_id``, is in neither ``staging.content`` nor the batch. The reason is
    ``parent_quarantined`` when the referenced item is itself in ``raw.quarantine`` (e.g. a
    question with an unparsable date: its answers, the comments and votes on them), with a
    detail naming it (``parent content p1 is quarantined (bad_timestamp)``), else
    ``dangling_reference`` (a vote on a post deleted from the platform). A null ``thread_id``
    is never dangling (a comment on a post outside a Stack Exchange dump has none); a non-null
    one must resolve like ``parent_id``: a comment whose post was quarantined in this run for
    a made-up ``ParentId`` still exists in staging in its earlier version, but the comment's
    new ``thread_id`` came from the bad version and names a thread that exists nowhere.
    Repeated until nothing moves, so a whole thread under a quarantined root follows it in
    the same run and no reference in the batch dangles. A later interval that brings the
    referenced item does not resurrect the quarantined record (re-load the interval instead).

    Returns:
        Records quarantined per stream (both reasons).
    """
    by_parent = (("content", "parent_id"), ("engagement_events", "content_id"))
    moved = {"engagement_events": 0, "content": 0}
    con.execute("begin transaction")
    try:
        checks = by_parent
        while True:  # parents first, to a fixpoint, so a detail names the nearest quarantined item
            moved_now = 0
            for stream, ref in checks:
                label = "parent content " if ref != "thread_id" else "thread content "
                bad = frame(
                    con,
                    f"""
                    select b.*, case when qr.reason is null then 'dangling_reference' else 'parent_quarantined' end as reason,
                           case when qr.reason is null then '{ref} not found in staging.content or this batch: ' || b.{ref}
                                else '{label}' || b.{ref} || ' is quarantined (' || qr.reason || ')' end as detail
                    from raw.{stream} b
                    left join (
                        select source, record_key,
                               min(reason) filter (where reason <> 'parent_quarantined') as first_reason,
                               coalesce(first_reason, 'parent_quarantined') as reason
                        from raw.quarantine where stream = 'content' group by source, record_key
                    ) qr on qr.source = b.source and qr.record_key = b.{ref}
                    where b.run_id = ? and b.{ref} is not null
                      and not exists (select 1 from staging.content c
                                      where c.source = b.source and c.content_id = b.{ref})
                      and not exists (select 1 from raw.content r
                                      where r.run_id = b.run_id and r.source = b.source and r.content_id = b.{ref})
                    """,
                    [run_id],
                )
                n = _move_to_quarantine(con, run_id, stream, "dangling_reference", bad.drop("run_id"))
                moved[stream] += n
                moved_now += n
            if moved_now:
                checks = by_parent
            elif checks == by_parent:
                checks = (("content", "thread_id"),)
            else:
                break
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    if any(moved.values()):
        log.warning("run %s: quarantined dangling references and dependants of quarantined items %s", run_id, moved)
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
    column), so re-running an interval leaves staging byte-for-byte unchanged. The staged
    bookkeeping commits in the same transaction: the streams' and the source's watermarks
    (``ops.watermarks``, ``ops.source_watermarks``) advance and the landed files enter
    ``ops.loaded_files``.

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
            out[stream] = _upsert_stream(con, stream, run_id)
        advance_watermarks(con, run_id, now or datetime.now(UTC).replace(tzinfo=None))
        record_loaded_files(con, run_id, now or datetime.now(UTC).replace(tzinfo=None))  # ops.loaded_files
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    log.info("run %s upserted: %s", run_id, {k: vars(v) for k, v in out.items()})
    return out


def _upsert_stream(con: duckdb.DuckDBPyConnection, stream: str, run_id: str) -> UpsertCounts:
    """Upsert one stream of the run's batch (inside :func:`upsert_batch`'s transaction).

    The batch is matched with staging by natural key on staging's key columns only, and the
    matched rows are then read by row id (``rowid in (...)``, which DuckDB pushes into the
    scan): the cost follows the batch, not staging. A join on all columns (for the
    ``IS DISTINCT FROM`` count) and ``insert ... on conflict do update ... where`` each read
    every staging row: 1.4 s and 1.5 s for a day's 5 content rows on 100x history (383k
    items), against ~0.15 s in all this way (issue #17). New rows are inserted, changed ones
    updated in place; unchanged ones are not written.
    """
    keys = NATURAL_KEYS[stream]
    cols = _cols(stream)
    values = [c for c in cols if c not in keys]
    on = " and ".join(f"s.{k} = b.{k}" for k in keys)
    differs = " or ".join(f"s.{c} is distinct from b.{c}" for c in values)
    rowids = [
        r
        for (r,) in con.execute(
            f"select s.r from raw.{stream} b join (select rowid as r, {', '.join(keys)} from staging.{stream}) s "
            f"on {on} where b.run_id = ?",
            [run_id],
        ).fetchall()
    ]
    matched = f"(select * from staging.{stream} where rowid in (select unnest(?::bigint[])))"
    total, updated = one(
        con,
        f"select count(*), count(*) filter (where s.{keys[-1]} is not null and ({differs})) "
        f"from raw.{stream} b left join {matched} s on {on} where b.run_id = ?",
        [rowids, run_id],
    )
    inserted = total - len(rowids)
    # Insert before updating: an update may move a row to a new row id (DuckDB rewrites rows whose
    # indexed columns change), after which the row-id match below would miss it and insert a duplicate.
    if inserted:
        con.execute(
            f"insert into staging.{stream} by name select {', '.join(cols)} from raw.{stream} b "
            f"where b.run_id = ? and not exists (select 1 from {matched} s where {on})",
            [run_id, rowids],
        )
    if updated:
        con.execute(
            f"update staging.{stream} s set {', '.join(f'{c} = b.{c}' for c in values)} "
            f"from (select * from raw.{stream} where run_id = ?) b "
            f"where s.rowid in (select unnest(?::bigint[])) and {on} and ({differs})",
            [run_id, rowids],
        )
    return UpsertCounts(inserted, updated, total - inserted - updated)


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
