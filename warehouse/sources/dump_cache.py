"""Parse cache for Stack Exchange dumps: parse each file once, cut every data interval from Parquet.

A daily backfill over a dump used to parse the whole dump once per day (BENCHMARKS.md, "Findings
and plans": ~6.5 hours for three years at 100x). :func:`cut_interval` parses the dump once with
the connector's own code (:mod:`warehouse.sources.stackexchange`, unbounded interval) while
recording every row's *outcome*: emitted (with its canonical record), skipped (with the rule) or
quarantined (reason, key, detail, full payload), tagged with the row's line and the dates that
decide its interval membership (a post's CreationDate and LastEditDate, a comment's, vote's or
user's CreationDate; none for a row without a usable date). A row's outcome does not depend on
the interval (the connector's docstring, "Data intervals"), so an interval's extract is the
outcomes whose dates fall in it, replayed in file order into fresh counts and a fresh
:class:`~warehouse.canonical.QuarantineLog`: equal, frame for frame and count for count, to the
uncached extract (tests/warehouse/test_dump_cache.py).

Layout: ``<cache dir>/<folder name>-<hash of the folder's path>/``, one Parquet file per dump
file (``Posts.xml.<build>.parquet``, ...) and ``manifest.json``. Each Parquet file has one row
per (row, membership date): ``_at`` (the date; null for dateless rows), ``_line``, ``_outcome``
(``emit`` | ``skip`` | ``quarantine``), ``_rule`` (skip rule or quarantine reason), ``_key``,
``_detail``, ``_payload`` and the stream's canonical columns (without ``source``). It is sorted by
``_at`` in row groups of :data:`ROW_GROUP_ROWS`, so a cut (a polars scan with a predicate on
``_at``) reads only the row groups whose date range meets the interval.

When the cache is trusted
    The manifest records, per dump file, its identity: size, modification time (ns) and the
    SHA-256 of its first :data:`HEAD_BYTES`; also the connector's code version (a hash of the
    modules that decide outcomes) and the clock the cache was built with. Any difference
    rebuilds the whole dump's cache (comments and votes depend on Posts.xml through the posts
    map). Outcomes depend on the clock only through the "timestamp in the future" rule, so the
    cache serves a run only when no CreationDate/LastEditDate in the files (found by a byte
    scan at build time) is later than the build's clock or the run's; a run whose clock is
    earlier than a date in the files is not served (the caller parses the dump), a run whose
    clock passed a date the build saw as future rebuilds.

Writing and crashes
    Files and folders are created with the product's owner-only modes
    (:mod:`warehouse.files`). A build writes each Parquet file under a temporary name, renames it
    to a name unique to the build, then writes the manifest the same way (temporary file,
    ``os.replace``): a crash before the manifest's rename leaves the old manifest, whose
    identities no longer match, or none, so a half-written cache is never read; a Parquet file
    that cannot be read (truncated, removed) makes the cut rebuild. Data files of older builds
    are removed after the manifest is replaced.

Bounds
    Building holds the whole dump's outcomes in memory, like an unbounded extract. A dump with
    more than :data:`MAX_CACHED_QUARANTINE` quarantined rows (a junk or hostile file) is not
    cached (the manifest records the refusal): every interval is then parsed, in the
    connector's bounded memory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from lxml import etree

from warehouse import canonical
from warehouse.canonical import STREAMS, Extract, QuarantineLog, StreamCounts, conform, core_schema
from warehouse.files import private_dir, private_file
from warehouse.sources import html_text
from warehouse.sources import stackexchange as se

__all__ = [
    "HEAD_BYTES",
    "MAX_CACHED_QUARANTINE",
    "ROW_GROUP_ROWS",
    "PassedOver",
    "cache_folder",
    "cut_interval",
    "date_prefilter",
    "file_identity",
]

log = logging.getLogger(__name__)

#: Bytes at the start of a file hashed into its identity (with its size and mtime).
HEAD_BYTES = 1024 * 1024
#: Rows per Parquet row group: a daily cut of a large dump reads one or two of them.
ROW_GROUP_ROWS = 1024
#: A dump with more quarantined rows than this is not cached (bounded memory for junk input).
MAX_CACHED_QUARANTINE = 100_000
#: Bump when the cache's layout changes.
FORMAT = 1

#: Dump file → stream, in the order the connector reads them (the order outcomes are replayed).
FILES: dict[str, str] = {
    "Posts.xml": "content",
    "Comments.xml": "content",
    "Votes.xml": "engagement_events",
    "Users.xml": "users",
}
_META = {
    "_file": pl.String(),
    "_line": pl.Int64(),
    "_d1": pl.Datetime("us"),  # a row's membership dates: CreationDate (or none), a post's LastEditDate
    "_d2": pl.Datetime("us"),
    "_outcome": pl.String(),
    "_rule": pl.String(),
    "_key": pl.String(),
    "_detail": pl.String(),
    "_payload": pl.String(),
}
_DATE_ATTR = re.compile(rb"""(?:CreationDate|LastEditDate)\s*=\s*(?:"([^"]{0,200})"|'([^']{0,200})')""")


