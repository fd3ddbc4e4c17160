"""Moderation policy: per-label thresholds turn scores into flags and hold recommendations.

Two levels per label, both probabilities in (0, 1]:

- the **flag** threshold: at or above it the item goes to the review queue;
- the **hold** threshold (>= the flag threshold): at or above it the item is recommended to be
  hidden until a moderator has reviewed it.

The defaults follow the spirit of Discourse AI's toxicity defaults (a high bar for the broad
``toxicity`` label, a low one for ``severe_toxicity``, 60 for the specific harms; Discourse
expresses them in percent).

An item's **severity** (``marts.moderation_queue.severity``): for a model flag the ``severity``
computed here (max over labels of score / threshold, so 1.0 = exactly at a threshold); a
community report counts :data:`REPORT_SEVERITY` plus :data:`REPORT_SEVERITY_PER_REPORTER` per
further distinct reporter, at most :data:`REPORT_SEVERITY_MAX`; an item routed because the model
does not read its language counts :data:`LANGUAGE_ROUTED_SEVERITY`. The highest applicable value
wins.

The queue's **priority** (``transforms/marts/moderation_queue.sql``, :func:`priority_score`) is a
weighted sum of five signals, each scaled to [0, 1], so a saturated model score no longer
decides the order alone::

    priority_score = 4 * model + 2 * reports + 2 * history + 1 * reach + 1 * age      (0 to 10)

    model   = trust * min(s, 2) / 2   s = max over labels of score / flag threshold (the label's
                                      score on its own threshold's scale, 1 = at the threshold;
                                      1.0 for an item routed for its language, 0 for reports
                                      only); trust = 0.5 when the model is lexical (its
                                      probabilities are not calibrated: any swear word scores
                                      1.00), else 1 (per-label calibrated scores when the model
                                      ships a calibration, moderation/calibration.py)
    reports = min(distinct reporters, 5) / 5       (a report without a known reporter counts as one)
    history = min(prior flags + 2 * prior removals, 10) / 10   (the author's, in the window before)
    reach   = min(ln(1 + n) / ln(101), 1)          n = engagement events on the item (views, votes,
                                                   likes, ...; reports excluded) + its direct replies
    age     = min(hours waiting / 72, 1)           as of the source's newest item (a snapshot of
                                                   old data does not age with the wall clock)

Source: an additive review score in the manner of Discourse's reviewable score (the sum over
flags of a per-flag score weighted by the flagger's accuracy, ``ReviewableScore``), plus
*aging* (Silberschatz, Galvin & Gagne, *Operating System Concepts*, 10th ed., §5.3.3: raise
the priority of waiting work so that none starves). The weights are :data:`PRIORITY_WEIGHTS`.
Priority 1 = the highest score (older first on ties).

**Hold** is a recommendation to hide an item before review. A lexical (fallback) model never
triggers it (:func:`can_hold`): with it, nearly every flagged item scored 1.00 and was "hold".
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import polars as pl

from warehouse.canonical import LABELS

DEFAULT_THRESHOLDS: dict[str, float] = {
    "toxicity": 0.8,
    "severe_toxicity": 0.3,
    "obscene": 0.8,
    "identity_attack": 0.6,
    "insult": 0.6,
    "threat": 0.6,
    "sexual_explicit": 0.6,
}
"""Flag thresholds per label (probability at or above which an item is flagged)."""

DEFAULT_HOLD_THRESHOLDS: dict[str, float] = {
    "toxicity": 0.95,
    "severe_toxicity": 0.6,
    "obscene": 0.9,
    "identity_attack": 0.9,
    "insult": 0.9,
    "threat": 0.9,
    "sexual_explicit": 0.9,
}
"""Hold thresholds per label (at or above: recommend hiding the item before review)."""

REPORT_SEVERITY = 1.0
"""Queue severity of an item one member reported (like a model score exactly at its threshold)."""
REPORT_SEVERITY_PER_REPORTER = 0.25
"""Added per further distinct reporter."""
REPORT_SEVERITY_MAX = 2.0
"""Cap of the reports' severity (five reporters)."""
LANGUAGE_ROUTED_SEVERITY = 1.0
"""Queue severity of an item routed as 'language not supported by model'."""


def queue_severity(
    model_severity: float | None, report_count: int, reporter_count: int, language_routed: bool
) -> float | None:
    """The queue severity of one item: the rule ``marts.moderation_queue`` applies in SQL.

    Args:
        model_severity: the model's severity when it flagged the item, else None.
        report_count: community report events on the item (0: not reported).
        reporter_count: distinct known reporters (a report without a known reporter counts as one).
        language_routed: the item's language is not one the model reads.

    Returns:
        The highest applicable value, or None when none applies (the item is not queued).
    """
    values = [model_severity] if model_severity is not None else []
    if report_count > 0:
        values.append(
            min(REPORT_SEVERITY + REPORT_SEVERITY_PER_REPORTER * (max(reporter_count, 1) - 1), REPORT_SEVERITY_MAX)
        )
    if language_routed:
        values.append(LANGUAGE_ROUTED_SEVERITY)
    return max(values) if values else None


