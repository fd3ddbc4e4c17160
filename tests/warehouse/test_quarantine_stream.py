"""Quarantine in bounded memory (issue #14): every bad record counted, payloads kept for a sample.

* :class:`~warehouse.canonical.QuarantineLog` (Hypothesis): whatever the sequence of bad
  records, the stored payloads per (file, stream, reason) are ``min(records, cap)``, the
  counts are exact, every stored payload is at most the byte cap plus the truncation marker.
* The event connector on generated junk: a 300,000-line ``.jsonl.gz`` (a decompression bomb
  in miniature) stores exactly the cap and counts every line, with a traced peak of a few MiB;
  a 20 MB single line is skipped in bounded reads; a junk Parquet file streams by batch.
* The loader and the gate: ``raw.quarantine_counts`` holds the counts, ``raw.quarantine`` the
  sample; the reconciliation ``read = inserted + updated + unchanged + skipped + quarantined``
  holds with the counts, and ``PULSE_QUARANTINE_MAX_SHARE`` fires on the share from counts.
"""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse import steps
from pulse.settings import load_settings
from pulse.steps import PipelineError, SourceSpec
from warehouse.canonical import QuarantineLog, cap_payload, fingerprint
from warehouse.sources.events import extract_events

NOW = datetime(2030, 1, 1)
T0 = 1_700_000_000
MIB = 1 << 20


def _valid(i: int) -> str:
    return json.dumps(
        {"event_id": f"e{i}", "event_type": "view", "content_id": "p1", "occurred_at": "2016-01-02T03:04:05Z"}
    )


# ----------------------------------------------------------------------------------------------
# the log


