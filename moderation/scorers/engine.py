"""The Detoxify scoring engine: :class:`DetoxifyScorer` and what it needs (token-budget
batching, :func:`hf_offline`, the checkpoint folder constants, thread and quantization options).

Checkpoint folder layout (``checkpoint:DIR``; :func:`moderation.tiny.build_tiny_checkpoint`
writes it)::

    DIR/
      model.ckpt        a Detoxify checkpoint: torch.save of
                        {"config": {"arch": {"args": {"model_type", "model_name",
                                                      "tokenizer_name", "num_classes"}},
                                    "dataset": {"args": {"classes": [...]}}},
                         "state_dict": {...}}
      hf/               a Hugging Face folder: config.json (num_labels == num_classes)
        config.json     plus the tokenizer files (tokenizer.json, tokenizer_config.json,
        tokenizer.json  vocab.txt for BERT; vocab.json/merges.txt or
        ...             sentencepiece.bpe.model for RoBERTa / XLM-R)

Offline loading. ``Detoxify(checkpoint=..., huggingface_config_path=DIR)`` (detoxify 0.5.4)
still calls ``config_class.from_pretrained(arch.args.model_type)``, and ``model_type`` in a
published checkpoint is a hub name such as ``bert-base-uncased``: it goes online. The scorer
therefore reads the checkpoint, rewrites ``model_type`` to the local config folder, and hands
the patched checkpoint to ``Detoxify`` as an in-memory file (``torch.load`` accepts a file
object); the checkpoint on disk is never modified and no patched copy is written. Loads that
need no network run inside :func:`hf_offline`, so a missing file fails in milliseconds.

Scoring engine. ``Detoxify`` loads the model and tokenizer; :meth:`DetoxifyScorer.score` then
drives them itself instead of calling ``Detoxify.predict`` per batch: identical texts within a
call are scored once, every distinct text is tokenised once (truncated at the model's maximum
length), texts are sorted by their length in tokens and packed into batches of at most
``max_batch_tokens`` padded tokens (and ``batch_size`` texts), so short texts share large
batches and a 512-token text does not make 31 short ones pad to 512, and the underlying Hugging
Face model runs under ``torch.inference_mode()`` with ``threads`` intra-op threads (default:
the cores available to the process). Scores are ``sigmoid(logits)`` as in ``Detoxify.predict``;
on the fp32 path they equal plain Detoxify's within float32 rounding (< 1e-6).

``quantization="onnx-int8"`` swaps the torch model for an int8 ONNX Runtime session built by
:mod:`moderation.scorers.onnx` (see there).

Calibration. A checkpoint folder may hold ``calibration.json`` (per-label monotone maps fitted
on the validation split, :mod:`moderation.calibration`); the scorer then returns the calibrated
probabilities for those labels and its model id ends in ``+cal-<sha8 of the file>`` (so
calibrated and raw scores are never mixed in ``moderation.scores``). ``calibrate=False`` skips it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from moderation.scorers import DETOXIFY_MODELS, ScorerUnavailableError, _check_texts, _empty_frame
from moderation.scorers.onnx import ONNX_RECIPE, ONNX_SUBDIR, _ort_session, build_onnx_int8
from warehouse.canonical import LABELS

CHECKPOINT_FILE = "model.ckpt"
"""File name of the Detoxify checkpoint inside a checkpoint folder."""
CONFIG_SUBDIR = "hf"
"""Sub-folder of a checkpoint folder holding the Hugging Face config and tokenizer."""

# Class names used by Detoxify checkpoints -> our labels. Detoxify 0.5.4 already renames the
# first three in ``load_checkpoint``; repeating them keeps us right if a version stops doing so.
_CLASS_ALIASES: dict[str, str] = {
    "toxic": "toxicity",
    "severe_toxic": "severe_toxicity",
    "identity_hate": "identity_attack",
}

_HF_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

QUANTIZATIONS: tuple[str, ...] = ("none", "onnx-int8")
"""Numerics of the Detoxify engine (setting ``scorer_quantization``, env
``PULSE_SCORER_QUANTIZATION``): ``none`` = torch fp32, Detoxify's own numbers; ``onnx-int8`` =
ONNX Runtime with int8 dynamic quantization of the encoder's weights (see :mod:`moderation.scorers.onnx`)."""

