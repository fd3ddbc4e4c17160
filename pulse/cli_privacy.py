"""``pulse privacy``: data-subject requests (export a user's data, forget a user), retention, key rotation.

Registered in :mod:`pulse.cli` as a typer sub-app. Exit codes as everywhere in ``pulse``:
0 success (erased, compacted and verified), 1 the request failed (erased values still
found in a file: status ``verification_failed``), 2 bad input or configuration
(unknown user, unknown mode, a privacy key that is not the warehouse's: the message names the
option and the fix). Every argument reaches
SQL as a bound parameter, never as SQL text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pulse.cli_common import ServingOpt, WarehouseOpt, console, settings_or_exit

app = typer.Typer(
    help="Privacy: export or erase one user's data (GDPR access and erasure), body retention.", no_args_is_help=True
)

SourceOpt = Annotated[str, typer.Option("--source", help="Source id, e.g. stackexchange:beer (see `pulse runs`)")]
UserOpt = Annotated[str, typer.Option("--user-id", help="The user's id in that source, e.g. 73")]
StoreOpt = Annotated[
    bool, typer.Option("--review-store/--no-review-store", help="Include the review store (PULSE_REVIEW_STORE_URL)")
]


def _store(settings: Any, use: bool) -> Any:
    if not use:
        return None
    from moderation.review_store import ReviewStore

    store = ReviewStore.from_settings(settings)
    store.create_schema()
    return store


@app.command("export-user")
def export_user_cmd(
    source: SourceOpt,
    user_id: UserOpt,
    out: Annotated[Path, typer.Option("--out", help="JSON file to write (the data subject's copy)")],
    warehouse: WarehouseOpt = None,
    review_store: StoreOpt = True,
) -> None:
    """Write everything held about one user (profile, content, events, scores, flags, decisions) as JSON."""
    from pulse.privacy import export_user
    from warehouse.db import open_warehouse
    from warehouse.privacy import UserNotFoundError, log_export

    settings = settings_or_exit(warehouse=warehouse)
    store = _store(settings, review_store)
    try:
        with open_warehouse(settings.warehouse) as con:
            try:
                doc = export_user(con, source, user_id, store=store)
            except UserNotFoundError as exc:
                console.print(f"[bold red]Not found[/]: {escape(str(exc))}; nothing was written.")
                raise typer.Exit(2) from None
            request_id = log_export(con, source, doc)
    finally:
        if store is not None:
            store.dispose()
    from warehouse.files import private_dir, private_file

    private_dir(out.parent)
    out.touch()
    private_file(out)  # owner-only (PULSE_FILE_MODE) before any of the member's data is written
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    counts = ", ".join(f"{k} {v}" for k, v in doc["counts"].items() if v)
    console.print(f"Exported to [bold]{escape(str(out))}[/] (request {request_id}): {escape(counts)}")


@app.command("forget-user")
def forget_user_cmd(
    source: SourceOpt,
    user_id: UserOpt,
    mode: Annotated[
        str | None, typer.Option("--mode", help="redact | delete [env PULSE_PRIVACY_ERASURE_MODE; default redact]")
    ] = None,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
    review_store: StoreOpt = True,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase one user's personal data from the warehouse, the review store and the snapshot; tombstone them."""
    from pulse.privacy import forget_user
    from warehouse.privacy import UserNotFoundError

    settings = settings_or_exit(warehouse=warehouse, serving=serving, privacy_erasure_mode=mode)
    if not yes and not typer.confirm(f"Erase user {user_id!r} of {source!r} ({settings.privacy_erasure_mode})?"):
        raise typer.Exit(1)
    store = _store(settings, review_store)
    try:
        report = forget_user(
            settings.warehouse,
            source,
            user_id,
            mode=settings.privacy_erasure_mode,
            serving=settings.serving,
            store=store,
            mentions=settings.privacy_replace_mentions,
            ledger=settings.erasure_ledger,
        )
    except UserNotFoundError as exc:
        console.print(f"[bold red]Not found[/]: {escape(str(exc))}; nothing was changed.")
        raise typer.Exit(2) from None
    finally:
        if store is not None:
            store.dispose()
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items() if v)
    console.print(f"Erased (request {report.request_id}, mode {report.mode}): {escape(counts)}")
    v = report.verification
    console.print(
        f"Verified: {v.get('values_checked', 0)} erased values checked in {len(v.get('files', []))} files "
        f"(and their WALs); {v.get('not_checkable', 0)} not checkable (under 6 characters or still in "
        "other members' text)."
    )
    if report.residue:
        console.print(
            f"[bold red]Verification failed[/]: erased values still found in "
            f"{escape(', '.join(sorted(report.residue)))} (request status verification_failed)"
        )
        raise typer.Exit(1)
    console.print("Tombstone recorded: later loads from the source drop or redact this user's records.")


@app.command("rotate-key")
def rotate_key_cmd(
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """New privacy key (tombstones, pseudonyms): the old one is kept, retired; marts rebuilt; snapshot republished.

    With the key file: a new random key is written first in it. With PULSE_PRIVACY_KEY: set it to
    NEW,OLD (current first) and run this to adopt NEW. Every pseudonym in the marts changes.
    """
    from pulse.privacy import rotate_key
    from warehouse.privacy_keys import PrivacyKeyError

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    if not yes and not typer.confirm("Rotate the privacy key (every pseudonym in the marts changes)?"):
        raise typer.Exit(1)
    try:
        out = rotate_key(settings.warehouse, serving=settings.serving)
    except PrivacyKeyError as exc:
        console.print(f"[bold red]Not rotated[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    stones = ", ".join(f"{k} {n}" for k, n in out["tombstones_by_key_id"].items()) or "none"
    console.print(
        f"Rotated: key id {out['old_key_id']} -> {out['new_key_id']} ({escape(out['origin'])}); "
        f"{out['marts_rebuilt']} marts rebuilt with the new pseudonyms"
        + ("; snapshot republished" if out["serving_republished"] else "")
        + f".\nTombstones by key id: {stones} (keep every key they name in the ring). "
        "Back up the key file now, apart from the data."
    )
