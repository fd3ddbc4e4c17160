"""The review store: moderators' accounts, review items and the append-only decision log.

Moderators act in the Streamlit review queue; their actions land here (not in the DuckDB
warehouse, which only the pipeline writes). The pipeline copies the decisions into
``moderation.decisions`` each run (:func:`pulse.steps.ingest_decisions`); the queue page reads
item states straight from this store so an action shows at once.

Backends (SQLAlchemy 2 Core, one schema for both):

- SQLite (default, ``sqlite:///data/review.sqlite``): WAL journal (readers never block the
  writer), ``busy_timeout`` 10 s, foreign keys on; write transactions start with
  ``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing mid-transaction.
- PostgreSQL by URL (``postgresql+psycopg://user:pw@host/db``; a bare ``postgresql://`` is
  taken to mean the psycopg 3 driver).

State machine (Discourse's reviewables, Reddit's mod queue)::

    pending --approve--> approved      escalated --approve--> approved
    pending --remove---> removed       escalated --remove---> removed
    pending --escalate-> escalated

``approved`` and ``removed`` are final *for the reviewed text*: when an item's
``content_hash`` changes after a final decision (the post was edited after approval), the item
counts as ``pending`` again and the next decision starts a new round from ``pending``
(:func:`effective_state`).

Optimistic concurrency: each item has a ``version`` (0 = never acted on, no row). A decision
names the version the moderator saw; the store updates the item with
``... WHERE version = :expected`` (or inserts version 1 for a first decision) and writes the
decision row in the same transaction. If someone acted in between, nothing is written and
:class:`ConflictError` says who acted, when, and what the item is now.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

log = logging.getLogger(__name__)

STATES: tuple[str, ...] = ("pending", "approved", "removed", "escalated")
"""Review states of an item; ``pending`` is implicit (no row) until the first decision."""

ACTIONS: dict[str, str] = {"approve": "approved", "remove": "removed", "escalate": "escalated"}
"""Moderator action -> the state it leads to."""

TRANSITIONS: dict[str, set[str]] = {"pending": {"approve", "remove", "escalate"}, "escalated": {"approve", "remove"}}
"""State -> the actions allowed from it (``approved`` and ``removed`` are final)."""

FINAL_STATES: frozenset[str] = frozenset({"approved", "removed"})

ROLES: tuple[str, ...] = ("moderator", "manager", "admin")
"""``moderator`` acts on items; ``manager`` reads (dashboards, audit log) but may not act;
``admin`` does everything a moderator can, plus manages users."""

ACTING_ROLES: frozenset[str] = frozenset({"moderator", "admin"})

REASON_CODES: dict[str, str] = {
    "spam": "Spam or advertising",
    "harassment": "Harassment or bullying",
    "hate": "Hate speech or identity attack",
    "threat": "Threat of violence",
    "sexual": "Sexual content",
    "off_topic": "Off topic",
    "personal_info": "Personal information (doxxing)",
    "other": "Other (see note)",
    "false_positive": "False positive: nothing wrong",
}
"""Reason codes a moderator gives with a decision (Reddit's removal reasons, Discourse's flag
types) -> their labels."""

MIN_PASSWORD_LENGTH = 12
BCRYPT_ROUNDS = 12  # bcrypt's work factor (2**12 iterations, ~0.2 s per hash here)
MAX_PASSWORD_BYTES = 72  # bcrypt uses at most 72 bytes; bcrypt 5 raises on longer input
SQLITE_BUSY_TIMEOUT_MS = 10_000

DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id", "source", "content_id", "content_hash", "item_version", "from_state", "to_state",
    "action", "reason_code", "note", "actor", "decided_at", "model_id", "thresholds_json", "scores_json",
)

DECISIONS_SCHEMA: dict[str, pl.DataType] = {
    "decision_id": pl.String(), "source": pl.String(), "content_id": pl.String(),
    "content_hash": pl.String(), "item_version": pl.Int64(), "from_state": pl.String(),
    "to_state": pl.String(), "action": pl.String(), "reason_code": pl.String(), "note": pl.String(),
    "actor": pl.String(), "decided_at": pl.Datetime("us"), "model_id": pl.String(),
    "thresholds_json": pl.String(), "scores_json": pl.String(),
}
ITEM_STATES_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(), "content_id": pl.String(), "state": pl.String(), "version": pl.Int64(),
    "content_hash": pl.String(), "updated_at": pl.Datetime("us"), "updated_by": pl.String(),
}


# --------------------------------------------------------------------------------------------
# errors and records


class ReviewError(Exception):
    """A review action could not be carried out; the message says why and what to do."""


class ConflictError(ReviewError):
    """Someone acted on the item since the version the moderator saw (no lost update).

    Attributes:
        current_state: the item's state now.
        current_version: its version now (0 = never acted on).
        last_actor: who made the latest decision (None if none).
        last_decided_at: when (naive UTC; None if none).
    """

    def __init__(
        self,
        message: str,
        *,
        current_state: str,
        current_version: int,
        last_actor: str | None,
        last_decided_at: datetime | None,
    ) -> None:
        super().__init__(message)
        self.current_state = current_state
        self.current_version = current_version
        self.last_actor = last_actor
        self.last_decided_at = last_decided_at


class TransitionError(ReviewError):
    """The action is not allowed from the item's current state (see :data:`TRANSITIONS`)."""


