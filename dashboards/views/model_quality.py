"""Model quality: which model scored what, how well each fits labelled data, and its bias.

Reads ``moderation.scores`` and ``moderation.flags`` (which model scored and flagged the
items; ``is_fallback`` marks the lexical fallback), ``moderation.model_evaluations`` (written by
``pulse moderation evaluate --record``) and ``moderation.bias_audit`` (``pulse moderation
bias-audit --record``; Subgroup / BPSN / BNSP AUC after Borkan et al. 2019 and false-positive
rates on non-toxic texts mentioning each identity subgroup). Everything is read from the
serving snapshot; model ids and dataset names appear in tables and escaped labels only, except
the "Community model" section, which reads the model cards (``model_card.json``) and the
promotion log (``promotions.jsonl``) in the models folder beside the snapshot
(:func:`pulse.model_steps.list_candidates`): the candidates trained, the promoted one, their
validation ROC-AUC and calibration (ECE per source and label).
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import components, data

METRIC_COLORS = {"subgroup_auc": "#2563eb", "bpsn_auc": "#f59e0b", "bnsp_auc": "#7c3aed"}
METRIC_NAMES = {"subgroup_auc": "Subgroup AUC", "bpsn_auc": "BPSN AUC", "bnsp_auc": "BNSP AUC"}


def scores_by_model() -> pl.DataFrame:
    """Per model: texts scored, whether it was the fallback, when, and the mean toxicity score."""
    return data.query(
        "select model_id, model_version, backend, is_fallback, count(*) as texts_scored, "
        "min(scored_at) as first_scored_at, max(scored_at) as last_scored_at, avg(toxicity) as mean_toxicity "
        "from moderation.scores group by all order by last_scored_at desc, model_id"
    )


def flags_by_model(source: str | None) -> pl.DataFrame:
    """Current flags of ``source`` per model that raised them (with hold recommendations)."""
    where, params = data.source_clause(source)
    return data.query(
        "select model_id, count(*) as items_flagged, count(*) filter (where hold) as hold_recommended "
        f"from moderation.flags where {where} group by model_id order by items_flagged desc",
        params,
    )


def latest_evaluations() -> pl.DataFrame:
    """The latest evaluation per (model, dataset, label, subset), newest first."""
    return data.query(
        "select * exclude (rn) from ("
        "  select *, row_number() over (partition by model_id, dataset, score_label, subset "
        "                               order by evaluated_at desc) as rn "
        "  from moderation.model_evaluations) "
        "where rn = 1 order by evaluated_at desc, model_id, dataset, subset = 'all' desc, subset"
    )


def audits() -> pl.DataFrame:
    """One row per audit: id, when, model, dataset, overall AUC, final metric (newest first)."""
    return data.query(
        "select audit_id, any_value(audited_at) as audited_at, any_value(model_id) as model_id, "
        "any_value(is_fallback) as is_fallback, any_value(dataset) as dataset, any_value(score_label) as score_label, "
        "any_value(overall_auc) as overall_auc, any_value(final_metric) as final_metric, "
        "any_value(threshold) as threshold, count(*) as subgroups "
        "from moderation.bias_audit group by audit_id order by audited_at desc, audit_id"
    )


def audit_rows(audit_id: str) -> pl.DataFrame:
    """The subgroups of one audit, largest subgroup first."""
    return data.query(
        "select subgroup, terms, n_subgroup, n_subgroup_positive, n_subgroup_negative, subgroup_auc, bpsn_auc, "
        "bnsp_auc, subgroup_fpr, background_fpr, threshold, overall_auc "
        "from moderation.bias_audit where audit_id = ? order by n_subgroup desc, subgroup",
        [audit_id],
    )


def evaluation_figure(evals: pl.DataFrame) -> go.Figure:
    """ROC-AUC and PR-AUC per model (subset ``all``), one group of bars per dataset."""
    overall = evals.filter(pl.col("subset") == "all")
    fig = go.Figure()
    for model_id in overall["model_id"].unique(maintain_order=True).to_list():
        part = overall.filter(pl.col("model_id") == model_id)
        fig.add_trace(
            go.Bar(
                x=[components.plotly_escape(d.rsplit("/", 1)[-1]) for d in part["dataset"].to_list()],
                y=part["roc_auc"].to_list(),
                name=components.plotly_escape(model_id),
                text=[None if v is None else f"{v:.3f}" for v in part["roc_auc"].to_list()],
                textposition="outside",
            )
        )
    fig.update_layout(
        barmode="group",
        title="ROC-AUC per model and labelled set",
        yaxis={"range": [0, 1.08], "title": "ROC-AUC"},
        height=320,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def bias_figure(rows: pl.DataFrame, overall_auc: float | None) -> go.Figure:
    """Subgroup, BPSN and BNSP AUC per subgroup (grouped bars), with the overall AUC as a line."""
    shown = rows.filter(pl.col("subgroup_auc").is_not_null() | pl.col("bpsn_auc").is_not_null())
    fig = go.Figure()
    for metric, name in METRIC_NAMES.items():
        fig.add_trace(
            go.Bar(
                x=[components.plotly_escape(s) for s in shown["subgroup"].to_list()],
                y=shown[metric].to_list(),
                name=name,
                marker_color=METRIC_COLORS[metric],
            )
        )
    if overall_auc is not None:
        fig.add_hline(
            y=overall_auc,
            line_dash="dash",
            line_color="#64748b",
            annotation_text=f"overall AUC {overall_auc:.3f}",
            annotation_position="bottom right",
        )
    fig.update_layout(
        barmode="group",
        title="Bias AUCs per identity subgroup (lower than overall: unintended bias)",
        yaxis={"range": [0, 1.05], "title": "AUC"},
        height=340,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def fpr_figure(rows: pl.DataFrame) -> go.Figure:
    """False-positive rate on non-toxic texts that mention each subgroup vs those that do not."""
    shown = rows.filter(pl.col("subgroup_fpr").is_not_null())
    labels = [components.plotly_escape(s) for s in shown["subgroup"].to_list()]
    fig = go.Figure(
        [
            go.Bar(
                x=labels,
                y=shown["subgroup_fpr"].to_list(),
                name="mentions the subgroup",
                marker_color="#dc2626",
                customdata=shown["n_subgroup_negative"].to_list(),
                hovertemplate="%{x}: %{y:.1%} of %{customdata} non-toxic texts<extra></extra>",
            ),
            go.Bar(x=labels, y=shown["background_fpr"].to_list(), name="does not", marker_color="#94a3b8"),
        ]
    )
    fig.update_layout(
        barmode="group",
        title="False-positive rate on non-toxic texts",
        yaxis={"tickformat": ".0%", "rangemode": "tozero"},
        height=300,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def models_section(source: str | None) -> None:
    """Which model scored what: stored scores per model and the source's current flags per model."""
    st.subheader("Which model scored what")
    if not components.require_table("moderation", "scores", "toxicity scores"):
        return
    scored = scores_by_model()
    if scored.is_empty():
        components.empty_state("No texts have been scored yet.")
        return
    fallback = scored.filter(pl.col("is_fallback"))
    a, b, c = st.columns(3)
    a.metric("Models that scored texts", f"{scored.height}")
    b.metric("Texts scored (all models)", f"{int(scored['texts_scored'].sum()):,}")
    c.metric("Scored by the fallback", f"{int(fallback['texts_scored'].sum()):,}")
    components.show_table(
        scored,
        file_name="scores_by_model.csv",
        key="mq_scores_csv",
        column_config={
            "is_fallback": st.column_config.CheckboxColumn("fallback", help="auto fell back to the lexical model"),
            "mean_toxicity": st.column_config.NumberColumn("mean toxicity", format="%.3f"),
        },
    )
    if data.table_exists("moderation", "flags"):
        flags = flags_by_model(source)
        if flags.height:
            st.caption("Current flags in this source, by the model that raised them:")
            components.show_table(flags, file_name="flags_by_model.csv", key="mq_flags_csv")


