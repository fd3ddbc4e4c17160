"""The real-browser test harness: ``streamlit run dashboards/app.py`` as a subprocess and Chromium via Playwright.

Shared by tests/browser/*.py and tests/security/test_hostile_browser.py (import it as
``tests.browser.harness``: pytest's importlib mode makes ``tests`` a namespace package). The
``chromium`` fixture (the system executable; skip, or fail under ``CI=true``, when it is absent)
lives in tests/conftest.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: Arguments for Debian's Chromium in a container: headless, no sandbox, no background traffic.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: Playwright's default timeout for the pages, in milliseconds (the machine is shared and slow).
TIMEOUT_MS = 60_000
#: True while Streamlit runs the script (its status widget is shown).
STATUS_WIDGET_GONE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, deadline_s: float = 60.0) -> None:
    """Poll Streamlit's health endpoint ``url/_stcore/health`` until it answers ``ok``.

    Raises RuntimeError when the server exits first, TimeoutError after ``deadline_s`` seconds.
    """
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"streamlit did not become healthy at {url} within {deadline_s:.0f} s")


@contextmanager
def streamlit_app(env: Mapping[str, str], log: Path) -> Iterator[str]:
    """``streamlit run dashboards/app.py`` on a free localhost port; yields its base URL ``http://127.0.0.1:<port>``.

    ``env`` is added to ``os.environ`` (usage stats are always off). The server runs in its own
    process group with its output in ``log``; it is stopped afterwards, always (SIGTERM to the
    group, SIGKILL after 15 s), and the last 3,000 characters of the log are printed when it
    ended abnormally.
    """
    port = free_port()
    full_env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **env}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "dashboards" / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            print(log.read_text(errors="replace")[-3000:])


@contextmanager
def chromium_browser(executable: str) -> Iterator[Any]:
    """A headless Playwright ``Browser`` on the Chromium at ``executable``; closed afterwards, always."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def idle(page: Any, before_ms: int = 300, after_ms: int = 0) -> None:
    """Wait until Streamlit has finished the current run.

    Waits ``before_ms`` (so a run just triggered has started), then until the status widget is
    gone, then ``after_ms`` (to let charts finish drawing); a zero pause is skipped.
    """
    if before_ms:
        page.wait_for_timeout(before_ms)
    page.wait_for_function(STATUS_WIDGET_GONE)
    if after_ms:
        page.wait_for_timeout(after_ms)


def sign_in(page: Any, url: str, username: str, password: str, greeting: str) -> None:
    """Open ``url`` and sign in through the app's form; return once ``greeting`` is on the page."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(greeting).wait_for()
