"""Engagement-event export connector: files of events a platform's event pipeline drops → one :class:`EventExtract`.

High-volume signals (page views, likes, reactions, community reports) usually arrive as
files, not through the platform's database. This connector reads a folder, a glob or one file
of such exports and maps them to the canonical ``engagement_events`` stream.

Files
    ``*.jsonl``, ``*.ndjson`` (JSON Lines: one JSON object per line; blank lines ignored),
    the same gzip-compressed (``*.jsonl.gz``, ``*.ndjson.gz``), and ``*.parquet``. A folder is
    searched recursively (partitioned layouts such as ``day=2016-01-02/part-0.parquet`` work);
    names starting with ``.`` or ``_`` (in-progress files, ``_SUCCESS`` markers) and other
    suffixes are ignored. Files are read in arrival order (modification time, then path).

Fields (one event per line / row)
    * ``event_id`` (required; string or integer): the natural key with ``source``. Events are
      de-duplicated by it: inside a batch the last one in arrival order wins (the earlier
      copies are counted under the skip rule ``duplicate event_id in batch``); across runs the
      upsert by ``(source, event_id)`` keeps one row (a changed copy updates it). Export ids
      share the namespace of the source's other events, so a platform should use ids of its
      own (e.g. UUIDs) that never repeat a connector's vote ids.
    * ``event_type`` (required): one of :data:`EVENT_TYPES` (lower-cased on read).
    * ``content_id`` (required; string or integer): the item the event is about, in the
      content source's own ids (e.g. ``p123`` for a Stack Exchange post).
    * ``user_id`` (optional; string or integer; null for anonymous views).
    * ``occurred_at`` (required): ISO 8601 with a UTC offset or ``Z``
      (``2016-01-02T03:04:05.123Z``, ``2016-01-02 05:04:05+02:00``; more than six fraction
      digits are truncated to microseconds) → naive UTC, ``time_precision = "exact"``; a bare
      date ``2016-01-02`` → midnight UTC, ``time_precision = "day"``; an integer or float →
      epoch **milliseconds**; in Parquet, a timestamp column (naive ones are taken as UTC) or
      a date column. An ISO date-time without an offset is ambiguous and quarantined.
    * ``properties`` (optional): a JSON object (in Parquet a struct, or a string holding a
      JSON object); every other field of the record is merged into it (``properties`` wins on
      a clash) and keys with null values are dropped. Stored as JSON text with sorted keys in
      the canonical ``properties`` column (null when empty).
    * A community report (``event_type = "report"``) must carry ``properties.flag_type`` in
      :data:`FLAG_TYPES` (Discourse's post-action flag types) and may carry ``message``.

Source name
    ``source`` (``--source-name``) sets the canonical ``source`` of every event. An export
    belongs to a platform whose content comes from another connector (``stackexchange:beer``,
    ``discourse:forum``): give that connector's source name so the events join its content.
    The default, ``events:<folder name>``, is a source of its own with no content, so its
    events would all be quarantined as dangling references by *validate*.

Files are loaded once (``ops.loaded_files``, migration 006)
    ``loaded_files`` maps the sha256 of every file already loaded for this source to its
    ledger row. A file whose sha256 is there, or repeats an earlier file of this batch, is not
    parsed: its rows count as read and skipped under the rule ``file already loaded`` (the
    ledger's ``rows_read``), and the log names the file and the copy it repeats, so a file
    re-delivered under another name is loaded once. A file found at the same path with the
    same size and modification time as a ledger row is recognised without re-hashing. A file
    that changed (an export appended to) has a new hash: it is read again and its events
    already loaded come out ``unchanged``. The extract only *lists* the files
    (:attr:`EventExtract.files`); landing stages them (:meth:`EventExtract.stage_bookkeeping`)
    and they enter the ledger in the load transaction
    (:func:`warehouse.watermarks.record_loaded_files`), so a run that fails records nothing and
    its retry loads them.

Data interval
    An event-export run's interval is about which *files arrived*, not when events occurred:
    files modified at or after ``until`` are left for a later run; ``since`` is not used, so
    a file that arrived earlier but was never loaded (a late file) is loaded now. Every event
    keeps its own ``occurred_at`` and lands on its own day in the marts, which are rebuilt in
    full every run (:mod:`transforms.runner`), so the days a late file touches are updated
    and no other day changes.

Bounded memory
    JSON Lines files are read one line at a time (gzip decompressed as a stream), every line
    with a bounded ``readline``; Parquet files one record batch at a time
    (``pyarrow.parquet.ParquetFile.iter_batches``). No file is ever held whole, decompressed or
    not, and a line longer than the cap is skipped to its newline in bounded chunks. Bad
    records are counted per reason and their payloads kept for the first few per reason and
    file only (:class:`~warehouse.canonical.QuarantineLog`), so a decompression bomb of
    millions of junk lines costs counters, not memory (``bench:loader_memory``). Valid events
    are held as Python objects ``PULSE_EVENT_BATCH_ROWS`` (default :data:`BATCH_ROWS`) at a
    time: each full batch is written as a columnar Parquet part to a private temporary folder
    (``TMPDIR``, mode 0700, removed with the extract), and at the end an in-process DuckDB
    limited to :data:`DEDUP_MEMORY` de-duplicates them (the same last-wins rule, counted per
    file). Up to ``PULSE_EVENT_BATCH_ROWS`` surviving events come back as the extract's frame;
    more are handed to the landing as one Parquet file (:class:`~warehouse.canonical.Spill`),
    which DuckDB inserts, so the connector's memory does not grow with the number of events.

Quarantine reasons (payload = the raw line, or the Parquet row as JSON; detail starts with
``<file> line N`` / ``<file> row N``)
    ``oversized_line`` (a line over ``PULSE_EVENT_MAX_LINE_BYTES``, default
    :data:`MAX_LINE_BYTES`; its first 200 bytes kept),
    ``invalid_utf8``, ``bad_json`` (not JSON, or JSON but not an object), ``missing_id``
    (``event_id`` absent, empty, not a string/integer, or over 256 characters),
    ``unknown_event_type``, ``missing_content_id``, ``bad_user_id`` (not a string/integer),
    ``bad_timestamp``, ``future_timestamp`` (later than ``now``), ``bad_properties``
    (``properties`` not an object), ``bad_flag_type`` (a report without a valid
    ``flag_type``), ``unreadable_file`` (a Parquet file that does not open, or a gzip file
    that does not decompress: one record for the file, which is still recorded as loaded so a
    corrected export, having another hash, is read). *Validate* then quarantines events whose
    content is missing from the warehouse and the batch (``dangling_reference``) or was itself
    quarantined (``parent_quarantined``), and events dated before the timestamp floor or more
    than a day before their content (``implausible_timestamp``; :mod:`warehouse.load`).
"""

