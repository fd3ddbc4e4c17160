"""A real Airflow cluster on this machine: CeleryExecutor, Redis broker, PostgreSQL metadata DB.

``pulse cluster up --workers N`` (:func:`up`) starts, under ``PULSE_CLUSTER_HOME`` (default
``./cluster``): a private Redis server (``.ci/redis``: Debian's ``redis-server``, installed when
missing), a metadata database on PostgreSQL (``.ci/postgres``'s server, or ``--postgres-url``;
the database ``--database`` is created when missing and migrated), the pool ``pulse_warehouse``,
then Airflow's API server, scheduler, DAG processor, triggerer and N Celery workers, each in its
own session (process group), logging to ``HOME/logs/NAME.log``. It waits until the API reports
every component healthy and every worker answers a Celery ping. :func:`down` stops them in
order (workers with a warm shutdown first, Redis last); :func:`status` and :func:`run_dag`
(trigger a DAG run through the REST API and wait for it) complete the set.

Workers are named ``worker-1`` .. ``worker-N``: the Celery node name and, through
``[core] hostname_callable`` = :func:`worker_hostname` (reading ``PULSE_WORKER_HOSTNAME``), the
hostname Airflow records on each task instance they run, so a task instance shows its worker
even with every worker on one machine.

Celery settings, chosen for the two faults the cluster must survive (see README "Running on a
cluster"): ``task_acks_late`` (a message is acknowledged only when its task finished),
``worker_prefetch_multiplier=1`` with concurrency 1 (a worker holds only the message it runs,
so a worker killed with SIGKILL loses one task, which the scheduler fails after
``task_instance_heartbeat_timeout`` and retries on another worker), a visibility timeout
(:data:`VISIBILITY_TIMEOUT_S`) longer than the tasks' 2-hour execution timeout (Redis never
hands a running task to a second worker), and Redis's append-only file (queued messages
survive a Redis restart; workers and the scheduler reconnect).

The state file ``HOME/cluster.json`` records ports, URLs and process ids (no passwords; the
generated secrets live in ``HOME/secrets.json``, mode 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulse.airflow_env import PROJECT_ROOT, airflow_env, password_file

#: Seconds Redis waits for an unacknowledged message before handing it to another worker:
#: longer than the DAG's 2-hour execution timeout, so a running task is never run twice.
VISIBILITY_TIMEOUT_S = 9000

#: Components in start order (workers come last); :func:`down` stops them in reverse.
SERVICES: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")

STATE_FILE = "cluster.json"
SECRETS_FILE = "secrets.json"


class ClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped; the message says what and where to look."""


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` for the workers: ``PULSE_WORKER_HOSTNAME``, else the FQDN."""
    return os.environ.get("PULSE_WORKER_HOSTNAME") or socket.getfqdn()


def cluster_home(home: Path | str | None = None) -> Path:
    """``home``, else ``PULSE_CLUSTER_HOME``, else ``./cluster`` (absolute)."""
    return Path(home or os.environ.get("PULSE_CLUSTER_HOME") or "cluster").resolve()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    _reap()
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (read from ``/proc``)."""
    _reap()
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def stop_group(pgid: int, *, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> bool:
    """Send ``sig`` to process group ``pgid``, wait up to ``timeout_s``, then SIGKILL what is left.

    Returns:
        True when the group ended within ``timeout_s`` of ``sig`` (no SIGKILL needed).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.3)
    clean = not group_members(pgid)
    if not clean:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        end = time.monotonic() + 10
        while group_members(pgid) and time.monotonic() < end:
            time.sleep(0.2)
    return clean


@dataclass(frozen=True)
class Cluster:
    """A started cluster, as recorded in ``HOME/cluster.json``."""

    home: Path
    api_url: str
    broker_url: str
    database: str
    redis_dir: Path
    redis_port: int
    pids: dict[str, int]

    @classmethod
    def load(cls, home: Path) -> Cluster:
        """The cluster recorded under ``home``.

        Raises:
            ClusterError: nothing was started there.
        """
        try:
            data = json.loads((home / STATE_FILE).read_text())
        except FileNotFoundError:
            raise ClusterError(f"no cluster under {home} (start one with `pulse cluster up`)") from None
        return cls(
            home=home,
            api_url=data["api_url"],
            broker_url=data["broker_url"],
            database=data["database"],
            redis_dir=Path(data["redis_dir"]),
            redis_port=data["redis_port"],
            pids=data["pids"],
        )

    def save(self) -> None:
        """Write ``HOME/cluster.json``."""
        data = {
            "api_url": self.api_url,
            "broker_url": self.broker_url,
            "database": self.database,
            "redis_dir": str(self.redis_dir),
            "redis_port": self.redis_port,
            "pids": self.pids,
        }
        (self.home / STATE_FILE).write_text(json.dumps(data, indent=1))

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    def admin_password(self) -> str:
        """The API server's generated ``admin`` password (simple auth manager)."""
        return json.loads(password_file(self.airflow_home).read_text())["admin"]

    def env(self) -> dict[str, str]:
        """The environment every component runs with (from ``HOME/secrets.json``)."""
        return json.loads((self.home / SECRETS_FILE).read_text())["env"]


def _secrets(home: Path, env: dict[str, str]) -> None:
    path = home / SECRETS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"env": env}, f)


def _postgres_url(url: str | None) -> str:
    """``url``, else ``PULSE_CLUSTER_POSTGRES_URL``, else what ``.ci/postgres`` prints (it installs and starts the server)."""
    url = url or os.environ.get("PULSE_CLUSTER_POSTGRES_URL")
    if url:
        return url
    done = subprocess.run(["bash", str(PROJECT_ROOT / ".ci" / "postgres")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClusterError(f".ci/postgres failed: {done.stderr.strip()[-1000:]}")
    return done.stdout.strip()


def _ensure_database(url: str, database: str) -> str:
    """Create ``database`` (owned by the URL's role) when missing; its SQLAlchemy URL for Airflow."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as con:
        if not con.execute("select 1 from pg_database where datname = %s", [database]).fetchone():
            con.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    base = url.rpartition("/")[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{database}"


def cluster_env(
    home: Path, *, sql_alchemy_conn: str, broker_url: str, api_port: int, heartbeat_timeout_s: int, parallelism: int
) -> dict[str, str]:
    """The environment of every component: :func:`pulse.airflow_env.airflow_env` plus the CeleryExecutor's settings."""
    env = airflow_env(
        home / "airflow", api_port=api_port, log_port=free_port(), trigger_log_port=free_port(), parallelism=parallelism
    )
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": sql_alchemy_conn,  # psycopg 3 is async too (no asyncpg)
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sql_alchemy_conn,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat_timeout_s),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "OMP_NUM_THREADS": "1",
            "PULSE_SCORER_THREADS": "1",
        }
    )
    # Components run in the caller's folder; the DuckDB files (and the scoring folder beside the
    # warehouse) must be the same absolute paths for every one of them.
    for key, default in (("PULSE_WAREHOUSE", "data/warehouse.duckdb"), ("PULSE_SERVING", "data/serving.duckdb")):
        env[key] = str(Path(env.get(key) or default).resolve())
    return env


def _airflow(env: dict[str, str], *args: str, timeout_s: float = 600) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise ClusterError(f"airflow {' '.join(args)} failed:\n{done.stderr[-3000:]}")


#: The components this process started (kept so they are reaped, not left as zombies, when they end).
_CHILDREN: list[subprocess.Popen] = []


def _reap() -> None:
    for proc in list(_CHILDREN):
        if proc.poll() is not None:
            _CHILDREN.remove(proc)


def _start(home: Path, name: str, args: list[str], env: dict[str, str]) -> int:
    log = (home / "logs" / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    _CHILDREN.append(proc)
    return proc.pid


def worker_env(env: dict[str, str], name: str) -> dict[str, str]:
    """A worker's environment: its own hostname (``hostname_callable``) and log-server port."""
    return {
        **env,
        "PULSE_WORKER_HOSTNAME": name,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "pulse.cluster.worker_hostname",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
    }


def start_worker(cluster: Cluster, name: str) -> int:
    """Start one Celery worker named ``name`` (concurrency 1) and record it; returns its pid (= process group)."""
    args = [
        "celery",
        "worker",
        "--concurrency",
        "1",
        "--celery-hostname",
        f"{name}@%h",
        "--without-mingle",
        "--without-gossip",
        "--skip-serve-logs",
    ]
    pid = _start(cluster.home, name, args, worker_env(cluster.env(), name))
    cluster.pids[name] = pid
    cluster.save()
    return pid


def celery_ping(env: dict[str, str], timeout_s: float = 3.0) -> list[str]:
    """Names of the Celery workers answering a ping through the broker (e.g. ``worker-1``)."""
    code = (
        "import json; from airflow.providers.celery.executors.celery_executor import app; "
        f"print(json.dumps(app.control.ping(timeout={timeout_s}) or []))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    try:
        replies = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return []
    return sorted(node.split("@", 1)[0] for reply in replies for node in reply)


def api_health(api_url: str) -> dict[str, str]:
    """``{component: status}`` from ``/api/v2/monitor/health`` (empty when the API does not answer)."""
    import httpx

    try:
        r = httpx.get(f"{api_url}/api/v2/monitor/health", timeout=5)
    except httpx.HTTPError:
        return {}
    if r.status_code != 200:
        return {}
    return {k: v.get("status", "?") for k, v in r.json().items() if isinstance(v, dict)}


def up(
    home: Path | str | None = None,
    *,
    workers: int = 2,
    api_port: int = 8080,
    postgres_url: str | None = None,
    database: str = "pulse_cluster",
    redis_port: int | None = None,
    heartbeat_timeout_s: int = 60,
    timeout_s: float = 300.0,
    log: Any = print,
) -> Cluster:
    """Start the cluster under ``home`` and wait until every component is healthy (see the module docstring).

    Args:
        workers: Celery workers (``worker-1`` .. ``worker-N``), each with concurrency 1.
        api_port: the API server / UI port.
        postgres_url: a PostgreSQL role that may create databases (default: ``PULSE_CLUSTER_POSTGRES_URL``,
            else ``.ci/postgres``).
        database: the metadata database (created when missing, migrated).
        redis_port: the broker's port (default: a free one).
        heartbeat_timeout_s: seconds without a task heartbeat before the scheduler fails (and
            retries) a task whose worker died.
        log: called with progress lines.

    Raises:
        ClusterError: a cluster is already running there, or a component failed to start (its log named).
    """
    home = cluster_home(home)
    if (home / STATE_FILE).exists() and any(_alive(p) for p in Cluster.load(home).pids.values()):
        raise ClusterError(f"a cluster is already running under {home} (`pulse cluster status`, `pulse cluster down`)")
    (home / "logs").mkdir(parents=True, exist_ok=True)
    redis_port = redis_port or free_port()
    log(f"starting Redis on port {redis_port} (.ci/redis)")
    redis = subprocess.run(
        ["bash", str(PROJECT_ROOT / ".ci" / "redis"), str(home / "redis"), str(redis_port)],
        capture_output=True,
        text=True,
        check=False,
    )
    if redis.returncode != 0:
        raise ClusterError(f".ci/redis failed: {redis.stderr.strip()[-1000:]}")
    broker_url = redis.stdout.strip()
    log(f"metadata database {database} on PostgreSQL")
    conn = _ensure_database(_postgres_url(postgres_url), database)
    env = cluster_env(
        home,
        sql_alchemy_conn=conn,
        broker_url=broker_url,
        api_port=api_port,
        heartbeat_timeout_s=heartbeat_timeout_s,
        parallelism=max(4, 2 * workers),
    )
    _secrets(home, env)
    cluster = Cluster(
        home=home,
        api_url=f"http://127.0.0.1:{api_port}",
        broker_url=broker_url,
        database=database,
        redis_dir=home / "redis",
        redis_port=redis_port,
        pids={},
    )
    cluster.save()
    try:
        log("migrating Airflow's metadata database")
        _airflow(env, "db", "migrate")
        _airflow(env, "pools", "set", "pulse_warehouse", "1", "DuckDB warehouse: one writer at a time")
        for name in SERVICES:
            cluster.pids[name] = _start(home, name, [name], env)
            cluster.save()
        for i in range(1, workers + 1):
            start_worker(cluster, f"worker-{i}")
        log(f"waiting for {', '.join(SERVICES)} and {workers} workers")
        wait_healthy(cluster, workers=workers, timeout_s=timeout_s)
    except BaseException:
        down(home, log=log)
        raise
    return cluster


def wait_healthy(cluster: Cluster, *, workers: int, timeout_s: float = 300.0) -> None:
    """Wait until the API reports every component healthy and ``workers`` workers answer a ping.

    Raises:
        ClusterError: a component exited or the time ran out (the last lines of its log included).
    """
    deadline = time.monotonic() + timeout_s
    env = cluster.env()
    while True:
        dead = [n for n, p in cluster.pids.items() if not _alive(p)]
        if dead:
            tail = (cluster.home / "logs" / f"{dead[0]}.log").read_text(errors="replace")[-3000:]
            raise ClusterError(f"{', '.join(dead)} exited; {dead[0]}.log ends:\n{tail}")
        health = api_health(cluster.api_url)
        ok = health and all(
            health.get(k) == "healthy" for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )
        if ok and password_file(cluster.airflow_home).exists() and len(celery_ping(env)) >= workers:
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"not healthy after {timeout_s:.0f}s: API {health or 'not answering'}; logs in {cluster.home / 'logs'}"
            )
        time.sleep(2)


def status(home: Path | str | None = None) -> dict[str, Any]:
    """Each component's pid and whether it runs, the API's health, the workers answering a ping, the UI's URL.

    Raises:
        ClusterError: no cluster was started under ``home``.
    """
    cluster = Cluster.load(cluster_home(home))
    redis_pid = _redis_pid(cluster)
    processes = {name: {"pid": pid, "running": _alive(pid)} for name, pid in cluster.pids.items()}
    processes["redis"] = {"pid": redis_pid, "running": bool(redis_pid and _alive(redis_pid))}
    running = processes["redis"]["running"] and any(p["running"] for p in processes.values())
    return {
        "home": str(cluster.home),
        "ui": cluster.api_url,
        "broker": cluster.broker_url,
        "database": cluster.database,
        "processes": processes,
        "health": api_health(cluster.api_url) if running else {},
        "workers_answering": celery_ping(cluster.env()) if running else [],
    }


def _redis_pid(cluster: Cluster) -> int | None:
    try:
        return int((cluster.redis_dir / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def down(home: Path | str | None = None, *, timeout_s: float = 60.0, log: Any = print) -> dict[str, bool]:
    """Stop everything :func:`up` started, in order: workers (warm shutdown: a running task may
    finish within ``timeout_s``), triggerer, DAG processor, scheduler, API server, then Redis.
    Each gets SIGTERM, and SIGKILL to its process group after ``timeout_s``.

    Returns:
        ``{component: stopped cleanly}`` (False: it needed SIGKILL).
    """
    cluster = Cluster.load(cluster_home(home))
    order = sorted((n for n in cluster.pids if n not in SERVICES), reverse=True) + list(reversed(SERVICES))
    result = {}
    for name in (n for n in order if n in cluster.pids):
        pid = cluster.pids[name]
        if group_members(pid) or _alive(pid):
            log(f"stopping {name} (pid {pid})")
            result[name] = stop_group(pid, timeout_s=timeout_s)
    redis_pid = _redis_pid(cluster)
    if redis_pid and _alive(redis_pid):
        log(f"stopping Redis (pid {redis_pid})")
        os.kill(redis_pid, signal.SIGTERM)  # redis-server flushes its append-only file and exits
        end = time.monotonic() + timeout_s
        while _alive(redis_pid) and time.monotonic() < end:
            time.sleep(0.2)
        result["redis"] = not _alive(redis_pid)
        if _alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)
    return result


def _token(cluster: Cluster) -> dict[str, str]:
    import httpx

    r = httpx.post(
        f"{cluster.api_url}/auth/token", json={"username": "admin", "password": cluster.admin_password()}, timeout=60
    )
    if r.status_code not in (200, 201):
        raise ClusterError(f"sign-in failed ({r.status_code}): {r.text[:300]}")
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def trigger(cluster: Cluster, dag_id: str, conf: dict[str, Any], *, wait_parsed_s: float = 180.0) -> str:
    """Trigger ``dag_id`` with ``conf`` through the REST API (waiting for the DAG to be parsed); the run id.

    Raises:
        ClusterError: the DAG did not appear or the API refused the run.
    """
    import httpx

    headers = _token(cluster)
    deadline = time.monotonic() + wait_parsed_s
    while httpx.get(f"{cluster.api_url}/api/v2/dags/{dag_id}", headers=headers, timeout=30).status_code != 200:
        if time.monotonic() > deadline:
            raise ClusterError(
                f"DAG {dag_id!r} not found after {wait_parsed_s:.0f}s (see {cluster.home / 'logs' / 'dag-processor.log'})"
            )
        time.sleep(2)
    r = httpx.post(
        f"{cluster.api_url}/api/v2/dags/{dag_id}/dagRuns",
        headers=headers,
        json={"logical_date": None, "conf": conf},
        timeout=30,
    )
    if r.status_code not in (200, 201):
        raise ClusterError(f"trigger refused ({r.status_code}): {r.text[:500]}")
    return r.json()["dag_run_id"]


def run_state(cluster: Cluster, dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's ``state`` and its ``task_instances``: task id, map index, state, hostname, try number, duration (s)."""
    import httpx

    headers = _token(cluster)
    run = httpx.get(f"{cluster.api_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=headers, timeout=30).json()
    tis = (
        httpx.get(
            f"{cluster.api_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
            headers=headers,
            params={"limit": 1000},
            timeout=30,
        )
        .json()
        .get("task_instances", [])
    )
    rows = [
        {
            "task_id": t["task_id"],
            "map_index": t.get("map_index", -1),
            "state": t.get("state"),
            "hostname": t.get("hostname") or "",
            "try_number": t.get("try_number"),
            "duration_s": t.get("duration"),
            "start_date": t.get("start_date"),
        }
        for t in tis
    ]
    rows.sort(key=lambda r: (r["start_date"] or "~", r["task_id"], r["map_index"]))  # not started last
    return {"dag_id": dag_id, "run_id": run_id, "state": run.get("state"), "task_instances": rows}


def wait_run(
    cluster: Cluster, dag_id: str, run_id: str, *, timeout_s: float = 3600.0, poll_s: float = 3.0
) -> dict[str, Any]:
    """Poll until the run is ``success`` or ``failed`` (or ``timeout_s`` passed); :func:`run_state` at the end."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            state = run_state(cluster, dag_id, run_id)
        except httpx.HTTPError:  # an API server starved of CPU for a moment: ask again
            if time.monotonic() > deadline:
                raise
            time.sleep(poll_s)
            continue
        if state["state"] in ("success", "failed") or time.monotonic() > deadline:
            return state
        time.sleep(poll_s)
