"""Smoke run of ``benchmarks/loader_memory.py`` (seconds, in process): the inputs it generates load with
exact counts and a bounded payload sample, and its section renders. Speed is the benchmark's, not this test's."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.common import BenchConfig  # noqa: E402


def test_loader_memory_smoke(tmp_path: Path) -> None:
    from benchmarks import loader_memory

    result = loader_memory.run(BenchConfig.for_profile("smoke", work_dir=tmp_path))
    got = {k: (r["read"], r["quarantined"], r["stored"], r["loaded"]) for k, r in result["inputs"].items()}
    assert got == {
        "empty": (1, 0, 0, 1),
        "valid": (2_000, 0, 0, 2_000),
        "valid_large": (4_000, 0, 0, 4_000),
        "bomb": (30_000, 30_000, 3, 0),  # 100 per reason kept, but only 3 distinct junk lines
        "many_lines": (20_000, 20_000, 100, 0),
        "long_line": (2, 1, 1, 1),
        "parquet_junk": (20_000, 20_000, 100, 0),
    }
    assert result["inputs"]["bomb"]["file_bytes"] < 2_000  # a tiny file, 30,000 lines
    assert all(r["max_rss_mb"] > 0 and r["rate_cpu"] > 0 for r in result["inputs"].values())
    text = loader_memory.render(result)
    assert "| decompression bomb .jsonl.gz | 30,000 |" in text and "peak RSS MiB" in text
    assert (tmp_path / "loader_memory" / "bomb-30000" / "bomb.jsonl.gz").is_file()  # inputs go to the work dir
