"""Tests for the engagement-event export connector (warehouse/sources/events.py) and its runs.

Export files are built in ``tmp_path`` from the REAL beer.stackexchange dump (the vendored slice,
fixture ``beer_dump``; and the whole dump, ``full_data``, for the figures README.md quotes): its
upvotes become ``like`` events, plus a few hand-made ``view`` events by
real members on real questions. The pipeline runs (``run_pipeline``, lexical scorer) on a
warehouse that already holds the beer dump, so the events join its content. Expected numbers
are computed here from the dump's XML with ``xml.etree``, independently of the connectors.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from pulse.settings import load_settings
from pulse.steps import PipelineError, SourceSpec, run_pipeline
from warehouse.canonical import QUARANTINE_SCHEMA, SCHEMAS
from warehouse.sources.events import (
    DUPLICATE_EVENT_RULE,
    FILE_ALREADY_LOADED_RULE,
    MAX_LINE_BYTES,
    event_source_name,
    extract_events,
    find_event_files,
    parse_occurred_at,
)

NOW = datetime(2026, 1, 1)
SOURCE = "stackexchange:beer"
T0 = 1_700_000_000  # file arrival times (epoch seconds) for deterministic arrival order


# ----------------------------------------------------------------------------------------------
# the real data, read independently of the connectors

# Per dump: upvotes, records read, inserted, quarantined by the first run (README: "On the beer
# dump's 9,061 upvotes exported as `like` events ... 14,168 records read, 8,383 inserted, ... 199
# quarantined"); the late file inserts 499 of its 500 likes in both.
FIGURES = {"slice": (5340, 6726, 4851, 10), "full": (9061, 14168, 8383, 199)}


@pytest.fixture(scope="module", params=["slice", pytest.param("full", marks=pytest.mark.full_data)])
def dump(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(name, folder): the vendored slice, and the whole dump for README's figures."""
    return request.param, request.getfixturevalue("beer_dump" if request.param == "slice" else "full_beer_dump")


@pytest.fixture(scope="module")
def beer_xml(dump: tuple[str, Path]) -> dict[str, object]:
    """Upvotes (sorted by date, id) and the ids of questions/answers, straight from the XML."""
    beer_dump = dump[1]
    posts = [dict(el.attrib) for _, el in ET.iterparse(beer_dump / "Posts.xml") if el.tag == "row"]
    votes = [dict(el.attrib) for _, el in ET.iterparse(beer_dump / "Votes.xml") if el.tag == "row"]
    content = {f"p{p['Id']}" for p in posts if p["PostTypeId"] in ("1", "2")}
    questions = sorted((p for p in posts if p["PostTypeId"] == "1"), key=lambda p: int(p["Id"]))
    upvotes = sorted((v for v in votes if v["VoteTypeId"] == "2"), key=lambda v: (v["CreationDate"], int(v["Id"])))
    return {"content": content, "questions": questions, "upvotes": upvotes, "figures": FIGURES[dump[0]]}


def _like(vote: dict[str, str], **extra: object) -> dict[str, object]:
    return {
        "event_id": f"like-{vote['Id']}",
        "event_type": "like",
        "content_id": f"p{vote['PostId']}",
        "user_id": None,
        "occurred_at": vote["CreationDate"][:10],  # the dump truncates vote times to the day
        **extra,
    }


def _write_jsonl(path: Path, lines: list[str], mtime: int) -> None:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.utime(path, (mtime, mtime))


def _stream_row(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, object]:
    cols = ("read", "inserted", "updated", "unchanged", "skipped", "quarantined", "skip_rules")
    row = con.execute(
        f"select {', '.join(cols)} from ops.stream_counts where run_id = ? and stream = 'engagement_events'", [run_id]
    ).fetchall()[0]
    out = dict(zip(cols, row, strict=False))
    out["skip_rules"] = json.loads(out["skip_rules"])
    return out


