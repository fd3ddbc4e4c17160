"""The pipeline's steps, called by both the ``pulse`` CLI and the Airflow DAG.

``extract → validate → load → ingest_decisions → score → transform → validate_marts → publish``

Each step opens the warehouse, does one thing for one ``run_id``, records its timing in
``ops.step_log`` and returns a small JSON-serialisable dict (an Airflow XCom). Every step is
idempotent for its run_id: a retry replaces what the failed attempt wrote. A step that
fails marks the run ``failed`` in ``ops.runs`` with the error, and nothing is published.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl
from pydantic import SecretStr

from pulse.settings import Settings
from warehouse.canonical import STREAMS, Extract
from warehouse.db import frame, one, open_warehouse

log = logging.getLogger("pulse")

SourceKind = Literal["demo", "stackexchange", "events", "postgres"]


class PipelineError(RuntimeError):
    """A step refused to continue (quality gate, quarantine limit); the message says why."""


@dataclass(frozen=True)
class SourceSpec:
    """Which source a run reads.

    Attributes:
        kind: ``demo`` (the built-in synthetic community) or ``stackexchange`` (a data dump folder).
        path: the dump folder, for ``stackexchange``.
        timezone: the community's IANA timezone (default: the source's own, else settings).
        seed: the demo generator's seed.
        source_name: for ``events`` (engagement-event export files under ``path``, a folder or a
            glob): the canonical source the events belong to, e.g. ``stackexchange:beer``;
            default ``events:<folder name>`` (see :mod:`warehouse.sources.events`).
        dsn, preset, mapping: for ``postgres`` (a live platform's database, e.g. a Discourse read
            replica): the DSN (a secret: never printed; ``repr`` leaves it out), and either a
            built-in mapping preset (``discourse``) or a mapping file (see
            :mod:`warehouse.sources.postgres`). ``postgres_options``: keyword arguments for
            :func:`warehouse.sources.postgres.extract_postgres` (``page_size``,
            ``statement_timeout_s``, ``max_attempts``, ``settle_s``), see :func:`postgres_options`.
    """

    kind: SourceKind
    path: Path | None = None
    timezone: str | None = None
    seed: int = 7
    source_name: str | None = None
    dsn: SecretStr | None = field(default=None, repr=False)
    preset: str | None = None
    mapping: Path | None = None
    postgres_options: tuple[tuple[str, Any], ...] = ()


def postgres_options(settings: Settings) -> tuple[tuple[str, Any], ...]:
    """The PostgreSQL source's reading options from ``settings`` (``PULSE_POSTGRES_*``), for :class:`SourceSpec`."""
    return (
        ("page_size", settings.postgres_page_size),
        ("statement_timeout_s", settings.postgres_statement_timeout),
        ("max_attempts", settings.postgres_max_attempts),
        ("settle_s", settings.postgres_settle_seconds),
    )


