"""The environment Airflow runs in for this project: its home, DAGs, ports, small-machine tuning.

Shared by ``pulse airflow`` (which starts ``airflow standalone``) and the tests that start
Airflow's services, so both run the same configuration.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def airflow_env(
    home: Path,
    *,
    api_port: int = 8080,
    log_port: int = 8793,
    trigger_log_port: int = 8794,
    parallelism: int = 4,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment variables for Airflow's services on this machine.

    Args:
        home: ``AIRFLOW_HOME`` (metadata DB, logs, generated admin password).
        api_port: the API server / UI port; workers reach the Execution API through it.
        log_port, trigger_log_port: the workers' and triggerer's log-serving ports.
        parallelism: task slots (``airflow standalone`` starts ~60 processes by default; 4 fits 2 cores).
        base: the environment to extend (default: this process's).

    Returns:
        A complete environment for ``subprocess`` (PATH leads with this interpreter's bin folder,
        because ``airflow standalone`` starts its components as ``airflow ...``).
    """
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
            "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def password_file(home: Path) -> Path:
    """Where ``airflow standalone``'s simple auth manager writes the generated admin password."""
    return Path(home) / "simple_auth_manager_passwords.json.generated"


def start_standalone(env: dict[str, str], *, stdout: Any = None) -> subprocess.Popen:
    """Start ``airflow standalone`` in its own session (process group) with SIGINT at its default.

    Its own session keeps a terminal's Ctrl+C away from the components: :func:`stop_standalone`
    sends one SIGINT to ``airflow standalone`` alone, which then stops each component once. (A
    Ctrl+C to the whole group delivers SIGINT and then standalone's SIGTERM to each component;
    the DAG processor can deadlock logging the second signal inside the first one's handler.)
    """
    return subprocess.Popen(
        [sys.executable, "-m", "airflow", "standalone"],
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_standalone(proc: subprocess.Popen, *, timeout_s: float = 90.0) -> bool:
    """Stop ``airflow standalone`` and every process it started; return True when it stopped cleanly.

    Sends SIGINT to standalone, waits up to ``timeout_s`` for it and its process group to end;
    escalates to SIGTERM and then SIGKILL of the whole group if anything is left, so nothing
    outlives the call either way.
    """
    pgid = proc.pid
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while (proc.poll() is None or _group_alive(pgid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    clean = proc.poll() is not None and not _group_alive(pgid)
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        if not _group_alive(pgid) and proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        end = time.monotonic() + grace
        while _group_alive(pgid) and time.monotonic() < end:
            time.sleep(0.5)
    proc.wait(timeout=10)
    return clean
