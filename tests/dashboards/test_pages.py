"""Streamlit AppTest tests for every dashboard page, against hand-made serving snapshots.

Expected numbers are recomputed here straight from the snapshot file (plain DuckDB), not
through ``dashboards.data``, so a page that computes them wrongly fails.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PAGES = (
    "views/overview.py", "views/peak_times.py", "views/trending.py", "views/best_time.py",
    "views/pipeline_health.py",
)  # fmt: skip
TITLES = dict(
    zip(PAGES, ("Overview", "Peak times", "Trending topics", "Best time to post", "Pipeline health"), strict=True)
)
OVERVIEW, PEAK, TRENDING, BEST, HEALTH = PAGES
# pages that show charts on the hand-made snapshot, per source (beer has no topics, flags or threads there)
# (the review pages have their own tests: tests/dashboards/test_review_*.py)
CHARTED = {"demo": {OVERVIEW, PEAK, TRENDING, HEALTH}, "beer": {OVERVIEW, PEAK, HEALTH}}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SYNTHETIC = "Synthetic demo data"
FALLBACK = "Scores come from the fallback lexical model"
ACTIVE_RANGE = (
    "select min(day) filter (where dau > 0 or new_content > 0 or events > 0) as a, max(day) as b "
    "from marts.engagement_daily"
)  # the data's own range: engagement_daily's zero rows start at the oldest account (2024 in the demo)


def signed_in_app(username: str = "admin") -> AppTest:
    """The app, its session signed in as ``username`` (an account of the test review store,
    tests/dashboards/conftest.py), not yet run."""
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    return at


def open_page(page: str, source: str | None = None) -> AppTest:
    """Run the app signed in as an admin, pick ``source`` in the sidebar (if given), switch to
    ``page`` and run it."""
    at = signed_in_app().run()
    assert not at.exception, [e.value for e in at.exception]
    if source is not None:
        at.selectbox(key="source").set_value(source).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sql(snapshot, query: str, params: list | None = None) -> pl.DataFrame:
    """Independent read of the snapshot (what the page should show)."""
    con = duckdb.connect(str(snapshot.path), read_only=True)
    try:
        return con.sql(query, params=params or []).pl()
    finally:
        con.close()


def rendered_markup(at: AppTest) -> list[str]:
    """Every value the frontend interprets as Markdown or HTML (titles, captions, alerts, ...)."""
    kinds = ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success")
    values = [str(el.value) for kind in kinds for el in getattr(at, kind)]
    values += [exp.label for exp in at.expander]
    return values


def plotly_specs(at: AppTest) -> list[str]:
    """The JSON specs of the plotly charts on the page."""
    return [el.proto.spec for el in at.get("plotly_chart")]


# --- every page ---------------------------------------------------------------------------


def test_missing_snapshot_says_how_to_make_one(serve, tmp_path: Path) -> None:
    serve(tmp_path / "nowhere" / "serving.duckdb")
    at = signed_in_app().run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "No serving snapshot found" in message
    assert "pulse run --source demo" in message


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("source", "synthetic"), [("demo", True), ("beer", False)])
def test_page_runs_with_title_chart_download_and_banner(serve, snapshot, page, source, synthetic) -> None:
    serve(snapshot)
    at = open_page(page, source)
    assert [t.value for t in at.main.title] == [TITLES[page]]
    assert at.caption, "each page explains itself in one sentence"
    warnings = " ".join(w.value for w in at.warning)
    assert (SYNTHETIC in warnings) is synthetic
    if page in CHARTED[source]:
        assert at.get("plotly_chart"), "a plotly chart"
        assert at.get("download_button"), "a CSV download"
    elif page in (TRENDING, BEST):  # nothing to show: say so
        assert any(i.value.startswith("No ") for i in at.info), [i.value for i in at.info]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("variant", ["empty_snapshot", "bare_snapshot"])
def test_page_shows_empty_state(serve, request, page, variant) -> None:
    serve(request.getfixturevalue(variant))
    at = open_page(page)
    assert [t.value for t in at.main.title] == [TITLES[page]]
    assert not at.error, [e.value for e in at.error]
    assert any(msg.value.startswith("No ") for msg in at.info), [i.value for i in at.info]
    assert not at.get("plotly_chart")
    assert not any(SYNTHETIC in w.value for w in at.warning)


def test_fallback_banner(serve, snapshot, fallback_snapshot, facts) -> None:
    serve(snapshot)
    demo = open_page(OVERVIEW, "demo")
    banner = [i.value for i in demo.info if FALLBACK in i.value]
    assert banner and facts.fallback_note in banner[0]  # admins see the run's scorer_note as the reason
    beer = open_page(OVERVIEW, "beer")
    assert not any(FALLBACK in i.value for i in beer.info)
    serve(fallback_snapshot)  # a stored score is a fallback score: every source is affected
    beer = open_page(OVERVIEW, "beer")
    assert any(FALLBACK in i.value and "fallback model" in i.value for i in beer.info)


def test_fallback_banner_is_short_for_managers_and_shown_once_per_session(serve, snapshot, facts) -> None:
    """A manager gets one short line without the reason (which may name the model cache path);
    the session's later pages only say it in the sidebar."""
    serve(snapshot)
    at = signed_in_app("boss").run()
    at.selectbox(key="source").set_value("demo").run()
    banner = [i.value for i in at.info if FALLBACK in i.value]
    assert banner == [
        "Scores come from the fallback lexical model: it scores only toxicity and misses threats without swear words."
    ]
    assert facts.fallback_note not in banner[0]
    at.switch_page(PEAK).run()
    assert not at.exception
    assert not any(FALLBACK in i.value for i in at.info)
    assert "Scores: fallback lexical model." in [c.value for c in at.sidebar.caption]
    at.switch_page(OVERVIEW).run()  # back on the page where it was shown: still there
    assert any(FALLBACK in i.value for i in at.info)


