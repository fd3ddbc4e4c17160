"""Cached, read-only access to the published serving snapshot (``serving.duckdb``).

The dashboards never touch the live warehouse (docs/ARCHITECTURE.md, "How data flows").
Every query opens the snapshot with ``read_only=True`` and closes it at once, so
the pipeline can ``os.replace`` a new snapshot into place at any time. Results are cached with
``st.cache_data`` keyed on the snapshot's path and modification time as well as the SQL and its
parameters: a freshly published snapshot invalidates the cache by itself.

Filter values always travel as query parameters, never formatted into the SQL text.

Least privilege: :func:`query` reads the serving snapshot every role may see (no raw quarantine
payloads, no moderators' notes: :mod:`warehouse.publish`). Privileged data is in the restricted
snapshot (``serving_restricted.duckdb``, :func:`warehouse.publish.restricted_path`), read only
through :func:`restricted_query`, which takes the signed-in user's role and raises
:class:`RestrictedDataError` for any role outside :data:`RESTRICTED_ROLES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import streamlit as st

from warehouse.canonical import LABELS  # noqa: F401 (re-exported: pages use data.LABELS)
from warehouse.export import to_csv_bytes

CONTENT_TYPES: tuple[str, ...] = ("question", "answer", "comment", "post", "reply")
"""Activity types that are content creation (``marts.activity_heatmap.activity_type``)."""

ENGAGEMENT_TYPES: tuple[str, ...] = ("upvote", "downvote", "favorite", "accept", "view")
"""Activity types that are engagement events (hour-precise ones only in the heatmap)."""


RESTRICTED_ROLES: frozenset[str] = frozenset({"admin", "data_engineer"})
"""Roles that may read the restricted snapshot (raw quarantine payloads, decision notes). Data
engineers read payloads on Pipeline health; no page of theirs reads notes (``dashboards.app.PAGES``)."""


class RestrictedDataError(PermissionError):
    """A role outside :data:`RESTRICTED_ROLES` asked for the restricted snapshot."""


class SnapshotMissingError(FileNotFoundError):
    """The serving snapshot file does not exist (no successful pipeline run published yet)."""


def serving_path() -> Path:
    """The snapshot path from the settings (``PULSE_SERVING`` overrides the config file).

    Raises:
        pulse.settings.ConfigError: when the configuration is invalid.
    """
    from pulse.settings import load_settings

    return Path(load_settings().serving)


def snapshot_exists() -> bool:
    """Whether the serving snapshot file exists."""
    return serving_path().is_file()


def snapshot_mtime() -> datetime | None:
    """When the snapshot was last published (file modification time, UTC), or None if absent."""
    path = serving_path()
    if not path.is_file():
        return None
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def query(sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
    """Run one read-only query against the snapshot and return the result as a polars frame.

    Args:
        sql: a single SQL statement with ``?`` placeholders for every value.
        params: the placeholder values, in order.

    Returns:
        The result rows; cached until the snapshot file changes (new path or mtime).

    Raises:
        SnapshotMissingError: the snapshot file does not exist.
        duckdb.Error: the SQL failed (e.g. a table or column is absent).
    """
    path = serving_path()
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise SnapshotMissingError(f"serving snapshot not found: {path}") from None
    return _cached_query(str(path.resolve()), mtime_ns, sql, tuple(params or ()))


@st.cache_data(max_entries=512, show_spinner=False)
def _cached_query(path: str, mtime_ns: int, sql: str, params: tuple[Any, ...]) -> pl.DataFrame:
    """Open ``path`` read-only, run ``sql`` with ``params``, close. ``mtime_ns`` is a cache key only."""
    del mtime_ns  # part of the cache key: a new snapshot gives a new key
    con = duckdb.connect(path, read_only=True)
    try:
        return con.sql(sql, params=list(params)).pl()
    finally:
        con.close()


def restricted_path() -> Path:
    """The restricted snapshot's path (``PULSE_SERVING_RESTRICTED`` or beside the serving snapshot)."""
    from warehouse.publish import restricted_path as beside

    return beside(serving_path())


def restricted_query(role: str | None, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
    """:func:`query` against the restricted snapshot, for a signed-in ``role`` allowed to read it.

    Raises:
        RestrictedDataError: ``role`` is not in :data:`RESTRICTED_ROLES` (checked before the file is opened).
        SnapshotMissingError: the restricted snapshot does not exist.
        duckdb.Error: the SQL failed.
    """
    if role not in RESTRICTED_ROLES:
        raise RestrictedDataError(f"role {role!r} may not read restricted data")
    path = restricted_path()
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise SnapshotMissingError(f"restricted snapshot not found: {path}") from None
    return _cached_query(str(path.resolve()), mtime_ns, sql, tuple(params or ()))


def table_exists(schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists in the snapshot (False when the snapshot is absent)."""
    try:
        found = query(
            "select count(*) as n from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        )
    except SnapshotMissingError:
        return False
    return bool(found["n"][0])


def table_columns(schema: str, table: str) -> list[str]:
    """The column names of ``schema.table`` in table order (empty when it does not exist)."""
    found = query(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    )
    return found["column_name"].to_list()


def source_clause(source: str | None, column: str = "source") -> tuple[str, list[Any]]:
    """A SQL predicate and its parameters selecting one source (``true`` when ``source`` is None).

    ``column`` is a trusted column name chosen by the caller, never user input.
    """
    if source is None:
        return "true", []
    return f"{column} = ?", [source]


def list_to_text(df: pl.DataFrame, separator: str = ", ") -> pl.DataFrame:
    """Join every list column into a string column, for display and CSV export."""
    return df.with_columns(
        pl.col(name).cast(pl.List(pl.String)).list.join(separator)
        for name, dtype in df.schema.items()
        if isinstance(dtype, pl.List)
    )


def to_csv(df: pl.DataFrame) -> bytes:
    """``df`` as UTF-8 CSV bytes (list columns joined with ``; ``), spreadsheet formulas defused
    (:func:`warehouse.export.to_csv_bytes`: cells starting with ``= + - @``, tab, CR or their
    full-width forms get a leading apostrophe; OWASP "CSV injection")."""
    return to_csv_bytes(df)
