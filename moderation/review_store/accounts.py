"""Review-app accounts: users and roles, bcrypt password hashes, generated passwords, and the
sign-in failure counter that locks a username (:class:`Accounts`, a half of
:class:`~moderation.review_store.ReviewStore`).

Roles (:data:`ROLES`): ``moderator`` acts on items, ``manager`` reads but may not act,
``data_engineer`` reads pipeline data (quarantine payloads, Data Docs) but may not act, ``admin``
acts and manages users (:func:`check_actor` is the rule the decisions half applies). Passwords
are stored only as bcrypt hashes (work factor :data:`BCRYPT_ROUNDS`);
:meth:`Accounts.authenticate` takes as long for an unknown username as for a wrong password.

Session epoch: every account has a ``session_epoch`` counter; a password change, a role change,
a deactivation and :meth:`Accounts.sign_out_everywhere` bump it, and the dashboards sign out
every session or cookie that recorded another value (:mod:`dashboards.auth`).

Admin actions: every account change made through this class (user created, role changed,
password reset, deactivated, reactivated, unlocked, signed out everywhere) appends a row to
``review_admin_actions`` in the same transaction, naming the actor (the Users page passes the
signed-in admin; the CLI the OS user or ``--actor``; default :func:`default_actor`), read back by
:meth:`Accounts.admin_actions`.
"""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from moderation.review_store.schema import (
    ROLES,
    ReviewError,
    ReviewStoreBase,
    _naive_utc,
    _utcnow,
    review_admin_actions,
    review_signin_failures,
    review_users,
)

ACTING_ROLES: frozenset[str] = frozenset({"moderator", "admin"})

MIN_PASSWORD_LENGTH = 12
BCRYPT_ROUNDS = 12  # bcrypt's work factor (2**12 iterations, ~0.2 s per hash here)
MAX_PASSWORD_BYTES = 72  # bcrypt uses at most 72 bytes; bcrypt 5 raises on longer input

DEFAULT_SIGNIN_MAX_FAILURES = 5
"""Failed sign-ins within the window that lock a username (``PULSE_SIGNIN_MAX_FAILURES``)."""
DEFAULT_SIGNIN_WINDOW = timedelta(minutes=15)
"""Counting window and lock duration (``PULSE_SIGNIN_LOCKOUT_MINUTES``)."""


class AuthorizationError(ReviewError):
    """The actor may not do this: unknown, deactivated, or a role that may not act."""


@dataclass(frozen=True)
class ReviewUser:
    """A review-app account (the password hash never leaves the store except via :meth:`Accounts.credentials`)."""

    username: str
    name: str
    email: str
    role: str
    active: bool
    session_epoch: int = 0
    """Bumped by password change, role change, deactivation, sign out everywhere."""


def default_actor() -> str:
    """Who made an account change when no actor is given: the OS user running the process
    (``pulse review`` commands without ``--actor``), or ``unknown``."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry and no LOGNAME/USER in a container
        return "unknown"


def _log(conn: Connection, actor: str | None, action: str, target: str, detail: str | None = None) -> None:
    """Append one ``review_admin_actions`` row inside the caller's transaction."""
    conn.execute(
        review_admin_actions.insert().values(
            at=_utcnow(),
            actor=(actor or default_actor())[:64],
            action=action,
            target=target[:64],
            detail=detail,
        )
    )


def _hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """The bcrypt hash (ASCII, ``$2b$...``) of ``password`` with work factor ``rounds``.

    Raises:
        ValueError: shorter than :data:`MIN_PASSWORD_LENGTH` characters or longer than
            :data:`MAX_PASSWORD_BYTES` bytes in UTF-8.
    """
    import bcrypt

    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise ValueError(
            f"password too long: bcrypt uses at most {MAX_PASSWORD_BYTES} bytes (UTF-8); use a shorter one"
        )
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode("ascii")


def generate_password(nbytes: int = 18) -> str:
    """A strong random password (URL-safe, ``nbytes`` random bytes: 18 -> 24 characters, 144 bits)."""
    return secrets.token_urlsafe(nbytes)