DEFAULT_BATCH_TOKENS = 1024
"""Default token budget of one model batch: texts x longest text's tokens (padding included)."""

CHARS_PER_TOKEN_LIMIT = 100
"""A text is cut to ``max_length * CHARS_PER_TOKEN_LIMIT`` characters before tokenisation, so a
10 MB post costs what a 50 KB one does. BERT's WordPiece turns any word longer than 100
characters into one ``[UNK]`` token, so ``max_length`` tokens span fewer characters than this
unless the text pads its words with long runs of whitespace; the tokens kept are then the same
as when tokenising the whole text."""


# --------------------------------------------------------------------------------------------
# helpers


@contextlib.contextmanager
def hf_offline(enabled: bool = True) -> Iterator[None]:
    """Keep the Hugging Face hub offline for the duration of the block, then restore.

    Sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` and, because ``huggingface_hub``
    reads those variables once at import, also its ``constants.HF_HUB_OFFLINE`` flag (setting
    the variables alone after import does nothing: a miss would then retry for ~25 s). This is
    the one place in the library that touches ``os.environ``. Process-wide: not for use from
    concurrent threads that expect the hub online.

    Args:
        enabled: when false the block runs unchanged (online loading allowed).
    """
    if not enabled:
        yield
        return
    import huggingface_hub.constants as hub_constants

    saved_env = {k: os.environ.get(k) for k in _HF_OFFLINE_VARS}
    saved_flag = hub_constants.HF_HUB_OFFLINE
    for k in _HF_OFFLINE_VARS:
        os.environ[k] = "1"
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_flag
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' "Loading weights" progress bar during a load, then restore it."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def detoxify_cache_path(model: str) -> Path:
    """Where torch hub caches the published Detoxify checkpoint for ``model``.

    ``Detoxify(model_type=model)`` downloads with ``torch.hub.load_state_dict_from_url``, which
    keeps the file as ``torch.hub.get_dir()/checkpoints/<file name of the URL>``, e.g.
    ``toxic_original-c1212f89.ckpt``. The file may not exist.

    Raises:
        ValueError: ``model`` is not one of :data:`DETOXIFY_MODELS`.
    """
    if model not in DETOXIFY_MODELS:
        raise ValueError(f"unknown Detoxify model {model!r}; valid: {', '.join(DETOXIFY_MODELS)}")
    import torch
    from detoxify.detoxify import MODEL_URLS

    return Path(torch.hub.get_dir()) / "checkpoints" / MODEL_URLS[model].rsplit("/", 1)[-1]


