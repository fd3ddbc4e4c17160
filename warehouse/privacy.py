"""Privacy primitives of the warehouse: export, erasure, tombstones, retention, pseudonyms.

The warehouse-level halves of data-subject requests (GDPR Art. 15 access, Art. 17 erasure);
the requests themselves, which also reach the review store, the marts and the serving snapshot,
are orchestrated by :mod:`pulse.privacy` (docs/ARCHITECTURE.md, "Layers").

* :func:`export_warehouse_rows`: everything the warehouse holds about one user of one source,
  as a JSON-serialisable dict with a schema header.
* :func:`erase_user`: erases one user's personal data from the warehouse in one transaction and
  records a tombstone so a later load does not bring the user back (:func:`apply_tombstones`,
  called by :func:`warehouse.load.land`); returns the counts, their item ids and the strings
  that must not survive in the files (:func:`scan_files`; :func:`compact_database` rewrites the
  file when erased bytes survive in free blocks). Requests are logged in ``ops.privacy_requests``
  with row counts only (:func:`log_request`).
* :func:`apply_retention`: replaces raw bodies older than N days by a marker (scores, hashes and
  aggregates stay).
* :func:`pseudonym`: HMAC-SHA256 pseudonyms (RFC 2104) for marts and manager exports that need
  no identity; SQL twin ``ops.pseudonym(source, user_id)`` (migrations 008, 011).

Tombstone hashes and pseudonyms are keyed with the privacy key, kept outside the data files
(:mod:`warehouse.privacy_keys`: environment or an owner-only key file; the warehouse records
only key ids). A tombstone names the key it was made with; it matches an id whose hash under
any key of the ring equals its own (:func:`tombstone_hashes`).

Erasure, what happens to each table (``mode`` = ``settings.privacy_erasure_mode``):

=============================  =============================================================
``staging.users``              row deleted
``staging.content`` (theirs)   ``redact``: title/body replaced by :data:`ERASED_MARKER`,
                               ``author_id`` = the tombstone's random alias, ``content_hash``
                               recomputed (so thread, reply and vote counts in marts stay);
                               ``delete``: rows deleted, with the engagement events on them
``staging.engagement_events``  their events: ``user_id`` = alias, report message dropped
``moderation.scores``          rows of their texts' hashes, unless another item still has the
                               same hash (identical text by someone else: the score is theirs too)
``moderation.flags``           rows of their items deleted (redacted text is scored anew)
``moderation.languages``       rows of their items deleted (when the table exists)
``moderation.decisions``       ``note`` and ``scores_json`` blanked (who decided what stays:
                               the audit trail); :mod:`pulse.privacy` does the same in the
                               review store
``raw.*`` landing, quarantine  every row of theirs (by id, by their items' ids, or by their id
                               in a quarantined payload)
``quality.validation_results`` ``details`` blanked where they quote the user's id or name
=============================  =============================================================
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl

from warehouse.canonical import Extract, Spill, content_hash
from warehouse.db import frame, one
from warehouse.privacy_keys import KeyRing, session_ring

log = logging.getLogger(__name__)

ErasureMode = Literal["delete", "redact"]

#: Replaces an erased user's titles and bodies in ``redact`` mode.
ERASED_MARKER = "[erased at the author's request]"
#: Replaces bodies older than the retention period (``raw_body_retention_days``).
RETENTION_MARKER = "[body removed after the retention period]"
#: Skip rule under which a load counts records of a tombstoned (erased) user.
TOMBSTONE_RULE = "erased user (tombstone)"
#: Skip rule for engagement events on content an erased user wrote (``delete`` mode).
TOMBSTONE_CONTENT_RULE = "event on erased user's content (tombstone)"
#: Version of the export document's layout (bump when keys change).
EXPORT_SCHEMA_VERSION = 1
EXPORT_SCHEMA = "community-pulse/user-export"


class UserNotFoundError(LookupError):
    """The warehouse holds nothing about the requested user id in that source."""


# --------------------------------------------------------------------------------------------
# Keys, pseudonyms, tombstone hashes


def pseudonym(source: str, user_id: str | None, key: bytes) -> str | None:
    """``'u_'`` + the first 12 hex digits of HMAC-SHA256(key, source || 0x1f || user_id).

    Same value as the SQL macro ``ops.pseudonym`` (migration 008). None for a None id.
    Formula: RFC 2104 (HMAC) over SHA-256; 48 bits, so collisions are negligible below ~10^6 users.
    """
    if user_id is None:
        return None
    return "u_" + hmac.new(key, f"{source}\x1f{user_id}".encode(), hashlib.sha256).hexdigest()[:12]


def warehouse_pseudonym(con: duckdb.DuckDBPyConnection, source: str, user_id: str | None) -> str | None:
    """:func:`pseudonym` with the session's current privacy key (:func:`warehouse.privacy_keys.session_ring`)."""
    return pseudonym(source, user_id, session_ring(con).current.pseudonym_key)


def tombstone_hash(salt: bytes, source: str, user_id: str) -> str:
    """HMAC-SHA256(salt, source || 0x1f || user_id) as hex: a tombstone's only trace of the id."""
    return hmac.new(salt, f"{source}\x1f{user_id}".encode(), hashlib.sha256).hexdigest()


