"""Incremental publishing (issue #17): ``publish_snapshot(..., incremental=True)`` updates a copy of
the previous snapshot table by table (unchanged tables kept, changed ones by their row delta) and
gives the same snapshot as a publish from scratch; a reader of the old snapshot keeps its data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

import warehouse.publish as publish
from warehouse.db import connect, migrate
from warehouse.publish import publish_snapshot

TABLES = ("moderation.scores", "marts.hot_content", "moderation.decisions", "raw.quarantine_counts", "ops.runs")


def _score(con, h: str, tox: float) -> None:
    con.execute(
        "insert into moderation.scores (content_hash, model_id, model_version, backend, is_fallback, toxicity, "
        "scored_at) values (?, 'lexical:x', 'v', 'lexical', false, ?, ?)",
        [h, tox, datetime(2024, 1, 3)],
    )


@pytest.fixture
def warehouse():
    con = connect(":memory:")
    migrate(con)
    for i in range(20):
        _score(con, f"h{i:02d}", i / 20)
    con.execute("create table marts.hot_content as select range as thread_id, range * 2 as score from range(10)")
    con.execute(
        "insert into moderation.decisions (decision_id, source, content_id, item_version, from_state, to_state, "
        "action, actor, decided_at, note, ingested_run_id) values "
        "('d1', 'demo', 'demo:1', 1, 'pending', 'removed', 'remove', 'mod', timestamp '2024-01-04', 'n', 'r1')"
    )
    yield con
    con.close()


def _rows(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            f"{s}.{t}"
            for s, t in con.execute(
                "select table_schema, table_name from information_schema.tables order by 1, 2"
            ).fetchall()
        ]
        return {n: sorted(con.execute(f"select * from {n}").fetchall(), key=repr) for n in names}
    finally:
        con.close()


@pytest.fixture
def spy(monkeypatch):
    """Names of the tables a publish updated by their delta or rewrote whole (``kept`` ones aside)."""
    calls: dict[str, list[str]] = {"delta": [], "rewritten": []}
    sync = publish._sync

    def _sync(con, target, select, previous):
        out = sync(con, target, select, previous)
        if out[3] != "kept":
            calls[out[3]].append(target.split(".", 1)[1])
        return out

    monkeypatch.setattr(publish, "_sync", _sync)
    monkeypatch.setattr(publish, "DELTA_MIN_ROWS", 0)  # these tables are small: take the delta path anyway
    return calls


def test_an_increment_touches_only_the_changed_rows_and_equals_a_fresh_publish(warehouse, tmp_path, spy) -> None:
    serving = tmp_path / "serving.duckdb"
    publish_snapshot(warehouse, serving, incremental=True)
    assert "moderation.scores" in spy["rewritten"] and not spy["delta"]  # the first publish writes everything
    spy["rewritten"].clear()
    publish_snapshot(warehouse, serving, incremental=True)
    assert spy == {"delta": [], "rewritten": []}  # nothing changed: every table kept
    # one new score, one erased score, one changed mart row
    _score(warehouse, "h99", 0.99)
    warehouse.execute("delete from moderation.scores where content_hash = 'h03'")
    warehouse.execute("update marts.hot_content set score = 1000 where thread_id = 4")
    counts = publish_snapshot(warehouse, serving, incremental=True)
    assert sorted(spy["delta"]) == ["marts.hot_content", "moderation.scores"] and spy["rewritten"] == []
    assert counts["moderation.scores"] == 20 and counts["marts.hot_content"] == 10
    fresh = tmp_path / "fresh" / "serving.duckdb"
    publish_snapshot(warehouse, fresh)
    assert _rows(serving) == _rows(fresh)
    spy["delta"].clear()
    publish_snapshot(warehouse, serving)  # not incremental (a privacy request's republish): every table written
    assert spy["delta"] == [] and "moderation.scores" in spy["rewritten"]
    con = duckdb.connect(str(serving), read_only=True)
    assert con.execute("select score from marts.hot_content where thread_id = 4").fetchone() == (1000,)
    assert con.execute("select count(*) from moderation.scores where content_hash in ('h03', 'h99')").fetchone() == (1,)
    con.close()
    assert not list(tmp_path.glob("*.tmp*")), "no temporary file left behind"


def test_a_large_change_duplicates_or_a_new_column_rewrite_the_table(warehouse, tmp_path, spy) -> None:
    serving = tmp_path / "serving.duckdb"
    publish_snapshot(warehouse, serving, incremental=True)
    spy["rewritten"].clear()
    warehouse.execute("update marts.hot_content set score = score + 1")  # every row: over DELTA_MAX_SHARE
    warehouse.execute("insert into marts.hot_content values (3, 6)")
    publish_snapshot(warehouse, serving, incremental=True)
    assert spy["rewritten"] == ["marts.hot_content"]
    warehouse.execute("insert into marts.hot_content values (3, 7)")  # the same as a row there (3 * 2 + 1)
    spy["delta"].clear()
    spy["rewritten"].clear()
    publish_snapshot(warehouse, serving, incremental=True)
    # the hash delta finds nothing to add, so the counts differ (11 against 12): rewritten
    assert spy == {"delta": [], "rewritten": ["marts.hot_content"]}
    warehouse.execute("alter table marts.hot_content add column title varchar")
    spy["delta"].clear()
    spy["rewritten"].clear()
    publish_snapshot(warehouse, serving, incremental=True)
    assert spy == {"delta": [], "rewritten": ["marts.hot_content"]}
    warehouse.execute("drop table marts.hot_content")
    publish_snapshot(warehouse, serving, incremental=True)
    fresh = tmp_path / "fresh" / "serving.duckdb"
    publish_snapshot(warehouse, fresh)
    assert _rows(serving) == _rows(fresh) and "marts.hot_content" not in _rows(serving)


def test_a_reader_of_the_old_snapshot_keeps_its_rows(warehouse, tmp_path) -> None:
    serving = tmp_path / "serving.duckdb"
    publish_snapshot(warehouse, serving, incremental=True)
    reader = duckdb.connect(str(serving), read_only=True)
    try:
        _score(warehouse, "h98", 0.5)
        publish_snapshot(warehouse, serving, incremental=True)  # copies and replaces the file the reader has open
        assert reader.execute("select count(*) from moderation.scores").fetchone() == (20,)
    finally:
        reader.close()
    con = duckdb.connect(str(serving), read_only=True)
    assert con.execute("select count(*) from moderation.scores").fetchone() == (21,)
    con.close()


def test_a_changed_small_table_is_rewritten_whole(warehouse, tmp_path, monkeypatch) -> None:
    """Under DELTA_MIN_ROWS rows one create statement costs less than a delta's five."""
    seen: list[tuple[str, str]] = []
    sync = publish._sync
    monkeypatch.setattr(publish, "_sync", lambda *a: seen.append((a[1], (out := sync(*a))[3])) or out)
    serving = tmp_path / "serving.duckdb"
    publish_snapshot(warehouse, serving, incremental=True)
    seen.clear()
    _score(warehouse, "h97", 0.3)
    publish_snapshot(warehouse, serving, incremental=True)
    assert ("snapshot.moderation.scores", "rewritten") in seen
    assert ("snapshot.marts.hot_content", "kept") in seen
    assert {how for _, how in seen} == {"kept", "rewritten"}
