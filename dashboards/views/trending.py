"""Trending topics: what is hot and what is emerging this week (or day) versus the one before.

Reads ``marts.trending_topics``: per source, period (day or week), period start and topic, the
volume, the trailing baseline (28 days or 4 weeks), a Poisson-smoothed z-score, the growth
ratio, and the flags *hot* (one of the period's 10 largest topics, at least the minimum
support), *rising* (z >= 2 against a full baseline) and *emerging* (rising from below the
support level: new growth rather than an always-big topic), with example threads.

The page opens on the latest period of the date range that has an emerging topic (the latest
period when none has), and draws a burst timeline: the topics that emerged in the range by
period, coloured by the z-score (how far above its own trailing baseline the topic was; at or
below the baseline is 0).
"""

from __future__ import annotations

from datetime import date, timedelta

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from dashboards import components, data

PERIOD_NAMES: dict[str, str] = {"week": "Weekly", "day": "Daily"}
SPARK_PERIODS = 12  # periods of history in each sparkline
LIST_LIMIT = 8  # topics per list
BURST_TOPICS = 15  # rows of the burst timeline: the topics with the highest peak z-score
BURST_PERIODS = {"week": 156, "day": 90}  # columns of the burst timeline: the latest periods of the range
BURST_Z_CAP = 6.0  # the burst colour scale tops out here (z >= 2 is "rising")
BURST_COLORS = [[0.0, "#ffffff"], [2 / BURST_Z_CAP, "#fde68a"], [4 / BURST_Z_CAP, "#f97316"], [1.0, "#b91c1c"]]


def period_starts(source: str | None, period: str, start: date, end: date) -> list[date]:
    """Period starts of ``period`` with any topic, within ``[start, end]`` (by their start), newest first."""
    where, params = data.source_clause(source)
    return data.query(
        f"select distinct period_start from marts.trending_topics where {where} and period = ? "
        "and period_start between ? and ? order by period_start desc",
        [*params, period, start, end],
    )["period_start"].to_list()


def emerging_starts(source: str | None, period: str, start: date, end: date) -> list[date]:
    """Period starts of ``period`` within ``[start, end]`` that have an emerging topic, newest first."""
    where, params = data.source_clause(source)
    return data.query(
        f"select distinct period_start from marts.trending_topics where {where} and period = ? and is_emerging "
        "and period_start between ? and ? order by period_start desc",
        [*params, period, start, end],
    )["period_start"].to_list()


def bursts(source: str | None, period: str, starts: list[date], limit: int = BURST_TOPICS) -> pl.DataFrame:
    """The burst timeline's cells: the topics that emerged in one of ``starts``, by period, zero-filled.

    Topics: the ``limit`` with the highest z-score in a period where they emerged, ordered by
    the first such period (then the topic). Columns ``topic``, ``period_start``, ``volume``,
    ``baseline_mean``, ``z_score``, ``heat``, ``is_emerging``, one row per topic and period of
    ``starts`` (a period without the topic has volume 0, z-score 0). ``heat`` is the colour:
    the z-score clipped to ``[0, BURST_Z_CAP]``, and 0 while the topic's baseline is not yet full
    (the source's first periods, where a small volume gives a huge z-score; the mart never
    calls those rising either).
    """
    if not starts:
        return pl.DataFrame(
            schema={
                "topic": pl.String,
                "period_start": pl.Date,
                "volume": pl.Int64,
                "baseline_mean": pl.Float64,
                "z_score": pl.Float64,
                "heat": pl.Float64,
                "is_emerging": pl.Boolean,
            }
        )
    where, params = data.source_clause(source)
    lo, hi = min(starts), max(starts)
    chosen = data.query(
        "select topic, min(period_start) as first_emerged, max(z_score) as peak from marts.trending_topics "
        f"where {where} and period = ? and is_emerging and period_start between ? and ? group by topic "
        "order by peak desc, topic limit ?",
        [*params, period, lo, hi, limit],
    ).sort("first_emerged", "topic")
    topics = chosen["topic"].to_list()
    found = data.query(
        "select topic, period_start, volume, baseline_mean, z_score, is_emerging, "
        "baseline_periods = max(baseline_periods) over () as full_baseline from marts.trending_topics "
        f"where {where} and period = ? and list_contains(?::varchar[], topic) and period_start between ? and ?",
        [*params, period, topics, lo, hi],
    )
    grid = pl.DataFrame(
        {"topic": topics, "order": range(len(topics))}, schema={"topic": pl.String, "order": pl.Int64}
    ).join(pl.DataFrame({"period_start": sorted(starts)}, schema={"period_start": pl.Date}), how="cross")
    return (
        grid.join(found, on=["topic", "period_start"], how="left")
        .with_columns(
            pl.col("volume").fill_null(0), pl.col("z_score").fill_null(0.0), pl.col("is_emerging").fill_null(False)
        )
        .with_columns(
            heat=pl.when(pl.col("full_baseline").fill_null(True))
            .then(pl.col("z_score").clip(0.0, BURST_Z_CAP))
            .otherwise(0.0)
        )
        .sort("order", "period_start")
        .drop("order", "full_baseline")
    )