def models_folder() -> Path:
    """The models folder: ``models/`` beside the serving snapshot (``data/models`` by default)."""
    return data.serving_path().resolve().parent / "models"


def community_section() -> None:
    """Candidates and the promoted community model, from their model cards; the promotion log."""
    from pulse.model_steps import list_candidates, promotion_log

    st.subheader("Community model: candidates and the promoted model")
    folder = models_folder()
    rows = list_candidates(folder)
    if not rows:
        components.empty_state(
            "No community model trained yet: `make model` trains and promotes one (or `pulse moderation train "
            "--out <models>/candidates/NAME` then `pulse moderation promote`)."
        )
        return
    table = pl.DataFrame(
        [
            {
                "name": r["name"],
                "role": r["role"],
                "live": r["promoted"],
                "version": r["model_version"],
                "created_at": r["created_at"],
                "labels": ", ".join(x for x in r["labels"] if x),
                **{f"ROC-AUC {k}": v for k, v in r["roc_auc"].items()},
                **{f"ECE {k}": v for k, v in (r["ece"] or {}).items()},
            }
            for r in rows
        ],
        infer_schema_length=None,
    )
    components.show_table(table, file_name="community_models.csv", key="mq_candidates_csv")
    st.caption(
        "ROC-AUC: toxicity on each candidate's own validation split; ECE: toxicity, calibrated scores, out of fold "
        "(15 bins). `pulse moderation promote CANDIDATE` refuses a candidate worse than the live model."
    )
    log = promotion_log(folder)
    if log:
        st.caption("Promotions (newest first):")
        components.show_table(
            pl.DataFrame(
                [
                    {
                        "promoted_at": r["promoted_at"],
                        "actor": r["actor"],
                        "model_id": r["model_id"],
                        "previous_model_id": r["previous_model_id"],
                        "forced": r["forced"],
                        "validation ROC-AUC": (r["comparison"]["validation"] or {}).get("candidate"),
                        "previous ROC-AUC": (r["comparison"]["validation"] or {}).get("current"),
                    }
                    for r in reversed(log)
                ],
                infer_schema_length=None,
            ),
            file_name="promotions.csv",
            key="mq_promotions_csv",
        )


