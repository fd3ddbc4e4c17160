"""The dashboards in a real browser: Playwright drives Debian's Chromium against ``streamlit run``.

A snapshot is built by the real pipeline (``pulse.steps.run_pipeline``, lexical scorer) on the
beer.stackexchange dump; the test starts ``streamlit run dashboards/app.py`` on a free
localhost port, opens every analytics page at 1440 x 900, waits until each plotly chart has
drawn its SVG and each table its canvas, checks that the key numbers (computed here from the
snapshot with plain SQL) are on screen, and saves a full-page screenshot per page in
``tmp/artifacts/browser/`` (``PULSE_ARTIFACTS`` overrides the folder), plus the first screen
(1440 x 900) of the Overview and Trending as ``overview.png`` and ``trending.png`` (the
README's pictures are copies of these). It also checks issue #18's analytics points in the
browser: the shared default date range kept across pages, thread links, the trending default
week and burst timeline, the best-time ranking figure, and that no request leaves the machine.
The server is always stopped, whatever happens.

Chromium comes from the system (``apt install chromium``; Playwright downloads no browser).
Without it the test is skipped with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.browser.harness import REPO, TIMEOUT_MS, chromium_browser, idle, sign_in, streamlit_app

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@pytest.fixture(scope="module")
def snapshot(beer_dump: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The beer dump (the vendored slice) through the real pipeline (lexical scorer), published to a serving snapshot."""
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    folder = tmp_path_factory.mktemp("browser")
    settings = load_settings(warehouse=folder / "warehouse.duckdb", serving=folder / "serving.duckdb", scorer="lexical")
    run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    return Path(settings.serving)


VIEWER = ("viewer", "viewer-password-0001")  # a manager account in a throwaway review store


