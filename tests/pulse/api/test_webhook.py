"""Discourse's webhook over HTTP, the live queue, and its reconciliation with the pipeline's queue."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from moderation.policy import DEFAULT_HOLD_THRESHOLDS, DEFAULT_THRESHOLDS, flag
from moderation.review_store import ReviewStore
from moderation.scorers import load_scorer
from pulse.api.live_queue import LiveQueue, merge_live
from pulse.api.webhook import post_item, queue_row, sign
from tests.pulse.api.conftest import DISCOURSE_API_KEY, SECRET
from warehouse.canonical import content_hash

TOXIC = "You are a fucking idiot, shut the hell up."
BENIGN = "Thanks, I will try a longer boil next time."


def post(post_id: int, raw: str, *, number: int = 2, archetype: str = "regular") -> dict:
    return {"post": {"id": post_id, "raw": raw, "cooked": f"<p>{raw}</p>", "post_number": number, "post_type": 1,
                     "topic_id": 77, "topic_title": "Brewing a stout", "topic_archetype": archetype,
                     "username": "brewer", "user_id": 12, "created_at": "2026-12-03T09:00:00.000Z"}}  # fmt: skip


def deliver(server, payload: dict, *, event: str = "post_created", event_id: str = "1", signature: str | None = "ok",
            secret: str = SECRET) -> httpx.Response:  # fmt: skip
    raw = json.dumps(payload).encode()
    headers = {"X-Discourse-Event": event, "X-Discourse-Event-Id": event_id, "X-Discourse-Event-Type": "post",
               "X-Discourse-Instance": "https://forum.example", "Content-Type": "application/json"}  # fmt: skip
    if signature == "ok":
        headers["X-Discourse-Event-Signature"] = sign(secret, raw)
    elif signature is not None:
        headers["X-Discourse-Event-Signature"] = signature
    return httpx.post(server.base + "/webhooks/discourse", content=raw, headers=headers, timeout=60)


def live_rows(server) -> dict[str, dict]:
    return {r["content_id"]: r for r in LiveQueue(ReviewStore(server.store_url).engine, create=False).rows()}


def test_signature_is_required(lexical_server) -> None:
    missing = deliver(lexical_server, post(501, TOXIC), signature=None, event_id="s1")
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    wrong = deliver(lexical_server, post(501, TOXIC), secret="another-secret", event_id="s2")
    assert wrong.status_code == 403 and "does not match" in wrong.json()["error"]["message"]
    # a body changed after signing fails too
    raw = json.dumps(post(501, TOXIC)).encode()
    tampered = httpx.post(lexical_server.base + "/webhooks/discourse", content=raw.replace(b"idiot", b"idiom"),
                          headers={"X-Discourse-Event": "post_created", "X-Discourse-Event-Id": "s3",
                                   "X-Discourse-Event-Signature": sign(SECRET, raw)})  # fmt: skip
    assert tampered.status_code == 403
    assert "501" not in live_rows(lexical_server)
    assert deliver(lexical_server, {}, event="ping", event_id="p1").json() == {"status": "pong"}


def test_flagged_post_enters_the_queue_with_the_pipelines_policy(lexical_server, fake_discourse) -> None:
    r = deliver(lexical_server, post(601, TOXIC), event_id="e601")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "queued" and answer["flagged"] is True and answer["queue_reasons"] == ["model_flag"]
    # in the queue the moderators read as soon as the answer came (latency: bench:api)
    row = live_rows(lexical_server)["601"]
    score = load_scorer("lexical").score([TOXIC])["toxicity"][0]
    policy = flag(pl.DataFrame({"toxicity": [score]}), DEFAULT_THRESHOLDS, DEFAULT_HOLD_THRESHOLDS).row(0, named=True)
    assert row["toxicity"] == pytest.approx(score, abs=1e-12)
    assert row["severity"] == pytest.approx(policy["severity"]) and row["severity"] == pytest.approx(score / 0.8)
    assert policy["hold"] is True and row["hold"] is False  # the mart's rule: a lexical (fallback) model never holds
    assert row["flagged_labels"] == ["toxicity"] and row["max_label"] == "toxicity"
    assert row["source"] == "discourse:forum" and row["kind"] == "reply" and row["author_name"] == "brewer"
    assert (
        row["content_hash"] == content_hash("reply", None, TOXIC) and row["model_id"] == "lexical:alt-profanity-check"
    )
    assert row["body_text"] == TOXIC and row["review_state"] == "pending"
    # the optional flag-back reached "Discourse" with the flag type and the API user
    deadline = time.monotonic() + 10
    while not any(q["form"].get("id") == "601" for q in fake_discourse.requests) and time.monotonic() < deadline:
        time.sleep(0.1)
    sent = [q for q in fake_discourse.requests if q["form"].get("id") == "601"]
    assert len(sent) == 1
    assert sent[0]["form"]["post_action_type_id"] == "4" and sent[0]["api_key"] == DISCOURSE_API_KEY
    assert sent[0]["api_username"] == "pulse-bot"
    while "601" not in lexical_server.logs() and time.monotonic() < deadline:  # the log line follows the request
        time.sleep(0.1)
    assert "601" in lexical_server.logs() and TOXIC not in lexical_server.logs()


def test_replays_are_deduplicated_and_edits_update_the_item(lexical_server, fake_discourse) -> None:
    assert deliver(lexical_server, post(701, TOXIC), event_id="e701").json()["status"] == "queued"
    first = live_rows(lexical_server)["701"]
    replay = deliver(lexical_server, post(701, TOXIC + " again"), event_id="e701")
    assert replay.json() == {"status": "duplicate", "event_id": "e701"}
    assert live_rows(lexical_server)["701"] == first  # the replay changed nothing
    worse = TOXIC + " Damn you, asshole."
    edited = deliver(lexical_server, post(701, worse), event="post_edited", event_id="e702")
    assert edited.json()["status"] == "queued"
    row = live_rows(lexical_server)["701"]
    assert row["content_hash"] == content_hash("reply", None, worse) != first["content_hash"]
    assert list(live_rows(lexical_server)).count("701") == 1
    cleared = deliver(lexical_server, post(701, BENIGN), event="post_edited", event_id="e703")
    assert cleared.json()["status"] == "not_queued" and cleared.json()["flagged"] is False
    assert "701" not in live_rows(lexical_server)
    flagged_back = [q for q in fake_discourse.requests if q["form"].get("id") == "701"]
    assert len(flagged_back) == 2  # the first delivery and the worse edit; not the replay, not the benign edit


def test_benign_private_and_other_events_are_not_queued(lexical_server) -> None:
    assert deliver(lexical_server, post(801, BENIGN), event_id="e801").json()["status"] == "not_queued"
    pm = deliver(lexical_server, post(802, TOXIC, archetype="private_message"), event_id="e802").json()
    assert pm["status"] == "skipped"
    assert (
        deliver(lexical_server, post(803, TOXIC), event="post_destroyed", event_id="e803").json()["status"] == "ignored"
    )
    assert not {"801", "802", "803"} & set(live_rows(lexical_server))
    bad = deliver(lexical_server, {"post": {"id": 5}}, event_id="e804")
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"


# --- reconciliation with the pipeline's queue ---------------------------------------------------


@pytest.fixture(scope="module")
def demo_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo source through the real pipeline (lexical model), published."""
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    folder = tmp_path_factory.mktemp("api_pipeline")
    settings = load_settings(warehouse=folder / "warehouse.duckdb", serving=folder / "serving.duckdb", scorer="lexical")
    run_pipeline(settings, SourceSpec("demo"))
    return Path(settings.serving)


