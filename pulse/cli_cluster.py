"""``pulse cluster``: an Airflow CeleryExecutor cluster on this machine (see :mod:`pulse.cluster`).

``up --workers N`` starts Redis, the PostgreSQL metadata DB, the API server, scheduler, DAG
processor, triggerer and N Celery workers under ``PULSE_CLUSTER_HOME`` (default ``./cluster``)
and waits until all are healthy; ``status [--json]``; ``down`` stops everything in order;
``run DAG_ID --conf JSON [--json]`` triggers a run through the REST API, waits, and prints the
run's state and its task instances (task id, map index, state, worker hostname, duration).
Exit codes: 0 success, 1 the run failed or a component is down, 2 bad input or no cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pulse.cli_common import console

app = typer.Typer(help="A CeleryExecutor cluster on this machine: up, status, run, down.", no_args_is_help=True)

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Cluster folder [env PULSE_CLUSTER_HOME, default ./cluster]")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _fail(message: str, code: int) -> None:
    console.print(f"[red]{escape(message)}[/red]")
    raise typer.Exit(code)


@app.command()
def up(
    workers: Annotated[int, typer.Option("--workers", min=1, max=16, help="Celery workers (concurrency 1 each)")] = 2,
    port: Annotated[int, typer.Option("--port", help="API server / UI port")] = 8080,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url",
            envvar="PULSE_CLUSTER_POSTGRES_URL",
            help="A PostgreSQL role that may create databases (default: .ci/postgres)",
        ),
    ] = None,
    database: Annotated[str, typer.Option("--database", help="Airflow's metadata database")] = "pulse_cluster",
    heartbeat_timeout: Annotated[
        int,
        typer.Option(
            "--heartbeat-timeout", min=10, help="Seconds before a task whose worker died is failed and retried"
        ),
    ] = 60,
    home: HomeOpt = None,
) -> None:
    """Start the cluster and wait until every component is healthy; print the UI's address and sign-in."""
    from pulse.cluster import ClusterError
    from pulse.cluster import up as start

    try:
        cluster = start(
            home,
            workers=workers,
            api_port=port,
            postgres_url=postgres_url,
            database=database,
            heartbeat_timeout_s=heartbeat_timeout,
            log=lambda m: console.print(escape(m)),
        )
    except ClusterError as exc:
        _fail(str(exc), 1)
    console.print(f"[green]cluster up[/green]: {workers} workers; UI and REST API at {cluster.api_url}")
    console.print(
        f"sign in as admin; the password is in {cluster.airflow_home / 'simple_auth_manager_passwords.json.generated'}"
    )
    console.print(f"logs: {cluster.home / 'logs'}; stop with `pulse cluster down`")


@app.command()
def status(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Each component's process, the API's health and the workers answering a ping."""
    from pulse.cluster import ClusterError
    from pulse.cluster import status as get_status

    try:
        info = get_status(home)
    except ClusterError as exc:
        _fail(str(exc), 2)
    healthy = all(p["running"] for p in info["processes"].values())
    if as_json:
        print(json.dumps(info, indent=1))
    else:
        t = Table(title=f"cluster {info['home']} (UI {info['ui']})")
        for col in ("component", "pid", "running", "health"):
            t.add_column(col)
        for name, p in info["processes"].items():
            t.add_row(
                name,
                str(p["pid"]),
                "yes" if p["running"] else "[red]no[/red]",
                info["health"].get(name.replace("-", "_"), "answers ping" if name in info["workers_answering"] else ""),
            )
        console.print(t)
    raise typer.Exit(0 if healthy else 1)


@app.command()
def down(
    home: HomeOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds each component gets before SIGKILL")] = 60.0,
) -> None:
    """Stop everything `up` started, in order (workers first, Redis last)."""
    from pulse.cluster import ClusterError
    from pulse.cluster import down as stop

    try:
        result = stop(home, timeout_s=timeout, log=lambda m: console.print(escape(m)))
    except ClusterError as exc:
        _fail(str(exc), 2)
    forced = [n for n, clean in result.items() if not clean]
    console.print(
        f"stopped {len(result)} components" + (f"; needed SIGKILL: {', '.join(forced)}" if forced else ", all cleanly")
    )


@app.command()
def run(
    dag_id: Annotated[str, typer.Argument(help="e.g. community_pipeline")],
    conf: Annotated[str, typer.Option("--conf", help='The run\'s conf as JSON, e.g. \'{"source": "demo"}\'')] = "{}",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the run")] = 3600.0,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trigger a DAG run through the REST API, wait, print its state and task instances (exit 0 only on success)."""
    from pulse.cluster import Cluster, ClusterError, cluster_home, trigger, wait_run

    try:
        conf_dict = json.loads(conf)
    except json.JSONDecodeError as exc:
        _fail(f"--conf is not JSON: {exc}", 2)
    if not isinstance(conf_dict, dict):
        _fail("--conf must be a JSON object", 2)
    try:
        cluster = Cluster.load(cluster_home(home))
        state = wait_run(cluster, dag_id, trigger(cluster, dag_id, conf_dict), timeout_s=timeout)
    except ClusterError as exc:
        _fail(str(exc), 2)
    if as_json:
        print(json.dumps(state, indent=1))
    else:
        t = Table(title=f"{dag_id} {state['run_id']}: {state['state']}")
        for col in ("task_id", "map_index", "state", "hostname", "try", "duration_s"):
            t.add_column(col)
        for ti in state["task_instances"]:
            t.add_row(
                ti["task_id"],
                str(ti["map_index"]),
                str(ti["state"]),
                ti["hostname"],
                str(ti["try_number"]),
                "" if ti["duration_s"] is None else f"{ti['duration_s']:.1f}",
            )
        console.print(t)
    raise typer.Exit(0 if state["state"] == "success" else 1)
