"""The review app in a real browser: Playwright drives Debian's Chromium against ``streamlit run``.

The queue is built from real data: the beer.stackexchange dump through the real pipeline
(``pulse.steps.run_pipeline``, lexical scorer). One hostile item is added to the published
snapshot's queue (a ``<script>``, a ``javascript:`` link, image Markdown and an ``<img onerror>``
next to an insult) to prove that member text stays inert in the DOM. Accounts live in a SQLite
review store in a temporary folder. Screenshots go to ``/tmp/review_*.png``.

Flow: a moderator signs in through the form, opens the queue, sees the driver word
highlighted, removes the item with a reason and sees it leave the pending list at once; a
manager signs in and finds no queue (neither in the menu nor by URL).

Chromium comes from the system (``apt install chromium``); without it the test is skipped,
except under ``CI=true``, where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.browser.harness import TIMEOUT_MS, chromium_browser, idle, streamlit_app
from tests.browser.harness import sign_in as sign_in_form

HOSTILE_ID = "beer:hostile-1"
HOSTILE_TITLE = "<b>bold</b> [win](javascript:alert(2))"
HOSTILE_BODY = (
    "<script>alert(1)</script> you stupid idiot ![x](http://evil.example/img.png) "
    '<img src=x onerror=alert(3)> <a href="javascript:alert(4)">link</a> see http://evil.example/'
)
ACCOUNTS = {"mod": ("moderator", "moderator-pass-0001"), "boss": ("manager", "manager-password-01")}


@pytest.fixture(scope="module")
def snapshot(beer_dump: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The beer dump through the real pipeline (lexical scorer), plus one hostile queue item at priority 0."""
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    folder = tmp_path_factory.mktemp("review_browser")
    settings = load_settings(warehouse=folder / "warehouse.duckdb", serving=folder / "serving.duckdb", scorer="lexical")
    run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    con = duckdb.connect(str(settings.serving))
    try:
        con.execute("create temp table h as select * from marts.moderation_queue order by priority limit 1")
        con.execute(
            "update h set content_id = ?, title = ?, body_text = ?, content_hash = 'hostile-hash', priority = 0, "
            "created_at = (select max(created_at) from marts.moderation_queue)",
            [HOSTILE_ID, HOSTILE_TITLE, HOSTILE_BODY],
        )
        con.execute("insert into marts.moderation_queue select * from h")
    finally:
        con.close()
    return Path(settings.serving)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from moderation.review_store import ReviewStore

    url = f"sqlite:///{tmp_path_factory.mktemp('review_store') / 'review.sqlite'}"
    store = ReviewStore(url, bcrypt_rounds=4)
    store.create_schema()
    for username, (role, password) in ACCOUNTS.items():
        store.add_user(username, name=username.title(), email=f"{username}@example.org", role=role, password=password)
    store.dispose()
    return url


@pytest.fixture(scope="module")
def server(snapshot: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run dashboards/app.py`` on a free localhost port; stopped afterwards, always."""
    env = {
        "PULSE_SERVING": str(snapshot),
        "PULSE_REVIEW_STORE_URL": store_url,
        "PULSE_SCORER": "lexical",
        "PULSE_AUTH_COOKIE_KEY": "test-only-cookie-key-0123456789abcdef",
    }
    with streamlit_app(env, tmp_path_factory.mktemp("streamlit_review") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator:
    with chromium_browser(chromium) as b:
        yield b


def sign_in(browser, url: str, username: str):
    """A fresh browser context (own cookies) signed in as ``username`` through the form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in_form(page, url, username, ACCOUNTS[username][1], greeting=f"Signed in as {username.title()}")
    idle(page)
    return context, page


def shoot(page, name: str) -> Path:
    """A full-height screenshot at /tmp/review_<name>.png (Streamlit scrolls inside its main container)."""
    path = Path(f"/tmp/review_{name}.png")
    size = page.viewport_size
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stAppViewContainer"]\')].map(e => e.scrollHeight), window.innerHeight)'
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 8_000)})
    page.wait_for_timeout(700)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    assert path.stat().st_size > 10_000
    return path