def test_pipeline_queue_supersedes_live_items_without_duplicates(demo_snapshot: Path, tmp_path: Path) -> None:
    import duckdb

    from warehouse.db import frame

    with duckdb.connect(str(demo_snapshot), read_only=True) as con:
        items = frame(con, "select * from marts.moderation_queue order by priority")
        content = frame(con, "select source, content_id, content_hash, model_id from moderation.flags")
        scored = frame(con, "select distinct content_hash, model_id from moderation.scores")
    assert items.height >= 2
    scorer = load_scorer("lexical")
    model = scorer.model_id

    def live(content_id: str, text: str, hash_: str | None = None) -> dict:
        item = post_item(post(0, text))
        item.update(content_id=content_id)
        if hash_ is not None:
            item["content_hash"] = hash_
        scores = scorer.score([text]).row(0, named=True)
        row = queue_row(item, scores, source="demo", model_id=model, is_fallback=False, thresholds=DEFAULT_THRESHOLDS,
                        hold_thresholds=DEFAULT_HOLD_THRESHOLDS, language="en", language_confidence=0.9,
                        supported_languages=frozenset({"en"}), min_confidence=0.7)  # fmt: skip
        assert row is not None
        return row

    queued = items.row(0, named=True)
    not_queued_hash = scored.join(content.select("content_hash"), on="content_hash", how="anti")["content_hash"][0]
    rows = [
        live(queued["content_id"], TOXIC),  # the pipeline queued this post: its row wins
        live("new-post-1", TOXIC),  # the pipeline has not seen it yet: shown
        live("seen-post", TOXIC, hash_=not_queued_hash),  # the pipeline scored this text and did not queue it
    ]
    assert set(rows[1]) == set(items.columns)  # the live row has exactly the mart's columns
    store = LiveQueue(ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}").engine)
    for i, row in enumerate(rows):
        assert store.record("https://forum.example", f"r{i}", "post_created", "demo", row["content_id"], row)
    merged = merge_live(items, store.rows("demo"), scored)
    assert merged.height == items.height + 1
    assert merged.filter(pl.col("content_id") == queued["content_id"]).height == 1
    kept = merged.filter(pl.col("content_id") == queued["content_id"]).row(0, named=True)
    assert kept["content_hash"] == queued["content_hash"]  # the snapshot's row, not the live one
    assert merged.filter(pl.col("content_id") == "seen-post").is_empty()
    new = merged.filter(pl.col("content_id") == "new-post-1").row(0, named=True)
    assert new["queue_reasons"] == ["model_flag"] and new["tags"] == []
    assert merged["priority"].to_list() == list(range(1, merged.height + 1))
    # ranked as the mart ranks: priority_score desc, older first on ties
    ranked = merged.sort(
        ["priority_score", "created_at", "source", "content_id"], descending=[True, False, False, False]
    )
    assert ranked["content_id"].to_list() == merged["content_id"].to_list()
    # the live row's score is the policy's rule on what is known at arrival: a lexical model's
    # signal halved, no reports, history or reach, age 0; and a lexical model never holds
    assert new["priority_score"] == pytest.approx(4 * new["priority_model"]) and 0 < new["priority_model"] <= 0.5
    assert new["hold"] is False
    pos = merged["content_id"].to_list().index("new-post-1")
    assert merged["priority_score"][pos - 1] >= new["priority_score"] if pos else True
    assert merged.schema == items.schema
    assert merge_live(items, [], scored).equals(items)