from __future__ import annotations

import functools
import glob
import gzip
import hashlib
import io
import itertools
import json
import logging
import math
import re
import shutil
import tempfile
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.canonical import SCHEMAS, STREAMS, Extract, QuarantineLog, Spill, StreamCounts, conform, env_int
from warehouse.db import frame, one

__all__ = [
    "DUPLICATE_EVENT_RULE",
    "EVENT_TYPES",
    "FILES_SCHEMA",
    "FILE_ALREADY_LOADED_RULE",
    "FLAG_TYPES",
    "MAX_LINE_BYTES",
    "SUFFIXES",
    "EventExtract",
    "LoadedFile",
    "event_source_name",
    "extract_events",
    "find_event_files",
    "loaded_files",
    "parse_occurred_at",
]

log = logging.getLogger(__name__)

#: Accepted event types. Stack Exchange's votes (upvote, downvote, favorite, accept) plus what
#: forum and social platforms export: Discourse likes, bookmarks and flags (``report``), page
#: views, emoji reactions, shares.
EVENT_TYPES: frozenset[str] = frozenset(
    {"accept", "bookmark", "downvote", "favorite", "like", "reaction", "report", "share", "upvote", "view"}
)
#: ``properties.flag_type`` of a community report (Discourse post_actions flag types).
FLAG_TYPES: frozenset[str] = frozenset({"spam", "inappropriate", "off_topic", "notify_moderators", "illegal"})
#: File name endings read, and their format.
SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl.gz",
    ".ndjson.gz": "jsonl.gz",
    ".parquet": "parquet",
}
#: Longest JSON line accepted by default, in bytes (``PULSE_EVENT_MAX_LINE_BYTES`` overrides): an
#: event is a few hundred bytes; a longer line is corrupt or hostile and is quarantined as
#: ``oversized_line`` without being held in memory.
MAX_LINE_BYTES = 1024 * 1024
#: Parquet rows decoded at a time.
PARQUET_BATCH_ROWS = 16_384
#: Default of ``PULSE_EVENT_BATCH_ROWS``: valid events held as Python objects before they are
#: written out as one columnar batch (a few tens of MiB); also the most events an extract hands
#: over as a frame (more go to the landing as a Parquet file, :class:`~warehouse.canonical.Spill`).
BATCH_ROWS = 100_000
#: Memory the in-process DuckDB that de-duplicates the batches may use before it spills to disk.
DEDUP_MEMORY = "256MB"
#: Longest event_id, content_id or user_id accepted, in characters.
MAX_ID_CHARS = 256

FILE_ALREADY_LOADED_RULE = "file already loaded"
DUPLICATE_EVENT_RULE = "duplicate event_id in batch"

