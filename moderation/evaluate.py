"""How well a toxicity model fits a community's own labels: ranking, thresholds, calibration, speed.

All metrics take ``y_true`` (0/1, shape ``(n,)``) and ``y_score`` (probabilities in [0, 1],
shape ``(n,)``) as array-likes. A metric that is undefined on the data (ROC-AUC with a single
class present, precision with nothing predicted positive) is ``None``, never an exception or a
made-up number.

Metrics and their sources:

- **ROC-AUC**: area under the ROC curve (``sklearn.metrics.roc_auc_score``; Hanley & McNeil,
  Radiology 1982).
- **PR-AUC**: average precision, the step-wise area under the precision-recall curve
  (``sklearn.metrics.average_precision_score``; less optimistic than trapezoids on PR curves,
  Davis & Goadrich, ICML 2006).
- **precision / recall / F1 at threshold**: a text is predicted toxic when its score is
  ``>= threshold`` (the policy's rule, :mod:`moderation.policy`).
- **F1-optimal threshold**: the score threshold that maximises F1 on the data (searched over
  every distinct score; ties go to the higher threshold).
- **macro-F1**: the unweighted mean of the F1 of the positive and the negative class at the
  threshold (OffensEval 2019's official metric, Zampieri et al., SemEval 2019).
- **ECE** (expected calibration error): ``sum_m |B_m|/n * |mean(y in B_m) - mean(p in B_m)|``
  over ``n_bins`` equal-width bins of the predicted probability of the positive class
  (Naeini, Cooper & Hauskrecht, AAAI 2015; Guo, Pleiss, Sun & Weinberger, "On Calibration of
  Modern Neural Networks", ICML 2017, who use 15 bins, our default). Guo et al. bin the
  top-class confidence of a multi-class model; for one binary label the positive-class form
  used here is the standard reading (it is what a reliability diagram of the label shows).
- **throughput**: texts scored per second of wall time through the scorer's ``score``,
  including tokenisation (what the pipeline sees).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import polars as pl

    from moderation.scorers import Scorer

DEFAULT_ECE_BINS = 15
"""Equal-width bins for ECE and the reliability diagram (Guo et al. 2017 use 15)."""

DEFAULT_TARGET_PRECISIONS: tuple[float, ...] = (0.8, 0.9, 0.95)
"""Precisions for which :func:`thresholds_for_precision` suggests thresholds."""


def _arrays(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to 1-d int / float arrays of equal length.

    Raises:
        ValueError: shapes differ, labels other than 0/1, scores outside [0, 1] or NaN.
    """
    y = np.asarray(y_true).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values but y_score has {s.size}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {sorted(set(np.unique(y).tolist()) - {0, 1})[:5]}")
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} scores are NaN")
    if s.size and (s.min() < 0 or s.max() > 1):
        raise ValueError(f"scores must be probabilities in [0, 1], got range [{s.min()}, {s.max()}]")
    return y.astype(np.int64), s


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.size) and 0 < int(y.sum()) < y.size


def roc_auc(y_true: Any, y_score: Any) -> float | None:
    """ROC-AUC in [0, 1]; None unless both classes are present."""
    from sklearn.metrics import roc_auc_score

    y, s = _arrays(y_true, y_score)
    return float(roc_auc_score(y, s)) if _both_classes(y) else None


def pr_auc(y_true: Any, y_score: Any) -> float | None:
    """Average precision (PR-AUC) in [0, 1]; None unless both classes are present."""
    from sklearn.metrics import average_precision_score

    y, s = _arrays(y_true, y_score)
    return float(average_precision_score(y, s)) if _both_classes(y) else None


@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion counts and rates at one threshold (predicted positive: ``score >= threshold``)."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    macro_f1: float | None
    false_positive_rate: float | None


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def at_threshold(y_true: Any, y_score: Any, threshold: float) -> ThresholdMetrics:
    """Precision, recall, F1, macro-F1 and FPR at ``threshold`` (score ``>=`` threshold is positive).

    F1 of a class is ``2 tp / (2 tp + fp + fn)`` (0 when the class is present but never
    predicted, None when it is absent); precision is None when nothing is predicted positive.
    """
    y, s = _arrays(y_true, y_score)
    pred = s >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    tn = int((~pred & (y == 0)).sum())
    f1_pos = 2 * tp / (2 * tp + fp + fn) if tp + fn else None
    f1_neg = 2 * tn / (2 * tn + fn + fp) if tn + fp else None
    return ThresholdMetrics(
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=f1_pos,
        macro_f1=(f1_pos + f1_neg) / 2 if f1_pos is not None and f1_neg is not None else None,
        false_positive_rate=_ratio(fp, fp + tn),
    )


