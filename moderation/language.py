"""Language of each text, and which languages a toxicity model reads.

An English model's score on a German or Spanish comment means little: it misses insults in
other languages and trips on words it does not know. So the score step detects each text's
language once (per ``content_hash``, into ``moderation.languages``) and the moderation queue
routes items whose language the active model does not support to human review with the reason
"language not supported by model", instead of trusting the score.

Detector: lingua-language-detector (Rust core; high-accuracy mode) restricted to
:data:`DETECTOR_LANGUAGES`, 16 common languages of online communities that include every
language of Detoxify's multilingual model. Restricting the set keeps it fast and avoids
confusing English with close relatives it will never see. Measured on this 2-core machine
(beer.stackexchange dump): 16 languages, high accuracy: loading its models 2.3 s once per
process, then ~700 whole posts/s (2,106 posts) and ~920 texts/s over all 3,849 posts and
comments cut to 1,000 characters (under a load average of 5); 16 languages in low-accuracy
mode: 0.07 s to load and ~4,700 posts/s, but it took the 22-letter "Eres un imbécil, cállate
ya" for English; all 75 languages in low-accuracy mode ~1,100 posts/s with more false guesses
(Finnish, Tagalog for short English texts). Texts are cut to :data:`MAX_CHARS` characters first (the language of a long post is
clear long before its end), and texts shorter than :data:`MIN_CHARS` letters count as ``und``
(undetermined: "ok thx" or "+1" says nothing about a language) and are never routed.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import polars as pl

UNDETERMINED = "und"
"""ISO 639-2 code for "undetermined" (too short, or the detector is not confident)."""

MIN_CHARS = 20
"""Texts with fewer letters than this are ``und``."""

MAX_CHARS = 1000
"""Only the first this many characters of a text are examined."""

DETECTOR_LANGUAGES: tuple[str, ...] = (
    "ENGLISH",
    "GERMAN",
    "SPANISH",
    "FRENCH",
    "ITALIAN",
    "PORTUGUESE",
    "DUTCH",
    "RUSSIAN",
    "TURKISH",
    "POLISH",
    "ARABIC",
    "CHINESE",
    "JAPANESE",
    "KOREAN",
    "HINDI",
    "INDONESIAN",
)
"""lingua ``Language`` names the detector chooses among."""

MULTILINGUAL_LANGUAGES: frozenset[str] = frozenset({"en", "fr", "es", "it", "pt", "tr", "ru"})
"""Detoxify ``multilingual`` (XLM-RoBERTa, Jigsaw Multilingual): its 7 languages (Detoxify README)."""

ENGLISH_ONLY: frozenset[str] = frozenset({"en"})

_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_URLS = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


def detector_id() -> str:
    """Provenance of the detections, e.g. ``lingua-2.1.1:16-languages``."""
    return f"lingua-{version('lingua-language-detector')}:{len(DETECTOR_LANGUAGES)}-languages"


@functools.cache
def _detector():
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(*(getattr(Language, n) for n in DETECTOR_LANGUAGES)).build()


def detect_languages(texts: Sequence[str | None], *, min_chars: int = MIN_CHARS) -> pl.DataFrame:
    """Detect the language of each text.

    Args:
        texts: the texts (None counts as empty).
        min_chars: texts with fewer letters are ``und`` with confidence 0.

    URLs are removed first (a link to a German brewery's site says nothing about the language
    of the post around it).

    Returns:
        One row per input, in order: ``language: str`` (ISO 639-1 lower case, e.g. ``de``, or
        ``und``) and ``confidence: f64`` (lingua's confidence value of that language, 0–1; 0
        for ``und``).
    """
    cut = [_URLS.sub(" ", (t or "")[: 4 * MAX_CHARS])[:MAX_CHARS] for t in texts]
    long_enough = [i for i, t in enumerate(cut) if len(_LETTERS.findall(t)) >= min_chars]
    languages = [UNDETERMINED] * len(cut)
    confidence = [0.0] * len(cut)
    if long_enough:
        results = _detector().compute_language_confidence_values_in_parallel([cut[i] for i in long_enough])
        for i, values in zip(long_enough, results, strict=True):
            if values and values[0].value > 0:
                languages[i] = values[0].language.iso_code_639_1.name.lower()
                confidence[i] = float(values[0].value)
    return pl.DataFrame(
        {"language": languages, "confidence": confidence}, schema={"language": pl.String, "confidence": pl.Float64}
    )


def supported_languages(model_id: str, *, checkpoint_dir: Path | None = None) -> frozenset[str]:
    """The languages (ISO 639-1) a toxicity model reads.

    Args:
        model_id: the scorer's ``model_id`` (``lexical:...``, ``detoxify:original|unbiased|multilingual``,
            ``checkpoint:NAME[@version]``).
        checkpoint_dir: for a checkpoint, its folder: a ``languages`` list in its
            ``model_card.json`` (e.g. ``["en", "de"]``) is used when present.

    Returns:
        ``{"en"}`` for the lexical model, Detoxify ``original``/``unbiased`` and our English
        checkpoints (fine-tuned on English data) unless their card says otherwise; the 7
        languages of Detoxify ``multilingual``.

    Raises:
        ValueError: a model card whose ``languages`` is not a list of 2-letter codes.
    """
    if model_id.startswith("detoxify:multilingual"):
        return MULTILINGUAL_LANGUAGES
    if model_id.startswith("checkpoint:") and checkpoint_dir is not None:
        card = Path(checkpoint_dir) / "model_card.json"
        if card.is_file():
            declared = json.loads(card.read_text(encoding="utf-8")).get("languages")
            if declared is not None:
                if not isinstance(declared, list) or not all(isinstance(x, str) and len(x) == 2 for x in declared):
                    raise ValueError(
                        f'{card}: \'languages\' must be a list of ISO 639-1 codes such as ["en", "de"], got {declared!r}'
                    )
                return frozenset(x.lower() for x in declared)
    return ENGLISH_ONLY


def detect_pending(con: object, *, batch_size: int = 4096) -> int:
    """Detect the language of every text in ``staging.content`` not yet in ``moderation.languages``.

    Once per ``content_hash`` (an edit changes the hash and is detected again); each batch is
    committed on its own, so an interrupted run resumes.

    Args:
        con: a writable warehouse connection (DuckDB) with migration 007 applied.

    Returns:
        Number of texts detected now.
    """
    from datetime import UTC, datetime

    from warehouse.db import frame

    pending = frame(
        con,  # type: ignore[arg-type]
        """
        select content_hash, any_value(concat_ws(chr(10) || chr(10), nullif(title, ''), nullif(body_text, ''))) as text
        from staging.content c
        where not exists (select 1 from moderation.languages l where l.content_hash = c.content_hash)
        group by content_hash
        order by content_hash
        """,
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    provenance = detector_id()
    for start in range(0, pending.height, batch_size):
        chunk = pending.slice(start, batch_size)
        detected = detect_languages(chunk["text"].to_list())
        rows = pl.DataFrame(  # noqa: F841 - read by DuckDB below
            {
                "content_hash": chunk["content_hash"],
                "language": detected["language"],
                "confidence": detected["confidence"],
                "detector": provenance,
                "detected_at": now,
            }
        )
        con.execute("insert into moderation.languages by name select * from rows on conflict do nothing")  # type: ignore[attr-defined]
    return pending.height


def set_language_policy(con: object, model_id: str, languages: frozenset[str], min_confidence: float) -> None:
    """Record which languages the active model reads (``moderation.language_policy``, one row).

    The moderation queue routes an item to human review when its detected language (at
    confidence >= ``min_confidence``, not ``und``) is not among ``languages``.
    """
    from datetime import UTC, datetime

    con.execute("begin transaction")  # type: ignore[attr-defined]
    try:
        con.execute("delete from moderation.language_policy")  # type: ignore[attr-defined]
        con.execute(  # type: ignore[attr-defined]
            "insert into moderation.language_policy values (?, ?, ?, ?)",
            [model_id, sorted(languages), float(min_confidence), datetime.now(UTC).replace(tzinfo=None)],
        )
        con.execute("commit")  # type: ignore[attr-defined]
    except BaseException:
        con.execute("rollback")  # type: ignore[attr-defined]
        raise
