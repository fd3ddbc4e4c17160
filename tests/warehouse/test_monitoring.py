"""Freshness and volume expectations, on hand-made run history with worked-out answers."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from warehouse.db import connect, migrate
from warehouse.monitoring import freshness_frame, monitoring_checks, volume_frame
from warehouse.quality import validate

DAY = timedelta(days=1)
T0 = datetime(2025, 1, 1)


@pytest.fixture()
def con():
    c = connect(":memory:")
    migrate(c)
    yield c
    c.close()


def _run(con, run_id: str, day: int, reads: dict[str, int], status: str = "success", span: timedelta = DAY) -> None:
    start = T0 + day * DAY
    con.execute(
        "insert into ops.runs (run_id, source, interval_start, interval_end, started_at, status) values (?, 'forum', ?, ?, ?, ?)",
        [run_id, start, start + span, start + span, status],
    )
    for stream, read in reads.items():
        con.execute(
            "insert into ops.stream_counts (run_id, source, stream, read, skipped, quarantined) values (?, 'forum', ?, ?, 0, 0)",
            [run_id, stream, read],
        )


def test_volume_band_by_hand(con) -> None:
    for day, read in enumerate([100, 104, 96, 100, 102]):
        _run(con, f"r{day}", day, {"content": read})
    _run(con, "failed", 5, {"content": 5000}, status="failed")  # failed runs teach nothing
    _run(con, "weekly", 5, {"content": 700}, span=7 * DAY)  # other interval lengths neither
    _run(con, "now", 6, {"content": 300, "users": 10})
    got = volume_frame(con, "now", min_runs=3)
    # only content has history; median 100, MAD median(|0,4,4,0,2|) = 2, floored at 5% of 100 = 5
    assert got["stream"].to_list() == ["content"]
    row = got.row(0, named=True)
    assert (row["baseline_runs"], row["baseline_median"], row["baseline_mad"]) == (5, 100, 2)
    assert row["modified_z"] == pytest.approx(0.6745 * (300 - 100) / 5)  # 26.98: far outside ±3.5
    result = validate(
        {"ops.volume": got, "ops.freshness": _fresh(1.0)},
        monitoring_checks(48),
        suite="monitoring",
        run_id="now",
        now=T0,
    )
    assert [r.column for r in result.failed] == ["modified_z"] and not result.critical_failures


def test_volume_needs_enough_history(con) -> None:
    _run(con, "r0", 0, {"content": 100})
    _run(con, "now", 1, {"content": 900})
    assert volume_frame(con, "now", min_runs=2).height == 0


def _fresh(lag: float) -> pl.DataFrame:
    return pl.DataFrame({"source": ["forum"], "latest_at": [T0], "lag_hours": [lag]})


def test_freshness_lag_against_the_interval_end(con) -> None:
    con.execute(
        "insert into staging.content (source, content_id, kind, created_at, edited_at, content_hash) values "
        "('forum', 'a', 'post', ?, ?, 'h1'), ('forum', 'b', 'post', ?, null, 'h2')",
        [T0, T0 + timedelta(hours=30), T0 + timedelta(hours=5)],
    )
    got = freshness_frame(con, "forum", T0 + timedelta(hours=90))
    assert got.row(0) == ("forum", T0 + timedelta(hours=30), 60.0)  # the edit at +30 h is the newest change
    ok = validate({"ops.freshness": got}, monitoring_checks(72)[:2], suite="monitoring", run_id="x", now=T0)
    stale = validate({"ops.freshness": got}, monitoring_checks(48)[:2], suite="monitoring", run_id="x", now=T0)
    assert ok.success and [r.column for r in stale.failed] == ["lag_hours"]
