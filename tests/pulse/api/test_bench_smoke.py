"""Smoke of ``benchmarks/api.py`` (profile ``smoke``: the tiny checkpoint, 5 s at 1 and 8 clients), so it cannot rot.

Asserts structure and sanity (locust ran and counted requests, none failed, ratios computed, the
webhook items reached the live queue, the section renders), never speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.common import BenchConfig  # noqa: E402


def test_api_benchmark_smoke(tmp_path: Path, beer_dump: Path) -> None:
    from benchmarks import api

    result = api.run(BenchConfig.for_profile("smoke", work_dir=tmp_path))
    entry = result["models"]["tiny fp32"]
    for users in ("1", "8"):
        c = entry["clients"][users]
        assert c["requests"] > 0 and c["failures"] == 0 and c["rps"] > 0
        assert c["batch_texts_per_s"] > 0 and c["ratio_to_batch"] == pytest.approx(c["rps"] / c["batch_texts_per_s"])
        assert 0 < c["p50_ms"] <= c["p99_ms"]
    assert entry["batching"]["texts"] >= entry["clients"]["8"]["requests"]
    ttf = result["time_to_flag"]
    assert ttf["queued"] == ttf["posts"] == 5 and 0 < ttf["p50_s"] <= ttf["p95_s"] <= ttf["max_s"]
    text = api.render(result)
    assert "| tiny fp32 | 8 |" in text and "Time-to-flag" in text and "p95" in text
