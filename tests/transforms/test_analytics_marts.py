"""Best time to post, response times by slot and trending's hot-versus-emerging split, on a
designed dataset whose answers were worked out by hand.

Two sources (both UTC, so local time = UTC):

* ``bt``: posts in four weekday-hour slots of January 2024 with a known number of responses
  each, one post whose window is still open, a late answer, a self-comment, an exact and a
  day-precision vote. Slot by slot (engagement = answers + comments by others + exact votes
  within 7 days):

  ========  =========================  ===========  ===========================================
  slot      posts                      engagement   notes
  ========  =========================  ===========  ===========================================
  Mon 09    bt1 01-01, bt2 01-08,      2, 4, 6      mean 4, sample sd 2; first responses after
            bt3 01-15                               1 h, 2 h, 3 h; bt1 = 1 answer + 1 exact vote
  Tue 18    bt4..bt7 (01-02 .. 01-23)  1, 1, 1, 1   one answer after 30 min each; sd 0
  Wed 12    bt8 01-03                  10           one post only: too little data
  Thu 20    bt9 01-04, bt10 01-11      0, 0         bt9's only answer comes 8 days later
  Wed 10    bt11 02-28                 (excluded)   window not complete at the data's end
  ========  =========================  ===========  ===========================================

  The data ends at 2024-03-01 00:00 (bt11's author commenting on it: not a response).

* ``trend``: one tagged question per item, weekly volumes over five weeks (W1 = 2024-01-01):
  stout 5,5,5,5 -> 6 (always big); ipa 4,4,4,4 -> 12 (big and rising); porter 2,2,2,2 -> 8 and
  sour 0,0,0,0 -> 4 (new growth); gose 0,1,0,1 -> 3 (noise); t01..t08 0 -> 3 (new, small).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from transforms.runner import run_marts
from warehouse.canonical import CONTENT_SCHEMA, ENGAGEMENT_SCHEMA, USERS_SCHEMA, core_schema
from warehouse.db import connect, migrate

Z = 1.959964  # the 97.5% standard normal quantile used by the marts


def _item(source, cid, kind, thread, author, at, tags=None, score=0):
    return {
        "source": source,
        "content_id": cid,
        "kind": kind,
        "thread_id": thread,
        "parent_id": None if thread == cid else thread,
        "author_id": author,
        "created_at": at,
        "edited_at": None,
        "title": f"title {cid}" if thread == cid else None,
        "body_text": f"body {cid}",
        "tags": tags or [],
        "score": score,
        "view_count": None,
        "content_hash": f"h_{source}_{cid}",
    }


def _bt_content() -> list[dict]:
    h = timedelta(hours=1)
    rows: list[dict] = []
    n = 0

    def post(cid, at, responses):
        """responses: list of (kind, hours after the post); responders are r1, r2, ..."""
        nonlocal n
        rows.append(_item("bt", cid, "question", cid, "asker", at, ["timing"]))
        for i, (kind, hours) in enumerate(responses):
            n += 1
            rows.append(_item("bt", f"{cid}_{kind[0]}{i}", kind, cid, f"r{i + 1}", at + hours * h))

    post("bt1", datetime(2024, 1, 1, 9), [("answer", 1)])  # + an exact upvote: engagement 2
    post("bt2", datetime(2024, 1, 8, 9), [("answer", 2), ("answer", 6), ("comment", 7), ("comment", 8)])
    post(
        "bt3",
        datetime(2024, 1, 15, 9),
        [("answer", 3), ("answer", 4), ("answer", 10), ("comment", 11), ("comment", 12), ("comment", 13)],
    )
    for day in (2, 9, 16, 23):
        post(f"bt{3 + (day + 5) // 7}", datetime(2024, 1, day, 18), [("answer", 0.5)])  # bt4..bt7
    post("bt8", datetime(2024, 1, 3, 12), [("comment", k) for k in range(1, 11)])
    post("bt9", datetime(2024, 1, 4, 20), [("answer", 8 * 24)])  # answered, but after the window
    post("bt10", datetime(2024, 1, 11, 20), [])
    post("bt11", datetime(2024, 2, 28, 10), [])
    rows.append(_item("bt", "bt11_self", "comment", "bt11", "asker", datetime(2024, 3, 1)))
    return rows


BT_EVENTS = [
    ("bt", "v1", "upvote", "bt1", "r9", datetime(2024, 1, 1, 12), "exact"),
    ("bt", "v2", "upvote", "bt2", None, datetime(2024, 1, 9), "day"),  # a date only: left out
]

TREND_WEEKLY = {
    "stout": [5, 5, 5, 5, 6],
    "ipa": [4, 4, 4, 4, 12],
    "porter": [2, 2, 2, 2, 8],
    "sour": [0, 0, 0, 0, 4],
    "gose": [0, 1, 0, 1, 3],
    **{f"t0{i}": [0, 0, 0, 0, 3] for i in range(1, 9)},
}


def _trend_content() -> list[dict]:
    rows = []
    for topic, weeks in TREND_WEEKLY.items():
        for week, volume in enumerate(weeks):
            for k in range(volume):  # Wednesdays at noon, a minute apart
                at = datetime(2024, 1, 3, 12) + timedelta(weeks=week, minutes=len(rows) % 60)
                rows.append(
                    _item(
                        "trend",
                        f"{topic}_w{week + 1}_{k}",
                        "question",
                        f"{topic}_w{week + 1}_{k}",
                        f"u{k}",
                        at,
                        [topic],
                    )
                )
    return rows


@pytest.fixture(scope="module")
def con():
    con = connect(":memory:")
    migrate(con)
    frames = {
        "staging.content": pl.DataFrame(_bt_content() + _trend_content(), schema=CONTENT_SCHEMA),
        "staging.engagement_events": pl.DataFrame(
            [dict(zip(core_schema("engagement_events"), r, strict=True)) for r in BT_EVENTS], schema=ENGAGEMENT_SCHEMA
        ),
        "staging.users": pl.DataFrame(schema=USERS_SCHEMA),
    }
    for table, df in frames.items():
        con.register("df", df)
        con.execute(f"insert into {table} by name select * from df")
        con.unregister("df")
    run_marts(con, min_posts=2)
    yield con
    con.close()


def _dicts(con, sql, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _slot(con, weekday, hour, table="best_time_to_post"):
    rows = _dicts(con, f"select * from marts.{table} where source = 'bt' and weekday = ? and hour = ?", [weekday, hour])
    assert len(rows) == 1
    return rows[0]


# --------------------------------------------------------------------------- best_time_to_post


def test_best_time_mean_engagement_and_confidence_interval(con):
    mon = _slot(con, 1, 9)
    assert (mon["posts"], mon["mean_engagement"], mon["engagement_sd"]) == (3, 4.0, 2.0)
    assert mon["engagement_ci_low"] == pytest.approx(4 - Z * 2 / math.sqrt(3))  # 1.7368
    assert mon["engagement_ci_high"] == pytest.approx(4 + Z * 2 / math.sqrt(3))
    assert (mon["mean_answers"], mon["mean_comments"], mon["mean_votes"]) == (
        pytest.approx(2.0),
        pytest.approx(5 / 3),
        pytest.approx(1 / 3),
    )
    # Wilson lower bound for 3 of 3: (1 + z²/6 - z·sqrt(z²/36)) / (1 + z²/3) = 1 / (1 + z²/3)
    assert (mon["responded"], mon["response_share"]) == (3, 1.0)
    assert mon["response_share_wilson_low"] == pytest.approx(1 / (1 + Z**2 / 3))  # 0.4385
    assert mon["median_hours_to_first_response"] == pytest.approx(2.0)
    assert (mon["weekday_name"], mon["timezone"], mon["is_sufficient"], mon["rank"]) == ("Mon", "UTC", True, 1)


def test_best_time_ranks_by_the_lower_bound_and_marks_thin_slots(con):
    ranked = _dicts(
        con,
        "select weekday, hour, posts, mean_engagement, engagement_ci_low, rank "
        "from marts.best_time_to_post where source = 'bt' and rank is not null order by rank",
    )
    assert [(r["weekday"], r["hour"], r["posts"], r["rank"]) for r in ranked] == [
        (1, 9, 3, 1),  # mean 4, lower bound 1.74
        (2, 18, 4, 2),  # mean 1, sd 0: lower bound 1.0
        (4, 20, 2, 3),  # nothing within the window: 0
    ]
    tue = _slot(con, 2, 18)
    assert (tue["engagement_ci_low"], tue["engagement_ci_high"]) == (1.0, 1.0)
    assert tue["response_share_wilson_low"] == pytest.approx(1 / (1 + Z**2 / 4))
    assert tue["median_hours_to_first_response"] == pytest.approx(0.5)
    thu = _slot(con, 4, 20)
    assert (thu["mean_engagement"], thu["engagement_ci_low"], thu["response_share"]) == (0.0, 0.0, 0.0)
    assert thu["response_share_wilson_low"] == pytest.approx(0.0, abs=1e-12)
    assert thu["median_hours_to_first_response"] == pytest.approx(192.0)  # the late answer, 8 days on
    # the highest mean of all, but one post is not evidence: not ranked, no interval
    wed = _slot(con, 3, 12)
    assert (wed["posts"], wed["mean_engagement"], wed["is_sufficient"], wed["rank"]) == (1, 10.0, False, None)
    assert wed["engagement_ci_low"] is None
    # bt11's 7-day window reaches past the data's end (03-01 00:00): it is not counted at all
    assert (_slot(con, 3, 10)["posts"], _slot(con, 3, 10)["mean_engagement"]) == (0, None)
    grid = con.execute("select count(*), sum(posts) from marts.best_time_to_post where source = 'bt'").fetchall()
    assert grid == [(168, 10)]


def test_best_time_default_support_ranks_nothing_this_thin():
    con = connect(":memory:")
    migrate(con)
    df = pl.DataFrame(_bt_content(), schema=CONTENT_SCHEMA)
    con.register("df", df)
    con.execute("insert into staging.content by name select * from df")
    run_marts(con)  # min_posts = 5
    assert con.execute(
        "select count(*) filter (where rank is not null), count(*) filter (where is_sufficient) "
        "from marts.best_time_to_post"
    ).fetchall() == [(0, 0)]


# --------------------------------------------------------------------------- response_times_by_slot


def test_response_times_by_slot_quantiles(con):
    mon = _slot(con, 1, 9, "response_times_by_slot")
    assert (mon["threads"], mon["answered"], mon["never_answered"], mon["never_answered_share"]) == (3, 3, 0, 0.0)
    # first answers after 1, 2, 3 h: median 2, p90 = 2 + 0.8 * (3 - 2) (linear interpolation)
    assert (mon["median_hours_to_first_answer"], mon["p90_hours_to_first_answer"]) == (
        pytest.approx(2.0),
        pytest.approx(2.8),
    )
    # first comments (bt2 after 7 h, bt3 after 11 h; bt1 has none): median 9, p90 7 + 0.9 * 4
    assert (mon["median_hours_to_first_comment"], mon["p90_hours_to_first_comment"]) == (
        pytest.approx(9.0),
        pytest.approx(10.6),
    )
    thu = _slot(con, 4, 20, "response_times_by_slot")
    assert (thu["threads"], thu["answered"], thu["never_answered"], thu["never_answered_share"]) == (2, 1, 1, 0.5)
    # bt11 (window still open) counts here: it has simply not been answered yet
    wed10 = _slot(con, 3, 10, "response_times_by_slot")
    assert (wed10["threads"], wed10["never_answered"], wed10["median_hours_to_first_response"]) == (1, 1, None)
    total = con.execute(
        "select sum(threads), sum(never_answered) from marts.response_times_by_slot where source = 'bt'"
    ).fetchall()
    assert total == [(11, 3)]  # bt8 (comments only), bt10, bt11 (its self-comment is no answer)


# --------------------------------------------------------------------------- trending: hot vs emerging


def _week5(con) -> dict[str, dict]:
    rows = _dicts(
        con,
        "select * from marts.trending_topics where source = 'trend' and period = 'week' "
        "and period_start = '2024-01-29'",
    )
    return {r["topic"]: r for r in rows}


def test_trending_separates_hot_from_emerging(con):
    w5 = _week5(con)
    flags = {t: (r["is_hot"], r["is_rising"], r["is_emerging"]) for t, r in w5.items()}
    assert flags == {
        "stout": (True, False, False),  # always big: z = 1 / sqrt(5 + 1) = 0.41
        "ipa": (True, True, False),  # big and rising: z = 8 / sqrt(4 + 1); baseline 4 >= support 3
        "porter": (True, True, True),  # new growth: z = 6 / sqrt(2 + 1), baseline 2 < 3
        "sour": (True, True, True),  # from nothing: z = 4
        "gose": (True, False, False),  # 0,1,0,1 -> 3: z = 2.5 / sqrt(0.25 + 0.5 + 1) = 1.89
        # t01..t08 (3 each) share volume 3 with gose; volume rank breaks ties by name, and only
        # the top 10 by volume are hot: gose 5th, t01..t05 6th-10th, t06..t08 11th-13th
        **{f"t0{i}": (i <= 5, True, True) for i in range(1, 9)},
    }
    assert w5["stout"]["z_score"] == pytest.approx(1 / math.sqrt(6))
    assert w5["ipa"]["z_score"] == pytest.approx(8 / math.sqrt(5))
    assert w5["porter"]["z_score"] == pytest.approx(6 / math.sqrt(3))
    assert w5["gose"]["z_score"] == pytest.approx(2.5 / math.sqrt(1.75))
    assert (w5["ipa"]["growth"], w5["sour"]["growth"]) == (pytest.approx(13 / 5), pytest.approx(5.0))
    assert [w5[t]["volume_rank"] for t in ("ipa", "porter", "stout", "sour", "gose", "t05", "t06")] == [
        1,
        2,
        3,
        4,
        5,
        10,
        11,
    ]
    # rank orders by surprise (z): sour 4.0 > ipa 3.58 > porter 3.46 > t01..t08 3.0 > gose > stout
    by_rank = sorted(w5.values(), key=lambda r: r["rank"])
    assert [r["topic"] for r in by_rank][:3] == ["sour", "ipa", "porter"]
    assert [r["topic"] for r in by_rank][-2:] == ["gose", "stout"]
    assert w5["sour"]["example_content_ids"] == ["sour_w5_0", "sour_w5_1", "sour_w5_2"]
    assert w5["sour"]["example_titles"] == ["title sour_w5_0", "title sour_w5_1", "title sour_w5_2"]


def test_trending_partial_periods(con):
    rows = con.execute(
        "select period_start, bool_and(is_partial) from marts.trending_topics "
        "where source = 'trend' and period = 'week' group by 1 order by 1"
    ).fetchall()
    # data from Wednesday 01-03 to Wednesday 01-31: the first and the last week are partial
    assert rows == [
        (date(2024, 1, 1), True),
        (date(2024, 1, 8), False),
        (date(2024, 1, 15), False),
        (date(2024, 1, 22), False),
        (date(2024, 1, 29), True),
    ]
    assert con.execute(
        "select count(*) from marts.trending_topics where source = 'trend' and period = 'day' and is_partial"
    ).fetchall() == [(0,)]


def test_trending_scales_without_a_dense_grid(con):
    # one row per topic and period with volume > 0: five Wednesdays, 13 topics, volumes as designed
    rows = con.execute(
        "select period, count(*), sum(volume) from marts.trending_topics where source = 'trend' group by 1 order by 1"
    ).fetchall()
    nonzero = sum(1 for weeks in TREND_WEEKLY.values() for v in weeks if v)
    total = sum(sum(weeks) for weeks in TREND_WEEKLY.values())
    assert rows == [("day", nonzero, total), ("week", nonzero, total)]


def test_days_and_weeks_use_the_same_formula(con):
    ipa = _dicts(
        con,
        "select * from marts.trending_topics where source = 'trend' and period = 'day' "
        "and topic = 'ipa' and period_start = '2024-01-31'",
    )[0]
    # 28 days back from 01-31 reach 01-03: ipa's four Wednesdays of 4 items, 24 empty days
    assert ipa["baseline_periods"] == 28
    mean, var = 16 / 28, 64 / 28 - (16 / 28) ** 2
    assert ipa["baseline_mean"] == pytest.approx(mean)
    assert ipa["z_score"] == pytest.approx((12 - mean) / math.sqrt(var + mean + 1))
    # per day, ipa's baseline (0.57 items/day) is below the support level (3 per period), so
    # at this grain its jump counts as new growth, unlike at the week grain
    assert (ipa["is_rising"], ipa["is_emerging"]) == (True, True)