#: Columns of :attr:`EventExtract.files` (and of ``raw.event_files`` without ``run_id``).
FILES_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "sha256": pl.String(),
    "path": pl.String(),
    "size_bytes": pl.Int64(),
    "mtime": pl.Datetime("us"),  # naive UTC
    "format": pl.String(),  # jsonl | jsonl.gz | parquet
    "rows_read": pl.Int64(),
    "rows_emitted": pl.Int64(),  # passed on to be loaded
    "rows_skipped": pl.Int64(),  # duplicate event_id in batch (a later copy won)
    "rows_quarantined": pl.Int64(),  # by this connector
}
_FILE_EVENTS_SCHEMA: dict[str, pl.DataType] = {"source": pl.String(), "sha256": pl.String(), "event_id": pl.String()}
#: Columns of a mapped event row (:func:`_map_record`), in order.
_ROW_COLUMNS = ("event_id", "event_type", "content_id", "user_id", "occurred_at", "time_precision", "properties")
#: A batch of valid events in :class:`_EventSpool`: arrival number, file number, the row.
_SPOOL_SCHEMA = pa.schema(
    [("seq", pa.int64()), ("file_no", pa.int32())]
    + [(c, pa.timestamp("us") if c == "occurred_at" else pa.string()) for c in _ROW_COLUMNS]
)

#: Deterministic JSON for ``properties`` (sorted keys), so a re-read event compares unchanged.
_PROPERTIES_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
_KNOWN_FIELDS = frozenset({"event_id", "event_type", "content_id", "user_id", "occurred_at", "properties"})
_DECODER = json.JSONDecoder()
_scan_once = _DECODER.scan_once
_EVENT_TYPES_TEXT = ", ".join(sorted(EVENT_TYPES))
_FLAG_TYPES_TEXT = ", ".join(sorted(FLAG_TYPES))
_GLOB_CHARS = re.compile(r"[*?\[]")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_BOM = b"\xef\xbb\xbf"
_EPOCH = datetime(1970, 1, 1)
#: Epoch values below this many milliseconds (1973-03-03) are taken for seconds and refused.
_MIN_EPOCH_MS = 100_000_000_000


@dataclass(frozen=True)
class LoadedFile:
    """One row of ``ops.loaded_files``: a file already loaded for a source (times naive UTC)."""

    source: str
    sha256: str
    path: str
    size_bytes: int
    mtime: datetime
    rows_read: int
    run_id: str


@dataclass
class EventExtract(Extract):
    """An :class:`~warehouse.canonical.Extract` plus the files it came from.

    Attributes:
        files: one row per file parsed in this batch, :data:`FILES_SCHEMA`; landed into
            ``raw.event_files`` and recorded in ``ops.loaded_files`` by the load.
        file_events: ``source, sha256, event_id`` of every emitted event (which file it came
            from), so the ledger can count per file the events *validate* quarantined; empty
            when the events are spilled (:attr:`spilled`, whose file has a ``sha256`` column).
        skipped_files: files not parsed because their bytes were already loaded:
            ``{"path", "sha256", "same_as", "run_id", "rows"}`` each (``run_id`` None when the
            copy is earlier in this batch).
        late_files: files left for a later run because they arrived at or after ``until``.
    """

    files: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FILES_SCHEMA))
    file_events: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_FILE_EVENTS_SCHEMA))
    skipped_files: list[dict[str, Any]] = field(default_factory=list)
    late_files: list[str] = field(default_factory=list)
    #: Owns the private folder of :attr:`spilled` (removed when the extract is garbage-collected).
    spool: _EventSpool | None = field(default=None, repr=False)

    def stage_bookkeeping(self, con: duckdb.DuckDBPyConnection, run_id: str) -> None:
        """Stage :attr:`files` and :attr:`file_events` in ``raw.event_files`` / ``raw.event_file_events``.

        Called by the landing transaction; replaces what an earlier attempt of ``run_id``
        staged. The load records them in ``ops.loaded_files``
        (:func:`warehouse.watermarks.record_loaded_files`).
        """
        con.execute("delete from raw.event_files where run_id = ?", [run_id])
        con.execute("delete from raw.event_file_events where run_id = ?", [run_id])
        if self.files.height == 0:
            return
        files = self.files.with_columns(pl.lit(run_id).alias("run_id"))  # noqa: F841
        file_events = self.file_events.with_columns(pl.lit(run_id).alias("run_id"))  # noqa: F841
        con.execute("insert into raw.event_files by name select * from files")
        spill = self.spilled.get("engagement_events")
        if spill is None:
            con.execute("insert into raw.event_file_events by name select * from file_events")
        else:  # (no empty insert before it: warehouse.load.land says why)
            con.execute(
                "insert into raw.event_file_events by name "
                "select source, sha256, event_id, ?::varchar as run_id from read_parquet(?)",
                [run_id, str(spill.path)],
            )


