"""Scorers: the real Detoxify loading path on a tiny checkpoint, the lexical fallback on real
text, and load_scorer's choices. No network: the hub is forced offline where it matters."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from moderation.scorers import (
    CHECKPOINT_FILE,
    CONFIG_SUBDIR,
    LABELS,
    DetoxifyScorer,
    LexicalScorer,
    Scorer,
    ScorerUnavailableError,
    detoxify_cache_path,
    hf_offline,
    load_scorer,
)
from moderation.tiny import ORIGINAL_CLASSES, build_tiny_checkpoint

TEXTS = [
    "You are an idiot and I hate you.",
    "Thanks, that answer helped me brew a better stout!",
    "What is the difference between an ale and a lager?",
    "",
    "Shut up, loser.",
]
# Hand-written in the style of beer.stackexchange.com questions and comments.
CLEAN_SENTENCES = [
    "What temperature should I serve a Belgian tripel at?",
    "Great answer, thanks for the link to the brewery's tasting notes.",
    "Dry hopping for five days gave my IPA a much stronger citrus aroma.",
    "Is it safe to store bottled beer on its side in the fridge?",
    "I think the yeast strain matters more than the malt bill here.",
    "Could you add a source for the claim about lagering times?",
    "Stouts often taste of coffee and chocolate because of the roasted barley.",
    "Welcome to the site! Please take the tour to learn how it works.",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint folder whose model_type is a hub name, like a published checkpoint."""
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="module")
def tiny_scorer(tiny_dir: Path) -> DetoxifyScorer:
    scorer = load_scorer(f"checkpoint:{tiny_dir}")
    assert isinstance(scorer, DetoxifyScorer)
    return scorer


@pytest.fixture
def empty_hub(tmp_path: Path):
    """torch hub's cache pointed at an empty folder for the test, then restored."""
    import torch

    previous = torch.hub.get_dir()
    hub = tmp_path / "hub"
    torch.hub.set_dir(str(hub))
    yield hub
    torch.hub.set_dir(previous)


