"""Review queue: moderators work through flagged items and approve, remove or escalate them.

The queue comes from the snapshot (``marts.moderation_queue``: ML flags and community reports,
``priority`` 1 = review first, by the documented ``priority_score`` shown with each item);
each item's state comes live from the review store, so an action shows at once, without
waiting for the pipeline. Moderators and admins only (:func:`dashboards.auth.require_role`).

Layout (master–detail, made to fit 1440 x 900 without scrolling): on the left the compact
list (filters in a popover, bulk actions below); on the right the open item: badges (hold
recommended, repeat offender, fallback model), reasons, the priority formula with the item's
numbers, the highlighted text, score bars, author history, thread context and the action bar.

Forgiving: after each action a toast names the item and offers **Undo** (``U``) for
``PULSE_REVIEW_UNDO_SECONDS`` (default 30 s); the undo, and a later **Reopen** of an approved
or removed item, are new decision rows (the log stays append-only). Approving an item with a
hold recommendation or by a repeat offender takes a confirming keystroke: ``A`` arms the
approval and ``Y`` confirms it (``N`` cancels).

Concurrency: every action carries the item version the moderator saw when the page was drawn
(button callbacks get it as an argument). If a colleague acted in between, the store refuses
(:class:`~moderation.review_store.ConflictError`), nothing is written, and the page says who
acted and when.

Keyboard shortcuts (Streamlit button shortcuts): ``A`` approve, ``X`` remove (with the chosen
reason), ``E`` escalate, ``J`` next item, ``U`` undo, ``Y`` / ``N`` confirm / cancel an
approval, ``O`` reopen. They work while focus is not in a text field. Streamlit reserves ``C``
and ``R``.

Untrusted text: the item text is shown through :func:`dashboards.review_ui.highlight_html`
(every piece HTML-escaped); titles, authors, tags and notes through ``st.text``; table cells
are inert.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import polars as pl
import streamlit as st

from dashboards import auth, components, data, review_ui
from moderation import policy
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
# The page's own CSS (no member text): less space above the title, so the decision fits one
# screen; the undo toast floats over the top bar, so it never pushes the item down. (A comment,
# not a docstring: Streamlit's "magic" would print a bare string of a page script.)
PAGE_CSS = (
    "<style>"
    "[data-testid='stMainBlockContainer']{padding-top:1.5rem}"
    ".st-key-review_toast{position:fixed;top:6px;left:50%;transform:translateX(-50%);z-index:1000100;"
    "width:min(720px,60vw);background:#f0fdf4;box-shadow:0 4px 14px rgba(15,23,42,.18)}"
    "</style>"
)
CONFIRM_KEY = "review_confirm"
LAST_KEY = "review_last_action"
PAST = {"approve": "Approved", "remove": "Removed", "escalate": "Escalated", "reopen": "Reopened", "undo": "Undid"}


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
    st.session_state.setdefault("review_states", ["pending", "escalated"])
    top = st.columns(2)
    states = top[0].multiselect(
        "State", list(review_ui.STATE_ORDER), key="review_states",
        help="Pending and escalated items still need a decision.",
    )  # fmt: skip
    reasons = top[1].multiselect(
        "Queue reason", _options(items, "queue_reasons"), key="review_reasons", placeholder="any reason"
    )
    top = st.columns(2)
    labels = top[0].multiselect(
        "Flagged for", _options(items, "flagged_labels"), key="review_labels", placeholder="any label"
    )
    low, high = top[1].slider("Highest score", 0.0, 1.0, (0.0, 1.0), 0.01, key="review_score_range")
    bottom = st.columns(2)
    tags = bottom[0].multiselect("Tag", _options(items, "tags"), key="review_tags", placeholder="any tag")
    author = bottom[1].text_input("Author (name or id contains)", key="review_author")
    first, last = items["created_at"].min().date(), items["created_at"].max().date()
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


def needs_confirmation(item: dict[str, Any]) -> list[str]:
    """Why approving ``item`` takes a confirming keystroke (empty: it does not): a hold
    recommendation, a repeat offender (:func:`moderation.policy.is_repeat_offender`)."""
    why = []
    if item.get("hold"):
        why.append("hold recommended")
    if policy.is_repeat_offender(item.get("author_prior_flags"), item.get("author_prior_removals")):
        why.append(f"repeat offender ({offender_counts(item)})")
    return why


def offender_counts(item: dict[str, Any]) -> str:
    """``"12 earlier flags, 2 removed"`` from the mart's author history columns."""
    flags, removals = item.get("author_prior_flags") or 0, item.get("author_prior_removals") or 0
    return f"{flags} earlier flag{'' if flags == 1 else 's'}" + (f", {removals} removed" if removals else "")


