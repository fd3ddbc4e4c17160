"""Language detection and the languages each model reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moderation.language import (
    MULTILINGUAL_LANGUAGES,
    UNDETERMINED,
    detect_languages,
    detector_id,
    supported_languages,
)

TEXTS = {
    "de": "Das ist wirklich ein schlechtes Bier, trink es doch selbst, wenn es dir so gut schmeckt.",
    "es": "Esta cerveza es horrible, no entiendo por qué la recomiendas a todo el mundo.",
    "fr": "Ce commentaire est vraiment stupide et tu le sais très bien, arrête maintenant.",
    "en": "This beer is really great, thanks a lot for the tip about the brewery in Bamberg!",
    "ru": "Это пиво просто ужасное, не понимаю, почему ты его всем советуешь.",
}


def test_detects_common_languages_in_order() -> None:
    got = detect_languages(list(TEXTS.values()))
    assert got["language"].to_list() == list(TEXTS)
    assert got["confidence"].min() >= 0.8
    assert got.columns == ["language", "confidence"]


def test_short_or_empty_texts_are_undetermined() -> None:
    got = detect_languages(["ok thx", "+1", "", None, "1234567890 1234567890 1234567890 !!!"])
    assert got["language"].to_list() == [UNDETERMINED] * 5
    assert got["confidence"].to_list() == [0.0] * 5


def test_urls_do_not_decide_the_language() -> None:
    # a real beer.stackexchange answer (p943): English text around a German brewery's URL
    text = (
        'You should try the famous smoke beer "Schlenkerla". Maybe you can find it in North Carolina: '
        "http://www.schlenkerla.de/verkauf/haendlerint/retailer-us.html"
    )
    assert detect_languages([text])["language"].to_list() == ["en"]


def test_supported_languages_per_model(tmp_path: Path) -> None:
    assert supported_languages("lexical:alt-profanity-check") == {"en"}
    assert supported_languages("detoxify:original") == {"en"}
    assert supported_languages("detoxify:unbiased") == {"en"}
    assert supported_languages("detoxify:multilingual") == MULTILINGUAL_LANGUAGES
    assert len(MULTILINGUAL_LANGUAGES) == 7
    assert supported_languages("checkpoint:community-minilm@1bd57a4a34b1", checkpoint_dir=tmp_path) == {"en"}
    (tmp_path / "model_card.json").write_text(json.dumps({"languages": ["en", "DE"]}))
    assert supported_languages("checkpoint:x", checkpoint_dir=tmp_path) == {"en", "de"}
    (tmp_path / "model_card.json").write_text(json.dumps({"languages": "english"}))
    with pytest.raises(ValueError, match="ISO 639-1"):
        supported_languages("checkpoint:x", checkpoint_dir=tmp_path)
    assert detector_id().startswith("lingua-2.1.1:16-languages")
