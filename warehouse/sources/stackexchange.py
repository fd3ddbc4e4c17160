"""Stack Exchange data dump connector: one dump folder → one canonical :class:`Extract`.

Reads any site's public dump (``Posts.xml``, ``Comments.xml``, ``Votes.xml``, ``Users.xml`` and
``Tags.xml`` are required; ``PostHistory.xml`` is optional and not read) and maps it to the
canonical model of :mod:`warehouse.canonical`.

Mapping
    * users: ``Users.xml`` → user_id (the dump's Id, e.g. ``"7"``, ``"-1"``), display_name,
      created_at, reputation. Nothing else of a user row is kept: e-mail, IP, WebsiteUrl,
      Location, AboutMe, Age and ProfileImageUrl are never ingested, not even in the payload of
      a quarantined user row (parsed rows keep an allow-list of attributes, unparsable rows have
      those attributes' values replaced by ``[redacted]``).
    * content: ``Posts.xml`` PostTypeId 1 → ``question`` (``p<Id>``; thread = itself; title,
      tags, view_count), 2 → ``answer`` (parent and thread = ``p<ParentId>``); ``Comments.xml``
      → ``comment`` (``c<Id>``; parent = ``p<PostId>``; thread = that post's question).
      Bodies are HTML reduced to plain text by :func:`html_to_text`; comment text is plain
      already. Tags come from ``<a><b>`` or ``|a|b|`` (:func:`parse_tags`); answers and
      comments carry an empty list (the transforms inherit the thread's tags).
    * engagement_events: ``Votes.xml`` VoteTypeId 2/3/1/5 → upvote/downvote/accept/favorite
      (``v<Id>`` on ``p<PostId>``), ``time_precision="day"`` (the dump truncates vote dates).

Skip rules (``StreamCounts.skip_rules``; valid records deliberately left out)
    * ``not community content (PostTypeId N: <name>)``: posts other than questions/answers
      (tag wikis and their excerpts, wiki placeholders, privilege wikis, ...).
    * ``not community content (comment on PostTypeId N: <name>)`` and
      ``not community content (vote on PostTypeId N: <name>)``: comments/votes on such posts.
    * ``not an engagement vote (VoteTypeId N: <name>)``: offensive, close, bounty, deletion,
      spam, moderator review, edit-suggestion votes, and unknown vote types.
    * ``exact duplicate row``: a row repeating an earlier row's Id with identical attributes.

Quarantine reasons (:class:`~warehouse.canonical.QuarantineLog`: every row counted, the raw row
stored as payload for the first ``PULSE_QUARANTINE_SAMPLE_PER_REASON`` per reason and file)
    ``malformed_xml`` (the row does not parse: detail is lxml's message), ``invalid_utf8``,
    ``missing_id``, ``bad_number`` (Id, PostTypeId, ParentId, PostId, VoteTypeId, Score,
    ViewCount, OwnerUserId, UserId or Reputation not an integer; PostTypeId/VoteTypeId
    missing), ``bad_timestamp`` (CreationDate missing or unparsable, LastEditDate
    unparsable), ``future_timestamp`` (later than ``now``), ``oversized_body`` (a Body or comment Text over
    :data:`MAX_BODY_CHARS`), ``missing_reference`` (answer
    without ParentId, comment or vote without PostId), ``duplicate_id`` (an Id already taken
    by an earlier valid row of the same file, with different attributes: the first wins).
    A row with several faults gets one reason; a repeated Id wins over the other faults, and
    an Id whose first row was quarantined is free, so a later valid row with it is loaded.

References this module does not decide
    A vote, answer or comment whose post is absent from ``Posts.xml`` is still emitted (with
    ``content_id``/``parent_id`` = ``p<PostId>``; a comment then has ``thread_id`` null):
    in an incremental load the post may already be in the warehouse from an earlier dump,
    so the loader checks references against the warehouse and quarantines dangling ones.
    *Validate* (:mod:`warehouse.load`) also quarantines what depends on a record quarantined
    here (``parent_quarantined``: a question with an unparsable date takes its answers and the
    comments and votes on them along, and the run goes on) and dates before the timestamp
    floor or votes dated before their post (``implausible_timestamp``).

Data intervals (``since``/``until``, half-open ``[since, until)``, naive UTC)
    Every row's outcome (emit, skip, quarantine) is decided the same way whatever the
    interval; the interval only selects which rows belong to this extract, and only those
    are counted (``read = emitted + skipped + quarantined`` per stream, for the interval):

    * users, comments and votes belong to the interval holding their CreationDate;
    * a valid post (emitted or skipped) belongs to the intervals holding its CreationDate or
      its LastEditDate: an edit re-emits the item so that it is scored again (a post created
      in one interval and edited in a later one is read in both);
    * a quarantined row with a usable CreationDate belongs to that date's interval;
    * a row without a usable date (unparsable XML, invalid UTF-8, missing/unparsable/future
      CreationDate) belongs to no interval: it is quarantined only by extracts with
      ``since=None`` (the first interval of a backfill, or an unbounded extract), so a
      backfill that starts with ``since=None`` reports it exactly once.

    The posts map (post id → kind and thread) is always built from all of ``Posts.xml``, so
    comments and votes in a later interval still find their thread and their post's type.

Parse cache and date pre-filter (:mod:`warehouse.sources.dump_cache`)
    With a cache folder, the dump is parsed once and every interval is cut from Parquet; without
    one, an interval with a start passes over rows whose dates, read from the bytes, are outside
    it. Both give exactly the extract of the full parse described here.

Parsing and safety
    Files are streamed one physical line at a time (dumps have one ``<row .../>`` per line;
    a row spanning lines is accumulated until ``/>``), and each row is parsed alone by lxml
    with entity resolution, DTD loading and network access off. Memory is bounded by the
    largest row (:data:`MAX_ROW_BYTES`) plus the id sets. A ``<!DOCTYPE`` or ``<!ENTITY``
    anywhere in a file (dumps never declare a DTD) raises :class:`UnsafeXMLError` at once,
    which stops entity-expansion ("billion laughs") and external-entity attacks before any
    parsing. The UTF-8 BOM and CRLF line ends are handled.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import polars as pl
from lxml import etree

from warehouse.canonical import (
    STREAMS,
    Extract,
    QuarantineLog,
    StreamCounts,
    conform,
    content_hash,
    core_schema,
    in_window,
)
from warehouse.sources.html_text import html_to_text

__all__ = [
    "MAX_ROW_BYTES",
    "OPTIONAL_FILES",
    "POST_KINDS",
    "POST_TYPES",
    "REQUIRED_FILES",
    "VOTE_EVENT_TYPES",
    "VOTE_TYPES",
    "DumpRow",
    "UnsafeXMLError",
    "extract_stackexchange",
    "html_to_text",
    "iter_dump_rows",
    "parse_tags",
]

REQUIRED_FILES: tuple[str, ...] = ("Posts.xml", "Comments.xml", "Votes.xml", "Users.xml", "Tags.xml")
OPTIONAL_FILES: tuple[str, ...] = ("PostHistory.xml",)

#: PostTypeId → name (meta.stackexchange.com/q/2677, "Database schema documentation").
POST_TYPES: dict[int, str] = {
    1: "question",
    2: "answer",
    3: "orphaned tag wiki",
    4: "tag wiki excerpt",
    5: "tag wiki",
    6: "moderator nomination",
    7: "wiki placeholder",
    8: "privilege wiki",
    9: "article",
    10: "help article",
    12: "collection",
    13: "moderator questionnaire response",
    14: "announcement",
    15: "collective discussion",
    17: "collective collection",
}
#: The post types that are community content, and their canonical kind.
POST_KINDS: dict[int, str] = {1: "question", 2: "answer"}

#: VoteTypeId → name (same source).
VOTE_TYPES: dict[int, str] = {
    1: "accepted by originator",
    2: "upvote",
    3: "downvote",
    4: "offensive",
    5: "favorite",
    6: "close",
    7: "reopen",
    8: "bounty start",
    9: "bounty close",
    10: "deletion",
    11: "undeletion",
    12: "spam",
    15: "moderator review",
    16: "approve edit suggestion",
}
#: The vote types that are engagement, and their canonical event_type.
VOTE_EVENT_TYPES: dict[int, str] = {2: "upvote", 3: "downvote", 1: "accept", 5: "favorite"}

#: Longest row accepted, in bytes (Stack Exchange caps a body at 30,000 characters, which
#: escaped stays far below this); a longer row is quarantined without being held in memory.
MAX_ROW_BYTES = 16 * 1024 * 1024

#: Longest post body (HTML) or comment text accepted, in characters. Stack Exchange itself caps
#: bodies at 30,000 and comments at 600 characters, so a longer one is corrupt or hostile: it is
#: quarantined (``oversized_body``) instead of being loaded, scored and shown.
MAX_BODY_CHARS = 1_000_000

EXACT_DUPLICATE_RULE = "exact duplicate row"

#: The only user attributes a quarantined user row keeps in its payload.
_USER_ATTRS = (
    "Id",
    "Reputation",
    "CreationDate",
    "DisplayName",
    "LastAccessDate",
    "Views",
    "UpVotes",
    "DownVotes",
    "AccountId",
)
_PRIVATE_USER_ATTRS = "EmailHash|Email|WebsiteUrl|Location|AboutMe|Age|ProfileImageUrl|LastLoginIP|IP"
_PRIVATE_QUOTED = re.compile(rf"\b({_PRIVATE_USER_ATTRS})(\s*=\s*)(\"[^\"]*\"|'[^']*')")
_PRIVATE_REST = re.compile(rf"\b({_PRIVATE_USER_ATTRS})\s*=\s*(?!\"\[redacted\]\").*", re.DOTALL)

_BOM = b"\xef\xbb\xbf"
_INT = re.compile(r"-?[0-9]{1,18}")  # fits Int64; longer digit strings are bad_number
_ID_IN_RAW = re.compile(r"\bId\s*=\s*[\"']([^\"']{1,40})[\"']")
_ROOT_START = re.compile(rb"<[A-Za-z_][\w.\-]*\s*>")
_ROW_END = (b"/>", b"</row>")


class UnsafeXMLError(ValueError):
    """A dump file declares a DTD or an entity (``<!DOCTYPE`` / ``<!ENTITY``); it is refused whole."""


@dataclass(frozen=True, slots=True)
class DumpRow:
    """One ``<row .../>`` of a dump file.

    Attributes:
        line: 1-based line number where the row starts.
        raw: the row's text (invalid UTF-8 shown with backslash escapes), for quarantine payloads.
        attrs: the row's attributes (entity references decoded), or None when it did not parse.
        reason: ``malformed_xml`` or ``invalid_utf8`` when ``attrs`` is None, else None.
        detail: the parser's or decoder's message when ``attrs`` is None, else "".
        passed: ``(Id, byte offset)`` of a row the date pre-filter passed over unparsed, else None.
    """

    line: int
    raw: str
    attrs: dict[str, str] | None
    reason: str | None = None
    detail: str = ""
    passed: tuple[int, int] | None = None


# --------------------------------------------------------------------------------------------
# Streaming row reader


def _row_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def _physical_lines(path: Path, f: BinaryIO, limit: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(line number, line, too_long)``; a line over ``limit`` bytes is drained, not kept.

    The drained part is still searched for DTD/entity declarations (chunks overlap by a few
    bytes so a declaration cut by a chunk boundary is found).
    """
    lineno = 0
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        lineno += 1
        if len(line) > limit and not line.endswith(b"\n"):
            _refuse_declarations(path, lineno, line)
            tail = line[-16:]
            while True:  # drain the rest of the over-long line in bounded chunks
                chunk = f.readline(limit)
                _refuse_declarations(path, lineno, tail + chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
                tail = chunk[-16:]
            yield lineno, line[:200], True
            continue
        yield lineno, line, False


def _refuse_declarations(path: Path, lineno: int, stripped: bytes) -> None:
    if b"<!" in stripped:
        upper = stripped.upper()
        for token in (b"<!DOCTYPE", b"<!ENTITY"):
            if token in upper:
                raise UnsafeXMLError(
                    f"{path.name} line {lineno} ({path}): {token.decode()} found; Stack Exchange dumps never "
                    "declare a DTD or entities, so the file is refused (entity expansion / external entity risk)"
                )


def _parse_row(lineno: int, raw: bytes, parser: etree.XMLParser) -> DumpRow:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DumpRow(lineno, raw.decode("utf-8", "backslashreplace"), None, "invalid_utf8", f"{exc} (line {lineno})")
    try:
        element = etree.fromstring(text, parser)
    except etree.XMLSyntaxError as exc:
        return DumpRow(lineno, text, None, "malformed_xml", f"{exc} (line {lineno})")
    if element.tag != "row":
        return DumpRow(lineno, text, None, "malformed_xml", f"unexpected element <{element.tag}> (line {lineno})")
    return DumpRow(lineno, text, dict(element.attrib))


def iter_dump_rows(
    path: Path, *, max_row_bytes: int = MAX_ROW_BYTES, pass_over: Callable[[bytes], int | None] | None = None
) -> Iterator[DumpRow]:
    """Stream the rows of one dump file (``<root><row .../>...</root>``), one at a time.

    Args:
        path: an XML file of a Stack Exchange dump (UTF-8, optional BOM, one row per line;
            a row may span lines).
        max_row_bytes: rows longer than this are reported as ``malformed_xml`` without being
            held in memory.
        pass_over: the date pre-filter (:func:`warehouse.sources.dump_cache.date_prefilter`): a
            one-line row (not on line 1) for which it returns an Id is yielded unparsed, with ``passed``.

    Yields:
        :class:`DumpRow` per row, in file order; rows that fail to decode or parse come with
        ``attrs=None`` and a reason, and reading goes on.

    Raises:
        UnsafeXMLError: the file contains ``<!DOCTYPE`` or ``<!ENTITY`` (raised at that line,
            before anything is parsed, so memory and time stay bounded).
        OSError: the file cannot be read.
    """
    path = Path(path)
    parser = _row_parser()
    in_prolog = True
    pending: list[bytes] = []
    pending_line = 0
    pending_size = 0
    with path.open("rb") as f:
        for lineno, line, too_long in _physical_lines(path, f, max_row_bytes):
            if too_long:
                if pending:
                    yield _unterminated(pending_line, pending, "row not terminated before an over-long line")
                    pending, pending_size = [], 0
                yield DumpRow(
                    lineno,
                    line.decode("utf-8", "backslashreplace") + "…",
                    None,
                    "malformed_xml",
                    f"row longer than {max_row_bytes} bytes (line {lineno})",
                )
                continue
            if lineno == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            stripped = line.strip()
            _refuse_declarations(path, lineno, stripped)
            if not stripped and not pending:
                continue
            if in_prolog:
                if stripped.startswith((b"<?", b"<!--")):
                    continue
                in_prolog = False
                if _ROOT_START.fullmatch(stripped):
                    continue
            if pending:
                if stripped.startswith(b"<row"):
                    yield _unterminated(pending_line, pending, "row not terminated before the next row")
                    pending, pending_size = [], 0
                else:
                    continuation = line.rstrip(b"\r\n")
                    pending.append(continuation)
                    pending_size += len(continuation) + 1
                    if stripped.endswith(_ROW_END):
                        yield _parse_row(pending_line, b"\n".join(pending), parser)
                        pending, pending_size = [], 0
                    elif pending_size > max_row_bytes:
                        yield _unterminated(pending_line, pending, f"row longer than {max_row_bytes} bytes")
                        pending, pending_size = [], 0
                    continue
            if stripped.startswith(b"<row"):
                if stripped.endswith(_ROW_END):
                    rid = None if pass_over is None or lineno == 1 else pass_over(stripped)
                    if rid is not None:
                        yield DumpRow(lineno, "", None, passed=(rid, f.tell() - len(line)))
                        continue
                    yield _parse_row(lineno, stripped, parser)
                else:
                    pending, pending_line, pending_size = [stripped], lineno, len(stripped)
            elif stripped.startswith(b"</") or stripped.startswith(b"<!--") or _ROOT_START.fullmatch(stripped):
                continue  # the root's end tag (or a comment): nothing to load
            else:
                yield DumpRow(
                    lineno,
                    stripped.decode("utf-8", "backslashreplace"),
                    None,
                    "malformed_xml",
                    f"unexpected content outside a <row> element (line {lineno})",
                )
        if pending:
            yield _unterminated(pending_line, pending, "row not terminated at end of file")


def _unterminated(lineno: int, pending: list[bytes], why: str) -> DumpRow:
    raw = b"\n".join(pending)
    text = raw[:100_000].decode("utf-8", "backslashreplace")
    return DumpRow(lineno, text, None, "malformed_xml", f"{why} (line {lineno})")


# --------------------------------------------------------------------------------------------
# Text helpers (html_to_text lives in warehouse.sources.html_text)


def parse_tags(raw: str | None) -> list[str]:
    """Parse a question's Tags attribute: ``"<ipa><hops>"`` or ``"|ipa|hops|"`` → ``["ipa", "hops"]``.

    Returns an empty list for None/empty; tag names are kept as written (stripped), in order.
    """
    if not raw:
        return []
    raw = raw.strip()
    names = re.findall(r"<([^<>]*)>", raw) if raw.startswith("<") else raw.split("|")
    return [n.strip() for n in names if n.strip()]


# --------------------------------------------------------------------------------------------
# Field validation


class _Reject(Exception):
    """A record that must be quarantined; ``when`` is its CreationDate if that was usable."""

    def __init__(self, reason: str, detail: str, when: datetime | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.when = when


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


def _int(attrs: dict[str, str], name: str, when: datetime | None = None) -> int | None:
    value = attrs.get(name)
    if value is None:
        return None
    if not _INT.fullmatch(value):
        raise _Reject("bad_number", f"{name}={value!r} is not an integer", when)
    return int(value)


def _timestamp(
    attrs: dict[str, str], name: str, now: datetime, *, required: bool, when: datetime | None = None
) -> datetime | None:
    value = attrs.get(name)
    if value is None:
        if required:
            raise _Reject("bad_timestamp", f"{name} is missing", when)
        return None
    try:
        ts = _naive_utc(datetime.fromisoformat(value))
    except ValueError:
        raise _Reject("bad_timestamp", f"{name}={value!r} is not an ISO 8601 timestamp", when) from None
    if ts > now:
        raise _Reject("future_timestamp", f"{name}={value!r} is later than now ({now.isoformat()})", when)
    return ts


def _record_id(attrs: dict[str, str]) -> int:
    value = attrs.get("Id")
    if value is None or not value.strip():
        raise _Reject("missing_id", "Id attribute is missing")
    if not _INT.fullmatch(value):
        raise _Reject("bad_number", f"Id={value!r} is not an integer")
    return int(value)


@dataclass(slots=True)
class _Post:
    id: int
    type: int
    parent: int | None
    created: datetime
    edited: datetime | None
    score: int | None
    view_count: int | None
    owner: int | None
    attrs: dict[str, str]

    @property
    def dates(self) -> tuple[datetime | None, ...]:
        return (self.created, self.edited)


@dataclass(slots=True)
class _Comment:
    id: int
    post: int
    created: datetime
    score: int | None
    user: int | None
    text: str

    @property
    def dates(self) -> tuple[datetime | None, ...]:
        return (self.created,)


@dataclass(slots=True)
class _Vote:
    id: int
    post: int
    type: int
    created: datetime
    user: int | None

    @property
    def dates(self) -> tuple[datetime | None, ...]:
        return (self.created,)


@dataclass(slots=True)
class _User:
    id: int
    created: datetime
    reputation: int | None
    name: str | None

    @property
    def dates(self) -> tuple[datetime | None, ...]:
        return (self.created,)


def _check_size(a: dict[str, str], name: str, created: datetime | None) -> None:
    size = len(a.get(name) or "")
    if size > MAX_BODY_CHARS:
        raise _Reject("oversized_body", f"{name} is {size:,} characters, over the {MAX_BODY_CHARS:,} limit", created)


def _check_post(rid: int, a: dict[str, str], now: datetime) -> _Post:
    created = _timestamp(a, "CreationDate", now, required=True)
    edited = _timestamp(a, "LastEditDate", now, required=False, when=created)
    ptype = _int(a, "PostTypeId", created)
    if ptype is None:
        raise _Reject("bad_number", "PostTypeId is missing", created)
    parent = _int(a, "ParentId", created)
    if ptype == 2 and parent is None:
        raise _Reject("missing_reference", "answer without ParentId", created)
    _check_size(a, "Body", created)
    return _Post(
        id=rid,
        type=ptype,
        parent=parent,
        created=created,  # type: ignore[arg-type]  # required=True
        edited=edited,
        score=_int(a, "Score", created),
        view_count=_int(a, "ViewCount", created),
        owner=_int(a, "OwnerUserId", created),
        attrs=a,
    )


def _check_comment(rid: int, a: dict[str, str], now: datetime) -> _Comment:
    created = _timestamp(a, "CreationDate", now, required=True)
    post = _int(a, "PostId", created)
    if post is None:
        raise _Reject("missing_reference", "comment without PostId", created)
    _check_size(a, "Text", created)
    score, user = _int(a, "Score", created), _int(a, "UserId", created)
    return _Comment(rid, post, created, score, user, a.get("Text", ""))  # type: ignore[arg-type]


def _check_vote(rid: int, a: dict[str, str], now: datetime) -> _Vote:
    created = _timestamp(a, "CreationDate", now, required=True)
    vtype = _int(a, "VoteTypeId", created)
    if vtype is None:
        raise _Reject("bad_number", "VoteTypeId is missing", created)
    post = _int(a, "PostId", created)
    if post is None:
        raise _Reject("missing_reference", "vote without PostId", created)
    return _Vote(rid, post, vtype, created, _int(a, "UserId", created))  # type: ignore[arg-type]


def _check_user(rid: int, a: dict[str, str], now: datetime) -> _User:
    created = _timestamp(a, "CreationDate", now, required=True)
    return _User(rid, created, _int(a, "Reputation", created), a.get("DisplayName"))  # type: ignore[arg-type]


def _redact_user_raw(raw: str) -> str:
    text = _PRIVATE_QUOTED.sub(r'\1\2"[redacted]"', raw)
    return _PRIVATE_REST.sub(r"\1=[redacted]", text)


def _user_payload(row: DumpRow) -> str:
    if row.attrs is None:
        return _redact_user_raw(row.raw)
    element = etree.Element("row", {k: row.attrs[k] for k in _USER_ATTRS if k in row.attrs})
    return etree.tostring(element, encoding="unicode")


def _raw_payload(row: DumpRow) -> str:
    return row.raw


# --------------------------------------------------------------------------------------------
# Per-file scan: validation, duplicates, interval membership, counting


@dataclass
class _Run:
    """State shared by the streams of one extract."""

    source: str
    since: datetime | None
    until: datetime | None
    now: datetime
    quarantine: QuarantineLog
    counts: dict[str, StreamCounts]
    #: (line, dates) of the row being decided: what :mod:`warehouse.sources.dump_cache` records.
    at: tuple[int, tuple[datetime | None, ...]] = (0, ())
    #: The byte-level date pre-filter (:mod:`warehouse.sources.dump_cache`), or None: parse every row.
    prefilter: bool = False

    def passed_over(self, path: Path, check: Callable[[int, dict[str, str], datetime], Any]) -> Any:
        """The pre-filter's bookkeeping for one file, or None when every row is parsed."""
        if not self.prefilter or self.since is None:  # an open start takes rows without a usable date
            return None
        from warehouse.sources.dump_cache import PassedOver

        return PassedOver(self, path, check)

    def belongs(self, dates: tuple[datetime | None, ...]) -> bool:
        """True when a record with these dates is part of this interval (see module docstring)."""
        usable = [d for d in dates if d is not None]
        if not usable:
            return self.since is None
        return any(in_window(d, self.since, self.until) for d in usable)

    def reject(self, stream: str, key: str | None, reason: str, detail: str, payload: str) -> None:
        self.counts[stream].read += 1
        self.counts[stream].quarantined += 1
        self.quarantine.add(stream, key, reason, detail, payload)

    def skip(self, stream: str, rule: str) -> None:
        self.counts[stream].skip(rule)

    def emit(self, stream: str) -> None:
        self.counts[stream].emitted += 1


def _scan(
    run: _Run,
    path: Path,
    stream: str,
    prefix: str,
    check: Callable[[int, dict[str, str], datetime], Any],
    payload: Callable[[DumpRow], str] = _raw_payload,
    passed: Any = None,
) -> Iterator[tuple[Any, bool]]:
    """Yield ``(record, in_interval)`` for every valid first-seen row of ``path``.

    Quarantines (and counts) faulty rows and skips exact duplicates, when they belong to the
    interval. For each yielded row with ``in_interval`` true, ``read`` is already counted and
    the caller must emit it or skip it by a rule. ``passed``: the date pre-filter's bookkeeping
    (:class:`warehouse.sources.dump_cache.PassedOver`; rows it passes over are parsed only when
    their Id is met again).
    """
    counts = run.counts[stream]
    run.quarantine.scope = path.name  # payload samples are capped per reason and file
    seen: dict[int, int] = {} if passed is None else passed.seen  # id → hash of the first valid row's attributes
    for row in iter_dump_rows(path, pass_over=None if passed is None else passed.pass_over):
        attrs = row.attrs
        if row.passed is not None:  # outside the interval by its dates: only its Id's fate matters
            yield from passed.defer(*row.passed)  # type: ignore[union-attr]
            continue
        if attrs is None:
            run.at = (row.line, ())
            if run.since is None:
                m = _ID_IN_RAW.search(row.raw)
                key = prefix + m.group(1) if m else f"{path.name}:{row.line}"
                run.reject(stream, key, row.reason or "malformed_xml", row.detail, payload(row))
            continue
        try:
            rid = _record_id(attrs)
        except _Reject as exc:
            when = None
            with contextlib.suppress(_Reject):
                when = _timestamp(attrs, "CreationDate", run.now, required=True)
            run.at = (row.line, (when,))
            if run.belongs((when,)):
                run.reject(
                    stream, f"{path.name}:{row.line}", exc.reason, f"{exc.detail} (line {row.line})", payload(row)
                )
            continue
        key = f"{prefix}{rid}"
        if passed is not None and rid in passed.offsets:  # an earlier passed-over row may hold the Id
            yield from passed.resolve(rid)
        try:
            record, error = check(rid, attrs, run.now), None
        except _Reject as exc:
            record, error = None, exc
        dates = record.dates if record is not None else (error.when,)  # type: ignore[union-attr]
        run.at = (row.line, dates)
        if rid in seen:
            if run.belongs(dates):
                if record is not None and seen[rid] == _attrs_hash(attrs):
                    counts.read += 1
                    run.skip(stream, EXACT_DUPLICATE_RULE)
                else:
                    detail = f"Id {rid} already read from an earlier row (line {row.line})"
                    run.reject(stream, key, "duplicate_id", detail, payload(row))
            continue
        if error is not None:
            if run.belongs(dates):
                run.reject(stream, key, error.reason, f"{error.detail} (line {row.line})", payload(row))
            continue
        seen[rid] = _attrs_hash(attrs)
        inside = run.belongs(dates)
        if inside:
            counts.read += 1
        yield record, inside


def _attrs_hash(attrs: dict[str, str]) -> int:
    return hash(tuple(sorted(attrs.items())))


def _type_name(names: dict[int, str], type_id: int) -> str:
    return names.get(type_id, "unknown")


# --------------------------------------------------------------------------------------------
# Streams

_PostsMap = dict[int, tuple[int, int | None]]  # post id → (PostTypeId, ParentId)


def _thread_of(posts: _PostsMap, post_id: int) -> int | None:
    entry = posts.get(post_id)
    if entry is None:
        return None
    ptype, parent = entry
    return post_id if ptype == 1 else parent


def _read_posts(run: _Run, path: Path) -> tuple[_PostsMap, list[tuple[Any, ...]]]:
    posts: _PostsMap = {}
    rows: list[tuple[Any, ...]] = []
    passed = run.passed_over(path, _check_post)
    for post, inside in _scan(run, path, "content", "p", _check_post, passed=passed):
        posts[post.id] = (post.type, post.parent)
        if not inside:
            continue
        kind = POST_KINDS.get(post.type)
        if kind is None:
            run.skip("content", f"not community content (PostTypeId {post.type}: {_type_name(POST_TYPES, post.type)})")
            continue
        a = post.attrs
        is_question = kind == "question"
        title = a.get("Title") if is_question else None
        body = html_to_text(a.get("Body"))
        own = f"p{post.id}"
        parent = None if is_question else f"p{post.parent}"
        rows.append(
            (
                run.source,
                own,
                kind,
                own if is_question else parent,
                parent,
                None if post.owner is None else str(post.owner),
                post.created,
                post.edited,
                title,
                body,
                parse_tags(a.get("Tags")) if is_question else [],
                post.score,
                post.view_count if is_question else None,
                content_hash(kind, title, body),
            )
        )
        run.emit("content")
    return (posts if passed is None else passed.posts_map(posts)), rows


def _read_comments(run: _Run, path: Path, posts: _PostsMap) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for c, inside in _scan(run, path, "content", "c", _check_comment, passed=run.passed_over(path, _check_comment)):
        if not inside:
            continue
        target = posts.get(c.post)
        if target is not None and target[0] not in POST_KINDS:
            run.skip(
                "content",
                f"not community content (comment on PostTypeId {target[0]}: {_type_name(POST_TYPES, target[0])})",
            )
            continue
        thread = _thread_of(posts, c.post)
        rows.append(
            (
                run.source,
                f"c{c.id}",
                "comment",
                None if thread is None else f"p{thread}",
                f"p{c.post}",
                None if c.user is None else str(c.user),
                c.created,
                None,
                None,
                c.text,
                [],
                c.score,
                None,
                content_hash("comment", None, c.text),
            )
        )
        run.emit("content")
    return rows


def _read_votes(run: _Run, path: Path, posts: _PostsMap) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for v, inside in _scan(run, path, "engagement_events", "v", _check_vote, passed=run.passed_over(path, _check_vote)):
        if not inside:
            continue
        event_type = VOTE_EVENT_TYPES.get(v.type)
        if event_type is None:
            run.skip(
                "engagement_events", f"not an engagement vote (VoteTypeId {v.type}: {_type_name(VOTE_TYPES, v.type)})"
            )
            continue
        target = posts.get(v.post)
        if target is not None and target[0] not in POST_KINDS:
            run.skip(
                "engagement_events",
                f"not community content (vote on PostTypeId {target[0]}: {_type_name(POST_TYPES, target[0])})",
            )
            continue
        user = None if v.user is None else str(v.user)
        rows.append((run.source, f"v{v.id}", event_type, f"p{v.post}", user, v.created, "day"))
        run.emit("engagement_events")
    return rows


def _read_users(run: _Run, path: Path) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for u, inside in _scan(run, path, "users", "", _check_user, _user_payload, run.passed_over(path, _check_user)):
        if inside:
            rows.append((run.source, str(u.id), u.name, u.created, u.reputation))
            run.emit("users")
    return rows


def _frame(rows: list[tuple[Any, ...]], stream: str) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, schema=core_schema(stream), orient="row"), stream)


