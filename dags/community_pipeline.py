"""
### community_pipeline

Loads one data interval from a community platform into the DuckDB warehouse, scores new or
edited content for toxicity, rebuilds the marts, checks data quality and publishes the
read-only serving snapshot the dashboards open.

`extract → validate → load → score → transform → validate_marts → publish`

* **Params:** `source` (`demo` | `stackexchange`), `path` (dump folder), `since` / `until`
  (ISO datetimes, UTC; override the data interval), `scorer`, `timezone`.
* **Data interval:** scheduled and backfill runs load exactly their interval; a manual run
  without `since`/`until` loads the source's whole history.
* Every task writes the warehouse, so all share the one-slot pool `pulse_warehouse`
  (`PULSE_AIRFLOW_POOL`) and the DAG allows one active run: no two writers ever collide.
* Each task calls one function of `pulse.steps` (the same ones `pulse run` calls).
* Retries with exponential backoff, a 2-hour execution timeout per task; failures are logged
  and, when `PULSE_ALERT_WEBHOOK` is set, posted to that webhook.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, task

from pulse.notify import PulseFailureNotifier

SCHEDULE = os.environ.get("PULSE_SCHEDULE", "@daily")  # cron or preset; "none": triggered runs only
STEPS = ("extract", "validate", "load", "score", "transform", "validate_marts", "publish")

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=2),
    "pool": os.environ.get("PULSE_AIRFLOW_POOL", "pulse_warehouse"),
    # logs every failure; also posts to PULSE_ALERT_WEBHOOK when set
    "on_failure_callback": PulseFailureNotifier(),
}


def _run_step(step: str) -> dict:
    """Run one pipeline step for this task's DAG run (heavy imports happen inside)."""
    from pulse.airflow_tasks import run_step

    return run_step(step)


@dag(
    # A data-interval timetable: each run covers [previous tick, this tick) (Airflow 3's plain
    # cron schedules give zero-length intervals).
    schedule=None if SCHEDULE.lower() in {"", "none"} else CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=pendulum.parse(os.environ.get("PULSE_START_DATE", "2026-01-01T00:00:00+00:00")),
    catchup=os.environ.get("PULSE_CATCHUP", "false").lower() == "true",
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["community-pulse", "warehouse", "moderation"],
    doc_md=__doc__,
    params={
        "source": Param("demo", type="string", enum=["demo", "stackexchange"], description="Which connector to run"),
        "path": Param("", type="string", description="Stack Exchange dump folder (for source=stackexchange)"),
        "since": Param("", type="string", description="Interval start, ISO UTC; empty = the run's data interval"),
        "until": Param("", type="string", description="Interval end, ISO UTC (exclusive)"),
        "scorer": Param("", type="string", description="Override PULSE_SCORER, e.g. lexical"),
        "timezone": Param("", type="string", description="Community IANA timezone, e.g. Europe/Berlin"),
    },
)
def community_pipeline():
    steps = [task(_run_step, task_id=step)(step) for step in STEPS]
    chain(*steps)


community_pipeline()
