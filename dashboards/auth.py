"""Sign-in for the dashboards: streamlit-authenticator against the review store's accounts.

Accounts live in the review store (:class:`moderation.review_store.ReviewStore`; bcrypt
hashes, never plaintext; no default account or password is shipped). The sign-in form is
streamlit-authenticator's (``Authenticate.login``), fed :meth:`ReviewStore.credentials` (active
users only) on every run, so a deactivated account cannot sign in and a role change applies
at the next click.

Roles (``moderation.review_store.ROLES``; the page sets below, the menu in ``dashboards.app``):

- ``moderator``: analytics pages, Review queue, Audit log, Moderation insights; acts on items.
- ``manager``: analytics pages and Moderation insights (aggregates only: no raw quarantine
  payload, no moderator's note, no text of a removed item).
- ``data_engineer``: Pipeline health with raw quarantine payloads, Data Docs, Model quality and
  the aggregate-only analytics pages (Peak times, Best time to post); no review pages, no page
  listing members' titles.
- ``admin``: everything, plus Users (add, change role, reset password, deactivate, unlock).

A page a role lacks is not in its menu; its URL answers with :func:`no_access_message` ("This
page is for moderators and admins; you are signed in as manager") instead of redirecting.

Re-authentication cookie: streamlit-authenticator signs a JWT cookie with a key. The key comes
from ``PULSE_AUTH_COOKIE_KEY`` (``Settings.auth_cookie_key``); when unset, a random key is made
once per app process, so cookies stop working and everyone signs in again after a restart.

Session epoch: the store keeps a per-user ``session_epoch`` that a password change, a role
change, a deactivation and "Sign out everywhere" (sidebar, or ``pulse review
sign-out-everywhere``) bump. A sign-in records the account's epoch in the session
(:data:`EPOCH_STATE_KEY`) and in the cookie (an ``epoch`` claim next to streamlit-authenticator's
``username`` and ``exp_date``: :func:`_guard_login` replaces the cookie model's token encoder). The
signed-in user is re-read from the store on every run (role, active flag, epoch); a session whose
epoch differs is signed out (cookie deleted) with :data:`SESSION_ENDED_MESSAGE`, and a cookie
whose epoch differs (or that has none: cookies from before this change) is refused at
re-authentication. A session marked signed in without going through either path (tests set
``authentication_status`` directly) adopts the current epoch on its first run.

Failed-attempt lockout: streamlit-authenticator's own ``max_login_attempts`` counts failures
in the credentials dict, which is rebuilt from the store on every run, so it cannot hold. We
count in the review store instead (:meth:`ReviewStore.record_failed_signin`; shared by all
sessions and app processes): :func:`_guard_login` wraps the authenticator's
``authentication_controller.login``, which the library calls exactly once per press of the
form's submit button (``st.form_submit_button`` is True on that run only) with the typed
username and password, and with ``token=`` only for the cookie re-authentication. Before the
password is checked, a locked username (known or not) is refused with :data:`LOCKED_MESSAGE`;
a failure (``False``) is counted; a success resets the count, unless another process locked
the username meanwhile (then the authentication is undone). ``PULSE_SIGNIN_MAX_FAILURES``
failures within ``PULSE_SIGNIN_LOCKOUT_MINUTES`` lock the username for that long; admins
unlock with ``pulse review unlock USERNAME`` or on Users.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from moderation.review_store import Accounts, ReviewStore, ReviewUser

COOKIE_NAME = "pulse_auth"
COOKIE_EXPIRY_DAYS = 1.0
USER_STATE_KEY = "pulse_user"
"""Session-state key holding the signed-in :class:`ReviewUser` (set by :func:`sign_in`)."""

EPOCH_STATE_KEY = "pulse_session_epoch"
"""Session-state key: the account's session epoch when this session signed in."""
NOTICE_STATE_KEY = "pulse_signin_notice"
"""Session-state key: why this session was signed out (shown with the sign-in form until the next sign-in)."""
SESSION_ENDED_MESSAGE = (
    "You were signed out: your password, role or account changed, or someone signed this account "
    "out everywhere. Sign in again."
)

