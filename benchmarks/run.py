"""Run the benchmarks and write ``BENCHMARKS.md`` and ``benchmarks/results/latest.json``.

Usage::

    python -m benchmarks.run                     # everything (~20-30 min on 2 cores)
    python -m benchmarks.run --quick             # short pass (~3 min): 1x and 10x, few repeats
    python -m benchmarks.run --only scoring      # one benchmark (repeatable: --only ingest --only quality)
    python -m benchmarks.run --sizes 1,10,100    # beer-dump scale factors (scale, incremental, dashboards, ingest)

Order: ingest, quality, scoring, scale, incremental, dashboards, hotspots (the last three
reuse the warehouses and snapshots that scale builds; run alone, they build what they need), api (a
real ``pulse api serve`` under locust), cluster, backup (``pulse backup`` create / verify / restore on the
incremental benchmark's history warehouses), loader_memory (peak RSS and junk throughput of the
event-export loader on decompression bombs and other hostile inputs). Each
benchmark's figures replace only its own block of ``BENCHMARKS.md`` and its own key of the
JSON, so a partial run never erases the others. A benchmark that fails is reported, the others
still run, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BENCHMARKS_MD,
    RESULTS_JSON,
    BenchConfig,
    config_dict,
    loadavg,
    machine_info,
    md_table,
    update_machine,
    update_results,
    update_section,
)

BENCHMARKS: tuple[str, ...] = (
    "ingest",
    "quality",
    "scoring",
    "scale",
    "incremental",
    "dashboards",
    "hotspots",
    "api",
    "cluster",
    "backup",
    "loader_memory",
    "model",
    "backfill",
)

log = logging.getLogger("benchmarks")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes takes comma-separated integers such as 1,10,100, got {text!r}"
        ) from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--sizes needs factors >= 1, got {text!r}")
    return tuple(sorted(set(sizes)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description="Community Pulse benchmarks")
    parser.add_argument("--quick", action="store_true", help="a short pass: sizes 1,10, fewer repeats and texts")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")  # fmt: skip
    parser.add_argument("--sizes", type=_sizes, default=None, help="beer-dump scale factors, e.g. 1,10,100")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions per measurement (median reported)")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="bulky outputs (default $PULSE_BENCH_DIR or /tmp/pulse-bench)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the sections; do not touch BENCHMARKS.md or the JSON"
    )
    return parser.parse_args(argv)


def machine_section(info: dict[str, Any]) -> str:
    """The "Machine" block: where and when the figures were measured."""
    pk = info["packages"]
    return "\n".join(
        [
            "## Machine",
            "",
            md_table(
                ("", ""),
                [
                    ("date", info["date_utc"]),
                    (
                        "CPU",
                        f"{info['cpu_model']}, {info['logical_cores']} logical cores ({info['physical_cores']} physical)",
                    ),
                    ("RAM", f"{info['ram_gib']} GiB"),
                    ("OS", info["os"]),
                    ("Python", info["python"]),
                    ("packages", ", ".join(f"{k} {v}" for k, v in pk.items() if v)),
                    ("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in info["loadavg"])),
                    ("commit", info.get("git_commit") or "–"),
                ],
            ),
            "",
            "The machine is shared with other work (see the load average, and each section's own): absolute times are "
            "indicative; ratios measured side by side in the same run are the comparable figures.",
        ]
    )


def run_benchmarks(
    cfg: BenchConfig,
    names: tuple[str, ...],
    *,
    write: bool = True,
    md_path: Path = BENCHMARKS_MD,
    json_path: Path = RESULTS_JSON,
) -> dict[str, Any]:
    """Run ``names`` in :data:`BENCHMARKS` order with ``cfg``; write each section as it finishes.

    With ``write``, each benchmark's Markdown block of ``md_path`` and its key of ``json_path``
    are replaced as soon as it finishes (so an interrupted run keeps what it measured).

    Returns:
        ``{name: record}`` where record holds ``results`` (or ``error``), ``seconds``,
        ``loadavg_before``/``after``, ``command`` and ``config``.
    """
    records: dict[str, Any] = {}
    info = machine_info()
    if write:
        update_machine(info, json_path)
        update_section("machine", machine_section(info), md_path)
    for name in [n for n in BENCHMARKS if n in names]:
        module = importlib.import_module(f"benchmarks.{name}")
        before = loadavg()
        t0 = time.perf_counter()
        print(f"[bench] {name} ... (load {before[0]:.2f})", file=sys.stderr, flush=True)
        try:
            results = module.run(cfg)
        except Exception as exc:  # noqa: BLE001  (reported; the other benchmarks still run)
            traceback.print_exc()
            records[name] = {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0}
            print(f"[bench] {name} FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        seconds = time.perf_counter() - t0
        after = loadavg()
        record = {
            "results": results, "seconds": seconds, "loadavg_before": before, "loadavg_after": after,
            "date_utc": machine_info()["date_utc"], "command": module.COMMAND, "config": config_dict(cfg),
        }  # fmt: skip
        records[name] = record
        body = module.render(results) + (
            f"\n\n<sub>Measured {record['date_utc']} with profile `{cfg.profile}` in {seconds:.0f} s; "
            f"load average before / after: {before[0]:.2f} / {after[0]:.2f}.</sub>"
        )
        if write:
            update_results(name, record, json_path)
            update_section(name, body, md_path)
        else:
            print(body)
        print(f"[bench] {name} done in {seconds:.0f} s", file=sys.stderr, flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.run``; exit code 1 when a benchmark failed."""
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    cfg = BenchConfig.for_profile(
        "quick" if args.quick else "full", sizes=args.sizes, repeats=args.repeats, work_dir=args.work_dir
    )
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    names = tuple(args.only) if args.only else BENCHMARKS
    t0 = time.perf_counter()
    records = run_benchmarks(cfg, names, write=not args.no_write)
    failed = [n for n, r in records.items() if "error" in r]
    print(f"[bench] {len(records) - len(failed)} of {len(records)} benchmarks done in {time.perf_counter() - t0:.0f} s; "
          f"figures in {BENCHMARKS_MD} and {RESULTS_JSON}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), file=sys.stderr)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
