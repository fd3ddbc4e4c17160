"""The score step's language detection and counts touch only the batch (issue #17):
``detect_languages_pending`` with ``batch_only`` detects the texts of the unpublished batches
(``raw.content``) and sweeps all of staging only while no language was detected yet;
``scored_texts`` counts a model's scores without scanning staging."""

from __future__ import annotations

from datetime import datetime

import pytest

from moderation.scoring import batch_rowids, detect_languages_pending, pending_texts, scored_texts
from warehouse.db import connect, migrate


def _item(con, cid: str, *, in_batch: bool) -> None:
    # texts under 20 letters are 'und' without loading the detector's models
    con.execute(
        "insert into staging.content (source, content_id, kind, created_at, body_text, content_hash) "
        "values ('s', ?, 'question', timestamp '2024-01-01', ?, ?)",
        [cid, f"ok {cid}", f"h{cid}"],
    )
    if in_batch:
        con.execute(
            "insert into raw.content (run_id, source, content_id, kind, created_at, body_text, content_hash) "
            "values ('r1', 's', ?, 'question', timestamp '2024-01-02', ?, ?)",
            [cid, f"ok {cid}", f"h{cid}"],
        )


@pytest.fixture
def con():
    con = connect(":memory:")
    migrate(con)
    for cid in ("a", "b", "c"):
        _item(con, cid, in_batch=False)
    _item(con, "d", in_batch=True)
    yield con
    con.close()


def _detected(con) -> list[str]:
    return [r[0] for r in con.execute("select content_hash from moderation.languages order by 1").fetchall()]


def test_languages_of_the_batch_unless_none_was_detected_yet(con) -> None:
    assert detect_languages_pending(con, batch_only=True) == 4  # nothing detected yet: all of staging
    assert _detected(con) == ["ha", "hb", "hc", "hd"]
    con.execute("delete from raw.content")  # the run published; the next run lands e, and f appears outside any batch
    _item(con, "e", in_batch=True)
    _item(con, "f", in_batch=False)
    assert batch_rowids(con) == [4]  # e is staging's fifth row
    assert detect_languages_pending(con, batch_only=batch_rowids(con)) == 1
    assert _detected(con) == ["ha", "hb", "hc", "hd", "he"]
    assert detect_languages_pending(con, batch_only=True) == 0  # e is detected: nothing left in the batch
    assert detect_languages_pending(con) == 1  # the full sweep finds f
    assert con.execute(
        "select language, confidence from moderation.languages where content_hash = 'hf'"
    ).fetchone() == (
        "und",
        0.0,
    )


def test_scored_texts_counts_the_models_scores(con) -> None:
    assert scored_texts(con, "m") == 0
    for h in ("ha", "hb", "hx"):  # hx: a text no longer in staging (edited) still counts as scored
        con.execute(
            "insert into moderation.scores (content_hash, model_id, model_version, backend, is_fallback, toxicity, "
            "scored_at) values (?, 'm', 'v', 'lexical', false, 0.1, ?)",
            [h, datetime(2024, 1, 3)],
        )
    assert scored_texts(con, "m") == 3 and scored_texts(con, "other") == 0
    assert pending_texts(con, "m", batch_only=True)["content_hash"].to_list() == ["hd"]
    assert pending_texts(con, "m")["content_hash"].to_list() == ["hc", "hd"]
