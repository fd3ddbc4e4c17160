"""The whole pipeline on the real beer.stackexchange dump (the vendored slice): counts, marts, idempotency, snapshot."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pulse.settings import load_settings
from pulse.steps import PipelineError, SourceSpec, run_pipeline
from warehouse.db import connect

# Tables a re-run of the same interval must leave identical. ops.* and
# quality.validation_results log each run, so they grow by design.
STABLE_TABLES = (
    "staging.users",
    "staging.content",
    "staging.engagement_events",
    "raw.quarantine",
    "moderation.flags",
    "marts.activity_heatmap",
    "marts.engagement_daily",
    "marts.trending_topics",
    "marts.moderation_queue",
)


def table_fingerprints(path: Path) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent checksum of every row, per table."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for t in STABLE_TABLES:
            n, h = con.execute(f"select count(*), coalesce(sum(hash(x)::hugeint), 0) from {t} x").fetchall()[0]
            out[t] = (n, int(h))
        scores = con.execute(
            "select count(*), coalesce(sum(hash(content_hash, model_id, toxicity)::hugeint), 0) from moderation.scores"
        ).fetchall()[0]
        out["moderation.scores"] = (scores[0], int(scores[1]))
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def beer_run(beer_dump: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("beer")
    settings = load_settings(warehouse=tmp / "warehouse.duckdb", serving=tmp / "serving.duckdb", scorer="lexical")
    summary = run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    return settings, summary


def test_counts_reconcile_on_the_real_dump(beer_run) -> None:
    settings, summary = beer_run
    con = connect(settings.warehouse, read_only=True)
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "select stream, read, inserted, updated, unchanged, skipped, quarantined from ops.stream_counts where run_id = ?",
            [summary.run_id],
        ).fetchall()
    }
    con.close()
    # read, inserted, updated, unchanged, skipped, quarantined
    assert rows["users"] == (426, 426, 0, 0, 0, 0)
    # 876 posts + 969 comments; 36 tag-wiki posts skipped by rule
    assert rows["content"] == (1845, 1809, 0, 0, 36, 0)
    # 6,000 votes: 175 non-engagement vote types skipped; 60 votes on posts absent from the
    # dump (deleted posts) quarantined as dangling references
    assert rows["engagement_events"] == (6000, 5765, 0, 0, 175, 60)
    for read, ins, upd, unch, skipped, quar in rows.values():
        assert read == ins + upd + unch + skipped + quar


def test_heatmap_cells_sum_to_hour_precise_counts(beer_run, beer_dump: Path) -> None:
    settings, _ = beer_run
    con = connect(settings.serving, read_only=True)
    per_type = dict(con.execute("select activity_type, sum(events) from marts.activity_heatmap group by 1").fetchall())
    cells = con.execute("select count(*) from marts.activity_heatmap").fetchall()[0][0]
    con.close()
    posts = ET.parse(beer_dump / "Posts.xml").getroot()
    questions = sum(1 for r in posts if r.get("PostTypeId") == "1")
    answers = sum(1 for r in posts if r.get("PostTypeId") == "2")
    comments = len(ET.parse(beer_dump / "Comments.xml").getroot())
    # Votes carry day precision only: none of them may appear in an hourly cell.
    assert per_type == {"question": questions, "answer": answers, "comment": comments}
    assert (questions, answers, comments) == (254, 586, 969)
    assert cells == 3 * 7 * 24


def test_busiest_question_hour_matches_an_independent_count(beer_run, beer_dump: Path) -> None:
    settings, _ = beer_run
    con = connect(settings.serving, read_only=True)
    top = con.execute(
        "select weekday, hour, events from marts.activity_heatmap where activity_type = 'question' "
        "order by events desc, weekday, hour limit 1"
    ).fetchall()[0]
    con.close()
    counts: dict[tuple[int, int], int] = {}
    for r in ET.parse(beer_dump / "Posts.xml").getroot():
        if r.get("PostTypeId") == "1":
            ts = datetime.fromisoformat(r.get("CreationDate"))
            key = (ts.isoweekday(), ts.hour)  # the dump's timezone is UTC, as is the default
            counts[key] = counts.get(key, 0) + 1
    best = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
    assert top == (*best[0], best[1])
    assert top == (2, 21, 29)  # Tuesday 21:00 UTC: 29 questions, most of them on the site's first evening


def test_engagement_daily_totals(beer_run) -> None:
    settings, _ = beer_run
    con = connect(settings.serving, read_only=True)
    totals = con.execute(
        "select sum(questions), sum(answers), sum(comments), sum(upvotes), sum(downvotes), sum(accepts), "
        "sum(favorites), sum(new_users) from marts.engagement_daily"
    ).fetchall()[0]
    con.close()
    # 254 questions, 586 answers, 969 comments; votes on posts still in the dump only
    assert totals[:3] == (254, 586, 969)
    assert sum(totals[3:7]) == 5765
    assert totals[7] == 426


def test_snapshot_carries_what_dashboards_need(beer_run) -> None:
    settings, summary = beer_run
    con = connect(settings.serving, read_only=True)
    tables = {
        f"{s}.{t}" for s, t in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    }
    status, scorer = con.execute(
        "select status, scorer_model_id from ops.runs where run_id = ?", [summary.run_id]
    ).fetchall()[0]
    failed = con.execute(
        "select count(*) from quality.validation_results where not success and suite <> 'monitoring'"
    ).fetchall()[0][0]
    passed = con.execute(
        "select count(*) from quality.validation_results where success and suite <> 'monitoring'"
    ).fetchall()[0][0]
    # The dump ends in 2016: the freshness expectation (a warning) says the data is stale.
    stale = con.execute(
        "select success from quality.validation_results where suite = 'monitoring' and column_name = 'lag_hours'"
    ).fetchall()
    # managers' snapshot: counts per reason, never the quarantined payloads (those are in the restricted one)
    quarantine = dict(con.execute("select reason, sum(records)::int from raw.quarantine_counts group by 1").fetchall())
    con.close()
    assert {"marts.activity_heatmap", "marts.trending_topics", "marts.moderation_queue", "ops.runs"} <= tables
    assert "staging.content" not in tables  # the snapshot carries marts, not every raw text
    assert "raw.quarantine" not in tables
    assert (status, scorer) == ("success", "lexical:alt-profanity-check")
    assert failed == 0 and passed == summary.steps["validate"]["passed"] + summary.steps["validate_marts"]["passed"]
    assert quarantine == {"dangling_reference": 60}
    assert stale == [(False,)]


def test_rerun_of_the_same_window_changes_nothing(beer_run, beer_dump: Path) -> None:
    settings, _ = beer_run
    before = table_fingerprints(settings.warehouse)
    again = run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    after = table_fingerprints(settings.warehouse)
    assert after == before
    assert again.steps["score"]["scored"] == 0
    assert again.steps["load"]["content"] == {"inserted": 0, "updated": 0, "unchanged": 1809}


def test_intervals_add_up_to_the_whole_history(beer_run, beer_dump: Path, tmp_path: Path) -> None:
    """Loading the dump as three consecutive data intervals gives the same staging as one run."""
    whole, _ = beer_run
    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical")
    bounds = [None, datetime(2015, 1, 1), datetime(2016, 1, 1), None]
    for since, until in itertools.pairwise(bounds):
        run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump), since=since, until=until)
    a, b = table_fingerprints(whole.warehouse), table_fingerprints(settings.warehouse)
    for t in ("staging.users", "staging.content", "staging.engagement_events"):
        assert a[t] == b[t], t


def test_quarantine_limit_stops_the_run_before_publishing(beer_dump: Path, tmp_path: Path) -> None:
    settings = load_settings(
        warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical", quarantine_max_share=0.005
    )
    # 60 dangling votes of 426 users + 1,845 content records + 6,000 votes read
    with pytest.raises(PipelineError, match=r"60 of 8,271 records read \(0.7%\) were quarantined"):
        run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    assert not settings.serving.exists()
    con = connect(settings.warehouse, read_only=True)
    status, error = con.execute("select status, error from ops.runs").fetchall()[0]
    staged = con.execute("select count(*) from staging.content").fetchall()[0][0]
    con.close()
    assert status == "failed" and "PULSE_QUARANTINE_MAX_SHARE" in error
    assert staged == 0  # stopped at validate: nothing half-loaded


FIRST_WEEKS = {"since": datetime(2014, 1, 21), "until": datetime(2014, 2, 1)}


def test_auto_scorer_offline_falls_back_and_records_it(beer_dump: Path, tmp_path: Path, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="auto")
    summary = run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump), **FIRST_WEEKS)
    assert summary.steps["score"]["is_fallback"] is True
    con = connect(settings.serving, read_only=True)
    model, fallback, note = con.execute(
        "select scorer_model_id, scorer_is_fallback, scorer_note from ops.runs"
    ).fetchall()[0]
    flags_from_fallback = con.execute("select bool_and(is_fallback) from moderation.scores").fetchall()[0][0]
    con.close()
    assert (model, fallback) == ("lexical:alt-profanity-check", True)
    assert "Detoxify weights unavailable" in note
    assert flags_from_fallback is True


def test_detoxify_checkpoint_scores_every_label_with_provenance(beer_dump: Path, tmp_path: Path) -> None:
    from moderation.tiny import build_tiny_checkpoint

    folder = build_tiny_checkpoint(tmp_path / "tiny-bert")
    settings = load_settings(
        warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer=f"checkpoint:{folder}"
    )
    summary = run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump), **FIRST_WEEKS)
    con = connect(settings.warehouse, read_only=True)
    n_texts = con.execute("select count(distinct content_hash) from staging.content").fetchall()[0][0]
    rows = con.execute(
        "select model_id, model_version, backend, is_fallback, count(*), count(toxicity), count(threat), "
        "count(identity_attack), max(toxicity) <= 1 and min(toxicity) >= 0 from moderation.scores group by all"
    ).fetchall()
    con.close()
    assert len(rows) == 1
    model_id, version, backend, fallback, n, n_tox, n_threat, n_ident, in_range = rows[0]
    assert model_id == f"checkpoint:tiny-bert@{version}" and len(version) == 12
    assert (backend, fallback) == ("detoxify", False)
    assert n == n_tox == n_threat == n_ident == n_texts == summary.steps["score"]["scored"] > 100
    assert in_range


def test_failed_critical_expectation_stops_the_run_before_publishing(tmp_path: Path, monkeypatch) -> None:
    """With the clock set before the demo's last day, 'created_at not in the future' fails."""
    import pulse.steps
    from warehouse.quality import QualityGateError

    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb", scorer="lexical")
    monkeypatch.setattr(pulse.steps, "utcnow", lambda: datetime(2026, 8, 1))
    with pytest.raises(
        QualityGateError, match=r"staging\.content\.created_at ExpectColumnValuesToBeBetween .*: [\d,]+ of 11,437 rows"
    ):
        run_pipeline(settings, SourceSpec(kind="demo"))
    con = connect(settings.warehouse, read_only=True)
    status, error = con.execute("select status, error from ops.runs").fetchall()[0]
    staged = con.execute("select count(*) from staging.content").fetchall()[0][0]
    failed = con.execute("select count(*) from quality.validation_results where not success and critical").fetchall()[
        0
    ][0]
    con.close()
    assert status == "failed" and error.startswith("validate: QualityGateError")
    assert staged == 0 and failed >= 2  # content and engagement events both reach past the clock
    assert not settings.serving.exists()
