"""Airflow for real: start its services, trigger community_pipeline through the REST API, shut down.

Starts `airflow standalone` (scheduler, DAG processor, API server, triggerer) with the same
environment `pulse airflow` uses, on free localhost ports, and stops it with SIGINT to its
process group, as a user's Ctrl+C would.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from pulse import TASKS
from pulse.airflow_env import airflow_env, password_file, start_standalone, stop_standalone
from warehouse.db import connect

AIRFLOW = [sys.executable, "-m", "airflow"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout_s: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"airflow standalone exited ({proc.returncode}) while waiting for {what}:\n"
                + log.read_text(errors="replace")[-4000:]
            )
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(
        f"timed out after {timeout_s:.0f}s waiting for {what}:\n" + log.read_text(errors="replace")[-4000:]
    )


@pytest.fixture(scope="module")
def airflow_services(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("airflow-services")
    port = _free_port()
    env = airflow_env(tmp / "home", api_port=port, log_port=_free_port(), trigger_log_port=_free_port())
    env.update(
        PULSE_WAREHOUSE=str(tmp / "warehouse.duckdb"),
        PULSE_SERVING=str(tmp / "serving.duckdb"),
        PULSE_SCORER="lexical",
        PULSE_SCHEDULE="@daily",
        PULSE_START_DATE="2014-01-01T00:00:00+00:00",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
    )
    for args in (["db", "migrate"], ["pools", "set", "pulse_warehouse", "1", "one writer"]):
        done = subprocess.run([*AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    log = tmp / "standalone.log"
    with log.open("wb") as out:
        proc = start_standalone(env, stdout=out)
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, 240, "the API server", proc, log)
        yield {"base": base, "home": tmp / "home", "tmp": tmp, "proc": proc, "log": log}
    finally:
        clean = stop_standalone(proc)  # what `pulse airflow` does on Ctrl+C
        assert clean, "airflow standalone needed SIGTERM/SIGKILL to stop:\n" + log.read_text(errors="replace")[-3000:]


def _headers(base: str, home: Path) -> dict[str, str]:
    password = json.loads(password_file(home).read_text())["admin"]
    token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
    assert token.status_code in (200, 201), token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_trigger_through_the_rest_api_and_wait_for_success(airflow_services, beer_dump: Path) -> None:
    base, home = airflow_services["base"], airflow_services["home"]
    headers = _headers(base, home)

    denied = httpx.get(f"{base}/api/v2/dags", timeout=30)
    assert denied.status_code == 401  # the API needs the token

    def dag_listed() -> bool:
        r = httpx.get(f"{base}/api/v2/dags", headers=headers, timeout=30)
        return r.status_code == 200 and any(d["dag_id"] == "community_pipeline" for d in r.json()["dags"])

    _wait(dag_listed, 120, "the DAG to be parsed", airflow_services["proc"], airflow_services["log"])
    run = httpx.post(
        f"{base}/api/v2/dags/community_pipeline/dagRuns",
        headers=headers,
        json={"logical_date": None, "conf": {"source": "stackexchange", "path": str(beer_dump)}},
        timeout=30,
    )
    assert run.status_code in (200, 201), run.text
    run_id = run.json()["dag_run_id"]

    def finished() -> str | None:
        r = httpx.get(f"{base}/api/v2/dags/community_pipeline/dagRuns/{run_id}", headers=headers, timeout=30)
        state = r.json().get("state")
        return state if state in ("success", "failed") else None

    state = _wait(finished, 420, "the DAG run to finish", airflow_services["proc"], airflow_services["log"])
    tis = httpx.get(
        f"{base}/api/v2/dags/community_pipeline/dagRuns/{run_id}/taskInstances", headers=headers, timeout=30
    )
    states = {t["task_id"]: t["state"] for t in tis.json()["task_instances"]}
    assert state == "success", states
    assert set(states.values()) == {"success"} and set(states) == set(TASKS)

    serving = airflow_services["tmp"] / "serving.duckdb"
    con = connect(serving, read_only=True)
    try:
        status, trigger = con.execute(
            "select status, trigger from ops.runs where run_id = ?", [f"airflow__{run_id}"]
        ).fetchall()[0]
        content = con.execute(
            "select sum(new_content) from marts.engagement_daily where source = 'stackexchange:beer'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert (status, trigger) == ("success", "airflow")
    assert content == 1809  # every question, answer and comment of the dump (the vendored slice), published


def test_backfill_runs_load_exactly_their_data_intervals(airflow_services, beer_dump: Path) -> None:
    """`airflow backfill create` (here through the REST API) replays the dump day by day."""
    base, home = airflow_services["base"], airflow_services["home"]
    headers = _headers(base, home)
    body = {
        "dag_id": "community_pipeline",
        "from_date": "2014-01-22T00:00:00Z",
        "to_date": "2014-01-23T00:00:00Z",
        "dag_run_conf": {"source": "stackexchange", "path": str(beer_dump)},
        "max_active_runs": 1,
    }
    created = httpx.post(f"{base}/api/v2/backfills", headers=headers, json=body, timeout=30)
    assert created.status_code in (200, 201), created.text
    backfill_id = created.json()["id"]

    def runs_done() -> list | None:
        r = httpx.get(
            f"{base}/api/v2/dags/community_pipeline/dagRuns",
            headers=headers,
            params={"run_type": "backfill", "limit": 100},
            timeout=30,
        )
        runs = r.json()["dag_runs"]
        return runs if runs and all(x["state"] in ("success", "failed") for x in runs) else None

    runs = _wait(runs_done, 420, f"backfill {backfill_id}", airflow_services["proc"], airflow_services["log"])
    assert {x["state"] for x in runs} == {"success"}

    con = connect(airflow_services["tmp"] / "serving.duckdb", read_only=True)
    try:
        got = con.execute(
            "select r.interval_start, r.interval_end, c.read from ops.runs r join ops.stream_counts c using (run_id) "
            "where r.run_id like 'airflow__backfill%' and c.stream = 'engagement_events' and r.status = 'success' "
            "order by 1"
        ).fetchall()
    finally:
        con.close()
    intervals = [(start, end) for start, end, _ in got]
    assert intervals and intervals[0][0].isoformat().startswith("2014-01-2")
    for (_start, end), (next_start, _) in itertools.pairwise(intervals):
        assert end == next_start  # consecutive days, no gap, no overlap
    import xml.etree.ElementTree as ET

    votes = [r.get("CreationDate") for r in ET.parse(beer_dump / "Votes.xml").getroot()]
    for start, end, read in got:
        assert end - start == timedelta(days=1)
        expected = sum(start.isoformat() <= v < end.isoformat() for v in votes)
        assert read == expected > 0, (start, read, expected)
