"""Community Pulse dashboards: the entry point (``streamlit run dashboards/app.py``).

A router around the pages in ``dashboards/views/``: it sets up the page, checks that the
serving snapshot exists, offers the source selector in the sidebar (when there are several
sources) and runs the page chosen in the navigation menu. Analytics are read from the
published snapshot ``serving.duckdb``, read-only. Everyone signs in first
(:mod:`dashboards.auth`); the menu depends on the role (:data:`PAGES`), and the URL of a page
the role lacks answers with a short message. Only the review pages write, and only to the
review store (moderators' decisions, user accounts), never to the warehouse.

Why ``views/`` and not ``pages/``: Streamlit treats a ``pages/`` folder beside the entry point
as a legacy (v1) multipage app until a run has called ``st.navigation``; on a fresh server
a deep link such as ``/trending`` then runs the page file alone, without this router (no
source selector, no snapshot check), and ``AppTest`` hits that path on every rerun.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import streamlit as st

from dashboards import auth, components, data

PAGES_DIR = Path(__file__).with_name("views")
# The browser-tab icon, served by the app itself: a ``:material/...:`` page icon makes the browser
# fetch the glyph from fonts.gstatic.com, a request that leaves the machine (and fails offline).
PAGE_ICON = Path(__file__).with_name("static") / "icon.svg"


# Every page, in menu order: (file in views/, title, icon, roles that may open it). (A comment, not
# a docstring: Streamlit's "magic" would print a bare string of the entry script on every page.)
PAGES: tuple[tuple[str, str, str, frozenset[str]], ...] = (
    ("overview.py", "Overview", ":material/dashboard:", auth.ANALYTICS_ROLES),
    ("peak_times.py", "Peak times", ":material/schedule:", auth.EVERYONE),
    ("trending.py", "Trending topics", ":material/trending_up:", auth.ANALYTICS_ROLES),
    ("best_time.py", "Best time to post", ":material/event_available:", auth.EVERYONE),
    ("review_queue.py", "Review queue", ":material/shield:", auth.ACTING_ROLES),
    ("audit_log.py", "Audit log", ":material/history:", auth.ACTING_ROLES),
    ("moderation_insights.py", "Moderation insights", ":material/insights:", auth.INSIGHT_ROLES),
    ("model_quality.py", "Model quality", ":material/fact_check:", auth.EVERYONE),
    ("pipeline_health.py", "Pipeline health", ":material/monitor_heart:", auth.EVERYONE),
    ("data_docs.py", "Data Docs", ":material/description:", auth.PIPELINE_ROLES),
    ("users_admin.py", "Users", ":material/group:", auth.ADMIN_ROLES),
)


def _no_access(allowed: frozenset[str], role: str):
    """A hidden stand-in for a page ``role`` may not open: its URL answers with a short message."""

    def page() -> None:  # no heading with the page's title: nothing of the page is shown
        st.error(auth.no_access_message(allowed, role), icon=":material/block:")

    return page


def _pages(role: str) -> list[st.Page]:
    """The navigation for ``role``, in menu order.

    Everyone signed in gets Peak times, Best time to post, Model quality and Pipeline health;
    moderators, managers and admins also the analytics pages that list members' titles (Overview,
    Trending topics) and Moderation insights (aggregates only); moderators and admins the Review
    queue and the Audit log; data engineers and admins Data Docs; admins Users. The default is
    Overview, or Pipeline health for roles without Overview. A page the role may not open is
    registered hidden (not in the menu) under its own URL, answering with
    :func:`dashboards.auth.no_access_message` instead of a silent redirect to the default page.
    """
    default = "overview.py" if role in auth.ANALYTICS_ROLES else "pipeline_health.py"
    pages = []
    for file, title, icon, allowed in PAGES:
        if role in allowed:
            pages.append(st.Page(PAGES_DIR / file, title=title, icon=icon, default=file == default))
        else:
            stand_in = _no_access(allowed, role)
            pages.append(st.Page(stand_in, title=title, icon=icon, url_path=Path(file).stem, visibility="hidden"))
    return pages


DEEP_LINK_KEY = "pulse_deep_link"
DEEP_LINK_SECONDS = 5.0


def _follow_deep_link(pages: list[st.Page], page: st.Page) -> None:
    """Keep a deep link (``/review_queue``) across the first reruns of a new session.

    streamlit-authenticator's cookie component makes the browser rerun the script as soon as it
    loads, and that rerun may arrive without the page from the URL, landing on the default
    page. Within the first few seconds of a session, a run that lands on the default page is
    switched to the page the URL named (a page this role may not open is a hidden stand-in that
    says so: a manager following a link to the queue reads "This page is for moderators and
    admins"). The link is recorded by :func:`_remember_deep_link` at
    the start of the session's first run (later runs may already carry the rewritten URL).
    """
    import time

    wanted, started = st.session_state.get(DEEP_LINK_KEY, ("", 0.0))
    if not wanted or page.url_path != "" or time.monotonic() - started > DEEP_LINK_SECONDS:
        return
    target = next((p for p in pages if p.url_path == wanted), None)
    if target is not None:
        st.session_state[DEEP_LINK_KEY] = ("", started)  # followed once
        st.switch_page(target)


def _remember_deep_link() -> None:
    """Record the page named by the URL of the session's first run (see :func:`_follow_deep_link`)."""
    if DEEP_LINK_KEY not in st.session_state:
        import time
        from urllib.parse import urlparse

        path = urlparse(st.context.url or "").path.rstrip("/").rsplit("/", 1)[-1]
        st.session_state[DEEP_LINK_KEY] = (path, time.monotonic())


def _missing_snapshot(path: Path) -> None:
    """Explain that no snapshot has been published yet and how to make one."""
    st.title("Community Pulse")
    st.error(
        f"No serving snapshot found at {components.md_escape(str(path))}.\n\n"
        "Publish one by running the pipeline, e.g. `pulse run --source demo` (or `make demo`), "
        "then reload this page. Set `PULSE_SERVING` to read a snapshot elsewhere.",
        icon=":material/folder_off:",
    )


def _source_selector(sources: pl.DataFrame) -> str | None:
    """Sidebar selector over the known sources (shown only when there are several)."""
    names = sources["source"].to_list()
    if not names:
        return None
    if len(names) == 1:
        st.sidebar.caption(f"Source: **{components.md_escape(names[0])}**")
        return names[0]
    return st.sidebar.selectbox(
        "Source", names, key="source", bind="query-params", help="The community whose data every page shows."
    )


def _snapshot_caption() -> None:
    """When the snapshot was published, in the sidebar."""
    published = data.snapshot_mtime()
    if published is not None:
        st.sidebar.caption(f"Snapshot published {published:%Y-%m-%d %H:%M} UTC (read-only).")


def main() -> None:
    """Set up the page, sign the user in, pick the source, and run the selected page."""
    st.set_page_config(page_title="Community Pulse", page_icon=PAGE_ICON, layout="wide")
    _remember_deep_link()
    try:
        from pulse.settings import load_settings

        settings = load_settings()
        path = data.serving_path()
        store = auth.review_store()
    except ValueError as exc:  # pulse.settings.ConfigError, or an unsupported review-store URL
        st.error("The configuration is invalid; fix it and reload.", icon=":material/settings:")
        st.text(str(exc))
        return
    user = auth.sign_in(store, settings)
    pages = _pages(user.role)
    page = st.navigation(pages)
    _follow_deep_link(pages, page)
    if not path.is_file():
        if page.title in ("Users", "Data Docs"):  # neither reads the snapshot
            page.run()
            return
        _missing_snapshot(path)
        return
    st.sidebar.title("Community Pulse")
    try:
        st.session_state[components.SOURCE_STATE_KEY] = _source_selector(components.list_sources())
        _snapshot_caption()
        page.run()
    except (duckdb.Error, pl.exceptions.PolarsError) as exc:
        st.error(
            "The snapshot could not be read as expected; it may come from an older or newer "
            "pipeline version. Re-run the pipeline to publish a fresh one.",
            icon=":material/construction:",
        )
        st.text(f"{type(exc).__name__}: {exc}")
    except data.SnapshotMissingError:
        _missing_snapshot(path)


main()
