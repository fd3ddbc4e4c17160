"""Moderation insights: backlog, flag volume, queue age, decisions per moderator, model–moderator agreement.

The backlog (open items, the oldest one's age, items past the response-time target) is live:
the snapshot's queue with the review store's states, measured now
(:func:`dashboards.review_ui.live_backlog`); the target defaults to the settings' and can be
changed on the page. Every decision row counts (undo and reopen too), so the totals here
equal the Audit log's.

Aggregates only, never an item's text: managers may open this page. Flags come from the
snapshot (``marts.moderation_queue``, only id, time, tag and score columns are read), decisions
live from the review store. The computations are in :mod:`moderation.insights` (formulas there).
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import auth, components, data, review_ui
from moderation import insights

AGGREGATE_COLUMNS = (
    "source", "content_id", "created_at", "content_hash", "tags", "flagged_labels", "max_label", "max_score",
)  # fmt: skip


def load_flags(source: str | None) -> pl.DataFrame:
    """Flagged items (no text columns) with their label scores."""
    present = set(data.table_columns("marts", "moderation_queue"))
    columns = [c for c in (*AGGREGATE_COLUMNS, *data.LABELS) if c in present]
    where, params = data.source_clause(source)
    return data.query(f"select {', '.join(columns)} from marts.moderation_queue where {where}", params)


def volume_chart(volume: pl.DataFrame, every: str) -> go.Figure:
    """Bars: flagged items per period."""
    fig = go.Figure(
        go.Bar(
            x=volume["period"].to_list(),
            y=volume["flags"].to_list(),
            marker_color="#f59e0b",
            hovertemplate="%{x|%Y-%m-%d}: %{y} flags<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Flagged items per {'day' if every == '1d' else 'week'} (by creation time)",
        yaxis={"title": "items", **components.count_axis(volume["flags"].max() or 0)},
        height=280,
    )
    return fig


def tag_chart(by_tag: pl.DataFrame) -> go.Figure:
    """Horizontal bars: flagged items per tag (tags escaped for plotly)."""
    fig = go.Figure(
        go.Bar(
            x=by_tag["flags"].to_list(),
            y=[components.plotly_escape(t) for t in by_tag["tag"]],
            orientation="h",
            marker_color="#6366f1",
            hovertemplate="%{y}: %{x}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Flagged items by tag",
        yaxis={"autorange": "reversed"},
        xaxis={"title": "items", **components.count_axis(by_tag["flags"].max() or 0)},
        height=120 + 22 * by_tag.height,
    )
    return fig


def duration(hours: float | None) -> str:
    """``3.5`` -> ``"3.5 h"``; 48 hours and more in days (``"3925.2 d"``); None -> ``"–"``."""
    if hours is None:
        return "–"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def backlog_section(source: str | None, store: object, settings: object) -> None:
    """Open items, the oldest one's age, items past the response-time target (live)."""
    st.subheader("Backlog")
    sla = st.number_input(
        "Response-time target (hours)", min_value=0.5, max_value=24.0 * 90, value=review_ui.sla_hours(settings),
        step=1.0, key="insights_sla", help="An item should be decided within this many hours of its creation "
        "(default: the setting PULSE_REVIEW_SLA_HOURS).",
    )  # fmt: skip
    backlog = review_ui.live_backlog(source, store, float(sla))
    if backlog is None:
        return
    a, b, c = st.columns(3)
    a.metric("Open items", f"{backlog.open:,}", help="Pending or escalated, live from the review store.")
    b.metric("Oldest open item", duration(backlog.oldest_hours), help="Time since its creation, as of now.")
    c.metric(f"Past the {float(sla):g} h target", f"{backlog.past_sla:,}")
    st.caption(f"As of {backlog.as_of:%Y-%m-%d %H:%M} UTC; {backlog.escalated:,} of the open items are escalated.")


def render() -> None:
    """The Moderation insights page."""
    auth.require_role(auth.INSIGHT_ROLES, "Moderation insights")
    source = components.page_header(
        "Moderation insights",
        "How much gets flagged, how fast moderators decide, and how often they agree with the model. "
        "Aggregates only: no item text on this page.",
    )
    if not components.require_table("marts", "moderation_queue", "flagged items"):
        return
    from pulse.settings import load_settings

    settings = load_settings()
    flags = load_flags(source)
    store = auth.review_store()
    decisions = store.decisions(source=source)
    backlog_section(source, store, settings)
    st.subheader("Flag volume")
    if flags.is_empty():
        components.empty_state("No flagged items in this snapshot.")
    else:
        every = st.radio(
            "Per",
            ["1d", "1w"],
            horizontal=True,
            key="insights_every",
            format_func=lambda e: "day" if e == "1d" else "week",
        )
        left, right = st.columns([3, 2])
        with left:
            components.show_chart(volume_chart(insights.flag_volume(flags, every), every), key="insights_volume")
        with right:
            components.show_chart(tag_chart(insights.flags_by_tag(flags)), key="insights_tags")

    st.subheader("Queue age and decisions")
    age = insights.queue_age(flags, decisions)
    a, b, c, d = st.columns(4)
    a.metric("Decisions", f"{decisions.height:,}")
    b.metric("Items decided", f"{age.n:,}")
    c.metric("Time to decision, p50", duration(age.p50_hours))
    d.metric("Time to decision, p90", duration(age.p90_hours))
    st.caption("Time from an item's creation to its first decision; p50 / p90 are the median and 90th percentile.")
    per_moderator = insights.decisions_per_moderator(decisions)
    if per_moderator.is_empty():
        components.empty_state("No decisions yet.")
    else:
        components.show_table(per_moderator, file_name="decisions_per_moderator.csv", key="insights_moderators_csv")

    st.subheader("Model–moderator agreement")
    st.caption(
        "Per label: among decided items (approved or removed) scoring at or above the flag threshold, "
        "the share that moderators removed (precision at the current threshold)."
    )
    # labels the model scored (the lexical fallback scores only toxicity)
    labels = [label for label in data.LABELS if label in flags.columns and flags[label].null_count() < flags.height]
    decided = insights.decided_items(flags, decisions, labels)
    agreement = insights.agreement(decided, {k: v for k, v in settings.thresholds.items() if k in labels})
    components.show_table(
        agreement, file_name="agreement.csv", key="insights_agreement_csv",
        column_config={"precision": st.column_config.NumberColumn(format="percent")},
    )  # fmt: skip
    left, right = st.columns(2)
    target = left.slider("Target precision", 0.5, 1.0, 0.9, 0.01, key="insights_target")
    min_n = right.number_input("At least this many decisions above the threshold", 1, 10_000, 20, key="insights_min_n")
    rows = []
    for label in labels:
        s = insights.suggest_threshold(decided, label, target=target, min_decisions=int(min_n))
        rows.append(
            {
                "label": s.label,
                "current threshold": settings.thresholds.get(label),
                "suggested threshold": s.threshold,
                "precision there": s.precision,
                "decisions": s.n,
                "why": s.reason,
            }
        )
    st.markdown(f"**Suggested thresholds** for a precision of at least {target:.0%}:")
    st.dataframe(pl.DataFrame(rows), hide_index=True, width="stretch")


render()