# --- the real pipeline's snapshot ---------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_page_on_pipeline_snapshot(serve, pipeline_snapshot, page) -> None:
    serve(pipeline_snapshot)
    at = open_page(page)
    assert [t.value for t in at.main.title] == [TITLES[page]]
    assert not at.error, [e.value for e in at.error]
    assert any(SYNTHETIC in w.value for w in at.warning), "the demo source is synthetic"
    assert at.get("plotly_chart") and at.get("download_button")


def test_pipeline_snapshot_key_numbers(serve, pipeline_snapshot) -> None:
    serve(pipeline_snapshot)
    top = sql(
        pipeline_snapshot,
        "select weekday, hour, sum(mean_per_week) as m from marts.activity_heatmap "
        "where activity_type in ('question', 'answer', 'comment', 'post', 'reply') "
        "group by weekday, hour order by m desc, weekday, hour limit 1",
    ).row(0, named=True)
    at = open_page(PEAK)
    assert at.success[0].value.startswith(f"Busiest: {WEEKDAYS[top['weekday'] - 1]} {top['hour']:02d}:00")
    run = sql(pipeline_snapshot, "select run_id, status from ops.runs").row(0, named=True)
    warned = sql(
        pipeline_snapshot,
        "select count(*) as n from quality.validation_results where run_id = ? and not success and not critical",
        [run["run_id"]],
    )["n"][0]
    at = open_page(HEALTH)
    # a successful run whose monitoring expectations warned (the slice's last day is years old:
    # freshness) is an amber warning naming the count, not a green success
    headline = next(c.value for c in (at.warning if warned else at.success) if "Latest run" in c.value)
    assert f"**{run['status']}**" in headline
    assert (f"with {warned} expectation warning(s)" in headline) == bool(warned)


# --- overview -----------------------------------------------------------------------------


def metric(at: AppTest, label: str):
    """The metric tile labelled ``label``."""
    found = [m for m in at.metric if m.label == label]
    assert len(found) == 1, [m.label for m in at.metric]
    return found[0]


def test_overview_kpis_against_the_previous_period(serve, pipeline_snapshot) -> None:
    serve(pipeline_snapshot)
    last = sql(pipeline_snapshot, "select max(day) as d from marts.engagement_daily")["d"][0]

    def period(lo, hi) -> dict:
        return sql(
            pipeline_snapshot,
            "select avg(dau) as dau, arg_max(mau, day) as mau, sum(new_content) as content, "
            "sum(threads_responded) filter (where response_window_complete) "
            "/ sum(new_threads) filter (where response_window_complete) as rate "
            "from marts.engagement_daily where day > ? and day <= ?",
            [lo, hi],
        ).row(0, named=True)

    cur = period(last - timedelta(days=28), last)
    prev = period(last - timedelta(days=56), last - timedelta(days=28))
    change = cur["dau"] / prev["dau"] - 1
    word = "up" if change > 0.05 else "down" if change < -0.05 else "flat"
    at = open_page(OVERVIEW)
    headline = next(m.value for m in at.markdown if m.value.startswith("Engagement"))
    assert headline.startswith(
        f"Engagement is **{word}**: **{cur['dau']:.1f}** daily active users on average in the 28 days to "
        f"{last:%Y-%m-%d}, against {prev['dau']:.1f} in the 28 days before ({change:+.0%})."
    ), headline
    dau = metric(at, "Daily active users (avg)")
    assert (dau.value, dau.delta) == (f"{cur['dau']:.1f}", f"{change:+.0%}")
    assert metric(at, "Monthly active users").value == f"{cur['mau']:,}"
    assert metric(at, "Response rate").value == f"{cur['rate']:.0%}"
    assert metric(at, "Response rate").delta == f"{(cur['rate'] - prev['rate']) * 100:+.0f} pts"
    specs = plotly_specs(at)
    assert '"name":"MAU(30days)"' in specs[0].replace(" ", "")


def test_overview_period_and_date_range(serve, pipeline_snapshot) -> None:
    serve(pipeline_snapshot)
    at = open_page(OVERVIEW)
    at.selectbox(key="overview_period").set_value(7).run()
    assert not at.exception
    assert any("in the 7 days to" in m.value for m in at.markdown)
    start, end = date(2026, 4, 1), date(2026, 4, 30)
    at.date_input(key="overview_range").set_value((start, end)).run()
    assert not at.exception
    assert any(c.value.startswith("Charts: 2026-04-01 to 2026-04-30") for c in at.caption)
    table = at.dataframe[-1].value  # the data behind the charts: exactly the chosen days
    assert (len(table), str(table["day"].min())[:10], str(table["day"].max())[:10]) == (30, "2026-04-01", "2026-04-30")
    assert any("in the 7 days to 2026-04-30" in m.value for m in at.markdown)


