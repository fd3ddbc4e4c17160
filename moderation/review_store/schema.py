"""The review store's foundation: its tables, the engine and connections, SQLite's pragmas.

Backends (SQLAlchemy 2 Core, one schema for both):

- SQLite (default, ``sqlite:///data/review.sqlite``): WAL journal (readers never block the
  writer), ``busy_timeout`` 10 s, foreign keys on; write transactions start with
  ``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing mid-transaction.
- PostgreSQL by URL (``postgresql+psycopg://user:pw@host/db``; a bare ``postgresql://`` is
  taken to mean the psycopg 3 driver).

Tables: ``review_users``, ``review_signin_failures`` and ``review_admin_actions`` (accounts,
sign-in lockout and the log of admins' account changes, :mod:`moderation.review_store.accounts`),
``review_items`` and ``review_decisions`` (the items' states and the append-only decision log,
:mod:`moderation.review_store.decisions`). Timestamps are stored as naive UTC.
:class:`ReviewStoreBase` owns the engine and the read/write connections both halves of
:class:`~moderation.review_store.ReviewStore` use; :class:`ReviewError` is the base of every
error the store raises.

Upgrades: there is no migration framework; :meth:`ReviewStoreBase.create_schema` creates
missing tables (``metadata.create_all``) and then :func:`upgrade_schema` brings a store made by
an older version up to date, idempotently and under the write lock (so two processes starting
at once upgrade it once): ``review_users.session_epoch`` is added (``ALTER TABLE ... ADD
COLUMN``, 0 for existing accounts) and the role CHECK constraint is widened to :data:`ROLES`
(PostgreSQL: drop and re-add the constraint; SQLite cannot alter a constraint, so the table is
rebuilt in one transaction with foreign-key enforcement off, the procedure of
https://www.sqlite.org/lang_altertable.html#otheralter, and ``PRAGMA foreign_key_check`` must
come back empty before it commits). Roles stay enforced by the database, not only in code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

SQLITE_BUSY_TIMEOUT_MS = 10_000


class ReviewError(Exception):
    """A review action could not be carried out; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# schema

ROLES: tuple[str, ...] = ("moderator", "manager", "admin", "data_engineer")
"""``moderator`` acts on items; ``manager`` reads aggregates (no payloads, no notes) but may not
act; ``data_engineer`` runs the pipeline: Pipeline health with raw quarantine payloads and Data
Docs, no review actions; ``admin`` does everything, plus manages users."""

ADMIN_ACTIONS: tuple[str, ...] = (
    "user_created",
    "role_changed",
    "password_reset",
    "deactivated",
    "reactivated",
    "unlocked",
    "signed_out_everywhere",
)
"""What ``review_admin_actions.action`` may record (one row per account change)."""


def _role_check() -> str:
    return "role in (" + ", ".join(f"'{r}'" for r in ROLES) + ")"


metadata = sa.MetaData()

review_users = sa.Table(
    "review_users",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(100), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    # bumped by a password change, role change, deactivation and "sign out everywhere": a
    # session or cookie that recorded another epoch is signed out (dashboards.auth)
    sa.Column("session_epoch", sa.Integer, nullable=False, default=0, server_default=sa.text("0")),
    sa.CheckConstraint(_role_check(), name="ck_review_users_role"),
)

review_items = sa.Table(
    "review_items",
    metadata,
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
    "review_decisions",
    metadata,
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
    "review_signin_failures",
    metadata,
    # no foreign key to review_users: failed sign-ins for unknown usernames are counted too,
    # so probing for accounts is throttled the same way (and cannot tell which names exist)
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("window_start", sa.DateTime, nullable=False),
    sa.Column("last_failed_at", sa.DateTime, nullable=False),
    sa.Column("locked_until", sa.DateTime),
)

