"""Review queue: moderators work through flagged items and approve, remove or escalate them.

The queue comes from the snapshot (``marts.moderation_queue``: ML flags and community reports,
``priority`` 1 = review first); each item's state comes live from the review store, so an
action shows at once, without waiting for the pipeline. Moderators and admins only
(:func:`dashboards.auth.require_role`).

Concurrency: every action carries the item version the moderator saw when the page was drawn
(button callbacks get it as an argument). If a colleague acted in between, the store refuses
(:class:`~moderation.review_store.ConflictError`), nothing is written, and the page says who
acted and when.

Keyboard shortcuts (Streamlit button shortcuts): ``A`` approve, ``X`` remove (with the chosen
reason), ``E`` escalate, ``J`` next item. They work while focus is not in a text field.
Streamlit reserves ``C`` and ``R``.

Untrusted text: the item text is shown through :func:`dashboards.review_ui.highlight_html`
(every piece HTML-escaped); titles, authors, tags and notes through ``st.text``; table cells
are inert.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import streamlit as st

from dashboards import auth, components, data, review_ui
from moderation.explain import occlusion
from moderation.review_store import REASON_CODES, ConflictError, ReviewError, TransitionError
from pulse.api.live_queue import LiveQueue, merge_live

FLASH_KEY = "review_flash"
TABLE_KEY = "review_table"
NONCE_KEY = "review_table_nonce"
ITEM_KEY = "review_item"
REASON_KEY = "review_reason"
NOTE_KEY = "review_note"
BULK_REASON_KEY = "review_bulk_reason"
ACTION_LABELS = {"approve": "Approve", "remove": "Remove", "escalate": "Escalate"}


def _settings() -> Any:
    from pulse.settings import load_settings

    return load_settings()


def load_queue(source: str | None) -> pl.DataFrame:
    """The queue rows of ``source`` with live states from the store, by priority: the snapshot's
    rows plus the posts the webhook flagged since (:func:`pulse.api.live_queue.merge_live`)."""
    where, params = data.source_clause(source)
    items = data.query(f"select * from marts.moderation_queue where {where} order by priority, content_id", params)
    live = LiveQueue(auth.review_store().engine, create=False).rows(source)
    if live:
        scored = data.query(
            "select distinct content_hash, model_id from moderation.scores where list_contains(string_split(?, ','), content_hash)",
            [",".join(str(r["content_hash"]) for r in live)],
        )
        items = merge_live(items, live, scored)
    states = auth.review_store().item_states(source)
    return review_ui.with_live_states(items, states)


def _options(items: pl.DataFrame, column: str) -> list[str]:
    """Distinct non-null values of a list or string column, sorted."""
    if column not in items.columns:
        return []
    col = items[column]
    if isinstance(col.dtype, pl.List):
        col = col.explode()
    return sorted(v for v in col.drop_nulls().unique().to_list() if v != "")


def filters(items: pl.DataFrame) -> pl.DataFrame:
    """The filter bar (state, queue reason, label, score range, tag, author, date); returns the matching items."""
    top = st.columns([2, 2, 2, 2])
    states = top[0].multiselect(
        "State", list(review_ui.STATE_ORDER), default=["pending", "escalated"], key="review_states",
        help="Pending and escalated items still need a decision.",
    )  # fmt: skip
    reasons = top[1].multiselect(
        "Queue reason", _options(items, "queue_reasons"), key="review_reasons", placeholder="any reason"
    )
    labels = top[2].multiselect(
        "Flagged for", _options(items, "flagged_labels"), key="review_labels", placeholder="any label"
    )
    low, high = top[3].slider("Highest score", 0.0, 1.0, (0.0, 1.0), 0.01, key="review_score_range")
    bottom = st.columns([2, 2, 4])
    tags = bottom[0].multiselect("Tag", _options(items, "tags"), key="review_tags", placeholder="any tag")
    author = bottom[1].text_input("Author (name or id contains)", key="review_author")
    first, last = items["created_at"].min().date(), items["created_at"].max().date()
    with bottom[2]:
        start, end = components.date_range_filter(first, last, key="review_range")
    return apply_filters(items, states=states, labels=labels, score=(low, high), tags=tags, author=author,
                         start=start, end=end, reasons=reasons)  # fmt: skip


def apply_filters(
    items: pl.DataFrame,
    *,
    states: list[str],
    labels: list[str],
    score: tuple[float, float],
    tags: list[str],
    author: str,
    start: date,
    end: date,
    reasons: list[str] | None = None,
) -> pl.DataFrame:
    """Items matching every filter (an empty list means any); ``max_score`` in ``score`` inclusive
    (items without a model score, e.g. community reports only, count as 0)."""
    out = items.filter(
        pl.col("max_score").fill_null(0.0).is_between(score[0], score[1])
        & pl.col("created_at").dt.date().is_between(start, end)
    )
    if states:
        out = out.filter(pl.col("state").is_in(states))
    if labels:
        out = out.filter(pl.col("flagged_labels").list.eval(pl.element().is_in(labels)).list.any())
    if tags:
        out = out.filter(pl.col("tags").list.eval(pl.element().is_in(tags)).list.any())
    if reasons and "queue_reasons" in out.columns:
        out = out.filter(pl.col("queue_reasons").list.eval(pl.element().is_in(reasons)).list.any())
    if author.strip():
        needle = author.strip().lower()
        out = out.filter(
            pl.col("author_name").fill_null("").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("author_id").fill_null("").str.to_lowercase().str.contains(needle, literal=True)
        )
    return out.sort("priority")


def queue_reasons(item: dict[str, Any]) -> list[str]:
    """Why the item is in the queue, in words: model flag, community reports, unsupported language.

    Reads the mart's ``queue_reasons`` codes (``model_flag``, ``community_report``,
    ``language_not_supported``); an older snapshot without them counts as a model flag.
    """
    codes = list(item.get("queue_reasons") or []) or (["model_flag"] if item.get("flagged_labels") else [])
    out = []
    for code in codes:
        if code == "model_flag":
            labels = ", ".join(item.get("flagged_labels") or [])
            top = f" (highest {item['max_label']} {item['max_score']:.2f})" if item.get("max_score") is not None else ""
            fallback = ", fallback lexical model" if item.get("is_fallback") else ""
            out.append(f"model flag: {labels}{top} by {item.get('model_id')}{fallback}")
        elif code == "community_report":
            types = ", ".join(item.get("report_types") or [])
            out.append(
                f"community reports: {item.get('report_count', 0)} from {item.get('reporter_count', 0)} members"
                + (f" ({types})" if types else "")
            )
        elif code == "language_not_supported":
            confidence = item.get("language_confidence")
            out.append(
                f"language not supported by the model: {item.get('language')}"
                + (f" (confidence {confidence:.2f})" if confidence is not None else "")
            )
        else:
            out.append(str(code))
    return out


# --- actions (button callbacks: they run before the rerun, with what the page showed) ----------


def _flash(kind: str, message: str) -> None:
    st.session_state[FLASH_KEY] = (kind, message)


def _table_key() -> str:
    """The queue table's widget key; a new key (after every action) clears its row selection,
    which is by row position and would otherwise point at other items once rows leave."""
    return f"{TABLE_KEY}_{st.session_state.get(NONCE_KEY, 0)}"


def _clear_selection() -> None:
    st.session_state[NONCE_KEY] = st.session_state.get(NONCE_KEY, 0) + 1


def _act(item: dict[str, Any], action: str, actor: str, labels: tuple[str, ...]) -> None:
    """Apply ``action`` to one item at the version the moderator saw (``item["version"]``)."""
    reason = st.session_state.get(REASON_KEY)
    note = (st.session_state.get(NOTE_KEY) or "").strip() or None
    if action == "remove" and not reason:
        _flash("error", "Choose a reason before removing an item. Nothing was written.")
        return
    try:
        auth.review_store().decide(
            source=item["source"], content_id=item["content_id"], action=action, actor=actor,
            expected_version=int(item["version"]), content_hash=item.get("content_hash"),
            reason_code=reason, note=note, model_id=item.get("model_id"),
            thresholds_json=_settings().thresholds, scores_json=review_ui.scores_json(item, labels),
        )  # fmt: skip
    except ConflictError as exc:
        _flash("conflict", review_ui.conflict_message(exc))
        return
    except (TransitionError, ReviewError, ValueError) as exc:
        _flash("error", f"Not done: {exc}")
        return
    st.session_state[REASON_KEY] = None
    st.session_state[NOTE_KEY] = ""
    _clear_selection()
    _flash("success", f"{ACTION_LABELS[action]}d {item['content_id']}" if action != "escalate"
           else f"Escalated {item['content_id']}")  # fmt: skip


def _act_many(items: list[dict[str, Any]], action: str, actor: str, labels: tuple[str, ...]) -> None:
    """Apply ``action`` to every selected item (each at the version shown); report the counts."""
    reason = st.session_state.get(BULK_REASON_KEY)
    if action == "remove" and not reason:
        _flash("error", "Choose a reason before removing the selected items. Nothing was written.")
        return
    thresholds = _settings().thresholds
    results = auth.review_store().decide_many(
        [
            {"source": i["source"], "content_id": i["content_id"], "expected_version": int(i["version"]),
             "content_hash": i.get("content_hash"), "model_id": i.get("model_id"),
             "thresholds_json": thresholds, "scores_json": review_ui.scores_json(i, labels)}
            for i in items
        ],
        action=action, actor=actor, reason_code=reason,
    )  # fmt: skip
    _clear_selection()
    done = sum(not isinstance(r, ReviewError) for r in results)
    conflicts = [r for r in results if isinstance(r, ConflictError)]
    others = [r for r in results if isinstance(r, ReviewError) and not isinstance(r, ConflictError)]
    message = f"Bulk {action}: {done} of {len(items)} items done"
    if conflicts:
        message += (
            f"; {len(conflicts)} skipped because a colleague acted first ("
            + "; ".join(review_ui.conflict_message(c) for c in conflicts[:3])
            + ")"
        )
    if others:
        message += f"; {len(others)} not allowed ({others[0]})"
    _flash("success" if done == len(items) else "warning", message + ".")


def show_flash() -> None:
    """The outcome of the last action (set by a callback), shown once."""
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash is None:
        return
    kind, message = flash
    if kind == "success":
        st.success(message, icon=":material/check_circle:")
    elif kind == "conflict":
        st.error(message, icon=":material/group:")
    elif kind == "warning":
        st.warning(message, icon=":material/warning:")
    else:
        st.error(message, icon=":material/error:")


# --- page sections ---------------------------------------------------------------------------


def counts(items: pl.DataFrame) -> None:
    """Items per state (the whole queue of this source, before filters)."""
    per_state = review_ui.state_counts(items)
    for column, state in zip(st.columns(len(per_state)), review_ui.STATE_ORDER, strict=True):
        column.metric(state.capitalize(), f"{per_state[state]:,}")


def queue_table(shown: pl.DataFrame, actor: str, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """The filtered queue as a selectable table; bulk actions on the selected rows.

    Returns:
        The selected rows (dicts), in table order.
    """
    table = shown.with_columns(
        text=pl.coalesce(pl.col("title").replace("", None), pl.col("body_text")).fill_null("").str.slice(0, 80)
    ).select(
        "priority",
        "state",
        "max_label",
        "max_score",
        "flagged_labels",
        "kind",
        "created_at",
        "author_name",
        "text",
        "content_id",
        "version",
    )
    event = st.dataframe(
        data.list_to_text(table), hide_index=True, key=_table_key(), on_select="rerun", selection_mode="multi-row",
        height=min(38 + 35 * table.height, 360),
        column_config={"max_score": st.column_config.ProgressColumn("max score", min_value=0.0, max_value=1.0,
                                                                    format="%.2f")},
    )  # fmt: skip
    rows = sorted(event.selection.rows) if event is not None and hasattr(event, "selection") else []
    selected = [shown.row(i, named=True) for i in rows if i < shown.height]
    with st.container(border=True):
        st.markdown(f"**Bulk actions** on the {len(selected)} selected items (tick rows in the table).")
        cols = st.columns([2, 1, 1, 1])
        cols[0].selectbox(
            "Reason for removal",
            list(REASON_CODES),
            index=None,
            key=BULK_REASON_KEY,
            format_func=lambda c: REASON_CODES[c],
            placeholder="required to remove",
        )
        disabled = not selected
        cols[1].button(
            "Approve selected",
            key="bulk_approve",
            disabled=disabled,
            on_click=_act_many,
            args=(selected, "approve", actor, labels),
            icon=":material/check:",
        )
        cols[2].button(
            "Remove selected",
            key="bulk_remove",
            disabled=disabled,
            on_click=_act_many,
            args=(selected, "remove", actor, labels),
            icon=":material/delete:",
        )
        cols[3].button(
            "Escalate selected",
            key="bulk_escalate",
            disabled=disabled,
            on_click=_act_many,
            args=(selected, "escalate", actor, labels),
            icon=":material/priority_high:",
        )
    return selected


def explanation_section(item: dict[str, Any]) -> None:
    """The item text with its driver words highlighted, and the drivers as a list."""
    text = review_ui.item_text(item)
    settings = _settings()
    explanation = None
    note = None
    if text:
        try:
            scorer = review_ui.explanation_scorer(
                settings.scorer,
                str(settings.detoxify_checkpoint) if settings.detoxify_checkpoint else None,
                str(settings.detoxify_config_dir) if settings.detoxify_config_dir else None,
            )
            label = item.get("max_label") if item.get("max_label") in scorer.labels else scorer.labels[0]
            explanation = occlusion(scorer, text, label, content_hash=item.get("content_hash"))
            if scorer.model_id != item.get("model_id"):
                note = (f"Explained with {scorer.model_id}; the item was flagged by {item.get('model_id')}, "
                        "so the highlights approximate that model's reasons.")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the page stays usable without an explanation
            note = f"No explanation: the scorer could not run ({type(exc).__name__}: {exc})."
    st.markdown("**The text** (highlighted: the words whose removal lowers the score most)")
    st.html(review_ui.highlight_html(explanation, text))
    if explanation is not None:
        drivers = explanation.drivers(5, min_drop=1e-4)
        if drivers:
            components.untrusted_text(
                f"Drivers of {explanation.label} {explanation.full_score:.2f}: "
                + ", ".join(f"{w} (−{d:.2f})" for w, d in drivers)
            )
        else:
            st.caption("No single word lowers the score when removed (the score does not hinge on one word).")
        if explanation.note():
            st.caption(explanation.note())
    if note:
        st.caption(components.md_escape(note))


def thread_context(item: dict[str, Any], queue: pl.DataFrame) -> None:
    """The parent post (when the snapshot has its text) and the thread id."""
    parent_id = item.get("parent_id")
    parent_text = review_ui.item_text({"title": item.get("parent_title"), "body_text": item.get("parent_body")}) or None
    if parent_text is None and parent_id is not None:
        parent = queue.filter((pl.col("source") == item["source"]) & (pl.col("content_id") == parent_id))
        if parent.height:
            parent_text = review_ui.item_text(parent.row(0, named=True))
    with st.expander("Thread context", expanded=bool(parent_text)):
        components.untrusted_text(f"Thread {item.get('thread_id')} · parent {parent_id or '(none: starts the thread)'}")
        if parent_text:
            components.untrusted_text(parent_text, prefix="Parent: ", limit=1500)
        elif parent_id is not None:
            st.caption("The parent post's text is not in the snapshot.")


def item_view(
    item: dict[str, Any], queue: pl.DataFrame, actor: str, labels: tuple[str, ...], next_id: str | None
) -> None:
    """One item: header, reasons, highlighted text, score bars, context, history, actions."""
    with st.container(border=True):
        hold = " · :red-badge[hold recommended]" if item.get("hold") else ""
        st.markdown(
            f"**Priority {item['priority']} · {components.md_escape(str(item['state']))} · "
            f"severity {(item.get('severity') or 0):.2f} · {components.md_escape(str(item.get('kind')))}**{hold}"
        )
        components.untrusted_text(
            f"{item['source']} / {item['content_id']} · created {item['created_at']:%Y-%m-%d %H:%M} UTC"
            + (f" · tags: {', '.join(item.get('tags') or [])}" if item.get("tags") else "")
        )
        components.untrusted_text("Queue reasons: " + "; ".join(queue_reasons(item)))
        if item.get("updated_by"):
            components.untrusted_text(
                f"Last decision: {item['updated_by']} at {item['updated_at']:%Y-%m-%d %H:%M} UTC (version {item['version']})"
            )
        components.untrusted_text(item.get("title"), prefix="Title: ")
        text_col, side_col = st.columns([3, 2])
        with text_col:
            explanation_section(item)
        with side_col:
            st.markdown("**Scores** vs flag thresholds")
            st.plotly_chart(
                review_ui.score_figure(item, data.LABELS, _settings().thresholds), width="stretch",
                key=f"review_scores_{item['content_id']}", config={"displayModeBar": False},
            )  # fmt: skip
            history = review_ui.author_history(auth.review_store(), queue, item["source"], item.get("author_id"))
            components.untrusted_text(f"Author: {item.get('author_name') or 'unknown'} ({item.get('author_id')})")
            earlier = []
            if item.get("author_prior_flags") is not None:
                earlier.append(f"{item['author_prior_flags']} flagged")
            if item.get("author_prior_removals") is not None:
                earlier.append(f"{item['author_prior_removals']} removed")
            st.caption(
                f"Author history: {history['flagged']} item{'' if history['flagged'] == 1 else 's'} in this queue, of which {history['removed']} removed and "
                f"{history['approved']} approved so far"
                + (f"; before this item (pipeline's window): {', '.join(earlier)}" if earlier else "")
            )
        thread_context(item, queue)
        actions(item, actor, labels, next_id)


def actions(item: dict[str, Any], actor: str, labels: tuple[str, ...], next_id: str | None) -> None:
    """Approve / remove (reason required) / escalate, with keyboard shortcuts."""
    allowed = {"pending": {"approve", "remove", "escalate"}, "escalated": {"approve", "remove"}}.get(
        item["state"], set()
    )
    if not allowed:
        st.caption(f"This item is {components.md_escape(item['state'])}; there is nothing more to do.")
        return
    cols = st.columns([2, 2])
    cols[0].selectbox(
        "Reason",
        list(REASON_CODES),
        index=None,
        key=REASON_KEY,
        format_func=lambda c: REASON_CODES[c],
        placeholder="required to remove",
    )
    cols[1].text_input("Note (optional)", key=NOTE_KEY, max_chars=500)
    buttons = st.columns(4)
    buttons[0].button(
        "Approve",
        key="act_approve",
        type="primary",
        shortcut="A",
        icon=":material/check:",
        on_click=_act,
        args=(item, "approve", actor, labels),
        disabled="approve" not in allowed,
    )
    buttons[1].button(
        "Remove",
        key="act_remove",
        shortcut="X",
        icon=":material/delete:",
        on_click=_act,
        args=(item, "remove", actor, labels),
        disabled="remove" not in allowed,
    )
    buttons[2].button(
        "Escalate",
        key="act_escalate",
        shortcut="E",
        icon=":material/priority_high:",
        on_click=_act,
        args=(item, "escalate", actor, labels),
        disabled="escalate" not in allowed,
    )
    buttons[3].button(
        "Next item",
        key="act_next",
        shortcut="J",
        icon=":material/arrow_downward:",
        on_click=_select,
        args=(next_id,),
        disabled=next_id is None,
    )
    st.caption("Shortcuts: A approve · X remove (with the reason chosen) · E escalate · J next item.")


def _select(content_id: str | None) -> None:
    if content_id is not None:
        st.session_state[ITEM_KEY] = content_id


def render() -> None:
    """The Review queue page."""
    user = auth.require_role(auth.ACTING_ROLES, "The review queue")
    source = components.page_header(
        "Review queue",
        "Flagged and reported items, most urgent first. Approve, remove (with a reason) or "
        "escalate; your decision shows at once and a colleague cannot overwrite it.",
    )
    show_flash()
    if not components.require_table("marts", "moderation_queue", "flagged items"):
        return
    items = load_queue(source)
    if items.is_empty():
        components.empty_state("No items in the queue: nothing in this source was flagged or reported.")
        return
    counts(items)
    shown = filters(items)
    st.markdown(f"**{shown.height} items** match the filters ({items.height} in the queue).")
    if shown.is_empty():
        components.empty_state("No items match these filters; widen the state, score or date filters.")
        return
    labels = tuple(label for label in data.LABELS if label in items.columns)
    selected = queue_table(shown, user.username, labels)
    ids = shown["content_id"].to_list()
    if len(selected) == 1:
        st.session_state[ITEM_KEY] = selected[0]["content_id"]
    if st.session_state.get(ITEM_KEY) not in ids:
        st.session_state[ITEM_KEY] = ids[0]
    priorities = dict(zip(ids, shown["priority"].to_list(), strict=True))
    chosen = st.selectbox("Item", ids, key=ITEM_KEY, format_func=lambda cid: f"#{priorities[cid]} · {cid}")
    position = ids.index(chosen)
    next_id = ids[position + 1] if position + 1 < len(ids) else None
    item_view(shown.row(position, named=True), items, user.username, labels, next_id)


render()
