"""Users: admins add review-app accounts, change roles, reset passwords, sign accounts out
everywhere, deactivate, re-activate and unlock them.

A new account (and a reset password) gets a generated password
(``moderation.review_store.generate_password``, 144 random bits) shown once, on this page, right
after it is made; only its bcrypt hash is stored. There is no default password. A username
locked after too many failed sign-ins (``dashboards.auth``) shows a warning and an "Unlock
sign-in" button. Every change goes through the store's account methods with the signed-in
admin as actor, so it is in the admin-action log (``review_admin_actions``); a role change,
password reset, deactivation or "Sign out everywhere" ends the account's open sessions (its
session epoch is bumped). Admins only.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboards import auth, components
from moderation.review_store import ROLES, ReviewError, generate_password

NEW_PASSWORD_KEY = "users_new_password"


def _add(actor: str) -> None:
    """Create the account from the form's fields; remember its password to show once."""
    store = auth.review_store()
    username = (st.session_state.get("users_username") or "").strip()
    password = generate_password()
    try:
        store.add_user(
            username,
            name=(st.session_state.get("users_name") or username).strip(),
            email=(st.session_state.get("users_email") or "").strip(),
            role=st.session_state.get("users_role") or "moderator",
            password=password,
            actor=actor,
        )
    except (ValueError, ReviewError) as exc:
        st.session_state["users_flash"] = ("error", f"Not added: {exc}")
        return
    st.session_state[NEW_PASSWORD_KEY] = (username, password)
    st.session_state["users_flash"] = ("success", f"Added {username} (by {actor}).")


def render() -> None:
    """The Users page."""
    admin = auth.require_role(auth.ADMIN_ROLES, "User management")
    st.title("Users")
    st.caption(
        "Review-app accounts. Passwords are stored as bcrypt hashes only; new ones are generated and shown once."
    )
    store = auth.review_store()
    flash = st.session_state.pop("users_flash", None)
    if flash:
        (st.success if flash[0] == "success" else st.error)(components.md_escape(flash[1]))
    shown = st.session_state.pop(NEW_PASSWORD_KEY, None)
    if shown:
        st.info("Copy this password now and hand it over securely; it is not shown again.", icon=":material/key:")
        st.code(f"username: {shown[0]}\npassword: {shown[1]}", language=None)

    users = store.users()
    table = pl.DataFrame(
        [{"username": u.username, "name": u.name, "email": u.email, "role": u.role, "active": u.active} for u in users],
        schema={"username": pl.String, "name": pl.String, "email": pl.String, "role": pl.String, "active": pl.Boolean},
    )
    st.dataframe(table, hide_index=True, width="stretch")

    with st.form("users_add", clear_on_submit=True):
        st.markdown("**Add a user**")
        a, b, c, d = st.columns(4)
        a.text_input("Username", key="users_username")
        b.text_input("Name", key="users_name")
        c.text_input("E-mail", key="users_email")
        d.selectbox("Role", ROLES, key="users_role")
        st.form_submit_button("Add user", on_click=_add, args=(admin.username,), icon=":material/person_add:")

    if not users:
        return
    st.markdown("**Change a user**")
    names = [u.username for u in users]
    left, middle, right = st.columns([2, 2, 2])
    target = left.selectbox("User", names, key="users_target")
    current = next(u for u in users if u.username == target)
    role = middle.selectbox("Role", ROLES, index=ROLES.index(current.role), key=f"users_role_of_{target}")
    right.write("")
    if right.button("Save role", key="users_save_role"):
        if target == admin.username and role != "admin":
            st.error("You cannot take away your own admin role; ask another admin.")
        else:
            store.set_role(target, role, actor=admin.username)
            st.session_state["users_flash"] = ("success", f"{target} is now {role}.")
            st.rerun()
    locked = store.locked_until(target)
    if locked is not None:
        st.warning(
            f"{components.md_escape(target)} is locked after too many failed sign-ins (until {locked:%H:%M} UTC).",
            icon=":material/lock_clock:",
        )
        if st.button("Unlock sign-in", key="users_unlock", icon=":material/lock_open:"):
            store.unlock(target, actor=admin.username)
            st.session_state["users_flash"] = ("success", f"{target} was unlocked and may sign in again.")
            st.rerun()
    reset, everywhere = st.columns(2)
    if reset.button(
        "Reset password",
        key="users_reset_password",
        icon=":material/key:",
        disabled=target == admin.username,  # it would end this session before the password is shown
        help="A new generated password, shown once; the user's open sessions end.",
    ):
        password = generate_password()
        store.set_password(target, password, actor=admin.username)
        st.session_state[NEW_PASSWORD_KEY] = (target, password)
        st.session_state["users_flash"] = ("success", f"{target} has a new password and was signed out everywhere.")
        st.rerun()
    if everywhere.button(
        "Sign out everywhere",
        key="users_sign_out_everywhere",
        icon=":material/devices:",
        help="Ends every open session and remembered sign-in of this account.",
    ):
        store.sign_out_everywhere(target, actor=admin.username)
        st.session_state["users_flash"] = ("success", f"{target} was signed out everywhere.")
        st.rerun()
    if current.active:
        if st.button(
            "Deactivate",
            key="users_deactivate",
            disabled=target == admin.username,
            help="Ends the user's sessions at once; their past decisions stay in the audit log.",
        ):
            store.deactivate(target, actor=admin.username)
            st.session_state["users_flash"] = ("success", f"{target} was deactivated.")
            st.rerun()
    elif st.button("Re-activate", key="users_activate"):
        store.activate(target, actor=admin.username)
        st.session_state["users_flash"] = ("success", f"{target} was re-activated.")
        st.rerun()


render()
