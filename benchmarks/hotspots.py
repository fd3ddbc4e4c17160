"""Hotspots: where the history-dependent time goes, and what the proposed fixes would save.

Runs on a *copy* of the largest history warehouse of the run (beer ``max(sizes)``x; built by
the scale benchmark, or now) and times, side by side, the current code path and the
alternative proposed in ``BENCHMARKS.md`` ("Findings"), without changing the project's code:

* score step, incremental shape (everything already scored): ``pending_texts``, the
  ``count(distinct content_hash)`` and ``refresh_flags`` (all history through polars) against
  fetching only candidate rows (any label at or above the lowest flag threshold) in SQL;
* score step, from scratch: ``score_pending`` committing every 256 texts (what
  ``pulse.steps.score`` asks for) against every 8,192 texts;
* publish: ``publish_snapshot`` as is against without ``moderation.scores`` (every score of
  every text, copied into every snapshot);
* transform: each mart's ``create or replace`` (all rebuilt from staging every run);
* dashboards: ``load_settings()`` (called by every ``dashboards.data.query``) as is against
  with the IANA zone list cached (``zoneinfo.available_timezones()`` walks the zone database
  on every call);
* extract of one day: a byte-level date pre-filter over the scaled dump (the work a windowed
  extract would do before parsing rows of other days; compare with the incremental table's
  extract time on the scaled dump).
"""

from __future__ import annotations

import re
import shutil
import time
import zoneinfo
from pathlib import Path
from typing import Any

from benchmarks.common import BenchConfig, md_table, run_worker
from benchmarks.pipeline import INCREMENTAL_DAY, ensure_history

NAME = "hotspots"
COMMAND = "python -m benchmarks.run --only hotspots"
SCRATCH_BATCHES = (256, 8192)


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class _TimingConnection:
    """Delegates to a DuckDB connection and sums the seconds of ``execute`` per statement head."""

    def __init__(self, con: Any) -> None:
        self._con = con
        self.seconds: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = self._con.execute(sql, *args, **kwargs)
        m = re.match(r"\s*create or replace table (\S+)", sql)
        key = m.group(1) if m else sql.split()[0].lower() if sql.split() else "?"
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0
        return out