def burst_figure(cells: pl.DataFrame, period: str) -> go.Figure:
    """Topics x periods heatmap: colour = ``heat``, the z-score against the topic's own baseline (see :func:`bursts`).

    Emerging cells carry a dot; hover gives the volume, the baseline mean and the z-score.
    """
    word = "week" if period == "week" else "day"
    topics = cells["topic"].unique(maintain_order=True).to_list()
    starts = sorted(cells["period_start"].unique().to_list())
    by_topic = {t: cells.filter(pl.col("topic") == t) for t in topics}
    z = [by_topic[t]["heat"].to_list() for t in topics]
    custom = [
        [
            [v, b if b is not None else 0.0, zz]
            for v, b, zz in zip(f["volume"], f["baseline_mean"], f["z_score"], strict=True)
        ]
        for f in (by_topic[t] for t in topics)
    ]
    labels = [components.plotly_escape(t) for t in topics]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=starts,
            y=labels,
            customdata=custom,
            colorscale=BURST_COLORS,
            zmin=0,
            zmax=BURST_Z_CAP,
            colorbar={"title": {"text": "z-score"}, "tickvals": [0, 2, 4, 6], "ticktext": ["≤ 0", "2", "4", "≥ 6"]},
            hovertemplate="%{y}, " + word + " of %{x|%Y-%m-%d}<br>%{customdata[0]} items, baseline "
            "%{customdata[1]:.1f}<br>z = %{customdata[2]:.1f}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    emerging = cells.filter(pl.col("is_emerging"))
    fig.add_trace(
        go.Scatter(
            x=emerging["period_start"].to_list(),
            y=[components.plotly_escape(t) for t in emerging["topic"].to_list()],
            mode="markers",
            marker={"symbol": "circle", "size": 5, "color": "#1f2937"},
            name="emerging",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title=f"Burst timeline: how far each emerging topic rose above its own baseline, per {word} (dot: emerging)",
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"type": "date"},
        height=max(240, 24 * len(topics) + 130),
        showlegend=False,
    )
    return fig


def step(period: str) -> timedelta:
    """The length of one period."""
    return timedelta(days=7 if period == "week" else 1)


