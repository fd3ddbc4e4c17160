"""Backups and restore (issue #15): consistent, verified, encrypted, retained, erasure-safe.

One backup is a folder ``DEST/<backup_id>/`` (a local folder or any fsspec URL, e.g.
``s3://bucket/prefix``) of encrypted files and an encrypted manifest written last (a folder
without ``manifest.json.enc`` is an unfinished backup):

=================================  ==========================================================
``warehouse/schema.sql.enc``       DuckDB ``EXPORT DATABASE``: the DDL (schemas, tables with
``warehouse/load.sql.enc``         their keys, macros, views) and one Parquet file (zstd) per
``warehouse/<table>.parquet.enc``  table. Chosen over a file copy: Parquet and SQL survive
                                   DuckDB upgrades (the storage format is versioned), the
                                   export holds live rows only (a file copy would carry free
                                   blocks, where erased text can linger: see
                                   :func:`warehouse.privacy.compact_database`), and it is 3-20x
                                   smaller. The price is restore time (an import, not a rename):
                                   measured in BENCHMARKS.md, ``bench:backup``.
``review_store/review.sqlite.enc`` SQLite store: the online backup API
                                   (``sqlite3.Connection.backup``): a consistent copy while
                                   moderators keep working.
``review_store/review.pgdump.enc`` PostgreSQL store: ``pg_dump --format=custom`` of our tables
                                   (``review_*``, ``api_keys``, ``live_queue_items``,
                                   ``webhook_deliveries``), one snapshot transaction.
``config/pulse.toml.enc``          the config file, when there is one (it holds no secrets:
                                   :mod:`pulse.settings` refuses them).
``ledger/erasure_ledger.jsonl.enc`` a copy of the erasure ledger (below).
``manifest.json.enc``              format, backup id, ``taken_at``, product / DuckDB version,
                                   migration level, watermarks, rows and checksum per table,
                                   review-store rows per table, and size + SHA-256 of every file.
=================================  ==========================================================

The serving snapshot is not copied: restore republishes it from the restored warehouse
(:func:`warehouse.publish.publish_snapshot`). The privacy key is not in a backup: the warehouse
holds only its key id (``ops.privacy_keys``; :mod:`warehouse.privacy_keys`), so the key file (or
``PULSE_PRIVACY_KEY``) is backed up apart, like ``PULSE_BACKUP_KEY``; a restore on a new
machine needs it (without it the restored warehouse refuses to open, naming the setting).
``pulse backup verify`` does not need it (it imports and compares, it does not migrate).

**Consistent**: :func:`create_backup` opens the warehouse read-only, which holds DuckDB's file
lock (no pipeline step can write meanwhile), refuses while ``ops.runs`` has a ``running`` run
(:class:`RunActiveError`; the DAG retries), exports, and snapshots the review store inside
the same window.

**Encrypted**: AES-256-GCM (``cryptography``), streamed in chunks of 1 MiB with the STREAM
construction of age / Hoang, Reyhanitabar, Rogaway and Vizár ("Online Authenticated-Encryption
and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015): nonce = 11-byte chunk counter + a
last-chunk flag, so reordered, dropped or truncated chunks fail authentication. Each file has
its own key, HKDF-SHA256 (RFC 5869) of the master key with a random 16-byte salt and the file's
name as info (files cannot be swapped). The master key is ``PULSE_BACKUP_KEY`` (environment
only, at least 32 characters, e.g. ``python -c "import secrets; print(secrets.token_urlsafe(32))"``);
non-Parquet files are zlib-compressed per chunk before encryption.

**Verified**: :func:`verify_backup` re-hashes every file against the manifest (the first
mismatch raises :class:`VerifyError` naming the file), then restores into a scratch folder
(decrypts, imports the warehouse, compares rows and checksums per table, ``PRAGMA
integrity_check`` of a SQLite store, rows per table of a pg_dump archive).

**Retained**: grandfather-father-son, :func:`gfs_keep` (as restic's ``forget --keep-daily
--keep-weekly --keep-monthly --keep-yearly``), applied by :func:`prune_backups`.

**Erasure-safe**: the erasure ledger (``settings.erasure_ledger``, JSON lines: time, request
id, source, the tombstone's keyed hash and its key id, mode, alias, the erased items' ids; never a user id,
name or text) lives outside what a restore rolls back. :func:`sync_ledger` appends every
tombstone of the warehouse not yet in it (at each backup, before each restore, and through
``pulse backup sync-ledger``); :func:`restore_backup` re-applies each ledger erasure missing
from the restored warehouse by calling the privacy orchestration
(:func:`pulse.privacy.forget_user`: erase, review store, marts, snapshot, compaction, scan).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from warehouse.db import connect, migration_files

if TYPE_CHECKING:
    from pulse.settings import Settings
from pulse.backup.base import (  # noqa: F401 - shared names
    _ID,
    CHUNK,
    FORMAT,
    FORMAT_VERSION,
    MAGIC,
    MANIFEST,
    PARTS,
    PG_TABLES,
    BackupError,
    Part,
    RunActiveError,
    VerifyError,
    utcnow,
)
from pulse.backup.crypto import (  # noqa: F401 - shared names
    _file_key,
    _nonce,
    decrypt_file,
    encrypt_file,
    master_key,
)
from pulse.backup.ledger import (
    append_ledger,
    read_ledger,
    sync_ledger,
)
from pulse.backup.retention import (
    gfs_keep,
    prune_backups,
)
from pulse.backup.storage import (
    _id_time,
    _new_id,
    backup_ids,
    destination,
)
from pulse.backup.stores import (  # noqa: F401 - shared names
    _pg_env,
    _run,
    _sqlite_path,
    _store_url,
    pgdump_counts,
    restore_review_store,
    snapshot_review_store,
    sqlite_counts,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Warehouse: consistency checks, export, import


def active_runs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, datetime]]:
    """``(run_id, started_at)`` of the runs ``ops.runs`` records as ``running``."""
    try:
        return con.execute(
            "select run_id, started_at from ops.runs where status = 'running' order by started_at"
        ).fetchall()
    except duckdb.CatalogException:
        return []


@contextmanager
def idle_warehouse(path: Path, *, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse opened while no pipeline run is active; DuckDB's file lock keeps it so.

    Raises:
        RunActiveError: another process has the file open (a pipeline step), or a run is
            ``running`` in ``ops.runs`` (a DAG run between two steps, or a run killed mid-way:
            the next ``pulse run`` marks that one ``abandoned``).
    """
    try:
        con = connect(path, read_only=read_only)
    except duckdb.IOException as exc:
        raise RunActiveError(f"the warehouse {path} is open in another process (a pipeline step?): {exc}") from None
    try:
        running = active_runs(con)
        if running:
            rid, started = running[0]
            raise RunActiveError(
                f"pipeline run {rid} (started {started:%Y-%m-%d %H:%M} UTC) is active in {path}; wait until it "
                "finishes (if its process is gone, the next `pulse run` marks it abandoned)"
            )
        yield con
    finally:
        con.close()


