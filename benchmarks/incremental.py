"""Incremental cost: one new daily interval on top of a warehouse holding 1x, 10x, 100x history.

The history is the beer dump scaled 1x/10x/100x (:mod:`benchmarks.scale_dump`) loaded up to
:data:`benchmarks.pipeline.INCREMENTAL_DAY` (built once, shared with the scale benchmark). Each
measurement copies that warehouse (outside the timing) and runs the whole pipeline for the
data interval ``[day, day + 1 day)`` with :func:`pulse.steps.run_pipeline` (lexical scorer):

* **same new data** (the goal's test): the day read from the *real* 1x dump (same source name,
  and replica 0 of every scaled dump is the real dump, so its references resolve), so the new
  data is identical at every history size and any growth is the cost of the history;
* **scaled new data**: the same day read from the scaled dump itself (a community N times
  larger also gets N times more per day), one run per size. A dump is a full snapshot, so
  extracting one day still scans the whole dump.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import BenchConfig, beer_dump_path, loglog_slope, md_table, median, run_worker
from benchmarks.pipeline import INCREMENTAL_DAY, day_after, ensure_history
from pulse import STEPS

NAME = "incremental"
COMMAND = "python -m benchmarks.run --only incremental"


def _one_day(cfg: BenchConfig, history: dict[str, Any], path: str, tag: str) -> dict[str, Any]:
    work = cfg.work_dir / "incremental"
    work.mkdir(parents=True, exist_ok=True)
    return run_worker(
        "benchmarks.pipeline:pipeline_run",
        {
            "warehouse": str(work / f"{tag}.duckdb"),
            "serving": str(work / f"{tag}-serving.duckdb"),
            "source": "stackexchange",
            "path": path,
            "since": INCREMENTAL_DAY.isoformat(),
            "until": day_after(INCREMENTAL_DAY).isoformat(),
            "copy_from": history["warehouse"],
        },
        in_process=cfg.in_process,
    )


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    steps = {
        s: median(r["steps"][s]["s"] for r in runs if s in r["steps"])
        for s in STEPS
        if any(s in r["steps"] for r in runs)
    }
    return {
        "steps_s": steps,
        "total_s": median(r["total_s"] for r in runs),
        "rows_read": runs[0]["rows_read"],
        "new_rows": sum(runs[0]["rows_read"].values()),
        "scored": runs[0].get("scored"),
        "peak_rss_mb": median(r["peak_rss_mb"] for r in runs),
        "runs": len(runs),
    }


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Measure one new day on each history size in ``cfg.sizes``.

    Returns:
        ``{"day", "sizes": {factor: {"history_rows", "same_new_data": {...},
        "scaled_new_data": {...}}}, "growth": {step: log-log slope}}``; seconds.
    """
    out: dict[str, Any] = {"day": INCREMENTAL_DAY.date().isoformat(), "sizes": {}}
    real = str(beer_dump_path())
    for factor in cfg.sizes:
        history = ensure_history(cfg, factor)
        same = [_one_day(cfg, history, real, f"x{factor}-same") for _ in range(cfg.repeats)]
        entry: dict[str, Any] = {
            "history_rows": sum(history["staging_rows"].values()),
            "history_warehouse_mb": history["warehouse_mb"],
            "same_new_data": _summary(same),
        }
        if factor != 1:
            scaled = [_one_day(cfg, history, history["dump"], f"x{factor}-scaled")]
            entry["scaled_new_data"] = _summary(scaled)
        else:
            entry["scaled_new_data"] = entry["same_new_data"]  # at 1x the scaled dump is the real one
        out["sizes"][str(factor)] = entry
    factors = [int(f) for f in out["sizes"]]
    hist = [out["sizes"][str(f)]["history_rows"] for f in factors]
    out["growth_vs_history"] = {
        step: loglog_slope(hist, [out["sizes"][str(f)]["same_new_data"]["steps_s"].get(step, 0.0) for f in factors])
        for step in (*STEPS, "total")
        if step != "total"
    }
    out["growth_vs_history"]["total"] = loglog_slope(
        hist, [out["sizes"][str(f)]["same_new_data"]["total_s"] for f in factors]
    )
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    sizes = result["sizes"]
    steps = [s for s in STEPS if any(s in e["same_new_data"]["steps_s"] for e in sizes.values())]
    rows = []
    for factor, e in sizes.items():
        same = e["same_new_data"]
        rows.append(
            (
                f"{factor}x",
                e["history_rows"],
                same["new_rows"],
                *(same["steps_s"].get(s) for s in steps),
                same["total_s"],
                same["peak_rss_mb"],
            )
        )
    same_table = md_table(
        ("history", "history rows", "new rows", *(f"{s} s" for s in steps), "total s", "peak RSS MiB"), rows
    )
    rows = []
    for factor, e in sizes.items():
        sc = e["scaled_new_data"]
        rows.append(
            (f"{factor}x", e["history_rows"], sc["new_rows"], *(sc["steps_s"].get(s) for s in steps), sc["total_s"])
        )
    scaled_table = md_table(("history", "history rows", "new rows", *(f"{s} s" for s in steps), "total s"), rows)
    growth = result.get("growth_vs_history", {})
    growth_row = md_table(
        ("", *steps, "total"), [("log-log slope vs history", *(growth.get(s) for s in steps), growth.get("total"))]
    )
    return "\n".join(
        [
            "## Incremental cost: one new day on top of 1x / 10x / 100x history",
            "",
            f"Command: `{COMMAND}`. New day: `{result['day']}` (the interval `[day, day + 1 day)`), loaded with "
            "`pulse.steps.run_pipeline(..., since=, until=)` on a copy of a warehouse holding everything before it. "
            "Seconds per step from `ops.step_log`, median of the runs.",
            "",
            "**Same new data** (the day from the real dump, identical at every history size): growth here is the cost of history.",
            "",
            same_table,
            "",
            growth_row,
            "",
            "Slope 0 = constant in the history size, 1 = proportional to it.",
            "",
            "**Scaled new data** (the day from the scaled dump: a community N times larger also gets N times more per day; one run):",
            "",
            scaled_table,
        ]
    )