def utcnow() -> datetime:
    """The current time as naive UTC (the warehouse's timestamp convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(trigger: str = "cli") -> str:
    """A unique run id, e.g. ``cli__2026-11-22T17:05:03__3f2a9c``."""
    return f"{trigger}__{utcnow():%Y-%m-%dT%H:%M:%S}__{uuid.uuid4().hex[:6]}"


def extract_source(
    spec: SourceSpec,
    since: datetime | None,
    until: datetime | None,
    default_tz: str,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Extract:
    """Run the connector named by ``spec`` for the data interval ``[since, until)`` (naive UTC).

    ``con`` (the open warehouse) lets ``events`` skip files already in ``ops.loaded_files``;
    without it every file is read.

    Raises:
        ValueError: for an unknown kind or a missing ``path``.
        FileNotFoundError: when the dump folder or a required file is missing.
    """
    if spec.kind == "demo":
        from warehouse.sources.demo import generate_demo

        kwargs: dict[str, Any] = {"seed": spec.seed, "since": since, "until": until}
        if spec.timezone:
            kwargs["timezone"] = spec.timezone
        return generate_demo(**kwargs)
    if spec.kind == "stackexchange":
        from warehouse.sources.stackexchange import extract_stackexchange

        if spec.path is None:
            raise ValueError("the stackexchange source needs --path DIR (a Stack Exchange data dump folder)")
        ex = extract_stackexchange(Path(spec.path), since=since, until=until, now=utcnow())
        ex.timezone = spec.timezone or default_tz
        return ex
    if spec.kind == "events":
        from warehouse.sources.events import event_source_name, extract_events, loaded_files

        if spec.path is None:
            raise ValueError("the events source needs --path DIR_OR_GLOB (event export files: *.jsonl, *.parquet)")
        name = event_source_name(spec.path, spec.source_name)
        ledger = loaded_files(con, name) if con is not None else {}
        ex = extract_events(spec.path, source=name, loaded_files=ledger, since=since, until=until, now=utcnow())
        ex.timezone = spec.timezone or default_tz
        return ex
    if spec.kind == "postgres":
        from warehouse.sources.postgres import extract_postgres, load_mapping, source_name
        from warehouse.watermarks import get_source_watermarks

        if spec.dsn is None or not spec.dsn.get_secret_value():
            raise ValueError(
                "the postgres source needs a DSN: --dsn URL or PULSE_POSTGRES_DSN (Airflow: connection pulse_platform)"
            )
        dsn = spec.dsn.get_secret_value()
        mapping = load_mapping(spec.mapping, preset=None if spec.mapping else (spec.preset or "discourse"))
        marks = get_source_watermarks(con, source_name(mapping, dsn)) if con is not None else {}
        ex = extract_postgres(
            dsn, mapping, watermarks=marks, since=since, until=until, now=utcnow(), **dict(spec.postgres_options)
        )
        ex.timezone = spec.timezone or mapping.timezone or default_tz
        return ex
    raise ValueError(f"unknown source {spec.kind!r}; valid: demo, stackexchange, events, postgres")


@contextmanager
def _step(settings: Settings, run_id: str, name: str) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, Any]]]:
    """Open the warehouse for one step; time it into ``ops.step_log``; mark the run failed on error."""
    started = utcnow()
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    with open_warehouse(settings.warehouse) as con:
        try:
            yield con, info
        except BaseException as exc:
            _mark_failed(con, run_id, f"{name}: {type(exc).__name__}: {exc}")
            raise
        elapsed = time.perf_counter() - t0
        con.execute(
            "insert or replace into ops.step_log values (?, ?, ?, ?, ?, ?)",
            [run_id, name, started, elapsed, info.get("rows"), json.dumps(info, default=str)],
        )
        log.info("step %s done in %.2fs: %s", name, elapsed, info)


def _mark_failed(con: duckdb.DuckDBPyConnection, run_id: str, error: str) -> None:
    try:
        con.execute("rollback")
    except duckdb.Error:
        pass  # no transaction was open
    con.execute(
        "update ops.runs set status = 'failed', error = ?, finished_at = ? where run_id = ?",
        [error[:4000], utcnow(), run_id],
    )


def extract(
    settings: Settings,
    run_id: str,
    spec: SourceSpec,
    since: datetime | None = None,
    until: datetime | None = None,
    trigger: str = "cli",
) -> dict[str, Any]:
    """Read one data interval from the source into the landing tables ``raw.*``.

    Registers the run in ``ops.runs`` (status ``running``) and the source in ``ops.sources``;
    malformed records go to ``raw.quarantine`` with their reason.

    Returns:
        ``{"source", "rows", "read", "quarantined"}`` (counts over all streams).
    """
    from warehouse.load import land, record_extract_counts

    with open_warehouse(settings.warehouse) as con:
        # One writer at a time (the pool, the DuckDB file lock): a run still 'running' when
        # another starts was killed mid-way (SIGKILL, OOM, lost worker). Its committed steps
        # stand; its uncommitted work was rolled back by DuckDB's WAL replay on open.
        con.execute(
            "update ops.runs set status = 'abandoned', finished_at = ?, error = 'process ended without finishing; "
            "superseded by run ' || ? where status = 'running' and run_id <> ?",
            [utcnow(), run_id, run_id],
        )
        con.execute(
            "insert or replace into ops.runs (run_id, source, interval_start, interval_end, started_at, status, trigger) "
            "values (?, ?, ?, ?, ?, 'running', ?)",
            [run_id, spec.kind, since, until, utcnow(), trigger],
        )
    with _step(settings, run_id, "extract") as (con, info):
        ex = extract_source(spec, since, until, settings.timezone, con=con)
        for stream, c in ex.counts.items():
            if not c.reconciles():
                raise PipelineError(f"{stream}: connector counts do not reconcile: {c}")
        con.execute("update ops.runs set source = ? where run_id = ?", [ex.source, run_id])
        con.execute(  # event exports join another connector's source: keep its row (timezone, description)
            f"insert or {'ignore' if spec.kind == 'events' else 'replace'} into ops.sources values (?, ?, ?, ?)",
            [
                ex.source,
                ex.synthetic,
                ex.timezone,
                "Synthetic demo community (generated, not real people)"
                if ex.synthetic
                else f"{spec.kind} {spec.path or spec.mapping or spec.preset or ''}".strip(),
            ],
        )
        landed = land(con, ex, run_id)  # stages the connector's bookkeeping too (postgres: source watermarks)
        record_extract_counts(con, run_id, ex.source, ex.counts)
        info.update(
            source=ex.source,
            synthetic=ex.synthetic,
            rows=sum(landed[s] for s in STREAMS),
            read=sum(c.read for c in ex.counts.values()),
            quarantined=landed["quarantine"],
        )
        if hasattr(ex, "skipped_files"):  # event exports (warehouse.sources.events.EventExtract)
            info.update(
                files_read=ex.files.height,
                files_already_loaded=len(ex.skipped_files),
                files_left_for_later=len(ex.late_files),
            )
    return info


def validate(settings: Settings, run_id: str) -> dict[str, Any]:
    """Check the landed batch before it reaches staging.

    Quarantines implausible timestamps (before ``PULSE_TIMESTAMP_FLOOR``, events before their
    content: ``implausible_timestamp``), then dangling references and, cascading, whatever
    depends on a quarantined item (``parent_quarantined``), so one bad record never fails an
    expectation (:mod:`warehouse.load`). Enforces the quarantine limit
    (``settings.quarantine_max_share``, from two quarantined records on): the gate for a batch
    broken as a whole, never for one bad record. Then runs the
    staging expectation suite on the batch and stores the results in ``quality.validation_results``.

    Raises:
        PipelineError: when more than one record and more than the limit's share of the
            records read were quarantined.
        warehouse.quality.QualityGateError: when a critical expectation fails (names it and
            how many rows failed).
    """
    from warehouse.load import batch_frame, quarantine_dangling, quarantine_implausible
    from warehouse.quality import STAGING_SUITE, persist
    from warehouse.quality import validate as run_suite

    with _step(settings, run_id, "validate") as (con, info):
        implausible = quarantine_implausible(con, run_id, **_plausibility(settings))
        dangling = quarantine_dangling(con, run_id)
        read, quarantined = one(
            con,
            "select coalesce(sum(read), 0), coalesce(sum(quarantined), 0) from ops.stream_counts where run_id = ?",
            [run_id],
        )
        share = quarantined / read if read else 0.0
        # One bad record never stops a run, even when it is the whole batch (an incremental
        # run reading one changed row): the failed run would not advance the watermarks, so
        # the same row would stop every later run.
        if quarantined > 1 and share > settings.quarantine_max_share:
            reasons = con.execute(  # counted records, not the stored payload samples
                "select stream || '/' || reason || ' ' || format('{:,}', sum(records)) from raw.quarantine_counts "
                "where run_id = ? group by stream, reason order by sum(records) desc, 1 limit 3",
                [run_id],
            ).fetchall()
            raise PipelineError(
                f"{quarantined:,} of {read:,} records read ({share:.1%}) were quarantined, above the limit "
                f"of {settings.quarantine_max_share:.1%} (PULSE_QUARANTINE_MAX_SHARE); top reasons: "
                f"{', '.join(r for (r,) in reasons)} (raw.quarantine_counts; payload samples in raw.quarantine)"
            )
        frames = {f"staging.{s}": batch_frame(con, s, run_id) for s in STREAMS}
        frames["staging.engagement_events"] = _with_content_exists(con, frames["staging.engagement_events"], run_id)
        result = run_suite(
            frames, STAGING_SUITE, suite="staging", run_id=run_id, now=utcnow(), docs_dir=settings.data_docs_dir
        )
        persist(con, result)
        info.update(
            implausible=implausible,
            dangling=dangling,
            quarantine_share=round(share, 4),
            passed=len(result.passed),
            failed=len(result.failed),
        )
        result.raise_for_critical()
    return info


def _plausibility(settings: Settings) -> dict[str, Any]:
    """The floor and the event tolerance of :func:`warehouse.load.quarantine_implausible`.

    ``settings.timestamp_floor`` (``PULSE_TIMESTAMP_FLOOR``, a date or datetime) and
    ``settings.event_before_content_tolerance`` (``PULSE_EVENT_BEFORE_CONTENT_TOLERANCE``, a
    timedelta) when the settings declare them, else the defaults of :mod:`warehouse.load`.
    """
    from warehouse.load import DEFAULT_EVENT_TOLERANCE, DEFAULT_TIMESTAMP_FLOOR

    floor = getattr(settings, "timestamp_floor", None) or DEFAULT_TIMESTAMP_FLOOR
    if not isinstance(floor, datetime):
        floor = datetime.combine(floor, datetime.min.time())
    tolerance = getattr(settings, "event_before_content_tolerance", None)
    return {"floor": floor, "event_tolerance": DEFAULT_EVENT_TOLERANCE if tolerance is None else tolerance}


def _with_content_exists(con: duckdb.DuckDBPyConnection, events: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """Add ``content_exists``: the event's content is in staging or in this batch."""
    flags = frame(
        con,
        """
        select b.event_id, (exists (select 1 from staging.content c where c.source = b.source and c.content_id = b.content_id)
                or exists (select 1 from raw.content r where r.run_id = b.run_id and r.source = b.source
                           and r.content_id = b.content_id)) as content_exists
        from raw.engagement_events b where b.run_id = ?
        """,
        [run_id],
    )
    return events.join(flags, on="event_id", how="left")


