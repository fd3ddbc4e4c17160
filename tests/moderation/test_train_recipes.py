"""The recipe comparison on a tiny configuration: every recipe trained in-source and leave-one-
source-out, the held-out source never in training, the figures recomputable from the written
checkpoints, the table written. The tiny BERT of moderation.tiny has a small word list for a
vocabulary, so the texts are generated from it (insults vs beer words, three sources)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from moderation.recipes import RESULTS_JSON, RESULTS_MD, compare_recipes, cross_tuned_macro_f1, recommend
from moderation.scorers import CONFIG_SUBDIR, LexicalScorer, load_scorer
from moderation.train import TrainConfig


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    from moderation.tiny import build_tiny_checkpoint

    folder = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny")) / CONFIG_SUBDIR
    BertForSequenceClassification(BertConfig.from_pretrained(str(folder))).save_pretrained(str(folder))
    return folder


def _frame(seed: int = 3) -> pl.DataFrame:
    rng = random.Random(seed)
    insults, neutral = ["idiot", "stupid", "moron", "loser", "jerk"], ["beer", "ale", "hops", "malt", "brew"]
    rows = []
    for source in ("forum", "tweets", "chat"):
        for i in range(90):
            words = [
                rng.choice(["you", "the", "my"]) + " " + rng.choice(insults if i % 3 == 0 else neutral)
                for _ in range(3)
            ]
            rows.append((" ".join(words) + f" {source} {i}", int(i % 3 == 0), source))
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.Int8, "source": pl.String}, orient="row")


def test_compare_recipes_in_source_and_loso(tiny_base: Path, tmp_path: Path) -> None:
    base = TrainConfig(
        base_model=tiny_base, max_length=16, batch_size=16, max_steps=6, eval_every=3, val_fraction=0.2,
        learning_rate=1e-3, seed=4, calibration="platt",
    )  # fmt: skip
    recipes = {"short": {"max_length": 8}, "balanced": {"balance": True}}
    seen: list[str] = []
    results = compare_recipes(
        [_frame()], tmp_path, recipes=recipes, base=base, on_result=lambda r: seen.append(r["fold"])
    )
    assert results["sources"] == ["chat", "forum", "tweets"]
    assert seen == ["in-source", "loso:chat", "loso:forum", "loso:tweets"] * 2
    loso = next(f for f in results["recipes"]["short"]["folds"] if f["fold"] == "loso:forum")
    folder = tmp_path / "short" / "loso-forum"
    card = json.loads((folder / "model_card.json").read_text())
    assert set(card["split"]["train"]) == {"chat", "tweets"}  # the held-out source never trained on
    assert card["config"]["max_length"] == 8
    # the LOSO figure recomputed: every forum row scored by the written (calibrated) checkpoint
    forum = _frame().filter(pl.col("source") == "forum")
    scores = load_scorer(f"checkpoint:{folder}").score(forum["text"].to_list())["toxicity"].to_numpy()
    lexical = LexicalScorer().score(forum["text"].to_list())["toxicity"].to_numpy()
    m = loso["per_source"]["forum"]
    assert m["n"] == 90 and m["positives"] == 30
    assert m["roc_auc"] == pytest.approx(roc_auc_score(forum["label"].to_numpy(), scores), abs=1e-9)
    assert m["ensemble_roc_auc"] == pytest.approx(
        roc_auc_score(forum["label"].to_numpy(), (scores + lexical) / 2), abs=1e-9
    )
    in_source = results["recipes"]["balanced"]["folds"][0]
    assert set(in_source["per_source"]) == {"chat", "forum", "tweets"}
    assert all(v["macro_f1_tuned"] is not None for v in in_source["per_source"].values())
    assert results["recommended"] in recipes
    written = json.loads((tmp_path / RESULTS_JSON).read_text())
    assert written["recommended"] == results["recommended"]
    table = (tmp_path / RESULTS_MD).read_text()
    assert "| short | loso:forum |" in table and "forum ROC-AUC (+lexical)" in table and "ECE calibrated" in table


def test_cross_tuned_macro_f1_tunes_on_the_other_half() -> None:
    # perfectly separated scores: any threshold between the classes gives macro-F1 1 on both halves
    y = np.array([0] * 10 + [1] * 10)
    s = np.concatenate([np.linspace(0.0, 0.4, 10), np.linspace(0.6, 1.0, 10)])
    assert cross_tuned_macro_f1(y, s) == pytest.approx(1.0)
    assert cross_tuned_macro_f1(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.9])) is None  # a fold lacks a class


def test_recommend_skips_recipes_over_an_hour() -> None:
    def fold(name: str, auc: float, minutes: float) -> dict:
        return {"fold": name, "training": {"train_minutes": minutes}, "per_source": {"x": {"roc_auc": auc}}}

    results = {
        "recipes": {
            "slow": {"folds": [fold("in-source", 0.99, 80), fold("loso:x", 0.95, 80)]},
            "fast": {"folds": [fold("in-source", 0.99, 20), fold("loso:x", 0.90, 20)]},
            "weak": {"folds": [fold("in-source", 0.99, 20), fold("loso:x", 0.85, 20)]},
        }
    }
    assert recommend(results) == "fast"
