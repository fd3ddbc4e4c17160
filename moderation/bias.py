"""Unintended identity-term bias of a toxicity model, with the Jigsaw metrics.

A model trained on abusive text learns that words such as *gay*, *muslim* or *black* occur in
abuse, and then scores harmless texts that merely mention them as toxic (Dixon et al., "Measuring
and Mitigating Unintended Bias in Text Classification", AIES 2018). We measure it per subgroup
(texts mentioning any of a subgroup's identity terms) with the threshold-free metrics of
Borkan, Dixon, Sorensen, Thain & Vasserman, "Nuanced Metrics for Measuring Unintended Bias with
Real Data for Text Classification" (WWW 2019 Companion), used by the Jigsaw Unintended Bias in
Toxicity Classification competition (Kaggle, 2019):

- **Subgroup AUC**: ROC-AUC on the subgroup's texts only. Low: the model ranks toxic and
  non-toxic texts *about this group* poorly.
- **BPSN AUC** (Background Positive, Subgroup Negative): ROC-AUC on the subgroup's non-toxic
  texts plus the other (background) toxic texts. Low: harmless mentions of the group score above
  real abuse elsewhere — false positives driven by the identity term.
- **BNSP AUC** (Background Negative, Subgroup Positive): ROC-AUC on the subgroup's toxic texts
  plus background non-toxic texts. Low: abuse aimed at the group scores below harmless text
  elsewhere — the model misses it.
- **Generalized mean** of each metric over subgroups, ``M_p = (mean(m_s ** p)) ** (1 / p)``
  with ``p = -5`` (weights the worst subgroups most), and the competition's **final metric**
  ``0.25 * overall AUC + 0.25 * (M_p(Subgroup) + M_p(BPSN) + M_p(BNSP))``.

Moderators feel BPSN failures as false alarms, so we also report the **false-positive rate on
non-toxic texts that mention each subgroup** at the flag threshold, beside the background's
(non-toxic texts that do not).

Matching is case-insensitive on whole words (``\\b`` boundaries); multi-word terms match as
phrases. An AUC is None when the subgroup has fewer than ``min_subgroup_size`` texts or the
metric's set lacks one class.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from moderation.evaluate import roc_auc

if TYPE_CHECKING:
    import duckdb

DEFAULT_SUBGROUPS: dict[str, tuple[str, ...]] = {
    "female": ("woman", "women", "female", "females", "girl", "girls", "lady", "ladies"),
    "male": ("man", "men", "male", "males", "boy", "boys"),
    "gay_or_lesbian": ("gay", "gays", "lesbian", "lesbians", "homosexual", "homosexuals", "queer", "lgbt"),
    "transgender": ("transgender", "trans", "transsexual"),
    "christian": ("christian", "christians", "christianity", "catholic", "catholics"),
    "jewish": ("jew", "jews", "jewish", "judaism"),
    "muslim": ("muslim", "muslims", "islam", "islamic"),
    "black": ("black", "blacks", "african american", "african americans"),
    "white": ("white", "whites"),
    "asian": ("asian", "asians", "chinese"),
    "latino": ("latino", "latina", "latinos", "hispanic", "hispanics", "mexican", "mexicans"),
    "mental_illness": ("mentally ill", "mental illness", "psychiatric", "schizophrenic"),
    "disability": ("disabled", "disability", "disabilities", "handicapped"),
}
"""Default subgroups and their terms: the identities annotated in the Jigsaw Unintended Bias
data (male, female, homosexual_gay_or_lesbian, christian, jewish, muslim, black, white,
psychiatric_or_mental_illness; Borkan et al. 2019) plus transgender, asian, latino and
disability, with common singular/plural forms. Replace with ``--term`` / ``--terms-file``."""

GENERALIZED_MEAN_POWER = -5.0
"""Power ``p`` of the generalized mean in the Jigsaw Unintended Bias competition."""


def parse_terms_file(path: Path) -> dict[str, tuple[str, ...]]:
    """Read subgroups from a text file: ``group: term, term`` or a bare ``term`` (its own group)
    per line; blank lines and ``#`` comments are ignored.

    Raises:
        OSError: the file cannot be read.
        ValueError: no subgroup in the file, or a group with no terms (names the line).
    """
    groups: dict[str, tuple[str, ...]] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, rest = line.partition(":")
        terms = tuple(t.strip().lower() for t in (rest if sep else name).split(",") if t.strip())
        if not terms:
            raise ValueError(f"{path}:{number}: group {name.strip()!r} has no terms; write 'group: term, term'")
        groups[name.strip()] = terms
    if not groups:
        raise ValueError(f"{path}: no subgroups; write one 'group: term, term' per line")
    return groups


def mentions(texts: Sequence[str], terms: Sequence[str]) -> np.ndarray:
    """Boolean mask (shape ``(len(texts),)``): which texts mention any of ``terms`` as whole words."""
    if not terms:
        raise ValueError("a subgroup needs at least one term")
    pattern = re.compile(
        r"\b(?:" + "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in terms) + r")\b", re.IGNORECASE
    )
    return np.fromiter((bool(pattern.search(t)) for t in texts), dtype=bool, count=len(texts))


def subgroup_auc(y_true: np.ndarray, y_score: np.ndarray, in_group: np.ndarray) -> float | None:
    """ROC-AUC on the subgroup's texts (Borkan et al. 2019); None if one class is missing."""
    return roc_auc(y_true[in_group], y_score[in_group])