def _dump_files(path: Path) -> dict[str, Path]:
    if not path.is_dir():
        raise FileNotFoundError(f"Stack Exchange dump folder not found: {path}")
    files = {}
    for name in REQUIRED_FILES:
        file = path / name
        if not file.is_file():
            raise FileNotFoundError(f"{name} missing from Stack Exchange dump folder {path}")
        files[name] = file
    return files


# --------------------------------------------------------------------------------------------
# Public entry point


def extract_stackexchange(
    path: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    now: datetime | None = None,
    cache_dir: Path | Literal[False] | None = None,
) -> Extract:
    """Extract one data interval of a Stack Exchange data dump into the canonical model.

    Args:
        path: the dump folder (holding Posts.xml, Comments.xml, Votes.xml, Users.xml, Tags.xml;
            PostHistory.xml is optional and not read).
        since, until: the data interval ``[since, until)``, UTC (naive, or aware and converted);
            None leaves that side open. See the module docstring for which records belong.
        source: namespaced source name; default ``stackexchange:<folder name lowercased>``.
        now: the clock for the "timestamp in the future" rule, UTC; default the current time.
        cache_dir: the parse cache's folder (:mod:`warehouse.sources.dump_cache`: the interval is
            cut from Parquet, built on first use); None: ``PULSE_DUMP_CACHE_IN_USE`` if set and not
            empty (:func:`pulse.settings.load_settings` sets it), else none; False: no cache.

    Returns:
        an :class:`~warehouse.canonical.Extract` whose frames have the canonical schemas,
        with ``synthetic=False``, ``timezone="UTC"``, the quarantined records, and counts per
        stream that reconcile (``read = emitted + skipped + quarantined``).

    Raises:
        FileNotFoundError: the folder, or one of its required files, is missing (named).
        UnsafeXMLError: a file declares a DTD or an entity (named with its line).
        ValueError: ``since`` is not before ``until``.
    """
    path = Path(path)
    files = _dump_files(path)
    since = None if since is None else _naive_utc(since)
    until = None if until is None else _naive_utc(until)
    if since is not None and until is not None and since >= until:
        raise ValueError(f"empty data interval: since={since.isoformat()} is not before until={until.isoformat()}")
    source = source or f"stackexchange:{path.name.lower()}"
    clock = datetime.now(UTC).replace(tzinfo=None) if now is None else _naive_utc(now)
    run = _Run(source, since, until, clock, QuarantineLog(source), {s: StreamCounts() for s in STREAMS})
    cache_dir = (os.environ.get("PULSE_DUMP_CACHE_IN_USE") or False) if cache_dir is None else cache_dir
    if cache_dir is not False:
        from warehouse.sources.dump_cache import cut_interval

        cut = cut_interval(Path(cache_dir), files, run)
        if cut is not None:
            return cut
    run.prefilter = True
    return _extract(run, files)


