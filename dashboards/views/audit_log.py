"""Audit log: every moderator decision from the review store, filterable, downloadable as CSV;
for admins also every account change.

Reads ``ReviewStore.decisions()`` live (the append-only log; newest first, undo and reopen
rows included), so it is current to the last click, not to the last pipeline run. Moderators
and admins only. Each decision shows an excerpt of its item (from the snapshot's queue; roles
in :data:`EXCERPT_ROLES`) and a link that opens the item in the Review queue. Account changes
(user created, role changed, password reset, deactivated, unlocked, ...) come from
``ReviewStore.admin_actions()`` and are shown to admins only. Notes and excerpts are member or
moderator text and are shown only inside table cells (inert); the CSV export defuses
spreadsheet formulas (:func:`dashboards.data.to_csv`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import polars as pl
import streamlit as st

from dashboards import auth, components, data
from moderation.review_store import ACTIONS, REASON_CODES, UNDO_ACTION

COLUMNS = (
    "decided_at", "actor", "action", "from_state", "to_state", "reason_code", "item", "link", "note", "source",
    "content_id", "item_version", "model_id", "content_hash", "decision_id",
)  # fmt: skip
LOG_ACTIONS: tuple[str, ...] = (*ACTIONS, UNDO_ACTION)
"""Every action a decision row can carry."""
EXCERPT_ROLES: frozenset[str] = auth.ACTING_ROLES
"""Roles that may see an excerpt of the item text in the log."""
EXCERPT_CHARS = 80


def item_link(source: str, content_id: str) -> str:
    """The Review queue URL that opens the item (relative: ``review_queue?source=...&item=...``)."""
    return "review_queue?" + urlencode({"source": source, "item": content_id})


def with_items(log: pl.DataFrame, role: str) -> pl.DataFrame:
    """``log`` plus ``item`` (the start of the item's text from the snapshot's queue, for roles in
    :data:`EXCERPT_ROLES`; null otherwise or when the snapshot lacks the item) and ``link``."""
    if role in EXCERPT_ROLES and log.height and data.table_exists("marts", "moderation_queue"):
        texts = data.query(
            "select source, content_id, coalesce(nullif(title, '') || ' — ', '') || coalesce(body_text, '') as item "
            "from marts.moderation_queue where list_contains(string_split(?, chr(31)), content_id)",
            [chr(31).join(log["content_id"].unique().to_list())],
        ).with_columns(pl.col("item").str.replace_all(r"\s+", " ").str.strip_chars().str.slice(0, EXCERPT_CHARS))
        log = log.join(texts, on=["source", "content_id"], how="left")
    else:
        log = log.with_columns(item=pl.lit(None, dtype=pl.String))
    links = [item_link(s, c) for s, c in zip(log["source"], log["content_id"], strict=True)]
    return log.with_columns(link=pl.Series(links, dtype=pl.String))


def account_changes(store: Any, limit: int = 500) -> pl.DataFrame:
    """The latest ``limit`` account changes (``at, actor, action, target, detail``), newest first;
    an empty frame when the store does not record them."""
    schema = {"at": pl.Datetime("us"), "actor": pl.String, "action": pl.String, "target": pl.String,
              "detail": pl.String}  # fmt: skip
    reader = getattr(store, "admin_actions", None)
    rows = reader(limit=limit) if reader is not None else []
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def filter_log(
    log: pl.DataFrame, *, actors: list[str], actions: list[str], reasons: list[str], sources: list[str]
) -> pl.DataFrame:
    """Decisions matching every filter (an empty list means any)."""
    out = log
    for column, values in (("actor", actors), ("action", actions), ("reason_code", reasons), ("source", sources)):
        if values:
            out = out.filter(pl.col(column).is_in(values))
    return out


def admin_section(store: Any) -> None:
    """Account changes (admins only)."""
    st.subheader("Account changes")
    changes = account_changes(store)
    if changes.is_empty():
        components.empty_state("No account changes recorded yet.")
        return
    st.caption(f"The latest {changes.height} changes to review-app accounts, newest first.")
    components.show_table(changes, file_name="account_changes.csv", key="audit_admin_csv")


def render() -> None:
    """The Audit log page."""
    user = auth.require_role(auth.ACTING_ROLES, "The audit log")
    st.title("Audit log")
    st.caption(
        "Every moderator decision (undo and reopen included), newest first, straight from the review store "
        "(current to the last click). Open an item from the link column."
    )
    store = auth.review_store()
    everything = store.decisions()
    if everything.is_empty():
        components.empty_state("No decisions yet: nobody has acted on the review queue.")
        if user.role in auth.ADMIN_ROLES:
            admin_section(store)
        return
    first, last = everything["decided_at"].min().date(), everything["decided_at"].max().date()
    top = st.columns([2, 2, 2])
    with top[0]:
        start, end = components.date_range_filter(first, last, key="audit_range")
    actors = top[1].multiselect(
        "Moderator", sorted(everything["actor"].unique().to_list()), key="audit_actors", placeholder="anyone"
    )
    actions = top[2].multiselect("Action", list(LOG_ACTIONS), key="audit_actions", placeholder="any action")
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
    shown = with_items(filter_log(log, actors=actors, actions=actions, reasons=reasons, sources=sources), user.role)
    shown = shown.select(COLUMNS)
    counts = shown.group_by("action").len()
    per_action = dict(counts.iter_rows()) if shown.height else {}
    st.markdown(
        f"**{shown.height} decisions** match ({everything.height} in the log): "
        + ", ".join(f"{per_action.get(a, 0)} {a}" for a in LOG_ACTIONS)
        + "."
    )
    if shown.is_empty():
        components.empty_state("No decisions match these filters; widen the dates or clear a filter.")
    else:
        components.show_table(
            shown, file_name=f"audit_log_{start:%Y%m%d}_{end:%Y%m%d}.csv", key="audit_csv",
            column_config={
                "item": st.column_config.TextColumn("item", width="medium", help="The start of the item's text."),
                "link": st.column_config.LinkColumn("open", display_text="in the queue ↗"),
            },
        )  # fmt: skip
    if user.role in auth.ADMIN_ROLES:
        admin_section(store)


render()
