"""The erasure ledger: an append-only JSON-lines file outside what a restore rolls back
(tombstone hashes, request ids and times; never an id, name or text), synced from the
warehouse's privacy tables and re-applied by :func:`pulse.backup.restore_backup`."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# The erasure ledger


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's entries in file order (a torn last line, from a crash mid-append, is skipped)."""
    if not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("erasure ledger %s: skipped an unreadable line", path)
    return out


def append_ledger(path: Path, entries: Iterable[dict[str, Any]]) -> int:
    """Append ``entries`` (one JSON line each, fsynced) to the ledger at ``path``; return how many."""
    lines = [json.dumps(e, sort_keys=True, default=str) + "\n" for e in entries]
    if not lines:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    return len(lines)


def sync_ledger(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Append each tombstone of the open warehouse that the ledger lacks; return how many.

    An entry: ``at`` (the erasure's time, ISO, UTC), ``request_id``, ``source``,
    ``user_id_hash`` (the tombstone's keyed HMAC), ``key_id`` (the privacy key it was made
    with: :mod:`warehouse.privacy_keys`), ``mode``, ``alias`` and ``content_ids``
    (``redact``: the erased items, found by the alias; ``delete``: none left to find).
    """
    have = {(e["source"], e["user_id_hash"]) for e in read_ledger(path)}
    keyed = con.execute(  # a warehouse not yet migrated to the key ring (migration 011) has no key_id
        "select count(*) from information_schema.columns where table_schema = 'ops' and table_name = 'tombstones' "
        "and column_name = 'key_id'"
    ).fetchone()[0]
    rows = con.execute(
        "select t.source, t.user_id_hash, t.requested_at, t.request_id, t.erasure_mode, t.alias, "
        + ("t.key_id, " if keyed else "null, ")
        + "coalesce((select list(c.content_id order by c.content_id) from staging.content c "
        "where c.source = t.source and c.author_id = t.alias), []) from ops.tombstones t order by t.requested_at"
    ).fetchall()
    new = [
        {
            "at": at.isoformat(),
            "request_id": rid,
            "source": src,
            "user_id_hash": h,
            "mode": mode,
            "alias": alias,
            "key_id": key_id,
            "content_ids": list(ids),
        }
        for src, h, at, rid, mode, alias, key_id, ids in rows
        if (src, h) not in have
    ]
    return append_ledger(path, new)
