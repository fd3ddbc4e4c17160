"""Overview: is engagement up or down? KPIs against the previous period, DAU/WAU/MAU, content and votes.

Reads ``marts.engagement_daily`` (one row per source and day: DAU/WAU/MAU, stickiness,
content by kind, votes, response rate) and ``marts.hot_content`` (threads ranked by Hacker News
gravity, each linked to its page on the platform). "The current period" is the last N days of
the chosen date range, which by default is the data's own range (shared with the other
analytics pages); the previous period is the N days before it.

Stickiness (DAU/MAU) needs a full 30-day MAU window: in the data's first 29 days MAU counts
only the days seen so far, so DAU/MAU starts near 100%. Those warm-up days are shaded in the
chart and left out of the stickiness line and KPI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from dashboards import components, data

PERIODS: dict[int, str] = {7: "7 days", 28: "28 days", 90: "90 days"}
KINDS: dict[str, str] = {
    "questions": "questions",
    "answers": "answers",
    "comments": "comments",
    "posts": "posts",
    "replies": "replies",
}
KIND_COLORS: dict[str, str] = {
    "questions": "#2563eb",
    "answers": "#16a34a",
    "comments": "#f59e0b",
    "posts": "#7c3aed",
    "replies": "#0891b2",
}
FLAT = 0.05  # changes within ±5% are called "flat"
MAU_WINDOW_DAYS = 30  # MAU counts the 30 days ending on the day (marts.engagement_daily)


@dataclass(frozen=True)
class PeriodStats:
    """Engagement over one period of days (inclusive), from ``marts.engagement_daily``.

    Attributes:
        start, end: the period's first and last day.
        days: days with a row in the mart (0: the period lies outside the data).
        avg_dau: mean daily active users.
        mau_end: MAU (30-day distinct active users) on the period's last day with data.
        avg_stickiness: mean of daily DAU/MAU over the days with MAU > 0 after the warm-up
            (see :func:`warmup_end`); None when there are none.
        new_users, new_threads, new_content, responses, votes: sums over the period
            (responses = answers + comments + replies).
        response_rate: threads answered by another member within the window / threads started,
            over the days whose window is complete (None when there are none).
    """

    start: date
    end: date
    days: int
    avg_dau: float | None
    mau_end: int | None
    avg_stickiness: float | None
    new_users: int
    new_threads: int
    new_content: int
    responses: int
    votes: int
    response_rate: float | None


def daily_rows(source: str | None, start: date, end: date) -> pl.DataFrame:
    """``marts.engagement_daily`` rows of ``source`` between ``start`` and ``end`` (inclusive), by day."""
    where, params = data.source_clause(source)
    return data.query(
        f"select * from marts.engagement_daily where {where} and day between ? and ? order by source, day",
        [*params, start, end],
    )


def warmup_end(first: date) -> date:
    """The first day whose 30-day MAU window lies wholly within the data that starts on ``first``."""
    return first + timedelta(days=MAU_WINDOW_DAYS - 1)


def period_stats(source: str | None, start: date, end: date, stickiness_from: date = date.min) -> PeriodStats:
    """Aggregate ``marts.engagement_daily`` over ``[start, end]`` (see :class:`PeriodStats`).

    Stickiness is averaged over the days from ``stickiness_from`` on (the end of the MAU warm-up).
    """
    where, params = data.source_clause(source)
    row = data.query(
        "select count(*) as days, avg(dau) as avg_dau, "
        "arg_max(mau, day) as mau_end, avg(stickiness) filter (where day >= ?) as avg_stickiness, "
        "coalesce(sum(new_users), 0)::bigint as new_users, coalesce(sum(new_threads), 0)::bigint as new_threads, "
        "coalesce(sum(new_content), 0)::bigint as new_content, "
        "coalesce(sum(answers + comments + replies), 0)::bigint as responses, "
        "coalesce(sum(votes), 0)::bigint as votes, "
        "sum(threads_responded) filter (where response_window_complete) "
        "  / nullif(sum(new_threads) filter (where response_window_complete), 0) as response_rate "
        f"from marts.engagement_daily where {where} and day between ? and ?",
        [stickiness_from, *params, start, end],
    ).row(0, named=True)
    return PeriodStats(start=start, end=end, **row)


def trend_word(change: float | None) -> str:
    """``up`` / ``down`` / ``flat`` (within ±5%) / ``not comparable`` for a relative change."""
    if change is None:
        return "not comparable"
    if change > FLAT:
        return "up"
    if change < -FLAT:
        return "down"
    return "flat"


def headline(current: PeriodStats, previous: PeriodStats, days: int) -> str:
    """One sentence answering "is engagement up or down?", with the evidence (Markdown-safe)."""
    change = components.pct_change(current.avg_dau, previous.avg_dau) if previous.days else None
    word = trend_word(change)
    cur = f"{current.avg_dau or 0:.1f}"
    span = f"the {days} days to {current.end:%Y-%m-%d}"
    if word == "not comparable":
        return (
            f"Engagement: **{cur}** daily active users on average in {span}; there is no earlier "
            "period of the same length in the data to compare with."
        )
    content_change = components.pct_change(current.new_content, previous.new_content)
    content = (
        f" New content: {current.new_content:,} items ({content_change:+.0%})."
        if content_change is not None
        else f" New content: {current.new_content:,} items."
    )
    return (
        f"Engagement is **{word}**: **{cur}** daily active users on average in {span}, "
        f"against {previous.avg_dau or 0:.1f} in the {days} days before ({change:+.0%}).{content}"
    )


def kpis(current: PeriodStats, previous: PeriodStats) -> None:
    """Metric tiles with deltas against the previous period (a change that rounds to zero is grey, "→ 0%")."""
    has_prev = previous.days > 0

    def tile(where, label: str, value: str, change: float | None, unit: str = "%", help: str | None = None) -> None:
        delta, style = components.delta_text(change if has_prev else None, unit)
        where.metric(label, value, delta, help=help, **style)

    def pts(cur: float | None, prev: float | None) -> float | None:
        return None if cur is None or prev is None else cur - prev

    pct = components.pct_change
    row1 = st.columns(4)
    tile(
        row1[0],
        "Daily active users (avg)",
        f"{current.avg_dau or 0:.1f}",
        pct(current.avg_dau, previous.avg_dau),
        help="Distinct members who posted, commented or voted (where the vote has a user), per day.",
    )
    tile(
        row1[1],
        "Monthly active users",
        f"{current.mau_end or 0:,}",
        pct(current.mau_end, previous.mau_end),
        help="Distinct active members in the 30 days ending on the period's last day.",
    )
    stick = current.avg_stickiness
    tile(
        row1[2],
        "Stickiness (DAU/MAU)",
        "–" if stick is None else f"{stick:.1%}",
        pts(stick, previous.avg_stickiness),
        " pts",
        help="Average share of the month's active members who were active on a given day (the data's "
        "first 29 days, whose MAU window is incomplete, are left out).",
    )
    rate = current.response_rate
    tile(
        row1[3],
        "Response rate",
        "–" if rate is None else f"{rate:.0%}",
        pts(rate, previous.response_rate),
        " pts",
        help="Threads answered or commented on by another member within 7 days (days whose "
        "7-day window is complete only).",
    )
    row2 = st.columns(4)
    tile(row2[0], "New threads", f"{current.new_threads:,}", pct(current.new_threads, previous.new_threads))
    tile(
        row2[1],
        "Responses",
        f"{current.responses:,}",
        pct(current.responses, previous.responses),
        help="Answers, comments and replies.",
    )
    tile(
        row2[2],
        "Votes",
        f"{current.votes:,}",
        pct(current.votes, previous.votes),
        help="Upvotes and downvotes (day-precision ones count on their UTC date).",
    )
    tile(row2[3], "New members", f"{current.new_users:,}", pct(current.new_users, previous.new_users))


def percent_axis(top: float) -> dict:
    """Plotly axis settings for a share: ticks at round percentages (1-2-5 steps, ≤ ~6 ticks) from 0."""
    top = min(max(float(top or 0), 0.01), 1.0)
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5) if top / s <= 6)
    return {"tickformat": ".0%", "dtick": step, "range": [0, math.ceil(top / step - 1e-9) * step]}


def active_users_figure(daily: pl.DataFrame, warmup_until: date) -> go.Figure:
    """DAU bars, WAU and MAU lines, and DAU/MAU (7-day moving average) on a second axis.

    Days before ``warmup_until`` (the MAU warm-up, :func:`warmup_end`) are shaded and have no
    stickiness; its axis ticks are round percentages.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    days = daily["day"].to_list()
    fig.add_trace(go.Bar(x=days, y=daily["dau"].to_list(), name="DAU", marker_color="#93c5fd"), secondary_y=False)
    fig.add_trace(
        go.Scatter(x=days, y=daily["wau"].to_list(), name="WAU (7 days)", mode="lines", line={"color": "#2563eb"}),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(x=days, y=daily["mau"].to_list(), name="MAU (30 days)", mode="lines", line={"color": "#1e3a8a"}),
        secondary_y=False,
    )
    warm = pl.col("day") < warmup_until
    stickiness = daily.select(pl.when(warm).then(None).otherwise(pl.col("stickiness")).alias("s"))["s"]
    smooth = stickiness.rolling_mean(7, min_samples=1)  # daily DAU/MAU is too jumpy to read
    fig.add_trace(
        go.Scatter(x=days, y=smooth.to_list(), name="DAU/MAU (7-day average)", mode="lines", line={"color": "#f59e0b"}),
        secondary_y=True,
    )
    if days and days[0] < warmup_until:
        fig.add_vrect(
            x0=days[0],
            x1=min(warmup_until, days[-1]),
            fillcolor="#94a3b8",
            opacity=0.15,
            line_width=0,
            annotation_text="MAU warm-up (30 days)",
            annotation_position="top left",
        )
    fig.update_layout(
        title="Active members: daily, weekly, monthly, and stickiness",
        height=360,
        legend={"orientation": "h", "y": -0.2},
        bargap=0,
    )
    fig.update_yaxes(title_text="members", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="DAU/MAU", secondary_y=True, showgrid=False, **percent_axis(smooth.max() or 0))
    return fig


