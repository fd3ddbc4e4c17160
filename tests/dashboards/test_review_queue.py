"""The Review queue page (AppTest): live states, actions, conflicts, reasons, bulk actions, escaping.

The queue is the hand-made snapshot's ``demo`` source (4 flagged items, the first one hostile)
or the demo source through the real pipeline; each test gets its own review store
(``fresh_review_store``) so decisions never leak between tests. Expected numbers are
recomputed from the snapshot file and the store directly.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
QUEUE = "views/review_queue.py"


def open_queue(username: str = "mod", source: str | None = "demo") -> AppTest:
    """The app signed in as ``username``, on the Review queue page."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.run()
    if source is not None:
        at.selectbox(key="source").set_value(source).run()
    at.switch_page(QUEUE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sql(path: Path, query: str) -> pl.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(query).pl()
    finally:
        con.close()


def metrics(at: AppTest) -> dict[str, str]:
    """Items per state from the counts line ("Pending **4** · Escalated **0** · ...")."""
    line = next(m.value for m in at.markdown if m.value.startswith("Pending **"))
    return dict((part.split(" **")[0], part.split(" **")[1].rstrip("*")) for part in line.split(" · "))


def toasts(at: AppTest) -> list[str]:
    return [t.value.replace("\\", "") for t in at.toast]


def matching(at: AppTest) -> int:
    """The "**N items** match the filters" count."""
    line = next(m.value for m in at.markdown if m.value.endswith("in the queue)."))
    return int(line.split("**")[1].split()[0])


def test_queue_lists_items_by_priority_with_counts(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    expected = sql(
        snapshot.path, "select content_id from marts.moderation_queue where source = 'demo' order by priority"
    )
    at = open_queue()
    assert [t.value for t in at.main.title] == ["Review queue"]
    assert metrics(at) == {"Pending": str(expected.height), "Escalated": "0", "Approved": "0", "Removed": "0"}
    assert matching(at) == expected.height == 4
    table = at.dataframe[0].value
    assert table["content_id"].tolist() == expected["content_id"].to_list()
    assert at.selectbox(key="review_item").value == "demo:c1", "the top-priority item is open"
    texts = [t.value for t in at.text]
    assert "Queue reasons: model flag: toxicity, insult (highest toxicity 0.97) by detoxify:original" in texts
    from dashboards.components import md_escape

    assert any(c.value.startswith(md_escape("Author: Author u1 (demo:u1) · in this queue 2 items")) for c in at.caption)
    assert len(at.get("plotly_chart")) == 1, "the item's score bars"


def test_moderator_approve_shows_at_once(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    at = open_queue()
    # demo:c1 is "hold recommended": A only arms the approval, Y confirms it
    at.button(key="act_approve").click().run()
    assert not at.exception and fresh_review_store.decisions().is_empty()
    assert [m.value for m in at.markdown if "Approve an item" in m.value] == [
        ":orange[:material/help: **Approve an item marked hold recommended?**] Press Y to approve, N to cancel."
    ]
    at.button(key="act_confirm").click().run()
    assert toasts(at) == ["Approved demo:c1"]
    assert metrics(at)["Pending"] == "3" and metrics(at)["Approved"] == "1"
    assert matching(at) == 3 and "demo:c1" not in at.dataframe[0].value["content_id"].tolist()
    assert at.selectbox(key="review_item").value == "demo:c2", "the next item opens"
    states = fresh_review_store.item_states("demo")
    assert states.select("content_id", "state", "version", "updated_by").rows() == [("demo:c1", "approved", 1, "mod")]
    (decision,) = fresh_review_store.decisions().iter_rows(named=True)
    assert decision["content_hash"] == "hash1" and decision["model_id"] == "detoxify:original"
    assert '"toxicity": 0.97' in decision["scores_json"] and '"toxicity": 0.8' in decision["thresholds_json"]
    # the approved item is one state filter away, marked final
    at.multiselect(key="review_states").set_value(["approved"]).run()
    assert matching(at) == 1 and any("reopen it to decide again" in c.value for c in at.caption)


def test_second_moderator_gets_a_conflict_and_nothing_is_written(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    at = open_queue("mod")  # mod sees demo:c1 at version 0
    moment = datetime(2026, 11, 20, 10, 30, 5)
    fresh_review_store.decide(
        source="demo",
        content_id="demo:c1",
        action="remove",
        actor="mod2",
        expected_version=0,
        content_hash="hash1",
        reason_code="harassment",
        now=moment,
    )
    at.button(key="act_escalate").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert "mod2 already removed this item at 2026-11-20 10:30:05 UTC; reload to see it. Nothing was written." in errors
    log = fresh_review_store.decisions()
    assert log.height == 1 and log["actor"].to_list() == ["mod2"] and log["action"].to_list() == ["remove"]
    assert metrics(at)["Removed"] == "1", "the reload shows the colleague's decision"


def test_removal_requires_a_reason(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    at = open_queue()
    at.button(key="act_remove").click().run()
    assert any(e.value.startswith("Choose a reason before removing") for e in at.error)
    assert fresh_review_store.decisions().is_empty()
    at.selectbox(key="review_reason").set_value("harassment").run()
    at.text_input(key="review_note").input("name-calling; second warning").run()
    at.button(key="act_remove").click().run()
    (decision,) = fresh_review_store.decisions().iter_rows(named=True)
    assert (decision["action"], decision["reason_code"], decision["note"]) == (
        "remove",
        "harassment",
        "name-calling; second warning",
    )
    assert metrics(at)["Removed"] == "1"


def test_escalated_item_can_be_approved_but_not_escalated_again(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    at = open_queue()
    at.button(key="act_escalate").click().run()
    assert metrics(at)["Escalated"] == "1" and at.selectbox(key="review_item").value == "demo:c1"
    assert at.button(key="act_escalate").disabled and not at.button(key="act_approve").disabled
    at.button(key="act_approve").click().run()
    at.button(key="act_confirm").click().run()
    assert [r["to_state"] for r in fresh_review_store.decisions().iter_rows(named=True)] == ["approved", "escalated"]


def test_bulk_action_on_a_selection_counts(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    at = open_queue()
    # mod2 already approved the third row (demo:c3) after the page was drawn: one conflict
    at.session_state["review_table_0"] = {"selection": {"rows": [0, 1, 2], "columns": [], "cells": []}}
    at.run()
    assert any(m.value.startswith("**Bulk actions** on the 3 selected items") for m in at.markdown)
    at.button(key="bulk_remove").click().run()
    assert any(e.value.startswith("Choose a reason before removing the selected") for e in at.error)
    assert fresh_review_store.decisions().is_empty()
    at.selectbox(key="review_bulk_reason").set_value("spam").run()
    fresh_review_store.decide(
        source="demo", content_id="demo:c3", action="approve", actor="mod2", expected_version=0, content_hash="hash3"
    )
    at.button(key="bulk_remove").click().run()
    warning = next(w.value for w in at.warning if w.value.startswith("Bulk remove"))
    assert warning.startswith(
        "Bulk remove: 2 of 3 items done; 1 skipped because a colleague acted first (mod2 already approved"
    )
    states = dict(fresh_review_store.item_states("demo").select("content_id", "state").iter_rows())
    assert states == {"demo:c1": "removed", "demo:c2": "removed", "demo:c3": "approved"}
    assert metrics(at) == {"Pending": "1", "Escalated": "0", "Approved": "1", "Removed": "2"}
    assert any(m.value.startswith("**Bulk actions** on the 0 selected items") for m in at.markdown), (
        "the selection is cleared after the action (it is by row position)"
    )


def test_filters(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    at = open_queue()
    at.slider(key="review_score_range").set_value((0.9, 1.0)).run()
    strong = sql(
        snapshot.path, "select count(*) as n from marts.moderation_queue where source = 'demo' and max_score >= 0.9"
    )
    assert matching(at) == strong["n"][0] == 1
    at.slider(key="review_score_range").set_value((0.0, 1.0)).run()
    at.multiselect(key="review_labels").set_value(["threat"]).run()
    assert matching(at) == 1 and at.selectbox(key="review_item").value == "demo:c3"
    at.multiselect(key="review_labels").set_value([]).run()
    at.multiselect(key="review_tags").set_value(["hops"]).run()
    tagged = sql(
        snapshot.path,
        "select count(*) as n from marts.moderation_queue where source = 'demo' and list_contains(tags, 'hops')",
    )
    assert matching(at) == tagged["n"][0] == 2
    at.multiselect(key="review_tags").set_value([]).run()
    at.text_input(key="review_author").input("u2").run()
    assert matching(at) == 1 and at.selectbox(key="review_item").value == "demo:c2"
    at.text_input(key="review_author").input("nobody-like-this").run()
    assert any(i.value.startswith("No items match these filters") for i in at.info)


def test_date_range_on_the_pipeline_queue(serve, pipeline_snapshot, fresh_review_store) -> None:
    """Real pipeline output (demo source, lexical scorer): the date filter keeps exactly the
    items created in the chosen days."""
    serve(pipeline_snapshot)
    days = sql(pipeline_snapshot.path, "select created_at::date as day from marts.moderation_queue")["day"]
    start, end = days.min(), days.min() + (days.max() - days.min()) / 2
    expected = sum(start <= d <= end for d in days.to_list())
    assert 0 < expected < len(days)
    at = open_queue(source=None)
    assert matching(at) == len(days)
    at.date_input(key="review_range").set_value((start, end)).run()
    assert not at.exception and matching(at) == expected


def test_hostile_item_is_inert_and_the_driver_is_highlighted(serve, snapshot, facts, fresh_review_store) -> None:
    serve(snapshot)
    at = open_queue()
    (block,) = [h.proto.body for h in at.get("html") if "pulse-item-text" in h.proto.body]
    # every character of the member's text is escaped; the only tags are ours
    assert "<script>" not in block and "&lt;script&gt;alert(1)&lt;/script&gt;" in block
    assert "<b>" not in block and "&lt;b&gt;title&lt;/b&gt;" in block
    assert "<a " not in block and "<img" not in block
    tags = [t.split(">")[0].split()[0] for t in block.split("<")[1:]]
    assert set(tags) <= {"div", "/div", "mark", "/mark"}, tags
    assert 'class="pulse-driver"' in block, "the lexical model's top driver word is marked"
    unmarked = re.sub(r"<mark[^>]*>|</mark>", "", block.split(">", 1)[1])
    assert unmarked.startswith(html.escape(facts.hostile_title, quote=True)), "the title opens the text"
    for value in [str(m.value) for m in at.markdown] + [str(c.value) for c in at.caption]:
        assert "evil" not in value and "<script" not in value, value
    assert not at.image


def test_highlighted_driver_on_a_real_insult(serve, snapshot, fresh_review_store) -> None:
    """demo:c2 ("you are an idiot"): the lexical model's drop for "idiot" is computed here."""
    from moderation.scorers import LexicalScorer

    serve(snapshot)
    at = open_queue()
    at.selectbox(key="review_item").set_value("demo:c2").run()
    full, without = LexicalScorer().score(["you are an idiot", "you are an"])["toxicity"].to_list()
    (block,) = [h.proto.body for h in at.get("html") if "pulse-item-text" in h.proto.body]
    assert f'title="score drop {full - without:.2f} without this word"' in block
    assert ">idiot</mark>" in block
    assert any(t.value.startswith(f"Drivers of toxicity {full:.2f}: idiot (−{full - without:.2f})") for t in at.text)


def test_queue_page_is_not_for_managers(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "boss"
    at.run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(QUEUE)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/audit_log.py")
    # defence in depth: the page itself refuses a manager even when run directly
    from moderation.review_store import ReviewUser

    page = AppTest.from_file(str(APP.parent / "views" / "review_queue.py"), default_timeout=60)
    page.session_state["pulse_user"] = ReviewUser("boss", "Boss", "b@example.org", "manager", True)
    page.run()
    assert [e.value for e in page.error] == ["The review queue is not available to your role (manager)."]
    assert not page.dataframe and not page.get("html")


def test_toast_names_the_item_and_undo_appends_a_row(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    at = open_queue()
    at.selectbox(key="review_item").set_value("demo:c2").run()
    at.selectbox(key="review_reason").set_value("harassment").run()
    at.button(key="act_remove").click().run()
    assert toasts(at) == ["Removed demo:c2"]
    bar = [t.value for t in at.text if t.value.startswith("Removed demo:c2")]
    assert bar == ["Removed demo:c2: “you are an idiot”"]
    assert at.button(key="act_undo").help == "Possible for 30 s after the action."
    assert metrics(at)["Removed"] == "1" and at.selectbox(key="review_item").value == "demo:c1"
    at.button(key="act_undo").click().run()
    assert not at.exception
    assert toasts(at) == ["Undone: removed demo:c2 is back as it was"]
    log = fresh_review_store.decisions(content_id="demo:c2")
    assert log.select("action", "from_state", "to_state", "item_version").rows() == [
        ("undo", "removed", "pending", 2),
        ("remove", "pending", "removed", 1),
    ], "append-only: the removal stays, the undo is a new row"
    assert metrics(at) == {"Pending": "4", "Escalated": "0", "Approved": "0", "Removed": "0"}
    assert at.selectbox(key="review_item").value == "demo:c2", "the undone item is open again"
    assert not [t for t in at.text if t.value.startswith("Removed demo:c2")], "the toast is gone after the undo"


def test_reopen_a_decided_item(serve, snapshot, fresh_review_store) -> None:
    serve(snapshot)
    fresh_review_store.decide(source="demo", content_id="demo:c3", action="remove", actor="mod2",
                              expected_version=0, content_hash="hash3", reason_code="threat")  # fmt: skip
    at = open_queue()
    at.multiselect(key="review_states").set_value(["removed"]).run()
    assert at.selectbox(key="review_item").value == "demo:c3" and not [b for b in at.button if b.key == "act_approve"]
    at.button(key="act_reopen").click().run()
    assert toasts(at) == ["Reopened demo:c3"]
    assert fresh_review_store.decisions(content_id="demo:c3")["action"].to_list() == ["reopen", "remove"]
    assert metrics(at)["Pending"] == "4" and metrics(at)["Removed"] == "0"


def test_repeat_offender_badge_and_confirmation(serve, snapshot, fresh_review_store) -> None:
    """demo:c3's author (u1) gets 4 earlier flags: a badge, and approval needs Y (N cancels)."""
    serve(snapshot)
    con = duckdb.connect(str(snapshot.path))
    try:
        con.execute("update marts.moderation_queue set author_prior_flags = 4 where content_id = 'demo:c3'")
    finally:
        con.close()
    at = open_queue()
    at.selectbox(key="review_item").set_value("demo:c3").run()
    header = next(m.value for m in at.markdown if m.value.startswith("**#"))
    assert ":orange-badge[:material/repeat: repeat offender · 4 earlier flags]" in header
    assert "hold recommended" not in header
    at.button(key="act_approve").click().run()
    assert [m.value for m in at.markdown if "Approve an item" in m.value] == [
        ":orange[:material/help: **Approve an item marked repeat offender (4 earlier flags)?**] "
        "Press Y to approve, N to cancel."
    ]
    at.button(key="act_cancel").click().run()
    assert fresh_review_store.decisions().is_empty() and not [b for b in at.button if b.key == "act_confirm"]
    at.button(key="act_approve").click().run()
    at.button(key="act_confirm").click().run()
    assert fresh_review_store.decisions()["action"].to_list() == ["approve"]
    assert toasts(at) == ["Approved demo:c3"]


def test_pipeline_queue_shows_the_priority_formula(serve, pipeline_snapshot, fresh_review_store) -> None:
    """Real pipeline output (demo source, lexical scorer): the item view writes out its priority
    score with the mart's numbers, and a lexical model never says "hold recommended"."""
    from moderation.policy import priority_formula

    serve(pipeline_snapshot)
    top = sql(pipeline_snapshot.path, "select * from marts.moderation_queue order by priority limit 1").row(
        0, named=True
    )
    at = open_queue(source=None)
    terms = {k: top[f"priority_{k}"] for k in ("model", "reports", "history", "reach", "age")} | {
        "score": top["priority_score"]
    }
    assert f"Priority 1 · score {priority_formula(terms)}" in [c.value for c in at.caption]
    header = next(m.value for m in at.markdown if m.value.startswith("**#"))
    assert "hold recommended" not in header and ":gray-badge[lexical model: no hold]" in header


def test_a_link_from_the_audit_log_opens_the_item(serve, snapshot, fresh_review_store) -> None:
    """``review_queue?source=demo&item=demo:c3`` (the audit log's link) opens demo:c3, even when it was decided."""
    serve(snapshot)
    fresh_review_store.decide(source="demo", content_id="demo:c3", action="approve", actor="mod2",
                              expected_version=0, content_hash="hash3")  # fmt: skip
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "mod"
    at.query_params["item"] = "demo:c3"
    at.run()
    at.selectbox(key="source").set_value("demo").run()
    at.switch_page(QUEUE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="review_item").value == "demo:c3"
    assert at.multiselect(key="review_states").value == ["pending", "escalated", "approved", "removed"]
