"""Toxicity scorers behind one protocol (DESIGN.md, "Toxicity models").

Every scorer turns a sequence of texts into a polars frame with one ``Float64`` column per
label it scores (Detoxify's label names, probabilities in [0, 1]) and one row per text, in
input order, and carries its provenance (``model_id``, ``model_version``, ``backend``, whether
it is a fallback and why).

Backends:

- :class:`DetoxifyScorer` wraps the real ``detoxify.Detoxify`` class: the published models
  (``original``, ``unbiased``, ``multilingual``; their checkpoints live in torch hub's cache)
  or a local checkpoint plus a Hugging Face config folder, fully offline.
- :class:`LexicalScorer` wraps ``alt-profanity-check`` (a scikit-learn model shipped inside
  the package): ``toxicity`` only; the offline fallback.

:func:`load_scorer` picks one from a spec string (``auto``, ``lexical``,
``detoxify:original|unbiased|multilingual``, ``checkpoint:DIR``).

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

``quantization="onnx-int8"`` runs the same model through ONNX Runtime with int8 weights: the
model is exported once with ``torch.onnx.export(dynamo=True)`` (batch and sequence axes
dynamic), its value-info annotations dropped (ONNX shape inference rejects one of the
exporter's), pre-processed with ``onnxruntime.quantization.shape_inference.quant_pre_process``
and quantized with ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights per output
channel, MatMul nodes: the encoder's linear layers; uint8 activations quantized at run time).
The built file is cached in ``<checkpoint folder>/onnx/<sha12>-onnx-int8-r<recipe>/`` (or
``cache_dir``) and reused; the scorer's ``model_id`` gains ``+onnx-int8`` so scores of different
numerics are never mixed. Activations are quantized per batch tensor at run time, so an int8
score also moves slightly with the texts it is batched with (fp32 scores do not); the size of
that and of the int8-vs-fp32 differences is measured in BENCHMARKS.md ("Scoring"). torch's own int8 path (``torch.ao.quantization.quantize_dynamic``) is
deprecated in torch 2.13 (its migration target, torchao, is not installed) and is not offered.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import polars as pl

log = logging.getLogger(__name__)

from warehouse.canonical import LABELS  # noqa: E402  (re-exported: the label names scorers emit)


DETOXIFY_MODELS: tuple[str, ...] = ("original", "unbiased", "multilingual")
"""Published Detoxify models a ``detoxify:NAME`` spec may name."""

AUTO_PREFERENCE: tuple[str, ...] = ("unbiased", "original", "multilingual")
"""Order in which ``auto`` looks for a cached published model (unbiased has all 7 labels and
was trained to reduce identity bias, so it comes first)."""

VALID_SPECS: tuple[str, ...] = ("auto", "lexical", *(f"detoxify:{m}" for m in DETOXIFY_MODELS), "checkpoint:DIR")

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
ONNX Runtime with int8 dynamic quantization of the encoder's weights (see the module docstring)."""

DEFAULT_BATCH_TOKENS = 1024
"""Default token budget of one model batch: texts x longest text's tokens (padding included)."""

CHARS_PER_TOKEN_LIMIT = 100
"""A text is cut to ``max_length * CHARS_PER_TOKEN_LIMIT`` characters before tokenisation, so a
10 MB post costs what a 50 KB one does. BERT's WordPiece turns any word longer than 100
characters into one ``[UNK]`` token, so ``max_length`` tokens span fewer characters than this
unless the text pads its words with long runs of whitespace; the tokens kept are then the same
as when tokenising the whole text."""

ONNX_RECIPE = "1"
"""Version of the ONNX build recipe; part of the cache key (bump it when the build changes)."""
ONNX_SUBDIR = "onnx"
"""Cache folder for built ONNX models, beside the checkpoint file (git-ignored under models/)."""


class ScorerUnavailableError(RuntimeError):
    """A requested scorer cannot be loaded here: its weights or config are not available
    locally and downloading was not allowed (or failed). The message says what is missing."""


@runtime_checkable
class Scorer(Protocol):
    """What every toxicity scorer offers.

    Attributes:
        model_id: stable name of the model, e.g. ``detoxify:original``,
            ``lexical:alt-profanity-check``, ``checkpoint:<folder name>``.
        model_version: package version, or the first 12 hex digits of the checkpoint file's sha256.
        backend: ``detoxify`` or ``lexical``.
        is_fallback: true when ``auto`` fell back to this scorer because the preferred one was
            unavailable.
        fallback_reason: why it fell back (None when not a fallback).
        labels: the labels it scores, a subset of :data:`LABELS` in that order.
    """

    model_id: str
    model_version: str
    backend: str
    is_fallback: bool
    fallback_reason: str | None
    labels: tuple[str, ...]

    def score(self, texts: Sequence[str]) -> pl.DataFrame:
        """Score ``texts``: one row per text in input order, one Float64 column per label in
        :attr:`labels`, values in [0, 1]."""
        ...


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


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("score() takes a sequence of texts, not one string; wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, not str; score only non-null strings")
    return out