class _Bad(Exception):
    """A record that cannot be mapped: its quarantine reason, detail and ``event_id`` if it had a valid one.

    ``detail`` may be a function making it: it is called only for a stored sample
    (:meth:`~warehouse.canonical.QuarantineLog.add`), so a flood of junk formats no text.
    """

    def __init__(self, reason: str, detail: str | Callable[[], str], key: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.key = key


# --------------------------------------------------------------------------------------------
# Finding files


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in sorted(SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return fmt
    return None


def _static_root(path_or_glob: str) -> Path:
    """The part of a glob before its first wildcard component (the folder it searches)."""
    static = list(itertools.takewhile(lambda part: not _GLOB_CHARS.search(part), Path(path_or_glob).parts))
    return Path(*static) if static else Path(".")


def find_event_files(path_or_glob: str | Path) -> list[Path]:
    """The export files named by ``path_or_glob``, sorted by path.

    A folder is searched recursively for :data:`SUFFIXES`; a glob (``*``, ``?``, ``[``;
    ``**`` recurses) keeps its matches with those suffixes; a file is taken as is. Names
    starting with ``.`` or ``_`` are ignored (in-progress files, ``_SUCCESS`` markers).

    Raises:
        FileNotFoundError: the path, or the folder a glob searches, does not exist.
        ValueError: a single file with an unsupported suffix.
    """
    text = str(path_or_glob)
    if _GLOB_CHARS.search(text):
        root = _static_root(text)
        if not root.exists():
            raise FileNotFoundError(f"event export folder not found: {root} (from --path {text!r})")
        candidates = [Path(p) for p in glob.glob(text, recursive=True)]
    else:
        p = Path(text)
        if not p.exists():
            raise FileNotFoundError(f"event export path not found: {p} (a folder, a glob or a file of events)")
        if p.is_file():
            if _format_of(p) is None:
                raise ValueError(f"{p}: unsupported event export format; use one of {', '.join(sorted(SUFFIXES))}")
            return [p]
        candidates = list(p.rglob("*"))
    out = [c for c in candidates if c.is_file() and _format_of(c) is not None and not c.name.startswith((".", "_"))]
    return sorted(out)


def event_source_name(path_or_glob: str | Path, source_name: str | None = None) -> str:
    """The canonical ``source`` of an export: ``source_name`` if given, else ``events:<folder name>``.

    Raises:
        ValueError: ``source_name`` is blank or has whitespace or control characters.
    """
    if source_name is not None:
        name = source_name.strip()
        if not name or re.search(r"[\s\x00-\x1f]", name) or len(name) > 200:
            raise ValueError(
                f"--source-name {source_name!r} is not a source name; give the content source's name, "
                "e.g. stackexchange:beer or discourse:forum"
            )
        return name
    text = str(path_or_glob)
    if _GLOB_CHARS.search(text):
        folder = _static_root(text)
    else:
        p = Path(text)
        folder = p.parent if p.is_file() else p
    label = folder.resolve().name or "events"
    return f"events:{label}"


# --------------------------------------------------------------------------------------------
# Ledger (ops.loaded_files)


def loaded_files(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, LoadedFile]:
    """The files already loaded for ``source``, keyed by sha256 (from ``ops.loaded_files``)."""
    rows = con.execute(
        "select source, sha256, path, size_bytes, mtime, rows_read, run_id from ops.loaded_files where source = ?",
        [source],
    ).fetchall()
    return {r[1]: LoadedFile(*r) for r in rows}


# --------------------------------------------------------------------------------------------
# Field parsing


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


def parse_occurred_at(value: Any) -> tuple[datetime, str]:
    """Parse an event time into ``(naive UTC datetime, time_precision)``.

    Accepts ISO 8601 date-times with an offset or ``Z`` (→ ``exact``), bare ISO dates
    (→ midnight UTC, ``day``), epoch milliseconds as int/float (→ ``exact``), aware or naive
    ``datetime`` objects (naive = UTC; Parquet timestamps) and ``date`` objects (``day``).

    Raises:
        ValueError: anything else, with the fix in the message.
    """
    if value is None or value == "":
        raise ValueError("occurred_at is missing")
    if isinstance(value, bool):
        raise ValueError(f"occurred_at {value!r} is not a time")
    if isinstance(value, datetime):
        return _naive_utc(value), "exact"
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day), "day"
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"occurred_at {value!r} is not a time")
        if abs(value) < _MIN_EPOCH_MS:
            raise ValueError(
                f"occurred_at {value!r} looks like epoch seconds; exports give epoch milliseconds or ISO 8601"
            )
        try:
            return _EPOCH + timedelta(milliseconds=value), "exact"
        except OverflowError:
            raise ValueError(f"occurred_at {value!r} is out of range (epoch milliseconds)") from None
    if isinstance(value, str):
        text = value.strip()
        if _DATE_ONLY.fullmatch(text):
            try:
                d = date.fromisoformat(text)
            except ValueError as exc:
                raise ValueError(f"occurred_at {value!r}: {exc}") from None
            return datetime(d.year, d.month, d.day), "day"
        try:
            ts = datetime.fromisoformat(_FRACTION.sub(r"\1", text))
        except ValueError:
            raise ValueError(f"occurred_at {value!r} is not ISO 8601 (e.g. 2016-01-02T03:04:05Z)") from None
        if ts.tzinfo is None:
            raise ValueError(f"occurred_at {value!r} has no UTC offset; write it with Z or +hh:mm")
        try:
            return _naive_utc(ts), "exact"
        except OverflowError:
            raise ValueError(f"occurred_at {value!r} is out of range") from None
    raise ValueError(f"occurred_at {value!r} is not a time")


