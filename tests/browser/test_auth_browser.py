"""Sign-in and least privilege in a real browser (issue #14, #18): Playwright drives Debian's
Chromium against ``streamlit run dashboards/app.py``.

- A sign-in cookie carries the account's session epoch: a copy of the cookie taken before a
  password change or "sign out everywhere" no longer signs a browser in, and the open session
  that took it is signed out at its next click; a cookie in the old format (no epoch) is refused.
- The URL of a page a role lacks answers with a short message instead of the default page.
- Nothing is served under ``/app/static/`` without signing in (static serving is off), though
  Data Docs exist and ``dashboards/static/icon.svg`` is in the repository; the page icon still
  comes from the app (as media).

The snapshot holds only ``ops.sources`` (the pages show empty states; sign-in is what is tested).
Screenshots go to ``tmp/artifacts/browser/auth_*.png`` (``PULSE_ARTIFACTS`` overrides the folder).
Chromium comes from the system; without it the test is skipped, except under ``CI=true``.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import jwt
import pytest
from typer.testing import CliRunner

from dashboards.auth import COOKIE_NAME, SESSION_ENDED_MESSAGE
from tests.browser.harness import REPO, TIMEOUT_MS, chromium_browser, idle, sign_in, streamlit_app

COOKIE_KEY = "test-only-cookie-key-auth-0123456789"
ACCOUNTS = {
    "mod": ("moderator", "moderator-pass-0001", "Mod"),
    "boss": ("manager", "manager-password-01", "Boss"),
    "dana": ("data_engineer", "data-engineer-pass-01", "Dana"),
}
DOCS_MARK = "DATA-DOCS-SECRET-h14s"
VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth_browser")


@pytest.fixture(scope="module")
def store(folder: Path):
    from moderation.review_store import ReviewStore

    store = ReviewStore(f"sqlite:///{folder / 'review.sqlite'}", bcrypt_rounds=4)
    store.create_schema()
    for username, (role, password, name) in ACCOUNTS.items():
        store.add_user(username, name=name, email=f"{username}@example.org", role=role, password=password)
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def server(folder: Path, store) -> Iterator[str]:
    snapshot = folder / "serving.duckdb"
    con = duckdb.connect(str(snapshot))
    con.execute("create schema ops")
    con.execute(
        "create table ops.sources (source varchar primary key, synthetic boolean not null, timezone varchar, description varchar)"
    )
    con.execute("insert into ops.sources values ('bare', false, 'UTC', null)")
    con.close()
    docs = folder / "data_docs" / "staging"
    docs.mkdir(parents=True)
    (docs / "index.html").write_text(f"<html><body>{DOCS_MARK}</body></html>", encoding="utf-8")
    env = {
        "PULSE_SERVING": str(snapshot),
        "PULSE_REVIEW_STORE_URL": store.engine.url.render_as_string(hide_password=False),
        "PULSE_AUTH_COOKIE_KEY": COOKIE_KEY,
        "PULSE_DATA_DOCS_DIR": str(folder / "data_docs"),
    }
    with streamlit_app(env, folder / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator:
    with chromium_browser(chromium) as b:
        yield b


@pytest.fixture(scope="module")
def artifacts() -> Path:
    out = Path(os.environ.get("PULSE_ARTIFACTS", REPO / "tmp" / "artifacts")) / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


def signed_in_context(browser, url: str, username: str):
    """A fresh context (own cookies) signed in as ``username`` through the form, its cookie stored."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, url, username, ACCOUNTS[username][1], greeting=f"Signed in as {ACCOUNTS[username][2]}")
    idle(page)
    for _ in range(50):  # the cookie component writes the cookie from the browser, a moment later
        if any(c["name"] == COOKIE_NAME for c in context.cookies()):
            break
        page.wait_for_timeout(200)
    return context, page


