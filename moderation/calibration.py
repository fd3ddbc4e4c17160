"""Per-label probability calibration of a checkpoint's scores, fitted on its validation split.

A calibrated score of 0.8 should mean that about 80 % of such items are positive. The
community model's sigmoid outputs are not calibrated by construction (class imbalance,
early stopping, a mix of sources with different base rates), so each label gets a monotone
map fitted on the held-out validation rows:

- ``platt``: Platt scaling on the logit, ``p' = sigmoid(a * logit(p) + b)`` (Platt 1999;
  temperature scaling, Guo et al. 2017, is the case ``b = 0``), fitted by scikit-learn's
  ``LogisticRegression`` (L2 penalty negligible at ``C = 1e6``). Strictly increasing, so
  ROC-AUC and the ranking are unchanged.
- ``isotonic``: scikit-learn's ``IsotonicRegression`` (Zadrozny & Elkan 2002), stored as its
  breakpoints and applied by linear interpolation (what ``IsotonicRegression.predict`` does),
  clipped to the range seen. Non-decreasing: it may tie scores, which can move ROC-AUC a little.
- ``auto`` (default): whichever of the two has the lower **cross-fitted** ECE on the
  validation rows (2 folds: fit on one half, measure on the other), so the choice is not
  judged on the rows it was fitted on.

ECE is :func:`moderation.evaluate.expected_calibration_error` (15 equal-width bins, Naeini et
al. 2015; Guo et al. 2017 eq. 3, for the positive-class probability).

The fitted maps are stored beside the weights as ``DIR/calibration.json``::

    {"version": 1, "method": "auto", "fitted_on": "validation.parquet", "n_bins": 15,
     "labels": {"toxicity": {"method": "platt", "a": 0.91, "b": -0.2, "n": 3590, ...},
                "insult": {"method": "isotonic", "x": [...], "y": [...], ...}},
     "ece": {"toxicity": {"before": {"all": 0.05, "olid": ...}, "after": {...}}, ...}}

:class:`moderation.scorers.DetoxifyScorer` applies it when it loads a checkpoint folder
holding the file (its model id then ends in ``+cal-<8 hex of the file's sha256>``, so
calibrated and raw scores are never mixed in ``moderation.scores``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moderation.evaluate import DEFAULT_ECE_BINS, expected_calibration_error

CALIBRATION_FILE = "calibration.json"
"""File name of the calibration maps inside a checkpoint folder."""
METHODS: tuple[str, ...] = ("auto", "platt", "isotonic")
"""Calibration methods (see the module docstring)."""
_EPS = 1e-6


class CalibrationError(ValueError):
    """Calibration cannot be fitted or applied (unknown method, one class only, bad file)."""


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def fit_calibrator(y_true: Any, y_score: Any, method: str = "platt") -> dict[str, Any]:
    """Fit one label's map on 0/1 labels and scores in [0, 1].

    Args:
        y_true: shape ``(n,)``, 0/1 with both classes present.
        y_score: shape ``(n,)``, the model's probabilities.
        method: ``platt`` or ``isotonic`` (``auto`` is resolved by :func:`fit_label`).

    Returns:
        A JSON-ready dict: ``{"method": "platt", "a", "b"}`` or
        ``{"method": "isotonic", "x": [...], "y": [...]}``.

    Raises:
        CalibrationError: unknown method, mismatched shapes, or a single class.
    """
    y = np.asarray(y_true, dtype=np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise CalibrationError(f"y_true has {y.size} values but y_score {s.size}")
    if np.unique(y).size < 2:
        raise CalibrationError(f"calibration needs both classes; all {y.size} labels are {y[:1].tolist()}")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(s).reshape(-1, 1), y)
        return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    raise CalibrationError(f"unknown calibration method {method!r}; valid: platt | isotonic")


def apply_calibrator(calibrator: Mapping[str, Any], y_score: Any) -> np.ndarray:
    """The calibrated probabilities of ``y_score`` (shape kept, float64, in [0, 1]).

    Raises:
        CalibrationError: the dict names no known method.
    """
    s = np.asarray(y_score, dtype=np.float64)
    method = calibrator.get("method")
    if method == "platt":
        return 1.0 / (1.0 + np.exp(-(calibrator["a"] * _logit(s) + calibrator["b"])))
    if method == "isotonic":
        return np.interp(s, np.asarray(calibrator["x"], float), np.asarray(calibrator["y"], float))
    raise CalibrationError(f"calibration map has unknown method {method!r}")


def cross_fitted(y_true: Any, y_score: Any, method: str, *, seed: int = 0, folds: int = 2) -> np.ndarray:
    """Out-of-fold calibrated scores: each fold is calibrated by a map fitted on the others
    (stratified by label, seeded), so measuring them does not reward over-fitting.

    Raises:
        CalibrationError: a fold's training part has one class only.
    """
    y = np.asarray(y_true, dtype=np.int64).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    fold = np.empty(y.size, dtype=np.int64)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        fold[rng.permutation(idx)] = np.arange(idx.size) % folds
    out = np.empty(y.size, dtype=np.float64)
    for k in range(folds):
        test = fold == k
        out[test] = apply_calibrator(fit_calibrator(y[~test], s[~test], method), s[test])
    return out


def fit_label(y_true: Any, y_score: Any, method: str = "auto", *, n_bins: int = DEFAULT_ECE_BINS) -> dict[str, Any]:
    """Fit one label on all given rows; for ``auto`` pick the method with the lower
    cross-fitted ECE. The dict also records ``n``, ``positives`` and ``cv_ece`` per method tried.

    Raises:
        CalibrationError: unknown method or one class only.
    """
    if method not in METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; valid: {' | '.join(METHODS)}")
    y = np.asarray(y_true, dtype=np.int64).ravel()
    tried = ["platt", "isotonic"] if method == "auto" else [method]
    cv: dict[str, float | None] = {}
    for m in tried:
        try:
            cv[m] = expected_calibration_error(y, cross_fitted(y, y_score, m), n_bins)
        except CalibrationError:
            cv[m] = None  # too few of one class for 2 folds: judged on the fit alone
    best = min(tried, key=lambda m: math.inf if cv[m] is None else cv[m])  # type: ignore[arg-type,return-value]
    return fit_calibrator(y, y_score, best) | {"n": int(y.size), "positives": int(y.sum()), "cv_ece": cv}


def ece_by_group(
    y_true: Any, y_score: Any, groups: Sequence[str], n_bins: int = DEFAULT_ECE_BINS
) -> dict[str, float | None]:
    """ECE per group value and over ``all`` rows (sorted group names, then ``all``)."""
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    g = np.asarray(groups)
    out = {
        str(name): expected_calibration_error(y[g == name], s[g == name], n_bins) for name in sorted(set(g.tolist()))
    }
    out["all"] = expected_calibration_error(y, s, n_bins)
    return out


def calibrate_scores(
    scores: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    sources: Sequence[str],
    *,
    method: str = "auto",
    n_bins: int = DEFAULT_ECE_BINS,
) -> dict[str, Any]:
    """Fit every label of ``scores`` that has labelled rows of both classes.

    Args:
        scores: label -> raw scores, shape ``(n,)`` each.
        labels: label -> 0/1 values, shape ``(n,)``, with ``-1`` where the row is unlabelled.
        sources: shape ``(n,)``: each row's source (ECE is reported per source).

    Returns:
        The content of ``calibration.json`` without ``fitted_on`` (see the module docstring):
        ``labels`` (the maps), ``ece`` (per label: ``before`` = raw, ``after`` = cross-fitted
        calibrated, each per source and ``all``), ``skipped`` (label -> why).
    """
    src = np.asarray(sources)
    out: dict[str, Any] = {"version": 1, "method": method, "n_bins": n_bins, "labels": {}, "ece": {}, "skipped": {}}
    for label, raw in scores.items():
        y_all = np.asarray(labels.get(label, np.full(len(raw), -1)))
        known = y_all >= 0
        y, s = y_all[known], np.asarray(raw, dtype=np.float64)[known]
        if np.unique(y).size < 2:
            out["skipped"][label] = f"{int(known.sum())} labelled validation rows, classes {np.unique(y).tolist()}"
            continue
        fitted = fit_label(y, s, method, n_bins=n_bins)
        out["labels"][label] = fitted
        try:
            after = cross_fitted(y, s, fitted["method"])
        except CalibrationError:
            after = apply_calibrator(fitted, s)
        out["ece"][label] = {
            "before": ece_by_group(y, s, src[known].tolist(), n_bins),
            "after": ece_by_group(y, after, src[known].tolist(), n_bins),
        }
    return out


def write_calibration(folder: Path, calibration: Mapping[str, Any]) -> Path:
    """Write ``folder/calibration.json`` (atomically) and return its path."""
    path = Path(folder) / CALIBRATION_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(calibration, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_calibration(folder: Path) -> tuple[dict[str, Any], str] | None:
    """``(calibration, sha8)`` of ``folder/calibration.json``, or None when the folder has none.

    Raises:
        CalibrationError: the file is not valid JSON or a map names no known method.
    """
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
        maps = data["labels"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CalibrationError(f"{path} is not a calibration file: {exc}") from exc
    for label, cal in maps.items():
        if cal.get("method") not in ("platt", "isotonic"):
            raise CalibrationError(f"{path}: label {label!r} has unknown method {cal.get('method')!r}")
    return data, hashlib.sha256(raw).hexdigest()[:8]
