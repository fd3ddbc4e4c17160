"""The data side of training (:mod:`moderation.train`): combining labelled sets, dropping
duplicate texts, the stratified seeded split with per-source caps, length-bucketed and
class-balanced batches, and the label matrix with its mask for the multi-label loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from moderation.datasets import AUX_LABELS, SCHEMA, LoadedData

LABEL = "toxicity"
"""The main label (the frames' ``label`` column)."""


class TrainingError(RuntimeError):
    """Training cannot start or produce a model (no data, one class only, bad configuration)."""


@dataclass
class DataSummary:
    """One input of a training run, for the model card."""

    source: str
    path: str | None
    sha256: str | None
    rows_read: int
    rows_loaded: int
    positives: int
    preset: str | None = None
    notes: list[str] = field(default_factory=list)
    aux_positives: dict[str, int] = field(default_factory=dict)
    """Per auxiliary label the set carries: rows labelled 1 (labels it lacks are absent)."""


def _norm_key(text: str) -> str:
    return " ".join(text.lower().split())


def deduplicate(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop rows whose normalised text (lower case, single spaces) was seen before; return (frame, dropped)."""
    keyed = frame.with_columns(_key=pl.col("text").map_elements(_norm_key, return_dtype=pl.String))
    kept = keyed.unique(subset="_key", keep="first", maintain_order=True).drop("_key")
    return kept, frame.height - kept.height


def split_train_validation(
    frame: pl.DataFrame,
    *,
    val_fraction: float,
    seed: int,
    max_train_per_source: int | None = None,
    max_val_per_source: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Seeded split stratified by (source, label); then cap each source's parts (stratified too).

    Each stratum of ``k`` rows sends ``round(k * val_fraction)`` (at least 1 when ``k >= 2``)
    to validation. A cap keeps a seeded random subset of the source's part, preserving its
    label ratio.

    Returns:
        ``(train, validation)`` frames with the input's columns, in a seeded random order.
    """
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for (_source,), part in sorted(frame.group_by(["source"]), key=lambda kv: str(kv[0][0])):
        tr_src, va_src = [], []
        for (_label,), stratum in sorted(part.group_by(["label"]), key=lambda kv: int(kv[0][0])):
            idx = rng.permutation(stratum.height)
            n_val = round(stratum.height * val_fraction)
            if stratum.height >= 2:
                n_val = min(max(n_val, 1), stratum.height - 1)
            va_src.append(stratum[idx[:n_val].tolist()])
            tr_src.append(stratum[idx[n_val:].tolist()])
        train_parts.append(_cap(pl.concat(tr_src), max_train_per_source, rng))
        val_parts.append(_cap(pl.concat(va_src), max_val_per_source, rng))
    train, val = pl.concat(train_parts), pl.concat(val_parts)
    return train[rng.permutation(train.height).tolist()], val[rng.permutation(val.height).tolist()]


def _cap(part: pl.DataFrame, cap: int | None, rng: np.random.Generator) -> pl.DataFrame:
    """At most ``cap`` rows of ``part``, stratified by label (seeded)."""
    if cap is None or part.height <= cap:
        return part
    out = []
    for (_label,), stratum in sorted(part.group_by(["label"]), key=lambda kv: int(kv[0][0])):
        k = round(cap * stratum.height / part.height)
        out.append(stratum[rng.permutation(stratum.height)[:k].tolist()])
    return pl.concat(out)


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, bucket: int = 50
) -> list[np.ndarray]:
    """Batches of indices with similar lengths: shuffle, sort within chunks of ``bucket`` batches
    by length, cut into batches, shuffle the batches. Less padding, still random order."""
    order = rng.permutation(len(lengths))
    lens = np.asarray(lengths)
    batches: list[np.ndarray] = []
    chunk = batch_size * bucket
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lens[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def combine(datasets: Sequence[LoadedData | pl.DataFrame]) -> tuple[pl.DataFrame, list[DataSummary]]:
    """Concatenate loaded sets into one ``text, label, source, insult, identity_attack`` frame
    (an auxiliary label a set lacks is null) plus their summaries."""
    frames, summaries = [], []
    for item in datasets:
        if isinstance(item, LoadedData):
            f = item.frame
            summaries.append(
                DataSummary(
                    source=f["source"][0] if f.height else item.path.stem,
                    path=str(item.path),
                    sha256=item.sha256,
                    rows_read=item.rows_read,
                    rows_loaded=f.height,
                    positives=int(f["label"].sum()),
                    preset=item.preset,
                    notes=list(item.notes),
                    aux_positives={c: int(f[c].sum()) for c in AUX_LABELS if c in f.columns},
                )
            )
        else:
            f = item
            for (src,), part in f.group_by(["source"]):
                summaries.append(
                    DataSummary(
                        source=str(src),
                        path=None,
                        sha256=None,
                        rows_read=part.height,
                        rows_loaded=part.height,
                        positives=int(part["label"].sum()),
                        aux_positives={c: int(part[c].sum()) for c in AUX_LABELS if c in part.columns},
                    )
                )
        f = f.with_columns(pl.lit(None, pl.Int8).alias(c) for c in AUX_LABELS if c not in f.columns)
        frames.append(f.select(*SCHEMA, *AUX_LABELS).cast({**SCHEMA, **dict.fromkeys(AUX_LABELS, pl.Int8())}))  # type: ignore[arg-type]
    if not frames:
        raise TrainingError("no training data: pass at least one --data FILE (or --from-decisions)")
    return pl.concat(frames), summaries


def trainable_labels(train: pl.DataFrame, wanted: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The labels of ``wanted`` the training split can teach (both classes among its labelled
    rows), in order, and why each other one is left out."""
    keep, dropped = [], {}
    for label in wanted:
        column = "label" if label == LABEL else label
        values = train[column].drop_nulls() if column in train.columns else pl.Series([], dtype=pl.Int8)
        if label == LABEL or values.n_unique() == 2:
            keep.append(label)
        else:
            dropped[label] = f"{values.len()} labelled training rows, classes {sorted(values.unique().to_list())}"
    return keep, dropped


def label_matrix(frame: pl.DataFrame, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(targets, mask)``, both float32 of shape ``(rows, len(labels))``: the 0/1 labels (0 where
    unknown) and 1 where the row's set carries the label, 0 where it does not (:func:`masked_bce`)."""
    cols = [frame["label" if label == LABEL else label] for label in labels]
    targets = np.stack([c.fill_null(0).to_numpy().astype(np.float32) for c in cols], axis=1)
    mask = np.stack([c.is_not_null().to_numpy().astype(np.float32) for c in cols], axis=1)
    return targets, mask


def balanced_sample(train: pl.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Row indexes of one class-balanced epoch: as many draws as rows, split equally over the
    (source, toxicity label) strata present, each drawn with replacement (seeded)."""
    strata = (
        train.with_row_index("_i")
        .group_by("source", "label", maintain_order=True)
        .agg(pl.col("_i"))
        .sort("source", "label")
    )
    per = max(1, train.height // strata.height)
    return np.concatenate([rng.choice(np.asarray(idx), size=per, replace=True) for idx in strata["_i"].to_list()])