ACTING_ROLES: frozenset[str] = frozenset({"moderator", "admin"})
"""Roles that may open the Review queue and the Audit log."""
INSIGHT_ROLES: frozenset[str] = frozenset({"moderator", "manager", "admin"})
"""Roles that may open Moderation insights."""
ADMIN_ROLES: frozenset[str] = frozenset({"admin"})
"""Roles that may open Users."""
ANALYTICS_ROLES: frozenset[str] = frozenset({"moderator", "manager", "admin"})
"""Roles that may open the analytics pages that list members' titles (Overview, Trending topics)."""
PIPELINE_ROLES: frozenset[str] = frozenset({"data_engineer", "admin"})
"""Roles that may open Data Docs and see raw quarantine payloads on Pipeline health (the same
roles as ``dashboards.data.RESTRICTED_ROLES``, which guards the restricted snapshot)."""
EVERYONE: frozenset[str] = frozenset({"moderator", "manager", "admin", "data_engineer"})
"""Every role (pages without member text: Peak times, Best time to post, Model quality, Pipeline health)."""

ROLE_PLURALS: dict[str, str] = {
    "moderator": "moderators",
    "manager": "managers",
    "data_engineer": "data engineers",
    "admin": "admins",
}

LOCKED_MESSAGE = "Too many failed sign-ins for this account; try again after {until} UTC or ask an admin."
"""Shown while a username is locked (the same for unknown usernames: existence is not revealed)."""
LOCKED_STATE_KEY = "pulse_signin_locked_until"
"""Session-state key: end of the lock that refused this session's last sign-in attempt."""

FIRST_ADMIN_HELP = (
    "No review-app accounts exist yet, so nobody can sign in. Create the first admin on the "
    "server with `pulse review ensure-admin` (it prints a generated password once) or "
    "`pulse review add-user USERNAME --role admin`, then reload this page."
)

_PROCESS_COOKIE_KEY = secrets.token_hex(32)
"""Used when PULSE_AUTH_COOKIE_KEY is unset: sign-ins then last until the app restarts."""


def cookie_key(settings: Any) -> str:
    """The cookie signing key: ``settings.auth_cookie_key`` or the random per-process key."""
    configured = getattr(settings, "auth_cookie_key", None)
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    return _PROCESS_COOKIE_KEY


@st.cache_resource(show_spinner=False)
def _open_store(url: str) -> ReviewStore:
    """One store (connection pool) per URL and process; its schema is created if missing."""
    store = ReviewStore(url)
    store.create_schema()
    return store


def review_store() -> ReviewStore:
    """The review store named by the settings (``PULSE_REVIEW_STORE_URL``), cached per process.

    Raises:
        pulse.settings.ConfigError: invalid configuration.
        ValueError: an unsupported store URL.
    """
    from pulse.settings import load_settings

    return _open_store(load_settings().review_store_url.get_secret_value())


def current_user() -> ReviewUser | None:
    """The signed-in user of this session (None before sign-in)."""
    return st.session_state.get(USER_STATE_KEY)


def _forget() -> None:
    """Drop every sign-in key from the session (streamlit-authenticator's and ours)."""
    for key in (
        "authentication_status",
        "username",
        "name",
        "email",
        "roles",
        USER_STATE_KEY,
        LOCKED_STATE_KEY,
        EPOCH_STATE_KEY,
    ):
        st.session_state.pop(key, None)


def no_access_message(allowed: frozenset[str] | set[str], role: str) -> str:
    """The message a page's URL shows to a role that may not open it, e.g. "This page is for
    moderators and admins; you are signed in as manager." (roles in ``ROLES`` order)."""
    from moderation.review_store import ROLES

    names = [ROLE_PLURALS.get(r, r) for r in ROLES if r in allowed]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"This page is for {listed}; you are signed in as {role.replace('_', ' ')}."


def lockout_policy(settings: Any) -> tuple[int, timedelta]:
    """(failures that lock, window = lock duration) from ``signin_max_failures`` and
    ``signin_lockout_minutes`` (defaults 5 and 15 minutes)."""
    failures = int(getattr(settings, "signin_max_failures", 5))
    minutes = float(getattr(settings, "signin_lockout_minutes", 15.0))
    return failures, timedelta(minutes=minutes)