def test_overview_without_an_earlier_period_and_hostile_titles(serve, snapshot, facts) -> None:
    serve(snapshot)
    at = open_page(OVERVIEW, "demo")
    headline = next(m.value for m in at.markdown if m.value.startswith("Engagement"))
    # seven days of data: nothing to compare a 28-day period with
    assert "no earlier period of the same length" in headline and "**11.0**" not in headline
    assert metric(at, "Daily active users (avg)").value == f"{(10 * 6 + 16) / 7:.1f}"
    assert metric(at, "Monthly active users").value == "40"
    hot = at.dataframe[0].value
    assert hot["title"].tolist()[0] == facts.hot_hostile_title  # a literal cell, never markup
    for value in rendered_markup(at) + plotly_specs(at):
        assert "evil" not in value and "onerror" not in value, value


def test_date_range_defaults_to_the_data_and_is_kept_across_pages(serve, pipeline_snapshot) -> None:
    """Every analytics page opens on the data's own range (not 365 days that start long before
    the demo's first activity), and a range picked on one page is the next page's range."""
    serve(pipeline_snapshot)
    first, last = sql(pipeline_snapshot, ACTIVE_RANGE).row(0)
    assert (first, last) == (date(2026, 3, 2), date(2026, 8, 30))
    at = open_page(OVERVIEW)
    assert at.date_input(key="overview_range").value == (first, last)
    for page, key in ((PEAK, "peak_range"), (TRENDING, "trend_range"), (BEST, "best_range")):
        at.switch_page(page).run()
        assert not at.exception
        assert at.date_input(key=key).value == (first, last), page
    picked = (date(2026, 5, 4), date(2026, 6, 28))
    at.date_input(key="best_range").set_value(picked).run()
    for page, key in ((OVERVIEW, "overview_range"), (PEAK, "peak_range"), (TRENDING, "trend_range")):
        at.switch_page(page).run()
        assert not at.exception
        assert at.date_input(key=key).value == picked, page
    assert any(c.value.startswith("Charts: 2026-05-04 to 2026-06-28") for c in at.switch_page(OVERVIEW).run().caption)


def test_overview_stickiness_starts_after_the_mau_warm_up(serve, pipeline_snapshot) -> None:
    """DAU/MAU is left out (and the days shaded) until MAU has a full 30-day window; ticks are round percentages."""
    serve(pipeline_snapshot)
    first, _ = sql(pipeline_snapshot, ACTIVE_RANGE).row(0)
    warm_end = first + timedelta(days=29)
    at = open_page(OVERVIEW)
    spec = json.loads(plotly_specs(at)[0])
    line = next(t for t in spec["data"] if t["name"].startswith("DAU/MAU"))
    drawn = [x for x, y in zip(line["x"], line["y"], strict=True) if y is not None]
    assert drawn[0][:10] == f"{warm_end:%Y-%m-%d}" and len(drawn) == len(line["x"]) - 29
    assert spec["layout"]["shapes"][0]["x0"][:10] == f"{first:%Y-%m-%d}"
    assert spec["layout"]["shapes"][0]["x1"][:10] == f"{warm_end:%Y-%m-%d}"
    axis = spec["layout"]["yaxis2"]
    assert axis["tickformat"] == ".0%" and axis["dtick"] in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5)
    # a 90-day period ending 59 days into the data: the KPI averages only the days after the warm-up
    end = first + timedelta(days=59)
    at.date_input(key="overview_range").set_value((first, end)).run()
    at.selectbox(key="overview_period").set_value(90).run()
    expected, with_warm_up = sql(
        pipeline_snapshot,
        "select avg(stickiness) filter (where day >= ?) as a, avg(stickiness) as b from marts.engagement_daily "
        "where day between ? and ?",
        [warm_end, first, end],
    ).row(0)
    assert metric(at, "Stickiness (DAU/MAU)").value == f"{expected:.1%}" != f"{with_warm_up:.1%}"


def test_metric_deltas_are_neutral_when_nothing_changed() -> None:
    from dashboards import components

    assert components.delta_text(-0.004) == ("→ 0%", {"delta_color": "off", "delta_arrow": "off"})
    assert components.delta_text(0.0, " pts") == ("→ 0 pts", {"delta_color": "off", "delta_arrow": "off"})
    assert components.delta_text(-0.54) == ("-54%", {})
    assert components.delta_text(0.006, " pts") == ("+1 pts", {})
    assert components.delta_text(None) == (None, {})