def _empty_frame(labels: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(schema={label: pl.Float64 for label in labels})


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
        if current and ((len(current) + 1) * lengths[i] > budget or (max_texts is not None and len(current) >= max_texts)):
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
                args[key]  # noqa: B018 - presence check
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
                    f"{classes}; set \"num_labels\": {len(classes)} (and id2label) in config.json"
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


# --------------------------------------------------------------------------------------------
# ONNX Runtime int8


def _example_inputs(tokenizer: Any) -> dict[str, Any]:
    """Two texts of different lengths, padded: the export traces a batch with padding."""
    enc = tokenizer(
        ["a short text", "a longer text, so that the first one needs padding in this batch"],
        padding=True, truncation=True, return_tensors="pt",
    )  # fmt: skip
    return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def _export_fp32(model: Any, inputs: dict[str, Any], path: Path) -> None:
    """``torch.onnx.export(dynamo=True)`` with dynamic batch and sequence axes, to one file.

    The exporter's own warnings and progress output (torch 2.13: a pytree FutureWarning raised
    inside torch, notes that input axes share a name, "[torch.onnx] ..." lines, torchvision
    notices) are silenced for the export only; :func:`build_onnx_int8` checks the exported
    graph's logits against the torch model's instead.
    """
    import onnx
    import torch

    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    names = list(inputs)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model.eval(), (), kwargs=inputs, dynamo=True, verbose=False, optimize=True,
                input_names=names, output_names=["logits"],
                dynamic_shapes={name: {0: batch, 1: seq} for name in names},
            )  # fmt: skip
            program.save(str(path), external_data=False)
    finally:
        onnx_logger.setLevel(level)
    # The exporter annotates some intermediate values with static shapes that ONNX's own shape
    # inference then contradicts ("Inferred shape and existing shape differ"), which stops the
    # quantizer. The annotations are optional metadata: drop them and let inference redo them.
    graph = onnx.load(str(path))
    del graph.graph.value_info[:]
    onnx.save(graph, str(path))


