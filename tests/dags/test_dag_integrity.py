"""DAG integrity: every DAG file imports cleanly and follows our conventions."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS_DIR.glob("*.py")))
def test_each_file_defines_the_dag_named_after_it(dagbag, dag_file: str) -> None:
    dag_id = dag_file.removesuffix(".py")
    assert dag_id in dagbag.dags, f"{dag_file} must define a DAG whose dag_id is the file name"
    dag = dagbag.dags[dag_id]
    assert dag.tags, "every DAG carries tags"
    assert dag.doc_md and len(dag.doc_md) > 100, "every DAG documents itself (doc_md=__doc__)"


def test_community_pipeline_shape(dagbag) -> None:
    """One chain of tasks (pulse.TASKS), scoring fanned out: plan_scoring -> score_partition
    (mapped over partitions, default pool: no warehouse access) -> merge_scores."""
    from pulse import TASKS

    dag = dagbag.dags["community_pipeline"]
    order = list(TASKS)
    assert order == ["extract", "validate", "load", "ingest_decisions", "plan_scoring", "score_partition",
                     "merge_scores", "transform", "validate_marts", "publish"]  # fmt: skip
    assert sorted(t.task_id for t in dag.tasks) == sorted(order)
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.max_active_runs == 1
    for t in dag.tasks:
        assert t.retries >= 1, f"{t.task_id} has no retries"
        if t.task_id == "score_partition":  # reads and writes only its partition files, never the warehouse
            assert t.pool != "pulse_warehouse", "score_partition must not hold the one-slot warehouse pool"
        else:
            assert t.pool == "pulse_warehouse", f"{t.task_id} must use the one-slot warehouse pool"
        assert t.execution_timeout is not None
        assert t.retry_exponential_backoff, f"{t.task_id} retries without backoff"
        assert t.on_failure_callback, f"{t.task_id} has no failure notifier"
    assert set(dag.params) >= {"source", "path", "since", "until"}
