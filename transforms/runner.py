"""Build the marts from staging: one SQL model per file in ``transforms/marts/``.

Each model is a CTE chain ending in ``select * from final`` (dbt's jaffle_shop style). The
runner applies them in the fixed order :data:`MART_NAMES` as
``create or replace table marts.<name> as <model>`` inside one transaction, so a failure
leaves the previous marts untouched (all marts or none). Marts are rebuilt from staging on
every run and depend only on staging, ``moderation.*`` and ``ops.sources``: the same inputs
give identical marts (no ``now()``).

Time zones: staging timestamps are naive UTC; each model converts them to the community's
local time with the IANA zone in ``ops.sources.timezone`` (NULL or empty: ``'UTC'``), read by
join inside the SQL. The runner checks every configured zone against
:func:`zoneinfo.available_timezones` first, so a typo fails before anything is written.
Parameters (``min_support``) are bound by DuckDB, never formatted into the SQL.

Model documentation (grain, columns, units, formulas and their sources):
``transforms/README.md``.
"""

from __future__ import annotations

import logging
import zoneinfo
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).with_name("marts")

#: The marts in build order (none depends on another today; the order is fixed regardless).
MART_NAMES: tuple[str, ...] = (
    "activity_heatmap",
    "engagement_daily",
    "trending_topics",
    "moderation_queue",
)

#: The named parameters (``$name``) each model uses; DuckDB rejects unused ones.
MODEL_PARAMETERS: dict[str, tuple[str, ...]] = {
    "trending_topics": ("min_support",),
}


def model_sql(name: str) -> str:
    """Return the SQL text of the mart model ``name`` (``transforms/marts/<name>.sql``).

    Raises:
        ValueError: ``name`` is not one of :data:`MART_NAMES`.
    """
    if name not in MART_NAMES:
        raise ValueError(f"unknown mart {name!r}; expected one of {MART_NAMES}")
    return (MODELS_DIR / f"{name}.sql").read_text(encoding="utf-8")


def check_source_timezones(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Return ``{source: timezone}`` from ``ops.sources`` (NULL or empty meaning ``'UTC'``).

    Raises:
        ValueError: a configured time zone is not an IANA name known to
            :func:`zoneinfo.available_timezones` (e.g. ``'CET+1'`` or a typo).
    """
    rows = con.execute("select source, timezone from ops.sources order by source").fetchall()
    known = zoneinfo.available_timezones()
    zones: dict[str, str] = {}
    bad: list[str] = []
    for source, tz in rows:
        zone = tz or "UTC"
        if zone not in known:
            bad.append(f"{source!r}: {tz!r}")
        zones[source] = zone
    if bad:
        raise ValueError(
            "ops.sources.timezone must be an IANA time zone name (e.g. 'Europe/Berlin'); "
            "invalid: " + ", ".join(bad)
        )
    return zones


def run_marts(con: duckdb.DuckDBPyConnection, *, min_support: int = 3) -> dict[str, int]:
    """Rebuild every mart from staging in one transaction; return ``{mart name: row count}``.

    Args:
        con: a writable warehouse connection with migrations applied and no open
            transaction.
        min_support: the least weekly volume (items) for a topic to be ranked, trending or
            emerging in ``marts.trending_topics``; an integer >= 1.

    Returns:
        The row count of each mart, in :data:`MART_NAMES` order.

    Raises:
        TypeError: ``min_support`` is not an integer.
        ValueError: ``min_support`` < 1, or a time zone in ``ops.sources`` is not a valid IANA
            name (nothing is written).
        duckdb.Error: a model failed; the transaction is rolled back and the previous marts
            stay as they were.
    """
    if isinstance(min_support, bool) or not isinstance(min_support, int):
        raise TypeError(f"min_support must be an int, got {type(min_support).__name__}")
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support}")
    check_source_timezones(con)
    parameters: dict[str, Any] = {"min_support": min_support}

    counts: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for name in MART_NAMES:
            sql = model_sql(name)
            bound = {key: parameters[key] for key in MODEL_PARAMETERS.get(name, ())}
            # `name` comes from MART_NAMES, never from input; values are bound, not formatted.
            con.execute(f"create or replace table marts.{name} as\n{sql}", bound or None)
            # fetchall, not fetchone: DuckDB 2.0 keeps a partly fetched result open on the
            # connection, which then refuses con.sql(...) until it is drained
            counts[name] = int(con.execute(f"select count(*) from marts.{name}").fetchall()[0][0])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    for name, rows in counts.items():
        log.info("built mart marts.%s: %d rows", name, rows)
    return counts
