"""The real Airflow DAG, run end to end with `airflow dags test` on the real beer dump (the vendored slice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from warehouse.db import connect

AIRFLOW = [sys.executable, "-m", "airflow"]  # the airflow of the interpreter running the tests


def _airflow(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dag_run(beer_dump: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp / "airflow_home"),
        "PULSE_WAREHOUSE": str(tmp / "warehouse.duckdb"),
        "PULSE_SERVING": str(tmp / "serving.duckdb"),
        "PULSE_SCORER": "lexical",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # the assertions read the task log lines
    }
    for args in (["db", "migrate"], ["pools", "set", "pulse_warehouse", "1", "DuckDB warehouse: one writer"]):
        done = _airflow(args, env)
        assert done.returncode == 0, done.stderr[-3000:]
    conf = json.dumps({"source": "stackexchange", "path": str(beer_dump)})
    done = _airflow(["dags", "test", "community_pipeline", "-c", conf], env)
    return done, tmp


def test_dag_run_succeeds_and_publishes(dag_run) -> None:
    done, tmp = dag_run
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    assert "state=success" in log
    from pulse import TASKS

    for task_id in TASKS:
        assert f"end task task_id={task_id}" in log, task_id
    assert (tmp / "serving.duckdb").exists()


def test_dag_run_marts_match_the_dump(dag_run, beer_dump: Path) -> None:
    _, tmp = dag_run
    con = connect(tmp / "serving.duckdb", read_only=True)
    try:
        status, trigger, run_id = con.execute("select status, trigger, run_id from ops.runs").fetchall()[0]
        heat = dict(con.execute("select activity_type, sum(events) from marts.activity_heatmap group by 1").fetchall())
        weeks = con.execute("select count(distinct week_start) from marts.trending_topics").fetchall()[0][0]
        first_week_topics = {
            r[0]
            for r in con.execute(
                "select topic from marts.trending_topics where week_start = date '2014-01-20'"
            ).fetchall()
        }
        counts = {
            r[0]: r[1:]
            for r in con.execute(
                "select stream, read, inserted, skipped, quarantined from ops.stream_counts"
            ).fetchall()
        }
    finally:
        con.close()
    assert (status, trigger) == ("success", "airflow") and run_id.startswith("airflow__manual__")
    # every question, answer and comment lands in exactly one hourly cell; votes (day precision) in none
    assert heat == {"question": 254, "answer": 586, "comment": 969}
    assert counts["content"] == (1845, 1809, 36, 0)
    assert counts["engagement_events"] == (6000, 5765, 175, 60)
    assert weeks == 108  # weeks with a question, answer or comment: the slice's threads run from Jan 2014 to Dec 2016
    # The site opened on Tuesday 2014-01-21: that week's topics are the tags of its questions.
    tags: set[str] = set()
    for row in ET.parse(beer_dump / "Posts.xml").getroot():
        if row.get("PostTypeId") == "1" and "2014-01-20" <= row.get("CreationDate") < "2014-01-27":
            tags |= set(row.get("Tags").strip("<>").split("><"))
    assert first_week_topics == tags and len(tags) > 20