def best_f1_threshold(y_true: Any, y_score: Any) -> tuple[float | None, float | None]:
    """The threshold maximising F1 and that F1, ``(threshold, f1)``; ``(None, None)`` without positives.

    Searches every distinct score as a threshold (``sklearn.metrics.precision_recall_curve``);
    among equal F1 the higher threshold wins (fewer flags for the same F1).
    """
    from sklearn.metrics import precision_recall_curve

    y, s = _arrays(y_true, y_score)
    if not y.size or not y.sum():
        return None, None
    precision, recall, thresholds = precision_recall_curve(y, s)
    p, r = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    best = float(f1.max())
    idx = int(np.flatnonzero(np.isclose(f1, best, rtol=0, atol=1e-12)).max())
    return float(thresholds[idx]), best


def thresholds_for_precision(
    y_true: Any, y_score: Any, targets: Sequence[float] = DEFAULT_TARGET_PRECISIONS
) -> list[dict[str, float | None]]:
    """For each target precision, the lowest threshold reaching it (so the most recall).

    Returns:
        One dict per target: ``target_precision``, ``threshold`` (None when no threshold
        reaches the target), and the ``precision`` / ``recall`` / ``flagged_share`` there.
    """
    from sklearn.metrics import precision_recall_curve

    y, s = _arrays(y_true, y_score)
    out: list[dict[str, float | None]] = []
    if not y.size or not y.sum():
        return [
            {"target_precision": t, "threshold": None, "precision": None, "recall": None, "flagged_share": None}
            for t in targets
        ]
    precision, recall, thresholds = precision_recall_curve(y, s)
    for target in targets:
        ok = np.flatnonzero(precision[:-1] >= target)
        if not ok.size:
            out.append(
                {
                    "target_precision": target,
                    "threshold": None,
                    "precision": None,
                    "recall": None,
                    "flagged_share": None,
                }
            )
            continue
        i = int(ok.min())  # thresholds ascend: the lowest qualifying threshold has the most recall
        out.append(
            {
                "target_precision": target,
                "threshold": float(thresholds[i]),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "flagged_share": float((s >= thresholds[i]).mean()),
            }
        )
    return out


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: ``[lower, upper)`` (the last bin includes 1.0)."""

    lower: float
    upper: float
    count: int
    mean_score: float | None
    positive_rate: float | None


def reliability_bins(y_true: Any, y_score: Any, n_bins: int = DEFAULT_ECE_BINS) -> list[ReliabilityBin]:
    """Equal-width bins of the score with their mean score and observed positive rate."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, s = _arrays(y_true, y_score)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(s, edges[1:-1], right=False), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        bins.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=count,
                mean_score=float(s[mask].mean()) if count else None,
                positive_rate=float(y[mask].mean()) if count else None,
            )
        )
    return bins


def expected_calibration_error(y_true: Any, y_score: Any, n_bins: int = DEFAULT_ECE_BINS) -> float | None:
    """ECE = sum over bins of ``|B|/n * |positive rate - mean score|`` (Naeini et al. 2015;
    Guo et al. 2017), in [0, 1]; None for empty input. See the module docstring."""
    y, _ = _arrays(y_true, y_score)
    if not y.size:
        return None
    n = y.size
    return float(
        sum(
            b.count / n * abs(b.positive_rate - b.mean_score)  # type: ignore[operator]
            for b in reliability_bins(y_true, y_score, n_bins)
            if b.count
        )
    )