def test_overview_kpi_without_change_is_grey(serve, pipeline_snapshot) -> None:
    """The demo's new threads over the last 28 days (417) against the 28 before (419) is -0.5%:
    a grey "→ 0%", not a red "-0%"."""
    serve(pipeline_snapshot)
    last = sql(pipeline_snapshot, "select max(day) as d from marts.engagement_daily")["d"][0]
    threads = sql(
        pipeline_snapshot,
        "select sum(new_threads) filter (where day > ?) as cur, sum(new_threads) filter (where day <= ?) as prev "
        "from marts.engagement_daily where day > ?",
        [last - timedelta(days=28), last - timedelta(days=28), last - timedelta(days=56)],
    ).row(0, named=True)
    assert f"{(threads['cur'] / threads['prev'] - 1) * 100:+.0f}%" == "-0%"
    at = open_page(OVERVIEW)
    tile = metric(at, "New threads")
    assert (tile.value, tile.delta) == (f"{threads['cur']:,}", "→ 0%")
    from streamlit.proto.Metric_pb2 import Metric

    assert (tile.proto.color, tile.proto.direction) == (Metric.MetricColor.GRAY, Metric.MetricDirection.NONE)
    assert "-0%" not in [m.delta for m in at.metric]


def test_thread_links_on_the_platform(monkeypatch) -> None:
    from dashboards import components

    monkeypatch.setenv("PULSE_DISCOURSE_URL", "https://forum.example.org/")
    monkeypatch.setenv("PULSE_DISCOURSE_SOURCE", "discourse:forum")
    beer = components.source_base_url("stackexchange:beer")
    assert beer == "https://beer.stackexchange.com"
    assert components.content_url(beer, "stackexchange:beer", "p6418", "question") == (
        "https://beer.stackexchange.com/questions/6418"
    )
    assert (
        components.content_url(beer, "stackexchange:beer", "p6420", "answer") == "https://beer.stackexchange.com/a/6420"
    )
    assert components.source_base_url("stackexchange:stackoverflow.com") == "https://stackoverflow.com"
    forum = components.source_base_url("discourse:forum")
    assert components.content_url(forum, "discourse:forum", "1234", "post") == "https://forum.example.org/p/1234"
    assert components.source_base_url("demo") is None
    assert components.content_url(None, "demo", "demo:t7", "post") is None


def test_hot_threads_have_links_and_plain_numbers(serve, snapshot) -> None:
    serve(snapshot)
    at = open_page(OVERVIEW, "demo")
    hot = at.dataframe[0]
    assert "link" in hot.value.columns and hot.value["link"].isna().all()  # a synthetic source has no web address
    hidden = {name for name, cfg in json.loads(hot.proto.columns).items() if cfg.get("hidden")}
    assert {"hot_score", "content_id", "created_at"} <= hidden  # 4.12e-1-style scores stay in the CSV only


# --- peak times ---------------------------------------------------------------------------


def test_peak_times_names_the_busiest_slot(serve, snapshot) -> None:
    serve(snapshot)
    top = sql(
        snapshot,
        "select weekday, hour, sum(mean_per_week) as m from marts.activity_heatmap "
        "where source = 'demo' and activity_type in ('question', 'answer', 'comment', 'post', 'reply') "
        "group by weekday, hour order by m desc, weekday, hour limit 1",
    ).row(0, named=True)
    at = open_page(PEAK, "demo")
    sentence = at.success[0].value
    expected = f"Busiest: {WEEKDAYS[top['weekday'] - 1]} {top['hour']:02d}:00–{top['hour'] + 1:02d}:00, {top['m']:.1f} "
    assert sentence.startswith(expected), sentence
    assert any("Europe\\/Berlin" in m.value for m in at.markdown), "the community timezone is shown"
    assert any(m.value.startswith("Busiest day: ") for m in at.markdown), "peak hours in words"
    assert not any("Day-precision" in i.value for i in at.info)
    heatmap = plotly_specs(at)[0]
    assert '"type":"heatmap"' in heatmap.replace(" ", "")


def test_peak_times_single_activity_type(serve, snapshot) -> None:
    serve(snapshot)
    top = sql(
        snapshot,
        "select weekday, hour, mean_per_week from marts.activity_heatmap "
        "where source = 'demo' and activity_type = 'comment' order by mean_per_week desc, weekday, hour limit 1",
    ).row(0, named=True)
    at = open_page(PEAK, "demo")
    at.selectbox(key="peak_activity").set_value("comment").run()
    assert not at.exception
    assert at.success[0].value.startswith(f"Busiest: {WEEKDAYS[top['weekday'] - 1]} {top['hour']:02d}:00")
    assert "comments/week" in at.success[0].value


def test_peak_times_notes_excluded_day_precision_votes(serve, snapshot, facts) -> None:
    serve(snapshot)
    at = open_page(PEAK, "beer")
    notes = [i.value for i in at.info if "Day-precision" in i.value]
    assert notes and f"{facts.beer_day_precision_upvotes} upvotes" in notes[0]


