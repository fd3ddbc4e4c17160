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

The marts update incrementally (issue #17: ``transforms.runner.run_marts(incremental=True)``
rebuilds only what the day touches), which needs the build state a previous build recorded
(``ops.mart_state``). A history warehouse built before that has none, so each size's history is
copied once and its marts rebuilt in full (:func:`_primed`, outside the timing); every
measurement starts from that copy and the serving snapshot published from it (the publish step
updates a copy of the previous snapshot, as in a deployment) and records which way its transform
step went (``mode``).
:data:`BEFORE` holds the figures measured before issue #17 (every mart rebuilt each run), shown
beside the new ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.common import BenchConfig, beer_dump_path, loglog_slope, md_table, median, run_worker
from benchmarks.pipeline import INCREMENTAL_DAY, day_after, ensure_history
from pulse import STEPS

NAME = "incremental"
COMMAND = "python -m benchmarks.run --only incremental"

#: Before issue #17 (BENCHMARKS.md of 2026-11-22 18:21 UTC, same command, load average 3.4-3.6):
#: same new data, seconds per step and peak RSS MiB, by history size.
BEFORE: dict[str, dict[str, float]] = {
    "1": {"load": 0.080, "score": 0.082, "transform": 0.219, "publish": 0.117, "total": 2.76, "peak_rss_mb": 452},
    "10": {"load": 0.111, "score": 0.163, "transform": 0.517, "publish": 0.316, "total": 3.68, "peak_rss_mb": 513},
    "100": {"load": 0.433, "score": 1.13, "transform": 2.89, "publish": 0.953, "total": 8.33, "peak_rss_mb": 904},
}
BEFORE_SLOPE = 0.240


def _primed(cfg: BenchConfig, history: dict[str, Any], factor: int) -> tuple[str, str]:
    """A copy of the ``factor``x history whose marts were rebuilt in full, recording the build state,
    and the serving snapshot published from it (paths)."""
    from transforms.runner import run_marts
    from warehouse.db import open_warehouse

    work = cfg.work_dir / "incremental"
    work.mkdir(parents=True, exist_ok=True)
    primed = work / f"x{factor}-primed.duckdb"
    source = Path(history["warehouse"])
    if not primed.is_file() or primed.stat().st_mtime < source.stat().st_mtime:
        tmp = primed.with_name(primed.name + ".tmp")
        shutil.copyfile(source, tmp)
        with open_warehouse(tmp) as con:
            run_marts(con)
            con.execute("checkpoint")
        tmp.replace(primed)
    serving = _primed_serving(primed)
    return str(primed), str(serving)


def _primed_serving(primed: Path) -> Path:
    """The serving snapshot (and its restricted sibling) published from ``primed``, in a folder of its own:
    each day's run starts from it, as a deployment's run starts from the previous run's snapshot
    (the publish step updates a copy of it; issue #17)."""
    from warehouse.db import open_warehouse
    from warehouse.publish import publish_snapshot

    serving = primed.with_name(primed.stem + "-serving") / "serving.duckdb"
    if not serving.is_file() or serving.stat().st_mtime < primed.stat().st_mtime:
        with open_warehouse(primed) as con:
            publish_snapshot(con, serving)
    return serving


def _transform_detail(warehouse: Path) -> dict[str, Any]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select detail from ops.step_log where step = 'transform' order by started_at desc limit 1"
        ).fetchall()
    finally:
        con.close()
    return json.loads(rows[0][0]) if rows and rows[0][0] else {}