def load(settings: Settings, run_id: str) -> dict[str, Any]:
    """Upsert the validated batch into ``staging.*`` (one transaction) and record the counts and the marts' change set."""
    from transforms.incremental import record_changes
    from warehouse.load import record_upserts, upsert_batch

    with _step(settings, run_id, "load") as (con, info):
        # the incremental marts' change set: the batch's keys as staging held them before the
        # upsert (edits that move an item, deletions) and after it (new and late rows)
        changes = record_changes(con, run_id)
        upserts = upsert_batch(con, run_id, now=utcnow())
        info["mart_changes"] = changes + record_changes(con, run_id)
        record_upserts(con, run_id, upserts)
        info.update({s: vars(u) for s, u in upserts.items()})
        info["rows"] = sum(u.inserted + u.updated for u in upserts.values())
        from warehouse.privacy import apply_retention  # privacy: retention of raw bodies

        info["retention_redacted"] = apply_retention(con, settings.raw_body_retention_days, now=utcnow())
    return info


def ingest_decisions(settings: Settings, run_id: str) -> dict[str, Any]:
    """Copy moderators' decisions from the review store into ``moderation.decisions``.

    Upsert by ``decision_id``: new decisions are inserted (stamped with this run), and rows
    whose ``note`` or ``scores_json`` changed in the store (blanked by a privacy erasure) are
    updated, so erasures propagate. Reads the whole log each run (moderators' decisions are
    thousands, not millions); re-running changes nothing. A store that does not exist yet (no
    SQLite file, no tables) ingests nothing.

    Returns:
        ``{"store", "in_store", "inserted", "updated", "rows"}``.
    """
    from moderation.review_store import DECISION_COLUMNS, ReviewStore

    with _step(settings, run_id, "ingest_decisions") as (con, info):
        store = ReviewStore.from_settings(settings)
        try:
            decisions = store.decisions() if store.has_schema() else None
        finally:
            store.dispose()
        info.update(store=store.url_redacted, in_store=0, inserted=0, updated=0, rows=0)
        if decisions is not None and decisions.height:
            con.register("incoming", decisions.select(DECISION_COLUMNS))
            con.execute("begin transaction")
            try:
                inserted = one(
                    con,
                    "select count(*) from incoming d where not exists "
                    "(select 1 from moderation.decisions m where m.decision_id = d.decision_id)",
                )[0]
                updated = one(
                    con,
                    "select count(*) from incoming d join moderation.decisions m using (decision_id) "
                    "where m.note is distinct from d.note or m.scores_json is distinct from d.scores_json",
                )[0]
                con.execute(
                    "insert into moderation.decisions by name select d.*, ? as ingested_run_id from incoming d "
                    "where not exists (select 1 from moderation.decisions m where m.decision_id = d.decision_id)",
                    [run_id],
                )
                con.execute(
                    "update moderation.decisions m set note = d.note, scores_json = d.scores_json, ingested_run_id = ? "
                    "from incoming d where m.decision_id = d.decision_id "
                    "and (m.note is distinct from d.note or m.scores_json is distinct from d.scores_json)",
                    [run_id],
                )
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
            finally:
                con.unregister("incoming")
            from transforms.incremental import record_decisions

            record_decisions(con, run_id)  # a removal takes an item out of the marts
            info.update(
                in_store=decisions.height, inserted=int(inserted), updated=int(updated), rows=int(inserted + updated)
            )
    return info


