"""Valid events in bounded memory (issue #14): the event connector's batches on disk land as if held.

Over ``PULSE_EVENT_BATCH_ROWS`` valid events the connector writes them out in columnar batches,
de-duplicates them in DuckDB (last copy in arrival order wins) and hands them over as a Parquet
file (:class:`~warehouse.canonical.Spill`) that :func:`warehouse.load.land` inserts. The test
loads the same two files (130,001 events, more than one DuckDB row group, 10 re-delivered with
a change, one dangling, two junk lines) through the loader's path once spilled and once held
in memory, and checks both against numbers worked by hand: the reconciliation, the duplicate
rule per file, the file ledger, staging, and that the private spill folder is removed.
"""

from __future__ import annotations

import gc
import json
import os
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from warehouse.db import open_warehouse
from warehouse.load import (
    land,
    quarantine_dangling,
    quarantine_implausible,
    record_extract_counts,
    record_upserts,
    upsert_batch,
)
from warehouse.sources.events import DUPLICATE_EVENT_RULE, extract_events

NOW = datetime(2030, 1, 1)
T0 = 1_700_000_000
N = 130_000  # above DuckDB's row group (122,880): an insert that size once went missing behind an empty one


def _line(i: int, event_type: str = "view", content_id: str = "p1") -> bytes:
    return (
        json.dumps(
            {
                "event_id": f"e{i}",
                "event_type": event_type,
                "content_id": content_id,
                "occurred_at": "2016-01-02T03:04:05Z",
            }
        ).encode()
        + b"\n"
    )


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exports")
    with (folder / "a.jsonl").open("wb") as f:
        f.write(b"".join(_line(i) for i in range(N)) + b"not json\n")
    with (folder / "b.jsonl").open("wb") as f:  # arrives later: its copies of e0..e9 win
        f.write(
            b"".join(_line(i, "like") for i in range(10)) + _line(N, content_id="p999") + b'{"event_type": "view"}\n'
        )
    os.utime(folder / "a.jsonl", (T0, T0))
    os.utime(folder / "b.jsonl", (T0 + 60, T0 + 60))
    return folder


def _load(exports: Path, warehouse: Path) -> tuple[dict, tuple, list, tuple]:
    with open_warehouse(warehouse) as con:
        con.execute(
            "insert into staging.content (source, content_id, kind, created_at, content_hash) "
            "values ('forum', 'p1', 'question', timestamp '2016-01-01', 'h')"
        )
        ex = extract_events(exports, source="forum", now=NOW)
        c = ex.counts["engagement_events"]
        spill = ex.spilled.get("engagement_events")
        extract = {
            "counts": (c.read, c.emitted, c.skip_rules, c.quarantined),
            "frame_rows": ex.engagement_events.height,
            "spill_rows": spill.rows if spill else None,
            "files": {Path(r["path"]).name: r["rows_skipped"] for r in ex.files.iter_rows(named=True)},
        }
        land(con, ex, "r1")
        record_extract_counts(con, "r1", ex.source, ex.counts)
        quarantine_implausible(con, "r1")
        quarantine_dangling(con, "r1")
        record_upserts(con, "r1", upsert_batch(con, "r1"))
        folder = spill.path.parent if spill else None
        del ex, spill
        gc.collect()
        extract["spill_folder_left"] = folder.exists() if folder else None
        reconciliation = con.execute(
            "select read, inserted, updated, unchanged, skipped, quarantined from ops.stream_counts "
            "where run_id = 'r1' and stream = 'engagement_events'"
        ).fetchone()
        ledger = con.execute(
            "select path, rows_read, rows_loaded, rows_skipped, rows_quarantined from ops.loaded_files order by path"
        ).fetchall()
        staging = con.execute(
            "select count(*), count(*) filter (where event_type = 'like'), min(event_id), max(event_id), "
            "sum(hash(event_id, event_type, content_id, occurred_at, time_precision)) from staging.engagement_events"
        ).fetchone()
    return extract, reconciliation, [(Path(p).name, *rest) for p, *rest in ledger], staging