def _id(value: Any) -> str | None:
    """A string or integer id as text; None when absent or blank; raises TypeError for other types."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(type(value).__name__)
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS:
        raise TypeError(f"longer than {MAX_ID_CHARS} characters")
    return text or None


def _properties(record: Mapping[str, Any]) -> str | None:
    props: Any = record.get("properties")
    if isinstance(props, str):
        try:
            props = json.loads(props) if props.strip() else None
        except (json.JSONDecodeError, RecursionError):
            raise _Bad("bad_properties", "properties is a string but not a JSON object") from None
    if props is not None and not isinstance(props, dict):
        raise _Bad("bad_properties", f"properties must be an object, not {type(props).__name__}")
    merged = {k: v for k, v in record.items() if k not in _KNOWN_FIELDS}
    merged.update(props or {})
    merged = {str(k): v for k, v in merged.items() if v is not None}
    if not merged:
        return None
    return _PROPERTIES_JSON.encode(merged)


def _map_record(record: Any, where: tuple[str, str, int], now: datetime) -> tuple[Any, ...]:
    """Map one decoded record to a canonical event row; raise :class:`_Bad` when it cannot be.

    ``where`` is ``(file, "line" or "row", number)``; a detail is formatted only when stored.

    Returns:
        ``(event_id, event_type, content_id, user_id, occurred_at, time_precision, properties)``
        (:data:`_ROW_COLUMNS`).
    """
    if not isinstance(record, dict):
        raise _Bad("bad_json", lambda: f"{_at(where)}: a JSON {type(record).__name__}, not an object")
    try:
        event_id = _id(record.get("event_id"))
    except TypeError as exc:
        raise _Bad("missing_id", lambda e=exc: f"{_at(where)}: event_id must be a string or integer ({e})") from None
    if event_id is None:
        raise _Bad("missing_id", lambda: f"{_at(where)}: event_id is missing or empty")
    event_type = record.get("event_type")
    normalized = event_type.strip().lower() if isinstance(event_type, str) else None
    if normalized not in EVENT_TYPES:
        raise _Bad(
            "unknown_event_type",
            lambda: f"{_at(where)}: event_type {event_type!r} is not one of {_EVENT_TYPES_TEXT}",
            event_id,
        )
    try:
        content_id = _id(record.get("content_id"))
    except TypeError as exc:
        raise _Bad(
            "missing_content_id", lambda e=exc: f"{_at(where)}: content_id must be a string or integer ({e})", event_id
        ) from None
    if content_id is None:
        raise _Bad("missing_content_id", lambda: f"{_at(where)}: content_id is missing or empty", event_id)
    try:
        user_id = _id(record.get("user_id"))
    except TypeError as exc:
        raise _Bad(
            "bad_user_id", lambda e=exc: f"{_at(where)}: user_id must be a string, an integer or null ({e})", event_id
        ) from None
    try:
        occurred_at, precision = parse_occurred_at(record.get("occurred_at"))
    except ValueError as exc:
        raise _Bad("bad_timestamp", lambda e=exc: f"{_at(where)}: {e}", event_id) from None
    if occurred_at > now:
        raise _Bad(
            "future_timestamp",
            lambda: (
                f"{_at(where)}: occurred_at {occurred_at:%Y-%m-%dT%H:%M:%S} UTC is after now ({now:%Y-%m-%dT%H:%M:%S})"
            ),
            event_id,
        )
    try:
        properties = _properties(record)
    except _Bad as exc:
        exc.key = event_id
        raise
    if normalized == "report":
        flag_type = json.loads(properties).get("flag_type") if properties else None
        if flag_type not in FLAG_TYPES:
            raise _Bad(
                "bad_flag_type",
                lambda: f"{_at(where)}: a report needs properties.flag_type in {_FLAG_TYPES_TEXT}, got {flag_type!r}",
                event_id,
            )
    return event_id, normalized, content_id, user_id, occurred_at, precision, properties


# --------------------------------------------------------------------------------------------
# Reading files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _mtime(path: Path) -> datetime:
    return _EPOCH + timedelta(microseconds=path.stat().st_mtime_ns // 1000)


def _open(path: Path, fmt: str) -> BinaryIO:
    """The file's bytes, decompressed as a stream for gzip (a C-level buffered reader either way)."""
    if fmt == "jsonl.gz":
        return io.BufferedReader(gzip.GzipFile(path, "rb"), buffer_size=1 << 16)  # type: ignore[arg-type]
    return path.open("rb")


#: What :func:`_json_lines` yields as the record of a line that is not one JSON object (not JSON,
#: or JSON but not an object): quarantined as ``bad_json``, its detail made only for a stored sample.
_NOT_AN_OBJECT = object()


def _loads(text: str, start: int) -> Any:
    """The JSON value of ``text`` (its first non-blank character at ``start``), or :data:`_NOT_AN_OBJECT`.

    ``json.loads`` straight through json's C scanner (half its cost; json's error message is
    made again only for a stored sample): :data:`_NOT_AN_OBJECT` when ``text`` is not one JSON value.

    Raises:
        RecursionError: nesting deeper than the interpreter's recursion limit.
    """
    try:
        value, end = _scan_once(text, start)
    except (StopIteration, json.JSONDecodeError):
        return _NOT_AN_OBJECT
    if end != len(text) and text[end:].strip(" \t\n\r"):
        return _NOT_AN_OBJECT  # extra data after the value
    return value


