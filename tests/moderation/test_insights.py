"""Moderation insights (moderation/insights.py): figures recomputed here by hand and with numpy."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from moderation import insights

T0 = datetime(2026, 11, 2, 0, 0)  # a Monday
TOX = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6]
FINAL = ["removed", "removed", "removed", "approved", "removed", "approved"]


@pytest.fixture
def queue() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source": ["demo"] * 6,
            "content_id": [f"c{i}" for i in range(1, 7)],
            "created_at": [T0 + timedelta(days=i // 2) for i in range(6)],  # 2 per day over 3 days
            "tags": [["hops"], ["hops", "ipa"], [], ["ipa"], ["hops"], []],
            "flagged_labels": [["toxicity"]] * 6,
            "toxicity": TOX,
            "insult": [0.1, None, 0.7, 0.2, 0.9, 0.3],
        }
    )


@pytest.fixture
def decisions(queue) -> pl.DataFrame:
    """c1 is escalated first (after 1 h) and removed later; c2..c6 decided once, after 2..6 h."""
    rows = []
    for i, (cid, created, state) in enumerate(
        zip(queue["content_id"], queue["created_at"], FINAL, strict=True), start=1
    ):
        if cid == "c1":
            rows.append(("demo", cid, "escalate", "escalated", "mod", created + timedelta(hours=1), 1))
            rows.append(("demo", cid, "remove", "removed", "mod2", created + timedelta(hours=30), 2))
        else:
            action = "remove" if state == "removed" else "approve"
            rows.append(("demo", cid, action, state, "mod" if i % 2 else "mod2", created + timedelta(hours=i), 1))
    return pl.DataFrame(
        rows, schema=["source", "content_id", "action", "to_state", "actor", "decided_at", "item_version"], orient="row"
    )


def test_flag_volume_and_tags(queue) -> None:
    daily = insights.flag_volume(queue, "1d")
    assert daily["period"].to_list() == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert daily["flags"].to_list() == [2, 2, 2]
    assert insights.flag_volume(queue, "1w")["flags"].to_list() == [6]
    by_tag = insights.flags_by_tag(queue)
    assert dict(by_tag.iter_rows()) == {"hops": 3, "ipa": 2, "(no tag)": 2}
    assert by_tag["tag"].to_list() == ["hops", "(no tag)", "ipa"]  # count desc, then name


def test_queue_age_p50_p90_match_numpy(queue, decisions) -> None:
    age = insights.queue_age(queue, decisions)
    hours = [1, 2, 3, 4, 5, 6]  # first decision per item (c1's escalation counts)
    assert age.n == 6
    assert age.p50_hours == pytest.approx(np.percentile(hours, 50)) == pytest.approx(3.5)
    assert age.p90_hours == pytest.approx(np.percentile(hours, 90)) == pytest.approx(5.5)
    empty = insights.queue_age(queue, decisions.clear())
    assert (empty.n, empty.p50_hours, empty.p90_hours) == (0, None, None)


def test_decisions_per_moderator(decisions) -> None:
    table = insights.decisions_per_moderator(decisions)
    expected = {}
    for actor, action in zip(decisions["actor"], decisions["action"], strict=True):
        expected.setdefault(actor, {"approve": 0, "remove": 0, "escalate": 0})[action] += 1
    got = {r["actor"]: {a: r[a] for a in ("approve", "remove", "escalate")} for r in table.iter_rows(named=True)}
    assert got == expected
    assert table["total"].to_list() == sorted(table["total"].to_list(), reverse=True)
    assert table["total"].sum() == decisions.height == 7


def test_agreement_precision_at_threshold(queue, decisions) -> None:
    decided = insights.decided_items(queue, decisions, ["toxicity", "insult"])
    assert decided.height == 6 and decided["upheld"].sum() == 4
    table = insights.agreement(decided, {"toxicity": 0.8, "insult": 0.6, "threat": 0.6})
    rows = {r["label"]: r for r in table.iter_rows(named=True)}
    assert set(rows) == {"toxicity", "insult"}, "labels without scores are left out"
    # by hand: toxicity >= 0.8 -> c1..c4, removed c1..c3; insult >= 0.6 -> c3 (removed), c5 (removed)
    assert (rows["toxicity"]["flagged"], rows["toxicity"]["upheld"], rows["toxicity"]["precision"]) == (4, 3, 0.75)
    assert (rows["insult"]["flagged"], rows["insult"]["upheld"], rows["insult"]["precision"]) == (2, 2, 1.0)


def test_escalated_items_are_not_decided(queue, decisions) -> None:
    open_c6 = decisions.filter(pl.col("content_id") != "c6").vstack(
        pl.DataFrame([("demo", "c6", "escalate", "escalated", "mod", T0, 1)], schema=decisions.schema, orient="row")
    )
    decided = insights.decided_items(queue, open_c6, ["toxicity"])
    assert "c6" not in decided["content_id"].to_list() and decided.height == 5


def _brute_force(scores, upheld, target, min_n):
    """The smallest score t with precision(score >= t) >= target and n >= min_n, by loops."""
    for t in sorted(set(scores)):
        hits = [u for s, u in zip(scores, upheld, strict=True) if s >= t]
        if len(hits) >= min_n and sum(hits) / len(hits) >= target:
            return t, sum(hits) / len(hits), len(hits)
    return None


@pytest.mark.parametrize(("target", "min_n"), [(0.9, 3), (0.75, 3), (0.8, 1), (1.0, 4), (0.5, 6)])
def test_suggested_threshold_matches_brute_force(queue, decisions, target, min_n) -> None:
    decided = insights.decided_items(queue, decisions, ["toxicity"])
    s = insights.suggest_threshold(decided, "toxicity", target=target, min_decisions=min_n)
    expected = _brute_force(decided["toxicity"].to_list(), decided["upheld"].to_list(), target, min_n)
    if expected is None:
        assert s.threshold is None and "No threshold reaches" in s.reason
    else:
        assert (s.threshold, s.precision, s.n) == pytest.approx(expected)
    if (target, min_n) == (0.9, 3):
        assert (s.threshold, s.precision, s.n) == (0.85, 1.0, 3)  # c1..c3 all removed
    if (target, min_n) == (0.75, 3):
        assert (s.threshold, s.n) == (0.7, 5) and s.precision == pytest.approx(0.8)


def test_suggestion_with_too_little_data_says_so(queue, decisions) -> None:
    decided = insights.decided_items(queue, decisions, ["toxicity", "insult"])
    s = insights.suggest_threshold(decided, "toxicity", target=0.9, min_decisions=20)
    assert s.threshold is None and s.reason.startswith("Too little data: 6 decided items")
    assert insights.suggest_threshold(decided, "insult", min_decisions=3).n >= 0  # nulls dropped, no error
    assert "No threat scores" in insights.suggest_threshold(decided, "threat").reason
    with pytest.raises(ValueError, match="target precision"):
        insights.suggest_threshold(decided, "toxicity", target=0.0)


def test_backlog_open_oldest_and_past_the_target(queue) -> None:
    """Six items created 0, 0, 1, 1, 2, 2 days after T0; c1 removed, c2 escalated, c3 approved:
    open are c2, c4, c5, c6; as of T0 + 2 d 6 h their ages are 54, 30, 6, 6 h."""
    live = queue.with_columns(state=pl.Series(["removed", "escalated", "approved", "pending", "pending", "pending"]))
    as_of = T0 + timedelta(days=2, hours=6)
    b = insights.backlog(live, sla_hours=24, as_of=as_of)
    assert (b.open, b.escalated, b.oldest_hours, b.past_sla) == (4, 1, 54.0, 2)
    assert b.line() == "4 open (1 escalated) · oldest 2.2 d · 2 past the 24 h response-time target"
    assert insights.backlog(live, sla_hours=6, as_of=as_of).past_sla == 2, "exactly at the target is not past it"
    assert insights.backlog(live, sla_hours=5.5, as_of=as_of).past_sla == 4
    none = insights.backlog(live.with_columns(state=pl.lit("approved")), sla_hours=24, as_of=as_of)
    assert (none.open, none.oldest_hours, none.past_sla) == (0, None, 0)
    assert none.line() == "No open items: the review queue is empty."
    with pytest.raises(ValueError, match="sla_hours must be > 0"):
        insights.backlog(live, sla_hours=0, as_of=as_of)


def test_undo_and_reopen_count_as_decisions(decisions) -> None:
    extra = pl.DataFrame(
        [("demo", "c2", "undo", "pending", "mod2", T0 + timedelta(hours=3), 2),
         ("demo", "c3", "reopen", "pending", "mod", T0 + timedelta(days=3), 2)],
        schema=decisions.schema, orient="row",
    )  # fmt: skip
    table = insights.decisions_per_moderator(pl.concat([decisions, extra]))
    rows = {r["actor"]: r for r in table.iter_rows(named=True)}
    assert (rows["mod2"]["undo"], rows["mod"]["reopen"]) == (1, 1)
    assert table["total"].sum() == decisions.height + 2 == 9
