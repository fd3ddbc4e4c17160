"""Cluster: scoring fanned out over Celery workers, 1 worker against 2, and the workers a backfill needs.

For each worker count (1, then 2) a fresh cluster (:func:`pulse.cluster.up`: Redis, a PostgreSQL
metadata database, the Airflow services, N Celery workers of concurrency 1 and one torch thread
each) runs ``community_pipeline`` through the REST API on the scaled beer dump
(:mod:`benchmarks.scale_dump`, the largest factor of ``--sizes``; published: 10x) for one data
interval (:data:`WINDOW`: three days of the 10x dump, 933 posts and comments), with a transformer scorer (the
``minilm`` checkpoint of :mod:`benchmarks.scoring`: all-MiniLM-L6-v2 with a 6-label head, the
community model's shape) and partitions of :data:`PARTITION_ROWS` texts. From the
``score_partition`` task instances (REST API) and their returned XComs:

* **throughput** = texts scored / span from the first partition's start to the last one's end
  (what the fanned-out step costs the run), per worker count, and their ratio;
* **per-worker scoring rate** = texts / seconds inside ``score`` calls (the engine alone);
* **fixed overhead per partition** = task duration - its scoring seconds (task process start,
  imports, model load, Parquet reads and the atomic write), median over partitions;
* the **workers needed** for a one-day backfill of 10M and 100M texts at the measured 1-worker
  throughput (the 2-worker ratio says how far adding workers holds on this machine).

PostgreSQL: ``PULSE_CLUSTER_POSTGRES_URL`` (a role that may create databases), else
``.ci/postgres``. The smoke profile does not start a cluster (``tests/dags/test_cluster.py``
does); it checks the arithmetic and the section on a recorded result.
"""

from __future__ import annotations

import math
import os
import time
from datetime import datetime
from typing import Any

from benchmarks.common import BenchConfig, beer_dump_path, loadavg, md_table, median

COMMAND = "python -m benchmarks.run --only cluster"
WORKERS: tuple[int, ...] = (1, 2)
PARTITION_ROWS = 250
#: One data interval of the scaled dump: three days of the beer site's busy first weeks (x10: 933 texts;
#: a transformer on one shared core scores a few per second, and every run extracts the whole dump).
WINDOW = ("2014-02-04T00:00:00+00:00", "2014-02-07T00:00:00+00:00")
BACKFILL_TEXTS: tuple[int, ...] = (10_000_000, 100_000_000)
DAY_S = 86_400


