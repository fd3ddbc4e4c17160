"""The serving snapshot carries no raw quarantine payloads and no decision notes; the restricted one does."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from warehouse.db import connect, migrate
from warehouse.publish import RESTRICTED_NAME, publish_snapshot, restricted_path

PAYLOAD = '{"Body": "secret member text 7f3a", "OwnerUserId": "4242"}'
NOTE = "private moderator note 9c1e"


def _tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            f"{s}.{t}"
            for s, t in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        }
    finally:
        con.close()


@pytest.fixture
def warehouse():
    con = connect(":memory:")
    migrate(con)
    con.executemany(
        "insert into raw.quarantine values (?, ?, ?, ?, ?, ?, ?, ?)",
        [("demo", "content", str(i), "bad_timestamp", "x", PAYLOAD, f"fp{i}", "r1") for i in range(3)]
        + [("demo", "users", None, "missing_id", None, PAYLOAD, "fpu", "r2")],
    )
    con.execute(
        "insert into moderation.decisions (decision_id, source, content_id, item_version, from_state, to_state, "
        "action, actor, decided_at, note, ingested_run_id) values "
        "('d1', 'demo', 'demo:1', 1, 'pending', 'removed', 'remove', 'mod', now(), ?, 'r1')",
        [NOTE],
    )
    yield con
    con.close()


def test_payloads_and_notes_only_in_the_restricted_snapshot(warehouse, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PULSE_SERVING_RESTRICTED", raising=False)
    serving = tmp_path / "serving.duckdb"
    counts = publish_snapshot(warehouse, serving)
    assert counts["raw.quarantine_counts"] == 2 and counts["moderation.decisions"] == 1
    assert "raw.quarantine" not in counts
    blob = serving.read_bytes()
    assert b"secret member text 7f3a" not in blob and NOTE.encode() not in blob
    con = duckdb.connect(str(serving), read_only=True)
    assert con.execute("select stream, reason, records from raw.quarantine_counts order by stream").fetchall() == [
        ("content", "bad_timestamp", 3),
        ("users", "missing_id", 1),
    ]
    assert "note" not in [
        c
        for (c,) in con.execute(
            "select column_name from information_schema.columns where table_name = 'decisions'"
        ).fetchall()
    ]
    con.close()
    restricted = restricted_path(serving)
    assert restricted == tmp_path / RESTRICTED_NAME
    assert _tables(restricted) == {"raw.quarantine", "moderation.decisions"}
    con = duckdb.connect(str(restricted), read_only=True)
    assert con.execute("select count(*) from raw.quarantine where payload = ?", [PAYLOAD]).fetchone() == (4,)
    assert con.execute("select note from moderation.decisions").fetchone() == (NOTE,)
    con.close()
    assert not list(tmp_path.glob("*.tmp*")), "no temporary file left behind"


def test_the_restricted_path_is_configurable(warehouse, tmp_path: Path, monkeypatch) -> None:
    elsewhere = tmp_path / "private" / "restricted.duckdb"
    monkeypatch.setenv("PULSE_SERVING_RESTRICTED", str(elsewhere))
    publish_snapshot(warehouse, tmp_path / "serving.duckdb")
    assert _tables(elsewhere) == {"raw.quarantine", "moderation.decisions"}
    assert not (tmp_path / RESTRICTED_NAME).exists()


def test_snapshots_and_their_new_folder_are_owner_only(warehouse, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PULSE_SERVING_RESTRICTED", raising=False)
    monkeypatch.delenv("PULSE_FILE_MODE", raising=False)
    serving = tmp_path / "new" / "serving.duckdb"
    publish_snapshot(warehouse, serving)
    assert oct(serving.stat().st_mode & 0o777) == "0o600"
    assert oct(restricted_path(serving).stat().st_mode & 0o777) == "0o600"
    assert oct(serving.parent.stat().st_mode & 0o777) == "0o700"
    monkeypatch.setenv("PULSE_FILE_MODE", "640")
    publish_snapshot(warehouse, serving)
    assert oct(serving.stat().st_mode & 0o777) == "0o640"
    monkeypatch.setenv("PULSE_FILE_MODE", "044")
    with pytest.raises(ValueError, match="PULSE_FILE_MODE"):
        publish_snapshot(warehouse, serving)
