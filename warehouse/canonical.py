"""The canonical data model every source maps to (docs/ARCHITECTURE.md, "Canonical model").

A source connector returns an :class:`Extract`: three polars frames with exactly the schemas
below, the records it had to quarantine, and per-stream counts that reconcile
(``read = emitted + skipped + quarantined``). Ids are the source's own ids as strings; the
``source`` column namespaces them, so two communities can share one warehouse.
All timestamps are naive ``Datetime("us")`` holding UTC.

Quarantine in bounded memory
    A connector records bad records in a :class:`QuarantineLog`, which *counts* every record
    per (stream, reason) but *stores* the raw payload of only the first
    ``PULSE_QUARANTINE_SAMPLE_PER_REASON`` (default 100) per reason and file (the log's
    ``scope``: a file or a query), each cut to ``PULSE_QUARANTINE_PAYLOAD_BYTES`` (default
    64 KiB) with :data:`TRUNCATION_MARKER`, and at most :data:`MAX_STORED_BYTES` of payloads per
    extract; the rest is counted, not stored. So a file of millions of junk lines (a
    decompression bomb) costs a few counters, not millions of rows. The extract carries both
    (:attr:`Extract.quarantine`: the stored samples; :attr:`Extract.quarantine_counts`: the
    counts); the loader writes the counts to ``raw.quarantine_counts`` (per run) and the
    samples to ``raw.quarantine``, and the quarantine gate and the reconciliation use the counts.

Rows on disk (:class:`Spill`)
    A stream with more rows than a connector may hold (the event-export connector's valid
    events: ``PULSE_EVENT_BATCH_ROWS``) is handed over as a Parquet file with the stream's
    canonical columns in :attr:`Extract.spilled` instead of in its frame (which then holds
    none of them); :func:`warehouse.load.land` inserts it with DuckDB's ``read_parquet``, so no
    Python object ever holds the batch. :meth:`Extract.height` counts both.

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
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
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


#: Columns of :attr:`Extract.quarantine_counts` (``raw.quarantine_counts`` without ``run_id``):
#: ``records`` quarantined per (source, stream, reason), of which ``stored`` have a payload
#: in :attr:`Extract.quarantine`.
QUARANTINE_COUNTS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "stream": pl.String(),
    "reason": pl.String(),
    "records": pl.Int64(),
    "stored": pl.Int64(),
}
#: Default of ``PULSE_QUARANTINE_SAMPLE_PER_REASON``: payloads stored per reason and file.
DEFAULT_SAMPLE_PER_REASON = 100
#: Default of ``PULSE_QUARANTINE_PAYLOAD_BYTES``: longest stored payload, UTF-8 bytes (64 KiB).
DEFAULT_PAYLOAD_BYTES = 64 * 1024
#: Payload bytes one extract stores at most (256 MiB): beyond it records are counted only,
#: so many files with many reasons each cannot add up to unbounded memory.
MAX_STORED_BYTES = 256 * 1024 * 1024
#: Appended to a payload cut to the byte cap; ``{n}`` is the payload's full length in bytes.
TRUNCATION_MARKER = "…[truncated: {n:,} bytes in all]"


def env_int(name: str, default: int, minimum: int) -> int:
    """The integer environment variable ``name`` (``default`` when unset).

    Raises:
        ValueError: set but not an integer >= ``minimum`` (the message names the variable).
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


