"""Evaluation metrics and `pulse moderation evaluate` on real labelled data.

Expected values are recomputed here independently: scikit-learn's metrics on scores obtained
straight from ``profanity_check`` (the lexical model's package), and ECE / F1 by hand.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score
from typer.testing import CliRunner

from moderation.datasets import decode_python_escapes, load_labelled
from moderation.evaluate import (
    at_threshold,
    best_f1_threshold,
    compute_report,
    evaluate_scorer,
    expected_calibration_error,
    reliability_bins,
    thresholds_for_precision,
)
from moderation.scorers import LexicalScorer
from moderation.scorers.lexical import _profanity_check
from moderation.tiny import build_tiny_checkpoint
from pulse.cli import app

runner = CliRunner()
REQUIRED_KEYS = {
    "n",
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "f1",
    "threshold",
    "best_f1_threshold",
    "ece",
    "texts_per_second",
}


def _jigsaw_rows(toxicity_data: Path) -> tuple[list[str], np.ndarray]:
    with (toxicity_data / "jigsaw_sample" / "test_examples.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["comment_text"] for r in rows], np.array([int(r["toxic"]) for r in rows])


@pytest.fixture(scope="module")
def jigsaw(toxicity_data: Path) -> tuple[Path, list[str], np.ndarray, np.ndarray]:
    """The 101-row Jigsaw sample, its labels, and the lexical model's scores from profanity_check itself."""
    texts, y = _jigsaw_rows(toxicity_data)
    scores = np.asarray(_profanity_check().predict_prob(texts), dtype=float)
    return toxicity_data / "jigsaw_sample" / "test_examples.csv", texts, y, scores


# --- metric functions ----------------------------------------------------------------------


def test_ece_matches_the_formula_worked_by_hand() -> None:
    y = [0, 1, 1, 0, 1]
    s = [0.05, 0.15, 0.85, 0.95, 0.91]
    # 10 bins: [0,.1): {0.05: y0}; [.1,.2): {0.15: y1}; [.8,.9): {0.85: y1}; [.9,1]: {0.95: y0, 0.91: y1}
    # ECE = 1/5*|0-.05| + 1/5*|1-.15| + 1/5*|1-.85| + 2/5*|.5-.93| = .01 + .17 + .03 + .172 = .382
    assert expected_calibration_error(y, s, n_bins=10) == pytest.approx(0.382)
    bins = reliability_bins(y, s, n_bins=10)
    assert [b.count for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 1, 2]
    assert bins[-1].positive_rate == 0.5 and bins[-1].mean_score == pytest.approx(0.93)
    assert expected_calibration_error([0, 1], [0.0, 1.0], n_bins=15) == 0.0


def test_threshold_metrics_and_best_f1_by_hand() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    s = np.array([0.9, 0.7, 0.6, 0.4, 0.3, 0.1])
    at = at_threshold(y, s, 0.5)  # predicted: .9 .7 .6 -> tp 2, fp 1, fn 1, tn 2
    assert (at.tp, at.fp, at.fn, at.tn) == (2, 1, 1, 2)
    assert at.precision == pytest.approx(2 / 3) and at.recall == pytest.approx(2 / 3) and at.f1 == pytest.approx(2 / 3)
    assert at.macro_f1 == pytest.approx(2 / 3)  # negative class: 2 of 3 right both ways too
    # F1 per threshold: .9 -> 0.5, .7 -> 0.8, .6 -> 2/3, .4 -> 6/7, .3 -> 0.75, .1 -> 2/3
    t, f1 = best_f1_threshold(y, s)
    assert t == 0.4 and f1 == pytest.approx(6 / 7)
    sugg = thresholds_for_precision(y, s, [0.8, 1.0])
    assert sugg[0]["threshold"] == 0.7 and sugg[0]["recall"] == pytest.approx(2 / 3)  # lowest t with precision >= .8
    assert sugg[1]["threshold"] == 0.7  # precision 1.0 at .7 and .9: the lower one keeps more recall
    undefined = compute_report([0, 0, 0], [0.1, 0.2, 0.3], threshold=0.5)
    assert undefined.roc_auc is None and undefined.pr_auc is None and undefined.best_f1_threshold is None
    with pytest.raises(ValueError, match="probabilities"):
        compute_report([0, 1], [0.2, 1.3], threshold=0.5)


def test_evaluate_lexical_on_the_jigsaw_sample_matches_sklearn(jigsaw) -> None:
    path, _texts, y, scores = jigsaw
    data = load_labelled(path)
    assert data.preset == "jigsaw" and data.frame.height == 101 and int(data.frame["label"].sum()) == 13
    report, got = evaluate_scorer(LexicalScorer(), data.frame, threshold=0.8)
    np.testing.assert_allclose(got, scores)
    pred = scores >= 0.8
    assert report.n == 101 and report.n_positive == 13
    assert report.roc_auc == pytest.approx(roc_auc_score(y, scores))
    assert report.pr_auc == pytest.approx(average_precision_score(y, scores))
    assert report.precision == pytest.approx(precision_score(y, pred))
    assert report.recall == pytest.approx(recall_score(y, pred))
    assert report.f1 == pytest.approx(f1_score(y, pred))
    assert report.macro_f1 == pytest.approx(f1_score(y, pred, average="macro"))
    best = max(f1_score(y, scores >= t) for t in np.unique(scores))
    assert report.best_f1 == pytest.approx(best)
    assert f1_score(y, scores >= report.best_f1_threshold) == pytest.approx(best)
    edges = np.linspace(0, 1, 16)
    idx = np.clip(np.digitize(scores, edges[1:-1]), 0, 14)
    ece = sum(
        (idx == b).sum() / 101 * abs(y[idx == b].mean() - scores[idx == b].mean())
        for b in range(15)
        if (idx == b).any()
    )
    assert report.ece == pytest.approx(ece)
    assert report.texts_per_second > 0 and report.model_id == "lexical:alt-profanity-check"


