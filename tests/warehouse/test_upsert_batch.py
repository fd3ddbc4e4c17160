"""``upsert_batch`` matches the batch with staging by row id (issue #17: the cost follows the batch,
not staging) and still writes only new and changed rows, counting each case."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from warehouse.db import connect, migrate
from warehouse.load import UpsertCounts, upsert_batch

T = datetime(2024, 1, 1)


@pytest.fixture
def con():
    con = connect(":memory:")
    migrate(con)
    con.executemany(
        "insert into staging.users (source, user_id, display_name, created_at, reputation) values ('s', ?, ?, ?, ?)",
        [(f"u{i}", f"name {i}", T, i) for i in range(50)],
    )
    yield con
    con.close()


def _land(con, run_id: str, rows: list[tuple]) -> None:
    con.execute("delete from raw.users")
    con.executemany(
        "insert into raw.users (run_id, source, user_id, display_name, created_at, reputation) values (?, 's', ?, ?, ?, ?)",
        [(run_id, *r) for r in rows],
    )


def _users(con) -> list[tuple]:
    return con.execute("select user_id, display_name, reputation from staging.users order by user_id").fetchall()


def test_new_changed_and_unchanged_rows(con) -> None:
    # u3 unchanged, u7 renamed, u8 a null reputation (distinct from 8), u99 new
    batch = [("u3", "name 3", T, 3), ("u7", "renamed", T, 7), ("u8", "name 8", T, None), ("u99", "new", T, 1)]
    _land(con, "r1", batch)
    assert upsert_batch(con, "r1")["users"] == UpsertCounts(inserted=1, updated=2, unchanged=1)
    rows = dict((u, (n, r)) for u, n, r in _users(con))
    assert len(rows) == 51
    assert rows["u7"] == ("renamed", 7) and rows["u8"] == ("name 8", None) and rows["u99"] == ("new", 1)
    assert rows["u3"] == ("name 3", 3) and rows["u9"] == ("name 9", 9)
    before = _users(con)
    _land(con, "r2", batch)  # the same rows again: nothing written
    assert upsert_batch(con, "r2")["users"] == UpsertCounts(inserted=0, updated=0, unchanged=4)
    assert _users(con) == before


def test_a_new_key_twice_in_the_batch_fails_and_writes_nothing(con) -> None:
    _land(con, "r1", [("u7", "renamed", T, 7), ("u99", "a", T, 1), ("u99", "b", T, 2)])
    before = _users(con)
    with pytest.raises(duckdb.ConstraintException):
        upsert_batch(con, "r1")
    assert _users(con) == before