def tombstone_hashes(ring: KeyRing, source: str, user_id: str) -> list[str]:
    """The id's tombstone hash under every key of ``ring`` (current first): a tombstone matches one of them."""
    return [tombstone_hash(k.tombstone_key, source, user_id) for k in ring.keys]


def has_tombstone(con: duckdb.DuckDBPyConnection, source: str, user_id: str) -> bool:
    """Whether ``user_id`` of ``source`` was erased (a tombstone matches its hash under a key of the ring)."""
    hashes = tombstone_hashes(session_ring(con), source, user_id)
    return bool(
        one(
            con,
            "select count(*) from ops.tombstones where source = ? and user_id_hash in (select unnest(?::varchar[]))",
            [source, hashes],
        )[0]
    )


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _redacted_text(kind: str, title: str | None) -> tuple[str | None, str, str]:
    """(title, body, content_hash) of an item after redaction."""
    new_title = ERASED_MARKER if title else title
    return new_title, ERASED_MARKER, content_hash(kind, new_title, ERASED_MARKER)


# --------------------------------------------------------------------------------------------
# Export (right of access)


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return json.loads(df.write_json()) if df.height else []


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        one(
            con,
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        )[0]
    )


def _payload_pattern(user_id: str) -> str:
    """Regex finding ``user_id`` as a user reference inside a quarantined payload (XML or JSON)."""
    uid = re.escape(user_id)
    return (
        rf"(\b(OwnerUserId|UserId|LastEditorUserId)\s*=\s*[\"']{uid}[\"'])"
        rf"|(\"(author_id|user_id)\"\s*:\s*\"{uid}\")"
        rf"|(<row\b[^>]*\bId\s*=\s*[\"']{uid}[\"'][^>]*\bDisplayName\b)"
    )


def _quarantine_where() -> str:
    return (
        "source = ? and ((stream = 'users' and record_key = ?) "
        "or (stream = 'content' and record_key in (select unnest(?::varchar[]))) "
        "or regexp_matches(coalesce(payload, ''), ?))"
    )


def export_warehouse_rows(con: duckdb.DuckDBPyConnection, source: str, user_id: str) -> dict[str, Any]:
    """Everything the warehouse holds about ``user_id`` of ``source``: a JSON-serialisable dict.

    Keys: ``schema``, ``schema_version``, ``generated_at`` (ISO, UTC), ``source``, ``user_id``,
    ``profile`` (the ``staging.users`` row or None), ``content`` (their items, deleted and hidden
    included), ``engagement_events`` (cast by them), ``scores`` (of their items' texts),
    ``flags``, ``languages`` (when ``moderation.languages`` exists), ``decisions`` (warehouse
    copy), ``quarantine`` (bad records that are theirs), ``counts`` (rows per list key). Values
    are bound as parameters. :func:`pulse.privacy.export_user` adds the review store's copy.

    Raises:
        UserNotFoundError: nothing is held about that user in that source.
    """
    params = [source, user_id]
    profile = frame(con, "select * from staging.users where source = ? and user_id = ?", params)
    content = frame(
        con, "select * from staging.content where source = ? and author_id = ? order by created_at, content_id", params
    )
    events = frame(
        con,
        "select * from staging.engagement_events where source = ? and user_id = ? order by occurred_at, event_id",
        params,
    )
    ids = content["content_id"].to_list()
    hashes = content["content_hash"].unique().to_list()
    scores = frame(
        con,
        "select * from moderation.scores where content_hash in (select unnest(?::varchar[])) "
        "order by content_hash, model_id",
        [hashes],
    )
    flags = frame(
        con,
        "select * from moderation.flags where source = ? and content_id in (select unnest(?::varchar[])) "
        "order by content_id",
        [source, ids],
    )
    decisions = frame(
        con,
        "select * from moderation.decisions where source = ? and content_id in "
        "(select unnest(?::varchar[])) order by decided_at, decision_id",
        [source, ids],
    )
    languages = pl.DataFrame()
    if _table_exists(con, "moderation", "languages"):
        cols = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_schema = 'moderation' "
                "and table_name = 'languages'"
            ).fetchall()
        }
        if {"source", "content_id"} <= cols:
            languages = frame(
                con,
                "select * from moderation.languages where source = ? and content_id in (select unnest(?::varchar[]))",
                [source, ids],
            )
        elif "content_hash" in cols:
            languages = frame(
                con, "select * from moderation.languages where content_hash in (select unnest(?::varchar[]))", [hashes]
            )
    quarantine = frame(
        con,
        f"select * from raw.quarantine where {_quarantine_where()} order by stream, record_key",
        [source, user_id, ids, _payload_pattern(user_id)],
    )
    if profile.height == 0 and content.height == 0 and events.height == 0 and quarantine.height == 0:
        raise UserNotFoundError(f"no data held about user id {user_id!r} in source {source!r}")
    doc: dict[str, Any] = {
        "schema": EXPORT_SCHEMA,
        "schema_version": EXPORT_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "user_id": user_id,
        "profile": _rows(profile)[0] if profile.height else None,
        "content": _rows(content),
        "engagement_events": _rows(events),
        "scores": _rows(scores),
        "flags": _rows(flags),
        "languages": _rows(languages),
        "decisions": _rows(decisions),
        "quarantine": _rows(quarantine),
    }
    doc["counts"] = {k: len(v) for k, v in doc.items() if isinstance(v, list)}
    return doc


