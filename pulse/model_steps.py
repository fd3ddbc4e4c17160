"""Model-quality steps shared by the ``model_training`` DAG (and usable from Python).

Each step is a plain function of the settings and explicit arguments returning a small
JSON-ready dict (an XCom in Airflow): :func:`train_step` fine-tunes a checkpoint,
:func:`evaluate_step` and :func:`bias_audit_step` score labelled data with a model and record
the results in the warehouse (``moderation.model_evaluations`` / ``moderation.bias_audit``),
:func:`publish_step` republishes the serving snapshot so the "Model quality" page shows them.
:func:`run_model_step` is the Airflow glue: it reads the DAG run's params and upstream XComs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulse.settings import Settings, load_settings

TRAIN_OPTIONS = (
    "epochs",
    "max_length",
    "batch_size",
    "learning_rate",
    "val_fraction",
    "max_train_per_source",
    "max_val_per_source",
    "eval_every",
    "patience",
    "seed",
    "num_layers",
    "max_steps",
    "max_minutes",
    "threads",
)
"""DAG params passed through to :class:`moderation.train.TrainConfig` (empty values are ignored)."""


def _load(path: str, text_column: str | None, label_column: str | None, label_map: Sequence[str] = ()) -> Any:
    from moderation.datasets import load_labelled, parse_label_map

    return load_labelled(path, text_column or None, label_column or None, label_map=parse_label_map(list(label_map)))


def train_step(
    settings: Settings,
    data: Sequence[str],
    out: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    label_map: Sequence[str] = (),
    from_decisions: bool = False,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune a community model (see :func:`moderation.train.train_model`).

    Returns:
        ``out``, ``spec`` (``checkpoint:OUT``), ``model_id``, ``validation_file``,
        ``minutes_per_epoch``, ``texts_per_second`` and the per-source validation ROC-AUCs.

    Raises:
        moderation.datasets.DatasetError / DecisionsUnavailableError, moderation.train.TrainingError.
    """
    from moderation.datasets import load_decisions
    from moderation.train import VALIDATION_FILE, TrainConfig, train_model
    from warehouse.db import connect

    sets = [_load(p, text_column, label_column, label_map) for p in data]
    if from_decisions:
        con = connect(settings.warehouse, read_only=True)
        try:
            sets.append(load_decisions(con))
        finally:
            con.close()
    config = TrainConfig(**{k: v for k, v in (options or {}).items() if k in TRAIN_OPTIONS and v not in (None, "")})
    result = train_model(sets, Path(out), config, progress=False)
    card = result.card
    return {
        "out": str(result.out_dir),
        "spec": f"checkpoint:{result.out_dir}",
        "model_id": result.model_id,
        "validation_file": str(result.out_dir / VALIDATION_FILE),
        "minutes_per_epoch": card["training"]["minutes_per_epoch"],
        "texts_per_second": card["validation"]["texts_per_second"],
        "validation_roc_auc": {k: v["roc_auc"] for k, v in card["validation"]["per_source"].items()},
    }


def evaluate_step(
    settings: Settings,
    models: Sequence[str],
    data: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    label_map: Sequence[str] = (),
    threshold: float | None = None,
    score_label: str = "toxicity",
    by: str | None = "source",
) -> dict[str, Any]:
    """Evaluate each model spec on ``data`` and record the reports (per ``by`` group too).

    Returns:
        ``{model_id: {"evaluation_id", "roc_auc", "pr_auc", "f1", "ece", "texts_per_second"}}``.
    """
    from moderation.evaluate import evaluate_scorer, per_group, record_evaluation
    from moderation.scorers import load_scorer
    from warehouse.db import open_warehouse

    loaded = _load(data, text_column, label_column, label_map)
    frame = loaded.frame
    cut = threshold if threshold is not None else float(settings.thresholds.get(score_label, 0.5))
    results: dict[str, Any] = {}
    for spec in models:
        scorer = load_scorer(spec, **settings.scorer_options())
        report, scores = evaluate_scorer(scorer, frame, threshold=cut, label=score_label)
        groups = (
            per_group(frame["label"].to_numpy(), scores, frame[by].to_list(), threshold=cut)
            if by in frame.columns
            else {}
        )
        with open_warehouse(settings.warehouse) as con:
            evaluation_id = record_evaluation(con, report, dataset=data, dataset_sha256=loaded.sha256, groups=groups)
        results[scorer.model_id] = {
            "evaluation_id": evaluation_id,
            "roc_auc": report.roc_auc,
            "pr_auc": report.pr_auc,
            "f1": report.f1,
            "ece": report.ece,
            "texts_per_second": report.texts_per_second,
        }
    return results


