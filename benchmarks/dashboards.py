"""Dashboards: each page's queries against the serving snapshot at each scale, p50/p95, with and without cache.

No SQL is replicated here: the benchmark renders every page of ``dashboards/app.py`` once with
Streamlit's ``AppTest`` (the router plus the page, its default widget values, as a visitor
first sees it) while recording every ``dashboards.data.query(sql, params)`` call the run
makes. It then replays exactly those calls through ``dashboards.data.query``:

* **without cache**: ``st.cache_data`` cleared before each page replay, so every query opens
  the snapshot read-only, runs, converts to polars and stores its result (what the first
  visitor after a publish pays);
* **with cache**: the same replay again, served from ``st.cache_data``.

A page's time is the sum of its queries (the page runs them one after another); p50/p95 are
over the repetitions. The page's full ``AppTest`` render time (queries, plotly figures,
widgets) is reported beside it, cold and warm. Pages are every ``dashboards/views/*.py`` the
router accepts, so new pages are measured without changing this file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BenchConfig, md_table, percentile, run_worker

NAME = "dashboards"
COMMAND = "python -m benchmarks.run --only dashboards"
GOAL_S = 1.0


def page_queries(serving: str, reps: int = 20, pages: list[str] | None = None) -> dict[str, Any]:
    """Render every page against ``serving``, record its queries, and time them (worker function).

    Args:
        serving: a serving snapshot file (``serving.duckdb``).
        reps: replays per page and cache mode.
        pages: view file names to measure (default: every ``dashboards/views/*.py``).

    Returns:
        ``{"pages": {page: {"queries": n, "uncached": {p50, p95}, "cached": {p50, p95},
        "held_connection": {p50, p95} (the same queries on one connection opened beforehand),
        "slowest_query": {"sql", "p50"}, "render_cold_s", "render_warm_s", "exception"}}}``;
        seconds.
    """
    saved = os.environ.get("PULSE_SERVING")
    os.environ["PULSE_SERVING"] = str(Path(serving).resolve())
    try:
        return _page_queries(serving, reps, pages)
    finally:  # in-process runs (the smoke test) must not leak the setting
        if saved is None:
            os.environ.pop("PULSE_SERVING", None)
        else:
            os.environ["PULSE_SERVING"] = saved


def _bench_admin() -> None:
    """Point the app at a throwaway review store holding one admin, ``bench`` (random password)."""
    import os
    import tempfile

    from moderation.review_store import ReviewStore, generate_password

    url = f"sqlite:///{tempfile.mkdtemp(prefix='pulse-bench-review-')}/review.sqlite"
    store = ReviewStore(url, bcrypt_rounds=4)
    store.create_schema()
    store.add_user("bench", name="Benchmark", email="bench@example.org", role="admin", password=generate_password())
    store.dispose()
    os.environ["PULSE_REVIEW_STORE_URL"] = url


def _page_queries(serving: str, reps: int, only: list[str] | None) -> dict[str, Any]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import dashboards
    import dashboards.data as data

    app = Path(dashboards.__file__).resolve().parent / "app.py"
    views = sorted(
        p.name
        for p in (app.parent / "views").glob("*.py")
        if not p.name.startswith("_") and (only is None or p.name in only)
    )
    original = data.query
    log: list[tuple[str, tuple[Any, ...]]] = []

    def recording(sql: str, params: Any = None) -> Any:
        log.append((sql, tuple(params or ())))
        return original(sql, params)

    data.query = recording  # type: ignore[assignment]
    pages: dict[str, Any] = {}
    _bench_admin()
    try:
        at = AppTest.from_file(str(app), default_timeout=300)
        # Signed in as an admin (every page in the menu), as streamlit-authenticator marks a
        # session after a correct password; one session, each page switched to in turn.
        at.session_state["authentication_status"] = True
        at.session_state["username"] = "bench"
        at.run()
        for view in views:
            st.cache_data.clear()
            log.clear()
            t0 = time.perf_counter()
            try:
                at.switch_page(f"views/{view}").run()
            except Exception as exc:  # noqa: BLE001  (not a page of the router: skipped, reported)
                pages[view] = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
                continue
            cold = time.perf_counter() - t0
            calls = list(log)
            t0 = time.perf_counter()
            at.run()
            warm = time.perf_counter() - t0
            exceptions = [str(e.value)[:300] for e in at.exception]
            pages[view] = {
                "queries": len(calls),
                "render_cold_s": cold,
                "render_warm_s": warm,
                "exception": exceptions or None,
                "_calls": calls,
            }
    finally:
        data.query = original  # type: ignore[assignment]

    import duckdb

    held = duckdb.connect(str(Path(serving).resolve()), read_only=True)
    for entry in pages.values():
        calls = entry.pop("_calls", None)
        if not calls:
            continue
        totals: dict[str, list[float]] = {"uncached": [], "cached": [], "held_connection": []}
        per_query: list[list[float]] = [[] for _ in calls]
        for _ in range(reps):
            st.cache_data.clear()
            total = 0.0
            for i, (sql, params) in enumerate(calls):
                t0 = time.perf_counter()
                original(sql, list(params))
                dt = time.perf_counter() - t0
                per_query[i].append(dt)
                total += dt
            totals["uncached"].append(total)
            t0 = time.perf_counter()
            for sql, params in calls:
                original(sql, list(params))
            totals["cached"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for sql, params in calls:  # the queries alone, on one connection opened beforehand
                held.sql(sql, params=list(params)).pl()
            totals["held_connection"].append(time.perf_counter() - t0)
        for mode, vals in totals.items():
            entry[mode] = {"p50": percentile(vals, 50), "p95": percentile(vals, 95)}
        worst = max(range(len(calls)), key=lambda i: percentile(per_query[i], 50))
        entry["slowest_query"] = {
            "sql": " ".join(calls[worst][0].split())[:160],
            "p50": percentile(per_query[worst], 50),
            "p95": percentile(per_query[worst], 95),
        }
    held.close()
    return {"pages": pages, "snapshot_mb": Path(serving).stat().st_size / 2**20, **_overheads(serving)}


def _overheads(serving: str, n: int = 20) -> dict[str, float]:
    """Milliseconds of the fixed costs every uncached query pays: settings, connect+close."""
    import duckdb

    import dashboards.data as data

    def per_call(fn: Any) -> float:
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1000

    path = str(Path(serving).resolve())
    return {
        "serving_path_ms": per_call(data.serving_path),
        "connect_close_ms": per_call(lambda: duckdb.connect(path, read_only=True).close()),
    }


def run(cfg: BenchConfig, snapshots: dict[str, str] | None = None) -> dict[str, Any]:
    """Time every page's queries on the serving snapshot of each history size (and the demo).

    Args:
        cfg: the configuration (``cfg.sizes`` picks the beer histories).
        snapshots: ``{label: serving file}`` to use instead of the beer histories (tests).

    Returns:
        ``{"snapshots": {label: page_queries(...) result}, "reps": n, "goal_s": 1.0}``.
    """
    from benchmarks.pipeline import ensure_history

    reps = {"full": 20, "quick": 5, "smoke": 1}[cfg.profile]
    if snapshots is None:
        snapshots = {f"beer {f}x": ensure_history(cfg, f)["serving"] for f in cfg.sizes}
        demo = cfg.work_dir / "scale" / f"demo-{max(cfg.demo_scales):g}" / "serving.duckdb"
        if demo.is_file():
            snapshots[f"demo scale {max(cfg.demo_scales):g}"] = str(demo)
    out: dict[str, Any] = {"snapshots": {}, "reps": reps, "goal_s": GOAL_S}
    for label, serving in snapshots.items():
        # the smoke test exercises the machinery on two pages; the page tests cover every page
        pages = ["peak_times.py", "trending.py"] if cfg.profile == "smoke" else None
        out["snapshots"][label] = run_worker(
            "benchmarks.dashboards:page_queries",
            {"serving": serving, "reps": reps, "pages": pages},
            in_process=cfg.in_process,
        )
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    rows = []
    slow = []
    worst: tuple[float, str] = (0.0, "")
    overheads = []
    for label, snap in result["snapshots"].items():
        overheads.append(
            f"{label}: settings {snap.get('serving_path_ms', 0):.1f} ms, connect+close {snap.get('connect_close_ms', 0):.0f} ms"
        )
        for page, e in snap["pages"].items():
            if "skipped" in e:
                continue
            unc, cac, held = e.get("uncached", {}), e.get("cached", {}), e.get("held_connection", {})
            if (unc.get("p95") or 0.0) > worst[0]:
                worst = (unc["p95"], f"{label} {page.removesuffix('.py')}")
            rows.append((
                label, page.removesuffix(".py"), e["queries"], unc.get("p50"), unc.get("p95"), cac.get("p50"), cac.get("p95"),
                held.get("p50"), e["render_cold_s"], e["render_warm_s"], "page raised" if e.get("exception") else "",
            ))  # fmt: skip
            if e.get("slowest_query"):
                slow.append(
                    (label, page.removesuffix(".py"), e["slowest_query"]["p50"], f"`{e['slowest_query']['sql']}`")
                )
    table = md_table(
        ("snapshot", "page", "queries", "no cache p50 s", "no cache p95 s", "cached p50 s", "cached p95 s",
         "same queries, one open connection p50 s", "AppTest render cold s", "warm s", ""),
        rows,
    )  # fmt: skip
    largest = [label for label in result["snapshots"] if "100x" in label]
    at_100 = [r for r in rows if r[0] in largest]
    worst_100 = max((r[4] or 0.0 for r in at_100), default=None)
    verdict = (
        f"**{'met' if worst_100 < result['goal_s'] else 'NOT met'}** at 100x (worst page p95 without cache {worst_100:.3f} s)"
        if worst_100 is not None
        else "not measured at 100x in this run"
    )
    return "\n".join(
        [
            "## Dashboards: each page's queries on the serving snapshot",
            "",
            f"Command: `{COMMAND}`. Every page rendered once with Streamlit `AppTest` while recording the "
            "`dashboards.data.query` calls it makes (router + page, default widget values); those exact calls are then replayed "
            f"{result['reps']} times through `dashboards.data.query`, with `st.cache_data` cleared before each replay (no cache) and "
            "without clearing (cached), and once more on one DuckDB connection opened beforehand (the queries alone). "
            "Time per page = sum of its queries; p50/p95 over the replays.",
            "",
            table,
            "",
            f"Goal: every page's queries under {result['goal_s']:.0f} s at 100x: {verdict}. Worst page overall: {worst[1]} "
            f"({worst[0]:.3f} s p95 without cache).",
            "",
            "Fixed costs of every uncached query (`dashboards.data.query` opens the snapshot, runs one query, closes it; "
            "`serving_path()` builds the settings): " + "; ".join(overheads) + ".",
            "",
            "Slowest query of each page (p50 s, no cache):",
            "",
            md_table(("snapshot", "page", "p50 s", "query"), slow),
        ]
    )
