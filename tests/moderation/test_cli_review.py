"""`pulse review ...` as an operator runs it: accounts, passwords printed once, the mod log."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from moderation.review_store import ReviewStore
from pulse.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"PULSE_REVIEW_STORE_URL": f"sqlite:///{tmp_path / 'review.sqlite'}"}


def _password_from(output: str) -> str:
    lines = output.splitlines()
    i = next(i for i, line in enumerate(lines) if "shown once" in line)
    return lines[i + 1].strip()


def test_ensure_admin_creates_once_with_a_random_password(env: dict[str, str], tmp_path: Path) -> None:
    first = runner.invoke(app, ["review", "ensure-admin"], env=env)
    assert first.exit_code == 0, first.output
    password = _password_from(first.output)
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", password)
    store = ReviewStore(env["PULSE_REVIEW_STORE_URL"])
    assert store.authenticate("admin", password).role == "admin"
    second = runner.invoke(app, ["review", "ensure-admin"], env=env)
    assert second.exit_code == 0 and "nothing to do" in second.output and password not in second.output
    # a deactivated admin is re-enabled with a new password
    store.deactivate("admin")
    third = runner.invoke(app, ["review", "ensure-admin"], env=env)
    new_password = _password_from(third.output)
    assert new_password != password
    assert store.authenticate("admin", password) is None
    assert store.authenticate("admin", new_password).active
    store.dispose()


def test_add_user_from_stdin_or_generated(env: dict[str, str]) -> None:
    given = runner.invoke(
        app,
        [
            "review",
            "add-user",
            "alice",
            "--role",
            "moderator",
            "--name",
            "Alice",
            "--email",
            "alice@example.org",
            "--password-stdin",
        ],
        input="a long enough passphrase\n",
        env=env,
    )
    assert given.exit_code == 0, given.output
    assert "a long enough passphrase" not in given.output and "shown once" not in given.output
    generated = runner.invoke(
        app, ["review", "add-user", "mia", "--role", "manager", "--name", "Mia", "--email", "mia@example.org"], env=env
    )
    password = _password_from(generated.output)
    store = ReviewStore(env["PULSE_REVIEW_STORE_URL"])
    assert store.authenticate("alice", "a long enough passphrase").role == "moderator"
    assert store.authenticate("mia", password).role == "manager"
    store.dispose()
    listing = runner.invoke(app, ["review", "users"], env=env)
    assert "alice" in listing.output and "manager" in listing.output
    assert "$2b$" not in listing.output


def test_bad_input_exits_2_with_the_fix(env: dict[str, str]) -> None:
    bad_role = runner.invoke(
        app, ["review", "add-user", "x", "--role", "owner", "--name", "X", "--email", "x@e.org"], env=env
    )
    assert bad_role.exit_code == 2 and "unknown role 'owner'" in bad_role.output
    weak = runner.invoke(
        app,
        ["review", "add-user", "x", "--role", "moderator", "--name", "X", "--email", "x@e.org", "--password-stdin"],
        input="short\n",
        env=env,
    )
    assert weak.exit_code == 2 and "at least 12" in weak.output
    empty = runner.invoke(app, ["review", "set-password", "x", "--password-stdin"], input="", env=env)
    assert empty.exit_code == 2 and "stdin was empty" in empty.output
    ghost = runner.invoke(app, ["review", "deactivate", "ghost"], env=env)
    assert ghost.exit_code == 2 and "no user named 'ghost'" in ghost.output
    url = {"PULSE_REVIEW_STORE_URL": "postgresql://pulse:s3cret-pw@127.0.0.1:1/nowhere"}
    down = runner.invoke(app, ["review", "users"], env=url)
    assert down.exit_code == 2 and "cannot open the review store" in down.output
    assert "s3cret-pw" not in down.output and "***" in down.output


def test_set_role_deactivate_and_decisions_csv(env: dict[str, str], tmp_path: Path) -> None:
    store = ReviewStore(env["PULSE_REVIEW_STORE_URL"], bcrypt_rounds=4)
    store.create_schema()
    store.add_user("bob", name="Bob", email="bob@example.org", role="manager", password="a long enough passphrase")
    assert runner.invoke(app, ["review", "set-role", "bob", "--role", "moderator"], env=env).exit_code == 0
    store.decide(
        source="s",
        content_id="1",
        action="remove",
        actor="bob",
        expected_version=0,
        content_hash="h",
        reason_code="spam",
        note="buy now, cheap",
    )
    store.decide(source="s", content_id="2", action="escalate", actor="bob", expected_version=0, content_hash="h")
    shown = runner.invoke(app, ["review", "decisions", "--action", "remove"], env=env)
    assert shown.exit_code == 0 and "Decisions (1;" in shown.output and "spam" in shown.output
    out = tmp_path / "log" / "decisions.csv"
    written = runner.invoke(app, ["review", "decisions", "--csv", str(out)], env=env)
    assert written.exit_code == 0 and "Wrote 2 decisions" in written.output
    csv = pl.read_csv(out)
    assert sorted(csv["action"]) == ["escalate", "remove"]
    assert csv.filter(pl.col("action") == "remove")["note"].to_list() == ["buy now, cheap"]
    assert runner.invoke(app, ["review", "deactivate", "bob"], env=env).exit_code == 0
    assert store.authenticate("bob", "a long enough passphrase") is None
    bad_date = runner.invoke(app, ["review", "decisions", "--since", "last week"], env=env)
    assert bad_date.exit_code == 2 and "YYYY-MM-DD" in bad_date.output
    store.dispose()


def test_unlock_lifts_a_signin_lockout(env: dict[str, str]) -> None:
    store = ReviewStore(env["PULSE_REVIEW_STORE_URL"], bcrypt_rounds=4)
    store.create_schema()
    store.add_user(
        "carol", name="Carol", email="carol@example.org", role="moderator", password="a long enough passphrase"
    )
    for _ in range(5):
        until = store.record_failed_signin("carol")
    assert until is not None and store.locked_until("carol") == until
    unlocked = runner.invoke(app, ["review", "unlock", "carol"], env=env)
    assert unlocked.exit_code == 0, unlocked.output
    assert f"carol unlocked (the lock would have ended at {until:%Y-%m-%d %H:%M} UTC)" in unlocked.output
    assert store.locked_until("carol") is None
    again = runner.invoke(app, ["review", "unlock", "carol"], env=env)
    assert again.exit_code == 0 and "carol was not locked and had no failed sign-ins." in again.output
    store.record_failed_signin("carol")
    reset = runner.invoke(app, ["review", "unlock", "carol"], env=env)
    assert "carol was not locked; its failed sign-in count was reset." in reset.output
    store.dispose()
