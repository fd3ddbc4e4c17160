"""Pieces shared by the review pages (queue, audit log, insights): live states, highlights, charts.

Kept out of the page scripts so they can be imported and tested. Nothing here writes to the
warehouse; the only writes are moderators' decisions through :class:`ReviewStore`.

Untrusted text rule (docs/ARCHITECTURE.md, "Known pitfalls of the stack"): the highlighted item text is the one
place a page builds markup from member-written text. :func:`highlight_html` HTML-escapes every
piece of the text (``html.escape``, quotes included) and wraps driver words in ``<mark>``
elements it creates itself, so the browser parses the member's words as text nodes only: a
``<script>`` in a post arrives as the characters ``&lt;script&gt;``, a Markdown link stays
literal (HTML is not Markdown) and no URL becomes a link.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from moderation.explain import Explanation, segments
from moderation.review_store import ConflictError, ReviewStore, effective_state

STATE_ORDER: tuple[str, ...] = ("pending", "escalated", "approved", "removed")
VERBS: dict[str, str] = {"approved": "approved", "removed": "removed", "escalated": "escalated", "pending": "reset"}


def item_text(item: Mapping[str, Any]) -> str:
    """The text the pipeline scored: title and body joined by a blank line (as
    ``moderation.scoring.pending_texts`` does)."""
    parts = [p for p in (item.get("title"), item.get("body_text")) if p]
    return "\n\n".join(parts)


def with_live_states(items: pl.DataFrame, states: pl.DataFrame) -> pl.DataFrame:
    """Join the queue (``marts.moderation_queue`` rows) with the store's live item states.

    Adds ``state`` (effective state: never acted on = pending; a final decision on a text
    that has since changed = pending again), ``version`` (0 when never acted on),
    ``updated_by`` and ``updated_at``.
    """
    live = states.select(
        "source", "content_id",
        pl.col("state").alias("_stored_state"), pl.col("version").alias("_version"),
        pl.col("content_hash").alias("_stored_hash"), "updated_by", "updated_at",
    )  # fmt: skip
    joined = items.join(live, on=["source", "content_id"], how="left")
    state = [
        effective_state(s, h, c)
        for s, h, c in zip(joined["_stored_state"], joined["_stored_hash"], joined["content_hash"], strict=True)
    ]
    return joined.with_columns(
        state=pl.Series(state, dtype=pl.String),
        version=pl.col("_version").fill_null(0).cast(pl.Int64),
    ).drop("_stored_state", "_version", "_stored_hash")


def sla_hours(settings: Any) -> float:
    """The review response-time target in hours: ``settings.review_sla_hours`` when the settings
    have it (``PULSE_REVIEW_SLA_HOURS``), else :data:`moderation.insights.DEFAULT_SLA_HOURS`."""
    from moderation.insights import DEFAULT_SLA_HOURS

    value = getattr(settings, "review_sla_hours", None)
    return float(DEFAULT_SLA_HOURS if value is None else value)


def undo_seconds(settings: Any) -> float:
    """The undo window in seconds: ``settings.review_undo_seconds`` when the settings have it
    (``PULSE_REVIEW_UNDO_SECONDS``), else :data:`moderation.review_store.DEFAULT_UNDO_SECONDS`."""
    from moderation.review_store import DEFAULT_UNDO_SECONDS

    value = getattr(settings, "review_undo_seconds", None)
    return float(DEFAULT_UNDO_SECONDS if value is None else value)


def live_backlog(source: str | None, store: ReviewStore, sla: float, as_of: datetime | None = None) -> Any:
    """The backlog (:func:`moderation.insights.backlog`) of ``source`` (None: all sources) now:
    the snapshot's queue (ids and times only, no text) with live states from the store.

    Returns:
        A :class:`moderation.insights.Backlog`, or None when the snapshot has no queue.
    """
    from dashboards import data
    from moderation.insights import backlog

    if not data.table_exists("marts", "moderation_queue"):
        return None
    where, params = data.source_clause(source)
    items = data.query(
        f"select source, content_id, created_at, content_hash from marts.moderation_queue where {where}", params
    )
    live = with_live_states(items, store.item_states(source))
    return backlog(live, sla_hours=sla, as_of=as_of or datetime.now(UTC).replace(tzinfo=None))


def state_counts(items: pl.DataFrame) -> dict[str, int]:
    """Items per state, every state present (0 when none)."""
    counts = dict(items.group_by("state").len().iter_rows()) if items.height else {}
    return {s: int(counts.get(s, 0)) for s in STATE_ORDER}


def conflict_message(exc: ConflictError) -> str:
    """``"<who> already <action> this item at <time>; reload to see it."`` (nothing was written)."""
    who = exc.last_actor or "Someone"
    when = f"{exc.last_decided_at:%Y-%m-%d %H:%M:%S} UTC" if exc.last_decided_at else "an earlier moment"
    verb = VERBS.get(exc.current_state, exc.current_state)
    return f"{who} already {verb} this item at {when}; reload to see it. Nothing was written."


def highlight_html(explanation: Explanation | None, text: str, *, k: int = 5, max_height: int = 190) -> str:
    """The item text as escaped HTML with the top-``k`` driver words (and the words of the
    explanation's sufficient set) in ``<mark>`` elements; the block scrolls beyond ``max_height`` px.

    Every piece of ``text`` goes through ``html.escape`` (see the module docstring); the only
    tags are the ``<div>`` and ``<mark>`` elements built here, with fixed attributes. Each mark's
    ``title`` gives the score drop, a number formatted here.
    """
    usable = explanation is not None and explanation.text == text
    pieces = segments(explanation, k=k) if usable else [(text, None)]
    in_set = set(explanation.sufficient) if usable else set()
    out = []
    for piece, drop in pieces:
        escaped = html.escape(piece, quote=True)
        if drop is None:
            out.append(escaped)
        else:
            title = (
                "removed together with the other marked words, the score falls below the threshold"
                if piece.lower() in in_set and len(in_set) > 1
                else f"score drop {drop:.2f} without this word"
            )
            out.append(
                f'<mark class="pulse-driver" title="{title}" '
                f'style="background:#fecaca;color:#7f1d1d;padding:0 2px;border-radius:3px">{escaped}</mark>'
            )
    return (
        '<div class="pulse-item-text" style="white-space:pre-wrap;font-family:ui-monospace,monospace;'
        f"font-size:0.9rem;border:1px solid #e2e8f0;border-radius:6px;padding:10px;max-height:{max_height}px;"
        'overflow-y:auto">' + "".join(out) + "</div>"
    )


def score_figure(item: Mapping[str, Any], labels: Sequence[str], thresholds: Mapping[str, float]) -> go.Figure:
    """Per-label score bars with each label's flag threshold as a black tick; labels the model
    did not score are left out. Bars at or above their threshold are red."""
    shown = [label for label in labels if item.get(label) is not None]
    scores = [float(item[label]) for label in shown]
    limits = [thresholds.get(label) for label in shown]
    colors = ["#dc2626" if t is not None and s >= t else "#94a3b8" for s, t in zip(scores, limits, strict=True)]
    fig = go.Figure(
        go.Bar(
            x=scores, y=shown, orientation="h", marker_color=colors, name="score",
            text=[f"{s:.2f}" for s in scores], textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )  # fmt: skip
    with_limit = [(label, t) for label, t in zip(shown, limits, strict=True) if t is not None]
    fig.add_trace(
        go.Scatter(
            x=[t for _, t in with_limit], y=[label for label, _ in with_limit], mode="markers", name="flag threshold",
            marker={"symbol": "line-ns", "size": 26, "color": "#0f172a", "line": {"width": 3, "color": "#0f172a"}},
            hovertemplate="%{y} threshold: %{x:.2f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        xaxis={"range": [0, 1.15], "title": "score (tick: flag threshold)"},
        yaxis={"autorange": "reversed"},
        height=70 + 24 * max(len(shown), 2),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        showlegend=False,
    )
    return fig


def scores_json(item: Mapping[str, Any], labels: Sequence[str]) -> str:
    """The label scores the moderator saw, as JSON text (sorted keys; unscored labels left out)."""
    return json.dumps({label: float(item[label]) for label in labels if item.get(label) is not None}, sort_keys=True)


@st.cache_resource(show_spinner="Loading the toxicity model for explanations…")
def explanation_scorer(spec: str, checkpoint: str | None, config_dir: str | None) -> Any:
    """The scorer used to explain items (loaded once per process and spec)."""
    from pathlib import Path

    from moderation.scorers import load_scorer

    return load_scorer(
        spec,
        checkpoint=Path(checkpoint) if checkpoint else None,
        config_dir=Path(config_dir) if config_dir else None,
    )


def author_history(store: ReviewStore, queue: pl.DataFrame, source: str, author_id: str | None) -> dict[str, int]:
    """An author's record: flagged items in the queue and, from the store, their removed and
    approved items (latest decision per item).

    Returns:
        ``{"flagged": n, "removed": n, "approved": n}``.
    """
    if author_id is None:
        return {"flagged": 0, "removed": 0, "approved": 0}
    theirs = queue.filter((pl.col("source") == source) & (pl.col("author_id") == author_id))
    ids = set(theirs["content_id"].to_list())
    states = store.item_states(source).filter(pl.col("content_id").is_in(list(ids)))
    return {
        "flagged": theirs.height,
        "removed": int((states["state"] == "removed").sum()),
        "approved": int((states["state"] == "approved").sum()),
    }
