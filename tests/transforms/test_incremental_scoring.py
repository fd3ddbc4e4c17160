"""Scoring and flags touch only the batch (issue #17): ``pending_texts`` and ``refresh_flags`` with
``batch_only`` look at the items of the unpublished batches (``raw.content``), and sweep all of
staging only for a model with no score yet or when the model or thresholds of the flags changed."""

from __future__ import annotations

from datetime import datetime

import pytest

from moderation.policy import DEFAULT_HOLD_THRESHOLDS, DEFAULT_THRESHOLDS
from moderation.scoring import pending_texts, refresh_flags
from warehouse.db import connect, migrate

MODEL = "detoxify:original"


@pytest.fixture
def con():
    con = connect(":memory:")
    migrate(con)
    for cid in ("a", "b", "c", "d"):
        con.execute(
            "insert into staging.content (source, content_id, kind, created_at, body_text, content_hash) "
            "values ('s', ?, 'question', timestamp '2024-01-01', ?, ?)",
            [cid, f"text {cid}", f"h{cid}"],
        )
    # d is the run's new item; c has no score but is outside the batch
    con.execute(
        "insert into raw.content (run_id, source, content_id, kind, created_at, body_text, content_hash) "
        "values ('r1', 's', 'd', 'question', timestamp '2024-01-02', 'text d', 'hd')"
    )
    for h, tox in (("ha", 0.99), ("hb", 0.01)):
        _score(con, h, tox)
    yield con
    con.close()


def _score(con, content_hash: str, toxicity: float, model: str = MODEL) -> None:
    con.execute(
        "insert or replace into moderation.scores (content_hash, model_id, model_version, backend, is_fallback, "
        "toxicity, scored_at) values (?, ?, 'v', 'detoxify', false, ?, ?)",
        [content_hash, model, toxicity, datetime(2024, 1, 3)],
    )


def _flags(con) -> list[str]:
    return [r[0] for r in con.execute("select content_id from moderation.flags order by content_id").fetchall()]


def test_pending_texts_of_the_batch_unless_the_model_is_new(con):
    assert pending_texts(con, MODEL, batch_only=True)["content_hash"].to_list() == ["hd"]
    assert pending_texts(con, MODEL)["content_hash"].to_list() == ["hc", "hd"]  # the full sweep
    # a model without any score sweeps all of staging
    assert pending_texts(con, "other:model", batch_only=True)["content_hash"].to_list() == ["ha", "hb", "hc", "hd"]


def test_flags_refresh_the_batch_only_while_model_and_thresholds_stay(con):
    assert refresh_flags(con, MODEL, DEFAULT_THRESHOLDS, DEFAULT_HOLD_THRESHOLDS, batch_only=True)[0] == 1
    assert _flags(con) == ["a"]  # no flags yet: every item was checked
    _score(con, "hd", 0.98)  # the batch's item, scored now
    _score(con, "hb", 0.97)  # outside the batch: not checked again
    flagged, _ = refresh_flags(con, MODEL, DEFAULT_THRESHOLDS, DEFAULT_HOLD_THRESHOLDS, batch_only=True)
    assert (flagged, _flags(con)) == (2, ["a", "d"])
    # a threshold change re-flags every item
    lower = {**DEFAULT_THRESHOLDS, "toxicity": DEFAULT_THRESHOLDS["toxicity"] - 0.01}
    flagged, _ = refresh_flags(con, MODEL, lower, DEFAULT_HOLD_THRESHOLDS, batch_only=True)
    assert (flagged, _flags(con)) == (3, ["a", "b", "d"])
