"""Data quality: Great Expectations validation time per million rows (``warehouse.quality.validate``).

Synthetic frames are generated *from the suites themselves* (:func:`synthetic_frames`): for
every table a suite checks, the columns its checks read, with values that satisfy them
(non-null, inside the value set, between the bounds, unique where a uniqueness check asks),
typed from the canonical schema where the table is a staging table. So the benchmark follows
the suites as they change and measures the passing path (what a healthy run pays).

* staging suite (:data:`warehouse.quality.STAGING_SUITE`): a batch of N rows split like the
  beer dump (58% engagement events, 21% content, 21% users);
* marts suite (:data:`warehouse.quality.MARTS_SUITE`): N rows of ``moderation.scores`` (the
  only table it checks that grows with the community) plus small marts.

Each size runs in a fresh worker with Great Expectations imported before the timing (its
~4 s import is reported apart). Seconds per million rows = the slope between the two largest
sizes; the fixed cost = the time at the smallest size minus its rows' share.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

from benchmarks.common import BenchConfig, md_table, median, run_worker

NAME = "quality"
COMMAND = "python -m benchmarks.run --only quality"
STAGING_SHARES = {"staging.engagement_events": 0.58, "staging.content": 0.21, "staging.users": 0.21}
SMALL_MART_ROWS = 2000
SIZES = {"full": (100_000, 1_000_000), "quick": (10_000, 100_000), "smoke": (1_000, 5_000)}


def _column_specs(checks: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Per table and column, what the checks demand: not_null, value_set, min/max, unique."""
    specs: dict[str, dict[str, dict[str, Any]]] = {}
    for c in checks:
        table = specs.setdefault(c.table, {})
        k = c.kwargs
        for col in c.columns:
            spec = table.setdefault(col, {})
            if c.expectation == "ExpectColumnValuesToBeInSet":
                spec["value_set"] = list(k["value_set"])
            elif c.expectation == "ExpectColumnValuesToBeBetween":
                spec["min"], spec["max"] = k.get("min_value"), k.get("max_value")
            elif c.expectation == "ExpectCompoundColumnsToBeUnique":
                spec["unique"] = True
            spec.setdefault("not_null", True)
    return specs


def _column(name: str, spec: dict[str, Any], n: int, dtype: Any, now: datetime, rng: Any) -> Any:
    import numpy as np
    import polars as pl

    from warehouse.quality import NOW

    lo, hi = spec.get("min"), spec.get("max")
    if isinstance(lo, datetime) or isinstance(hi, datetime) or lo is NOW or hi is NOW:
        dtype = pl.Datetime("us")
    if "value_set" in spec:
        values = spec["value_set"]
        return pl.Series(name, [values[i % len(values)] for i in range(n)], dtype=dtype)
    if dtype is None:
        if name in {"day", "week_start"}:
            dtype = pl.Date()
        elif isinstance(lo, float) or isinstance(hi, float):
            dtype = pl.Float64()
        elif isinstance(lo, int) or isinstance(hi, int):
            dtype = pl.Int64()
        else:
            dtype = pl.String()
    if dtype == pl.Datetime("us"):
        end = now if hi is None or hi is NOW else hi
        offsets = np.arange(n) if spec.get("unique") else rng.integers(0, 10**6, n)
        return pl.Series(name, np.datetime64(end, "us") - (offsets + 1) * np.timedelta64(1, "s"))
    if dtype == pl.Date():
        days = np.arange(n) if spec.get("unique") else rng.integers(0, 3650, n)
        return pl.Series(name, np.datetime64(date(2000, 1, 1), "D") + days.astype("timedelta64[D]"))
    if dtype.is_integer():
        low = int(lo) if lo is not None else 0
        high = int(hi) if hi is not None else low + 1000
        if spec.get("unique"):
            return pl.Series(name, np.arange(n) + low, dtype=dtype)
        return pl.Series(name, rng.integers(low, high + 1, n), dtype=dtype)
    if dtype.is_float():
        low = float(lo) if lo is not None else 0.0
        high = float(hi) if hi is not None else low + 100.0
        return pl.Series(name, rng.uniform(low, high, n), dtype=dtype)
    if dtype == pl.Boolean():
        return pl.Series(name, np.ones(n, dtype=bool))
    if isinstance(dtype, pl.List):
        return pl.Series(name, [["x"]] * n, dtype=dtype)
    if spec.get("unique"):
        return pl.Series(name, np.arange(n).astype(str), dtype=pl.String)
    return pl.Series(name, np.char.add("v", (np.arange(n) % 997).astype(str)), dtype=pl.String)


