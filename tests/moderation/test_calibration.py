"""Calibration: ECE against a hand-worked example of the formula (Guo et al. 2017, eq. 3, for the
positive-class probability; Naeini et al. 2015), calibration lowering ECE on generated
miscalibrated scores (Hypothesis), and the engine applying calibration.json."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moderation.calibration import (
    CALIBRATION_FILE,
    CalibrationError,
    apply_calibrator,
    calibrate_scores,
    cross_fitted,
    fit_calibrator,
    fit_label,
    read_calibration,
)
from moderation.evaluate import expected_calibration_error
from moderation.scorers import load_scorer
from moderation.tiny import build_tiny_checkpoint


def test_ece_worked_by_hand() -> None:
    """ECE = sum_m |B_m|/n * |acc(B_m) - conf(B_m)|, here with 2 equal-width bins:
    bin [0, 0.5): scores 0.1, 0.4 (labels 0, 0): conf 0.25, acc 0 -> 2/5 * 0.25 = 0.10;
    bin [0.5, 1]: scores 0.6, 0.9, 1.0 (labels 1, 0, 1): conf 2.5/3, acc 2/3 -> 3/5 * 1/6 = 0.10."""
    y = [0, 0, 1, 0, 1]
    s = [0.1, 0.4, 0.6, 0.9, 1.0]
    assert expected_calibration_error(y, s, n_bins=2) == pytest.approx(0.20)


def _miscalibrated(seed: int, n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities q; the 'model' reports sigmoid(a * logit(q) + b)."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.02, 0.98, n)
    y = (rng.uniform(size=n) < q).astype(np.int64)
    p = 1 / (1 + np.exp(-(a * np.log(q / (1 - q)) + b)))
    return y, p


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    a=st.sampled_from([0.3, 0.5, 2.0, 3.0]),
    b=st.floats(-1.5, 1.5),
)
def test_calibration_lowers_ece_out_of_sample(seed: int, a: float, b: float) -> None:
    """Fitted on one half, measured on the other: ECE at least halves, to under 0.05 (the sampling
    noise of 3,000 rows in 15 bins is about 0.02-0.04), for both methods; Platt keeps the ranking."""
    y, p = _miscalibrated(seed, 6000, a, b)
    fit, test = slice(0, 3000), slice(3000, None)
    raw = expected_calibration_error(y[test], p[test])
    assert raw is not None and raw > 0.04  # the generated scores are clearly miscalibrated
    for method in ("platt", "isotonic"):
        cal = apply_calibrator(fit_calibrator(y[fit], p[fit], method), p[test])
        after = expected_calibration_error(y[test], cal)
        assert after < raw / 2 and after < 0.05, (method, raw, after)
    platt = apply_calibrator(fit_calibrator(y[fit], p[fit], "platt"), p[test])
    assert np.array_equal(np.argsort(platt, kind="stable"), np.argsort(p[test], kind="stable"))


def test_fit_label_auto_picks_the_lower_cross_fitted_ece() -> None:
    y, p = _miscalibrated(1, 4000, 3.0, 1.0)
    fitted = fit_label(y, p, "auto")
    cv = fitted["cv_ece"]
    assert set(cv) == {"platt", "isotonic"} and fitted["method"] == min(cv, key=cv.get)
    assert cv[fitted["method"]] == pytest.approx(expected_calibration_error(y, cross_fitted(y, p, fitted["method"])))
    assert fitted["n"] == 4000 and fitted["positives"] == int(y.sum())


def test_calibrate_scores_skips_unlabelled_and_one_class_labels() -> None:
    y, p = _miscalibrated(2, 1000, 0.5, 0.0)
    out = calibrate_scores(
        {"toxicity": p, "insult": p, "identity_attack": p},
        {"toxicity": y, "insult": np.where(np.arange(1000) < 500, y, -1), "identity_attack": np.zeros(1000)},
        ["a" if i % 2 else "b" for i in range(1000)],
        method="platt",
    )
    assert set(out["labels"]) == {"toxicity", "insult"} and "identity_attack" in out["skipped"]
    assert out["labels"]["insult"]["n"] == 500
    assert set(out["ece"]["toxicity"]["before"]) == {"a", "b", "all"}
    assert out["ece"]["toxicity"]["after"]["all"] < out["ece"]["toxicity"]["before"]["all"]
    with pytest.raises(CalibrationError, match="both classes"):
        fit_calibrator([1, 1, 1], [0.2, 0.5, 0.9])


def test_engine_applies_calibration_json(tmp_path: Path) -> None:
    folder = build_tiny_checkpoint(tmp_path / "tiny-bert")
    texts = ["you are an idiot", "thanks for the answer", "the ale was fine"]
    raw = load_scorer(f"checkpoint:{folder}")
    raw_scores = raw.score(texts)
    # a constant map for toxicity (a = 0, b = 0: every score becomes sigmoid(0) = 0.5), identity for insult
    maps = {
        "toxicity": {"method": "platt", "a": 0.0, "b": 0.0},
        "insult": {"method": "isotonic", "x": [0.0, 1.0], "y": [0.0, 1.0]},
    }
    (folder / CALIBRATION_FILE).write_text(json.dumps({"version": 1, "labels": maps}))
    cal = load_scorer(f"checkpoint:{folder}")
    sha8 = hashlib.sha256((folder / CALIBRATION_FILE).read_bytes()).hexdigest()[:8]
    assert cal.model_id == f"{raw.model_id}+cal-{sha8}"
    got = cal.score(texts)
    assert got["toxicity"].to_list() == [0.5, 0.5, 0.5]
    assert got["insult"].to_list() == pytest.approx(raw_scores["insult"].to_list(), abs=1e-12)
    assert got["threat"].to_list() == raw_scores["threat"].to_list()  # no map: unchanged
    broken = shutil.copytree(folder, tmp_path / "broken")
    (broken / CALIBRATION_FILE).write_text(json.dumps({"labels": {"toxicity": {"method": "magic"}}}))
    with pytest.raises(CalibrationError, match="unknown method 'magic'"):
        read_calibration(broken)