def locked_message(until: datetime) -> str:
    """:data:`LOCKED_MESSAGE` for a lock ending at ``until`` (naive UTC), rounded up to the minute."""
    shown = until.replace(second=0, microsecond=0)
    if shown < until:
        shown += timedelta(minutes=1)
    return LOCKED_MESSAGE.format(until=shown.strftime("%H:%M"))


def _guard_login(authenticator: Any, store: ReviewStore, settings: Any) -> None:
    """Put the store-backed lockout around ``authenticator.authentication_controller.login``.

    streamlit-authenticator 0.4.2 (``views/authentication_view.py``) calls the controller's
    ``login(username, password, ...)`` only on the run in which the form's submit button was
    pressed, and ``login(token=...)`` for a valid re-authentication cookie; it returns True
    (signed in, session keys set), False (wrong username or password) or None. So each
    submitted attempt passes here exactly once, whatever the number of reruns.

    Session epoch: a password sign-in records the account's epoch read before the password was
    checked (:data:`EPOCH_STATE_KEY`; the cookie then carries it, :func:`_sign_cookies_with_epoch`);
    a cookie is accepted only for an active account whose epoch equals the cookie's ``epoch``
    claim, else it is deleted and the sign-in form says why (:data:`SESSION_ENDED_MESSAGE`).
    """
    controller = authenticator.authentication_controller
    original: Callable[..., bool | None] = controller.login
    max_failures, window = lockout_policy(settings)
    _sign_cookies_with_epoch(authenticator)

    def login(username: str | None = None, password: str | None = None, *args: Any, **kwargs: Any) -> bool | None:
        token = kwargs.get("token")
        if token:  # cookie re-authentication: only with the account's current epoch
            user = store.user(str(token.get("username") or ""))
            if user is None or not user.active or token.get("epoch") != user.session_epoch:
                st.session_state[NOTICE_STATE_KEY] = SESSION_ENDED_MESSAGE
                authenticator.cookie_controller.delete_cookie()
                return None
            result = original(username, password, *args, **kwargs)
            if st.session_state.get("authentication_status"):
                st.session_state[EPOCH_STATE_KEY] = user.session_epoch
            return result
        if not (username or "").strip():  # an empty form
            return original(username, password, *args, **kwargs)
        st.session_state.pop(LOCKED_STATE_KEY, None)
        now = datetime.now(UTC)
        until = store.locked_until(username, now)
        if until is None:
            before = store.user(Accounts.signin_key(username))  # the epoch this password was checked under
            ok = original(username, password, *args, **kwargs)
            if ok:
                until = store.locked_until(username, now)  # locked by another process meanwhile?
                if until is None:
                    store.reset_signin_failures(username)
                    if before is None:  # a username the store spells differently from its sign-in key
                        before = store.user(st.session_state.get("username") or "")
                    st.session_state[EPOCH_STATE_KEY] = before.session_epoch if before is not None else -1
                    return ok
                _forget()  # undo the authentication the library just put in the session
            else:
                until = store.record_failed_signin(username, now, max_failures=max_failures, window=window)
                if until is None:
                    return ok
        st.session_state["authentication_status"] = False
        st.session_state[LOCKED_STATE_KEY] = until
        return False

    controller.login = login


def _sign_cookies_with_epoch(authenticator: Any) -> None:
    """Make the re-authentication cookie carry the session's epoch.

    streamlit-authenticator 0.4.2's ``CookieModel._token_encode`` signs ``{"username",
    "exp_date"}`` (HS256, the cookie key) when a password sign-in succeeds; this encoder signs the
    same claims plus ``epoch`` (:data:`EPOCH_STATE_KEY`, set by :func:`_guard_login` just before).
    The decoder is the library's (any claims pass through), checked in :func:`_guard_login`.
    """
    import jwt

    model = authenticator.cookie_controller.cookie_model

    def token_encode() -> str:
        claims = {
            "username": st.session_state["username"],
            "exp_date": model.exp_date,
            "epoch": st.session_state.get(EPOCH_STATE_KEY),
        }
        return jwt.encode(claims, model.cookie_key, algorithm="HS256")

    model._token_encode = token_encode


