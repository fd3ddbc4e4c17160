"""Scoring partitions: content-named, idempotent, atomic results, merged once per (content_hash, model_id)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest

from moderation.partitions import merge_results, read_plan, result_name, score_partition, write_partitions
from warehouse.db import open_warehouse


class LengthScorer:
    """A deterministic stand-in model: toxicity = characters / 100; ``fail_after`` texts, then an error."""

    model_id, model_version, backend, is_fallback, fallback_reason = "test:length", "1", "lexical", False, None
    labels = ("toxicity",)

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after, self.seen = fail_after, 0

    def score(self, texts: Sequence[str]) -> pl.DataFrame:
        self.seen += len(texts)
        if self.fail_after is not None and self.seen > self.fail_after:
            raise RuntimeError("worker lost")
        return pl.DataFrame({"toxicity": [len(t) / 100 for t in texts]}, schema={"toxicity": pl.Float64})


def _pending(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "content_hash": [f"h{i:02d}" for i in range(n)],
            "text": ["x" * (i + 1) for i in range(n)],
            "truncated": [False] * n,
        }
    )


def test_partitions_are_bounded_named_by_content_and_rewritten_identically(tmp_path: Path) -> None:
    plan = write_partitions(_pending(5).reverse(), tmp_path, LengthScorer(), max_rows=2)
    assert plan.texts == 5 and len(plan.partitions) == 3
    sizes = [pl.read_parquet(tmp_path / p)["content_hash"].to_list() for p in plan.partitions]
    assert sizes == [["h00", "h01"], ["h02", "h03"], ["h04"]]  # sorted by content_hash, at most 2 each
    again = write_partitions(_pending(5), tmp_path / "retry", LengthScorer(), max_rows=2)
    assert again.partitions == plan.partitions  # a retried plan writes the same names
    assert read_plan(tmp_path) == plan
    assert write_partitions(_pending(0), tmp_path / "none", LengthScorer()).partitions == ()


def test_a_failed_partition_leaves_no_result_and_a_retry_scores_it_once(tmp_path: Path) -> None:
    plan = write_partitions(_pending(5), tmp_path, LengthScorer(), max_rows=5)
    (partition,) = plan.partitions
    with pytest.raises(RuntimeError, match="worker lost"):
        score_partition(tmp_path, partition, LengthScorer(fail_after=2), batch_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([partition, "plan.json"])  # no result, no temp file
    first = score_partition(tmp_path, partition, LengthScorer(), batch_size=2)
    assert (first["rows"], first["reused"]) == (5, False)
    assert score_partition(tmp_path, partition, LengthScorer(fail_after=0))["reused"] is True  # not scored twice
    result = pl.read_parquet(tmp_path / result_name(partition, "test:length"))
    assert result["toxicity"].to_list() == [0.01, 0.02, 0.03, 0.04, 0.05]


def test_merge_inserts_each_text_once_and_refuses_an_incomplete_plan(tmp_path: Path) -> None:
    folder = tmp_path / "scoring"
    plan = write_partitions(_pending(5), folder, LengthScorer(), max_rows=2)
    with open_warehouse(tmp_path / "wh.duckdb") as con:
        score_partition(folder, plan.partitions[0], LengthScorer())
        with pytest.raises(FileNotFoundError, match="2 of 3 partitions have no scores"):
            merge_results(con, folder, plan)
        assert con.execute("select count(*) from moderation.scores").fetchall() == [(0,)]
        for p in plan.partitions[1:]:
            score_partition(folder, p, LengthScorer())
        assert merge_results(con, folder, plan) == 5
        assert merge_results(con, folder, plan) == 0  # a duplicated merge changes nothing
        rows = con.execute(
            "select content_hash, model_id, toxicity, insult from moderation.scores order by 1"
        ).fetchall()
    assert rows[0] == ("h00", "test:length", 0.01, None) and rows[-1] == ("h04", "test:length", 0.05, None)
