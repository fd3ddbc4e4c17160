"""Tests for the Stack Exchange dump connector (warehouse/sources/stackexchange.py).

The beer.stackexchange.com slice vendored in tests/data is read through the fixture ``beer_dump``
(the complete dump, ``full_beer_dump``, only for the README's figures); malformed dumps are written to ``tmp_path`` at test time. Independent counts are computed
with the standard library's ``xml.etree`` so that they do not share code with the connector.
"""

from __future__ import annotations

import itertools
import time
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from warehouse.canonical import SCHEMAS, STREAMS, Extract, content_hash
from warehouse.sources.stackexchange import (
    UnsafeXMLError,
    extract_stackexchange,
    html_to_text,
    iter_dump_rows,
    parse_tags,
)

NOW = datetime(2020, 1, 1)
Y2015 = datetime(2015, 1, 1)
Y2016 = datetime(2016, 1, 1)


# ----------------------------------------------------------------------------------------------
# helpers


def _rows(path: Path) -> list[dict[str, str]]:
    return [dict(el.attrib) for _, el in ET.iterparse(path) if el.tag == "row"]


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _inside(ts: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    return ts is not None and (since is None or ts >= since) and (until is None or ts < until)


@pytest.fixture(scope="module")
def beer_raw(beer_dump: Path) -> dict[str, list[dict[str, str]]]:
    """The beer dump's rows, parsed independently of the connector."""
    return {name: _rows(beer_dump / f"{name}.xml") for name in ("Posts", "Comments", "Votes", "Users")}


@pytest.fixture(scope="module")
def beer(beer_dump: Path) -> Extract:
    return extract_stackexchange(beer_dump, now=NOW)


def _assert_reconciles(ex: Extract) -> None:
    for stream in STREAMS:
        c = ex.counts[stream]
        assert c.read == c.emitted + c.skipped + c.quarantined, (stream, c)
        assert c.emitted == ex.frame(stream).height, stream
        assert c.quarantined == ex.quarantine.filter(pl.col("stream") == stream).height, stream
        assert dict(ex.frame(stream).schema) == SCHEMAS[stream]


def _independent_counts(
    raw: dict[str, list[dict[str, str]]], since: datetime | None, until: datetime | None
) -> dict[str, int]:
    """Read/emitted per stream for one interval, following the documented windowing rules."""
    posts = raw["Posts"]
    post_read = [
        p
        for p in posts
        if _inside(_ts(p["CreationDate"]), since, until) or _inside(_ts(p.get("LastEditDate")), since, until)
    ]
    comments = [c for c in raw["Comments"] if _inside(_ts(c["CreationDate"]), since, until)]
    votes = [v for v in raw["Votes"] if _inside(_ts(v["CreationDate"]), since, until)]
    users = [u for u in raw["Users"] if _inside(_ts(u["CreationDate"]), since, until)]
    return {
        "content_read": len(post_read) + len(comments),
        "content_emitted": sum(p["PostTypeId"] in ("1", "2") for p in post_read) + len(comments),
        "votes_read": len(votes),
        "votes_emitted": sum(v["VoteTypeId"] in ("1", "2", "3", "5") for v in votes),
        "users": len(users),
    }


# ----------------------------------------------------------------------------------------------
# the real dump (the vendored slice: 876 posts, 969 comments, 6,000 votes, 426 users)


def test_beer_counts_per_stream(beer: Extract) -> None:
    content, votes, users = (beer.counts[s] for s in ("content", "engagement_events", "users"))
    # 876 posts + 969 comments; 18 tag wikis and 18 excerpts skipped
    assert (content.read, content.emitted, content.skipped, content.quarantined) == (1845, 1809, 36, 0)
    assert content.skip_rules == {
        "not community content (PostTypeId 4: tag wiki excerpt)": 18,
        "not community content (PostTypeId 5: tag wiki)": 18,
    }
    assert (votes.read, votes.emitted, votes.skipped, votes.quarantined) == (6000, 5340 + 179 + 161 + 145, 175, 0)
    assert {rule.split("VoteTypeId ")[1].split(":")[0]: n for rule, n in votes.skip_rules.items()} == {
        "16": 111,
        "15": 35,
        "10": 20,
        "8": 4,
        "9": 4,
        "11": 1,
    }
    assert (users.read, users.emitted, users.skipped, users.quarantined) == (426, 426, 0, 0)
    assert beer.quarantine.height == 0
    _assert_reconciles(beer)
    assert beer.source == "stackexchange:beer"
    assert (beer.synthetic, beer.timezone, beer.since, beer.until) == (False, "UTC", None, None)


def test_beer_content_shape(beer: Extract) -> None:
    c = beer.content
    assert dict(Counter(c["kind"].to_list())) == {"question": 254, "answer": 586, "comment": 969}
    assert c["content_id"].n_unique() == c.height
    assert (
        c.filter(pl.col("kind") != "comment")["edited_at"].is_not_null().sum() == 256
    )  # 292 minus 36 non-community posts
    assert c.filter(pl.col("kind") == "comment")["edited_at"].is_null().all()
    # 6 posts lack OwnerUserId, 2 of them tag wikis; 22 comments lack UserId
    assert c.filter(pl.col("kind") != "comment")["author_id"].null_count() == 4
    assert c.filter(pl.col("kind") == "comment")["author_id"].null_count() == 22
    assert c["created_at"].min() == datetime(2014, 1, 21, 20, 26, 5, 383000)
    assert c.filter(pl.col("kind") != "comment")["created_at"].max() == datetime(2016, 12, 9, 13, 29, 32, 603000)
    assert c.filter(pl.col("kind") == "question")["view_count"].null_count() == 0
    assert c.filter(pl.col("kind") != "question")["view_count"].is_null().all()
    assert c.filter(pl.col("kind") != "question")["tags"].list.len().max() == 0
    assert c.filter(pl.col("kind") == "question")["tags"].list.len().min() >= 1
    assert c.filter(pl.col("kind") == "question")["thread_id"].equals(
        c.filter(pl.col("kind") == "question")["content_id"]
    )
    assert not c["body_text"].str.contains("<p>").any()
    assert c["thread_id"].null_count() == 0  # no comment is dangling in this dump


def test_beer_known_question_mapped_exactly(beer: Extract) -> None:
    row = beer.content.filter(pl.col("content_id") == "p1").to_dicts()
    body = "I was offered a beer the other day that was reportedly made with citra hops. What are citra hops? Why should I care that my beer is made with them?"
    title = "What is a citra hop, and how does it differ from other hops?"
    assert row == [
        {
            "source": "stackexchange:beer",
            "content_id": "p1",
            "kind": "question",
            "thread_id": "p1",
            "parent_id": None,
            "author_id": "7",
            "created_at": datetime(2014, 1, 21, 20, 26, 5, 383000),
            "edited_at": datetime(2014, 1, 21, 22, 4, 34, 977000),
            "title": title,
            "body_text": body,
            "tags": ["hops"],
            "score": 17,
            "view_count": 698,
            "content_hash": content_hash("question", title, body),
            "deleted_at": None,
            "hidden": None,
        }
    ]


def test_beer_answer_and_comment_threads(beer: Extract, beer_raw: dict[str, list[dict[str, str]]]) -> None:
    answer = beer.content.filter(pl.col("content_id") == "p4").row(0, named=True)
    assert (answer["kind"], answer["parent_id"], answer["thread_id"], answer["title"]) == ("answer", "p1", "p1", None)
    assert answer["body_text"].startswith("Citra is a registered trademark since 2007.")
    assert "\n\nFor more information, you can read the Wikipedia article on the Citra brand." in answer["body_text"]
    assert "http://en.wikipedia.org" not in answer["body_text"]  # link targets dropped, link text kept
    # comment 7 is on answer 19, whose question is 5
    comment = beer.content.filter(pl.col("content_id") == "c7").row(0, named=True)
    assert (comment["kind"], comment["parent_id"], comment["thread_id"], comment["author_id"]) == (
        "comment",
        "p19",
        "p5",
        "20",
    )
    assert comment["body_text"] == "I retracted my close vote after reading this answer.  Well done."
    # every comment's thread agrees with an independent resolution
    posts = {p["Id"]: p for p in beer_raw["Posts"]}
    expected = {
        f"c{c['Id']}": "p"
        + (c["PostId"] if posts[c["PostId"]]["PostTypeId"] == "1" else posts[c["PostId"]]["ParentId"])
        for c in beer_raw["Comments"]
    }
    got = dict(beer.content.filter(pl.col("kind") == "comment").select("content_id", "thread_id").iter_rows())
    assert got == expected


def test_beer_votes(beer: Extract, beer_raw: dict[str, list[dict[str, str]]]) -> None:
    ev = beer.engagement_events
    assert dict(Counter(ev["event_type"].to_list())) == {
        "upvote": 5340,
        "downvote": 179,
        "accept": 161,
        "favorite": 145,
    }
    assert ev["time_precision"].unique().to_list() == ["day"]
    assert (ev["occurred_at"].dt.truncate("1d") == ev["occurred_at"]).all()
    assert ev.filter(pl.col("event_type") == "favorite")["user_id"].null_count() == 0
    assert ev.filter(pl.col("event_type") != "favorite")["user_id"].is_null().all()
    assert ev.filter(pl.col("event_id") == "v141").row(0, named=True) == {
        "source": "stackexchange:beer",
        "event_id": "v141",
        "event_type": "favorite",
        "content_id": "p63",
        "user_id": "7",
        "occurred_at": datetime(2014, 1, 21),
        "time_precision": "day",
        "properties": None,
    }
    # votes on posts missing from the dump are emitted, not decided here (95 in all, 60 engagement)
    post_ids = {f"p{p['Id']}" for p in beer_raw["Posts"]}
    assert (~ev["content_id"].is_in(list(post_ids))).sum() == 60
    assert ev.filter(pl.col("event_id") == "v46")["content_id"].to_list() == ["p30"]


def test_beer_users_privacy(beer: Extract) -> None:
    users = beer.users
    assert users.columns == list(SCHEMAS["users"])
    assert users.filter(pl.col("user_id") == "-1").row(0, named=True) == {
        "source": "stackexchange:beer",
        "user_id": "-1",
        "display_name": "Community",
        "created_at": datetime(2014, 1, 21, 17, 45, 53, 587000),
        "reputation": 1,
    }


def test_beer_extract_is_fast(beer_dump: Path) -> None:
    start = time.perf_counter()
    extract_stackexchange(beer_dump)
    assert time.perf_counter() - start < 3.0


def test_beer_window_2015_matches_independent_count(beer_dump: Path, beer_raw: dict[str, list[dict[str, str]]]) -> None:
    ex = extract_stackexchange(beer_dump, since=Y2015, until=Y2016, now=NOW)
    want = _independent_counts(beer_raw, Y2015, Y2016)
    assert ex.counts["content"].read == want["content_read"]
    assert ex.counts["content"].emitted == want["content_emitted"]
    assert ex.counts["engagement_events"].read == want["votes_read"]
    assert ex.counts["engagement_events"].emitted == want["votes_emitted"]
    assert ex.counts["users"].read == ex.counts["users"].emitted == want["users"]
    assert 0 < want["content_emitted"] < 1809 and 0 < want["votes_emitted"] < 5825
    _assert_reconciles(ex)
    assert ex.users["created_at"].is_between(Y2015, Y2016, closed="left").all()
    assert ex.engagement_events["occurred_at"].is_between(Y2015, Y2016, closed="left").all()
    in_window = pl.col("created_at").is_between(Y2015, Y2016, closed="left") | pl.col("edited_at").is_between(
        Y2015, Y2016, closed="left"
    )
    assert ex.content.filter(~in_window).height == 0
    # comments of 2015 on answers posted before 2015 still find their question (the posts map is window-independent)
    early_answers = {
        f"p{p['Id']}": f"p{p['ParentId']}"
        for p in beer_raw["Posts"]
        if p["PostTypeId"] == "2" and _ts(p["CreationDate"]) < Y2015
    }
    on_early = ex.content.filter((pl.col("kind") == "comment") & pl.col("parent_id").is_in(list(early_answers)))
    assert on_early.height > 0
    assert on_early["thread_id"].to_list() == [early_answers[p] for p in on_early["parent_id"].to_list()]


def test_beer_windows_partition_the_unbounded_extract(
    beer_dump: Path, beer: Extract, beer_raw: dict[str, list[dict[str, str]]]
) -> None:
    bounds = [None, Y2015, Y2016, None]
    parts = [extract_stackexchange(beer_dump, since=a, until=b, now=NOW) for a, b in itertools.pairwise(bounds)]
    for part in parts:
        _assert_reconciles(part)

    def window(ts: datetime) -> int:
        return 0 if ts < Y2015 else 1 if ts < Y2016 else 2

    # a community post created in one window and edited in another is re-emitted in the second
    re_emitted = sum(
        1
        for p in beer_raw["Posts"]
        if p["PostTypeId"] in ("1", "2")
        and "LastEditDate" in p
        and window(_ts(p["CreationDate"])) != window(_ts(p["LastEditDate"]))
    )
    re_read = sum(
        1
        for p in beer_raw["Posts"]
        if "LastEditDate" in p and window(_ts(p["CreationDate"])) != window(_ts(p["LastEditDate"]))
    )
    assert re_emitted > 0
    assert sum(p.content.height for p in parts) == beer.content.height + re_emitted
    assert sum(p.counts["content"].read for p in parts) == beer.counts["content"].read + re_read
    for stream in ("users", "engagement_events"):
        assert sum(p.frame(stream).height for p in parts) == beer.frame(stream).height
        assert sum(p.counts[stream].read for p in parts) == beer.counts[stream].read
    union = pl.concat([p.content for p in parts]).unique("content_id", keep="last").sort("content_id")
    assert union.equals(beer.content.sort("content_id"))


@pytest.mark.full_data
def test_full_dump_counts_match_the_readme(full_beer_dump: Path) -> None:
    """README ("Loaded, skipped or quarantined"): one run reads 3,948 users, 3,966 content records
    (3,849 loaded, 117 tag-wiki posts skipped) and 10,798 votes (9,677 loaded, 589 skipped, 532 on
    deleted posts, which validate quarantines)."""
    ex = extract_stackexchange(full_beer_dump, now=NOW)
    content, votes, users = (ex.counts[s] for s in ("content", "engagement_events", "users"))
    assert (content.read, content.emitted, content.skipped, content.quarantined) == (3966, 3849, 117, 0)
    assert content.skip_rules == {
        "not community content (PostTypeId 4: tag wiki excerpt)": 57,
        "not community content (PostTypeId 5: tag wiki)": 57,
        "not community content (PostTypeId 7: wiki placeholder)": 3,
    }
    assert (votes.read, votes.emitted, votes.skipped, votes.quarantined) == (10798, 9061 + 560 + 365 + 223, 589, 0)
    assert {rule.split("VoteTypeId ")[1].split(":")[0]: n for rule, n in votes.skip_rules.items()} == {
        "16": 259,
        "15": 147,
        "10": 133,
        "12": 18,
        "8": 9,
        "9": 9,
        "11": 8,
        "4": 6,
    }
    assert (users.read, users.emitted, users.skipped, users.quarantined) == (3948, 3948, 0, 0)
    dangling = ~ex.engagement_events["content_id"].is_in(ex.content["content_id"].implode())
    assert (int(dangling.sum()), ex.engagement_events.height - int(dangling.sum())) == (532, 9677)
    _assert_reconciles(ex)


# ----------------------------------------------------------------------------------------------
# malformed and hostile dumps

HEADER = '\ufeff<?xml version="1.0" encoding="utf-8"?>\r\n'


def _write(folder: Path, name: str, root: str, rows: list[str | bytes], *, header: str = HEADER) -> None:
    data = header.encode() + f"<{root}>\r\n".encode()
    for row in rows:
        data += b"  " + (row if isinstance(row, bytes) else row.encode()) + b"\r\n"
    data += f"</{root}>".encode()
    (folder / name).write_bytes(data)


def _dump(tmp_path: Path, name: str = "MyDump", **files: list[str | bytes]) -> Path:
    """A minimal valid dump; keyword arguments replace a file's rows (posts=, comments=, votes=, users=, tags=)."""
    folder = tmp_path / name
    folder.mkdir()
    defaults: dict[str, list[str | bytes]] = {
        "posts": [
            '<row Id="1" PostTypeId="1" CreationDate="2015-03-01T10:00:00.000" Score="3" ViewCount="10" '
            'Body="&lt;p&gt;Hello &amp;amp; welcome&lt;/p&gt;&#xA;" OwnerUserId="5" Title="Q one" Tags="|ale|stout|" />',
            '<row Id="2" PostTypeId="2" ParentId="1" CreationDate="2015-03-02T10:00:00.000" Score="1" Body="&lt;p&gt;An answer&lt;/p&gt;" OwnerUserId="6" />',
        ],
        "comments": [
            '<row Id="1" PostId="2" Score="0" Text="Nice answer" CreationDate="2015-03-03T10:00:00.000" UserId="5" />'
        ],
        "votes": ['<row Id="1" PostId="1" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />'],
        "users": [
            '<row Id="5" Reputation="10" CreationDate="2015-01-01T00:00:00.000" DisplayName="Ann" Location="Springfield" />'
        ],
        "tags": ['<row Id="1" TagName="ale" Count="1" />'],
    }
    defaults.update(files)
    for key, root in (
        ("posts", "posts"),
        ("comments", "comments"),
        ("votes", "votes"),
        ("users", "users"),
        ("tags", "tags"),
    ):
        _write(folder, f"{root.capitalize()}.xml", root, defaults[key])
    return folder


def test_minimal_dump_pipe_tags_and_default_source(tmp_path: Path) -> None:
    ex = extract_stackexchange(_dump(tmp_path), now=NOW)
    assert ex.source == "stackexchange:mydump"
    q = ex.content.filter(pl.col("content_id") == "p1").row(0, named=True)
    assert q["tags"] == ["ale", "stout"]
    assert q["body_text"] == "Hello & welcome"  # XML then HTML entities decoded, as the page shows it
    comment = ex.content.filter(pl.col("content_id") == "c1").row(0, named=True)
    assert (comment["parent_id"], comment["thread_id"]) == ("p2", "p1")
    assert ex.users.row(0, named=True)["display_name"] == "Ann"
    _assert_reconciles(ex)
    assert ex.quarantine.height == 0


BAD_POSTS: list[str | bytes] = [
    '<row Id="1" PostTypeId="1" CreationDate="2015-03-01T10:00:00.000" Score="3" Body="&lt;p&gt;ok&lt;/p&gt;" Title="Q" Tags="&lt;ale&gt;" />',
    '<row PostTypeId="1" CreationDate="2015-03-01T11:00:00.000" Score="0" Body="no id" Title="Q" />',
    '<row Id="3" PostTypeId="1" CreationDate="2015-02-30T11:00:00.000" Score="0" Body="bad date" Title="Q" />',
    '<row Id="4" PostTypeId="1" CreationDate="2999-01-01T00:00:00.000" Score="0" Body="future" Title="Q" />',
    '<row Id="5" PostTypeId="1" CreationDate="2015-03-01T12:00:00.000" Score="0" Body="&foo;" Title="Q" />',
    b'<row Id="6" PostTypeId="1" CreationDate="2015-03-01T12:00:00.000" Score="0" Body="caf\xe9 \xff" Title="Q" />',
    '<row Id="1" PostTypeId="1" CreationDate="2015-03-01T10:00:00.000" Score="99" Body="conflicting" Title="Q" />',
    '<row Id="1" PostTypeId="1" CreationDate="2015-03-01T10:00:00.000" Score="3" Body="&lt;p&gt;ok&lt;/p&gt;" Title="Q" Tags="&lt;ale&gt;" />',
    '<row Id="7" PostTypeId="2" CreationDate="2015-03-01T13:00:00.000" Score="0" Body="orphan answer" />',
    '<row Id="8" PostTypeId="2" ParentId="1" CreationDate="2015-03-01T13:00:00.000" Score="lots" Body="x" />',
    '<row Id="9" PostTypeId="5" CreationDate="2015-03-01T13:00:00.000" Score="0" Body="tag wiki" />',
    '<row Id="10" PostTypeId="2" ParentId="1" CreationDate="2015-03-01T14:00:00.000" Score="2"\r\n'
    '       Body="&lt;p&gt;spans lines&lt;/p&gt;" OwnerUserId="5" />',
    '<row Id="11" PostTypeId="2" ParentId="1" CreationDate="2015-03-01T14:00:00.000" LastEditDate="yesterday" Body="x" />',
]


@pytest.fixture
def bad_dump(tmp_path: Path) -> Path:
    return _dump(
        tmp_path,
        posts=BAD_POSTS,
        comments=[
            '<row Id="1" PostId="10" Score="0" Text="fine" CreationDate="2015-03-03T10:00:00.000" UserId="5" />',
            '<row Id="2" Score="0" Text="no post" CreationDate="2015-03-03T10:00:00.000" />',
            '<row Id="3" PostId="9" Score="0" Text="on a tag wiki" CreationDate="2015-03-03T10:00:00.000" />',
            '<row Id="4" PostId="424242" Score="0" Text="on a post not in this dump" CreationDate="2015-03-03T10:00:00.000" />',
        ],
        votes=[
            '<row Id="1" PostId="1" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
            '<row Id="2" PostId="999" VoteTypeId="3" CreationDate="2015-03-01T00:00:00.000" />',
            '<row Id="3" PostId="1" VoteTypeId="16" CreationDate="2015-03-01T00:00:00.000" />',
            '<row Id="4" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
            '<row Id="5" PostId="1" VoteTypeId="5" UserId="5" CreationDate="2015-03-01T00:00:00.000" />',
            '<row Id="6" PostId="9" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
        ],
        users=[
            '<row Id="5" Reputation="10" CreationDate="2015-01-01T00:00:00.000" DisplayName="Ann" Location="Springfield" />',
            '<row Id="6" Reputation="ten" CreationDate="2015-01-01T00:00:00.000" DisplayName="Bob" Location="Secret City" AboutMe="private bio" />',
            '<row Id="7" Reputation="1" CreationDate="2015-01-01T00:00:00.000" DisplayName="Cy" WebsiteUrl="http://cy.example" &bad; />',
        ],
    )


def test_malformed_rows_are_quarantined_with_reasons(bad_dump: Path) -> None:
    ex = extract_stackexchange(bad_dump, now=NOW)
    _assert_reconciles(ex)
    got = {(r["stream"], r["record_key"], r["reason"]) for r in ex.quarantine.iter_rows(named=True)}
    assert got == {
        ("content", "Posts.xml:4", "missing_id"),
        ("content", "p3", "bad_timestamp"),
        ("content", "p4", "future_timestamp"),
        ("content", "p5", "malformed_xml"),
        ("content", "p6", "invalid_utf8"),
        ("content", "p1", "duplicate_id"),
        ("content", "p7", "missing_reference"),
        ("content", "p8", "bad_number"),
        ("content", "p11", "bad_timestamp"),
        ("content", "c2", "missing_reference"),
        ("engagement_events", "v4", "missing_reference"),
        ("users", "6", "bad_number"),
        ("users", "7", "malformed_xml"),
    }
    content = ex.counts["content"]
    assert (content.read, content.emitted, content.quarantined) == (len(BAD_POSTS) + 4, 4, 10)
    assert content.skip_rules == {
        "exact duplicate row": 1,
        "not community content (PostTypeId 5: tag wiki)": 1,
        "not community content (comment on PostTypeId 5: tag wiki)": 1,
    }
    assert sorted(ex.content["content_id"].to_list()) == ["c1", "c4", "p1", "p10"]
    # the first row with an Id wins over a conflicting later one
    assert ex.content.filter(pl.col("content_id") == "p1")["score"].to_list() == [3]
    # a row spanning two lines is read whole
    assert ex.content.filter(pl.col("content_id") == "p10")["body_text"].to_list() == ["spans lines"]
    # a comment on a post absent from the dump is emitted for the loader to check; its thread is unknown here
    c4 = ex.content.filter(pl.col("content_id") == "c4").row(0, named=True)
    assert (c4["parent_id"], c4["thread_id"]) == ("p424242", None)
    c1 = ex.content.filter(pl.col("content_id") == "c1").row(0, named=True)
    assert (c1["parent_id"], c1["thread_id"]) == ("p10", "p1")

    votes = ex.counts["engagement_events"]
    assert (votes.read, votes.emitted, votes.quarantined) == (6, 3, 1)
    assert votes.skip_rules == {
        "not an engagement vote (VoteTypeId 16: approve edit suggestion)": 1,
        "not community content (vote on PostTypeId 5: tag wiki)": 1,
    }
    assert dict(ex.engagement_events.select("event_id", "content_id").iter_rows()) == {
        "v1": "p1",
        "v2": "p999",
        "v5": "p1",
    }
    assert (ex.counts["users"].read, ex.counts["users"].emitted, ex.counts["users"].quarantined) == (3, 1, 2)

    by_key = {r["record_key"]: r for r in ex.quarantine.iter_rows(named=True)}
    assert "Entity 'foo' not defined" in by_key["p5"]["detail"]
    assert by_key["p5"]["payload"] == BAD_POSTS[4]
    assert "\\xff" in by_key["p6"]["payload"]
    assert "2015-02-30" in by_key["p3"]["detail"]
    assert "LastEditDate" in by_key["p11"]["detail"]


def test_quarantined_users_never_keep_private_fields(bad_dump: Path) -> None:
    ex = extract_stackexchange(bad_dump, now=NOW)
    payloads = "\n".join(ex.quarantine.filter(pl.col("stream") == "users")["payload"].to_list())
    assert "Bob" in payloads and "Cy" in payloads
    for secret in ("Secret City", "private bio", "cy.example", "Springfield"):
        assert secret not in payloads


def test_future_rule_uses_the_given_clock(tmp_path: Path) -> None:
    folder = _dump(tmp_path)
    assert extract_stackexchange(folder, now=datetime(2030, 1, 1)).quarantine.height == 0
    early = extract_stackexchange(folder, now=datetime(2015, 3, 1, 12, 0))
    _assert_reconciles(early)
    assert set(early.quarantine["reason"].to_list()) == {"future_timestamp"}
    assert sorted(early.quarantine["record_key"].to_list()) == ["c1", "p2"]
    aware = extract_stackexchange(folder, now=datetime(2015, 3, 1, 12, 0, tzinfo=UTC))
    assert aware.quarantine.height == 2


def test_undatable_rows_belong_to_the_first_interval_only(bad_dump: Path) -> None:
    whole = extract_stackexchange(bad_dump, now=NOW)
    first = extract_stackexchange(bad_dump, until=Y2015, now=NOW)
    rest = extract_stackexchange(bad_dump, since=Y2015, now=NOW)
    for ex in (first, rest):
        _assert_reconciles(ex)
    undatable = {"p3", "p4", "p5", "p6", "7"}  # bad/future CreationDate, unparsable rows
    assert set(first.quarantine["record_key"].to_list()) == undatable
    assert undatable.isdisjoint(rest.quarantine["record_key"].to_list())
    assert first.quarantine.height + rest.quarantine.height == whole.quarantine.height
    for stream in STREAMS:
        assert first.counts[stream].read + rest.counts[stream].read == whole.counts[stream].read


def test_since_must_precede_until(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty data interval"):
        extract_stackexchange(_dump(tmp_path), since=Y2016, until=Y2015)


BILLION_LAUGHS = (
    '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE posts [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + "]>\n<posts>\n"
    + '  <row Id="1" PostTypeId="1" CreationDate="2015-03-01T10:00:00.000" Body="&lol9;" Title="boom" />\n'
    + "</posts>\n"
)


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    folder = _dump(tmp_path)
    (folder / "Posts.xml").write_text(BILLION_LAUGHS, encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(UnsafeXMLError, match=r"Posts\.xml line 2"):
        extract_stackexchange(folder, now=NOW)
    assert time.perf_counter() - start < 1.0


def test_external_entity_is_refused(tmp_path: Path) -> None:
    folder = _dump(tmp_path)
    (folder / "Users.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE users [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<users>\n'
        '  <row Id="1" Reputation="1" CreationDate="2015-01-01T00:00:00.000" DisplayName="&xxe;" />\n</users>\n',
        encoding="utf-8",
    )
    with pytest.raises(UnsafeXMLError, match=r"Users\.xml"):
        extract_stackexchange(folder, now=NOW)


def test_entity_declaration_after_the_prolog_is_refused(tmp_path: Path) -> None:
    folder = _dump(
        tmp_path,
        votes=[
            '<row Id="1" PostId="1" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
            '<!ENTITY x SYSTEM "http://example.com/">',
        ],
    )
    with pytest.raises(UnsafeXMLError, match=r"Votes\.xml line 4"):
        extract_stackexchange(folder, now=NOW)


def test_missing_required_file_is_named(tmp_path: Path) -> None:
    folder = _dump(tmp_path)
    (folder / "Votes.xml").unlink()
    with pytest.raises(FileNotFoundError, match="Votes.xml") as info:
        extract_stackexchange(folder)
    assert str(folder) in str(info.value)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        extract_stackexchange(tmp_path / "nowhere")


def test_overlong_and_unterminated_rows(tmp_path: Path) -> None:
    path = tmp_path / "Votes.xml"
    _write(
        tmp_path,
        "Votes.xml",
        "votes",
        [
            '<row Id="1" PostId="1" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
            '<row Id="2" PostId="1" Junk="' + "x" * 500 + '" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
            '<row Id="3" PostId="1" VoteTypeId="2"',
            '<row Id="4" PostId="1" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
        ],
    )
    rows = list(iter_dump_rows(path, max_row_bytes=300))
    assert [(r.attrs or {}).get("Id") for r in rows] == ["1", None, None, "4"]
    assert [r.reason for r in rows] == [None, "malformed_xml", "malformed_xml", None]
    assert "longer than 300 bytes" in rows[1].detail
    assert "not terminated" in rows[2].detail
    assert rows[0].line == 3  # BOM + declaration, root, then the first row


# ----------------------------------------------------------------------------------------------
# helpers


def test_html_to_text() -> None:
    html = (
        "<p>Hi &amp; bye <b>bold</b>&nbsp;text</p>\n<pre><code>x = 1\n  y = 2\n</code></pre>\n"
        "<ul>\n<li>one</li>\n<li>two <a href='http://x'>link</a></li>\n</ul><!-- note -->tail<br>next"
        "<img src='http://x/y.png'><script>alert(1)</script>"
    )
    assert html_to_text(html) == "Hi & bye bold\xa0text\n\nx = 1\n  y = 2\n\none\ntwo link\n\ntail\nnext"
    assert html_to_text("<blockquote><p>quoted &lt;b&gt;</p></blockquote>") == "quoted <b>"
    assert html_to_text(None) == html_to_text("") == ""


@pytest.mark.parametrize(
    ("raw", "tags"),
    [("<ipa><hops>", ["ipa", "hops"]), ("|ipa|hops|", ["ipa", "hops"]), ("|c++|", ["c++"]), ("", []), (None, [])],
)
def test_parse_tags(raw: str | None, tags: list[str]) -> None:
    assert parse_tags(raw) == tags


def test_declaration_hidden_in_an_overlong_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Posts.xml"
    path.write_bytes(
        b'<?xml version="1.0"?>\n<posts>\n<row Body="' + b"x" * 1000 + b'<!ENTITY e "boom">" />\n</posts>\n'
    )
    with pytest.raises(UnsafeXMLError, match=r"Posts\.xml line 3"):
        list(iter_dump_rows(path, max_row_bytes=300))


def test_huge_numbers_are_bad_numbers(tmp_path: Path) -> None:
    folder = _dump(
        tmp_path,
        votes=[
            '<row Id="1" PostId="1" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
            f'<row Id="{"9" * 5000}" PostId="1" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
            '<row Id="3" PostId="99999999999999999999" VoteTypeId="2" CreationDate="2015-03-01T00:00:00.000" />',
        ],
    )
    ex = extract_stackexchange(folder, now=NOW)
    _assert_reconciles(ex)
    assert ex.quarantine["reason"].to_list() == ["bad_number", "bad_number"]
    assert ex.engagement_events["event_id"].to_list() == ["v1"]