def _extract(run: _Run, files: dict[str, Path]) -> Extract:
    """Read the dump's files with ``run`` (its interval, clock and bookkeeping) into an :class:`Extract`."""
    posts, content_rows = _read_posts(run, files["Posts.xml"])
    content_rows += _read_comments(run, files["Comments.xml"], posts)
    event_rows = _read_votes(run, files["Votes.xml"], posts)
    user_rows = _read_users(run, files["Users.xml"])

    return run_extract(
        run, _frame(user_rows, "users"), _frame(content_rows, "content"), _frame(event_rows, "engagement_events")
    )


def run_extract(run: _Run, users: pl.DataFrame, content: pl.DataFrame, engagement_events: pl.DataFrame) -> Extract:
    """The :class:`Extract` of ``run`` (its interval, quarantine and counts) with the three canonical frames;
    shared by the parse (:func:`_extract`) and the parse cache's cut (:mod:`warehouse.sources.dump_cache`)."""
    return Extract(
        source=run.source,
        users=users,
        content=content,
        engagement_events=engagement_events,
        quarantine=run.quarantine.frame(),
        quarantine_counts=run.quarantine.counts_frame(),
        counts=run.counts,
        synthetic=False,
        timezone="UTC",
        since=run.since,
        until=run.until,
    )
