"""``pulse review``: the review store's schema, moderators' accounts and the decision log.

Registered in :mod:`pulse.cli` as a typer sub-app. The store is named by
``PULSE_REVIEW_STORE_URL`` (a secret: environment or config file, never a command-line
argument; printed only with its password masked). Exit codes as everywhere in ``pulse``:
0 success, 2 bad input or configuration (the message names the option and the fix).

Passwords are never defaults: given on stdin (``--password-stdin``) or generated (24 random
URL-safe characters) and printed once.

Account changes are logged in the store's admin-action log (``review_admin_actions``) with the
actor: ``--actor NAME``, else the OS user running the command. Password, role and deactivation
changes and ``sign-out-everywhere`` end the account's open sessions (its session epoch is bumped).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pulse.cli_common import console, fail, settings_or_exit

app = typer.Typer(help="Review store: moderators' accounts, roles and the decision (mod) log.", no_args_is_help=True)

RoleOpt = Annotated[str, typer.Option("--role", help="moderator | manager | admin | data_engineer")]
ActorOpt = Annotated[
    str | None,
    typer.Option("--actor", help="Who makes the change, for the admin-action log (default: the OS user)"),
]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of stdin (else one is generated and printed once)",
    ),
]


def _store() -> Any:
    """The configured store with its schema in place, or exit 2 with the reason."""
    from moderation.review_store import ReviewStore

    settings = settings_or_exit()
    try:
        store = ReviewStore.from_settings(settings)
        store.create_schema()
    except ValueError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a connection failure: say where, without the password
        from moderation.review_store import redact_url

        url = redact_url(settings.review_store_url.get_secret_value())
        raise fail(
            f"cannot open the review store {url}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]} "
            "(check PULSE_REVIEW_STORE_URL)"
        ) from None
    return store


def _password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated?)."""
    from moderation.review_store import generate_password

    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise fail(
                "--password-stdin: stdin was empty; pipe the password in, e.g. `printf '%s\\n' \"$PW\" | pulse review ...`"
            )
        return line, False
    return generate_password(), True


def _show_generated(username: str, password: str) -> None:
    c = console
    c.print(f"Password for [bold]{escape(username)}[/] (shown once; store it in a password manager):")
    # plain print: no Rich markup or wrapping may alter the secret
    print(password)


@app.command()
def init() -> None:
    """Create the review store's tables if missing (idempotent)."""
    store = _store()
    console.print(f"Review store ready: {escape(store.url_redacted)} ({len(store.users())} users)")
    store.dispose()


@app.command("add-user")
def add_user(
    username: Annotated[str, typer.Argument(help="Login name")],
    role: RoleOpt,
    name: Annotated[str, typer.Option("--name", help="Display name")],
    email: Annotated[str, typer.Option("--email", help="E-mail address (shown to admins only)")],
    password_stdin: PasswordStdinOpt = False,
    actor: ActorOpt = None,
) -> None:
    """Create a review-app account (password from stdin, or generated and printed once)."""
    from moderation.review_store import ReviewError

    store = _store()
    password, generated = _password(password_stdin)
    try:
        store.add_user(username, name=name, email=email, role=role, password=password, actor=actor)
    except (ValueError, ReviewError) as exc:
        raise fail(str(exc)) from None
    finally:
        store.dispose()
    console.print(f"Added {escape(username)} ({role}).")
    if generated:
        _show_generated(username, password)


@app.command("set-role")
def set_role(
    username: Annotated[str, typer.Argument(help="Login name")], role: RoleOpt, actor: ActorOpt = None
) -> None:
    """Change a user's role (their open sessions end)."""
    from moderation.review_store import ReviewError

    store = _store()
    try:
        store.set_role(username, role, actor=actor)
    except (ValueError, ReviewError) as exc:
        raise fail(str(exc)) from None
    finally:
        store.dispose()
    console.print(f"{escape(username)} is now {role}.")


@app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="Login name")],
    password_stdin: PasswordStdinOpt = False,
    actor: ActorOpt = None,
) -> None:
    """Replace a user's password (from stdin, or generated and printed once); their open sessions end."""
    from moderation.review_store import ReviewError

    store = _store()
    password, generated = _password(password_stdin)
    try:
        store.set_password(username, password, actor=actor)
    except (ValueError, ReviewError) as exc:
        raise fail(str(exc)) from None
    finally:
        store.dispose()
    console.print(f"Password of {escape(username)} changed.")
    if generated:
        _show_generated(username, password)


