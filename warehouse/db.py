"""DuckDB connection rules and migrations for the warehouse.

Only the pipeline writes the warehouse; readers open the published snapshot instead
(see :mod:`warehouse.publish`). Migrations are the files ``warehouse/migrations/NNN_name.sql``,
applied in order and recorded in ``ops.migrations`` (the sqlite-utils pattern).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file at ``path`` (``":memory:"`` for an in-memory database).

    Creates the parent folder when writing. The session time zone is UTC so TIMESTAMPTZ
    values print and convert predictably.

    Raises:
        duckdb.IOException: when the file is locked by another process (DuckDB allows one
            writer process per file) or cannot be opened.
    """
    if str(path) != ":memory:" and not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextmanager
def open_warehouse(path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for writing, apply pending migrations, and close it afterwards."""
    con = connect(path)
    try:
        migrate(con)
        yield con
    finally:
        con.close()


def migration_files() -> list[Path]:
    """The migration files in apply order (by their ``NNN_`` prefix)."""
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet recorded in ``ops.migrations``; return their names.

    Each migration runs in its own transaction together with its bookkeeping row, so a
    crash leaves it either fully applied or not at all.
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
            con.execute(f.read_text(encoding="utf-8"))
            con.execute("insert into ops.migrations values (?, current_timestamp::timestamp)", [f.stem])
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        applied.append(f.stem)
        log.info("applied migration %s", f.stem)
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