def _busiest_from_timeline(snapshot, zone: str, start: date | None = None, end: date | None = None) -> tuple:
    """The busiest content (weekday, hour, mean per week) in ``zone``, re-bucketed with polars' zone database."""
    timeline = sql(snapshot, "select activity_type, bucket_start, events from marts.activity_timeline").with_columns(
        local=pl.col("bucket_start").dt.replace_time_zone("UTC").dt.convert_time_zone(zone)
    )
    if start is not None:
        timeline = timeline.filter(pl.col("local").dt.date().is_between(start, end))
    weeks = ((timeline["local"].max().date() - timeline["local"].min().date()).days + 1) / 7
    cells = (
        timeline.filter(pl.col("activity_type").is_in(["post", "reply"]))
        .group_by(pl.col("local").dt.weekday().alias("weekday"), pl.col("local").dt.hour().alias("hour"))
        .agg(pl.col("events").sum())
        .sort(["events", "weekday", "hour"], descending=[True, False, False])
    )
    weekday, hour, events = cells.row(0)
    return weekday, hour, events / weeks


def test_peak_times_in_another_time_zone(serve, pipeline_snapshot) -> None:
    serve(pipeline_snapshot)
    zone = "Asia/Kolkata"  # UTC+05:30: only 15-minute buckets place every item in the right hour
    weekday, hour, mean = _busiest_from_timeline(pipeline_snapshot, zone)
    at = open_page(PEAK)
    at.selectbox(key="peak_tz").set_value(zone).run()
    assert not at.exception
    assert at.success[0].value.startswith(
        f"Busiest: {WEEKDAYS[weekday - 1]} {hour:02d}:00–{(hour + 1) % 24:02d}:00, {mean:.1f} new posts/week"
    ), at.success[0].value
    assert any("Asia\\/Kolkata" in m.value and "own zone is America\\/New\\_York" in m.value for m in at.markdown)


def test_peak_times_date_range(serve, pipeline_snapshot) -> None:
    serve(pipeline_snapshot)
    start, end = date(2026, 5, 1), date(2026, 5, 31)
    weekday, hour, mean = _busiest_from_timeline(pipeline_snapshot, "America/New_York", start, end)
    at = open_page(PEAK)
    at.date_input(key="peak_range").set_value((start, end)).run()
    assert not at.exception
    assert at.success[0].value.startswith(f"Busiest: {WEEKDAYS[weekday - 1]} {hour:02d}:00–"), at.success[0].value
    assert f"{mean:.1f} new posts/week" in at.success[0].value
    # the community's zone over the whole history is the mart itself
    at.date_input(key="peak_range").set_value(tuple(sql(pipeline_snapshot, ACTIVE_RANGE).row(0))).run()
    top = _busiest_from_timeline(pipeline_snapshot, "America/New_York")
    assert at.success[0].value.startswith(f"Busiest: {WEEKDAYS[top[0] - 1]} {top[1]:02d}:00–")


def _staffing_spec(at: AppTest) -> dict:
    specs = [json.loads(s) for s in plotly_specs(at)]
    return next(s for s in specs if "staffing" in s["layout"]["title"]["text"])


def test_staffing_overlay_shows_flags_and_says_decisions_are_missing(serve, snapshot) -> None:
    serve(snapshot)
    at = open_page(PEAK, "demo")
    assert any(m.value.startswith("**4 flagged items**") for m in at.markdown)
    assert any(i.value.startswith("No moderator decisions yet") for i in at.info)
    spec = _staffing_spec(at)
    assert len(spec["data"]) == 1
    by_hour = dict(zip(spec["data"][0]["x"], spec["data"][0]["y"], strict=True))
    # flagged items were posted 08:00-11:00 UTC on 2026-11-14: 09:00-12:00 in Berlin (CET)
    assert {h: n for h, n in by_hour.items() if n} == {9: 1, 10: 1, 11: 1, 12: 1}


# --- trending -----------------------------------------------------------------------------


def test_trending_lists_emerging_and_hot_this_week_versus_last(serve, snapshot, facts) -> None:
    serve(snapshot)
    latest = sql(snapshot, "select max(period_start) as w from marts.trending_topics where source = 'demo'")["w"][0]
    at = open_page(TRENDING, "demo")
    assert any(
        m.value.startswith(
            f"**Week of {latest:%Y-%m-%d} to {latest + timedelta(days=6):%Y-%m-%d}:** "
            "1 emerging and 3 hot topics among 4 discussed"
        )
        for m in at.markdown
    )
    emerging, hot = at.dataframe[0].value, at.dataframe[1].value
    assert emerging["topic"].tolist() == list(facts.demo_emerging)
    assert hot["topic"].tolist() == list(facts.demo_hot)
    hops = hot[hot["topic"] == "hops"].iloc[0]
    assert (hops["volume"], hops["previous_volume"]) == (12, 3)  # this week versus last
    assert hops["growth"] == pytest.approx(13 / 4.5)
    assert list(hops["trend"])[-2:] == [3, 12]  # the sparkline ends with last week and this week
    texts = [t.value for t in at.text]
    assert f"demo:t7: {facts.hostile_title}" in texts  # the example thread, as literal text
    for value in rendered_markup(at) + plotly_specs(at):
        assert "evil" not in value and "<b>" not in value, value
    burst, versus = (json.loads(spec) for spec in plotly_specs(at)[:2])
    assert burst["data"][0]["type"] == "heatmap"
    assert [t["name"] for t in versus["data"]] == ["last week", "this week"]
    everything = at.dataframe[-1].value
    assert "obscure" in everything["topic"].tolist()


