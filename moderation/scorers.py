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
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import polars as pl

log = logging.getLogger(__name__)

LABELS: tuple[str, ...] = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "threat",
    "insult",
    "identity_attack",
    "sexual_explicit",
)
"""Detoxify's label names, the columns every scorer's frame uses."""

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


# --------------------------------------------------------------------------------------------
# Detoxify


class DetoxifyScorer:
    """Scores with the real ``detoxify.Detoxify`` class, loaded once per instance.

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
        batch_size: texts per forward pass (>= 1).
        device: torch device, e.g. ``cpu``.
        allow_download: allow network access (the published checkpoint and its hub config).
            False (default) loads only from local files, with the hub forced offline.
        model_id: override the default id (``detoxify:<model>`` or ``checkpoint:<name>``,
            where name is the checkpoint's folder for a ``model.ckpt`` file, else the file stem).

    Raises:
        ScorerUnavailableError: the checkpoint, config folder, or a hub file it needs is not
            available locally (and downloading was not allowed or failed).
        ValueError: bad arguments, a malformed checkpoint, or a config whose ``num_labels``
            does not match the checkpoint.
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
    ) -> None:
        if (model is None) == (checkpoint is None):
            raise ValueError("give exactly one of model= (original|unbiased|multilingual) or checkpoint=PATH")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
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
        """Score ``texts`` in batches of ``batch_size`` (sorted by length to limit padding).

        Returns:
            Frame with ``len(texts)`` rows in input order and one Float64 column per label in
            :attr:`labels`, sigmoid probabilities in [0, 1]. Texts longer than the model's
            maximum length are truncated.

        Raises:
            TypeError: ``texts`` is a single string or holds a non-string.
        """
        import torch

        items = _check_texts(texts)
        if not items:
            return _empty_frame(self.labels)
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        out = np.empty((len(items), len(self.labels)), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                result = self._detox.predict([items[i] for i in idx])
                for j, label in enumerate(self.labels):
                    values = result[self._label_key[label]]
                    # Detoxify squeezes a batch of one to a bare float
                    out[idx, j] = values if isinstance(values, list) else [values]
        return pl.DataFrame({label: out[:, j] for j, label in enumerate(self.labels)})

    def __repr__(self) -> str:
        return f"DetoxifyScorer(model_id={self.model_id!r}, model_version={self.model_version!r}, labels={self.labels})"


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


def _from_checkpoint(checkpoint: Path, config_dir: Path | None, batch_size: int) -> DetoxifyScorer:
    """A scorer from a checkpoint folder or a checkpoint file (+ optional config folder)."""
    if checkpoint.is_dir():
        ckpt, cfg = _checkpoint_folder(checkpoint, config_dir)
        return DetoxifyScorer(
            checkpoint=ckpt, huggingface_config_path=cfg, batch_size=batch_size, model_id=f"checkpoint:{checkpoint.name}"
        )
    return DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir, batch_size=batch_size)


def load_scorer(
    spec: str,
    *,
    checkpoint: Path | None = None,
    config_dir: Path | None = None,
    batch_size: int = 32,
    allow_download: bool = False,
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
        batch_size: texts per Detoxify forward pass.
        allow_download: for ``detoxify:*`` only, fetch the published checkpoint (and its hub
            config) when not cached. Off by default: no network is expected.

    Raises:
        ValueError: unknown spec (the message lists the valid ones), bad arguments, or a
            malformed checkpoint.
        ScorerUnavailableError: an explicitly requested Detoxify model cannot be loaded here
            (not cached, config missing); raised without touching the network unless
            ``allow_download``.
    """
    if spec == "lexical":
        return LexicalScorer()
    if spec == "auto":
        return _auto(checkpoint, config_dir, batch_size)
    if spec.startswith("detoxify:"):
        model = spec.split(":", 1)[1]
        if model not in DETOXIFY_MODELS:
            raise ValueError(f"unknown scorer spec {spec!r}; valid: {' | '.join(VALID_SPECS)}")
        return DetoxifyScorer(
            model, huggingface_config_path=config_dir, batch_size=batch_size, allow_download=allow_download
        )
    if spec.startswith("checkpoint:") and spec != "checkpoint:":
        folder = Path(spec.split(":", 1)[1])
        ckpt, cfg = _checkpoint_folder(folder, config_dir)
        return DetoxifyScorer(
            checkpoint=ckpt, huggingface_config_path=cfg, batch_size=batch_size, model_id=f"checkpoint:{folder.name}"
        )
    raise ValueError(f"unknown scorer spec {spec!r}; valid: {' | '.join(VALID_SPECS)}")


def _auto(checkpoint: Path | None, config_dir: Path | None, batch_size: int) -> Scorer:
    """``auto``: Detoxify if weights are local, else the lexical fallback (logged)."""
    reasons: list[str] = []
    if checkpoint is not None:
        try:
            return _from_checkpoint(Path(checkpoint), config_dir, batch_size)
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
                return DetoxifyScorer(model, huggingface_config_path=config_dir, batch_size=batch_size)
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
