"""Dump backfill: a daily backfill of the beer dump's whole history against one full load (issue #17).

The beer dump scaled 10x (:mod:`benchmarks.scale_dump`; 1x in the smoke profile) is extracted
with :func:`warehouse.sources.stackexchange.extract_stackexchange`, the pipeline's extract step,
each measurement in a fresh worker process:

* **single full load**: the whole dump in one extract (``since=None, until=None``), no cache;
* **daily backfill, parse cache**: every day of the dump's history in turn (the first interval
  open at the start, ``[None, first day + 1)``, then ``[day, day + 1)``, the last one open at the
  end), with the parse cache
  (:mod:`warehouse.sources.dump_cache`) in an empty folder: the first interval builds it, every
  later one is cut from it;
* **daily backfill, no cache (date pre-filter)** and **before #17 (every row parsed per day)**:
  a few consecutive days measured, the whole backfill extrapolated from their mean (labelled so).

Only the extract step is timed (the load, score and transform steps of each day's pipeline run
are the incremental benchmark's subject). The rows read per stream, summed over the backfill's
days, must equal the single load's for users and votes (every row belongs to exactly one day) and
be at least the single load's for content (a post edited on a later day is read on both days):
``partition_ok``.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import BenchConfig, beer_dump_path, loadavg, md_table, median, run_worker

NAME = "backfill"
COMMAND = "python -m benchmarks.run --only backfill"

#: Consecutive days measured for the uncached paths (whose cost per day is flat), from this day on.
SAMPLE_START = datetime(2015, 3, 1)


def _read(ex: Any) -> dict[str, int]:
    return {s: c.read for s, c in ex.counts.items()}


def single_load(dump: str) -> dict[str, Any]:
    """Worker: one extract of the whole dump without cache; seconds, rows read, first and last day."""
    import polars as pl

    from warehouse.sources.stackexchange import extract_stackexchange

    t0 = time.perf_counter()
    ex = extract_stackexchange(Path(dump), cache_dir=False)
    seconds = time.perf_counter() - t0
    dates = pl.concat(
        [ex.content["created_at"], ex.content["edited_at"], ex.engagement_events["occurred_at"], ex.users["created_at"]]
    ).drop_nulls()
    return {"seconds": seconds, "read": _read(ex), "first": str(dates.min()), "last": str(dates.max())}


def backfill(dump: str, cache_dir: str, first: str, last: str) -> dict[str, Any]:
    """Worker: every day from ``first`` to ``last`` (ISO dates) through the parse cache in ``cache_dir``."""
    from warehouse.sources.stackexchange import extract_stackexchange

    day, end = datetime.fromisoformat(first), datetime.fromisoformat(last)
    read: dict[str, int] = {}
    times: list[float] = []
    t0 = time.perf_counter()
    since: datetime | None = None
    while day <= end:
        until = day + timedelta(days=1) if day < end else None  # the last interval is open: nothing is left out
        t = time.perf_counter()
        ex = extract_stackexchange(Path(dump), since=since, until=until, cache_dir=Path(cache_dir))
        times.append(time.perf_counter() - t)
        for s, n in _read(ex).items():
            read[s] = read.get(s, 0) + n
        since, day = until, day + timedelta(days=1)
    return {
        "seconds": time.perf_counter() - t0,
        "days": len(times),
        "first_s": times[0],
        "cut_median_s": median(times[1:]),
        "cut_max_s": max(times[1:]),
        "read": read,
    }


def sample_days(dump: str, days: int, prefilter: bool) -> dict[str, Any]:
    """Worker: ``days`` consecutive days from :data:`SAMPLE_START` without cache, with or without the pre-filter."""
    from warehouse.canonical import STREAMS, QuarantineLog, StreamCounts
    from warehouse.sources import stackexchange as se

    times = []
    for i in range(days):
        since = SAMPLE_START + timedelta(days=i)
        run = se._Run("bench", since, since + timedelta(days=1), datetime.now(UTC).replace(tzinfo=None), QuarantineLog("bench"),
                      {s: StreamCounts() for s in STREAMS}, prefilter=prefilter)  # fmt: skip
        t = time.perf_counter()
        se._extract(run, se._dump_files(Path(dump)))
        times.append(time.perf_counter() - t)
    return {"per_day_s": sum(times) / len(times), "days": days}


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Measure the single load, the cached daily backfill and samples of the uncached ones.

    Returns:
        ``{"factor", "dump_mb", "days", "single": {...}, "backfill": {...}, "prefilter": {...},
        "parse": {...}, "cache_mb", "partition_ok", "load": {...}}``; seconds.
    """
    from benchmarks.scale_dump import scale_dump

    smoke = cfg.profile == "smoke"
    factor = 1 if smoke else 10
    dump = scale_dump(beer_dump_path(), cfg.work_dir / "dumps", factor).path
    out: dict[str, Any] = {"factor": factor, "dump_mb": sum(f.stat().st_size for f in dump.glob("*.xml")) / 2**20}
    load: dict[str, list[float]] = {"single": [], "backfill": []}
    singles, backfills = [], []
    cache = cfg.work_dir / "backfill-cache"
    # Pairs (single load, then the backfill from an empty cache) measured in turn: on a shared machine
    # the load drifts, and the ratio within a pair compares like with like.
    for _ in range(1 if smoke else cfg.repeats):
        load["single"].append(loadavg()[0])
        singles.append(run_worker("benchmarks.backfill:single_load", {"dump": str(dump)}, in_process=cfg.in_process))
        shutil.rmtree(cache, ignore_errors=True)
        load["backfill"].append(loadavg()[0])
        first, last = singles[0]["first"][:10], singles[0]["last"][:10]
        kwargs = {"dump": str(dump), "cache_dir": str(cache), "first": first, "last": last}
        backfills.append(run_worker("benchmarks.backfill:backfill", kwargs, in_process=cfg.in_process))
    load["backfill"].append(loadavg()[0])
    out["single"] = {"seconds": median(s["seconds"] for s in singles), "runs": len(singles), "read": singles[0]["read"]}
    out["single"]["peak_rss_mb"] = median(s["max_rss_mb"] for s in singles)
    out["backfill"] = {k: median(b[k] for b in backfills) for k in ("seconds", "first_s", "cut_median_s", "cut_max_s")}
    out["backfill"].update(days=backfills[0]["days"], read=backfills[0]["read"])
    out["backfill"]["peak_rss_mb"] = median(b["max_rss_mb"] for b in backfills)
    out["pair_ratios"] = [b["seconds"] / s["seconds"] for s, b in zip(singles, backfills, strict=True)]
    out["days"] = out["backfill"]["days"]
    out["first_day"], out["last_day"] = singles[0]["first"][:10], singles[0]["last"][:10]
    out["cache_mb"] = sum(f.stat().st_size for f in cache.rglob("*.parquet")) / 2**20
    got, want = out["backfill"]["read"], out["single"]["read"]
    out["partition_ok"] = all(got[s] == want[s] for s in ("users", "engagement_events")) and (
        got["content"] >= want["content"]  # a post edited on a later day is read on both days
    )
    for key, days, prefilter in (("prefilter", 2 if smoke else 7, True), ("parse", 1 if smoke else 3, False)):
        load[key] = [loadavg()[0]]
        kwargs = {"dump": str(dump), "days": days, "prefilter": prefilter}
        out[key] = run_worker("benchmarks.backfill:sample_days", kwargs, in_process=cfg.in_process)
        out[key]["extrapolated_s"] = out[key]["per_day_s"] * out["days"]
        load[key].append(loadavg()[0])
    out["load"] = load
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    single, bf, days = result["single"], result["backfill"], result["days"]
    base = single["seconds"]

    def loads(key: str) -> str:
        return " – ".join(f"{x:.1f}" for x in result["load"][key])

    rows = [
        ("single full load (one extract, no cache)", "–", base, "–", 1.0, loads("single")),
        (
            "**daily backfill, parse cache** (measured: the first interval builds the cache)",
            days,
            bf["seconds"],
            bf["cut_median_s"],
            bf["seconds"] / base,
            loads("backfill"),
        ),
        ("  of which the first interval (builds the cache)", 1, bf["first_s"], "–", bf["first_s"] / base, ""),
    ]
    for key, label in (
        ("prefilter", "daily backfill, no cache: date pre-filter"),
        ("parse", "daily backfill before #17: every row parsed per day"),
    ):
        r = result[key]
        rows.append(
            (
                f"{label} (**extrapolated** from {r['days']} days)",
                days,
                r["extrapolated_s"],
                r["per_day_s"],
                r["extrapolated_s"] / base,
                loads(key),
            )
        )
    table = md_table(("path", "days", "extract s", "s per day (median)", "vs single load", "load average"), rows)
    ratio = median(result["pair_ratios"])
    pairs = ", ".join(f"{r:.2f}" for r in result["pair_ratios"])
    return "\n".join(
        [
            f"## Dump backfill: every day of the beer dump at {result['factor']}x against one full load",
            "",
            f"Command: `{COMMAND}`. Dump: the beer dump scaled {result['factor']}x ({result['dump_mb']:.0f} MiB, "
            f"{sum(single['read'].values()):,} rows), {days:,} days of history. Only the extract step "
            "(`extract_stackexchange`) is timed, each path in a fresh process; single load and backfill are measured "
            f"in {single['runs']} pairs, one after the other, and the table gives medians. Target (issue #17): the daily "
            f"backfill at most 2x the single load; measured {ratio:.2f}x, the median of the pairs' ratios ({pairs}): "
            f"{'met' if ratio <= 2 else 'not met'}. Peak RSS: single load {single['peak_rss_mb']:.0f} MiB, backfill "
            f"{bf['peak_rss_mb']:.0f} MiB (the build holds the dump's outcomes, as a full load holds its rows). Users and votes read summed over the days equal the "
            f"single load's, content at least (edited posts are read again on their edit day): "
            f"{'yes' if result['partition_ok'] else 'NO'}. Cache on disk: {result['cache_mb']:.1f} MiB.",
            "",
            table,
            "",
            "The uncached per-day costs are flat in the day (each pass reads the whole dump), so their totals are the "
            "measured mean per day times the days; the load average (1 min) is given before and after each path.",
        ]
    )