def _iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def summarise(partitions: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """Figures of one fanned-out run from its ``score_partition`` task instances.

    Args:
        partitions: one dict per mapped task instance: ``start``, ``end`` (ISO), ``duration_s``,
            ``rows``, ``seconds`` (scoring time inside the task), ``hostname``.
        workers: the worker count.

    Returns:
        ``{"workers", "partitions", "texts", "span_s", "texts_per_s", "scoring_texts_per_s",
        "overhead_s" (median), "overhead_max_s", "by_worker"}``.
    """
    span = max(_iso(p["end"]) for p in partitions) - min(_iso(p["start"]) for p in partitions)
    texts = sum(p["rows"] for p in partitions)
    scoring = sum(p["seconds"] for p in partitions)
    overheads = [p["duration_s"] - p["seconds"] for p in partitions]
    by_worker: dict[str, int] = {}
    for p in partitions:
        by_worker[p["hostname"]] = by_worker.get(p["hostname"], 0) + 1
    return {
        "workers": workers,
        "partitions": len(partitions),
        "texts": texts,
        "span_s": span,
        "texts_per_s": texts / span,
        "scoring_texts_per_s": texts / scoring if scoring else None,
        "overhead_s": median(overheads),
        "overhead_max_s": max(overheads),
        "by_worker": dict(sorted(by_worker.items())),
    }


def workers_needed(texts: int, texts_per_s_per_worker: float, *, seconds: float = DAY_S) -> int:
    """Workers that score ``texts`` within ``seconds`` at ``texts_per_s_per_worker`` each (ceil; linear scaling assumed)."""
    return max(1, math.ceil(texts / (texts_per_s_per_worker * seconds)))


def _partitions(cluster: Any, run_id: str) -> list[dict[str, Any]]:
    import httpx

    from pulse.cluster import _token

    headers = _token(cluster)
    base = f"{cluster.api_url}/api/v2/dags/community_pipeline/dagRuns/{run_id}/taskInstances"
    tis = httpx.get(base, headers=headers, params={"limit": 1000}, timeout=30).json()["task_instances"]
    out = []
    for t in (t for t in tis if t["task_id"] == "score_partition"):
        x = httpx.get(
            f"{base}/score_partition/xcomEntries/return_value",
            headers=headers,
            params={"map_index": t["map_index"], "deserialize": True},
            timeout=30,
        ).json()["value"]
        if isinstance(x, str):
            import ast

            x = ast.literal_eval(x)
        out.append(
            {
                "start": t["start_date"],
                "end": t["end_date"],
                "duration_s": t["duration"],
                "rows": x["rows"],
                "seconds": x["seconds"],
                "hostname": t["hostname"],
            }
        )
    return out


def measure(cfg: BenchConfig, workers: int, dump: str, checkpoint: str) -> dict[str, Any]:
    """One fresh cluster with ``workers`` workers; one pipeline run; :func:`summarise` of its partitions."""
    import uuid

    import psycopg

    from pulse.cluster import _postgres_url, down, free_port, trigger, up, wait_run

    folder = cfg.work_dir / "cluster" / f"w{workers}"
    for name in ("warehouse.duckdb", "serving.duckdb"):
        (folder / "data" / name).unlink(missing_ok=True)
    env = {"PULSE_WAREHOUSE": str(folder / "data" / "warehouse.duckdb"), "PULSE_SERVING": str(folder / "data" / "serving.duckdb"),
           "PULSE_SCHEDULE": "none",
           # one day of a dump: votes and comments on older posts are dangling references (quarantined)
           "PULSE_QUARANTINE_MAX_SHARE": "1"}  # fmt: skip
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    database = f"pulse_bench_cluster_{uuid.uuid4().hex[:8]}"  # a fresh metadata DB, dropped afterwards
    t0 = time.perf_counter()
    try:
        cluster = up(folder / "home", workers=workers, api_port=free_port(), database=database, log=lambda m: None)
        up_s = time.perf_counter() - t0
        load_before = loadavg()
        conf = {
            "source": "stackexchange",
            "path": dump,
            "since": WINDOW[0],
            "until": WINDOW[1],
            "partition_rows": PARTITION_ROWS,
            "scorer": f"checkpoint:{checkpoint}",
        }
        run_id = trigger(cluster, "community_pipeline", conf)
        state = wait_run(cluster, "community_pipeline", run_id, timeout_s=7200)
        scoring = [
            t for t in state["task_instances"] if t["task_id"] in ("plan_scoring", "score_partition", "merge_scores")
        ]
        if not scoring or any(t["state"] != "success" for t in scoring):  # later gates (marts) do not matter here
            raise RuntimeError(f"run {run_id} ended {state['state']}: {state['task_instances']}")
        result = summarise(_partitions(cluster, run_id), workers)
        result.update(up_s=up_s, load_before=load_before, load_after=loadavg())
        return result
    finally:
        if (folder / "home" / "cluster.json").exists():
            down(folder / "home", log=lambda m: None)
        with psycopg.connect(_postgres_url(None), autocommit=True) as admin:
            admin.execute(f'drop database if exists "{database}" with (force)')
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Measure 1 and 2 workers (full and quick profiles); the smoke profile summarises :data:`SMOKE_PARTITIONS`.

    Returns:
        ``{"runs": {workers: summarise(...)}, "ratio", "needed": {texts: workers}, "model", "dump"}``.
    """
    if cfg.profile == "smoke":
        runs = {str(w): summarise(parts, w) for w, parts in SMOKE_PARTITIONS.items()}
        model, dump = "recorded", "recorded"
    else:
        from benchmarks.scale_dump import scale_dump
        from benchmarks.scoring import _checkpoint

        factor = max(cfg.sizes)
        dump = (
            str(scale_dump(beer_dump_path(), cfg.work_dir / "dumps", factor).path)
            if factor > 1
            else str(beer_dump_path())
        )
        checkpoint = str(_checkpoint(cfg, "minilm"))
        runs = {str(w): measure(cfg, w, dump, checkpoint) for w in WORKERS}
        model = f"minilm (all-MiniLM-L6-v2 + 6-label head), fp32, 1 torch thread per worker; beer x{factor}"
    one, two = runs["1"]["texts_per_s"], runs[str(max(WORKERS))]["texts_per_s"]
    return {
        "runs": runs,
        "ratio": two / one,
        "needed": {str(n): workers_needed(n, one) for n in BACKFILL_TEXTS},
        "model": model,
        "dump": dump,
    }


#: A recorded shape for the smoke profile (two workers of two partitions each, one worker of three).
SMOKE_PARTITIONS: dict[int, list[dict[str, Any]]] = {
    1: [
        {
            "start": f"2026-01-01T00:00:{s:02d}Z",
            "end": f"2026-01-01T00:00:{s + 10:02d}Z",
            "duration_s": 10.0,
            "rows": 400,
            "seconds": 8.0,
            "hostname": "worker-1",
        }
        for s in (0, 10, 20)
    ],
    2: [
        {
            "start": f"2026-01-01T00:00:{s:02d}Z",
            "end": f"2026-01-01T00:00:{s + 10:02d}Z",
            "duration_s": 10.0,
            "rows": 400,
            "seconds": 8.0,
            "hostname": h,
        }
        for s, h in ((0, "worker-1"), (0, "worker-2"), (10, "worker-1"), (10, "worker-2"))
    ],
}


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    rows = [
        (
            w,
            r["texts"],
            r["partitions"],
            ", ".join(f"{h}: {n}" for h, n in r["by_worker"].items()),
            r["span_s"],
            r["texts_per_s"],
            r["scoring_texts_per_s"],
            r["overhead_s"],
            r["overhead_max_s"],
            " -> ".join(f"{x[0]:.1f}" for x in (r.get("load_before"), r.get("load_after")) if x) or "-",
        )
        for w, r in result["runs"].items()
    ]
    table = md_table(
        (
            "workers",
            "texts",
            "partitions",
            "partitions per worker",
            "span s",
            "texts/s (fanned out)",
            "texts/s inside score calls",
            "overhead per partition s (median)",
            "max s",
            "load average (1 min) before -> after",
        ),
        rows,
    )
    one = result["runs"]["1"]["texts_per_s"]
    needed = md_table(
        ("texts to backfill in one day", "workers needed (at the 1-worker rate)"),
        [(int(n), w) for n, w in result["needed"].items()],
    )
    return "\n".join(
        [
            "## Cluster: scoring fanned out over Celery workers",
            "",
            f"Command: `{COMMAND}`. A fresh `pulse cluster up --workers N` (CeleryExecutor, Redis, PostgreSQL metadata DB; "
            "concurrency 1 and one torch thread per worker) runs `community_pipeline` through the REST API on "
            f"[{WINDOW[0][:10]}, {WINDOW[1][:10]}) of the scaled beer dump, partitions of {PARTITION_ROWS} texts; model: "
            f"{result['model']}. Throughput = texts / (last partition's end - first partition's start); overhead = task "
            "duration - seconds inside `score` (task start, imports, model load, Parquet I/O). The machine has 2 cores "
            "shared with other work (the scheduler, API server and the other agents' jobs run beside the workers).",
            "",
            table,
            "",
            f"- 2 workers vs 1: **{result['ratio']:.2f}x** the throughput.",
            f"- Backfill in one day at the measured 1-worker rate ({one:,.1f} texts/s), assuming linear scaling (each worker "
            "on its own cores; the ratio above is what 2 workers on 2 shared cores gave):",
            "",
            needed,
        ]
    )
