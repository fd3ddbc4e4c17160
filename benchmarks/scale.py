"""Scale: the full pipeline at 1x, 10x, 100x the beer dump and on the demo generator at 1M+ items.

Each run is :func:`pulse.steps.run_pipeline` (lexical scorer, so the run measures the pipeline
rather than a neural model) on a fresh warehouse, in a fresh worker process
(:func:`benchmarks.pipeline.pipeline_run`): seconds per step from ``ops.step_log`` (the
pipeline's own record), peak RSS per step from an RSS sampler, and the process's peak.

* beer ``Nx``: :mod:`benchmarks.scale_dump` replicas of the real dump, loaded up to
  :data:`benchmarks.pipeline.INCREMENTAL_DAY` (everything but its last four days), so the
  warehouse is also the history of the incremental benchmark and its snapshot the input of
  the dashboards benchmark;
* demo ``S``: :func:`warehouse.sources.demo.generate_demo` with ``scale=S`` (20 gives ~1.2M
  items: ~220k posts and replies, ~950k engagement events), its whole history in one run.

Growth: for each step, the log-log slope of seconds against rows read between the two largest
beer sizes (1 = linear; above 1.15 flags superlinear growth).
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import BenchConfig, loglog_slope, md_table, median, run_worker
from benchmarks.pipeline import build_history
from pulse import STEPS

NAME = "scale"
COMMAND = "python -m benchmarks.run --only scale"
SUPERLINEAR = 1.15


def _repeats(cfg: BenchConfig, factor: float) -> int:
    """Fewer repetitions for the big sizes (100x takes minutes)."""
    if factor >= 50:
        return 1
    if factor >= 5:
        return max(1, cfg.repeats - 1)
    return cfg.repeats


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [s for s in STEPS if s in runs[0]["steps"]] + [s for s in runs[0]["steps"] if s not in STEPS]
    return {
        "rows_read": sum(runs[0]["rows_read"].values()),
        "rows_read_by_stream": runs[0]["rows_read"],
        "scored": runs[0].get("scored"),
        "steps_s": {s: median(r["steps"][s]["s"] for r in runs) for s in steps},
        "steps_peak_rss_mb": {s: max((r["steps"][s]["peak_rss_mb"] or 0) for r in runs) for s in steps},
        "total_s": median(r["total_s"] for r in runs),
        "imports_s": median(r["imports_s"] for r in runs),
        "peak_rss_mb": median(r["peak_rss_mb"] for r in runs),
        "base_rss_mb": median(r["base_rss_mb"] for r in runs),
        "warehouse_mb": runs[-1]["warehouse_mb"],
        "serving_mb": runs[-1]["serving_mb"],
        "runs": len(runs),
    }


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Run the pipeline at every beer size of ``cfg.sizes`` and demo scale of ``cfg.demo_scales``.

    Returns:
        ``{"beer": {factor: summary}, "demo": {scale: summary}, "growth": {step: slope}}``;
        seconds, MiB.
    """
    out: dict[str, Any] = {"beer": {}, "demo": {}}
    for factor in cfg.sizes:
        runs = [build_history(cfg, factor) for _ in range(_repeats(cfg, factor))]
        out["beer"][str(factor)] = _summary(runs)
    for scale in cfg.demo_scales:
        folder = cfg.work_dir / "scale" / f"demo-{scale:g}"
        folder.mkdir(parents=True, exist_ok=True)
        runs = [
            run_worker(
                "benchmarks.pipeline:pipeline_run",
                {
                    "warehouse": str(folder / "warehouse.duckdb"),
                    "serving": str(folder / "serving.duckdb"),
                    "source": "demo",
                    "demo_scale": scale,
                },
                in_process=cfg.in_process,
            )
            for _ in range(_repeats(cfg, scale))
        ]
        out["demo"][f"{scale:g}"] = _summary(runs)
    beer = out["beer"]
    if len(beer) >= 2:
        # the two largest sizes: fixed costs (opening the warehouse, GE's context) flatten the
        # slope at 1x, so the last segment is where superlinear growth would show
        last = sorted(beer, key=int)[-2:]
        rows = [beer[f]["rows_read"] for f in last]
        steps = list(beer[last[-1]]["steps_s"])
        out["growth_between"] = [int(f) for f in last]
        out["growth"] = {s: loglog_slope(rows, [beer[f]["steps_s"].get(s, 0.0) for f in last]) for s in steps}
        out["growth"]["total"] = loglog_slope(rows, [beer[f]["total_s"] for f in last])
        out["growth"]["peak_rss"] = loglog_slope(rows, [beer[f]["peak_rss_mb"] - beer[f]["base_rss_mb"] for f in last])
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    entries = [(f"beer {f}x", e) for f, e in result["beer"].items()] + [
        (f"demo scale {s}", e) for s, e in result["demo"].items()
    ]
    steps = [s for s in STEPS if any(s in e["steps_s"] for _, e in entries)]
    rows = []
    for label, e in entries:
        rows.append(
            (
                label,
                e["rows_read"],
                *(e["steps_s"].get(s) for s in steps),
                e["total_s"],
                e["rows_read"] / e["total_s"],
                e["peak_rss_mb"],
                e["runs"],
            )
        )
    time_table = md_table(
        ("run", "rows read", *(f"{s} s" for s in steps), "total s", "rows/s", "peak RSS MiB", "runs"), rows
    )
    share_rows = []
    for label, e in entries:
        total = e["total_s"] or 1.0
        share_rows.append((label, *(f"{100 * (e['steps_s'].get(s) or 0) / total:.0f}%" for s in steps)))
    share_table = md_table(("run", *steps), share_rows)
    rss_rows = [
        (label, *(e["steps_peak_rss_mb"].get(s) for s in steps), e["base_rss_mb"], e["warehouse_mb"], e["serving_mb"])
        for label, e in entries
    ]
    rss_table = md_table(("run", *(f"{s}" for s in steps), "RSS before run", "warehouse MiB", "snapshot MiB"), rss_rows)
    imports = ", ".join(f"{label}: {e['imports_s']:.1f} s" for label, e in entries)
    parts = [
        "## Scale: the full pipeline at 1x / 10x / 100x and on the demo at 1M+ items",
        "",
        f"Command: `{COMMAND}` (beer factors from `--sizes`). `pulse.steps.run_pipeline` with the `lexical` scorer on a fresh "
        "warehouse, one fresh process per run; seconds per step from `ops.step_log`; median of the runs. Beer: "
        "`benchmarks/scale_dump.py` replicas of the real dump (ids offset, whole-week shifts plus seconds of jitter, texts made "
        "distinct), loaded up to 2016-12-06 (all but its last four days). Demo: `generate_demo(scale=S)`, whole history. "
        "Heavy imports (Great Expectations, the lexical model) are made before the run and reported apart "
        f"({imports}).",
        "",
        time_table,
        "",
        "Where the time goes (share of the run):",
        "",
        share_table,
        "",
        "Peak RSS (MiB) during each step:",
        "",
        rss_table,
    ]
    growth = result.get("growth")
    if growth:
        flagged = [s for s, v in growth.items() if v is not None and v > SUPERLINEAR and s not in {"peak_rss"}]
        parts += [
            "",
            "Growth with the dump size: log-log slope of seconds against rows read between beer "
            f"{result['growth_between'][0]}x and {result['growth_between'][1]}x (1 = linear; `peak_rss` = RSS above the "
            "pre-run baseline):",
            "",
            md_table(("", *growth.keys()), [("slope", *growth.values())]),
            "",
            ("Superlinear (slope > {:.2f}): {}.".format(SUPERLINEAR, ", ".join(flagged)))
            if flagged
            else "No step grows faster than linearly.",
        ]
    return "\n".join(parts)
