"""Smoke versions of every benchmark (seconds), so they cannot rot.

They run each benchmark's real code path in process with tiny settings (profile ``smoke``) on
the real beer dump (the vendored slice: ``PULSE_SHARED_DATA`` points the benchmarks at it) and
assert structure and sanity (rows counted right, rates positive, ratios
computed, sections and JSON written), never speed. The scaler is checked exactly: a 2x dump
reads, loads, skips and quarantines exactly twice the real dump's counts.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402
from benchmarks.common import BenchConfig  # noqa: E402

DUMP_FILES = ("Posts.xml", "Comments.xml", "Votes.xml", "Users.xml")


def _rows(path: Path) -> int:
    return path.read_bytes().count(b"<row ")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory, beer_dump: Path, toxicity_data: Path) -> Iterator[BenchConfig]:
    """Smoke settings, with the benchmarks' data lookup pointed at the vendored slice (laid out like ../shared/data)."""
    data = tmp_path_factory.mktemp("bench_data")
    (data / "stackexchange").mkdir()
    (data / "stackexchange" / "beer").symlink_to(beer_dump, target_is_directory=True)
    (data / "toxicity").symlink_to(toxicity_data, target_is_directory=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PULSE_SHARED_DATA", str(data))
        yield BenchConfig.for_profile("smoke", work_dir=tmp_path_factory.mktemp("bench"))


# --- the scaler --------------------------------------------------------------------------


def test_scaled_dump_has_exactly_n_times_the_rows_and_counts(beer_dump: Path, tmp_path: Path) -> None:
    import polars as pl

    from benchmarks.scale_dump import scale_dump
    from warehouse.sources.stackexchange import extract_stackexchange

    scaled = scale_dump(beer_dump, tmp_path, 2)
    assert scaled.path.name == beer_dump.name  # same source name: stackexchange:beer
    for name in DUMP_FILES:
        assert _rows(scaled.path / name) == 2 * _rows(beer_dump / name) == scaled.rows[name]
    one, two = extract_stackexchange(beer_dump), extract_stackexchange(scaled.path)
    assert two.source == one.source == "stackexchange:beer"
    for stream, c in one.counts.items():
        d = two.counts[stream]
        assert (d.read, d.emitted, d.skipped, d.quarantined) == (
            2 * c.read,
            2 * c.emitted,
            2 * c.skipped,
            2 * c.quarantined,
        )
    # replica 1 has its own texts (scored once per distinct text) and its own ids
    assert two.content["content_hash"].n_unique() == 2 * one.content["content_hash"].n_unique()
    assert two.content["content_id"].n_unique() == two.content.height
    # replica 0 is the real dump: its first rows are byte for byte the source's
    first_rows = (beer_dump / "Votes.xml").read_text(encoding="utf-8-sig").splitlines()[:50]
    assert (scaled.path / "Votes.xml").read_text(encoding="utf-8-sig").splitlines()[:50] == first_rows
    # weekday and hour of every post of replica 1 equal the source's (whole-week shifts)
    hours = lambda ex: (  # noqa: E731
        ex.content.filter(ex.content["kind"] != "comment")
        .select(ex.content["created_at"].dt.weekday().alias("d"), ex.content["created_at"].dt.hour().alias("h"))
        .group_by("d", "h")
        .len()
        .sort("d", "h")
    )
    base, doubled = (hours(ex)["len"].cast(pl.Int64) for ex in (one, two))  # signed: 2 * 1 - 5 must not wrap
    assert (doubled >= 2 * base - 5).all() and doubled.sum() == 2 * base.sum()
    again = scale_dump(beer_dump, tmp_path, 2)
    assert again.reused and again.rows == scaled.rows


# --- one smoke per benchmark --------------------------------------------------------------


def test_ingest_smoke(cfg: BenchConfig, beer_dump: Path) -> None:
    from benchmarks import ingest

    result = ingest.run(cfg)
    entry = result["sizes"]["1"]
    rows_in_files = sum(_rows(beer_dump / f) for f in DUMP_FILES)
    for path in ("ours", "pandas_duckdb", "pandas_sqlite"):
        assert entry[path]["rows_read"] == rows_in_files == 8_271  # 876 posts, 969 comments, 6,000 votes, 426 users
        assert entry[path]["rows_per_s"] > 0 and entry[path]["max_rss_mb"] > 0
    assert entry["ours"]["rows_loaded"] == 426 + 1_809 + 5_765  # users + content + votes (tests/test_end_to_end.py)
    assert math.isfinite(entry["time_ratio_ours_vs_pandas_duckdb"]) and entry["time_ratio_ours_vs_pandas_duckdb"] > 0
    assert result["row_inserts"]["rows"] == 4 * 200 and result["row_inserts"]["rows_per_s"] > 0
    assert "| 1x" in ingest.render(result)


def test_quality_smoke(cfg: BenchConfig) -> None:
    from benchmarks import quality
    from warehouse.quality import MARTS_SUITE, STAGING_SUITE

    result = quality.run(cfg)
    assert result["staging"]["expectations"] == len(STAGING_SUITE)
    assert result["marts"]["expectations"] == len(MARTS_SUITE)
    for suite in ("staging", "marts"):
        for point in result[suite]["points"]:
            assert point["failed"] == [], f"synthetic {suite} frames must pass every check: {point['failed']}"
            assert point["seconds"] > 0
        assert isinstance(result[suite]["s_per_million_rows"], float)
    assert result["staging"]["points"][-1]["rows"] == 5_000
    assert "s per million rows" in quality.render(result)


def test_scoring_smoke(cfg: BenchConfig) -> None:
    from benchmarks import scoring

    result = scoring.run(cfg)
    tiny = result["models"]["tiny"]
    assert tiny["texts"] == 32
    assert set(tiny["texts_per_s"]) == {"plain_batched", "plain_all", "plain_loop", "ours", "ours_int8"}
    assert all(v > 0 for v in tiny["texts_per_s"].values())
    assert tiny["ratio_vs_plain_batched"]["plain_batched"] == 1.0
    assert tiny["max_abs_score_diff"] < 1e-6, "ours (fp32) and plain Detoxify must compute the same scores"
    assert 0 < tiny["max_abs_score_diff_int8_vs_fp32"] < 0.1
    padded = tiny["padded_tokens"]
    assert padded["plain_loop"] == round(tiny["mean_tokens"] * tiny["texts"])  # no padding one at a time
    assert padded["plain_loop"] <= padded["ours"] <= padded["plain_batched"] <= padded["plain_all"]
    quality = result["quality"]
    assert quality["texts"] == 48 and quality["model_id_int8"] == quality["model_id"] + "+onnx-int8"
    assert quality["max_abs_diff_ours_vs_plain"] < 1e-6
    assert quality["roc_auc"]["ours"]["all"] == pytest.approx(quality["roc_auc"]["plain"]["all"], abs=1e-6)
    assert result["lexical"]["texts"] == 500 and result["lexical"]["ours"] > 0
    text = scoring.render(result)
    assert "texts/s" in text and "ROC-AUC change int8 vs fp32" in text and "**Target**" in text


def test_token_budget_batches_respect_the_budget() -> None:
    from benchmarks.scoring import token_budget_batches

    lengths = [5, 512, 40, 7, 300, 12, 12, 600]
    batches = token_budget_batches(lengths, 600)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 600 for b in batches)
    assert [lengths[b[0]] for b in batches] == sorted(lengths[b[0]] for b in batches)


