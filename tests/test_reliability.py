"""Reliability: crash safety under SIGKILL, and readers and the writer never blocking each other.

Each scenario runs the real pipeline in a separate process (DuckDB's file lock is per process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pulse.settings import load_settings
from pulse.steps import SourceSpec, run_pipeline
from warehouse.db import connect

STABLE = (
    "staging.users",
    "staging.content",
    "staging.engagement_events",
    "raw.quarantine",
    "moderation.flags",
    "marts.activity_heatmap",
    "marts.engagement_daily",
    "marts.trending_topics",
    "ops.watermarks",
)
# Columns that name the run which wrote a row: they differ between two warehouses by design.
RUN_COLUMNS = {"raw.quarantine": "first_run_id", "ops.watermarks": "run_id, updated_at"}
WINDOW = ("2014-01-21", "2014-03-01")

# A pipeline run in a child process that stops inside the load transaction (after every
# stream was upserted, before commit), says so on stdout, and waits to be killed.
PAUSED_RUN = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime
    import warehouse.load as load
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    def paused(*args, **kwargs):
        print("IN_LOAD_TRANSACTION", flush=True)
        time.sleep(120)

    load.advance_watermarks = paused
    warehouse, serving, dump, since, until = sys.argv[1:6]
    settings = load_settings(warehouse=warehouse, serving=serving, scorer="lexical")
    run_pipeline(settings, SourceSpec(kind="stackexchange", path=dump),
                 since=datetime.fromisoformat(since), until=datetime.fromisoformat(until))
    """
)


def fingerprints(path: Path) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent checksum per table (run-naming columns left out)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for t in STABLE:
            cols = f"* exclude ({RUN_COLUMNS[t]})" if t in RUN_COLUMNS else "*"
            n, h = con.execute(
                f"select count(*), coalesce(sum(hash(x)::hugeint), 0) from (select {cols} from {t}) x"
            ).fetchall()[0]
            out[t] = (n, int(h))
        return out
    finally:
        con.close()


def _paused_child(tmp: Path, dump: Path, since: str, until: str) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSED_RUN, str(tmp / "w.duckdb"), str(tmp / "s.duckdb"), str(dump), since, until],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    for line in child.stdout:  # blocks until the child is inside the load transaction
        if "IN_LOAD_TRANSACTION" in line:
            return child
    raise AssertionError(f"child ended before reaching the load (exit {child.wait()})")


def _kill(child: subprocess.Popen) -> None:
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()


def _run(tmp: Path, dump: Path, since: str, until: str):
    settings = load_settings(warehouse=tmp / "w.duckdb", serving=tmp / "s.duckdb", scorer="lexical")
    return run_pipeline(
        settings,
        SourceSpec(kind="stackexchange", path=dump),
        since=datetime.fromisoformat(since),
        until=datetime.fromisoformat(until),
    )


def test_sigkill_mid_load_leaves_the_warehouse_consistent_and_the_next_run_completes(
    beer_dump: Path, tmp_path: Path
) -> None:
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    reference.mkdir()
    crashed.mkdir()
    _run(reference, beer_dump, *WINDOW)

    child = _paused_child(crashed, beer_dump, *WINDOW)
    _kill(child)

    con = connect(crashed / "w.duckdb", read_only=True)
    staged = con.execute("select count(*) from staging.content").fetchall()[0][0]
    status = con.execute("select status from ops.runs").fetchall()[0][0]
    con.close()
    assert staged == 0, "the killed load's uncommitted upserts must not survive"
    assert status == "running"  # the killed run could not record anything more
    assert not (crashed / "s.duckdb").exists()

    summary = _run(crashed, beer_dump, *WINDOW)
    assert fingerprints(crashed / "w.duckdb") == fingerprints(reference / "w.duckdb")
    con = connect(crashed / "w.duckdb", read_only=True)
    statuses = sorted(r[0] for r in con.execute("select status from ops.runs").fetchall())
    content = con.execute("select count(*), count(distinct content_id) from staging.content").fetchall()[0]
    con.close()
    assert statuses == ["abandoned", "success"]
    assert content[0] == content[1] == summary.steps["load"]["content"]["inserted"] > 100


def test_an_open_dashboard_does_not_block_publishing_and_sees_the_new_snapshot(beer_dump: Path, tmp_path: Path) -> None:
    _run(tmp_path, beer_dump, "2014-01-21", "2014-02-01")
    reader = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)  # a dashboard holding the file
    try:
        before = reader.execute("select sum(new_content) from marts.engagement_daily").fetchall()[0][0]
        _run(tmp_path, beer_dump, "2014-02-01", "2014-03-01")  # must not fail on a lock
        still = reader.execute("select sum(new_content) from marts.engagement_daily").fetchall()[0][0]
    finally:
        reader.close()
    fresh = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    after = fresh.execute("select sum(new_content) from marts.engagement_daily").fetchall()[0][0]
    fresh.close()
    assert still == before  # the open reader keeps its consistent old snapshot
    assert after > before  # the next query sees the new one


def test_a_running_pipeline_does_not_block_dashboards(beer_dump: Path, tmp_path: Path) -> None:
    _run(tmp_path, beer_dump, "2014-01-21", "2014-02-01")
    child = _paused_child(tmp_path, beer_dump, "2014-02-01", "2014-03-01")  # holds the warehouse mid-write
    try:
        reader = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
        n = reader.execute("select count(*) from marts.activity_heatmap").fetchall()[0][0]
        reader.close()
        assert n > 0
        with pytest.raises(duckdb.IOException):  # the live warehouse is the writer's alone
            duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    finally:
        _kill(child)