def _ort_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads, full graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build_onnx_int8(model: Any, tokenizer: Any, out_dir: Path, *, check_atol: float = 1e-3) -> Path:
    """Build (once) an int8 ONNX model of ``model`` in ``out_dir`` and return its ``model.onnx``.

    Steps: export fp32 (:func:`_export_fp32`); check that ONNX Runtime's fp32 logits equal
    torch's on a padded example batch within ``check_atol``; pre-process
    (``quant_pre_process``, ONNX shape inference and graph optimisation; onnxruntime's symbolic
    shape inference cannot resolve the exporter's graph and is skipped); quantize
    (``quantize_dynamic``: QInt8 weights per output channel on MatMul nodes, i.e. the encoder's
    linear layers; the pooler and classifier Gemm stay fp32). Built in a temporary folder beside
    ``out_dir`` and renamed into place, so concurrent builds never leave a half-written model;
    an existing ``out_dir/model.onnx`` is reused as is. ``out_dir/manifest.json`` records the
    recipe, package versions, the fp32 check and the build time.

    Args:
        model: the Hugging Face sequence-classification model (torch, CPU, eval mode).
        tokenizer: its tokenizer (for the example batch).
        out_dir: the cache folder of this checkpoint and recipe (key it by the weights' hash).
        check_atol: largest tolerated |logit| difference between the fp32 ONNX graph and torch.

    Raises:
        ScorerUnavailableError: ``onnxruntime`` or ``onnxscript`` (torch's ONNX exporter needs
            it) is not installed.
        RuntimeError: the exported fp32 graph disagrees with torch beyond ``check_atol``.
    """
    import importlib.util

    missing = [m for m in ("onnxruntime", "onnxscript", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ScorerUnavailableError(
            f"scorer_quantization=onnx-int8 needs the packages {', '.join(missing)} (pinned in requirements.lock); "
            "install them or use scorer_quantization=none"
        )
    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_dir = Path(out_dir)
    target = out_dir / "model.onnx"
    if target.is_file():
        return target
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the cache is shared like the checkpoint
    try:
        inputs = _example_inputs(tokenizer)
        fp32, pre = work / "fp32.onnx", work / "pre.onnx"
        _export_fp32(model, inputs, fp32)
        with torch.inference_mode():
            expected = model(**inputs)[0].numpy()
        got = _ort_session(fp32, 1).run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        diff = float(np.max(np.abs(got - expected)))
        if not diff <= check_atol:
            raise RuntimeError(
                f"the ONNX export of this model disagrees with torch: largest logit difference {diff:.3g} > {check_atol}; "
                "use scorer_quantization=none"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # onnxruntime's notes on ops it leaves alone
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            quantize_dynamic(pre, work / "model.onnx", weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])  # fmt: skip
        fp32.unlink()
        pre.unlink()
        manifest = {
            "recipe": ONNX_RECIPE, "quantization": "onnx-int8", "weights": "QInt8 per channel, MatMul nodes",
            "activations": "QUInt8, dynamic", "fp32_check_max_abs_logit_diff": diff, "build_s": round(time.perf_counter() - t0, 2),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "transformers": importlib.metadata.version("transformers"),
        }  # fmt: skip
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            work.rename(out_dir)
        except OSError:  # another process built it first
            if not target.is_file():
                raise
        log.info("built int8 ONNX model %s in %.1f s", target, time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------
# lexical


def _profanity_check() -> Any:
    """Import ``profanity_check`` (it unpickles its scikit-learn model at import)."""
    try:
        from sklearn.exceptions import InconsistentVersionWarning
    except ImportError:  # scikit-learn < 1.3 has no such warning
        InconsistentVersionWarning = UserWarning  # noqa: N806
    with warnings.catch_warnings():
        # alt-profanity-check unpickles a vectorizer and a linear model fitted with the
        # scikit-learn it was released against. When the installed scikit-learn differs, sklearn
        # warns InconsistentVersionWarning although these simple estimators load fine; pytest
        # runs with warnings as errors, so silence exactly that warning, only for this import.
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        import profanity_check

    return profanity_check


class LexicalScorer:
    """Scores ``toxicity`` only with ``alt-profanity-check`` (no download, CPU, fast).

    Weaker than Detoxify: it keys on swear words and misses threats or insults without them.

    Args:
        is_fallback: set by :func:`load_scorer` when ``auto`` fell back to this scorer.
        fallback_reason: why (shown with every score and on the dashboards).
        chunk_size: texts vectorised at once (bounds memory; >= 1).
    """

    backend = "lexical"
    model_id = "lexical:alt-profanity-check"
    labels: tuple[str, ...] = ("toxicity",)

    def __init__(self, *, is_fallback: bool = False, fallback_reason: str | None = None, chunk_size: int = 4096) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.is_fallback = is_fallback
        self.fallback_reason = fallback_reason
        self.chunk_size = chunk_size
        self.model_version = importlib.metadata.version("alt-profanity-check")
        self._pc = _profanity_check()

    def score(self, texts: Sequence[str]) -> pl.DataFrame:
        """Score ``texts``.

        Returns:
            Frame with ``len(texts)`` rows in input order and one Float64 column ``toxicity``,
            the model's probability that the text is profane/offensive, in [0, 1].

        Raises:
            TypeError: ``texts`` is a single string or holds a non-string.
        """
        items = _check_texts(texts)
        if not items:
            return _empty_frame(self.labels)
        parts = [
            np.asarray(self._pc.predict_prob(items[i : i + self.chunk_size]), dtype=np.float64)
            for i in range(0, len(items), self.chunk_size)
        ]
        return pl.DataFrame({"toxicity": np.concatenate(parts)})

    def __repr__(self) -> str:
        return f"LexicalScorer(model_version={self.model_version!r}, is_fallback={self.is_fallback})"


# --------------------------------------------------------------------------------------------
# factory


def _checkpoint_folder(folder: Path, config_dir: Path | None) -> tuple[Path, Path]:
    """Resolve a checkpoint folder to (``model.ckpt``, config folder), or raise."""
    ckpt = folder / CHECKPOINT_FILE
    cfg = config_dir if config_dir is not None else folder / CONFIG_SUBDIR
    if not ckpt.is_file():
        raise ScorerUnavailableError(
            f"Detoxify weights unavailable: {folder} has no {CHECKPOINT_FILE} (expected layout: "
            f"DIR/{CHECKPOINT_FILE} + DIR/{CONFIG_SUBDIR}/config.json and tokenizer files)"
        )
    if not (cfg / "config.json").is_file():
        raise ScorerUnavailableError(
            f"Hugging Face config unavailable: {cfg / 'config.json'} does not exist (expected layout: "
            f"DIR/{CHECKPOINT_FILE} + DIR/{CONFIG_SUBDIR}/config.json and tokenizer files)"
        )
    return ckpt, cfg


def _from_checkpoint(checkpoint: Path, config_dir: Path | None, engine: dict[str, Any]) -> DetoxifyScorer:
    """A scorer from a checkpoint folder or a checkpoint file (+ optional config folder)."""
    if checkpoint.is_dir():
        ckpt, cfg = _checkpoint_folder(checkpoint, config_dir)
        return DetoxifyScorer(
            checkpoint=ckpt, huggingface_config_path=cfg, model_id=f"checkpoint:{checkpoint.name}", **engine
        )
    return DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir, **engine)


def load_scorer(
    spec: str,
    *,
    checkpoint: Path | None = None,
    config_dir: Path | None = None,
    batch_size: int = 32,
    allow_download: bool = False,
    quantization: str = "none",
    threads: int | None = None,
    max_batch_tokens: int = DEFAULT_BATCH_TOKENS,
    cache_dir: Path | None = None,
) -> Scorer:
    """Build the scorer named by ``spec``.

    Specs:
        ``auto``: Detoxify when weights can be had (``checkpoint`` if given, else a published
            model already in torch hub's cache, in :data:`AUTO_PREFERENCE` order), else the
            lexical scorer with ``is_fallback=True`` and ``fallback_reason`` set, logged with
            ``logging.warning``. Never downloads.
        ``lexical``: :class:`LexicalScorer`.
        ``detoxify:original|unbiased|multilingual``: the published model from torch hub's
            cache (``config_dir`` optional: a local HF folder for its base model, otherwise
            the base model's config must be in the local Hugging Face cache).
        ``checkpoint:DIR``: a checkpoint folder (``DIR/model.ckpt`` + ``DIR/hf/``; see the
            module docstring); ``config_dir`` overrides ``DIR/hf``.

    Args:
        checkpoint: for ``auto``: a checkpoint folder (layout above) or a ``.ckpt`` file.
            Ignored by other specs.
        config_dir: local Hugging Face config + tokenizer folder (see above).
        batch_size: texts per Detoxify forward pass at most.
        allow_download: for ``detoxify:*`` only, fetch the published checkpoint (and its hub
            config) when not cached. Off by default: no network is expected.
        quantization, threads, max_batch_tokens, cache_dir: the Detoxify engine's options
            (:class:`DetoxifyScorer`); ignored by the lexical scorer.

    Raises:
        ValueError: unknown spec or quantization (the message lists the valid ones), bad
            arguments, or a malformed checkpoint.
        ScorerUnavailableError: an explicitly requested Detoxify model cannot be loaded here
            (not cached, config missing); raised without touching the network unless
            ``allow_download``.
    """
    engine: dict[str, Any] = {
        "batch_size": batch_size, "quantization": check_quantization(quantization), "threads": threads,
        "max_batch_tokens": max_batch_tokens, "cache_dir": cache_dir,
    }  # fmt: skip
    if spec == "lexical":
        return LexicalScorer()
    if spec == "auto":
        return _auto(checkpoint, config_dir, engine)
    if spec.startswith("detoxify:"):
        model = spec.split(":", 1)[1]
        if model not in DETOXIFY_MODELS:
            raise ValueError(f"unknown scorer spec {spec!r}; valid: {' | '.join(VALID_SPECS)}")
        return DetoxifyScorer(model, huggingface_config_path=config_dir, allow_download=allow_download, **engine)
    if spec.startswith("checkpoint:") and spec != "checkpoint:":
        folder = Path(spec.split(":", 1)[1])
        ckpt, cfg = _checkpoint_folder(folder, config_dir)
        return DetoxifyScorer(checkpoint=ckpt, huggingface_config_path=cfg, model_id=f"checkpoint:{folder.name}", **engine)
    raise ValueError(f"unknown scorer spec {spec!r}; valid: {' | '.join(VALID_SPECS)}")


def _auto(checkpoint: Path | None, config_dir: Path | None, engine: dict[str, Any]) -> Scorer:
    """``auto``: Detoxify if weights are local, else the lexical fallback (logged)."""
    reasons: list[str] = []
    if checkpoint is not None:
        try:
            return _from_checkpoint(Path(checkpoint), config_dir, engine)
        except ScorerUnavailableError as exc:
            reasons.append(str(exc))
    else:
        missing = []
        for model in AUTO_PREFERENCE:
            path = detoxify_cache_path(model)
            if not path.is_file():
                missing.append(path.name)
                continue
            try:
                return DetoxifyScorer(model, huggingface_config_path=config_dir, **engine)
            except ScorerUnavailableError as exc:
                reasons.append(str(exc))
        if missing:
            reasons.insert(
                0,
                "Detoxify weights unavailable: no checkpoint given and none of "
                f"{', '.join(missing)} cached in {path.parent}",
            )
    reason = "; ".join(reasons) + "; using the lexical fallback (alt-profanity-check, toxicity only)"
    log.warning("toxicity scorer 'auto' fell back to the lexical model: %s", reason)
    return LexicalScorer(is_fallback=True, fallback_reason=reason)
