"""Model-quality steps shared by the ``model_training`` DAG (and usable from Python).

Each step is a plain function of the settings and explicit arguments returning a small
JSON-ready dict (an XCom in Airflow): :func:`train_step` fine-tunes a checkpoint,
:func:`evaluate_step` and :func:`bias_audit_step` score labelled data with a model and record
the results in the warehouse (``moderation.model_evaluations`` / ``moderation.bias_audit``),
:func:`publish_step` republishes the serving snapshot so the "Model quality" page shows them.
The DAG trains **candidates** (``<models dir>/candidates/<run id>``, :func:`new_candidate_dir`);
:func:`promote` (``pulse moderation promote``) makes one the community model ``auto`` scores
with, after comparing it with the current model, and logs it (:data:`PROMOTION_LOG`);
:func:`list_candidates` lists them for ``pulse moderation candidates`` and the Model quality page.
:func:`run_model_step` is the Airflow glue: it reads the DAG run's params and upstream XComs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulse.settings import Settings, load_settings

TRAIN_OPTIONS = (
    "balance",
    "calibration",
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


def _aux_frames(frame: Any, labels: Sequence[str]) -> dict[str, Any]:
    """For each auxiliary label (``insult``, ``identity_attack``) the scorer scores and ``frame``
    carries with both classes: the rows labelled for it, with that label as ``label``."""
    import polars as pl

    out = {}
    for label in labels:
        if label != "toxicity" and label in frame.columns:
            part = frame.filter(pl.col(label).is_not_null()).with_columns(pl.col(label).alias("label"))
            if part["label"].n_unique() == 2:
                out[label] = part
    return out


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
    all_labels: bool = False,
) -> dict[str, Any]:
    """Evaluate each model spec on ``data`` and record the reports (per ``by`` group too); with
    ``all_labels`` (the DAG) also every auxiliary label the model scores and the data carries
    (``score_label`` = that label, on its labelled rows, at its policy threshold).

    Returns:
        ``{model_id: {"evaluation_id", "roc_auc", "pr_auc", "f1", "ece", "texts_per_second",
        "labels": {label: {"evaluation_id", "roc_auc", "ece"}}}}``.
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
            "labels": {},
        }
        for label, part in (_aux_frames(frame, scorer.labels) if all_labels else {}).items():
            aux_cut = float(settings.thresholds.get(label, 0.5))
            aux, aux_scores = evaluate_scorer(scorer, part, threshold=aux_cut, label=label)
            aux_groups = (
                per_group(part["label"].to_numpy(), aux_scores, part[by].to_list(), threshold=aux_cut)
                if by in part.columns
                else {}
            )
            with open_warehouse(settings.warehouse) as con:
                aux_id = record_evaluation(con, aux, dataset=data, dataset_sha256=loaded.sha256, groups=aux_groups)
            results[scorer.model_id]["labels"][label] = {
                "evaluation_id": aux_id,
                "roc_auc": aux.roc_auc,
                "ece": aux.ece,
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
    all_labels: bool = False,
) -> dict[str, Any]:
    """Bias-audit each model spec on ``data`` (default subgroups unless ``terms``) and record it;
    with ``all_labels`` (the DAG) also every auxiliary label the model scores and the data
    carries (on its labelled rows).

    Returns:
        ``{model_id: {"audit_id", "overall_auc", "final_metric", "subgroups",
        "labels": {label: {"audit_id", "overall_auc", "final_metric"}}}}``.
    """
    from moderation.bias import DEFAULT_SUBGROUPS, audit, record_bias_audit
    from moderation.evaluate import score_texts
    from moderation.scorers import load_scorer
    from warehouse.db import open_warehouse

    loaded = _load(data, text_column, label_column, label_map)
    subgroups = {t: (t,) for t in terms} if terms else DEFAULT_SUBGROUPS
    cut = threshold if threshold is not None else float(settings.thresholds.get(score_label, 0.5))
    results: dict[str, Any] = {}
    for spec in models:
        scorer = load_scorer(spec, **settings.scorer_options())
        runs = [(score_label, loaded.frame, cut)] + [
            (label, part, float(settings.thresholds.get(label, 0.5)))
            for label, part in (_aux_frames(loaded.frame, scorer.labels) if all_labels else {}).items()
        ]
        for label, part, label_cut in runs:
            part_texts = part["text"].to_list()
            scores, _ = score_texts(scorer, part_texts, label)
            result = audit(
                part_texts,
                part["label"].to_numpy(),
                scores,
                subgroups,
                threshold=label_cut,
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
                    score_label=label,
                )
            summary = {"audit_id": audit_id, "overall_auc": result.overall_auc, "final_metric": result.final_metric}
            if label == score_label:
                results[scorer.model_id] = summary | {"subgroups": len(result.subgroups), "labels": {}}
            else:
                results[scorer.model_id]["labels"][label] = summary
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


