"""Tests for the synthetic demo community (warehouse/sources/demo.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl
import pytest

from warehouse import canonical
from warehouse.sources import demo

TZ = "America/New_York"


@pytest.fixture(scope="module")
def ex() -> canonical.Extract:
    return demo.generate_demo()


def _local(df: pl.DataFrame, column: str, tz: str = TZ) -> pl.DataFrame:
    """Add ``lt``: ``column`` (naive UTC) converted to local time by polars (independent of zoneinfo)."""
    return df.with_columns(pl.col(column).dt.replace_time_zone("UTC").dt.convert_time_zone(tz).alias("lt"))


def _all_times(ex: canonical.Extract) -> pl.DataFrame:
    """Every content creation and engagement event time, as one column ``t`` (naive UTC)."""
    return pl.concat(
        [
            ex.content.select(pl.col("created_at").alias("t")),
            ex.engagement_events.select(pl.col("occurred_at").alias("t")),
        ]
    )


def _hour_hist(times: pl.DataFrame, expr: pl.Expr) -> np.ndarray:
    hours = times.select(expr.alias("h"))["h"].to_numpy()
    return np.bincount(hours, minlength=24).astype(float)


# --- determinism, schema, volumes -----------------------------------------------------------------


def test_same_arguments_give_identical_frames_and_other_seed_differs() -> None:
    demo._history.cache_clear()
    a = demo.generate_demo(days=30)
    demo._history.cache_clear()  # really generate twice, not hit the cache
    b = demo.generate_demo(days=30)
    c = demo.generate_demo(days=30, seed=8)
    for stream in canonical.STREAMS:
        assert a.frame(stream).equals(b.frame(stream)), stream
        assert not a.frame(stream).equals(c.frame(stream)), stream


def test_extract_is_canonical(ex: canonical.Extract) -> None:
    assert ex.source == "demo" and ex.synthetic is True and ex.timezone == TZ
    assert ex.since is None and ex.until is None
    for stream in canonical.STREAMS:
        df = ex.frame(stream)
        assert df.schema == pl.Schema(canonical.SCHEMAS[stream]), stream
        assert (df["source"] == "demo").all()
        key = canonical.NATURAL_KEYS[stream]
        assert df.select(key).is_unique().all(), f"{stream} natural key not unique"
        counts = ex.counts[stream]
        assert counts.reconciles() and counts.read == counts.emitted == df.height
        assert counts.quarantined == 0 and counts.skipped == 0
    assert ex.quarantine.height == 0 and ex.quarantine.schema == pl.Schema(canonical.QUARANTINE_SCHEMA)


def test_content_fields(ex: canonical.Extract) -> None:
    c = ex.content
    assert set(c["kind"].unique()) <= canonical.CONTENT_KINDS
    posts, replies = c.filter(pl.col("kind") == "post"), c.filter(pl.col("kind") == "reply")
    assert posts.height + replies.height == c.height
    assert (posts["thread_id"] == posts["content_id"]).all()
    assert posts["parent_id"].is_null().all() and posts["title"].is_not_null().all()
    ntags = posts["tags"].list.len()
    assert ntags.min() == 1 and ntags.max() == 3
    assert (posts["tags"].list.n_unique() == ntags).all()
    assert set(posts["tags"].explode().unique()) <= set(demo.TAGS)
    assert replies["parent_id"].is_not_null().all() and replies["title"].is_null().all()
    assert (posts["view_count"] >= 0).all() and replies["view_count"].is_null().all()
    assert c["body_text"].str.len_chars().min() > 10
    hashes = [canonical.content_hash(k, t, b) for k, t, b in c.select("kind", "title", "body_text").iter_rows()]
    assert c["content_hash"].to_list() == hashes
    edited = c.filter(pl.col("edited_at").is_not_null())
    assert 0 < edited.height < 0.1 * c.height
    assert (edited["edited_at"] > edited["created_at"]).all()
    assert edited["body_text"].str.contains("\n\nEdit: ").all()


def test_score_and_view_count_match_events(ex: canonical.Extract) -> None:
    e = ex.engagement_events
    ups, downs = (pl.col("event_type") == "upvote").sum(), (pl.col("event_type") == "downvote").sum()
    per = e.group_by("content_id").agg(
        (ups.cast(pl.Int64) - downs.cast(pl.Int64)).alias("s"),
        (pl.col("event_type") == "view").sum().cast(pl.Int64).alias("v"),
    )
    j = ex.content.join(per, on="content_id", how="left").with_columns(pl.col("s", "v").fill_null(0))
    assert (j["score"] == j["s"]).all()
    posts = j.filter(pl.col("kind") == "post")
    assert (posts["view_count"] == posts["v"]).all()


def test_period_and_volumes(ex: canonical.Extract) -> None:
    tz = ZoneInfo(TZ)
    t0 = datetime(2026, 3, 2, tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
    t1 = datetime(2026, 8, 31, tzinfo=tz).astimezone(UTC).replace(tzinfo=None)  # 2 Mar + 182 days
    for df, col in ((ex.content, "created_at"), (ex.engagement_events, "occurred_at")):
        assert df[col].min() >= t0 and df[col].max() < t1
    assert ex.users.height == 800
    assert (ex.users["created_at"] < t0).sum() > 50  # some joined before the period
    assert 10_000 <= ex.content.height <= 15_000
    posts = ex.content.filter(pl.col("kind") == "post").height
    assert 10 <= posts / 182 <= 15
    assert 3 <= (ex.content.height - posts) / posts <= 5
    e = ex.engagement_events
    assert 30_000 <= e.height <= 60_000
    assert (e["event_type"] == "view").sum() < 100_000
    types = dict(e.group_by("event_type").len().iter_rows())
    assert set(types) == {"upvote", "downvote", "favorite", "accept", "view"}
    assert types["upvote"] > 5 * types["downvote"]
    assert (e["time_precision"] == "exact").all()
    names = ex.users["display_name"]
    assert names.is_not_null().all() and names.n_unique() == names.len()


def test_scale_is_roughly_linear() -> None:
    small = demo.generate_demo(days=28, scale=0.5)
    big = demo.generate_demo(days=28, scale=2.0)
    assert big.users.height == 4 * small.users.height
    assert 3.0 < big.content.height / small.content.height < 5.0
    assert 3.0 < big.engagement_events.height / small.engagement_events.height < 5.0


# --- integrity ----------------------------------------------------------------------------------


def test_referential_integrity(ex: canonical.Extract) -> None:
    c, e, u = ex.content, ex.engagement_events, ex.users
    by_id = c.select("content_id", pl.col("created_at").alias("p_at"), pl.col("thread_id").alias("p_thread"))
    replies = c.filter(pl.col("kind") == "reply").join(by_id, left_on="parent_id", right_on="content_id", how="left")
    assert replies["p_at"].is_not_null().all(), "reply without parent"
    assert (replies["p_at"] < replies["created_at"]).all(), "reply before its parent"
    assert (replies["p_thread"] == replies["thread_id"]).all(), "parent in another thread"
    threads = c.filter(pl.col("kind") == "post")["content_id"]
    assert replies["thread_id"].is_in(threads.implode()).all()
    assert (replies["parent_id"] != replies["thread_id"]).any(), "no nested replies"

    users = u.select("user_id", pl.col("created_at").alias("joined"))
    authored = c.join(users, left_on="author_id", right_on="user_id", how="left")
    assert authored["joined"].is_not_null().all(), "author missing"
    assert (authored["joined"] <= authored["created_at"]).all(), "content before its author joined"

    ev = e.join(c.select("content_id", "created_at", "author_id"), on="content_id", how="left").join(
        users, on="user_id", how="left"
    )
    assert ev["created_at"].is_not_null().all(), "event on missing content"
    assert ev["joined"].is_not_null().all(), "event by missing user"
    assert (ev["occurred_at"] > ev["created_at"]).all(), "event before its content"
    assert (ev["joined"] <= ev["occurred_at"]).all(), "event before its user joined"
    votes = ev.filter(pl.col("event_type").is_in(["upvote", "downvote", "favorite", "view"]))
    assert (votes["user_id"] != votes["author_id"]).all(), "self-vote"
    one_vote = e.filter(pl.col("event_type").is_in(["upvote", "downvote"])).select("content_id", "user_id")
    assert one_vote.is_unique().all(), "a user voted twice on one item"

    accepts = ev.filter(pl.col("event_type") == "accept").join(
        c.select("content_id", "kind", "thread_id"), on="content_id"
    )
    assert accepts.height > 100 and (accepts["kind"] == "reply").all()
    op = c.select(pl.col("content_id").alias("thread_id"), pl.col("author_id").alias("op"))
    with_op = accepts.join(op, on="thread_id", how="left")
    assert (with_op["op"] == with_op["user_id"]).all(), "accept not by the thread's author"
    assert accepts["thread_id"].is_unique().all()


def test_power_users_do_much_of_the_posting(ex: canonical.Extract) -> None:
    per_author = ex.content.group_by("author_id").len().sort("len", descending=True)["len"]
    top_1pct = per_author.head(ex.users.height // 100).sum()
    assert top_1pct > 0.12 * ex.content.height
    assert per_author.median() < 10
    assert per_author.len() < ex.users.height  # some members only read and vote


# --- rhythms ------------------------------------------------------------------------------------


def test_daily_rhythm_in_local_time(ex: canonical.Extract) -> None:
    hist = _hour_hist(_local(_all_times(ex), "t"), pl.col("lt").dt.hour())
    assert hist[20] > 8 * hist[3]
    assert hist[12] > 3 * hist[4]
    assert int(np.argmax(hist)) in {19, 20, 21, 22}
    assert hist[1:6].sum() < 0.06 * hist.sum()


def test_weekly_rhythm(ex: canonical.Extract) -> None:
    wd = _local(ex.content, "created_at").group_by(pl.col("lt").dt.weekday().alias("d")).len()
    per_day = dict(wd.iter_rows())  # 1 = Monday .. 7 = Sunday
    assert per_day[7] < 0.8 * per_day[2]
    assert per_day[6] < per_day[3]


def test_growth_trend(ex: canonical.Extract) -> None:
    posts = ex.content.filter(pl.col("kind") == "post")["created_at"]
    first = posts.filter(posts < datetime(2026, 4, 27, 4)).len() / 8  # per week, first eight weeks
    last = posts.filter(posts >= datetime(2026, 8, 3, 4)).len() / 4  # the last four, after every burst
    assert last > 1.15 * first


@pytest.mark.parametrize(
    ("change", "utc_lag_before", "utc_lag_after"),
    [(date(2026, 3, 8), 5, 4), (date(2026, 11, 1), 4, 5)],  # EST (UTC-5) <-> EDT (UTC-4)
    ids=["spring-forward", "fall-back"],
)
def test_dst_change_keeps_local_peaks_and_shifts_utc_hours(
    change: date, utc_lag_before: int, utc_lag_after: int
) -> None:
    around = demo.generate_demo(start=change - timedelta(days=21), days=42)
    times = _local(_all_times(around), "t").with_columns(pl.col("lt").dt.date().alias("d"))
    reference = _hour_hist(times, pl.col("lt").dt.hour())  # the local rhythm over all six weeks
    before = times.filter(pl.col("d") < change)
    after = times.filter(pl.col("d") > change)
    loc_b, loc_a = (_hour_hist(x, pl.col("lt").dt.hour()) for x in (before, after))
    utc_b, utc_a = (_hour_hist(x, pl.col("t").dt.hour()) for x in (before, after))

    def best_shift(hist: np.ndarray) -> int:
        """The circular shift (hours) that best aligns ``hist`` with the local reference rhythm."""
        dist = {s: np.abs(np.roll(reference / reference.sum(), s) - hist / hist.sum()).sum() for s in range(24)}
        return min(dist, key=dist.__getitem__)

    # In local time the weeks before and after follow the same rhythm, unshifted...
    assert np.corrcoef(loc_b, loc_a)[0, 1] > 0.9
    assert best_shift(loc_b) == 0 and best_shift(loc_a) == 0
    # ...while in UTC the whole rhythm moves by the change of offset.
    assert best_shift(utc_b) == utc_lag_before and best_shift(utc_a) == utc_lag_after


def test_half_hour_timezone_keeps_local_rhythm() -> None:
    small = demo.generate_demo(days=28, timezone="Asia/Kolkata")
    hist = _hour_hist(_local(_all_times(small), "t", "Asia/Kolkata"), pl.col("lt").dt.hour())
    assert hist[20] > 8 * hist[3]
    assert small.timezone == "Asia/Kolkata"


# --- topics -------------------------------------------------------------------------------------


def _weekly_tag_volume(ex: canonical.Extract, burst: demo.Burst) -> dict[int, int]:
    """Posts carrying ``burst.tag`` per local week, week 0 starting on ``burst.start``."""
    posts = _local(ex.content.filter(pl.col("kind") == "post"), "created_at")
    tagged = posts.filter(pl.col("tags").list.contains(burst.tag)).with_columns(
        ((pl.col("lt").dt.date() - pl.lit(burst.start)).dt.total_days() // 7).alias("wk")
    )
    return dict(tagged.group_by("wk").len().iter_rows())


def test_injected_bursts_are_declared() -> None:
    assert len(demo.INJECTED_BURSTS) == 3
    assert demo.bursts_for(demo.DEFAULT_START) == demo.INJECTED_BURSTS
    shifted = demo.bursts_for(demo.DEFAULT_START + timedelta(days=7))
    assert all(s.start - b.start == timedelta(days=7) for s, b in zip(shifted, demo.INJECTED_BURSTS, strict=False))
    kinds = {b.kind for b in demo.INJECTED_BURSTS}
    assert kinds == {"spike", "emerging"}
    period_end = demo.DEFAULT_START + timedelta(days=demo.DEFAULT_DAYS)
    for b in demo.INJECTED_BURSTS:
        assert b.tag in demo.TAGS and demo.DEFAULT_START + timedelta(days=28) <= b.start <= b.end < period_end
        assert 7 <= (b.end - b.start).days + 1 <= 14
        if b.kind == "spike":
            assert 5 <= b.multiplier <= 8
            assert demo.TAGS.index(b.tag) >= 10, "a spike should hit a small tag"


@pytest.mark.parametrize("burst", demo.INJECTED_BURSTS, ids=lambda b: b.tag)
def test_bursts_show_up_as_trending(ex: canonical.Extract, burst: demo.Burst) -> None:
    weeks = _weekly_tag_volume(ex, burst)
    n_burst_weeks = ((burst.end - burst.start).days + 1) // 7
    in_burst = np.mean([weeks.get(w, 0) for w in range(n_burst_weeks)])
    trailing = np.mean([weeks.get(w, 0) for w in range(-4, 0)])
    assert weeks.get(0, 0) >= 4 * trailing
    assert in_burst >= 4 * trailing
    if burst.kind == "emerging":
        assert sum(v for w, v in weeks.items() if w < 0) == 0, "an emerging tag must be new"
        assert weeks.get(0, 0) >= 5
        assert sum(v for w, v in weeks.items() if w >= n_burst_weeks) > 0, "it should stay around"
    else:
        assert trailing > 0, "a spike hits a tag that already exists"
        assert weeks.get(n_burst_weeks + 1, 0) < in_burst / 2, "and it calms down afterwards"


# --- abuse --------------------------------------------------------------------------------------


def test_abusive_replies_share_and_repeat_offenders(ex: canonical.Extract) -> None:
    ids = demo.abusive_ids(ex)
    replies = ex.content.filter(pl.col("kind") == "reply")
    assert 0.015 <= len(ids) / replies.height <= 0.03
    abusive = ex.content.filter(pl.col("content_id").is_in(list(ids)))
    assert (abusive["kind"] == "reply").all() and abusive["edited_at"].is_null().all()
    per_author = abusive.group_by("author_id").len()["len"]
    assert (per_author >= 5).sum() >= 3, "a few repeat offenders"
    assert (per_author == 1).sum() >= 10, "and some one-off outbursts"
    assert abusive_ids_in_windows_union(ex) == ids


def abusive_ids_in_windows_union(ex: canonical.Extract) -> set[str]:
    cut = datetime(2026, 6, 1)
    return demo.abusive_ids(demo.generate_demo(until=cut)) | demo.abusive_ids(demo.generate_demo(since=cut))


def test_lexical_scorer_separates_abusive_from_clean(ex: canonical.Extract) -> None:
    from profanity_check import predict_prob

    c = ex.content
    texts = [canonical.scored_text(t, b) for t, b in c.select("title", "body_text").iter_rows()]
    prob = predict_prob(texts)
    is_abusive = c["content_id"].is_in(list(demo.abusive_ids(ex))).to_numpy()
    assert prob[is_abusive].mean() > 0.8
    assert (prob[is_abusive] > 0.8).mean() > 0.9
    assert (prob[~is_abusive] > 0.5).mean() < 0.02
    assert prob[~is_abusive].mean() < 0.15


# --- windows ------------------------------------------------------------------------------------


def test_windows_partition_the_unbounded_extract(ex: canonical.Extract) -> None:
    # Some bounds fall exactly on a record's timestamp: it belongs to the window it starts.
    on_content = ex.content["created_at"][5000]
    on_event = ex.engagement_events["occurred_at"][30000]
    inner = sorted([datetime(2026, 1, 1), on_content, on_event, on_event + timedelta(days=1)])
    cuts = [None, *inner, None]
    windows = [demo.generate_demo(since=a, until=b) for a, b in itertools.pairwise(cuts)]
    assert on_content in windows[inner.index(on_content) + 1].content["created_at"].to_list()
    assert on_event in windows[inner.index(on_event) + 1].engagement_events["occurred_at"].to_list()
    for w in windows:
        for stream, col in (("users", "created_at"), ("content", "created_at"), ("engagement_events", "occurred_at")):
            df = w.frame(stream)
            assert all(canonical.in_window(ts, w.since, w.until) for ts in df[col].head(50))
            assert w.counts[stream].reconciles() and w.counts[stream].read == df.height
    assert windows[-2].content.height > 0  # a single day has content
    for stream in canonical.STREAMS:
        key = canonical.NATURAL_KEYS[stream][1]
        union = pl.concat([w.frame(stream) for w in windows]).sort(pl.col(key).cast(pl.Int64))
        assert union.equals(ex.frame(stream)), stream
        assert sum(w.counts[stream].read for w in windows) == ex.counts[stream].read


def test_aware_bounds_are_converted_to_utc() -> None:
    tz = ZoneInfo(TZ)
    aware = demo.generate_demo(since=datetime(2026, 5, 1, tzinfo=tz), until=datetime(2026, 5, 8, tzinfo=tz))
    naive = demo.generate_demo(since=datetime(2026, 5, 1, 4), until=datetime(2026, 5, 8, 4))
    assert aware.since == datetime(2026, 5, 1, 4) and aware.until == datetime(2026, 5, 8, 4)
    for stream in canonical.STREAMS:
        assert aware.frame(stream).equals(naive.frame(stream))


def test_returned_frames_do_not_alias_the_cache() -> None:
    first = demo.generate_demo(days=14)
    first.content.drop_in_place("body_text")
    assert "body_text" in demo.generate_demo(days=14).content.columns


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"days": 0}, ValueError),
        ({"scale": 0.0}, ValueError),
        ({"since": datetime(2026, 5, 2), "until": datetime(2026, 5, 1)}, ValueError),
        ({"timezone": "Mars/Olympus_Mons"}, ZoneInfoNotFoundError),
        ({"start": datetime(2026, 3, 2)}, TypeError),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        demo.generate_demo(**kwargs)  # type: ignore[arg-type]
