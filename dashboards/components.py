"""Shared page furniture: the selected source, banners, headers, empty states, downloads.

Untrusted text (anything written by a community member: titles, bodies, author names, tags,
payloads) is only ever shown through :func:`untrusted_text` (``st.text``: no Markdown, no
HTML) or inside a dataframe cell. Pipeline-written notes shown inside Markdown elements go
through :func:`md_escape`; text placed in plotly labels goes through :func:`plotly_escape`.
"""

from __future__ import annotations

import html
import math
import re
from datetime import date, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data

SOURCE_STATE_KEY = "pulse_source"
"""Session-state key holding the source chosen in the sidebar (None: all sources)."""

_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def md_escape(text: str) -> str:
    """Backslash-escape every ASCII punctuation character so Markdown shows ``text`` literally."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def plotly_escape(text: str) -> str:
    """Escape ``text`` for a plotly label (plotly renders a subset of HTML, including links)."""
    return html.escape(text, quote=True)


def untrusted_text(text: str | None, *, prefix: str = "", limit: int | None = None) -> None:
    """Show untrusted ``text`` as plain text (``st.text``), optionally truncated to ``limit`` chars."""
    if text is None or text == "":
        return
    shown = text if limit is None or len(text) <= limit else text[:limit] + " …[truncated]"
    st.text(prefix + shown)


# --- sources ---------------------------------------------------------------------------


def list_sources() -> pl.DataFrame:
    """Known sources with ``source``, ``synthetic``, ``timezone``, ``description`` columns.

    From ``ops.sources``; when that is absent or empty, the distinct sources of ``ops.runs``
    (synthetic unknown, so False).
    """
    schema = {"source": pl.String, "synthetic": pl.Boolean, "timezone": pl.String, "description": pl.String}
    if data.table_exists("ops", "sources"):
        found = data.query(
            "select source, synthetic, timezone, description from ops.sources order by source"
        )
        if found.height:
            return found
    if data.table_exists("ops", "runs"):
        runs = data.query("select distinct source from ops.runs order by source")
        return runs.with_columns(
            synthetic=pl.lit(False), timezone=pl.lit(None, pl.String), description=pl.lit(None, pl.String)
        )
    return pl.DataFrame(schema=schema)


def selected_source() -> str | None:
    """The source chosen in the sidebar (set by ``app.py`` on every rerun); None means all."""
    return st.session_state.get(SOURCE_STATE_KEY)


def source_timezone(source: str | None) -> str | None:
    """The community's timezone from ``ops.sources`` (None when unknown)."""
    if source is None or not data.table_exists("ops", "sources"):
        return None
    found = data.query("select timezone from ops.sources where source = ?", [source])
    return found["timezone"][0] if found.height else None


# --- banners ---------------------------------------------------------------------------


def is_synthetic(source: str | None) -> bool:
    """Whether the source (any source, when None) is synthetic demo data per ``ops.sources``."""
    if not data.table_exists("ops", "sources"):
        return False
    where, params = data.source_clause(source)
    found = data.query(f"select count(*) as n from ops.sources where synthetic and {where}", params)
    return bool(found["n"][0])


def fallback_reason(source: str | None) -> str | None:
    """Why scores come from the fallback lexical model, or None when they do not.

    True when the source's latest run recorded ``scorer_is_fallback`` or any stored score in
    ``moderation.scores`` has ``is_fallback``. The reason is the run's ``scorer_note`` when
    there is one.
    """
    note: str | None = None
    run_fallback = False
    if data.table_exists("ops", "runs"):
        where, params = data.source_clause(source)
        latest = data.query(
            "select scorer_is_fallback, scorer_note from ops.runs "
            f"where {where} order by started_at desc limit 1",
            params,
        )
        if latest.height and latest["scorer_is_fallback"][0]:
            run_fallback = True
            note = latest["scorer_note"][0]
    n_fallback = 0
    if data.table_exists("moderation", "scores"):
        counts = data.query(
            "select count(*) filter (where is_fallback) as n_fallback, count(*) as n from moderation.scores"
        )
        n_fallback, n_all = int(counts["n_fallback"][0]), int(counts["n"][0])
        if n_fallback and not note:
            note = f"{n_fallback:,} of {n_all:,} stored scores were made by the fallback model"
    if not (run_fallback or n_fallback):
        return None
    return note or "the Detoxify model was not available for the latest run"


def banners(source: str | None) -> None:
    """Show the synthetic-data and fallback-model banners that apply to ``source``."""
    if is_synthetic(source):
        st.warning(
            "Synthetic demo data: these numbers describe a generated community, not a real one.",
            icon=":material/science:",
        )
    reason = fallback_reason(source)
    if reason is not None:
        st.info(
            f"Scores come from the fallback lexical model ({md_escape(reason)}). It scores only "
            "toxicity and misses threats without swear words.",
            icon=":material/warning:",
        )


