"""Peak times: when the community is awake, as a weekday x hour heatmap in a chosen time zone.

Reads ``marts.activity_heatmap`` (the full 7 x 24 grid per source and activity type in the
community's zone over the whole history) when the reader keeps the community's zone and the
whole date range, and otherwise re-buckets ``marts.activity_timeline`` (15-minute UTC buckets;
every UTC offset is a multiple of 15 minutes, so this is exact) into the chosen zone and
dates, DST-correct through DuckDB's ICU time zone database. Both give the same cells for the
same zone and range (tested). ``marts.engagement_daily`` gives the day-precision note.

The moderation staffing overlay puts flagged items by local hour (current flags in
``marts.moderation_queue``, by the hour the flagged item was posted) next to moderator
decisions by the local hour they were made, read live from the review store (the rows the
Audit log and Moderation insights count, so the pages agree; until there are any the page says so).
"""

from __future__ import annotations

from datetime import date

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import auth, components, data

ALL_CONTENT = "all content"
WEEKDAYS = components.WEEKDAYS
UNITS: dict[str, str] = {
    ALL_CONTENT: "new posts",
    "question": "questions",
    "answer": "answers",
    "comment": "comments",
    "post": "posts",
    "reply": "replies",
    "upvote": "upvotes",
    "downvote": "downvotes",
    "favorite": "favorites",
    "accept": "accepted answers",
    "view": "views",
}
# engagement_daily column holding each engagement type's total
DAILY_COLUMNS: dict[str, str] = {
    "upvote": "upvotes",
    "downvote": "downvotes",
    "favorite": "favorites",
    "accept": "accepts",
}

hour_range = components.hour_range


def activity_types(source: str | None) -> list[str]:
    """Activity types present for ``source``: content types first, then engagement types."""
    where, params = data.source_clause(source)
    found = data.query(f"select distinct activity_type from marts.activity_heatmap where {where}", params)[
        "activity_type"
    ].to_list()
    order = {t: i for i, t in enumerate(data.CONTENT_TYPES + data.ENGAGEMENT_TYPES)}
    return sorted(found, key=lambda t: (order.get(t, len(order)), t))


def heatmap_cells(source: str | None, types: list[str]) -> pl.DataFrame:
    """From the mart: one row per (weekday, hour) with ``events`` and ``mean_per_week`` summed over ``types``."""
    where, params = data.source_clause(source)
    return data.query(
        "select weekday, hour, sum(events)::bigint as events, sum(mean_per_week) as mean_per_week, "
        "max(weeks_observed) as weeks_observed, any_value(timezone) as timezone "
        f"from marts.activity_heatmap where {where} and list_contains(?::varchar[], activity_type) "
        "group by weekday, hour order by weekday, hour",
        [*params, types],
    )


def timeline_cells(source: str | None, types: list[str], timezone: str, start: date, end: date) -> pl.DataFrame:
    """Re-bucket ``marts.activity_timeline`` into (weekday, hour) of ``timezone`` for local dates ``start..end``.

    Returns the full 7 x 24 grid (zero-filled) with ``events``, ``weeks_observed`` (the local
    days from the source's first to its last hour-precise activity inside the range, over every
    activity type, divided by 7, as in ``marts.activity_heatmap``) and ``mean_per_week``.

    Raises:
        duckdb.Error: ``timezone`` is not a zone DuckDB knows (the selector offers only IANA names).
    """
    where, params = data.source_clause(source)
    return data.query(
        f"""
        with local as (
            select activity_type, events,
                timezone(?, timezone('UTC', bucket_start)) as local_ts
            from marts.activity_timeline
            where {where}
        ),
        in_range as (
            select * from local where local_ts::date between ? and ?
        ),
        span as (
            select (date_diff('day', min(local_ts::date), max(local_ts::date)) + 1) / 7.0 as weeks
            from in_range
        ),
        cells as (
            select isodow(local_ts)::integer as weekday, hour(local_ts)::integer as hour, sum(events) as events
            from in_range
            where list_contains(?::varchar[], activity_type)
            group by all
        ),
        grid as (
            select w.range::integer as weekday, h.range::integer as hour from range(1, 8) w, range(0, 24) h
        )
        select grid.weekday, grid.hour, coalesce(cells.events, 0)::bigint as events,
            coalesce(cells.events, 0) / span.weeks as mean_per_week, span.weeks as weeks_observed,
            ? as timezone
        from grid cross join span left join cells using (weekday, hour)
        order by grid.weekday, grid.hour
        """,
        [timezone, *params, start, end, types, timezone],
    )