# --------------------------------------------------------------------------------------------
# Erasure (right to be forgotten)


def check_erasure_mode(mode: str) -> None:
    """Raise ValueError (naming the setting) unless ``mode`` is ``delete`` or ``redact``."""
    if mode not in ("delete", "redact"):
        raise ValueError(f"erasure mode must be 'delete' or 'redact', got {mode!r} (PULSE_PRIVACY_ERASURE_MODE)")


def log_request(
    con: duckdb.DuckDBPyConnection,
    request_id: str,
    kind: str,
    source: str,
    status: str,
    counts: dict[str, int] | None = None,
    requested_at: datetime | None = None,
    verification: dict[str, Any] | None = None,
) -> None:
    """Insert or update the ``ops.privacy_requests`` row ``request_id``: ``status`` and row counts, never data.

    ``status`` ``running`` leaves ``finished_at`` null; any other status (``done``, ``failed``,
    ``verification_failed``) stamps it now. ``verification`` (files scanned, values checked and
    not checkable, result; migration 009) is kept when None is passed.
    """
    con.execute(
        "insert into ops.privacy_requests (request_id, kind, source, requested_at, finished_at, status, counts_json, "
        "verification_json) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (request_id) do update set "
        "finished_at = excluded.finished_at, status = excluded.status, counts_json = excluded.counts_json, "
        "verification_json = coalesce(excluded.verification_json, ops.privacy_requests.verification_json)",
        [
            request_id,
            kind,
            source,
            requested_at or _utcnow(),
            None if status == "running" else _utcnow(),
            status,
            json.dumps(counts or {}, sort_keys=True),
            None if verification is None else json.dumps(verification, sort_keys=True),
        ],
    )


def log_export(con: duckdb.DuckDBPyConnection, source: str, doc: dict[str, Any]) -> str:
    """Record an export request (row counts only) in ``ops.privacy_requests``; return its id."""
    request_id = f"export__{uuid.uuid4().hex[:12]}"
    log_request(con, request_id, "export", source, "done", doc.get("counts", {}))
    return request_id


@dataclass
class Erasure:
    """What :func:`erase_user` did in the warehouse.

    Attributes:
        request_id: the ``ops.privacy_requests`` row, left ``running`` for the caller to finish
            with :func:`log_request`.
        requested_at: the request time (naive UTC), also the tombstone's.
        counts: rows changed per table (``"staging.content": 137``, ...) and
            ``mentions_in_others_posts_kept``.
        content_ids: the user's items (by id, or by the tombstone's alias after an earlier
            redaction): the review store's notes on them are blanked next.
        needles: the erased values that must not survive in the files (:func:`scan_files`): the
            display name, each title and body text, the caller's extra needles.
        not_checkable: how many erased values are too short (< :data:`MIN_CHECKABLE` characters)
            or still in other members' retained text to be checked by a byte scan.
    """

    request_id: str
    requested_at: datetime
    counts: dict[str, int]
    content_ids: list[str]
    needles: list[str]
    not_checkable: int = 0


#: Erased values shorter than this are not checked by the byte scan (they occur by chance).
MIN_CHECKABLE = 6


def checkable_values(con: duckdb.DuckDBPyConnection, values: Sequence[str]) -> tuple[list[str], int]:
    """Split erased ``values`` into (checkable, number not checkable).

    Not checkable: shorter than :data:`MIN_CHECKABLE` characters, or still contained in a
    retained title or body of ``staging.content`` (another member's own words, e.g. a quote or
    a mention that was not replaced); a byte scan would find those by right, not by residue.
    """
    vals = list(dict.fromkeys(v for v in values if v))
    long = [v for v in vals if len(v) >= MIN_CHECKABLE]
    kept = (
        {
            r[0]
            for r in con.execute(
                "select n from unnest(?::varchar[]) t(n) where exists (select 1 from staging.content "
                "where contains(coalesce(title, '') || chr(10) || coalesce(body_text, ''), n))",
                [long],
            ).fetchall()
        }
        if long
        else set()
    )
    ok = [v for v in long if v not in kept]
    return ok, len(vals) - len(ok)


