"""Compare training recipes in-source and leave-one-source-out (LOSO), in one call.

A recipe is a set of :class:`moderation.train.TrainConfig` overrides
(:data:`moderation.train.RECIPES`). For each recipe, :func:`compare_recipes` runs:

- **in-source**: one training on every source (its own seeded validation split per source);
  per validation source: ROC-AUC, the macro-F1 at a **cross-tuned** threshold (the threshold
  maximising macro-F1 on one half of the rows, applied to the other half, both ways, averaged;
  so the threshold is never tuned on the rows it is scored on) and ECE of the calibrated scores;
- **LOSO**: for each source S, one training on the other sources, then every row of S (minus
  texts that also occur in the training sources) scored: ROC-AUC, ECE. This is the figure a new
  community cares about: how well the model transfers to data it never saw;
- **ensemble with the lexical score**: on the same rows, the mean of the model's and the
  lexical model's ``toxicity`` (no training), reported beside each figure.

Each training writes its checkpoint folder under ``out_root/<recipe>/<fold>`` (model card and
calibration included); the results are written as ``out_root/recipes.json`` and
``out_root/RECIPES.md`` after every training, so an interrupted comparison keeps what it
measured. :func:`recommend` picks the recipe with the best mean LOSO ROC-AUC among those that
trained in under an hour.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from moderation.datasets import LoadedData
from moderation.evaluate import at_threshold, expected_calibration_error, roc_auc
from moderation.train import LABEL, RECIPES, TrainConfig, combine, deduplicate, train_model

log = logging.getLogger(__name__)

RESULTS_JSON = "recipes.json"
RESULTS_MD = "RECIPES.md"
MAX_TRAIN_MINUTES = 60.0
"""A recipe is recommended only if its in-source training took less than this (issue #19)."""


def best_macro_f1_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """The threshold maximising macro-F1 on ``(y, s)``: of the distinct scores (at most 201
    quantiles) the lowest that reaches the best macro-F1, moved halfway down to the next lower
    score (so a new row scored between the two classes falls on the right side)."""
    candidates = np.unique(s)
    if candidates.size > 200:
        candidates = np.unique(np.quantile(s, np.linspace(0, 1, 201)))
    f1 = np.array([at_threshold(y, s, float(t)).macro_f1 or 0.0 for t in candidates])
    i = int(np.flatnonzero(f1 == f1.max())[0])
    return float(candidates[i] if i == 0 else (candidates[i] + candidates[i - 1]) / 2)


def cross_tuned_macro_f1(y_true: Any, y_score: Any, seed: int = 0) -> float | None:
    """Macro-F1 at a threshold tuned on the other half of the rows (2 folds, stratified, seeded; mean of both).

    Returns:
        The mean macro-F1 of the two folds; None when a fold lacks a class.
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(y_score, dtype=np.float64)
    rng = np.random.default_rng(seed)
    fold = np.empty(y.size, dtype=np.int64)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        fold[rng.permutation(idx)] = np.arange(idx.size) % 2
    out = []
    for k in (0, 1):
        tune, test = fold != k, fold == k
        if np.unique(y[tune]).size < 2 or np.unique(y[test]).size < 2:
            return None
        out.append(at_threshold(y[test], s[test], best_macro_f1_threshold(y[tune], s[tune])).macro_f1)
    return float(np.mean(out))


def _metrics(y: np.ndarray, s: np.ndarray, lexical: np.ndarray, *, tuned: bool) -> dict[str, Any]:
    ens = (s + lexical) / 2
    return {
        "n": int(y.size),
        "positives": int(y.sum()),
        "roc_auc": roc_auc(y, s),
        "ensemble_roc_auc": roc_auc(y, ens),
        "lexical_roc_auc": roc_auc(y, lexical),
        "ece": expected_calibration_error(y, s),
        "macro_f1_tuned": cross_tuned_macro_f1(y, s) if tuned else None,
        "ensemble_macro_f1_tuned": cross_tuned_macro_f1(y, ens) if tuned else None,
    }


def _score(folder: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(model toxicity, lexical toxicity) of ``texts``: the checkpoint as the pipeline loads it (calibrated)."""
    from moderation.scorers import LexicalScorer, load_scorer

    model = load_scorer(f"checkpoint:{folder}", batch_size=64)
    return model.score(texts)[LABEL].to_numpy(), LexicalScorer().score(texts)[LABEL].to_numpy()


def _training_record(card: dict[str, Any]) -> dict[str, Any]:
    t = card["training"]
    return {
        "model_id": card["model_id"],
        "train_minutes": round(t["train_seconds"] / 60, 2),
        "steps": t["steps"],
        "epochs_run": t["epochs_run"],
        "stop_reason": t["stop_reason"],
        "train_rows": sum(v["n"] for v in card["split"]["train"].values()),
        "calibration_ece": (card.get("calibration") or {}).get("ece"),
    }


def run_in_source(datasets: Sequence[LoadedData | pl.DataFrame], out: Path, config: TrainConfig) -> dict[str, Any]:
    """Train on every source; per validation source the metrics of :func:`_metrics` (tuned macro-F1 included)."""
    result = train_model(datasets, out, config, progress=False, compare_lexical=False)
    val = pl.read_parquet(out / "validation.parquet")
    scores, lexical = _score(out, val["text"].to_list())
    y, src = val["label"].to_numpy(), val["source"].to_numpy()
    per = {s: _metrics(y[src == s], scores[src == s], lexical[src == s], tuned=True) for s in sorted(set(src.tolist()))}
    return {"fold": "in-source", "training": _training_record(result.card), "per_source": per}


def run_loso(
    datasets: Sequence[LoadedData | pl.DataFrame], held_out: str, out: Path, config: TrainConfig
) -> dict[str, Any]:
    """Train on every source but ``held_out``; score all of ``held_out`` (texts not in training)."""
    data, _ = combine(datasets)
    data, _ = deduplicate(data)
    train = data.filter(pl.col("source") != held_out)
    test = data.filter(pl.col("source") == held_out)
    result = train_model([train], out, config, progress=False, compare_lexical=False)
    scores, lexical = _score(out, test["text"].to_list())
    y = test["label"].to_numpy()
    return {
        "fold": f"loso:{held_out}",
        "held_out": held_out,
        "training": _training_record(result.card),
        "per_source": {held_out: _metrics(y, scores, lexical, tuned=False)},
    }


def compare_recipes(
    datasets: Sequence[LoadedData | pl.DataFrame],
    out_root: Path | str,
    *,
    recipes: Mapping[str, Mapping[str, Any]] | Sequence[str] = tuple(RECIPES),
    base: TrainConfig | None = None,
    in_source: bool = True,
    loso: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train each recipe in-source and leave-one-source-out; write and return the results.

    Args:
        datasets: labelled sets (at least two sources for LOSO).
        out_root: folder for the checkpoints (``<recipe>/<fold>``) and ``recipes.json`` / ``RECIPES.md``.
        recipes: names in :data:`moderation.train.RECIPES`, or ``{name: overrides}``.
        base: the configuration each recipe's overrides apply to (limits such as ``max_minutes``).
        in_source / loso: which folds to run.
        on_result: called with each fold's result as it finishes.

    Returns:
        ``{"recipes": {name: {"overrides", "folds": [fold results]}}, "recommended": name | None}``.

    Raises:
        KeyError: an unknown recipe name. moderation.train.TrainingError: a fold cannot train.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    chosen = dict(recipes) if isinstance(recipes, Mapping) else {name: RECIPES[name] for name in recipes}
    base = base or TrainConfig()
    sources = sorted(set(combine(datasets)[0]["source"].to_list()))
    results: dict[str, Any] = {"recipes": {}, "recommended": None, "sources": sources}
    for name, overrides in chosen.items():
        config = replace(base, **dict(overrides))
        entry = results["recipes"].setdefault(name, {"overrides": dict(overrides), "folds": []})
        folds: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        if in_source:
            folds.append(("in-source", lambda c=config, n=name: run_in_source(datasets, out_root / n / "in-source", c)))
        if loso and len(sources) > 1:
            for s in sources:
                folds.append(
                    (f"loso:{s}", lambda c=config, n=name, s=s: run_loso(datasets, s, out_root / n / f"loso-{s}", c))
                )
        for label, run in folds:
            log.info("recipe %s, fold %s: training", name, label)
            fold = run()
            entry["folds"].append(fold)
            results["recommended"] = recommend(results)
            write_results(out_root, results)
            if on_result:
                on_result({"recipe": name, **fold})
    return results


def recommend(results: Mapping[str, Any], max_minutes: float = MAX_TRAIN_MINUTES) -> str | None:
    """The recipe with the best mean LOSO ROC-AUC whose trainings each took under ``max_minutes``
    (without LOSO folds: the best mean in-source ROC-AUC); None when nothing qualifies."""
    best: tuple[float, str] | None = None
    for name, entry in results["recipes"].items():
        folds = entry["folds"]
        if not folds or any(f["training"]["train_minutes"] >= max_minutes for f in folds):
            continue
        chosen = [f for f in folds if f["fold"].startswith("loso:")] or folds
        aucs = [m["roc_auc"] for f in chosen for m in f["per_source"].values() if m["roc_auc"] is not None]
        if aucs and (best is None or float(np.mean(aucs)) > best[0]):
            best = (float(np.mean(aucs)), name)
    return best[1] if best else None


def _f(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def render_results(results: Mapping[str, Any]) -> str:
    """The recipe table (Markdown): one row per recipe and fold, one column group per source."""
    sources = results["sources"]
    head = ["recipe", "fold", "train min", "steps (epochs)"]
    for s in sources:
        head += [f"{s} ROC-AUC (+lexical)", f"{s} macro-F1 tuned", f"{s} ECE"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + " |"]
    for name, entry in results["recipes"].items():
        for fold in entry["folds"]:
            t = fold["training"]
            row = [name, fold["fold"], _f(t["train_minutes"], 1), f"{t['steps']} ({t['epochs_run']})"]
            for s in sources:
                m = fold["per_source"].get(s)
                if m is None:
                    row += ["", "", ""]
                    continue
                row += [
                    f"{_f(m['roc_auc'])} ({_f(m['ensemble_roc_auc'])})",
                    _f(m["macro_f1_tuned"]),
                    _f(m["ece"]),
                ]
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(f"Recommended (best mean LOSO ROC-AUC, trained in under {MAX_TRAIN_MINUTES:.0f} min): "
                 f"{results.get('recommended') or '–'}")  # fmt: skip
    cal_rows = []
    for name, entry in results["recipes"].items():
        for fold in entry["folds"]:
            for label, ece in (fold["training"].get("calibration_ece") or {}).items():
                cal_rows.append(
                    f"| {name} | {fold['fold']} | {label} | {_f(ece['before'].get('all'))} | {_f(ece['after'].get('all'))} | "
                    + "; ".join(f"{k} {_f(v)}" for k, v in ece["after"].items() if k != "all")
                    + " |"
                )
    if cal_rows:
        lines += [
            "",
            "Calibration per label on each training's validation split (ECE, 15 bins; after = calibrated, out of fold):",
            "",
            "| recipe | fold | label | ECE raw | ECE calibrated | calibrated per source |",
            "| --- | --- | --- | ---: | ---: | --- |",
            *cal_rows,
        ]
    return "\n".join(lines) + "\n"


def write_results(out_root: Path, results: Mapping[str, Any]) -> None:
    """Write ``recipes.json`` and ``RECIPES.md`` into ``out_root``."""
    (out_root / RESULTS_JSON).write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    (out_root / RESULTS_MD).write_text(render_results(results), encoding="utf-8")