def _end_session(authenticator: Any, message: str) -> None:
    """Sign this session out (cookie deleted), remember ``message`` for the sign-in form, rerun."""
    if st.session_state.get("authentication_status"):
        authenticator.logout(location="unrendered")
    _forget()
    st.session_state[NOTICE_STATE_KEY] = message
    st.rerun()


def sign_in(store: ReviewStore, settings: Any) -> ReviewUser:
    """Show the sign-in form until a valid active user has signed in; return that user.

    Stops the script (``st.stop``) while nobody is signed in: with a clear message when the
    store has no accounts (how to create the first admin), when the password was wrong, or
    when the username is locked after too many failed attempts (:func:`_guard_login`).
    Puts a "Signed in as" caption and a "Sign out" button in the sidebar.

    Raises:
        streamlit's StopException (via ``st.stop``) when nobody is signed in.
    """
    import streamlit_authenticator as stauth

    credentials = store.credentials()
    if not credentials["usernames"]:
        _forget()
        st.title("Community Pulse")
        st.warning(FIRST_ADMIN_HELP, icon=":material/person_add:")
        st.stop()
    authenticator = stauth.Authenticate(
        credentials,
        cookie_name=COOKIE_NAME,
        cookie_key=cookie_key(settings),
        cookie_expiry_days=COOKIE_EXPIRY_DAYS,
        auto_hash=False,
    )
    _guard_login(authenticator, store, settings)
    status = st.session_state.get("authentication_status")
    if not status:
        st.title("Community Pulse")
        st.caption("Sign in with your review-app account. Ask an admin if you do not have one.")
    try:
        authenticator.login(
            location="main",
            key="pulse_login",
            fields={"Form name": "Sign in", "Username": "Username", "Password": "Password", "Login": "Sign in"},
        )
    except stauth.LoginError:  # a cookie naming an account that was deactivated or deleted since
        authenticator.logout(location="unrendered") if st.session_state.get("authentication_status") else None
        _forget()
        st.error("This account no longer exists or was deactivated; ask an admin.", icon=":material/block:")
        st.stop()
    status = st.session_state.get("authentication_status")
    locked = st.session_state.get(LOCKED_STATE_KEY)
    notice = st.session_state.get(NOTICE_STATE_KEY)  # kept until the next sign-in (reruns would lose it)
    if status is False and locked is not None:
        st.error(locked_message(locked), icon=":material/lock_clock:")
    elif status is False:
        st.error("Wrong username or password.", icon=":material/lock:")
    elif not status and notice:
        st.info(notice, icon=":material/logout:")
    if not status:
        st.stop()
    st.session_state.pop(NOTICE_STATE_KEY, None)
    user = store.user(st.session_state.get("username") or "")
    if user is None or not user.active:
        _forget()
        st.error("This account no longer exists or was deactivated; ask an admin.", icon=":material/block:")
        st.stop()
    if st.session_state.setdefault(EPOCH_STATE_KEY, user.session_epoch) != user.session_epoch:
        _end_session(authenticator, SESSION_ENDED_MESSAGE)
    st.session_state[USER_STATE_KEY] = user
    st.sidebar.caption(f"Signed in as **{_md(user.name or user.username)}** ({user.role.replace('_', ' ')})")
    if st.sidebar.button("Sign out", key="pulse_sign_out", icon=":material/logout:"):
        authenticator.logout(location="unrendered")
        _forget()
        st.rerun()
    if st.sidebar.button(
        "Sign out everywhere",
        key="pulse_sign_out_everywhere",
        icon=":material/devices:",
        help="Ends every session and remembered sign-in of this account, on every device.",
    ):
        store.sign_out_everywhere(user.username, actor=user.username)
        _end_session(authenticator, "You signed out everywhere: every session of this account has ended.")
    return user


def require_role(allowed: frozenset[str] | set[str], what: str) -> ReviewUser:
    """The signed-in user when their role is in ``allowed``; else an error and ``st.stop``.

    Pages call this first (defence in depth: the navigation already hides pages a role may
    not open).
    """
    user = current_user()
    if user is None or user.role not in allowed:
        role = user.role if user else "signed out"
        st.error(f"{what} is not available to your role ({role}).", icon=":material/block:")
        st.stop()
    return user


def _md(text: str) -> str:
    from dashboards.components import md_escape

    return md_escape(text)
