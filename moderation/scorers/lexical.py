"""The lexical scorer: :class:`LexicalScorer` wraps ``alt-profanity-check`` (a scikit-learn
model shipped inside the package; ``toxicity`` only, no download, fast): the offline fallback
of ``auto`` (:func:`moderation.scorers.load_scorer`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from moderation.scorers import _check_texts, _empty_frame


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

    def __init__(
        self, *, is_fallback: bool = False, fallback_reason: str | None = None, chunk_size: int = 4096
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.is_fallback = is_fallback
        self.fallback_reason = fallback_reason
        self.chunk_size = chunk_size
        self.model_version = importlib.metadata.version("alt-profanity-check")

    @functools.cached_property
    def _pc(self) -> Any:
        """The ``profanity_check`` module, imported on first use (its model unpickles in about a
        second): a run with nothing to score learns the model's id without paying for it."""
        return _profanity_check()

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