class AuthorizationError(ReviewError):
    """The actor may not do this: unknown, deactivated, or a role that may not act."""


@dataclass(frozen=True)
class ReviewUser:
    """A review-app account (the password hash never leaves the store except via :meth:`ReviewStore.credentials`)."""

    username: str
    name: str
    email: str
    role: str
    active: bool


@dataclass(frozen=True)
class Decision:
    """One state transition of a review item: an append-only row of the audit log.

    ``decided_at`` is naive UTC; ``item_version`` is the item version this decision created
    (1 for the first decision); ``thresholds_json`` / ``scores_json`` are JSON text (the flag
    thresholds in force and the label scores the moderator saw; null for community reports).
    """

    decision_id: str
    source: str
    content_id: str
    content_hash: str | None
    item_version: int
    from_state: str
    to_state: str
    action: str
    reason_code: str | None
    note: str | None
    actor: str
    decided_at: datetime
    model_id: str | None
    thresholds_json: str | None
    scores_json: str | None


def effective_state(state: str | None, stored_hash: str | None, current_hash: str | None) -> str:
    """The state an item is in for review, given the text it has now.

    Args:
        state: the stored state (None: never acted on).
        stored_hash: the ``content_hash`` the last decision reviewed.
        current_hash: the item's ``content_hash`` now (None: unknown, trust the stored state).

    Returns:
        ``pending`` when never acted on, or when a final decision (approved/removed) was made on
        a text that has since changed (edited after approval: a new review round); else ``state``.
    """
    if state is None:
        return "pending"
    if state in FINAL_STATES and current_hash is not None and stored_hash is not None and current_hash != stored_hash:
        return "pending"
    return state


# --------------------------------------------------------------------------------------------
# schema

metadata = sa.MetaData()