records = st.lists(
    st.tuples(
        st.sampled_from(["a.jsonl", "b.jsonl"]),
        st.sampled_from(["users", "engagement_events"]),
        st.sampled_from(["bad_json", "missing_id", "bad_timestamp"]),
        st.text(max_size=40) | st.integers(0, 3000).map(lambda n: "é" * n),
    ),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(records=records, cap=st.integers(0, 7), payload_bytes=st.sampled_from([256, 1000, 4096]))
def test_stored_payloads_are_capped_per_reason_and_file_and_counts_are_exact(
    records: list[tuple[str, str, str, str]], cap: int, payload_bytes: int
) -> None:
    log = QuarantineLog("s", sample_per_reason=cap, payload_bytes=payload_bytes)
    for scope, stream, reason, payload in records:
        log.scope = scope
        log.add(stream, None, reason, lambda: "detail", payload)
    expected: dict[tuple[str, str, str], int] = {}
    for scope, stream, reason, _ in records:
        expected[(scope, stream, reason)] = expected.get((scope, stream, reason), 0) + 1
    counts = log.counts_frame()
    by_reason: dict[tuple[str, str], int] = {}
    for (_, stream, reason), n in expected.items():
        by_reason[(stream, reason)] = by_reason.get((stream, reason), 0) + n
    assert {(r["stream"], r["reason"]): r["records"] for r in counts.iter_rows(named=True)} == by_reason
    stored = sum(min(n, cap) for n in expected.values())
    assert log.frame().height == stored == counts["stored"].sum()
    for row in log.frame().iter_rows(named=True):
        data = row["payload"].encode("utf-8")
        assert len(data) <= payload_bytes + 40
        assert ("…[truncated:" in row["payload"]) == (len(data) > payload_bytes)
        assert row["detail"] == "detail"


def test_a_payload_over_the_cap_keeps_its_head_and_its_full_length() -> None:
    text = "é" * 100_000  # 200,000 bytes
    capped = cap_payload(text, 65_536)
    assert capped == "é" * 32_768 + "…[truncated: 200,000 bytes in all]"
    assert cap_payload("short", 65_536) == "short"
    log = QuarantineLog("s", sample_per_reason=1, payload_bytes=65_536)
    log.add("content", "p1", "oversized_body", "too long", text)
    assert log.rows[0]["fingerprint"] == fingerprint(text)  # the natural key is the whole record's


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_QUARANTINE_SAMPLE_PER_REASON", "3")
    monkeypatch.setenv("PULSE_QUARANTINE_PAYLOAD_BYTES", "1024")
    log = QuarantineLog("s")
    assert (log.sample_per_reason, log.payload_bytes) == (3, 1024)
    monkeypatch.setenv("PULSE_QUARANTINE_PAYLOAD_BYTES", "12")
    with pytest.raises(ValueError, match="PULSE_QUARANTINE_PAYLOAD_BYTES=12 must be at least 256"):
        QuarantineLog("s")


# ----------------------------------------------------------------------------------------------
# the event connector on generated junk


def _bomb(path: Path, lines: int, extra: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=9) as f:
        for _ in range(lines // 1000):
            f.write(b"x\n" * 400 + b"{}\n" * 300 + b"{not json\n" * 300)
        f.write(extra)
    os.utime(path, (T0, T0))
    return path


def test_a_junk_jsonl_gz_of_300k_lines_stores_the_cap_and_counts_every_line(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "exports" / "bomb.jsonl.gz", 300_000, (_valid(1) + "\n").encode())
    assert bomb.stat().st_size < 8_000  # a few KB that expand to 300,000 lines
    ex = extract_events(tmp_path / "exports", source="forum", now=NOW)
    counts = ex.counts["engagement_events"]
    assert (counts.read, counts.emitted, counts.quarantined) == (300_001, 1, 300_000)
    summary = {(r["reason"]): (r["records"], r["stored"]) for r in ex.quarantine_summary().iter_rows(named=True)}
    assert summary == {"bad_json": (210_000, 100), "missing_id": (90_000, 100)}
    assert ex.quarantine.height == 200
    assert ex.files["rows_quarantined"].to_list() == [300_000]
    # the stored sample is the first lines, with their details
    first = ex.quarantine.row(0, named=True)
    assert first["payload"] == "x" and first["detail"].endswith("line 1: Expecting value: line 1 column 1 (char 0)")


def test_junk_lines_cost_no_memory_each(tmp_path: Path) -> None:
    _bomb(tmp_path / "exports" / "bomb.jsonl.gz", 30_000)
    tracemalloc.start()
    try:
        ex = extract_events(tmp_path / "exports", source="forum", now=NOW)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ex.counts["engagement_events"].quarantined == 30_000
    assert peak < 4 * MIB, f"traced peak {peak / MIB:.1f} MiB"  # each record held: ~1 KiB, ~30 MiB in all


def test_the_sample_is_per_file(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        _bomb(tmp_path / "exports" / f"{name}.jsonl.gz", 2_000)
    ex = extract_events(tmp_path / "exports", source="forum", now=NOW)
    summary = {(r["reason"]): (r["records"], r["stored"]) for r in ex.quarantine_summary().iter_rows(named=True)}
    assert summary == {"bad_json": (4_200, 300), "missing_id": (1_800, 300)}


def test_a_20_mb_line_is_skipped_in_bounded_reads_and_the_next_line_loaded(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    path = exports / "long.jsonl"
    with path.open("wb") as f:
        f.write(b'{"event_id": "long", "blob": "' + b"y" * (20 * MIB) + b'"}\n')
        f.write((_valid(2) + "\n").encode())
    os.utime(path, (T0, T0))
    tracemalloc.start()
    try:
        ex = extract_events(exports, source="forum", now=NOW, max_line_bytes=MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ex.engagement_events["event_id"].to_list() == ["e2"]
    q = ex.quarantine.row(0, named=True)
    assert (
        q["reason"] == "oversized_line" and q["payload"].startswith('{"event_id": "long"') and len(q["payload"]) <= 201
    )
    assert "20,971,553 bytes, longer than 1,048,576" in q["detail"]
    assert peak < 8 * MIB, f"traced peak {peak / MIB:.1f} MiB"  # the line is never held whole


def test_the_line_cap_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(_valid(1) + "\n" + json.dumps({"event_id": "e2", "pad": "z" * 1000}) + "\n")
    monkeypatch.setenv("PULSE_EVENT_MAX_LINE_BYTES", "500")
    ex = extract_events(path, source="forum", now=NOW)
    assert ex.quarantine["reason"].to_list() == ["oversized_line"] and ex.engagement_events.height == 1


def test_a_junk_parquet_file_streams_by_batch_with_exact_counts(tmp_path: Path) -> None:
    n = 50_000
    pl.DataFrame(
        {"event_id": [None] * (n - 1) + ["ok"], "event_type": ["view"] * n, "content_id": ["p1"] * n}
    ).with_columns(pl.lit(datetime(2016, 1, 2)).alias("occurred_at")).write_parquet(
        tmp_path / "junk.parquet", row_group_size=10_000
    )
    ex = extract_events(tmp_path / "junk.parquet", source="forum", now=NOW)
    assert (ex.counts["engagement_events"].quarantined, ex.engagement_events.height) == (n - 1, 1)
    assert ex.quarantine_summary().rows() == [("forum", "engagement_events", "missing_id", n - 1, 100)]


def test_a_corrupt_parquet_file_is_one_unreadable_file_record(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"PAR1" + b"\0" * 100 + b"PAR1")
    ex = extract_events(tmp_path / "bad.parquet", source="forum", now=NOW)
    assert ex.quarantine["reason"].to_list() == ["unreadable_file"] and ex.counts["engagement_events"].read == 1


# ----------------------------------------------------------------------------------------------
# loader, reconciliation, gate


def _export(folder: Path, junk: int, valid: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"".join(b"x%d\n" % i for i in range(junk)))  # distinct: stored rows are unique by payload
        f.write("".join(_valid(i) + "\n" for i in range(valid)).encode())
    os.utime(path, (T0, T0))
    return folder


def _counts(warehouse: Path, run_id: str) -> tuple[dict[str, int], int, tuple[int, ...]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        counts = dict(
            con.execute(
                "select reason, records from raw.quarantine_counts where run_id = ? order by reason", [run_id]
            ).fetchall()
        )
        stored = con.execute("select count(*) from raw.quarantine").fetchone()[0]
        row = con.execute(
            "select read, inserted, updated, unchanged, skipped, quarantined from ops.stream_counts "
            "where run_id = ? and stream = 'engagement_events'",
            [run_id],
        ).fetchone()
    finally:
        con.close()
    return counts, stored, row


def test_the_gate_fires_on_the_share_from_counts_not_stored_payloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULSE_QUARANTINE_SAMPLE_PER_REASON", "5")
    spec = SourceSpec(kind="events", path=_export(tmp_path / "exports", junk=2_000, valid=0), source_name="forum")
    s = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", quarantine_max_share=0.5)
    assert steps.extract(s, "r1", spec)["quarantined"] == 2_000
    with pytest.raises(PipelineError, match=r"2,000 of 2,000 records read .*engagement_events/bad_json 2,000"):
        steps.validate(s, "r1")
    counts, stored, row = _counts(tmp_path / "w.duckdb", "r1")
    assert counts == {"bad_json": 2_000} and stored == 5 and row[0] == row[5] == 2_000


def test_reconciliation_holds_with_counted_not_stored_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_QUARANTINE_SAMPLE_PER_REASON", "5")
    spec = SourceSpec(kind="events", path=_export(tmp_path / "exports", junk=300, valid=40), source_name="forum")
    s = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", quarantine_max_share=1.0)
    steps.extract(s, "r1", spec)
    steps.extract(s, "r1", spec)  # a retried extract replaces its counts, never adds to them
    steps.validate(s, "r1")  # no content in this warehouse: the 40 valid events dangle
    steps.load(s, "r1")
    counts, stored, (read, inserted, updated, unchanged, skipped, quarantined) = _counts(tmp_path / "w.duckdb", "r1")
    assert counts == {"bad_json": 300, "dangling_reference": 40}
    assert stored == 5 + 40  # the connector's sample; validate's moves are batch rows, all stored
    assert read == 340 == inserted + updated + unchanged + skipped + quarantined and quarantined == 340


def test_records_removed_from_the_sample_after_the_extract_leave_the_counts(tmp_path: Path) -> None:
    """apply_tombstones drops an erased member's stored records (to a skip rule): the counts follow."""
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps({"event_id": f"e{i}", "user_id": f"u{i % 2}"}) + "\n" for i in range(10)))
    ex = extract_events(path, source="forum", now=NOW, max_line_bytes=MIB)
    assert ex.quarantine_summary()["records"].to_list() == [10]
    ex.quarantine = ex.quarantine.filter(~pl.col("payload").str.contains('"u1"'))
    assert ex.quarantine_summary().rows() == [("forum", "engagement_events", "unknown_event_type", 5, 5)]