@pytest.mark.parametrize("batch_rows", [50_000, 1_000_000])
def test_spilled_and_held_valid_events_land_the_same(
    exports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    monkeypatch.setenv("PULSE_EVENT_BATCH_ROWS", str(batch_rows))
    extract, reconciliation, ledger, staging = _load(exports, tmp_path / "w.duckdb")
    spilled = batch_rows < N
    assert extract["counts"] == (N + 13, N + 1, {DUPLICATE_EVENT_RULE: 10}, 2)
    assert (extract["frame_rows"], extract["spill_rows"]) == ((0, N + 1) if spilled else (N + 1, None))
    assert extract["files"] == {"a.jsonl": 10, "b.jsonl": 0}  # the earlier copies lost
    assert extract["spill_folder_left"] is (False if spilled else None)
    # read = inserted + updated + unchanged + skipped + quarantined: 2 junk + 1 dangling quarantined
    assert reconciliation == (N + 13, N, 0, 0, 10, 3)
    assert ledger == [("a.jsonl", N + 1, N - 10, 10, 1), ("b.jsonl", 12, 10, 0, 2)]
    count, likes, lo, hi, digest = staging
    assert (count, likes, lo, hi) == (N, 10, "e0", "e99999")
    with duckdb.connect() as con:  # the same rows as if loaded one by one: e0..e9 liked, the rest viewed
        want = con.execute(
            "select sum(hash('e' || i, case when i < 10 then 'like' else 'view' end, 'p1', "
            "timestamp '2016-01-02 03:04:05', 'exact')) from range(?) t(i)",
            [N],
        ).fetchone()[0]
    assert digest == want


@pytest.mark.parametrize("batch_rows", [2, 1_000])
def test_an_erased_members_events_on_disk_get_the_alias_as_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    monkeypatch.setenv("PULSE_EVENT_BATCH_ROWS", str(batch_rows))
    folder = tmp_path / "exports"
    folder.mkdir()
    rows = [
        {"event_id": f"e{i}", "event_type": "view", "content_id": "p1", "user_id": f"u{i % 3}"} for i in range(6)
    ] + [
        {"event_id": "r1", "event_type": "report", "content_id": "p1", "user_id": "u1",
         "properties": {"flag_type": "spam", "message": "u1 wrote this"}},
    ]  # fmt: skip
    (folder / "a.jsonl").write_text(
        "".join(json.dumps({**r, "occurred_at": "2016-01-02T03:04:05Z"}) + "\n" for r in rows)
    )
    with open_warehouse(tmp_path / "w.duckdb") as con:
        con.execute(
            "insert into staging.content (source, content_id, kind, created_at, content_hash) "
            "values ('forum', 'p1', 'question', timestamp '2016-01-01', 'h')"
        )
        con.execute("insert into staging.users (source, user_id, display_name) values ('forum', 'u1', 'Ulla')")
        from warehouse.privacy import TOMBSTONE_RULE, erase_user

        erase_user(con, "forum", "u1")
        ex = extract_events(folder, source="forum", now=NOW)
        assert ("engagement_events" in ex.spilled) is (batch_rows == 2)
        land(con, ex, "r1")
        c = ex.counts["engagement_events"]
        alias = con.execute("select alias from ops.tombstones").fetchone()[0]
        got = con.execute(
            "select event_id, user_id, properties from raw.engagement_events where run_id = 'r1' order by event_id"
        ).fetchall()
    assert (c.read, c.emitted, c.skipped, c.quarantined) == (7, 7, 0, 0)
    assert TOMBSTONE_RULE not in c.skip_rules  # redact mode: their events stay, under the alias
    assert got == [
        ("e0", "u0", None),
        ("e1", alias, None),
        ("e2", "u2", None),
        ("e3", "u0", None),
        ("e4", alias, None),
        ("e5", "u2", None),
        ("r1", alias, '{"flag_type": "spam"}'),  # the report's message, which named them, is gone
    ]