def test_scale_incremental_dashboards_smoke(cfg: BenchConfig) -> None:
    from benchmarks import dashboards, incremental, scale
    from pulse import STEPS

    result = scale.run(cfg)
    beer = result["beer"]["1"]
    assert set(beer["steps_s"]) == set(STEPS) and all(s >= 0 for s in beer["steps_s"].values())
    assert (
        beer["rows_read_by_stream"]["engagement_events"] == 5_993
    )  # the slice's votes before 2016-12-06, the history's end
    assert beer["peak_rss_mb"] >= beer["base_rss_mb"] > 0
    demo = result["demo"]["0.05"]
    assert demo["rows_read"] > 1_500 and demo["total_s"] > 0
    assert "| beer 1x" in scale.render(result)

    inc = incremental.run(cfg)
    day = inc["sizes"]["1"]["same_new_data"]
    assert 0 < day["new_rows"] < 100  # one day of the real dump
    assert day["total_s"] > 0 and set(day["steps_s"]) == set(STEPS)
    assert inc["sizes"]["1"]["history_rows"] == sum(_staging_rows(cfg))
    assert "Same new data" in incremental.render(inc)

    dash = dashboards.run(cfg)
    pages = dash["snapshots"]["beer 1x"]["pages"]
    measured = {p: e for p, e in pages.items() if "skipped" not in e}
    assert set(measured) == {"peak_times.py", "trending.py"}
    for page, e in measured.items():
        assert e["exception"] is None, (page, e["exception"])
        assert e["queries"] > 0 and e["uncached"]["p50"] > 0 and e["cached"]["p95"] >= e["cached"]["p50"]
    assert "no cache p50 s" in dashboards.render(dash)


