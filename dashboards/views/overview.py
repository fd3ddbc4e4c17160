"""Overview: is engagement up or down? KPIs against the previous period, DAU/WAU/MAU, content and votes.

Reads ``marts.engagement_daily`` (one row per source and day: DAU/WAU/MAU, stickiness,
content by kind, votes, response rate) and ``marts.hot_content`` (threads ranked by Hacker News
gravity). "The current period" is the last N days of the chosen date range, which by default
ends on the data's last day; the previous period is the N days before it.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class PeriodStats:
    """Engagement over one period of days (inclusive), from ``marts.engagement_daily``.

    Attributes:
        start, end: the period's first and last day.
        days: days with a row in the mart (0: the period lies outside the data).
        avg_dau: mean daily active users.
        mau_end: MAU (30-day distinct active users) on the period's last day with data.
        avg_stickiness: mean of daily DAU/MAU over days with MAU > 0.
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


def period_stats(source: str | None, start: date, end: date) -> PeriodStats:
    """Aggregate ``marts.engagement_daily`` over ``[start, end]`` (see :class:`PeriodStats`)."""
    where, params = data.source_clause(source)
    row = data.query(
        "select count(*) as days, avg(dau) as avg_dau, "
        "arg_max(mau, day) as mau_end, avg(stickiness) as avg_stickiness, "
        "coalesce(sum(new_users), 0)::bigint as new_users, coalesce(sum(new_threads), 0)::bigint as new_threads, "
        "coalesce(sum(new_content), 0)::bigint as new_content, "
        "coalesce(sum(answers + comments + replies), 0)::bigint as responses, "
        "coalesce(sum(votes), 0)::bigint as votes, "
        "sum(threads_responded) filter (where response_window_complete) "
        "  / nullif(sum(new_threads) filter (where response_window_complete), 0) as response_rate "
        f"from marts.engagement_daily where {where} and day between ? and ?",
        [*params, start, end],
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
    """Metric tiles with deltas against the previous period."""
    has_prev = previous.days > 0

    def delta_pct(cur: float | None, prev: float | None) -> str | None:
        change = components.pct_change(cur, prev) if has_prev else None
        return None if change is None else f"{change:+.0%}"

    def delta_pts(cur: float | None, prev: float | None) -> str | None:
        if not has_prev or cur is None or prev is None:
            return None
        return f"{(cur - prev) * 100:+.0f} pts"

    row1 = st.columns(4)
    row1[0].metric("Daily active users (avg)", f"{current.avg_dau or 0:.1f}", delta_pct(current.avg_dau, previous.avg_dau),
                   help="Distinct members who posted, commented or voted (where the vote has a user), per day.")
    row1[1].metric("Monthly active users", f"{current.mau_end or 0:,}", delta_pct(current.mau_end, previous.mau_end),
                   help="Distinct active members in the 30 days ending on the period's last day.")
    stick = current.avg_stickiness
    row1[2].metric("Stickiness (DAU/MAU)", "–" if stick is None else f"{stick:.1%}",
                   delta_pts(stick, previous.avg_stickiness),
                   help="Average share of the month's active members who were active on a given day.")
    rate = current.response_rate
    row1[3].metric("Response rate", "–" if rate is None else f"{rate:.0%}", delta_pts(rate, previous.response_rate),
                   help="Threads answered or commented on by another member within 7 days (days whose "
                        "7-day window is complete only).")
    row2 = st.columns(4)
    row2[0].metric("New threads", f"{current.new_threads:,}", delta_pct(current.new_threads, previous.new_threads))
    row2[1].metric("Responses", f"{current.responses:,}", delta_pct(current.responses, previous.responses),
                   help="Answers, comments and replies.")
    row2[2].metric("Votes", f"{current.votes:,}", delta_pct(current.votes, previous.votes),
                   help="Upvotes and downvotes (day-precision ones count on their UTC date).")
    row2[3].metric("New members", f"{current.new_users:,}", delta_pct(current.new_users, previous.new_users))


def active_users_figure(daily: pl.DataFrame) -> go.Figure:
    """DAU bars, WAU and MAU lines, and DAU/MAU (7-day moving average) on a second axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    days = daily["day"].to_list()
    fig.add_trace(go.Bar(x=days, y=daily["dau"].to_list(), name="DAU", marker_color="#93c5fd"), secondary_y=False)
    fig.add_trace(go.Scatter(x=days, y=daily["wau"].to_list(), name="WAU (7 days)", mode="lines",
                             line={"color": "#2563eb"}), secondary_y=False)
    fig.add_trace(go.Scatter(x=days, y=daily["mau"].to_list(), name="MAU (30 days)", mode="lines",
                             line={"color": "#1e3a8a"}), secondary_y=False)
    smooth = daily["stickiness"].rolling_mean(7, min_samples=1)  # daily DAU/MAU is too jumpy to read
    fig.add_trace(go.Scatter(x=days, y=smooth.to_list(), name="DAU/MAU (7-day average)", mode="lines",
                             line={"color": "#f59e0b"}), secondary_y=True)
    fig.update_layout(title="Active members: daily, weekly, monthly, and stickiness", height=360,
                      legend={"orientation": "h", "y": -0.2}, bargap=0)
    fig.update_yaxes(title_text="members", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="DAU/MAU", tickformat=".0%", rangemode="tozero", secondary_y=True)
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
        fig.add_trace(go.Bar(x=x, y=series[kind].to_list(), name=KINDS[kind], marker_color=KIND_COLORS[kind]),
                      secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=series["votes"].to_list(), name="votes", mode="lines",
                             line={"color": "#dc2626"}), secondary_y=True)
    fig.update_layout(title=f"New content and votes per {grain}", barmode="stack", height=360,
                      legend={"orientation": "h", "y": -0.2}, bargap=0.1)
    fig.update_yaxes(title_text=f"items per {grain}", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text=f"votes per {grain}", secondary_y=True,
                     **components.count_axis(max(series["votes"].max() or 0, 1)))
    return fig


def hot_threads(source: str | None, limit: int = 10) -> pl.DataFrame:
    """The ``limit`` hottest threads (``marts.hot_content``), or an empty frame when absent."""
    if not data.table_exists("marts", "hot_content"):
        return pl.DataFrame()
    where, params = data.source_clause(source)
    return data.query(
        "select rank, title, score, replies, round(age_hours / 24, 1) as age_days, hot_score, content_id, created_at "
        f"from marts.hot_content where {where} order by source, rank limit ?",
        [*params, limit],
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
    start, end = components.date_range_filter(first, last, key="overview_range", container=left, default_days=365)
    days = right.selectbox("Compare periods of", list(PERIODS), index=1, format_func=PERIODS.get, key="overview_period",
                           help="The latest period ends on the range's last day; it is compared with the one before.")
    current = period_stats(source, max(start, end - timedelta(days=days - 1)), end)
    previous = period_stats(source, end - timedelta(days=2 * days - 1), end - timedelta(days=days))
    st.markdown(headline(current, previous, days))
    kpis(current, previous)
    daily = daily_rows(source, start, end)
    if daily.is_empty():
        components.empty_state(f"No engagement recorded between {start:%Y-%m-%d} and {end:%Y-%m-%d}.")
        return
    st.caption(f"Charts: {start:%Y-%m-%d} to {end:%Y-%m-%d}. Stack Exchange votes are anonymous in the "
               "data dump, so there only authors and favoriters count as active members.")
    components.show_chart(active_users_figure(daily), key="overview_active")
    series, grain = content_series(daily)
    components.show_chart(content_figure(series, grain), key="overview_content")
    hot = hot_threads(source)
    if not hot.is_empty():
        st.subheader("Hot right now")
        st.caption("Threads ranked by Hacker News gravity: (score + replies) / (age in hours + 2)^1.8, "
                   "as of the data's last activity.")
        components.show_table(hot, file_name=f"hot_threads_{source or 'all'}.csv", key="overview_hot_csv",
                              column_config={"title": st.column_config.TextColumn("title", width="large"),
                                             "hot_score": st.column_config.NumberColumn("hot score", format="%.2e")})
    with st.expander("Data behind the charts"):
        components.show_table(daily, file_name=f"engagement_{source or 'all'}_{start}_{end}.csv", key="overview_csv")


render()
