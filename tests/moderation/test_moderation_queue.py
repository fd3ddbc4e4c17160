"""The moderation queue on real data: the beer.stackexchange dump through the real pipeline
with the lexical scorer, then a second round with synthetic community reports, German and
Spanish comments, a deleted and a hidden item, and moderators' decisions made in the review
store — checked against expectations computed here with polars from the inputs (not the SQL).
Also: the ingest step is idempotent and propagates privacy erasures."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from moderation.policy import priority_terms, queue_severity
from moderation.review_store import ReviewStore
from pulse import steps
from pulse.settings import load_settings
from pulse.steps import SourceSpec, run_pipeline
from transforms.runner import run_marts
from warehouse.db import connect, frame

SOURCE = "stackexchange:beer"
PASSWORD = "correct horse battery staple"
GERMAN = "Ich finde dieses Bier wirklich sehr lecker, besonders im Sommer mit guten Freunden im Garten."
SPANISH = "Esta cerveza me parece muy buena, sobre todo en verano con los amigos en la terraza."
SHORT = "Prost, Freunde!"  # 13 letters: undetermined, never routed


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def world(beer_dump: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("queue")
    settings = load_settings(
        warehouse=tmp / "w.duckdb",
        serving=tmp / "s.duckdb",
        scorer="lexical",
        review_store_url=f"sqlite:///{tmp / 'review.sqlite'}",
    )
    first = run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    assert first.steps["ingest_decisions"]["in_store"] == 0  # the store does not exist yet
    assert not (tmp / "review.sqlite").exists()  # and the ingest did not create it

    store = ReviewStore(f"sqlite:///{tmp / 'review.sqlite'}", bcrypt_rounds=4)
    store.create_schema()
    store.add_user("alice", name="Alice", email="alice@example.org", role="moderator", password=PASSWORD)

    con = connect(settings.warehouse)
    hashes = dict(
        con.execute(
            "select content_id, content_hash from staging.content where content_id in ('p1', 'p2', 'p4818')"
        ).fetchall()
    )
    # --- decisions, made against the texts the first run saw
    store.decide(
        source=SOURCE,
        content_id="p1",
        action="approve",
        actor="alice",
        expected_version=0,
        content_hash=hashes["p1"],
        reason_code="false_positive",
    )
    store.decide(
        source=SOURCE,
        content_id="p2",
        action="approve",
        actor="alice",
        expected_version=0,
        content_hash=hashes["p2"],
        reason_code="false_positive",
    )
    store.decide(
        source=SOURCE,
        content_id="p4818",
        action="remove",
        actor="alice",
        expected_version=0,
        content_hash=hashes["p4818"],
        reason_code="other",
        note="profanity",
        model_id="lexical:alt-profanity-check",
    )
    store.decide(
        source=SOURCE,
        content_id="g1",
        action="remove",
        actor="alice",
        expected_version=0,
        content_hash=_sha(GERMAN),
        reason_code="off_topic",
        note="posted twice",
    )

    # --- a second load: new comments by author 4742 (who wrote the flagged p4818 and p4856),
    # an edit, a deletion, a hidden item and community reports
    new = pl.DataFrame(  # noqa: F841 - read by DuckDB below
        {
            "source": SOURCE,
            "content_id": ["g1", "s1", "k1"],
            "kind": "comment",
            "thread_id": "p4854",
            "parent_id": "p4854",
            "author_id": "4742",
            "created_at": [datetime(2016, 3, 1, 10), datetime(2016, 3, 2, 10), datetime(2016, 3, 3, 10)],
            "body_text": [GERMAN, SPANISH, SHORT],
            "content_hash": [_sha(GERMAN), _sha(SPANISH), _sha(SHORT)],
            "score": 0,
        }
    )
    con.execute("insert into staging.content by name select * from new")
    con.execute(
        "update staging.content set body_text = body_text || ' (edited)', content_hash = 'edited-p1' "
        "where content_id = 'p1'"
    )
    con.execute("update staging.content set deleted_at = timestamp '2016-07-01' where content_id = 'c3423'")
    con.execute("update staging.content set hidden = true where content_id = 'p943'")
    report = lambda i, cid, user, props: (  # noqa: E731
        SOURCE,
        f"r{i}",
        "report",
        cid,
        user,
        datetime(2016, 6, 1, 12, i),
        "exact",
        props,
    )
    reports = [
        report(1, "p1", "u100", json.dumps({"flag_type": "spam"})),
        report(2, "p1", "u101", json.dumps({"flag_type": "spam", "message": "ad"})),
        report(3, "p1", "u102", json.dumps({"flag_type": "inappropriate"})),
        report(4, "p1", "u102", json.dumps({"flag_type": "inappropriate"})),  # the same member twice
        report(5, "p2", None, "not json {"),
        report(6, "p3302", "u103", json.dumps({"flag_type": "off_topic"})),
        report(7, "p943", "u104", json.dumps({"flag_type": "spam"})),  # hidden on the platform
        report(8, "c3423", "u105", json.dumps({"flag_type": "spam"})),  # deleted on the platform
    ]
    con.executemany(
        "insert into staging.engagement_events (source, event_id, event_type, content_id, user_id, "
        "occurred_at, time_precision, properties) values (?, ?, ?, ?, ?, ?, ?, ?)",
        reports,
    )
    con.close()

    info = {
        "ingest": steps.ingest_decisions(settings, "test__second"),
        "score": steps.score(settings, "test__second"),
        "transform": steps.transform(settings, "test__second"),
    }
    yield settings, store, info
    store.dispose()


def _queue(settings) -> pl.DataFrame:
    con = connect(settings.warehouse, read_only=True)
    try:
        return frame(con, "select * from marts.moderation_queue order by priority")
    finally:
        con.close()


def _inputs(settings) -> dict[str, pl.DataFrame]:
    con = connect(settings.warehouse, read_only=True)
    try:
        return {
            "content": frame(
                con,
                "select source, content_id, parent_id, author_id, created_at, content_hash, deleted_at, hidden "
                "from staging.content",
            ),
            "flags": frame(con, "select source, content_id, severity from moderation.flags"),
            "events": frame(
                con,
                "select source, content_id, user_id, properties from staging.engagement_events "
                "where event_type = 'report'",
            ),
            "interactions": frame(
                con,
                "select source, content_id, count(*) as n from staging.engagement_events "
                "where event_type <> 'report' group by all",
            ),
            "languages": frame(con, "select content_hash, language, confidence from moderation.languages"),
            "decisions": frame(con, "select * from moderation.decisions"),
        }
    finally:
        con.close()


def _expected(inputs: dict[str, pl.DataFrame], window_days: int, min_confidence: float) -> pl.DataFrame:
    """The queue computed with polars from the inputs, by the rules in transforms/README.md."""
    content = inputs["content"]
    live = content.filter(pl.col("deleted_at").is_null() & ~pl.col("hidden").fill_null(False))
    reports = (
        inputs["events"]
        .group_by("source", "content_id")
        .agg(report_count=pl.len(), reporter_count=pl.col("user_id").drop_nulls().n_unique())
    )
    routed = (
        live.join(inputs["languages"], on="content_hash")
        .filter((pl.col("language") != "und") & (pl.col("language") != "en") & (pl.col("confidence") >= min_confidence))
        .select("source", "content_id")
    )
    keys = pl.concat(
        [inputs["flags"].select("source", "content_id"), reports.select("source", "content_id"), routed]
    ).unique()
    q = (
        live.join(keys, on=["source", "content_id"])
        .join(inputs["flags"], on=["source", "content_id"], how="left")
        .join(reports, on=["source", "content_id"], how="left")
        .join(routed.with_columns(routed=pl.lit(True)), on=["source", "content_id"], how="left")
    )
    report_sev = pl.when(pl.col("report_count") > 0).then(
        pl.min_horizontal(1.0 + 0.25 * (pl.max_horizontal(pl.col("reporter_count"), 1) - 1), 2.0)
    )
    lang_sev = pl.when(pl.col("routed")).then(1.0)
    q = q.with_columns(expected_severity=pl.max_horizontal(pl.col("severity"), report_sev, lang_sev))

    # repeat offenders: the author's other items created in the window before the item
    latest = (
        inputs["decisions"]
        .sort(["decided_at", "item_version"], descending=True)
        .unique(["source", "content_id"], keep="first")
    )
    removed = set(latest.filter(pl.col("to_state") == "removed")["content_id"])
    flagged = set(inputs["flags"]["content_id"]) | set(reports["content_id"])
    by_author: dict[str, list[tuple[str, datetime]]] = {}
    for cid, author, at in content.select("content_id", "author_id", "created_at").iter_rows():
        if author is not None:
            by_author.setdefault(author, []).append((cid, at))
    prior_flags, prior_removals = [], []
    for cid, author, at in q.select("content_id", "author_id", "created_at").iter_rows():
        others = [o for o, t in by_author.get(author, []) if o != cid and at - timedelta(days=window_days) <= t < at]
        prior_flags.append(sum(o in flagged for o in others))
        prior_removals.append(sum(o in removed for o in others))
    q = q.with_columns(expected_prior_flags=pl.Series(prior_flags), expected_prior_removals=pl.Series(prior_removals))
    # priority (moderation/policy.py): reach = events on the item (no reports) + direct replies among
    # live items; age as of the source's newest live item; the lexical model never holds
    events = {(s, c): n for s, c, n in inputs["interactions"].iter_rows()}
    replies: dict[tuple[str, str], int] = {}
    for src, parent in live.select("source", "parent_id").iter_rows():
        if parent is not None:
            replies[(src, parent)] = replies.get((src, parent), 0) + 1
    newest = dict(live.group_by("source").agg(pl.col("created_at").max()).iter_rows())
    scores = []
    for row in q.iter_rows(named=True):
        key = (row["source"], row["content_id"])
        terms = priority_terms(
            model_severity=row["severity"], lexical=True, language_routed=bool(row["routed"]),
            report_count=row["report_count"] or 0, reporter_count=row["reporter_count"] or 0,
            prior_flags=row["expected_prior_flags"], prior_removals=row["expected_prior_removals"],
            reach=events.get(key, 0) + replies.get(key, 0),
            age_hours=(newest[row["source"]] - row["created_at"]).total_seconds() / 3600,
        )  # fmt: skip
        scores.append(terms["score"])
    q = q.with_columns(expected_score=pl.Series(scores))
    q = q.sort(["expected_score", "created_at", "source", "content_id"], descending=[True, False, False, False])
    return q.with_row_index("expected_priority", offset=1)


def _row(queue: pl.DataFrame, content_id: str) -> dict:
    rows = queue.filter(pl.col("content_id") == content_id)
    assert rows.height == 1, f"{content_id} should be queued once"
    return rows.row(0, named=True)


def test_queue_rows_reasons_and_priorities_match_independent_computation(world) -> None:
    settings, _, info = world
    queue = _queue(settings)
    expected = _expected(_inputs(settings), settings.repeat_offender_window_days, settings.language_min_confidence)
    assert sorted(queue["content_id"]) == sorted(expected["content_id"])
    got = queue.select("content_id", "priority", "severity", "author_prior_flags", "author_prior_removals")
    want = expected.select(
        "content_id",
        pl.col("expected_priority").cast(pl.Int64).alias("priority"),
        pl.col("expected_severity").alias("severity"),
        pl.col("expected_prior_flags").alias("author_prior_flags"),
        pl.col("expected_prior_removals").alias("author_prior_removals"),
    ).sort("priority")
    assert got.rows() == want.rows()
    assert queue["priority_score"].to_list() == pytest.approx(expected["expected_score"].to_list())
    con = connect(settings.warehouse, read_only=True)
    try:
        (held,) = con.execute("select count(*) from moderation.flags where hold").fetchone()
    finally:
        con.close()
    assert held >= 1 and not queue["hold"].any(), "the policy's hold level was reached, but a lexical model never holds"
    assert len(set(queue["priority_score"].round(6))) == queue.height, "the scores tell the items apart"
    # the SQL applies the rule of moderation.policy.queue_severity
    model = dict(_inputs(settings)["flags"].select("content_id", "severity").iter_rows())
    for row in queue.iter_rows(named=True):
        assert row["severity"] == pytest.approx(
            queue_severity(
                model.get(row["content_id"]),
                row["report_count"],
                row["reporter_count"],
                "language_not_supported" in row["queue_reasons"],
            )
        )
    # the lexical model flags 4 of the dump's texts; the second round scored the 4 new texts
    assert info["score"]["scored"] == 4 and info["score"]["languages_detected"] == 4
    # 3 model flags (p3302, p4818, p4856; c3423 is deleted) + 2 reported (p1, p2; p943 is hidden)
    # + 4 routed for language: g1 (de), s1 (es) and two real ones (c3674 quotes German, p3361 Turkish names)
    assert queue.height == 9
    assert set(queue.filter(pl.col("queue_reasons").list.contains("language_not_supported"))["content_id"]) == {
        "g1",
        "s1",
        "c3674",
        "p3361",
    }


def test_replies_and_comments_carry_their_threads_tags(world) -> None:
    settings = world[0]
    queue = _queue(settings)
    con = connect(settings.warehouse, read_only=True)
    try:
        tags = {cid: (t or []) for cid, t in con.execute("select content_id, tags from staging.content").fetchall()}
        threads = dict(con.execute("select content_id, thread_id from staging.content").fetchall())
    finally:
        con.close()
    inherited = 0
    for row in queue.iter_rows(named=True):
        own = tags[row["content_id"]]
        want = own or tags.get(threads[row["content_id"]], [])
        assert (row["tags"] or []) == want, row["content_id"]
        inherited += not own and bool(want)
    assert inherited >= 1  # at least one queued answer/comment shows its question's tags


def test_community_reports(world) -> None:
    queue = _queue(world[0])
    p1 = _row(queue, "p1")
    assert p1["queue_reasons"] == ["community_report"]
    assert (p1["report_count"], p1["reporter_count"], p1["report_types"]) == (4, 3, ["inappropriate", "spam"])
    assert p1["severity"] == pytest.approx(1.5)  # 1 + 0.25 * (3 - 1)
    assert p1["first_reported_at"] == datetime(2016, 6, 1, 12, 1)
    p2 = _row(queue, "p2")
    assert (p2["report_count"], p2["reporter_count"], p2["report_types"], p2["severity"]) == (
        1,
        0,
        ["unspecified"],
        1.0,
    )
    both = _row(queue, "p3302")
    assert both["queue_reasons"] == ["model_flag", "community_report"]
    assert both["severity"] == pytest.approx(0.9365016777518053 / 0.8)  # the model's, above the report's 1.0
    assert both["report_types"] == ["off_topic"]
    # deleted (c3423, also model-flagged) and hidden (p943) items are not queued
    assert set(queue["content_id"]).isdisjoint({"c3423", "p943"})


def test_language_routing(world) -> None:
    queue = _queue(world[0])
    g1, s1 = _row(queue, "g1"), _row(queue, "s1")
    assert (g1["queue_reasons"], g1["language"], g1["language_supported"], g1["severity"]) == (
        ["language_not_supported"],
        "de",
        False,
        1.0,
    )
    assert (s1["queue_reasons"], s1["language"], s1["language_supported"]) == (["language_not_supported"], "es", False)
    assert g1["language_confidence"] >= 0.9 and s1["language_confidence"] >= 0.9
    assert "k1" not in set(queue["content_id"])  # too short to tell: 'und', not routed
    # thread context: the parent question's title and body
    assert g1["parent_title"] and g1["parent_body"]
    # flagged English items say the model reads them
    assert _row(queue, "p4856")["language_supported"] is True


def test_review_state_and_repeat_offenders(world) -> None:
    queue = _queue(world[0])
    p4818, p4856 = _row(queue, "p4818"), _row(queue, "p4856")
    assert (p4818["review_state"], p4818["review_version"], p4818["last_actor"]) == ("removed", 1, "alice")
    assert p4856["review_state"] == "pending" and p4856["review_version"] == 0
    assert _row(queue, "p2")["review_state"] == "approved"
    assert _row(queue, "p1")["review_state"] == "pending"  # approved, then edited: a new round
    # author 4742: p4818 (flagged, removed, 2016-02-09), p4856 (flagged, 02-23), g1 (removed, 03-01), s1 (03-02)
    assert (p4856["author_prior_flags"], p4856["author_prior_removals"]) == (1, 1)
    s1 = _row(queue, "s1")
    assert (s1["author_prior_flags"], s1["author_prior_removals"]) == (2, 2)
    assert (p4818["author_prior_flags"], p4818["author_prior_removals"]) == (0, 0)


def test_repeat_offender_window_is_a_parameter(world) -> None:
    from warehouse.privacy_keys import install, load_ring

    settings = world[0]
    con = connect(settings.warehouse)
    install(con, load_ring())  # the marts' pseudonyms need the session's key, as open_warehouse installs it
    try:
        run_marts(con, repeat_offender_window_days=10)
        narrow = frame(con, "select content_id, author_prior_flags, author_prior_removals from marts.moderation_queue")
        run_marts(con, repeat_offender_window_days=settings.repeat_offender_window_days)
    finally:
        con.close()
    got = {r[0]: r[1:] for r in narrow.iter_rows()}
    assert got["p4856"] == (0, 0)  # p4818 is 14 days earlier
    assert got["s1"] == (1, 1)  # g1's removal (the day before) counts; p4856 (8 days) is flagged
    with pytest.raises(ValueError, match="repeat_offender_window_days must be >= 1"):
        run_marts(connect(":memory:"), repeat_offender_window_days=0)


def test_ingest_is_idempotent_and_propagates_erasure(world) -> None:
    settings, store, info = world
    assert (info["ingest"]["in_store"], info["ingest"]["inserted"], info["ingest"]["updated"]) == (4, 4, 0)
    again = steps.ingest_decisions(settings, "test__third")
    assert (again["inserted"], again["updated"]) == (0, 0)

    def copied() -> pl.DataFrame:
        con = connect(settings.warehouse, read_only=True)
        try:
            return frame(con, "select * from moderation.decisions order by decided_at, decision_id")
        finally:
            con.close()

    before = copied()
    assert before.height == 4 and set(before["ingested_run_id"]) == {"test__second"}
    log = store.decisions().sort("decided_at", "decision_id")
    assert before.select(log.columns).rows() == log.rows()

    assert store.erase_content(SOURCE, ["g1"]) == 1
    erased = steps.ingest_decisions(settings, "test__fourth")
    assert (erased["inserted"], erased["updated"]) == (0, 1)
    after = copied()
    g1 = after.filter(pl.col("content_id") == "g1").row(0, named=True)
    assert g1["note"] is None and g1["ingested_run_id"] == "test__fourth" and g1["reason_code"] == "off_topic"
    assert after.filter(pl.col("content_id") == "p4818")["note"].to_list() == ["profanity"]
