"""The review store's part of a backup: SQLite through its online backup API, PostgreSQL
through ``pg_dump`` of our tables (restored with ``pg_restore --single-transaction``), and
the row counts a verify compares."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulse.settings import Settings
from pulse.backup.base import (
    PG_TABLES,
    BackupError,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Review store: SQLite online backup, pg_dump / pg_restore


def _store_url(settings: Settings) -> str:
    from moderation.review_store import normalize_url

    return normalize_url(settings.review_store_url.get_secret_value())


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    if not u.database or u.database == ":memory:":
        raise BackupError("an in-memory SQLite review store cannot be backed up; set PULSE_REVIEW_STORE_URL to a file")
    return Path(u.database).expanduser()


def _pg_env(url: str) -> dict[str, str]:
    """libpq's environment for ``url`` (the password travels in ``PGPASSWORD``, never on a command line)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    env = {
        **os.environ,
        "PGHOST": u.host or "localhost",
        "PGPORT": str(u.port or 5432),
        "PGDATABASE": u.database or "postgres",
    }
    if u.username:
        env["PGUSER"] = u.username
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return env


def _run(cmd: list[str], env: dict[str, str] | None = None, stdout: Any = subprocess.PIPE) -> str:
    tool = shutil.which(cmd[0])
    if tool is None:
        raise BackupError(f"{cmd[0]} is not installed (Debian: apt-get install postgresql-client)")
    done = subprocess.run(
        [tool, *cmd[1:]], env=env, stdout=stdout, stderr=subprocess.PIPE, text=stdout is subprocess.PIPE
    )
    if done.returncode != 0:
        err = done.stderr if isinstance(done.stderr, str) else done.stderr.decode("utf-8", "replace")
        raise BackupError(f"{cmd[0]} failed ({done.returncode}): {err.strip()[-2000:]}")
    return done.stdout if isinstance(done.stdout, str) else ""


def snapshot_review_store(settings: Settings, folder: Path) -> tuple[str | None, Path | None, dict[str, int]]:
    """Copy the review store into ``folder``: ``(kind, file, rows per table)``; kind None when there is no store.

    SQLite: ``sqlite3.Connection.backup`` (the online backup API: a consistent snapshot while
    moderators write). PostgreSQL: ``pg_dump --format=custom`` of the tables in :data:`PG_TABLES`
    that exist (one repeatable-read snapshot).
    """
    url = _store_url(settings)
    path = _sqlite_path(url)
    if path is not None:
        if not path.is_file():
            return None, None, {}
        out = folder / "review.sqlite"
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dst = sqlite3.connect(out)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return "sqlite", out, sqlite_counts(out)
    env = _pg_env(url)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            present = [t for t in PG_TABLES if sa.inspect(c).has_table(t)]
            counts = {t: c.execute(sa.text(f'select count(*) from "{t}"')).scalar_one() for t in present}
    finally:
        engine.dispose()
    if not present:
        return None, None, {}
    out = folder / "review.pgdump"
    _run(
        [
            "pg_dump",
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            *(f"--table=public.{t}" for t in present),
            f"--file={out}",
        ],
        env,
    )
    return "postgresql", out, counts


def sqlite_counts(path: Path) -> dict[str, int]:
    """Rows per table of a SQLite file (its own tables, not ``sqlite_*``)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in db.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name"
            )
        ]
        return {n: db.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names}
    finally:
        db.close()


def pgdump_counts(path: Path) -> dict[str, int]:
    """Rows per table in a ``pg_dump --format=custom`` archive, read by ``pg_restore`` without a server."""
    script = _run(["pg_restore", "--data-only", "--file=-", str(path)])
    counts: dict[str, int] = {}
    table = None
    for line in script.splitlines():
        if table is None:
            m = re.match(r"COPY (?:public\.)?\"?([A-Za-z0-9_]+)\"? ", line)
            if m:
                table = m.group(1)
                counts[table] = 0
        elif line == "\\.":
            table = None
        else:
            counts[table] += 1
    return counts


def restore_review_store(settings: Settings, kind: str, file: Path) -> dict[str, int]:
    """Put the snapshot ``file`` back into the configured review store; return its rows per table.

    SQLite: the online backup API in reverse (the live file is written page by page under
    SQLite's own locking, so an open app sees either the old or the new database). PostgreSQL:
    ``pg_restore --clean --if-exists --single-transaction`` (our tables dropped and recreated
    in one transaction).

    Raises:
        BackupError: the backup's store kind differs from the configured one.
    """
    url = _store_url(settings)
    path = _sqlite_path(url)
    if (path is not None) != (kind == "sqlite"):
        raise BackupError(
            f"the backup holds a {kind} review store but PULSE_REVIEW_STORE_URL is "
            f"{'SQLite' if path is not None else 'PostgreSQL'}; point it at a store of the backup's kind"
        )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        dst = sqlite3.connect(path, timeout=30)
        try:
            src.backup(dst)
            dst.execute("pragma wal_checkpoint(truncate)")
        finally:
            dst.close()
            src.close()
        return sqlite_counts(path)
    _run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            f"--dbname={_pg_env(url)['PGDATABASE']}",
            str(file),
        ],
        _pg_env(url),
    )
    return pgdump_counts(file)