def test_trending_defaults_to_the_latest_week_with_an_emerging_topic(serve, pipeline_snapshot) -> None:
    """The demo's latest week (2026-08-24) has no emerging topic: the page opens on 2026-08-10, which has."""
    serve(pipeline_snapshot)
    latest, emerging_week = sql(
        pipeline_snapshot,
        "select max(period_start) as a, max(period_start) filter (where is_emerging) as b "
        "from marts.trending_topics where period = 'week'",
    ).row(0)
    assert (latest, emerging_week) == (date(2026, 8, 24), date(2026, 8, 10))
    emerging = sql(
        pipeline_snapshot,
        "select topic from marts.trending_topics where period = 'week' and period_start = ? and is_emerging "
        "order by rank",
        [emerging_week],
    )["topic"].to_list()
    at = open_page(TRENDING)
    assert at.selectbox(key="trend_when_week").value == emerging_week
    assert at.dataframe[0].value["topic"].tolist() == emerging[:8]
    assert not any(i.value.startswith("No topic is emerging") for i in at.info)
    # the burst timeline: topics that emerged in the range x weeks, colour = z-score clipped to [0, 6]
    burst = json.loads(plotly_specs(at)[0])
    heat = burst["data"][0]
    cells = sql(
        pipeline_snapshot,
        "select topic, period_start, z_score, baseline_periods from marts.trending_topics "
        "where period = 'week' and is_emerging",
    )
    assert sorted(heat["y"]) == sorted(cells["topic"].unique().to_list())[:15] or len(heat["y"]) == 15
    weeks = [x[:10] for x in heat["x"]]
    assert weeks[0] == "2026-03-02" and weeks[-1] == f"{latest:%Y-%m-%d}" and len(weeks) == 26
    one = cells.filter(pl.col("topic") == heat["y"][0]).sort("period_start").row(0, named=True)
    assert heat["z"][0][weeks.index(f"{one['period_start']:%Y-%m-%d}")] == pytest.approx(min(one["z_score"], 6.0))


def test_trending_other_week(serve, snapshot) -> None:
    serve(snapshot)
    at = open_page(TRENDING, "demo")
    # the hand-made demo has 7 days of engagement (the default range) but 3 weeks of topics
    assert len(at.selectbox(key="trend_when_week").options) == 1
    bounds = sql(
        snapshot, "select min(period_start) as a, max(period_end) as b from marts.trending_topics where source = 'demo'"
    ).row(0)
    at.date_input(key="trend_range").set_value(bounds).run()
    weeks = at.selectbox(key="trend_when_week").options
    assert len(weeks) == 3 and weeks == sorted(weeks, reverse=True)
    at.selectbox(key="trend_when_week").set_value(at.selectbox(key="trend_when_week").options[1]).run()
    assert not at.exception
    assert any(i.value.startswith("No topic is emerging") for i in at.info)
    assert at.dataframe[0].value["topic"].tolist() == ["hops"]  # the hot list


def test_trending_daily_window(serve, pipeline_snapshot) -> None:
    serve(pipeline_snapshot)
    day = sql(pipeline_snapshot, "select max(period_start) as d from marts.trending_topics where period = 'day'")["d"][
        0
    ]
    hot = sql(
        pipeline_snapshot,
        "select topic from marts.trending_topics where period = 'day' and period_start = ? and is_hot "
        "order by volume desc, topic limit 8",
        [day],
    )["topic"].to_list()
    at = open_page(TRENDING)
    at.radio(key="trend_period").set_value("day").run()
    assert not at.exception
    assert at.selectbox(key="trend_when_day").value == day
    assert any(m.value.startswith(f"**Day of {day:%Y-%m-%d}:**") for m in at.markdown)
    tables = [d.value for d in at.dataframe]
    assert any(t["topic"].tolist() == hot for t in tables), hot


# --- best time to post --------------------------------------------------------------------