review_users = sa.Table(
    "review_users", metadata,
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

review_items = sa.Table(
    "review_items", metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("content_id", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
    sa.CheckConstraint("state in ('pending', 'approved', 'removed', 'escalated')", name="ck_review_items_state"),
)

review_decisions = sa.Table(
    "review_decisions", metadata,
    sa.Column("decision_id", sa.String(32), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("content_id", sa.String(200), nullable=False),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("item_version", sa.Integer, nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reason_code", sa.String(32)),
    sa.Column("note", sa.Text),
    sa.Column("actor", sa.String(64), sa.ForeignKey("review_users.username"), nullable=False),
    sa.Column("decided_at", sa.DateTime, nullable=False),
    sa.Column("model_id", sa.String(200)),
    sa.Column("thresholds_json", sa.Text),
    sa.Column("scores_json", sa.Text),
    sa.ForeignKeyConstraint(["source", "content_id"], ["review_items.source", "review_items.content_id"]),
    sa.UniqueConstraint("source", "content_id", "item_version", name="uq_review_decisions_item_version"),
)
sa.Index("ix_review_decisions_decided_at", review_decisions.c.decided_at)
sa.Index("ix_review_decisions_item", review_decisions.c.source, review_decisions.c.content_id)
sa.Index("ix_review_decisions_actor", review_decisions.c.actor)

review_signin_failures = sa.Table(
    "review_signin_failures", metadata,
    # no foreign key to review_users: failed sign-ins for unknown usernames are counted too,
    # so probing for accounts is throttled the same way (and cannot tell which names exist)
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("window_start", sa.DateTime, nullable=False),
    sa.Column("last_failed_at", sa.DateTime, nullable=False),
    sa.Column("locked_until", sa.DateTime),
)

DEFAULT_SIGNIN_MAX_FAILURES = 5
"""Failed sign-ins within the window that lock a username (``PULSE_SIGNIN_MAX_FAILURES``)."""
DEFAULT_SIGNIN_WINDOW = timedelta(minutes=15)
"""Counting window and lock duration (``PULSE_SIGNIN_LOCKOUT_MINUTES``)."""


# --------------------------------------------------------------------------------------------
# helpers


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(value: datetime | None) -> datetime:
    if value is None:
        return _utcnow()
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _json_text(value: str | Mapping[str, Any] | None, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return json.dumps(dict(value), sort_keys=True)
    raise ValueError(f"{key} must be JSON text or a mapping, got {type(value).__name__}")


def _hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    import bcrypt

    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password too long: bcrypt uses at most {MAX_PASSWORD_BYTES} bytes (UTF-8); use a shorter one")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode("ascii")


def generate_password(nbytes: int = 18) -> str:
    """A strong random password (URL-safe, ``nbytes`` random bytes: 18 -> 24 characters, 144 bits)."""
    return secrets.token_urlsafe(nbytes)


def redact_url(url: str) -> str:
    """The URL with its password masked (``***``), safe to log or print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown by scheme only
        return url.split(":", 1)[0] + "://***"


def normalize_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` to the psycopg 3 driver; other URLs unchanged.

    Raises:
        ValueError: not a ``sqlite:///`` or ``postgresql...://`` URL.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if not (url.startswith("sqlite:///") or url.startswith("postgresql+psycopg://")):
        raise ValueError(
            f"unsupported review store URL {redact_url(url)!r}: use sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB (PULSE_REVIEW_STORE_URL)"
        )
    return url


def _row_to_decision(row: Mapping[str, Any]) -> Decision:
    return Decision(**{k: row[k] for k in DECISION_COLUMNS})


# --------------------------------------------------------------------------------------------
# the store


class ReviewStore:
    """Moderators' accounts, review item states and the append-only decision log.

    Args:
        url: ``sqlite:///PATH`` (the parent folder is created; WAL mode) or
            ``postgresql+psycopg://USER:PASSWORD@HOST[:PORT]/DB``. Never logged with its password.
        bcrypt_rounds: bcrypt work factor for new password hashes (default 12; tests use 4).

    Raises:
        ValueError: an unsupported URL.

    Call :meth:`create_schema` once (idempotent) before first use.
    """

    def __init__(self, url: str, *, bcrypt_rounds: int = BCRYPT_ROUNDS) -> None:
        url = normalize_url(url)
        self.bcrypt_rounds = bcrypt_rounds
        self._dummy_hash: bytes | None = None
        self.url_redacted = redact_url(url)
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _configure_sqlite(self.engine)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)

    def __repr__(self) -> str:
        return f"ReviewStore({self.url_redacted!r})"

    @classmethod
    def from_settings(cls, settings: Any) -> ReviewStore:
        """The store named by ``settings.review_store_url`` (a SecretStr; env PULSE_REVIEW_STORE_URL)."""
        url = settings.review_store_url
        return cls(url.get_secret_value() if hasattr(url, "get_secret_value") else str(url))

    def dispose(self) -> None:
        """Close pooled connections (tests, short-lived CLI commands)."""
        self.engine.dispose()

    # ---------------------------------------------------------------- connections

    def _write(self) -> Any:
        """A transaction for writing (SQLite: BEGIN IMMEDIATE)."""
        return self.engine.begin()

    def _read(self) -> Connection:
        """A connection for reading (SQLite: plain deferred BEGIN, never takes the write lock)."""
        return self.engine.connect().execution_options(pulse_read_only=True)

    def create_schema(self) -> None:
        """Create the tables and indexes if missing (idempotent)."""
        metadata.create_all(self.engine, checkfirst=True)

    def has_schema(self) -> bool:
        """Whether the store exists with its tables (a missing SQLite file is not created)."""
        database = self.engine.url.database
        if self.dialect == "sqlite" and database and database != ":memory:" and not Path(database).expanduser().exists():
            return False
        return sa.inspect(self.engine).has_table("review_decisions")

    # ---------------------------------------------------------------- users

    def add_user(self, username: str, *, name: str, email: str, role: str, password: str) -> ReviewUser:
        """Create an account; the password is stored only as a bcrypt hash.

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
                        username=username, name=name, email=email, role=role, password_hash=hashed,
                        active=True, created_at=now, updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            raise ReviewError(f"user {username!r} exists already; use set-role / set-password to change it") from None
        return ReviewUser(username=username, name=name, email=email, role=role, active=True)

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")

    def _update_user(self, username: str, **values: Any) -> None:
        with self._write() as conn:
            result = conn.execute(
                review_users.update().where(review_users.c.username == username).values(updated_at=_utcnow(), **values)
            )
            if result.rowcount == 0:
                raise ReviewError(f"no user named {username!r}; see `pulse review users`")

    def set_password(self, username: str, password: str) -> None:
        """Replace a user's password (bcrypt hash). Raises ValueError (weak password), ReviewError (no such user)."""
        self._update_user(username, password_hash=_hash_password(password, self.bcrypt_rounds))

    def set_role(self, username: str, role: str) -> None:
        """Change a user's role. Raises ValueError (unknown role), ReviewError (no such user)."""
        self._check_role(role)
        self._update_user(username, role=role)

    def deactivate(self, username: str) -> None:
        """Deactivate an account: it can no longer sign in or act; its past decisions stay. Raises ReviewError (no such user)."""
        self._update_user(username, active=False)

    def activate(self, username: str) -> None:
        """Re-activate a deactivated account. Raises ReviewError (no such user)."""
        self._update_user(username, active=True)

    def users(self) -> list[ReviewUser]:
        """All accounts (active and not), by username."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(review_users.c.username, review_users.c.name, review_users.c.email,
                          review_users.c.role, review_users.c.active).order_by(review_users.c.username)
            ).mappings().all()
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
        return ReviewUser(username=row["username"], name=row["name"], email=row["email"], role=row["role"], active=True)

    def credentials(self) -> dict[str, Any]:
        """streamlit-authenticator's credentials dict for the ACTIVE users.

        Returns:
            ``{"usernames": {username: {"name", "email", "password": <bcrypt hash>, "roles": [role]}}}``
            (deactivated users are left out, so they cannot sign in).
        """
        with self._read() as conn:
            rows = conn.execute(sa.select(review_users).where(review_users.c.active.is_(True))
                                .order_by(review_users.c.username)).mappings().all()
        return {
            "usernames": {
                r["username"]: {"name": r["name"], "email": r["email"], "password": r["password_hash"], "roles": [r["role"]]}
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
        update = t.update().where(t.c.username == key).values(
            failures=count,
            window_start=sa.case((expired, now), else_=t.c.window_start),
            last_failed_at=now,
            locked_until=sa.case((t.c.locked_until > now, t.c.locked_until), (count >= max_failures, now + window), else_=None),
        )
        for attempt in range(2):
            try:
                with self._write() as conn:
                    if conn.execute(update).rowcount == 0:
                        conn.execute(t.insert().values(
                            username=key, failures=1, window_start=now, last_failed_at=now,
                            locked_until=now + window if max_failures <= 1 else None,
                        ))
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
            rows = conn.execute(sa.select(t.c.username, t.c.locked_until).where(t.c.locked_until > now)
                                .order_by(t.c.username)).all()
        return {r.username: r.locked_until for r in rows}

    # ---------------------------------------------------------------- items and decisions

    def item_states(self, source: str | None = None) -> pl.DataFrame:
        """Items that were ever acted on, with their current state.

        Returns:
            ``source, content_id, state, version (int), content_hash, updated_at (naive UTC),
            updated_by`` — one row per item; items never acted on are absent (= pending,
            version 0). Use :func:`effective_state` with the item's current hash.
        """
        query = sa.select(*[review_items.c[c] for c in ITEM_STATES_SCHEMA]).order_by(review_items.c.source, review_items.c.content_id)
        if source is not None:
            query = query.where(review_items.c.source == source)
        with self._read() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return pl.DataFrame(rows, schema=ITEM_STATES_SCHEMA, orient="row") if rows else pl.DataFrame(schema=ITEM_STATES_SCHEMA)

    def _actor(self, conn: Connection, actor: str) -> None:
        row = conn.execute(sa.select(review_users.c.role, review_users.c.active)
                           .where(review_users.c.username == actor)).first()
        if row is None:
            raise AuthorizationError(f"unknown user {actor!r} may not act on review items")
        if not row.active:
            raise AuthorizationError(f"user {actor!r} is deactivated and may not act on review items")
        if row.role not in ACTING_ROLES:
            raise AuthorizationError(
                f"user {actor!r} has role {row.role!r}, which may not act on review items "
                f"(only {' and '.join(sorted(ACTING_ROLES))} may); ask an admin to change the role"
            )

    def _conflict(self, source: str, content_id: str, expected_version: int) -> ConflictError:
        with self._read() as conn:
            item = conn.execute(sa.select(review_items).where(
                (review_items.c.source == source) & (review_items.c.content_id == content_id))).mappings().first()
        if item is None:
            return ConflictError(
                f"{source}:{content_id} has not been acted on (version 0), but you expected version "
                f"{expected_version}; reload the queue",
                current_state="pending", current_version=0, last_actor=None, last_decided_at=None,
            )
        return ConflictError(
            f"{source}:{content_id} was changed by {item['updated_by']} at {item['updated_at']:%Y-%m-%d %H:%M:%S} UTC "
            f"(now {item['state']!r}, version {item['version']}) after the version {expected_version} you saw; "
            "reload it and decide again",
            current_state=item["state"], current_version=int(item["version"]),
            last_actor=item["updated_by"], last_decided_at=item["updated_at"],
        )

    def decide(
        self,
        *,
        source: str,
        content_id: str,
        action: str,
        actor: str,
        expected_version: int,
        content_hash: str | None,
        reason_code: str | None = None,
        note: str | None = None,
        model_id: str | None = None,
        thresholds_json: str | Mapping[str, Any] | None = None,
        scores_json: str | Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """Apply a moderator's action to an item: one decision row + the item update, atomically.

        Args:
            source, content_id: the item (canonical ids).
            action: ``approve`` | ``remove`` | ``escalate``.
            actor: username of an active moderator or admin.
            expected_version: the item version the moderator saw (0 = never acted on).
            content_hash: hash of the text the moderator reviewed (a changed hash after a final
                decision reopens the item: see :func:`effective_state`).
            reason_code: a key of :data:`REASON_CODES` (optional).
            note: free text (optional; blanked by :meth:`erase_content`).
            model_id, thresholds_json, scores_json: provenance of the ML flag (JSON text or
                mappings, serialised with sorted keys).
            now: decision time (default: now, UTC; an aware datetime is converted to UTC).

        Returns:
            The :class:`Decision` written.

        Raises:
            ValueError: unknown action or reason code.
            AuthorizationError: the actor is unknown, deactivated, or not a moderator/admin.
            ConflictError: someone acted since ``expected_version`` (nothing written).
            TransitionError: the action is not allowed from the item's state.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        if reason_code is not None and reason_code not in REASON_CODES:
            raise ValueError(f"unknown reason code {reason_code!r}; use one of {', '.join(REASON_CODES)}")
        decided_at = _naive_utc(now)
        thresholds_text = _json_text(thresholds_json, "thresholds_json")
        scores_text = _json_text(scores_json, "scores_json")
        where_item = (review_items.c.source == source) & (review_items.c.content_id == content_id)
        try:
            with self._write() as conn:
                self._actor(conn, actor)
                item = conn.execute(sa.select(review_items).where(where_item)).mappings().first()
                current_version = 0 if item is None else int(item["version"])
                if current_version != expected_version:
                    raise _Conflict
                state = effective_state(None if item is None else item["state"],
                                        None if item is None else item["content_hash"], content_hash)
                if action not in TRANSITIONS.get(state, set()):
                    allowed = sorted(TRANSITIONS.get(state, set()))
                    raise TransitionError(
                        f"cannot {action} {source}:{content_id}: it is {state!r}"
                        + (f" (allowed: {', '.join(allowed)})" if allowed else " (a final state; nothing more to do)")
                    )
                to_state = ACTIONS[action]
                new_version = expected_version + 1
                if item is None:
                    conn.execute(review_items.insert().values(
                        source=source, content_id=content_id, state=to_state, version=1,
                        content_hash=content_hash, updated_at=decided_at, updated_by=actor))
                else:
                    result = conn.execute(
                        review_items.update()
                        .where(where_item & (review_items.c.version == expected_version))
                        .values(state=to_state, version=review_items.c.version + 1, content_hash=content_hash,
                                updated_at=decided_at, updated_by=actor)
                    )
                    if result.rowcount != 1:
                        raise _Conflict
                decision = Decision(
                    decision_id=uuid.uuid4().hex, source=source, content_id=content_id, content_hash=content_hash,
                    item_version=new_version, from_state=state, to_state=to_state, action=action,
                    reason_code=reason_code, note=note, actor=actor, decided_at=decided_at, model_id=model_id,
                    thresholds_json=thresholds_text, scores_json=scores_text,
                )
                conn.execute(review_decisions.insert().values(**decision.__dict__))
        except (_Conflict, sa.exc.IntegrityError):
            raise self._conflict(source, content_id, expected_version) from None
        log.info("review decision %s: %s %s:%s %s -> %s (v%d)", decision.decision_id, actor, source, content_id,
                 state, to_state, new_version)
        return decision

    def decide_many(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        action: str,
        actor: str,
        reason_code: str | None = None,
        note: str | None = None,
    ) -> list[Decision | ReviewError]:
        """Apply one action to many items (bulk actions), each in its own transaction.

        Args:
            items: dicts with ``source, content_id, expected_version, content_hash`` and optional
                ``model_id, thresholds_json, scores_json``.

        Returns:
            One entry per item, in order: the :class:`Decision`, or the :class:`ReviewError`
            (conflict, transition, authorization) that item hit; one failure does not stop the rest.

        Raises:
            ValueError: unknown action or reason code, or an item missing a required key
                (checked before anything is written).
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        if reason_code is not None and reason_code not in REASON_CODES:
            raise ValueError(f"unknown reason code {reason_code!r}; use one of {', '.join(REASON_CODES)}")
        required = ("source", "content_id", "expected_version", "content_hash")
        for i, item in enumerate(items):
            missing = [k for k in required if k not in item]
            if missing:
                raise ValueError(f"items[{i}] lacks {', '.join(missing)} (each item needs {', '.join(required)})")
        out: list[Decision | ReviewError] = []
        for item in items:
            try:
                out.append(self.decide(
                    source=item["source"], content_id=item["content_id"], action=action, actor=actor,
                    expected_version=int(item["expected_version"]), content_hash=item["content_hash"],
                    reason_code=reason_code, note=note, model_id=item.get("model_id"),
                    thresholds_json=item.get("thresholds_json"), scores_json=item.get("scores_json"),
                ))
            except ReviewError as exc:
                out.append(exc)
        return out

    def decisions(
        self,
        *,
        source: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        after_decided_at: datetime | None = None,
        content_id: str | None = None,
    ) -> pl.DataFrame:
        """The audit log (mod log), newest first.

        Args:
            source, actor, action, content_id: equality filters (None = all).
            start, end: ``start <= decided_at < end`` (naive UTC; aware values converted).
            after_decided_at: only ``decided_at > after_decided_at`` (incremental reads).

        Returns:
            Columns :data:`DECISION_COLUMNS` (those of ``moderation.decisions`` except
            ``ingested_run_id``), ``decided_at`` a naive-UTC datetime; ordered by
            ``decided_at`` desc, then ``item_version`` desc.
        """
        query = sa.select(*[review_decisions.c[c] for c in DECISION_COLUMNS])
        c = review_decisions.c
        for column, value in (("source", source), ("actor", actor), ("action", action), ("content_id", content_id)):
            if value is not None:
                query = query.where(c[column] == value)
        if start is not None:
            query = query.where(c.decided_at >= _naive_utc(start))
        if end is not None:
            query = query.where(c.decided_at < _naive_utc(end))
        if after_decided_at is not None:
            query = query.where(c.decided_at > _naive_utc(after_decided_at))
        query = query.order_by(c.decided_at.desc(), c.item_version.desc(), c.decision_id)
        with self._read() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        if not rows:
            return pl.DataFrame(schema=DECISIONS_SCHEMA)
        return pl.DataFrame(rows, schema=DECISIONS_SCHEMA, orient="row")

    def erase_content(self, source: str, content_ids: Sequence[str] | Iterable[str]) -> int:
        """Privacy erasure: blank the free-text notes and score snapshots of decisions on these items.

        The decision rows stay (who did what, when, why: the audit trail); only ``note`` and
        ``scores_json`` are set to null. Idempotent.

        Returns:
            Number of decision rows changed (0 when already erased).
        """
        ids = list(dict.fromkeys(content_ids))
        changed = 0
        c = review_decisions.c
        with self._write() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                result = conn.execute(
                    review_decisions.update()
                    .where((c.source == source) & c.content_id.in_(chunk)
                           & (c.note.is_not(None) | c.scores_json.is_not(None)))
                    .values(note=None, scores_json=None)
                )
                changed += result.rowcount
        return changed


class _Conflict(Exception):
    """Internal signal: the version check failed inside the transaction (rolled back)."""


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout and foreign keys on every connection; BEGIN IMMEDIATE for writes.

    SQLAlchemy's documented recipe: turn off pysqlite's own BEGIN handling and emit BEGIN from
    the ``begin`` event. Write transactions take the write lock up front (IMMEDIATE), so a second
    writer waits (busy_timeout) and then sees the first one's commit, instead of failing with
    SQLITE_BUSY when upgrading a read snapshot. Reads (execution option ``pulse_read_only``)
    use a deferred BEGIN and never block the writer (WAL).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("pulse_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
