"""Running the real pipeline for the benchmarks: scaled dumps, history warehouses, per-step figures.

:func:`pipeline_run` (a worker function) runs :func:`pulse.steps.run_pipeline` with the
``lexical`` scorer, samples the process's RSS meanwhile, and reads each step's elapsed
seconds from ``ops.step_log`` (the pipeline records them itself); each step's peak RSS is the
highest sample within the step's logged start and end.

The history warehouses (the beer dump scaled 1x/10x/100x, loaded up to :data:`INCREMENTAL_DAY`)
are built once per work folder and shared: the scale benchmark times their build, the
incremental benchmark adds one day on top of copies of them, and the dashboards benchmark
queries their serving snapshots.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import BenchConfig, beer_dump_path, run_worker

#: The new day of the incremental benchmark: the busiest day of the beer dump's last week
#: (16 posts, comments and votes; the dump ends 2016-12-10). History = everything before it.
INCREMENTAL_DAY = datetime(2016, 12, 6)


def scaled_dump(cfg: BenchConfig, factor: int) -> Path:
    """The beer dump scaled ``factor`` times in ``cfg.work_dir/dumps`` (generated once, then reused)."""
    from benchmarks.scale_dump import scale_dump

    return scale_dump(beer_dump_path(), cfg.work_dir / "dumps", factor).path


def _naive(ts: str | None) -> datetime | None:
    return None if ts is None else datetime.fromisoformat(ts)


def pipeline_run(
    warehouse: str,
    serving: str,
    source: str,
    path: str | None = None,
    since: str | None = None,
    until: str | None = None,
    demo_scale: float | None = None,
    copy_from: str | None = None,
    serving_from: str | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline once (lexical scorer) and report per-step seconds and peak RSS.

    Args:
        warehouse, serving: DuckDB files (the warehouse is replaced by a copy of ``copy_from``
            when given, else deleted first: a fresh warehouse).
        source: ``stackexchange`` or ``demo``.
        path: the dump folder for ``stackexchange``.
        since, until: the data interval, ISO timestamps (naive UTC) or None.
        demo_scale: the demo generator's ``scale`` (volume multiplier; 20 gives ~1.2M items).
            ``SourceSpec`` has no scale, so the benchmark binds it onto ``generate_demo``.
        copy_from: a warehouse file to start from (the history), copied outside the timing.
        serving_from: a serving snapshot to start from (the previous run's, published from
            ``copy_from``), copied with its restricted sibling outside the timing; else none.

    Returns:
        ``steps`` (``{step: {"s", "peak_rss_mb", "rows"}}`` from ``ops.step_log``),
        ``total_s`` (sum of the steps), ``wall_s_inside`` (run_pipeline's own wall time),
        ``rows_read`` per stream, ``staging_rows``, ``scores_rows``, ``warehouse_mb``,
        ``serving_mb``, ``base_rss_mb`` (RSS before the run), ``peak_rss_mb``.
    """
    from warehouse.publish import restricted_path

    wh, sv = Path(warehouse), Path(serving)
    for f in (wh, wh.with_name(wh.name + ".wal"), sv, restricted_path(sv)):
        f.unlink(missing_ok=True)
    if copy_from:
        shutil.copyfile(copy_from, wh)
    if serving_from:
        sv.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(serving_from, sv)
        shutil.copyfile(restricted_path(Path(serving_from)), restricted_path(sv))
    import warehouse.sources.demo as demo

    original_generate = demo.generate_demo
    if demo_scale is not None:
        import functools

        demo.generate_demo = functools.partial(original_generate, scale=float(demo_scale))  # type: ignore[assignment]
    try:
        return _run_and_measure(wh, sv, source, path, since, until)
    finally:
        demo.generate_demo = original_generate  # type: ignore[assignment]  # in-process runs must not leak it