def _one_day(cfg: BenchConfig, history: dict[str, Any], path: str, tag: str) -> dict[str, Any]:
    work = cfg.work_dir / "incremental"
    work.mkdir(parents=True, exist_ok=True)
    out = run_worker(
        "benchmarks.pipeline:pipeline_run",
        {
            "warehouse": str(work / f"{tag}.duckdb"),
            # a folder per size: the restricted snapshot is written beside the serving one
            "serving": str(work / f"{tag}-serving" / "serving.duckdb"),
            "source": "stackexchange",
            "path": path,
            "since": INCREMENTAL_DAY.isoformat(),
            "until": day_after(INCREMENTAL_DAY).isoformat(),
            "copy_from": history["primed"],
            "serving_from": history["primed_serving"],
        },
        in_process=cfg.in_process,
    )
    detail = _transform_detail(work / f"{tag}.duckdb")
    out["transform_mode"] = detail.get("mode")
    out["mart_seconds"] = detail.get("seconds", {})
    return out


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
        "transform_mode": sorted({str(r.get("transform_mode")) for r in runs}),
        "mart_seconds": {
            m: median(r["mart_seconds"][m] for r in runs if m in r.get("mart_seconds", {}))
            for m in runs[0].get("mart_seconds", {})
        },
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
    histories: dict[int, dict[str, Any]] = {}
    for factor in cfg.sizes:
        histories[factor] = dict(ensure_history(cfg, factor))
        histories[factor]["primed"], histories[factor]["primed_serving"] = _primed(cfg, histories[factor], factor)
    # Round robin (1x, 10x, 100x, 1x, ...): on a shared machine the load drifts, and sizes
    # measured one after the other would compare different loads.
    same: dict[int, list[dict[str, Any]]] = {f: [] for f in cfg.sizes}
    for _ in range(cfg.repeats):
        for factor in cfg.sizes:
            same[factor].append(_one_day(cfg, histories[factor], real, f"x{factor}-same"))
    for factor in cfg.sizes:
        history = histories[factor]
        entry: dict[str, Any] = {
            "history_rows": sum(history["staging_rows"].values()),
            "history_warehouse_mb": history["warehouse_mb"],
            "same_new_data": _summary(same[factor]),
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
    compare_rows = []
    for factor, e in sizes.items():
        same, old = e["same_new_data"], BEFORE.get(factor, {})
        compare_rows.append(
            (
                f"{factor}x",
                ", ".join(same.get("transform_mode", [])),
                *(x for s in ("load", "score", "transform", "publish") for x in (old.get(s), same["steps_s"].get(s))),
                old.get("total"),
                same["total_s"],
                old.get("peak_rss_mb"),
                same["peak_rss_mb"],
            )
        )
    factors = list(sizes)
    ratio = (
        sizes[factors[-1]]["same_new_data"]["total_s"] / sizes[factors[0]]["same_new_data"]["total_s"]
        if len(factors) > 1
        else None
    )
    compare = md_table(
        (
            "history",
            "transform mode",
            *(f"{s} s {w}" for s in ("load", "score", "transform", "publish") for w in ("before", "now")),
            "total s before",
            "total s now",
            "peak RSS MiB before",
            "peak RSS MiB now",
        ),
        compare_rows,
    )
    marts = sorted({m for e in sizes.values() for m in e["same_new_data"].get("mart_seconds", {})})
    mart_table = md_table(
        ("history", *marts),
        [(f"{f}x", *(e["same_new_data"]["mart_seconds"].get(m) for m in marts)) for f, e in sizes.items()],
    )
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
            "Seconds per step from `ops.step_log`, median of the runs; the sizes are measured in turn (1x, 10x, 100x, 1x, ...) "
            "so a drifting machine load weighs on all of them.",
            "",
            "**Same new data** (the day from the real dump, identical at every history size): growth here is the cost of history.",
            "",
            same_table,
            "",
            growth_row,
            "",
            "Slope 0 = constant in the history size, 1 = proportional to it.",
            "",
            f"**Before and after issue #17** (incremental marts, batch-only scoring and flags; before: {BEFORE_SLOPE} total "
            f"slope, 100x / 1x = {BEFORE['100']['total'] / BEFORE['1']['total']:.2f}; now: 100x / 1x = "
            + (f"{ratio:.2f}" if ratio else "n/a")
            + ", target 1.25):",
            "",
            compare,
            "",
            "Seconds per mart in the transform step (same new data, median):",
            "",
            mart_table,
            "",
            "**Scaled new data** (the day from the scaled dump: a community N times larger also gets N times more per day; one run):",
            "",
            scaled_table,
        ]
    )