PRIORITY_WEIGHTS: dict[str, float] = {"model": 4.0, "reports": 2.0, "history": 2.0, "reach": 1.0, "age": 1.0}
"""Weights of the priority signals (each in [0, 1]); the SQL of ``marts.moderation_queue`` uses the same numbers."""
LEXICAL_TRUST = 0.5
"""Weight of a lexical model's signal in the priority (uncalibrated keyword scores)."""
SEVERITY_CAP = 2.0
"""Severity at and above which the model signal is full (twice the flag threshold)."""
REPORTERS_CAP = 5
"""Distinct reporters at and above which the reports signal is full."""
HISTORY_CAP = 10
"""``prior flags + 2 * prior removals`` at and above which the history signal is full."""
REACH_CAP = 100
"""Interactions (engagement events + replies) at and above which the reach signal is full."""
AGE_CAP_HOURS = 72.0
"""Hours waiting at and above which the age signal is full."""
NO_HOLD_MODEL_PREFIXES: tuple[str, ...] = ("lexical:",)
"""Models (by ``model_id`` prefix) whose scores never trigger a hold recommendation."""


REPEAT_OFFENDER_MIN_FLAGS = 3
"""Earlier flagged items (in the window) from which an author counts as a repeat offender."""


def is_repeat_offender(prior_flags: int | None, prior_removals: int | None) -> bool:
    """Whether the author is a repeat offender: at least :data:`REPEAT_OFFENDER_MIN_FLAGS` earlier
    flagged or reported items, or at least one earlier item removed by a moderator (the counts of
    ``marts.moderation_queue``, over ``repeat_offender_window_days`` before the item)."""
    return (prior_flags or 0) >= REPEAT_OFFENDER_MIN_FLAGS or (prior_removals or 0) >= 1


def is_lexical(model_id: str | None, is_fallback: bool | None = None) -> bool:
    """Whether the scores came from a lexical model (chosen, or ``auto``'s fallback)."""
    return bool(is_fallback) or (model_id is not None and model_id.startswith(NO_HOLD_MODEL_PREFIXES))


def can_hold(model_id: str | None, is_fallback: bool | None = None) -> bool:
    """Whether this model's scores may recommend a hold (never a lexical / fallback model)."""
    return not is_lexical(model_id, is_fallback)


def priority_terms(
    *,
    model_severity: float | None,
    lexical: bool,
    language_routed: bool,
    report_count: int,
    reporter_count: int,
    prior_flags: int,
    prior_removals: int,
    reach: int,
    age_hours: float,
) -> dict[str, float]:
    """The five priority signals of one item, each in [0, 1], and their weighted sum.

    The rule ``marts.moderation_queue`` applies in SQL (see the module docstring).

    Returns:
        ``{"model", "reports", "history", "reach", "age", "score"}``; ``score`` is
        ``sum(PRIORITY_WEIGHTS[k] * term[k])``, from 0 to 10.
    """
    severity = model_severity if model_severity is not None else (LANGUAGE_ROUTED_SEVERITY if language_routed else 0.0)
    if model_severity is not None and language_routed:
        severity = max(model_severity, LANGUAGE_ROUTED_SEVERITY)
    trust = LEXICAL_TRUST if lexical else 1.0
    terms = {
        "model": trust * min(severity, SEVERITY_CAP) / SEVERITY_CAP,
        "reports": min(max(reporter_count, 1), REPORTERS_CAP) / REPORTERS_CAP if report_count > 0 else 0.0,
        "history": min(prior_flags + 2 * prior_removals, HISTORY_CAP) / HISTORY_CAP,
        "reach": min(math.log1p(max(reach, 0)) / math.log1p(REACH_CAP), 1.0),
        "age": min(max(age_hours, 0.0) / AGE_CAP_HOURS, 1.0),
    }
    terms["score"] = sum(PRIORITY_WEIGHTS[k] * terms[k] for k in PRIORITY_WEIGHTS)
    return terms


def priority_formula(terms: Mapping[str, float]) -> str:
    """The priority score written out for the item view, e.g.
    ``"6.10 = 4×0.63 model + 2×0.20 reports + 2×0.30 history + 1×0.52 reach + 1×1.00 age"``."""
    parts = " + ".join(f"{PRIORITY_WEIGHTS[k]:g}×{terms[k]:.2f} {k}" for k in PRIORITY_WEIGHTS)
    return f"{terms['score']:.2f} = {parts}"


OUTPUT_COLUMNS: tuple[str, ...] = ("flagged_labels", "max_label", "max_score", "severity", "flagged", "hold")


