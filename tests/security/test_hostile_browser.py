"""Hostile content is inert on every page, in a real browser (Playwright driving Debian's Chromium).

The hostile dump (tests/security/hostile_dump.py: script tags, ``onerror`` images, ``javascript:``
links, tracking pixels, Markdown images and links in titles, tags, comments and display names)
goes through the real pipeline; ``streamlit run dashboards/app.py`` serves the snapshot; an admin
signs in through the form and opens every page of the navigation (the review queue with an
item's detail too). On each page: no element built from a payload is in the DOM, no payload ran
(``window.__pwned`` stays undefined), nothing was fetched from the tracker's address, and across
the pages the payloads appear as plain text.

Chromium comes from the system; without it the test is skipped, except under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_dump import PAYLOADS

from tests.browser.harness import TIMEOUT_MS, chromium_browser, idle, sign_in, streamlit_app

ADMIN = ("admin", "admin-password-0001")

#: Elements a payload would create if it were rendered as HTML or Markdown.
PAYLOAD_ELEMENTS = """() => {
  const sel = 'img[src="x"], img[src*="127.0.0.1:9"], a[href^="javascript"], iframe[src^="javascript"], '
            + '[onerror*="__pwned"], [onload*="__pwned"], [href*="__pwned"], [src*="__pwned"]';
  const found = [...document.querySelectorAll(sel)].map(e => e.outerHTML.slice(0, 120));
  const scripts = [...document.scripts].filter(s => s.textContent.includes('__pwned')).map(s => 'script');
  return found.concat(scripts);
}"""


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from moderation.review_store import ReviewStore

    url = f"sqlite:///{tmp_path_factory.mktemp('hostile_review') / 'review.sqlite'}"
    store = ReviewStore(url, bcrypt_rounds=4)
    store.create_schema()
    store.add_user(
        ADMIN[0],
        name='<img src=x onerror="window.__pwned = 9"> Admin',
        email="a@example.org",
        role="admin",
        password=ADMIN[1],
    )
    store.dispose()
    return url


@pytest.fixture(scope="module")
def server(hostile_built: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run dashboards/app.py`` on the hostile snapshot; always stopped afterwards."""
    env = {
        "PULSE_SERVING": str(hostile_built / "serving.duckdb"),
        "PULSE_REVIEW_STORE_URL": store_url,
        "PULSE_SCORER": "lexical",
        "PULSE_AUTH_COOKIE_KEY": "test-only-cookie-key-hostile-0123456789",
    }
    with streamlit_app(env, tmp_path_factory.mktemp("streamlit_hostile") / "streamlit.log") as url:
        yield url


def _idle(page) -> None:
    idle(page, before_ms=400, after_ms=300)


def test_payloads_are_inert_text_on_every_page(chromium: str, server: str) -> None:
    requests: list[str] = []
    with chromium_browser(chromium) as browser:
        control = browser.new_page()  # positive control: the detectors see payloads rendered as HTML
        control.route("**/*", lambda route: route.abort())
        control.set_content("".join(PAYLOADS))
        control.wait_for_timeout(300)
        assert len(control.evaluate(PAYLOAD_ELEMENTS)) >= 5
        assert control.evaluate("() => typeof window.__pwned") == "number"
        control.close()
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda r: requests.append(r.url))
        sign_in(page, server, *ADMIN, greeting="Signed in as")
        _idle(page)
        nav = page.locator('[data-testid="stSidebarNav"] a')
        titles = [t.strip().splitlines()[-1].strip() for t in nav.all_inner_texts()]  # after the icon name
        assert len(titles) >= 9 and "Review queue" in titles and "Users" in titles, titles
        shown_as_text: dict[str, list[str]] = {}
        for title in titles:
            page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
            page.wait_for_selector('[data-testid="stMain"]')
            _idle(page)
            opener = page.locator('[data-testid="stMain"] button', has_text="Open")
            if title == "Review queue" and opener.count():  # an item's detail: body and author in full
                opener.first.click()
                _idle(page)
            assert page.evaluate(PAYLOAD_ELEMENTS) == [], title
            assert page.evaluate("() => typeof window.__pwned") == "undefined", title
            text = page.inner_text("body")
            shown_as_text[title] = [pl for pl in PAYLOADS if pl in text]
            assert "Traceback" not in text, title
    assert not [u for u in requests if "127.0.0.1:9" in u]  # no tracker or image was fetched
    pages_with_text = [t for t, found in shown_as_text.items() if found]
    # the payloads are on screen as plain text (where a page draws text into the DOM, not a canvas)
    assert pages_with_text, shown_as_text
    assert len({pl for found in shown_as_text.values() for pl in found}) >= 4, shown_as_text