def _run_name(ctx: Any) -> str:
    """A candidate folder name for this DAG run: its run id made file-safe."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(ctx.get("run_id") or "manual")).strip("_")[:80] or "manual"


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
            params.get("out") or str(new_candidate_dir(models_dir(settings), _run_name(ctx))),
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
        return evaluate_step(settings, models, eval_data, all_labels=True, **common)
    if step == "bias_audit":
        return bias_audit_step(
            settings, models, eval_data, terms=_split(params.get("terms")), all_labels=True, **common
        )
    raise ValueError(f"unknown model step {step!r}; use train, evaluate, bias_audit or publish")


# --- candidates and promotion -----------------------------------------------------------------

PROMOTION_LOG = "promotions.jsonl"
"""The promotion log in the models folder: one JSON object per promotion (who, what, when, why)."""
CANDIDATES_SUBDIR = "candidates"
PREVIOUS_SUBDIR = "previous"
PROMOTE_TOLERANCE = 0.005
"""A candidate is worse when its mean per-source validation ROC-AUC is below the current
model's by more than this (seeded splits of a few thousand rows move AUC by about this much)."""
DECISIONS_TOLERANCE = 0.02
"""The same on moderators' decisions (fewer rows, noisier)."""
MIN_DECISIONS = 20
"""Moderators' decisions (with both outcomes) needed before they count in a promotion."""


class PromotionRefusedError(RuntimeError):
    """The candidate scored worse than the current model (the message gives the figures); ``force`` overrides."""


def models_dir(settings: Settings) -> Path:
    """The models folder (:attr:`pulse.settings.Settings.models_dir`: ``models/`` beside the warehouse)."""
    return settings.models_dir


def new_candidate_dir(folder: Path, name: str | None = None) -> Path:
    """``folder/candidates/NAME`` (default NAME: the UTC time, ``YYYYmmddTHHMMSS``); not created."""
    from datetime import UTC, datetime

    return Path(folder) / CANDIDATES_SUBDIR / (name or datetime.now(UTC).strftime("%Y%m%dT%H%M%S"))


def _read_card(folder: Path) -> dict[str, Any] | None:
    import json

    path = folder / "model_card.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def _weights_sha12(folder: Path) -> str | None:
    """The first 12 hex digits of the sha256 of ``folder/model.ckpt`` (the engine's ``model_version``)."""
    import hashlib

    from moderation.scorers import CHECKPOINT_FILE

    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:12]


