"""The canonical data model every source maps to (docs/ARCHITECTURE.md, "Canonical model").

A source connector returns an :class:`Extract`: three polars frames with exactly the schemas
below, the records it had to quarantine, and per-stream counts that reconcile
(``read = emitted + skipped + quarantined``). Ids are the source's own ids as strings; the
``source`` column namespaces them, so two communities can share one warehouse.
All timestamps are naive ``Datetime("us")`` holding UTC.

Connector bookkeeping
    Besides rows, a connector may need to remember what it read so that the next run resumes
    after it: the event-export connector the files it parsed (``ops.loaded_files``), the
    PostgreSQL connector how far each mapping query read (``ops.source_watermarks``). The
    contract has two halves, so that the bookkeeping commits with the data or not at all:

    1. *Stage, at landing.* :func:`warehouse.load.land` calls
       :meth:`Extract.stage_bookkeeping` ``(con, run_id)`` inside its transaction. A connector
       whose extract carries bookkeeping overrides it to write that, keyed by ``run_id``, into
       the warehouse's staging tables, replacing what an earlier attempt of the run staged:
       ``raw.event_files`` / ``raw.event_file_events`` (events), ``ops.source_watermarks_pending``
       through :func:`warehouse.watermarks.stage_source_watermarks` (postgres). The default
       stages nothing.
    2. *Commit, at load.* :func:`warehouse.load.upsert_batch` turns whatever is staged for the
       run into the ledgers in the upsert's transaction
       (:func:`warehouse.watermarks.advance_watermarks`,
       :func:`warehouse.watermarks.record_loaded_files`), so a failed load records nothing and
       its retry reads the same data again. The load step may run in another process than the
       extract, so this half reads only the staged rows, never the extract.

    The core modules (``canonical``, ``db``, ``load``, ``watermarks``) know these tables, never
    a connector: import-linter's contract "core does not import connectors" (pyproject.toml)
    forbids any import of ``warehouse.sources`` from them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    import duckdb

STREAMS: tuple[str, ...] = ("users", "content", "engagement_events")

LABELS: tuple[str, ...] = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "threat",
    "insult",
    "identity_attack",
    "sexual_explicit",
)
"""Moderation label names (Detoxify's): the label columns of ``moderation.scores`` and of every
scorer's frame, in this order. Source: Detoxify's ``unbiased`` model card (Jigsaw Unintended Bias)."""

USERS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "user_id": pl.String(),
    "display_name": pl.String(),
    "created_at": pl.Datetime("us"),
    "reputation": pl.Int64(),
}
CONTENT_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "content_id": pl.String(),
    "kind": pl.String(),  # question | answer | comment | post | reply
    "thread_id": pl.String(),
    "parent_id": pl.String(),
    "author_id": pl.String(),
    "created_at": pl.Datetime("us"),
    "edited_at": pl.Datetime("us"),
    "title": pl.String(),
    "body_text": pl.String(),
    "tags": pl.List(pl.String()),
    "score": pl.Int64(),
    "view_count": pl.Int64(),
    "content_hash": pl.String(),
    "deleted_at": pl.Datetime("us"),  # soft delete on the platform (null: live)
    "hidden": pl.Boolean(),  # hidden on the platform (e.g. by community flags); null = false
}
ENGAGEMENT_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "event_id": pl.String(),
    "event_type": pl.String(),  # upvote | downvote | favorite | accept | view | like ...
    "content_id": pl.String(),
    "user_id": pl.String(),
    "occurred_at": pl.Datetime("us"),
    "time_precision": pl.String(),  # exact | day
    "properties": pl.String(),  # optional JSON object, e.g. {"flag_type": "spam"} for a community report
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "stream": pl.String(),
    "record_key": pl.String(),
    "reason": pl.String(),
    "detail": pl.String(),
    "payload": pl.String(),
    "fingerprint": pl.String(),
}
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "users": USERS_SCHEMA,
    "content": CONTENT_SCHEMA,
    "engagement_events": ENGAGEMENT_SCHEMA,
}
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("source", "user_id"),
    "content": ("source", "content_id"),
    "engagement_events": ("source", "event_id"),
}
#: Columns a connector may leave out; :func:`conform` fills them with nulls.
OPTIONAL_COLUMNS: dict[str, frozenset[str]] = {
    "users": frozenset(),
    "content": frozenset({"deleted_at", "hidden"}),
    "engagement_events": frozenset({"properties"}),
}


def core_schema(stream: str) -> dict[str, pl.DataType]:
    """The canonical schema of ``stream`` without its :data:`OPTIONAL_COLUMNS`."""
    return {c: t for c, t in SCHEMAS[stream].items() if c not in OPTIONAL_COLUMNS[stream]}


CONTENT_KINDS = frozenset({"question", "answer", "comment", "post", "reply"})


def content_hash(kind: str, title: str | None, body_text: str | None) -> str:
    """Return the sha256 hex digest of the text that moderation scores.

    A change of title or body (an edit) changes the hash, so the item is scored again; an
    unchanged item keeps its hash and is never re-scored for the same model.
    """
    h = hashlib.sha256()
    for part in (kind, title or "", body_text or ""):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


def scored_text(title: str | None, body_text: str | None) -> str:
    """The text a scorer sees for an item: title and body joined by a blank line."""
    return "\n\n".join(p for p in (title, body_text) if p)


def fingerprint(payload: str) -> str:
    """sha256 hex digest of a raw record's payload: the quarantine's natural key with reason."""
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class StreamCounts:
    """Reconciliation for one stream of one extract.

    ``read`` records were read from the source; each was either emitted (to be loaded),
    ``skipped`` by a documented rule (counted per rule in ``skip_rules``) or quarantined.
    """

    read: int = 0
    emitted: int = 0
    quarantined: int = 0
    skip_rules: dict[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Records left out by a documented rule (sum over ``skip_rules``)."""
        return sum(self.skip_rules.values())

    def skip(self, rule: str, n: int = 1) -> None:
        """Count ``n`` records left out by ``rule`` (a short documented phrase)."""
        self.skip_rules[rule] = self.skip_rules.get(rule, 0) + n

    def reconciles(self) -> bool:
        """True when read = emitted + skipped + quarantined."""
        return self.read == self.emitted + self.skipped + self.quarantined


class QuarantineLog:
    """Collects quarantined records (reason code, detail, raw payload) during an extract."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows: list[dict[str, Any]] = []

    def add(self, stream: str, record_key: str | None, reason: str, detail: str, payload: Any) -> None:
        """Record one bad record. ``payload`` is kept as text (dicts as JSON), never dropped."""
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str, ensure_ascii=False)
        self.rows.append(
            {
                "source": self.source,
                "stream": stream,
                "record_key": record_key,
                "reason": reason,
                "detail": detail,
                "payload": text,
                "fingerprint": fingerprint(text),
            }
        )

    def frame(self) -> pl.DataFrame:
        """The collected records as a frame with :data:`QUARANTINE_SCHEMA`."""
        return pl.DataFrame(self.rows, schema=QUARANTINE_SCHEMA)


@dataclass
class Extract:
    """What a connector returns for one data interval.

    Attributes:
        source: namespaced source name, e.g. ``stackexchange:beer`` or ``demo``.
        users, content, engagement_events: frames with :data:`SCHEMAS` exactly.
        quarantine: frame with :data:`QUARANTINE_SCHEMA`.
        counts: per-stream :class:`StreamCounts`; each must reconcile.
        synthetic: true for generated data (shown as a banner on every dashboard).
        timezone: the community's IANA timezone, used by the marts.
        since, until: the data interval ``[since, until)`` in UTC, or None for unbounded.
    """

    source: str
    users: pl.DataFrame
    content: pl.DataFrame
    engagement_events: pl.DataFrame
    quarantine: pl.DataFrame
    counts: dict[str, StreamCounts]
    synthetic: bool = False
    timezone: str = "UTC"
    since: datetime | None = None
    until: datetime | None = None

    def frame(self, stream: str) -> pl.DataFrame:
        """The frame for ``stream`` (one of :data:`STREAMS`)."""
        return getattr(self, stream)

    def stage_bookkeeping(self, con: duckdb.DuckDBPyConnection, run_id: str) -> None:
        """Stage the connector's bookkeeping for ``run_id`` (module docstring, "Connector bookkeeping").

        Called by :func:`warehouse.load.land` inside the landing transaction; replaces what an
        earlier attempt of ``run_id`` staged. This default stages nothing.
        """


def conform(df: pl.DataFrame, stream: str) -> pl.DataFrame:
    """Cast and order ``df``'s columns to the canonical schema of ``stream``.

    Optional columns (:data:`OPTIONAL_COLUMNS`) missing from ``df`` are added as nulls.

    Raises:
        KeyError: when a required canonical column is missing from ``df``.
    """
    schema = SCHEMAS[stream]
    df = df.with_columns(
        pl.lit(None, dtype=schema[c]).alias(c) for c in OPTIONAL_COLUMNS[stream] if c not in df.columns
    )
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise KeyError(f"{stream} frame lacks canonical columns {missing}")
    return df.select([pl.col(c).cast(t) for c, t in schema.items()])


def in_window(ts: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    """True when ``ts`` lies in the half-open data interval ``[since, until)``; None bounds are open."""
    if ts is None:
        return False
    return (since is None or ts >= since) and (until is None or ts < until)
