"""How a DAG run's data interval becomes the window it loads."""

from __future__ import annotations

from datetime import UTC, datetime

from pulse.airflow_tasks import resolve_window

START = datetime(2015, 3, 1, tzinfo=UTC)
END = datetime(2015, 3, 2, tzinfo=UTC)


def test_scheduled_and_backfill_runs_load_their_interval() -> None:
    for run_type in ("scheduled", "backfill", "DagRunType.SCHEDULED"):
        assert resolve_window({}, run_type, START, END) == (datetime(2015, 3, 1), datetime(2015, 3, 2))


def test_manual_run_without_params_loads_everything() -> None:
    assert resolve_window({"since": "", "until": ""}, "manual", START, END) == (None, None)


def test_params_override_the_interval() -> None:
    got = resolve_window({"since": "2016-01-01T00:00:00+01:00", "until": ""}, "scheduled", START, END)
    assert got == (datetime(2015, 12, 31, 23, 0), None)
