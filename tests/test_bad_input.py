"""Bad input at scale: the real dump seeded with many kinds of bad records reconciles exactly."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pulse.settings import load_settings
from pulse.steps import PipelineError, SourceSpec, run_pipeline
from warehouse.db import connect

N = 40  # bad records of each kind
OVERSIZED = 3


def _post(attrs: str) -> bytes:
    return f'  <row {attrs} Score="1" Body="&lt;p&gt;seeded&lt;/p&gt;" />\n'.encode()


def seeded_dump(beer: Path, out: Path) -> Path:
    """The real beer dump plus N bad records of each kind, written to ``out``."""
    out.mkdir()
    for name in ("Users.xml", "Tags.xml"):
        shutil.copy(beer / name, out / name)
    existing = re.findall(rb'<row Id="(\d+)" PostTypeId="1"', (beer / "Posts.xml").read_bytes())[:N]
    posts: list[bytes] = []
    for i in range(N):
        posts.append(_post(f'PostTypeId="1" CreationDate="2015-05-05T10:00:00.000" Title="no id {i}"'))  # missing_id
        posts.append(
            _post(
                f'Id="{existing[i].decode()}" PostTypeId="1" CreationDate="2015-05-05T10:00:00.000" Title="conflicting {i}"'
            )
        )  # duplicate_id
        posts.append(_post(f'Id="{900_000 + i}" PostTypeId="1" CreationDate="2099-01-01T00:00:00.000" Title="future"'))
        posts.append(_post(f'Id="{910_000 + i}" PostTypeId="1" CreationDate="5th of May" Title="bad date"'))
        posts.append(
            _post(f'Id="{920_000 + i}" PostTypeId="1" CreationDate="2015-05-05T10:00:00.000" Title="caf\xe9"').replace(
                "caf\xe9".encode(), b"caf\xe9\xff"
            )
        )  # invalid UTF-8
    for i in range(OVERSIZED):
        body = "x" * 1_100_000
        posts.append(
            f'  <row Id="{930_000 + i}" PostTypeId="1" CreationDate="2015-05-05T10:00:00.000" Title="big" Body="{body}" />\n'.encode()
        )
    comments = [
        f'  <row Id="{800_000 + i}" PostId="999999" Score="0" Text="on a post that never existed" CreationDate="2015-05-05T10:00:00.000" UserId="7" />\n'.encode()
        for i in range(N)
    ]
    votes = [
        f'  <row Id="{700_000 + i}" PostId="999998" VoteTypeId="2" CreationDate="2015-05-05T00:00:00.000" />\n'.encode()
        for i in range(N)
    ]
    for name, extra in (("Posts.xml", posts), ("Comments.xml", comments), ("Votes.xml", votes)):
        lines = (beer / name).read_bytes().splitlines(keepends=True)
        (out / name).write_bytes(b"".join(lines[:-1] + extra + lines[-1:]))
    return out


@pytest.fixture(scope="module")
def dump(beer_dump: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_dump(beer_dump, tmp_path_factory.mktemp("seeded") / "dump")


def test_every_bad_record_is_quarantined_with_its_reason(dump: Path, tmp_path: Path) -> None:
    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical")
    run_pipeline(settings, SourceSpec(kind="stackexchange", path=dump))
    con = connect(settings.warehouse, read_only=True)
    reasons = {
        (stream, reason): n
        for stream, reason, n in con.execute(
            "select stream, reason, count(*) from raw.quarantine group by all"
        ).fetchall()
    }
    counts = {
        r[0]: r[1:]
        for r in con.execute(
            "select stream, read, inserted + updated + unchanged, skipped, quarantined from ops.stream_counts"
        ).fetchall()
    }
    conflicting = con.execute("select title from staging.content where content_id = 'p1'").fetchall()[0][0]
    payload_ok = con.execute(  # capped at PULSE_QUARANTINE_PAYLOAD_BYTES (64 KiB) with the full length noted
        "select count(*) from raw.quarantine where reason = 'oversized_body' "
        "and strlen(payload) < 65536 + 40 and payload like '%…[truncated: 1,100,%bytes in all]'"
    ).fetchall()[0][0]
    con.close()
    assert reasons == {
        ("content", "missing_id"): N,
        ("content", "duplicate_id"): N,
        ("content", "future_timestamp"): N,
        ("content", "bad_timestamp"): N,
        ("content", "invalid_utf8"): N,
        ("content", "oversized_body"): OVERSIZED,
        ("content", "dangling_reference"): N,  # comments on a post absent from dump and warehouse
        ("engagement_events", "dangling_reference"): 60 + N,  # the dump's own 60 engagement votes on deleted posts
    }
    # read = loaded + skipped + quarantined, exactly, per stream
    assert counts["content"] == (1845 + 6 * N + OVERSIZED, 1809, 36, 6 * N + OVERSIZED)
    assert counts["engagement_events"] == (6000 + N, 5765, 175, 60 + N)
    assert counts["users"] == (426, 426, 0, 0)
    assert conflicting == "What is a citra hop, and how does it differ from other hops?"  # the first row wins
    assert payload_ok == OVERSIZED  # the quarantine keeps the record's first 64 KiB


def test_the_run_fails_only_above_the_quarantine_limit_and_says_so(dump: Path, tmp_path: Path) -> None:
    settings = load_settings(
        warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical", quarantine_max_share=0.03
    )
    quarantined = 6 * N + OVERSIZED + 60 + N  # 303 of 8,554: 3.5%
    read = 426 + 1845 + 6 * N + OVERSIZED + 6000 + N
    with pytest.raises(PipelineError, match=rf"{quarantined:,} of {read:,} records read \({quarantined / read:.1%}\)"):
        run_pipeline(settings, SourceSpec(kind="stackexchange", path=dump))
    assert not settings.serving.exists()


# ----------------------------------------------------------------------------------------------
# Issue 14: one bad record never stops a load; implausible timestamps


def _xml_rows(path: Path) -> list[dict[str, str]]:
    import xml.etree.ElementTree as ET

    return [dict(el.attrib) for _, el in ET.iterparse(path) if el.tag == "row"]


def _redate(dump: Path, post_id: str, date: str) -> None:
    """Set post ``post_id``'s CreationDate to ``date`` (any text) in ``dump``'s Posts.xml."""
    path = dump / "Posts.xml"
    text = path.read_text(encoding="utf-8-sig")
    new, n = re.subn(rf'(<row Id="{post_id}" [^>]*?CreationDate=")[^"]*(")', rf"\g<1>{date}\g<2>", text, count=1)
    assert n == 1
    path.write_text(new, encoding="utf-8")


def _family(dump: Path, roots: set[str]) -> tuple[set[str], set[str], int]:
    """The posts and comments depending on the questions ``roots`` (their answers, the comments on
    them and on the answers) and the engagement votes on them, straight from the XML."""
    posts = _xml_rows(dump / "Posts.xml")
    answers = {p["Id"] for p in posts if p["PostTypeId"] == "2" and p.get("ParentId") in roots}
    comments = {c["Id"] for c in _xml_rows(dump / "Comments.xml") if c["PostId"] in roots | answers}
    votes = sum(
        v["PostId"] in roots | answers and v["VoteTypeId"] in ("1", "2", "3", "5")
        for v in _xml_rows(dump / "Votes.xml")
    )
    return answers, comments, votes


def test_one_question_with_a_bad_or_implausible_date_quarantines_its_thread_and_the_run_publishes(
    beer_dump: Path, tmp_path: Path
) -> None:
    """Issue 14: an unparsable date on question 1 (and an epoch-0 date on question 2) stopped the
    whole load: the answers' votes and comments became dangling and a critical expectation failed."""
    dump = tmp_path / "beer"
    shutil.copytree(beer_dump, dump)
    _redate(dump, "1", "21st of January")
    _redate(dump, "2", "1970-01-01T00:00:00.000")
    answers, comments, votes = _family(dump, {"1", "2"})
    assert (len(answers), len(comments), votes) == (5, 6, 90)  # the real thread sizes of questions 1 and 2
    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical")
    summary = run_pipeline(settings, SourceSpec(kind="stackexchange", path=dump))
    assert settings.serving.exists()
    con = connect(settings.warehouse, read_only=True)
    reasons = dict(
        ((s, r), n)
        for s, r, n in con.execute("select stream, reason, count(*) from raw.quarantine group by all").fetchall()
    )
    cascaded = {
        k: d
        for k, d in con.execute(
            "select record_key, detail from raw.quarantine where reason = 'parent_quarantined'"
        ).fetchall()
    }
    counts = con.execute(
        "select stream, read, inserted + updated + unchanged + skipped + quarantined, quarantined from ops.stream_counts"
    ).fetchall()
    loaded = con.execute(
        "select count(*) from staging.content where content_id in ('p1', 'p2') or thread_id in ('p1', 'p2')"
    ).fetchall()[0][0]
    status = con.execute("select status from ops.runs where run_id = ?", [summary.run_id]).fetchall()[0][0]
    con.close()
    assert status == "success"
    assert reasons == {
        ("content", "bad_timestamp"): 1,
        ("content", "implausible_timestamp"): 1,
        ("content", "parent_quarantined"): len(answers) + len(comments),
        ("engagement_events", "parent_quarantined"): votes,
        ("engagement_events", "dangling_reference"): 60,  # the slice's own votes on deleted posts
    }
    assert loaded == 0
    # The detail names the parent's stream and id, through answers to the comments on them.
    first_answer = min(answers, key=int)
    assert cascaded[f"p{first_answer}"].startswith("parent content p")
    comment_on_answer = next(c["Id"] for c in _xml_rows(dump / "Comments.xml") if c["PostId"] in answers)
    assert re.match(r"parent content p\d+ is quarantined", cascaded[f"c{comment_on_answer}"])
    for stream, read, accounted, _ in counts:
        assert read == accounted, stream
    assert {s: q for s, _, _, q in counts} == {
        "users": 0,
        "content": 2 + len(answers) + len(comments),
        "engagement_events": votes + 60,
    }


