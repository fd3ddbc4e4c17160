"""Hostile input (issue #7): XML bombs and external entities, SQL injection through every filter
and CLI argument, oversized posts and threads. Each claim of SECURITY.md has its test here or in
tests/privacy/ and tests/security/test_hostile_browser.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboards" / "app.py"
INJECTIONS = (
    "x' or 1=1 --",
    "'; drop table marts.hot_content; --",
    "stackexchange:hostile' union select password from users --",
    '" or ""="',
    "%' or '%'='",
)

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<posts>
  <row Id="1" PostTypeId="1" CreationDate="2015-03-01T10:00:00.000" Body="&lol9;" Title="boom" />
</posts>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE posts [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<posts>
  <row Id="1" PostTypeId="1" CreationDate="2015-03-01T10:00:00.000" Body="&xxe;" Title="leak" />
</posts>
"""
#: Measures one extract in a fresh interpreter: seconds, peak RSS growth (KiB), the error.
PROBE = """
import json, resource, sys, time
from pathlib import Path
from warehouse.sources.stackexchange import UnsafeXMLError, extract_stackexchange
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    extract_stackexchange(Path(sys.argv[1]))
    error = None
except UnsafeXMLError as exc:
    error = str(exc)
print(json.dumps({"seconds": time.perf_counter() - t0, "error": error,
                  "rss_growth_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
"""


def _dump_with_posts(folder: Path, posts_xml: str) -> Path:
    from hostile_dump import write_hostile_dump

    write_hostile_dump(folder, threads=2)
    (folder / "Posts.xml").write_text(posts_xml, encoding="utf-8")
    return folder


def _probe(dump: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(dump)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("xml, needle", [(BILLION_LAUGHS, "lolz"), (XXE, "passwd")], ids=["billion-laughs", "xxe"])
def test_xml_bombs_are_rejected_fast_with_bounded_memory(tmp_path: Path, xml: str, needle: str) -> None:
    # the expansion would be 10^9 "lol"s (3 GB); external entity would read /etc/passwd
    got = _probe(_dump_with_posts(tmp_path / "Bomb", xml))
    assert got["error"] is not None and "DOCTYPE" in got["error"] and "Posts.xml" in got["error"]
    assert got["seconds"] < 1.0
    assert got["rss_growth_kib"] < 20 * 1024  # < 20 MiB beyond the interpreter with its imports
    assert "root:" not in got["error"]  # nothing of the file was read


def test_cli_refuses_the_bomb_and_loads_nothing(tmp_path: Path) -> None:
    from pulse.cli import app

    dump = _dump_with_posts(tmp_path / "Bomb", BILLION_LAUGHS)
    env = {"PULSE_WAREHOUSE": str(tmp_path / "w.duckdb"), "PULSE_SERVING": str(tmp_path / "s.duckdb")}
    r = CliRunner().invoke(
        app, ["run", "--source", "stackexchange", "--path", str(dump), "--scorer", "lexical"], env=env
    )
    assert r.exit_code == 2 and "Input rejected" in r.output and "Nothing was loaded" in r.output
    assert not (tmp_path / "s.duckdb").exists()


def test_entity_reference_without_a_dtd_is_never_resolved(tmp_path: Path) -> None:
    from warehouse.sources.stackexchange import extract_stackexchange

    posts = (
        '<?xml version="1.0"?>\n<posts>\n  <row Id="1" PostTypeId="1" CreationDate="2015-03-01T10:00:00.000" '
        'Body="&xxe;" Title="t" />\n</posts>\n'
    )
    ex = extract_stackexchange(_dump_with_posts(tmp_path / "Ref", posts))
    assert ex.content.filter(pl.col("kind") == "question").height == 0
    q = ex.quarantine.filter(pl.col("stream") == "content").row(0, named=True)
    assert q["reason"] == "malformed_xml" and "root:" not in (q["payload"] + q["detail"])


# --------------------------------------------------------------------------------------------
# SQL injection: dashboards and CLI


def test_data_layer_binds_filter_values(hostile_built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboards import data

    serving = hostile_built / "serving.duckdb"
    monkeypatch.setenv("PULSE_SERVING", str(serving))
    for hostile in INJECTIONS:
        where, params = data.source_clause(hostile)
        assert hostile not in where
        assert data.query(f"select count(*) as n from marts.hot_content where {where}", params)["n"][0] == 0
    assert data.query("select count(*) as n from marts.hot_content")["n"][0] == 40  # nothing dropped


@pytest.fixture
def review_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile_built: Path) -> None:
    from moderation.review_store import ReviewStore

    store = ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}", bcrypt_rounds=4)
    store.create_schema()
    store.add_user("admin", name="Admin", email="a@example.org", role="admin", password="admin-password-0001")
    store.dispose()
    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", f"sqlite:///{tmp_path / 'review.sqlite'}")
    monkeypatch.setenv("PULSE_SERVING", str(hostile_built / "serving.duckdb"))
    monkeypatch.setenv("PULSE_SCORER", "lexical")