def available_cores() -> int:
    """CPU cores this process may run on (``len(os.sched_getaffinity(0))``; ``os.cpu_count()``
    where affinity is not supported), at least 1: the default thread count of the engine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_quantization(value: str) -> str:
    """Return ``value`` if it is one of :data:`QUANTIZATIONS`.

    Raises:
        ValueError: naming the valid values (and, for ``int8``, why torch's int8 is not offered).
    """
    if value in QUANTIZATIONS:
        return value
    hint = ""
    if value == "int8":
        hint = (
            "; torch's int8 dynamic quantization (torch.ao.quantization.quantize_dynamic) is deprecated "
            "in torch 2.13 and not offered: use onnx-int8 (ONNX Runtime int8)"
        )
    raise ValueError(f"unknown quantization {value!r}; valid: {' | '.join(QUANTIZATIONS)}{hint}")


def token_budget_batches(lengths: Sequence[int], budget: int, max_texts: int | None = None) -> list[list[int]]:
    """Group texts into batches by token length, each costing at most ``budget`` padded tokens.

    Texts are taken in ascending order of length (stable for ties), so each batch pads to its
    last text; a batch closes when one more text would make ``texts x longest`` exceed
    ``budget`` or the batch already holds ``max_texts`` texts. A text longer than ``budget``
    alone still gets a batch of its own.

    Args:
        lengths: tokens per text (special tokens included), shape ``(n,)``.
        budget: padded tokens per batch (>= 1).
        max_texts: texts per batch at most (None: no limit).

    Returns:
        Batches of indexes into ``lengths``; every index appears exactly once, batches in
        ascending length order.

    Raises:
        ValueError: ``budget`` or ``max_texts`` < 1.
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1 token, got {budget}")
    if max_texts is not None and max_texts < 1:
        raise ValueError(f"max_texts must be >= 1, got {max_texts}")
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (
            (len(current) + 1) * lengths[i] > budget or (max_texts is not None and len(current) >= max_texts)
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class ScoringStats:
    """What one :meth:`DetoxifyScorer.score` call did (``scorer.last_stats``).

    Attributes:
        texts: texts given. unique_texts: distinct texts scored (duplicates scored once).
        batches: model calls. tokens: tokens of the distinct texts after truncation.
        padded_tokens: tokens the model computed (each batch padded to its longest text).
        tokenize_s / model_s / total_s: wall seconds tokenising, in the model, in all.
    """

    texts: int
    unique_texts: int
    batches: int
    tokens: int
    padded_tokens: int
    tokenize_s: float
    model_s: float
    total_s: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON)."""
        return asdict(self)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore the previous count."""
    import torch

    previous = torch.get_num_threads()
    if n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != previous:
            torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# Detoxify


class DetoxifyScorer:
    """Scores with a Detoxify model loaded once per instance by the real ``detoxify.Detoxify``
    class, through the engine described in the module docstring.

    Give either ``model`` (a published model, read from torch hub's cache; downloaded only
    when ``allow_download``) or ``checkpoint`` (a local Detoxify checkpoint file). With
    ``huggingface_config_path`` (a local Hugging Face folder with ``config.json`` and tokenizer
    files) the checkpoint's ``model_type`` is rewritten to that folder before loading, so
    nothing is fetched from the hub (see the module docstring).

    Args:
        model: ``original``, ``unbiased`` or ``multilingual``; None when ``checkpoint`` is given.
        checkpoint: path of a Detoxify checkpoint file (``.ckpt``).
        huggingface_config_path: local Hugging Face config + tokenizer folder; its
            ``config.json`` must have ``num_labels`` equal to the checkpoint's class count.
        batch_size: texts per forward pass at most (>= 1).
        device: torch device, e.g. ``cpu`` (``onnx-int8`` runs on the CPU only).
        allow_download: allow network access (the published checkpoint and its hub config).
            False (default) loads only from local files, with the hub forced offline.
        model_id: override the default id (``detoxify:<model>`` or ``checkpoint:<name>``,
            where name is the checkpoint's folder for a ``model.ckpt`` file, else the file stem).
        max_batch_tokens: padded tokens per forward pass at most (texts x the batch's longest
            text, in tokens; >= 1); see :func:`token_budget_batches`.
        threads: intra-op threads of torch / ONNX Runtime while scoring (>= 1); None = the
            cores available to the process (:func:`available_cores`).
        quantization: one of :data:`QUANTIZATIONS`; ``onnx-int8`` builds (once, then cached)
            and runs an int8 ONNX model and appends ``+onnx-int8`` to ``model_id``.
        cache_dir: where built ONNX models go (default: ``onnx/`` beside the checkpoint file).
        calibrate: apply ``calibration.json`` beside a ``model.ckpt`` when present (see the
            module docstring).

    Attributes:
        max_length: tokens per text after truncation (the tokenizer's ``model_max_length``,
            capped by the model's position embeddings).
        last_stats: :class:`ScoringStats` of the latest :meth:`score` call (None before).
        onnx_path: the int8 ONNX file in use (None on the torch path).

    Raises:
        ScorerUnavailableError: the checkpoint, config folder, or a hub file it needs is not
            available locally (and downloading was not allowed or failed).
        ValueError: bad arguments (an unknown ``quantization`` lists the valid ones), a
            malformed checkpoint, or a config whose ``num_labels`` does not match the checkpoint.
    """

    backend = "detoxify"

    def __init__(
        self,
        model: str | None = None,
        *,
        checkpoint: Path | str | None = None,
        huggingface_config_path: Path | str | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        allow_download: bool = False,
        model_id: str | None = None,
        max_batch_tokens: int = DEFAULT_BATCH_TOKENS,
        threads: int | None = None,
        quantization: str = "none",
        cache_dir: Path | str | None = None,
        calibrate: bool = True,
    ) -> None:
        if (model is None) == (checkpoint is None):
            raise ValueError("give exactly one of model= (original|unbiased|multilingual) or checkpoint=PATH")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 (or None for the cores available), got {threads}")
        self.quantization = check_quantization(quantization)
        if self.quantization != "none" and str(device) != "cpu":
            raise ValueError(f"quantization {quantization!r} runs on the CPU only; got device={device!r}")
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.threads = threads if threads is not None else available_cores()
        self.last_stats: ScoringStats | None = None
        self.onnx_path: Path | None = None
        self._session: Any = None
        self.device = device
        self.is_fallback = False
        self.fallback_reason: str | None = None
        config_dir = Path(huggingface_config_path) if huggingface_config_path is not None else None

        if model is not None:
            path = detoxify_cache_path(model)  # raises ValueError for an unknown model
            if not path.is_file():
                if not allow_download:
                    raise ScorerUnavailableError(
                        f"Detoxify weights unavailable: the {model!r} checkpoint is not cached at {path} "
                        "and downloading is not allowed (no network expected). Copy the file there, "
                        "or use checkpoint:DIR with a local checkpoint folder."
                    )
                self._download(model, path)
            self.model_id = model_id or f"detoxify:{model}"
        else:
            path = Path(checkpoint)  # type: ignore[arg-type]
            if not path.is_file():
                raise ScorerUnavailableError(f"Detoxify weights unavailable: checkpoint file {path} does not exist")
            name = path.parent.name if path.name == CHECKPOINT_FILE else path.stem
            self.model_id = model_id or f"checkpoint:{name}"
        self.checkpoint_path = path
        self.config_dir = config_dir
        self._detox, self.model_version, self.class_names = self._load(path, config_dir, device, allow_download)
        if self.model_id.startswith("checkpoint:") and "@" not in self.model_id:
            # Scores are keyed by (content_hash, model_id): a checkpoint retrained in the same
            # folder is a different model, so its id carries the weights' hash.
            self.model_id = f"{self.model_id}@{self.model_version}"
        self.calibration: dict[str, Any] = {}
        if calibrate and checkpoint is not None and path.name == CHECKPOINT_FILE:
            from moderation.calibration import read_calibration

            found = read_calibration(path.parent)
            if found is not None:
                self.calibration = found[0]["labels"]
                self.model_id = f"{self.model_id}+cal-{found[1]}"
        self.labels: tuple[str, ...] = tuple(label for label in LABELS if label in self._label_key)
        if not self.labels:
            raise ValueError(
                f"checkpoint {path} scores none of our labels {LABELS}: its classes are {self.class_names}"
            )
        self._clamp_max_length()
        tokenizer = self._detox.tokenizer
        self.max_length = int(tokenizer.model_max_length)
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self._pad_left = getattr(tokenizer, "padding_side", "right") == "left"
        self._class_index = [list(self.class_names).index(self._label_key[label]) for label in self.labels]
        if self.quantization == "onnx-int8":
            folder = Path(cache_dir) if cache_dir is not None else path.parent / ONNX_SUBDIR
            self.onnx_path = build_onnx_int8(
                self._detox.model, tokenizer, folder / f"{self.model_version}-onnx-int8-r{ONNX_RECIPE}"
            )
            self._session = _ort_session(self.onnx_path, self.threads)
            self._session_inputs = {i.name for i in self._session.get_inputs()}
            self._detox.model = None  # the session holds the weights now; free the fp32 copy
            self.model_id = f"{self.model_id}+onnx-int8"

    @staticmethod
    def _download(model: str, path: Path) -> None:
        """Fetch the published checkpoint into torch hub's cache (network)."""
        import torch
        from detoxify.detoxify import MODEL_URLS

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(MODEL_URLS[model], str(path), progress=False)
        except Exception as exc:  # network errors come in many types (URLError, OSError, ...)
            raise ScorerUnavailableError(f"Detoxify weights unavailable: download of {model!r} failed: {exc}") from exc

    def _load(
        self, path: Path, config_dir: Path | None, device: str, allow_download: bool
    ) -> tuple[Any, str, list[str]]:
        """Read, patch and load the checkpoint through ``Detoxify``; return (model, sha12, classes)."""
        import torch
        import transformers
        from detoxify import Detoxify

        raw = path.read_bytes()
        sha12 = hashlib.sha256(raw).hexdigest()[:12]
        # weights_only=False as in Detoxify itself: published checkpoints carry Lightning extras.
        # Checkpoints are trusted artefacts (ours or Detoxify's), never user uploads.
        loaded = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
        del raw
        try:
            config = copy.deepcopy(loaded["config"])
            args = dict(config["arch"]["args"])
            classes = list(config["dataset"]["args"]["classes"])
            state_dict = loaded["state_dict"]
            for key in ("model_type", "model_name", "tokenizer_name", "num_classes"):
                args[key]
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"{path} is not a Detoxify checkpoint: it needs config.arch.args "
                "{model_type, model_name, tokenizer_name, num_classes}, config.dataset.args.classes "
                f"and state_dict (missing {exc})"
            ) from exc
        del loaded
        if int(args["num_classes"]) != len(classes):
            raise ValueError(f"{path}: num_classes={args['num_classes']} but {len(classes)} classes {classes}")
        if not hasattr(transformers, args["model_name"]):
            raise ValueError(f"{path}: model_name {args['model_name']!r} is not a transformers class")
        if not hasattr(transformers, args["tokenizer_name"]):
            args["tokenizer_name"] = "AutoTokenizer"  # renamed/removed class: let the folder decide

        if config_dir is not None:
            cfg_file = config_dir / "config.json"
            if not cfg_file.is_file():
                raise ScorerUnavailableError(f"Hugging Face config folder {config_dir} has no config.json")
            hf_cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
            n_labels = hf_cfg.get("num_labels", len(hf_cfg.get("id2label") or {}) or None)
            if n_labels != len(classes):
                raise ValueError(
                    f"{cfg_file} has num_labels={n_labels} but the checkpoint has {len(classes)} classes "
                    f'{classes}; set "num_labels": {len(classes)} (and id2label) in config.json'
                )
            # The rewrite: Detoxify calls config_class.from_pretrained(model_type) even when given
            # huggingface_config_path; point it at the local folder instead of a hub name.
            args["model_type"] = str(config_dir.resolve())
        config["arch"]["args"] = args
        config["dataset"]["args"]["classes"] = classes
        buf = io.BytesIO()
        torch.save({"config": config, "state_dict": state_dict}, buf)
        del state_dict
        buf.seek(0)
        try:
            with hf_offline(not allow_download), _quiet_transformers():
                detox = Detoxify(
                    checkpoint=buf,
                    device=device,
                    huggingface_config_path=str(config_dir.resolve()) if config_dir is not None else None,
                )
        except OSError as exc:  # transformers' "couldn't find / connect" errors are OSErrors
            raise ScorerUnavailableError(
                f"cannot load {path}: a Hugging Face file it needs is not available locally "
                f"(model_type={args['model_type']!r}): {exc}. Pass a local config folder "
                "(huggingface_config_path / config_dir) holding config.json and the tokenizer files."
            ) from exc
        self._label_key = {}
        for cls in detox.class_names:
            label = _CLASS_ALIASES.get(cls, cls)
            if label in LABELS and label not in self._label_key:
                self._label_key[label] = cls
        return detox, sha12, list(detox.class_names)

    def _clamp_max_length(self) -> None:
        """Make the tokenizer truncate to what the model's position embeddings allow.

        Detoxify tokenizes with ``truncation=True``, which truncates to the tokenizer's
        ``model_max_length``; a tokenizer saved without it (a huge sentinel value) would let a
        long text overflow the position embeddings. RoBERTa-family models reserve
        ``pad_token_id + 1`` positions.
        """
        cfg = self._detox.model.config
        limit = getattr(cfg, "max_position_embeddings", None)
        if not limit:
            return
        if getattr(cfg, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
            limit -= (cfg.pad_token_id or 0) + 1
        tok = self._detox.tokenizer
        if not tok.model_max_length or tok.model_max_length > limit:
            tok.model_max_length = limit

    def score(self, texts: Sequence[str]) -> pl.DataFrame:
        """Score ``texts``: each distinct text once, in token-budget batches sorted by token length.

        Returns:
            Frame with ``len(texts)`` rows in input order and one Float64 column per label in
            :attr:`labels`, ``sigmoid(logits)`` in [0, 1] as ``Detoxify.predict`` computes it.
            Texts longer than :attr:`max_length` tokens are truncated (and cut to
            ``max_length * CHARS_PER_TOKEN_LIMIT`` characters first). :attr:`last_stats`
            records the call.

        Raises:
            TypeError: ``texts`` is a single string or holds a non-string.
        """
        items = _check_texts(texts)
        if not items:
            return _empty_frame(self.labels)
        t_start = time.perf_counter()
        first: dict[str, int] = {}
        inverse = np.fromiter((first.setdefault(t, len(first)) for t in items), dtype=np.int64, count=len(items))
        unique = list(first)
        limit = self.max_length * CHARS_PER_TOKEN_LIMIT
        encoded = self._detox.tokenizer(
            [t if len(t) <= limit else t[:limit] for t in unique], truncation=True, max_length=self.max_length
        )
        features = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        lengths = [len(ids) for ids in features["input_ids"]]
        batches = token_budget_batches(lengths, self.max_batch_tokens, self.batch_size)
        t_model = time.perf_counter()
        probs = np.empty((len(unique), len(self.class_names)), dtype=np.float32)
        with contextlib.ExitStack() as stack:
            if self._session is None:
                import torch

                stack.enter_context(_torch_threads(self.threads))
                stack.enter_context(torch.inference_mode())
            for batch in batches:
                probs[batch] = self._forward(self._pad(features, lengths, batch))
        t_end = time.perf_counter()
        self.last_stats = ScoringStats(
            texts=len(items), unique_texts=len(unique), batches=len(batches), tokens=sum(lengths),
            padded_tokens=sum(len(b) * lengths[b[-1]] for b in batches),
            tokenize_s=t_model - t_start, model_s=t_end - t_model, total_s=t_end - t_start,
        )  # fmt: skip
        chosen = probs[:, self._class_index].astype(np.float64)[inverse]
        if self.calibration:
            from moderation.calibration import apply_calibrator

            for j, label in enumerate(self.labels):
                if label in self.calibration:
                    chosen[:, j] = apply_calibrator(self.calibration[label], chosen[:, j])
        return pl.DataFrame({label: chosen[:, j] for j, label in enumerate(self.labels)})

    def _pad(self, features: dict[str, list[list[int]]], lengths: list[int], batch: list[int]) -> dict[str, np.ndarray]:
        """The batch's features as int64 arrays ``(len(batch), longest)``, padded like the
        tokenizer pads (``pad_token_id`` for ids, 0 for the mask and token types)."""
        width = max(lengths[i] for i in batch)
        arrays: dict[str, np.ndarray] = {}
        for name, rows in features.items():
            arr = np.full((len(batch), width), self._pad_id if name == "input_ids" else 0, dtype=np.int64)
            for r, i in enumerate(batch):
                if self._pad_left:
                    arr[r, width - lengths[i] :] = rows[i]
                else:
                    arr[r, : lengths[i]] = rows[i]
            arrays[name] = arr
        return arrays

    def _forward(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """One model call: ``sigmoid(logits)`` as float32, shape ``(batch, classes)``.

        Called once per batch (tests count the calls); the torch path runs inside
        ``torch.inference_mode()`` with :attr:`threads` threads (set by :meth:`score`).
        """
        import torch

        if self._session is not None:
            names = self._session_inputs
            logits = torch.from_numpy(self._session.run(None, {k: v for k, v in arrays.items() if k in names})[0])
        else:
            model = self._detox.model
            inputs = {k: torch.from_numpy(v).to(model.device) for k, v in arrays.items()}
            logits = model(**inputs)[0].cpu()
        return torch.sigmoid(logits).numpy()

    def __repr__(self) -> str:
        return f"DetoxifyScorer(model_id={self.model_id!r}, model_version={self.model_version!r}, labels={self.labels})"
