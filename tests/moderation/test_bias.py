"""Bias audit: Borkan et al. (2019) metrics worked by hand and recomputed with scikit-learn on real tweets."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from moderation.bias import (
    DEFAULT_SUBGROUPS,
    audit,
    bnsp_auc,
    bpsn_auc,
    generalized_mean,
    mentions,
    parse_terms_file,
    subgroup_auc,
)
from moderation.scorers.lexical import _profanity_check
from pulse.cli import app

runner = CliRunner()


def test_metrics_worked_by_hand() -> None:
    texts = ["gay and proud", "my gay friend", "gay people suck", "nice day", "you suck", "idiots everywhere"]
    y = np.array([0, 0, 1, 0, 1, 1])
    # the model over-scores harmless mentions of "gay"
    s = np.array([0.8, 0.7, 0.9, 0.1, 0.6, 0.75])
    g = mentions(texts, ["gay"])
    assert g.tolist() == [True, True, True, False, False, False]
    # subgroup: negatives .8 .7 vs positive .9 -> both pairs ordered: 1.0
    assert subgroup_auc(y, s, g) == 1.0
    # BPSN: subgroup negatives .8 .7 vs background positives .6 .75 -> pairs (pos > neg):
    #   .6>.8 no, .6>.7 no, .75>.8 no, .75>.7 yes -> 1/4
    assert bpsn_auc(y, s, g) == 0.25
    # BNSP: subgroup positive .9 vs background negative .1 -> 1.0
    assert bnsp_auc(y, s, g) == 1.0
    result = audit(texts, y, s, {"gay": ("gay",)}, threshold=0.5, min_subgroup_size=1)
    sub = result.subgroups[0]
    assert (sub.n, sub.n_positive, sub.n_negative) == (3, 1, 2)
    assert sub.subgroup_fpr == 1.0 and sub.background_fpr == 0.0  # both harmless mentions >= .5; "nice day" not
    assert result.overall_auc == pytest.approx(roc_auc_score(y, s))
    # one subgroup: each generalized mean is the metric itself; final = .25 * (overall + 1 + .25 + 1)
    assert result.final_metric == pytest.approx(0.25 * (roc_auc_score(y, s) + 2.25))


def test_generalized_mean_and_matching() -> None:
    # ((0.5**-5 + 1**-5) / 2) ** (-1/5) = 16.5 ** -0.2
    assert generalized_mean([0.5, 1.0]) == pytest.approx(16.5**-0.2)
    assert generalized_mean([None, 0.8]) == pytest.approx(0.8)
    assert generalized_mean([None]) is None
    texts = ["Muslims are welcome", "a muslimah", "the African  American vote", "blackberry pie", "Black Lives"]
    assert mentions(texts, ["muslim", "muslims"]).tolist() == [True, False, False, False, False]
    assert mentions(texts, DEFAULT_SUBGROUPS["black"]).tolist() == [False, False, True, False, True]


def test_terms_file(tmp_path: Path) -> None:
    f = tmp_path / "terms.txt"
    f.write_text("# our community's list\nwomen: woman, Women\nvegan\n\n", encoding="utf-8")
    assert parse_terms_file(f) == {"women": ("woman", "women"), "vegan": ("vegan",)}
    (tmp_path / "bad.txt").write_text("women:\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:1"):
        parse_terms_file(tmp_path / "bad.txt")


@pytest.fixture(scope="module")
def davidson_600(toxicity_data: Path) -> tuple[Path, list[dict]]:
    """The vendored Davidson et al. sample: 600 tweets, 200 per class (enough mentions of 'white', 'girl', 'women')."""
    path = toxicity_data / "davidson" / "labeled_data.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return path, rows


def _auc_or_none(y: np.ndarray, s: np.ndarray) -> float | None:
    return roc_auc_score(y, s) if 0 < y.sum() < y.size else None


def test_audit_on_davidson_matches_sklearn(davidson_600) -> None:
    _, rows = davidson_600
    texts = [r["tweet"] for r in rows]
    y = np.array([0 if r["class"] == "2" else 1 for r in rows])
    s = np.asarray(_profanity_check().predict_prob(texts), dtype=float)
    groups = {"female": DEFAULT_SUBGROUPS["female"], "male": DEFAULT_SUBGROUPS["male"], "girl": ("girl",)}
    result = audit(texts, y, s, groups, threshold=0.5, min_subgroup_size=5)  # 'girl': 9 mentions
    assert [(r.subgroup, r.n, r.n_positive) for r in result.subgroups] == [
        ("female", 28, 21),
        ("male", 21, 16),
        ("girl", 9, 9),
    ]
    for sub in result.subgroups:
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, sub.terms)) + r")\b", re.IGNORECASE)
        g = np.array([bool(pattern.search(t)) for t in texts])
        assert sub.n == int(g.sum())
        bpsn = (g & (y == 0)) | (~g & (y == 1))
        bnsp = (g & (y == 1)) | (~g & (y == 0))
        for got, want in (
            (sub.subgroup_auc, _auc_or_none(y[g], s[g])),
            (sub.bpsn_auc, _auc_or_none(y[bpsn], s[bpsn])),
            (sub.bnsp_auc, _auc_or_none(y[bnsp], s[bnsp])),
        ):
            assert got == (None if want is None else pytest.approx(want))
        neg = g & (y == 0)
        assert sub.subgroup_fpr == (pytest.approx((s[neg] >= 0.5).mean()) if neg.any() else None)
    girl = result.subgroups[2]
    assert girl.subgroup_auc is None and girl.bpsn_auc is None and girl.bnsp_auc is not None  # no harmless mention
    assert result.generalized_means["bpsn_auc"] == pytest.approx(
        generalized_mean([result.subgroups[0].bpsn_auc, result.subgroups[1].bpsn_auc])
    )


def test_cli_bias_audit_json_and_record(davidson_600, tmp_path: Path) -> None:
    path, rows = davidson_600
    env = {"PULSE_WAREHOUSE": str(tmp_path / "w.duckdb"), "PULSE_SERVING": str(tmp_path / "s.duckdb")}
    result = runner.invoke(
        app,
        [
            "moderation",
            "bias-audit",
            "--data",
            str(path),
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
            "--term",
            "girl",
            "--term",
            "white",
            "--min-subgroup-size",
            "5",
            "--json",
            "--record",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    y = np.array([0 if r["class"] == "2" else 1 for r in rows])
    assert out["n"] == len(rows) and out["n_positive"] == int(y.sum())
    assert [s["subgroup"] for s in out["subgroups"]] == ["girl", "white"]
    expected_white = sum(bool(re.search(r"\bwhite\b", r["tweet"], re.IGNORECASE)) for r in rows)
    assert out["subgroups"][1]["n"] == expected_white == 23
    assert out["threshold"] == 0.8 and out["model_id"] == "lexical:alt-profanity-check"
    import duckdb

    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    try:
        stored = con.execute(
            "select subgroup, n_subgroup, bpsn_auc from moderation.bias_audit order by subgroup"
        ).fetchall()
    finally:
        con.close()
    by_name = {s["subgroup"]: s for s in out["subgroups"]}
    assert stored == [(name, by_name[name]["n"], by_name[name]["bpsn_auc"]) for name in ("girl", "white")]
    # 23 tweets say 'white' (22 offensive); every one of the 9 'girl' tweets is: its BPSN AUC is undefined
    assert (by_name["girl"]["n"], by_name["girl"]["n_positive"]) == (9, 9)
    assert stored[0][2] is None and stored[1][2] is not None


def test_cli_bias_audit_table_on_jigsaw(toxicity_data: Path) -> None:
    result = runner.invoke(
        app,
        [
            "moderation",
            "bias-audit",
            "--data",
            str(toxicity_data / "jigsaw_sample" / "test_examples.csv"),
            "--model",
            "lexical",
            "--min-subgroup-size",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Borkan" in result.output and "gay_or_lesbian" in result.output and "101 texts, 13 positive" in result.output