def check_actor(conn: Connection, actor: str) -> None:
    """Raise unless ``actor`` is an active user whose role may act on review items.

    Raises:
        AuthorizationError: unknown user, deactivated account, or a role not in :data:`ACTING_ROLES`.
    """
    row = conn.execute(
        sa.select(review_users.c.role, review_users.c.active).where(review_users.c.username == actor)
    ).first()
    if row is None:
        raise AuthorizationError(f"unknown user {actor!r} may not act on review items")
    if not row.active:
        raise AuthorizationError(f"user {actor!r} is deactivated and may not act on review items")
    if row.role not in ACTING_ROLES:
        raise AuthorizationError(
            f"user {actor!r} has role {row.role!r}, which may not act on review items "
            f"(only {' and '.join(sorted(ACTING_ROLES))} may); ask an admin to change the role"
        )


class Accounts(ReviewStoreBase):
    """Moderators' accounts and sign-in lockout of a review store (see :class:`ReviewStoreBase`).

    Args:
        url: the store's URL (see :class:`ReviewStoreBase`).
        bcrypt_rounds: bcrypt work factor for new password hashes (default 12; tests use 4).
    """

    def __init__(self, url: str, *, bcrypt_rounds: int = BCRYPT_ROUNDS) -> None:
        super().__init__(url)
        self.bcrypt_rounds = bcrypt_rounds
        self._dummy_hash: bytes | None = None

    def add_user(
        self, username: str, *, name: str, email: str, role: str, password: str, actor: str | None = None
    ) -> ReviewUser:
        """Create an account; the password is stored only as a bcrypt hash. Logged as
        ``user_created`` by ``actor`` (default :func:`default_actor`).

        Raises:
            ValueError: empty username, unknown role, password shorter than
                :data:`MIN_PASSWORD_LENGTH` characters or longer than 72 bytes.
            ReviewError: the username exists already.
        """
        username = (username or "").strip()
        if not username:
            raise ValueError("username is empty")
        self._check_role(role)
        hashed = _hash_password(password, self.bcrypt_rounds)
        now = _utcnow()
        try:
            with self._write() as conn:
                conn.execute(
                    review_users.insert().values(
                        username=username,
                        name=name,
                        email=email,
                        role=role,
                        password_hash=hashed,
                        active=True,
                        created_at=now,
                        updated_at=now,
                        session_epoch=0,
                    )
                )
                _log(conn, actor, "user_created", username, f"role {role}")
        except sa.exc.IntegrityError:
            raise ReviewError(f"user {username!r} exists already; use set-role / set-password to change it") from None
        return ReviewUser(username=username, name=name, email=email, role=role, active=True)

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")

    def _update_user(
        self, username: str, action: str, actor: str | None, *, bump: bool, detail: str | None = None, **values: Any
    ) -> None:
        """Update one account, bump its session epoch if ``bump``, and log ``action`` (one transaction).

        Raises:
            ReviewError: no such user.
        """
        if bump:
            values["session_epoch"] = review_users.c.session_epoch + 1
        with self._write() as conn:
            result = conn.execute(
                review_users.update().where(review_users.c.username == username).values(updated_at=_utcnow(), **values)
            )
            if result.rowcount == 0:
                raise ReviewError(f"no user named {username!r}; see `pulse review users`")
            _log(conn, actor, action, username, detail)

    def set_password(self, username: str, password: str, *, actor: str | None = None) -> None:
        """Replace a user's password (bcrypt hash); signs out their sessions (epoch bumped); logged
        as ``password_reset``. Raises ValueError (weak password), ReviewError (no such user)."""
        hashed = _hash_password(password, self.bcrypt_rounds)
        self._update_user(username, "password_reset", actor, bump=True, password_hash=hashed)

    def set_role(self, username: str, role: str, *, actor: str | None = None) -> None:
        """Change a user's role; a real change signs out their sessions (epoch bumped) and is logged
        as ``role_changed`` ("from A to B"); setting the same role changes nothing.
        Raises ValueError (unknown role), ReviewError (no such user)."""
        self._check_role(role)
        current = self.user(username)
        if current is None:
            raise ReviewError(f"no user named {username!r}; see `pulse review users`")
        if current.role == role:
            return
        self._update_user(
            username, "role_changed", actor, bump=True, detail=f"from {current.role} to {role}", role=role
        )

    def deactivate(self, username: str, *, actor: str | None = None) -> None:
        """Deactivate an account: it can no longer sign in or act, its sessions end (epoch bumped);
        its past decisions stay. Logged as ``deactivated``. Raises ReviewError (no such user)."""
        self._update_user(username, "deactivated", actor, bump=True, active=False)

    def activate(self, username: str, *, actor: str | None = None) -> None:
        """Re-activate a deactivated account (logged as ``reactivated``). Raises ReviewError (no such user)."""
        self._update_user(username, "reactivated", actor, bump=False, active=True)

    def sign_out_everywhere(self, username: str, *, actor: str | None = None) -> int:
        """End every session and sign-in cookie of ``username`` (epoch bumped; logged as
        ``signed_out_everywhere``). Returns the new epoch. Raises ReviewError (no such user)."""
        self._update_user(username, "signed_out_everywhere", actor, bump=True)
        user = self.user(username)
        return user.session_epoch if user is not None else 0

    def unlock(
        self, username: str, *, actor: str | None = None, now: datetime | None = None
    ) -> tuple[datetime | None, bool]:
        """An admin's unlock: forget the username's failed sign-ins and lift its lock (logged as
        ``unlocked`` with what was lifted).

        Returns:
            (end the lock would have had, naive UTC, or None when not locked; whether any failed
            sign-in was recorded).
        """
        now = _naive_utc(now)
        until = self.locked_until(username, now)
        t = review_signin_failures
        key = self.signin_key(username)
        with self._write() as conn:
            had = conn.execute(t.delete().where(t.c.username == key)).rowcount > 0
            detail = (
                f"lock until {until:%Y-%m-%d %H:%M} UTC lifted"
                if until is not None
                else ("failed sign-in count reset" if had else "nothing recorded")
            )
            _log(conn, actor, "unlocked", key, detail)
        return until, had

    def admin_actions(self, limit: int = 200) -> list[dict[str, Any]]:
        """The latest ``limit`` account changes, newest first.

        Returns:
            ``[{"at": datetime (naive UTC), "actor": str, "action": one of ``schema.ADMIN_ACTIONS``,
            "target": str, "detail": str | None}, ...]``
        """
        t = review_admin_actions
        with self._read() as conn:
            rows = (
                conn.execute(
                    sa.select(t.c.at, t.c.actor, t.c.action, t.c.target, t.c.detail)
                    .order_by(t.c.at.desc(), t.c.action_id.desc())
                    .limit(max(int(limit), 0))
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def users(self) -> list[ReviewUser]:
        """All accounts (active and not), by username."""
        with self._read() as conn:
            rows = (
                conn.execute(
                    sa.select(
                        review_users.c.username,
                        review_users.c.name,
                        review_users.c.email,
                        review_users.c.role,
                        review_users.c.active,
                        review_users.c.session_epoch,
                    ).order_by(review_users.c.username)
                )
                .mappings()
                .all()
            )
        return [ReviewUser(**{**r, "active": bool(r["active"])}) for r in rows]

    def user(self, username: str) -> ReviewUser | None:
        """One account by username, or None."""
        return next((u for u in self.users() if u.username == username), None)

    def authenticate(self, username: str, password: str) -> ReviewUser | None:
        """The user if the password matches and the account is active, else None.

        Constant-time per attempt: bcrypt.checkpw runs also for unknown users (against a dummy
        hash), so timing does not reveal which usernames exist.
        """
        import bcrypt

        with self._read() as conn:
            row = conn.execute(sa.select(review_users).where(review_users.c.username == username)).mappings().first()
        raw = (password or "").encode("utf-8")[:MAX_PASSWORD_BYTES]
        if row is None and self._dummy_hash is None:
            # a valid hash to check against when the user is unknown, so a wrong username takes
            # as long as a wrong password (no user enumeration by timing)
            self._dummy_hash = bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt(self.bcrypt_rounds))
        stored = row["password_hash"].encode("ascii") if row is not None else self._dummy_hash
        ok = bcrypt.checkpw(raw, stored)
        if row is None or not ok or not row["active"]:
            return None
        return ReviewUser(
            username=row["username"],
            name=row["name"],
            email=row["email"],
            role=row["role"],
            active=True,
            session_epoch=row["session_epoch"],
        )

    def credentials(self) -> dict[str, Any]:
        """streamlit-authenticator's credentials dict for the ACTIVE users.

        Returns:
            ``{"usernames": {username: {"name", "email", "password": <bcrypt hash>, "roles": [role]}}}``
            (deactivated users are left out, so they cannot sign in).
        """
        with self._read() as conn:
            rows = (
                conn.execute(
                    sa.select(review_users).where(review_users.c.active.is_(True)).order_by(review_users.c.username)
                )
                .mappings()
                .all()
            )
        return {
            "usernames": {
                r["username"]: {
                    "name": r["name"],
                    "email": r["email"],
                    "password": r["password_hash"],
                    "roles": [r["role"]],
                }
                for r in rows
            }
        }

    # ---------------------------------------------------------------- sign-in lockout

    @staticmethod
    def signin_key(username: str) -> str:
        """The lockout key of a typed username: lower-cased and stripped as streamlit-authenticator
        does before it looks the account up, cut to 64 characters (the column's width)."""
        return (username or "").strip().lower()[:64]

    def record_failed_signin(
        self,
        username: str,
        now: datetime | None = None,
        *,
        max_failures: int = DEFAULT_SIGNIN_MAX_FAILURES,
        window: timedelta = DEFAULT_SIGNIN_WINDOW,
    ) -> datetime | None:
        """Count one failed sign-in for ``username`` (known or not); lock it after ``max_failures``.

        Fixed-window counter (OWASP Authentication Cheat Sheet, "account lockout"): a window opens
        at the first failure after the previous window ended; the ``max_failures``-th failure
        inside it locks the username until ``now + window``. Failures while locked do not extend
        the lock. One atomic UPDATE (or INSERT for the first failure), so failures counted by
        several app processes at once all count.

        Args:
            username: as typed (normalised with :meth:`signin_key`).
            now: time of the attempt (default: now; naive values are UTC).
            max_failures: failures that lock (>= 1).
            window: counting window and lock duration (> 0).

        Returns:
            The end of the lock (naive UTC) if the username is locked after this failure, else None.

        Raises:
            ValueError: ``max_failures`` < 1 or ``window`` <= 0.
        """
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures} (PULSE_SIGNIN_MAX_FAILURES)")
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window} (PULSE_SIGNIN_LOCKOUT_MINUTES)")
        key = self.signin_key(username)
        now = _naive_utc(now)
        t = review_signin_failures
        expired = t.c.window_start <= now - window
        count = sa.case((expired, 1), else_=t.c.failures + 1)
        update = (
            t.update()
            .where(t.c.username == key)
            .values(
                failures=count,
                window_start=sa.case((expired, now), else_=t.c.window_start),
                last_failed_at=now,
                locked_until=sa.case(
                    (t.c.locked_until > now, t.c.locked_until), (count >= max_failures, now + window), else_=None
                ),
            )
        )
        for attempt in range(2):
            try:
                with self._write() as conn:
                    if conn.execute(update).rowcount == 0:
                        conn.execute(
                            t.insert().values(
                                username=key,
                                failures=1,
                                window_start=now,
                                last_failed_at=now,
                                locked_until=now + window if max_failures <= 1 else None,
                            )
                        )
                    until = conn.execute(sa.select(t.c.locked_until).where(t.c.username == key)).scalar()
                break
            except sa.exc.IntegrityError:  # another process inserted the first failure meanwhile
                if attempt:
                    raise
        return until if until is not None and until > now else None

    def locked_until(self, username: str, now: datetime | None = None) -> datetime | None:
        """End of the username's sign-in lock (naive UTC) if it is locked at ``now``, else None."""
        now = _naive_utc(now)
        t = review_signin_failures
        with self._read() as conn:
            until = conn.execute(sa.select(t.c.locked_until).where(t.c.username == self.signin_key(username))).scalar()
        return until if until is not None and until > now else None

    def reset_signin_failures(self, username: str) -> bool:
        """Forget the username's failed sign-ins and lift its lock (a successful sign-in, an
        admin's unlock). Returns whether anything was recorded."""
        t = review_signin_failures
        with self._write() as conn:
            return conn.execute(t.delete().where(t.c.username == self.signin_key(username))).rowcount > 0

    def signin_lockouts(self, now: datetime | None = None) -> dict[str, datetime]:
        """Usernames locked at ``now`` -> end of their lock (naive UTC), by username."""
        now = _naive_utc(now)
        t = review_signin_failures
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.c.username, t.c.locked_until).where(t.c.locked_until > now).order_by(t.c.username)
            ).all()
        return {r.username: r.locked_until for r in rows}
