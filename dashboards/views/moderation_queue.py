"""Moderation queue (read-only): flagged items in review order, with why they were flagged.

Reads ``marts.moderation_queue`` (one row per current flag; ``priority`` 1 = review first).
Every piece of member-written text (title, body, author name, tags, ids) is shown as plain,
escaped text via ``st.text`` (the body in an ``st.code`` block without a language): links and
images inside posts are never live.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import components, data

PAGE_SIZE = 10
BODY_LIMIT = 2000


def queue(source: str | None) -> pl.DataFrame:
    """The flagged items of ``source`` in priority order (1 first)."""
    where, params = data.source_clause(source)
    return data.query(f"select * from marts.moderation_queue where {where} order by priority, content_id", params)


def filter_queue(items: pl.DataFrame, labels: list[str], min_score: float, hold_only: bool) -> pl.DataFrame:
    """Items flagged for any of ``labels`` (all when empty) with ``max_score >= min_score``."""
    out = items.filter(pl.col("max_score") >= min_score)
    if labels:
        out = out.filter(pl.col("flagged_labels").list.eval(pl.element().is_in(labels)).list.any())
    if hold_only:
        out = out.filter(pl.col("hold"))
    return out


def label_options(items: pl.DataFrame) -> list[str]:
    """Labels that occur among the flagged labels, in Detoxify's order."""
    present = set(items["flagged_labels"].explode().drop_nulls().to_list())
    return [label for label in data.LABELS if label in present] + sorted(present - set(data.LABELS))


def filters(items: pl.DataFrame) -> tuple[list[str], float, bool]:
    """The label, minimum-score and hold filters."""
    left, middle, right = st.columns([2, 2, 1])
    labels = left.multiselect("Flagged for", label_options(items), key="queue_labels", placeholder="any label")
    min_score = middle.slider("Minimum score", 0.0, 1.0, 0.0, 0.05, key="queue_min_score")
    right.write("")
    hold_only = right.toggle("Hold only", key="queue_hold_only")
    return labels, min_score, hold_only


def label_chart(items: pl.DataFrame) -> go.Figure:
    """Bar chart: number of items per highest-scoring label, split by hold recommendation."""
    counts = items.group_by("max_label", "hold").len().sort("max_label")
    fig = go.Figure()
    for hold, name, color in ((True, "hold recommended", "#dc2626"), (False, "review", "#f59e0b")):
        part = counts.filter(pl.col("hold") == hold)
        fig.add_trace(go.Bar(x=part["max_label"].to_list(), y=part["len"].to_list(), name=name, marker_color=color))
    totals = counts.group_by("max_label").agg(pl.col("len").sum())["len"]
    fig.update_layout(
        barmode="stack",
        title="Flagged items by highest-scoring label",
        yaxis={"title": "items", **components.count_axis(totals.max() or 0)},
        height=260,
    )
    return fig