def evaluations_section() -> None:
    """Latest evaluation per model and labelled set: metrics table and ROC-AUC chart."""
    st.subheader("Fit to labelled data")
    if not components.require_table("moderation", "model_evaluations", "model evaluations"):
        return
    evals = latest_evaluations()
    if evals.is_empty():
        components.empty_state(
            "No evaluations yet. Record one: `pulse moderation evaluate --data FILE --model SPEC --record`."
        )
        return
    components.show_chart(evaluation_figure(evals), key="mq_eval_chart")
    table = evals.select(
        "evaluated_at",
        "model_id",
        "is_fallback",
        "dataset",
        "subset",
        "score_label",
        "n",
        "n_positive",
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "f1",
        "macro_f1",
        "threshold",
        "best_f1_threshold",
        "ece",
        "texts_per_second",
    )
    fmt = {
        c: st.column_config.NumberColumn(c, format="%.3f")
        for c in ("roc_auc", "pr_auc", "precision", "recall", "f1", "macro_f1", "threshold", "best_f1_threshold", "ece")
    }
    fmt["texts_per_second"] = st.column_config.NumberColumn("texts/s", format="%.0f")
    components.show_table(table, file_name="model_evaluations.csv", key="mq_eval_csv", column_config=fmt)
    st.caption(
        "Precision, recall and F1 at the threshold shown (score ≥ threshold is flagged); ECE is the expected "
        "calibration error (Naeini et al. 2015; Guo et al. 2017): 0 means scores match observed rates."
    )


def bias_section() -> None:
    """One bias audit (chosen in a select box): AUC chart, FPR chart and the table."""
    st.subheader("Identity-term bias")
    if not components.require_table("moderation", "bias_audit", "bias audits"):
        return
    found = audits()
    if found.is_empty():
        components.empty_state(
            "No bias audits yet. Record one: `pulse moderation bias-audit --data FILE --model SPEC --record`."
        )
        return
    labels = [
        f"{r['audited_at']:%Y-%m-%d %H:%M} · {r['model_id']}{' (fallback)' if r['is_fallback'] else ''} · "
        f"{str(r['dataset']).rsplit('/', 1)[-1]}"
        for r in found.iter_rows(named=True)
    ]
    choice = st.selectbox("Audit", range(found.height), format_func=lambda i: labels[i], key="mq_audit")
    chosen = found.row(int(choice or 0), named=True)
    rows = audit_rows(chosen["audit_id"])
    a, b, c = st.columns(3)
    a.metric("Overall ROC-AUC", "–" if chosen["overall_auc"] is None else f"{chosen['overall_auc']:.3f}")
    b.metric(
        "Jigsaw final bias metric",
        "–" if chosen["final_metric"] is None else f"{chosen['final_metric']:.3f}",
        help="0.25 × overall AUC + 0.25 × generalized means (p = −5) of Subgroup, BPSN and BNSP AUC",
    )
    worst = rows.drop_nulls("bpsn_auc").sort("bpsn_auc").head(1)
    c.metric(
        "Lowest BPSN AUC" + ("" if worst.is_empty() else f" ({components.md_escape(str(worst['subgroup'][0]))})"),
        "–" if worst.is_empty() else f"{worst['bpsn_auc'][0]:.3f}",
        help="Harmless mentions of this subgroup score above toxic texts elsewhere: false alarms",
    )
    if rows.filter(pl.col("subgroup_auc").is_not_null() | pl.col("bpsn_auc").is_not_null()).height:
        components.show_chart(bias_figure(rows, chosen["overall_auc"]), key="mq_bias_chart")
    else:
        components.empty_state("No subgroup was large enough (with both classes) for AUCs; see the counts below.")
    if rows.filter(pl.col("subgroup_fpr").is_not_null()).height:
        components.show_chart(fpr_figure(rows), key="mq_fpr_chart")
    fmt = {
        c: st.column_config.NumberColumn(METRIC_NAMES.get(c, c), format="%.3f")
        for c in ("subgroup_auc", "bpsn_auc", "bnsp_auc", "overall_auc")
    }
    fmt |= {c: st.column_config.NumberColumn(c, format="percent") for c in ("subgroup_fpr", "background_fpr")}
    components.show_table(rows, file_name="bias_audit.csv", key="mq_bias_csv", column_config=fmt)
    st.caption(
        "Subgroup AUC: ranking within texts that mention the subgroup. BPSN (background positive, subgroup "
        'negative) and BNSP (background negative, subgroup positive) AUC: Borkan et al., "Nuanced Metrics for '
        'Measuring Unintended Bias with Real Data for Text Classification", 2019. Empty cells: too few texts.'
    )


def render() -> None:
    """The Model quality page."""
    source = components.page_header(
        "Model quality",
        "Which toxicity model scored this community's texts, how well each model fits labelled data, and whether "
        "it treats mentions of identity groups unfairly.",
    )
    models_section(source)
    community_section()
    evaluations_section()
    bias_section()


render()