def period_topics(source: str | None, period: str, period_start: date) -> pl.DataFrame:
    """Every topic of one period with last period's volume (0 when absent) and a ``status`` text."""
    where, params = data.source_clause(source, column="cur.source")
    found = data.query(
        "select cur.topic, cur.volume, coalesce(prev.volume, 0)::bigint as previous_volume, cur.baseline_mean, "
        "cur.z_score, cur.growth, cur.volume_rank, cur.rank, cur.is_hot, cur.is_rising, cur.is_emerging, "
        "cur.is_partial, cur.topic_origin, cur.period_end, cur.example_content_ids, cur.example_titles "
        "from marts.trending_topics as cur "
        "left join marts.trending_topics as prev on prev.source = cur.source and prev.period = cur.period "
        "  and prev.topic = cur.topic and prev.period_start = cur.period_start - ? "
        f"where {where} and cur.period = ? and cur.period_start = ? "
        "order by cur.rank nulls last, cur.volume desc, cur.topic",
        [step(period).days, *params, period, period_start],
    )
    return found.with_columns(
        status=pl.concat_str(
            [
                pl.when(pl.col("is_emerging")).then(pl.lit("emerging")),
                pl.when(pl.col("is_rising") & ~pl.col("is_emerging")).then(pl.lit("rising")),
                pl.when(pl.col("is_hot")).then(pl.lit("hot")),
            ],
            separator=", ",
            ignore_nulls=True,
        )
    )


def history(source: str | None, period: str, topics: list[str], last: date, n: int = SPARK_PERIODS) -> pl.DataFrame:
    """Volume per period of ``topics`` over the ``n`` periods ending at ``last``, zero-filled."""
    first = last - step(period) * (n - 1)
    where, params = data.source_clause(source)
    found = data.query(
        "select topic, period_start, volume from marts.trending_topics "
        f"where {where} and period = ? and list_contains(?::varchar[], topic) and period_start between ? and ?",
        [*params, period, topics, first, last],
    )
    starts = [first + step(period) * i for i in range(n)]
    grid = pl.DataFrame({"period_start": starts}, schema={"period_start": pl.Date}).join(
        pl.DataFrame({"topic": topics, "order": range(len(topics))}, schema={"topic": pl.String, "order": pl.Int64}),
        how="cross",
    )
    return (
        grid.join(found, on=["topic", "period_start"], how="left")
        .with_columns(pl.col("volume").fill_null(0))
        .sort("order", "period_start")
        .drop("order")
    )


def with_sparklines(topics: pl.DataFrame, hist: pl.DataFrame) -> pl.DataFrame:
    """Add a ``trend`` list column (the volume history, oldest first) to ``topics``."""
    spark = hist.group_by("topic", maintain_order=True).agg(pl.col("volume").alias("trend"))
    return topics.join(spark, on="topic", how="left")


def list_table(topics: pl.DataFrame, period: str) -> pl.DataFrame:
    """The columns shown in the emerging and hot lists."""
    return topics.select(
        "topic",
        "trend",
        "volume",
        "previous_volume",
        "growth",
        "z_score",
        pl.col("example_titles").list.join(" | ").alias("example_posts"),
    )


def show_list(topics: pl.DataFrame, hist: pl.DataFrame, period: str) -> None:
    """One topic list as a table with a sparkline column (member-written titles stay inert cells)."""
    st.dataframe(
        list_table(with_sparklines(topics, hist), period),
        hide_index=True,
        column_config=list_config(period),
        width="stretch",
    )


def list_config(period: str) -> dict:
    """Column formats for the lists (sparkline, growth as ×, z-score)."""
    word = "week" if period == "week" else "day"
    return {
        "volume": st.column_config.NumberColumn(f"this {word}", help="items whose thread carries the topic"),
        "previous_volume": st.column_config.NumberColumn(f"last {word}"),
        "growth": st.column_config.NumberColumn("growth", format="×%.1f", help="(volume + 1) / (baseline mean + 1)"),
        "z_score": st.column_config.NumberColumn("z-score", format="%.1f"),
        "trend": st.column_config.BarChartColumn(
            f"last {SPARK_PERIODS} {word}s",
            y_min=0,
            help=f"items per {word}, oldest first; the last bar is this {word}",
        ),
        "example_posts": st.column_config.TextColumn("example threads", width="large"),
    }