def score_figure(item: dict[str, Any]) -> go.Figure:
    """Per-label score bars for one item; flagged labels red, labels the model lacks omitted."""
    labels = [label for label in data.LABELS if item.get(label) is not None]
    flagged = set(item.get("flagged_labels") or [])
    fig = go.Figure(
        go.Bar(
            x=[item[label] for label in labels],
            y=labels,
            orientation="h",
            marker_color=["#dc2626" if label in flagged else "#94a3b8" for label in labels],
            text=[f"{item[label]:.2f}" for label in labels],
            textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis={"range": [0, 1.15], "title": "score"},
        yaxis={"autorange": "reversed"},
        height=70 + 24 * max(len(labels), 3),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        showlegend=False,
    )
    return fig


def item_card(position: int, item: dict[str, Any]) -> None:
    """One flagged item: trusted header, untrusted text as plain text, and its score bars."""
    with st.container(border=True):
        text_col, chart_col = st.columns([3, 2])
        with text_col:
            hold = " · :red-badge[hold recommended]" if item["hold"] else ""
            st.markdown(
                f"**#{position} · priority {item['priority']} · severity {item['severity']:.2f} · "
                f"{components.md_escape(str(item['kind']))}**{hold}"
            )
            components.untrusted_text(item.get("title"), prefix="Title: ")
            body = item.get("body_text") or ""
            if body:  # a code block: literal text, visibly boxed as the member's words
                st.code(body if len(body) <= BODY_LIMIT else body[:BODY_LIMIT] + " …[truncated]",
                        language=None, wrap_lines=True)
            author = item.get("author_name") or item.get("author_id") or "unknown"
            components.untrusted_text(
                f"Author: {author} ({item.get('author_id')}) · prior flags: {item['author_prior_flags']}"
            )
            labels = ", ".join(item.get("flagged_labels") or [])
            fallback = " (fallback lexical model)" if item.get("is_fallback") else ""
            components.untrusted_text(
                f"Flagged: {labels} · highest {item['max_label']} {item['max_score']:.2f} · "
                f"model {item['model_id']}{fallback}"
            )
            tags = ", ".join(item.get("tags") or [])
            components.untrusted_text(
                f"{item['source']} / {item['content_id']} · created {item['created_at']:%Y-%m-%d %H:%M} UTC"
                + (f" · tags: {tags}" if tags else "")
            )
        with chart_col:
            if any(item.get(label) is None for label in data.LABELS):
                st.caption("Labels without a bar were not scored by this model.")
            st.plotly_chart(
                score_figure(item),
                width="stretch",
                key=f"scores_{item['source']}_{item['content_id']}",
                config={"displayModeBar": False},
            )


def summary(items: pl.DataFrame) -> None:
    """Headline counts of the (filtered) queue."""
    a, b, c = st.columns(3)
    a.metric("Flagged items", f"{items.height:,}")
    b.metric("Hold recommended", f"{items['hold'].sum():,}")
    c.metric("Authors", f"{items['author_id'].n_unique():,}")


def render() -> None:
    """The Moderation queue page."""
    source = components.page_header(
        "Moderation queue",
        "Items the toxicity model flagged, most urgent first (by severity, then newest), with "
        "the scores behind each flag. Read-only: decisions come later.",
    )
    if not components.require_table("marts", "moderation_queue", "flagged items"):
        return
    items = queue(source)
    if items.is_empty():
        components.empty_state("No flagged items: nothing in this source crossed a flag threshold.")
        return
    first, last = items["created_at"].min().date(), items["created_at"].max().date()
    start, end = components.date_range_filter(first, last, key="queue_range")
    items = items.filter(pl.col("created_at").dt.date().is_between(start, end))
    if items.is_empty():
        components.empty_state("No flagged items were created in these days; widen the date range.")
        return
    labels, min_score, hold_only = filters(items)
    shown = filter_queue(items, labels, min_score, hold_only)
    st.markdown(f"**{shown.height} flagged items** match the filters ({items.height} in the queue).")
    if shown.is_empty():
        components.empty_state("No flagged items match these filters; lower the minimum score or clear the labels.")
        return
    summary(shown)
    components.show_chart(label_chart(shown), key="queue_labels_chart")
    pages = (shown.height + PAGE_SIZE - 1) // PAGE_SIZE
    page = st.number_input("Page", 1, pages, 1, key="queue_page") if pages > 1 else 1
    start = (int(page) - 1) * PAGE_SIZE
    for offset, item in enumerate(shown.slice(start, PAGE_SIZE).iter_rows(named=True), start=start + 1):
        item_card(offset, item)
    with st.expander("The queue as a table"):
        table = shown.select(
            "priority", "severity", "hold", "max_label", "max_score", "flagged_labels", "kind", "source",
            "content_id", "author_id", "author_name", "author_prior_flags", "created_at", "title",
            "model_id", "is_fallback", *[label for label in data.LABELS if label in shown.columns],
        )
        components.show_table(table, file_name=f"moderation_queue_{source or 'all'}.csv", key="queue_csv")


render()
