"""Trending topics: which topics (tags) rise above their own recent baseline in a given week.

Reads ``marts.trending_topics``: per source, week (Monday) and topic, the week's volume, the
trailing 4-week baseline, a Poisson-smoothed z-score, the emerging/trending flags and a rank
(null when the topic is below the minimum support).
"""

from __future__ import annotations

from datetime import date

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import components, data

STATUS_COLORS: dict[str, str] = {"hot": "#dc2626", "emerging": "#16a34a", "hot, new": "#ea580c", "": "#94a3b8"}


def weeks(source: str | None) -> list[date]:
    """Weeks (Monday dates) present for ``source``, newest first."""
    where, params = data.source_clause(source)
    return data.query(
        f"select distinct week_start from marts.trending_topics where {where} order by week_start desc", params
    )["week_start"].to_list()


def week_topics(source: str | None, week: date, *, ranked_only: bool) -> pl.DataFrame:
    """Topics of ``week`` in rank order (unranked ones last), with a ``status`` marker column."""
    where, params = data.source_clause(source)
    ranked = "and rank is not null" if ranked_only else ""
    found = data.query(
        "select rank, topic, volume, baseline_mean, baseline_std, z_score, is_trending, is_emerging, "
        "example_content_ids from marts.trending_topics "
        f"where {where} and week_start = ? {ranked} order by rank nulls last, z_score desc, topic",
        [*params, week],
    )
    return found.with_columns(
        status=pl.when(pl.col("is_trending") & pl.col("is_emerging"))
        .then(pl.lit("hot, new"))
        .when(pl.col("is_trending"))
        .then(pl.lit("hot"))
        .when(pl.col("is_emerging"))
        .then(pl.lit("emerging"))
        .otherwise(pl.lit(""))
    ).select("rank", "topic", "status", "volume", "baseline_mean", "baseline_std", "z_score", "example_content_ids")


def bar_figure(topics: pl.DataFrame, week: date, limit: int = 15) -> go.Figure:
    """Horizontal bars of the top ``limit`` topics' z-scores, coloured by their marker."""
    top = topics.head(limit).reverse()  # plotly draws the first bar at the bottom
    fig = go.Figure(
        go.Bar(
            x=top["z_score"].fill_null(0).to_list(),
            y=[components.plotly_escape(t) for t in top["topic"].to_list()],
            orientation="h",
            marker_color=[STATUS_COLORS.get(s, "#94a3b8") for s in top["status"].to_list()],
            customdata=list(zip(top["volume"].to_list(), top["baseline_mean"].fill_null(0).to_list(), strict=True)),
            hovertemplate="%{y}<br>z-score %{x:.2f}<br>volume %{customdata[0]}, "
            "baseline %{customdata[1]:.1f}/week<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Top topics by z-score, week of {week:%Y-%m-%d} (red: hot, green: emerging)",
        xaxis_title="z-score (volume vs. trailing 4-week baseline)",
        height=max(260, 28 * top.height + 100),
    )
    return fig


def topic_history(source: str | None, topics: list[str], all_weeks: list[date]) -> pl.DataFrame:
    """Weekly volume of ``topics`` over ``all_weeks``, zero-filled (the mart keeps volume > 0 only)."""
    where, params = data.source_clause(source)
    found = data.query(
        "select week_start, topic, volume from marts.trending_topics "
        f"where {where} and list_contains(?::varchar[], topic)",
        [*params, topics],
    )
    grid = pl.DataFrame({"week_start": sorted(all_weeks)}, schema={"week_start": pl.Date}).join(
        pl.DataFrame({"topic": topics, "order": range(len(topics))}, schema={"topic": pl.String, "order": pl.Int64}),
        how="cross",
    )
    return (
        grid.join(found, on=["week_start", "topic"], how="left")
        .with_columns(pl.col("volume").fill_null(0))
        .sort("order", "week_start")
        .drop("order")
    )


def history_figure(history: pl.DataFrame) -> go.Figure:
    """One line per topic: weekly volume."""
    fig = go.Figure()
    for (topic,), rows in history.group_by("topic", maintain_order=True):  # in rank order
        fig.add_trace(
            go.Scatter(
                x=rows["week_start"].to_list(),
                y=rows["volume"].to_list(),
                mode="lines+markers",
                name=components.plotly_escape(str(topic)),
            )
        )
    fig.update_layout(title="Weekly volume of the top topics", yaxis_title="items per week", height=320)
    return fig


def render() -> None:
    """The Trending topics page."""
    source = components.page_header(
        "Trending topics",
        "Topics discussed far more this week than in the four weeks before (a z-score against "
        "each topic's own baseline); hot means z ≥ 2, emerging means almost absent before.",
    )
    if not components.require_table("marts", "trending_topics", "topic trends"):
        return
    available = weeks(source)
    if not available:
        components.empty_state("No topics (tags) recorded for this source yet, so nothing is trending.")
        return
    left, right = st.columns([2, 1])
    week = left.selectbox("Week starting (Monday)", available, key="trend_week", format_func=lambda d: f"{d:%Y-%m-%d}")
    ranked_only = not right.toggle("Include topics below minimum support", key="trend_all")
    topics = week_topics(source, week, ranked_only=ranked_only)
    if topics.is_empty():
        components.empty_state(f"No topic reached the minimum support in the week of {week:%Y-%m-%d}.")
        return
    hot = topics.filter(pl.col("status") != "")
    st.markdown(f"**{hot.height}** of {topics.height} topics stand out in the week of {week:%Y-%m-%d}.")
    components.show_chart(bar_figure(topics, week), key="trend_bars")
    components.show_table(
        topics,
        file_name=f"trending_{source or 'all'}_{week:%Y-%m-%d}.csv",
        key="trend_csv",
        column_config={
            "baseline_mean": st.column_config.NumberColumn("baseline (mean/week)", format="%.2f"),
            "baseline_std": st.column_config.NumberColumn("baseline std", format="%.2f"),
            "z_score": st.column_config.NumberColumn("z-score", format="%.2f"),
            "example_content_ids": st.column_config.TextColumn("example content ids"),
        },
    )
    history = topic_history(source, topics["topic"].head(5).to_list(), available)
    if len(available) > 1:
        components.show_chart(history_figure(history), key="trend_history")


render()