def list_candidates(folder: Path) -> list[dict[str, Any]]:
    """The candidates in ``folder/candidates`` (newest first) and the promoted model, from their model cards.

    Returns:
        One dict per model folder: ``name``, ``path``, ``role`` (``candidate`` or ``promoted``),
        ``model_version``, ``created_at``, ``labels``, ``roc_auc`` (per validation source, toxicity),
        ``ece`` (toxicity, per source, calibrated out of fold; None without calibration) and
        ``promoted`` (its weights are the promoted model's).
    """
    from moderation.scorers import COMMUNITY_SUBDIR

    folder = Path(folder)
    community = _read_card(folder / COMMUNITY_SUBDIR)
    live = _weights_sha12(folder / COMMUNITY_SUBDIR) if community else None
    rows = []
    paths = [(folder / COMMUNITY_SUBDIR, "promoted")] if community else []
    paths += [(p, "candidate") for p in sorted((folder / CANDIDATES_SUBDIR).glob("*"), reverse=True) if p.is_dir()]
    for path, role in paths:
        card = _read_card(path)
        if card is None:
            continue
        cal = card.get("calibration") or {}
        rows.append(
            {
                "name": path.name,
                "path": str(path),
                "role": role,
                "model_version": _weights_sha12(path),
                "created_at": card.get("created_at"),
                "labels": card.get("labels") or [card.get("label")],
                "roc_auc": {k: v.get("roc_auc") for k, v in card["validation"]["per_source"].items()},
                "ece": (cal.get("ece") or {}).get("toxicity", {}).get("after"),
                "promoted": live is not None and _weights_sha12(path) == live,
            }
        )
    return rows


def promotion_log(folder: Path) -> list[dict[str, Any]]:
    """The promotions recorded in ``folder/promotions.jsonl``, oldest first (empty when none)."""
    import json

    path = Path(folder) / PROMOTION_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _mean_source_auc(scorer: Any, frame: Any) -> tuple[float | None, dict[str, float | None]]:
    import numpy as np

    from moderation.evaluate import roc_auc

    scores = scorer.score(frame["text"].to_list())["toxicity"].to_numpy()
    y, sources = frame["label"].to_numpy(), frame["source"].to_numpy()
    per = {str(s): roc_auc(y[sources == s], scores[sources == s]) for s in sorted(set(sources.tolist()))}
    aucs = [v for v in per.values() if v is not None]
    return (float(np.mean(aucs)) if aucs else None), per


def compare_for_promotion(candidate: Any, current: Any, validation: Any, decisions: Any | None) -> dict[str, Any]:
    """ROC-AUC (toxicity) of both scorers on the candidate's validation rows (mean over sources)
    and on moderators' decisions (when at least :data:`MIN_DECISIONS` with both outcomes).

    Returns:
        ``{"validation": {"candidate", "current", "per_source": {...}}, "decisions": {...} | None,
        "worse": [reasons]}``; ``worse`` is empty when the candidate may be promoted.
    """
    cand_mean, cand_per = _mean_source_auc(candidate, validation)
    cur_mean, cur_per = _mean_source_auc(current, validation)
    out: dict[str, Any] = {
        "validation": {
            "candidate": cand_mean,
            "current": cur_mean,
            "per_source": {s: {"candidate": cand_per[s], "current": cur_per[s]} for s in cand_per},
        },
        "decisions": None,
        "worse": [],
    }
    if cand_mean is not None and cur_mean is not None and cand_mean < cur_mean - PROMOTE_TOLERANCE:
        out["worse"].append(
            f"mean per-source validation ROC-AUC {cand_mean:.4f} < current {cur_mean:.4f} - {PROMOTE_TOLERANCE}"
        )
    if decisions is not None and decisions.height >= MIN_DECISIONS and decisions["label"].n_unique() == 2:
        cand_d, _ = _mean_source_auc(candidate, decisions)
        cur_d, _ = _mean_source_auc(current, decisions)
        out["decisions"] = {"n": decisions.height, "candidate": cand_d, "current": cur_d}
        if cand_d is not None and cur_d is not None and cand_d < cur_d - DECISIONS_TOLERANCE:
            out["worse"].append(
                f"ROC-AUC on {decisions.height} moderators' decisions {cand_d:.4f} < current {cur_d:.4f} - {DECISIONS_TOLERANCE}"
            )
    return out


