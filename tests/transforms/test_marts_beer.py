"""The analytics marts on the real beer.stackexchange dump (the vendored slice), against figures computed here
independently: the dump's XML read with ElementTree and aggregated with polars, without the
connector's mapping or the marts' SQL.

The marts are built from the connector's canonical frames (``extract_stackexchange``) loaded
straight into staging (votes on deleted posts dropped, as the pipeline's *validate* step
quarantines them), which takes about a second; the full pipeline is covered by
``tests/test_end_to_end.py``. The dump's times are UTC, the default community time zone.
The figures README.md quotes for the full dump are checked on it by the last test (``full_data``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from transforms.runner import run_marts
from warehouse.db import connect, migrate
from warehouse.sources.stackexchange import extract_stackexchange

SOURCE = "stackexchange:beer"


def _marts(beer_dump: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse holding the dump's staging and the marts built on it."""
    ex = extract_stackexchange(beer_dump, now=datetime(2030, 1, 1))
    con = connect(":memory:")
    migrate(con)
    for stream in ("users", "content", "engagement_events"):
        con.register("df", ex.frame(stream))
        con.execute(f"insert into staging.{stream} by name select * from df")
        con.unregister("df")
    # what the pipeline's validate step does: votes on posts absent from the dump are quarantined
    con.execute(
        "delete from staging.engagement_events e where not exists "
        "(select 1 from staging.content c where c.source = e.source and c.content_id = e.content_id)"
    )
    con.execute("insert into ops.sources values (?, false, 'UTC', 'beer')", [SOURCE])
    run_marts(con)
    return con


@pytest.fixture(scope="module")
def con(beer_dump: Path):
    con = _marts(beer_dump)
    yield con
    con.close()


def _rows(path: Path) -> list[dict[str, str]]:
    return [dict(r.attrib) for r in ET.parse(path).getroot()]


def _ts(column: str) -> pl.Expr:
    return pl.col(column).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f")


@pytest.fixture(scope="module")
def dump(beer_dump: Path) -> dict[str, pl.DataFrame]:
    """Posts (questions and answers), comments on them, and engagement votes, from the XML."""
    posts = (
        pl.DataFrame(_rows(beer_dump / "Posts.xml"), infer_schema_length=None)
        .select("Id", "PostTypeId", "ParentId", "OwnerUserId", "Tags", "Score", _ts("CreationDate").alias("at"))
        .filter(pl.col("PostTypeId").is_in(["1", "2"]))
    )
    comments = (
        pl.DataFrame(_rows(beer_dump / "Comments.xml"), infer_schema_length=None)
        .select("Id", "PostId", "UserId", _ts("CreationDate").alias("at"))
        .filter(pl.col("PostId").is_in(posts["Id"].implode()))
    )
    votes = pl.DataFrame(_rows(beer_dump / "Votes.xml"), infer_schema_length=None)
    if "UserId" not in votes.columns:
        votes = votes.with_columns(UserId=pl.lit(None, pl.String))
    votes = votes.select("PostId", "VoteTypeId", "UserId", _ts("CreationDate").alias("at")).filter(
        pl.col("VoteTypeId").is_in(["1", "2", "3", "5"]) & pl.col("PostId").is_in(posts["Id"].implode())
    )
    questions = posts.filter(pl.col("PostTypeId") == "1")
    # every item with the question (thread) it belongs to
    answers = posts.filter(pl.col("PostTypeId") == "2").rename({"ParentId": "q"})
    answer_parent = answers.select(pl.col("Id").alias("PostId"), "q")
    on_question = comments.join(questions.select(pl.col("Id").alias("PostId")), on="PostId").with_columns(
        q=pl.col("PostId")
    )
    on_answer = comments.join(answer_parent, on="PostId")
    thread_comments = pl.concat([on_question, on_answer.select(on_question.columns)])
    return {
        "posts": posts,
        "questions": questions,
        "answers": answers,
        "comments": comments,
        "thread_comments": thread_comments,
        "votes": votes,
    }


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple:
    return con.execute(sql, params or []).fetchall()[0]


