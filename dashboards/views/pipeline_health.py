"""Pipeline health: recent runs, per-stream reconciliation, quarantine, expectations, timings.

Reads ``ops.runs``, ``ops.stream_counts``, ``ops.step_log``, ``raw.quarantine_counts`` and
``quality.validation_results`` from the serving snapshot. Quarantined payloads are raw source
records (members' text and ids): only roles in :data:`dashboards.data.RESTRICTED_ROLES`
(data engineers and admins) see samples, read from the restricted snapshot
(:func:`dashboards.data.restricted_query`); everyone else sees counts per reason. Payloads are
shown as plain text (``st.code``), never rendered. Data Docs have their own page
(``views/data_docs.py``, data engineers and admins); this page only points to it.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import auth, components, data

STATUS_COLORS: dict[str, str] = {
    "success": "#16a34a",
    "failed": "#dc2626",
    "running": "#2563eb",
    "abandoned": "#64748b",
}
SAMPLES_PER_REASON = 3
PAYLOAD_LIMIT = 1500


def runs(source: str | None, limit: int = 50) -> pl.DataFrame:
    """The latest ``limit`` runs of ``source``, newest first, with ``duration_s``."""
    where, params = data.source_clause(source)
    return data.query(
        "select run_id, source, status, trigger, interval_start, interval_end, started_at, finished_at, "
        "date_diff('millisecond', started_at, finished_at) / 1000.0 as duration_s, "
        "scorer_model_id, scorer_is_fallback, scorer_note, error "
        f"from ops.runs where {where} order by started_at desc limit ?",
        [*params, limit],
    )


def failed_warnings(run_id: str) -> int:
    """Non-critical expectations (freshness, volume, ...) that failed in ``run_id`` (0 without the table)."""
    if not data.table_exists("quality", "validation_results"):
        return 0
    found = data.query(
        "select count(*) as n from quality.validation_results where run_id = ? and not success and not critical",
        [run_id],
    )
    return int(found["n"][0])


def latest_run_banner(latest: dict, warnings: int = 0) -> None:
    """The latest run's status as a coloured callout (error text shown plain).

    A successful run with ``warnings`` failed non-critical expectations is shown as a warning
    (amber), not as a plain green success.
    """
    when = f"{latest['started_at']:%Y-%m-%d %H:%M} UTC"
    duration = f" in {latest['duration_s']:.1f} s" if latest["duration_s"] is not None else ""
    run_id = components.md_escape(str(latest["run_id"]))
    message = f"Latest run {run_id}: **{latest['status']}** (started {when}{duration})"
    if latest["status"] == "success" and warnings:
        st.warning(
            f"{message}, with {warnings} expectation warning(s) (freshness, volume or other "
            "non-critical checks): see below.",
            icon=":material/warning:",
        )
    elif latest["status"] == "success":
        st.success(message, icon=":material/check_circle:")
    elif latest["status"] == "failed":
        st.error(message, icon=":material/error:")
        components.untrusted_text(latest.get("error"), prefix="Error: ", limit=PAYLOAD_LIMIT)
    else:
        st.info(message, icon=":material/hourglass_top:")


def runs_figure(recent: pl.DataFrame) -> go.Figure:
    """Bar per run: duration, coloured by status (oldest left)."""
    ordered = recent.reverse()
    fig = go.Figure(
        go.Bar(
            x=[components.plotly_escape(str(r)) for r in ordered["run_id"].to_list()],
            y=ordered["duration_s"].fill_null(0).to_list(),
            marker_color=[STATUS_COLORS.get(s, "#94a3b8") for s in ordered["status"].to_list()],
            customdata=ordered["status"].to_list(),
            hovertemplate="%{x}<br>%{customdata}, %{y:.1f} s<extra></extra>",
        )
    )
    fig.update_layout(
        title="Run durations (green: success, red: failed)",
        yaxis_title="seconds",
        height=240,
        bargap=0.6 if recent.height < 4 else 0.2,
        xaxis={"showticklabels": recent.height <= 8},
    )
    return fig


def stream_section(run_id: str) -> None:
    """Rows read / loaded / skipped / quarantined per stream for ``run_id``."""
    st.subheader("Rows per stream")
    if not components.require_table("ops", "stream_counts", "stream counts"):
        return
    counts = data.query(
        "select stream, read, inserted, updated, unchanged, "
        "coalesce(inserted, 0) + coalesce(updated, 0) + coalesce(unchanged, 0) as loaded, "
        "skipped, quarantined, skip_rules from ops.stream_counts where run_id = ? order by stream",
        [run_id],
    )
    if counts.is_empty():
        components.empty_state("This run recorded no stream counts (it may have failed before loading).")
        return
    fig = go.Figure()
    for column, color in (("loaded", "#16a34a"), ("skipped", "#f59e0b"), ("quarantined", "#dc2626")):
        fig.add_trace(
            go.Bar(
                y=counts["stream"].to_list(),
                x=counts[column].to_list(),
                name=column,
                orientation="h",
                marker_color=color,
            )
        )
    fig.update_layout(barmode="stack", title="Records read, by outcome", xaxis_title="records", height=240)
    components.show_chart(fig, key="health_streams")
    components.show_table(counts, file_name=f"stream_counts_{run_id}.csv", key="health_streams_csv")


def quarantine_section(source: str | None, run_id: str) -> None:
    """Quarantine reasons with counts; for roles in ``data.RESTRICTED_ROLES``, a few sample payloads per reason."""
    st.subheader("Quarantine")
    if not components.require_table("raw", "quarantine_counts", "quarantined records"):
        return
    where, params = data.source_clause(source)
    only_run = st.toggle("Only records first quarantined by this run", key="health_q_run")
    run_filter, run_params = ("and first_run_id = ?", [run_id]) if only_run else ("", [])
    reasons = data.query(
        "select stream, reason, sum(records)::bigint as records, "
        "coalesce(sum(records) filter (where first_run_id = ?), 0)::bigint as first_seen_this_run "
        f"from raw.quarantine_counts where {where} {run_filter} group by stream, reason "
        "order by records desc, stream, reason",
        [run_id, *params, *run_params],
    )
    if reasons.is_empty():
        components.empty_state("No quarantined records: every record read could be mapped and loaded.")
        return
    components.show_table(reasons, file_name=f"quarantine_reasons_{source or 'all'}.csv", key="health_q_csv")
    user = auth.current_user()
    role = user.role if user else None
    if role not in data.RESTRICTED_ROLES:
        st.caption("Sample payloads (members' raw records) are shown to data engineers and admins only.")
        return
    for row in reasons.iter_rows(named=True):
        with st.expander(f"{row['stream']} · {components.md_escape(str(row['reason']))} ({row['records']})"):
            try:
                samples = data.restricted_query(
                    role,
                    "select record_key, detail, payload, first_run_id from raw.quarantine "
                    f"where {where} {run_filter} and stream = ? and reason = ? order by fingerprint limit ?",
                    [*params, *run_params, row["stream"], row["reason"], SAMPLES_PER_REASON],
                )
            except data.SnapshotMissingError:
                components.empty_state("The restricted snapshot is not published yet (the next run writes it).")
                return
            for sample in samples.iter_rows(named=True):
                components.untrusted_text(
                    f"key {sample['record_key'] or '(none)'} · first run {sample['first_run_id']} · {sample['detail'] or ''}"
                )
                payload = sample["payload"] or ""
                if len(payload) > PAYLOAD_LIMIT:
                    payload = payload[:PAYLOAD_LIMIT] + " …[truncated]"
                st.code(payload, language=None, wrap_lines=True)


def expectations_section(run_id: str) -> None:
    """Expectation results of ``run_id``: passed/failed counts, critical failures highlighted."""
    st.subheader("Data quality expectations")
    if not components.require_table("quality", "validation_results", "expectation results"):
        return
    results = data.query(
        "select suite, table_name, expectation, column_name, success, critical, unexpected_count, "
        "element_count, details from quality.validation_results where run_id = ? "
        "order by success, critical desc, suite, table_name, expectation, column_name",
        [run_id],
    )
    if results.is_empty():
        components.empty_state("No expectation results were recorded for this run.")
        return
    results = results.with_columns(
        result=pl.when(pl.col("success"))
        .then(pl.lit("passed"))
        .when(pl.col("critical"))
        .then(pl.lit("CRITICAL failure"))
        .otherwise(pl.lit("failed"))
    ).select("result", pl.exclude("result"))
    passed = int(results["success"].sum())
    critical = results.filter(~pl.col("success") & pl.col("critical"))
    a, b, c = st.columns(3)
    a.metric("Passed", passed)
    b.metric("Failed", results.height - passed)
    c.metric("Critical failures", critical.height)
    if critical.height:
        st.error(
            f"{critical.height} critical expectation(s) failed: the run's quality gate stops publishing.",
            icon=":material/report:",
        )
        components.show_table(critical, file_name=f"critical_failures_{run_id}.csv", key="health_crit_csv")
    by_suite = (
        results.group_by("suite").agg(passed=pl.col("success").sum(), failed=(~pl.col("success")).sum()).sort("suite")
    )
    fig = go.Figure(
        [
            go.Bar(
                x=by_suite["suite"].to_list(), y=by_suite["passed"].to_list(), name="passed", marker_color="#16a34a"
            ),
            go.Bar(
                x=by_suite["suite"].to_list(), y=by_suite["failed"].to_list(), name="failed", marker_color="#dc2626"
            ),
        ]
    )
    fig.update_layout(
        barmode="stack",
        title="Expectations by suite",
        yaxis={"title": "expectations", **components.count_axis((by_suite["passed"] + by_suite["failed"]).max() or 0)},
        height=260,
    )
    components.show_chart(fig, key="health_expectations")
    components.show_table(results, file_name=f"expectations_{run_id}.csv", key="health_exp_csv")


def steps_section(run_id: str) -> None:
    """Elapsed seconds per pipeline step of ``run_id``."""
    st.subheader("Step timings")
    if not components.require_table("ops", "step_log", "step timings"):
        return
    steps = data.query(
        "select step, started_at, elapsed_s, rows, detail from ops.step_log where run_id = ? order by started_at",
        [run_id],
    )
    if steps.is_empty():
        components.empty_state("No step timings were recorded for this run.")
        return
    fig = go.Figure(
        go.Bar(
            y=steps["step"].to_list(),
            x=steps["elapsed_s"].to_list(),
            orientation="h",
            marker_color="#2563eb",
            hovertemplate="%{y}: %{x:.2f} s<extra></extra>",
        )
    )
    fig.update_layout(
        title="Seconds per step", xaxis_title="seconds", yaxis={"autorange": "reversed"}, height=80 + 30 * steps.height
    )
    components.show_chart(fig, key="health_steps")
    components.show_table(steps, file_name=f"step_log_{run_id}.csv", key="health_steps_csv")


def monitoring_history_section(source: str | None) -> None:
    """Freshness and volume expectations over the source's runs: when data went stale or odd."""
    st.subheader("Freshness and volume over time")
    clause, params = data.source_clause(source, "r.source")
    history = data.query(
        "select r.started_at, v.run_id, v.table_name as check_table, v.column_name as measure, v.success, v.details "
        "from quality.validation_results v join ops.runs r using (run_id) "
        f"where v.suite = 'monitoring' and {clause} order by r.started_at",
        params,
    )
    if history.is_empty():
        components.empty_state("No freshness or volume checks recorded yet (they run with every pipeline run).")
        return
    failures = history.filter(~pl.col("success"))
    st.caption(
        f"{history['run_id'].n_unique()} runs checked; {failures.height} warnings. Freshness: the newest record within "
        "the allowed lag of the run's interval end. Volume: records read per stream within ±3.5 modified "
        "z-scores of previous runs over intervals of the same length."
    )
    fig = go.Figure()
    for measure in ("lag_hours", "latest_at", "modified_z"):
        rows = history.filter(pl.col("measure") == measure)
        if rows.is_empty():
            continue
        fig.add_trace(
            go.Scatter(
                x=rows["started_at"].to_list(),
                y=[measure] * rows.height,
                mode="markers",
                name=measure,
                marker={
                    "size": 12,
                    "symbol": ["circle" if ok else "x" for ok in rows["success"].to_list()],
                    "color": ["#16a34a" if ok else "#dc2626" for ok in rows["success"].to_list()],
                },
                showlegend=False,
            )
        )
    fig.update_layout(
        title="Each check per run (green circle: passed, red cross: warning)",
        height=220,
        yaxis_title=None,
        xaxis_title="run started (UTC)",
    )
    components.show_chart(fig, key="health_monitoring")
    components.show_table(history.drop("details"), file_name="monitoring_history.csv", key="health_monitoring_csv")