def _run_and_measure(
    wh: Path, sv: Path, source: str, path: str | None, since: str | None, until: str | None
) -> dict[str, Any]:
    import duckdb

    from benchmarks.common import RssSampler, current_rss_mb
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    settings = load_settings(warehouse=wh, serving=sv, scorer="lexical")
    spec = SourceSpec(kind=source, path=Path(path) if path else None)  # type: ignore[arg-type]
    # Import the steps' heavy dependencies first, so the first step's time is the step's own
    # (a real deployment's worker has them loaded; the first-import cost is reported apart).
    t_imp = time.perf_counter()
    import great_expectations  # noqa: F401

    import transforms.runner  # noqa: F401
    from moderation.scorers import LexicalScorer

    LexicalScorer()
    imports_s = time.perf_counter() - t_imp
    base = current_rss_mb()
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        summary = run_pipeline(settings, spec, since=_naive(since), until=_naive(until), trigger="bench")
        wall = time.perf_counter() - t0
    con = duckdb.connect(str(wh), read_only=True)
    try:
        log = con.execute(
            "select step, started_at, elapsed_s, rows from ops.step_log where run_id = ? order by started_at",
            [summary.run_id],
        ).fetchall()
        read = dict(
            con.execute("select stream, read from ops.stream_counts where run_id = ?", [summary.run_id]).fetchall()
        )
        staging = {
            t: con.execute(f"select count(*) from staging.{t}").fetchall()[0][0]
            for t in ("users", "content", "engagement_events")
        }
        scores = con.execute("select count(*) from moderation.scores").fetchall()[0][0]
    finally:
        con.close()
    steps: dict[str, dict[str, Any]] = {}
    for step, started, elapsed, rows in log:
        start = started.replace(tzinfo=UTC).timestamp()
        steps[step] = {
            "s": elapsed,
            "rows": rows,
            "peak_rss_mb": sampler.peak_between(start - 0.05, start + elapsed + 0.05),
        }
    return {
        "run_id": summary.run_id,
        "steps": steps,
        "total_s": sum(s["s"] for s in steps.values()),
        "wall_s_inside": wall,
        "imports_s": imports_s,
        "rows_read": read,
        "staging_rows": staging,
        "scores_rows": scores,
        "warehouse_mb": wh.stat().st_size / 2**20,
        "serving_mb": sv.stat().st_size / 2**20,
        "base_rss_mb": round(base, 1),
        "peak_rss_mb": round(sampler.peak, 1),
        "scored": summary.steps.get("score", {}).get("scored"),
    }


def history_dir(cfg: BenchConfig, factor: int) -> Path:
    """Folder holding the ``factor``x history warehouse and its serving snapshot."""
    return cfg.work_dir / "history" / f"beer-x{factor}"


def build_history(cfg: BenchConfig, factor: int) -> dict[str, Any]:
    """Load the ``factor``x beer dump up to :data:`INCREMENTAL_DAY` into a fresh warehouse.

    Returns:
        The :func:`pipeline_run` figures plus ``warehouse``, ``serving`` (file paths) and
        ``dump`` (the scaled dump folder).
    """
    dump = scaled_dump(cfg, factor)
    folder = history_dir(cfg, factor)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "built.json").unlink(missing_ok=True)  # a failed rebuild must not look reusable
    out = run_worker(
        "benchmarks.pipeline:pipeline_run",
        {
            "warehouse": str(folder / "warehouse.duckdb"),
            "serving": str(folder / "serving.duckdb"),
            "source": "stackexchange",
            "path": str(dump),
            "until": INCREMENTAL_DAY.isoformat(),
        },
        in_process=cfg.in_process,
    )
    out.update(warehouse=str(folder / "warehouse.duckdb"), serving=str(folder / "serving.duckdb"), dump=str(dump))
    (folder / "built.json").write_text(json.dumps(out, default=str), encoding="utf-8")
    return out


def ensure_history(cfg: BenchConfig, factor: int) -> dict[str, Any]:
    """The ``factor``x history (built by an earlier run in this work folder, else built now)."""
    folder = history_dir(cfg, factor)
    marker = folder / "built.json"
    if marker.is_file() and (folder / "warehouse.duckdb").is_file() and (folder / "serving.duckdb").is_file():
        return json.loads(marker.read_text(encoding="utf-8"))
    return build_history(cfg, factor)


def day_after(day: datetime) -> datetime:
    """``day`` + 1 day (the end of a daily data interval)."""
    return day + timedelta(days=1)