@pytest.fixture(scope="module")
def review_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A review store with one manager account (the dashboards need a signed-in user)."""
    from moderation.review_store import ReviewStore

    url = f"sqlite:///{tmp_path_factory.mktemp('review') / 'review.sqlite'}"
    store = ReviewStore(url, bcrypt_rounds=4)
    store.create_schema()
    store.add_user(VIEWER[0], name="Viewer", email="viewer@example.org", role="manager", password=VIEWER[1])
    store.dispose()
    return url


@pytest.fixture(scope="module")
def server(snapshot: Path, review_store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run dashboards/app.py`` on a free localhost port; stopped afterwards, always."""
    env = {
        "PULSE_SERVING": str(snapshot),
        "PULSE_REVIEW_STORE_URL": review_store_url,
        "PULSE_AUTH_COOKIE_KEY": "test-only-cookie-key-0123456789",
    }
    with streamlit_app(env, tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
        yield url


VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator:
    """One headless Chromium for the module."""
    with chromium_browser(chromium) as browser:
        yield browser


@pytest.fixture(scope="module")
def browser_page(browser, server: str) -> Iterator:
    """One Chromium page at 1440 x 900, every request it makes recorded in ``page.requests``."""
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.set_default_timeout(TIMEOUT_MS)
    # sign in once; the cookie signs later page loads (deep links) in
    sign_in(page, server, *VIEWER, greeting="Signed in as Viewer")
    page.wait_for_timeout(1500)  # let the cookie component store the cookie
    yield page
    page.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where the screenshots go."""
    folder = Path(os.environ.get("PULSE_ARTIFACTS", REPO / "tmp" / "artifacts")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sql(snapshot: Path, query: str, params: list | None = None) -> list[tuple]:
    """Plain read of the snapshot: what the page should show."""
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def open_and_render(page, url: str, path: str, charts: int, tables: int = 0) -> str:
    """Open ``url/path``, wait for ``charts`` plotly SVGs and ``tables`` grid canvases; return the page text."""
    page.goto(f"{url}/{path}", wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] svg.main-svg').length >= n",
        arg=charts,
    )
    if tables:
        page.wait_for_function(
            "(n) => document.querySelectorAll('[data-testid=\"stDataFrame\"] canvas').length >= n", arg=tables
        )
    # Streamlit shows a status widget while the script runs; wait until it is gone, then let
    # plotly finish its transition before the screenshot
    idle(page, before_ms=0, after_ms=500)
    return page.inner_text("body")


def shoot(page, artifacts: Path, name: str) -> Path:
    """Screenshot of the whole page as ``<artifacts>/<name>.png``.

    Streamlit scrolls inside its main container, not the document, so a "full page" screenshot
    would stop at the fold: the viewport is stretched to the content's height first.
    """
    path = artifacts / f"{name}.png"
    size = page.viewport_size
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stAppViewContainer"]\')].map(e => e.scrollHeight), window.innerHeight)'
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 12_000)})
    try:
        page.wait_for_function(
            "(n) => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] svg.main-svg').length >= n",
            arg=page.evaluate("() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length"),
        )
        page.wait_for_timeout(700)  # plotly re-lays out to the new width/height
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    assert path.stat().st_size > 10_000
    return path


def fold(page, artifacts: Path, name: str) -> Path:
    """Screenshot of the first screen (the 1440 x 900 viewport) as ``<artifacts>/<name>.png``."""
    path = artifacts / f"{name}.png"
    page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def date_range(page) -> tuple[str, str]:
    """The page's date range as ISO dates, e.g. ``("2014-01-21", "2016-12-10")`` (the field's hidden inputs)."""
    start, end = (field.input_value() for field in page.get_by_test_id("stDateInput").locator("input").all())
    return start, end


def pick_range(page, start: date, end: date, heading: str) -> None:
    """Type ``start`` and ``end`` into the date-range field segment by segment, then leave it (click ``heading``)."""
    segments = page.get_by_test_id("stDateInput").locator('[role="spinbutton"]')
    values = [f"{start:%Y}", f"{start:%m}", f"{start:%d}", f"{end:%Y}", f"{end:%m}", f"{end:%d}"]
    for i, value in enumerate(values):
        segments.nth(i).click()
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    page.keyboard.press("Escape")
    page.get_by_role("heading", name=heading).click()


def downloaded(page, index: int = 0) -> str:
    """The text of the CSV behind the page's ``index``-th download button."""
    with page.expect_download() as info:
        page.get_by_test_id("stDownloadButton").nth(index).locator("button").click()
    return Path(info.value.path()).read_text()


def metric(page, label: str) -> str:
    """The text of the metric tile whose label is ``label`` (label, value, delta)."""
    return page.get_by_test_id("stMetric").filter(has_text=label).inner_text()


def test_overview(browser_page, server, snapshot, artifacts) -> None:
    (first,) = sql(
        snapshot, "select min(day) from marts.engagement_daily where dau > 0 or new_content > 0 or events > 0"
    )[0]
    (last,) = sql(snapshot, "select max(day) from marts.engagement_daily")[0]
    (avg_dau,) = sql(
        snapshot, "select avg(dau) from marts.engagement_daily where day > ?", [last - timedelta(days=28)]
    )[0]
    (prev_dau,) = sql(
        snapshot, "select avg(dau) from marts.engagement_daily where day > ? and day <= ?",
        [last - timedelta(days=56), last - timedelta(days=28)],
    )[0]  # fmt: skip
    (mau,) = sql(snapshot, "select mau from marts.engagement_daily where day = ?", [last])[0]
    word = "up" if avg_dau > prev_dau * 1.05 else "down" if avg_dau < prev_dau * 0.95 else "flat"
    text = open_and_render(browser_page, server, "", charts=2, tables=1)
    # the default range is the data's own (2014-01-21 to 2016-12-10 on the slice), not the last 365 days
    assert date_range(browser_page) == (f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}")
    assert f"Charts: {first:%Y-%m-%d} to {last:%Y-%m-%d}." in text
    assert (
        f"Engagement is {word}: {avg_dau:.1f} daily active users on average in the 28 days to {last:%Y-%m-%d}" in text
    )
    assert f"against {prev_dau:.1f} in the 28 days before" in text
    assert "Monthly active users" in text and f"\n{mau}\n" in text
    assert "-0%" not in text and "e-0" not in text  # no red "-0%", no 4.12e-1
    assert "MAU warm-up (30 days)" in text  # the shaded warm-up in the active-members chart
    assert "Hot right now" in text
    fold(browser_page, artifacts, "overview")
    shoot(browser_page, artifacts, "1_overview")
    # each hot thread links to its page on beer.stackexchange.com (the CSV has what the table shows)
    top_id, top_title = sql(snapshot, "select content_id, title from marts.hot_content order by rank limit 1")[0]
    rows = list(csv.DictReader(io.StringIO(downloaded(browser_page, 0))))
    assert (rows[0]["title"], rows[0]["link"]) == (top_title, f"https://beer.stackexchange.com/questions/{top_id[1:]}")


