"""Best time to post: which weekday and hour (community time) gets a new thread the most engagement.

Reads ``marts.response_times`` (one row per thread root: local posting slot, engagement and
responses within the window, whether the window is complete) and aggregates it for the chosen
date range, grouping and minimum support with the formulas of ``marts.best_time_to_post``
(transforms/README.md): expected engagement per post with a 95% normal-approximation interval,
response share with its Wilson lower bound, median hours to the first response; slots ranked
by the interval's lower end (the "ranking figure", shown and explained on the page: a slot
with a higher mean but fewer threads has a wider interval and can rank lower), slots with too
few posts marked and not ranked. With the whole history, weekday x hour and the default support
the result equals ``marts.best_time_to_post`` (tested). Columns that carry nothing for the
source (mean votes where votes have only a date, mean comments where the platform has no
comments) are left out of the table.
"""

from __future__ import annotations

from datetime import date

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import components, data

Z = 1.959964  # 97.5% standard normal quantile, as in the mart
GROUPINGS: dict[str, tuple[str, ...]] = {
    "weekday × hour": ("weekday", "hour"),
    "hour of day": ("hour",),
    "weekday": ("weekday",),
}
DEFAULT_MIN_POSTS = 5  # as transforms.runner.run_marts


def slot_stats(source: str | None, start: date, end: date, grouping: str, min_posts: int) -> pl.DataFrame:
    """Per slot of ``grouping``: support, expected engagement with its interval, response share, rank.

    Only threads posted between ``start`` and ``end`` (local dates, inclusive) whose response
    window is complete count. Columns: ``weekday`` and ``hour`` (NULL when the grouping drops
    them), ``posts``, ``mean_engagement``, ``engagement_ci_low``, ``engagement_ci_high``,
    ``mean_answers``, ``mean_comments``, ``mean_votes``, ``responded``, ``response_share``,
    ``response_share_wilson_low``, ``median_hours_to_first_response``, ``is_sufficient``,
    ``rank`` (1 = best; NULL when not sufficient). Sorted by rank, then the slot.

    Raises:
        KeyError: ``grouping`` is not one of :data:`GROUPINGS`.
    """
    keys = GROUPINGS[grouping]  # trusted column names from the table above, never user text
    select_keys = ", ".join(f"{k}" if k in keys else f"null::integer as {k}" for k in ("weekday", "hour"))
    where, params = data.source_clause(source)
    return data.query(
        f"""
        with posts as (
            select * from marts.response_times
            where {where} and window_complete and created_local::date between ? and ?
        ),
        cells as (
            select {select_keys},
                count(*) as posts,
                avg(engagement_within) as mean_engagement,
                stddev_samp(engagement_within) as engagement_sd,
                avg(answers_within) as mean_answers,
                avg(comments_within) as mean_comments,
                avg(votes_within) as mean_votes,
                count(*) filter (where responded_within) as responded,
                quantile_cont(hours_to_first_response, 0.5) as median_hours_to_first_response
            from posts
            group by all
        ),
        scored as (
            select *,
                case when posts >= 2
                    then greatest(0.0, mean_engagement - {Z} * engagement_sd / sqrt(posts)) end as engagement_ci_low,
                case when posts >= 2
                    then mean_engagement + {Z} * engagement_sd / sqrt(posts) end as engagement_ci_high,
                responded / posts as response_share,
                (responded / posts + {Z} ^ 2 / (2 * posts)
                    - {Z} * sqrt((responded / posts) * (1 - responded / posts) / posts + {Z} ^ 2 / (4 * posts * posts)))
                    / (1 + {Z} ^ 2 / posts) as response_share_wilson_low,
                posts >= ? as is_sufficient
            from cells
        )
        select weekday, hour, posts, mean_engagement, engagement_ci_low, engagement_ci_high,
            mean_answers, mean_comments, mean_votes, responded, response_share, response_share_wilson_low,
            median_hours_to_first_response, is_sufficient,
            case when is_sufficient then row_number() over (
                partition by is_sufficient
                order by engagement_ci_low desc, mean_engagement desc, weekday nulls first, hour nulls first
            ) end as rank
        from scored
        order by rank nulls last, weekday nulls first, hour nulls first
        """,
        [*params, start, end, min_posts],
    )


