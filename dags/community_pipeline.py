"""
### community_pipeline

Loads one data interval from a community platform into the DuckDB warehouse, scores new or
edited content for toxicity, rebuilds the marts, checks data quality and publishes the
read-only serving snapshot the dashboards open.

`extract → validate → load → ingest_decisions → plan_scoring → score_partition ×N → merge_scores →
transform → validate_marts → publish`

* **Scoring fans out** (dynamic task mapping): `plan_scoring` writes the texts not yet scored as
  Parquet partitions of at most `partition_rows` texts into the run's shared scoring folder
  (beside the warehouse); `score_partition` is mapped over them and runs on any worker (it never
  opens the warehouse, so it takes no slot of the warehouse pool); `merge_scores` inserts the
  results by `(content_hash, model_id)` and rebuilds the flags. A retried or duplicated partition
  rewrites the same file, so a worker lost mid-partition costs a retry, never a score.

* **ingest_decisions** copies moderators' decisions from the review store
  (`PULSE_REVIEW_STORE_URL`) into `moderation.decisions`.

* **Params:** `source` (`demo` | `stackexchange` | `events`), `path` (dump folder; for `events`
  a folder or glob of event export files), `source_name` (`events`: the source the events
  belong to, e.g. `stackexchange:beer`; an events run loads the files that arrived before the
  interval end and were not loaded yet), `since` / `until`
  (ISO datetimes, UTC; override the data interval), `scorer`, `timezone`, `partition_rows`
  (texts per scoring partition; 0 = the default, 10,000), `partition_delay_s` (fault drills only:
  each partition waits this long before scoring).
* **source=postgres** (a live platform's read replica, e.g. Discourse): params `preset`
  (default `discourse`) or `mapping` (a TOML file); the DSN comes from `PULSE_POSTGRES_DSN` or
  else the Airflow connection `pulse_platform` (`PULSE_POSTGRES_CONN_ID`), never from the
  repository. Reads are incremental by the source's watermarks (`ops.source_watermarks`), so
  an hourly schedule (`PULSE_SCHEDULE="@hourly"` or `"0 * * * *"`) loads each change once.
* **Data interval:** scheduled and backfill runs load exactly their interval; a manual run
  without `since`/`until` loads the source's whole history.
* Every other task writes the warehouse, so they share the one-slot pool `pulse_warehouse`
  (`PULSE_AIRFLOW_POOL`) and the DAG allows one active run: no two writers ever collide.
* Each task calls one function of `pulse.steps` (the same plan `pulse run` runs in process).
* Retries with exponential backoff, a 2-hour execution timeout per task; failures are logged
  and, when `PULSE_ALERT_WEBHOOK` is set, posted to that webhook.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, chain, dag, task

from pulse import SCORE_TASKS, STEPS
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


def _params() -> tuple[object, str, dict]:
    """This task's settings (the run's ``scorer`` param applied), pipeline run id and params."""
    from airflow.sdk import get_current_context

    from pulse.settings import load_settings

    ctx = get_current_context()
    params = dict(ctx.get("params") or {})
    return load_settings(scorer=params.get("scorer") or None), f"airflow__{ctx['run_id']}", params


def _plan_scoring() -> list[str]:
    """Plan the run's scoring; the partition names (the XCom ``score_partition`` is mapped over)."""
    from pulse.steps import plan_scoring

    settings, run_id, params = _params()
    return plan_scoring(settings, run_id, partition_rows=int(params.get("partition_rows") or 0) or None)["partitions"]


def _score_partition(partition: str) -> dict:
    from pulse.steps import score_partition

    settings, run_id, params = _params()
    return score_partition(settings, run_id, partition, delay_s=float(params.get("partition_delay_s") or 0))


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
        "source": Param(
            "demo",
            type="string",
            enum=["demo", "stackexchange", "events", "postgres"],
            description="Which connector to run",
        ),
        "preset": Param(
            "",
            type="string",
            description="source=postgres: mapping preset (default discourse); DSN from PULSE_POSTGRES_DSN or the connection pulse_platform",
        ),
        "mapping": Param("", type="string", description="source=postgres: a mapping file (TOML) instead of the preset"),
        "path": Param(
            "",
            type="string",
            description="Stack Exchange dump folder (source=stackexchange); event export folder or glob (source=events)",
        ),
        "source_name": Param(
            "", type="string", description="source=events: the source the events belong to, e.g. stackexchange:beer"
        ),
        "since": Param("", type="string", description="Interval start, ISO UTC; empty = the run's data interval"),
        "until": Param("", type="string", description="Interval end, ISO UTC (exclusive)"),
        "scorer": Param("", type="string", description="Override PULSE_SCORER, e.g. lexical"),
        "timezone": Param("", type="string", description="Community IANA timezone, e.g. Europe/Berlin"),
        "partition_rows": Param(
            0, type="integer", minimum=0, description="Texts per scoring partition; 0 = the default (10,000)"
        ),
        "partition_delay_s": Param(
            0, type="number", minimum=0, description="Fault drills only: seconds each partition waits before scoring"
        ),
    },
)
def community_pipeline():
    tasks = []
    for step in STEPS:
        if step != "score":
            tasks.append(task(_run_step, task_id=step)(step))
            continue
        plan_id, partition_id, merge_id = SCORE_TASKS
        plan = task(_plan_scoring, task_id=plan_id)()
        # Any worker, any number at once: no warehouse access, so not in the one-slot pool.
        scored = task(
            _score_partition, task_id=partition_id, pool="default_pool", retry_delay=timedelta(seconds=5)
        ).expand(partition=plan)
        # Runs when every partition succeeded, and also when there was none to score (skipped).
        merged = task(_run_step, task_id=merge_id, trigger_rule="none_failed")(merge_id)
        tasks += [plan, scored, merged]
    chain(*tasks)


community_pipeline()
