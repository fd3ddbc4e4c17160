"""Audit log: every moderator decision from the review store, filterable, downloadable as CSV.

Reads ``ReviewStore.decisions()`` live (the append-only log; newest first), so it is current
to the last click, not to the last pipeline run. Moderators and admins only. Notes are
moderators' free text and are shown only inside table cells (inert); the CSV export defuses
spreadsheet formulas (:func:`dashboards.data.to_csv`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import polars as pl
import streamlit as st

from dashboards import auth, components
from moderation.review_store import ACTIONS, REASON_CODES

COLUMNS = (
    "decided_at", "actor", "action", "from_state", "to_state", "reason_code", "note", "source", "content_id",
    "item_version", "model_id", "content_hash", "decision_id",
)  # fmt: skip


def filter_log(
    log: pl.DataFrame, *, actors: list[str], actions: list[str], reasons: list[str], sources: list[str]
) -> pl.DataFrame:
    """Decisions matching every filter (an empty list means any)."""
    out = log
    for column, values in (("actor", actors), ("action", actions), ("reason_code", reasons), ("source", sources)):
        if values:
            out = out.filter(pl.col(column).is_in(values))
    return out


def render() -> None:
    """The Audit log page."""
    auth.require_role(auth.ACTING_ROLES, "The audit log")
    st.title("Audit log")
    st.caption("Every moderator decision, newest first, straight from the review store (current to the last click).")
    store = auth.review_store()
    everything = store.decisions()
    if everything.is_empty():
        components.empty_state("No decisions yet: nobody has acted on the review queue.")
        return
    first, last = everything["decided_at"].min().date(), everything["decided_at"].max().date()
    top = st.columns([2, 2, 2])
    with top[0]:
        start, end = components.date_range_filter(first, last, key="audit_range")
    actors = top[1].multiselect(
        "Moderator", sorted(everything["actor"].unique().to_list()), key="audit_actors", placeholder="anyone"
    )
    actions = top[2].multiselect("Action", list(ACTIONS), key="audit_actions", placeholder="any action")
    bottom = st.columns([2, 2])
    reasons = bottom[0].multiselect(
        "Reason",
        list(REASON_CODES),
        key="audit_reasons",
        placeholder="any reason",
        format_func=lambda c: f"{c} ({REASON_CODES[c]})",
    )
    sources = bottom[1].multiselect(
        "Source", sorted(everything["source"].unique().to_list()), key="audit_sources", placeholder="any source"
    )
    log = store.decisions(start=datetime.combine(start, time()), end=datetime.combine(end + timedelta(days=1), time()))
    shown = filter_log(log, actors=actors, actions=actions, reasons=reasons, sources=sources).select(COLUMNS)
    counts = shown.group_by("action").len()
    per_action = dict(counts.iter_rows()) if shown.height else {}
    st.markdown(
        f"**{shown.height} decisions** match ({everything.height} in the log): "
        + ", ".join(f"{per_action.get(a, 0)} {a}" for a in ACTIONS)
        + "."
    )
    if shown.is_empty():
        components.empty_state("No decisions match these filters; widen the dates or clear a filter.")
        return
    components.show_table(shown, file_name=f"audit_log_{start:%Y%m%d}_{end:%Y%m%d}.csv", key="audit_csv")


render()
