"""The scoring step: score what has not been scored, then derive flags from the policy.

A text is identified by its ``content_hash``; it is scored once per model (``model_id``),
however many items share it and however often the pipeline runs. An edit changes the hash,
so the edited item is scored again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import polars as pl

from moderation.policy import flag
from moderation.scorers import Scorer
from warehouse.canonical import LABELS
from warehouse.db import frame, one

log = logging.getLogger(__name__)

#: Longest text a scorer sees, in characters: a longer title + body is cut to this (a hostile
#: 10 MB post must not exhaust memory or time). Detoxify reads at most 512 tokens (~2,000
#: characters) anyway; the lexical model's bag of words gains nothing from more. The step log
#: records how many texts were cut (``truncated_for_scoring``).
MAX_SCORED_CHARS = 20_000


@dataclass(frozen=True)
class ScoreReport:
    """What the scoring step did: texts ``scored`` now, ``already_scored`` before, items ``flagged``."""

    model_id: str
    is_fallback: bool
    scored: int
    already_scored: int
    flagged: int
    held: int


#: The items of the batches not yet published: ``raw.content`` holds each run's landed rows until
#: its publish step clears them, so this covers the current run and any run that failed since.
#: Their row ids in ``staging.content`` are bound as the parameter (:func:`batch_rowids`).
_BATCH = "c.rowid in (select unnest(?::bigint[]))"

_TEXT = "concat_ws(chr(10) || chr(10), nullif(title, ''), nullif(body_text, ''))"


def batch_rowids(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Row ids in ``staging.content`` of the items of the unpublished batches (``raw.content``).

    The batch's queries filter staging by these (``rowid in (...)``, which DuckDB pushes into
    the scan) instead of joining with ``raw.content``: the join reads the key columns only, and
    only the batch's rows of the text columns are read afterwards. At 100x history (383k items)
    finding a day's 5 items and their texts takes ~0.04 s instead of ~0.5 s for a join that
    reads every text (measured for issue #17). Valid while the connection writes nothing to
    ``staging.content``.
    """
    return [
        r[0]
        for r in con.execute(
            "select c.rowid from staging.content c semi join raw.content r using (source, content_id) order by 1"
        ).fetchall()
    ]


def has_scores(con: duckdb.DuckDBPyConnection, model_id: str) -> bool:
    """Whether ``moderation.scores`` holds any score from ``model_id``."""
    return bool(one(con, "select exists (select 1 from moderation.scores where model_id = ?)", [model_id])[0])


def scored_texts(con: duckdb.DuckDBPyConnection, model_id: str) -> int:
    """Distinct texts ``model_id`` has a score for (``moderation.scores`` is keyed by text and model;
    a count of the table, not a scan of staging, so it costs the same at any history size)."""
    return int(one(con, "select count(*) from moderation.scores where model_id = ?", [model_id])[0])


def pending_texts(con: duckdb.DuckDBPyConnection, model_id: str, *, batch_only: bool = False) -> pl.DataFrame:
    """Distinct texts in ``staging.content`` with no score from ``model_id``.

    Args:
        batch_only: look only at the items of the unpublished batches (``raw.content``: the
            run's new or edited items, and those of a run that failed before publishing)
            instead of all of staging, unless ``model_id`` has no score yet (a new model: a
            full sweep). An item outside those batches keeps its text, so it has its score.

    Returns:
        Frame ``content_hash: str, text: str, truncated: bool`` (title and body joined by a
        blank line, cut to :data:`MAX_SCORED_CHARS`; ``truncated`` when it was longer),
        ordered by content_hash so runs are reproducible.
    """
    select = f"""
        select content_hash, left(any_value({_TEXT}), ?) as text, any_value(length({_TEXT})) > ? as truncated
        from batch b
        where not exists (select 1 from scored s where s.content_hash = b.content_hash)
        group by content_hash
        order by content_hash
        """
    if batch_only and has_scores(con, model_id):
        # the batch's scored texts found by probing the scores with the batch (a small build side)
        return frame(
            con,
            f"""
            with batch as (select content_hash, title, body_text from staging.content c where {_BATCH}),
            scored as (select content_hash from moderation.scores semi join batch using (content_hash) where model_id = ?)
            {select}
            """,
            [batch_rowids(con), model_id, MAX_SCORED_CHARS, MAX_SCORED_CHARS],
        )
    return frame(
        con,
        f"""
        with batch as (select content_hash, title, body_text from staging.content),
        scored as (select content_hash from moderation.scores where model_id = ?)
        {select}
        """,
        [model_id, MAX_SCORED_CHARS, MAX_SCORED_CHARS],
    )


def score_pending(
    con: duckdb.DuckDBPyConnection,
    scorer: Scorer,
    *,
    batch_size: int = 256,
    progress: bool = False,
    notes: dict | None = None,
) -> tuple[int, int]:
    """Score every pending text with ``scorer`` and insert into ``moderation.scores``.

    Each batch is committed on its own, so an interrupted run resumes where it stopped.
    Texts over :data:`MAX_SCORED_CHARS` are scored on their first that many characters; their
    number goes to ``notes["truncated_for_scoring"]`` when ``notes`` is given (and the log).

    Returns:
        ``(scored_now, already_scored)`` counts of distinct texts (``already_scored``: the texts
        the model had scored before, :func:`scored_texts`).
    """
    already = scored_texts(con, scorer.model_id)
    pending = pending_texts(con, scorer.model_id)
    truncated = int(pending["truncated"].sum()) if pending.height else 0
    if notes is not None:
        notes["truncated_for_scoring"] = truncated
    if truncated:
        log.warning("%d texts longer than %d characters were truncated for scoring", truncated, MAX_SCORED_CHARS)
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    batches = range(0, pending.height, batch_size)
    if progress and pending.height:
        from rich.progress import track

        batches = track(batches, description=f"scoring with {scorer.model_id}")
    for start in batches:
        chunk = pending.slice(start, batch_size)
        scores = scorer.score(chunk["text"].to_list())
        frame = pl.DataFrame(  # noqa: F841
            {
                "content_hash": chunk["content_hash"],
                "model_id": scorer.model_id,
                "model_version": scorer.model_version,
                "backend": scorer.backend,
                "is_fallback": scorer.is_fallback,
                "scored_at": scored_at,
                **{label: (scores[label] if label in scores.columns else None) for label in LABELS},
            },
            schema_overrides={label: pl.Float64 for label in LABELS},
        )
        con.execute("insert into moderation.scores by name select * from frame on conflict do nothing")
    log.info("scored %d texts with %s (%d already scored)", pending.height, scorer.model_id, already)
    return pending.height, already