def test_date_range_is_kept_across_pages(browser_page, server, snapshot) -> None:
    """A range typed on the Overview is the range of Peak times, Trending and Best time after a click in the menu."""
    open_and_render(browser_page, server, "", charts=2, tables=1)
    pick_range(browser_page, date(2016, 1, 4), date(2016, 6, 26), "Overview")
    browser_page.get_by_text("Charts: 2016-01-04 to 2016-06-26").wait_for()
    for title, url_path, charts in (
        ("Peak times", "peak_times", 2),
        ("Trending topics", "trending", 3),
        ("Best time to post", "best_time", 1),
    ):
        browser_page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
        browser_page.wait_for_url(f"**/{url_path}")
        browser_page.wait_for_function(
            "(n) => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] svg.main-svg').length >= n", arg=charts
        )
        idle(browser_page, before_ms=300)
        assert date_range(browser_page) == ("2016-01-04", "2016-06-26"), title


def test_peak_times(browser_page, server, snapshot, artifacts) -> None:
    weekday, hour, mean = sql(
        snapshot,
        "select weekday, hour, sum(mean_per_week) from marts.activity_heatmap "
        "where activity_type in ('question', 'answer', 'comment') group by all order by 3 desc, 1, 2 limit 1",
    )[0]
    (flagged,) = sql(snapshot, "select count(*) from marts.moderation_queue")[0]
    text = open_and_render(browser_page, server, "peak_times", charts=2)
    assert f"Busiest: {WEEKDAYS[weekday - 1]} {hour:02d}:00–{hour + 1:02d}:00, {mean:.1f} new posts/week" in text
    assert "Day-precision events are excluded: 5,330 upvotes" in text  # the slice's upvotes on posts it holds
    assert f"{flagged} flagged items" in text and "No moderator decisions yet" in text
    shoot(browser_page, artifacts, "2_peak_times")


def test_peak_times_in_another_time_zone(browser_page, server, snapshot, artifacts) -> None:
    zone = "America/Los_Angeles"
    weekday, hour, _events = sql(
        snapshot,
        "select isodow(l), hour(l), sum(events) from (select timezone(?, timezone('UTC', bucket_start)) as l, events "
        "from marts.activity_timeline where activity_type in ('question', 'answer', 'comment')) "
        "group by all order by 3 desc, 1, 2 limit 1",
        [zone],
    )[0]
    open_and_render(browser_page, server, "peak_times", charts=2)
    browser_page.get_by_test_id("stSelectbox").filter(has_text="Time zone").click()
    browser_page.keyboard.type(zone)
    browser_page.keyboard.press("Enter")
    expected = f"Busiest: {WEEKDAYS[weekday - 1]} {hour:02d}:00–{(hour + 1) % 24:02d}:00"
    # Streamlit redraws element by element: wait for the new sentence, not just any change
    browser_page.wait_for_function(
        "([z, s]) => document.body.innerText.includes('Times are local to ' + z) && document.body.innerText.includes(s)",
        arg=[zone, expected],
    )
    idle(browser_page, before_ms=0)
    text = browser_page.inner_text("body")
    assert expected in text and "the community's own zone is UTC" in text
    browser_page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] svg.main-svg').length >= 2"
    )
    browser_page.wait_for_timeout(500)
    shoot(browser_page, artifacts, "3_peak_times_los_angeles")


