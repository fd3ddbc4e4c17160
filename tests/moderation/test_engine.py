"""The Detoxify scoring engine (moderation/scorers.py): same scores as plain Detoxify.predict,
token-budget batches, de-duplication, bounded truncation, threads, and the onnx-int8 switch.

All on the tiny checkpoint (moderation/tiny.py, < 1 s to load) and real texts from the shared
toxicity sets; speed is measured by the benchmark (`python -m benchmarks.run --only scoring`),
never here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from moderation.scorers import (
    CHARS_PER_TOKEN_LIMIT,
    CHECKPOINT_FILE,
    CONFIG_SUBDIR,
    DetoxifyScorer,
    available_cores,
    hf_offline,
    load_scorer,
    token_budget_batches,
)
from moderation.tiny import build_tiny_checkpoint
from pulse.settings import ConfigError, load_settings

TEXTS = [
    "You are an idiot and I hate you.",
    "Thanks, that answer helped me brew a better stout!",
    "",
    "What is the difference between an ale and a lager? " * 12,
    "Shut up, loser.",
    "beer " * 400,  # longer than the tiny model's 128 positions: truncated
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # model_type = the local hf folder, so plain Detoxify(checkpoint=...) loads it offline too
    return build_tiny_checkpoint(tmp_path_factory.mktemp("engine") / "tiny-bert", model_type=None)


@pytest.fixture(scope="module")
def plain(tiny_dir: Path):
    """Plain Detoxify on the same checkpoint, called the usual way."""
    from detoxify import Detoxify

    with hf_offline():
        return Detoxify(
            checkpoint=str(tiny_dir / CHECKPOINT_FILE), huggingface_config_path=str(tiny_dir / CONFIG_SUBDIR)
        )


@pytest.fixture(scope="module")
def engine(tiny_dir: Path) -> DetoxifyScorer:
    # a small token budget so that these few texts need several batches
    scorer = load_scorer(f"checkpoint:{tiny_dir}", max_batch_tokens=64, threads=1)
    assert isinstance(scorer, DetoxifyScorer)
    return scorer


@pytest.fixture(scope="module")
def int8(tiny_dir: Path) -> DetoxifyScorer:
    scorer = load_scorer(f"checkpoint:{tiny_dir}", quantization="onnx-int8", max_batch_tokens=256, threads=1)
    assert isinstance(scorer, DetoxifyScorer)
    return scorer


def _plain_frame(plain, engine: DetoxifyScorer, texts: list[str]) -> np.ndarray:
    result = plain.predict(texts)
    return np.column_stack([np.atleast_1d(result[engine._label_key[label]]) for label in engine.labels])


def test_engine_matches_plain_detoxify_predict(engine: DetoxifyScorer, plain) -> None:
    ours = engine.score(TEXTS)
    assert engine.last_stats is not None and engine.last_stats.batches >= 3  # really batched differently
    np.testing.assert_allclose(ours.to_numpy(), _plain_frame(plain, engine, TEXTS), rtol=0, atol=1e-6)


def test_engine_matches_plain_on_real_comments(engine: DetoxifyScorer, plain, toxicity_data: Path) -> None:
    """200 real texts (the 101 Jigsaw comments, 99 Davidson tweets): many lengths, so padding differs per batch."""
    from moderation.datasets import load_labelled

    texts = [
        *load_labelled(toxicity_data / "jigsaw_sample" / "test_examples.csv").frame["text"],
        *load_labelled(toxicity_data / "davidson" / "labeled_data.csv").frame["text"].head(99),
    ]
    ours = engine.score(texts)
    stats = engine.last_stats
    assert stats is not None and stats.unique_texts == len(set(texts)) and stats.batches > 5
    # sorted by token length, batches pad almost nothing (plain batches of 32 in input order: about +50 % on these texts)
    assert stats.tokens <= stats.padded_tokens < 1.01 * stats.tokens
    expected = np.vstack([_plain_frame(plain, engine, texts[i : i + 32]) for i in range(0, len(texts), 32)])
    np.testing.assert_allclose(ours.to_numpy(), expected, rtol=0, atol=1e-6)


def test_order_is_preserved(engine: DetoxifyScorer) -> None:
    full = engine.score(TEXTS).to_numpy()
    perm = [3, 0, 5, 2, 4, 1]
    np.testing.assert_allclose(engine.score([TEXTS[i] for i in perm]).to_numpy(), full[perm], atol=1e-6)
    assert engine.score(TEXTS[:1]).height == 1
    empty = engine.score([])
    assert empty.height == 0 and empty.columns == list(engine.labels)


def test_duplicates_are_scored_once(engine: DetoxifyScorer, monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[int] = []
    forward = DetoxifyScorer._forward

    def counting(self: DetoxifyScorer, arrays: dict[str, np.ndarray]) -> np.ndarray:
        rows.append(arrays["input_ids"].shape[0])
        return forward(self, arrays)

    monkeypatch.setattr(DetoxifyScorer, "_forward", counting)
    texts = [
        "you idiot",
        "nice stout",
        "you idiot",
        "you idiot",
        "nice stout",
        "what hops?",
    ] * 5  # 30 texts, 3 distinct
    frame = engine.score(texts)
    assert sum(rows) == 3
    assert engine.last_stats.texts == 30 and engine.last_stats.unique_texts == 3
    assert frame.height == 30
    values = frame.to_numpy()
    np.testing.assert_array_equal(values[0], values[2])
    np.testing.assert_array_equal(values[1], values[4])
    assert not np.array_equal(values[0], values[1])


def test_a_10_mb_text_is_truncated_in_bounded_time(engine: DetoxifyScorer) -> None:
    huge = "stupid beer question " * 500_000  # 10.5 MB
    assert len(huge) > 10_000_000
    t0 = time.perf_counter()
    frame = engine.score([huge])
    elapsed = time.perf_counter() - t0
    assert frame.height == 1 and frame.null_count().sum_horizontal().item() == 0
    assert engine.last_stats.tokens == engine.max_length == 128
    # tokenising the whole 10 MB takes ~10 s; the character cut keeps it to the cost of 12,800 characters
    assert elapsed < 3.0, f"scoring one 10 MB text took {elapsed:.1f} s"
    # same tokens, same score as a text that was never that long
    prefix = engine.score([huge[: engine.max_length * CHARS_PER_TOKEN_LIMIT]])
    np.testing.assert_array_equal(frame.to_numpy(), prefix.to_numpy())


def test_threads_are_set_while_scoring_and_restored(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    seen: list[int] = []
    forward = DetoxifyScorer._forward

    def spy(self: DetoxifyScorer, arrays: dict[str, np.ndarray]) -> np.ndarray:
        seen.append(torch.get_num_threads())
        assert torch.is_inference_mode_enabled()
        return forward(self, arrays)

    monkeypatch.setattr(DetoxifyScorer, "_forward", spy)
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    scorer = load_scorer(f"checkpoint:{tiny_dir}", threads=other)
    scorer.score(["a", "b c"])
    assert seen == [other]
    assert torch.get_num_threads() == before
    assert load_scorer(f"checkpoint:{tiny_dir}").threads == available_cores() >= 1


def test_token_budget_batches() -> None:
    lengths = [5, 512, 40, 7, 300, 12, 12, 600]
    batches = token_budget_batches(lengths, 600, max_texts=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 600 for b in batches)
    assert all(len(b) <= 3 for b in batches)
    assert [[lengths[i] for i in b] for b in batches] == [[5, 7, 12], [12, 40], [300], [512], [600]]
    with pytest.raises(ValueError, match="budget"):
        token_budget_batches(lengths, 0)


def test_onnx_int8_builds_caches_and_stays_close(int8: DetoxifyScorer, engine: DetoxifyScorer, tiny_dir: Path) -> None:
    assert int8.model_id == f"checkpoint:tiny-bert@{int8.model_version}+onnx-int8"
    assert engine.model_id == f"checkpoint:tiny-bert@{engine.model_version}"
    assert int8.onnx_path == tiny_dir / "onnx" / f"{int8.model_version}-onnx-int8-r2" / "model.onnx"
    manifest = json.loads((int8.onnx_path.parent / "manifest.json").read_text())
    assert manifest["fp32_check_max_abs_logit_diff"] < 1e-4  # the exported fp32 graph is torch's model
    fp32 = engine.score(TEXTS).to_numpy()
    q = int8.score(TEXTS).to_numpy()
    assert q.shape == fp32.shape and ((q >= 0) & (q <= 1)).all()
    # int8 weights on the tiny random model: measured max 0.022; the trained model's figures are in BENCHMARKS.md
    assert np.abs(q - fp32).max() < 0.05
    assert np.abs(q - fp32).max() > 0  # really a different numeric path
    # cached: a second load reuses the built file
    mtime = int8.onnx_path.stat().st_mtime_ns
    again = load_scorer(
        f"checkpoint:{tiny_dir}", quantization="onnx-int8", max_batch_tokens=int8.max_batch_tokens, threads=1
    )
    assert again.onnx_path == int8.onnx_path and int8.onnx_path.stat().st_mtime_ns == mtime
    np.testing.assert_allclose(again.score(TEXTS).to_numpy(), q, atol=1e-6)  # same batches, same scores


def test_onnx_int8_duplicates_order_and_batch_dependence(int8: DetoxifyScorer) -> None:
    texts = [TEXTS[5], TEXTS[0], TEXTS[5], "x" * 2_000_000]
    frame = int8.score(texts)
    assert frame.height == 4 and int8.last_stats.unique_texts == 3
    values = frame.to_numpy()
    np.testing.assert_array_equal(values[0], values[2])
    # Dynamic quantization scales activations per batch tensor, so an int8 score moves a little
    # with the texts it is batched with (fp32 does not): bounded, and measured in BENCHMARKS.md.
    alone = int8.score([TEXTS[0]]).to_numpy()[0]
    assert np.abs(values[1] - alone).max() < 0.05


def test_bad_quantization_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path) -> None:
    monkeypatch.setenv("PULSE_SCORER_QUANTIZATION", "fp16")
    with pytest.raises(ConfigError, match=r"PULSE_SCORER_QUANTIZATION.*none \| onnx-int8"):
        load_settings()
    monkeypatch.setenv("PULSE_SCORER_QUANTIZATION", "int8")
    with pytest.raises(ConfigError, match=r"PULSE_SCORER_QUANTIZATION.*deprecat.*onnx-int8"):
        load_settings()
    monkeypatch.setenv("PULSE_SCORER_QUANTIZATION", "onnx-int8")
    monkeypatch.setenv("PULSE_SCORER_THREADS", "1")
    monkeypatch.setenv("PULSE_SCORE_BATCH_BUDGET", "4096")
    settings = load_settings()
    assert (settings.scorer_quantization, settings.scorer_threads, settings.score_batch_budget) == (
        "onnx-int8",
        1,
        4096,
    )
    with pytest.raises(ValueError, match=r"valid: none \| onnx-int8"):
        load_scorer(f"checkpoint:{tiny_dir}", quantization="int4")


def test_lexical_ignores_engine_options() -> None:
    scorer = load_scorer("lexical", quantization="onnx-int8", threads=1)
    assert scorer.model_id == "lexical:alt-profanity-check"
    assert isinstance(scorer.score(["hello"]), pl.DataFrame)


def test_onnx_int8_without_its_packages_says_what_is_missing(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from moderation.scorers import ScorerUnavailableError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ScorerUnavailableError, match=r"onnxscript.*scorer_quantization=none"):
        load_scorer(f"checkpoint:{tiny_dir}", quantization="onnx-int8", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
