"""Why was this flagged? Word-level occlusion ("leave-one-out") explanations of a toxicity score.

Method: occlusion sensitivity (Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014) applied to text, better known in NLP as leave-one-out attribution
(Li, Monroe & Jurafsky, "Understanding Neural Networks through Representation Erasure", 2016).
Remove one word, re-score, and call the drop in the score that word's attribution::

    attribution(w) = score(text) - score(text with w removed)

A positive attribution means the word pushes the score up (a driver of the flag); a negative
one means the text scores higher without it. The method needs nothing but the scorer's
``score(texts)``, so it works for every backend (Detoxify, the lexical fallback, ONNX ...).

Units: the unit removed is a distinct word form (case-insensitive): removing "idiot" removes
every occurrence, so a repeated insult is measured once and its attribution is shown on every
occurrence. All variants are scored in ONE batched ``score`` call. Cost is bounded by
``max_words`` distinct forms (in order of first occurrence); beyond that the explanation says
it is partial (:attr:`Explanation.truncated`).

Results are cached in-process per ``(content_hash, model_id, label, max_words)``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

WORD_RE = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)
"""A word: letters/digits/underscore runs, with inner apostrophes (``don't``)."""

DEFAULT_MAX_WORDS = 80
"""Distinct word forms scored at most per explanation (one batch of ``max_words + 1`` texts)."""

CACHE_SIZE = 512


@dataclass(frozen=True)
class WordAttribution:
    """One word occurrence and the score drop when its word form is removed.

    Attributes:
        start, end: character offsets of the occurrence in the text (``text[start:end]``).
        word: the occurrence as written.
        attribution: ``full_score - score_without`` (probability points, in [-1, 1]); None
            when the word form was not scored (beyond ``max_words``).
        score_without: the label's score with every occurrence of this form removed.
    """

    start: int
    end: int
    word: str
    attribution: float | None
    score_without: float | None


@dataclass(frozen=True)
class Explanation:
    """An occlusion explanation of one text's score for one label.

    Attributes:
        text: the text explained (unchanged).
        label: the label explained (a Detoxify label name, e.g. ``toxicity``).
        model_id: the scorer's ``model_id``.
        full_score: the label's score of the whole text, in [0, 1].
        words: every word occurrence in text order (offsets into ``text``).
        n_forms: distinct word forms in the text; ``n_scored`` of them were scored.
        truncated: True when ``n_scored < n_forms`` (long text; the rest have attribution None).
    """

    text: str
    label: str
    model_id: str
    full_score: float
    words: tuple[WordAttribution, ...]
    n_forms: int
    n_scored: int
    truncated: bool
    by_form: dict[str, float] = field(default_factory=dict)

    def drivers(self, k: int = 5, *, min_drop: float = 0.0) -> list[tuple[str, float]]:
        """The ``k`` word forms whose removal lowers the score most, as ``(form, drop)``.

        Only forms with ``drop > min_drop`` are returned (largest drop first; ties by form).
        """
        ranked = sorted(((f, d) for f, d in self.by_form.items() if d > min_drop), key=lambda x: (-x[1], x[0]))
        return ranked[:k]

    def note(self) -> str | None:
        """A sentence saying the explanation is partial, or None when every word was scored."""
        if not self.truncated:
            return None
        return (
            f"Long text: only the first {self.n_scored} of {self.n_forms} distinct words were "
            "re-scored; the others are not highlighted."
        )


_cache: OrderedDict[tuple[str, str, str, int], Explanation] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached explanation."""
    with _cache_lock:
        _cache.clear()


def tokenize(text: str) -> list[tuple[int, int, str]]:
    """The words of ``text`` as ``(start, end, word)`` with character offsets (see :data:`WORD_RE`)."""
    return [(m.start(), m.end(), m.group(0)) for m in WORD_RE.finditer(text)]


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the character ranges ``spans`` (sorted, disjoint) cut out."""
    parts, pos = [], 0
    for start, end in spans:
        parts.append(text[pos:start])
        pos = end
    parts.append(text[pos:])
    return re.sub(r"[ \t]{2,}", " ", "".join(parts)).strip()


def occlusion(
    scorer: Any,
    text: str,
    label: str | None = None,
    *,
    max_words: int = DEFAULT_MAX_WORDS,
    content_hash: str | None = None,
    use_cache: bool = True,
) -> Explanation:
    """Explain ``scorer``'s score of ``text`` by leave-one-word-form-out occlusion.

    Args:
        scorer: any :class:`moderation.scorers.Scorer` (``score(texts) -> polars.DataFrame``,
            ``model_id``, ``labels``).
        text: the item's text (the same text the pipeline scored, e.g. title + body).
        label: the label to explain (usually the item's ``max_label``); default: the label
            with the highest score for the full text.
        max_words: distinct word forms re-scored at most (>= 1); one batch of
            ``min(n_forms, max_words) + 1`` texts.
        content_hash: the content's hash for the cache key (default: sha256 of ``text``).
        use_cache: look up / store the result in the in-process cache.

    Returns:
        An :class:`Explanation`; ``attribution = full score - score without the word``.

    Raises:
        ValueError: ``label`` is not one the scorer scores, or ``max_words < 1``.
        TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    labels = tuple(scorer.labels)
    if label is not None and label not in labels:
        raise ValueError(f"label {label!r} is not scored by {scorer.model_id}; it scores: {', '.join(labels)}")
    digest = content_hash or hashlib.sha256(text.encode("utf-8")).hexdigest()
    key = (digest, str(scorer.model_id), label or "", max_words)
    if use_cache:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]

    tokens = tokenize(text)
    forms: dict[str, list[tuple[int, int]]] = {}
    for start, end, word in tokens:
        forms.setdefault(word.lower(), []).append((start, end))
    scored_forms = list(forms)[:max_words]
    batch = [text] + [_without(text, forms[f]) for f in scored_forms]
    frame = scorer.score(batch)
    if label is None:
        first = frame.row(0, named=True)
        label = max(labels, key=lambda lab: first[lab] if first[lab] is not None else -1.0)
    values = [float(v) for v in frame[label].to_list()]
    full = values[0]
    by_form = {f: full - v for f, v in zip(scored_forms, values[1:], strict=True)}
    without = {f: v for f, v in zip(scored_forms, values[1:], strict=True)}
    words = tuple(
        WordAttribution(start, end, word, by_form.get(word.lower()), without.get(word.lower()))
        for start, end, word in tokens
    )
    result = Explanation(
        text=text,
        label=label,
        model_id=str(scorer.model_id),
        full_score=full,
        words=words,
        n_forms=len(forms),
        n_scored=len(scored_forms),
        truncated=len(scored_forms) < len(forms),
        by_form=by_form,
    )
    if use_cache:
        with _cache_lock:
            _cache[key] = result
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return result


def segments(
    explanation: Explanation, *, k: int = 5, min_share: float = 0.1, min_drop: float = 1e-4
) -> list[tuple[str, float | None]]:
    """Split the text into ``(piece, drop)`` segments for highlighting.

    Every character of the text is in exactly one segment, in order; ``drop`` is the word's
    attribution when its form is among the top ``k`` drivers with a drop above ``min_drop``
    and at least ``min_share`` of the largest drop, else None. Relative, because a score near
    1.0 saturates: with two swear words, removing either one barely moves it (a known limit
    of leave-one-out). The caller escapes each piece before display.
    """
    ranked = explanation.drivers(k, min_drop=min_drop)
    largest = ranked[0][1] if ranked else 0.0
    top = {form for form, drop in ranked if drop >= min_share * largest}
    out: list[tuple[str, float | None]] = []
    pos = 0
    text = explanation.text
    for w in explanation.words:
        if w.word.lower() not in top:
            continue
        if w.start > pos:
            out.append((text[pos : w.start], None))
        out.append((text[w.start : w.end], w.attribution))
        pos = w.end
    if pos < len(text):
        out.append((text[pos:], None))
    return out
