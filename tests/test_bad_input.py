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
        posts.append(_post(f'Id="{existing[i].decode()}" PostTypeId="1" CreationDate="2015-05-05T10:00:00.000" Title="conflicting {i}"'))  # duplicate_id
        posts.append(_post(f'Id="{900_000 + i}" PostTypeId="1" CreationDate="2099-01-01T00:00:00.000" Title="future"'))
        posts.append(_post(f'Id="{910_000 + i}" PostTypeId="1" CreationDate="5th of May" Title="bad date"'))
        posts.append(_post(f'Id="{920_000 + i}" PostTypeId="1" CreationDate="2015-05-05T10:00:00.000" Title="caf\xe9"').replace(
            "caf\xe9".encode(), b"caf\xe9\xff"))  # invalid UTF-8
    for i in range(OVERSIZED):
        body = "x" * 1_100_000
        posts.append(f'  <row Id="{930_000 + i}" PostTypeId="1" CreationDate="2015-05-05T10:00:00.000" Title="big" Body="{body}" />\n'.encode())
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
        for stream, reason, n in con.execute("select stream, reason, count(*) from raw.quarantine group by all").fetchall()
    }
    counts = {
        r[0]: r[1:]
        for r in con.execute(
            "select stream, read, inserted + updated + unchanged, skipped, quarantined from ops.stream_counts"
        ).fetchall()
    }
    conflicting = con.execute("select title from staging.content where content_id = 'p1'").fetchall()[0][0]
    payload_ok = con.execute(
        "select count(*) from raw.quarantine where reason = 'oversized_body' and length(payload) > 1100000"
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
    assert payload_ok == OVERSIZED  # the quarantine keeps the whole record


def test_the_run_fails_only_above_the_quarantine_limit_and_says_so(dump: Path, tmp_path: Path) -> None:
    settings = load_settings(
        warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical", quarantine_max_share=0.03
    )
    quarantined = 6 * N + OVERSIZED + 60 + N  # 303 of 8,554: 3.5%
    read = 426 + 1845 + 6 * N + OVERSIZED + 6000 + N
    with pytest.raises(PipelineError, match=rf"{quarantined:,} of {read:,} records read \({quarantined / read:.1%}\)"):
        run_pipeline(settings, SourceSpec(kind="stackexchange", path=dump))
    assert not settings.serving.exists()