def page_header(title: str, explanation: str) -> str | None:
    """Title, one-sentence explanation and banners; returns the selected source."""
    st.title(title)
    st.caption(explanation)
    source = selected_source()
    banners(source)
    return source


# --- empty states, tables, charts ------------------------------------------------------


def empty_state(message: str) -> None:
    """A clear, friendly message in place of a chart or table that has no data."""
    st.info(message, icon=":material/inbox:")


def require_table(schema: str, table: str, what: str) -> bool:
    """True when ``schema.table`` exists; otherwise shows an empty state naming ``what``."""
    if data.table_exists(schema, table):
        return True
    empty_state(
        f"No {what} in this snapshot yet (table `{schema}.{table}` is absent). "
        "Run the pipeline to publish it: `pulse run --source demo`."
    )
    return False


def show_table(df: pl.DataFrame, *, file_name: str, key: str, column_config: dict[str, Any] | None = None) -> None:
    """Show ``df`` as an interactive table with a CSV download button beneath it."""
    st.dataframe(data.list_to_text(df), hide_index=True, column_config=column_config, width="stretch")
    st.download_button(
        "Download CSV",
        data=data.to_csv(df),
        file_name=file_name,
        mime="text/csv",
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )


def count_axis(max_count: float) -> dict[str, Any]:
    """Plotly axis settings for counts: whole-number ticks from zero at a 1-2-5 step (≤ ~6 ticks)."""
    raw = max(float(max_count or 0) / 5, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return {"dtick": int(step), "rangemode": "tozero", "tickformat": ",d"}


def show_chart(fig: go.Figure, *, key: str | None = None) -> None:
    """Render a plotly figure at full width with a compact mode bar."""
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


# --- filters and figures shared by the analytics pages ----------------------------------

WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
"""ISO weekdays 1..7 by name (index ``weekday - 1``)."""


def hour_range(hour: int) -> str:
    """``20`` -> ``"20:00–21:00"`` (the hour-long slot starting at ``hour``)."""
    return f"{hour:02d}:00–{(hour + 1) % 24:02d}:00"


def slot_name(weekday: int, hour: int) -> str:
    """``(2, 20)`` -> ``"Tuesday 20:00–21:00"`` (ISO weekday, local hour)."""
    return f"{WEEKDAYS[weekday - 1]} {hour_range(hour)}"


def data_days(source: str | None) -> tuple[date, date] | None:
    """The first and last day of ``marts.engagement_daily`` for ``source`` (None when empty or absent).

    The marts' "current" period ends on the data's last day, never on today's date.
    """
    if not data.table_exists("marts", "engagement_daily"):
        return None
    where, params = data.source_clause(source)
    found = data.query(f"select min(day) as first, max(day) as last from marts.engagement_daily where {where}", params)
    first, last = found.row(0)
    if first is None or last is None:
        return None
    return first, last


def date_range_filter(
    first: date, last: date, *, key: str, default_days: int | None = None, container: Any = None
) -> tuple[date, date]:
    """A date-range picker limited to ``[first, last]``; returns the chosen ``(start, end)``, inclusive.

    Args:
        first, last: the data's first and last day (the picker's bounds).
        key: the widget key (unique per page).
        default_days: preselect the last ``default_days`` days ending on ``last``; None
            preselects the whole history.
        container: where to draw it (a column, the sidebar); default the page body.

    While a reader has picked only the first date of a range, that one day is used.
    """
    start = first if default_days is None else max(first, last - timedelta(days=default_days - 1))
    where = container if container is not None else st
    value = where.date_input(
        "Date range",
        value=(start, last),
        min_value=first,
        max_value=last,
        key=key,
        format="YYYY-MM-DD",
        help="Only data from these days (inclusive) is shown and downloaded.",
    )
    if isinstance(value, (tuple, list)):
        picked = [v for v in value if v is not None]
        if len(picked) >= 2:
            return min(picked[0], picked[1]), max(picked[0], picked[1])
        if len(picked) == 1:
            return picked[0], picked[0]
        return start, last
    if value is None:
        return start, last
    return value, value


def timezone_options(community: str) -> list[str]:
    """IANA zones for a selector: the community's zone and UTC first, then all others sorted."""
    import zoneinfo

    first = list(dict.fromkeys([community, "UTC"]))
    rest = sorted(z for z in zoneinfo.available_timezones() if z not in first and "/" in z)
    return first + rest


def pct_change(current: float | None, previous: float | None) -> float | None:
    """Relative change ``current / previous − 1`` (None when either is missing or previous is 0)."""
    if current is None or previous is None or previous == 0:
        return None
    return current / previous - 1


def csv_download(df: pl.DataFrame, *, file_name: str, key: str, label: str = "Download CSV") -> None:
    """A CSV download button for exactly ``df`` (list columns joined, formulas defused)."""
    st.download_button(
        label,
        data=data.to_csv(df),
        file_name=file_name,
        mime="text/csv",
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )
