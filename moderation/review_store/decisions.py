"""Review items and the append-only decision log (:class:`Decisions`, a half of
:class:`~moderation.review_store.ReviewStore`).

Moderators act in the Streamlit review queue; their actions land here (not in the DuckDB
warehouse, which only the pipeline writes). The pipeline copies the decisions into
``moderation.decisions`` each run (:func:`pulse.steps.ingest_decisions`, columns
:data:`DECISION_COLUMNS`); the queue page reads item states straight from the store so an
action shows at once.

State machine (Discourse's reviewables, Reddit's mod queue)::

    pending --approve--> approved      escalated --approve--> approved
    pending --remove---> removed       escalated --remove---> removed
    pending --escalate-> escalated     approved|removed --reopen--> pending

``approved`` and ``removed`` close the item *for the reviewed text*: when an item's
``content_hash`` changes after a final decision (the post was edited after approval), the item
counts as ``pending`` again and the next decision starts a new round from ``pending``
(:func:`effective_state`); a moderator may also ``reopen`` it by hand.

Mistakes are corrected by appending, never by rewriting: :meth:`Decisions.undo` writes a new
``undo`` decision row that returns the item to the state before its latest decision (only the
moderator who made that decision, only within :data:`DEFAULT_UNDO_SECONDS` or the window
given), and ``reopen`` is an ordinary action. The audit log therefore shows the original
decision, its undo and every reopening.

Optimistic concurrency: each item has a ``version`` (0 = never acted on, no row). A decision
names the version the moderator saw; the store updates the item with
``... WHERE version = :expected`` (or inserts version 1 for a first decision) and writes the
decision row in the same transaction. If someone acted in between, nothing is written and
:class:`ConflictError` says who acted, when, and what the item is now.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from moderation.review_store.accounts import check_actor
from moderation.review_store.schema import (
    ReviewError,
    ReviewStoreBase,
    _naive_utc,
    review_decisions,
    review_items,
)

log = logging.getLogger(__name__)

STATES: tuple[str, ...] = ("pending", "approved", "removed", "escalated")
"""Review states of an item; ``pending`` is implicit (no row) until the first decision."""

ACTIONS: dict[str, str] = {"approve": "approved", "remove": "removed", "escalate": "escalated", "reopen": "pending"}
"""Moderator action -> the state it leads to (``undo`` is not here: it returns to the state before
the latest decision, :meth:`Decisions.undo`)."""

TRANSITIONS: dict[str, set[str]] = {
    "pending": {"approve", "remove", "escalate"},
    "escalated": {"approve", "remove"},
    "approved": {"reopen"},
    "removed": {"reopen"},
}
"""State -> the actions allowed from it (``approved`` and ``removed`` only reopen)."""

UNDO_ACTION = "undo"
"""The ``action`` of a decision row written by :meth:`Decisions.undo`."""

DEFAULT_UNDO_SECONDS = 30.0
"""How long after a decision its moderator may undo it (the app passes ``PULSE_REVIEW_UNDO_SECONDS``)."""

FINAL_STATES: frozenset[str] = frozenset({"approved", "removed"})

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

DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id",
    "source",
    "content_id",
    "content_hash",
    "item_version",
    "from_state",
    "to_state",
    "action",
    "reason_code",
    "note",
    "actor",
    "decided_at",
    "model_id",
    "thresholds_json",
    "scores_json",
)

DECISIONS_SCHEMA: dict[str, pl.DataType] = {
    "decision_id": pl.String(),
    "source": pl.String(),
    "content_id": pl.String(),
    "content_hash": pl.String(),
    "item_version": pl.Int64(),
    "from_state": pl.String(),
    "to_state": pl.String(),
    "action": pl.String(),
    "reason_code": pl.String(),
    "note": pl.String(),
    "actor": pl.String(),
    "decided_at": pl.Datetime("us"),
    "model_id": pl.String(),
    "thresholds_json": pl.String(),
    "scores_json": pl.String(),
}
ITEM_STATES_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "content_id": pl.String(),
    "state": pl.String(),
    "version": pl.Int64(),
    "content_hash": pl.String(),
    "updated_at": pl.Datetime("us"),
    "updated_by": pl.String(),
}


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


def _json_text(value: str | Mapping[str, Any] | None, key: str) -> str | None:
    """JSON text as given, or a mapping serialised with sorted keys; ValueError for anything else."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return json.dumps(dict(value), sort_keys=True)
    raise ValueError(f"{key} must be JSON text or a mapping, got {type(value).__name__}")


class _Conflict(Exception):
    """Internal signal: the version check failed inside the transaction (rolled back)."""