def content_series(daily: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """Content by kind and votes per day, or per week (Monday) when the range exceeds 120 days."""
    kinds = [k for k in KINDS if k in daily.columns and daily[k].sum() > 0]
    grain = "day" if daily.height <= 120 else "week"
    frame = daily.select("day", *kinds, "votes")
    if grain == "week":
        frame = (
            frame.with_columns(pl.col("day").dt.truncate("1w").alias("day"))
            .group_by("day")
            .agg(pl.col(c).sum() for c in [*kinds, "votes"])
            .sort("day")
        )
    return frame.rename({"day": grain}), grain


def content_figure(series: pl.DataFrame, grain: str) -> go.Figure:
    """Stacked bars of new content by kind and a votes line on a second axis, per ``grain``."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = series[grain].to_list()
    for kind in [c for c in series.columns if c in KINDS]:
        fig.add_trace(
            go.Bar(x=x, y=series[kind].to_list(), name=KINDS[kind], marker_color=KIND_COLORS[kind]), secondary_y=False
        )
    fig.add_trace(
        go.Scatter(x=x, y=series["votes"].to_list(), name="votes", mode="lines", line={"color": "#dc2626"}),
        secondary_y=True,
    )
    fig.update_layout(
        title=f"New content and votes per {grain}",
        barmode="stack",
        height=360,
        legend={"orientation": "h", "y": -0.2},
        bargap=0.1,
    )
    fig.update_yaxes(title_text=f"items per {grain}", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(
        title_text=f"votes per {grain}", secondary_y=True, **components.count_axis(max(series["votes"].max() or 0, 1))
    )
    return fig


def hot_threads(source: str | None, limit: int = 10) -> pl.DataFrame:
    """The ``limit`` hottest threads (``marts.hot_content``) with a ``link`` to each on its platform.

    ``link`` is None where the source has no known web address (:func:`components.source_base_url`).
    An empty frame when the mart is absent.
    """
    if not data.table_exists("marts", "hot_content"):
        return pl.DataFrame()
    where, params = data.source_clause(source)
    hot = data.query(
        "select source, rank, title, score, replies, round(age_hours / 24, 1) as age_days, hot_score, content_id, "
        f"kind, created_at from marts.hot_content where {where} order by source, rank limit ?",
        [*params, limit],
    )
    bases = {s: components.source_base_url(s) for s in hot["source"].unique().to_list()}
    links = [
        components.content_url(bases[s], s, cid, kind)
        for s, cid, kind in zip(hot["source"], hot["content_id"], hot["kind"], strict=True)
    ]
    return hot.with_columns(link=pl.Series(links, dtype=pl.String)).select(
        "rank", "title", "link", "score", "replies", "age_days", "hot_score", "content_id", "created_at"
    )


def backlog_line(source: str | None) -> None:
    """The moderation backlog as one KPI line (open items, oldest, past the response-time target),
    live from the review store (:func:`dashboards.review_ui.live_backlog`); nothing when the
    snapshot has no moderation queue."""
    from dashboards import auth, review_ui
    from pulse.settings import load_settings

    backlog = review_ui.live_backlog(source, auth.review_store(), review_ui.sla_hours(load_settings()))
    if backlog is not None:
        st.markdown(
            f"**Moderation backlog:** {backlog.line().rstrip('.')}.",
            help="Open: pending or escalated, live from the review store. Details on Moderation insights.",
        )


def render() -> None:
    """The Overview page."""
    source = components.page_header(
        "Overview",
        "Is engagement up or down? Key figures for the latest period against the period before, "
        "with daily, weekly and monthly active members and the content and votes behind them.",
    )
    if not components.require_table("marts", "engagement_daily", "engagement data"):
        return
    span = components.data_days(source)
    if span is None:
        components.empty_state("No engagement recorded for this source yet, so there is nothing to compare.")
        return
    first, last = span
    left, right = st.columns([2, 1])
    start, end = components.date_range_filter(first, last, key="overview_range", container=left, shared=True)
    days = right.selectbox(
        "Compare periods of",
        list(PERIODS),
        index=1,
        format_func=PERIODS.get,
        key="overview_period",
        help="The latest period ends on the range's last day; it is compared with the one before.",
    )
    warm = warmup_end(first)
    current = period_stats(source, max(start, end - timedelta(days=days - 1)), end, warm)
    previous = period_stats(source, end - timedelta(days=2 * days - 1), end - timedelta(days=days), warm)
    st.markdown(headline(current, previous, days))
    kpis(current, previous)
    backlog_line(source)
    daily = daily_rows(source, start, end)
    if daily.is_empty():
        components.empty_state(f"No engagement recorded between {start:%Y-%m-%d} and {end:%Y-%m-%d}.")
        return
    st.caption(
        f"Charts: {start:%Y-%m-%d} to {end:%Y-%m-%d}. Stack Exchange votes are anonymous in the "
        "data dump, so there only authors and favoriters count as active members."
    )
    components.show_chart(active_users_figure(daily, warm), key="overview_active")
    series, grain = content_series(daily)
    components.show_chart(content_figure(series, grain), key="overview_content")
    hot = hot_threads(source)
    if not hot.is_empty():
        st.subheader("Hot right now")
        st.caption(
            "Threads ranked by Hacker News gravity, (score + replies) / (age in hours + 2)^1.8, as of "
            "the data's last activity (the score itself is in the CSV). Open a thread on its platform "
            "from the link column."
        )
        components.show_table(
            hot,
            file_name=f"hot_threads_{source or 'all'}.csv",
            key="overview_hot_csv",
            column_config={
                "title": st.column_config.TextColumn("title", width="large"),
                "link": st.column_config.LinkColumn("thread", display_text="open ↗"),
                "age_days": st.column_config.NumberColumn("age (days)", format="%.1f"),
                "hot_score": None,
                "content_id": None,
                "created_at": None,
            },
        )
    with st.expander("Data behind the charts"):
        components.show_table(daily, file_name=f"engagement_{source or 'all'}_{start}_{end}.csv", key="overview_csv")


render()