def refresh_flags(
    con: duckdb.DuckDBPyConnection,
    model_id: str,
    thresholds: Mapping[str, float],
    hold_thresholds: Mapping[str, float],
    *,
    batch_only: bool | list[int] = False,
) -> tuple[int, int]:
    """Rebuild ``moderation.flags`` from ``model_id``'s scores and the thresholds in force.

    Every current item whose text that model scored is checked; the table is replaced in one
    transaction, so a threshold change takes effect on the next run for all items.

    With ``batch_only``, only the items of the unpublished batches (``raw.content``, see
    :func:`pending_texts`) are checked and their flags replaced, when every current flag comes
    from ``model_id`` under the same thresholds (else, or with no flag at all, every item is:
    a new model or a threshold change re-flags all history). ``batch_only`` may be the batch's
    row ids already looked up (:func:`batch_rowids`).

    Returns:
        ``(flagged, held)``: items flagged in ``moderation.flags`` afterwards (at or above a
        flag threshold), and of those at a hold level.
    """
    thresholds_json = json.dumps({"flag": dict(thresholds), "hold": dict(hold_thresholds)}, sort_keys=True)
    rowids = batch_only if isinstance(batch_only, list) else None
    if batch_only is not False:
        current = one(
            con,
            "select count(*), count(*) filter (where model_id = ? and thresholds_json = ?) from moderation.flags",
            [model_id, thresholds_json],
        )
        batch_only = current[0] > 0 and current[0] == current[1]
    if batch_only and rowids is None:
        rowids = batch_rowids(con)
    scores = frame(
        con,
        f"""
        with c as (select source, content_id, content_hash from staging.content c where {_BATCH if batch_only else "true"})
        select c.source, c.content_id, c.content_hash, s.model_id, {", ".join("s." + label for label in LABELS)}
        from moderation.scores s join c on s.content_hash = c.content_hash
        where s.model_id = ?
        """,
        [rowids, model_id] if batch_only else [model_id],
    )
    flags = flag(scores, thresholds, hold_thresholds).filter(pl.col("flagged"))
    out = flags.select(  # noqa: F841
        "source",
        "content_id",
        "content_hash",
        "model_id",
        "flagged_labels",
        "max_label",
        "max_score",
        "severity",
        "hold",
        pl.lit(thresholds_json).alias("thresholds_json"),
    )
    con.execute("begin transaction")
    try:
        if batch_only:
            con.execute(
                "delete from moderation.flags where (source, content_id) in (select source, content_id from raw.content)"
            )
        else:
            con.execute("delete from moderation.flags")
        con.execute("insert into moderation.flags by name select * from out")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    flagged, held = one(con, "select count(*), count(*) filter (where hold) from moderation.flags")
    log.info(
        "flags: %d items flagged by %s (%d recommended to hold; %d items checked)",
        flagged,
        model_id,
        held,
        scores.height,
    )
    return int(flagged), int(held)


def detect_languages_pending(con: duckdb.DuckDBPyConnection, *, batch_only: bool | list[int] = False) -> int:
    """Detect the language of the texts with none in ``moderation.languages`` (see :mod:`moderation.language`).

    With ``batch_only``, only the texts of the unpublished batches (``raw.content``, as
    :func:`pending_texts`) are looked at, unless no language was detected yet (then all of
    staging: :func:`moderation.language.detect_pending`). An item outside those batches keeps its
    text, so it has its language. The detector's models load (2-4 s, once per process) only
    when a text needs them. ``batch_only`` may be the batch's row ids already looked up
    (:func:`batch_rowids`).

    Returns:
        Number of texts detected now.
    """
    from moderation.language import detect_languages, detect_pending, detector_id

    if batch_only is False or not one(con, "select exists (select 1 from moderation.languages)")[0]:
        return detect_pending(con)
    pending = frame(
        con,
        f"""
        with batch as (select content_hash, title, body_text from staging.content c where {_BATCH}),
        known as (select content_hash from moderation.languages semi join batch using (content_hash))
        select content_hash, any_value({_TEXT}) as text
        from batch b
        where not exists (select 1 from known k where k.content_hash = b.content_hash)
        group by content_hash
        order by content_hash
        """,
        [batch_only if isinstance(batch_only, list) else batch_rowids(con)],
    )
    if pending.height:
        detected = detect_languages(pending["text"].to_list())
        rows = pl.DataFrame(  # noqa: F841 - read by DuckDB below
            {
                "content_hash": pending["content_hash"],
                "language": detected["language"],
                "confidence": detected["confidence"],
                "detector": detector_id(),
                "detected_at": datetime.now(UTC).replace(tzinfo=None),
            }
        )
        con.execute("insert into moderation.languages by name select * from rows on conflict do nothing")
    return pending.height