def peak_cells(cells: pl.DataFrame, n: int = 3) -> pl.DataFrame:
    """The ``n`` busiest (weekday, hour) cells by mean per week (ties: earlier weekday, hour)."""
    return (
        cells.filter(pl.col("mean_per_week") > 0)
        .sort(["mean_per_week", "weekday", "hour"], descending=[True, False, False])
        .head(n)
    )


def peak_sentence(cells: pl.DataFrame, unit: str) -> str | None:
    """``"Busiest: Tuesday 20:00–21:00, 4.2 posts/week on average. Next: …"`` (None when all zero)."""
    peaks = peak_cells(cells).to_dicts()
    if not peaks:
        return None
    top = peaks[0]
    sentence = (
        f"Busiest: {WEEKDAYS[top['weekday'] - 1]} {hour_range(top['hour'])}, "
        f"{top['mean_per_week']:.1f} {unit}/week on average."
    )
    if len(peaks) > 1:
        rest = "; ".join(
            f"{WEEKDAYS[p['weekday'] - 1]} {hour_range(p['hour'])} ({p['mean_per_week']:.1f})" for p in peaks[1:]
        )
        sentence += f" Next: {rest}."
    return sentence


def rhythm_sentence(cells: pl.DataFrame) -> str | None:
    """The busiest weekday, the busiest 3-hour block of the day and the quietest hour, in words."""
    total = cells["events"].sum()
    if not total:
        return None
    by_day = cells.group_by("weekday").agg(pl.col("events").sum()).sort(["events", "weekday"], descending=[True, False])
    by_hour = {r["hour"]: r["events"] for r in cells.group_by("hour").agg(pl.col("events").sum()).to_dicts()}
    blocks = sorted(
        ((sum(by_hour.get((h + k) % 24, 0) for k in range(3)), h) for h in range(24)), key=lambda b: (-b[0], b[1])
    )
    block_events, block_start = blocks[0]
    quiet = min(range(24), key=lambda h: (by_hour.get(h, 0), h))
    day = by_day.row(0, named=True)
    return (
        f"Busiest day: {WEEKDAYS[day['weekday'] - 1]} ({day['events'] / total:.0%} of activity). "
        f"Busiest time of day: {block_start:02d}:00–{(block_start + 3) % 24:02d}:00 "
        f"({block_events / total:.0%} of activity in those three hours). "
        f"Quietest hour: {hour_range(quiet)}."
    )


def heatmap_figure(cells: pl.DataFrame, unit: str, timezone: str) -> go.Figure:
    """Plotly heatmap: rows Monday..Sunday (top to bottom), columns hours 0..23."""
    grid = [[0.0] * 24 for _ in range(7)]
    for row in cells.iter_rows(named=True):
        grid[row["weekday"] - 1][row["hour"]] = float(row["mean_per_week"] or 0.0)
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            x=list(range(24)),
            y=list(WEEKDAYS),
            colorscale="Blues",
            colorbar={"title": {"text": f"{unit}/week"}},
            hovertemplate="%{y} %{x}:00<br>%{z:.2f} " + unit + "/week<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title=f"Mean {unit} per week by local hour ({components.plotly_escape(timezone)})",
        xaxis={"title": "hour of day (local)", "dtick": 1},
        yaxis={"autorange": "reversed"},
        height=380,
    )
    return fig


def day_precision_note(source: str | None, types: list[str]) -> str | None:
    """How many engagement events of ``types`` are left out because they have only a day.

    ``marts.engagement_daily`` counts every event; the heatmap counts only hour-precise ones.
    The difference per type is the day-precision events (Stack Exchange votes), over the whole
    history.
    """
    wanted = [t for t in types if t in DAILY_COLUMNS]
    if not wanted or not data.table_exists("marts", "engagement_daily"):
        return None
    where, params = data.source_clause(source)
    sums = ", ".join(f"coalesce(sum({DAILY_COLUMNS[t]}), 0) as {t}" for t in wanted)
    daily = data.query(f"select {sums} from marts.engagement_daily where {where}", params).row(0, named=True)
    hourly = data.query(
        f"select activity_type, sum(events) as events from marts.activity_heatmap where {where} group by activity_type",
        params,
    )
    in_heatmap = dict(zip(hourly["activity_type"].to_list(), hourly["events"].to_list(), strict=True))
    missing = {t: int(daily[t]) - int(in_heatmap.get(t, 0)) for t in wanted}
    parts = [f"{n:,} {UNITS[t]}" for t, n in missing.items() if n > 0]
    if not parts:
        return None
    return (
        f"Day-precision events are excluded: {', '.join(parts)} carry only a date "
        "(Stack Exchange votes are truncated to the day), so they have no hour to place."
    )