def _at(where: tuple[str, str, int]) -> str:
    """``<file> line N`` / ``<file> row N``, the start of a detail."""
    return f"{where[0]} {where[1]} {where[2]}"


def _not_an_object_detail(where: tuple[str, str, int], text: str) -> str:
    """The ``bad_json`` detail of a line that is not one JSON object: json's error, or the value's type."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"{_at(where)}: {exc}"
    return f"{_at(where)}: a JSON {type(value).__name__}, not an object"


def _json_lines(
    path: Path, fmt: str, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, str | None, Any, _Bad | None]]:
    """Yield ``(line number, raw text, decoded record, problem)`` for every non-blank line.

    At most ``max_line_bytes + 1`` bytes of a line are held: a longer line is drained to its
    newline in chunks of 1 MiB and yielded as ``oversized_line`` with its first 200 bytes. A
    line that is not one JSON object is yielded with the record :data:`_NOT_AN_OBJECT` (one
    whose first non-blank character is not ``{`` without being parsed).
    """
    name = str(path)
    with _open(path, fmt) as f:
        lineno = 0
        while True:
            line = f.readline(max_line_bytes + 1)
            if not line:
                return
            lineno += 1
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                head, size = line[:200], len(line)
                while True:  # drain the rest of the over-long line in bounded chunks
                    chunk = f.readline(1 << 20)
                    size += len(chunk)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                del line
                raw = head.decode("utf-8", "backslashreplace") + "…"
                yield (
                    lineno,
                    raw,
                    None,
                    _Bad(
                        "oversized_line",
                        f"{name} line {lineno}: {size:,} bytes, longer than {max_line_bytes:,} "
                        "(PULSE_EVENT_MAX_LINE_BYTES)",
                    ),
                )
                continue
            if lineno == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raw = line.decode("utf-8", "backslashreplace").rstrip("\r\n")
                yield lineno, raw, None, _Bad("invalid_utf8", f"{name} line {lineno}: {exc}")
                continue
            text = text.rstrip("\r\n")
            stripped = text.lstrip()
            if not stripped:
                continue
            if stripped[0] != "{":
                yield lineno, text, _NOT_AN_OBJECT, None
                continue
            try:
                record = _loads(text, len(text) - len(stripped))
            except RecursionError as exc:
                yield lineno, text, None, _Bad("bad_json", f"{name} line {lineno}: {exc}")
                continue
            yield lineno, text, record, None


def _parquet_rows(path: Path) -> Iterator[tuple[int, str | None, Any, _Bad | None]]:
    """Yield ``(row number, None, row as a dict, None)``, one record batch decoded at a time."""
    i = 0
    with pq.ParquetFile(path) as f:
        for batch in f.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in pl.from_arrow(batch).iter_rows(named=True):  # type: ignore[union-attr]
                i += 1
                yield i, None, row, None


@dataclass
class _FileTally:
    read: int = 0
    quarantined: int = 0
    skipped: int = 0
    emitted: int = 0


class _EventSpool:
    """The valid events of one extract in bounded memory (module docstring, "Bounded memory").

    :meth:`add` appends a mapped row; every ``batch_rows`` rows become one Arrow table written
    as a Parquet part into a private temporary folder (``tempfile.mkdtemp``: mode 0700; removed
    when the spool, which the extract keeps, is garbage-collected). :meth:`finish` de-duplicates them all in an in-memory DuckDB limited to
    :data:`DEDUP_MEMORY` (it spills to the same folder beyond it): per ``event_id`` the last
    copy in arrival order wins, as :data:`DUPLICATE_EVENT_RULE` says.
    """

    def __init__(self, batch_rows: int) -> None:
        self.batch_rows = batch_rows
        self.rows: list[tuple[Any, ...]] = []
        self.parts: list[Path] = []
        self.added = 0
        self.tmp: Path | None = None

    def add(self, file_no: int, row: tuple[Any, ...]) -> None:
        """Append ``row`` (:func:`_map_record`'s) read from file number ``file_no``; write a batch when full."""
        self.rows.append((self.added, file_no, *row))
        self.added += 1
        if len(self.rows) >= self.batch_rows:
            self._write_batch()

    def _folder(self) -> Path:
        if self.tmp is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="pulse-events-"))
            weakref.finalize(self, shutil.rmtree, self.tmp, True)
        return self.tmp

    def _batch(self) -> pa.Table:
        columns = list(zip(*self.rows, strict=True)) if self.rows else [()] * len(_SPOOL_SCHEMA)
        return pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(columns, _SPOOL_SCHEMA, strict=True)], schema=_SPOOL_SCHEMA
        )

    def _write_batch(self) -> None:
        part = self._folder() / f"part-{len(self.parts):05d}.parquet"
        try:
            pq.write_table(self._batch(), part)
        except (OSError, pa.ArrowException) as exc:  # not the input file's fault: stop the extract
            raise RuntimeError(f"could not write a batch of valid events to {part}: {exc}") from exc
        self.parts.append(part)
        self.rows = []

    def finish(self, source: str, shas: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, Spill | None, dict[int, int]]:
        """De-duplicate the spooled events.

        Args:
            source: the canonical source of every event.
            shas: the sha256 of each file number passed to :meth:`add`.

        Returns:
            ``(events, file_events, spill, losers)``: the surviving events in arrival order as a
            frame (:data:`~warehouse.canonical.SCHEMAS` ``["engagement_events"]``) and their
            ``source, sha256, event_id`` when at most ``batch_rows`` survive; otherwise both
            frames are empty and ``spill`` holds them on disk (canonical columns plus ``sha256``);
            ``losers`` counts per file number the copies a later one replaced.
        """
        con = duckdb.connect(
            ":memory:", config={"memory_limit": DEDUP_MEMORY, "preserve_insertion_order": False, "threads": 2}
        )
        try:
            if self.parts:
                self._write_batch()  # the rest, so every row is on disk
                con.execute(f"set temp_directory = {_sql_text(str(self._folder() / 'duckdb'))}")
                files = ", ".join(_sql_text(str(p)) for p in self.parts)
                con.execute(f"create view spool as select * from read_parquet([{files}])")
            else:
                con.register("spool", self._batch())
                self.rows = []
            files_frame = pl.DataFrame(
                {"file_no": list(range(len(shas))), "sha256": shas, "source": [source] * len(shas)},
                schema={"file_no": pl.Int32(), "sha256": pl.String(), "source": pl.String()},
            )
            con.register("files", files_frame)
            con.execute("create temp table keep as select max(seq) as seq from spool group by event_id")
            losers = dict(
                con.execute(
                    "select file_no, count(*) from spool anti join keep using (seq) group by file_no"
                ).fetchall()
            )
            (kept,) = one(con, "select count(*) from keep")
            select = (
                "select f.source, s.* exclude (seq, file_no), f.sha256 "
                "from spool s semi join keep using (seq) join files f using (file_no)"
            )
            if kept <= self.batch_rows:
                both = frame(con, f"{select} order by s.seq")
                events = conform(both, "engagement_events")
                return events, both.select(_FILE_EVENTS_SCHEMA.keys()).cast(_FILE_EVENTS_SCHEMA), None, losers  # type: ignore[arg-type]
            path = self._folder() / "events.parquet"
            con.execute(f"copy ({select}) to {_sql_text(str(path))} (format parquet)")
        finally:
            con.close()
        for part in self.parts:
            part.unlink()
        self.parts = []
        empty = pl.DataFrame(schema=SCHEMAS["engagement_events"])
        return empty, pl.DataFrame(schema=_FILE_EVENTS_SCHEMA), Spill(path, kept), losers