def table_stats(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """``{"schema.table": {"rows": n, "checksum": "..."}}`` for every table of the open database.

    The checksum is the sum over rows of DuckDB's ``hash(row)`` (order-independent, exact as a
    HUGEINT), as a string: equal tables give equal checksums under the same DuckDB version.
    """
    out: dict[str, dict[str, Any]] = {}
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = current_database() "
        "and not internal order by all"
    ).fetchall()
    for schema, table in tables:
        rows, checksum = con.execute(
            f'select count(*), coalesce(sum(hash(t)::hugeint), 0)::varchar from "{schema}"."{table}" t'
        ).fetchone()
        out[f"{schema}.{table}"] = {"rows": rows, "checksum": checksum}
    return out


def _warehouse_facts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    def rows(sql: str) -> list[dict[str, Any]]:
        try:
            cur = con.execute(sql)
        except duckdb.CatalogException:
            return []
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    migrations = [r["name"] for r in rows("select name from ops.migrations order by name")]
    return {
        "migrations": migrations,
        "migration_level": migrations[-1] if migrations else None,
        "watermarks": rows("select * from ops.watermarks order by all"),
        "source_watermarks": rows("select * from ops.source_watermarks order by all"),
        "last_success": rows(
            "select run_id, source, finished_at from ops.runs where status = 'success' "
            "order by finished_at desc limit 1"
        ),
    }