def test_hotspots_smoke(cfg: BenchConfig) -> None:
    from benchmarks import hotspots

    result = hotspots.run(cfg)
    assert result["factor"] == 1
    assert (
        result["score_scratch"]["texts"] > 1_700
    )  # the slice's distinct texts (of 1,809 items), scored again from scratch
    assert set(result["score_scratch"]["seconds_by_commit_batch"]) == {"256", "8192"}
    assert result["publish"]["without_scores_mb"] < result["publish"]["as_is_mb"]
    assert result["extract_prefilter"]["lines"] == 8_271 and 0 < result["extract_prefilter"]["rows_in_day"] < 100
    assert any("marts." in k for k in result["transform"]["per_statement_s"])
    assert "Hotspots at 1x" in hotspots.render(result)


def _staging_rows(cfg: BenchConfig) -> list[int]:
    import duckdb

    from benchmarks.pipeline import history_dir

    con = duckdb.connect(str(history_dir(cfg, 1) / "warehouse.duckdb"), read_only=True)
    try:
        return [
            con.execute(f"select count(*) from staging.{t}").fetchall()[0][0]
            for t in ("users", "content", "engagement_events")
        ]
    finally:
        con.close()


# --- reports -----------------------------------------------------------------------------


def test_sections_replace_only_their_own_block(tmp_path: Path) -> None:
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Model quality\n\nkept as written\n", encoding="utf-8")
    common.update_section("ingest", "## Ingest\n\nfirst", md)
    common.update_section("scale", "## Scale\n\nonly", md)
    common.update_section("ingest", "## Ingest\n\nsecond", md)
    text = md.read_text(encoding="utf-8")
    assert text.count("<!-- bench:ingest:start -->") == 1 and "second" in text and "first" not in text
    assert "## Model quality\n\nkept as written\n" in text and "## Scale\n\nonly" in text
    assert text.index("bench:ingest:start") < text.index("bench:scale:start")

    js = tmp_path / "latest.json"
    common.update_results("ingest", {"results": {"x": 1}}, js)
    common.update_results("scale", {"results": {"y": 2}}, js)
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["benchmarks"]["ingest"]["results"] == {"x": 1} and data["benchmarks"]["scale"]["results"] == {"y": 2}


def test_run_cli_parses_sizes_and_only() -> None:
    from benchmarks.run import parse_args

    args = parse_args(["--quick", "--only", "scoring", "--only", "ingest", "--sizes", "10,1,10"])
    assert args.quick and args.only == ["scoring", "ingest"] and args.sizes == (1, 10)
    with pytest.raises(SystemExit):
        parse_args(["--sizes", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--only", "nonsense"])


def test_machine_info_and_statistics() -> None:
    info = common.machine_info()
    assert info["logical_cores"] >= 1 and info["ram_gib"] > 0 and info["packages"]["duckdb"]
    assert common.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert common.percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert common.loglog_slope([1, 10, 100], [2, 20, 200]) == pytest.approx(1.0)
    assert common.loglog_slope([1, 10, 100], [5, 5, 5]) == pytest.approx(0.0)


def test_backfill_smoke(cfg: BenchConfig, beer_dump: Path) -> None:
    """The daily backfill through the parse cache reads what one full extract reads (users and votes
    exactly, content at least: a post edited on a later day is read again on that day)."""
    from datetime import date

    from benchmarks import backfill

    result = backfill.run(cfg)
    single, bf = result["single"], result["backfill"]
    first, last = (date.fromisoformat(s) for s in (result["first_day"], result["last_day"]))
    assert result["factor"] == 1 and result["days"] == bf["days"] == (last - first).days + 1
    assert single["read"]["engagement_events"] == _rows(beer_dump / "Votes.xml")
    assert (
        bf["read"]["users"] == single["read"]["users"]
        and bf["read"]["engagement_events"] == single["read"]["engagement_events"]
    )
    assert bf["read"]["content"] >= single["read"]["content"] and result["partition_ok"] is True
    assert result["cache_mb"] > 0 and single["seconds"] > 0 and bf["seconds"] > 0
    assert len(result["pair_ratios"]) == 1 and result["prefilter"]["days"] == 2 and result["parse"]["days"] == 1
    assert "Dump backfill" in backfill.render(result)
