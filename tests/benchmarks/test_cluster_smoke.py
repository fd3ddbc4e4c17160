"""Smoke of benchmarks/cluster.py: its arithmetic and section on a recorded shape (the real
measurement starts clusters; tests/dags/test_cluster.py covers the cluster itself)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks import cluster  # noqa: E402
from benchmarks.common import BenchConfig  # noqa: E402


def test_cluster_figures_from_partitions(tmp_path: Path) -> None:
    result = cluster.run(BenchConfig.for_profile("smoke", work_dir=tmp_path))
    one, two = result["runs"]["1"], result["runs"]["2"]
    # 3 partitions of 400 texts back to back: 1,200 texts in 30 s; 8 s of each 10 s inside score calls
    assert (one["texts"], one["span_s"], one["texts_per_s"]) == (1200, 30.0, 40.0)
    assert (one["scoring_texts_per_s"], one["overhead_s"]) == (50.0, 2.0)
    assert two["by_worker"] == {"worker-1": 2, "worker-2": 2} and two["texts_per_s"] == 80.0
    assert result["ratio"] == pytest.approx(2.0)
    assert result["needed"] == {"10000000": 3, "100000000": 29}  # 10M / (40 texts/s * 86,400 s) = 2.9
    text = cluster.render(result)
    assert "**2.00x**" in text and "| 100,000,000 | 29 |" in text


def test_workers_needed_rounds_up() -> None:
    assert cluster.workers_needed(86_400, 1.0) == 1
    assert cluster.workers_needed(86_401, 1.0) == 2
