"""Peak times: when the community is awake, as a weekday x hour heatmap in local time.

Reads ``marts.activity_heatmap`` (full 7 x 24 grid per source and activity type; the mean per
week is events divided by the weeks observed) and, for the day-precision note,
``marts.engagement_daily`` (which counts every event, day-precision ones included).
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import components, data

ALL_CONTENT = "all content"
WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
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
DAILY_COLUMNS: dict[str, str] = {"upvote": "upvotes", "downvote": "downvotes", "favorite": "favorites", "accept": "accepts"}


def hour_range(hour: int) -> str:
    """``20`` -> ``"20:00–21:00"`` (the hour-long slot starting at ``hour``)."""
    return f"{hour:02d}:00–{(hour + 1) % 24:02d}:00"


def activity_types(source: str | None) -> list[str]:
    """Activity types present for ``source``: content types first, then engagement types."""
    where, params = data.source_clause(source)
    found = data.query(
        f"select distinct activity_type from marts.activity_heatmap where {where}", params
    )["activity_type"].to_list()
    order = {t: i for i, t in enumerate(data.CONTENT_TYPES + data.ENGAGEMENT_TYPES)}
    return sorted(found, key=lambda t: (order.get(t, len(order)), t))


def heatmap_cells(source: str | None, types: list[str]) -> pl.DataFrame:
    """One row per (weekday, hour): ``events`` and ``mean_per_week`` summed over ``types``."""
    where, params = data.source_clause(source)
    return data.query(
        "select weekday, hour, sum(events) as events, sum(mean_per_week) as mean_per_week, "
        "max(weeks_observed) as weeks_observed, any_value(timezone) as timezone "
        f"from marts.activity_heatmap where {where} and list_contains(?::varchar[], activity_type) "
        "group by weekday, hour order by weekday, hour",
        [*params, types],
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
    The difference per type is the day-precision events (Stack Exchange votes).
    """
    wanted = [t for t in types if t in DAILY_COLUMNS]
    if not wanted or not data.table_exists("marts", "engagement_daily"):
        return None
    where, params = data.source_clause(source)
    sums = ", ".join(f"coalesce(sum({DAILY_COLUMNS[t]}), 0) as {t}" for t in wanted)
    daily = data.query(f"select {sums} from marts.engagement_daily where {where}", params).row(0, named=True)
    hourly = data.query(
        f"select activity_type, sum(events) as events from marts.activity_heatmap where {where} "
        "group by activity_type",
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


def choose_types(source: str | None) -> tuple[str, list[str]]:
    """The activity-type selector; returns (label, activity types to sum)."""
    present = activity_types(source)
    content = [t for t in present if t in data.CONTENT_TYPES]
    options = ([ALL_CONTENT] if content else []) + present
    choice = st.selectbox(
        "Activity",
        options,
        key="peak_activity",
        format_func=lambda t: f"All content ({', '.join(content)})" if t == ALL_CONTENT else t,
        help="Content creation types are summed by default; engagement events are hour-precise ones only.",
    )
    return choice, content if choice == ALL_CONTENT else [choice]


def render() -> None:
    """The Peak times page."""
    source = components.page_header(
        "Peak times",
        "When your community is most active: the average number of events per week in each "
        "weekday and hour, in the community's local time.",
    )
    if not components.require_table("marts", "activity_heatmap", "activity data"):
        return
    if not activity_types(source):
        components.empty_state("No activity recorded for this source yet, so there are no peak times to show.")
        return
    choice, types = choose_types(source)
    cells = heatmap_cells(source, types)
    unit = UNITS.get(choice, f"{choice} events")
    zones = cells["timezone"].drop_nulls()
    timezone = (zones[0] if zones.len() else None) or components.source_timezone(source) or "UTC"
    weeks = cells["weeks_observed"].max() or 0
    st.markdown(f"Times are local to the community: **{components.md_escape(timezone)}**. "
                f"Averaged over {weeks:.1f} weeks observed.")
    sentence = peak_sentence(cells, unit)
    if sentence is None:
        components.empty_state(f"No {unit} recorded for this source yet.")
    else:
        st.success(sentence, icon=":material/schedule:")
    note = day_precision_note(source, types if choice != ALL_CONTENT else list(DAILY_COLUMNS))
    if note:
        st.info(note, icon=":material/event_note:")
    components.show_chart(heatmap_figure(cells, unit, timezone), key="peak_heatmap")
    with st.expander("Data behind the chart"):
        names = dict(enumerate(WEEKDAYS, start=1))
        table = cells.select(
            "weekday",
            pl.col("weekday").replace_strict(names, return_dtype=pl.String).alias("weekday_name"),
            "hour",
            "events",
            "weeks_observed",
            "mean_per_week",
        )
        components.show_table(table, file_name=f"peak_times_{source or 'all'}.csv", key="peak_csv")


render()