def choose_types(source: str | None, container=st) -> tuple[str, list[str]]:
    """The activity-type selector; returns (label, activity types to sum)."""
    present = activity_types(source)
    content = [t for t in present if t in data.CONTENT_TYPES]
    options = ([ALL_CONTENT] if content else []) + present
    choice = container.selectbox(
        "Activity",
        options,
        key="peak_activity",
        format_func=lambda t: f"All content ({', '.join(content)})" if t == ALL_CONTENT else t,
        help="Content creation types are summed by default; engagement events are hour-precise ones only.",
    )
    return choice, content if choice == ALL_CONTENT else [choice]


# --- moderation staffing overlay ---------------------------------------------------------


def flagged_by_hour(source: str | None, timezone: str, start: date, end: date) -> pl.DataFrame:
    """Current flags by the local hour (in ``timezone``) their item was posted, 24 rows, zero-filled."""
    hours = pl.DataFrame({"hour": list(range(24))}, schema={"hour": pl.Int32})
    if not data.table_exists("marts", "moderation_queue"):
        return hours.with_columns(flagged=pl.lit(0, pl.Int64))
    where, params = data.source_clause(source)
    found = data.query(
        "select hour(l)::integer as hour, count(*)::bigint as flagged from ("
        "  select timezone(?, timezone('UTC', created_at)) as l from marts.moderation_queue "
        f"  where {where}) where l::date between ? and ? group by 1",
        [timezone, *params, start, end],
    )
    return hours.join(found, on="hour", how="left").with_columns(pl.col("flagged").fill_null(0))