def data_docs_section() -> None:
    """Where the Great Expectations Data Docs are: the Data Docs page, for data engineers and admins."""
    st.subheader("Data Docs")
    user = auth.current_user()
    if user is not None and user.role in auth.PIPELINE_ROLES:
        st.markdown("Great Expectations' reports of the latest run, per suite: open **Data Docs** in the menu.")
    else:
        st.caption("Great Expectations' reports can list sample member data: they are for data engineers and admins.")


def render() -> None:
    """The Pipeline health page."""
    source = components.page_header(
        "Pipeline health",
        "Whether the pipeline ran, how long it took, what it loaded, skipped or quarantined, and "
        "which data-quality expectations passed.",
    )
    if not components.require_table("ops", "runs", "pipeline runs"):
        return
    recent = runs(source)
    if recent.is_empty():
        components.empty_state("No pipeline runs recorded for this source yet: run `pulse run --source demo`.")
        return
    latest = recent.row(0, named=True)
    latest_run_banner(latest, failed_warnings(latest["run_id"]))
    first, last = recent["started_at"].min().date(), recent["started_at"].max().date()
    start, end = components.date_range_filter(first, last, key="health_range")
    recent = recent.filter(pl.col("started_at").dt.date().is_between(start, end))
    if recent.is_empty():
        components.empty_state("No runs started in these days; widen the date range.")
        return
    st.subheader("Recent runs")
    components.show_chart(runs_figure(recent), key="health_runs")
    components.show_table(
        recent,
        file_name=f"runs_{source or 'all'}.csv",
        key="health_runs_csv",
        column_config={"duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f")},
    )
    run_id = st.selectbox(
        "Run",
        recent["run_id"].to_list(),
        key="health_run",
        help="The run whose streams, expectations and steps are shown below.",
    )
    selected = recent.filter(pl.col("run_id") == run_id).row(0, named=True)
    if selected["status"] == "failed" and run_id != recent["run_id"][0]:
        st.error(f"Run {components.md_escape(run_id)} failed.", icon=":material/error:")
        components.untrusted_text(selected.get("error"), prefix="Error: ", limit=PAYLOAD_LIMIT)
    stream_section(run_id)
    quarantine_section(source, run_id)
    expectations_section(run_id)
    monitoring_history_section(source)
    data_docs_section()
    steps_section(run_id)


render()