PAYLOAD_IN_DOM = """() => {
  const bad = document.querySelectorAll(
    'img[src="x"], img[src*="evil"], a[href^="javascript"], a[href*="evil"], [onerror], b');
  const scripts = [...document.scripts].filter(s => s.textContent.includes('alert('));
  return bad.length + scripts.length;
}"""


def test_moderator_reviews_and_removes_with_a_reason(browser, server, snapshot, store_url) -> None:
    from moderation.review_store import ReviewStore

    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        (n_queue,) = con.execute("select count(*) from marts.moderation_queue").fetchone()
    finally:
        con.close()
    assert n_queue >= 2, "the real dump's flagged items plus the hostile one"
    context, page = sign_in(browser, server, "mod")
    try:
        page.get_by_role("link", name="Review queue").click()
        page.locator(".pulse-item-text").wait_for()
        idle(page)
        pending = page.get_by_test_id("stMetric").filter(has_text="Pending")
        assert pending.inner_text().split() == ["Pending", f"{n_queue:,}"]
        block = page.locator(".pulse-item-text")
        assert block.inner_text().startswith(HOSTILE_TITLE)  # the hostile item has priority 0: it is open
        assert "<script>alert(1)</script>" in block.inner_text(), "the payload is literal text"
        marks = page.locator("mark.pulse-driver").all_inner_texts()
        assert "idiot" in marks, marks
        assert page.evaluate(PAYLOAD_IN_DOM) == 0, "no element from the payload in the DOM"
        shoot(page, "queue")
        # remove with a reason
        page.get_by_role("combobox", name="Reason", exact=True).click()
        page.keyboard.type("Harassment")
        page.keyboard.press("Enter")
        idle(page)
        assert page.get_by_role("combobox", name="Reason", exact=True).input_value() == "Harassment or bullying"
        page.locator(".st-key-act_remove button").click()
        page.get_by_text(f"Removed {HOSTILE_ID}").wait_for()
        idle(page)
        assert pending.inner_text().split() == ["Pending", f"{n_queue - 1:,}"]
        assert page.get_by_test_id("stMetric").filter(has_text="Removed").inner_text().split() == ["Removed", "1"]
        assert HOSTILE_TITLE not in page.locator(".pulse-item-text").inner_text(), "the next item is open"
        shoot(page, "queue_after_remove")
        # keyboard: E escalates the item now open (focus outside any text field)
        page.get_by_role("heading", name="Review queue").click()
        page.keyboard.press("e")
        page.get_by_text("Escalated ").first.wait_for()
        idle(page)
        assert page.get_by_test_id("stMetric").filter(has_text="Escalated").inner_text().split() == ["Escalated", "1"]
    finally:
        context.close()
    store = ReviewStore(store_url)
    try:
        escalated, removed = store.decisions().iter_rows(named=True)  # newest first
    finally:
        store.dispose()
    assert (removed["content_id"], removed["action"], removed["reason_code"], removed["actor"]) == (
        HOSTILE_ID,
        "remove",
        "harassment",
        "mod",
    )
    assert escalated["action"] == "escalate" and escalated["content_id"] != HOSTILE_ID


def test_manager_has_no_queue(browser, server) -> None:
    context, page = sign_in(browser, server, "boss")
    try:
        nav = page.get_by_test_id("stSidebarNav").inner_text()
        assert "Moderation insights" in nav and "Review queue" not in nav and "Audit log" not in nav
        page.get_by_role("link", name="Moderation insights").click()
        page.get_by_text("Model–moderator agreement").wait_for()
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] svg.main-svg').length >= 2"
        )
        idle(page)
        assert page.evaluate(PAYLOAD_IN_DOM) == 0
        shoot(page, "insights_manager")
        page.goto(f"{server}/review_queue", wait_until="domcontentloaded")  # by URL: not served to a manager
        page.get_by_text("Signed in as Boss").wait_for()
        idle(page)
        assert page.locator(".pulse-item-text").count() == 0
        assert "Review queue" not in page.locator("h1").all_inner_texts()
    finally:
        context.close()