def test_events_dated_before_their_content_are_quarantined_and_the_daily_mart_keeps_its_size(
    beer_dump: Path, tmp_path: Path
) -> None:
    """Issue 14: events dated 0001-01-01, 1900 or 1970 on a 2014 post were loaded and
    marts.engagement_daily grew from about a thousand rows to over 700,000, all expectations passing."""
    import json
    import os

    from pulse import steps
    from warehouse.quality import QualityGateError

    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical")
    run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    con = connect(settings.warehouse, read_only=True)
    daily_before = con.execute("select count(*), min(day), max(day) from marts.engagement_daily").fetchall()[0]
    con.close()
    assert daily_before[0] == 1055  # every day of the slice's span (local dates), zero-filled
    upvotes = [v for v in _xml_rows(beer_dump / "Votes.xml") if v["VoteTypeId"] == "2"][:300]
    likes = [
        {
            "event_id": f"like-{v['Id']}",
            "event_type": "like",
            "content_id": f"p{v['PostId']}",
            "occurred_at": v["CreationDate"][:10],
        }
        for v in upvotes
    ]
    p1 = "2014-01-21T20:26:05.383"  # question 1's CreationDate in the dump
    implausible = [
        {"event_id": "x-year-1", "event_type": "view", "content_id": "p1", "occurred_at": "0001-01-01"},
        {"event_id": "x-1900", "event_type": "view", "content_id": "p1", "occurred_at": "1900-01-01T00:00:00Z"},
        {"event_id": "x-epoch", "event_type": "like", "content_id": "p1", "occurred_at": "1970-01-01T00:00:00Z"},
        {"event_id": "x-2-days-early", "event_type": "view", "content_id": "p1", "occurred_at": "2014-01-19T20:00:00Z"},
    ]
    fine = [  # same UTC day, before the post's time: a day-precision vote is truncated to its day
        {"event_id": "ok-same-day", "event_type": "like", "content_id": "p1", "occurred_at": p1[:10]},
        {"event_id": "ok-after", "event_type": "view", "content_id": "p1", "occurred_at": "2014-01-22T08:00:00Z"},
    ]
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in likes + implausible + fine))
    os.utime(exports / "events.jsonl", (1_700_000_000, 1_700_000_000))
    summary = run_pipeline(settings, SourceSpec(kind="events", path=exports, source_name="stackexchange:beer"))
    con = connect(settings.warehouse, read_only=True)
    quarantined = dict(
        con.execute(
            "select record_key, reason from raw.quarantine where source = 'stackexchange:beer' and record_key like 'x-%'"
        ).fetchall()
    )
    detail = con.execute("select detail from raw.quarantine where record_key = 'x-2-days-early'").fetchall()[0][0]
    daily_after = con.execute("select count(*), min(day), max(day) from marts.engagement_daily").fetchall()[0]
    read, accounted, inserted = con.execute(
        "select read, inserted + updated + unchanged + skipped + quarantined, inserted from ops.stream_counts "
        "where run_id = ? and stream = 'engagement_events'",
        [summary.run_id],
    ).fetchall()[0]
    run_reasons = dict(
        con.execute(
            "select reason, count(*) from raw.quarantine where first_run_id = ? group by 1", [summary.run_id]
        ).fetchall()
    )
    con.close()
    assert quarantined == {e["event_id"]: "implausible_timestamp" for e in implausible}
    assert "p1" in detail and "2014-01-21" in detail
    assert daily_after == daily_before
    # One of the 300 upvotes is on a post deleted from the dump: a dangling reference.
    assert run_reasons == {"implausible_timestamp": 4, "dangling_reference": 1}
    assert read == accounted == 306 and inserted == 301

    # The marts' volume expectation catches such a day span if it ever reaches staging.
    con = connect(settings.warehouse)
    con.execute(
        "insert into staging.engagement_events (source, event_id, event_type, content_id, user_id, occurred_at, time_precision) "
        "values ('stackexchange:beer', 'planted', 'view', 'p1', null, '0001-01-01', 'day')"
    )
    con.close()
    steps.transform(settings, summary.run_id)
    with pytest.raises(QualityGateError, match=r"marts\.engagement_daily"):
        steps.validate_marts(settings, summary.run_id)


def test_one_bad_record_never_stops_a_run_even_when_it_is_the_whole_batch(tmp_path: Path) -> None:
    """An incremental batch of one bad row would stop every later run (no watermark advances)."""
    import json

    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical")
    exports = tmp_path / "exports"
    exports.mkdir()
    line = {"event_id": "e1", "event_type": "view", "content_id": "p1", "occurred_at": "2016-01-02T03:04:05Z"}
    (exports / "a.jsonl").write_text(json.dumps(line) + "\n")  # no content in this warehouse: dangling
    summary = run_pipeline(settings, SourceSpec(kind="events", path=exports, source_name="forum"))
    assert summary.steps["validate"]["quarantine_share"] == 1.0 and settings.serving.exists()
    (exports / "b.jsonl").write_text(
        json.dumps({**line, "event_id": "e2"}) + "\n" + json.dumps({**line, "event_id": "e3"}) + "\n"
    )
    # a.jsonl is read again and skipped (file already loaded): 2 of the 3 records read are quarantined
    with pytest.raises(PipelineError, match=r"2 of 3 records read \(66.7%\)"):
        run_pipeline(settings, SourceSpec(kind="events", path=exports, source_name="forum"))