@dataclass
class EvaluationReport:
    """What ``pulse moderation evaluate`` reports for one model on one labelled set.

    The first ten fields are the keys of the ``--json`` output the issue fixes; the rest add
    context. Rates are fractions in [0, 1]; ``texts_per_second`` is wall-clock throughput.
    """

    n: int
    roc_auc: float | None
    pr_auc: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    threshold: float
    best_f1_threshold: float | None
    ece: float | None
    texts_per_second: float | None
    n_positive: int = 0
    macro_f1: float | None = None
    best_f1: float | None = None
    false_positive_rate: float | None = None
    score_label: str = "toxicity"
    model_id: str | None = None
    model_version: str | None = None
    backend: str | None = None
    is_fallback: bool | None = None
    ece_bins: int = DEFAULT_ECE_BINS
    seconds: float | None = None
    suggested_thresholds: list[dict[str, float | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN never appears: undefined metrics are None)."""
        return asdict(self)


def compute_report(
    y_true: Any,
    y_score: Any,
    *,
    threshold: float,
    texts_per_second: float | None = None,
    n_bins: int = DEFAULT_ECE_BINS,
    score_label: str = "toxicity",
    target_precisions: Sequence[float] = DEFAULT_TARGET_PRECISIONS,
) -> EvaluationReport:
    """Every metric of :class:`EvaluationReport` from labels and scores already computed.

    Raises:
        ValueError: bad inputs (see :func:`at_threshold`) or a threshold outside (0, 1].
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    y, s = _arrays(y_true, y_score)
    at = at_threshold(y, s, threshold)
    best_t, best_f1 = best_f1_threshold(y, s)
    return EvaluationReport(
        n=int(y.size),
        roc_auc=roc_auc(y, s),
        pr_auc=pr_auc(y, s),
        precision=at.precision,
        recall=at.recall,
        f1=at.f1,
        threshold=float(threshold),
        best_f1_threshold=best_t,
        ece=expected_calibration_error(y, s, n_bins),
        texts_per_second=texts_per_second,
        n_positive=int(y.sum()),
        macro_f1=at.macro_f1,
        best_f1=best_f1,
        false_positive_rate=at.false_positive_rate,
        score_label=score_label,
        ece_bins=n_bins,
        suggested_thresholds=thresholds_for_precision(y, s, target_precisions),
    )


def score_texts(scorer: Scorer, texts: Sequence[str], label: str = "toxicity") -> tuple[np.ndarray, float]:
    """Score ``texts`` with ``scorer``; return (scores of ``label``, seconds of wall time).

    Raises:
        ValueError: the scorer does not score ``label`` (the message lists what it scores).
    """
    if label not in scorer.labels:
        raise ValueError(
            f"{scorer.model_id} does not score {label!r}; it scores {list(scorer.labels)} (use --score-label)"
        )
    t0 = time.perf_counter()
    frame = scorer.score(list(texts))
    seconds = time.perf_counter() - t0
    return frame[label].to_numpy().astype(np.float64), seconds


def evaluate_scorer(
    scorer: Scorer,
    data: pl.DataFrame,
    *,
    threshold: float,
    label: str = "toxicity",
    n_bins: int = DEFAULT_ECE_BINS,
) -> tuple[EvaluationReport, np.ndarray]:
    """Score ``data`` (columns ``text``, ``label``) with ``scorer`` and compute the report.

    Returns:
        ``(report, scores)``, scores in ``data``'s row order.
    """
    scores, seconds = score_texts(scorer, data["text"].to_list(), label)
    report = compute_report(
        data["label"].to_numpy(),
        scores,
        threshold=threshold,
        texts_per_second=data.height / seconds if seconds > 0 else None,
        n_bins=n_bins,
        score_label=label,
    )
    report.model_id, report.model_version = scorer.model_id, scorer.model_version
    report.backend, report.is_fallback, report.seconds = scorer.backend, scorer.is_fallback, seconds
    return report, scores


def per_group(
    y_true: Any, y_score: Any, groups: Sequence[str], *, threshold: float, n_bins: int = DEFAULT_ECE_BINS
) -> dict[str, EvaluationReport]:
    """:func:`compute_report` for each distinct value of ``groups`` (e.g. the ``source`` column), sorted by name."""
    y, s = _arrays(y_true, y_score)
    g = np.asarray(list(groups), dtype=object)
    if g.size != y.size:
        raise ValueError(f"groups has {g.size} values but y_true has {y.size}")
    return {
        str(name): compute_report(y[g == name], s[g == name], threshold=threshold, n_bins=n_bins)
        for name in sorted(set(g.tolist()))
    }


# --- charts (matplotlib, Agg: no display needed) ------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curve(y_true: Any, y_score: Any, path: Path, *, title: str = "", threshold: float | None = None) -> Path:
    """Write the precision-recall curve as a PNG at ``path`` (marking ``threshold`` if given).

    Raises:
        ValueError: no positive labels (the curve is undefined).
    """
    from sklearn.metrics import precision_recall_curve

    y, s = _arrays(y_true, y_score)
    if not y.sum():
        raise ValueError("no positive labels: the precision-recall curve is undefined")
    precision, recall, _ = precision_recall_curve(y, s)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    try:
        ax.step(recall, precision, where="post", color="#2563eb", label=f"PR curve (AP {pr_auc(y, s):.3f})")
        ax.axhline(y.mean(), color="#94a3b8", linestyle="--", label=f"base rate {y.mean():.3f}")
        if threshold is not None:
            at = at_threshold(y, s, threshold)
            if at.precision is not None and at.recall is not None:
                ax.scatter([at.recall], [at.precision], color="#dc2626", zorder=3, label=f"threshold {threshold:g}")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title or "Precision-recall")
        ax.legend(loc="lower left", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def plot_reliability_diagram(
    y_true: Any, y_score: Any, path: Path, *, n_bins: int = DEFAULT_ECE_BINS, title: str = ""
) -> Path:
    """Write a reliability diagram (observed positive rate vs mean score per bin, with counts) as PNG."""
    bins = [b for b in reliability_bins(y_true, y_score, n_bins) if b.count]
    ece = expected_calibration_error(y_true, y_score, n_bins)
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        width = 1.0 / n_bins
        ax.bar(
            [b.lower for b in bins],
            [b.positive_rate for b in bins],
            width=width,
            align="edge",
            color="#2563eb",
            alpha=0.75,
            edgecolor="white",
            label="observed positive rate",
        )
        ax.plot([0, 1], [0, 1], color="#94a3b8", linestyle="--", label="perfect calibration")
        ax.scatter(
            [b.mean_score for b in bins],
            [b.positive_rate for b in bins],
            color="#dc2626",
            s=12,
            zorder=3,
            label="mean score in bin",
        )
        ece_text = "n/a" if ece is None or math.isnan(ece) else f"{ece:.3f}"
        ax.set(
            ylabel="fraction positive",
            ylim=(0, 1.02),
            title=title or f"Reliability diagram (ECE {ece_text}, {n_bins} bins)",
        )
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
        hist.bar([b.lower for b in bins], [b.count for b in bins], width=width, align="edge", color="#64748b")
        hist.set(xlabel="predicted probability", ylabel="texts", xlim=(0, 1), yscale="log")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def record_evaluation(
    con: Any,
    report: EvaluationReport,
    *,
    dataset: str,
    dataset_sha256: str | None,
    groups: dict[str, EvaluationReport] | None = None,
    evaluated_at: Any = None,
) -> str:
    """Insert the report (subset ``all``) and any per-group reports into
    ``moderation.model_evaluations`` (migration 002); return the evaluation id (a UUID4).

    Args:
        con: an open warehouse connection (DuckDB), migrated.
        dataset / dataset_sha256: the labelled file and its hash.
        groups: per-group reports (``subset`` = the group value).
        evaluated_at: naive UTC timestamp (default: now).
    """
    import uuid
    from datetime import UTC, datetime

    import polars as pl

    evaluation_id = str(uuid.uuid4())
    at = evaluated_at or datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for subset, r in [("all", report), *(groups or {}).items()]:
        rows.append(
            {
                "evaluation_id": evaluation_id,
                "subset": subset,
                "evaluated_at": at,
                "model_id": report.model_id,
                "model_version": report.model_version,
                "backend": report.backend,
                "is_fallback": report.is_fallback,
                "dataset": dataset,
                "dataset_sha256": dataset_sha256,
                "score_label": report.score_label,
                "n": r.n,
                "n_positive": r.n_positive,
                "roc_auc": r.roc_auc,
                "pr_auc": r.pr_auc,
                "precision": r.precision,
                "recall": r.recall,
                "f1": r.f1,
                "macro_f1": r.macro_f1,
                "threshold": r.threshold,
                "best_f1_threshold": r.best_f1_threshold,
                "ece": r.ece,
                "texts_per_second": report.texts_per_second,
            }
        )
    floats = (
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "f1",
        "macro_f1",
        "threshold",
        "best_f1_threshold",
        "ece",
        "texts_per_second",
    )
    frame = pl.DataFrame(rows, schema_overrides={k: pl.Float64 for k in floats})
    con.register("_evaluation_rows", frame)
    try:
        con.execute("insert into moderation.model_evaluations by name select * from _evaluation_rows")
    finally:
        con.unregister("_evaluation_rows")
    return evaluation_id