def _scoring_folder(settings: Settings, run_id: str) -> Path:
    """The run's scoring folder, shared by every worker: ``<warehouse folder>/scoring/<run_id>``."""
    from moderation.partitions import safe_name

    return Path(settings.warehouse).resolve().parent / "scoring" / safe_name(run_id)


@functools.lru_cache(maxsize=2)
def _cached_scorer(spec: str, options: tuple[tuple[str, Any], ...], community_stamp: float | None) -> Any:
    """``community_stamp`` only keys the cache (see :func:`_scorer`)."""
    from moderation.scorers import load_scorer

    return load_scorer(spec, **dict(options))


def _scorer(settings: Settings) -> Any:
    """The configured scorer, loaded once per process (every partition a worker process scores
    reuses it) and again when a community model is promoted: the cache is keyed by the promoted
    checkpoint's modification time, so long-lived processes (Celery workers, the API) pick a new
    model up at their next run without a restart."""
    from moderation.scorers import CHECKPOINT_FILE, community_model_dir

    ckpt = community_model_dir(settings.models_dir) / CHECKPOINT_FILE
    stamp = ckpt.stat().st_mtime if ckpt.is_file() else None
    return _cached_scorer(settings.scorer, tuple(sorted(settings.scorer_options().items())), stamp)