def decisions_by_hour(decisions: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """Moderator decisions per local hour of the day they were made.

    Args:
        decisions: the review store's audit log (:meth:`ReviewStore.decisions`; ``decided_at``
            naive UTC), the same rows the Audit log and Moderation insights count.
        timezone: IANA zone of the community.

    Returns:
        24 rows ``hour`` (0-23, Int32), ``decisions`` (Int64, zeros included).
    """
    hours = pl.DataFrame({"hour": list(range(24))}, schema={"hour": pl.Int32})
    found = (
        decisions.select(
            pl.col("decided_at")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone(timezone)
            .dt.hour()
            .cast(pl.Int32)
            .alias("hour")
        )
        .group_by("hour")
        .agg(pl.len().cast(pl.Int64).alias("decisions"))
    )
    return hours.join(found, on="hour", how="left").with_columns(pl.col("decisions").fill_null(0))


def staffing_figure(staffing: pl.DataFrame, timezone: str) -> go.Figure:
    """Bars per local hour: flagged items, and moderator decisions where known."""
    fig = go.Figure()
    hours = staffing["hour"].to_list()
    fig.add_trace(
        go.Bar(
            x=hours, y=staffing["flagged"].to_list(), name="flagged items (posted in this hour)", marker_color="#dc2626"
        )
    )
    if "decisions" in staffing.columns:
        fig.add_trace(
            go.Bar(x=hours, y=staffing["decisions"].to_list(), name="moderator decisions", marker_color="#2563eb")
        )
    top = max(
        [*staffing["flagged"].to_list(), *(staffing["decisions"].to_list() if "decisions" in staffing.columns else [])]
        or [0]
    )
    fig.update_layout(
        title=f"Moderation staffing by local hour ({components.plotly_escape(timezone)})",
        xaxis={"title": "hour of day (local)", "dtick": 1, "range": [-0.5, 23.5]},
        yaxis={"title": "items", **components.count_axis(top)},
        barmode="group",
        height=320,
        showlegend=True,
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def staffing_section(source: str | None, timezone: str, start: date, end: date) -> pl.DataFrame:
    """The staffing overlay: chart, busiest flag hours in words, decisions note; returns the data shown."""
    st.subheader("Moderation staffing")
    st.caption(
        "When flagged content arrives (the hour the flagged item was posted) next to when moderators "
        "decide, in the same time zone and dates as the heatmap."
    )
    staffing = flagged_by_hour(source, timezone, start, end)
    # decisions are read live from the review store (what the Audit log and Moderation insights
    # count), not from the snapshot, which lags until the next pipeline run; all of them, since
    # moderators decide now on content of any date
    decisions = auth.review_store().decisions(source=source)
    decided = decisions.height > 0
    if decided:
        staffing = staffing.join(decisions_by_hour(decisions, timezone), on="hour")
    total = int(staffing["flagged"].sum())
    if total == 0 and not decided:
        components.empty_state("No flagged items in this date range, and no moderator decisions recorded yet.")
        return staffing
    if total:
        top = staffing.sort(["flagged", "hour"], descending=[True, False]).head(3)
        hours = ", ".join(f"{hour_range(r['hour'])} ({r['flagged']})" for r in top.to_dicts() if r["flagged"])
        st.markdown(f"**{total:,} flagged items**; most arrive at {components.md_escape(hours)}.")
    else:
        st.markdown("No flagged items in this date range.")
    if decided:
        st.caption(
            f"Moderator decisions: all {decisions.height:,} recorded in the review store, by the local hour they were made."
        )
    else:
        components.empty_state(
            "No moderator decisions yet: they appear as moderators work the review queue. "
            "Until then this chart shows flagged items only."
        )
    components.show_chart(staffing_figure(staffing, timezone), key="peak_staffing")
    return staffing


def render() -> None:
    """The Peak times page."""
    source = components.page_header(
        "Peak times",
        "When your community is most active: the average number of events per week in each "
        "weekday and hour, in the time zone you choose (the community's by default).",
    )
    if not components.require_table("marts", "activity_heatmap", "activity data"):
        return
    if not activity_types(source):
        components.empty_state("No activity recorded for this source yet, so there are no peak times to show.")
        return
    community = components.source_timezone(source) or "UTC"
    first_last = components.data_days(source)
    col_type, col_tz, col_range = st.columns([1, 1, 1])
    choice, types = choose_types(source, col_type)
    timezone = col_tz.selectbox(
        "Time zone",
        components.timezone_options(community),
        key="peak_tz",
        help="Hours and weekdays are shown in this zone, DST-correct. The community's zone comes first.",
    )
    start = end = None
    if first_last is not None:
        start, end = components.date_range_filter(*first_last, key="peak_range", container=col_range, shared=True)
    whole = first_last is None or (start, end) == first_last
    # over the whole history nothing is cut at the edges, whatever the zone's date shift
    lo, hi = (date.min, date.max) if whole else (start, end)
    if timezone == community and whole:
        cells = heatmap_cells(source, types)
    elif data.table_exists("marts", "activity_timeline") and start is not None:
        cells = timeline_cells(source, types, timezone, lo, hi)
    else:
        components.empty_state(
            "Other time zones and date ranges need `marts.activity_timeline`, which this "
            "snapshot lacks; showing the community's zone over the whole history."
        )
        timezone = community
        cells = heatmap_cells(source, types)
    unit = UNITS.get(choice, f"{choice} events")
    weeks = cells["weeks_observed"].max() or 0
    note = "" if timezone == community else f" (the community's own zone is {components.md_escape(community)})"
    st.markdown(
        f"Times are local to **{components.md_escape(timezone)}**{note}. Averaged over {weeks:.1f} weeks observed."
    )
    sentence = peak_sentence(cells, unit)
    if sentence is None:
        components.empty_state(f"No {unit} recorded for this source in this date range.")
    else:
        st.success(sentence, icon=":material/schedule:")
        rhythm = rhythm_sentence(cells)
        if rhythm:
            st.markdown(rhythm)
    precision_note = day_precision_note(source, types if choice != ALL_CONTENT else list(DAILY_COLUMNS))
    if precision_note:
        st.info(precision_note, icon=":material/event_note:")
    if sentence is not None:
        components.show_chart(heatmap_figure(cells, unit, timezone), key="peak_heatmap")
    names = dict(enumerate(WEEKDAYS, start=1))
    table = cells.select(
        "weekday",
        pl.col("weekday").replace_strict(names, return_dtype=pl.String).alias("weekday_name"),
        "hour",
        "events",
        "weeks_observed",
        "mean_per_week",
    )
    with st.expander("Data behind the heatmap"):
        components.show_table(table, file_name=f"peak_times_{source or 'all'}.csv", key="peak_csv")
    if start is not None:
        staffing = staffing_section(source, timezone, lo, hi)
        with st.expander("Data behind the staffing chart"):
            components.show_table(
                staffing, file_name=f"moderation_staffing_{source or 'all'}.csv", key="peak_staffing_csv"
            )


render()
