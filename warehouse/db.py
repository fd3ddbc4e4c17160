"""DuckDB connection rules and migrations for the warehouse.

Only the pipeline writes the warehouse; readers open the published snapshot instead
(see :mod:`warehouse.publish`). Migrations are the files ``warehouse/migrations/NNN_name.sql``,
applied in order and recorded in ``ops.migrations`` (the sqlite-utils pattern); a migration
may have a Python half (:data:`PYTHON_STEPS`). After migrating, :func:`migrate` loads the
privacy key (:mod:`warehouse.privacy_keys`: kept outside the file, checked against the key
ids the warehouse records). Files are created owner-only (:mod:`warehouse.files`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from warehouse.files import private_dir, private_file, restrict_umask
from warehouse.privacy_keys import KEY_MIGRATION, use_privacy_keys

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Python halves of migrations (``module:function(con)``), run in the migration's transaction before its SQL.
PYTHON_STEPS = {KEY_MIGRATION: "warehouse.privacy_keys:move_legacy_keys"}


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file at ``path`` (``":memory:"`` for an in-memory database).

    Creates the parent folder when writing. When writing, the process umask is narrowed to
    ``PULSE_FILE_MODE`` (:func:`warehouse.files.restrict_umask`) so the database, its ``.wal``
    and folders are created owner-only (0600 / 0700 by default), and an existing file of ours is
    set to that mode. The session time zone is UTC so TIMESTAMPTZ values print and convert
    predictably.

    Raises:
        duckdb.IOException: when the file is locked by another process (DuckDB allows one
            writer process per file) or cannot be opened.
    """
    writing = str(path) != ":memory:" and not read_only
    if writing:
        restrict_umask()
        private_dir(Path(path).parent)
    con = duckdb.connect(str(path), read_only=read_only)
    if writing:
        for f in (Path(path), Path(f"{path}.wal")):
            if f.is_file() and f.stat().st_uid == os.getuid():
                private_file(f)
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextmanager
def open_warehouse(path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for writing, apply pending migrations, and close it afterwards.

    When migration 011 was applied to a file (the privacy keys left the file: ``ops.privacy_keys`` dropped), the
    file is compacted (:func:`warehouse.privacy.compact_database`) so the keys' bytes leave it.

    Raises:
        warehouse.privacy_keys.PrivacyKeyError: the configured privacy key is not the warehouse's.
    """
    con = connect(path)
    try:
        if KEY_MIGRATION in migrate(con) and str(path) != ":memory:":
            from warehouse.privacy import compact_database  # privacy imports this module

            con.close()
            compact_database(path)
            con = connect(path)
            migrate(con)
        yield con
    finally:
        con.close()


def migration_files() -> list[Path]:
    """The migration files in apply order (by their ``NNN_`` prefix)."""
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet recorded in ``ops.migrations``; return their names.

    Each migration runs in its own transaction together with its Python half, if any
    (:data:`PYTHON_STEPS`), and its bookkeeping row, so a crash leaves it either fully applied
    or not at all. Then the privacy key is checked and put in the session
    (:func:`warehouse.privacy_keys.use_privacy_keys`).

    Raises:
        warehouse.privacy_keys.PrivacyKeyError: the configured privacy key is not the warehouse's.
    """
    con.execute("create schema if not exists ops")
    con.execute("create table if not exists ops.migrations (name varchar primary key, applied_at timestamp not null)")
    done = {r[0] for r in con.execute("select name from ops.migrations").fetchall()}
    applied: list[str] = []
    for f in migration_files():
        if f.stem in done:
            continue
        con.execute("begin transaction")
        try:
            if f.stem in PYTHON_STEPS:
                module, function = PYTHON_STEPS[f.stem].split(":")
                getattr(import_module(module), function)(con)
            con.execute(f.read_text(encoding="utf-8"))
            con.execute("insert into ops.migrations values (?, current_timestamp::timestamp)", [f.stem])
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        applied.append(f.stem)
        log.info("applied migration %s", f.stem)
    use_privacy_keys(con)
    return applied


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """Run ``sql`` with bound ``params`` and return the whole result as a polars frame.

    (DuckDB 2.0: ``execute`` returns the connection, which has no ``.pl()``; a relation does.)
    """
    return con.sql(sql, params=params).pl() if params else con.sql(sql).pl()


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple:
    """Run ``sql`` and return its single row, fetching the result completely.

    Raises:
        LookupError: when the query returns no row.
    """
    rows = con.execute(sql, params or []).fetchall()
    if not rows:
        raise LookupError(f"no row from: {sql}")
    return rows[0]
