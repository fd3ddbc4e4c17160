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

Saturation: when several words each push the score to (nearly) 1.0, removing any one of them
barely moves it, and leave-one-out finds no driver. Given the flag ``threshold``,
:func:`occlusion` then also finds a **sufficient set** (:attr:`Explanation.sufficient`): words
removed greedily, each step the one whose removal lowers the score most (ties: the word that
scores highest on its own), until the score falls below the threshold; then every word the
set can do without is dropped again, so the set is minimal (no word of it can be left out).
This is the "minimal sufficient subset" reading of occlusion (cf. Ribeiro, Singh & Guestrin,
"Anchors", AAAI 2018, for sufficient feature sets; greedy search with pruning as in
Li, Monroe & Jurafsky 2016, §5). Each step is one batched ``score`` call over at most
:data:`SET_CANDIDATES` candidate words; at most :data:`SET_MAX_WORDS` words are removed.

Results are cached in-process per ``(content_hash, model_id, label, max_words, threshold)``.
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

SET_CANDIDATES = 12
"""Candidate words per greedy step (those with the largest leave-one-out drop, ties by own score)."""
SET_MAX_WORDS = 8
"""Most words a sufficient set may hold (beyond: the explanation says no small set was found)."""


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
        by_form: word form -> attribution (probability points).
        threshold: the flag threshold the sufficient set was sought for (None: not sought).
        sufficient: the minimal set of word forms (lower case, in removal order) whose removal
            together brings the score below ``threshold``; empty when not sought, when the
            text is below the threshold already, or when no set of at most
            :data:`SET_MAX_WORDS` words was found.
        sufficient_score: the score with the whole ``sufficient`` set removed (None with it empty).
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
    threshold: float | None = None
    sufficient: tuple[str, ...] = ()
    sufficient_score: float | None = None

    def drivers(self, k: int = 5, *, min_drop: float = 0.0) -> list[tuple[str, float]]:
        """The ``k`` word forms whose removal lowers the score most, as ``(form, drop)``.

        Only forms with ``drop > min_drop`` are returned (largest drop first; ties by form).
        """
        ranked = sorted(((f, d) for f, d in self.by_form.items() if d > min_drop), key=lambda x: (-x[1], x[0]))
        return ranked[:k]

    def set_sentence(self) -> str | None:
        """``"Without "stupid", "idiot" the toxicity score falls from 1.00 to 0.31, below the
        threshold 0.80."`` (None without a sufficient set). The words are member text: show it
        as text, never as Markdown or HTML."""
        if not self.sufficient or self.sufficient_score is None or self.threshold is None:
            return None
        words = ", ".join(f'"{f}"' for f in self.sufficient)
        return (
            f"Without {words} the {self.label} score falls from {self.full_score:.2f} to "
            f"{self.sufficient_score:.2f}, below the threshold {self.threshold:.2f}."
        )

    def note(self) -> str | None:
        """A sentence saying the explanation is partial, or None when every word was scored."""
        if not self.truncated:
            return None
        return (
            f"Long text: only the first {self.n_scored} of {self.n_forms} distinct words were "
            "re-scored; the others are not highlighted."
        )


_cache: OrderedDict[tuple[str, str, str, int, float | None], Explanation] = OrderedDict()
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
    threshold: float | None = None,
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
        threshold: the label's flag threshold; when the full score is at or above it, the
            sufficient set is searched (see the module docstring).

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
    key = (digest, str(scorer.model_id), label or "", max_words, threshold)
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
    sufficient: tuple[str, ...] = ()
    sufficient_score = None
    if threshold is not None and full >= threshold and scored_forms:
        sufficient, sufficient_score = _sufficient_set(scorer, text, label, threshold, forms, scored_forms, without)
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
        threshold=threshold,
        sufficient=sufficient,
        sufficient_score=sufficient_score,
    )
    if use_cache:
        with _cache_lock:
            _cache[key] = result
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return result


def _sufficient_set(
    scorer: Any,
    text: str,
    label: str,
    threshold: float,
    forms: dict[str, list[tuple[int, int]]],
    scored_forms: list[str],
    without: dict[str, float],
) -> tuple[tuple[str, ...], float | None]:
    """Greedy removal until the score is below ``threshold``, then pruning (module docstring).

    Returns:
        ``(forms removed, score without them)``, or ``((), None)`` when no set of at most
        :data:`SET_MAX_WORDS` forms gets below the threshold.
    """

    def score_without(sets: list[list[str]]) -> list[float]:
        texts = [_without(text, sorted(span for f in chosen for span in forms[f])) for chosen in sets]
        return [float(v) for v in scorer.score(texts)[label].to_list()]

    own = dict(zip(scored_forms, [float(v) for v in scorer.score(scored_forms)[label].to_list()], strict=True))
    order = sorted(scored_forms, key=lambda f: (without[f], -own[f], f))
    chosen: list[str] = []
    current = None
    while len(chosen) < SET_MAX_WORDS:
        candidates = [f for f in order if f not in chosen][:SET_CANDIDATES]
        if not candidates:
            break
        values = score_without([[*chosen, f] for f in candidates])
        best = min(range(len(candidates)), key=lambda i: (values[i], -own[candidates[i]], candidates[i]))
        chosen.append(candidates[best])
        current = values[best]
        if current < threshold:
            break
    if current is None or current >= threshold:
        return (), None
    for f in list(reversed(chosen[:-1])):  # prune: drop every word the set can do without
        rest = [g for g in chosen if g != f]
        (value,) = score_without([rest])
        if value < threshold:
            chosen, current = rest, value
    return tuple(chosen), current


def segments(
    explanation: Explanation, *, k: int = 5, min_share: float = 0.1, min_drop: float = 1e-4
) -> list[tuple[str, float | None]]:
    """Split the text into ``(piece, drop)`` segments for highlighting.

    Every character of the text is in exactly one segment, in order; ``drop`` is the word's
    attribution when its form is among the top ``k`` drivers with a drop above ``min_drop``
    and at least ``min_share`` of the largest drop, else None. Relative, because a score near
    1.0 saturates: with two swear words, removing either one barely moves it (a known limit
    of leave-one-out). Words of the sufficient set (:attr:`Explanation.sufficient`) are
    always marked, with their own attribution. The caller escapes each piece before display.
    """
    ranked = explanation.drivers(k, min_drop=min_drop)
    largest = ranked[0][1] if ranked else 0.0
    top = {form for form, drop in ranked if drop >= min_share * largest} | set(explanation.sufficient)
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