# --------------------------------------------------------------------------- when is the community awake


def test_busiest_weekday_hour_for_all_content(con, dump):
    items = pl.concat([dump["posts"].select("at"), dump["comments"].select("at")])
    cells = (
        items.group_by(pl.col("at").dt.weekday().alias("weekday"), pl.col("at").dt.hour().alias("hour"))
        .len()
        .sort(["len", "weekday", "hour"], descending=[True, False, False])
    )
    top = cells.row(0)
    weeks = ((items["at"].max().date() - items["at"].min().date()).days + 1) / 7
    mart = one(
        con,
        "select weekday, hour, sum(events), sum(mean_per_week) from marts.activity_heatmap "
        "where activity_type in ('question', 'answer', 'comment') group by all "
        "order by 3 desc, weekday, hour limit 1",
    )
    assert mart[:3] == top
    assert mart[3] == pytest.approx(top[2] / weeks)
    assert top == (2, 21, 97)  # Tuesday 21:00 UTC: 97 questions, answers and comments
    # the timeline re-bucketed gives the same cell
    assert (
        one(
            con,
            "select count(*), sum(events) from marts.activity_timeline "
            "where isodow(bucket_start) = 2 and hour(bucket_start) = 21",
        )[1]
        == 97
    )


# --------------------------------------------------------------------------- response times


def _first_answers(dump) -> pl.DataFrame:
    """Per question: hours to the first answer by someone other than the asker (null if none)."""
    q = dump["questions"].select(
        pl.col("Id").alias("q"), pl.col("OwnerUserId").alias("asker"), pl.col("at").alias("asked")
    )
    others = (
        dump["answers"]
        .join(q, on="q")
        .filter(
            pl.col("OwnerUserId").is_null() | pl.col("asker").is_null() | (pl.col("OwnerUserId") != pl.col("asker"))
        )
        .filter(pl.col("at") >= pl.col("asked"))
    )
    first = others.group_by("q").agg(pl.col("at").min().alias("first_answer"))
    return q.join(first, on="q", how="left").with_columns(
        hours=(pl.col("first_answer") - pl.col("asked")).dt.total_milliseconds() / 3_600_000
    )


def test_never_answered_and_median_time_to_first_answer(con, dump):
    first = _first_answers(dump)
    never = first.filter(pl.col("first_answer").is_null()).height
    median = first["hours"].median()
    mart = one(
        con,
        "select count(*) filter (where not is_answered), median(hours_to_first_answer), count(*) "
        "from marts.response_times",
    )
    assert mart == (never, pytest.approx(median), 254)
    assert never == 15  # of 254 questions, 15 never got an answer from another member
    assert round(median, 2) == 1.28  # hours
    slots = one(con, "select sum(never_answered), sum(threads) from marts.response_times_by_slot")
    assert slots == (15, 254)


# --------------------------------------------------------------------------- is engagement up or down


def test_dau_wau_mau_on_the_last_day(con, dump):
    days = pl.concat(
        [
            dump["posts"].select(pl.col("OwnerUserId").alias("user"), pl.col("at").dt.date().alias("day")),
            dump["comments"].select(pl.col("UserId").alias("user"), pl.col("at").dt.date().alias("day")),
            dump["votes"].select(pl.col("UserId").alias("user"), pl.col("at").dt.date().alias("day")),
        ]
    ).drop_nulls()
    last_day, dau, wau, mau, stickiness = one(
        con, "select day, dau, wau, mau, stickiness from marts.engagement_daily order by day desc limit 1"
    )

    def distinct_users(span_days: int) -> int:
        return days.filter(pl.col("day") > last_day - timedelta(days=span_days), pl.col("day") <= last_day)[
            "user"
        ].n_unique()

    assert (dau, wau, mau) == (distinct_users(1), distinct_users(7), distinct_users(30))
    assert str(last_day) == "2016-12-10"  # the slice's last record is a comment
    assert (dau, wau, mau) == (1, 6, 8)
    # a day with activity: 2016-12-08
    dec8 = one(con, "select dau, mau, stickiness from marts.engagement_daily where day = '2016-12-08'")
    users8 = days.filter(pl.col("day") == datetime(2016, 12, 8).date())["user"].n_unique()
    mau8 = days.filter(pl.col("day") > datetime(2016, 11, 8).date(), pl.col("day") <= datetime(2016, 12, 8).date())[
        "user"
    ].n_unique()
    assert dec8 == (users8, mau8, pytest.approx(users8 / mau8))
    assert stickiness == pytest.approx(1 / 8)