def bpsn_auc(y_true: np.ndarray, y_score: np.ndarray, in_group: np.ndarray) -> float | None:
    """ROC-AUC on subgroup negatives + background positives (Borkan et al. 2019)."""
    mask = (in_group & (y_true == 0)) | (~in_group & (y_true == 1))
    return roc_auc(y_true[mask], y_score[mask])


def bnsp_auc(y_true: np.ndarray, y_score: np.ndarray, in_group: np.ndarray) -> float | None:
    """ROC-AUC on subgroup positives + background negatives (Borkan et al. 2019)."""
    mask = (in_group & (y_true == 1)) | (~in_group & (y_true == 0))
    return roc_auc(y_true[mask], y_score[mask])


def false_positive_rate(y_true: np.ndarray, y_score: np.ndarray, mask: np.ndarray, threshold: float) -> float | None:
    """Share of the non-toxic texts in ``mask`` scored ``>= threshold``; None without such texts."""
    negatives = mask & (y_true == 0)
    n = int(negatives.sum())
    return float((y_score[negatives] >= threshold).sum() / n) if n else None


def generalized_mean(values: Sequence[float | None], power: float = GENERALIZED_MEAN_POWER) -> float | None:
    """``(mean(v ** p)) ** (1 / p)`` over the defined values (Jigsaw competition); None if none."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if not v.size:
        return None
    if np.any(v == 0) and power < 0:
        return 0.0
    return float(np.mean(v**power) ** (1.0 / power))


@dataclass(frozen=True)
class SubgroupResult:
    """Bias metrics for one subgroup (AUCs in [0, 1], rates as fractions)."""

    subgroup: str
    terms: tuple[str, ...]
    n: int
    n_positive: int
    n_negative: int
    subgroup_auc: float | None
    bpsn_auc: float | None
    bnsp_auc: float | None
    subgroup_fpr: float | None
    background_fpr: float | None


@dataclass
class AuditResult:
    """A whole bias audit: overall figures, one :class:`SubgroupResult` per subgroup, and the
    generalized means and final metric of the Jigsaw competition."""

    n: int
    n_positive: int
    threshold: float
    overall_auc: float | None
    background_fpr: float | None
    min_subgroup_size: int
    power: float
    subgroups: list[SubgroupResult] = field(default_factory=list)
    generalized_means: dict[str, float | None] = field(default_factory=dict)
    final_metric: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def audit(
    texts: Sequence[str],
    y_true: Any,
    y_score: Any,
    subgroups: Mapping[str, Sequence[str]] = DEFAULT_SUBGROUPS,
    *,
    threshold: float,
    min_subgroup_size: int = 10,
    power: float = GENERALIZED_MEAN_POWER,
) -> AuditResult:
    """Compute the bias metrics of scores ``y_score`` against labels ``y_true`` for ``subgroups``.

    Args:
        texts: the scored texts (length n), searched for each subgroup's terms.
        y_true: 0/1 labels, shape ``(n,)``.
        y_score: probabilities in [0, 1], shape ``(n,)``.
        subgroups: subgroup name -> identity terms.
        threshold: flag threshold for the false-positive rates.
        min_subgroup_size: AUCs are None for subgroups with fewer texts (too noisy to read).
        power: generalized-mean power (-5 in the competition).

    Raises:
        ValueError: lengths differ, labels not 0/1, scores outside [0, 1], empty term list.
    """
    from moderation.evaluate import _arrays

    y, s = _arrays(y_true, y_score)
    texts = list(texts)
    if len(texts) != y.size:
        raise ValueError(f"{len(texts)} texts but {y.size} labels")
    results = []
    everything = np.ones(y.size, dtype=bool)
    for name, terms in subgroups.items():
        in_group = mentions(texts, tuple(terms))
        n = int(in_group.sum())
        big_enough = n >= min_subgroup_size
        results.append(
            SubgroupResult(
                subgroup=name,
                terms=tuple(terms),
                n=n,
                n_positive=int(y[in_group].sum()),
                n_negative=int((y[in_group] == 0).sum()),
                subgroup_auc=subgroup_auc(y, s, in_group) if big_enough else None,
                bpsn_auc=bpsn_auc(y, s, in_group) if big_enough else None,
                bnsp_auc=bnsp_auc(y, s, in_group) if big_enough else None,
                subgroup_fpr=false_positive_rate(y, s, in_group, threshold),
                background_fpr=false_positive_rate(y, s, ~in_group, threshold),
            )
        )
    overall = roc_auc(y, s)
    means = {
        metric: generalized_mean([getattr(r, metric) for r in results], power)
        for metric in ("subgroup_auc", "bpsn_auc", "bnsp_auc")
    }
    final = None
    if overall is not None and all(v is not None for v in means.values()):
        final = 0.25 * overall + 0.25 * sum(means.values())  # type: ignore[arg-type]
    return AuditResult(
        n=int(y.size),
        n_positive=int(y.sum()),
        threshold=float(threshold),
        overall_auc=overall,
        background_fpr=false_positive_rate(y, s, everything, threshold),
        min_subgroup_size=min_subgroup_size,
        power=power,
        subgroups=results,
        generalized_means=means,
        final_metric=final,
    )


def record_bias_audit(
    con: duckdb.DuckDBPyConnection,
    result: AuditResult,
    *,
    model_id: str,
    model_version: str | None,
    is_fallback: bool,
    dataset: str,
    dataset_sha256: str | None,
    score_label: str = "toxicity",
    audited_at: datetime | None = None,
) -> str:
    """Insert one row per subgroup into ``moderation.bias_audit`` (migration 002); return the audit id.

    The whole audit shares one ``audit_id`` (a UUID4) and ``audited_at`` (naive UTC).
    """
    import polars as pl

    audit_id = str(uuid.uuid4())
    at = (audited_at or datetime.now(UTC)).replace(tzinfo=None)
    rows = pl.DataFrame(
        [
            {
                "audit_id": audit_id,
                "audited_at": at,
                "model_id": model_id,
                "model_version": model_version,
                "is_fallback": is_fallback,
                "dataset": dataset,
                "dataset_sha256": dataset_sha256,
                "score_label": score_label,
                "subgroup": r.subgroup,
                "terms": list(r.terms),
                "n_subgroup": r.n,
                "n_subgroup_positive": r.n_positive,
                "n_subgroup_negative": r.n_negative,
                "subgroup_auc": r.subgroup_auc,
                "bpsn_auc": r.bpsn_auc,
                "bnsp_auc": r.bnsp_auc,
                "subgroup_fpr": r.subgroup_fpr,
                "background_fpr": r.background_fpr,
                "threshold": result.threshold,
                "overall_auc": result.overall_auc,
                "final_metric": result.final_metric,
            }
            for r in result.subgroups
        ],
        schema_overrides={
            k: pl.Float64
            for k in (
                "subgroup_auc",
                "bpsn_auc",
                "bnsp_auc",
                "subgroup_fpr",
                "background_fpr",
                "overall_auc",
                "final_metric",
            )
        },
    )
    con.register("_bias_rows", rows)
    try:
        con.execute("insert into moderation.bias_audit by name select * from _bias_rows")
    finally:
        con.unregister("_bias_rows")
    return audit_id