def test_trending(browser_page, server, snapshot, artifacts) -> None:
    (week,) = sql(
        snapshot, "select max(period_start) from marts.trending_topics where period = 'week' and is_emerging"
    )[0]
    emerging = [t for (t,) in sql(
        snapshot, "select topic from marts.trending_topics where period = 'week' and period_start = ? "
        "and is_emerging order by rank", [week])]  # fmt: skip
    hot = sql(
        snapshot,
        "select count(*) from marts.trending_topics where period = 'week' and period_start = ? and is_hot",
        [week],
    )[0][0]
    text = open_and_render(browser_page, server, "trending", charts=4, tables=2)
    assert f"Week of {week:%Y-%m-%d}" in text
    assert f"{len(emerging)} emerging and {hot} hot topics" in text
    assert f"{emerging[0]} (" in text  # the lead emerging topic with its example threads
    assert "Burst timeline: how far each emerging topic rose above its own baseline" in text
    fold(browser_page, artifacts, "trending")
    shoot(browser_page, artifacts, "4_trending")
    # daily: the latest day (2016-12-10) has no emerging topic; the page opens on the latest that has
    latest_day, emerging_day = sql(
        snapshot, "select max(period_start), max(period_start) filter (where is_emerging) "
        "from marts.trending_topics where period = 'day'")[0]  # fmt: skip
    assert latest_day > emerging_day
    browser_page.get_by_test_id("stRadio").get_by_text("Daily").click()
    browser_page.get_by_text(f"Day of {emerging_day:%Y-%m-%d}:").wait_for()
    idle(browser_page)
    assert "No topic is emerging" not in browser_page.inner_text("body")


def test_best_time_to_post(browser_page, server, snapshot, artifacts) -> None:
    weekday, hour, posts, mean = sql(
        snapshot, "select weekday, hour, posts, mean_engagement from marts.best_time_to_post where rank = 1"
    )[0]
    (never,) = sql(snapshot, "select count(*) from marts.response_times where not is_answered")[0]
    text = open_and_render(browser_page, server, "best_time", charts=2, tables=1)
    assert f"Post on {WEEKDAYS[weekday - 1]} {hour:02d}:00–{hour + 1:02d}:00 (UTC)" in text
    assert f"got {mean:.1f} responses within 7 days" in text and f"{posts} threads" in text
    (low,), (second,) = sql(
        snapshot, "select engagement_ci_low from marts.best_time_to_post where rank <= 2 order by rank"
    )
    assert f"Slots are ranked by the lower end of that 95% interval, the ranking figure (here {low:.2f})" in text
    assert f"(ranking figure {second:.2f}; mean" in text
    assert str(never) in metric(browser_page, "Never answered").splitlines()
    assert "Votes are not counted here" in text
    shoot(browser_page, artifacts, "5_best_time_to_post")


def test_no_request_leaves_the_machine(browser, server) -> None:
    """Sign-in and every page of a manager: zero requests to any host but the app's (icon and fonts included)."""
    page = browser.new_page(viewport=VIEWPORT)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_default_timeout(TIMEOUT_MS)
    try:
        sign_in(page, server, *VIEWER, greeting="Signed in as Viewer")
        titles = page.get_by_test_id("stSidebarNav").locator("a").all_inner_texts()
        assert len(titles) >= 6
        for i in range(len(titles)):
            page.get_by_test_id("stSidebarNav").locator("a").nth(i).click()
            idle(page, before_ms=1000, after_ms=1000)
        icon = page.evaluate("() => document.querySelector('link[rel~=\"icon\"]').href")
    finally:
        page.close()
    assert icon.startswith(
        (server, "data:image/svg+xml")
    )  # the page icon comes from the app (dashboards/static/icon.svg)
    assert any("/static/media/" in url and url.endswith(".woff2") for url in requests)  # its own fonts
    assert [url for url in requests if not url.startswith((server, "data:", "blob:"))] == []