# --------------------------------------------------------------------------- what is trending


def test_this_weeks_hot_topics(con, dump):
    tags = dump["questions"].select(
        pl.col("Id").alias("q"), pl.col("Tags").str.strip_chars("<>|").str.split("><").alias("tags")
    )
    items = pl.concat(
        [
            dump["questions"].select(pl.col("Id").alias("q"), "at"),
            dump["answers"].select("q", "at"),
            dump["thread_comments"].select("q", "at"),
        ]
    )
    week = datetime(2016, 12, 5)
    volumes = (
        items.filter(pl.col("at") >= week, pl.col("at") < week + timedelta(days=7))
        .join(tags, on="q")
        .explode("tags")
        .group_by("tags")
        .len()
        .sort(["len", "tags"], descending=[True, False])
    )
    hot_expected = volumes.filter(pl.col("len") >= 3).head(10).rows()
    hot = con.execute(
        "select topic, volume from marts.trending_topics where period = 'week' and period_start = '2016-12-05' "
        "and is_hot order by volume_rank"
    ).fetchall()
    assert hot == hot_expected
    assert hot == [("ingredients", 7), ("spirits", 7)]  # ties by name
    emerging = [
        t
        for (t,) in con.execute(
            "select topic from marts.trending_topics where period = 'week' and period_start = '2016-12-05' "
            "and is_emerging order by rank"
        ).fetchall()
    ]
    assert emerging == ["ingredients", "spirits"]  # none of them in the 4 weeks before: z = volume


def test_hot_content_top_threads(con, dump):
    q = dump["questions"]
    replies = pl.concat([dump["answers"].select("q"), dump["thread_comments"].select("q")]).group_by("q").len()
    as_of = pl.concat([dump["posts"].select("at"), dump["comments"].select("at")])["at"].max()
    hot = (
        q.join(replies, left_on="Id", right_on="q", how="left")
        .with_columns(
            points=pl.col("Score").cast(pl.Int64).clip(lower_bound=0) + pl.col("len").fill_null(0),
            age=(pl.lit(as_of) - pl.col("at")).dt.total_milliseconds() / 3_600_000,
        )
        .with_columns(hot=pl.col("points") / (pl.col("age") + 2) ** 1.8)
        .sort("hot", descending=True)
    )
    top = con.execute("select content_id, hot_score from marts.hot_content order by rank limit 3").fetchall()
    assert [c for c, _ in top] == ["p" + i for i in hot["Id"].head(3).to_list()]
    assert top[0][1] == pytest.approx(hot["hot"][0])
    assert top[0][0] == "p6418"  # the St-Germain question, 46 h before the data's end


# --------------------------------------------------------------------------- when should I post


