"""The marts, checked against values worked out by hand from a tiny hand-made warehouse.

Three sources share the warehouse:

* ``forum`` (Europe/Berlin): posts and replies around the 2024-03-31 DST change (CET, UTC+1,
  until 01:00 UTC; CEST, UTC+2, after), exact and day-precision events, users, flags.
* ``qa`` (no ops.sources row, so UTC): Stack-Exchange-like questions/answers/comments over five
  weeks (Mondays 2024-01-01 .. 2024-01-29) for trending topics.
* ``nyc`` (America/New_York): two posts five weeks apart and one day-precision vote, for the
  rule that day-precision events count on their UTC date, MAU drop-out, and a source without
  tags (its topics are YAKE keyphrases of the titles).

The analytics marts added later (response times, best time to post, hot content, the day
window of trending topics) have their own designed dataset in ``test_analytics_marts.py``.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from transforms import runner
from transforms.runner import MART_NAMES, run_marts
from warehouse.canonical import CONTENT_SCHEMA, ENGAGEMENT_SCHEMA, USERS_SCHEMA
from warehouse.db import connect, migrate

UTC = datetime  # timestamps below are naive UTC, as in staging


def _content(source, content_id, kind, thread_id, parent_id, author_id, created_at, tags=None, score=0, title=None):
    return {
        "source": source,
        "content_id": content_id,
        "kind": kind,
        "thread_id": thread_id,
        "parent_id": parent_id,
        "author_id": author_id,
        "created_at": created_at,
        "edited_at": None,
        "title": (title or f"title {content_id}") if parent_id is None else None,
        "body_text": f"body {content_id}",
        "tags": tags,
        "score": score,
        "view_count": None,
        "content_hash": f"h_{content_id}",
    }


CONTENT = [
    # forum, Europe/Berlin. Local times in comments.
    _content("forum", "f1", "post", "f1", None, "u1", UTC(2024, 3, 30, 0, 30), ["beer"], 5),  # Sat 03-30 01:30 CET
    _content("forum", "f2", "reply", "f1", "f1", "u2", UTC(2024, 3, 30, 22, 30)),  # Sat 03-30 23:30 CET
    _content("forum", "f3", "post", "f3", None, "u1", UTC(2024, 3, 31, 1, 30), ["cider"], 3),  # Sun 03-31 03:30 CEST
    _content("forum", "f4", "reply", "f3", "f3", "u3", UTC(2024, 3, 31, 22, 30)),  # Mon 04-01 00:30 CEST
    _content("forum", "f5", "post", "f5", None, "u2", UTC(2024, 4, 3, 10, 0), ["beer"], 1),  # Wed 04-03 12:00 CEST
    # qa, UTC. Weeks: W1 2024-01-01, W2 01-08, W3 01-15, W4 01-22, W5 01-29.
    _content("qa", "q1", "question", "q1", None, "a1", UTC(2024, 1, 2, 10), ["ipa"], 10),  # W1
    _content("qa", "pt1", "question", "pt1", None, "a1", UTC(2024, 1, 3, 12), ["porter"], 0),  # W1
    _content("qa", "q2", "question", "q2", None, "a1", UTC(2024, 1, 9, 10), ["ipa"], 1),  # W2
    _content("qa", "q3", "question", "q3", None, "a1", UTC(2024, 1, 16, 10), ["ipa"], 1),  # W3
    _content("qa", "q4", "question", "q4", None, "u2", UTC(2024, 1, 23, 10), ["ipa"], 1),  # W4
    # W5: ipa bursts to 6 items; answers/comments inherit the root's tags, their own are ignored
    _content("qa", "q5", "question", "q5", None, "a1", UTC(2024, 1, 29, 9), ["ipa"], 2),
    _content("qa", "q5a1", "answer", "q5", "q5", "a2", UTC(2024, 1, 29, 10), ["stout"], 0),
    _content("qa", "q5a2", "answer", "q5", "q5", "a2", UTC(2024, 1, 30, 10)),
    _content("qa", "q5c1", "comment", "q5", "q5", "a3", UTC(2024, 1, 30, 11)),
    _content("qa", "q1a1", "answer", "q1", "q1", "a2", UTC(2024, 1, 31, 10)),
    _content("qa", "q1a1c1", "comment", "q1", "q1a1", "a3", UTC(2024, 1, 31, 11)),
    # W5: a brand-new tag (sour), a tag with a little history (porter), a tag below min_support
    _content("qa", "s1", "question", "s1", None, "a1", UTC(2024, 2, 1, 10), ["sour"], 4),
    _content("qa", "s1a1", "answer", "s1", "s1", "a2", UTC(2024, 2, 2, 10)),
    _content("qa", "s1a2", "answer", "s1", "s1", "a3", UTC(2024, 2, 3, 10)),
    _content("qa", "pt2", "question", "pt2", None, "a1", UTC(2024, 2, 2, 8), ["porter"], 0),
    _content("qa", "pt2a1", "answer", "pt2", "pt2", "a2", UTC(2024, 2, 2, 9)),
    _content("qa", "pt2a2", "answer", "pt2", "pt2", "a3", UTC(2024, 2, 3, 9)),
    _content("qa", "l1", "question", "l1", None, "a1", UTC(2024, 2, 4, 23), ["lager"], 0),  # Sun, still W5
    _content("qa", "l1a1", "answer", "l1", "l1", "a1", UTC(2024, 2, 4, 23, 30)),  # a self-answer
    # nyc, America/New_York (EST, UTC-5); no tags anywhere, no score on n1 (net votes instead)
    _content(
        "nyc", "n1", "post", "n1", None, "v1", UTC(2024, 1, 10, 15), score=None, title="Citra hops in a pale ale"
    ),  # Wed 01-10 10:00
    _content(
        "nyc", "n2", "post", "n2", None, "v3", UTC(2024, 2, 15, 15), title="Dry hopping a lager with Citra hops"
    ),  # Thu 02-15 10:00
]

EVENTS = [
    # source, event_id, event_type, content_id, user_id, occurred_at (UTC), time_precision
    ("forum", "e1", "upvote", "f1", "u2", UTC(2024, 3, 30, 9, 0), "exact"),  # Sat 10:00 CET
    ("forum", "e2", "upvote", "f1", "u3", UTC(2024, 4, 6), "day"),  # UTC day 04-06
    ("forum", "e3", "downvote", "f3", None, UTC(2024, 4, 2), "day"),  # UTC day 04-02
    ("forum", "e4", "favorite", "f3", "u1", UTC(2024, 3, 31, 22, 45), "exact"),  # Mon 04-01 00:45 CEST
    ("forum", "e5", "accept", "f2", "u1", UTC(2024, 3, 30, 23, 10), "exact"),  # Sun 03-31 00:10 CET
    ("nyc", "nv1", "upvote", "n1", "v2", UTC(2024, 1, 11), "day"),  # UTC day 01-11 (local would be 01-10)
]

USERS = [
    ("forum", "u1", "Ann", UTC(2024, 3, 30, 0, 0), 10),  # local 03-30 01:00
    ("forum", "u2", "Bob", UTC(2024, 3, 30, 20, 0), 5),  # local 03-30 21:00
    ("forum", "u3", "Cem", UTC(2024, 3, 31, 22, 0), 1),  # local 04-01 00:00 (UTC date 03-31)
]

SOURCES = [
    ("forum", False, "Europe/Berlin", "hand-made forum"),
    ("nyc", False, "America/New_York", "hand-made forum in New York"),
]

LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit")
DETOX = "detoxify-original"
SCORES = [
    # content_hash, model_id, is_fallback, label scores
    ("h_f2", DETOX, False, (0.93, 0.10, 0.20, 0.01, 0.95, 0.02, 0.03)),
    ("h_f2", "lexical", True, (0.40, None, None, None, None, None, None)),
    ("h_f4", DETOX, False, (0.30, 0.01, 0.02, 0.60, 0.10, 0.01, 0.01)),
    ("h_f5", DETOX, False, (0.92, 0.05, 0.30, 0.01, 0.50, 0.02, 0.01)),
    ("h_f9", DETOX, False, (0.99, 0.90, 0.90, 0.90, 0.90, 0.90, 0.90)),
    ("h_q4", DETOX, False, (0.80, 0.02, 0.10, 0.01, 0.30, 0.01, 0.01)),
]
FLAGS = [
    # source, content_id, model_id, flagged_labels, max_label, max_score, severity, hold
    ("forum", "f2", DETOX, ["toxicity", "insult"], "insult", 0.95, 0.9, True),
    ("forum", "f5", DETOX, ["toxicity"], "toxicity", 0.92, 0.9, False),
    ("forum", "f4", DETOX, ["threat"], "threat", 0.60, 0.5, False),
    ("forum", "f9", DETOX, ["toxicity", "threat"], "toxicity", 0.99, 0.99, True),  # content deleted
    ("qa", "q4", DETOX, ["toxicity"], "toxicity", 0.80, 0.7, False),  # author "u2" of source qa
]


def _frames(reverse: bool = False) -> dict[str, pl.DataFrame]:
    order = (lambda rows: list(reversed(rows))) if reverse else list
    event_cols = list(ENGAGEMENT_SCHEMA)
    user_cols = list(USERS_SCHEMA)
    return {
        "staging.content": pl.DataFrame(order(CONTENT), schema=CONTENT_SCHEMA),
        "staging.engagement_events": pl.DataFrame(
            [dict(zip(event_cols, r, strict=False)) for r in order(EVENTS)], schema=ENGAGEMENT_SCHEMA
        ),
        "staging.users": pl.DataFrame(
            [dict(zip(user_cols, r, strict=False)) for r in order(USERS)], schema=USERS_SCHEMA
        ),
        "ops.sources": pl.DataFrame(
            order(SOURCES), schema=["source", "synthetic", "timezone", "description"], orient="row"
        ),
        "moderation.scores": pl.DataFrame(
            [
                {
                    "content_hash": h,
                    "model_id": m,
                    "model_version": "1",
                    "is_fallback": fb,
                    "backend": "lexical" if fb else "detoxify",
                    "scored_at": UTC(2024, 5, 1),
                    **dict(zip(LABELS, s, strict=False)),
                }
                for h, m, fb, s in order(SCORES)
            ],
            schema_overrides={label: pl.Float64 for label in LABELS},
        ),
        "moderation.flags": pl.DataFrame(
            [
                {
                    "source": s,
                    "content_id": c,
                    "content_hash": f"h_{c}",
                    "model_id": m,
                    "flagged_labels": fl,
                    "max_label": ml,
                    "max_score": ms,
                    "severity": sev,
                    "hold": hold,
                    "thresholds_json": "{}",
                }
                for s, c, m, fl, ml, ms, sev, hold in order(FLAGS)
            ]
        ),
    }


def _load(con: duckdb.DuckDBPyConnection, *, reverse: bool = False) -> None:
    for table, df in _frames(reverse).items():
        con.register("df", df)
        con.execute(f"insert into {table} by name select * from df")
        con.unregister("df")


def _new_warehouse(*, reverse: bool = False) -> duckdb.DuckDBPyConnection:
    con = connect(":memory:")
    migrate(con)
    # Pseudonyms (hot_content, response_times authors) come from the privacy key, kept outside the
    # data files (warehouse.privacy_keys): the same for both warehouses of a process, so they compare.
    _load(con, reverse=reverse)
    return con


@pytest.fixture(scope="module")
def built() -> tuple[duckdb.DuckDBPyConnection, dict[str, int]]:
    """The hand-made warehouse with its marts built once (read-only use in tests)."""
    con = _new_warehouse()
    counts = run_marts(con)
    yield con, counts
    con.close()


@pytest.fixture
def con(built):
    return built[0]


def _rows(con, sql, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def _dicts(con, sql, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]


# --------------------------------------------------------------------------- runner


def test_run_marts_returns_row_counts_in_order(built):
    con, counts = built
    # derived from the models: each batch of marts whose inputs are built, in name order
    assert (
        list(counts)
        == list(MART_NAMES)
        == [
            "activity_timeline",
            "moderation_queue",
            "response_times",
            "thread_topics",
            "activity_heatmap",
            "engagement_daily",
            "hot_content",
            "response_times_by_slot",
            "trending_topics",
            "best_time_to_post",
        ]
    )
    for name, n in counts.items():
        assert n == _rows(con, f"select count(*) from marts.{name}")[0][0]
    # heatmap: forum has 5 activity types, qa 3 (question, answer, comment), nyc 1 (post): 9 grids
    assert counts["activity_heatmap"] == 9 * 7 * 24
    # engagement_daily: forum 03-30..04-06 (8), qa 01-02..02-04 (34), nyc 01-10..02-15 (37)
    assert counts["engagement_daily"] == 8 + 34 + 37
    assert counts["moderation_queue"] == 4
    # one row per thread root of kind question/post: forum 3, qa 9, nyc 2
    assert counts["response_times"] == counts["hot_content"] == 3 + 9 + 2
    # full 7 x 24 grids for the three sources with threads
    assert counts["response_times_by_slot"] == counts["best_time_to_post"] == 3 * 168


def test_run_marts_logs_a_line_per_mart(caplog):
    con = _new_warehouse()
    with caplog.at_level("INFO", logger="transforms.runner"):
        counts = run_marts(con)
    for name, n in counts.items():
        assert any(f"marts.{name}: {n} rows" in r.getMessage() for r in caplog.records), name


def test_models_follow_the_cte_convention():
    files = sorted(p.stem for p in runner.MODELS_DIR.glob("*.sql"))
    assert files == sorted(set(MART_NAMES) - set(runner.PYTHON_MODELS))
    assert set(runner.PYTHON_MODELS) == {"thread_topics"}
    for name in files:
        sql = runner.model_sql(name)
        assert re.search(r"^with\b", sql, re.MULTILINE), name
        assert sql.rstrip().endswith("select * from final"), name


def test_readme_documents_every_mart_column(con):
    readme = (Path(runner.__file__).parent / "README.md").read_text(encoding="utf-8")
    for name in MART_NAMES:
        assert f"marts.{name}" in readme
        for (column,) in _rows(
            con,
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = ? order by ordinal_position",
            [name],
        ):
            assert f"`{column}`" in readme, f"{name}.{column} undocumented"


def test_rerun_and_reversed_load_give_identical_marts(built):
    con, _ = built
    before = {n: _rows(con, f"select * from marts.{n} order by all") for n in MART_NAMES}
    other = _new_warehouse(reverse=True)
    run_marts(other)
    run_marts(other)
    for name in MART_NAMES:
        assert _rows(other, f"select * from marts.{name} order by all") == before[name], name
    other.close()


def test_a_failing_model_rolls_back_every_mart(monkeypatch):
    con = _new_warehouse()
    run_marts(con)
    before = _rows(con, "select * from marts.activity_heatmap order by all")
    # new staging data, then a broken last model: nothing of this run may stay
    con.execute(
        "insert into staging.content by name select 'forum' as source, 'f6' as content_id, "
        "'post' as kind, timestamp '2024-04-03 11:00' as created_at, 'h_f6' as content_hash"
    )
    real = runner.model_sql
    monkeypatch.setattr(
        runner, "model_sql", lambda name: "select * from no_such_table" if name == "moderation_queue" else real(name)
    )
    with pytest.raises(duckdb.CatalogException):
        run_marts(con)
    assert _rows(con, "select * from marts.activity_heatmap order by all") == before
    monkeypatch.undo()
    run_marts(con)
    assert _rows(con, "select * from marts.activity_heatmap order by all") != before


@pytest.mark.parametrize("tz", ["Mars/Olympus", "CET+1", "UTC'); drop table staging.content; --"])
def test_invalid_timezone_is_rejected_before_anything_is_written(tz):
    con = _new_warehouse()
    con.execute("update ops.sources set timezone = ? where source = 'forum'", [tz])
    with pytest.raises(ValueError, match="IANA"):
        run_marts(con)
    assert _rows(con, "select count(*) from information_schema.tables where table_schema = 'marts'") == [(0,)]
    assert _rows(con, "select count(*) from staging.content") == [(len(CONTENT),)]


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("min_support", 0, ValueError),
        ("min_support", "3", TypeError),
        ("min_support", True, TypeError),
        ("window_days", 0, ValueError),
        ("window_days", 1.5, TypeError),
        ("min_posts", 1, ValueError),
        ("min_posts", None, TypeError),
    ],
)
def test_parameters_are_validated(name, value, error):
    con = _new_warehouse()
    with pytest.raises(error, match=name):
        run_marts(con, **{name: value})
    assert _rows(con, "select count(*) from information_schema.tables where table_schema = 'marts'") == [(0,)]


# --------------------------------------------------------------------------- activity_heatmap


def _cells(con, source, activity_type):
    return {
        (wd, h): n
        for wd, h, n in _rows(
            con,
            "select weekday, hour, events from marts.activity_heatmap "
            "where source = ? and activity_type = ? and events > 0",
            [source, activity_type],
        )
    }


def test_heatmap_cells_are_local_and_dst_correct(con):
    # f1 00:30 UTC Sat 03-30 is 01:30 CET; f3 01:30 UTC Sun 03-31 is 03:30 CEST (02:xx does not exist)
    assert _cells(con, "forum", "post") == {(6, 1): 1, (7, 3): 1, (3, 12): 1}
    # f2 22:30 UTC Sat -> 23:30 Sat CET; f4 22:30 UTC Sun -> 00:30 Mon CEST
    assert _cells(con, "forum", "reply") == {(6, 23): 1, (1, 0): 1}
    assert _cells(con, "forum", "accept") == {(7, 0): 1}  # 23:10 UTC Sat -> 00:10 Sun CET
    assert _cells(con, "forum", "favorite") == {(1, 0): 1}  # 22:45 UTC Sun -> 00:45 Mon CEST
    assert _cells(con, "nyc", "post") == {(3, 10): 1, (4, 10): 1}  # 15:00 UTC -> 10:00 EST
    row = _dicts(
        con,
        "select * from marts.activity_heatmap where source = 'forum' "
        "and activity_type = 'post' and weekday = 7 and hour = 3",
    )[0]
    assert row["weekday_name"] == "Sun"
    assert row["timezone"] == "Europe/Berlin"
    assert _rows(con, "select distinct timezone from marts.activity_heatmap where source = 'qa'") == [("UTC",)]


def test_heatmap_grid_is_full_and_sums_to_hour_precise_counts(con):
    got = {
        (s, t): (n, total)
        for s, t, n, total in _rows(
            con, "select source, activity_type, count(*), sum(events) from marts.activity_heatmap group by all"
        )
    }
    assert got == {
        ("forum", "post"): (168, 3),
        ("forum", "reply"): (168, 2),
        ("forum", "upvote"): (168, 1),  # e2 is day-precision: excluded
        ("forum", "favorite"): (168, 1),
        ("forum", "accept"): (168, 1),
        # forum's downvote e3 is day-precision only: no grid at all
        ("qa", "question"): (168, 9),
        ("qa", "answer"): (168, 8),
        ("qa", "comment"): (168, 2),
        ("nyc", "post"): (168, 2),  # nyc's only vote is day-precision
    }
    assert _rows(
        con,
        "select count(distinct (weekday, hour)), min(weekday), max(weekday), min(hour), max(hour) "
        "from marts.activity_heatmap",
    ) == [(168, 1, 7, 0, 23)]


def test_heatmap_weeks_observed_and_mean_per_week(con):
    # forum hour-precise activity spans local dates 03-30 .. 04-03 (the day votes up to 04-06 do not count)
    rows = _rows(con, "select distinct weeks_observed from marts.activity_heatmap where source = 'forum'")
    assert rows == [(pytest.approx(5 / 7),)]
    (mean,) = _rows(
        con,
        "select mean_per_week from marts.activity_heatmap where source = 'forum' "
        "and activity_type = 'post' and weekday = 6 and hour = 1",
    )[0]
    assert mean == pytest.approx(1.4)  # 1 event / (5/7 weeks)
    # qa: 2024-01-02 .. 2024-02-04 is 34 days
    assert _rows(con, "select distinct weeks_observed from marts.activity_heatmap where source = 'qa'") == [
        (pytest.approx(34 / 7),)
    ]


# --------------------------------------------------------------------------- engagement_daily

DAILY_COLUMNS = (
    "active_users",
    "new_users",
    "new_content",
    "posts",
    "replies",
    "upvotes",
    "downvotes",
    "favorites",
    "accepts",
    "votes",
    "events",
)


def test_engagement_daily_forum_by_hand(con):
    got = {
        r["day"]: tuple(r[c] for c in DAILY_COLUMNS)
        for r in _dicts(con, "select * from marts.engagement_daily where source = 'forum'")
    }
    assert got == {
        #                  active new  content posts replies up down fav acc votes events
        date(2024, 3, 30): (2, 2, 2, 1, 1, 1, 0, 0, 0, 1, 1),  # u1 (f1) and u2 (f2 and e1) once each
        date(2024, 3, 31): (1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1),  # u1 wrote f3 and accepted (e5, 00:10 local)
        date(2024, 4, 1): (2, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1),  # local date, though UTC is still 03-31
        date(2024, 4, 2): (0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1),  # anonymous day-precision downvote
        date(2024, 4, 3): (1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0),
        date(2024, 4, 4): (0,) * 11,  # zero-filled
        date(2024, 4, 5): (0,) * 11,
        date(2024, 4, 6): (1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1),  # day-precision upvote, UTC date
    }


def test_engagement_daily_day_precision_counts_on_utc_date(con):
    got = _rows(
        con,
        "select day, new_content, upvotes, active_users from marts.engagement_daily "
        "where source = 'nyc' and day <= '2024-01-11' order by day",
    )
    # the vote at 2024-01-11 (UTC day) would be 01-10 19:00 in New York if converted
    assert got == [(date(2024, 1, 10), 1, 0, 1), (date(2024, 1, 11), 0, 1, 1)]


def test_engagement_daily_qa_kinds_and_zero_days(con):
    got = _rows(
        con,
        "select sum(questions), sum(answers), sum(comments), count(*), "
        "count(*) filter (where new_content = 0) from marts.engagement_daily where source = 'qa'",
    )
    assert got == [(9, 8, 2, 34, 34 - 12)]  # 19 items on 12 distinct days
    # 2024-01-29: q5 (a1) and q5a1 (a2)
    assert _rows(
        con,
        "select active_users, questions, answers from marts.engagement_daily "
        "where source = 'qa' and day = '2024-01-29'",
    ) == [(2, 1, 1)]


# --------------------------------------------------------------------------- trending_topics


def _topic(con, source, week, topic, period="week"):
    rows = _dicts(
        con,
        "select * from marts.trending_topics where source = ? and period = ? and period_start = ? and topic = ?",
        [source, period, week, topic],
    )
    assert len(rows) == 1, rows
    return rows[0]


def test_trending_burst_by_hand(con):
    ipa = _topic(con, "qa", date(2024, 1, 29), "ipa")
    # W5: q5, q5a1, q5a2, q5c1 (thread q5) + q1a1, q1a1c1 (thread q1) = 6; W1..W4: 1 each
    assert ipa["volume"] == 6
    assert ipa["baseline_periods"] == 4
    assert ipa["baseline_mean"] == pytest.approx(1.0)
    assert ipa["baseline_std"] == pytest.approx(0.0)
    assert ipa["z_score"] == pytest.approx((6 - 1) / math.sqrt(0 + 1 + 1))  # 3.5355
    assert ipa["growth"] == pytest.approx((6 + 1) / (1 + 1))
    # rising (z >= 2 on a full baseline) from 1/week, below min_support 3: new growth, emerging
    assert (ipa["is_rising"], ipa["is_emerging"], ipa["is_hot"]) == (True, True, True)
    assert (ipa["volume_rank"], ipa["rank"], ipa["is_partial"]) == (1, 1, False)
    assert ipa["topic_origin"] == "tag"
    assert (ipa["period_end"], ipa["week_start"]) == (date(2024, 2, 4), date(2024, 1, 29))
    assert ipa["example_content_ids"] == ["q1", "q5"]  # root scores 10 > 2
    assert ipa["example_titles"] == ["title q1", "title q5"]


def test_trending_emerging_and_zero_weeks_in_baseline(con):
    sour = _topic(con, "qa", date(2024, 1, 29), "sour")
    assert (sour["volume"], sour["baseline_mean"], sour["baseline_std"]) == (3, 0.0, 0.0)
    assert sour["z_score"] == pytest.approx(3.0)  # (3 - 0) / sqrt(0 + 0 + 1)
    assert (sour["is_emerging"], sour["is_rising"], sour["rank"]) == (True, True, 2)
    assert sour["example_content_ids"] == ["s1"]

    porter = _topic(con, "qa", date(2024, 1, 29), "porter")
    # baseline W1..W4 = [1, 0, 0, 0]: mean 0.25, population variance 0.1875
    assert porter["volume"] == 3
    assert porter["baseline_mean"] == pytest.approx(0.25)
    assert porter["baseline_std"] == pytest.approx(math.sqrt(0.1875))
    assert porter["z_score"] == pytest.approx(2.75 / math.sqrt(0.1875 + 0.25 + 1))  # 2.2937
    assert (porter["is_emerging"], porter["is_rising"], porter["rank"]) == (True, True, 3)

    lager = _topic(con, "qa", date(2024, 1, 29), "lager")  # l1 + its self-answer: 2 < min_support 3
    assert lager["z_score"] == pytest.approx(2.0)
    assert (lager["is_emerging"], lager["is_rising"], lager["is_hot"], lager["rank"]) == (False, False, False, None)


def test_trending_rows_only_for_volume_and_root_tags(con):
    got = _rows(
        con,
        "select period_start, topic, volume, baseline_periods, z_score from marts.trending_topics "
        "where source = 'qa' and period = 'week' order by period_start, topic",
    )
    w = [date(2024, 1, d) for d in (1, 8, 15, 22, 29)]
    assert got == [
        (w[0], "ipa", 1, 0, 1.0),  # the source's first week: empty baseline taken as 0
        (w[0], "porter", 1, 0, 1.0),
        (w[1], "ipa", 1, 1, 0.0),
        (w[2], "ipa", 1, 2, 0.0),
        (w[3], "ipa", 1, 3, 0.0),
        (w[4], "ipa", 6, 4, pytest.approx(5 / math.sqrt(2))),
        (w[4], "lager", 2, 4, pytest.approx(2.0)),
        (w[4], "porter", 3, 4, pytest.approx(2.75 / math.sqrt(1.4375))),
        (w[4], "sour", 3, 4, pytest.approx(3.0)),
    ]  # no "stout": it is only an answer's own tag, and answers take their thread's tags


def test_trending_weeks_are_local_mondays(con):
    got = _rows(
        con,
        "select period_start, topic, volume from marts.trending_topics "
        "where source = 'forum' and period = 'week' order by period_start, topic",
    )
    # f4 (reply in f3's cider thread) is Mon 04-01 00:30 in Berlin, still Sunday 03-31 in UTC
    assert got == [
        (date(2024, 3, 25), "beer", 2),  # f1 + reply f2
        (date(2024, 3, 25), "cider", 1),  # f3
        (date(2024, 4, 1), "beer", 1),  # f5
        (date(2024, 4, 1), "cider", 1),  # f4 inherits cider
    ]


def test_trending_min_support_is_bound():
    con = _new_warehouse()
    run_marts(con, min_support=7)
    got = _rows(
        con,
        "select count(*) filter (where rank is not null), "
        "count(*) filter (where is_rising or is_emerging or is_hot) from marts.trending_topics",
    )
    assert got == [(0, 0)]
    run_marts(con, min_support=6)
    assert _rows(
        con, "select period, topic, rank, is_rising, is_hot from marts.trending_topics where rank is not null"
    ) == [("week", "ipa", 1, True, True)]


# --------------------------------------------------------------------------- moderation_queue


def test_moderation_queue_priority_and_prior_flags(con):
    got = _rows(
        con,
        "select priority, source, content_id, author_id, author_name, author_prior_flags, round(priority_score, 4) "
        "from marts.moderation_queue order by priority",
    )
    # priority_score = 4 model + 2 reports + 2 history + 1 reach + 1 age (moderation.policy), with
    # model = min(severity, 2) / 2, history = min(flags + 2 removals, 10) / 10, age = min(hours, 72) / 72
    assert got == [
        (1, "forum", "f2", "u2", "Bob", 0, 2.9502),  # 4 x 0.45 + reach 0.1502 (1 reply) + age 1 (83.5 h)
        (2, "qa", "q4", "u2", None, 0, 2.4),  # 4 x 0.35 + age 1; qa's "u2" is another person: f2/f5 do not count
        (3, "forum", "f5", "u2", "Bob", 1, 2.0),  # 4 x 0.45 + 2 x 0.1 (f2 is a prior flag); age 0: the latest item
        (4, "forum", "f4", "u3", "Cem", 0, 1.8264),  # 4 x 0.25 + age 59.5 / 72
    ]  # f9 is flagged but its content is gone


def test_moderation_queue_uses_the_flags_model_scores(con):
    row = _dicts(con, "select * from marts.moderation_queue where content_id = 'f2'")[0]
    assert row["model_id"] == DETOX
    assert row["is_fallback"] is False
    assert (row["toxicity"], row["insult"], row["threat"]) == (0.93, 0.95, 0.01)  # not the lexical 0.40
    assert row["flagged_labels"] == ["toxicity", "insult"]
    assert (row["max_label"], row["max_score"], row["severity"], row["hold"]) == ("insult", 0.95, 0.9, True)
    assert (row["kind"], row["thread_id"], row["parent_id"]) == ("reply", "f1", "f1")
    assert row["created_at"] == UTC(2024, 3, 30, 22, 30)


def test_trending_first_week_of_a_source_is_ranked_not_flagged():
    con = _new_warehouse()
    run_marts(con, min_support=2)
    beer = _topic(con, "forum", date(2024, 3, 25), "beer")  # the forum's first week: f1 + reply f2
    assert (beer["baseline_periods"], beer["baseline_mean"], beer["baseline_std"]) == (0, 0.0, 0.0)
    assert beer["z_score"] == pytest.approx(2.0)  # (2 - 0) / sqrt(0 + 0 + 1)
    # ranked, but not rising: there is no history to emerge from yet (hot is about volume only)
    assert (beer["is_emerging"], beer["is_rising"], beer["is_hot"], beer["rank"]) == (False, False, True, 1)
    # the forum's first week starts on Monday 03-25, its first item is on Saturday 03-30
    assert beer["is_partial"] is True
    assert beer["example_content_ids"] == ["f1"]


def test_run_marts_leaves_the_connection_usable():
    con = _new_warehouse()
    run_marts(con)
    # DuckDB 2.0: a partly fetched execute() result would make con.sql(...) raise
    assert con.sql("select count(*) from marts.moderation_queue").fetchall() == [(4,)]
    run_marts(con)  # and no transaction is left open


# --------------------------------------------------------------------------- engagement_daily: DAU/WAU/MAU


def test_dau_wau_mau_and_stickiness_by_hand(con):
    got = {
        day: (dau, wau, mau, stickiness)
        for day, dau, wau, mau, stickiness in _rows(
            con, "select day, dau, wau, mau, stickiness from marts.engagement_daily where source = 'forum'"
        )
    }
    # active: 03-30 {u1, u2}, 03-31 {u1}, 04-01 {u1, u3}, 04-02 {} (anonymous vote), 04-03 {u2},
    # 04-06 {u3} (a day-precision vote, on its UTC date). Everything lies within 7 days.
    assert got == {
        date(2024, 3, 30): (2, 2, 2, 1.0),
        date(2024, 3, 31): (1, 2, 2, 0.5),
        date(2024, 4, 1): (2, 3, 3, pytest.approx(2 / 3)),
        date(2024, 4, 2): (0, 3, 3, 0.0),
        date(2024, 4, 3): (1, 3, 3, pytest.approx(1 / 3)),
        date(2024, 4, 4): (0, 3, 3, 0.0),
        date(2024, 4, 5): (0, 3, 3, 0.0),
        date(2024, 4, 6): (1, 3, 3, pytest.approx(1 / 3)),  # 03-31..04-06: u1, u2 (04-03), u3
    }
    assert _rows(con, "select count(*) from marts.engagement_daily where dau <> active_users") == [(0,)]


def test_wau_and_mau_let_users_drop_out(con):
    def at(source, day):
        return _rows(
            con, "select wau, mau, stickiness from marts.engagement_daily where source = ? and day = ?", [source, day]
        )[0]

    # qa: u2 posted only on 01-23; a1 on 01-16 and again 01-29; a2, a3 from 01-29
    assert at("qa", date(2024, 1, 22))[:2] == (1, 1)  # 01-16..01-22: a1
    assert at("qa", date(2024, 1, 23))[:2] == (1, 2)  # a1 (01-16) left the 7 days as u2 arrived
    assert at("qa", date(2024, 1, 29))[:2] == (3, 3)  # u2, a1, a2
    assert at("qa", date(2024, 1, 30))[:2] == (3, 4)  # u2 left the 7 days, a3 arrived; 30 days hold all four
    # nyc: v1 active 01-10, v2 01-11 (a day-precision vote), v3 02-15
    assert at("nyc", date(2024, 1, 16))[:2] == (2, 2)
    assert at("nyc", date(2024, 1, 17))[:2] == (1, 2)  # v1's 7-day window ended on 01-16
    assert at("nyc", date(2024, 1, 18))[:2] == (0, 2)
    assert at("nyc", date(2024, 2, 8)) == (0, 2, 0.0)  # 01-10..02-08 still holds v1 and v2
    assert at("nyc", date(2024, 2, 9)) == (0, 1, 0.0)  # v1 dropped out of the 30 days
    assert at("nyc", date(2024, 2, 10)) == (0, 0, None)  # nobody: stickiness undefined
    assert at("nyc", date(2024, 2, 15)) == (1, 1, 1.0)


def test_response_rate_per_day(con):
    got = _rows(
        con,
        "select day, new_threads, threads_responded, response_rate, response_window_complete "
        "from marts.engagement_daily where source = 'forum' and new_threads > 0 order by day",
    )
    # f1 (03-30) answered by u2 after 22 h, f3 (03-31, local) by u3 after 21 h, f5 (04-03) never;
    # the data end (04-03 12:00 local) is less than 7 + 1 days after any of them: windows incomplete
    assert got == [
        (date(2024, 3, 30), 1, 1, 1.0, False),
        (date(2024, 3, 31), 1, 1, 1.0, False),
        (date(2024, 4, 3), 1, 0, 0.0, False),
    ]
    qa = _rows(
        con,
        "select day, new_threads, threads_responded, response_rate, response_window_complete "
        "from marts.engagement_daily where source = 'qa' and day in ('2024-01-02', '2024-01-27', "
        "'2024-01-28', '2024-01-29') order by day",
    )
    assert qa == [
        (date(2024, 1, 2), 1, 0, 0.0, True),  # q1's first answer came 29 days later
        (date(2024, 1, 27), 0, 0, None, True),  # 01-27 + 8 days <= 02-04 (the data's last day)
        (date(2024, 1, 28), 0, 0, None, False),
        (date(2024, 1, 29), 1, 1, 1.0, False),  # q5: answered after 1 h
    ]


# --------------------------------------------------------------------------- response_times


def test_response_times_by_hand(con):
    got = {
        r["content_id"]: (
            r["hours_to_first_answer"],
            r["hours_to_first_comment"],
            r["hours_to_first_response"],
            r["answers"],
            r["comments"],
            r["is_answered"],
            r["answers_within"],
            r["comments_within"],
            r["engagement_within"],
            r["responded_within"],
            r["window_complete"],
        )
        for r in _dicts(con, "select * from marts.response_times where source = 'qa'")
    }
    assert got == {
        # q1: answer q1a1 and its comment 29 days later (696 h, 697 h): outside the 7-day window
        "q1": (696.0, 697.0, 696.0, 1, 1, True, 0, 0, 0, False, True),
        "pt1": (None, None, None, 0, 0, False, 0, 0, 0, False, True),
        "q2": (None, None, None, 0, 0, False, 0, 0, 0, False, True),
        "q3": (None, None, None, 0, 0, False, 0, 0, 0, False, True),
        "q4": (None, None, None, 0, 0, False, 0, 0, 0, False, True),
        # q5 at 01-29 09:00: answers after 1 h and 25 h, a comment after 26 h; 01-29 09:00 + 7 days
        # is after the data's end (02-04 23:30): its window is incomplete
        "q5": (1.0, 26.0, 1.0, 2, 1, True, 2, 1, 3, True, False),
        "s1": (24.0, None, 24.0, 2, 0, True, 2, 0, 2, True, False),
        "pt2": (1.0, None, 1.0, 2, 0, True, 2, 0, 2, True, False),
        # l1 has only its author's own answer: never answered by another member
        "l1": (None, None, None, 0, 0, False, 0, 0, 0, False, False),
    }
    assert _rows(
        con, "select count(*) filter (where not is_answered), count(*) from marts.response_times where source = 'qa'"
    ) == [(5, 9)]
    assert _rows(con, "select distinct as_of from marts.response_times where source = 'qa'") == [
        (UTC(2024, 2, 4, 23, 30),)
    ]


def test_response_times_local_slot_across_dst_and_exact_votes_only(con):
    got = {
        r["content_id"]: (r["created_local"], r["weekday"], r["hour"], r["hours_to_first_response"], r["votes_within"])
        for r in _dicts(con, "select * from marts.response_times where source = 'forum'")
    }
    assert got == {
        "f1": (UTC(2024, 3, 30, 1, 30), 6, 1, 22.0, 1),  # CET; e1 is an exact upvote 8.5 h later
        "f3": (UTC(2024, 3, 31, 3, 30), 7, 3, 21.0, 0),  # CEST, after the change; e3 is day-precision
        "f5": (UTC(2024, 4, 3, 12, 0), 3, 12, None, 0),
    }


def test_response_times_by_slot(con):
    rows = _dicts(
        con, "select * from marts.response_times_by_slot where source = 'qa' and threads > 0 order by weekday, hour"
    )
    got = {
        (r["weekday"], r["hour"]): (
            r["threads"],
            r["answered"],
            r["never_answered"],
            r["never_answered_share"],
            r["median_hours_to_first_answer"],
            r["p90_hours_to_first_answer"],
        )
        for r in rows
    }
    assert got == {
        (1, 9): (1, 1, 0, 0.0, 1.0, 1.0),  # q5
        (2, 10): (4, 1, 3, 0.75, 696.0, 696.0),  # q1, q2, q3, q4
        (3, 12): (1, 0, 1, 1.0, None, None),  # pt1
        (4, 10): (1, 1, 0, 0.0, 24.0, 24.0),  # s1
        (5, 8): (1, 1, 0, 0.0, 1.0, 1.0),  # pt2
        (7, 23): (1, 0, 1, 1.0, None, None),  # l1
    }
    assert _rows(con, "select count(*), sum(threads) from marts.response_times_by_slot where source = 'qa'") == [
        (168, 9)
    ]


# --------------------------------------------------------------------------- hot_content


def test_hot_content_gravity_by_hand(con):
    rows = _dicts(con, "select * from marts.hot_content where source = 'qa' order by rank")
    order = [r["content_id"] for r in rows]
    assert order == ["l1", "s1", "pt2", "q5", "q1", "q4", "q3", "q2", "pt1"]
    by_id = {r["content_id"]: r for r in rows}
    # as of 02-04 23:30 (the last item): l1 is 0.5 h old with its self-answer as one reply
    assert (by_id["l1"]["age_hours"], by_id["l1"]["points"]) == (0.5, 1)
    assert by_id["l1"]["hot_score"] == pytest.approx(1 / 2.5**1.8)
    # s1: score 4 + 2 answers, posted 02-01 10:00: 85.5 h old
    assert (by_id["s1"]["age_hours"], by_id["s1"]["score"], by_id["s1"]["replies"]) == (85.5, 4, 2)
    assert by_id["s1"]["hot_score"] == pytest.approx(6 / 87.5**1.8)
    # q1: score 10 + 2 replies, but 805.5 h old
    assert by_id["q1"]["hot_score"] == pytest.approx(12 / 807.5**1.8)
    assert by_id["pt1"]["hot_score"] == 0.0
    # nyc's n1 has no platform score: net votes from its (day-precision) upvote stand in
    n1 = _dicts(con, "select * from marts.hot_content where content_id = 'n1'")[0]
    assert (n1["score"], n1["replies"], n1["points"]) == (1, 0, 1)


# --------------------------------------------------------------------------- thread_topics (tags or YAKE)


def test_thread_topics_tags_and_keyphrases(con):
    from transforms.thread_topics import extract_keyphrases

    qa = _rows(con, "select root_id, topic, topic_origin from marts.thread_topics where source = 'qa' order by root_id")
    assert ("q5", "ipa", "tag") in qa and len(qa) == 9  # answers' own tags ("stout") are not topics
    nyc = _rows(
        con,
        "select root_id, list(topic order by topic), any_value(topic_origin) "
        "from marts.thread_topics where source = 'nyc' group by root_id order by root_id",
    )
    expected = extract_keyphrases(["Citra hops in a pale ale. body n1", "Dry hopping a lager with Citra hops. body n2"])
    assert nyc == [("n1", sorted(expected[0]), "keyphrase"), ("n2", sorted(expected[1]), "keyphrase")]
    assert all("citra hops" in phrases for phrases in expected)  # the shared phrase links the threads
    weeks = _rows(
        con,
        "select period_start, volume, topic_origin from marts.trending_topics "
        "where source = 'nyc' and period = 'week' and topic = 'citra hops' order by period_start",
    )
    assert weeks == [(date(2024, 1, 8), 1, "keyphrase"), (date(2024, 2, 12), 1, "keyphrase")]


def test_keyphrases_are_memoised_per_text(monkeypatch):
    from transforms import thread_topics

    con = _new_warehouse()
    run_marts(con)
    assert _rows(con, "select count(*) from ops.keyphrase_cache") == [(2,)]  # nyc's two roots only
    calls = []
    real = thread_topics.extract_keyphrases
    monkeypatch.setattr(thread_topics, "extract_keyphrases", lambda texts: calls.append(texts) or real(texts))
    before = _rows(con, "select * from marts.thread_topics order by all")
    run_marts(con)
    assert calls == []  # nothing new to extract
    con.execute(
        "update staging.content set title = 'Mosaic hops in a stout', content_hash = 'h_n1b' where content_id = 'n1'"
    )
    run_marts(con)
    assert calls == [["Mosaic hops in a stout. body n1"]]  # only the edited root
    assert _rows(con, "select count(*) from ops.keyphrase_cache") == [(2,)]  # the old text was pruned
    assert _rows(con, "select * from marts.thread_topics order by all") != before


# --------------------------------------------------------------------------- activity_timeline


def test_activity_timeline_buckets_match_the_heatmap(con):
    got = _rows(
        con,
        "select bucket_start, events from marts.activity_timeline "
        "where source = 'forum' and activity_type = 'post' order by bucket_start",
    )
    assert got == [(UTC(2024, 3, 30, 0, 30), 1), (UTC(2024, 3, 31, 1, 30), 1), (UTC(2024, 4, 3, 10, 0), 1)]
    # re-bucketed into the community's zone, the timeline gives the heatmap's cells exactly
    rebucketed = _rows(
        con,
        """
        select t.source, t.activity_type, isodow(l)::integer, hour(l)::integer, sum(events)
        from (select *, timezone(coalesce(s.timezone, 'UTC'), timezone('UTC', bucket_start)) as l
              from marts.activity_timeline left join ops.sources as s using (source)) as t
        group by all order by all""",
    )
    heat = _rows(
        con,
        "select source, activity_type, weekday, hour, events from marts.activity_heatmap where events > 0 order by all",
    )
    assert rebucketed == heat


# --------------------------------------------------------------------------- trending: day window


def test_trending_day_window_by_hand(con):
    ipa = _topic(con, "qa", date(2024, 1, 29), "ipa", period="day")
    # day 27 of the source (first day 01-02): 27 days of baseline, 1 item on 01-02, 01-09, 01-16, 01-23
    assert (ipa["volume"], ipa["baseline_periods"]) == (2, 27)
    mean = 4 / 27
    assert ipa["baseline_mean"] == pytest.approx(mean)
    assert ipa["baseline_std"] == pytest.approx(math.sqrt(4 / 27 - mean**2))
    assert ipa["z_score"] == pytest.approx((2 - mean) / math.sqrt(4 / 27 - mean**2 + mean + 1))
    assert ipa["is_rising"] is False  # the 28-day baseline is not complete yet
    ipa30 = _topic(con, "qa", date(2024, 1, 30), "ipa", period="day")
    # full window 01-02..01-29: 1 + 1 + 1 + 1 + 2 = 6 items, squares 8
    assert ipa30["baseline_periods"] == 28
    assert ipa30["baseline_mean"] == pytest.approx(6 / 28)
    assert ipa30["baseline_std"] == pytest.approx(math.sqrt(8 / 28 - (6 / 28) ** 2))
    assert ipa30["is_rising"] is False and ipa30["z_score"] == pytest.approx(1.480873, abs=1e-6)


def test_trending_day_window_emerging_with_lower_support():
    con = _new_warehouse()
    run_marts(con, min_support=2)
    porter = _topic(con, "qa", date(2024, 2, 2), "porter", period="day")
    # pt2 08:00 and its answer 09:00; porter's only earlier item (pt1, 01-03) is 30 days back
    assert (porter["volume"], porter["baseline_periods"], porter["baseline_mean"]) == (2, 28, 0.0)
    assert porter["z_score"] == pytest.approx(2.0)
    assert (porter["is_rising"], porter["is_emerging"], porter["is_hot"], porter["rank"]) == (True, True, True, 1)
    assert (porter["period_end"], porter["week_start"]) == (date(2024, 2, 2), date(2024, 1, 29))
