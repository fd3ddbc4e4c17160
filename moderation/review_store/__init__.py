"""The review store: moderators' accounts, review items and the append-only decision log.

:class:`ReviewStore` is composed of two halves over one database (SQLite WAL or PostgreSQL):

- :mod:`moderation.review_store.schema`: the tables, engine creation, SQLite's WAL pragmas,
  :data:`ROLES`, :func:`upgrade_schema` (older stores), :func:`redact_url` /
  :func:`normalize_url`, and :class:`ReviewError`, the base of its errors.
- :mod:`moderation.review_store.accounts`: users, roles, bcrypt, :func:`generate_password`,
  sign-in failure counting and lockout, session epochs and the admin-action log
  (:class:`~moderation.review_store.accounts.Accounts`).
- :mod:`moderation.review_store.decisions`: items, the pending/approved/removed/escalated state
  machine, append-only decisions (undo and reopen append too) with optimistic concurrency, :data:`DECISION_COLUMNS`
  (:class:`~moderation.review_store.decisions.Decisions`).

The public names of all three are re-exported here (``from moderation.review_store import X``).
"""

from __future__ import annotations

from moderation.review_store.accounts import (
    ACTING_ROLES,
    BCRYPT_ROUNDS,
    DEFAULT_SIGNIN_MAX_FAILURES,
    DEFAULT_SIGNIN_WINDOW,
    MAX_PASSWORD_BYTES,
    MIN_PASSWORD_LENGTH,
    Accounts,
    AuthorizationError,
    ReviewUser,
    check_actor,
    default_actor,
    generate_password,
)
from moderation.review_store.decisions import (
    ACTIONS,
    DECISION_COLUMNS,
    DECISIONS_SCHEMA,
    DEFAULT_UNDO_SECONDS,
    FINAL_STATES,
    ITEM_STATES_SCHEMA,
    REASON_CODES,
    STATES,
    TRANSITIONS,
    UNDO_ACTION,
    ConflictError,
    Decision,
    Decisions,
    TransitionError,
    effective_state,
)
from moderation.review_store.schema import (
    ADMIN_ACTIONS,
    ROLES,
    SQLITE_BUSY_TIMEOUT_MS,
    ReviewError,
    ReviewStoreBase,
    metadata,
    normalize_url,
    redact_url,
    review_admin_actions,
    review_decisions,
    review_items,
    review_signin_failures,
    review_users,
    upgrade_schema,
)

__all__ = [
    "ACTING_ROLES", "ACTIONS", "ADMIN_ACTIONS", "BCRYPT_ROUNDS", "DECISIONS_SCHEMA", "DECISION_COLUMNS",
    "DEFAULT_SIGNIN_MAX_FAILURES", "DEFAULT_SIGNIN_WINDOW", "DEFAULT_UNDO_SECONDS", "FINAL_STATES",
    "ITEM_STATES_SCHEMA", "MAX_PASSWORD_BYTES", "MIN_PASSWORD_LENGTH", "REASON_CODES", "ROLES",
    "SQLITE_BUSY_TIMEOUT_MS", "STATES", "TRANSITIONS", "UNDO_ACTION", "Accounts", "AuthorizationError",
    "ConflictError", "Decision", "Decisions", "ReviewError", "ReviewStore", "ReviewStoreBase", "ReviewUser",
    "TransitionError", "check_actor", "default_actor", "effective_state", "generate_password", "metadata",
    "normalize_url", "redact_url", "review_admin_actions", "review_decisions", "review_items",
    "review_signin_failures", "review_users", "upgrade_schema",
]  # fmt: skip


class ReviewStore(Accounts, Decisions):
    """Moderators' accounts, review item states and the append-only decision log.

    Args:
        url: ``sqlite:///PATH`` (the parent folder is created; WAL mode) or
            ``postgresql+psycopg://USER:PASSWORD@HOST[:PORT]/DB``. Never logged with its password.
        bcrypt_rounds: bcrypt work factor for new password hashes (default 12; tests use 4).

    Raises:
        ValueError: an unsupported URL.

    Call :meth:`create_schema` once (idempotent) before first use.
    """