def export_warehouse(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """``EXPORT DATABASE`` of the open warehouse into ``folder`` (schema.sql, load.sql, Parquet zstd)."""
    quoted = str(folder).replace("'", "''")
    con.execute(f"export database '{quoted}' (format parquet, compression zstd)")  # no bound parameters here


def import_warehouse(folder: Path, target: Path) -> None:
    """Build a new DuckDB file ``target`` from an export in ``folder``.

    Runs ``schema.sql`` statement by statement, retrying those that fail on a missing catalog
    entry once the others exist (DuckDB 2.0 writes a view before a view it selects from), then
    one ``COPY ... FROM`` per table of ``load.sql`` with the file taken from ``folder`` (the
    export's own paths name the machine it was taken on).

    Raises:
        BackupError: a statement still fails when nothing else can be created.
    """
    import warehouse.db as whdb

    for stale in (target, Path(str(target) + ".wal")):
        stale.unlink(missing_ok=True)
    con = whdb.connect(target)
    try:
        pending = list(duckdb.extract_statements((folder / "schema.sql").read_text(encoding="utf-8")))
        while pending:
            left, last_error = [], None
            for stmt in pending:
                try:
                    con.execute(stmt)
                except duckdb.CatalogException as exc:
                    left.append(stmt)
                    last_error = exc
            if len(left) == len(pending):
                raise BackupError(f"the warehouse schema cannot be rebuilt: {last_error}")
            pending = left
        for line in (folder / "load.sql").read_text(encoding="utf-8").splitlines():
            m = re.match(r"COPY (.+) FROM '(?:[^']|'')*' \((.*)\);$", line.strip())
            if m:
                name = re.search(r"([^/']+\.parquet)'", line).group(1)
                path = str(folder / name).replace("'", "''")
                con.execute(f"COPY {m.group(1)} FROM '{path}' ({m.group(2)})")
        con.execute("checkpoint")
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# Create


@dataclass
class BackupResult:
    """What :func:`create_backup` wrote: the id, the manifest, and where."""

    backup_id: str
    manifest: dict[str, Any]
    location: str


def _config_file() -> Path | None:
    path = Path(os.environ.get("PULSE_CONFIG", "pulse.toml"))
    return path if path.is_file() else None


def _upload(fs: Any, folder: str, local: Path, name: str, master: bytes) -> dict[str, Any]:
    compress = not name.endswith(".parquet")
    fs.makedirs(f"{folder}/{name}".rsplit("/", 1)[0], exist_ok=True)  # a no-op on object stores
    with fs.open(f"{folder}/{name}.enc", "wb") as f:
        size, sha = encrypt_file(local, f, master, name, compress=compress)
    return {"name": f"{name}.enc", "size": size, "sha256": sha, "plain_size": local.stat().st_size}


def create_backup(
    settings: Settings, dest: str | Path, *, now: datetime | None = None, parts: Iterable[Part] = PARTS
) -> BackupResult:
    """Take one consistent, encrypted backup of what the product owns into ``dest``; see the module docstring.

    Args:
        dest: a folder or an fsspec URL; the backup goes to ``dest/<backup_id>/``.
        now: the backup's time (naive UTC; tests); default now.
        parts: what to include (default both ``warehouse`` and ``review-store``).

    Raises:
        BackupError: no or a short ``PULSE_BACKUP_KEY``, no warehouse, a tool failed.
        RunActiveError: a pipeline run is active (nothing is written).
    """
    master = master_key(settings)
    parts = tuple(parts)
    now = now or utcnow()
    warehouse = Path(settings.warehouse)
    if "warehouse" in parts and not warehouse.is_file():
        raise BackupError(f"no warehouse at {warehouse} (--warehouse / PULSE_WAREHOUSE)")
    fs, root = destination(dest, settings)
    backup_id = _new_id(now)
    folder = f"{root}/{backup_id}"
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backup_id": backup_id,
        "taken_at": now.isoformat(timespec="seconds"),
        "product_version": _version("community-pulse"),
        "duckdb_version": duckdb.__version__,
        "parts": list(parts),
        "files": [],
    }
    with tempfile.TemporaryDirectory(prefix="pulse-backup-") as tmp_name:
        tmp = Path(tmp_name)
        local: list[tuple[Path, str]] = []
        if "warehouse" in parts:
            with idle_warehouse(warehouse) as con:  # holds the file lock until the store is copied too
                manifest.update(_warehouse_facts(con))
                manifest["tables"] = table_stats(con)
                export_warehouse(con, tmp / "warehouse")
                _store_part(settings, parts, tmp, manifest, local)
                ledger_new = sync_ledger(con, Path(settings.erasure_ledger))
            manifest["source_bytes"] = {"warehouse": warehouse.stat().st_size}
            local += [(p, f"warehouse/{p.name}") for p in sorted((tmp / "warehouse").iterdir())]
            manifest["ledger_synced"] = ledger_new
        else:
            _store_part(settings, parts, tmp, manifest, local)
        if Path(settings.erasure_ledger).is_file():
            local.append((Path(settings.erasure_ledger), "ledger/erasure_ledger.jsonl"))
        if (cfg := _config_file()) is not None:
            local.append((cfg, "config/pulse.toml"))
        for path, name in local:
            manifest["files"].append(_upload(fs, folder, path, name, master))
        manifest["elapsed_s"] = round(time.perf_counter() - t0, 3)
        manifest["backup_bytes"] = sum(f["size"] for f in manifest["files"])
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, indent=1, sort_keys=True, default=str), encoding="utf-8"
        )
        with fs.open(f"{folder}/{MANIFEST}", "wb") as f:  # last: a backup without it is unfinished
            encrypt_file(tmp / "manifest.json", f, master, MANIFEST, compress=True)
    log.info(
        "backup %s: %d files, %d bytes in %.1fs",
        backup_id,
        len(manifest["files"]),
        manifest["backup_bytes"],
        manifest["elapsed_s"],
    )
    return BackupResult(
        backup_id, manifest, folder if "://" not in str(dest) else f"{str(dest).rstrip('/')}/{backup_id}"
    )


