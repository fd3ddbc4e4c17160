"""Toxicity scorers behind one protocol (docs/ARCHITECTURE.md, "Model strategy").

Every scorer turns a sequence of texts into a polars frame with one ``Float64`` column per
label it scores (Detoxify's label names, :data:`LABELS`, probabilities in [0, 1]) and one row
per text, in input order, and carries its provenance (``model_id``, ``model_version``,
``backend``, whether it is a fallback and why).

This module owns the :class:`Scorer` protocol, :class:`ScorerUnavailableError`, the spec
strings and :func:`load_scorer`, which picks a scorer from a spec (``auto``, ``lexical``,
``detoxify:original|unbiased|multilingual``, ``checkpoint:DIR``). ``auto`` prefers, in order:
a configured checkpoint, the community model if built (``<models dir>/community``, what
``make model`` and ``pulse moderation promote`` write), a published Detoxify model already in
torch hub's cache, and only then the lexical fallback, whose reason says how to build the
community model. The backends live beside it
and their public names are re-exported here (``from moderation.scorers import X`` works):

- :mod:`moderation.scorers.engine`: :class:`DetoxifyScorer` wraps the real
  ``detoxify.Detoxify`` class (the published models, whose checkpoints live in torch hub's
  cache, or a local checkpoint plus a Hugging Face config folder, fully offline) and drives it
  in token-budget batches; also :func:`hf_offline` and the checkpoint folder constants.
- :mod:`moderation.scorers.onnx`: the ``onnx-int8`` numerics of that engine (export, int8
  quantization, ONNX Runtime session).
- :mod:`moderation.scorers.lexical`: :class:`LexicalScorer` wraps ``alt-profanity-check`` (a
  scikit-learn model shipped inside the package): ``toxicity`` only; the offline fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import polars as pl

from warehouse.canonical import LABELS  # re-exported: the label names scorers emit

log = logging.getLogger(__name__)

DETOXIFY_MODELS: tuple[str, ...] = ("original", "unbiased", "multilingual")
"""Published Detoxify models a ``detoxify:NAME`` spec may name."""

AUTO_PREFERENCE: tuple[str, ...] = ("unbiased", "original", "multilingual")
"""Order in which ``auto`` looks for a cached published model (unbiased has all 7 labels and
was trained to reduce identity bias, so it comes first)."""

VALID_SPECS: tuple[str, ...] = ("auto", "lexical", *(f"detoxify:{m}" for m in DETOXIFY_MODELS), "checkpoint:DIR")

DEFAULT_MODELS_DIR = Path("data/models")
"""Default models folder (relative to the working directory, beside the default warehouse
``data/warehouse.duckdb``; git-ignored): ``community/`` is the promoted community model that
``auto`` uses, ``candidates/NAME/`` the trained candidates, ``promotions.jsonl`` the promotion log."""
COMMUNITY_SUBDIR = "community"
"""Sub-folder of the models folder holding the community model ``auto`` prefers."""
BUILD_HINT = "run `make model` to build the community model (about 45 min on 2 CPU cores)"
"""What the lexical fallback's reason tells the user to do (the ``make model`` recipe's time budget)."""


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


def _check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, checked: every scorer's ``score`` takes a sequence of strings.

    Raises:
        TypeError: ``texts`` is a single string or holds a non-string.
    """
    if isinstance(texts, str):
        raise TypeError("score() takes a sequence of texts, not one string; wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, not str; score only non-null strings")
    return out


def _empty_frame(labels: Sequence[str]) -> pl.DataFrame:
    """The result of scoring no texts: zero rows, one Float64 column per label."""
    return pl.DataFrame(schema={label: pl.Float64 for label in labels})


# The backends import the names above from this package, so they are imported after them.
from moderation.scorers.engine import (  # noqa: E402
    CHARS_PER_TOKEN_LIMIT,
    CHECKPOINT_FILE,
    CONFIG_SUBDIR,
    DEFAULT_BATCH_TOKENS,
    QUANTIZATIONS,
    DetoxifyScorer,
    ScoringStats,
    available_cores,
    check_quantization,
    detoxify_cache_path,
    hf_offline,
    token_budget_batches,
)
from moderation.scorers.lexical import LexicalScorer  # noqa: E402
from moderation.scorers.onnx import ONNX_RECIPE, ONNX_SUBDIR, build_onnx_int8  # noqa: E402