def erase_user(
    con: duckdb.DuckDBPyConnection,
    source: str,
    user_id: str,
    *,
    mode: ErasureMode = "redact",
    now: datetime | None = None,
    extra_needles: Sequence[str] = (),
    mentions: bool = True,
) -> Erasure:
    """Erase ``user_id`` of ``source`` from the warehouse; see the module docstring for each table.

    One transaction holds the deletes and redactions, the tombstone and the request row (status
    ``running``). A repeated request for an erased user (tombstoned, nothing left in staging)
    changes no row, so the caller can finish its remaining steps after a crash.

    Args:
        mode: ``redact`` (default; marts keep their counts) or ``delete``.
        now: the request time, naive UTC (default: now).
        extra_needles: more strings to check the files for (see :attr:`Erasure.needles`).
        mentions: replace other members' ``@<name>`` mentions of the user by ``@`` + their
            pseudonym (:func:`replace_mentions`; ``PULSE_PRIVACY_REPLACE_MENTIONS``) in
            ``staging.content`` and ``raw.content``; the changed items' ``content_hash`` changes,
            so they are re-scored at the next run.

    Raises:
        UserNotFoundError: nothing is held about that user and no tombstone exists (nothing is
            changed or logged).
        ValueError: unknown ``mode``.
    """
    check_erasure_mode(mode)
    now = now or _utcnow()
    request_id = f"forget__{uuid.uuid4().hex[:12]}"
    try:
        doc = export_warehouse_rows(con, source, user_id)
    except UserNotFoundError:
        if not has_tombstone(con, source, user_id):
            raise  # nothing held, nothing erased before: nothing is changed or logged
        # Erased before (e.g. a crash before the marts were rebuilt): the caller finishes the remaining steps.
        doc = {"profile": None, "content": []}
    name = (doc["profile"] or {}).get("display_name")
    texts = [t for c in doc["content"] for t in (c.get("title"), c.get("body_text")) if t]
    values = list(dict.fromkeys(n for n in (name, *texts, *extra_needles) if n))
    del doc
    counts, ids = _erase_in_warehouse(con, source, user_id, mode, request_id, now, mentions)
    # Other members' own posts may mention the name or quote a text: theirs, not erased.
    needles, not_checkable = checkable_values(con, values)
    counts["mentions_in_others_posts_kept"] = int(bool(name) and name not in needles and len(name) >= MIN_CHECKABLE)
    return Erasure(request_id, now, counts, ids, needles, not_checkable)


def mention_forms(name: str) -> list[str]:
    """The handles an @-mention of display name ``name`` uses: Stack Exchange's (spaces removed) and as written."""
    return list(dict.fromkeys(f for f in (name.replace(" ", ""), name) if f))


def replace_mentions(text: str, name: str, replacement: str) -> str:
    """``text`` with each ``@<handle>`` of ``name`` (:func:`mention_forms`, case-insensitive, not
    followed by a letter, digit or ``_``) replaced by ``@<replacement>``."""
    pattern = "|".join(re.escape(f) for f in sorted(mention_forms(name), key=len, reverse=True))
    return re.sub(rf"@(?:{pattern})(?!\w)", lambda _m: "@" + replacement, text, flags=re.IGNORECASE)


def mention_hash(key: bytes, source: str, handle: str) -> str:
    """``'<len>:<hex>'``: HMAC-SHA256(key, "mention" || source || lower(handle)) with the handle's
    length, a tombstone's trace of one @-mention handle (:func:`replace_erased_mentions`)."""
    digest = hmac.new(key, f"mention\x1f{source}\x1f{handle.lower()}".encode(), hashlib.sha256).hexdigest()
    return f"{len(handle)}:{digest}"


def replace_erased_mentions(text: str, source: str, keys: Sequence[bytes], handles: dict[str, str]) -> str:
    """``text`` with every ``@<handle>`` whose :func:`mention_hash` under one of ``keys`` is in
    ``handles`` (``mention hash -> replacement``) replaced by ``@<replacement>``; a handle must not
    be followed by a letter, digit or ``_``, as in :func:`replace_mentions`. The erased names
    themselves are never stored: each ``@`` is tried at every stored handle length."""
    if "@" not in text or not handles:
        return text
    lengths = sorted({int(h.split(":", 1)[0]) for h in handles}, reverse=True)
    out, i = [], 0
    while (at := text.find("@", i)) != -1:
        out.append(text[i:at])
        for n in lengths:
            cand = text[at + 1 : at + 1 + n]
            if len(cand) < n or (at + 1 + n < len(text) and (text[at + 1 + n].isalnum() or text[at + 1 + n] == "_")):
                continue
            hit = next((handles[h] for k in keys if (h := mention_hash(k, source, cand)) in handles), None)
            if hit is not None:
                out.append("@" + hit)
                i = at + 1 + n
                break
        else:
            out.append("@")
            i = at + 1
    out.append(text[i:])
    return "".join(out)


def _replace_mentions_in(
    con: duckdb.DuckDBPyConnection, table: str, source: str, user_id: str, name: str, replacement: str
) -> int:
    """Replace @-mentions of ``name`` in other members' bodies of ``table`` (staging or raw content);
    the content hash is recomputed, so the item is re-scored at the next run. Returns rows changed."""
    forms = ["@" + f.lower() for f in mention_forms(name)]
    rows = con.execute(
        f"select content_id, kind, title, body_text from {table} where source = ? and author_id is distinct from ? "
        "and list_has_any(list_transform(?::varchar[], lambda f: contains(lower(coalesce(body_text, '')), f)), [true])",
        [source, user_id, forms],
    ).fetchall()
    changed = 0
    for cid, kind, title, body in rows:
        new = replace_mentions(body, name, replacement)
        if new != body:
            con.execute(
                f"update {table} set body_text = ?, content_hash = ? where source = ? and content_id = ?",
                [new, content_hash(kind, title, new), source, cid],
            )
            changed += 1
    return changed


