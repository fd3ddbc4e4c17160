"""Shared page furniture: the selected source, banners, headers, empty states, downloads,
the date range every analytics page shares, and links to threads on their platform.

Untrusted text (anything written by a community member: titles, bodies, author names, tags,
payloads) is only ever shown through :func:`untrusted_text` (``st.text``: no Markdown, no
HTML) or inside a dataframe cell. Pipeline-written notes shown inside Markdown elements go
through :func:`md_escape`; text placed in plotly labels goes through :func:`plotly_escape`.
"""

from __future__ import annotations

import html
import math
import re
from datetime import date
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data

SOURCE_STATE_KEY = "pulse_source"
"""Session-state key holding the source chosen in the sidebar (None: all sources)."""
RANGE_STATE_KEY = "pulse_date_range"
"""Session-state key: ``{source: (start, end)}``, the date range last picked on any page (kept across pages)."""
FALLBACK_STATE_KEY = "pulse_fallback_banner_page"
"""Session-state key: the page on which this session was shown the fallback-model banner."""

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
        found = data.query("select source, synthetic, timezone, description from ops.sources order by source")
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
            f"select scorer_is_fallback, scorer_note from ops.runs where {where} order by started_at desc limit 1",
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


def user_role() -> str | None:
    """The signed-in user's role (:data:`dashboards.auth.USER_STATE_KEY`; None before sign-in)."""
    from dashboards import auth

    return getattr(st.session_state.get(auth.USER_STATE_KEY), "role", None)


def banners(source: str | None, page: str = "") -> None:
    """Show the synthetic-data and fallback-model banners that apply to ``source`` on ``page``.

    The fallback-model banner is one short line for everyone, plus its reason (which may name
    the model cache path) for admins only. It is shown on the first page of the session that
    needs it, on every rerun of that page; on the session's other pages a sidebar caption says
    the same in three words.
    """
    if is_synthetic(source):
        st.warning(
            "Synthetic demo data: these numbers describe a generated community, not a real one.",
            icon=":material/science:",
        )
    reason = fallback_reason(source)
    if reason is None:
        return
    shown_on = st.session_state.setdefault(FALLBACK_STATE_KEY, page)
    if shown_on != page:
        st.sidebar.caption("Scores: fallback lexical model.")
        return
    text = (
        "Scores come from the fallback lexical model: it scores only toxicity and misses threats without swear words."
    )
    from dashboards import auth

    if user_role() in auth.ADMIN_ROLES:
        text += f" Why (admins only): {md_escape(reason)}."
    st.info(text, icon=":material/warning:")


def page_header(title: str, explanation: str) -> str | None:
    """Title, one-sentence explanation and banners; returns the selected source."""
    st.title(title)
    st.caption(explanation)
    source = selected_source()
    banners(source, title)
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
    """The data's own range for ``source``: its first day with activity and the last day of
    ``marts.engagement_daily`` (None when there is no activity or the mart is absent).

    The first day is the first with an active member, new content or an engagement event:
    the mart's zero-filled rows start at the oldest account's creation (two years before any
    activity in the demo), which would open every chart on a flat zero. The marts' "current"
    period ends on the data's last day, never on today's date.
    """
    if not data.table_exists("marts", "engagement_daily"):
        return None
    where, params = data.source_clause(source)
    found = data.query(
        "select min(day) filter (where dau > 0 or new_content > 0 or events > 0) as first, max(day) as last "
        f"from marts.engagement_daily where {where}",
        params,
    )
    first, last = found.row(0)
    if first is None or last is None:
        return None
    return first, last