# --------------------------------------------------------------------------------------------
# Identity


@functools.cache
def _head_hash(path: str, stamp: tuple[int, ...]) -> str:  # stamp: the cache key only
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()


def file_identity(path: Path) -> dict[str, Any]:
    """A dump file's identity: ``{"size": bytes, "mtime_ns": int, "head_sha256": hex of the first HEAD_BYTES}``.

    The head's hash is computed once per process for an unchanged inode (same device, inode, size,
    mtime and ctime; the ctime changes on any write and cannot be set back).

    Raises:
        OSError: the file cannot be read.
    """
    st = os.stat(path)
    stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": _head_hash(str(path), stamp)}


@functools.cache
def _code_version() -> str:
    """A hash of the modules that decide a row's outcome: a changed connector rebuilds every cache."""
    h = hashlib.sha256()
    for module in (se, html_text, canonical):
        h.update(Path(module.__file__).read_bytes())  # type: ignore[arg-type]
    return h.hexdigest()[:16]


def cache_folder(cache_dir: Path, dump: Path) -> Path:
    """The folder holding ``dump``'s cache: ``<cache_dir>/<folder name>-<12 hex of its resolved path>``."""
    resolved = str(Path(dump).resolve())
    return Path(cache_dir) / f"{Path(resolved).name}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}"


def _latest_date(path: Path) -> datetime | None:
    """The latest CreationDate/LastEditDate written in ``path`` (entity references decoded), or None.

    A byte scan: every such attribute is found, also one the connector never reaches (a row
    rejected earlier), so the result is an upper bound of the dates compared with the clock.
    """
    latest: datetime | None = None
    with path.open("rb") as f:
        for line in f:
            for m in _DATE_ATTR.finditer(line):
                raw = m.group(1) if m.group(1) is not None else m.group(2)
                if b"&" in raw:
                    with contextlib.suppress(etree.XMLSyntaxError):
                        raw = etree.fromstring(b'<r v="' + raw.replace(b'"', b"&quot;") + b'"/>').get("v").encode()
                try:
                    ts = se._naive_utc(datetime.fromisoformat(raw.decode("utf-8", "replace")))
                except ValueError:
                    continue
                latest = ts if latest is None or ts > latest else latest
    return latest


# --------------------------------------------------------------------------------------------
# Date pre-filter (a cold cache, or the cache off): pass over rows dated outside the interval

#: A single-quoted attribute value (XML: ``Eq ::= S? '=' S?``); without one, every ``"`` is a delimiter.
_SINGLE_QUOTED = re.compile(rb"=[ \t\r\n]*'")
#: Dates and ids whose bytes are exactly what lxml returns (no entity, no whitespace, no zone).
_PLAIN_DATE = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?")
_PLAIN_ID = re.compile(rb"-?[0-9]{1,18}")


def _attr(raw: bytes, name: bytes) -> bytes | None:
    """The value of attribute ``name`` written `` name="..."`` outside any value, or None."""
    pattern = b" " + name + b'="'
    pos = raw.find(pattern)
    while pos != -1 and raw.count(b'"', 0, pos) % 2:  # inside a value: look further
        pos = raw.find(pattern, pos + 1)
    if pos == -1:
        return None
    start = pos + len(pattern)
    return raw[start : raw.find(b'"', start)]


