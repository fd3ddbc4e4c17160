"""The warehouse_backup DAG (issue #15): after the pipeline, in the warehouse pool, alerts on failure."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR / "warehouse_backup.py"))
    assert bag.import_errors == {}
    return bag.dags["warehouse_backup"]


def test_order_pool_and_alerts(dag) -> None:
    order = ["wait_for_pipeline", "create_backup", "verify_backup", "prune_backups"]
    assert sorted(t.task_id for t in dag.tasks) == sorted(order)
    for upstream, downstream in itertools.pairwise(order):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.max_active_runs == 1
    assert (
        dag.timetable.expression == "0 0 * * *"
    )  # @daily: the same data intervals as community_pipeline (its default)
    for t in dag.tasks:
        assert t.on_failure_callback, f"{t.task_id} has no failure notifier"
        assert t.execution_timeout is not None
    create = dag.get_task("create_backup")
    assert create.pool == "pulse_warehouse", (
        "the backup must hold the warehouse pool so no pipeline task writes meanwhile"
    )
    assert create.retries == 6 and create.retry_exponential_backoff
    assert create.trigger_rule == "none_failed", "a skipped wait (no pipeline run) must not skip the backup"
    assert dag.get_task("verify_backup").pool != "pulse_warehouse"


def test_waits_for_the_pipelines_publish(dag) -> None:
    wait = dag.get_task("wait_for_pipeline")
    assert (wait.external_dag_id, wait.external_task_id) == ("community_pipeline", "publish")
    assert wait.mode == "reschedule" and wait.soft_fail
    assert wait.timeout == 6 * 3600