class Decisions(ReviewStoreBase):
    """Review item states and the decision log of a review store (see :class:`ReviewStoreBase`)."""

    def item_states(self, source: str | None = None) -> pl.DataFrame:
        """Items that were ever acted on, with their current state.

        Returns:
            ``source, content_id, state, version (int), content_hash, updated_at (naive UTC),
            updated_by`` — one row per item; items never acted on are absent (= pending,
            version 0). Use :func:`effective_state` with the item's current hash.
        """
        query = sa.select(*[review_items.c[c] for c in ITEM_STATES_SCHEMA]).order_by(
            review_items.c.source, review_items.c.content_id
        )
        if source is not None:
            query = query.where(review_items.c.source == source)
        with self._read() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return (
            pl.DataFrame(rows, schema=ITEM_STATES_SCHEMA, orient="row")
            if rows
            else pl.DataFrame(schema=ITEM_STATES_SCHEMA)
        )

    def _conflict(self, source: str, content_id: str, expected_version: int) -> ConflictError:
        """The :class:`ConflictError` for a failed version check, naming the item's state now."""
        with self._read() as conn:
            item = (
                conn.execute(
                    sa.select(review_items).where(
                        (review_items.c.source == source) & (review_items.c.content_id == content_id)
                    )
                )
                .mappings()
                .first()
            )
        if item is None:
            return ConflictError(
                f"{source}:{content_id} has not been acted on (version 0), but you expected version "
                f"{expected_version}; reload the queue",
                current_state="pending",
                current_version=0,
                last_actor=None,
                last_decided_at=None,
            )
        return ConflictError(
            f"{source}:{content_id} was changed by {item['updated_by']} at {item['updated_at']:%Y-%m-%d %H:%M:%S} UTC "
            f"(now {item['state']!r}, version {item['version']}) after the version {expected_version} you saw; "
            "reload it and decide again",
            current_state=item["state"],
            current_version=int(item["version"]),
            last_actor=item["updated_by"],
            last_decided_at=item["updated_at"],
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
            action: ``approve`` | ``remove`` | ``escalate`` | ``reopen`` (see :data:`TRANSITIONS`).
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

        def target(state: str) -> str:
            if action not in TRANSITIONS.get(state, set()):
                allowed = sorted(TRANSITIONS.get(state, set()))
                raise TransitionError(
                    f"cannot {action} {source}:{content_id}: it is {state!r}"
                    + (f" (allowed: {', '.join(allowed)})" if allowed else " (nothing more to do)")
                )
            return ACTIONS[action]

        return self._append(
            source=source, content_id=content_id, action=action, actor=actor, expected_version=expected_version,
            content_hash=content_hash, target=target, reason_code=reason_code, note=note, model_id=model_id,
            thresholds_json=thresholds_json, scores_json=scores_json, now=now,
        )  # fmt: skip

    def undo(
        self,
        *,
        source: str,
        content_id: str,
        actor: str,
        expected_version: int,
        within_seconds: float = DEFAULT_UNDO_SECONDS,
        note: str | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """Undo the item's latest decision by appending an ``undo`` decision (nothing is deleted).

        The new row goes from the latest decision's ``to_state`` back to its ``from_state``,
        with the same ``content_hash``, ``model_id`` and score snapshots.

        Args:
            source, content_id: the item.
            actor: must be the moderator who made the latest decision.
            expected_version: the item version the moderator saw (that of the latest decision).
            within_seconds: the undo window, seconds after the latest decision (> 0).
            note: free text (optional).
            now: time of the undo (default: now, UTC).

        Returns:
            The ``undo`` :class:`Decision` written.

        Raises:
            ValueError: ``within_seconds`` <= 0.
            AuthorizationError: the actor is unknown, deactivated, or not a moderator/admin.
            ConflictError: someone acted since ``expected_version`` (nothing written).
            TransitionError: no decision to undo, it is itself an undo, it was made by someone
                else, or the window has passed (nothing written).
        """
        if within_seconds <= 0:
            raise ValueError(f"within_seconds must be > 0, got {within_seconds}")
        decided_at = _naive_utc(now)
        latest = self.decisions(source=source, content_id=content_id).head(1)
        if latest.is_empty() or int(latest["item_version"][0]) != expected_version:
            if latest.is_empty() and expected_version == 0:
                raise TransitionError(f"cannot undo {source}:{content_id}: it has no decision")
            raise self._conflict(source, content_id, expected_version)
        last = latest.row(0, named=True)

        def target(state: str) -> str:
            if last["action"] == UNDO_ACTION:
                raise TransitionError(f"cannot undo {source}:{content_id}: its latest decision is already an undo")
            if last["actor"] != actor:
                raise TransitionError(
                    f"cannot undo {source}:{content_id}: the latest decision is {last['actor']}'s; "
                    "only they may undo it (reopen the item instead)"
                )
            age = (decided_at - last["decided_at"]).total_seconds()
            if age > within_seconds:
                raise TransitionError(
                    f"cannot undo {source}:{content_id}: the decision is {age:.0f} s old and the undo window is "
                    f"{within_seconds:.0f} s (reopen the item instead)"
                )
            return str(last["from_state"])

        return self._append(
            source=source, content_id=content_id, action=UNDO_ACTION, actor=actor, expected_version=expected_version,
            content_hash=last["content_hash"], target=target, reason_code=None, note=note, model_id=last["model_id"],
            thresholds_json=last["thresholds_json"], scores_json=last["scores_json"], now=decided_at,
        )  # fmt: skip

    def _append(
        self,
        *,
        source: str,
        content_id: str,
        action: str,
        actor: str,
        expected_version: int,
        content_hash: str | None,
        target: Callable[[str], str],
        reason_code: str | None,
        note: str | None,
        model_id: str | None,
        thresholds_json: str | Mapping[str, Any] | None,
        scores_json: str | Mapping[str, Any] | None,
        now: datetime | None,
    ) -> Decision:
        """One decision row + the item update in one transaction (see :meth:`decide`).

        ``target(effective_state) -> to_state`` runs inside the transaction, after the version
        check; it raises :class:`TransitionError` to refuse (nothing is written).
        """
        decided_at = _naive_utc(now)
        thresholds_text = _json_text(thresholds_json, "thresholds_json")
        scores_text = _json_text(scores_json, "scores_json")
        where_item = (review_items.c.source == source) & (review_items.c.content_id == content_id)
        try:
            with self._write() as conn:
                check_actor(conn, actor)
                item = conn.execute(sa.select(review_items).where(where_item)).mappings().first()
                current_version = 0 if item is None else int(item["version"])
                if current_version != expected_version:
                    raise _Conflict
                state = effective_state(
                    None if item is None else item["state"],
                    None if item is None else item["content_hash"],
                    content_hash,
                )
                to_state = target(state)
                new_version = expected_version + 1
                if item is None:
                    conn.execute(
                        review_items.insert().values(
                            source=source,
                            content_id=content_id,
                            state=to_state,
                            version=1,
                            content_hash=content_hash,
                            updated_at=decided_at,
                            updated_by=actor,
                        )
                    )
                else:
                    result = conn.execute(
                        review_items.update()
                        .where(where_item & (review_items.c.version == expected_version))
                        .values(
                            state=to_state,
                            version=review_items.c.version + 1,
                            content_hash=content_hash,
                            updated_at=decided_at,
                            updated_by=actor,
                        )
                    )
                    if result.rowcount != 1:
                        raise _Conflict
                decision = Decision(
                    decision_id=uuid.uuid4().hex,
                    source=source,
                    content_id=content_id,
                    content_hash=content_hash,
                    item_version=new_version,
                    from_state=state,
                    to_state=to_state,
                    action=action,
                    reason_code=reason_code,
                    note=note,
                    actor=actor,
                    decided_at=decided_at,
                    model_id=model_id,
                    thresholds_json=thresholds_text,
                    scores_json=scores_text,
                )
                conn.execute(review_decisions.insert().values(**decision.__dict__))
        except (_Conflict, sa.exc.IntegrityError):
            raise self._conflict(source, content_id, expected_version) from None
        log.info(
            "review decision %s: %s %s %s:%s %s -> %s (v%d)",
            decision.decision_id,
            actor,
            action,
            source,
            content_id,
            state,
            to_state,
            new_version,
        )
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
                out.append(
                    self.decide(
                        source=item["source"],
                        content_id=item["content_id"],
                        action=action,
                        actor=actor,
                        expected_version=int(item["expected_version"]),
                        content_hash=item["content_hash"],
                        reason_code=reason_code,
                        note=note,
                        model_id=item.get("model_id"),
                        thresholds_json=item.get("thresholds_json"),
                        scores_json=item.get("scores_json"),
                    )
                )
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
                chunk = ids[i : i + 500]
                result = conn.execute(
                    review_decisions.update()
                    .where(
                        (c.source == source)
                        & c.content_id.in_(chunk)
                        & (c.note.is_not(None) | c.scores_json.is_not(None))
                    )
                    .values(note=None, scores_json=None)
                )
                changed += result.rowcount
        return changed