def validate_thresholds(thresholds: Mapping[str, float], hold_thresholds: Mapping[str, float]) -> None:
    """Check a pair of threshold maps.

    Rules: keys are labels from :data:`moderation.scorers.LABELS`; values are numbers in
    (0, 1]; every hold key also has a flag threshold, and hold >= flag for that label.
    A label missing from ``thresholds`` is simply not used for flagging; one missing from
    ``hold_thresholds`` never triggers a hold.

    Raises:
        ValueError: naming the offending key and how to fix it.
    """
    for name, mapping in (("thresholds", thresholds), ("hold_thresholds", hold_thresholds)):
        for key, value in mapping.items():
            if key not in LABELS:
                raise ValueError(
                    f"{name}[{key!r}]: unknown label {key!r}; use one of {', '.join(LABELS)} "
                    "(Detoxify's names, e.g. 'toxicity' not 'toxic')"
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(f"{name}[{key!r}] = {value!r} is not a number; give a probability in (0, 1]")
            if not 0.0 < value <= 1.0:
                raise ValueError(
                    f"{name}[{key!r}] = {value!r} is outside (0, 1]; thresholds are probabilities, e.g. 0.8 (not 80)"
                )
    for key, hold in hold_thresholds.items():
        if key not in thresholds:
            raise ValueError(
                f"hold_thresholds[{key!r}] has no flag threshold; add thresholds[{key!r}] "
                f"(<= {hold}) or remove the hold threshold"
            )
        if hold < thresholds[key]:
            raise ValueError(
                f"hold_thresholds[{key!r}] = {hold} is below thresholds[{key!r}] = {thresholds[key]}; "
                f"raise the hold threshold to at least {thresholds[key]} or lower the flag threshold"
            )


def flag(
    scores: pl.DataFrame,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
    hold_thresholds: Mapping[str, float] = DEFAULT_HOLD_THRESHOLDS,
) -> pl.DataFrame:
    """Apply the policy to a frame of scores (vectorised; one output row per input row).

    Args:
        scores: any columns, among them some of the label columns (numeric probabilities in
            [0, 1]; null = not scored by that model). Other columns pass through unchanged.
        thresholds: flag threshold per label; only labels present both here and in ``scores``
            are used.
        hold_thresholds: hold threshold per label (>= its flag threshold).

    Returns:
        ``scores`` plus (replacing any existing columns of these names):

        - ``flagged_labels: list[str]``: labels with score >= threshold, in :data:`LABELS` order
          (empty list when none);
        - ``severity: f64``: max over scored labels of score / threshold (>= 1 for a flagged
          item; null when no label was scored);
        - ``max_label: str``: the label reaching that maximum (first in :data:`LABELS` order on
          a tie; null when no label was scored);
        - ``max_score: f64``: that label's score;
        - ``flagged: bool``: any label at or above its threshold (equivalently ``severity >= 1``:
          for doubles ``s < t`` implies ``s / t < 1`` under round-to-nearest);
        - ``hold: bool``: any label at or above its hold threshold.

    Raises:
        ValueError: invalid thresholds (see :func:`validate_thresholds`), no usable label
            column, or a non-numeric label column.
    """
    validate_thresholds(thresholds, hold_thresholds)
    used = [label for label in LABELS if label in thresholds and label in scores.columns]
    if not used:
        raise ValueError(
            f"scores has no label column with a threshold: columns {scores.columns}, "
            f"thresholds for {sorted(thresholds)}; expected some of {', '.join(LABELS)}"
        )
    for label in used:
        dtype = scores.schema[label]
        if not (dtype.is_numeric() or dtype == pl.Null):
            raise ValueError(f"scores[{label!r}] has dtype {dtype}; label columns must hold float probabilities")

    col = {label: pl.col(label).cast(pl.Float64) for label in used}
    ratio = {label: col[label] / thresholds[label] for label in used}
    severity = pl.max_horizontal(*ratio.values())

    max_label: pl.Expr = pl.lit(None, dtype=pl.String)
    max_score: pl.Expr = pl.lit(None, dtype=pl.Float64)
    for label in reversed(used):  # built inside out, so the first label in LABELS order wins a tie
        hit = ratio[label] == severity
        max_label = pl.when(hit).then(pl.lit(label)).otherwise(max_label)
        max_score = pl.when(hit).then(col[label]).otherwise(max_score)

    flagged_labels = pl.concat_list(
        [
            pl.when(col[label] >= thresholds[label]).then(pl.lit(label)).otherwise(pl.lit(None, dtype=pl.String))
            for label in used
        ]
    ).list.drop_nulls()
    held = [col[label] >= hold_thresholds[label] for label in used if label in hold_thresholds]
    hold = pl.any_horizontal(*held).fill_null(False) if held else pl.lit(False)

    return scores.with_columns(
        flagged_labels.alias("flagged_labels"),
        max_label.alias("max_label"),
        max_score.alias("max_score"),
        severity.alias("severity"),
    ).with_columns(
        (pl.col("flagged_labels").list.len() > 0).alias("flagged"),
        hold.alias("hold"),
    )
