"""Tests for warehouse.quality: the suites (suites.py), the GE runner, the gate and persistence (runner.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from transforms.runner import MART_GRAINS, MART_NAMES
from warehouse import db
from warehouse.canonical import SCHEMAS, conform
from warehouse.quality import (
    MARTS_SUITE,
    NOW,
    STAGING_SUITE,
    SUITES,
    Check,
    QualityGateError,
    SuiteResult,
    grain_checks,
    marts_suite,
    persist,
    validate,
    with_reference_flag,
)

#: The marts suite as the pipeline runs it: column checks plus one grain check per mart.
MARTS = marts_suite(MART_GRAINS)

NOW_TS = datetime(2024, 6, 1, 12, 0, 0)
Frames = dict[str, pl.DataFrame]


def staging_frames(n: int = 50) -> Frames:
    """A valid canonical batch: n users, n content items, 2n engagement events."""
    idx = pl.int_range(0, n, eager=True)
    start = pl.lit(datetime(2024, 1, 1))
    users = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        pl.format("u{}", "i").alias("user_id"),
        pl.format("User {}", "i").alias("display_name"),
        (start + pl.duration(minutes="i")).alias("created_at"),
        pl.col("i").cast(pl.Int64).alias("reputation"),
    )
    kinds = ["question", "answer", "comment", "post", "reply"]
    content = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        pl.format("c{}", "i").alias("content_id"),
        pl.col("i").mod(5).replace_strict(list(range(5)), kinds, return_dtype=pl.String).alias("kind"),
        pl.format("c{}", "i").alias("thread_id"),
        pl.lit(None, pl.String).alias("parent_id"),
        pl.format("u{}", "i").alias("author_id"),
        (start + pl.duration(minutes="i")).alias("created_at"),
        pl.lit(None, pl.Datetime("us")).alias("edited_at"),
        pl.format("Title {}", "i").alias("title"),
        pl.format("Body of item {}", "i").alias("body_text"),
        pl.lit(["beer"], pl.List(pl.String)).alias("tags"),
        pl.col("i").cast(pl.Int64).alias("score"),
        pl.col("i").cast(pl.Int64).alias("view_count"),
        pl.format("h{}", "i").alias("content_hash"),
    )
    eidx = pl.int_range(0, 2 * n, eager=True)
    events = pl.DataFrame({"i": eidx}).select(
        pl.lit("demo").alias("source"),
        pl.format("e{}", "i").alias("event_id"),
        pl.lit("upvote").alias("event_type"),
        pl.format("c{}", pl.col("i").mod(n)).alias("content_id"),
        pl.lit(None, pl.String).alias("user_id"),
        (start + pl.duration(minutes="i")).alias("occurred_at"),
        pl.when(pl.col("i").mod(2) == 0).then(pl.lit("day")).otherwise(pl.lit("exact")).alias("time_precision"),
    )
    events = with_reference_flag(events, content)
    return {
        "staging.users": users.cast(SCHEMAS["users"]),  # type: ignore[arg-type]
        "staging.content": conform(content, "content"),  # type: ignore[arg-type]
        "staging.engagement_events": events,
    }


def marts_frames(n: int = 20) -> Frames:
    """Valid marts and moderation outputs with n rows each (heatmap: 7 x 24 cells)."""
    cells = pl.DataFrame({"weekday": list(range(1, 8))}).join(pl.DataFrame({"hour": list(range(24))}), how="cross")
    heatmap = cells.select(
        pl.lit("demo").alias("source"),
        pl.lit("all").alias("activity_type"),
        pl.col("weekday").cast(pl.Int32),
        pl.col("weekday")
        .replace_strict(list(range(1, 8)), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
        .alias("weekday_name"),
        pl.col("hour").cast(pl.Int32),
        pl.lit("UTC").alias("timezone"),
        (pl.col("hour") * pl.col("weekday")).cast(pl.Int64).alias("events"),
        pl.lit(4).cast(pl.Int64).alias("weeks_observed"),
        (pl.col("hour") * pl.col("weekday") / 4).alias("mean_per_week"),
    )
    idx = pl.int_range(0, n, eager=True)
    counts = [
        "active_users", "new_users", "new_content", "questions", "answers", "comments", "posts",
        "replies", "upvotes", "downvotes", "favorites", "accepts", "votes", "events",
    ]  # fmt: skip
    daily = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        (pl.lit(datetime(2024, 1, 1)).dt.date() + pl.duration(days="i")).alias("day"),
        *[pl.col("i").cast(pl.Int64).alias(c) for c in counts],
        pl.col("i").cast(pl.Int64).alias("dau"),
        (pl.col("i") + 1).cast(pl.Int64).alias("wau"),
        (pl.col("i") + 2).cast(pl.Int64).alias("mau"),
        (pl.col("i") / (pl.col("i") + 2)).alias("stickiness"),
        pl.when(pl.col("i") > 0).then(1 / pl.col("i")).otherwise(None).alias("response_rate"),
    )
    trending = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        pl.lit("week").alias("period"),
        pl.lit(datetime(2024, 5, 27)).dt.date().alias("period_start"),
        ((pl.col("i") + 1) / 2).alias("growth"),
        pl.lit(datetime(2024, 5, 27)).dt.date().alias("week_start"),
        pl.format("topic{}", "i").alias("topic"),
        (pl.col("i") + 1).cast(pl.Int64).alias("volume"),
        pl.lit(1.0).alias("baseline_mean"),
        pl.lit(0.5).alias("baseline_std"),
        (pl.col("i") / 2).alias("z_score"),
        (pl.col("i") > 10).alias("is_emerging"),
        (pl.col("i") > 5).alias("is_trending"),
        (pl.col("i") + 1).cast(pl.Int64).alias("rank"),
        pl.lit(["c1", "c2"], pl.List(pl.String)).alias("example_content_ids"),
    )
    labels = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit"]
    scores = pl.DataFrame({"i": idx}).select(
        pl.format("h{}", "i").alias("content_hash"),
        pl.lit("original").alias("model_id"),
        *[(pl.col("i") / n).alias(label) for label in labels],
    )
    # The lexical backend scores only toxicity: the other labels are null, which is allowed.
    scores = scores.with_columns(
        pl.when(pl.col("content_hash") == "h0").then(None).otherwise(pl.col("threat")).alias("threat")
    )
    queue = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        pl.format("c{}", "i").alias("content_id"),
        (pl.col("i") / n).alias("max_score"),
        (pl.col("i") / n * 3).alias("severity"),
    )
    slots = cells.select(
        pl.lit("demo").alias("source"), pl.col("weekday").cast(pl.Int32), pl.col("hour").cast(pl.Int32)
    )
    timeline = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        pl.lit("post").alias("activity_type"),
        (pl.lit(datetime(2024, 1, 1)) + pl.duration(minutes=pl.col("i") * 15)).alias("bucket_start"),
        (pl.col("i") + 1).cast(pl.Int64).alias("events"),
    )
    times = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        pl.format("c{}", "i").alias("content_id"),
        pl.when(pl.col("i") % 3 > 0).then(pl.col("i") / 2).otherwise(None).alias("hours_to_first_answer"),
        pl.when(pl.col("i") % 3 > 0).then(pl.col("i") / 4).otherwise(None).alias("hours_to_first_response"),
    )
    by_slot = slots.with_columns((pl.col("hour") / 23).alias("never_answered_share"))
    best = slots.with_columns(
        (pl.col("hour") / 23).alias("response_share"),
        (pl.col("hour") / 46).alias("response_share_wilson_low"),
        pl.when(pl.col("hour") > 3).then(pl.col("hour") / 10).otherwise(None).alias("engagement_ci_low"),
    )
    hot = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        pl.format("c{}", "i").alias("content_id"),
        (1 / (pl.col("i") + 2) ** 1.8).alias("hot_score"),
    )
    topics = pl.DataFrame({"i": idx}).select(
        pl.lit("demo").alias("source"),
        pl.format("c{}", pl.col("i") // 2).alias("root_id"),
        pl.format("topic{}", pl.col("i") % 2).alias("topic"),
        pl.lit("tag").alias("topic_origin"),
    )
    return {
        "marts.thread_topics": topics,
        "marts.activity_heatmap": heatmap,
        "marts.engagement_daily": daily,
        "marts.trending_topics": trending,
        "moderation.scores": scores,
        "marts.moderation_queue": queue,
        "marts.activity_timeline": timeline,
        "marts.response_times": times,
        "marts.response_times_by_slot": by_slot,
        "marts.best_time_to_post": best,
        "marts.hot_content": hot,
    }


def run(frames: Frames, checks=STAGING_SUITE, suite: str = "staging", run_id: str = "run-1") -> SuiteResult:
    return validate(frames, checks, suite=suite, run_id=run_id, now=NOW_TS)


def failures(result: SuiteResult) -> dict[tuple[str, str, str], int | None]:
    return {(r.table, r.expectation, r.column): r.unexpected_count for r in result.failed}


def set_row(frames: Frames, table: str, row: int, column: str, value: object) -> None:
    df = frames[table]
    frames[table] = df.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value, dtype=df.schema[column]))
        .otherwise(pl.col(column))
        .alias(column)
    )


@pytest.fixture
def warehouse():
    con = db.connect(":memory:")
    db.migrate(con)
    yield con
    con.close()


# -- suites as data ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suite_keys_are_unique_and_name_real_expectations(name: str) -> None:
    import great_expectations as gx

    checks = SUITES[name]
    keys = [c.key for c in checks]
    assert len(keys) == len(set(keys))
    assert all(hasattr(gx.expectations, c.expectation) for c in checks)
    assert all(c.description for c in checks)
    assert not any("mostly" in c.kwargs for c in checks)


def test_score_labels_are_checked_for_every_row() -> None:
    label_checks = [c for c in MARTS_SUITE if c.table == "moderation.scores"]
    assert {c.column for c in label_checks} == {
        "toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit",
    }  # fmt: skip
    assert all(c.kwargs == {"column": c.column, "min_value": 0, "max_value": 1} and c.critical for c in label_checks)


# -- validation -------------------------------------------------------------------------------


def test_valid_staging_batch_passes_every_expectation() -> None:
    result = run(staging_frames())
    assert len(result.results) == 23
    assert [r.success for r in result.results] == [True] * 23, result.failed
    assert result.success and not result.failed and not result.critical_failures
    assert len(result.passed) == 23
    by_key = {(r.table, r.column): r for r in result.results}
    assert by_key[("staging.engagement_events", "event_id")].element_count == 100
    assert by_key[("staging.content", "content_id")].unexpected_count == 0
    result.raise_for_critical()  # does not raise


def test_valid_marts_pass_every_expectation() -> None:
    result = run(marts_frames(), MARTS, suite="marts")
    assert len(result.results) == len(MARTS_SUITE) + 10 == 60
    assert result.success, [r.summary() for r in result.failed]
    assert {r.table for r in result.results} == {"marts.thread_topics"} | {
        "marts.activity_heatmap", "marts.engagement_daily", "marts.trending_topics",
        "moderation.scores", "marts.moderation_queue", "marts.activity_timeline", "marts.response_times",
        "marts.response_times_by_slot", "marts.best_time_to_post", "marts.hot_content",
    }  # fmt: skip


def _null_id(f: Frames) -> None:
    set_row(f, "staging.content", 3, "content_id", None)


def _duplicate_id(f: Frames) -> None:
    set_row(f, "staging.users", 7, "user_id", "u8")


def _future_timestamps(f: Frames) -> None:
    for row in (1, 2, 40):
        set_row(f, "staging.content", row, "created_at", NOW_TS + timedelta(seconds=1))


def _missing_content(f: Frames) -> None:
    events = f["staging.engagement_events"].with_columns(
        pl.when(pl.col("event_id").is_in(["e5", "e6"]))
        .then(pl.lit("c-gone"))
        .otherwise("content_id")
        .alias("content_id")
    )
    f["staging.engagement_events"] = with_reference_flag(events.drop("content_exists"), f["staging.content"])


def _bad_kind_and_precision(f: Frames) -> None:
    set_row(f, "staging.content", 0, "kind", "tweet")
    set_row(f, "staging.engagement_events", 0, "time_precision", "hour")
    set_row(f, "staging.engagement_events", 1, "time_precision", None)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_null_id, {("staging.content", "ExpectColumnValuesToNotBeNull", "content_id"): 1}),
        (_duplicate_id, {("staging.users", "ExpectCompoundColumnsToBeUnique", "source,user_id"): 2}),
        (_future_timestamps, {("staging.content", "ExpectColumnValuesToBeBetween", "created_at"): 3}),
        (_missing_content, {("staging.engagement_events", "ExpectColumnValuesToBeInSet", "content_exists"): 2}),
        (
            _bad_kind_and_precision,
            {
                ("staging.content", "ExpectColumnValuesToBeInSet", "kind"): 1,
                ("staging.engagement_events", "ExpectColumnValuesToBeInSet", "time_precision"): 1,
                ("staging.engagement_events", "ExpectColumnValuesToNotBeNull", "time_precision"): 1,
            },
        ),
    ],
    ids=["null-id", "duplicate-id", "future-timestamp", "missing-content", "bad-kind-and-precision"],
)
def test_each_defect_fails_exactly_its_expectation(
    mutate: Callable[[Frames], None], expected: dict[tuple[str, str, str], int]
) -> None:
    frames = staging_frames()
    mutate(frames)
    result = run(frames)
    assert len(result.results) == 23
    assert failures(result) == expected
    assert len(result.critical_failures) == len(expected)


def test_score_above_one_fails_the_label_range_check() -> None:
    frames = marts_frames()
    set_row(frames, "moderation.scores", 4, "insult", 1.5)
    set_row(frames, "moderation.scores", 5, "threat", -0.01)
    result = run(frames, MARTS, suite="marts")
    assert failures(result) == {
        ("moderation.scores", "ExpectColumnValuesToBeBetween", "insult"): 1,
        ("moderation.scores", "ExpectColumnValuesToBeBetween", "threat"): 1,
    }


def test_mart_defects_fail_their_checks() -> None:
    frames = marts_frames()
    set_row(frames, "marts.activity_heatmap", 0, "hour", 24)
    set_row(frames, "marts.activity_heatmap", 1, "weekday", 0)
    set_row(frames, "marts.engagement_daily", 1, "day", datetime(2024, 1, 1).date())
    set_row(frames, "marts.engagement_daily", 2, "downvotes", -1)
    set_row(frames, "marts.trending_topics", 0, "volume", 0)
    set_row(frames, "marts.trending_topics", 1, "z_score", None)
    set_row(frames, "marts.moderation_queue", 3, "content_id", None)
    set_row(frames, "marts.moderation_queue", 4, "severity", -0.5)
    set_row(frames, "marts.thread_topics", 3, "topic", "topic0")  # c1 carries topic0 twice
    result = run(frames, MARTS, suite="marts")
    assert failures(result) == {
        ("marts.activity_heatmap", "ExpectColumnValuesToBeBetween", "hour"): 1,
        ("marts.activity_heatmap", "ExpectColumnValuesToBeBetween", "weekday"): 1,
        ("marts.engagement_daily", "ExpectCompoundColumnsToBeUnique", "source,day"): 2,
        ("marts.engagement_daily", "ExpectColumnValuesToBeBetween", "downvotes"): 1,
        ("marts.trending_topics", "ExpectColumnValuesToBeBetween", "volume"): 1,
        ("marts.trending_topics", "ExpectColumnValuesToNotBeNull", "z_score"): 1,
        ("marts.moderation_queue", "ExpectColumnValuesToNotBeNull", "content_id"): 1,
        ("marts.moderation_queue", "ExpectColumnValuesToBeBetween", "severity"): 1,
        ("marts.thread_topics", "ExpectCompoundColumnsToBeUnique", "source,root_id,topic"): 2,
    }


def test_every_mart_gets_one_grain_check_from_its_declared_grain() -> None:
    grains = [c for c in MARTS if c.expectation == "ExpectCompoundColumnsToBeUnique"]
    assert [c.table for c in grains] == [f"marts.{name}" for name in MART_NAMES]
    by_table = {c.table: c.column for c in grains}
    assert by_table["marts.engagement_daily"] == "source,day"
    assert by_table["marts.trending_topics"] == "source,period,period_start,topic"
    assert by_table["marts.activity_timeline"] == "source,activity_type,bucket_start"
    assert all(c.critical for c in grains)
    assert not any(c.expectation == "ExpectCompoundColumnsToBeUnique" for c in MARTS_SUITE)
    assert len({c.key for c in MARTS}) == len(MARTS)
    (check,) = grain_checks({"x": ("source", "day")})
    assert (check.table, check.column, check.description) == (
        "marts.x",
        "source,day",
        "the grain: one row per source x day",
    )
    with pytest.raises(ValueError, match=r"marts without a grain: \['y'\]"):
        grain_checks({"x": ("source",), "y": ()})


def test_non_critical_failure_does_not_trip_the_gate() -> None:
    frames = staging_frames()
    set_row(frames, "staging.users", 0, "created_at", None)
    result = run(frames)
    assert failures(result) == {("staging.users", "ExpectColumnValuesToNotBeNull", "created_at"): 1}
    assert result.critical_failures == []
    result.raise_for_critical()


def test_empty_tables_pass_and_absent_tables_fail_critically() -> None:
    frames = {
        "staging.users": pl.DataFrame(schema=SCHEMAS["users"]),
        "staging.content": pl.DataFrame(schema=SCHEMAS["content"]),
    }
    result = run(frames)
    assert len(result.results) == 23
    for r in result.results:
        if r.table == "staging.engagement_events":
            assert (r.success, r.critical, r.unexpected_count, r.element_count) == (False, True, None, None)
            assert r.error == "table absent from frames"
        else:
            assert r.success and r.element_count == 0, r
    with pytest.raises(QualityGateError) as err:
        result.raise_for_critical()
    assert str(err.value) == "critical: table staging.engagement_events absent from frames: 10 checks not run"


def test_missing_column_fails_with_the_error_in_details() -> None:
    frames = staging_frames(5)
    frames["staging.engagement_events"] = frames["staging.engagement_events"].drop("content_exists")
    result = run(frames)
    [failed] = result.failed
    assert (failed.table, failed.column, failed.unexpected_count) == (
        "staging.engagement_events",
        "content_exists",
        None,
    )
    assert "content_exists" in (failed.error or "")
    assert "content_exists" in json.loads(failed.details)["error"]


def test_now_bound_follows_the_argument_and_accepts_aware_times() -> None:
    frames = staging_frames()  # events at minutes 0..99 of 2024-01-01, users and content 0..49
    early = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)  # aware, converted to naive UTC
    result = validate(frames, STAGING_SUITE, suite="staging", run_id="r", now=early)
    assert failures(result) == {
        ("staging.engagement_events", "ExpectColumnValuesToBeBetween", "occurred_at"): 39,
    }
    assert result.validated_at == datetime(2024, 1, 1, 1, 0)
    details = json.loads(result.failed[0].details)
    assert details["kwargs"]["max_value"] == "2024-01-01T01:00:00"
    assert details["partial_unexpected_counts"]


def test_invalid_suites_are_rejected() -> None:
    dup = [Check("t", "ExpectColumnValuesToNotBeNull", {"column": "a"}, description="x")] * 2
    with pytest.raises(ValueError, match="share"):
        validate({}, dup, suite="s", run_id="r", now=NOW_TS)
    with pytest.raises(ValueError, match="mostly"):
        validate(
            {},
            [Check("t", "ExpectColumnValuesToNotBeNull", {"column": "a", "mostly": 0.9})],
            suite="s",
            run_id="r",
            now=NOW_TS,
        )
    with pytest.raises(ValueError, match="ExpectColumnToBeLovely"):
        validate({}, [Check("t", "ExpectColumnToBeLovely", {"column": "a"})], suite="s", run_id="r", now=NOW_TS)


def test_table_level_check_sees_every_row() -> None:
    checks = [Check("t", "ExpectTableRowCountToBeBetween", {"min_value": 3}, description="three or more")]
    result = validate({"t": pl.DataFrame({"a": [1, 2]})}, checks, suite="s", run_id="r", now=NOW_TS)
    [r] = result.results
    assert (r.success, r.unexpected_count, r.element_count) == (False, None, 2)
    assert r.summary() == "t ExpectTableRowCountToBeBetween (min_value=3): observed 2"


# -- the gate ---------------------------------------------------------------------------------


def test_raise_for_critical_names_table_column_expectation_and_counts() -> None:
    frames = staging_frames(3849)
    _future_timestamps(frames)
    _null_id(frames)
    result = run(frames)
    with pytest.raises(QualityGateError) as err:
        result.raise_for_critical()
    assert str(err.value).splitlines() == [
        "critical expectation failed: staging.content.content_id ExpectColumnValuesToNotBeNull: 1 of 3,849 rows",
        "critical expectation failed: staging.content.created_at ExpectColumnValuesToBeBetween (max_value=now): 3 of 3,849 rows",
    ]
    assert isinstance(err.value, RuntimeError)


def test_with_reference_flag_marks_unknown_and_null_keys() -> None:
    events = pl.DataFrame({"source": ["a", "a", "b", "a"], "content_id": ["1", "2", "1", None], "n": [0, 1, 2, 3]})
    existing = pl.DataFrame({"source": ["a", "a"], "content_id": ["1", "1"]})
    out = with_reference_flag(events, existing)
    assert out["n"].to_list() == [0, 1, 2, 3]
    assert out["content_exists"].to_list() == [True, False, False, False]


# -- persistence ------------------------------------------------------------------------------


def test_persist_writes_one_row_per_expectation_and_is_idempotent(warehouse) -> None:
    frames = staging_frames()
    _future_timestamps(frames)
    first = run(frames)
    assert persist(warehouse, first) == 23
    second = run(staging_frames())  # the rerun of the same run is clean
    assert persist(warehouse, second) == 23
    assert persist(warehouse, run(marts_frames(), MARTS, suite="marts")) == 60
    rows = warehouse.execute(
        "select suite, count(*), count(*) filter (where not success) from quality.validation_results "
        "where run_id = 'run-1' group by suite order by suite"
    ).fetchall()
    assert rows == [("marts", 60, 0), ("staging", 23, 0)]


def test_persisted_rows_carry_counts_and_details(warehouse) -> None:
    frames = staging_frames()
    _future_timestamps(frames)
    persist(warehouse, run(frames, run_id="run-2"))
    row = warehouse.execute(
        "select critical, unexpected_count, element_count, details, validated_at, table_name "
        "from quality.validation_results where run_id = 'run-2' and not success"
    ).fetchall()
    assert len(row) == 1
    critical, unexpected, elements, details, validated_at, table = row[0]
    assert (critical, unexpected, elements, validated_at, table) == (True, 3, 50, NOW_TS, "staging.content")
    assert json.loads(details)["description"] == "no item was created in the future"
    compound = warehouse.execute(
        "select column_name from quality.validation_results where run_id = 'run-2' "
        "and expectation = 'ExpectCompoundColumnsToBeUnique' order by table_name"
    ).fetchall()
    assert compound == [("source,content_id",), ("source,event_id",), ("source,user_id",)]


def test_now_sentinel_renders_as_now() -> None:
    assert repr(NOW) == "now"
    check = next(c for c in STAGING_SUITE if c.column == "occurred_at" and c.expectation.endswith("Between"))
    assert check.params() == "(max_value=now)"


def test_data_docs_build_under_a_relative_folder(tmp_path, monkeypatch) -> None:
    """The default ``PULSE_DATA_DOCS_DIR`` is relative (``data/data_docs``); GE's store needs an absolute
    base directory, so a run with the default used to fail its validate step."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    frames = {"t": pl.DataFrame({"a": [1, 2]})}
    checks = [Check("t", "ExpectColumnValuesToNotBeNull", {"column": "a"})]
    result = validate(frames, checks, suite="s", run_id="r", now=NOW_TS, docs_dir=Path("data/data_docs"))
    assert all(r.success for r in result.results)
    index = tmp_path / "data" / "data_docs" / "s" / "index.html"
    assert index.is_file() and "r" in index.read_text(encoding="utf-8")
    assert (tmp_path / "data" / "data_docs").stat().st_mode & 0o077 == 0  # owner-only