def _loaded_batch(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Whether ``run_id`` went through the load step and no privacy request (an erasure rewrites
    texts in staging, outside any batch) ran since the last successful run: then the batch
    (``raw.*``) says what changed and scoring and flags touch only that; otherwise (a step run on
    its own, changes made outside a run) they sweep all of staging. The marts detect erasures
    themselves (their build fingerprint)."""
    return bool(
        one(
            con,
            "select exists (select 1 from ops.step_log where run_id = ? and step = 'load') "
            "and not exists (select 1 from ops.privacy_requests where kind <> 'export' and requested_at >= "
            "coalesce((select max(started_at) from ops.runs where status = 'success'), timestamp '-infinity'))",
            [run_id],
        )[0]
    )


def _batch(settings: Settings, scorer: Any) -> int:
    # Texts per scorer call: the lexical model scores ~50k texts/s, so small calls would dominate;
    # the Detoxify engine batches by its token budget inside a call.
    return 8192 if scorer.backend == "lexical" else max(settings.score_batch_size, 256)


def _plan(
    settings: Settings, run_id: str, con: duckdb.DuckDBPyConnection, info: dict[str, Any], partition_rows: int | None
) -> Any:
    from moderation.partitions import PARTITION_ROWS, write_partitions
    from moderation.scoring import MAX_SCORED_CHARS, pending_texts, scored_texts

    scorer = _scorer(settings)
    # the run's batch (all of staging for a new model, or when this run loaded nothing itself)
    pending = pending_texts(con, scorer.model_id, batch_only=_loaded_batch(con, run_id))
    plan = write_partitions(
        pending, _scoring_folder(settings, run_id), scorer, max_rows=partition_rows or PARTITION_ROWS
    )
    if plan.truncated:
        log.warning("%d texts longer than %d characters were truncated for scoring", plan.truncated, MAX_SCORED_CHARS)
    info.update(
        model_id=plan.model_id,
        partitions=list(plan.partitions),
        pending=plan.texts,
        already_scored=scored_texts(con, plan.model_id),
        truncated_for_scoring=plan.truncated,
        rows=plan.texts,
    )
    return plan


def _merge(settings: Settings, run_id: str, con: duckdb.DuckDBPyConnection, info: dict[str, Any]) -> None:
    from moderation.language import set_language_policy, supported_languages
    from moderation.partitions import merge_results, read_plan, remove_folder
    from moderation.scoring import batch_rowids, detect_languages_pending, refresh_flags

    folder = _scoring_folder(settings, run_id)
    plan = read_plan(folder)
    scored = merge_results(con, folder, plan)
    batch_only: bool | list[int] = batch_rowids(con) if _loaded_batch(con, run_id) else False
    flagged, held = refresh_flags(
        con, plan.model_id, settings.thresholds, settings.hold_thresholds, batch_only=batch_only
    )
    # Language routing: detect new texts' language once; record what the model reads.
    languages_detected = detect_languages_pending(con, batch_only=batch_only)
    ckpt_dir = Path(settings.scorer.split(":", 1)[1]) if settings.scorer.startswith("checkpoint:") else None
    set_language_policy(
        con,
        plan.model_id,
        supported_languages(plan.model_id, checkpoint_dir=ckpt_dir),
        settings.language_min_confidence,
    )
    con.execute(
        "update ops.runs set scorer_model_id = ?, scorer_is_fallback = ?, scorer_note = ? where run_id = ?",
        [plan.model_id, plan.is_fallback, plan.fallback_reason, run_id],
    )
    remove_folder(folder)
    info.update(
        model_id=plan.model_id,
        is_fallback=plan.is_fallback,
        fallback_reason=plan.fallback_reason,
        partitions=len(plan.partitions),
        scored=scored,
        flagged=flagged,
        held=held,
        languages_detected=languages_detected,
        rows=scored,
    )


def plan_scoring(settings: Settings, run_id: str, *, partition_rows: int | None = None) -> dict[str, Any]:
    """Write the texts no score exists for (with the configured model) as partitions; see :mod:`moderation.partitions`.

    Returns:
        The step's dict; ``partitions`` lists the partition file names (what the DAG maps
        ``score_partition`` over; empty when everything is scored).
    """
    with _step(settings, run_id, "plan_scoring") as (con, info):
        _plan(settings, run_id, con, info, partition_rows)
    return info


def score_partition(settings: Settings, run_id: str, partition: str, *, delay_s: float = 0.0) -> dict[str, Any]:
    """Score one partition of the run's plan and write its result; never opens the warehouse.

    ``delay_s`` (fault drills only) waits that long after loading the model, before scoring.

    Returns:
        ``{"partition", "rows", "seconds", "reused"}`` (``reused``: a previous attempt's result was kept).
    """
    from moderation.partitions import score_partition as score_one

    scorer = _scorer(settings)
    if delay_s:
        time.sleep(delay_s)
    return {
        "partition": partition,
        **score_one(_scoring_folder(settings, run_id), partition, scorer, batch_size=_batch(settings, scorer)),
    }


def merge_scores(settings: Settings, run_id: str) -> dict[str, Any]:
    """Insert every partition's scores (one transaction), rebuild the flags, detect languages, record the scorer.

    Raises:
        FileNotFoundError: a partition of the plan has no result yet (nothing merged).
    """
    with _step(settings, run_id, "merge_scores") as (con, info):
        _merge(settings, run_id, con, info)
    return info


def score(
    settings: Settings, run_id: str, *, progress: bool = False, partition_rows: int | None = None
) -> dict[str, Any]:
    """Score new or edited texts with the configured model and rebuild the flags, in this process.

    The same plan as the DAG's ``plan_scoring → score_partition (mapped) → merge_scores``, run
    here one partition after another. The scorer (``settings.scorer``; ``auto`` falls back to the
    lexical model when no Detoxify weights are available, loudly) is recorded on the run.
    """
    with _step(settings, run_id, "score") as (con, info):
        plan = _plan(settings, run_id, con, info, partition_rows)
        partitions: Any = plan.partitions
        if progress and partitions:
            from rich.progress import track

            partitions = track(partitions, description=f"scoring with {plan.model_id}")
        for partition in partitions:
            score_partition(settings, run_id, partition)
        already = info["already_scored"]
        _merge(settings, run_id, con, info)
        info["already_scored"] = already
    return info


def transform(settings: Settings, run_id: str) -> dict[str, Any]:
    """Update the marts from staging and moderation (all or none): only what the recorded changes touch, or a full rebuild (:func:`transforms.runner.run_marts`)."""
    from transforms.runner import run_marts

    with _step(settings, run_id, "transform") as (con, info):
        build: dict[str, Any] = {}
        counts = run_marts(
            con,
            repeat_offender_window_days=settings.repeat_offender_window_days,
            incremental=_loaded_batch(con, run_id),
            info=build,
        )
        info.update(marts=counts, rows=sum(counts.values()), **build)
    return info


def validate_marts(settings: Settings, run_id: str) -> dict[str, Any]:
    """Run the marts expectation suite; a critical failure stops the run before publishing.

    The suite is the marts' column checks plus one uniqueness check per mart on the grain its
    model declares (``transforms.runner.MART_GRAINS``).

    Raises:
        warehouse.quality.QualityGateError: naming each failed critical expectation.
    """
    from transforms.runner import MART_GRAINS
    from warehouse.quality import marts_suite, persist
    from warehouse.quality import validate as run_suite
    from warehouse.quality.suites import ENGAGEMENT_DAILY_VOLUME, MARTS_VOLUME_SUITE

    checks = marts_suite(MART_GRAINS) + MARTS_VOLUME_SUITE
    with _step(settings, run_id, "validate_marts") as (con, info):
        tables = sorted({c.table for c in checks})
        frames = {t: frame(con, f"select * from {t}") for t in tables if _exists(con, t)}
        frames[ENGAGEMENT_DAILY_VOLUME] = _daily_volume(con, utcnow(), _plausibility(settings)["floor"])
        result = run_suite(frames, checks, suite="marts", run_id=run_id, now=utcnow(), docs_dir=settings.data_docs_dir)
        persist(con, result)
        info.update(passed=len(result.passed), failed=len(result.failed))
        monitoring = _monitor(settings, con, run_id)
        info["monitoring_failed"] = [r.summary() for r in monitoring.failed]
        result.raise_for_critical()
    return info


def _daily_volume(con: duckdb.DuckDBPyConnection, now: datetime, floor: datetime) -> pl.DataFrame:
    """The frame of :data:`warehouse.quality.suites.ENGAGEMENT_DAILY_VOLUME` (its docstring gives the formula)."""
    return frame(
        con,
        """
        with firsts as (
            select source, min(created_at) as first_at from (
                select source, created_at from staging.content
                union all select source, created_at from staging.users
            ) group by source
        )
        select d.source, count(*) as days,
               date_diff('day', coalesce(f.first_at, ?::timestamp)::date, ?::date) + 3 as max_days
        from marts.engagement_daily d left join firsts f using (source)
        group by d.source, f.first_at
        """,
        [floor, now],
    )


def _monitor(settings: Settings, con: duckdb.DuckDBPyConnection, run_id: str) -> Any:
    """Run the freshness and volume expectations (warnings, never gates) and persist them."""
    from warehouse.monitoring import freshness_frame, monitoring_checks, volume_frame
    from warehouse.quality import persist
    from warehouse.quality import validate as run_suite

    source, interval_end = one(con, "select source, interval_end from ops.runs where run_id = ?", [run_id])
    now = utcnow()
    frames = {
        "ops.freshness": freshness_frame(con, source, interval_end or now),
        "ops.volume": volume_frame(con, run_id, settings.volume_band_min_runs),
    }
    result = run_suite(
        frames,
        monitoring_checks(settings.freshness_max_lag_hours),
        suite="monitoring",
        run_id=run_id,
        now=now,
        docs_dir=settings.data_docs_dir,
    )
    persist(con, result)
    for r in result.failed:
        log.warning("monitoring: %s", r.summary())
    return result


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        one(
            con,
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        )[0]
    )


def publish(settings: Settings, run_id: str) -> dict[str, Any]:
    """Mark the run successful, clear its landing batch, and publish the serving snapshot.

    The snapshot is updated from the previous one (only the changed rows written,
    :func:`warehouse.publish.publish_snapshot` ``incremental``) after a run that loaded a batch,
    and written from scratch after a privacy request or a retention redaction (a row deleted
    from a copied file may leave its bytes behind) or a step run on its own.
    """
    from warehouse.publish import publish_snapshot

    with _step(settings, run_id, "publish") as (con, info):
        incremental = _loaded_batch(con, run_id) and not _retention_redacted(con, run_id)
        for stream in STREAMS:
            con.execute(f"delete from raw.{stream} where run_id = ?", [run_id])
        con.execute(
            "update ops.runs set status = 'success', finished_at = ?, error = null where run_id = ?",
            [utcnow(), run_id],
        )
        counts = publish_snapshot(con, settings.serving, incremental=incremental)
        info.update(
            serving=str(settings.serving), tables=len(counts), rows=sum(counts.values()), incremental=incremental
        )
    # The step log row of publish is written after the snapshot; copy it in on the next run.
    return info


def _retention_redacted(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Whether the run's load step redacted bodies past retention (``retention_redacted`` in its log)."""
    rows = con.execute("select detail from ops.step_log where run_id = ? and step = 'load'", [run_id]).fetchall()
    return any(json.loads(detail or "{}").get("retention_redacted") for (detail,) in rows)


@dataclass
class RunSummary:
    """The outcome of :func:`run_pipeline`: the run id and each step's returned dict."""

    run_id: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    elapsed_s: float = 0.0


def run_pipeline(
    settings: Settings,
    spec: SourceSpec,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    run_id: str | None = None,
    trigger: str = "cli",
    progress: bool = False,
) -> RunSummary:
    """Run every step in order for one data interval, as the DAG does, without Airflow.

    Raises:
        PipelineError, warehouse.quality.QualityGateError: a gate stopped the run (nothing published).
    """
    run_id = run_id or new_run_id(trigger)
    summary = RunSummary(run_id)
    t0 = time.perf_counter()
    summary.steps["extract"] = extract(settings, run_id, spec, since, until, trigger)
    summary.steps["validate"] = validate(settings, run_id)
    summary.steps["load"] = load(settings, run_id)
    summary.steps["ingest_decisions"] = ingest_decisions(settings, run_id)
    summary.steps["score"] = score(settings, run_id, progress=progress)
    summary.steps["transform"] = transform(settings, run_id)
    summary.steps["validate_marts"] = validate_marts(settings, run_id)
    summary.steps["publish"] = publish(settings, run_id)
    summary.elapsed_s = time.perf_counter() - t0
    return summary


def stream_counts(settings: Settings, run_id: str) -> pl.DataFrame:
    """This run's per-stream reconciliation from ``ops.stream_counts``."""
    with open_warehouse(settings.warehouse) as con:
        return frame(
            con,
            "select stream, read, inserted, updated, unchanged, skipped, quarantined, skip_rules "
            "from ops.stream_counts where run_id = ? order by stream",
            [run_id],
        )