def _erase_in_warehouse(
    con: duckdb.DuckDBPyConnection,
    source: str,
    user_id: str,
    mode: ErasureMode,
    request_id: str,
    now: datetime,
    mentions: bool = True,
) -> tuple[dict[str, int], list[str]]:
    """The warehouse part of an erasure, in one transaction. Returns (counts, content ids)."""
    counts: dict[str, int] = {}
    params = [source, user_id]
    ring = session_ring(con)
    existing = con.execute(
        "select alias from ops.tombstones where source = ? and user_id_hash in (select unnest(?::varchar[]))",
        [source, tombstone_hashes(ring, source, user_id)],
    ).fetchall()
    alias = existing[0][0] if existing else f"erased_{secrets.token_hex(6)}"
    # Their items: by id, or (a repeated request after redaction) by the alias, so the review
    # store's notes on them are blanked even if an earlier attempt stopped before that step.
    mine = frame(
        con,
        "select content_id, kind, title, content_hash, author_id = ? as is_theirs from staging.content "
        "where source = ? and author_id in (?, ?)",
        [user_id, source, user_id, alias],
    )
    ids = mine["content_id"].to_list()
    mine = mine.filter(pl.col("is_theirs"))
    old_hashes = mine["content_hash"].unique().to_list()
    display = con.execute("select display_name from staging.users where source = ? and user_id = ?", params).fetchall()
    names = [r[0] for r in display if r[0]]

    def changed(table: str, sql: str, args: list[Any]) -> None:
        n = con.execute(sql + " returning 1", args).fetchall()
        counts[table] = counts.get(table, 0) + len(n)

    con.execute("begin transaction")
    try:
        con.execute(
            "insert into ops.tombstones (source, user_id_hash, requested_at, request_id, erasure_mode, alias, key_id) "
            "values (?, ?, ?, ?, ?, ?, ?) on conflict (source, user_id_hash) do update set "
            "requested_at = excluded.requested_at, request_id = excluded.request_id, erasure_mode = excluded.erasure_mode",
            [source, tombstone_hash(ring.current.tombstone_key, source, user_id), now, request_id, mode, alias,
             ring.current.key_id],
        )  # fmt: skip
        if mode == "delete":
            changed(
                "staging.engagement_events (on their content)",
                "delete from staging.engagement_events where source = ? and content_id in (select unnest(?::varchar[]))",
                [source, ids],
            )
            changed(
                "staging.content",
                "delete from staging.content where source = ? and content_id in (select unnest(?::varchar[]))",
                [source, ids],
            )
        else:
            redacted = (
                mine.with_columns(
                    pl.struct("kind", "title")
                    .map_elements(
                        lambda r: list(_redacted_text(r["kind"], r["title"])), return_dtype=pl.List(pl.String)
                    )
                    .alias("r")
                ).select(
                    "content_id",
                    pl.col("r").list.get(0).alias("new_title"),
                    pl.col("r").list.get(1).alias("new_body"),
                    pl.col("r").list.get(2).alias("new_hash"),
                )
                if mine.height
                else pl.DataFrame(
                    schema={
                        "content_id": pl.String,
                        "new_title": pl.String,
                        "new_body": pl.String,
                        "new_hash": pl.String,
                    }
                )
            )
            con.register("_redacted", redacted)
            try:
                changed(
                    "staging.content",
                    "update staging.content c set title = r.new_title, body_text = r.new_body, "
                    "content_hash = r.new_hash, author_id = ? from _redacted r "
                    "where c.source = ? and c.content_id = r.content_id",
                    [alias, source],
                )
            finally:
                con.unregister("_redacted")
        changed(
            "staging.engagement_events",
            "update staging.engagement_events set user_id = ?, properties = case when properties is null then null "
            "else json_object('flag_type', json_extract_string(properties, '$.flag_type'))::varchar end "
            "where source = ? and user_id = ?",
            [alias, source, user_id],
        )
        if mentions and names:
            handle = warehouse_pseudonym(con, source, user_id) or ""
            for table in ("staging.content", "raw.content"):
                counts[f"{table} (mentions replaced)"] = sum(
                    _replace_mentions_in(con, table, source, user_id, n, handle) for n in names
                )
            # keyed traces of the handles, so a later load's mentions are replaced too (apply_tombstones)
            traces = sorted(
                {mention_hash(ring.current.tombstone_key, source, f) for n in names for f in mention_forms(n)}
            )
            con.execute(
                "update ops.tombstones set mention_hashes = list_distinct(list_concat(coalesce(mention_hashes, []), ?::varchar[])), "
                "mention_handle = ? where source = ? and user_id_hash = ?",
                [traces, handle, source, tombstone_hash(ring.current.tombstone_key, source, user_id)],
            )
        changed("staging.users", "delete from staging.users where source = ? and user_id = ?", params)
        changed(
            "moderation.scores",
            "delete from moderation.scores where content_hash in (select unnest(?::varchar[])) "
            "and content_hash not in (select content_hash from staging.content)",
            [old_hashes],
        )
        changed(
            "moderation.flags",
            "delete from moderation.flags where source = ? and content_id in (select unnest(?::varchar[]))",
            [source, ids],
        )
        if _table_exists(con, "moderation", "languages"):
            cols = {
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_schema = 'moderation' "
                    "and table_name = 'languages'"
                ).fetchall()
            }
            if {"source", "content_id"} <= cols:
                changed(
                    "moderation.languages",
                    "delete from moderation.languages where source = ? and content_id in (select unnest(?::varchar[]))",
                    [source, ids],
                )
            elif "content_hash" in cols:
                changed(
                    "moderation.languages",
                    "delete from moderation.languages where content_hash in (select unnest(?::varchar[])) "
                    "and content_hash not in (select content_hash from staging.content)",
                    [old_hashes],
                )
        changed(
            "moderation.decisions",
            "update moderation.decisions set note = null, scores_json = null where source = ? "
            "and content_id in (select unnest(?::varchar[])) and (note is not null or scores_json is not null)",
            [source, ids],
        )
        changed(
            "raw.quarantine",
            f"delete from raw.quarantine where {_quarantine_where()}",
            [source, user_id, ids, _payload_pattern(user_id)],
        )
        changed("raw.users", "delete from raw.users where source = ? and user_id = ?", params)
        changed("raw.content", "delete from raw.content where source = ? and author_id = ?", params)
        changed("raw.engagement_events", "delete from raw.engagement_events where source = ? and user_id = ?", params)
        quoted = [f'"{user_id}"', f"'{user_id}'", *names]
        changed(
            "quality.validation_results",
            "update quality.validation_results set details = null where details is not null and "
            "list_has_any(list_transform(?::varchar[], lambda n: contains(details, n)), [true])",
            [quoted],
        )
        log_request(con, request_id, "forget", source, "running", counts, now)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return counts, ids


