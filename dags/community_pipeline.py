"""
### community_pipeline

Loads one data interval from a community platform into the DuckDB warehouse, scores new or
edited content for toxicity, rebuilds the marts, checks data quality and publishes the
read-only serving snapshot the dashboards open.

`extract → validate → load → ingest_decisions → score → transform → validate_marts → publish`

* **ingest_decisions** copies moderators' decisions from the review store
  (`PULSE_REVIEW_STORE_URL`) into `moderation.decisions`.

* **Params:** `source` (`demo` | `stackexchange` | `events`), `path` (dump folder; for `events`
  a folder or glob of event export files), `source_name` (`events`: the source the events
  belong to, e.g. `stackexchange:beer`; an events run loads the files that arrived before the
  interval end and were not loaded yet), `since` / `until`
  (ISO datetimes, UTC; override the data interval), `scorer`, `timezone`.
* **source=postgres** (a live platform's read replica, e.g. Discourse): params `preset`
  (default `discourse`) or `mapping` (a TOML file); the DSN comes from `PULSE_POSTGRES_DSN` or
  else the Airflow connection `pulse_platform` (`PULSE_POSTGRES_CONN_ID`), never from the
  repository. Reads are incremental by the source's watermarks (`ops.source_watermarks`), so
  an hourly schedule (`PULSE_SCHEDULE="@hourly"` or `"0 * * * *"`) loads each change once.
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

from pulse import STEPS
from pulse.notify import PulseFailureNotifier

SCHEDULE = os.environ.get("PULSE_SCHEDULE", "@daily")  # cron or preset; "none": triggered runs only

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
        "source": Param("demo", type="string", enum=["demo", "stackexchange", "events", "postgres"], description="Which connector to run"),
        "preset": Param("", type="string", description="source=postgres: mapping preset (default discourse); DSN from PULSE_POSTGRES_DSN or the connection pulse_platform"),
        "mapping": Param("", type="string", description="source=postgres: a mapping file (TOML) instead of the preset"),
        "path": Param("", type="string", description="Stack Exchange dump folder (source=stackexchange); event export folder or glob (source=events)"),
        "source_name": Param("", type="string", description="source=events: the source the events belong to, e.g. stackexchange:beer"),
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