def test_best_time_matches_the_mart_and_recommends_its_top_slot(serve, pipeline_snapshot) -> None:
    serve(pipeline_snapshot)
    mart = sql(
        pipeline_snapshot,
        "select rank, weekday, hour, posts, mean_engagement, engagement_ci_low, engagement_ci_high "
        "from marts.best_time_to_post where rank is not null order by rank",
    )
    never = sql(pipeline_snapshot, "select count(*) as n from marts.response_times where not is_answered")["n"][0]
    at = open_page(BEST)
    table = at.dataframe[0].value
    ranked = table[table["rank"].notna()]
    assert ranked["rank"].astype(int).tolist() == mart["rank"].to_list()
    assert ranked["weekday"].astype(int).tolist() == mart["weekday"].to_list()
    assert ranked["hour"].astype(int).tolist() == mart["hour"].to_list()
    assert ranked["posts"].tolist() == mart["posts"].to_list()
    assert ranked["mean_engagement"].tolist() == pytest.approx(mart["mean_engagement"].to_list())
    assert set(table[table["rank"].isna()]["status"]) <= {"too little data (< 5 threads)"}
    assert set(table[table["rank"].notna()]["status"]) == {"ranked"}
    assert ranked["ranking_figure"].tolist() == pytest.approx(mart["engagement_ci_low"].to_list())
    # the demo forum has replies, no comments: the all-zero "mean comments" column is left out
    assert "mean_comments" not in table.columns and "mean_votes" in table.columns
    best = mart.row(0, named=True)
    slot = f"{WEEKDAYS[best['weekday'] - 1]} {best['hour']:02d}:00–{best['hour'] + 1:02d}:00"
    assert at.success[0].value.startswith(
        f"Post on **{slot}** (America\\/New\\_York): a new thread there got **{best['mean_engagement']:.1f}** "
        f"responses and votes within 7 days on average (95% CI {best['engagement_ci_low']:.1f}–"
        f"{best['engagement_ci_high']:.1f}, {best['posts']} threads)"
    ), at.success[0].value
    assert (
        f"Slots are ranked by the lower end of that 95% interval, the ranking figure (here **{best['engagement_ci_low']:.2f}**)"
        in at.success[0].value
    )
    second = mart.row(1, named=True)
    assert (
        f"Next best: {WEEKDAYS[second['weekday'] - 1]} {second['hour']:02d}:00–{second['hour'] + 1:02d}:00 "
        f"(ranking figure {second['engagement_ci_low']:.2f}; mean {second['mean_engagement']:.1f} over "
        f"{second['posts']} threads)"
    ) in at.success[0].value
    assert metric(at, "Never answered").value == f"{never:,}"
    assert not any("Votes are not counted" in i.value for i in at.info)  # the demo's votes are hour-precise


def test_best_time_coarser_slots_and_thin_data(serve, pipeline_snapshot) -> None:
    serve(pipeline_snapshot)
    by_hour = (
        sql(pipeline_snapshot, "select hour, engagement_within as e from marts.response_times where window_complete")
        .group_by("hour")
        .agg(n=pl.len(), mean=pl.col("e").mean(), sd=pl.col("e").std())
        .with_columns(low=(pl.col("mean") - 1.959964 * pl.col("sd") / pl.col("n").sqrt()).clip(lower_bound=0))
        .sort(["low", "mean", "hour"], descending=[True, True, False])
    )
    at = open_page(BEST)
    at.radio(key="best_grouping").set_value("hour of day").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert "weekday" not in table.columns  # hour-of-day slots have none
    assert table["hour"].astype(int).tolist()[:3] == by_hour["hour"].to_list()[:3]
    assert len(plotly_specs(at)) == 1, "no weekday x hour heatmap for hour-of-day slots"
    at.radio(key="best_grouping").set_value("weekday × hour").run()
    at.number_input(key="best_min_posts").set_value(100).run()
    assert any("too little data to rank" in i.value for i in at.info)


# --- pipeline health ----------------------------------------------------------------------


def test_pipeline_health_latest_run_and_details(serve, snapshot, facts) -> None:
    serve(snapshot)
    latest = sql(
        snapshot, "select run_id, status from ops.runs where source = 'demo' order by started_at desc limit 1"
    ).row(0, named=True)
    at = open_page(HEALTH, "demo")
    assert not at.success, "a success with a failed non-critical expectation is not shown green"
    banner = next(w.value for w in at.warning if w.value.startswith("Latest run"))
    assert latest["run_id"].replace("-", "\\-") in banner and f"**{latest['status']}**" in banner
    assert "with 1 expectation warning(s)" in banner
    streams = at.dataframe[1].value  # runs table, then stream counts
    content = streams[streams["stream"] == "content"].iloc[0]
    assert (content["read"], content["loaded"], content["skipped"], content["quarantined"]) == (120, 113, 3, 4)
    assert [m.value for m in at.metric][:3] == ["3", "1", "0"]  # passed, failed, critical
    codes = [c.value for c in at.code]
    assert facts.hostile_payload.replace('"9"', '"0"') in codes, "quarantined payloads shown verbatim"
    for value in rendered_markup(at):
        assert "onerror" not in value
    steps = at.dataframe[-1].value
    assert steps["step"].tolist()[0] == "extract" and len(steps) == 7


def test_pipeline_health_payloads_only_for_admins_and_never_in_the_serving_snapshot(serve, snapshot, facts) -> None:
    """Managers and moderators see counts per reason, no payload; the snapshot every page opens holds
    no raw.quarantine and no decision notes; the data layer refuses them the restricted snapshot."""
    from dashboards import data

    serve(snapshot)
    tables = set(sql(snapshot, "select table_schema || '.' || table_name as t from information_schema.tables")["t"])
    assert "raw.quarantine" not in tables and "raw.quarantine_counts" in tables
    assert sql(snapshot, "select sum(records) as n from raw.quarantine_counts")["n"][0] == 4
    hostile = facts.hostile_payload.replace('"9"', '"0"')
    assert hostile.encode() not in snapshot.path.read_bytes()
    for username in ("boss", "mod"):
        at = signed_in_app(username).run()
        at.selectbox(key="source").set_value("demo").run()
        at.switch_page(HEALTH).run()
        assert not at.exception, [e.value for e in at.exception]
        reasons = at.dataframe[2].value
        assert dict(zip(reasons["reason"], reasons["records"], strict=True)) == {"bad_timestamp": 3, "missing_id": 1}
        assert not at.code and any("admins only" in c.value for c in at.caption)
    for role in ("manager", "moderator", None):
        with pytest.raises(data.RestrictedDataError):
            data.restricted_query(role, "select count(*) from raw.quarantine")
    assert data.restricted_query("admin", "select count(*) as n from raw.quarantine")["n"][0] == 4