def slot_label(weekday: int | None, hour: int | None) -> str:
    """``Thursday 14:00–15:00``, ``14:00–15:00`` or ``Thursday`` for the grouping's slot."""
    parts = []
    if weekday is not None:
        parts.append(components.WEEKDAYS[weekday - 1])
    if hour is not None:
        parts.append(components.hour_range(hour))
    return " ".join(parts)


RANKING_RULE = (
    "Slots are ranked by the lower end of that 95% interval, the ranking figure (here **{low:.2f}**), "
    "so a slot needs both a high average and enough threads: one with a higher average but fewer "
    "threads has a wider interval and can rank below it."
)


def recommendation(slots: pl.DataFrame, timezone: str, *, with_votes: bool = True, window_days: int = 7) -> str | None:
    """The best slot and its evidence, the ranking rule in one sentence with the figure it uses,
    and the runners-up with theirs (None when nothing is ranked).

    ``with_votes`` False says "responses" instead of "responses and votes" (votes without an hour).
    """
    ranked = slots.filter(pl.col("rank").is_not_null()).sort("rank")
    if ranked.is_empty():
        return None
    best = ranked.row(0, named=True)
    median = best["median_hours_to_first_response"]
    first = f", the first after {median:.1f} h (median)" if median is not None else ""
    text = (
        f"Post on **{slot_label(best['weekday'], best['hour'])}** ({components.md_escape(timezone)}): a new thread "
        f"there got **{best['mean_engagement']:.1f}** {'responses and votes' if with_votes else 'responses'} "
        f"within {window_days} days on average "
        f"(95% CI {best['engagement_ci_low']:.1f}–{best['engagement_ci_high']:.1f}, {best['posts']} threads); "
        f"{best['response_share']:.0%} got a response within {window_days} days{first}. "
        + RANKING_RULE.format(low=best["engagement_ci_low"])
    )
    if ranked.height > 1:
        others = "; ".join(
            f"{slot_label(r['weekday'], r['hour'])} (ranking figure {r['engagement_ci_low']:.2f}; "
            f"mean {r['mean_engagement']:.1f} over {r['posts']} threads)"
            for r in ranked.slice(1, 2).iter_rows(named=True)
        )
        text += f" Next best: {others}."
    return text


def ranked_figure(slots: pl.DataFrame, limit: int = 10, *, with_votes: bool = True) -> go.Figure:
    """The top ``limit`` ranked slots: mean engagement with its 95% interval, support as text."""
    what = "responses and votes" if with_votes else "responses"
    top = slots.filter(pl.col("rank").is_not_null()).sort("rank").head(limit).reverse()
    labels = [slot_label(w, h) for w, h in zip(top["weekday"].to_list(), top["hour"].to_list(), strict=True)]
    mean = top["mean_engagement"].to_list()
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=mean,
            orientation="h",
            marker_color="#2563eb",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [h - m for h, m in zip(top["engagement_ci_high"].to_list(), mean, strict=True)],
                "arrayminus": [m - lo for lo, m in zip(top["engagement_ci_low"].to_list(), mean, strict=True)],
                "color": "#1e3a8a",
            },
            text=[f"n = {n}" for n in top["posts"].to_list()],
            textposition="inside",
            insidetextanchor="start",
            hovertemplate="%{y}<br>mean %{x:.2f} per thread<br>%{text}<extra></extra>",
            name="mean (95% interval)",
        )
    )
    fig.add_trace(
        go.Scatter(
            y=labels,
            x=top["engagement_ci_low"].to_list(),
            mode="markers",
            name="ranking figure (interval's lower end)",
            marker={"symbol": "diamond", "size": 10, "color": "#f59e0b", "line": {"color": "#1f2937", "width": 1}},
            hovertemplate="%{y}<br>ranking figure %{x:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Top slots: expected {what} per new thread (95% interval); ranked by its lower end (◆)",
        legend={"orientation": "h", "y": -0.25},
        xaxis={"title": f"{what} within the window, per thread", "rangemode": "tozero"},
        height=max(260, 34 * top.height + 120),
    )
    return fig


def heatmap_figure(slots: pl.DataFrame, timezone: str, min_posts: int) -> go.Figure:
    """Weekday x hour heatmap of expected engagement; slots with too little data are left blank."""
    grid: list[list[float | None]] = [[None] * 24 for _ in range(7)]
    support = [[0] * 24 for _ in range(7)]
    for row in slots.iter_rows(named=True):
        support[row["weekday"] - 1][row["hour"]] = row["posts"]
        if row["is_sufficient"]:
            grid[row["weekday"] - 1][row["hour"]] = row["mean_engagement"]
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            x=list(range(24)),
            y=list(components.WEEKDAYS),
            customdata=support,
            colorscale="Greens",
            colorbar={"title": {"text": "per thread"}},
            hovertemplate="%{y} %{x}:00<br>%{z:.2f} per thread<br>%{customdata} threads<extra></extra>",
            hoverongaps=False,
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title=f"Expected engagement by posting slot ({components.plotly_escape(timezone)}); "
        f"blank: fewer than {min_posts} threads",
        xaxis={"title": "hour of day (local)", "dtick": 1},
        yaxis={"autorange": "reversed"},
        height=380,
    )
    return fig