def measure(warehouse: str, scratch: str, dump: str) -> dict[str, Any]:
    """Worker: the measurements listed in the module docstring, on a copy of ``warehouse``.

    Returns:
        ``{"score_incremental", "score_scratch", "publish", "transform", "settings_ms",
        "extract_prefilter"}`` (seconds unless named ``_ms``).
    """
    from moderation.scorers import LABELS, LexicalScorer
    from moderation.scoring import pending_texts, refresh_flags, score_pending
    from pulse.settings import load_settings
    from warehouse.db import frame, one, open_warehouse
    from warehouse.publish import SERVING_TABLES, publish_snapshot

    work = Path(scratch)
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "hotspots.duckdb"
    shutil.copyfile(warehouse, copy)
    settings = load_settings(warehouse=copy, serving=work / "serving.duckdb", scorer="lexical")
    scorer = LexicalScorer()
    out: dict[str, Any] = {}
    with open_warehouse(copy) as con:
        rows = one(con, "select count(*) from staging.content")[0]
        model = scorer.model_id
        low = min(settings.thresholds.values())
        candidates = " or ".join(f"s.{label} >= ?" for label in LABELS)
        inc = {
            "content_rows": rows,
            "pending_texts_s": _timed(lambda: pending_texts(con, model))[0],
            "count_distinct_s": _timed(lambda: one(con, "select count(distinct content_hash) from staging.content"))[0],
            "refresh_flags_s": _timed(lambda: refresh_flags(con, model, settings.thresholds, settings.hold_thresholds))[0],
            "candidates_fetch_s": _timed(lambda: frame(
                con,
                f"select c.source, c.content_id, c.content_hash, s.model_id, {', '.join('s.' + x for x in LABELS)} "
                f"from staging.content c join moderation.scores s on s.content_hash = c.content_hash and s.model_id = ? "
                f"where {candidates}",
                [model, *([low] * len(LABELS))],
            ))[0],
        }  # fmt: skip
        out["score_incremental"] = inc

        publish = {}
        publish["as_is_s"] = _timed(lambda: publish_snapshot(con, work / "a.duckdb"))[0]
        without = tuple(t for t in SERVING_TABLES if t != "moderation.scores")
        publish["without_scores_s"] = _timed(lambda: publish_snapshot(con, work / "b.duckdb", without))[0]
        publish["as_is_mb"] = (work / "a.duckdb").stat().st_size / 2**20
        publish["without_scores_mb"] = (work / "b.duckdb").stat().st_size / 2**20
        publish["scores_rows"] = one(con, "select count(*) from moderation.scores")[0]
        out["publish"] = publish

        from transforms.runner import run_marts

        timing = _TimingConnection(con)
        total, _ = _timed(lambda: run_marts(timing))  # type: ignore[arg-type]
        out["transform"] = {
            "total_s": total,
            "per_statement_s": dict(sorted(timing.seconds.items(), key=lambda kv: -kv[1])),
        }

        scratch_times = {}
        for batch in SCRATCH_BATCHES:
            con.execute("delete from moderation.scores")
            scratch_times[str(batch)] = _timed(lambda b=batch: score_pending(con, scorer, batch_size=b))[0]
        out["score_scratch"] = {
            "texts": one(con, "select count(*) from moderation.scores")[0],
            "seconds_by_commit_batch": scratch_times,
        }

    n = 20
    load_settings()
    t_now, _ = _timed(lambda: [load_settings() for _ in range(n)])
    import pulse.settings as ps

    zones = frozenset(zoneinfo.available_timezones())
    original = ps.zoneinfo
    ps.zoneinfo = type("CachedZones", (), {"available_timezones": staticmethod(lambda: zones)})  # type: ignore[assignment]
    try:
        t_cached, _ = _timed(lambda: [load_settings() for _ in range(n)])
    finally:
        ps.zoneinfo = original
    out["settings_ms"] = {"as_is": t_now / n * 1000, "zones_cached": t_cached / n * 1000}

    day = INCREMENTAL_DAY.date().isoformat().encode()
    rx = re.compile(rb' (?:CreationDate|LastEditDate)="(\d{4}-\d\d-\d\d)')
    lines = hits = 0
    t0 = time.perf_counter()
    for name in ("Posts.xml", "Comments.xml", "Votes.xml", "Users.xml"):
        with (Path(dump) / name).open("rb") as f:
            for line in f:
                if not line.lstrip().startswith(b"<row"):
                    continue
                lines += 1
                if any(m.group(1) == day for m in rx.finditer(line)):
                    hits += 1
    out["extract_prefilter"] = {"seconds": time.perf_counter() - t0, "lines": lines, "rows_in_day": hits}
    return out


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Measure the hotspots on a copy of the largest history of ``cfg.sizes``."""
    factor = max(cfg.sizes)
    history = ensure_history(cfg, factor)
    res = run_worker(
        "benchmarks.hotspots:measure",
        {"warehouse": history["warehouse"], "scratch": str(cfg.work_dir / "hotspots"), "dump": history["dump"]},
        in_process=cfg.in_process,
    )
    res["factor"] = factor
    return res


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    f = result["factor"]
    inc, pub, tr = result["score_incremental"], result["publish"], result["transform"]
    sc = result["score_scratch"]
    batches = sc["seconds_by_commit_batch"]
    small, large = str(SCRATCH_BATCHES[0]), str(SCRATCH_BATCHES[1])
    rows = [
        ("score (all scored already)", "`pending_texts` over all content", inc["pending_texts_s"], "only the run's batch (`raw.content` of the run)", None),
        ("score (all scored already)", "`count(distinct content_hash)` over all content", inc["count_distinct_s"], "count of the batch", None),
        ("score (all scored already)", "`refresh_flags`: every item's scores through polars, flags rewritten", inc["refresh_flags_s"],
         "fetch candidates only (a label >= lowest flag threshold) in SQL", inc["candidates_fetch_s"]),
        (f"score from scratch ({sc['texts']:,} texts)", f"`score_pending` committing every {small} texts", batches[small],
         f"committing every {int(large):,} texts", batches[large]),
        ("publish", f"all serving tables ({pub['as_is_mb']:.0f} MiB snapshot)", pub["as_is_s"],
         f"without `moderation.scores` ({pub['scores_rows']:,} rows; {pub['without_scores_mb']:.0f} MiB)", pub["without_scores_s"]),
        ("every dashboard query", "`load_settings()` (ms)", result["settings_ms"]["as_is"], "IANA zone list cached (ms)", result["settings_ms"]["zones_cached"]),
        ("extract one day of the scaled dump", "parse every row (see the incremental table)", None,
         f"byte-level date pre-filter over {result['extract_prefilter']['lines']:,} lines", result["extract_prefilter"]["seconds"]),
    ]  # fmt: skip
    marts = md_table(("statement", "s"), [(k, v) for k, v in list(tr["per_statement_s"].items())[:8]])
    return "\n".join(
        [
            f"## Hotspots at {f}x: current path against the proposed one",
            "",
            f"Command: `{COMMAND}` (on a copy of the {f}x history warehouse; the project's code is not changed: the proposed paths "
            "are reproduced here to size the gain). Seconds unless marked.",
            "",
            md_table(("stage", "current", "s", "proposed", "s"), rows),
            "",
            f"Transform rebuilds every mart from staging on every run ({tr['total_s']:.2f} s in all at {f}x); the costliest statements:",
            "",
            marts,
        ]
    )