def bias_audit_step(
    settings: Settings,
    models: Sequence[str],
    data: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    label_map: Sequence[str] = (),
    terms: Sequence[str] = (),
    threshold: float | None = None,
    score_label: str = "toxicity",
    min_subgroup_size: int = 10,
) -> dict[str, Any]:
    """Bias-audit each model spec on ``data`` (default subgroups unless ``terms``) and record it.

    Returns:
        ``{model_id: {"audit_id", "overall_auc", "final_metric", "subgroups"}}``.
    """
    from moderation.bias import DEFAULT_SUBGROUPS, audit, record_bias_audit
    from moderation.evaluate import score_texts
    from moderation.scorers import load_scorer
    from warehouse.db import open_warehouse

    loaded = _load(data, text_column, label_column, label_map)
    texts = loaded.frame["text"].to_list()
    subgroups = {t: (t,) for t in terms} if terms else DEFAULT_SUBGROUPS
    cut = threshold if threshold is not None else float(settings.thresholds.get(score_label, 0.5))
    results: dict[str, Any] = {}
    for spec in models:
        scorer = load_scorer(spec, **settings.scorer_options())
        scores, _ = score_texts(scorer, texts, score_label)
        result = audit(
            texts,
            loaded.frame["label"].to_numpy(),
            scores,
            subgroups,
            threshold=cut,
            min_subgroup_size=min_subgroup_size,
        )
        with open_warehouse(settings.warehouse) as con:
            audit_id = record_bias_audit(
                con,
                result,
                model_id=scorer.model_id,
                model_version=scorer.model_version,
                is_fallback=scorer.is_fallback,
                dataset=data,
                dataset_sha256=loaded.sha256,
                score_label=score_label,
            )
        results[scorer.model_id] = {
            "audit_id": audit_id,
            "overall_auc": result.overall_auc,
            "final_metric": result.final_metric,
            "subgroups": len(result.subgroups),
        }
    return results


def publish_step(settings: Settings) -> dict[str, Any]:
    """Republish the serving snapshot from the warehouse (carries the new evaluations and audits)."""
    from warehouse.db import open_warehouse
    from warehouse.publish import publish_snapshot

    with open_warehouse(settings.warehouse) as con:
        counts = publish_snapshot(con, settings.serving)
    return {
        "serving": str(settings.serving),
        "tables": len(counts),
        "model_evaluations": counts.get("moderation.model_evaluations", 0),
        "bias_audit": counts.get("moderation.bias_audit", 0),
    }


def _split(value: Any) -> list[str]:
    """A param given as a list or as a comma/newline-separated string -> list of non-empty strings."""
    if value in (None, ""):
        return []
    items = value if isinstance(value, list | tuple) else str(value).replace("\n", ",").split(",")
    return [str(v).strip() for v in items if str(v).strip()]


def run_model_step(step: str) -> dict[str, Any]:
    """Run ``step`` (``train``, ``evaluate``, ``bias_audit``, ``publish``) for the current Airflow task.

    Params (see ``dags/model_training.py``) choose the data and options; ``evaluate`` and
    ``bias_audit`` use the checkpoint ``train`` wrote (its XCom) plus the ``compare_models``
    specs, on ``eval_data`` (default: the validation split written beside the weights).

    Raises:
        ValueError: an unknown step or missing required params.
    """
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    params = dict(ctx.get("params") or {})
    settings = load_settings()
    if step == "train":
        data = _split(params.get("data"))
        if not data and not params.get("from_decisions"):
            raise ValueError(
                "param 'data' is empty: give labelled files (a list or comma-separated) or from_decisions=true"
            )
        return train_step(
            settings,
            data,
            params.get("out") or "models/community",
            text_column=params.get("text_column"),
            label_column=params.get("label_column"),
            label_map=_split(params.get("label_map")),
            from_decisions=bool(params.get("from_decisions")),
            options={k: params.get(k) for k in TRAIN_OPTIONS},
        )
    if step == "publish":
        return publish_step(settings)
    trained = ctx["ti"].xcom_pull(task_ids="train") or {}
    models = [m for m in [trained.get("spec"), *_split(params.get("compare_models"))] if m]
    eval_data = params.get("eval_data") or trained.get("validation_file")
    if not eval_data:
        raise ValueError("no evaluation data: set param 'eval_data' (the train task wrote no validation file)")
    common = {
        "text_column": params.get("eval_text_column") or None,
        "label_column": params.get("eval_label_column") or None,
    }
    if step == "evaluate":
        return evaluate_step(settings, models, eval_data, **common)
    if step == "bias_audit":
        return bias_audit_step(settings, models, eval_data, terms=_split(params.get("terms")), **common)
    raise ValueError(f"unknown model step {step!r}; use train, evaluate, bias_audit or publish")