def test_every_page_keeps_filter_text_out_of_sql(review_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SQL statement the app runs, on every page, with injection strings in the source
    query parameter and in every text box: the strings travel only as bound parameters."""
    from dashboards import data

    seen: list[tuple[str, tuple]] = []
    real = data._cached_query

    def spy(path: str, mtime_ns: int, sql: str, params: tuple) -> pl.DataFrame:
        seen.append((sql, params))
        return real(path, mtime_ns, sql, params)

    monkeypatch.setattr(data, "_cached_query", spy)
    hostile = INJECTIONS[0]
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "admin"
    at.query_params["source"] = hostile
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    pages = sorted(
        p.name
        for p in (REPO / "dashboards" / "views").glob("*.py")
        if p.name != "__init__.py" and p.name != "moderation_queue.py"
    )
    visited = 0
    typed: list[str] = []
    for page in pages:
        at.switch_page(f"views/{page}").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        keys = [box.key for box in at.text_input if box.key]
        for key in keys:  # the page may redraw after each input: look each box up again
            matches = [box for box in at.text_input if box.key == key]
            if matches:
                matches[0].input(INJECTIONS[visited % len(INJECTIONS)]).run()
                assert not at.exception, (page, key, [e.value for e in at.exception])
                typed.append(key)
        visited += 1
    assert visited >= 8 and len(seen) > 20 and "review_author" in typed, typed
    for sql, _params in seen:
        for bad in INJECTIONS:
            assert bad not in sql, sql
    con = duckdb.connect(str(Path(data.serving_path())), read_only=True)
    try:
        assert con.execute("select count(*) from marts.hot_content").fetchall()[0][0] == 40
    finally:
        con.close()


@pytest.mark.parametrize("args, message", [
    (["run", "--source", "demo' or 1=1 --"], "unknown source"),
    (["run", "--source", "stackexchange", "--path", "/nonexistent'; drop table x; --"], "Input missing"),
    (["runs", "--limit", "1; drop table ops.runs"], "Invalid value for '--limit'"),
    (["privacy", "forget-user", "--source", "stackexchange:hostile", "--user-id", "1' or '1'='1", "--yes"], "Not found"),
    (["privacy", "export-user", "--source", "x' or 1=1 --", "--user-id", "1", "--out", "OUT"], "Not found"),
])  # fmt: skip
def test_cli_arguments_never_reach_sql_as_text(
    hostile_built: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    from pulse.cli import app

    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(hostile_built / "warehouse.duckdb", wh)
    env = {
        "PULSE_WAREHOUSE": str(wh),
        "PULSE_SERVING": str(tmp_path / "serving.duckdb"),
        "PULSE_REVIEW_STORE_URL": f"sqlite:///{tmp_path / 'r.sqlite'}",
        "COLUMNS": "200",
    }
    args = [str(tmp_path / "out.json") if a == "OUT" else a for a in args]
    r = CliRunner().invoke(app, args, env=env)
    assert r.exit_code == 2, r.output
    assert message in r.output
    con = duckdb.connect(str(wh), read_only=True)
    try:
        counts = con.execute(
            "select (select count(*) from staging.users), (select count(*) from staging.content), "
            "(select count(*) from ops.runs where status = 'success'), (select count(*) from ops.tombstones)"
        ).fetchall()[0]
    finally:
        con.close()
    assert counts == (8, 120, 1, 0)  # (a missing --path registers a failed run: nothing else)
    assert not (tmp_path / "out.json").exists()


# --------------------------------------------------------------------------------------------
# Oversized input: a 10 MB post and a huge comment thread through the pipeline


def _oversized_extract(comments: int) -> object:
    from warehouse.canonical import Extract, StreamCounts, conform, content_hash

    t0 = datetime(2024, 3, 1, 12, 0)
    big = ("spam and more spam " * 600_000)[:10_000_000]  # 10,000,000 characters
    texts = [f"reply number {i % 97} about hops" for i in range(97)]
    hashes = [content_hash("comment", None, t) for t in texts]
    root = {
        "source": "oversized",
        "content_id": "q1",
        "kind": "question",
        "thread_id": "q1",
        "parent_id": None,
        "author_id": "u0",
        "created_at": t0,
        "edited_at": None,
        "title": "A huge post",
        "body_text": big,
        "tags": ["hops"],
        "score": 1,
        "view_count": 10,
        "content_hash": content_hash("question", "A huge post", big),
    }
    idx = pl.int_range(0, comments, eager=True)
    thread = pl.DataFrame(
        {
            "source": "oversized",
            "content_id": "c" + idx.cast(pl.String),
            "kind": "comment",
            "thread_id": "q1",
            "parent_id": "q1",
            "author_id": "u" + (idx % 1000 + 1).cast(pl.String),
            "created_at": pl.datetime_range(
                t0 + timedelta(seconds=1), t0 + timedelta(seconds=comments), "1s", eager=True, time_unit="us"
            ),
            "edited_at": None,
            "title": None,
            "body_text": pl.Series(texts).gather(idx % 97),
            "tags": None,
            "score": 0,
            "view_count": None,
            "content_hash": pl.Series(hashes).gather(idx % 97),
        }
    )
    content = conform(pl.concat([conform(pl.DataFrame([root]), "content"), conform(thread, "content")]), "content")
    users = conform(
        pl.DataFrame(
            {
                "source": "oversized",
                "user_id": [f"u{i}" for i in range(1001)],
                "display_name": [f"member {i}" for i in range(1001)],
                "created_at": t0 - timedelta(days=1),
                "reputation": 1,
            }
        ),
        "users",
    )
    events = conform(
        pl.DataFrame(
            schema={
                "source": pl.String,
                "event_id": pl.String,
                "event_type": pl.String,
                "content_id": pl.String,
                "user_id": pl.String,
                "occurred_at": pl.Datetime("us"),
                "time_precision": pl.String,
            }
        ),
        "engagement_events",
    )
    from warehouse.canonical import QUARANTINE_SCHEMA

    counts = {
        "users": StreamCounts(read=1001, emitted=1001),
        "content": StreamCounts(read=comments + 1, emitted=comments + 1),
        "engagement_events": StreamCounts(),
    }
    return Extract(
        source="oversized",
        users=users,
        content=content,
        engagement_events=events,
        quarantine=pl.DataFrame(schema=QUARANTINE_SCHEMA),
        counts=counts,
    )


@pytest.mark.parametrize("comments, max_growth_mib", [
    # default run: the same code path as 1M at a tenth of the rows. Measured 2026-11-22 on the
    # shared 2-core machine: 100k in 10.6 s (20 s under load) / +0.7 GiB peak RSS; 1M in 15.9 s
    # (65 s under load) / +1.5-1.6 GiB. The growth includes the first import of Great
    # Expectations, pandas and scikit-learn; most of the rest is the staging suite's pandas copy.
    (100_000, 1200),
    pytest.param(1_000_000, 2500, marks=pytest.mark.slow),
])  # fmt: skip
def test_oversized_post_and_thread_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, comments: int, max_growth_mib: int
) -> None:
    import resource
    import time

    import pulse.steps as steps
    from moderation.scoring import MAX_SCORED_CHARS
    from pulse.settings import load_settings

    extract = _oversized_extract(comments)
    monkeypatch.setattr(steps, "extract_source", lambda *a, **k: extract)
    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    summary = steps.run_pipeline(settings, steps.SourceSpec(kind="demo"))
    seconds = time.perf_counter() - t0
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"{comments:,} comments + 10 MB post: {seconds:.1f} s, peak RSS growth {growth_mib:.0f} MiB")
    score = summary.steps["score"]
    assert score["truncated_for_scoring"] == 1  # the 10 MB post, cut to MAX_SCORED_CHARS
    assert score["scored"] == 98  # 97 distinct comment texts + the post: one score per distinct text
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        n, longest = con.execute("select count(*), max(length(body_text)) from staging.content").fetchall()[0]
        detail = json.loads(
            con.execute(
                "select detail from ops.step_log where run_id = ? and step = 'score'", [summary.run_id]
            ).fetchall()[0][0]
        )
        replies = con.execute("select replies from marts.hot_content where content_id = 'q1'").fetchall()[0][0]
    finally:
        con.close()
    assert (n, longest, replies) == (comments + 1, 10_000_000, comments)  # stored whole, counted whole
    assert detail["truncated_for_scoring"] == 1 and MAX_SCORED_CHARS == 20_000
    assert growth_mib < max_growth_mib
