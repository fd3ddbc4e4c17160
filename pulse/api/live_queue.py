"""Live queue items: posts the webhook flagged, shown in the review queue before the next pipeline run.

The review queue page reads ``marts.moderation_queue`` from the serving snapshot, which changes
only when the pipeline publishes. The webhook must not write the warehouse (the pipeline is its
only writer), so a post it queues goes into the review store instead, as one row of
``live_queue_items`` holding the same columns the mart has (``row_json``; the post's title and
text included, as in the mart, so the moderator can read it), computed with the same policy
(:func:`moderation.policy.flag` with the configured thresholds, :func:`moderation.policy.queue_severity`,
the language routing rule). The page unions them with the snapshot's rows (:func:`merge_live`)
and ranks the union as the mart does (priority_score desc, oldest first, then source, content_id).

Reconciliation (no duplicates): a live item is dropped from the union as soon as the snapshot
has the same ``(source, content_id)`` in its queue, or has scored the item's ``content_hash``
with the item's ``model_id`` (``moderation.scores``; the pipeline then decided itself, queued or
not). Moderators' decisions are keyed by ``(source, content_id)`` in the review store, so a
decision made on the live item carries over to the pipeline's row. A later webhook for the same
post (``post_edited``) replaces its live row; an edit that clears the flag deletes it.

Tables (own :class:`sqlalchemy.MetaData` on the review store's engine, created idempotently):
``live_queue_items`` (``source``, ``content_id`` primary key; ``content_hash``, ``model_id``,
``received_at``, ``row_json``) and ``webhook_deliveries`` (``instance``, ``event_id`` primary
key; ``event``, ``received_at``): the replay guard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

metadata = sa.MetaData()

live_queue_items = sa.Table(
    "live_queue_items", metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("content_id", sa.String(200), primary_key=True),
    sa.Column("content_hash", sa.String(128), nullable=False),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("row_json", sa.Text, nullable=False),
)  # fmt: skip

webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("instance", sa.String(300), primary_key=True),
    sa.Column("event_id", sa.String(100), primary_key=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
)  # fmt: skip

DATETIME_COLUMNS = ("created_at", "first_reported_at", "last_decided_at")


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class LiveQueue:
    """Live queue items and webhook deliveries in the review store's database.

    Args:
        engine: the review store's engine (``ReviewStore(url).engine``).
        create: create the tables if missing (the API does; readers pass False and see an empty
            queue when the API never ran).
    """

    def __init__(self, engine: sa.Engine, *, create: bool = True) -> None:
        self.engine = engine
        if create:
            metadata.create_all(engine, checkfirst=True)

    def seen(self, instance: str, event_id: str) -> bool:
        """Whether this delivery was already processed."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(webhook_deliveries.c.event_id).where(
                    webhook_deliveries.c.instance == instance, webhook_deliveries.c.event_id == event_id
                )
            ).first()
        return row is not None

    def record(self, instance: str, event_id: str, event: str, source: str, content_id: str,
               row: Mapping[str, Any] | None) -> bool:  # fmt: skip
        """Record a delivery and, in the same transaction, put ``row`` in the live queue (replacing
        the post's previous live row) or, when ``row`` is None, remove the post's live row.

        Returns:
            False when the delivery was already recorded (a replay; nothing written), else True.
        """
        now = datetime.now(UTC).replace(tzinfo=None)
        key = (live_queue_items.c.source == source) & (live_queue_items.c.content_id == content_id)
        try:
            with self.engine.begin() as conn:
                conn.execute(webhook_deliveries.insert().values(instance=instance, event_id=event_id, event=event,
                                                                received_at=now))  # fmt: skip
                conn.execute(live_queue_items.delete().where(key))
                if row is not None:
                    conn.execute(live_queue_items.insert().values(
                        source=source, content_id=content_id, content_hash=row["content_hash"], model_id=row["model_id"],
                        received_at=now, row_json=json.dumps(dict(row), default=_json_default),
                    ))  # fmt: skip
        except sa.exc.IntegrityError:
            return False
        return True

    def rows(self, source: str | None = None) -> list[dict[str, Any]]:
        """The live rows (dicts with the mart's columns) of ``source`` (None: every source)."""
        if not sa.inspect(self.engine).has_table(live_queue_items.name):
            return []
        query = sa.select(live_queue_items.c.row_json).order_by(live_queue_items.c.received_at)
        if source is not None:
            query = query.where(live_queue_items.c.source == source)
        with self.engine.connect() as conn:
            out = [json.loads(r) for r in conn.execute(query).scalars()]
        for row in out:
            for col in DATETIME_COLUMNS:
                if isinstance(row.get(col), str):
                    row[col] = datetime.fromisoformat(row[col])
        return out

    def erase(self, source: str, content_ids: list[str]) -> int:
        """Delete the live rows of these items (privacy erasure); returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(
                live_queue_items.delete().where(live_queue_items.c.source == source,
                                                live_queue_items.c.content_id.in_(content_ids))
            ).rowcount  # fmt: skip


def merge_live(items: pl.DataFrame, live: list[dict[str, Any]], scored: pl.DataFrame | None) -> pl.DataFrame:
    """The snapshot's queue rows plus the live rows not yet superseded, ranked like the mart.

    Args:
        items: ``marts.moderation_queue`` rows (any subset of its columns; ``source``,
            ``content_id``, ``severity``, ``created_at`` and ``priority`` required).
        live: :meth:`LiveQueue.rows`.
        scored: ``(content_hash, model_id)`` pairs the snapshot has scored (``moderation.scores``);
            None when unknown.

    Returns:
        ``items`` unchanged when no live row survives; else the union with the schema of
        ``items`` (columns a live row lacks are null) and ``priority`` recomputed over it as the
        mart ranks: ``row_number() over (order by priority_score desc, created_at asc, source,
        content_id)`` (rows without a ``priority_score``, written before it existed, rank by
        ``severity`` in its place).
    """
    if not live:
        return items
    frame = pl.DataFrame(
        [{c: r.get(c) for c in items.columns} for r in live], schema=items.schema, strict=False
    )  # fmt: skip
    frame = frame.join(items.select("source", "content_id"), on=["source", "content_id"], how="anti")
    if scored is not None and scored.height:
        pairs = pl.DataFrame(
            {"content_hash": [str(r["content_hash"]) for r in live], "model_id": [str(r["model_id"]) for r in live]}
        ).join(scored.select("content_hash", "model_id"), on=["content_hash", "model_id"], how="semi")
        frame = frame.join(pairs, on=["content_hash", "model_id"], how="anti")
    if frame.is_empty():
        return items
    merged = pl.concat([items, frame], how="vertical")
    rank = pl.col("priority_score") if "priority_score" in merged.columns else pl.lit(None, dtype=pl.Float64)
    return (
        merged.with_columns(_rank=rank.fill_null(pl.col("severity")))
        .sort(["_rank", "created_at", "source", "content_id"], descending=[True, False, False, False], nulls_last=True)
        .drop("_rank")
        .with_columns(priority=pl.int_range(1, merged.height + 1, dtype=items.schema["priority"]))
    )