def _local_copy(tiny_dir: Path, dest: Path) -> Path:
    """The tiny checkpoint with model_type rewritten by hand to its local hf folder."""
    import torch

    ckpt = torch.load(tiny_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    ckpt["config"]["arch"]["args"]["model_type"] = str(tiny_dir / CONFIG_SUBDIR)
    torch.save(ckpt, dest)
    return dest


# ------------------------------------------------------------------------------ tiny checkpoint


def test_tiny_checkpoint_layout_and_format(tiny_dir: Path) -> None:
    import torch

    ckpt = torch.load(tiny_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    args = ckpt["config"]["arch"]["args"]
    assert args == {
        "model_type": "bert-base-uncased",
        "model_name": "BertForSequenceClassification",
        "tokenizer_name": "BertTokenizer",
        "num_classes": 6,
    }
    assert ckpt["config"]["dataset"]["args"]["classes"] == list(ORIGINAL_CLASSES)
    cfg = json.loads((tiny_dir / CONFIG_SUBDIR / "config.json").read_text())
    assert (cfg["num_labels"] if "num_labels" in cfg else len(cfg["id2label"])) == 6
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["intermediate_size"]) == (
        32,
        2,
        2,
        37,
    )
    assert (tiny_dir / CONFIG_SUBDIR / "vocab.txt").is_file()


def test_tiny_tokenizer_knows_its_words(tiny_dir: Path) -> None:
    """transformers 5 ignores BertTokenizer(vocab_file=...): guard against an all-[UNK] vocab."""
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(str(tiny_dir / CONFIG_SUBDIR), local_files_only=True)
    ids = tok("you are an idiot, thanks!")["input_ids"]
    assert tok.unk_token_id not in ids
    assert len(set(ids)) == len(ids) > 5


def test_tiny_checkpoint_is_reproducible(tmp_path: Path) -> None:
    import torch

    a = torch.load(build_tiny_checkpoint(tmp_path / "a") / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    b = torch.load(build_tiny_checkpoint(tmp_path / "b") / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    c = torch.load(build_tiny_checkpoint(tmp_path / "c", seed=1) / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    w = "classifier.weight"
    assert torch.equal(a[w], b[w])
    assert not torch.equal(a[w], c[w])


# ------------------------------------------------------------------------------ real Detoxify


def test_real_detoxify_loads_tiny_checkpoint_offline(tiny_dir: Path, tmp_path: Path) -> None:
    """The real Detoxify class, fully offline, on a checkpoint whose model_type is local."""
    from detoxify import Detoxify

    local = _local_copy(tiny_dir, tmp_path / "local.ckpt")
    with hf_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        detox = Detoxify(checkpoint=str(local), huggingface_config_path=str(tiny_dir / CONFIG_SUBDIR))
        out = detox.predict(TEXTS)
        # once transformers' lazy modules are imported, a load + predict takes ~0.07 s
        start = time.perf_counter()
        Detoxify(checkpoint=str(local), huggingface_config_path=str(tiny_dir / CONFIG_SUBDIR)).predict(TEXTS)
        assert time.perf_counter() - start < 1.0
    # Detoxify renames the original model's class names to ours
    assert list(out) == ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]
    assert all(len(v) == len(TEXTS) for v in out.values())


def test_plain_detoxify_goes_online_for_hub_model_type(tiny_dir: Path) -> None:
    """The pitfall the scorer works around: model_type 'bert-base-uncased' is fetched from the
    hub even with huggingface_config_path; offline, that fails (fast, thanks to hf_offline)."""
    from detoxify import Detoxify

    start = time.perf_counter()
    with hf_offline(), pytest.raises(OSError, match="couldn't connect"):
        Detoxify(checkpoint=str(tiny_dir / CHECKPOINT_FILE), huggingface_config_path=str(tiny_dir / CONFIG_SUBDIR))
    assert time.perf_counter() - start < 2.0


def test_hf_offline_sets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    with hf_offline():
        assert hub_constants.HF_HUB_OFFLINE is True
        assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert hub_constants.HF_HUB_OFFLINE is False
    assert "HF_HUB_OFFLINE" not in os.environ
    assert os.environ["TRANSFORMERS_OFFLINE"] == "0"


def test_detoxify_scorer_frame(tiny_scorer: DetoxifyScorer, tiny_dir: Path) -> None:
    assert isinstance(tiny_scorer, Scorer)
    assert tiny_scorer.backend == "detoxify"
    assert tiny_scorer.model_id == f"checkpoint:tiny-bert@{tiny_scorer.model_version}"
    sha = hashlib.sha256((tiny_dir / CHECKPOINT_FILE).read_bytes()).hexdigest()
    assert tiny_scorer.model_version == sha[:12]
    assert tiny_scorer.is_fallback is False and tiny_scorer.fallback_reason is None
    assert tiny_scorer.labels == LABELS[:6]

    frame = tiny_scorer.score(TEXTS)
    assert frame.columns == list(LABELS[:6])
    assert frame.schema == pl.Schema({label: pl.Float64 for label in LABELS[:6]})
    assert frame.height == len(TEXTS)
    values = frame.to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    assert values.std(axis=0).min() > 1e-3, "scores should differ between texts"
    assert frame.equals(tiny_scorer.score(TEXTS)), "not deterministic"


def test_detoxify_scorer_matches_direct_predict(tiny_scorer: DetoxifyScorer, tiny_dir: Path, tmp_path: Path) -> None:
    """Same values as the real Detoxify.predict on the same texts (the model_type rewrite
    loads the same weights and tokenizer)."""
    from detoxify import Detoxify

    local = _local_copy(tiny_dir, tmp_path / "local.ckpt")
    with hf_offline():
        direct = Detoxify(checkpoint=str(local), huggingface_config_path=str(tiny_dir / CONFIG_SUBDIR)).predict(TEXTS)
    ours = tiny_scorer.score(TEXTS)
    for label in tiny_scorer.labels:
        np.testing.assert_allclose(ours[label].to_numpy(), np.asarray(direct[label]), rtol=0, atol=1e-5)


def test_detoxify_scorer_order_batches_and_edge_cases(tiny_dir: Path, tiny_scorer: DetoxifyScorer) -> None:
    small = load_scorer(f"checkpoint:{tiny_dir}", batch_size=2)
    full = tiny_scorer.score(TEXTS)
    np.testing.assert_allclose(small.score(TEXTS).to_numpy(), full.to_numpy(), atol=1e-5)
    # input order is kept whatever the internal length-sorting does
    np.testing.assert_allclose(tiny_scorer.score(TEXTS[::-1]).to_numpy(), full.to_numpy()[::-1], atol=1e-5)
    one = tiny_scorer.score(TEXTS[:1])  # Detoxify squeezes a batch of one to floats
    assert one.height == 1
    empty = tiny_scorer.score([])
    assert empty.height == 0 and empty.columns == list(LABELS[:6])
    # far longer than the 128 position embeddings: truncated, not an index error
    long = tiny_scorer.score(["beer " * 2000, "idiot " * 700])
    assert long.height == 2
    with pytest.raises(TypeError, match="not one string"):
        tiny_scorer.score("one text")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tiny_scorer.score(["ok", None])  # type: ignore[list-item]


def test_seven_label_checkpoint(tmp_path: Path) -> None:
    folder = build_tiny_checkpoint(tmp_path / "seven", labels=LABELS)
    scorer = load_scorer(f"checkpoint:{folder}")
    assert scorer.labels == LABELS
    assert scorer.score(TEXTS).columns == list(LABELS)


def test_extra_classes_are_dropped(tmp_path: Path) -> None:
    """The unbiased model also predicts identity subgroups (male, female, ...): not labels."""
    folder = build_tiny_checkpoint(tmp_path / "extra", labels=[*LABELS, "male", "female"])
    scorer = load_scorer(f"checkpoint:{folder}")
    assert scorer.labels == LABELS
    assert scorer.score(TEXTS).columns == list(LABELS)


def test_config_num_labels_mismatch_is_explained(tiny_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    cfg_file = bad / CONFIG_SUBDIR / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}
    cfg.pop("label2id", None)
    cfg.pop("num_labels", None)
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="num_labels"):
        load_scorer(f"checkpoint:{bad}")


def test_not_a_detoxify_checkpoint(tmp_path: Path, tiny_dir: Path) -> None:
    import torch

    folder = tmp_path / "weird"
    shutil.copytree(tiny_dir, folder)
    torch.save({"state_dict": {}}, folder / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match="not a Detoxify checkpoint"):
        load_scorer(f"checkpoint:{folder}")


def test_checkpoint_spec_missing_files(tmp_path: Path, tiny_dir: Path) -> None:
    with pytest.raises(ScorerUnavailableError, match=CHECKPOINT_FILE):
        load_scorer(f"checkpoint:{tmp_path / 'nowhere'}")
    no_cfg = tmp_path / "no_cfg"
    no_cfg.mkdir()
    shutil.copy(tiny_dir / CHECKPOINT_FILE, no_cfg / CHECKPOINT_FILE)
    with pytest.raises(ScorerUnavailableError, match="config.json"):
        load_scorer(f"checkpoint:{no_cfg}")
    # config_dir overrides DIR/hf
    scorer = load_scorer(f"checkpoint:{no_cfg}", config_dir=tiny_dir / CONFIG_SUBDIR)
    assert scorer.model_id == f"checkpoint:no_cfg@{scorer.model_version}"


# ------------------------------------------------------------------------------ load_scorer


@pytest.mark.parametrize("spec", ["bogus", "detoxify", "detoxify:tiny", "checkpoint:", "Lexical"])
def test_unknown_spec(spec: str) -> None:
    with pytest.raises(ValueError, match=r"valid: auto \| lexical \| detoxify:original"):
        load_scorer(spec)


def test_lexical_spec_is_not_a_fallback() -> None:
    scorer = load_scorer("lexical")
    assert isinstance(scorer, LexicalScorer) and isinstance(scorer, Scorer)
    assert (scorer.backend, scorer.model_id, scorer.labels) == ("lexical", "lexical:alt-profanity-check", ("toxicity",))
    assert scorer.is_fallback is False and scorer.fallback_reason is None
    assert scorer.model_version == "1.9.1"


def test_auto_without_weights_falls_back_loudly(empty_hub: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="moderation.scorers"):
        scorer = load_scorer("auto")
    assert isinstance(scorer, LexicalScorer)
    assert scorer.is_fallback is True
    assert scorer.fallback_reason is not None and "weights unavailable" in scorer.fallback_reason
    assert str(empty_hub / "checkpoints") in scorer.fallback_reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "moderation.scorers"]
    assert len(warnings) == 1 and "fell back to the lexical model" in warnings[0].getMessage()


def test_auto_with_checkpoint_uses_detoxify(tiny_dir: Path, empty_hub: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        scorer = load_scorer("auto", checkpoint=tiny_dir)
    assert isinstance(scorer, DetoxifyScorer)
    assert scorer.is_fallback is False and scorer.model_id == f"checkpoint:tiny-bert@{scorer.model_version}"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # a checkpoint file plus a config folder works too
    scorer = load_scorer("auto", checkpoint=tiny_dir / CHECKPOINT_FILE, config_dir=tiny_dir / CONFIG_SUBDIR)
    assert isinstance(scorer, DetoxifyScorer) and scorer.model_id == f"checkpoint:tiny-bert@{scorer.model_version}"


def test_auto_with_missing_checkpoint_falls_back(tmp_path: Path, empty_hub: Path) -> None:
    scorer = load_scorer("auto", checkpoint=tmp_path / "gone")
    assert isinstance(scorer, LexicalScorer) and scorer.is_fallback
    assert "gone" in (scorer.fallback_reason or "")


def test_auto_finds_a_cached_published_checkpoint(tiny_dir: Path, empty_hub: Path) -> None:
    """A file in torch hub's cache under Detoxify's own file name is picked up (here the
    tiny checkpoint stands in for the unbiased model; its config folder is given)."""
    cached = detoxify_cache_path("unbiased")
    assert cached == empty_hub / "checkpoints" / "toxic_debiased-c7548aa0.ckpt"
    cached.parent.mkdir(parents=True)
    shutil.copy(tiny_dir / CHECKPOINT_FILE, cached)
    scorer = load_scorer("auto", config_dir=tiny_dir / CONFIG_SUBDIR)
    assert isinstance(scorer, DetoxifyScorer)
    assert scorer.model_id == "detoxify:unbiased" and not scorer.is_fallback
    # without a config folder the base model's hub config is needed: offline, auto falls back
    fallback = load_scorer("auto")
    assert isinstance(fallback, LexicalScorer) and "bert-base-uncased" in (fallback.fallback_reason or "")


@pytest.mark.parametrize("model", ["original", "unbiased", "multilingual"])
def test_detoxify_spec_without_cache_raises_fast(empty_hub: Path, model: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ScorerUnavailableError, match="not cached"):
        load_scorer(f"detoxify:{model}")
    assert time.perf_counter() - start < 2.0


# ------------------------------------------------------------------------------ lexical on real text


@pytest.fixture(scope="module")
def lexical() -> LexicalScorer:
    return LexicalScorer()


@pytest.fixture(scope="module")
def davidson(toxicity_data: Path) -> pl.DataFrame:
    return pl.read_csv(toxicity_data / "davidson" / "labeled_data.csv")


def test_lexical_on_abusive_and_clean_sentences(lexical: LexicalScorer, davidson: pl.DataFrame) -> None:
    abusive = davidson.filter(pl.col("class") == 1).sample(20, seed=7)["tweet"].to_list()
    abusive_p = lexical.score(abusive)["toxicity"]
    clean_p = lexical.score(CLEAN_SENTENCES)["toxicity"]
    assert abusive_p.mean() > 0.8  # measured 0.98 (seed 7, the vendored sample)
    assert clean_p.mean() < 0.3 and clean_p.max() < 0.5


def test_lexical_frame_contract(lexical: LexicalScorer) -> None:
    frame = lexical.score(TEXTS)
    assert frame.schema == pl.Schema({"toxicity": pl.Float64})
    assert frame.height == len(TEXTS)
    assert frame["toxicity"].is_between(0, 1).all()
    assert frame.equals(lexical.score(TEXTS))
    assert lexical.score([]).schema == pl.Schema({"toxicity": pl.Float64})
    chunked = LexicalScorer(chunk_size=2).score(TEXTS)
    np.testing.assert_allclose(chunked["toxicity"].to_numpy(), frame["toxicity"].to_numpy())


def test_lexical_roc_auc_davidson(lexical: LexicalScorer, davidson: pl.DataFrame) -> None:
    """400 Davidson tweets, abusive (hate or offensive, class 0/1) vs neither (class 2).

    Measured on the vendored sample 0.979 (seeds 0-4: 0.972-0.980). Inflated: alt-profanity-check was trained on this
    data set; see the OLID and Kaggle tests for out-of-sample figures.
    """
    from sklearn.metrics import roc_auc_score

    abusive = davidson.filter(pl.col("class") < 2).sample(200, seed=0)["tweet"].to_list()
    neither = davidson.filter(pl.col("class") == 2).sample(200, seed=0)["tweet"].to_list()
    p = lexical.score(abusive + neither)["toxicity"].to_numpy()
    assert roc_auc_score([1] * 200 + [0] * 200, p) > 0.97


@pytest.mark.full_data
def test_lexical_roc_auc_out_of_sample(lexical: LexicalScorer, full_toxicity_data: Path) -> None:
    """Data sets the model was not trained on. Measured: OLID (all 13,240) 0.786,
    Kaggle insults (all 3,947) 0.821."""
    from sklearn.metrics import roc_auc_score

    olid = pl.read_csv(full_toxicity_data / "olid_train" / "olid-training-v1.0.tsv", separator="\t", quote_char=None)
    p = lexical.score(olid["tweet"].to_list())["toxicity"].to_numpy()
    assert roc_auc_score((olid["subtask_a"] == "OFF").to_numpy(), p) > 0.76
    insults = pl.read_csv(full_toxicity_data / "kaggle_insults" / "train.csv")
    p = lexical.score(insults["Comment"].to_list())["toxicity"].to_numpy()
    assert roc_auc_score(insults["Insult"].to_numpy(), p) > 0.80


def test_lexical_misses_threats_without_swear_words(lexical: LexicalScorer) -> None:
    """The documented weakness (docs/ARCHITECTURE.md, "Model strategy"): a plain threat scores low. If this starts failing,
    the fallback got better and the dashboard caveat can be revisited."""
    threats = [
        "I will find you and break your legs.",
        "You should be careful walking home tonight, something might happen to you.",
        "If you post that again I will make sure you regret it.",
    ]
    p = lexical.score(threats)["toxicity"]
    assert p.max() < 0.3  # measured 0.18, 0.02, 0.09


def test_lexical_import_is_warning_free() -> None:
    """Warnings are errors under pytest: importing and scoring must not warn."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = LexicalScorer().score(["a test"])
    assert [str(w.message) for w in caught] == []
    assert 0.0 <= scores["toxicity"][0] < 0.5


def test_lexical_model_loads_on_first_score_only() -> None:
    """A run with nothing to score needs the scorer's id, not its model (about a second to unpickle):
    in a fresh interpreter, constructing the scorer leaves ``profanity_check`` unimported; scoring imports it."""
    import subprocess
    import sys

    code = (
        "import sys; from moderation.scorers.lexical import LexicalScorer; s = LexicalScorer(); "
        "print(s.model_id, 'profanity_check' in sys.modules); s.score(['x']); print('profanity_check' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["lexical:alt-profanity-check", "False", "True"]


def test_rewrite_leaves_checkpoint_untouched(tiny_dir: Path) -> None:
    """The model_type rewrite leaves the checkpoint on disk untouched."""
    before = (tiny_dir / CHECKPOINT_FILE).read_bytes()
    DetoxifyScorer(checkpoint=tiny_dir / CHECKPOINT_FILE, huggingface_config_path=tiny_dir / CONFIG_SUBDIR)
    assert (tiny_dir / CHECKPOINT_FILE).read_bytes() == before
    assert sorted(p.name for p in tiny_dir.iterdir()) == sorted([CHECKPOINT_FILE, CONFIG_SUBDIR])


def test_auto_prefers_configured_then_community_then_published(tiny_dir: Path, empty_hub: Path, tmp_path: Path) -> None:
    """The preference order of ``auto``: configured checkpoint > community model > cached
    published Detoxify model > lexical; the fallback's reason says how to build the community model."""
    models = tmp_path / "models"
    fallback = load_scorer("auto", models_dir=models)
    assert isinstance(fallback, LexicalScorer)
    assert "make model" in (
        fallback.fallback_reason or ""
    ) and f"no community model built in {models / 'community'}" in (fallback.fallback_reason or "")
    cached = detoxify_cache_path("unbiased")  # a published model in the cache (the tiny one stands in)
    cached.parent.mkdir(parents=True)
    shutil.copy(tiny_dir / CHECKPOINT_FILE, cached)
    published = load_scorer("auto", config_dir=tiny_dir / CONFIG_SUBDIR, models_dir=models)
    assert published.model_id == "detoxify:unbiased"
    shutil.copytree(tiny_dir, models / "community")  # `make model` / `pulse moderation promote` put it here
    community = load_scorer("auto", config_dir=tiny_dir / CONFIG_SUBDIR, models_dir=models)
    assert community.model_id == f"checkpoint:community@{community.model_version}" and not community.is_fallback
    other = shutil.copytree(tiny_dir, tmp_path / "configured")
    configured = load_scorer("auto", checkpoint=other, models_dir=models)
    assert configured.model_id.startswith("checkpoint:configured@")
    # a configured checkpoint that is gone: the community model is next, not the lexical fallback
    gone = load_scorer("auto", checkpoint=tmp_path / "gone", models_dir=models)
    assert gone.model_id == community.model_id