def synthetic_frames(checks: Any, rows: dict[str, int], *, now: datetime, seed: int = 0) -> dict[str, Any]:
    """Polars frames that pass ``checks``: for each table, ``rows[table]`` rows (default 1,000).

    Columns of compound-unique checks other than the first distinct one are held constant
    (e.g. ``source``), and the last one numbered, so the key is unique. Staging tables take
    their types from :data:`warehouse.canonical.SCHEMAS`.
    """
    import numpy as np
    import polars as pl

    from warehouse.canonical import SCHEMAS

    rng = np.random.default_rng(seed)
    specs = _column_specs(checks)
    for c in checks:  # in a compound key, only the last column varies; the others are constant
        if c.expectation == "ExpectCompoundColumnsToBeUnique":
            for col in c.columns[:-1]:
                specs[c.table][col].pop("unique", None)
                specs[c.table][col]["value_set"] = specs[c.table][col].get("value_set", ["bench"])[:1]
    frames = {}
    for table, cols in specs.items():
        n = rows.get(table, 1000)
        schema = SCHEMAS.get(table.split(".", 1)[1], {}) if table.startswith("staging.") else {}
        series = [_column(col, spec, n, schema.get(col), now, rng) for col, spec in cols.items()]
        frames[table] = pl.DataFrame(series)
    return frames


def validate_rows(suite: str, total_rows: int) -> dict[str, Any]:
    """Worker: validate synthetic frames of ``total_rows`` with the ``suite`` (``staging`` | ``marts``).

    Returns:
        ``rows`` (validated rows, all tables), ``seconds`` (the ``validate`` call),
        ``import_s`` (importing Great Expectations), ``failed`` (must be 0), ``expectations``.
    """
    from warehouse.quality import SUITES, validate

    t0 = time.perf_counter()
    import great_expectations  # noqa: F401

    import_s = time.perf_counter() - t0
    checks = SUITES[suite]
    now = datetime(2026, 1, 1)
    if suite == "staging":
        rows = {t: round(total_rows * share) for t, share in STAGING_SHARES.items()}
    else:
        rows = {c.table: SMALL_MART_ROWS for c in checks}
        rows["moderation.scores"] = total_rows
    frames = synthetic_frames(checks, rows, now=now)
    t0 = time.perf_counter()
    result = validate(frames, checks, suite=suite, run_id="bench", now=now)
    seconds = time.perf_counter() - t0
    return {
        "rows": sum(f.height for f in frames.values()),
        "seconds": seconds,
        "import_s": import_s,
        "failed": [r.target for r in result.failed],
        "expectations": len(result.results),
    }


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Validate each suite at each size of :data:`SIZES` for ``cfg.profile``.

    Returns:
        ``{suite: {"points": [{rows, seconds, max_rss_mb}], "s_per_million_rows", "fixed_s"}}``.
    """
    out: dict[str, Any] = {}
    reps = max(1, min(cfg.repeats, 2))
    for suite in ("staging", "marts"):
        points = []
        for n in SIZES[cfg.profile]:
            runs = [
                run_worker(
                    "benchmarks.quality:validate_rows", {"suite": suite, "total_rows": n}, in_process=cfg.in_process
                )
                for _ in range(reps)
            ]
            points.append({
                "rows": runs[0]["rows"], "seconds": median(r["seconds"] for r in runs), "max_rss_mb": median(r["max_rss_mb"] for r in runs),
                "import_s": median(r["import_s"] for r in runs), "failed": runs[0]["failed"], "expectations": runs[0]["expectations"],
            })  # fmt: skip
        (r1, t1), (r2, t2) = (points[-2]["rows"], points[-2]["seconds"]), (points[-1]["rows"], points[-1]["seconds"])
        slope = (t2 - t1) / (r2 - r1) * 1e6 if r2 != r1 else None
        fixed = points[0]["seconds"] - (slope or 0) * points[0]["rows"] / 1e6
        # below ~1M rows the fixed cost dominates and timing noise can make the slope negative
        out[suite] = {"points": points, "s_per_million_rows": slope, "fixed_s": max(fixed, 0.0), "expectations": points[0]["expectations"],
                      "slope_reliable": slope is not None and slope > 0}  # fmt: skip
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    rows = []
    for suite, e in result.items():
        for p in e["points"]:
            rows.append(
                (
                    suite,
                    e["expectations"],
                    p["rows"],
                    p["seconds"],
                    p["seconds"] / p["rows"] * 1e6,
                    p["max_rss_mb"],
                    "all passed" if not p["failed"] else f"{len(p['failed'])} failed",
                )
            )
    summary = md_table(
        ("suite", "seconds per million rows (slope)", "fixed cost per validation s", "GE import s (once per process)"),
        [
            (
                s,
                e["s_per_million_rows"] if e.get("slope_reliable", True) else "below timing noise",
                e["fixed_s"],
                e["points"][0]["import_s"],
            )
            for s, e in result.items()
        ],
    )
    return "\n".join(
        [
            "## Data quality: Great Expectations validation time",
            "",
            f"Command: `{COMMAND}`. `warehouse.quality.validate` (GE 1.x, pandas frames in an ephemeral context) on synthetic "
            "frames generated from the suites' own checks (every check passes). Staging suite: a batch split like the beer dump "
            "(58% events, 21% content, 21% users); marts suite: N rows of `moderation.scores` plus small marts. One fresh process per "
            "measurement, GE imported before the timing.",
            "",
            md_table(
                ("suite", "expectations", "rows", "seconds", "s per million rows", "peak RSS MiB", "result"), rows
            ),
            "",
            summary,
        ]
    )
