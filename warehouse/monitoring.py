"""Freshness and volume checks: is the data recent, and is this run's volume normal?

Both are expectations (suite ``monitoring``), evaluated by Great Expectations like the others
and stored in ``quality.validation_results``, so the Pipeline health page shows them with
their history. They are warnings, not gates: stale or unusual data is still published, and
said so.

* **Freshness:** ``lag_hours`` = hours between the newest record of the source (content
  created or edited, engagement event) and the end of the run's data interval (``now`` for a
  run without one). Expected ``≤ freshness_max_lag_hours``.
* **Volume:** for each stream, the records read by this run against the previous successful
  runs of the same source over intervals of the same length (at most 20, at least
  ``min_runs``). Score: the modified z-score ``0.6745 · (x − median) / MAD`` of Iglewicz &
  Hoaglin (1993, "How to Detect and Handle Outliers"), expected within ±3.5, their suggested
  cut-off. The MAD is floored at 5% of the median (and at 1), so a perfectly regular
  history does not turn one extra record into an outlier.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from warehouse.db import frame, one
from warehouse.quality import Check

MODIFIED_Z_LIMIT = 3.5
MAX_BASELINE_RUNS = 20


def freshness_frame(con: duckdb.DuckDBPyConnection, source: str, reference: datetime) -> pl.DataFrame:
    """One row: ``source, latest_at`` (naive UTC), ``lag_hours`` (float, hours before ``reference``)."""
    latest = one(
        con,
        """
        select greatest(
            (select max(coalesce(edited_at, created_at)) from staging.content where source = $1),
            (select max(occurred_at) from staging.engagement_events where source = $1))
        """,
        [source],
    )[0]
    lag = None if latest is None else (reference - latest).total_seconds() / 3600
    return pl.DataFrame(
        {"source": [source], "latest_at": [latest], "lag_hours": [lag]},
        schema={"source": pl.String, "latest_at": pl.Datetime("us"), "lag_hours": pl.Float64},
    )


def volume_frame(con: duckdb.DuckDBPyConnection, run_id: str, min_runs: int) -> pl.DataFrame:
    """Per stream with enough history: ``stream, read, baseline_runs, baseline_median, baseline_mad, modified_z``.

    The baseline is the previous successful runs of the same source whose data interval has
    the same length (both unbounded counts as the same length). Streams with fewer than
    ``min_runs`` such runs are left out (no band learned yet).
    """
    return frame(
        con,
        f"""
        with this_run as (
            select r.run_id, r.source, r.started_at, r.interval_end - r.interval_start as span
            from ops.runs r where r.run_id = $1
        ),
        history as (
            select c.stream, c.read, row_number() over (partition by c.stream order by r.started_at desc) as n
            from ops.runs r
            join this_run t on r.source = t.source and r.run_id <> t.run_id and r.started_at < t.started_at
                and (r.interval_end - r.interval_start) is not distinct from t.span
            join ops.stream_counts c on c.run_id = r.run_id
            where r.status = 'success'
        ),
        baseline as (
            select stream, count(*) as baseline_runs, median(read) as baseline_median,
                   median(abs(read - (select median(h2.read) from history h2 where h2.stream = h.stream and h2.n <= {MAX_BASELINE_RUNS})))
                       as baseline_mad
            from history h where n <= {MAX_BASELINE_RUNS}
            group by stream
            having count(*) >= $2
        ),
        final as (
            select c.stream, c.read, b.baseline_runs, b.baseline_median, b.baseline_mad,
                   0.6745 * (c.read - b.baseline_median)
                       / greatest(b.baseline_mad, 0.05 * b.baseline_median, 1.0) as modified_z
            from ops.stream_counts c join baseline b using (stream)
            where c.run_id = $1
        )
        select * from final order by stream
        """,
        [run_id, min_runs],
    )


def monitoring_checks(max_lag_hours: float) -> tuple[Check, ...]:
    """The monitoring suite: freshness within ``max_lag_hours``; volume inside the learned band."""
    return (
        Check(
            "ops.freshness",
            "ExpectColumnValuesToBeBetween",
            {"column": "lag_hours", "max_value": max_lag_hours},
            critical=False,
            description=f"the newest record is at most {max_lag_hours:g} h older than the interval end",
        ),
        Check(
            "ops.freshness",
            "ExpectColumnValuesToNotBeNull",
            {"column": "latest_at"},
            critical=False,
            description="the source has delivered at least one record",
        ),
        Check(
            "ops.volume",
            "ExpectColumnValuesToBeBetween",
            {"column": "modified_z", "min_value": -MODIFIED_Z_LIMIT, "max_value": MODIFIED_Z_LIMIT},
            critical=False,
            description="records read per stream lie within the band learned from previous runs",
        ),
    )
