"""Sign-in, roles and user management in the dashboards (AppTest; accounts in a SQLite review store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboards.auth import locked_message
from dashboards.components import md_escape
from pulse.cli import app as pulse_app

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


def fresh_app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=60)


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    """Fill streamlit-authenticator's form (Username, Password) and press Sign in."""
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    return at.button[0].click().run()


def known_pages(at: AppTest) -> list[str]:
    """The page files (of dashboards/views/) the navigation offers this session: AppTest's
    ``switch_page`` refuses a page the last run did not register."""
    known = []
    for path in sorted((APP.parent / "views").glob("*.py")):
        try:
            at.switch_page(f"views/{path.name}")
        except ValueError as exc:
            assert "Could not find a navigation page" in str(exc)
            continue
        known.append(path.name)
    return known


ANALYTICS = ["best_time.py", "model_quality.py", "overview.py", "peak_times.py", "pipeline_health.py", "trending.py"]


def test_wrong_password_is_rejected_and_the_right_one_signs_in(serve, snapshot, review_accounts) -> None:
    serve(snapshot)
    at = fresh_app().run()
    assert not at.exception
    assert [t.value for t in at.text_input] == ["", ""] and at.button[0].label == "Sign in"
    assert not at.get("plotly_chart") and "Overview" not in [t.value for t in at.title]
    sign_in(at, "mod", "not-the-password")
    assert [e.value for e in at.error] == ["Wrong username or password."]
    assert "Overview" not in [t.value for t in at.title] and at.session_state["authentication_status"] is False
    sign_in(at, "nobody", review_accounts["mod"][1])
    assert [e.value for e in at.error] == ["Wrong username or password."], "a password from another account"
    sign_in(at, "mod", review_accounts["mod"][1])
    assert not at.error and "Overview" in [t.value for t in at.main.title]
    assert "Signed in as **Mod Person** (moderator)" in [c.value for c in at.sidebar.caption]


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_five_wrong_passwords_lock_the_account_until_an_admin_unlocks(
    serve, snapshot, review_accounts, fresh_review_store
) -> None:
    serve(snapshot)
    password = review_accounts["mod"][1]
    at = fresh_app().run()
    for attempt in range(1, 5):
        sign_in(at, "mod", f"wrong-password-{attempt}")
        assert _errors(at) == ["Wrong username or password."]
    at.run()
    at.run()  # reruns without pressing "Sign in" count nothing
    assert fresh_review_store.locked_until("mod") is None, "4 failed attempts do not lock"
    started = datetime.now(UTC).replace(tzinfo=None)
    sign_in(at, "mod", "wrong-password-5")
    until = fresh_review_store.locked_until("mod")
    assert until is not None and timedelta(minutes=14) < until - started <= timedelta(minutes=15, seconds=5)
    locked = locked_message(until)
    assert locked.startswith("Too many failed sign-ins for this account; try again after ")
    assert locked.endswith(f"{(until + timedelta(seconds=59)).strftime('%H:%M')} UTC or ask an admin.")
    assert _errors(at) == [locked]
    # the right password is refused while locked, in this session and in a new one
    sign_in(at, "mod", password)
    assert _errors(at) == [locked] and at.session_state["authentication_status"] is False
    assert "Overview" not in [t.value for t in at.title]
    other = sign_in(fresh_app().run(), "mod", password)
    assert [e.value for e in other.error] == [locked] and "Overview" not in [t.value for t in other.title]
    # probing an unknown username is throttled the same way, with the same message
    for attempt in range(5):
        sign_in(other, "no-such-user", f"guess-{attempt}")
    assert [e.value for e in other.error] == [locked_message(fresh_review_store.locked_until("no-such-user"))]
    # an admin unlocks; the right password then signs in and resets the count
    result = CliRunner().invoke(pulse_app, ["review", "unlock", "mod"])
    assert result.exit_code == 0 and "mod unlocked" in result.output, result.output
    sign_in(at, "mod", password)
    assert not at.error and "Overview" in [t.value for t in at.main.title]
    assert fresh_review_store.reset_signin_failures("mod") is False, "a successful sign-in cleared the count"


def test_lockout_policy_comes_from_the_settings(
    serve, snapshot, review_accounts, fresh_review_store, monkeypatch
) -> None:
    serve(snapshot)
    monkeypatch.setenv("PULSE_SIGNIN_MAX_FAILURES", "2")
    monkeypatch.setenv("PULSE_SIGNIN_LOCKOUT_MINUTES", "1")
    at = fresh_app().run()
    sign_in(at, "mod", "wrong-password-1")
    assert _errors(at) == ["Wrong username or password."]
    started = datetime.now(UTC).replace(tzinfo=None)
    sign_in(at, "mod", "wrong-password-2")
    until = fresh_review_store.locked_until("mod")
    assert _errors(at) == [locked_message(until)]
    assert timedelta(seconds=50) < until - started <= timedelta(seconds=65), "locked for 1 minute, not 15"


@pytest.mark.parametrize(
    ("username", "extra"),
    [
        ("mod", ["audit_log.py", "moderation_insights.py", "review_queue.py"]),
        ("boss", ["moderation_insights.py"]),
        ("admin", ["audit_log.py", "data_docs.py", "moderation_insights.py", "review_queue.py", "users_admin.py"]),
    ],
)
def test_navigation_by_role(serve, snapshot, signed_in, username, extra) -> None:
    serve(snapshot)
    at = signed_in(fresh_app(), username).run()
    assert known_pages(at) == sorted(ANALYTICS + extra)