def promote(
    folder: Path,
    candidate: Path,
    *,
    warehouse: Path | None = None,
    force: bool = False,
    actor: str | None = None,
    scorer_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Make ``candidate`` the community model of ``folder`` (what ``auto`` scores with) if it is not worse.

    Compares the candidate with the current model (what ``auto`` resolves to in ``folder`` now:
    the promoted community model, else a cached Detoxify model, else the lexical fallback) on
    the candidate's ``validation.parquet`` and on moderators' decisions in ``warehouse``
    (:func:`compare_for_promotion`). Then copies the candidate to ``folder/community`` (the
    previous community model moves to ``folder/previous/<time>-<version>``) and appends a
    record to ``folder/promotions.jsonl``. Scores are keyed by ``(content_hash, model_id)`` and
    the model id carries the weights' hash, so the next pipeline run re-scores every text (the
    pending review queue included) with the new model and rebuilds the flags from its scores.

    Args:
        folder: the models folder (:func:`models_dir`).
        candidate: a checkpoint folder written by ``pulse moderation train`` (with its model card).
        warehouse: DuckDB file whose ``moderation.decisions`` to compare on (None or absent: skipped).
        force: promote even when the candidate is worse (recorded as forced).
        actor: who promotes (default: the OS user).
        scorer_options: engine options for loading both models (batch size, threads).

    Returns:
        The promotion record (also the log line): ``promoted_at``, ``actor``, ``candidate``,
        ``model_id``, ``model_version``, ``previous_model_id``, ``forced``, ``comparison``, ``community``.

    Raises:
        FileNotFoundError: ``candidate`` has no model.ckpt or validation.parquet.
        PromotionRefusedError: the candidate is worse and ``force`` is false (nothing changed).
    """
    import getpass
    import json
    import shutil
    from datetime import UTC, datetime

    from moderation.datasets import DecisionsUnavailableError, load_decisions, load_labelled
    from moderation.scorers import CHECKPOINT_FILE, community_model_dir, load_scorer
    from moderation.train import VALIDATION_FILE

    folder, candidate = Path(folder), Path(candidate).resolve()
    for needed in (CHECKPOINT_FILE, VALIDATION_FILE):
        if not (candidate / needed).is_file():
            raise FileNotFoundError(
                f"{candidate} has no {needed}: promote a folder written by `pulse moderation train`"
            )
    options = {k: v for k, v in (scorer_options or {}).items() if k not in ("checkpoint", "config_dir")}
    cand = load_scorer(f"checkpoint:{candidate}", **options)
    current = load_scorer("auto", models_dir=folder, **options)
    validation = load_labelled(candidate / VALIDATION_FILE).frame
    decisions = None
    if warehouse is not None and Path(warehouse).is_file():
        from warehouse.db import connect

        con = connect(Path(warehouse), read_only=True)
        try:
            decisions = load_decisions(con).frame
        except DecisionsUnavailableError:
            decisions = None
        finally:
            con.close()
    comparison = compare_for_promotion(cand, current, validation, decisions)
    if comparison["worse"] and not force:
        raise PromotionRefusedError(
            f"{cand.model_id} is worse than the current {current.model_id}: {'; '.join(comparison['worse'])} "
            "(use --force to promote anyway)"
        )
    now = datetime.now(UTC)
    community = community_model_dir(folder)
    staging = folder / f".community-{now:%Y%m%dT%H%M%S%f}.tmp"
    shutil.copytree(candidate, staging, ignore=shutil.ignore_patterns("onnx"))
    if community.exists():
        previous = folder / PREVIOUS_SUBDIR / f"{now:%Y%m%dT%H%M%S}-{getattr(current, 'model_version', 'unknown')}"
        previous.parent.mkdir(parents=True, exist_ok=True)
        community.rename(previous)
    staging.rename(community)
    promoted = load_scorer("auto", models_dir=folder, **options)
    record = {
        "promoted_at": now.isoformat(timespec="seconds"),
        "actor": actor or getpass.getuser(),
        "candidate": str(candidate),
        "model_id": promoted.model_id,
        "model_version": promoted.model_version,
        "previous_model_id": current.model_id,
        "previous_is_fallback": bool(current.is_fallback),
        "forced": bool(comparison["worse"]) and force,
        "comparison": comparison,
        "community": str(community),
    }
    with (folder / PROMOTION_LOG).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
    return record