def test_best_time_to_post_ranking(con, dump):
    first = _first_answers(dump).select("q", "asker", "asked")
    window = timedelta(days=7)
    as_of = pl.concat([dump["posts"].select("at"), dump["comments"].select("at")])["at"].max()
    responses = (
        pl.concat(
            [
                dump["answers"].select("q", pl.col("OwnerUserId").alias("user"), "at"),
                dump["thread_comments"].select("q", pl.col("UserId").alias("user"), "at"),
            ]
        )
        .join(first, on="q")
        .filter(
            (pl.col("user").is_null() | pl.col("asker").is_null() | (pl.col("user") != pl.col("asker")))
            & (pl.col("at") >= pl.col("asked"))
            & (pl.col("at") <= pl.col("asked") + window)
        )
    )
    engagement = (
        first.filter(pl.col("asked") + window <= as_of)
        .join(responses.group_by("q").len(), on="q", how="left")
        .with_columns(e=pl.col("len").fill_null(0).cast(pl.Float64))
    )
    slots = (
        engagement.group_by(pl.col("asked").dt.weekday().alias("weekday"), pl.col("asked").dt.hour().alias("hour"))
        .agg(n=pl.len(), mean=pl.col("e").mean(), sd=pl.col("e").std())
        .filter(pl.col("n") >= 5)
        .with_columns(low=(pl.col("mean") - 1.959964 * pl.col("sd") / pl.col("n").sqrt()).clip(lower_bound=0))
        .sort(["low", "mean", "weekday", "hour"], descending=[True, True, False, False])
    )
    mart = con.execute(
        "select weekday, hour, posts, mean_engagement, engagement_ci_low from marts.best_time_to_post "
        "where rank is not null order by rank"
    ).fetchall()
    assert len(mart) == slots.height
    for got, want in zip(mart[:5], slots.head(5).rows(), strict=True):
        assert got[:3] == want[:3]
        assert got[3:] == (pytest.approx(want[3]), pytest.approx(want[5]))
    assert mart[0][:3] == (2, 21, 29)  # Tuesday 21:00 UTC: 29 questions, lower bound first
    assert not math.isnan(mart[0][4])


# --------------------------------------------------------------------------- README's figures (full dump)


@pytest.mark.full_data
def test_full_dump_figures_match_the_readme(full_beer_dump: Path):
    """README.md "Dashboards and marts" and transforms/README.md quote these for the whole dump."""
    con = _marts(full_beer_dump)
    try:
        busiest = one(
            con,
            "select weekday, hour, sum(events) from marts.activity_heatmap "
            "where activity_type in ('question', 'answer', 'comment') group by all "
            "order by 3 desc, weekday, hour limit 1",
        )
        response = one(
            con,
            "select count(*) filter (where not is_answered), round(median(hours_to_first_answer), 1), "
            "count(*) from marts.response_times",
        )
        last = one(con, "select day, dau, wau, mau from marts.engagement_daily order by day desc limit 1")
        dau_28 = one(
            con,
            "select round(avg(dau) filter (where day > ?), 1), round(avg(dau) filter (where day <= ? "
            "and day > ?), 1) from marts.engagement_daily",
            [last[0] - timedelta(days=28), last[0] - timedelta(days=28), last[0] - timedelta(days=56)],
        )
        week = (
            "select topic, volume from marts.trending_topics where period = 'week' and period_start = '2016-12-05' and "
        )
        hot = con.execute(week + "is_hot order by volume_rank").fetchall()
        emerging = [t for t, _ in con.execute(week + "is_emerging order by rank").fetchall()]
        best = con.execute(
            "select weekday, hour, posts, round(mean_engagement, 1) from marts.best_time_to_post "
            "where rank is not null order by rank limit 2"
        ).fetchall()
        top = one(con, "select content_id from marts.hot_content order by rank limit 1")
    finally:
        con.close()
    assert busiest == (2, 21, 110)  # Tuesday 21:00-22:00 UTC, 110 questions, answers and comments
    assert response == (24, 6.6, 591)  # 24 of 591 questions never answered, median first answer 6.6 h
    assert (str(last[0]), *last[1:]) == ("2016-12-11", 0, 11, 34)  # MAU 34 on the last day
    assert dau_28 == (2.3, 1.8)  # daily active members, the 28 days to 2016-12-11 against the 28 before
    assert hot[:2] == [("ingredients", 7), ("spirits", 7)]
    assert {t for t, v in hot[2:]} == {"cocktails", "pairing", "recommendations", "specialty-beers"}
    assert emerging == ["spirits", "cocktails", "pairing", "specialty-beers"]
    assert best == [
        (4, 14, 6, 4.3),
        (2, 20, 22, 3.5),
    ]  # Thursday 14:00 (6 questions, 4.3 responses); Tuesday 20:00 (22)
    assert top == ("p6418",)