def open_with_cookies(browser, url: str, cookies: list[dict], path: str = ""):
    """A fresh context holding only ``cookies``, at ``url/path``, after the app's first runs."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_cookies(cookies)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/{path}", wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stApp"]')
    idle(page, before_ms=1500)
    page.wait_for_function(
        "() => document.body.innerText.includes('Signed in as') || !!document.querySelector('[data-testid=\"stForm\"]')"
    )
    idle(page, before_ms=1000)
    return context, page


def test_a_cookie_from_before_a_password_change_or_sign_out_everywhere_is_refused(
    browser, server, store, artifacts, monkeypatch
) -> None:
    context, page = signed_in_context(browser, server, "mod")
    cookies = context.cookies()
    (token,) = [c["value"] for c in cookies if c["name"] == COOKIE_NAME]
    claims = jwt.decode(token, COOKIE_KEY, algorithms=["HS256"])
    assert claims["username"] == "mod" and claims["epoch"] == 0
    # the cookie signs a new browser in while the account is unchanged
    copy, copied = open_with_cookies(browser, server, cookies)
    assert "Signed in as Mod" in copied.inner_text("body")
    copy.close()
    # sign out everywhere (CLI): the copied cookie is refused, the open session ends at its next click
    from pulse.cli import app

    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", store.engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(app, ["review", "sign-out-everywhere", "mod", "--actor", "lead"])
    assert result.exit_code == 0, result.output
    copy, copied = open_with_cookies(browser, server, cookies)
    text = copied.inner_text("body")
    assert "Signed in as" not in text and SESSION_ENDED_MESSAGE in text
    assert copied.get_by_role("button", name="Sign in").is_visible()
    copied.screenshot(path=str(artifacts / "auth_stale_cookie_refused.png"))
    copy.close()
    page.get_by_test_id("stSidebarNav").locator("a").nth(1).click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert SESSION_ENDED_MESSAGE in page.inner_text("body") and "Signed in as" not in page.inner_text("body")
    context.close()
    # signed in again (epoch 1), then the password changes: that cookie is refused too
    context, page = signed_in_context(browser, server, "mod")
    cookies = context.cookies()
    (token,) = [c["value"] for c in cookies if c["name"] == COOKIE_NAME]
    assert jwt.decode(token, COOKIE_KEY, algorithms=["HS256"])["epoch"] == 1
    store.set_password("mod", ACCOUNTS["mod"][1], actor="admin")  # same text, new hash: the epoch moves on
    copy, copied = open_with_cookies(browser, server, cookies)
    assert "Signed in as" not in copied.inner_text("body")
    copy.close()
    context.close()
    # a correctly signed cookie in the old format (username and expiry, no epoch) is refused
    old = jwt.encode({"username": "boss", "exp_date": time.time() + 3600}, COOKIE_KEY, algorithm="HS256")
    forged = [{"name": COOKIE_NAME, "value": old, "url": server}]
    copy, copied = open_with_cookies(browser, server, forged)
    assert "Signed in as" not in copied.inner_text("body")
    copy.close()
    actions = [(a["actor"], a["action"], a["target"]) for a in store.admin_actions(limit=2)]
    assert actions == [("admin", "password_reset", "mod"), ("lead", "signed_out_everywhere", "mod")]


@pytest.mark.parametrize(
    ("username", "path", "message"),
    [
        ("boss", "review_queue", "This page is for moderators and admins; you are signed in as manager."),
        ("boss", "data_docs", "This page is for admins and data engineers; you are signed in as manager."),
        ("dana", "overview", "This page is for moderators, managers and admins; you are signed in as data engineer."),
        ("mod", "users_admin", "This page is for admins; you are signed in as moderator."),
    ],
)
def test_a_page_the_role_lacks_answers_with_a_message(browser, server, artifacts, username, path, message) -> None:
    context, _ = signed_in_context(browser, server, username)
    cookies = context.cookies()
    context.close()
    context, page = open_with_cookies(browser, server, cookies, path)  # the URL typed into a new tab
    try:
        page.get_by_text(message).wait_for()
        idle(page)  # elements of the earlier sign-in run are gone once the run ends
        menu = page.get_by_test_id("stSidebarNav").inner_text().splitlines()
        headings = page.get_by_test_id("stMain").locator("h1").all_inner_texts()
        body = page.inner_text("body")
        page.screenshot(path=str(artifacts / f"auth_no_access_{username}_{path}.png"))
    finally:
        context.close()
    title = {"review_queue": "Review queue", "data_docs": "Data Docs", "overview": "Overview", "users_admin": "Users"}
    assert title[path] not in headings and title[path] not in menu, "only the message: no page content, not in the menu"
    assert f"Signed in as {ACCOUNTS[username][2]}" in body, "still signed in, not redirected to the sign-in form"


def _get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a plain GET without any cookie."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_nothing_is_served_at_app_static_without_sign_in(browser, server, folder) -> None:
    """Streamlit answers unknown paths with its app shell (200, text/html) for client-side routing;
    with static serving on, ``/app/static/icon.svg`` returned the SVG itself."""
    icon_file = (REPO / "dashboards" / "static" / "icon.svg").read_bytes()
    docs_file = folder / "data_docs" / "staging" / "index.html"
    shell = _get(f"{server}/no-such-page")[2]
    paths = [
        "app/static/icon.svg",
        "app/static/data_docs/staging/index.html",
        "app/static/staging/index.html",
        "app/static/index.html",
        f"app/static/{docs_file.as_posix().lstrip('/')}",
        f"app/static/../../{docs_file.as_posix().lstrip('/')}",
    ]
    for path in paths:
        status, content_type, body = _get(f"{server}/{path}")
        assert status in (400, 404) or (status == 200 and body == shell), (path, status, content_type)
        assert icon_file not in body and DOCS_MARK.encode() not in body, path
    # the icon is still the app's own (served as media once the page has loaded)
    context, page = signed_in_context(browser, server, "dana")
    icon = page.evaluate("() => document.querySelector('link[rel~=\"icon\"]').href")
    assert icon.startswith((server, "data:image/svg+xml")) and "/app/static/" not in icon
    # Data Docs are reachable after sign-in, for a data engineer: the Data Docs page lists the site
    page.get_by_test_id("stSidebarNav").get_by_text("Data Docs").click()
    page.get_by_text("staging (zip)").wait_for()
    context.close()