def versus_figure(topics: pl.DataFrame, period: str, period_start: date) -> go.Figure:
    """Grouped horizontal bars: this period's volume against the previous one, per topic."""
    word = "week" if period == "week" else "day"
    shown = topics.reverse()  # plotly draws the first bar at the bottom
    labels = [components.plotly_escape(t) for t in shown["topic"].to_list()]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=labels, x=shown["previous_volume"].to_list(), name=f"last {word}", orientation="h", marker_color="#94a3b8"
        )
    )
    fig.add_trace(
        go.Bar(y=labels, x=shown["volume"].to_list(), name=f"this {word}", orientation="h", marker_color="#2563eb")
    )
    fig.update_layout(
        title=f"This {word} ({period_start:%Y-%m-%d}) versus last {word}: emerging and hot topics",
        barmode="group",
        xaxis={"title": f"items per {word}", **components.count_axis(max(topics["volume"].max() or 0, 1))},
        height=max(260, 46 * shown.height + 110),
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def sparkline_figure(hist: pl.DataFrame, topics: list[str], title: str, period: str) -> go.Figure:
    """One small line per topic (shared time axis): its volume over the last periods."""
    fig = make_subplots(
        rows=len(topics),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.25 / len(topics),
        subplot_titles=[components.plotly_escape(t) for t in topics],
    )
    for i, topic in enumerate(topics, start=1):
        rows = hist.filter(pl.col("topic") == topic)
        fig.add_trace(
            go.Scatter(
                x=rows["period_start"].to_list(),
                y=rows["volume"].to_list(),
                mode="lines+markers",
                name=components.plotly_escape(topic),
                line={"width": 2},
                marker={"size": 4},
                hovertemplate="%{x|%Y-%m-%d}: %{y} items<extra>" + components.plotly_escape(topic) + "</extra>",
            ),
            row=i,
            col=1,
        )
        fig.update_yaxes(rangemode="tozero", nticks=3, row=i, col=1)
    fig.update_annotations(font_size=12, x=0, xanchor="left")  # the topic names, left-aligned
    word = "week" if period == "week" else "day"
    fig.update_layout(title=f"{title}: items per {word}", showlegend=False, height=90 * len(topics) + 90)
    return fig


def render() -> None:
    """The Trending topics page."""
    source = components.page_header(
        "Trending topics",
        "What people talk about now: hot topics are this period's largest; emerging topics grow "
        "from almost nothing against their own trailing baseline (z-score ≥ 2), rather than being "
        "always big.",
    )
    if not components.require_table("marts", "trending_topics", "topic trends"):
        return
    span = components.data_days(source)
    where, params = data.source_clause(source)
    bounds = data.query(
        f"select min(period_start) as first, max(period_end) as last from marts.trending_topics where {where}", params
    ).row(0)
    if bounds[0] is None:
        components.empty_state("No topics (tags or keyphrases) recorded for this source yet, so nothing is trending.")
        return
    first, last = bounds if span is None else (min(span[0], bounds[0]), max(span[1], bounds[1]))
    col_period, col_range, col_when = st.columns([1, 1, 1])
    period = col_period.radio(
        "Window",
        list(PERIOD_NAMES),
        format_func=PERIOD_NAMES.get,
        horizontal=True,
        key="trend_period",
        help="Compare days with the 28 days before, or weeks with the 4 before.",
    )
    start, end = components.date_range_filter(
        first, last, key="trend_range", container=col_range, shared=True, default=span
    )
    starts = period_starts(source, period, start - step(period) + timedelta(days=1), end)
    if not starts:
        components.empty_state(f"No topics recorded between {start:%Y-%m-%d} and {end:%Y-%m-%d}.")
        return
    label = "Week starting (Monday)" if period == "week" else "Day"
    with_emerging = emerging_starts(source, period, starts[-1], starts[0])
    default = starts.index(with_emerging[0]) if with_emerging else 0
    chosen = col_when.selectbox(
        label,
        starts,
        index=default,
        key=f"trend_when_{period}",
        format_func=lambda d: f"{d:%Y-%m-%d}" + (" ★" if d in with_emerging else ""),
        help="Newest first; ★ marks periods with an emerging topic. The latest of those is preselected.",
    )
    topics = period_topics(source, period, chosen)
    word = "week" if period == "week" else "day"
    emerging = topics.filter(pl.col("is_emerging")).head(LIST_LIMIT)
    hot = topics.filter(pl.col("is_hot")).sort(["volume", "topic"], descending=[True, False]).head(LIST_LIMIT)
    partial = bool(topics["is_partial"].any())
    span_text = f"{chosen:%Y-%m-%d}" if period == "day" else f"{chosen:%Y-%m-%d} to {topics['period_end'][0]:%Y-%m-%d}"
    partial_text = " The data covers only part of this week." if partial and period == "week" else ""
    st.markdown(
        f"**{word.capitalize()} of {span_text}:** {emerging.height} emerging and {hot.height} hot topics "
        f"among {topics.height} discussed.{partial_text}"
    )
    origin = topics["topic_origin"][0]
    if origin == "keyphrase":
        st.caption("This community has no tags: topics are keyphrases extracted from thread titles and bodies (YAKE).")
    recent = starts[: BURST_PERIODS[period]]  # newest first
    n_periods = (recent[0] - recent[-1]) // step(period) + 1
    burst = bursts(source, period, [recent[-1] + step(period) * i for i in range(n_periods)])
    if burst.height:
        components.show_chart(burst_figure(burst, period), key="trend_burst")
    shown = pl.concat([emerging, hot]).unique("topic", keep="first", maintain_order=True)
    hist = history(source, period, shown["topic"].to_list(), chosen) if shown.height else None
    left, right = st.columns(2)
    with left:
        st.subheader("Emerging")
        st.caption(f"Rising from below the minimum support: new growth this {word}.")
        if emerging.is_empty():
            components.empty_state(f"No topic is emerging in this {word}.")
        else:
            show_list(emerging, hist, period)
    with right:
        st.subheader("Hot")
        st.caption(f"The largest topics this {word}, whether or not they grew.")
        if hot.is_empty():
            components.empty_state(f"No topic reached the minimum support in this {word}.")
        else:
            show_list(hot, hist, period)
    if shown.height:
        components.show_chart(versus_figure(shown, period, chosen), key="trend_versus")
        spark_left, spark_right = st.columns(2)
        if emerging.height:
            with spark_left:
                components.show_chart(
                    sparkline_figure(hist, emerging["topic"].to_list(), "Emerging", period), key="trend_spark_emerging"
                )
        if hot.height:
            with spark_right:
                components.show_chart(
                    sparkline_figure(hist, hot["topic"].to_list(), "Hot", period), key="trend_spark_hot"
                )
        lead = emerging if emerging.height else hot
        st.subheader("Example threads")
        for row in lead.head(3).iter_rows(named=True):
            st.markdown(
                f"**{components.md_escape(row['topic'])}** ({row['volume']} items, "
                f"growth ×{row['growth']:.1f}, z = {row['z_score']:.1f})"
            )
            for cid, title in zip(row["example_content_ids"] or [], row["example_titles"] or [], strict=False):
                components.untrusted_text(title or "(no title)", prefix=f"{cid}: ", limit=200)
    else:
        components.empty_state(f"No topic reached the minimum support in this {word}; the table below lists all.")
    with st.expander(f"All topics of this {word}"):
        table = topics.drop("period_end", "is_partial")
        components.show_table(
            table,
            file_name=f"trending_{source or 'all'}_{period}_{chosen:%Y-%m-%d}.csv",
            key="trend_csv",
            column_config={
                "baseline_mean": st.column_config.NumberColumn("baseline (mean)", format="%.2f"),
                "z_score": st.column_config.NumberColumn("z-score", format="%.2f"),
                "growth": st.column_config.NumberColumn("growth", format="×%.2f"),
            },
        )


render()