__all__ = [
    "AUTO_PREFERENCE", "BUILD_HINT", "CHARS_PER_TOKEN_LIMIT", "CHECKPOINT_FILE", "COMMUNITY_SUBDIR", "CONFIG_SUBDIR",
    "DEFAULT_BATCH_TOKENS", "DEFAULT_MODELS_DIR", "DETOXIFY_MODELS", "LABELS", "ONNX_RECIPE", "ONNX_SUBDIR", "QUANTIZATIONS", "VALID_SPECS", "DetoxifyScorer",
    "LexicalScorer", "Scorer", "ScorerUnavailableError", "ScoringStats", "available_cores", "build_onnx_int8",
    "check_quantization", "community_model_dir", "detoxify_cache_path", "hf_offline", "load_scorer",
    "token_budget_batches",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# factory


def community_model_dir(models_dir: Path | str | None = None) -> Path:
    """The community model's folder: ``<models_dir or DEFAULT_MODELS_DIR>/community`` (it may not exist)."""
    return Path(models_dir if models_dir is not None else DEFAULT_MODELS_DIR) / COMMUNITY_SUBDIR


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
    models_dir: Path | None = None,
) -> Scorer:
    """Build the scorer named by ``spec``.

    Specs:
        ``auto``: the first that loads of ``checkpoint`` (if given), the community model
            (:func:`community_model_dir` of ``models_dir``, if built), a published Detoxify
            model already in torch hub's cache (in :data:`AUTO_PREFERENCE` order); else the
            lexical scorer with ``is_fallback=True`` and ``fallback_reason`` set (why, and
            :data:`BUILD_HINT`), logged with ``logging.warning``. Never downloads.
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
        models_dir: for ``auto``: the models folder holding ``community/`` (None:
            :data:`DEFAULT_MODELS_DIR`).

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
        return _auto(checkpoint, config_dir, engine, community_model_dir(models_dir))
    if spec.startswith("detoxify:"):
        model = spec.split(":", 1)[1]
        if model not in DETOXIFY_MODELS:
            raise ValueError(f"unknown scorer spec {spec!r}; valid: {' | '.join(VALID_SPECS)}")
        return DetoxifyScorer(model, huggingface_config_path=config_dir, allow_download=allow_download, **engine)
    if spec.startswith("checkpoint:") and spec != "checkpoint:":
        folder = Path(spec.split(":", 1)[1])
        ckpt, cfg = _checkpoint_folder(folder, config_dir)
        return DetoxifyScorer(
            checkpoint=ckpt, huggingface_config_path=cfg, model_id=f"checkpoint:{folder.name}", **engine
        )
    raise ValueError(f"unknown scorer spec {spec!r}; valid: {' | '.join(VALID_SPECS)}")


def _auto(checkpoint: Path | None, config_dir: Path | None, engine: dict[str, Any], community: Path) -> Scorer:
    """``auto``: configured checkpoint > community model > cached published model > lexical (logged)."""
    reasons: list[str] = []
    if checkpoint is not None:
        try:
            return _from_checkpoint(Path(checkpoint), config_dir, engine)
        except ScorerUnavailableError as exc:
            reasons.append(str(exc))
    if (community / CHECKPOINT_FILE).is_file():
        try:
            scorer = _from_checkpoint(community, None, engine)
            if reasons:  # the configured checkpoint could not be loaded: say so, though not a fallback
                log.warning("toxicity scorer 'auto' uses the community model %s: %s", community, "; ".join(reasons))
            return scorer
        except (ScorerUnavailableError, ValueError) as exc:
            reasons.append(f"community model {community} unusable: {exc}")
    else:
        reasons.append(f"no community model built in {community}")
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
        reasons.append(
            f"Detoxify weights unavailable: none of {', '.join(missing)} cached in {detoxify_cache_path(AUTO_PREFERENCE[0]).parent}"
        )
    reason = "; ".join(reasons) + f"; using the lexical fallback (alt-profanity-check, toxicity only): {BUILD_HINT}"
    log.warning("toxicity scorer 'auto' fell back to the lexical model: %s", reason)
    return LexicalScorer(is_fallback=True, fallback_reason=reason)
