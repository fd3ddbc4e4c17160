"""The CeleryExecutor cluster for real: two workers, scoring fanned out, a worker SIGKILLed and Redis
restarted mid-run, the same scores as a clean run, and nothing left running afterwards.

Brings the cluster up with :func:`pulse.cluster.up` (Redis from ``.ci/redis``, a fresh metadata
database on the tests' PostgreSQL server, free ports, a tmp ``PULSE_CLUSTER_HOME``), runs
``community_pipeline`` on the vendored beer slice through ``pulse cluster run`` and then again
on an empty warehouse with slow partitions, killing the worker that runs one of them. About
6 to 10 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pulse import TASKS
from pulse.cluster import Cluster, down, free_port, group_members, run_state, trigger, up, wait_run
from warehouse.canonical import LABELS
from warehouse.db import connect

PARTITION_ROWS = 500  # the slice's 1,807 texts -> 4 partitions, so both workers get some


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_url: str):
    if shutil.which("redis-server") is None and os.geteuid() != 0:
        message = "redis-server is not installed (apt-get install redis-server; .ci/redis installs it as root)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    import psycopg

    tmp = tmp_path_factory.mktemp("cluster")
    database = f"pulse_cluster_t_{uuid.uuid4().hex[:8]}"
    env = {
        "PULSE_WAREHOUSE": str(tmp / "data" / "warehouse.duckdb"),
        "PULSE_SERVING": str(tmp / "data" / "serving.duckdb"),
        "PULSE_SCORER": "lexical",
        "PULSE_SCHEDULE": "none",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the components inherit them through cluster_env
    started = None
    try:
        started = up(
            tmp / "home",
            workers=2,
            api_port=free_port(),
            postgres_url=postgres_url,
            database=database,
            heartbeat_timeout_s=15,
            timeout_s=300,
            log=lambda m: None,
        )
        yield started, tmp
    finally:
        if started is not None or (tmp / "home" / "cluster.json").exists():
            stopped = down(tmp / "home", timeout_s=60, log=lambda m: None)
            recorded = Cluster.load(tmp / "home")
            stray = {name: group_members(pid) for name, pid in recorded.pids.items() if group_members(pid)}
            assert not stray, f"processes left after `down`: {stray}"
            assert all(stopped.values()), f"needed SIGKILL to stop: {stopped}"
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{database}" with (force)')


def _scores(warehouse: Path) -> dict[tuple[str, str], tuple]:
    con = connect(warehouse, read_only=True)
    try:
        rows = con.execute(f"select content_hash, model_id, {', '.join(LABELS)} from moderation.scores").fetchall()
    finally:
        con.close()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_two_workers_a_killed_worker_and_a_redis_restart_lose_nothing(cluster, beer_dump: Path) -> None:
    started, _ = cluster
    warehouse = Path(os.environ["PULSE_WAREHOUSE"])
    conf = {"source": "stackexchange", "path": str(beer_dump), "partition_rows": PARTITION_ROWS}

    status = subprocess.run(
        [sys.executable, "-m", "pulse.cli", "cluster", "status", "--home", str(started.home), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stdout[-2000:] + status.stderr[-2000:]
    info = json.loads(status.stdout)
    assert info["workers_answering"] == ["worker-1", "worker-2"]
    assert {n for n, p in info["processes"].items() if p["running"]} == {
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
        "worker-1",
        "worker-2",
        "redis",
    }
    assert info["health"]["scheduler"] == "healthy"

    # 1. A clean run through the CLI: every task succeeds, the partitions spread over both workers.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pulse.cli",
            "cluster",
            "run",
            "community_pipeline",
            "--conf",
            json.dumps(conf),
            "--home",
            str(started.home),
            "--timeout",
            "600",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=700,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    clean = json.loads(done.stdout)
    assert clean["state"] == "success"
    assert {t["task_id"] for t in clean["task_instances"]} == set(TASKS)
    partitions = [t for t in clean["task_instances"] if t["task_id"] == "score_partition"]
    assert len(partitions) == 4 and {t["state"] for t in partitions} == {"success"}
    assert {t["hostname"] for t in partitions} == {"worker-1", "worker-2"}
    clean_scores = _scores(warehouse)
    assert len(clean_scores) == 1807  # every distinct text of the slice, once
    assert not (warehouse.parent / "scoring").exists() or not any((warehouse.parent / "scoring").iterdir())

    # 2. The same data on an empty warehouse, each partition slowed down: SIGKILL the worker that
    #    runs one, and restart Redis while the run goes on.
    for name in ("warehouse.duckdb", "serving.duckdb"):
        (warehouse.parent / name).unlink()
    run_id = trigger(started, "community_pipeline", {**conf, "partition_delay_s": 15})
    deadline = time.monotonic() + 300
    victim = None
    while victim is None:
        assert time.monotonic() < deadline, "no partition started"
        running = [
            t
            for t in run_state(started, "community_pipeline", run_id)["task_instances"]
            if t["task_id"] == "score_partition" and t["state"] == "running" and t["hostname"]
        ]
        victim = running[0] if running else None
        time.sleep(1)
    time.sleep(4)  # inside the partition's 15 s
    os.killpg(started.pids[victim["hostname"]], signal.SIGKILL)
    redis_pid = int((started.redis_dir / "redis.pid").read_text())
    os.kill(redis_pid, signal.SIGTERM)
    while group_members(redis_pid):
        time.sleep(0.2)
    subprocess.run(
        ["bash", ".ci/redis", str(started.redis_dir), str(started.redis_port)],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
    )

    final = wait_run(started, "community_pipeline", run_id, timeout_s=600)
    assert final["state"] == "success", final
    survivor = ({"worker-1", "worker-2"} - {victim["hostname"]}).pop()
    retried = next(
        t
        for t in final["task_instances"]
        if t["task_id"] == "score_partition" and t["map_index"] == victim["map_index"]
    )
    assert retried["try_number"] == 2 and retried["hostname"] == survivor  # the retry ran on the other worker
    assert _scores(warehouse) == clean_scores  # no loss, no duplicate, the same values