review_admin_actions = sa.Table(
    "review_admin_actions",
    metadata,
    # append-only; no foreign keys: the actor may be an OS user (CLI) and the target an unknown
    # username (unlocking a probed name)
    sa.Column("action_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text),
    sa.CheckConstraint(
        "action in (" + ", ".join(f"'{a}'" for a in ADMIN_ACTIONS) + ")", name="ck_review_admin_actions_action"
    ),
)
sa.Index("ix_review_admin_actions_at", review_admin_actions.c.at)


# --------------------------------------------------------------------------------------------
# helpers


def _utcnow() -> datetime:
    """Now as naive UTC (how the tables store time)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(value: datetime | None) -> datetime:
    """``value`` as naive UTC: None -> now, aware -> converted, naive -> taken as UTC already."""
    if value is None:
        return _utcnow()
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


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
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not (url.startswith("sqlite:///") or url.startswith("postgresql+psycopg://")):
        raise ValueError(
            f"unsupported review store URL {redact_url(url)!r}: use sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB (PULSE_REVIEW_STORE_URL)"
        )
    return url


# --------------------------------------------------------------------------------------------
# engine and connections


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


class ReviewStoreBase:
    """The engine and connections of a review store (the accounts and decisions halves of
    :class:`~moderation.review_store.ReviewStore` build on it).

    Args:
        url: ``sqlite:///PATH`` (the parent folder is created; WAL mode) or
            ``postgresql+psycopg://USER:PASSWORD@HOST[:PORT]/DB``. Never logged with its password.

    Raises:
        ValueError: an unsupported URL.
    """

    def __init__(self, url: str) -> None:
        url = normalize_url(url)
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
    def from_settings(cls, settings: Any) -> Self:
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
        """Create the tables and indexes if missing, then upgrade an older store (idempotent;
        see :func:`upgrade_schema`)."""
        metadata.create_all(self.engine, checkfirst=True)
        upgrade_schema(self.engine)

    def has_schema(self) -> bool:
        """Whether the store exists with its tables (a missing SQLite file is not created)."""
        database = self.engine.url.database
        if (
            self.dialect == "sqlite"
            and database
            and database != ":memory:"
            and not Path(database).expanduser().exists()
        ):
            return False
        return sa.inspect(self.engine).has_table("review_decisions")


# --------------------------------------------------------------------------------------------
# upgrades of stores made by older versions


def _sqlite_needs(sql: str, columns: set[str]) -> tuple[bool, bool]:
    """(column missing, role CHECK outdated) for SQLite's stored ``CREATE TABLE`` text."""
    return "session_epoch" not in columns, not all(f"'{r}'" in sql for r in ROLES)


def upgrade_schema(engine: Engine) -> list[str]:
    """Bring ``review_users`` of an older store up to date; return what was done (empty: nothing).

    Steps: add ``session_epoch`` (0 for existing accounts), widen the role CHECK to :data:`ROLES`.
    Idempotent; each backend checks again under its write lock, so concurrent callers upgrade once.

    Raises:
        sqlalchemy.exc.DBAPIError: the database refused the upgrade (nothing is changed: one transaction).
        ReviewError: SQLite's foreign-key check failed after the rebuild (rolled back).
    """
    inspector = sa.inspect(engine)
    if not inspector.has_table("review_users"):
        return []
    columns = {c["name"] for c in inspector.get_columns("review_users")}
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            raw_sql = conn.exec_driver_sql(
                "select sql from sqlite_master where type = 'table' and name = 'review_users'"
            ).scalar_one()
        if not any(_sqlite_needs(raw_sql, columns)):
            return []
        return _upgrade_sqlite(engine)
    checks = {c["name"]: c["sqltext"] for c in inspector.get_check_constraints("review_users")}
    if "session_epoch" in columns and all(f"'{r}'" in checks.get("ck_review_users_role", "") for r in ROLES):
        return []
    return _upgrade_postgresql(engine)


def _upgrade_postgresql(engine: Engine) -> list[str]:
    """PostgreSQL: ``ADD COLUMN IF NOT EXISTS`` and drop/re-add the CHECK, in one transaction
    holding ``ACCESS EXCLUSIVE`` on ``review_users`` (DDL is transactional there)."""
    done: list[str] = []
    with engine.begin() as conn:
        conn.exec_driver_sql("LOCK TABLE review_users IN ACCESS EXCLUSIVE MODE")
        has_column = conn.exec_driver_sql(
            "select 1 from information_schema.columns where table_schema = current_schema() "
            "and table_name = 'review_users' and column_name = 'session_epoch'"
        ).first()
        if has_column is None:
            conn.exec_driver_sql("ALTER TABLE review_users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0")
            done.append("added review_users.session_epoch")
        current = conn.exec_driver_sql(
            "select pg_get_constraintdef(oid) from pg_constraint "
            "where conrelid = 'review_users'::regclass and conname = 'ck_review_users_role'"
        ).scalar()
        if current is None or not all(f"'{r}'" in current for r in ROLES):
            conn.exec_driver_sql("ALTER TABLE review_users DROP CONSTRAINT IF EXISTS ck_review_users_role")
            conn.exec_driver_sql(
                f"ALTER TABLE review_users ADD CONSTRAINT ck_review_users_role CHECK ({_role_check()})"
            )
            done.append(f"role CHECK widened to {', '.join(ROLES)}")
    return done


def _upgrade_sqlite(engine: Engine) -> list[str]:
    """SQLite: ``ADD COLUMN`` when only the column is missing; else rebuild ``review_users``
    (create ``review_users_new`` with the current definition, copy, drop, rename) with foreign
    keys off, verified by ``PRAGMA foreign_key_check`` before the commit."""
    from sqlalchemy.schema import CreateTable

    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set it first
        cur.execute("BEGIN IMMEDIATE")
        try:
            sql = cur.execute(
                "select sql from sqlite_master where type = 'table' and name = 'review_users'"
            ).fetchone()[0]
            columns = {row[1] for row in cur.execute("PRAGMA table_info(review_users)").fetchall()}
            missing_column, outdated_check = _sqlite_needs(sql, columns)
            done: list[str] = []
            if outdated_check:
                new = review_users.to_metadata(sa.MetaData(), name="review_users_new")
                cur.execute(str(CreateTable(new).compile(dialect=engine.dialect)))
                kept = [c.name for c in review_users.columns if c.name in columns]
                names = ", ".join(kept)
                cur.execute(f"INSERT INTO review_users_new ({names}) SELECT {names} FROM review_users")
                cur.execute("DROP TABLE review_users")
                cur.execute("ALTER TABLE review_users_new RENAME TO review_users")
                if cur.execute("PRAGMA foreign_key_check").fetchall():
                    raise ReviewError("review store upgrade: foreign keys broken after rebuilding review_users")
                done.append(f"review_users rebuilt: role CHECK widened to {', '.join(ROLES)}")
                if missing_column:
                    done.append("added review_users.session_epoch")
            elif missing_column:
                cur.execute("ALTER TABLE review_users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0")
                done.append("added review_users.session_epoch")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()
    return done