def cap_payload(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes plus :data:`TRUNCATION_MARKER` when longer.

    A character split by the cut is dropped whole; surrogates (from backslash-free decoding of
    bad bytes) are kept as ``surrogatepass`` does.
    """
    if len(text) * 4 <= max_bytes:  # fast path: cannot exceed the cap whatever the characters
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    head = data[:max_bytes].decode("utf-8", "ignore")
    return head + TRUNCATION_MARKER.format(n=len(data))


class QuarantineLog:
    """Counts quarantined records and keeps a bounded sample of their payloads during an extract.

    Every :meth:`add` counts the record under (stream, reason). Its payload is stored only
    while fewer than ``sample_per_reason`` records of that stream and reason were stored for
    the current :attr:`scope` (a connector sets it to the file or query it reads) and the
    extract's stored payloads stay under :data:`MAX_STORED_BYTES`; a stored payload is cut to
    ``payload_bytes`` (:func:`cap_payload`). Memory is therefore bounded by the number of
    scopes and reasons, never by the number of bad records.

    Args:
        source: the extract's source name.
        sample_per_reason: payloads stored per (scope, stream, reason); default
            ``PULSE_QUARANTINE_SAMPLE_PER_REASON`` or :data:`DEFAULT_SAMPLE_PER_REASON`.
        payload_bytes: byte cap of one payload; default ``PULSE_QUARANTINE_PAYLOAD_BYTES`` or
            :data:`DEFAULT_PAYLOAD_BYTES`.

    Raises:
        ValueError: an environment setting is not an integer (payload cap: at least 256).
    """

    def __init__(self, source: str, *, sample_per_reason: int | None = None, payload_bytes: int | None = None) -> None:
        self.source = source
        self.sample_per_reason = (
            env_int("PULSE_QUARANTINE_SAMPLE_PER_REASON", DEFAULT_SAMPLE_PER_REASON, 0)
            if sample_per_reason is None
            else sample_per_reason
        )
        self.payload_bytes = (
            env_int("PULSE_QUARANTINE_PAYLOAD_BYTES", DEFAULT_PAYLOAD_BYTES, 256)
            if payload_bytes is None
            else payload_bytes
        )
        self.scope = ""
        self.rows: list[dict[str, Any]] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.stored: dict[tuple[str, str], int] = {}
        self._sampled: dict[tuple[str, str, str], int] = {}
        self._stored_bytes = 0

    def add(
        self, stream: str, record_key: str | None, reason: str, detail: str | Callable[[], str], payload: Any
    ) -> bool:
        """Count one bad record; store its payload if the sample for its scope and reason has room.

        ``payload`` is kept as text (anything else as JSON), converted only when stored;
        ``detail`` may be a function making it, called only when stored.

        Returns:
            True when the payload was stored.
        """
        key = (stream, reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        scoped = (self.scope, stream, reason)
        taken = self._sampled.get(scoped, 0)
        if taken >= self.sample_per_reason or self._stored_bytes >= MAX_STORED_BYTES:
            return False
        self._sampled[scoped] = taken + 1
        if not isinstance(detail, str):
            detail = detail()
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str, ensure_ascii=False)
        stored = cap_payload(text, self.payload_bytes)
        self._stored_bytes += len(stored) + len(detail)
        self.stored[key] = self.stored.get(key, 0) + 1
        self.rows.append(
            {
                "source": self.source,
                "stream": stream,
                "record_key": record_key,
                "reason": reason,
                "detail": detail,
                "payload": stored,
                "fingerprint": fingerprint(text),
            }
        )
        return True

    def frame(self) -> pl.DataFrame:
        """The stored records as a frame with :data:`QUARANTINE_SCHEMA`."""
        return pl.DataFrame(self.rows, schema=QUARANTINE_SCHEMA)

    def counts_frame(self) -> pl.DataFrame:
        """Records per (stream, reason) and how many of them are stored, :data:`QUARANTINE_COUNTS_SCHEMA`."""
        return pl.DataFrame(
            [
                {"source": self.source, "stream": s, "reason": r, "records": n, "stored": self.stored.get((s, r), 0)}
                for (s, r), n in sorted(self.counts.items())
            ],
            schema=QUARANTINE_COUNTS_SCHEMA,
        )


@dataclass(frozen=True)
class Spill:
    """Rows of one stream kept on disk (module docstring, "Rows on disk").

    Attributes:
        path: a Parquet file holding the stream's canonical columns (:data:`SCHEMAS`; extra
            columns are ignored by the landing), one row per record, natural keys unique.
        rows: how many rows it holds.
    """

    path: Path
    rows: int


@dataclass
class Extract:
    """What a connector returns for one data interval.

    Attributes:
        source: namespaced source name, e.g. ``stackexchange:beer`` or ``demo``.
        users, content, engagement_events: frames with :data:`SCHEMAS` exactly.
        quarantine: frame with :data:`QUARANTINE_SCHEMA`: the stored quarantined records
            (all of them, or a bounded sample: module docstring).
        counts: per-stream :class:`StreamCounts`; each must reconcile.
        quarantine_counts: :data:`QUARANTINE_COUNTS_SCHEMA`, every quarantined record counted
            (:meth:`QuarantineLog.counts_frame`); None when ``quarantine`` holds every record
            (then the counts are taken from it). Read it through :meth:`quarantine_summary`.
        synthetic: true for generated data (shown as a banner on every dashboard).
        timezone: the community's IANA timezone, used by the marts.
        since, until: the data interval ``[since, until)`` in UTC, or None for unbounded.
        spilled: per stream, rows handed over on disk besides the frame's (:class:`Spill`).
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
    quarantine_counts: pl.DataFrame | None = None
    spilled: dict[str, Spill] = field(default_factory=dict)

    def frame(self, stream: str) -> pl.DataFrame:
        """The frame for ``stream`` (one of :data:`STREAMS`); rows in :attr:`spilled` are not in it."""
        return getattr(self, stream)

    def height(self, stream: str) -> int:
        """Rows of ``stream`` to land: its frame's plus its :class:`Spill`'s."""
        spill = self.spilled.get(stream)
        return self.frame(stream).height + (spill.rows if spill is not None else 0)

    def quarantine_summary(self) -> pl.DataFrame:
        """Quarantined records per (source, stream, reason), :data:`QUARANTINE_COUNTS_SCHEMA`.

        From :attr:`quarantine_counts`, less the stored records removed from
        :attr:`quarantine` since the extract (records of erased members, which
        :func:`warehouse.privacy.apply_tombstones` moves to a skip rule); without counts, from
        :attr:`quarantine` itself. Its ``records`` per stream add up to ``counts[stream].quarantined``.
        """
        present = self.quarantine.group_by("source", "stream", "reason").agg(pl.len().cast(pl.Int64).alias("now"))
        if self.quarantine_counts is None:
            counted = present.with_columns(pl.col("now").alias("records"), pl.col("now").alias("stored"))
        else:
            counted = self.quarantine_counts.join(present, on=["source", "stream", "reason"], how="left")
        return (
            counted.with_columns(pl.col("now").fill_null(0))
            .select(
                "source",
                "stream",
                "reason",
                (pl.col("records") - pl.col("stored") + pl.col("now")).alias("records"),
                pl.col("now").alias("stored"),
            )
            .filter(pl.col("records") > 0)
            .sort("stream", "reason")
            .cast(QUARANTINE_COUNTS_SCHEMA)  # type: ignore[arg-type]
        )

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