def slot_table(slots: pl.DataFrame, min_posts: int) -> pl.DataFrame:
    """The slot table as shown: rank, slot, status, the ranking figure, then the evidence.

    ``status`` is ``ranked`` or ``too little data (n < min_posts)``; ``ranking_figure`` is
    ``engagement_ci_low``. The ``mean_answers``/``mean_comments``/``mean_votes`` columns that
    are zero or empty in every slot (no comments on the platform, day-precision votes) are
    dropped, as are ``weekday``/``hour`` when the grouping has none.
    """
    table = slots.with_columns(
        pl.struct("weekday", "hour")
        .map_elements(lambda s: slot_label(s["weekday"], s["hour"]), return_dtype=pl.String)
        .alias("slot"),
        pl.when(pl.col("is_sufficient"))
        .then(pl.lit("ranked"))
        .otherwise(pl.lit(f"too little data (< {min_posts} threads)"))
        .alias("status"),
        pl.col("engagement_ci_low").alias("ranking_figure"),
    ).select(
        "rank",
        "slot",
        "status",
        "ranking_figure",
        pl.exclude("rank", "slot", "status", "ranking_figure", "engagement_ci_low", "is_sufficient"),
    )
    empty = [c for c in ("weekday", "hour") if table[c].is_null().all()]
    empty += [c for c in ("mean_answers", "mean_comments", "mean_votes") if not (table[c].fill_null(0) != 0).any()]
    return table.drop(empty)


def response_summary(source: str | None, start: date, end: date) -> dict:
    """Threads posted in the range, never answered (count and share), median and p90 hours to the first answer."""
    where, params = data.source_clause(source)
    return data.query(
        "select count(*) as threads, count(*) filter (where not is_answered) as never_answered, "
        "median(hours_to_first_answer) as median_first_answer, "
        "quantile_cont(hours_to_first_answer, 0.9) as p90_first_answer "
        f"from marts.response_times where {where} and created_local::date between ? and ?",
        [*params, start, end],
    ).row(0, named=True)


def votes_are_day_precision(source: str | None) -> bool:
    """True when the source has votes but none of them is hour-precise (Stack Exchange dumps)."""
    if not data.table_exists("marts", "engagement_daily") or not data.table_exists("marts", "activity_heatmap"):
        return False
    where, params = data.source_clause(source)
    votes = data.query(f"select coalesce(sum(votes), 0) as n from marts.engagement_daily where {where}", params)["n"][0]
    exact = data.query(
        f"select coalesce(sum(events), 0) as n from marts.activity_heatmap where {where} "
        "and activity_type in ('upvote', 'downvote')",
        params,
    )["n"][0]
    return votes > 0 and exact == 0