def _sql_text(text: str) -> str:
    """``text`` as a SQL string literal (for statements that take no bound parameters: COPY, views)."""
    return "'" + text.replace("'", "''") + "'"


def extract_events(
    path_or_glob: str | Path,
    *,
    source: str | None = None,
    loaded_files: Mapping[str, LoadedFile] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime,
    max_line_bytes: int | None = None,
) -> EventExtract:
    """Read engagement-event export files into an :class:`EventExtract` (see the module docstring).

    Args:
        path_or_glob: a folder (searched recursively), a glob or one file.
        source: the canonical source name (``--source-name``); default ``events:<folder name>``.
        loaded_files: the ledger of files already loaded for this source, keyed by sha256
            (:func:`loaded_files`); those files are skipped.
        since: unused for selection (a file that arrived before the interval and was never
            loaded is still loaded); kept on the extract as the run's interval start.
        until: files modified at or after it (naive UTC) are left for a later run.
        now: naive UTC; events after it are quarantined as ``future_timestamp``.
        max_line_bytes: longest JSON line read; default ``PULSE_EVENT_MAX_LINE_BYTES`` or
            :data:`MAX_LINE_BYTES`.

    Returns:
        The extract: ``engagement_events`` (users and content empty), the quarantine, counts
        that reconcile (``read = emitted + skipped + quarantined``) and the file list.

    Raises:
        FileNotFoundError: the path (or a glob's folder) does not exist.
        ValueError: a bad ``source`` name, a single file of an unsupported format or a bad
            ``PULSE_EVENT_MAX_LINE_BYTES`` / quarantine setting.
    """
    source = event_source_name(path_or_glob, source)
    if max_line_bytes is None:
        max_line_bytes = env_int("PULSE_EVENT_MAX_LINE_BYTES", MAX_LINE_BYTES, 256)
    ledger = dict(loaded_files or {})
    by_path = {(lf.path, lf.size_bytes, lf.mtime): lf for lf in ledger.values()}
    counts = {s: StreamCounts() for s in STREAMS}
    ec = counts["engagement_events"]
    qlog = QuarantineLog(source)
    spool = _EventSpool(env_int("PULSE_EVENT_BATCH_ROWS", BATCH_ROWS, 1))
    tallies: dict[str, _FileTally] = {}
    shas: list[str] = []  # file number -> sha256 of the files parsed
    file_rows: list[dict[str, Any]] = []
    seen_in_batch: dict[str, tuple[str, int]] = {}  # sha256 -> (path, rows read)
    skipped_files: list[dict[str, Any]] = []
    late_files: list[str] = []

    arrivals = sorted(((_mtime(p), p) for p in find_event_files(path_or_glob)), key=lambda t: (t[0], str(t[1])))
    for mtime, path in arrivals:
        if until is not None and mtime >= until:
            late_files.append(str(path))
            log.info(
                "event file %s arrived at %s, not before the interval end %s: left for a later run", path, mtime, until
            )
            continue
        size = path.stat().st_size
        known = by_path.get((str(path), size, mtime))
        sha = known.sha256 if known is not None else _sha256(path)
        previous = ledger.get(sha)
        if previous is not None or sha in seen_in_batch:
            same_as, rows = (previous.path, previous.rows_read) if previous is not None else seen_in_batch[sha]
            ec.read += rows
            ec.skip(FILE_ALREADY_LOADED_RULE, rows)
            skipped_files.append(
                {
                    "path": str(path),
                    "sha256": sha,
                    "same_as": same_as,
                    "run_id": previous.run_id if previous is not None else None,
                    "rows": rows,
                }
            )
            log.info("event file %s skipped: already loaded (same bytes as %s, %d rows)", path, same_as, rows)
            continue
        fmt = _format_of(path) or "jsonl"
        tally = tallies[sha] = _FileTally()
        file_no = len(shas)
        shas.append(sha)
        name = qlog.scope = str(path)  # payload samples are capped per reason and file
        unit = "row" if fmt == "parquet" else "line"
        try:
            records = _parquet_rows(path) if fmt == "parquet" else _json_lines(path, fmt, max_line_bytes)
            for lineno, raw, record, bad in records:
                tally.read += 1
                if bad is None and record is not _NOT_AN_OBJECT:
                    try:
                        row = _map_record(record, (name, unit, lineno), now)
                    except _Bad as exc:
                        bad = exc
                    else:
                        spool.add(file_no, row)  # duplicates are resolved at the end (last wins)
                        continue
                tally.quarantined += 1
                # Details and payloads are made only for the stored sample (the first few per
                # reason and file), so a flood of junk lines costs a counter each.
                if bad is None:
                    reason, key = "bad_json", None
                    detail: Any = functools.partial(_not_an_object_detail, (name, "line", lineno), raw)
                else:
                    reason, key, detail = bad.reason, bad.key, bad.detail
                qlog.add("engagement_events", key, reason, detail, raw if raw is not None else record)
        except (OSError, EOFError, zlib.error, pl.exceptions.PolarsError, pa.ArrowException) as exc:
            # Unreadable file (corrupt Parquet, broken gzip): one quarantine record for the file.
            # Rows already taken from a broken gzip stand (they were read and are valid).
            tally.read += 1
            tally.quarantined += 1
            qlog.add(
                "engagement_events",
                None,
                "unreadable_file",
                f"{path}: {type(exc).__name__}: {exc}"[:2000],
                json.dumps({"path": str(path), "sha256": sha, "size_bytes": size}),
            )
            log.warning("event file %s is unreadable: %s", path, exc)
        ec.read += tally.read
        ec.quarantined += tally.quarantined
        seen_in_batch[sha] = (str(path), tally.read)
        file_rows.append(
            {"source": source, "sha256": sha, "path": str(path), "size_bytes": size, "mtime": mtime, "format": fmt}
        )

    events, file_events, spill, losers = spool.finish(source, shas)
    for file_no, n in losers.items():
        tallies[shas[file_no]].skipped += n
        ec.skip(DUPLICATE_EVENT_RULE, n)
    ec.emitted = events.height + (spill.rows if spill is not None else 0)
    for tally in tallies.values():
        tally.emitted = tally.read - tally.quarantined - tally.skipped
    files = pl.DataFrame(
        [
            {
                **f,
                "rows_read": tallies[f["sha256"]].read,
                "rows_emitted": tallies[f["sha256"]].emitted,
                "rows_skipped": tallies[f["sha256"]].skipped,
                "rows_quarantined": tallies[f["sha256"]].quarantined,
            }
            for f in file_rows
        ],
        schema=FILES_SCHEMA,
    )
    empty = {s: pl.DataFrame(schema=SCHEMAS[s]) for s in ("users", "content")}
    log.info(
        "event exports %s: %d files read, %d already loaded, %d left for later; %d events, %d quarantined",
        path_or_glob,
        files.height,
        len(skipped_files),
        len(late_files),
        ec.emitted,
        ec.quarantined,
    )
    return EventExtract(
        source=source,
        users=empty["users"],
        content=empty["content"],
        engagement_events=events,
        quarantine=qlog.frame(),
        quarantine_counts=qlog.counts_frame(),
        counts=counts,
        since=since,
        until=until,
        files=files,
        file_events=file_events,
        skipped_files=skipped_files,
        late_files=late_files,
        spilled={"engagement_events": spill} if spill is not None else {},
        spool=spool if spill is not None else None,
    )
