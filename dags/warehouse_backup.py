"""
### warehouse_backup

Daily, after the pipeline: one consistent, encrypted backup of the warehouse, the review store,
the config and the erasure ledger (`pulse backup create`), then a verify with a restore drill
(`pulse backup verify`), then grandfather-father-son pruning (`pulse backup prune`). See
README "Backups and restore" and `pulse/backup.py`.

`wait_for_pipeline → create_backup → verify_backup → prune_backups`

* **After the pipeline:** `wait_for_pipeline` waits (reschedule mode: it holds no worker slot)
  for `community_pipeline.publish` of the same data interval (both DAGs run the same daily
  data-interval timetable, `PULSE_BACKUP_SCHEDULE`, default `@daily`). When the pipeline has
  no such run, or it failed, the sensor skips after 6 hours and the backup runs anyway (it
  then saves the last published state).
* **Never a half-written file:** `create_backup` runs in the one-slot pool `pulse_warehouse`
  (`PULSE_AIRFLOW_POOL`) that every warehouse-writing task of the pipeline holds, and it refuses
  while `ops.runs` has a run `running` (a run between two tasks): it then fails and retries with
  exponential backoff from 5 minutes.
* **Destination and key:** `PULSE_BACKUP_DEST` (a folder or `s3://bucket/prefix`; storage
  options `PULSE_BACKUP_STORAGE_OPTIONS__*`, credentials from the filesystem's environment) and
  `PULSE_BACKUP_KEY` (environment only). Retention: `PULSE_BACKUP_KEEP_DAILY` / `_WEEKLY` /
  `_MONTHLY` / `_YEARLY` (7 / 4 / 12 / 0).
* Failures are logged and, when `PULSE_ALERT_WEBHOOK` is set, posted to that webhook (the same
  notifier as the pipeline's).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import CronDataIntervalTimetable, chain, dag, task

from pulse.notify import PulseFailureNotifier

SCHEDULE = os.environ.get("PULSE_BACKUP_SCHEDULE", "@daily")  # cron or preset; "none": triggered runs only
POOL = os.environ.get("PULSE_AIRFLOW_POOL", "pulse_warehouse")

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
    # logs every failure; also posts to PULSE_ALERT_WEBHOOK when set
    "on_failure_callback": PulseFailureNotifier(),
}


def _settings_and_dest() -> tuple[object, str]:
    from pulse.settings import load_settings

    settings = load_settings()
    if not settings.backup_dest:
        raise ValueError("PULSE_BACKUP_DEST is unset: set it to a folder or an fsspec URL such as s3://bucket/prefix")
    return settings, settings.backup_dest


def _create() -> dict:
    """Take the backup; the XCom is its id and size."""
    from pulse.backup import create_backup

    settings, dest = _settings_and_dest()
    result = create_backup(settings, dest)
    return {
        "backup_id": result.backup_id,
        "bytes": result.manifest["backup_bytes"],
        "files": len(result.manifest["files"]),
    }


def _verify(created: dict) -> dict:
    """Re-hash and drill-restore the backup just taken."""
    from dataclasses import asdict

    from pulse.backup import verify_backup

    settings, dest = _settings_and_dest()
    return asdict(verify_backup(settings, dest, created["backup_id"]))


def _prune(verified: dict) -> dict:
    """Apply the retention policy (only after the newest backup verified)."""
    from pulse.backup import prune_backups

    settings, dest = _settings_and_dest()
    return prune_backups(settings, dest)


@dag(
    schedule=None if SCHEDULE.lower() in {"", "none"} else CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=pendulum.parse(os.environ.get("PULSE_START_DATE", "2026-01-01T00:00:00+00:00")),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["community-pulse", "warehouse", "backup"],
    doc_md=__doc__,
)
def warehouse_backup():
    wait = ExternalTaskSensor(
        task_id="wait_for_pipeline",
        external_dag_id="community_pipeline",
        external_task_id="publish",
        allowed_states=["success"],
        failed_states=["failed", "upstream_failed"],
        mode="reschedule",
        poke_interval=300,
        timeout=6 * 3600,
        soft_fail=True,
        retries=0,
    )
    created = task(
        _create,
        task_id="create_backup",
        pool=POOL,
        trigger_rule="none_failed",
        retries=6,
        retry_delay=timedelta(minutes=5),
    )()
    verified = task(_verify, task_id="verify_backup")(created)
    pruned = task(_prune, task_id="prune_backups")(verified)
    chain(wait, created, verified, pruned)


warehouse_backup()