def excerpt(item: dict[str, Any], limit: int = 70) -> str:
    """The start of the item's text on one line (untrusted: show with ``st.text``)."""
    text = " ".join(review_ui.item_text(item).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _act(item: dict[str, Any], action: str, actor: str, labels: tuple[str, ...], confirmed: bool = False) -> None:
    """Apply ``action`` to one item at the version the moderator saw (``item["version"]``).

    An approval that :func:`needs_confirmation` is only armed (the page then asks for ``Y``)
    unless ``confirmed``.
    """
    reason = st.session_state.get(REASON_KEY)
    note = (st.session_state.get(NOTE_KEY) or "").strip() or None
    if action == "remove" and not reason:
        _flash("error", "Choose a reason before removing an item. Nothing was written.")
        return
    if action == "approve" and not confirmed and needs_confirmation(item):
        st.session_state[CONFIRM_KEY] = (item["source"], item["content_id"], int(item["version"]))
        return
    st.session_state.pop(CONFIRM_KEY, None)
    try:
        decision = auth.review_store().decide(
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
    st.session_state[LAST_KEY] = {
        "source": item["source"], "content_id": item["content_id"], "version": decision.item_version,
        "action": action, "excerpt": excerpt(item, 48), "at": time.monotonic(),
    }  # fmt: skip
    _flash("success", f"{PAST[action]} {item['content_id']}")
    if action == "reopen":
        st.session_state[ITEM_KEY] = item["content_id"]


def _cancel_confirmation() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def _undo(last: dict[str, Any], actor: str) -> None:
    """Undo the last action of this session (a new ``undo`` decision row); reopen its item."""
    try:
        auth.review_store().undo(
            source=last["source"], content_id=last["content_id"], actor=actor, expected_version=int(last["version"]),
            within_seconds=review_ui.undo_seconds(_settings()),
        )  # fmt: skip
    except ConflictError as exc:
        _flash("conflict", review_ui.conflict_message(exc))
        return
    except (TransitionError, ReviewError) as exc:
        _flash("error", f"Not undone: {exc}")
        return
    finally:
        st.session_state.pop(LAST_KEY, None)
    _clear_selection()
    st.session_state[ITEM_KEY] = last["content_id"]
    _flash("success", f"Undone: {PAST[last['action']].lower()} {last['content_id']} is back as it was")


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
    """The outcome of the last action (set by a callback), shown once: a success as a toast
    (bottom right, in view), a conflict or an error as a box."""
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash is None:
        return
    kind, message = flash
    if kind == "success":
        st.toast(components.md_escape(message), icon=":material/check_circle:")
    elif kind == "conflict":
        st.error(message, icon=":material/group:")
    elif kind == "warning":
        st.warning(message, icon=":material/warning:")
    else:
        st.error(message, icon=":material/error:")


def undo_toast(actor: str) -> None:
    """The last action of this session, naming the item, with Undo while the window is open."""
    last = st.session_state.get(LAST_KEY)
    if not last:
        return
    window = review_ui.undo_seconds(_settings())
    left = window - (time.monotonic() - last["at"])
    if left <= 0:
        st.session_state.pop(LAST_KEY, None)
        return
    with st.container(border=True, key="review_toast"):
        text_col, button_col = st.columns([4, 1], vertical_alignment="center")
        with text_col:
            components.untrusted_text(f"{PAST[last['action']]} {last['content_id']}: “{last['excerpt']}”")
        button_col.button("Undo", key="act_undo", shortcut="U", icon=":material/undo:", on_click=_undo,
                          args=(last, actor), help=f"Possible for {window:.0f} s after the action.")  # fmt: skip


# --- page sections ---------------------------------------------------------------------------


def counts(items: pl.DataFrame) -> None:
    """Items per state (the whole queue of this source, before filters), on one line."""
    per_state = review_ui.state_counts(items)
    st.markdown(" · ".join(f"{state.capitalize()} **{per_state[state]:,}**" for state in review_ui.STATE_ORDER))


def queue_table(shown: pl.DataFrame, actor: str, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """The filtered queue as a compact selectable list (tick one row to open it, several for
    bulk actions, in the expander below it).

    Returns:
        The selected rows (dicts), in table order.
    """
    repeat = [
        policy.is_repeat_offender(f, r)
        for f, r in zip(
            shown["author_prior_flags"] if "author_prior_flags" in shown.columns else [0] * shown.height,
            shown["author_prior_removals"] if "author_prior_removals" in shown.columns else [0] * shown.height,
            strict=True,
        )
    ]
    table = shown.with_columns(
        text=pl.coalesce(pl.col("title").replace("", None), pl.col("body_text")).fill_null("").str.slice(0, 60),
        signs=pl.Series(
            [
                ("hold " if h else "") + ("repeat" if r else "")
                for h, r in zip(shown["hold"].fill_null(False), repeat, strict=True)
            ],
            dtype=pl.String,
        ),
    ).select("priority", "state", "max_score", "signs", "text", "content_id", "author_name", "created_at")
    event = st.dataframe(
        data.list_to_text(table), hide_index=True, key=_table_key(), on_select="rerun", selection_mode="multi-row",
        height=470,
        column_config={
            "priority": st.column_config.NumberColumn("#", width=40),
            "state": st.column_config.TextColumn("state", width=70),
            "max_score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.2f", width=70),
            "signs": st.column_config.TextColumn("signs", width=80, help="hold: hold recommended · repeat: repeat offender"),
            "text": st.column_config.TextColumn("text", width="medium"),
        },
    )  # fmt: skip
    rows = sorted(event.selection.rows) if event is not None and hasattr(event, "selection") else []
    selected = [shown.row(i, named=True) for i in rows if i < shown.height]
    with st.expander(f"Bulk actions ({len(selected)} selected)", expanded=len(selected) > 1):
        st.markdown(f"**Bulk actions** on the {len(selected)} selected items (tick rows in the table).")
        st.selectbox(
            "Reason for removal",
            list(REASON_CODES),
            index=None,
            key=BULK_REASON_KEY,
            format_func=lambda c: REASON_CODES[c],
            placeholder="required to remove",
        )
        cols = st.columns(3)
        disabled = not selected
        cols[0].button("Approve", key="bulk_approve", disabled=disabled, on_click=_act_many,
                       args=(selected, "approve", actor, labels), icon=":material/check:")  # fmt: skip
        cols[1].button("Remove", key="bulk_remove", disabled=disabled, on_click=_act_many,
                       args=(selected, "remove", actor, labels), icon=":material/delete:")  # fmt: skip
        cols[2].button("Escalate", key="bulk_escalate", disabled=disabled, on_click=_act_many,
                       args=(selected, "escalate", actor, labels), icon=":material/priority_high:")  # fmt: skip
    return selected


def explanation_section(item: dict[str, Any]) -> None:
    """The item text with its driver words highlighted, and the drivers (or, when the score is
    saturated, the smallest set of words whose removal brings it below the threshold)."""
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
            explanation = occlusion(
                scorer, text, label, content_hash=item.get("content_hash"), threshold=settings.thresholds.get(label)
            )
            if scorer.model_id != item.get("model_id"):
                note = (f"Explained with {scorer.model_id}; the item was flagged by {item.get('model_id')}, "
                        "so the highlights approximate that model's reasons.")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the page stays usable without an explanation
            note = f"No explanation: the scorer could not run ({type(exc).__name__}: {exc})."
    st.html(review_ui.highlight_html(explanation, text))
    if explanation is not None:
        drivers = explanation.drivers(3, min_drop=0.005)  # drops that round to 0.00 say nothing
        if drivers:
            components.untrusted_text(
                f"Drivers of {explanation.label} {explanation.full_score:.2f}: "
                + ", ".join(f"{w} (−{d:.2f})" for w, d in drivers)
            )
        if explanation.set_sentence() and (len(explanation.sufficient) > 1 or not drivers):
            components.untrusted_text(explanation.set_sentence())
        elif not drivers:
            st.caption("No word or small set of words lowers the score below the threshold when removed.")
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
    with st.popover("Thread", icon=":material/forum:", width="stretch"):
        components.untrusted_text(f"Thread {item.get('thread_id')} · parent {parent_id or '(none: starts the thread)'}")
        if parent_text:
            components.untrusted_text(parent_text, prefix="Parent: ", limit=1500)
        elif parent_id is not None:
            st.caption("The parent post's text is not in the snapshot.")


def author_caption(text: str) -> None:
    """Member-written text (a display name) as a small caption, every Markdown character escaped."""
    st.caption(components.md_escape(text))


def badges(item: dict[str, Any]) -> str:
    """Markdown badges: hold recommended, repeat offender (with counts), fallback model."""
    out = []
    if item.get("hold"):
        out.append(":red-badge[:material/back_hand: hold recommended]")
    if policy.is_repeat_offender(item.get("author_prior_flags"), item.get("author_prior_removals")):
        out.append(f":orange-badge[:material/repeat: repeat offender · {offender_counts(item)}]")
    if policy.is_lexical(item.get("model_id"), item.get("is_fallback")) and item.get("flagged_labels"):
        out.append(":gray-badge[lexical model: no hold]")
    return " ".join(out)


def priority_line(item: dict[str, Any]) -> str | None:
    """``"Priority 1 · score 6.40 = 4×0.75 model + …"`` from the mart's priority columns (None
    for a snapshot without them)."""
    if item.get("priority_score") is None:
        return None
    terms = {k: float(item.get(f"priority_{k}") or 0.0) for k in policy.PRIORITY_WEIGHTS}
    terms["score"] = float(item["priority_score"])
    return f"Priority {item['priority']} · score {policy.priority_formula(terms)}"


def item_view(
    item: dict[str, Any], queue: pl.DataFrame, actor: str, labels: tuple[str, ...], next_id: str | None
) -> None:
    """One item: header with badges, reasons, priority formula, highlighted text, score bars,
    author history, thread context, actions."""
    with st.container(border=True, key="review_detail"):
        st.markdown(
            f"**#{item['priority']} · {components.md_escape(str(item['state']))} · "
            f"{components.md_escape(str(item.get('kind')))}** {badges(item)}"
        )
        st.caption(
            components.md_escape(
                f"{item['content_id']} · created {item['created_at']:%Y-%m-%d %H:%M} UTC"
                + (f" · tags: {', '.join(item.get('tags') or [])}" if item.get("tags") else "")
                + (
                    f" · last decision: {item['updated_by']} at {item['updated_at']:%Y-%m-%d %H:%M} UTC (version {item['version']})"
                    if item.get("updated_by")
                    else ""
                )
            )
        )
        components.untrusted_text("Queue reasons: " + "; ".join(queue_reasons(item)))
        line = priority_line(item)
        if line:
            st.caption(
                line,
                help="priority_score = 4·model + 2·reports + 2·history + 1·reach + 1·age, each 0–1 "
                "(transforms/README.md, marts.moderation_queue).",
            )
        text_col, side_col = st.columns([3, 2])
        with text_col:
            explanation_section(item)
        with side_col:
            st.plotly_chart(
                review_ui.score_figure(item, data.LABELS, _settings().thresholds), width="stretch",
                key=f"review_scores_{item['content_id']}", config={"displayModeBar": False},
            )  # fmt: skip
        history = review_ui.author_history(auth.review_store(), queue, item["source"], item.get("author_id"))
        earlier = []
        if item.get("author_prior_flags") is not None:
            earlier.append(f"{item['author_prior_flags']} flagged")
        if item.get("author_prior_removals") is not None:
            earlier.append(f"{item['author_prior_removals']} removed")
        author_col, thread_col = st.columns([3, 1], vertical_alignment="center")
        with author_col:
            author_caption(
                f"Author: {item.get('author_name') or 'unknown'} ({item.get('author_id')}) · in this queue "
                f"{history['flagged']} item{'' if history['flagged'] == 1 else 's'}, {history['removed']} removed, "
                f"{history['approved']} approved" + (f" · earlier (window): {', '.join(earlier)}" if earlier else "")
            )
        with thread_col:
            thread_context(item, queue)
        actions(item, actor, labels, next_id)


def actions(item: dict[str, Any], actor: str, labels: tuple[str, ...], next_id: str | None) -> None:
    """The action bar: approve (confirmed for hold / repeat-offender items), remove (reason
    required), escalate, next; reopen for a decided item. Keyboard shortcuts on each button."""
    allowed = {"pending": {"approve", "remove", "escalate"}, "escalated": {"approve", "remove"}}.get(
        item["state"], set()
    )
    with st.container(key="review_actions"):
        if not allowed:
            cols = st.columns([4, 1], vertical_alignment="center")
            cols[0].caption(f"This item is {components.md_escape(item['state'])}; reopen it to decide again.")
            cols[1].button("Reopen", key="act_reopen", shortcut="O", icon=":material/restart_alt:", on_click=_act,
                           args=(item, "reopen", actor, labels))  # fmt: skip
            return
        armed = st.session_state.get(CONFIRM_KEY) == (item["source"], item["content_id"], int(item["version"]))
        if armed:
            cols = st.columns([3, 1.3, 1], vertical_alignment="center")
            cols[0].markdown(
                f":orange[:material/help: **Approve an item marked {' and '.join(needs_confirmation(item))}?**] "
                "Press Y to approve, N to cancel."
            )
            cols[1].button("Approve", key="act_confirm", type="primary", shortcut="Y", icon=":material/check:",
                           on_click=_act, args=(item, "approve", actor, labels, True))  # fmt: skip
            cols[2].button("Cancel", key="act_cancel", shortcut="N", on_click=_cancel_confirmation)
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
            help="Keys: A approve · X remove (with the reason) · E escalate · J next · U undo the last action"
            + (
                " · on a hold-recommended or repeat offender's item, A asks and Y confirms."
                if needs_confirmation(item)
                else "."
            ),
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
            "Next",
            key="act_next",
            shortcut="J",
            icon=":material/arrow_downward:",
            on_click=_select,
            args=(next_id,),
            disabled=next_id is None,
        )


def _select(content_id: str | None) -> None:
    if content_id is not None:
        st.session_state[ITEM_KEY] = content_id


def render() -> None:
    """The Review queue page: list on the left, the open item on the right."""
    user = auth.require_role(auth.ACTING_ROLES, "The review queue")
    st.html(PAGE_CSS)
    st.title(
        "Review queue",
        help="Most urgent first. Approve, remove (with a reason) or escalate; a colleague cannot overwrite "
        "your decision, and Undo is there for a moment after each one.",
    )
    source = components.selected_source()
    components.banners(source, "Review queue")
    show_flash()
    if not components.require_table("marts", "moderation_queue", "flagged items"):
        return
    items = load_queue(source)
    if items.is_empty():
        components.empty_state("No items in the queue: nothing in this source was flagged or reported.")
        return
    wanted = st.query_params.get("item")
    if wanted and wanted in items["content_id"].to_list() and st.session_state.get("review_link") != wanted:
        st.session_state["review_link"] = wanted  # a link from the audit log opens the item once
        st.session_state[ITEM_KEY] = wanted
        st.session_state["review_states"] = list(review_ui.STATE_ORDER)
    left, right = st.columns([5, 7], gap="medium")
    with left:
        counts(items)
        bar = st.columns([2, 3], vertical_alignment="bottom")
        with bar[0].popover("Filters", icon=":material/filter_list:", width="stretch"):
            shown = filters(items)
        st.markdown(f"**{shown.height} items** match the filters ({items.height} in the queue).")
        if shown.is_empty():
            components.empty_state("No items match these filters; widen the state, score or date filters.")
        labels = tuple(label for label in data.LABELS if label in items.columns)
        selected = queue_table(shown, user.username, labels) if shown.height else []
        ids = shown["content_id"].to_list()
        if ids:
            if len(selected) == 1:
                st.session_state[ITEM_KEY] = selected[0]["content_id"]
            if st.session_state.get(ITEM_KEY) not in ids:
                st.session_state[ITEM_KEY] = ids[0]
            priorities = dict(zip(ids, shown["priority"].to_list(), strict=True))
            chosen = bar[1].selectbox(
                "Item",
                ids,
                key=ITEM_KEY,
                format_func=lambda cid: f"#{priorities[cid]} · {cid}",
                label_visibility="collapsed",
            )
    with right:
        undo_toast(user.username)
        if shown.is_empty():
            return
        position = ids.index(chosen)
        next_id = ids[position + 1] if position + 1 < len(ids) else None
        item_view(shown.row(position, named=True), items, user.username, labels, next_id)


render()
