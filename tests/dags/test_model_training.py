"""The model_training DAG: its shape, the step functions its tasks call (tiny model, real data),
and (slow) a real `airflow dags test` run."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pulse.model_steps import bias_audit_step, evaluate_step, publish_step, train_step
from pulse.settings import load_settings

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
TINY = {"num_layers": 1, "max_length": 32, "max_steps": 3, "eval_every": 3, "val_fraction": 0.25}


def test_model_training_shape() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR / "model_training.py")).dags["model_training"]
    order = ["train", "evaluate", "bias_audit", "publish"]
    assert [t.task_id for t in sorted(dag.tasks, key=lambda t: order.index(t.task_id))] == order
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: manual only
    assert set(dag.params) >= {"data", "out", "from_decisions", "eval_data", "compare_models", "terms", "max_minutes"}
    for task_id in ("evaluate", "bias_audit", "publish"):  # they write the warehouse
        assert dag.get_task(task_id).pool == "pulse_warehouse"
    assert dag.get_task("train").pool == "default_pool"  # reads at most: does not block the pipeline


def _small_csv(src: Path, dst: Path, every: int) -> Path:
    with src.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for i, r in enumerate(reader) if i % every == 0]
        fields = reader.fieldnames
    with dst.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return dst


def test_steps_train_evaluate_audit_publish(toxicity_data: Path, tmp_path: Path) -> None:
    data = _small_csv(toxicity_data / "davidson" / "labeled_data.csv", tmp_path / "davidson.csv", 2)  # 300 tweets
    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb")
    trained = train_step(settings, [str(data)], str(tmp_path / "model"), options=TINY)
    assert trained["spec"] == f"checkpoint:{tmp_path / 'model'}" and Path(trained["validation_file"]).is_file()
    evaluated = evaluate_step(settings, [trained["spec"], "lexical"], trained["validation_file"])
    assert set(evaluated) == {trained["model_id"], "lexical:alt-profanity-check"}
    audited = bias_audit_step(settings, ["lexical"], trained["validation_file"], terms=["you", "your"])
    assert audited["lexical:alt-profanity-check"]["subgroups"] == 2
    published = publish_step(settings)
    # two models x (all + one source) evaluation rows; one audit x two subgroups
    assert (published["model_evaluations"], published["bias_audit"]) == (4, 2)
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "select model_id, subset, n from moderation.model_evaluations order by model_id, subset"
        ).fetchall()
    finally:
        con.close()
    n_val = trained_n = json.loads((tmp_path / "model" / "model_card.json").read_text())["split"]["validation"][
        "davidson"
    ]["n"]
    assert rows == [(m, s, n_val) for m in sorted(evaluated) for s in ("all", "davidson")] and trained_n > 0


@pytest.mark.slow
def test_dag_run_end_to_end(toxicity_data: Path, tmp_path: Path) -> None:
    data = _small_csv(toxicity_data / "davidson" / "labeled_data.csv", tmp_path / "davidson.csv", 2)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "PULSE_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "PULSE_SERVING": str(tmp_path / "s.duckdb"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    af = [sys.executable, "-m", "airflow"]
    for args in (["db", "migrate"], ["pools", "set", "pulse_warehouse", "1", "DuckDB warehouse: one writer"]):
        done = subprocess.run([*af, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    conf = {
        "data": str(data),
        "out": str(tmp_path / "model"),
        "num_layers": 1,
        "max_length": 32,
        "max_steps": 3,
        "val_fraction": 0.25,
        "compare_models": "lexical",
        "terms": "you",
    }
    done = subprocess.run(
        [*af, "dags", "test", "model_training", "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "state=success" in log, log[-5000:]
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    try:
        models = {r[0] for r in con.execute("select model_id from moderation.model_evaluations").fetchall()}
    finally:
        con.close()
    assert "lexical:alt-profanity-check" in models and any(m.startswith("checkpoint:model@") for m in models)
