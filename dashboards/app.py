"""Community Pulse dashboards: the entry point (``streamlit run dashboards/app.py``).

A router around the pages in ``dashboards/views/``: it sets up the page, checks that the
serving snapshot exists, offers the source selector in the sidebar (when there are several
sources) and runs the page chosen in the navigation menu. Everything shown is read from the
published snapshot ``serving.duckdb``, read-only; nothing here writes anywhere.

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

from dashboards import components, data

PAGES_DIR = Path(__file__).with_name("views")


def _pages() -> list[st.Page]:
    """The navigation menu, in order (the first page is the default)."""
    return [
        st.Page(PAGES_DIR / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(PAGES_DIR / "peak_times.py", title="Peak times", icon=":material/schedule:"),
        st.Page(PAGES_DIR / "trending.py", title="Trending topics", icon=":material/trending_up:"),
        st.Page(PAGES_DIR / "best_time.py", title="Best time to post", icon=":material/event_available:"),
        st.Page(PAGES_DIR / "moderation_queue.py", title="Moderation queue", icon=":material/shield:"),
        st.Page(PAGES_DIR / "model_quality.py", title="Model quality", icon=":material/fact_check:"),
        st.Page(PAGES_DIR / "pipeline_health.py", title="Pipeline health", icon=":material/monitor_heart:"),
    ]


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
    """Set up the page, pick the source, and run the selected page."""
    st.set_page_config(page_title="Community Pulse", page_icon=":material/monitoring:", layout="wide")
    page = st.navigation(_pages())
    try:
        path = data.serving_path()
    except ValueError as exc:  # pulse.settings.ConfigError
        st.error("The configuration is invalid; fix it and reload.", icon=":material/settings:")
        st.text(str(exc))
        return
    if not path.is_file():
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