def test_pipeline_health_failed_run_highlights_critical_failures(serve, snapshot) -> None:
    serve(snapshot)
    at = open_page(HEALTH, "demo")
    at.selectbox(key="health_run").set_value("run-demo-1").run()
    assert not at.exception
    assert any("critical expectation" in e.value for e in at.error)
    assert "Error: QualityGateError: <b>3</b> critical expectations failed" in [t.value for t in at.text]
    assert [m.value for m in at.metric][:3] == ["0", "1", "1"]
    assert any("no stream counts" in i.value for i in at.info)


# --- data access --------------------------------------------------------------------------


def test_query_is_read_only_short_lived_and_refreshes_on_new_snapshot(monkeypatch, tmp_path, make_snapshot) -> None:
    from dashboards import data

    path = make_snapshot(tmp_path / "serving.duckdb", rows=False)
    monkeypatch.setenv("PULSE_SERVING", str(path))
    count = "select count(*) as n from ops.sources where source = ?"
    assert data.query(count, ["empty"])["n"][0] == 1
    assert data.query(count, ["x' or '1'='1"])["n"][0] == 0  # values are parameters
    with pytest.raises(duckdb.Error):
        data.query("insert into ops.sources values ('x', false, 'UTC', null)")
    new = make_snapshot(tmp_path / "new.duckdb")
    stat = path.stat()
    os.replace(new, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert data.query("select count(*) as n from ops.sources")["n"][0] == 2  # not the cached 1
    assert data.table_exists("marts", "activity_heatmap")
    assert not data.table_exists("marts", "nope")
    # Every query closed its connection: a writer in this process can take the file at once
    # (DuckDB refuses a read-write open while a read-only handle on the file is alive).
    duckdb.connect(str(path)).close()


def test_query_without_snapshot(monkeypatch, tmp_path: Path) -> None:
    from dashboards import data

    monkeypatch.setenv("PULSE_SERVING", str(tmp_path / "absent.duckdb"))
    assert not data.snapshot_exists()
    assert not data.table_exists("ops", "runs")
    with pytest.raises(data.SnapshotMissingError):
        data.query("select 1")


def test_csv_export_defuses_formulas() -> None:
    from dashboards import data

    frame = pl.DataFrame({"title": ['=HYPERLINK("http://evil")', "fine"], "ids": [["a", "b"], []], "n": [-1, 2]})
    assert data.to_csv(frame).decode().splitlines() == [
        "title,ids,n",
        '"\'=HYPERLINK(""http://evil"")",a; b,-1',
        'fine,"",2',
    ]


def test_pipeline_health_monitoring_history_and_data_docs(serve, pipeline_snapshot) -> None:
    """The demo ends on 2026-08-30: the freshness warning shows in the history; the Data Docs the run
    built are on the Data Docs page (admins, data engineers) as one zip per suite, outside any served folder."""
    import io
    import zipfile

    from dashboards.views.data_docs import zip_site

    serve(pipeline_snapshot)
    expected = sql(
        pipeline_snapshot,
        "select count(*) filter (where not success) as warnings, count(distinct run_id) as runs "
        "from quality.validation_results where suite = 'monitoring'",
    ).row(0, named=True)
    assert expected["warnings"] >= 1  # stale demo data
    at = open_page(HEALTH)
    assert "Freshness and volume over time" in [s.value for s in at.subheader]
    captions = " ".join(c.value for c in at.caption)
    assert f"{expected['runs']} runs checked; {expected['warnings']} warnings" in captions
    assert "open **Data Docs** in the menu" in " ".join(m.value for m in at.markdown)
    docs = Path(os.environ["PULSE_DATA_DOCS_DIR"])
    assert not docs.resolve().is_relative_to(APP.parent.resolve()), "never under the dashboards (static) folder"
    at.switch_page("views/data_docs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    listed = at.dataframe[0].value
    assert list(listed["suite"]) == ["marts", "monitoring", "staging"]
    assert all(n >= 1 for n in listed["validation_pages"])
    for suite in ("marts", "monitoring", "staging"):
        index = docs / suite / "index.html"
        with zipfile.ZipFile(io.BytesIO(zip_site(str(index.parent.resolve()), index.stat().st_mtime_ns))) as archive:
            names = archive.namelist()
            assert archive.read("index.html") == index.read_bytes()
        assert any(n.startswith("validations/") and n.endswith(".html") for n in names)
        assert "static/styles/data_docs_default_styles.css" in names  # relative assets travel with it


def test_health_date_range(serve, pipeline_snapshot) -> None:
    """The Pipeline health page has the date-range filter (the queue's is tested in test_review_queue.py)."""
    serve(pipeline_snapshot)
    health = open_page(HEALTH)
    assert health.date_input(key="health_range").value is not None and not health.exception