@pytest.mark.full_data
def test_kaggle_escapes_are_decoded(full_toxicity_data: Path) -> None:
    data = load_labelled(full_toxicity_data / "kaggle_insults" / "train.csv")
    frame = data.frame
    assert data.preset == "kaggle_insults" and frame.height == 3947 and int(frame["label"].sum()) == 1049
    assert frame["text"][0] == "You fuck your dad."  # '"""You fuck your dad."""' in the file
    assert (
        frame["text"][1] == "i really don't understand your point.\xa0 It seems that you are mixing apples and oranges."
    )
    assert frame["text"][2].startswith("A\xa0majority of Canadians")  # escaped twice: \\xc2\\xa0 (UTF-8) in the file
    assert "\\x" not in "".join(frame["text"].to_list())
    assert decode_python_escapes('"C\\xe1c b\\u1ea1n\\n"') == "Các bạn\n"


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_evaluate_json_on_jigsaw(jigsaw, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _texts, y, scores = jigsaw
    monkeypatch.chdir(tmp_path)  # plots would go to ./artifacts/evaluation/...
    result = runner.invoke(app, ["moderation", "evaluate", "--data", str(path), "--model", "lexical", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) >= REQUIRED_KEYS
    assert out["n"] == 101 and out["threshold"] == 0.8  # the policy's toxicity flag threshold
    assert out["roc_auc"] == pytest.approx(roc_auc_score(y, scores))
    assert out["recall"] == pytest.approx(recall_score(y, scores >= 0.8))
    assert not (tmp_path / "artifacts").exists()  # --json: no PNGs


def test_cli_evaluate_davidson_with_label_map_writes_plots(toxicity_data: Path, tmp_path: Path) -> None:
    small = toxicity_data / "davidson" / "labeled_data.csv"  # the vendored sample: 600 tweets
    with small.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([1 if r["class"] in ("0", "1") else 0 for r in rows])
    plots = tmp_path / "plots"
    result = runner.invoke(
        app,
        [
            "moderation",
            "evaluate",
            "--data",
            str(small),
            "--text-column",
            "tweet",
            "--label-column",
            "class",
            "--label-map",
            "0=1",
            "--label-map",
            "1=1",
            "--label-map",
            "2=0",
            "--model",
            "lexical",
            "--threshold",
            "0.5",
            "--plots",
            str(plots),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = np.asarray(_profanity_check().predict_prob([r["tweet"] for r in rows]), dtype=float)
    assert f"{roc_auc_score(y, scores):.3f}" in result.output and "600" in result.output
    for name in ("pr_curve.png", "reliability.png"):
        png = (plots / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_cli_evaluate_unmapped_labels_exit_2_naming_them(toxicity_data: Path) -> None:
    result = runner.invoke(
        app,
        [
            "moderation",
            "evaluate",
            "--data",
            str(toxicity_data / "davidson" / "labeled_data.csv"),
            "--text-column",
            "tweet",
            "--label-column",
            "class",
            "--model",
            "lexical",
            "--json",
        ],
    )
    assert result.exit_code == 2
    assert "'2' (200)" in result.output and "--label-map" in result.output  # 200 tweets of the sample are class 2


def test_cli_evaluate_tiny_checkpoint_and_record(jigsaw, tmp_path: Path) -> None:
    path, _texts, _y, _ = jigsaw
    ckpt = build_tiny_checkpoint(tmp_path / "tiny")
    env = {"PULSE_WAREHOUSE": str(tmp_path / "w.duckdb"), "PULSE_SERVING": str(tmp_path / "s.duckdb")}
    result = runner.invoke(
        app,
        [
            "moderation",
            "evaluate",
            "--data",
            str(path),
            "--model",
            f"checkpoint:{ckpt}",
            "--threshold",
            "0.5",
            "--json",
            "--record",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["model_id"].startswith("checkpoint:tiny@") and out["n"] == 101
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)  # the republished snapshot
    try:
        row = con.execute(
            "select model_id, subset, n, n_positive, roc_auc, threshold from moderation.model_evaluations"
        ).fetchall()
    finally:
        con.close()
    assert row == [(out["model_id"], "all", 101, 13, pytest.approx(out["roc_auc"]), 0.5)]


def test_cli_evaluate_missing_file_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["moderation", "evaluate", "--data", str(tmp_path / "nope.csv"), "--model", "lexical"])
    assert result.exit_code == 2 and "nope.csv" in result.output