def scan_files(paths: Iterable[Path | str], needles: Sequence[str]) -> dict[str, list[str]]:
    """Which ``needles`` occur in the raw bytes of each file and its WAL / journal, UTF-8 encoded.

    The companions scanned: DuckDB's ``<file>.wal``, SQLite's ``<file>-wal`` and ``<file>-journal``.
    A byte scan cannot see text that a file stores compressed (DuckDB's FSST dictionary
    compression of strings); values it finds are certainly there, a clean scan is the check
    the issue asks for, not a proof (SECURITY.md).

    Returns:
        ``{file path: [needles found]}`` for every existing file scanned.
    """
    out: dict[str, list[str]] = {}
    for p in paths:
        for f in (Path(p), Path(str(p) + ".wal"), Path(str(p) + "-wal"), Path(str(p) + "-journal")):
            if f.is_file():
                data = f.read_bytes()
                out[str(f)] = [n for n in needles if n.encode("utf-8") in data]
    return out


def compact_database(path: Path | str) -> None:
    """Rewrite the DuckDB file at ``path`` into a fresh file and atomically replace it.

    DuckDB marks the blocks of deleted or updated rows free but does not overwrite them, so
    erased text can survive in the file until those blocks are reused. ``COPY FROM DATABASE``
    writes only live data into a new file, which then ``os.replace``s the old one.

    Raises:
        duckdb.Error: the copy failed (the original file is left as it was).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".compact")
    for stale in (tmp, Path(str(tmp) + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(":memory:")
    try:
        src = str(path).replace("'", "''")
        dst = str(tmp).replace("'", "''")
        con.execute(f"attach '{src}' as src")  # ATTACH takes no bound parameters
        con.execute(f"attach '{dst}' as dst")
        con.execute("copy from database src to dst")
        con.execute("checkpoint dst")
        con.execute("detach dst")
        con.execute("detach src")
    finally:
        con.close()
    os.replace(tmp, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# At load: tombstones; after load: retention


def _trace_legacy_tombstones(con: duckdb.DuckDBPyConnection, extract: Extract, ring: KeyRing, legacy: set[str]) -> int:
    """Give tombstones made before migration 012 their mention traces, from the extract's user rows.

    Such a tombstone (``mention_hashes`` null, in ``legacy``) has no record of the member's
    handles, so a re-load could not find other members' @-mentions of them. A source that
    still carries the member (a re-read dump, a platform that did not erase them) hands over
    their display name in its user row, before :func:`apply_tombstones` drops it: the traces
    are derived from it exactly as :func:`erase_user` derives them (:func:`mention_forms`,
    :func:`mention_hash` under the current key; the pseudonym as the replacement), and stored
    on the tombstone, so this and every later load replaces the mentions. The name itself is
    never stored. Tombstones whose member is absent from the extract stay untraced.

    Returns:
        Tombstones traced.
    """
    traced = 0
    for uid, name in extract.users.select("user_id", "display_name").drop_nulls().iter_rows():
        for k in ring.keys:
            if (h := tombstone_hash(k.tombstone_key, extract.source, uid)) not in legacy:
                continue
            forms = mention_forms(name)
            if forms:
                traces = sorted({mention_hash(ring.current.tombstone_key, extract.source, f) for f in forms})
                con.execute(
                    "update ops.tombstones set mention_hashes = ?::varchar[], mention_handle = ? "
                    "where source = ? and user_id_hash = ?",
                    [traces, warehouse_pseudonym(con, extract.source, uid) or "", extract.source, h],
                )
                traced += 1
            break
    if traced:
        log.info("mention traces derived for %d tombstone(s) from before migration 012 (%s)", traced, extract.source)
    return traced


def _tombstone_spill(
    con: duckdb.DuckDBPyConnection,
    extract: Extract,
    spill: Spill,
    alias_of: pl.DataFrame,
    gone_ids: list[str],
    skip: Callable[[str, str, int], None],
    out: dict[str, int],
) -> None:
    """:func:`apply_tombstones` for engagement events handed over on disk (:class:`~warehouse.canonical.Spill`).

    As for the frame: events on content in ``gone_ids`` are left out (skip rule
    :data:`TOMBSTONE_CONTENT_RULE`), tombstoned members' events (``alias_of``: ``uid``,
    ``alias``) get the alias and keep only the report's ``flag_type``. DuckDB writes the result
    to a new Parquet file beside the spill, which replaces it in ``extract.spilled``.
    """
    con.register("_alias_of", alias_of)
    try:
        scan = "from read_parquet($path) e left join _alias_of a on a.uid = e.user_id"
        params = {"path": str(spill.path), "gone": gone_ids}
        n_gone, n_ev = one(
            con,
            "select count(*) filter (where list_contains($gone::varchar[], e.content_id)), "
            "count(*) filter (where a.uid is not null and not list_contains($gone::varchar[], e.content_id)) " + scan,
            params,
        )
        skip("engagement_events", TOMBSTONE_CONTENT_RULE, n_gone)
        if not (n_gone or n_ev):
            return
        new = spill.path.with_name(f"tombstoned-{uuid.uuid4().hex[:8]}-{spill.path.name}")
        flag = "coalesce(to_json(json_extract_string(e.properties, '$.flag_type'))::varchar, 'null')"
        target = str(new).replace("'", "''")
        con.execute(
            "copy (select e.* replace (coalesce(a.alias, e.user_id) as user_id, "
            "case when a.uid is null or e.properties is null then e.properties "
            f"else '{{\"flag_type\": ' || {flag} || '}}' end as properties) "  # as json.dumps writes it
            f"{scan} where not list_contains($gone::varchar[], e.content_id)) to '{target}' (format parquet)",
            params,
        )
        extract.spilled["engagement_events"] = Spill(new, spill.rows - n_gone)
        out["engagement_events"] = out.get("engagement_events", 0) + n_ev
    finally:
        con.unregister("_alias_of")


def apply_tombstones(con: duckdb.DuckDBPyConnection, extract: Extract) -> dict[str, int]:
    """Drop or redact an extract's records of tombstoned users, before it lands. In place.

    Users' rows and (``delete`` mode) their content and the events on it are left out and
    counted under the skip rules :data:`TOMBSTONE_RULE` / :data:`TOMBSTONE_CONTENT_RULE`, so
    ``read = emitted + skipped + quarantined`` still holds; in ``redact`` mode their content is
    redacted exactly as :func:`erase_user` did (so a re-load leaves staging unchanged). Their
    events get the alias as ``user_id``; quarantined records that are theirs are dropped (moved
    from ``quarantined`` to the skip rule). Other members' ``@``-mentions of an erased member
    (a re-read dump still holds them) are replaced by the member's pseudonym again, found
    through the tombstone's keyed handle traces (:func:`replace_erased_mentions`), so a re-load
    never brings an erased name back.

    Returns:
        Records affected per stream (empty when the source has no tombstones), plus
        ``"content (mentions replaced)"``.
    """
    stones = frame(
        con,
        "select user_id_hash, erasure_mode, alias, mention_hashes, mention_handle from ops.tombstones where source = ?",
        [extract.source],
    )
    if stones.height == 0:
        return {}
    ring = session_ring(con)
    out: dict[str, int] = {}
    legacy = {r["user_id_hash"] for r in stones.iter_rows(named=True) if r["mention_hashes"] is None}
    if legacy and extract.users.height and _trace_legacy_tombstones(con, extract, ring, legacy):
        stones = frame(
            con,
            "select user_id_hash, erasure_mode, alias, mention_hashes, mention_handle from ops.tombstones "
            "where source = ?",
            [extract.source],
        )
    # other members' @-mentions of erased members (re-read from a dump or a platform) become the pseudonym again
    handles = {
        h: r["mention_handle"]
        for r in stones.iter_rows(named=True)
        if r["mention_handle"]
        for h in r["mention_hashes"] or []
    }
    if handles and extract.content.height:
        keys = [k.tombstone_key for k in ring.keys]
        rows = extract.content.select("kind", "title", "body_text", "content_hash").rows()
        bodies, hashes, n = [], [], 0
        for kind, title, body, old_hash in rows:
            new = replace_erased_mentions(body, extract.source, keys, handles) if body else body
            bodies.append(new)
            hashes.append(old_hash if new == body else content_hash(kind, title, new))
            n += new != body
        if n:
            extract.content = extract.content.with_columns(
                body_text=pl.Series(bodies, dtype=pl.String), content_hash=pl.Series(hashes, dtype=pl.String)
            )
            out["content (mentions replaced)"] = n
    by_hash = {r["user_id_hash"]: (r["erasure_mode"], r["alias"]) for r in stones.iter_rows(named=True)}
    users, content, events = (extract.frame(s) for s in ("users", "content", "engagement_events"))
    candidates = (
        set(users["user_id"].drop_nulls().to_list())
        | set(content["author_id"].drop_nulls().to_list())
        | set(events["user_id"].drop_nulls().to_list())
    )

    def tombstoned(uids: Iterable[str]) -> dict[str, tuple[str, str]]:
        return {
            uid: by_hash[h]
            for uid in uids
            for k in ring.keys
            if (h := tombstone_hash(k.tombstone_key, extract.source, uid)) in by_hash
        }

    hit = tombstoned(candidates)
    spill = extract.spilled.get("engagement_events")  # events on disk: their members read in chunks
    if spill is not None:
        con.execute("select distinct user_id from read_parquet(?) where user_id is not null", [str(spill.path)])
        while chunk := con.fetchmany(50_000):
            hit.update(tombstoned(u for (u,) in chunk))
    if not hit:
        return out
    ids = list(hit)
    alias_of = pl.DataFrame({"uid": ids, "alias": [hit[u][1] for u in ids]})
    deleting = [u for u in ids if hit[u][0] == "delete"]

    def skip(stream: str, rule: str, n: int) -> None:
        if n:
            extract.counts[stream].skip(rule, n)
            extract.counts[stream].emitted -= n
            out[stream] = out.get(stream, 0) + n

    # users
    drop = users["user_id"].is_in(ids)
    skip("users", TOMBSTONE_RULE, int(drop.sum()))
    extract.users = users.filter(~drop)
    # content
    gone = content.filter(pl.col("author_id").is_in(deleting))
    gone_ids = gone["content_id"].to_list()
    skip("content", TOMBSTONE_RULE, gone.height)
    content = content.filter(~pl.col("author_id").is_in(deleting) | pl.col("author_id").is_null())
    redact = pl.col("author_id").is_in(ids)
    n_redact = int(content.select(redact.sum()).item() or 0)
    if n_redact:
        red = (
            content.filter(redact)
            .with_columns(
                pl.struct("kind", "title")
                .map_elements(lambda r: list(_redacted_text(r["kind"], r["title"])), return_dtype=pl.List(pl.String))
                .alias("_r")
            )
            .join(alias_of, left_on="author_id", right_on="uid", how="left")
            .with_columns(
                pl.col("_r").list.get(0).alias("title"),
                pl.col("_r").list.get(1).alias("body_text"),
                pl.col("_r").list.get(2).alias("content_hash"),
                pl.col("alias").alias("author_id"),
            )
            .select(content.columns)
        )
        content = pl.concat([content.filter(~redact | pl.col("author_id").is_null()), red])
        out["content"] = out.get("content", 0) + n_redact
    extract.content = content
    # events
    on_gone = events["content_id"].is_in(gone_ids)
    skip("engagement_events", TOMBSTONE_CONTENT_RULE, int(on_gone.sum()))
    events = events.filter(~on_gone)
    theirs = pl.col("user_id").is_in(ids)
    n_ev = int(events.select(theirs.sum()).item() or 0)
    if n_ev:
        ev = (
            events.filter(theirs)
            .join(alias_of, left_on="user_id", right_on="uid", how="left")
            .with_columns(
                pl.col("alias").alias("user_id"),
                pl.col("properties").map_elements(
                    lambda p: json.dumps({"flag_type": json.loads(p).get("flag_type")}) if p else None,
                    return_dtype=pl.String,
                ),
            )
            .select(events.columns)
        )
        events = pl.concat([events.filter(~theirs | pl.col("user_id").is_null()), ev])
        out["engagement_events"] = out.get("engagement_events", 0) + n_ev
    extract.engagement_events = events
    if spill is not None:  # the same in SQL, into a new file beside the spill
        _tombstone_spill(con, extract, spill, alias_of, gone_ids, skip, out)
    # quarantine
    q = extract.quarantine
    if q.height:
        pattern = "|".join(f"(?:{_payload_pattern(u)})" for u in ids)
        mask = (
            ((pl.col("stream") == "users") & pl.col("record_key").is_in(ids))
            | ((pl.col("stream") == "content") & pl.col("record_key").is_in(gone_ids))
            | pl.col("payload").fill_null("").str.contains(pattern)
        )
        dropped = q.filter(mask)
        for stream, n in dropped.group_by("stream").len().iter_rows():
            extract.counts[stream].quarantined -= n
            extract.counts[stream].skip(TOMBSTONE_RULE, n)
            out[stream] = out.get(stream, 0) + n
        extract.quarantine = q.filter(~mask)
    log.info("tombstones applied to %s: %s", extract.source, out)
    return out


def apply_retention(con: duckdb.DuckDBPyConnection, days: int | None, *, now: datetime) -> int:
    """Replace ``staging.content.body_text`` of items created more than ``days`` days before ``now``.

    The body becomes :data:`RETENTION_MARKER`; title, ``content_hash`` (so the item is not
    re-scored), scores, flags and every aggregate stay. ``days`` None keeps bodies forever.
    A re-load of old items brings their bodies back until the same load step applies this
    again (the load step always calls it after the upsert).

    Returns:
        Items redacted now.
    """
    if days is None:
        return 0
    if days < 0:
        raise ValueError(f"raw_body_retention_days must be >= 0 or unset, got {days}")
    cutoff = now - timedelta(days=days)
    n = con.execute(
        "update staging.content set body_text = ? where created_at < ? and body_text is distinct from ? "
        "and body_text is not null returning 1",
        [RETENTION_MARKER, cutoff, RETENTION_MARKER],
    ).fetchall()
    if n:
        log.info("retention: %d bodies older than %d days replaced", len(n), days)
    return len(n)
