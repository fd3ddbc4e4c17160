"""Session epoch (issue #14): a session from before a password change, a role change, a
deactivation or "sign out everywhere" is signed out at its next run (AppTest; SQLite review store).
The cookie half is in tests/browser/test_auth_browser.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboards.auth import EPOCH_STATE_KEY, SESSION_ENDED_MESSAGE
from pulse.cli import app as pulse_app

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
DEACTIVATED = "This account no longer exists or was deactivated; ask an admin."


def form_sign_in(username: str, password: str) -> AppTest:
    """A new session signed in through the form (as a person would: the epoch is recorded)."""
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click().run()
    assert "Overview" in [t.value for t in at.main.title], [e.value for e in at.error]
    return at


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.main.title]


def signed_out(at: AppTest) -> bool:
    """The sign-in form is shown and no page ran."""
    return bool(at.text_input) and at.button[0].label == "Sign in" and "Overview" not in titles(at)


def _state(at: AppTest) -> dict:
    """The session's state keys that are set to a truthy value."""
    return {k: at.session_state[k] for k in ("authentication_status", EPOCH_STATE_KEY) if at.session_state.get(k)}


def _password(store) -> None:
    store.set_password("mod", "a-brand-new-password-01", actor="admin")


def _role(store) -> None:
    store.set_role("mod", "manager", actor="admin")


def _everywhere(store) -> None:
    result = CliRunner().invoke(pulse_app, ["review", "sign-out-everywhere", "mod", "--actor", "admin"])
    assert result.exit_code == 0, result.output


def _deactivate(store) -> None:
    store.deactivate("mod", actor="admin")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_password, SESSION_ENDED_MESSAGE),
        (_role, SESSION_ENDED_MESSAGE),
        (_everywhere, SESSION_ENDED_MESSAGE),
        (_deactivate, DEACTIVATED),
    ],
    ids=["password_change", "role_change", "sign_out_everywhere", "deactivation"],
)
def test_a_session_from_before_the_change_is_signed_out(
    serve, bare_snapshot, review_accounts, fresh_review_store, change, message
) -> None:
    serve(bare_snapshot)
    at = form_sign_in("mod", review_accounts["mod"][1])
    other = form_sign_in("mod", review_accounts["mod"][1])  # a second browser of the same account
    assert at.session_state[EPOCH_STATE_KEY] == 0
    at.run()
    assert "Overview" in titles(at), "an unchanged account stays signed in"
    change(fresh_review_store)
    for session in (at, other):
        session.run()
        assert "Overview" not in titles(session) and "authentication_status" not in _state(session)
        assert message in [i.value for i in session.info] + [e.value for e in session.error]
        session.run()
        assert signed_out(session), "the sign-in form at the run after"


def test_signing_in_again_after_the_change_records_the_new_epoch(
    serve, bare_snapshot, review_accounts, fresh_review_store
) -> None:
    serve(bare_snapshot)
    at = form_sign_in("mod", review_accounts["mod"][1])
    fresh_review_store.set_password("mod", "a-brand-new-password-01", actor="admin")
    at.run()
    assert signed_out(at)
    at.text_input[0].input("mod")
    at.text_input[1].input(review_accounts["mod"][1])
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong username or password."], "the old password is gone"
    at.text_input[0].input("mod")
    at.text_input[1].input("a-brand-new-password-01")
    at.button[0].click().run()
    assert "Overview" in titles(at) and at.session_state[EPOCH_STATE_KEY] == 1
    at.run()
    assert "Overview" in titles(at)


def test_sign_out_everywhere_button_ends_every_session_and_is_logged(
    serve, bare_snapshot, review_accounts, fresh_review_store
) -> None:
    serve(bare_snapshot)
    at = form_sign_in("boss", review_accounts["boss"][1])
    other = form_sign_in("boss", review_accounts["boss"][1])
    bystander = form_sign_in("mod", review_accounts["mod"][1])
    at.button(key="pulse_sign_out_everywhere").click().run()
    assert signed_out(at)
    assert [i.value for i in at.info] == ["You signed out everywhere: every session of this account has ended."]
    other.run()
    assert signed_out(other) and [i.value for i in other.info] == [SESSION_ENDED_MESSAGE]
    bystander.run()
    assert "Overview" in titles(bystander), "other accounts keep their sessions"
    (logged,) = fresh_review_store.admin_actions()[:1]
    assert (logged["actor"], logged["action"], logged["target"]) == ("boss", "signed_out_everywhere", "boss")
    assert fresh_review_store.user("boss").session_epoch == 1


def test_admin_resets_a_password_on_users_the_old_session_ends_and_it_is_logged(
    serve, bare_snapshot, review_accounts, signed_in, fresh_review_store
) -> None:
    serve(bare_snapshot)
    victim = form_sign_in("mod", review_accounts["mod"][1])
    admin = signed_in(AppTest.from_file(str(APP), default_timeout=60), "admin").run()
    admin.switch_page("views/users_admin.py").run()
    admin.selectbox(key="users_target").set_value("mod").run()
    admin.button(key="users_reset_password").click().run()
    assert not admin.exception, [e.value for e in admin.exception]
    (shown,) = [c.value for c in admin.code]
    username, password = (line.split(": ", 1)[1] for line in shown.splitlines())
    assert username == "mod" and len(password) >= 20
    assert fresh_review_store.authenticate("mod", password) is not None
    assert fresh_review_store.authenticate("mod", review_accounts["mod"][1]) is None
    victim.run()
    assert signed_out(victim) and SESSION_ENDED_MESSAGE in [i.value for i in victim.info]
    admin.selectbox(key="users_target").set_value("admin").run()
    assert admin.button(key="users_reset_password").disabled, "an admin's own reset would end the session first"
    admin.selectbox(key="users_target").set_value("mod").run()
    admin.button(key="users_sign_out_everywhere").click().run()
    admin.button(key="users_deactivate").click().run()
    admin.button(key="users_activate").click().run()
    actions = [(a["actor"], a["action"], a["target"]) for a in fresh_review_store.admin_actions()]
    assert actions[:4] == [
        ("admin", "reactivated", "mod"),
        ("admin", "deactivated", "mod"),
        ("admin", "signed_out_everywhere", "mod"),
        ("admin", "password_reset", "mod"),
    ]
    assert fresh_review_store.user("mod").session_epoch == 3
