"""Tests for the dump parse cache and the byte-level date pre-filter (warehouse/sources/dump_cache.py).

The oracle is the connector itself with neither: :func:`_parsed` runs
:mod:`warehouse.sources.stackexchange` parsing every row, as it did before issue #17. The
cached extract and the pre-filtered extract must equal it frame for frame (users, content,
events, quarantine samples and counts) and count for count, for random intervals of the vendored
beer slice and for generated dumps full of odd rows.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from warehouse.canonical import STREAMS, Extract, QuarantineLog, StreamCounts
from warehouse.sources import dump_cache
from warehouse.sources import stackexchange as se
from warehouse.sources.stackexchange import extract_stackexchange

NOW = datetime(2030, 1, 1)
FIRST_DAY = datetime(2014, 1, 19)  # two days before the slice's first row
LAST_DAY = datetime(2016, 12, 12)  # two days after its last


def _parsed(folder: Path, since: datetime | None, until: datetime | None, *, prefilter: bool = False) -> Extract:
    """The connector without cache; ``prefilter`` False parses every row (the oracle)."""
    run = se._Run(
        "stackexchange:t", since, until, NOW, QuarantineLog("stackexchange:t"), {s: StreamCounts() for s in STREAMS}
    )
    run.prefilter = prefilter
    return se._extract(run, se._dump_files(folder))


def _cached(folder: Path, since: datetime | None, until: datetime | None, cache: Path) -> Extract:
    return extract_stackexchange(folder, since=since, until=until, now=NOW, source="stackexchange:t", cache_dir=cache)


def _assert_same(got: Extract, want: Extract) -> None:
    for name in (*STREAMS, "quarantine", "quarantine_counts"):
        assert_frame_equal(getattr(got, name), getattr(want, name), check_exact=True)
    assert got.counts == want.counts
    assert [list(c.skip_rules) for c in got.counts.values()] == [list(c.skip_rules) for c in want.counts.values()]
    assert (got.since, got.until, got.source) == (want.since, want.until, want.source)


@pytest.fixture(scope="module")
def beer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dump-cache")


# ----------------------------------------------------------------------------------------------
# the cache: cached == parsed


_midnight = st.integers(0, (LAST_DAY - FIRST_DAY).days).map(lambda d: FIRST_DAY + timedelta(days=d))
_minute = st.integers(0, (LAST_DAY - FIRST_DAY).days * 1440).map(lambda m: FIRST_DAY + timedelta(minutes=m))
_bound = st.one_of(st.none(), _midnight, _minute)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_bound, b=_bound)
def test_cached_extract_equals_parsed_for_random_intervals(beer_dump: Path, beer_cache: Path, a, b) -> None:
    if a is not None and b is not None and a == b:
        b = a + timedelta(days=1)
    since, until = (a, b) if a is None or b is None or a < b else (b, a)
    _assert_same(_cached(beer_dump, since, until, beer_cache), _parsed(beer_dump, since, until))


def test_daily_backfill_in_order_and_repeated_equals_parsed(beer_dump: Path, beer_cache: Path) -> None:
    """A week of days in order (midnight edges), the first interval open at the start, then a day again."""
    start = datetime(2014, 1, 24)
    days = [(None, start)] + [(start + timedelta(days=i), start + timedelta(days=i + 1)) for i in range(7)]
    days.append(days[3])
    read = 0
    for since, until in days:
        got = _cached(beer_dump, since, until, beer_cache)
        _assert_same(got, _parsed(beer_dump, since, until))
        read += got.counts["engagement_events"].read
    assert read > 100  # the week is not empty: the slice's first days have votes


def test_the_cache_folder_is_owner_only_and_keyed_by_identity(beer_dump: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _cached(beer_dump, datetime(2015, 3, 1), datetime(2015, 3, 2), cache)
    folder = dump_cache.cache_folder(cache, beer_dump)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(p.name.split(".")[0] for p in folder.iterdir())
    assert files == ["Comments", "Posts", "Users", "Votes", "manifest"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    manifest = dump_cache._read_manifest(folder)
    assert manifest is not None
    posts = beer_dump / "Posts.xml"
    assert manifest["files"]["Posts.xml"]["size"] == posts.stat().st_size
    assert manifest["files"]["Posts.xml"]["mtime_ns"] == posts.stat().st_mtime_ns


# ----------------------------------------------------------------------------------------------
# invalidation and crashes


@pytest.fixture
def dump_copy(beer_dump: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "beer"
    shutil.copytree(beer_dump, folder)
    return folder


def _builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = dump_cache._build

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dump_cache, "_build", counting)
    return calls


DAY = (datetime(2014, 1, 22), datetime(2014, 1, 23))


class _Crash(BaseException):
    """The process dying mid-write (not an error the code could catch)."""


def test_cache_is_rebuilt_when_size_mtime_or_head_change(
    dump_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    builds = _builds(monkeypatch)
    _cached(dump_copy, *DAY, cache)
    _cached(dump_copy, *DAY, cache)
    assert len(builds) == 1  # the second cut is served from the cache
    comments = dump_copy / "Comments.xml"

    os.utime(comments, ns=(comments.stat().st_atime_ns, comments.stat().st_mtime_ns + 10**9))  # mtime only
    _cached(dump_copy, *DAY, cache)
    assert len(builds) == 2

    # same size and mtime, other bytes in the head: the hash of the head tells
    data = comments.read_bytes()
    old = b'Text="'
    i = data.index(old) + len(old)
    mtime = comments.stat().st_mtime_ns
    comments.write_bytes(data[:i] + (b"Y" if data[i : i + 1] != b"Y" else b"Z") + data[i + 1 :])
    os.utime(comments, ns=(mtime, mtime))
    assert (comments.stat().st_size, comments.stat().st_mtime_ns) == (len(data), mtime)
    got = _cached(dump_copy, None, None, cache)
    assert len(builds) == 3
    _assert_same(got, _parsed(dump_copy, None, None))

    # size: a new vote on the day appears in the cut
    votes = dump_copy / "Votes.xml"
    text = votes.read_text(encoding="utf-8-sig")
    row = '  <row Id="99999999" PostId="1" VoteTypeId="2" CreationDate="2014-01-22T00:00:00.000" />\r\n'
    votes.write_text("\ufeff" + text.replace("</votes>", row + "</votes>"), encoding="utf-8")
    got = _cached(dump_copy, *DAY, cache)
    assert len(builds) == 4
    assert "v99999999" in got.engagement_events["event_id"].to_list()
    _assert_same(got, _parsed(dump_copy, *DAY))


def test_a_crash_mid_write_leaves_no_trusted_cache(
    dump_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    real_write = pl.DataFrame.write_parquet
    written: list[str] = []

    def crash_on_third(self: pl.DataFrame, file, **kwargs):  # type: ignore[no-untyped-def]
        if len(written) == 2:  # Posts and Comments are in place, Votes dies half-written
            Path(file).write_bytes(b"PAR1 half a file")
            raise _Crash
        written.append(str(file))
        return real_write(self, file, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", crash_on_third)
    with pytest.raises(_Crash):
        _cached(dump_copy, *DAY, cache)
    folder = dump_cache.cache_folder(cache, dump_copy)
    assert not (folder / "manifest.json").exists()  # nothing is trusted
    monkeypatch.setattr(pl.DataFrame, "write_parquet", real_write)
    builds = _builds(monkeypatch)
    _assert_same(_cached(dump_copy, *DAY, cache), _parsed(dump_copy, *DAY))
    assert len(builds) == 1

    # a crash while rebuilding after a change: the old manifest no longer matches, the half build is unnamed
    (dump_copy / "Users.xml").write_bytes((dump_copy / "Users.xml").read_bytes() + b"\r\n")
    written.clear()
    monkeypatch.setattr(pl.DataFrame, "write_parquet", crash_on_third)
    with pytest.raises(_Crash):
        _cached(dump_copy, *DAY, cache)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", real_write)
    _assert_same(_cached(dump_copy, None, None, cache), _parsed(dump_copy, None, None))
    assert len(builds) == 3  # the crashed build, then a whole one

    # a data file truncated under a valid manifest (disk trouble): rebuilt, not read as empty
    manifest = dump_cache._read_manifest(folder)
    assert manifest is not None
    data = folder / manifest["data"]["Votes.xml"]
    data.write_bytes(data.read_bytes()[:100])
    _assert_same(_cached(dump_copy, *DAY, cache), _parsed(dump_copy, *DAY))
    assert len(builds) == 4


def test_a_clock_before_a_date_in_the_dump_is_not_served(dump_copy: Path, tmp_path: Path) -> None:
    """The future rule depends on the clock: the cache serves only clocks later than every date."""
    cache = tmp_path / "cache"
    early = datetime(2015, 6, 1)
    got = extract_stackexchange(dump_copy, now=early, cache_dir=cache)
    assert not dump_cache.cache_folder(cache, dump_copy).joinpath("manifest.json").exists()
    assert got.quarantine_summary().filter(pl.col("reason") == "future_timestamp")["records"].sum() > 1000
    assert got.counts == extract_stackexchange(dump_copy, now=early, cache_dir=False).counts


def test_a_dump_with_too_many_bad_rows_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Junk input stays in the parser's bounded memory: the refusal is recorded, every run parses."""
    monkeypatch.setattr(dump_cache, "MAX_CACHED_QUARANTINE", 1)
    rows = {"posts": ['<row Id="x" CreationDate="2015-03-02T10:00:00" />', "<row Id=>", "<row Id=>"]}
    folder = _write_dump(tmp_path / "junk", rows)
    builds = _builds(monkeypatch)
    for since in (None, datetime(2015, 3, 2)):
        _assert_same(_cached(folder, since, None, tmp_path / "cache"), _parsed(folder, since, None))
    assert len(builds) == 1
    manifest = dump_cache._read_manifest(dump_cache.cache_folder(tmp_path / "cache", folder))
    assert manifest is not None and manifest["refused"] == "more than 1 quarantined rows" and not manifest["data"]