@pytest.fixture(scope="module")
def beer_warehouse(dump: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse file whose staging holds the whole beer dump (content for the events to join).

    Only extract, validate and load run here (the marts are built by the events runs), to keep
    the test fast; the events runs are complete pipelines.
    """
    from pulse import steps

    tmp = tmp_path_factory.mktemp("beer_events_base")
    settings = load_settings(warehouse=tmp / "warehouse.duckdb", serving=tmp / "serving.duckdb", scorer="lexical")
    steps.extract(settings, "beer-base", SourceSpec(kind="stackexchange", path=dump[1]))
    steps.validate(settings, "beer-base")
    steps.load(settings, "beer-base")
    return tmp / "warehouse.duckdb"


def _copy_warehouse(base: Path, tmp: Path) -> Path:
    target = tmp / "warehouse.duckdb"
    shutil.copy(base, target)
    if base.with_suffix(".duckdb.wal").exists():
        shutil.copy(base.with_suffix(".duckdb.wal"), target.with_suffix(".duckdb.wal"))
    return target


# ----------------------------------------------------------------------------------------------
# the pipeline on real data


def test_exports_load_once_dedupe_quarantine_and_late_files_land_on_their_days(
    beer_xml: dict, beer_warehouse: Path, tmp_path: Path
) -> None:
    content: set[str] = beer_xml["content"]  # type: ignore[assignment]
    upvotes: list[dict[str, str]] = beer_xml["upvotes"]  # type: ignore[assignment]
    questions: list[dict[str, str]] = beer_xml["questions"]  # type: ignore[assignment]
    n_upvotes, n_read, n_inserted, n_quarantined = beer_xml["figures"]  # type: ignore[misc]
    assert len(upvotes) == n_upvotes
    late_votes, first_votes, second_votes = upvotes[:500], upvotes[500:3500], upvotes[3500:]
    exports = tmp_path / "exports"
    exports.mkdir()

    # day1.jsonl: 3,000 likes; lines 11-15 repeated at the end (duplicates inside the file);
    # line 101 malformed; 20 views by real members on real questions, exact times with offsets.
    likes1 = [json.dumps(_like(v)) for v in first_votes]
    views = [
        {
            "event_id": f"view-{i}",
            "event_type": "view",
            "content_id": f"p{q['Id']}",
            "user_id": q.get("OwnerUserId"),
            "occurred_at": f"{q['CreationDate'][:10]}T14:05:00+01:00",
            "referrer": "search",
        }
        for i, q in enumerate(questions[:20])
    ]
    lines1 = [*likes1[:100], '{"event_id": "like-broken", "event_type": ', *likes1[100:]]
    lines1 += likes1[10:15] + [json.dumps(v) for v in views]
    _write_jsonl(exports / "day1.jsonl", lines1, T0)
    assert lines1[100].startswith('{"event_id": "like-broken"')  # line 101

    # day2.parquet: the other likes (1,840 in the slice) plus new copies of 10 day1 events (a client field:
    # the later copy wins); day2-copy.parquet: the same bytes under another name.
    overlap = first_votes[200:210]
    day2 = [_like(v) for v in second_votes] + [_like(v, properties={"client": "ios"}) for v in overlap]
    pl.DataFrame(
        {
            "event_id": [e["event_id"] for e in day2],
            "event_type": [e["event_type"] for e in day2],
            "content_id": [e["content_id"] for e in day2],
            "user_id": [e["user_id"] for e in day2],
            "occurred_at": [date.fromisoformat(str(e["occurred_at"])) for e in day2],
            "properties": [e.get("properties", {"client": None}) for e in day2],
        },
        schema_overrides={"user_id": pl.String},
    ).write_parquet(exports / "day2.parquet")
    os.utime(exports / "day2.parquet", (T0 + 1, T0 + 1))
    shutil.copy(exports / "day2.parquet", exports / "day2-copy.parquet")
    os.utime(exports / "day2-copy.parquet", (T0 + 2, T0 + 2))
    (exports / "_SUCCESS").write_text("")  # marker files are ignored

    warehouse = _copy_warehouse(beer_warehouse, tmp_path)
    settings = load_settings(warehouse=warehouse, serving=tmp_path / "serving.duckdb", scorer="lexical")
    con = duckdb.connect(str(warehouse), read_only=True)
    before_events = con.execute("select count(*) from staging.engagement_events").fetchone()[0]
    con.close()

    spec = SourceSpec(kind="events", path=exports, source_name=SOURCE)
    run1 = run_pipeline(settings, spec)

    # Independent expectations: the events that survive (last copy wins) and which dangle.
    final_day1 = {f"like-{v['Id']}": f"p{v['PostId']}" for v in first_votes if v not in overlap}
    final_day1 |= {v["event_id"]: v["content_id"] for v in views}
    final_day2 = {e["event_id"]: e["content_id"] for e in day2}
    dangling1 = sum(c not in content for c in final_day1.values())
    dangling2 = sum(c not in content for c in final_day2.values())
    read1 = len(lines1) + len(day2)
    con = duckdb.connect(str(warehouse), read_only=True)
    counts = _stream_row(con, run1.run_id)
    assert counts["read"] == read1 + len(day2) == n_read
    assert counts["skip_rules"] == {
        DUPLICATE_EVENT_RULE: 5 + 10,  # lines repeated in day1, day1 events re-sent in day2
        FILE_ALREADY_LOADED_RULE: len(day2),  # day2-copy.parquet: same bytes as day2.parquet
    }
    assert counts["quarantined"] == 1 + dangling1 + dangling2
    assert counts["inserted"] == len(final_day1) + len(final_day2) - dangling1 - dangling2 == n_inserted
    assert counts["quarantined"] == n_quarantined
    assert (counts["updated"], counts["unchanged"]) == (0, 0)
    assert counts["read"] == counts["inserted"] + counts["skipped"] + counts["quarantined"]
    assert dangling1 + dangling2 > 0  # real votes on deleted posts

    # one row per event; the later copy of a duplicated event won
    staged = con.execute(
        "select count(*), count(distinct event_id) from staging.engagement_events "
        "where source = ? and event_type in ('like', 'view')",
        [SOURCE],
    ).fetchone()
    assert staged == (counts["inserted"], counts["inserted"])
    assert (
        con.execute("select count(*) from staging.engagement_events").fetchone()[0]
        == before_events + counts["inserted"]
    )
    ios = con.execute(
        "select event_id, properties, time_precision from staging.engagement_events where properties like '%ios%' order by event_id"
    ).fetchall()
    assert {r[0] for r in ios} == {f"like-{v['Id']}" for v in overlap if f"p{v['PostId']}" in content}
    assert {(r[1], r[2]) for r in ios} == {('{"client":"ios"}', "day")}
    view = con.execute(
        "select occurred_at, time_precision, properties, user_id from staging.engagement_events where event_id = 'view-0'"
    ).fetchone()
    q0 = questions[0]
    assert view == (
        datetime.fromisoformat(q0["CreationDate"][:10]).replace(hour=13, minute=5),  # 14:05+01:00 = 13:05 UTC
        "exact",
        '{"referrer":"search"}',
        q0.get("OwnerUserId"),
    )

    # the malformed line is quarantined with its line number; the rest of its file is loaded
    bad = con.execute(
        "select reason, detail, payload from raw.quarantine where source = ? and reason = 'bad_json'", [SOURCE]
    ).fetchall()
    assert len(bad) == 1 and "day1.jsonl line 101:" in bad[0][1] and bad[0][2] == lines1[100]

    # the ledger: two files (the copy is not a new file), with per-file reconciliation
    ledger = {
        Path(r[0]).name: r[1:]
        for r in con.execute(
            "select path, rows_read, rows_loaded, rows_skipped, rows_quarantined, run_id from ops.loaded_files "
            "where source = ? order by path",
            [SOURCE],
        ).fetchall()
    }
    assert ledger == {
        "day1.jsonl": (len(lines1), len(final_day1) - dangling1, 15, 1 + dangling1, run1.run_id),
        "day2.parquet": (len(day2), len(day2) - dangling2, 0, dangling2, run1.run_id),
    }
    # the events source joins the beer source: its ops.sources row is left as the dump wrote it
    assert (
        con.execute("select description from ops.sources where source = ?", [SOURCE])
        .fetchone()[0]
        .startswith("stackexchange ")
    )
    daily_before = pl.DataFrame(
        con.execute("select * from marts.engagement_daily where source = ? order by day", [SOURCE]).fetchall(),
        schema=[d[0] for d in con.description],
        orient="row",
    )
    staged_total = con.execute("select count(*) from staging.engagement_events where source = ?", [SOURCE]).fetchone()[
        0
    ]
    con.close()
    assert daily_before["events"].sum() == staged_total

    # re-running the same folder through the CLI loads nothing new
    from pulse.cli import app

    result = CliRunner().invoke(
        app,
        [
            "run",
            "--source",
            "events",
            "--path",
            str(exports),
            "--source-name",
            SOURCE,
            "--warehouse",
            str(warehouse),
            "--serving",
            str(tmp_path / "serving.duckdb"),
            "--scorer",
            "lexical",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{read1 + len(day2):,} skipped: file already loaded" in result.output
    assert "0 read, 3 already loaded" in result.output
    con = duckdb.connect(str(warehouse), read_only=True)
    rerun_id = con.execute("select run_id from ops.runs order by started_at desc limit 1").fetchone()[0]
    rerun = _stream_row(con, rerun_id)
    assert (rerun["read"], rerun["inserted"], rerun["updated"], rerun["unchanged"], rerun["quarantined"]) == (
        read1 + len(day2),
        0,
        0,
        0,
        0,
    )
    assert con.execute("select count(*) from ops.loaded_files").fetchone()[0] == 2
    con.close()

    # a late file: likes from days before anything exported so far, arriving now
    late = exports / "late" / "2014-early.jsonl.gz"
    late.parent.mkdir()
    _write_jsonl(late, [json.dumps(_like(v)) for v in late_votes], T0 + 3600)
    run3 = run_pipeline(settings, spec)
    late_ok = [v for v in late_votes if f"p{v['PostId']}" in content]
    per_day = Counter(date.fromisoformat(v["CreationDate"][:10]) for v in late_ok)
    assert max(per_day) < date.fromisoformat(first_votes[0]["CreationDate"][:10]) + timedelta(days=1)
    con = duckdb.connect(str(warehouse), read_only=True)
    late_counts = _stream_row(con, run3.run_id)
    assert (
        (late_counts["inserted"], late_counts["quarantined"])
        == (len(late_ok), len(late_votes) - len(late_ok))
        == (499, 1)
    )
    assert late_counts["skip_rules"] == {FILE_ALREADY_LOADED_RULE: read1 + len(day2)}
    daily_after = pl.DataFrame(
        con.execute("select * from marts.engagement_daily where source = ? order by day", [SOURCE]).fetchall(),
        schema=[d[0] for d in con.description],
        orient="row",
    )
    con.close()
    assert daily_after.height == daily_before.height  # no day added: the late days were already in the span
    joined = daily_before.join(daily_after, on=["source", "day"], suffix="_after")
    delta = joined.with_columns((pl.col("events_after") - pl.col("events")).alias("delta")).filter(pl.col("delta") != 0)
    assert dict(zip(delta["day"].to_list(), delta["delta"].to_list(), strict=False)) == dict(per_day)
    # every other figure of every day is unchanged (late likes carry no user, so no DAU change)
    others = [c for c in daily_before.columns if c not in ("events",)]
    assert daily_after.select(others).equals(daily_before.select(others))


def test_a_failed_run_records_no_file_and_its_retry_loads_it(tmp_path: Path) -> None:
    from pulse import steps

    exports = tmp_path / "exports"
    exports.mkdir()
    lines = [
        json.dumps(
            {"event_id": f"e{i}", "event_type": "view", "content_id": "p1", "occurred_at": "2016-05-01T10:00:00Z"}
        )
        for i in range(4)
    ]
    _write_jsonl(exports / "views.jsonl", lines, T0)
    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical")
    spec = SourceSpec(kind="events", path=exports, source_name="forum")
    # no content in this warehouse: every event dangles, far above the 10% quarantine limit
    steps.extract(settings, "failed-run", spec)
    with pytest.raises(PipelineError, match="4 of 4 records read"):
        steps.validate(settings, "failed-run")
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from ops.loaded_files").fetchone()[0] == 0
    con.close()
    # the retry (a new run with the limit raised) reads the file again and records it on load
    lenient = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", quarantine_max_share=1.0)
    assert steps.extract(lenient, "retry", spec)["files_read"] == 1
    steps.validate(lenient, "retry")
    steps.load(lenient, "retry")
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select rows_read, rows_loaded, rows_quarantined, run_id from ops.loaded_files").fetchall() == [
        (4, 0, 4, "retry")
    ]
    assert con.execute("select count(*) from raw.event_files where run_id = 'retry'").fetchone()[0] == 0
    con.close()
    assert steps.extract(lenient, "third", spec)["files_already_loaded"] == 1


# ----------------------------------------------------------------------------------------------
# the connector alone


def _reasons(ex) -> Counter:
    return Counter(ex.quarantine["reason"].to_list())


def test_every_bad_record_is_quarantined_with_its_reason_and_line(tmp_path: Path) -> None:
    good = {
        "event_id": "g1",
        "event_type": "Like",
        "content_id": 7,
        "user_id": 3,
        "occurred_at": "2016-01-02T03:04:05.123456789Z",
    }
    lines = [
        "\ufeff" + json.dumps(good),  # BOM on the first line
        "",  # blank lines are not records
        "not json",
        "[1, 2]",
        json.dumps({**good, "event_id": ""}),
        json.dumps({**good, "event_id": {"a": 1}}),
        json.dumps({**good, "event_id": "x1", "event_type": "purchase"}),
        json.dumps({**good, "event_id": "x2", "content_id": None}),
        json.dumps({**good, "event_id": "x3", "occurred_at": "2016-01-02T03:04:05"}),  # no offset
        json.dumps({**good, "event_id": "x4", "occurred_at": 1451703845}),  # epoch seconds
        json.dumps({**good, "event_id": "x5", "occurred_at": "2030-01-01T00:00:00Z"}),
        json.dumps({**good, "event_id": "x6", "properties": [1]}),
        json.dumps({**good, "event_id": "x7", "event_type": "report", "properties": {"flag_type": "rude"}}),
        json.dumps({**good, "event_id": "x8", "user_id": [1]}),
        json.dumps(
            {
                "event_id": "r1",
                "event_type": "report",
                "content_id": "p9",
                "occurred_at": 1451703845123,
                "properties": {"flag_type": "spam", "message": "buy now"},
                "client": "web",
                "extra": None,
            }
        ),
        json.dumps({**good, "event_id": "r2", "event_type": "report", "properties": {"flag_type": "illegal"}}),
    ]
    path = tmp_path / "x" / "events.ndjson"
    path.parent.mkdir()
    path.write_bytes("\n".join(lines).encode("utf-8") + b"\n\xff\xfe{}\n")
    ex = extract_events(path, source="forum", now=NOW)
    c = ex.counts["engagement_events"]
    assert (c.read, c.emitted, c.skipped, c.quarantined) == (16, 3, 0, 13)
    assert c.reconciles()
    assert _reasons(ex) == Counter(
        {
            "bad_json": 2,
            "missing_id": 2,
            "unknown_event_type": 1,
            "missing_content_id": 1,
            "bad_timestamp": 2,
            "future_timestamp": 1,
            "bad_properties": 1,
            "bad_flag_type": 1,
            "bad_user_id": 1,
            "invalid_utf8": 1,
        }
    )
    detail = dict(zip(ex.quarantine["record_key"].to_list(), ex.quarantine["detail"].to_list(), strict=False))
    assert detail["x3"].endswith(
        "line 9: occurred_at '2016-01-02T03:04:05' has no UTC offset; write it with Z or +hh:mm"
    )
    assert "line 10:" in detail["x4"] and "epoch seconds" in detail["x4"]
    assert "line 17:" in ex.quarantine.filter(pl.col("reason") == "invalid_utf8")["detail"][0]
    assert ex.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    rows = {r["event_id"]: r for r in ex.engagement_events.to_dicts()}
    assert rows["g1"] == {
        "source": "forum",
        "event_id": "g1",
        "event_type": "like",
        "content_id": "7",
        "user_id": "3",
        "occurred_at": datetime(2016, 1, 2, 3, 4, 5, 123456),
        "time_precision": "exact",
        "properties": None,
    }
    assert rows["r1"]["occurred_at"] == datetime(2016, 1, 2, 3, 4, 5, 123000)
    assert json.loads(rows["r1"]["properties"]) == {"client": "web", "flag_type": "spam", "message": "buy now"}
    assert json.loads(rows["r2"]["properties"]) == {"flag_type": "illegal"}  # a report of illegal content
    assert ex.engagement_events.schema == pl.Schema(SCHEMAS["engagement_events"])
    assert ex.files.select("rows_read", "rows_emitted", "rows_skipped", "rows_quarantined").row(0) == (16, 3, 0, 13)


def test_oversized_line_is_quarantined_and_the_next_line_loaded(tmp_path: Path) -> None:
    ok = json.dumps({"event_id": "a", "event_type": "view", "content_id": "p1", "occurred_at": "2016-01-02"})
    huge = json.dumps(
        {
            "event_id": "b",
            "event_type": "view",
            "content_id": "p1",
            "occurred_at": "2016-01-02",
            "blob": "x" * (MAX_LINE_BYTES + 10),
        }
    )
    path = tmp_path / "big.jsonl"
    path.write_text(huge + "\n" + ok + "\n", encoding="utf-8")
    ex = extract_events(path, source="forum", now=NOW)
    assert _reasons(ex) == Counter({"oversized_line": 1})
    assert ex.engagement_events["event_id"].to_list() == ["a"]
    assert ex.engagement_events["time_precision"].to_list() == ["day"]
    assert len(ex.quarantine["payload"][0]) < 300


def test_files_already_loaded_late_arrivals_and_unreadable_files(tmp_path: Path) -> None:
    line = json.dumps(
        {"event_id": "a", "event_type": "view", "content_id": "p1", "occurred_at": "2016-01-02T00:00:00Z"}
    )
    _write_jsonl(tmp_path / "a.jsonl.gz", [line], T0)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    os.utime(tmp_path / "broken.parquet", (T0 + 1, T0 + 1))
    _write_jsonl(tmp_path / "later.jsonl", [line.replace('"a"', '"b"')], T0 + 7200)
    until = datetime.fromtimestamp(T0 + 3600, UTC).replace(tzinfo=None)
    ex = extract_events(tmp_path, source="forum", until=until, now=NOW)
    assert ex.late_files == [str(tmp_path / "later.jsonl")]
    assert ex.engagement_events["event_id"].to_list() == ["a"]
    assert _reasons(ex) == Counter({"unreadable_file": 1})
    assert ex.files["format"].to_list() == ["jsonl.gz", "parquet"]
    # the same files again with the ledger: nothing parsed, rows counted as skipped by rule
    from warehouse.sources.events import LoadedFile

    ledger = {
        r["sha256"]: LoadedFile("forum", r["sha256"], r["path"], r["size_bytes"], r["mtime"], r["rows_read"], "run1")
        for r in ex.files.to_dicts()
    }
    again = extract_events(tmp_path, source="forum", loaded_files=ledger, now=NOW)
    c = again.counts["engagement_events"]
    assert (c.read, c.emitted, c.skip_rules) == (3, 1, {FILE_ALREADY_LOADED_RULE: 2})
    assert again.engagement_events["event_id"].to_list() == ["b"]
    assert [s["run_id"] for s in again.skipped_files] == ["run1", "run1"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-01-02T03:04:05Z", (datetime(2016, 1, 2, 3, 4, 5), "exact")),
        ("2016-01-02 05:04:05+02:00", (datetime(2016, 1, 2, 3, 4, 5), "exact")),
        ("2016-01-02", (datetime(2016, 1, 2), "day")),
        (1451703845000, (datetime(2016, 1, 2, 3, 4, 5), "exact")),
        (datetime(2016, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))), (datetime(2016, 1, 2, 8, 4, 5), "exact")),
        (date(2016, 1, 2), (datetime(2016, 1, 2), "day")),
    ],
)
def test_parse_occurred_at(value: object, expected: tuple[datetime, str]) -> None:
    assert parse_occurred_at(value) == expected


@pytest.mark.parametrize("value", [None, "", "yesterday", "2016-13-01", "2016-01-02T03:04:05", True, 12, float("nan")])
def test_parse_occurred_at_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="occurred_at"):
        parse_occurred_at(value)


def test_source_names_globs_and_formats(tmp_path: Path) -> None:
    folder = tmp_path / "forum-exports"
    (folder / "day=2016-01-02").mkdir(parents=True)
    for name in ("day=2016-01-02/part-0.parquet", "a.jsonl", ".tmp.jsonl", "_SUCCESS", "notes.txt", "b.ndjson.gz"):
        (folder / name).write_bytes(b"")
    assert [p.name for p in find_event_files(folder)] == ["a.jsonl", "b.ndjson.gz", "part-0.parquet"]
    assert [p.name for p in find_event_files(f"{folder}/**/*.parquet")] == ["part-0.parquet"]
    assert event_source_name(folder) == "events:forum-exports"
    assert event_source_name(f"{folder}/*.jsonl") == "events:forum-exports"
    assert event_source_name(folder / "a.jsonl", " discourse:forum ") == "discourse:forum"
    with pytest.raises(ValueError, match="--source-name"):
        event_source_name(folder, "two words")
    with pytest.raises(ValueError, match="unsupported event export format"):
        find_event_files(folder / "notes.txt")
    with pytest.raises(FileNotFoundError, match="not found"):
        find_event_files(tmp_path / "missing" / "*.jsonl")


def test_cli_refuses_bad_event_options_with_the_fix(tmp_path: Path) -> None:
    from pulse.cli import app

    runner = CliRunner()
    common = ["--warehouse", str(tmp_path / "w.duckdb"), "--serving", str(tmp_path / "s.duckdb")]
    out = runner.invoke(app, ["run", "--source", "events", *common])
    assert out.exit_code == 2 and "--source events needs --path DIR_OR_GLOB" in out.output
    out = runner.invoke(app, ["run", "--source", "events", "--path", str(tmp_path / "nope"), *common])
    assert out.exit_code == 2 and "Input missing" in out.output
    out = runner.invoke(app, ["run", "--source", "events", "--path", str(tmp_path), "--source-name", "a b", *common])
    assert out.exit_code == 2 and "--source-name" in out.output
    assert not (tmp_path / "w.duckdb").exists()