def render() -> None:
    """The Best time to post page."""
    source = components.page_header(
        "Best time to post",
        "When a new thread gets the most engagement: responses (answers, comments, replies by "
        "others) and votes within 7 days per thread, by the weekday and hour it was posted, with "
        "the evidence for each slot.",
    )
    if not components.require_table("marts", "response_times", "response data"):
        return
    where, params = data.source_clause(source)
    bounds = data.query(
        "select min(created_local)::date as first, max(created_local)::date as last, any_value(timezone) as tz "
        f"from marts.response_times where {where}",
        params,
    ).row(0)
    if bounds[0] is None:
        components.empty_state("No threads recorded for this source yet, so there is no best time to post.")
        return
    first, last, timezone = bounds
    first, last = components.data_days(source) or (first, last)  # the range every analytics page shares
    col_range, col_group, col_support = st.columns([1, 1, 1])
    start, end = components.date_range_filter(first, last, key="best_range", container=col_range, shared=True)
    grouping = col_group.radio(
        "Slots",
        list(GROUPINGS),
        horizontal=True,
        key="best_grouping",
        help="Coarser slots pool more threads: useful for small communities.",
    )
    min_posts = col_support.number_input(
        "Minimum threads per slot",
        min_value=2,
        max_value=100,
        value=DEFAULT_MIN_POSTS,
        step=1,
        key="best_min_posts",
        help="Slots with fewer threads are marked 'too little data' and not ranked.",
    )
    slots = slot_stats(source, start, end, grouping, int(min_posts))
    st.markdown(
        f"Times are local to the community: **{components.md_escape(timezone)}**. Only threads whose "
        "7-day window had ended by the data's last day count."
    )
    if slots.is_empty():
        components.empty_state(
            f"No threads with a complete 7-day window were posted between {start:%Y-%m-%d} and {end:%Y-%m-%d}."
        )
        return
    day_votes = votes_are_day_precision(source)
    sentence = recommendation(slots, timezone, with_votes=not day_votes)
    if sentence is None:
        components.empty_state(
            f"No slot has at least {int(min_posts)} threads in this range: too little data to rank. "
            "Widen the date range, use coarser slots, or lower the minimum."
        )
    else:
        st.success(sentence, icon=":material/event_available:")
    if day_votes:
        st.info(
            "Votes are not counted here: this source's votes carry only a date (Stack Exchange dumps truncate "
            "them to the day), which cannot be placed within hours of a post. Engagement is answers and "
            "comments by other members.",
            icon=":material/event_note:",
        )
    summary = response_summary(source, start, end)
    cols = st.columns(4)
    cols[0].metric("Threads posted", f"{summary['threads']:,}")
    never = summary["never_answered"]
    share = never / summary["threads"] if summary["threads"] else 0
    cols[1].metric(
        "Never answered", f"{never:,}", help=f"{share:.1%} of the threads got no answer from another member."
    )
    med, p90 = summary["median_first_answer"], summary["p90_first_answer"]
    cols[2].metric("Median time to first answer", "–" if med is None else f"{med:.1f} h")
    cols[3].metric(
        "90% answered within",
        "–" if p90 is None else f"{p90:.1f} h",
        help="90th percentile of the time to the first answer, over answered threads.",
    )
    if sentence is not None:
        components.show_chart(ranked_figure(slots, with_votes=not day_votes), key="best_ranked")
    if grouping == "weekday × hour":
        components.show_chart(heatmap_figure(slots, timezone, int(min_posts)), key="best_heatmap")
    st.subheader("Every slot with its evidence")
    components.show_table(
        slot_table(slots, int(min_posts)),
        file_name=f"best_time_{source or 'all'}_{start}_{end}.csv",
        key="best_csv",
        column_config={
            "ranking_figure": st.column_config.NumberColumn(
                "ranking figure",
                format="%.2f",
                help="The lower end of the 95% interval of the mean: what ranks the slots.",
            ),
            "mean_engagement": st.column_config.NumberColumn("mean per thread", format="%.2f"),
            "engagement_ci_high": st.column_config.NumberColumn("95% CI high", format="%.2f"),
            "response_share": st.column_config.NumberColumn("responded", format="percent"),
            "response_share_wilson_low": st.column_config.NumberColumn("responded (Wilson low)", format="percent"),
            "median_hours_to_first_response": st.column_config.NumberColumn("median h to 1st response", format="%.1f"),
            "mean_answers": st.column_config.NumberColumn("mean answers", format="%.2f"),
            "mean_comments": st.column_config.NumberColumn("mean comments", format="%.2f"),
            "mean_votes": st.column_config.NumberColumn("mean votes", format="%.2f"),
        },
    )


render()
