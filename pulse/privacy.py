"""Data-subject requests across the layers: export a user's data (GDPR Art. 15), forget a user (Art. 17).

A request reaches the warehouse, the review store, the marts and the serving snapshot, so it is
orchestrated here, above the layers it calls (docs/ARCHITECTURE.md, "Layers"), from primitives
each layer owns:

* :func:`export_user`: the warehouse's rows (:func:`warehouse.privacy.export_warehouse_rows`)
  plus the review store's decisions on the user's items.
* :func:`forget_user`: the warehouse erasure in one transaction with its tombstone
  (:func:`warehouse.privacy.erase_user`; each table's treatment is in :mod:`warehouse.privacy`),
  the review store's notes blanked (``ReviewStore.erase_content``; a SQLite store vacuumed),
  the live queue's items on them deleted (``LiveQueue.erase``), the marts rebuilt
  (:func:`transforms.runner.run_marts`), the snapshot republished from scratch
  (:func:`warehouse.publish.publish_snapshot`), then EVERY file that held the data compacted,
  always, not on a guess (the warehouse and its WAL rewritten by
  :func:`warehouse.privacy.compact_database`; the review store ``VACUUM`` + WAL checkpoint),
  then verified: the bytes of those files scanned for every checkable erased value. Only then
  is the request ``done``; residue makes it ``verification_failed`` (with the files). The
  request is logged in ``ops.privacy_requests`` with row counts and the verification only.
* :func:`rotate_key`: a new privacy key (:mod:`warehouse.privacy_keys`), adopted by the
  warehouse, the marts rebuilt with the new pseudonyms and the snapshot republished.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from transforms.runner import run_marts
from warehouse.db import connect, migrate
from warehouse.privacy import (
    ErasureMode,
    check_erasure_mode,
    compact_database,
    erase_user,
    export_warehouse_rows,
    log_request,
    scan_files,
)
from warehouse.privacy_keys import rotate_key_file, session_ring, use_privacy_keys
from warehouse.publish import publish_snapshot

if TYPE_CHECKING:
    from moderation.review_store import ReviewStore

log = logging.getLogger(__name__)


def export_user(
    con: duckdb.DuckDBPyConnection, source: str, user_id: str, *, store: ReviewStore | None = None
) -> dict[str, Any]:
    """Everything held about ``user_id`` of ``source``: a JSON-serialisable dict.

    The keys of :func:`warehouse.privacy.export_warehouse_rows`, with ``review_store_decisions``
    (the live store's decisions on their items, when ``store`` is given; else empty) after
    ``decisions``, and ``counts`` (rows per list key) last.

    Raises:
        warehouse.privacy.UserNotFoundError: nothing is held about that user in that source.
    """
    rows = export_warehouse_rows(con, source, user_id)
    rows.pop("counts")
    ids = [c["content_id"] for c in rows["content"]]
    parts = [store.decisions(source=source, content_id=cid) for cid in ids] if store is not None else []
    parts = [p for p in parts if p.height]
    in_store = json.loads(pl.concat(parts).write_json()) if parts else []
    doc: dict[str, Any] = {}
    for key, value in rows.items():
        doc[key] = value
        if key == "decisions":
            doc["review_store_decisions"] = in_store
    doc["counts"] = {k: len(v) for k, v in doc.items() if isinstance(v, list)}
    return doc


@dataclass
class ForgetReport:
    """What :func:`forget_user` did: ``counts`` of rows touched per table, and the checks.

    Attributes:
        request_id: the ``ops.privacy_requests`` row.
        mode: ``delete`` or ``redact``.
        counts: rows changed per table (``"staging.content": 137``, ...).
        compacted: the warehouse file was rewritten (always, unless ``compact=False``).
        residue: files where an erased value was still found after compaction (empty = clean).
        verification: what was scanned: ``files``, ``values_checked``, ``not_checkable``,
            ``result`` (``clean`` | ``residue``), ``residue_files``; also in the request row.
    """

    request_id: str
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    compacted: bool = False
    residue: dict[str, list[str]] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)


def forget_user(
    warehouse: Path | str,
    source: str,
    user_id: str,
    *,
    mode: ErasureMode = "redact",
    serving: Path | str | None = None,
    store: ReviewStore | None = None,
    now: datetime | None = None,
    extra_needles: Sequence[str] = (),
    compact: bool | None = None,
    mentions: bool = True,
    ledger: Path | str | None = None,
) -> ForgetReport:
    """Erase ``user_id`` of ``source`` everywhere; see :mod:`warehouse.privacy` for each table.

    Steps: erase in the warehouse (one transaction, with the tombstone and the request row),
    blank the review store's decisions on their items (``ReviewStore.erase_content``; SQLite
    stores are vacuumed so the old pages go too), rebuild the marts, republish the snapshot
    (when ``serving`` is given), ``FORCE CHECKPOINT``, then scan the warehouse and snapshot
    files for the user's display name (and ``extra_needles``): if DuckDB left the bytes in free
    blocks the warehouse is rewritten by :func:`~warehouse.privacy.compact_database`. The
    request row ends ``done`` (or ``failed``) with the counts; it never holds the erased data.

    Args:
        warehouse: the warehouse file (must not be open in another process).
        mode: ``redact`` (default; marts keep their counts) or ``delete``.
        now: the request time, naive UTC (default: now).
        extra_needles: more strings that must not survive (the display name and their titles
            of 16+ characters are always checked, unless other members' posts still contain them).
        compact: False skips rewriting the warehouse (tests use it to show why it is needed);
            True or None (default) always rewrites it.
        mentions: replace other members' ``@<name>`` mentions by ``@`` + the member's pseudonym
            (:func:`warehouse.privacy.replace_mentions`; setting ``privacy_replace_mentions``).
        ledger: the erasure ledger file (setting ``erasure_ledger``): when given, the erasure's
            tombstone is appended to it (:func:`pulse.backup.ledger.sync_ledger`) right after the
            request is logged, so a restore of an older backup re-applies it.

    A repeated request for an erased user (tombstoned, nothing left in staging) re-runs the
    remaining steps (marts, snapshot, compaction) and changes no row: safe after a crash.

    Raises:
        warehouse.privacy.UserNotFoundError: nothing is held about that user and no tombstone
            exists (nothing is changed or logged).
        ValueError: unknown ``mode``.
    """
    check_erasure_mode(mode)
    warehouse = Path(warehouse)
    con = connect(warehouse)
    try:
        migrate(con)
        erased = erase_user(con, source, user_id, mode=mode, now=now, extra_needles=extra_needles, mentions=mentions)
        counts, now = erased.counts, erased.requested_at
        review_file: str | None = None
        try:
            if store is not None:
                from pulse.api.live_queue import LiveQueue

                counts["review_store.decisions"] = store.erase_content(source, erased.content_ids)
                counts["review_store.live_queue_items"] = LiveQueue(store.engine).erase(source, erased.content_ids)
                review_file = _vacuum_sqlite_store(store)
            counts["marts.rebuilt"] = len(run_marts(con))
            if serving is not None:
                publish_snapshot(con, Path(serving))
                counts["serving.republished"] = 1
            con.execute("force checkpoint")
        except BaseException:
            log_request(con, erased.request_id, "forget", source, "failed", counts, now)
            raise
    finally:
        con.close()
    report = ForgetReport(request_id=erased.request_id, mode=mode, counts=counts)
    if compact is not False:
        compact_database(warehouse)
        report.compacted = True
    files = [warehouse, *([Path(serving)] if serving is not None else [])]
    if store is not None and review_file is not None:
        files.append(Path(review_file))
    found = scan_files(files, erased.needles)
    report.residue = {k: v for k, v in found.items() if v}
    report.verification = {
        "files": sorted(found),
        "values_checked": len(erased.needles),
        "not_checkable": erased.not_checkable,
        "result": "residue" if report.residue else "clean",
        "residue_files": sorted(report.residue),
    }
    if store is not None and review_file is None:
        report.verification["not_scanned"] = "review store on PostgreSQL (see SECURITY.md: VACUUM)"
    counts["compacted"] = int(report.compacted)
    status = "done" if not report.residue else "verification_failed"
    con = connect(warehouse)
    try:
        log_request(con, erased.request_id, "forget", source, status, counts, now, report.verification)
        con.execute("checkpoint")
        if ledger is not None:  # the erasure ledger a backup restore re-applies (pulse.backup.ledger)
            from pulse.backup.ledger import sync_ledger

            sync_ledger(con, Path(ledger))
    finally:
        con.close()
    if report.residue:
        log.error("forget %s: erased values still found in %s", erased.request_id, sorted(report.residue))
    log.info("forget %s: %s; verification %s", erased.request_id, counts, report.verification)
    return report


def _vacuum_sqlite_store(store: ReviewStore) -> str | None:
    """For a SQLite review store: checkpoint the WAL and VACUUM, so blanked notes leave the file.

    Returns:
        The SQLite file's path (to scan), or None for PostgreSQL or an in-memory store. On
        PostgreSQL plain ``VACUUM`` only marks dead tuples' space reusable (the bytes stay in
        the table's pages until overwritten); ``VACUUM FULL`` rewrites the table (SECURITY.md).
    """
    engine = getattr(store, "engine", None)
    if engine is None or engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    path = engine.url.database
    store.dispose()
    db = sqlite3.connect(path)
    try:
        db.execute("pragma wal_checkpoint(truncate)")
        db.execute("vacuum")
        db.execute("pragma wal_checkpoint(truncate)")
    finally:
        db.close()
    return str(path)


def rotate_key(warehouse: Path | str, *, serving: Path | str | None = None) -> dict[str, Any]:
    """Move the warehouse to a new privacy key; rebuild the marts (new pseudonyms) and republish.

    With the key file (``PULSE_PRIVACY_KEY`` unset): a new random key goes first in the file,
    the old ones stay after it, retired (:func:`warehouse.privacy_keys.rotate_key_file`). With
    ``PULSE_PRIVACY_KEY=NEW,OLD`` set by the operator: ``NEW`` is adopted. Either way the
    warehouse records the new key id as current and the old one as retired, with a
    ``rotate-key`` row in ``ops.privacy_requests``. Tombstones keep the key they were made with
    (an HMAC of an id cannot be re-keyed without the id): every retired key they name must stay
    in the ring, and is still used to recognise them.

    Returns:
        ``old_key_id``, ``new_key_id``, ``origin`` (where the key is), ``marts_rebuilt``,
        ``serving_republished``, ``tombstones_by_key_id`` (``{key id: tombstones}``).

    Raises:
        PrivacyKeyError: the configured key is not the warehouse's, or (environment keys) no
            new key was given; the message says what to set.
    """
    from_env = bool(os.environ.get("PULSE_PRIVACY_KEY", "").strip() or os.environ.get("PULSE_PSEUDONYM_KEY", ""))
    con = connect(warehouse)
    try:
        had = _current_key_id(con)
        migrate(con)  # checks the configured key; a ring NEW,OLD from the environment is adopted here
        if from_env:
            ring = session_ring(con)
            if had is None or ring.current.key_id == had:
                rotate_key_file()  # raises the instructions for keys from the environment
        else:
            had = session_ring(con).current.key_id
            ring, _ = rotate_key_file()
            use_privacy_keys(con, ring)  # adopts the new key (records the rotation)
        out: dict[str, Any] = {"old_key_id": had, "new_key_id": ring.current.key_id, "origin": ring.origin}
        out["marts_rebuilt"] = len(run_marts(con))
        out["serving_republished"] = serving is not None
        if serving is not None:
            publish_snapshot(con, Path(serving))
        by_key = "select coalesce(key_id, '?'), count(*) from ops.tombstones group by all order by all"
        out["tombstones_by_key_id"] = dict(con.execute(by_key).fetchall())
        con.execute("checkpoint")
    finally:
        con.close()
    log.warning("privacy key rotated: %s", out)
    return out


def _current_key_id(con: duckdb.DuckDBPyConnection) -> str | None:
    """The key id the warehouse records as current, or None (a new warehouse, or one before migration 011)."""
    try:
        row = con.execute("select key_id from ops.privacy_key_ids where status = 'current'").fetchall()
    except duckdb.CatalogException:
        return None
    return row[0][0] if row else None
