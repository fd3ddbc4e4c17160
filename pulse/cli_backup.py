"""``pulse backup``: create, list, verify, restore and prune encrypted backups (:mod:`pulse.backup`).

Registered in :mod:`pulse.cli` as a typer sub-app. ``DEST`` is a folder or an fsspec URL
(``s3://bucket/prefix``). Every command honours ``--warehouse`` / ``--serving`` (env
``PULSE_WAREHOUSE`` / ``PULSE_SERVING``) and ``PULSE_REVIEW_STORE_URL``; the key is
``PULSE_BACKUP_KEY`` (environment only). Exit codes as everywhere in ``pulse``: 0 success,
1 the command failed (a run is active, verification failed: the message names the file),
2 bad input or configuration (no key, unknown backup id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pulse.cli_common import ServingOpt, WarehouseOpt, console, settings_or_exit

app = typer.Typer(
    help="Backups: create, list, verify, restore and prune encrypted backups (PULSE_BACKUP_KEY).", no_args_is_help=True
)

IdOpt = Annotated[
    str | None, typer.Option("--id", help="Backup id (see `pulse backup list`) [default: the newest finished one]")
]


def _fail(exc: Exception) -> typer.Exit:
    """Print a backup error; the exit code: 1 for a failed check or an active run, 2 for configuration."""
    from pulse.backup import RunActiveError, VerifyError

    if isinstance(exc, VerifyError):
        console.print(f"[bold red]Verification failed[/]: {escape(str(exc))}")
        return typer.Exit(1)
    if isinstance(exc, RunActiveError):
        console.print(f"[bold red]Refused[/]: {escape(str(exc))}")
        return typer.Exit(1)
    console.print(f"[bold red]Backup error[/]: {escape(str(exc))}")
    return typer.Exit(2)


@app.command("create")
def create_cmd(
    to: Annotated[str, typer.Option("--to", help="Destination folder or URL (s3://bucket/prefix)")],
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """Take one consistent, encrypted backup (warehouse, review store, config, erasure ledger); print its id."""
    from pulse.backup import BackupError, create_backup

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    try:
        result = create_backup(settings, to)
    except BackupError as exc:
        raise _fail(exc) from None
    m = result.manifest
    rows = sum(t["rows"] for t in m.get("tables", {}).values())
    console.print(
        f"Backup [bold]{result.backup_id}[/] written to {escape(result.location)}: {len(m['files'])} files, "
        f"{m['backup_bytes']:,} bytes, {len(m.get('tables', {}))} tables ({rows:,} rows), "
        f"review store {(m.get('review_store') or {}).get('kind') or 'none'}, in {m['elapsed_s']:.1f}s"
    )
    print(result.backup_id)


@app.command("list")
def list_cmd(
    in_: Annotated[str, typer.Option("--in", help="Backup folder or URL")],
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """List the backups under a destination: id, time, size, finished or not."""
    from pulse.backup import BackupError, list_backups

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    try:
        rows = list_backups(settings, in_)
    except BackupError as exc:
        raise _fail(exc) from None
    t = Table(title=f"Backups in {in_}")
    for col in ("backup_id", "taken_at (UTC)", "bytes", "files", "parts", "migration", "status"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["backup_id"],
            r["taken_at"],
            f"{r['bytes']:,}" if r["bytes"] is not None else "",
            str(r["files"] or ""),
            ",".join(r.get("parts") or []),
            r.get("migration_level") or "",
            "ok" if r["complete"] else escape(r["error"] or "unfinished"),
        )
    console.print(t)


@app.command("verify")
def verify_cmd(
    in_: Annotated[str, typer.Option("--in", help="Backup folder or URL")],
    backup_id: IdOpt = None,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """Re-hash every file against the manifest and restore into a scratch folder (rows, checksums, integrity)."""
    from pulse.backup import BackupError, verify_backup

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    try:
        r = verify_backup(settings, in_, backup_id)
    except BackupError as exc:
        raise _fail(exc) from None
    console.print(
        f"Backup [bold]{r.backup_id}[/] verified: {r.files} files ({r.bytes:,} bytes) match the manifest; "
        f"restore drill: {r.tables} tables ({r.rows:,} rows) with equal checksums, "
        f"{r.review_store_tables} review-store tables; {r.seconds:.1f}s"
    )


@app.command("restore")
def restore_cmd(
    from_: Annotated[str, typer.Option("--from", help="Backup folder or URL")],
    backup_id: IdOpt = None,
    only: Annotated[str | None, typer.Option("--only", help="warehouse | review-store (partial restore)")] = None,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Restore a backup over the live data (refused while a pipeline run is active); erasures since are re-applied."""
    from pulse.backup import PARTS, BackupError, restore_backup

    if only is not None and only not in PARTS:
        console.print(f"[red]--only must be one of {', '.join(PARTS)}[/], got {escape(only)!r}")
        raise typer.Exit(2)
    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    what = only or "the warehouse and the review store"
    if not yes and not typer.confirm(f"Replace {what} with backup {backup_id or '(newest)'} from {from_}?"):
        raise typer.Exit(1)
    try:
        r = restore_backup(settings, from_, backup_id, only=only)  # type: ignore[arg-type]
    except BackupError as exc:
        raise _fail(exc) from None
    console.print(
        f"Restored [bold]{r.backup_id}[/] (taken {r.taken_at} UTC): {', '.join(r.parts)}; "
        f"{r.tables} tables ({r.rows:,} rows) checked against the manifest; "
        f"review store rows {sum(r.review_store_rows.values()):,}; "
        f"erasures re-applied: {len(r.erasures_reapplied)}; snapshot republished: {r.published}; "
        f"{r.seconds:.1f}s"
    )


@app.command("prune")
def prune_cmd(
    in_: Annotated[str, typer.Option("--in", help="Backup folder or URL")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be deleted")] = False,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """Delete backups outside the grandfather-father-son policy (PULSE_BACKUP_KEEP_DAILY/WEEKLY/MONTHLY/YEARLY)."""
    from pulse.backup import BackupError, prune_backups

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    try:
        r = prune_backups(settings, in_, now=datetime.now(UTC).replace(tzinfo=None), dry_run=dry_run)
    except BackupError as exc:
        raise _fail(exc) from None
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"Kept {len(r['kept'])} backups (daily {settings.backup_keep_daily}, weekly "
        f"{settings.backup_keep_weekly}, monthly {settings.backup_keep_monthly}, yearly "
        f"{settings.backup_keep_yearly}); {verb} {len(r['deleted'])}: {', '.join(r['deleted']) or '-'}"
    )


@app.command("sync-ledger")
def sync_ledger_cmd(warehouse: WarehouseOpt = None, serving: ServingOpt = None) -> None:
    """Append the warehouse's tombstones missing from the erasure ledger (PULSE_ERASURE_LEDGER)."""
    from pulse.backup import BackupError, idle_warehouse, sync_ledger

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    try:
        with idle_warehouse(Path(settings.warehouse)) as con:
            n = sync_ledger(con, Path(settings.erasure_ledger))
    except BackupError as exc:
        raise _fail(exc) from None
    console.print(f"Erasure ledger {escape(str(settings.erasure_ledger))}: {n} new entries")
