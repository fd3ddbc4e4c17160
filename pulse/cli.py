"""The ``pulse`` command line: run the pipeline without Airflow, open the dashboards.

Every command that reads or writes the DuckDB files takes ``--warehouse`` and ``--serving``
(environment: ``PULSE_WAREHOUSE``, ``PULSE_SERVING``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pulse.cli_api import app as api_app
from pulse.cli_backup import app as backup_app
from pulse.cli_cluster import app as cluster_app
from pulse.cli_common import ServingOpt, WarehouseOpt, console, settings_or_exit, setup_logging
from pulse.cli_moderation import app as moderation_app
from pulse.cli_privacy import app as privacy_app
from pulse.cli_review import app as review_app
from pulse.settings import Settings

app = typer.Typer(help="Community Pulse: community analytics and moderation pipeline.", no_args_is_help=True)

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


@app.command()
def run(
    source: Annotated[str, typer.Option(help="demo | stackexchange | events | postgres")] = "demo",
    path: Annotated[
        Path | None,
        typer.Option(
            help="Stack Exchange data dump folder (Posts.xml, Comments.xml, ...); for events: a folder, glob or file of *.jsonl[.gz] / *.ndjson / *.parquet exports"
        ),
    ] = None,
    source_name: Annotated[
        str | None,
        typer.Option(
            "--source-name",
            help="events: the source the events belong to, e.g. stackexchange:beer [default events:<folder name>]",
        ),
    ] = None,
    dsn: Annotated[
        str | None,
        typer.Option(
            help="postgres: the platform database, postgresql://USER:PW@HOST:PORT/DB [env PULSE_POSTGRES_DSN; never printed]",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[str | None, typer.Option(help="postgres: built-in mapping preset [default discourse]")] = None,
    mapping: Annotated[Path | None, typer.Option(help="postgres: a mapping file (TOML) instead of a preset")] = None,
    since: Annotated[
        datetime | None, typer.Option(formats=DATE_FORMATS, help="Data interval start, UTC (inclusive)")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=DATE_FORMATS, help="Data interval end, UTC (exclusive)")
    ] = None,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
    scorer: Annotated[
        str | None, typer.Option(help="auto | lexical | detoxify:original|unbiased|multilingual | checkpoint:DIR")
    ] = None,
    timezone: Annotated[str | None, typer.Option(help="Community IANA timezone, e.g. Europe/Berlin")] = None,
    seed: Annotated[int, typer.Option(help="Demo generator seed")] = 7,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run extract → validate → load → score → transform → validate marts → publish for one interval."""
    from pulse.steps import PipelineError, SourceSpec, run_pipeline, stream_counts
    from warehouse.privacy_keys import PrivacyKeyError
    from warehouse.quality import QualityGateError
    from warehouse.sources.postgres import PostgresSourceError
    from warehouse.sources.stackexchange import UnsafeXMLError

    setup_logging(verbose)
    settings = settings_or_exit(warehouse=warehouse, serving=serving, scorer=scorer)
    if source == "postgres":
        spec = _postgres_spec(settings, dsn, preset, mapping, timezone)
    elif source not in ("demo", "stackexchange", "events"):
        console.print(
            f"[red]unknown source {source!r}[/]; use --source demo, --source stackexchange --path DIR or --source events --path DIR_OR_GLOB"
        )
        raise typer.Exit(2)
    if source == "events":
        _check_event_exports(path, source_name)
    if source == "stackexchange" and path is None:
        console.print(
            "[red]--source stackexchange needs --path DIR[/] (a folder with Posts.xml, Comments.xml, Votes.xml, Users.xml, Tags.xml)"
        )
        raise typer.Exit(2)
    if timezone is not None:
        settings_or_exit(timezone=timezone)  # validates the name, exits 2 with the fix if unknown
    if source != "postgres":
        spec = SourceSpec(kind=source, path=path, timezone=timezone, seed=seed, source_name=source_name)  # type: ignore[arg-type]
    try:
        summary = run_pipeline(settings, spec, since=since, until=until, progress=True)
    except (PipelineError, QualityGateError) as exc:
        console.print(
            f"[bold red]Run stopped[/]: {escape(str(exc))}\nNothing was published; the previous snapshot is still served."
        )
        raise typer.Exit(1) from None
    except FileNotFoundError as exc:
        console.print(f"[bold red]Input missing[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    except PrivacyKeyError as exc:  # missing, malformed, too open, or not this warehouse's key
        console.print(f"[bold red]Configuration error[/]: {escape(str(exc))}\nNothing was loaded.")
        raise typer.Exit(2) from None
    except PostgresSourceError as exc:
        console.print(f"[bold red]Source failed[/]: {escape(str(exc))}\nNothing was loaded; watermarks did not move.")
        raise typer.Exit(1) from None
    except UnsafeXMLError as exc:
        console.print(f"[bold red]Input rejected[/]: {escape(str(exc))}\nNothing was loaded.")
        raise typer.Exit(2) from None
    _print_summary(summary, stream_counts(settings, summary.run_id), settings)


def _postgres_spec(
    settings: Settings, dsn: str | None, preset: str | None, mapping: Path | None, timezone: str | None
) -> Any:
    """The :class:`~pulse.steps.SourceSpec` of ``--source postgres``; exit 2 with the fix on bad options or mapping."""
    from pydantic import SecretStr

    from pulse.steps import SourceSpec, postgres_options
    from warehouse.sources.postgres import MappingError, load_mapping, redact_dsn

    secret = SecretStr(dsn) if dsn else settings.postgres_dsn
    if secret is None or not secret.get_secret_value():
        console.print(
            "[red]--source postgres needs a DSN[/]: --dsn postgresql://USER:PW@HOST:PORT/DB or PULSE_POSTGRES_DSN"
        )
        raise typer.Exit(2)
    if preset and mapping:
        console.print("[red]give --preset NAME or --mapping FILE, not both[/]")
        raise typer.Exit(2)
    try:
        load_mapping(mapping, preset=None if mapping else (preset or "discourse"))
    except MappingError as exc:
        console.print(f"[bold red]Bad mapping[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    console.print(
        f"Reading {escape(redact_dsn(secret.get_secret_value()))} with "
        f"{'mapping ' + escape(str(mapping)) if mapping else 'preset ' + (preset or 'discourse')}"
    )
    return SourceSpec(
        kind="postgres",
        dsn=secret,
        preset=preset,
        mapping=mapping,
        timezone=timezone,
        postgres_options=postgres_options(settings),
    )


def _check_event_exports(path: Path | None, source_name: str | None) -> None:
    """Exit 2 with the fix when ``--source events`` lacks a usable ``--path`` or ``--source-name``."""
    from warehouse.sources.events import event_source_name, find_event_files

    if path is None:
        console.print(
            "[red]--source events needs --path DIR_OR_GLOB[/] (event export files: *.jsonl, *.jsonl.gz, *.ndjson, *.parquet)"
        )
        raise typer.Exit(2)
    try:
        name = event_source_name(path, source_name)
        find_event_files(path)
    except FileNotFoundError as exc:
        console.print(f"[bold red]Input missing[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    except ValueError as exc:
        console.print(f"[bold red]Bad input[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    if source_name is None:
        console.print(
            f"[yellow]Events load as source {escape(name)}[/]; to join them to a platform's content give "
            "--source-name (e.g. stackexchange:beer), else they are quarantined as dangling references."
        )


def _print_summary(summary: Any, counts: Any, settings: Settings) -> None:
    s = summary.steps
    synthetic = " [yellow](synthetic demo data: generated, not real people)[/]" if s["extract"].get("synthetic") else ""
    console.print(f"\n[bold]Run {summary.run_id}[/] — source [cyan]{s['extract']['source']}[/]{synthetic}")
    t = Table(title="Rows per stream (read = inserted + updated + unchanged + skipped + quarantined)")
    for col in ("stream", "read", "inserted", "updated", "unchanged", "skipped", "quarantined"):
        t.add_column(col, justify="left" if col == "stream" else "right")
    for row in counts.iter_rows(named=True):
        t.add_row(
            row["stream"],
            *(f"{row[c] or 0:,}" for c in ("read", "inserted", "updated", "unchanged", "skipped", "quarantined")),
        )
    console.print(t)
    for row in counts.iter_rows(named=True):
        for rule, n in json.loads(row["skip_rules"] or "{}").items():
            console.print(f"  {row['stream']}: {n:,} skipped: {escape(rule)}")
    if "files_read" in s["extract"]:
        e = s["extract"]
        console.print(
            f"Event export files: {e['files_read']:,} read, {e['files_already_loaded']:,} already loaded (skipped), "
            f"{e['files_left_for_later']:,} arrived after the interval (left for a later run)"
        )
    sc = s["score"]
    model = f"{sc['model_id']}" + (
        " [yellow](FALLBACK: " + escape(sc["fallback_reason"] or "") + ")[/]" if sc["is_fallback"] else ""
    )
    console.print(f"Scoring: {sc['scored']:,} texts scored now, {sc['already_scored']:,} already scored; model {model}")
    console.print(f"Flags: {sc['flagged']:,} items flagged, {sc['held']:,} recommended to hold")
    v, vm = s["validate"], s["validate_marts"]
    console.print(
        f"Expectations: staging {v['passed']} passed / {v['failed']} failed; marts {vm['passed']} passed / {vm['failed']} failed"
    )
    console.print(f"Marts: {s['transform']['marts']}")
    console.print(f"Published {s['publish']['serving']} in {summary.elapsed_s:.1f}s total")
    console.print(f"Dashboards: [bold]pulse dashboards --serving {settings.serving}[/]")


@app.command()
def dashboards(
    serving: ServingOpt = None,
    port: Annotated[int, typer.Option(help="HTTP port")] = 8501,
    warehouse: WarehouseOpt = None,
) -> None:
    """Start the Streamlit dashboards on the serving snapshot (read-only)."""
    settings = settings_or_exit(serving=serving, warehouse=warehouse)
    repo = Path(__file__).resolve().parents[1]
    app_py = repo / "dashboards" / "app.py"
    env = {**os.environ, "PULSE_SERVING": str(Path(settings.serving).resolve())}
    console.print(f"Dashboards on [bold]http://localhost:{port}[/] (snapshot {settings.serving}); Ctrl+C stops them.")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_py),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    # Run from the project root so Streamlit picks up .streamlit/config.toml; exec so Ctrl+C reaches it.
    os.chdir(repo)
    os.execve(sys.executable, cmd, env)


@app.command()
def airflow(
    port: Annotated[int, typer.Option(help="Airflow UI / API port")] = 8080,
    home: Annotated[Path, typer.Option(help="AIRFLOW_HOME (metadata DB, logs, admin password)")] = Path("airflow_home"),
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """Start Airflow (`airflow standalone`) with this project's DAGs, tuned for a small machine.

    Ctrl+C (SIGINT to the process group) stops every Airflow process.
    """
    from pulse.airflow_env import airflow_env, password_file, start_standalone, stop_standalone

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    home = home.resolve()
    env = airflow_env(home, api_port=port)
    env.update(
        PULSE_WAREHOUSE=str(Path(settings.warehouse).resolve()), PULSE_SERVING=str(Path(settings.serving).resolve())
    )
    af = [sys.executable, "-m", "airflow"]
    for args in (
        ["db", "migrate"],
        ["pools", "set", settings.airflow_pool, "1", "DuckDB warehouse: one writer at a time"],
    ):
        done = subprocess.run([*af, *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            console.print(f"[red]airflow {' '.join(args)} failed[/]:\n{escape(done.stderr[-2000:])}")
            raise typer.Exit(1)
    console.print(
        f"Airflow UI and REST API: [bold]http://localhost:{port}[/]; user [bold]admin[/], password in "
        f"{password_file(home)} (written at first start). Ctrl+C stops every Airflow process."
    )
    proc = start_standalone(env)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        console.print("Stopping Airflow ...")
        clean = stop_standalone(proc)
        console.print("Airflow stopped." if clean else "Airflow stopped (some components had to be killed).")
        code = 0
    raise typer.Exit(code)


@app.command()
def runs(
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
    limit: Annotated[int, typer.Option(help="How many recent runs")] = 10,
) -> None:
    """List recent runs from the warehouse: status, interval, source, scorer, error."""
    from warehouse.db import open_warehouse

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    with open_warehouse(settings.warehouse) as con:
        rows = con.execute(
            "select run_id, source, status, interval_start, interval_end, "
            "round(epoch(finished_at - started_at), 1) as seconds, scorer_model_id, error "
            "from ops.runs order by started_at desc limit ?",
            [limit],
        ).fetchall()
        note = con.execute(  # the latest scored run's model, in words
            "select scorer_model_id, scorer_is_fallback, scorer_note from ops.runs "
            "where scorer_model_id is not null order by started_at desc limit 1"
        ).fetchall()
    t = Table(title=f"Recent runs in {settings.warehouse}")
    for col in ("run_id", "source", "status", "since", "until", "seconds", "scorer", "error"):
        t.add_column(col)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)
    if note:
        model, fallback, why = note[0]
        line = f"The latest run scored with [bold]{escape(str(model))}[/]"
        console.print(line + (f" (fallback): {escape(str(why))}" if fallback and why else "."))


# The command groups, after the commands above (`pulse --help` lists them in this order).
app.add_typer(moderation_app, name="moderation")
app.add_typer(review_app, name="review")
app.add_typer(privacy_app, name="privacy")
app.add_typer(api_app, name="api")
app.add_typer(cluster_app, name="cluster")
app.add_typer(backup_app, name="backup")


if __name__ == "__main__":
    app()