# ----------------------------------------------------------------------------------------------
# the pre-filter and odd rows: pre-filtered == cached == parsed

DATES = [
    "2015-03-01T10:00:00.000",
    "2015-03-02T00:00:00.000",  # midnight edges
    "2015-03-03T00:00:00",
    "2015-03-02T23:59:59.999",
    "2015-02-28T12:00:00.5",
    "2015-03-05T08:00:00.000",
]
ODD_DATES = [
    None,  # missing
    "2015-02-30T11:00:00.000",  # unparsable
    "yesterday",
    "2999-01-01T00:00:00.000",  # future
    "&#50;015-03-02T10:00:00.000",  # an entity: lxml decodes it, the bytes do not show the date
    "2015-03-02T10:00:00+02:00",  # a zone
    " 2015-03-02T10:00:00",
]


def _attr(name: str, value: str, style: int) -> str:
    if style == 1:
        return f"{name}='{value}'"
    if style == 2:
        return f'{name} = "{value}"'
    if style == 3:
        return f'{name}=\t"{value}"'
    return f'{name}="{value}"'


@st.composite
def _row(draw: st.DrawFn, kind: str, ids: list[int]) -> str:
    odd = draw(st.sampled_from([False, False, True]))  # a third of the rows odd; plain ones get passed over
    date = st.sampled_from(DATES + ODD_DATES) if odd else st.sampled_from(DATES)
    attrs: list[tuple[str, str]] = []
    rid = draw(st.sampled_from([*ids, *ids, "x7", None, "0012"] if odd else ids))
    if rid is not None:
        attrs.append(("Id", str(rid)))
    created = draw(date)
    if created is not None:
        attrs.append(("CreationDate", created))
    if kind == "posts":
        ptype = draw(st.sampled_from(["1", "1", "2", "5", "q"]))
        attrs.append(("PostTypeId", ptype))
        if ptype == "2" or draw(st.booleans()):
            attrs.append(("ParentId", str(draw(st.sampled_from(ids)))))
        edited = draw(st.one_of(st.none(), date))
        if edited is not None:
            attrs.append(("LastEditDate", edited))
        attrs.append(
            (
                "Body",
                draw(
                    st.sampled_from(["&lt;p&gt;x&lt;/p&gt;", "it's", "x CreationDate= Id=1"])
                    if not odd
                    else st.just('say CreationDate="2015-03-02T10:00:00" Id="3"')
                ),
            )
        )
        attrs.append(("Title", "T"))
    elif kind == "comments":
        attrs.append(("PostId", str(draw(st.sampled_from(ids)))))
        attrs.append(("Text", draw(st.sampled_from(["fine", "x CreationDate=", "don't"]))))
    elif kind == "votes":
        attrs.append(("PostId", str(draw(st.sampled_from(ids)))))
        attrs.append(("VoteTypeId", draw(st.sampled_from(["2", "3", "6", "1"]))))
    else:
        attrs.append(("DisplayName", "Ann"))
        attrs.append(("Location", "Springfield"))
    attrs = draw(st.permutations(attrs))
    styles = [draw(st.sampled_from([0, 0, 0, 1, 2, 3])) if odd else 0 for _ in attrs]
    text = "<row " + " ".join(_attr(n, v, s) for (n, v), s in zip(attrs, styles, strict=True))
    end = draw(st.sampled_from([" />", "/>", "\r\n   />", " >", "></row>"])) if odd else " />"  # " >": malformed
    return text + end


