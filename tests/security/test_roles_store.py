"""Least privilege in the review store (issue #14): the data_engineer role, session epochs, the
admin-action log, and the upgrade of a store made by an older version — SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from moderation.review_store import ROLES, ReviewError, ReviewStore, metadata

PASSWORD = "correct horse battery staple"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.sqlite'}"
    return request.getfixturevalue("postgres_db").replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def store(store_url: str):
    s = ReviewStore(store_url, bcrypt_rounds=4)
    s.create_schema()
    yield s
    s.dispose()


def _old_metadata() -> sa.MetaData:
    """The schema as the previous version created it: ``review_users`` without ``session_epoch``
    and with the three-role CHECK; no ``review_admin_actions``; the other tables unchanged."""
    old = sa.MetaData()
    sa.Table(
        "review_users",
        old,
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, default=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("role in ('moderator', 'manager', 'admin')", name="ck_review_users_role"),
    )
    for name in ("review_items", "review_decisions", "review_signin_failures"):
        metadata.tables[name].to_metadata(old)
    return old


def _make_old_store(url: str) -> None:
    """An old-schema store with two users, one item and one decision by one of them."""
    engine = sa.create_engine(url)
    old = _old_metadata()
    old.create_all(engine)
    t0 = datetime(2026, 11, 1, 12, 0)
    with engine.begin() as conn:
        users = [
            {"username": u, "name": u.title(), "email": f"{u}@example.org", "role": r, "password_hash": "x",
             "active": True, "created_at": t0, "updated_at": t0}
            for u, r in (("alice", "moderator"), ("root", "admin"))
        ]  # fmt: skip
        conn.execute(old.tables["review_users"].insert(), users)
        conn.execute(
            old.tables["review_items"]
            .insert()
            .values(source="beer", content_id="c1", state="removed", version=1, updated_at=t0, updated_by="alice")
        )
        decision = dict(
            decision_id="d1", source="beer", content_id="c1", item_version=1, from_state="pending",
            to_state="removed", action="remove", reason_code="insult", note="private note", actor="alice",
            decided_at=t0,
        )  # fmt: skip
        conn.execute(old.tables["review_decisions"].insert().values(**decision))
    engine.dispose()


def test_upgrade_from_the_old_schema_keeps_data_and_widens_roles(store_url: str) -> None:
    _make_old_store(store_url)
    store = ReviewStore(store_url, bcrypt_rounds=4)
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:  # the old CHECK refuses the new role
        conn.exec_driver_sql(
            "insert into review_users (username, name, email, role, password_hash, active, created_at, updated_at) "
            "values ('eve', 'Eve', '', 'data_engineer', 'x', true, '2026-11-01', '2026-11-01')"
        )
    store.create_schema()
    # data kept, epoch 0 for existing accounts
    assert [(u.username, u.role, u.session_epoch) for u in store.users()] == [
        ("alice", "moderator", 0),
        ("root", "admin", 0),
    ]
    log = store.decisions()
    assert log.height == 1 and log.row(0, named=True)["note"] == "private note" and log["actor"][0] == "alice"
    # the new role is accepted, an unknown one still refused by the database itself
    store.add_user("dana", name="Dana", email="d@example.org", role="data_engineer", password=PASSWORD, actor="root")
    assert store.user("dana").role == "data_engineer"
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.exec_driver_sql("update review_users set role = 'superuser' where username = 'dana'")
    # the decisions' foreign key to review_users still holds after the rebuild
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.exec_driver_sql("update review_decisions set actor = 'nobody' where decision_id = 'd1'")
    # idempotent: a second upgrade does nothing and keeps everything
    store.create_schema()
    assert len(store.users()) == 3 and store.decisions().height == 1
    assert [a["action"] for a in store.admin_actions()] == ["user_created"]
    store.dispose()


def test_epoch_is_bumped_by_password_role_deactivation_and_sign_out_everywhere(store) -> None:
    store.add_user("alice", name="Alice", email="a@example.org", role="moderator", password=PASSWORD, actor="root")
    epochs = [store.user("alice").session_epoch]
    store.set_password("alice", PASSWORD + "!", actor="root")
    epochs.append(store.user("alice").session_epoch)
    store.set_role("alice", "moderator", actor="root")  # no change: nothing bumped, nothing logged
    epochs.append(store.user("alice").session_epoch)
    store.set_role("alice", "data_engineer", actor="root")
    epochs.append(store.user("alice").session_epoch)
    assert store.sign_out_everywhere("alice", actor="alice") == 3
    epochs.append(store.user("alice").session_epoch)
    store.deactivate("alice", actor="root")
    store.activate("alice", actor="root")
    epochs.append(store.user("alice").session_epoch)
    assert epochs == [0, 1, 1, 2, 3, 4]
    assert store.authenticate("alice", PASSWORD + "!").session_epoch == 4
    with pytest.raises(ReviewError, match="no user named 'ghost'"):
        store.sign_out_everywhere("ghost", actor="root")


def test_admin_actions_are_logged_newest_first_with_actor_and_detail(store) -> None:
    store.add_user("alice", name="Alice", email="a@example.org", role="moderator", password=PASSWORD, actor="root")
    store.set_role("alice", "manager", actor="root")
    store.set_password("alice", PASSWORD + "!", actor="root")
    store.deactivate("alice", actor="root")
    store.activate("alice", actor="admin2")
    for _ in range(5):
        until = store.record_failed_signin("alice")
    assert store.unlock("Alice ", actor="root") == (until, True)
    store.sign_out_everywhere("alice", actor="alice")
    with pytest.raises(ValueError):
        store.set_role("alice", "superuser", actor="root")  # refused: nothing logged
    rows = store.admin_actions()
    assert [(r["actor"], r["action"], r["target"], r["detail"]) for r in rows] == [
        ("alice", "signed_out_everywhere", "alice", None),
        ("root", "unlocked", "alice", f"lock until {until:%Y-%m-%d %H:%M} UTC lifted"),
        ("admin2", "reactivated", "alice", None),
        ("root", "deactivated", "alice", None),
        ("root", "password_reset", "alice", None),
        ("root", "role_changed", "alice", "from moderator to manager"),
        ("root", "user_created", "alice", "role moderator"),
    ]
    assert set(rows[0]) == {"at", "actor", "action", "target", "detail"}
    assert all(isinstance(r["at"], datetime) for r in rows)
    assert rows[0]["at"] >= rows[-1]["at"]
    assert [r["action"] for r in store.admin_actions(limit=2)] == ["signed_out_everywhere", "unlocked"]
    assert ROLES == ("moderator", "manager", "admin", "data_engineer")


def test_cli_logs_the_os_user_or_actor_and_signs_out_everywhere(store, store_url, monkeypatch) -> None:
    from pulse.cli import app

    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", store_url)
    monkeypatch.setattr("getpass.getuser", lambda: "opsuser")
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["review", "add-user", "dana", "--role", "data_engineer", "--name", "Dana", "--email", "d@example.org"],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["review", "sign-out-everywhere", "dana", "--actor", "lead"])
    assert result.exit_code == 0 and "dana is signed out everywhere" in result.output, result.output
    result = runner.invoke(app, ["review", "set-role", "dana", "--role", "manager", "--actor", "lead"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["review", "sign-out-everywhere", "ghost"])
    assert result.exit_code == 2 and "no user named 'ghost'" in result.output
    assert [(r["actor"], r["action"], r["target"]) for r in store.admin_actions()] == [
        ("lead", "role_changed", "dana"),
        ("lead", "signed_out_everywhere", "dana"),
        ("opsuser", "user_created", "dana"),
    ]
    assert store.user("dana").session_epoch == 2