@app.command()
def deactivate(username: Annotated[str, typer.Argument(help="Login name")], actor: ActorOpt = None) -> None:
    """Deactivate an account: no sign-in, no actions, open sessions end; its past decisions stay in the log."""
    from moderation.review_store import ReviewError

    store = _store()
    try:
        store.deactivate(username, actor=actor)
    except ReviewError as exc:
        raise fail(str(exc)) from None
    finally:
        store.dispose()
    console.print(f"{escape(username)} deactivated.")


@app.command("sign-out-everywhere")
def sign_out_everywhere(username: Annotated[str, typer.Argument(help="Login name")], actor: ActorOpt = None) -> None:
    """End every open session and sign-in cookie of a user (they sign in again with their password)."""
    from moderation.review_store import ReviewError

    store = _store()
    try:
        store.sign_out_everywhere(username, actor=actor)
    except ReviewError as exc:
        raise fail(str(exc)) from None
    finally:
        store.dispose()
    console.print(f"{escape(username)} is signed out everywhere.")


@app.command()
def unlock(
    username: Annotated[str, typer.Argument(help="Login name (as typed on the sign-in form)")], actor: ActorOpt = None
) -> None:
    """Lift a sign-in lockout (too many failed sign-ins) and reset the username's failure count."""
    store = _store()
    try:
        until, had_failures = store.unlock(username, actor=actor)
    finally:
        store.dispose()
    if until is not None:
        console.print(f"{escape(username)} unlocked (the lock would have ended at {until:%Y-%m-%d %H:%M} UTC).")
    elif had_failures:
        console.print(f"{escape(username)} was not locked; its failed sign-in count was reset.")
    else:
        console.print(f"{escape(username)} was not locked and had no failed sign-ins.")


@app.command()
def users() -> None:
    """List the accounts (username, name, e-mail, role, active)."""
    store = _store()
    rows = store.users()
    store.dispose()
    t = Table(title=f"Review users in {store.url_redacted}")
    for col in ("username", "name", "email", "role", "active"):
        t.add_column(col)
    for u in rows:
        t.add_row(escape(u.username), escape(u.name), escape(u.email), u.role, "yes" if u.active else "no")
    console.print(t)


@app.command("ensure-admin")
def ensure_admin() -> None:
    """Make sure an active admin exists: if none, create (or re-enable) user ``admin`` with a
    random password printed once. Idempotent: does nothing when an active admin exists."""
    from moderation.review_store import generate_password

    store = _store()
    try:
        admins = [u for u in store.users() if u.role == "admin" and u.active]
        if admins:
            console.print(f"An active admin exists ({', '.join(escape(u.username) for u in admins)}); nothing to do.")
            return
        password = generate_password()
        existing = store.user("admin")
        if existing is None:
            store.add_user("admin", name="Administrator", email="admin@localhost", role="admin", password=password)
            console.print("Created user admin (role admin).")
        else:
            store.set_role("admin", "admin")
            store.activate("admin")
            store.set_password("admin", password)
            console.print("Re-enabled user admin with role admin and a new password.")
        _show_generated("admin", password)
    finally:
        store.dispose()


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise fail(f"{option} {value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)")


@app.command()
def decisions(
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write the log to this CSV file instead of printing it")
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only this moderator")] = None,
    action: Annotated[str | None, typer.Option("--action", help="approve | remove | escalate")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this UTC date/time (inclusive)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this UTC date/time (exclusive)")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to print (the CSV gets all)", min=1)] = 50,
) -> None:
    """The decision (mod) log, newest first: print it or export it with --csv."""
    store = _store()
    log = store.decisions(
        source=source, actor=actor, action=action, start=_when(since, "--since"), end=_when(until, "--until")
    )
    store.dispose()
    if csv is not None:
        from warehouse.export import to_csv_bytes
        from warehouse.files import private_dir, private_file

        private_dir(csv.parent)
        csv.touch()
        private_file(csv)  # owner-only (PULSE_FILE_MODE) before any note is written
        csv.write_bytes(to_csv_bytes(log))  # formulas defused as in the dashboards' export
        console.print(f"Wrote {log.height:,} decisions to {escape(str(csv))}")
        return
    t = Table(title=f"Decisions ({log.height:,}; newest first, showing {min(limit, log.height):,})")
    cols = (
        "decided_at",
        "actor",
        "action",
        "source",
        "content_id",
        "from_state",
        "to_state",
        "reason_code",
        "item_version",
        "note",
    )
    for col in cols:
        t.add_column(col)
    for row in log.head(limit).iter_rows(named=True):
        t.add_row(*("" if row[c] is None else escape(str(row[c]))[:80] for c in cols))
    console.print(t)