def _store_part(
    settings: Settings, parts: tuple[str, ...], tmp: Path, manifest: dict[str, Any], local: list[tuple[Path, str]]
) -> None:
    if "review-store" not in parts:
        return
    kind, file, counts = snapshot_review_store(settings, tmp)
    manifest["review_store"] = {"kind": kind, "tables": counts}
    if file is not None:
        manifest["source_bytes_review_store"] = file.stat().st_size
        local.append((file, f"review_store/{file.name}"))


def _version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# Read: manifest, list, fetch


def read_manifest(fs: Any, root: str, backup_id: str, master: bytes) -> dict[str, Any]:
    """The decrypted manifest of ``backup_id``.

    Raises:
        BackupError: no such backup, or unfinished (no manifest).
        VerifyError: the manifest does not decrypt (wrong key or changed bytes).
    """
    path = f"{root}/{backup_id}/{MANIFEST}"
    if not fs.exists(path):
        raise BackupError(f"backup {backup_id} is unfinished or missing (no {MANIFEST} under {root})")
    with tempfile.TemporaryDirectory(prefix="pulse-manifest-") as tmp:
        out = Path(tmp) / "manifest.json"
        with fs.open(path, "rb") as f:
            decrypt_file(f, out, master, MANIFEST)
        doc = json.loads(out.read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT or doc.get("format_version", 0) > FORMAT_VERSION:
        raise BackupError(f"backup {backup_id}: unknown format {doc.get('format')!r} v{doc.get('format_version')}")
    return doc


def list_backups(settings: Settings, dest: str | Path) -> list[dict[str, Any]]:
    """Every backup under ``dest``, oldest first: ``{backup_id, taken_at, complete, bytes, files, tables, error}``."""
    master = master_key(settings)
    fs, root = destination(dest, settings)
    out = []
    for bid in backup_ids(fs, root):
        row: dict[str, Any] = {
            "backup_id": bid,
            "taken_at": _id_time(bid).isoformat(),
            "complete": False,
            "bytes": None,
            "files": None,
            "error": None,
        }
        try:
            m = read_manifest(fs, root, bid, master)
            row.update(
                complete=True,
                taken_at=m["taken_at"],
                bytes=m["backup_bytes"],
                files=len(m["files"]),
                parts=m.get("parts"),
                migration_level=m.get("migration_level"),
                review_store=(m.get("review_store") or {}).get("kind"),
            )
        except BackupError as exc:
            row["error"] = str(exc)
        out.append(row)
    return out


def _pick(fs: Any, root: str, backup_id: str | None) -> str:
    ids = backup_ids(fs, root)
    if backup_id is not None:
        if backup_id not in ids:
            raise BackupError(f"no backup {backup_id!r} under {root}; `pulse backup list` shows them")
        return backup_id
    complete = [b for b in ids if fs.exists(f"{root}/{b}/{MANIFEST}")]
    if not complete:
        raise BackupError(f"no finished backup under {root}")
    return complete[-1]


def fetch_files(
    fs: Any,
    folder: str,
    manifest: dict[str, Any],
    master: bytes,
    out: Path,
    *,
    only: Callable[[str], bool] = lambda name: True,
) -> dict[str, Path]:
    """Download, check (size, SHA-256) and decrypt the manifest's files into ``out``.

    Returns:
        ``{plain name: local path}`` (e.g. ``"warehouse/schema.sql"``).

    Raises:
        VerifyError: a file is missing, has another size or hash, or fails to decrypt: names it.
    """
    got: dict[str, Path] = {}
    for entry in manifest["files"]:
        name = entry["name"]
        plain = name.removesuffix(".enc")
        if not only(plain):
            continue
        path = f"{folder}/{name}"
        if not fs.exists(path):
            raise VerifyError(name, "missing")
        enc = out / "enc" / name
        enc.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with fs.open(path, "rb") as src, enc.open("wb") as dst:
            while block := src.read(CHUNK):
                digest.update(block)
                dst.write(block)
        if enc.stat().st_size != entry["size"]:
            raise VerifyError(name, f"size {enc.stat().st_size:,} bytes, the manifest says {entry['size']:,}")
        if digest.hexdigest() != entry["sha256"]:
            raise VerifyError(name, "SHA-256 differs from the manifest (the file was changed or corrupted)")
        target = out / "plain" / plain
        target.parent.mkdir(parents=True, exist_ok=True)
        with enc.open("rb") as f:
            decrypt_file(f, target, master, plain)
        enc.unlink()
        got[plain] = target
    return got


# --------------------------------------------------------------------------------------------
# Verify (with a restore drill)


@dataclass
class VerifyReport:
    """What :func:`verify_backup` checked: files hashed, tables compared, review-store tables compared."""

    backup_id: str
    files: int = 0
    bytes: int = 0
    tables: int = 0
    rows: int = 0
    review_store_tables: int = 0
    seconds: float = 0.0


def verify_backup(
    settings: Settings, dest: str | Path, backup_id: str | None = None, *, scratch: Path | None = None
) -> VerifyReport:
    """Re-hash every file of a backup and restore it into a scratch folder; see the module docstring.

    Raises:
        VerifyError: names the first file that is missing, changed, or does not decrypt, or the
            table whose rows or checksum differ after the drill.
        BackupError: no such backup, no key.
    """
    master = master_key(settings)
    fs, root = destination(dest, settings)
    backup_id = _pick(fs, root, backup_id)
    t0 = time.perf_counter()
    try:
        manifest = read_manifest(fs, root, backup_id, master)
    except VerifyError as exc:
        raise VerifyError(MANIFEST, str(exc).split(": ", 1)[-1]) from None
    report = VerifyReport(backup_id)
    with tempfile.TemporaryDirectory(prefix="pulse-verify-", dir=scratch) as tmp_name:
        tmp = Path(tmp_name)
        files = fetch_files(fs, f"{root}/{backup_id}", manifest, master, tmp)
        report.files = len(manifest["files"])
        report.bytes = sum(f["size"] for f in manifest["files"])
        if "tables" in manifest:
            db = tmp / "drill.duckdb"
            import_warehouse(tmp / "plain" / "warehouse", db)
            report.tables, report.rows = _compare_tables(db, manifest["tables"])
        store = manifest.get("review_store") or {}
        if store.get("kind"):
            file = files[f"review_store/review.{'sqlite' if store['kind'] == 'sqlite' else 'pgdump'}"]
            report.review_store_tables = _check_store_file(store["kind"], file, store["tables"])
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _compare_tables(db: Path, expected: dict[str, dict[str, Any]]) -> tuple[int, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = table_stats(con)
    finally:
        con.close()
    for name, want in expected.items():
        have = got.get(name)
        if have is None:
            raise VerifyError(f"warehouse/{name}", "table missing after the restore drill")
        if have != want:
            raise VerifyError(f"warehouse/{name}", f"after the restore drill {have} differs from the manifest's {want}")
    return len(expected), sum(t["rows"] for t in expected.values())


def _check_store_file(kind: str, file: Path, expected: dict[str, int]) -> int:
    name = f"review_store/{file.name}"
    if kind == "sqlite":
        db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            result = db.execute("pragma integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise VerifyError(name, f"not a SQLite database: {exc}") from None
        finally:
            db.close()
        if result != "ok":
            raise VerifyError(name, f"PRAGMA integrity_check: {result}")
        got = sqlite_counts(file)
    else:
        got = pgdump_counts(file)
    for table, rows in expected.items():
        if got.get(table, 0) != rows:
            raise VerifyError(name, f"table {table}: {got.get(table)} rows, the manifest says {rows}")
    return len(expected)


# --------------------------------------------------------------------------------------------
# Restore


@dataclass
class RestoreReport:
    """What :func:`restore_backup` did."""

    backup_id: str
    taken_at: str
    parts: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    review_store_rows: dict[str, int] = field(default_factory=dict)
    erasures_reapplied: list[str] = field(default_factory=list)
    published: bool = False
    seconds: float = 0.0


def restore_backup(
    settings: Settings, dest: str | Path, backup_id: str | None = None, *, only: Part | None = None
) -> RestoreReport:
    """Restore a backup (default the newest finished one) over the live warehouse and/or review store.

    Order: refuse while a run is active (:class:`RunActiveError`), append the live warehouse's
    tombstones to the erasure ledger, download + check + decrypt every file (nothing is
    replaced if one fails), build the new warehouse beside the live one and compare rows and
    checksums with the manifest, ``os.replace`` it in, put the review store back, merge the
    backup's ledger copy into the ledger, re-apply every ledger erasure the restored warehouse
    lacks (:func:`reapply_erasures`), and republish the serving snapshot. The next pipeline run
    continues from the restored watermarks (``ops.watermarks`` / ``ops.source_watermarks``).

    Args:
        only: ``warehouse`` or ``review-store`` for a partial restore; None restores both.

    Raises:
        RunActiveError, VerifyError, BackupError: nothing was replaced.
    """
    master = master_key(settings)
    fs, root = destination(dest, settings)
    backup_id = _pick(fs, root, backup_id)
    t0 = time.perf_counter()
    manifest = read_manifest(fs, root, backup_id, master)
    want = [p for p in manifest.get("parts", PARTS) if only in (None, p)]
    if not want:
        raise BackupError(f"backup {backup_id} holds no {only} (it holds {', '.join(manifest.get('parts', []))})")
    known = {f.stem for f in migration_files()}
    if "warehouse" in want and (newer := [m for m in manifest.get("migrations", []) if m not in known]):
        raise BackupError(f"backup {backup_id} comes from a newer version (migrations {newer}); upgrade first")
    warehouse = Path(settings.warehouse)
    ledger = Path(settings.erasure_ledger)
    if warehouse.is_file():
        with idle_warehouse(warehouse) as con:
            sync_ledger(con, ledger)
    report = RestoreReport(backup_id, manifest["taken_at"])
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pulse-restore-", dir=warehouse.parent) as tmp_name:
        tmp = Path(tmp_name)
        prefixes = (
            *(("warehouse/",) if "warehouse" in want else ()),
            *(("review_store/",) if "review-store" in want else ()),
            "ledger/",
        )
        files = fetch_files(fs, f"{root}/{backup_id}", manifest, master, tmp, only=lambda n: n.startswith(prefixes))
        if "warehouse" in want:
            new = tmp / "warehouse.duckdb"
            import_warehouse(tmp / "plain" / "warehouse", new)
            report.tables, report.rows = _compare_tables(new, manifest["tables"])
            from warehouse.db import open_warehouse

            with open_warehouse(new):  # migrate; a backup from before migration 011 gets its keys moved out
                pass
            if warehouse.is_file():  # a run may have started while the files came in
                with idle_warehouse(warehouse):
                    pass
            Path(str(warehouse) + ".wal").unlink(missing_ok=True)
            os.replace(new, warehouse)
            report.parts.append("warehouse")
        store = manifest.get("review_store") or {}
        if "review-store" in want and store.get("kind"):
            file = files[f"review_store/review.{'sqlite' if store['kind'] == 'sqlite' else 'pgdump'}"]
            report.review_store_rows = restore_review_store(settings, store["kind"], file)
            report.parts.append("review-store")
        if "ledger/erasure_ledger.jsonl" in files:
            have = {(e["source"], e["user_id_hash"]) for e in read_ledger(ledger)}
            append_ledger(
                ledger,
                [
                    e
                    for e in read_ledger(files["ledger/erasure_ledger.jsonl"])
                    if (e["source"], e["user_id_hash"]) not in have
                ],
            )
    if warehouse.is_file():
        report.erasures_reapplied = reapply_erasures(settings, store_restored="review-store" in report.parts)
        from warehouse.db import open_warehouse
        from warehouse.publish import publish_snapshot

        with open_warehouse(warehouse) as con:
            publish_snapshot(con, Path(settings.serving))
        report.published = True
    report.seconds = round(time.perf_counter() - t0, 3)
    log.info("restored backup %s (%s): %s", backup_id, ", ".join(report.parts), report)
    return report


def _user_ids_by_hash(con: duckdb.DuckDBPyConnection, source: str, hashes: set[str]) -> dict[str, str]:
    """``{user_id_hash: user_id}`` for the ids of ``source`` in the warehouse whose tombstone hash (under
    any key of the privacy key ring) is in ``hashes``."""
    from warehouse.privacy import tombstone_hashes
    from warehouse.privacy_keys import session_ring

    ring = session_ring(con)
    ids = [
        r[0]
        for r in con.execute(
            "select user_id from staging.users where source = $s union select author_id from staging.content "
            "where source = $s and author_id is not null union select user_id from staging.engagement_events "
            "where source = $s and user_id is not null",
            {"s": source},
        ).fetchall()
    ]
    out = {}
    for uid in ids:
        for h in tombstone_hashes(ring, source, uid):
            if h in hashes:
                out[h] = uid
    return out


def reapply_erasures(settings: Settings, *, store_restored: bool = True) -> list[str]:
    """Re-apply every ledger erasure the warehouse lacks (no tombstone): a restore never brings an erased member back.

    For each such entry: its tombstone goes in first (with the ledger's alias, so the redacted
    items get the same stand-in as before), then, if the restored warehouse still holds the
    user (found by the tombstone hash over its user ids), :func:`pulse.privacy.forget_user`
    erases them everywhere (warehouse, review store, marts, snapshot, compaction and scan).
    With ``store_restored`` the review store came back from the backup too: the notes on every
    ledger entry's items (its ``content_ids`` and the items under its alias) are blanked again
    and a SQLite store is vacuumed, as ``forget_user`` does.

    Returns:
        The ledger request ids re-applied to the warehouse.

    Raises:
        BackupError: an erasure left residue (the erased strings are still in a file).
    """
    from moderation.review_store import ReviewStore
    from pulse.privacy import _vacuum_sqlite_store, forget_user
    from warehouse.db import migrate

    entries = read_ledger(Path(settings.erasure_ledger))
    if not entries:
        return []
    warehouse = Path(settings.warehouse)
    con = connect(warehouse)
    try:
        migrate(con)
        have = set(con.execute("select source, user_id_hash from ops.tombstones").fetchall())
        todo = [e for e in entries if (e["source"], e["user_id_hash"]) not in have]
        found: dict[tuple[str, str], str] = {}
        for source in {e["source"] for e in todo}:
            hashes = {e["user_id_hash"] for e in todo if e["source"] == source}
            found.update({(source, h): uid for h, uid in _user_ids_by_hash(con, source, hashes).items()})
        for e in todo:
            con.execute(
                "insert into ops.tombstones (source, user_id_hash, requested_at, request_id, erasure_mode, alias, "
                "key_id) values (?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
                [
                    e["source"],
                    e["user_id_hash"],
                    datetime.fromisoformat(e["at"]),
                    e["request_id"],
                    e["mode"],
                    e["alias"],
                    e.get("key_id"),  # None in entries written before the key ring (migration 011)
                ],
            )
        items = {
            (e["source"], e["alias"]): {
                r[0]
                for r in con.execute(
                    "select content_id from staging.content where source = ? and author_id = ?",
                    [e["source"], e["alias"]],
                ).fetchall()
            }
            for e in entries
        }
    finally:
        con.close()
    store = ReviewStore.from_settings(settings)
    try:
        store.create_schema()
        for e in todo:
            uid = found.get((e["source"], e["user_id_hash"]))
            if uid is not None:
                report = forget_user(warehouse, e["source"], uid, mode=e["mode"], serving=settings.serving, store=store)
                if report.residue:
                    raise BackupError(
                        f"re-applied erasure {e['request_id']} left erased data in {sorted(report.residue)}"
                    )
        if store_restored:
            blanked = 0
            for e in entries:
                ids = sorted(set(e.get("content_ids") or []) | items[(e["source"], e["alias"])])
                blanked += store.erase_content(e["source"], ids) if ids else 0
            if blanked:
                _vacuum_sqlite_store(store)
    finally:
        store.dispose()
    log.info("re-applied %d erasures after restore", len(todo))
    return [e["request_id"] for e in todo]


__all__ = [
    "BackupError", "BackupResult", "RestoreReport", "RunActiveError", "VerifyError", "VerifyReport", "active_runs",
    "create_backup", "decrypt_file", "destination", "encrypt_file", "gfs_keep", "list_backups",
    "prune_backups", "read_ledger", "reapply_erasures", "restore_backup", "sync_ledger", "table_stats",
    "verify_backup",
]  # fmt: skip