@st.composite
def _dump_rows(draw: st.DrawFn) -> dict[str, list[str]]:
    ids = list(range(1, 7))
    return {kind: draw(st.lists(_row(kind, ids), max_size=14)) for kind in ("posts", "comments", "votes", "users")}


def _write_dump(folder: Path, rows: dict[str, list[str]]) -> Path:
    folder.mkdir()
    for kind in ("posts", "comments", "votes", "users", "tags"):
        body = "".join(f"  {r}\r\n" for r in rows.get(kind, []))
        text = f'\ufeff<?xml version="1.0" encoding="utf-8"?>\r\n<{kind}>\r\n{body}</{kind}>'
        (folder / f"{kind.capitalize()}.xml").write_text(text, encoding="utf-8")
    return folder


_since = st.sampled_from([datetime(2015, 3, 1), datetime(2015, 3, 2), datetime(2015, 3, 2, 10), datetime(2015, 2, 1)])
_until = st.sampled_from([None, datetime(2015, 3, 2), datetime(2015, 3, 3), datetime(2015, 3, 2, 10, 0, 1)])


@settings(max_examples=150, deadline=None)
@given(rows=_dump_rows(), since=_since, until=_until)
def test_prefilter_and_cache_keep_exactly_what_the_parse_keeps(rows: dict[str, list[str]], since, until) -> None:
    if until is not None and until <= since:
        until = since + timedelta(days=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _write_dump(Path(tmp) / "odd", rows)
        want = _parsed(folder, since, until)
        _assert_same(_parsed(folder, since, until, prefilter=True), want)
        _assert_same(_cached(folder, since, until, Path(tmp) / "cache"), want)
        _assert_same(_cached(folder, None, since, Path(tmp) / "cache"), _parsed(folder, None, since))


def test_prefilter_passes_over_only_plain_rows_outside_the_interval() -> None:
    keep = dump_cache.date_prefilter("Posts.xml", datetime(2015, 3, 2), datetime(2015, 3, 3))
    out = 'CreationDate="2015-03-01T10:00:00.000"'
    assert keep(f'<row Id="7" {out} Body="x" />'.encode()) == 7
    assert keep(f'<row Id="7" {out} LastEditDate="2015-03-04T00:00:00" />'.encode()) == 7
    assert keep(f'<row Id="7" {out} LastEditDate="2015-03-02T00:00:00" />'.encode()) is None  # edited inside
    assert keep(b'<row Id="7" CreationDate="2015-03-03T00:00:00.000" />') == 7  # until is open
    assert keep(b'<row Id="7" CreationDate="2015-03-02T00:00:00.000" />') is None  # since is closed
    # the date written inside another attribute's value is not the row's
    assert keep(f'<row Id="7" Body=\'a {out}\' CreationDate="2015-03-02T10:00:00" />'.encode()) is None
    assert keep(f'<row Body="Id=&quot;8&quot;" Id="7" {out} />'.encode()) == 7
    assert keep(f'<row Id="7" {out} LastEditDate = "2015-03-02T10:00:00" />'.encode()) is None
    assert keep(f'<row Id="7" {out} LastEditDate="&#50;015-03-02T10:00:00" />'.encode()) is None
    assert keep(b'<row Id="7" CreationDate="2015-02-30T10:00:00" />') is None  # unparsable: the parse says why
    assert keep(f'<row Id="x" {out} />'.encode()) is None
    assert keep(f'<row Id="7" {out}>text</row>'.encode()) is None
    votes = dump_cache.date_prefilter("Votes.xml", datetime(2015, 3, 2), None)
    assert votes(f'<row Id="7" {out} LastEditDate="2015-03-02T10:00:00" />'.encode()) == 7  # not a vote's date


def test_prefilter_finds_duplicates_and_posts_it_passed_over(tmp_path: Path) -> None:
    """Ids and the posts map still see rows outside the interval: a later duplicate, a vote's post type."""
    rows = {
        "posts": [
            '<row Id="1" PostTypeId="5" CreationDate="2015-01-01T00:00:00" Body="tag wiki" />',
            '<row Id="2" PostTypeId="1" CreationDate="2015-01-01T00:00:00" Body="q" Title="Q" />',
            '<row Id="2" PostTypeId="1" CreationDate="2015-03-02T10:00:00" Body="again" Title="Q" />',
            '<row Id="3" PostTypeId="2" ParentId="2" CreationDate="2015-01-02T00:00:00" Body="a" />',
        ],
        "comments": ['<row Id="1" PostId="3" Text="on the answer" CreationDate="2015-03-02T11:00:00" />'],
        "votes": ['<row Id="1" PostId="1" VoteTypeId="2" CreationDate="2015-03-02T00:00:00" />'],
        "users": [],
    }
    folder = _write_dump(tmp_path / "d", rows)
    since, until = datetime(2015, 3, 2), datetime(2015, 3, 3)
    got = _parsed(folder, since, until, prefilter=True)
    _assert_same(got, _parsed(folder, since, until))
    assert got.quarantine["reason"].to_list() == ["duplicate_id"]
    assert got.content.select("content_id", "thread_id").rows() == [("c1", "p2")]  # thread found through p3
    assert got.counts["engagement_events"].skip_rules == {"not community content (vote on PostTypeId 5: tag wiki)": 1}


def test_prefilter_is_faster_than_parsing_every_row(beer_dump: Path) -> None:
    day = (datetime(2015, 3, 1), datetime(2015, 3, 2))
    for _ in range(2):  # warm both paths
        _parsed(beer_dump, *day), _parsed(beer_dump, *day, prefilter=True)
    import time

    def best(prefilter: bool) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            _parsed(beer_dump, *day, prefilter=prefilter)
            times.append(time.perf_counter() - t)
        return min(times)

    assert best(True) < 0.7 * best(False)
