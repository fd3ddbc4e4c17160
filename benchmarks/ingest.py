"""Ingest: Stack Exchange dump parse + load, rows/s and peak memory, against the plain alternative.

Measured on the same files, side by side, each run in a fresh worker process (so peak RSS is
the run's own):

* ``ours``: :func:`warehouse.sources.stackexchange.extract_stackexchange` (streaming parse,
  HTML to text, validation, skip rules, quarantine) then :func:`warehouse.load.land`,
  :func:`~warehouse.load.quarantine_dangling` and :func:`~warehouse.load.upsert_batch` into a
  fresh warehouse (the pipeline's extract + load; the Great Expectations suite is measured
  separately in the ``quality`` benchmark).
* ``pandas + DuckDB``: ``pandas.read_xml`` of Posts/Comments/Votes/Users then
  ``CREATE TABLE t AS SELECT * FROM df`` (DuckDB's vectorised pandas scan: the best case for
  a hand-rolled script).
* ``pandas + to_sql``: the same frames written with ``DataFrame.to_sql`` into SQLite (the
  classic hand-rolled script; pandas' ``to_sql`` into DuckDB needs the ``duckdb-engine``
  SQLAlchemy driver, which the project does not ship).
* ``row inserts``: the same frames inserted row by row with DuckDB ``executemany`` (a loop of
  INSERTs), on the first :data:`ROW_INSERT_LIMIT` rows of each file only (it runs at about a
  thousand rows per second); rows/s is reported and the full time extrapolated.

The plain paths do less work: no HTML to text, no validation or quarantine, no idempotent
upsert, and they keep every attribute (e-mail-free but including profile texts we never
ingest). Rows = ``<row>`` elements read from the four files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import BenchConfig, md_table, median, run_worker

NAME = "ingest"
FILES: tuple[str, ...] = ("Posts.xml", "Comments.xml", "Votes.xml", "Users.xml")
ROW_INSERT_LIMIT = 2000
COMMAND = "python -m benchmarks.run --only ingest"


# --------------------------------------------------------------------------------------------
# Worker functions (run in a fresh process each)


def ours(dump: str, warehouse: str) -> dict[str, Any]:
    """Parse ``dump`` with our connector and load it into a fresh warehouse file.

    Returns:
        ``rows_read`` (records read over all streams), ``rows_loaded`` (inserted into staging),
        ``parse_s``, ``load_s``, ``total_s`` (seconds) and ``base_rss_mb`` (RSS after imports).
    """
    from benchmarks.common import current_rss_mb
    from pulse.steps import utcnow
    from warehouse.db import open_warehouse
    from warehouse.load import land, quarantine_dangling, record_extract_counts, upsert_batch
    from warehouse.sources.stackexchange import extract_stackexchange

    Path(warehouse).unlink(missing_ok=True)
    base = current_rss_mb()
    with open_warehouse(warehouse) as con:  # migrations applied outside the timing
        t0 = time.perf_counter()
        ex = extract_stackexchange(Path(dump), now=utcnow())
        t1 = time.perf_counter()
        land(con, ex, "bench")
        record_extract_counts(con, "bench", ex.source, ex.counts)
        quarantine_dangling(con, "bench")
        upserts = upsert_batch(con, "bench")
        t2 = time.perf_counter()
    return {
        "rows_read": sum(c.read for c in ex.counts.values()),
        "rows_loaded": sum(u.inserted for u in upserts.values()),
        "parse_s": t1 - t0,
        "load_s": t2 - t1,
        "total_s": t2 - t0,
        "base_rss_mb": round(base, 1),
    }


def _read_frames(dump: str) -> tuple[dict[str, Any], float]:
    import pandas as pd

    t0 = time.perf_counter()
    frames = {name: pd.read_xml(Path(dump) / name, parser="lxml") for name in FILES}
    return frames, time.perf_counter() - t0


def pandas_plain(dump: str, target: str, db: str) -> dict[str, Any]:
    """``pandas.read_xml`` the four files, then write them to ``db`` (``target`` duckdb | sqlite).

    Returns:
        ``rows_read``, ``parse_s``, ``load_s``, ``total_s``, ``base_rss_mb``.
    """
    import sqlite3

    import duckdb
    import pandas  # noqa: F401  (imported before the baseline RSS, like ours imports polars)

    from benchmarks.common import current_rss_mb

    Path(db).unlink(missing_ok=True)
    base = current_rss_mb()
    frames, parse_s = _read_frames(dump)
    t1 = time.perf_counter()
    if target == "duckdb":
        con = duckdb.connect(db)
        for name, df in frames.items():  # noqa: B007  (df is read by DuckDB's replacement scan)
            con.execute(f"create table {name.removesuffix('.xml').lower()} as select * from df")
        con.close()
    elif target == "sqlite":
        scon = sqlite3.connect(db)
        for name, df in frames.items():
            df.to_sql(name.removesuffix(".xml").lower(), scon, index=False)
        scon.commit()
        scon.close()
    else:
        raise ValueError(f"unknown target {target!r}; use duckdb or sqlite")
    load_s = time.perf_counter() - t1
    return {
        "rows_read": sum(len(df) for df in frames.values()),
        "parse_s": parse_s,
        "load_s": load_s,
        "total_s": parse_s + load_s,
        "base_rss_mb": round(base, 1),
    }


def row_inserts(dump: str, db: str, limit: int = ROW_INSERT_LIMIT) -> dict[str, Any]:
    """Insert the first ``limit`` rows of each file into DuckDB one row at a time (``executemany``).

    Returns:
        ``rows`` inserted, ``insert_s`` and ``rows_per_s`` of the inserts alone.
    """
    import math

    import duckdb

    Path(db).unlink(missing_ok=True)
    frames, _ = _read_frames(dump)
    con = duckdb.connect(db)
    rows_done, elapsed = 0, 0.0
    for name, df in frames.items():
        table = name.removesuffix(".xml").lower()
        con.execute(f"create table {table} as select * from df limit 0")
        rows = [
            tuple(None if isinstance(v, float) and math.isnan(v) else v for v in r)
            for r in df.head(limit).itertuples(index=False, name=None)
        ]
        marks = ", ".join("?" for _ in df.columns)
        t0 = time.perf_counter()
        con.executemany(f"insert into {table} values ({marks})", rows)
        elapsed += time.perf_counter() - t0
        rows_done += len(rows)
    con.close()
    return {"rows": rows_done, "insert_s": elapsed, "rows_per_s": rows_done / elapsed if elapsed else None}


# --------------------------------------------------------------------------------------------
# Benchmark


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    total = median(r["total_s"] for r in runs)
    rows = runs[0]["rows_read"]
    return {
        "rows_read": rows,
        "rows_loaded": runs[0].get("rows_loaded"),
        "parse_s": median(r["parse_s"] for r in runs),
        "load_s": median(r["load_s"] for r in runs),
        "total_s": total,
        "rows_per_s": rows / total if total else None,
        "max_rss_mb": median(r["max_rss_mb"] for r in runs),
        "base_rss_mb": median(r["base_rss_mb"] for r in runs),
        "runs": len(runs),
    }


def run(cfg: BenchConfig, dumps: dict[int, Path] | None = None) -> dict[str, Any]:
    """Measure the three ingest paths at each size of ``cfg.sizes`` (capped at 10x; 100x is in ``scale``).

    Args:
        cfg: the benchmark configuration.
        dumps: scaled dump folders by factor (built with :mod:`benchmarks.scale_dump` when missing).

    Returns:
        ``{"sizes": {factor: {"bytes", "ours", "pandas_duckdb", "pandas_sqlite", ratios}},
        "row_inserts": {...}}``; times in seconds, memory in MiB.
    """
    from benchmarks.pipeline import scaled_dump

    cap = 10 if cfg.profile == "full" else 1  # 100x ingest is the extract + load of the scale benchmark
    sizes = [s for s in cfg.sizes if s <= cap] or [min(cfg.sizes)]
    work = cfg.work_dir / "ingest"
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"sizes": {}}
    for factor in sizes:
        dump = (dumps or {}).get(factor) or scaled_dump(cfg, factor)
        size_bytes = sum((dump / f).stat().st_size for f in FILES)
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "pandas_duckdb": [], "pandas_sqlite": []}
        for _ in range(cfg.repeats):  # interleaved, so drift in machine load hits every path alike
            runs["ours"].append(
                run_worker(
                    "benchmarks.ingest:ours",
                    {"dump": str(dump), "warehouse": str(work / "ours.duckdb")},
                    in_process=cfg.in_process,
                )
            )
            runs["pandas_duckdb"].append(
                run_worker(
                    "benchmarks.ingest:pandas_plain",
                    {"dump": str(dump), "target": "duckdb", "db": str(work / "plain.duckdb")},
                    in_process=cfg.in_process,
                )
            )
            runs["pandas_sqlite"].append(
                run_worker(
                    "benchmarks.ingest:pandas_plain",
                    {"dump": str(dump), "target": "sqlite", "db": str(work / "plain.sqlite")},
                    in_process=cfg.in_process,
                )
            )
        entry = {name: _summarise(r) for name, r in runs.items()}
        entry["bytes"] = size_bytes
        for name in ("pandas_duckdb", "pandas_sqlite"):
            entry[f"time_ratio_ours_vs_{name}"] = entry["ours"]["total_s"] / entry[name]["total_s"]
            entry[f"rss_ratio_ours_vs_{name}"] = entry["ours"]["max_rss_mb"] / entry[name]["max_rss_mb"]
        out["sizes"][str(factor)] = entry
    limit = 200 if cfg.profile == "smoke" else ROW_INSERT_LIMIT
    dump1 = (dumps or {}).get(1) or scaled_dump(cfg, 1)
    ri = [
        run_worker(
            "benchmarks.ingest:row_inserts",
            {"dump": str(dump1), "db": str(work / "rows.duckdb"), "limit": limit},
            in_process=cfg.in_process,
        )
        for _ in range(max(1, min(cfg.repeats, 2)))
    ]
    rps = median(r["rows_per_s"] for r in ri)
    out["row_inserts"] = {"rows": ri[0]["rows"], "rows_per_s": rps, "limit_per_file": limit}
    for entry in out["sizes"].values():
        entry["row_inserts_extrapolated_s"] = entry["ours"]["rows_read"] / rps if rps else None
    return out


def _verdict(result: dict[str, Any]) -> str:
    """One data-driven sentence per comparison at the largest size measured."""
    factor = max(result["sizes"], key=int)
    e = result["sizes"][factor]
    ours = e["ours"]
    parts = []
    for key, label in (("pandas_duckdb", "pandas.read_xml + DuckDB"), ("pandas_sqlite", "pandas.read_xml + to_sql")):
        r = e[key]
        t = ours["total_s"] / r["total_s"]
        m = (ours["max_rss_mb"] - ours["base_rss_mb"]) / max(r["max_rss_mb"] - r["base_rss_mb"], 1e-9)
        parts.append(
            f"against {label} ours takes {t:.2f}x the time ({'slower' if t > 1 else 'faster'}) and {m:.2f}x the memory above the imports"
        )
    return (
        f"At {factor}x, " + "; ".join(parts) + ". Row-by-row INSERTs into DuckDB run at "
        f"{result['row_inserts']['rows_per_s']:,.0f} rows/s (first {result['row_inserts']['limit_per_file']:,} rows of each file), "
        f"{(e.get('row_inserts_extrapolated_s') or 0) / ours['total_s']:.0f}x our time."
    )


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    rows = []
    for factor, e in result["sizes"].items():
        ours = e["ours"]
        for key, label in (
            ("ours", "**ours** (connector + upsert)"),
            ("pandas_duckdb", "pandas.read_xml + DuckDB insert"),
            ("pandas_sqlite", "pandas.read_xml + to_sql (SQLite)"),
        ):
            r = e[key]
            rows.append(
                (
                    f"{factor}x ({e['bytes'] / 2**20:.0f} MiB)",
                    label,
                    r["rows_read"],
                    r["parse_s"],
                    r["load_s"],
                    r["total_s"],
                    r["rows_per_s"],
                    r["max_rss_mb"],
                    r["max_rss_mb"] - r["base_rss_mb"],
                    r["total_s"] / ours["total_s"],
                )
            )
        rows.append(
            (
                f"{factor}x",
                "row-by-row INSERTs (extrapolated)",
                ours["rows_read"],
                None,
                e.get("row_inserts_extrapolated_s"),
                e.get("row_inserts_extrapolated_s"),
                result["row_inserts"]["rows_per_s"],
                None,
                None,
                (e.get("row_inserts_extrapolated_s") or 0) / ours["total_s"],
            )
        )
    table = md_table(
        (
            "dump",
            "path",
            "rows",
            "parse s",
            "load s",
            "total s",
            "rows/s",
            "peak RSS MiB",
            "RSS over imports MiB",
            "time vs ours",
        ),
        rows,
    )
    return "\n".join(
        [
            "## Ingest: dump parse + load",
            "",
            f"Command: `{COMMAND}` (sizes from `--sizes`, capped at 10x here; 100x ingest is the extract + load rows of the scale table). "
            "Median of the runs; each run in a fresh process, the paths interleaved.",
            "",
            table,
            "",
            "`time vs ours` > 1 means slower than ours. The plain paths store raw attributes only: no HTML-to-text, no validation, "
            "quarantine or skip rules, no idempotent upsert (a re-run would duplicate every row), and they keep profile texts we never "
            "ingest. " + _verdict(result),
        ]
    )