def test_review_queue_page_shows_the_live_item_at_once(demo_snapshot: Path, tmp_path: Path, monkeypatch) -> None:
    """The Review queue page (AppTest) lists a webhook-queued post next to the snapshot's items, in priority order."""
    import duckdb
    from streamlit.testing.v1 import AppTest

    from tests.dashboards.conftest import make_review_store
    from warehouse.db import frame

    with duckdb.connect(str(demo_snapshot), read_only=True) as con:
        items = frame(
            con,
            "select content_id, priority_score, created_at from marts.moderation_queue where source = 'demo' order by priority",
        )
    url = f"sqlite:///{tmp_path / 'review.sqlite'}"
    store = make_review_store(url)
    scorer = load_scorer("lexical")
    item = post_item(post(0, TOXIC))
    item.update(content_id="live-1")
    row = queue_row(item, scorer.score([TOXIC]).row(0, named=True), source="demo", model_id=scorer.model_id,
                    is_fallback=False, thresholds=DEFAULT_THRESHOLDS, hold_thresholds=DEFAULT_HOLD_THRESHOLDS,
                    language="en", language_confidence=0.9, supported_languages=frozenset({"en"}), min_confidence=0.7)  # fmt: skip
    assert LiveQueue(store.engine).record("i", "page-1", "post_created", "demo", "live-1", row)
    monkeypatch.setenv("PULSE_SERVING", str(demo_snapshot))
    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", url)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[3] / "dashboards" / "app.py"), default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "mod"
    at.run()
    at.switch_page("views/review_queue.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    live = pl.DataFrame(
        {"content_id": ["live-1"], "priority_score": [row["priority_score"]], "created_at": [row["created_at"]]}
    )
    expected = pl.concat([items, live], how="vertical_relaxed").sort(
        ["priority_score", "created_at", "content_id"], descending=[True, False, False]
    )
    assert table["content_id"].tolist() == expected["content_id"].to_list()
    assert table["priority"].tolist() == list(range(1, items.height + 2))
    store.dispose()