def test_sign_out(serve, snapshot, signed_in) -> None:
    serve(snapshot)
    at = signed_in(fresh_app(), "mod").run()
    at.button(key="pulse_sign_out").click().run()
    assert "authentication_status" not in at.session_state or not at.session_state["authentication_status"]
    assert at.button[0].label == "Sign in" and "Overview" not in [t.value for t in at.title]


def test_no_accounts_says_how_to_create_the_first_admin(serve, snapshot, tmp_path, monkeypatch) -> None:
    serve(snapshot)
    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", f"sqlite:///{tmp_path / 'empty.sqlite'}")
    at = fresh_app().run()
    (message,) = [w.value for w in at.warning]
    assert "No review-app accounts exist yet" in message
    assert "pulse review ensure-admin" in message and "pulse review add-user" in message
    assert not at.text_input, "no sign-in form: there is nobody to sign in as"


def test_deactivated_or_demoted_user_loses_access_at_the_next_click(
    serve, snapshot, signed_in, fresh_review_store
) -> None:
    serve(snapshot)
    at = signed_in(fresh_app(), "mod").run()
    assert "review_queue.py" in known_pages(at)
    # a role change ends the session (epoch bumped): tests/dashboards/test_auth_session.py
    fresh_review_store.set_role("mod", "manager")
    at.run()
    assert "Overview" not in [t.value for t in at.main.title] and at.button[0].label == "Sign in"
    at = signed_in(fresh_app(), "mod").run()
    assert "review_queue.py" not in known_pages(at), "signed in again: a manager's menu"
    fresh_review_store.deactivate("mod")
    at.run()
    assert "This account no longer exists or was deactivated; ask an admin." in [e.value for e in at.error]
    assert "Overview" not in [t.value for t in at.main.title]


def test_admin_adds_a_user_with_a_generated_password_shown_once(serve, snapshot, signed_in, fresh_review_store) -> None:
    serve(snapshot)
    at = signed_in(fresh_app(), "admin").run()
    at.switch_page("views/users_admin.py").run()
    assert [t.value for t in at.main.title] == ["Users"]
    at.text_input(key="users_username").input("newmod")
    at.text_input(key="users_name").input("New Moderator")
    at.text_input(key="users_email").input("newmod@example.org")
    at.selectbox(key="users_role").set_value("moderator")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (shown,) = [c.value for c in at.code]
    username, password = (line.split(": ", 1)[1] for line in shown.splitlines())
    assert username == "newmod" and len(password) >= 20
    user = fresh_review_store.authenticate("newmod", password)
    assert user is not None and user.role == "moderator"
    at.run()
    assert not at.code, "the password is shown once"
    # change the role, then deactivate
    at.selectbox(key="users_target").set_value("newmod").run()
    at.selectbox(key="users_role_of_newmod").set_value("manager").run()
    at.button(key="users_save_role").click().run()
    assert fresh_review_store.user("newmod").role == "manager"
    at.button(key="users_deactivate").click().run()
    assert not fresh_review_store.user("newmod").active
    assert fresh_review_store.authenticate("newmod", password) is None


def test_admin_cannot_demote_or_deactivate_themselves(serve, snapshot, signed_in, fresh_review_store) -> None:
    serve(snapshot)
    at = signed_in(fresh_app(), "admin").run()
    at.switch_page("views/users_admin.py").run()
    at.selectbox(key="users_target").set_value("admin").run()
    assert at.button(key="users_deactivate").disabled
    at.selectbox(key="users_role_of_admin").set_value("moderator").run()
    at.button(key="users_save_role").click().run()
    assert any("cannot take away your own admin role" in e.value for e in at.error)
    assert fresh_review_store.user("admin").role == "admin"


def test_admin_unlocks_a_locked_user_on_the_users_page(serve, snapshot, signed_in, fresh_review_store) -> None:
    serve(snapshot)
    for _ in range(5):
        until = fresh_review_store.record_failed_signin("mod")
    at = signed_in(fresh_app(), "admin").run()
    at.switch_page("views/users_admin.py").run()
    at.selectbox(key="users_target").set_value("mod").run()
    assert [w.value for w in at.warning] == [f"mod is locked after too many failed sign-ins (until {until:%H:%M} UTC)."]
    at.button(key="users_unlock").click().run()
    assert fresh_review_store.locked_until("mod") is None
    assert [s.value for s in at.success] == [md_escape("mod was unlocked and may sign in again.")]
    assert not at.warning and not [b for b in at.button if b.key == "users_unlock"]


@pytest.mark.parametrize("page", ["views/review_queue.py", "views/audit_log.py", "views/moderation_insights.py"])
@pytest.mark.parametrize("variant", ["empty_snapshot", "bare_snapshot"])
def test_review_pages_show_an_empty_state(serve, request, signed_in, fresh_review_store, page, variant) -> None:
    serve(request.getfixturevalue(variant))
    at = signed_in(fresh_app(), "admin").run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any(i.value.startswith("No ") for i in at.info), [i.value for i in at.info]