def date_range_filter(
    first: date,
    last: date,
    *,
    key: str,
    container: Any = None,
    shared: bool = False,
    default: tuple[date, date] | None = None,
) -> tuple[date, date]:
    """A date-range picker limited to ``[first, last]``; returns the chosen ``(start, end)``, inclusive.

    The picker starts at ``default`` (clipped to the bounds), else the whole ``[first, last]``. With ``shared`` (the analytics pages,
    whose bounds are the data's own days), one range per source is shared by the pages: the
    picker starts at the range last picked on any of them in this session
    (:data:`RANGE_STATE_KEY`, clipped to the bounds), and what the reader picks is remembered.

    Args:
        first, last: the data's first and last day (the picker's bounds).
        key: the widget key (unique per page).
        container: where to draw it (a column, the sidebar); default the page body.
        shared: start at, and remember, the range shared by the analytics pages.
        default: the range to start at when none is remembered (default: the bounds).

    While a reader has picked only the first date of a range, that one day is used.
    """
    source = selected_source()
    remembered = st.session_state.get(RANGE_STATE_KEY, {}).get(source) if shared else None
    start, end = first, last
    for wanted in (default, remembered):
        if wanted is not None and wanted[0] <= last and wanted[1] >= first:
            start, end = max(first, wanted[0]), min(last, wanted[1])
    where = container if container is not None else st
    value = where.date_input(
        "Date range",
        value=(start, end),
        min_value=first,
        max_value=last,
        key=key,
        format="YYYY-MM-DD",
        help="Only data from these days (inclusive) is shown and downloaded."
        + (" The range is kept across the analytics pages." if shared else ""),
    )
    picked = [v for v in (value if isinstance(value, (tuple, list)) else [value]) if v is not None]
    if len(picked) >= 2:
        chosen = (min(picked[0], picked[1]), max(picked[0], picked[1]))
        if shared:
            st.session_state.setdefault(RANGE_STATE_KEY, {})[source] = chosen
        return chosen
    if len(picked) == 1:
        return picked[0], picked[0]
    return start, end


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


def delta_text(change: float | None, unit: str = "%") -> tuple[str | None, dict[str, str]]:
    """A metric delta and its ``st.metric`` styling: ``"+12%"``, ``"-3 pts"``, or neutral ``"→ 0%"``.

    ``change`` is a relative change (``unit="%"``) or a difference of shares (``unit=" pts"``,
    shown as percentage points). A change that rounds to zero is shown grey with a neutral
    arrow instead of as a red ``-0%``. Returns ``(None, {})`` when ``change`` is None.
    """
    if change is None:
        return None, {}
    shown = f"{change * 100:+.0f}"
    if shown in ("+0", "-0"):
        return f"→ 0{unit}", {"delta_color": "off", "delta_arrow": "off"}
    return f"{shown}{unit}", {}


# --- links to the platform ---------------------------------------------------------------

_TRAILING_ID = re.compile(r"(\d+)$")


def source_base_url(source: str | None) -> str | None:
    """The web address of ``source``'s community, without a trailing slash (None when unknown).

    In order: ``Settings.source_urls[source]`` when the settings have such a mapping;
    ``Settings.discourse_url`` for ``Settings.discourse_source`` (the forum the webhook and
    flag-back already talk to); for ``stackexchange:<site>`` sources (the dump's folder name),
    ``https://<site>.stackexchange.com``, or ``https://<site>`` when the name is already a host
    (``stackexchange:cooking.stackexchange.com``, ``stackexchange:stackoverflow.com``).
    Synthetic sources and the others have none.
    """
    if source is None:
        return None
    try:
        from pulse.settings import load_settings

        settings = load_settings()
    except ValueError:
        settings = None
    configured = dict(getattr(settings, "source_urls", None) or {})
    if configured.get(source):
        return str(configured[source]).rstrip("/")
    if settings is not None and settings.discourse_url and source == settings.discourse_source:
        return settings.discourse_url.rstrip("/")
    kind, _, site = source.partition(":")
    if kind == "stackexchange" and re.fullmatch(r"[a-z0-9.-]+", site or ""):
        return f"https://{site}" if "." in site else f"https://{site}.stackexchange.com"
    return None


def content_url(base_url: str | None, source: str | None, content_id: str, kind: str) -> str | None:
    """The page of one item on its platform (None when the base URL or a numeric id is missing).

    Stack Exchange: ``<base>/questions/<id>`` for a question, ``<base>/a/<id>`` for an answer
    (``content_id`` is ``p<PostId>``). Discourse: ``<base>/p/<post id>``, Discourse's short link
    to a post, which redirects to ``/t/<slug>/<topic id>/<post number>`` (the warehouse keeps
    post ids, not topic ids, so ``/t/<id>`` would name the wrong topic).
    """
    found = _TRAILING_ID.search(content_id or "")
    if base_url is None or found is None or source is None:
        return None
    number = found.group(1)
    if source.startswith("stackexchange:"):
        return f"{base_url}/questions/{number}" if kind == "question" else f"{base_url}/a/{number}"
    return f"{base_url}/p/{number}"


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