def date_prefilter(name: str, since: datetime, until: datetime | None) -> Callable[[bytes], int | None]:
    """The byte-level pre-filter for dump file ``name`` and the interval ``[since, until)``.

    The returned function takes a one-line row's bytes and returns its Id (an int) when the row
    certainly does not belong to the interval, found without an XML parse: the row ends with
    ``/>`` (so, if lxml can parse it, it is one empty element and everything in it is
    attributes) and has no single-quoted attribute (so every ``"`` delimits a value and a name
    is found by quote parity), its Id is written ``Id="<integer>"`` and each date that decides
    membership (CreationDate; for Posts.xml also LastEditDate, unless the bytes ``LastEditDate``
    appear nowhere in the row) is written ``Name="<plain ISO timestamp>"`` outside the interval.
    Anything else (a date missing, unparsable or written with an entity, single quotes, other
    spacing, ...) returns None: the row is parsed, so a malformed row is still quarantined with
    its reason by the interval that owns it. A row lxml cannot parse never belongs to an
    interval with a start, so passing it over loses nothing. For ``since`` set only: an
    interval open at the start takes rows without a usable date.
    """
    posts = name == "Posts.xml"

    def outside(value: bytes | None) -> bool:
        if value is None or not _PLAIN_DATE.fullmatch(value):
            return False
        try:
            ts = datetime.fromisoformat(value.decode())
        except ValueError:  # e.g. February 30th: bad_timestamp, decided by the parse
            return False
        return ts < since or (until is not None and ts >= until)

    def pass_over(raw: bytes) -> int | None:
        if not raw.endswith(b"/>") or _SINGLE_QUOTED.search(raw) or not outside(_attr(raw, b"CreationDate")):
            return None
        if posts and b"LastEditDate" in raw and not outside(_attr(raw, b"LastEditDate")):
            return None
        rid = _attr(raw, b"Id")
        return int(rid) if rid is not None and _PLAIN_ID.fullmatch(rid) else None

    return pass_over


class _LazyPosts(dict):  # type: ignore[type-arg]
    """The posts map; a post the pre-filter passed over is parsed when first looked up."""

    def __init__(self, posts: dict[int, tuple[int, int | None]], passed: PassedOver) -> None:
        super().__init__(posts)
        self.passed = passed

    def get(self, key: int, default: Any = None) -> Any:
        if key in self.passed.offsets:
            for post, _ in self.passed.resolve(key):
                self[post.id] = (post.type, post.parent)
        return super().get(key, default)


class PassedOver:
    """The pre-filter's bookkeeping for one dump file in one run (see :func:`date_prefilter`).

    A row passed over never belongs to the interval, but its Id still counts: the first valid
    row with an Id takes it (a later row with that Id is a duplicate), and a valid post enters
    the posts map. So the byte offset of the first passed-over row per Id is kept, and that row
    is parsed (with the connector's checks) only when the Id is met again in the file, or, for
    a post, when a comment or vote looks it up. ``seen`` is the connector's id → attributes-hash
    map for the file.
    """

    def __init__(self, run: se._Run, path: Path, check: Callable[[int, dict[str, str], datetime], Any]) -> None:
        assert run.since is not None
        self.run, self.path, self.check = run, path, check
        self.pass_over = date_prefilter(path.name, run.since, run.until)
        self.seen: dict[int, int] = {}
        self.offsets: dict[int, int] = {}
        self._parser = se._row_parser()

    def defer(self, rid: int, offset: int) -> Iterator[tuple[Any, bool]]:
        """Note a passed-over row; yields ``(record, False)`` if an earlier one with its Id was valid."""
        if rid in self.offsets:  # the earlier passed-over row decides whether this one is a duplicate
            yield from self.resolve(rid)
        if rid not in self.seen:
            self.offsets[rid] = offset

    def resolve(self, rid: int) -> Iterator[tuple[Any, bool]]:
        """Parse the passed-over row holding ``rid``; a valid one takes the Id and is yielded, not in the interval."""
        with self.path.open("rb") as f:
            f.seek(self.offsets.pop(rid))
            row = se._parse_row(0, f.readline(se.MAX_ROW_BYTES + 1).strip(), self._parser)
        if row.attrs is None:
            return
        try:
            if se._record_id(row.attrs) != rid:
                return
            record = self.check(rid, row.attrs, self.run.now)
        except se._Reject:
            return
        self.seen[rid] = se._attrs_hash(row.attrs)
        yield record, False

    def posts_map(self, posts: dict[int, tuple[int, int | None]]) -> dict[int, tuple[int, int | None]]:
        """``posts`` (from Posts.xml's scan), completed lazily with the posts passed over."""
        return _LazyPosts(posts, self) if self.offsets else posts


# --------------------------------------------------------------------------------------------
# Build: the connector's own scan, recording every outcome


class _TooDirty(Exception):
    """More quarantined rows than :data:`MAX_CACHED_QUARANTINE`."""


@dataclass
class _Tape(se._Run):
    """A run over the whole dump that records each outcome with the row's line and dates."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in _META})
    quarantined: int = 0

    def _record(
        self,
        outcome: str,
        rule: str | None,
        key: str | None = None,
        detail: str | None = None,
        payload: str | None = None,
    ) -> None:
        line, dates = self.at
        d1, d2, *_ = (*dates, None, None)
        values = (self.quarantine.scope, line, d1, d2, outcome, rule, key, detail, payload)
        for column, value in zip(self.columns.values(), values, strict=True):
            column.append(value)

    def reject(self, stream: str, key: str | None, reason: str, detail: str, payload: str) -> None:
        self.quarantined += 1
        if self.quarantined > MAX_CACHED_QUARANTINE:
            raise _TooDirty
        self._record("quarantine", reason, key, detail, payload)

    def skip(self, stream: str, rule: str) -> None:
        self._record("skip", rule)

    def emit(self, stream: str) -> None:
        self._record("emit", None)


def _build(
    folder: Path, files: dict[str, Path], now: datetime, identities: dict[str, Any], latest: str | None
) -> dict[str, Any]:
    """Parse the dump once and write its cache; returns the new manifest."""
    started = time.time_ns()
    tape = _Tape("", None, None, now, QuarantineLog(""), {s: StreamCounts() for s in STREAMS})
    manifest: dict[str, Any] = {
        "format": FORMAT, "code": _code_version(), "files": identities, "built_now": now.isoformat(),
        "latest_date": latest, "data": {},
    }  # fmt: skip
    private_dir(folder)
    try:
        ex = se._extract(tape, files)
    except _TooDirty:
        manifest["refused"] = f"more than {MAX_CACHED_QUARANTINE:,} quarantined rows"
        _write_manifest(folder, manifest)
        return manifest
    build = uuid.uuid4().hex[:12]
    entries = pl.DataFrame(tape.columns, schema=_META)
    offsets = dict.fromkeys(STREAMS, 0)
    for name, stream in FILES.items():
        mine = entries.filter(pl.col("_file") == name).drop("_file")
        emits = mine.filter(pl.col("_outcome") == "emit")
        records = ex.frame(stream).slice(offsets[stream], emits.height).select(list(core_schema(stream))[1:])
        offsets[stream] += emits.height
        rows = mine.join(records.with_columns(emits["_line"]), on="_line", how="left")
        second = pl.col("_d2").is_not_null() & pl.col("_d1").ne_missing(pl.col("_d2"))
        table = (  # one row per membership date (a post edited on another day twice); dateless: _at null
            pl.concat([rows.rename({"_d1": "_at"}).drop("_d2"), rows.filter(second).rename({"_d2": "_at"}).drop("_d1")])
            .select("_at", pl.exclude("_at"))
            .sort("_at", "_line", nulls_last=True)
        )
        target = folder / f"{name}.{build}.parquet"
        tmp = target.with_name(f".{target.name}.tmp")
        table.write_parquet(tmp, row_group_size=ROW_GROUP_ROWS, statistics=True)
        private_file(tmp)
        os.replace(tmp, target)
        manifest["data"][name] = target.name
    _write_manifest(folder, manifest)
    keep = set(manifest["data"].values())
    for old in folder.glob("*.parquet"):  # earlier builds' data (never this one's)
        if old.name not in keep and old.stat().st_mtime_ns < started:  # a concurrent build's files stay
            with contextlib.suppress(OSError):
                old.unlink()
    return manifest


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / f".manifest.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    private_file(tmp)
    os.replace(tmp, folder / "manifest.json")


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Cut: an interval's outcomes, replayed in file order


def _cut(data: Path, since: datetime | None, until: datetime | None) -> pl.LazyFrame:
    at = pl.col("_at")
    cond = pl.lit(True)
    if since is not None:
        cond &= at >= since
    if until is not None:
        cond &= at < until
    if since is None:  # rows without a usable date belong to the interval open at the start
        cond |= at.is_null()
    # a row with two dates in the interval is there twice: keep one, in file order
    return pl.scan_parquet(data).filter(cond).unique("_line", keep="first").sort("_line")


@functools.cache
def _empty(stream: str) -> pl.DataFrame:
    return conform(pl.DataFrame(schema=core_schema(stream)), stream)


def _replay(folder: Path, manifest: dict[str, Any], run: se._Run) -> Extract:
    cuts = pl.collect_all([_cut(folder / manifest["data"][name], run.since, run.until) for name in FILES])
    frames: dict[str, list[pl.DataFrame]] = {s: [] for s in STREAMS}
    for (name, stream), cut in zip(FILES.items(), cuts, strict=True):
        if cut.is_empty():
            continue
        counts = run.counts[stream]
        counts.read += cut.height
        parts = cut.partition_by("_outcome", as_dict=True)
        if (emitted := parts.get(("emit",))) is not None:
            counts.emitted += emitted.height
            frames[stream].append(emitted.select(pl.lit(run.source).alias("source"), *list(core_schema(stream))[1:]))
        if (skipped := parts.get(("skip",))) is not None:
            for rule, n in Counter(skipped["_rule"].to_list()).items():  # first-seen order, as in a parse
                counts.skip(rule, n)
        if (bad := parts.get(("quarantine",))) is not None:
            run.quarantine.scope = name  # payload samples are capped per reason and file, as in a parse
            counts.quarantined += bad.height
            for key, reason, detail, payload in bad.select("_key", "_rule", "_detail", "_payload").iter_rows():
                run.quarantine.add(stream, key, reason, detail, payload)
    out = {s: conform(pl.concat(parts), s) if parts else _empty(s) for s, parts in frames.items()}
    return se.run_extract(run, out["users"], out["content"], out["engagement_events"])


def _usable(manifest: dict[str, Any] | None, identities: dict[str, Any], now: datetime) -> bool:
    if manifest is None or manifest.get("format") != FORMAT or manifest.get("code") != _code_version():
        return False
    if manifest.get("files") != identities:
        return False
    latest = manifest.get("latest_date")
    return latest is None or datetime.fromisoformat(latest) <= min(datetime.fromisoformat(manifest["built_now"]), now)


def cut_interval(cache_dir: Path, files: dict[str, Path], run: se._Run) -> Extract | None:
    """``run``'s interval of the dump ``files``, cut from the cache under ``cache_dir`` (built if needed).

    Args:
        cache_dir: the cache's root folder (created owner-only).
        files: the dump's files by name (Posts.xml, Comments.xml, Votes.xml, Users.xml, ...),
            as :func:`warehouse.sources.stackexchange._dump_files` found them.
        run: the connector's run for the interval (source, ``since``/``until``, clock, fresh
            counts and quarantine log), filled in place.

    Returns:
        the same :class:`~warehouse.canonical.Extract` the connector makes without the cache, or
        None when the cache cannot serve the run (a date in the files is later than the run's
        clock, the dump has too many quarantined rows, or the cache folder cannot be written):
        the caller parses the dump.

    Raises:
        UnsafeXMLError: a file declares a DTD or an entity (found while building).
        OSError: a dump file cannot be read.
    """
    folder = cache_folder(cache_dir, files["Posts.xml"].parent)
    identities = {name: file_identity(files[name]) for name in FILES}
    manifest = _read_manifest(folder)
    for attempt in range(2):
        if not _usable(manifest, identities, run.now):
            latest = max((d for d in (_latest_date(files[n]) for n in FILES) if d is not None), default=None)
            if latest is not None and latest > run.now:
                return None  # a "future" row for this clock: only a parse decides it
            try:
                manifest = _build(folder, files, run.now, identities, None if latest is None else latest.isoformat())
            except OSError as exc:
                log.warning("dump cache %s not written (%s); parsing the dump", folder, exc)
                return None
        assert manifest is not None
        if manifest.get("refused"):
            return None
        try:
            return _replay(folder, manifest, run)
        except (OSError, pl.exceptions.PolarsError) as exc:  # a data file truncated or removed: rebuild once
            if attempt:
                raise
            log.warning("dump cache %s unreadable (%s); rebuilding", folder, exc)
            manifest = None
            run.counts = {s: StreamCounts() for s in STREAMS}
            run.quarantine = QuarantineLog(run.source)
    return None
