"""Streamlit AppTest tests for every dashboard page, against hand-made serving snapshots.

Expected numbers are recomputed here straight from the snapshot file (plain DuckDB), not
through ``dashboards.data``, so a page that computes them wrongly fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest


APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PAGES = ("views/peak_times.py", "views/trending.py", "views/moderation_queue.py", "views/pipeline_health.py")
TITLES = dict(zip(PAGES, ("Peak times", "Trending topics", "Moderation queue", "Pipeline health"), strict=True))
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SYNTHETIC = "Synthetic demo data"
FALLBACK = "Scores come from the fallback lexical model"


def open_page(page: str, source: str | None = None) -> AppTest:
    """Run the app, pick ``source`` in the sidebar (if given), switch to ``page`` and run it."""
    at = AppTest.from_file(str(APP), default_timeout=30).run()
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
    at = AppTest.from_file(str(APP), default_timeout=30).run()
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
    if source == "demo":  # beer has no topics and no flags: those pages show empty states
        assert at.get("plotly_chart"), "a plotly chart"
        assert at.get("download_button"), "a CSV download"


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
    demo = open_page(PAGES[0], "demo")
    banner = [i.value for i in demo.info if FALLBACK in i.value]
    assert banner and facts.fallback_note in banner[0]  # the run's scorer_note is the reason
    beer = open_page(PAGES[0], "beer")
    assert not any(FALLBACK in i.value for i in beer.info)
    serve(fallback_snapshot)  # a stored score is a fallback score: every source is affected
    beer = open_page(PAGES[0], "beer")
    assert any(FALLBACK in i.value and "fallback model" in i.value for i in beer.info)


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
    at = open_page(PAGES[0])
    assert at.success[0].value.startswith(f"Busiest: {WEEKDAYS[top['weekday'] - 1]} {top['hour']:02d}:00")
    n = sql(pipeline_snapshot, "select count(*) as n from marts.moderation_queue")["n"][0]
    at = open_page(PAGES[2])
    assert any(m.value.startswith(f"**{n} flagged items**") for m in at.markdown)
    run = sql(pipeline_snapshot, "select run_id, status from ops.runs").row(0, named=True)
    at = open_page(PAGES[3])
    assert f"**{run['status']}**" in at.success[0].value


# --- peak times ---------------------------------------------------------------------------


def test_peak_times_names_the_busiest_slot(serve, snapshot) -> None:
    serve(snapshot)
    top = sql(
        snapshot,
        "select weekday, hour, sum(mean_per_week) as m from marts.activity_heatmap "
        "where source = 'demo' and activity_type in ('question', 'answer', 'comment', 'post', 'reply') "
        "group by weekday, hour order by m desc, weekday, hour limit 1",
    ).row(0, named=True)
    at = open_page(PAGES[0], "demo")
    sentence = at.success[0].value
    expected = f"Busiest: {WEEKDAYS[top['weekday'] - 1]} {top['hour']:02d}:00–{top['hour'] + 1:02d}:00, {top['m']:.1f} "
    assert sentence.startswith(expected), sentence
    assert any("Europe\\/Berlin" in m.value for m in at.markdown), "the community timezone is shown"
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
    at = open_page(PAGES[0], "demo")
    at.selectbox(key="peak_activity").set_value("comment").run()
    assert not at.exception
    assert at.success[0].value.startswith(f"Busiest: {WEEKDAYS[top['weekday'] - 1]} {top['hour']:02d}:00")
    assert "comments/week" in at.success[0].value


def test_peak_times_notes_excluded_day_precision_votes(serve, snapshot, facts) -> None:
    serve(snapshot)
    at = open_page(PAGES[0], "beer")
    notes = [i.value for i in at.info if "Day-precision" in i.value]
    assert notes and f"{facts.beer_day_precision_upvotes} upvotes" in notes[0]


# --- trending -----------------------------------------------------------------------------


def test_trending_ranks_latest_week(serve, snapshot, facts) -> None:
    serve(snapshot)
    expected = sql(
        snapshot,
        "select topic from marts.trending_topics where source = 'demo' and rank is not null and "
        "week_start = (select max(week_start) from marts.trending_topics where source = 'demo') order by rank",
    )["topic"].to_list()
    assert expected == list(facts.demo_topics_latest)
    at = open_page(PAGES[1], "demo")
    table = at.dataframe[0].value
    assert table["topic"].tolist() == expected
    assert table["status"].tolist()[:2] == ["hot", "hot, new"]
    assert table["example_content_ids"].tolist()[0] == "demo:t1, demo:t5"
    at.toggle(key="trend_all").set_value(True).run()
    assert "obscure" in at.dataframe[0].value["topic"].tolist()


def test_trending_other_week(serve, snapshot) -> None:
    serve(snapshot)
    at = open_page(PAGES[1], "demo")
    weeks = at.selectbox(key="trend_week").options
    assert len(weeks) == 3 and weeks == sorted(weeks, reverse=True)
    at.selectbox(key="trend_week").set_value(at.selectbox(key="trend_week").options[1]).run()
    assert not at.exception
    assert at.dataframe[0].value["topic"].tolist() == ["hops"]


# --- moderation queue ---------------------------------------------------------------------


def test_queue_lists_flagged_items_by_priority(serve, snapshot, facts) -> None:
    serve(snapshot)
    n = sql(snapshot, "select count(*) as n from marts.moderation_queue where source = 'demo'")["n"][0]
    assert n == facts.demo_queue_size
    at = open_page(PAGES[2], "demo")
    assert any(m.value.startswith(f"**{n} flagged items**") for m in at.markdown)
    headers = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert [h.split(" · ")[1] for h in headers] == [f"priority {i}" for i in range(1, n + 1)]
    assert "hold recommended" in headers[0]
    assert len(at.get("plotly_chart")) == 1 + n  # label summary + one score chart per item
    texts = [t.value for t in at.text]
    assert "Author: Author u1 (demo:u1) · prior flags: 1" in texts
    assert any("model lexical:alt-profanity-check (fallback lexical model)" in t for t in texts)


def test_queue_filters(serve, snapshot) -> None:
    serve(snapshot)
    at = open_page(PAGES[2], "demo")
    at.slider(key="queue_min_score").set_value(0.9).run()
    strong = sql(snapshot, "select count(*) as n from marts.moderation_queue where source = 'demo' and max_score >= 0.9")
    assert any(m.value.startswith(f"**{strong['n'][0]} flagged items**") for m in at.markdown)
    at.slider(key="queue_min_score").set_value(0.0).run()
    at.multiselect(key="queue_labels").set_value(["threat"]).run()
    assert any(m.value.startswith("**1 flagged items**") for m in at.markdown)
    assert any(t.value == "Title: I will find you" for t in at.text)
    at.multiselect(key="queue_labels").set_value([]).run()
    at.slider(key="queue_min_score").set_value(1.0).run()
    assert any("No flagged items match" in i.value for i in at.info)


def test_queue_shows_hostile_content_as_literal_text(serve, snapshot, facts) -> None:
    serve(snapshot)
    at = open_page(PAGES[2], "demo")
    texts = [t.value for t in at.text]
    assert facts.hostile_body in [c.value for c in at.code], "the body is shown verbatim (st.code, no language)"
    assert {c.proto.language for c in at.code} == {"plaintext"}
    assert f"Title: {facts.hostile_title}" in texts
    for value in rendered_markup(at) + plotly_specs(at):
        assert "evil" not in value and "<script" not in value and "<b>" not in value, value
    assert not at.html and not at.image, "no raw HTML or image elements"


# --- pipeline health ----------------------------------------------------------------------


def test_pipeline_health_latest_run_and_details(serve, snapshot, facts) -> None:
    serve(snapshot)
    latest = sql(
        snapshot, "select run_id, status from ops.runs where source = 'demo' order by started_at desc limit 1"
    ).row(0, named=True)
    at = open_page(PAGES[3], "demo")
    banner = at.success[0].value
    assert latest["run_id"].replace("-", "\\-") in banner and f"**{latest['status']}**" in banner
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


def test_pipeline_health_failed_run_highlights_critical_failures(serve, snapshot) -> None:
    serve(snapshot)
    at = open_page(PAGES[3], "demo")
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

    frame = pl.DataFrame({"title": ["=HYPERLINK(\"http://evil\")", "fine"], "ids": [["a", "b"], []], "n": [-1, 2]})
    assert data.to_csv(frame).decode().splitlines() == [
        "title,ids,n",
        "\"'=HYPERLINK(\"\"http://evil\"\")\",a; b,-1",
        "fine,\"\",2",
    ]
