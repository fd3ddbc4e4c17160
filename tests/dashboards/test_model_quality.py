"""The Model quality page: which model scored what, recorded evaluations and a bias audit.

The snapshot is the hand-made one of ``conftest.py`` plus evaluations and an audit written by
the real recording functions from real scores (the lexical model on the Jigsaw sample).
Expected numbers are read back from the snapshot file with plain DuckDB.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from moderation.bias import audit, record_bias_audit
from moderation.datasets import load_labelled
from moderation.evaluate import evaluate_scorer, per_group, record_evaluation
from moderation.scorers import LexicalScorer

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PAGE = "views/model_quality.py"
HOSTILE_DATASET = "[click](http://evil/x) <b>set</b>.csv"


@pytest.fixture(scope="module")
def quality_snapshot(make_snapshot, toxicity_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_snapshot(tmp_path_factory.mktemp("mq") / "serving.duckdb")
    data = load_labelled(toxicity_data / "jigsaw_sample" / "test_examples.csv")
    scorer = LexicalScorer()
    report, scores = evaluate_scorer(scorer, data.frame, threshold=0.5)
    groups = per_group(
        data.frame["label"].to_numpy(),
        scores,
        ["short" if len(t) < 200 else "long" for t in data.frame["text"]],
        threshold=0.5,
    )
    result = audit(
        data.frame["text"].to_list(),
        data.frame["label"].to_numpy(),
        scores,
        {"gay": ("gay",), "women": ("woman", "women")},
        threshold=0.5,
        min_subgroup_size=1,
    )
    con = duckdb.connect(str(path))
    try:
        record_evaluation(con, report, dataset=HOSTILE_DATASET, dataset_sha256=data.sha256, groups=groups)
        record_bias_audit(
            con,
            result,
            model_id=scorer.model_id,
            model_version=scorer.model_version,
            is_fallback=False,
            dataset="jigsaw_sample/test_examples.csv",
            dataset_sha256=data.sha256,
        )
    finally:
        con.close()
    return path


def _sql(path: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _open(monkeypatch: pytest.MonkeyPatch, path: Path, source: str = "demo") -> AppTest:
    monkeypatch.setenv("PULSE_SERVING", str(path))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state["authentication_status"] = True  # signed in (tests/dashboards/conftest.py accounts)
    at.session_state["username"] = "admin"
    at.run()
    at.selectbox(key="source").set_value(source).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_shows_models_evaluations_and_bias(monkeypatch: pytest.MonkeyPatch, quality_snapshot: Path) -> None:
    at = _open(monkeypatch, quality_snapshot)
    assert [t.value for t in at.main.title] == ["Model quality"]
    assert not at.error, [e.value for e in at.error]
    # which model scored what: every model in moderation.scores with its count
    expected = dict(_sql(quality_snapshot, "select model_id, count(*) from moderation.scores group by 1"))
    scored = at.dataframe[0].value
    assert dict(zip(scored["model_id"], scored["texts_scored"], strict=True)) == expected
    assert set(scored.columns) >= {"is_fallback", "backend", "model_version"}
    flags = at.dataframe[1].value  # the demo source's current flags per model (moderation.flags is empty here)
    evals = next(d.value for d in at.dataframe if "roc_auc" in d.value.columns)
    stored = dict(_sql(quality_snapshot, "select subset, roc_auc from moderation.model_evaluations"))
    assert dict(zip(evals["subset"], evals["roc_auc"], strict=True)) == pytest.approx(stored)
    assert set(stored) == {"all", "short", "long"} and flags is not None
    bias = next(d.value for d in at.dataframe if "bpsn_auc" in d.value.columns)
    rows = dict(_sql(quality_snapshot, "select subgroup, n_subgroup from moderation.bias_audit"))
    assert dict(zip(bias["subgroup"], bias["n_subgroup"], strict=True)) == rows
    assert rows["gay"] >= 1
    specs = [el.proto.spec for el in at.get("plotly_chart")]
    assert len(specs) == 3  # evaluation AUCs, bias AUCs, false-positive rates
    metric_labels = [m.label for m in at.metric]
    assert "Overall ROC-AUC" in metric_labels and "Scored by the fallback" in metric_labels
    overall = _sql(quality_snapshot, "select any_value(overall_auc) from moderation.bias_audit")[0][0]
    assert next(m.value for m in at.metric if m.label == "Overall ROC-AUC") == f"{overall:.3f}"
    # a dataset name is shown as data, never as a live link
    assert not any("http://evil" in str(el.value) for kind in ("markdown", "caption") for el in getattr(at, kind))
    assert all("<b>" not in s for s in specs)


def test_page_without_evaluations_explains_how_to_record(
    monkeypatch: pytest.MonkeyPatch, make_snapshot, tmp_path: Path
) -> None:
    path = make_snapshot(tmp_path / "serving.duckdb")  # migrated: the tables exist but are empty
    at = _open(monkeypatch, path)
    infos = " ".join(i.value for i in at.info)
    assert "pulse moderation evaluate" in infos and "pulse moderation bias-audit" in infos
    assert at.dataframe, "the scores-per-model table is still shown"
    assert at.metric[0].label == "Models that scored texts" and at.metric[0].value == "2"
