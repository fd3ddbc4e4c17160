"""Fine-tuning on real tweets and Wikipedia comments (the vendored Davidson and Jigsaw samples) with a TINY model (1 MiniLM layer, 32 tokens,
a few steps): the split, the checkpoint layout the pipeline loads, the model card's hashes and
metrics, early stopping, the seed, the CLI and --from-decisions."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from moderation.datasets import DecisionsUnavailableError, load_decisions, load_labelled
from moderation.scorers import CHECKPOINT_FILE, CONFIG_SUBDIR, load_scorer
from moderation.train import (
    MODEL_CARD,
    MODEL_CARD_JSON,
    VALIDATION_FILE,
    TrainConfig,
    TrainingError,
    deduplicate,
    split_train_validation,
    train_model,
)
from pulse.cli import app
from warehouse.db import migrate

runner = CliRunner()
TINY = {"num_layers": 1, "max_length": 32, "batch_size": 16, "eval_batch_size": 64}


def _head_csv(src: Path, dst: Path, rows: int) -> Path:
    """The header and the first ``rows`` records of a CSV (records may span lines)."""
    with src.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        head = [next(reader) for _ in range(rows + 1)]
    with dst.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(head)
    return dst


@pytest.fixture(scope="module")
def small_sets(toxicity_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """300 Davidson tweets (a temp file) and the 101 Jigsaw comments (13 toxic)."""
    tmp = tmp_path_factory.mktemp("train_data")
    return {
        "davidson": _head_csv(toxicity_data / "davidson" / "labeled_data.csv", tmp / "davidson.csv", 300),
        "jigsaw": toxicity_data / "jigsaw_sample" / "test_examples.csv",
    }


@pytest.fixture(scope="module")
def trained(small_sets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """One tiny training run (8 steps, validation every 4) shared by the tests below."""
    sets = [load_labelled(small_sets["davidson"]), load_labelled(small_sets["jigsaw"])]
    out = tmp_path_factory.mktemp("ckpt") / "community"
    config = TrainConfig(**TINY, max_steps=8, eval_every=4, val_fraction=0.2, seed=5)
    return train_model(sets, out, config, progress=False), sets


@pytest.mark.full_data
def test_split_is_stratified_seeded_and_capped(full_toxicity_data: Path) -> None:
    frame = load_labelled(full_toxicity_data / "olid_train" / "olid-training-v1.0.tsv").frame
    assert frame.height == 13240 and int(frame["label"].sum()) == 4400
    train, val = split_train_validation(frame, val_fraction=0.1, seed=1)
    # per stratum round(k * 0.1): OFF 4400 -> 440, NOT 8840 -> 884
    assert (val.height, int(val["label"].sum())) == (1324, 440)
    assert train.height + val.height == 13240
    unique, dropped = deduplicate(frame)  # train_model deduplicates before splitting: no text in both parts
    u_train, u_val = split_train_validation(unique, val_fraction=0.1, seed=1)
    assert dropped > 0 and set(u_train["text"]).isdisjoint(set(u_val["text"]))
    again, _ = split_train_validation(frame, val_fraction=0.1, seed=1)
    assert again["text"].to_list() == train["text"].to_list()
    capped_train, capped_val = split_train_validation(
        frame, val_fraction=0.1, seed=1, max_train_per_source=1000, max_val_per_source=300
    )
    # caps keep the label ratio: 1000 * 3960/11916 = 332.3 -> 332 OFF; 300 * 440/1324 = 99.7 -> 100 OFF
    assert (capped_train.height, int(capped_train["label"].sum())) == (1000, 332)
    assert (capped_val.height, int(capped_val["label"].sum())) == (300, 100)


def test_deduplicate_normalises_case_and_spaces() -> None:
    frame = pl.DataFrame(
        {"text": ["You  fool", "you fool", "hello"], "label": [1, 0, 0], "source": ["a", "b", "a"]},
        schema_overrides={"label": pl.Int8},
    )
    kept, dropped = deduplicate(frame)
    assert dropped == 1 and kept["text"].to_list() == ["You  fool", "hello"]


def test_checkpoint_loads_through_load_scorer_and_card_is_true(trained, small_sets: dict[str, Path]) -> None:
    result, _ = trained
    out = result.out_dir
    assert (out / CHECKPOINT_FILE).is_file() and (out / CONFIG_SUBDIR / "config.json").is_file()
    cfg = json.loads((out / CONFIG_SUBDIR / "config.json").read_text())
    # three outputs: toxicity (both sets), insult (Jigsaw's column), identity_attack (Davidson class 0, Jigsaw)
    assert cfg["num_labels"] == 3 and cfg["num_hidden_layers"] == 1
    assert cfg["id2label"] == {"0": "toxicity", "1": "insult", "2": "identity_attack"}
    scorer = load_scorer(f"checkpoint:{out}")  # the real Detoxify class, offline
    assert scorer.labels == ("toxicity", "insult", "identity_attack") and scorer.model_id == result.model_id
    cal_sha8 = hashlib.sha256((out / "calibration.json").read_bytes()).hexdigest()[:8]
    assert scorer.model_id == f"checkpoint:community@{scorer.model_version}+cal-{cal_sha8}"
    assert scorer.model_version == hashlib.sha256((out / CHECKPOINT_FILE).read_bytes()).hexdigest()[:12]
    assert scorer._detox.tokenizer.model_max_length == 32  # scoring truncates as training did

    card = json.loads((out / MODEL_CARD_JSON).read_text())
    hashes = {d["source"]: d["sha256"] for d in card["data"]}
    assert hashes == {
        "davidson": hashlib.sha256(small_sets["davidson"].read_bytes()).hexdigest(),
        "jigsaw": hashlib.sha256(small_sets["jigsaw"].read_bytes()).hexdigest(),
    }
    assert {d["source"]: d["rows_read"] for d in card["data"]} == {"davidson": 300, "jigsaw": 101}
    split = card["split"]
    assert sum(v["n"] for v in split["train"].values()) + sum(v["n"] for v in split["validation"].values()) == (
        401 - card["duplicates_dropped"]
    )
    # validation metrics recomputed from the written validation rows and the loaded model
    val = pl.read_parquet(out / VALIDATION_FILE)
    scores = scorer.score(val["text"].to_list())["toxicity"].to_numpy()
    for source in ("davidson", "jigsaw"):
        mask = (val["source"] == source).to_numpy()
        y = val["label"].to_numpy()[mask]
        assert card["validation"]["per_source"][source]["n"] == int(mask.sum()) == split["validation"][source]["n"]
        assert card["validation"]["per_source"][source]["roc_auc"] == pytest.approx(
            roc_auc_score(y, scores[mask]), abs=1e-6
        )
    assert card["training"]["steps"] == 8 and card["training"]["stop_reason"] == "reached max_steps=8"
    assert [h["step"] for h in card["training"]["history"]] == [4, 8]
    assert card["training"]["minutes_per_epoch"] > 0 and card["validation"]["texts_per_second"] > 0
    assert [s["target_precision"] for s in card["suggested_thresholds"]] == [0.8, 0.9, 0.95]
    assert set(card["suggested_thresholds_per_source"]) == {"davidson", "jigsaw"}
    assert card["lexical_baseline"]["per_source"]["jigsaw"]["n"] == split["validation"]["jigsaw"]["n"]
    text = (out / MODEL_CARD).read_text()
    assert "## Data" in text and hashes["davidson"][:16] in text and "Suggested thresholds" in text
    assert "scoring 3 labels: `toxicity`, `insult`, `identity_attack`" in text and "one label" not in text


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face BERT folder (weights + tokenizer) from moderation.tiny: a faster base than MiniLM."""
    from transformers import BertConfig, BertForSequenceClassification

    from moderation.tiny import build_tiny_checkpoint

    folder = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny")) / CONFIG_SUBDIR
    BertForSequenceClassification(BertConfig.from_pretrained(str(folder))).save_pretrained(str(folder))
    return folder


def test_same_seed_same_weights_and_early_stopping(
    small_sets: dict[str, Path], tiny_base: Path, tmp_path: Path
) -> None:
    sets = [load_labelled(small_sets["davidson"])]
    # a learning rate too small to change anything: the metric cannot improve, so patience 1 stops
    # training at the second validation
    config = TrainConfig(
        **TINY,
        base_model=tiny_base,
        learning_rate=1e-12,
        eval_every=1,
        patience=1,
        max_steps=20,
        val_fraction=0.2,
        seed=3,
    )
    a = train_model(sets, tmp_path / "a", config, progress=False, compare_lexical=False)
    b = train_model(sets, tmp_path / "b", config, progress=False, compare_lexical=False)
    assert a.card["training"]["stop_reason"] == "early stopping: no improvement in 1 validations"
    assert a.card["training"]["steps"] == 2 and a.card["training"]["best_step"] == 1
    assert a.card["model_version"] == b.card["model_version"]  # identical weights file


def test_one_class_only_is_refused(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"text": ["a b", "c d", "e f"], "label": [1, 1, 1], "source": ["x"] * 3}, schema_overrides={"label": pl.Int8}
    )
    with pytest.raises(TrainingError, match="both classes"):
        train_model([frame], tmp_path / "m", TrainConfig(**TINY, max_steps=1), progress=False)
    with pytest.raises(TrainingError, match="val_fraction"):
        TrainConfig(val_fraction=1.5).check()


def test_cli_train_json(small_sets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli_model"
    result = runner.invoke(
        app,
        [
            "moderation",
            "train",
            "--data",
            str(small_sets["davidson"]),
            "--data",
            str(small_sets["jigsaw"]),
            "--out",
            str(out),
            "--num-layers",
            "1",
            "--max-length",
            "32",
            "--max-steps",
            "3",
            "--eval-every",
            "3",
            "--val-fraction",
            "0.2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["spec"] == f"checkpoint:{out}" and summary["model_id"].startswith("checkpoint:cli_model@")
    assert set(summary["validation"]) == {"davidson", "jigsaw", "all"}
    assert (out / MODEL_CARD).is_file()


def test_cli_train_text_columns_must_pair_with_files(small_sets: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "moderation",
            "train",
            "--data",
            str(small_sets["davidson"]),
            "--data",
            str(small_sets["jigsaw"]),
            "--data",
            str(small_sets["jigsaw"]),
            "--text-column",
            "tweet",
            "--text-column",
            "comment_text",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 2 and "--text-column given 2 times for 3 --data files" in result.output


def test_from_decisions_without_decisions_explains(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    migrate(con)
    con.close()
    result = runner.invoke(
        app,
        ["moderation", "train", "--from-decisions", "--out", str(tmp_path / "m")],
        env={"PULSE_WAREHOUSE": str(tmp_path / "w.duckdb")},
    )
    assert result.exit_code == 2
    assert "holds 0 rows" in result.output and "--data" in result.output


def test_load_decisions_uses_the_latest_final_decision(tmp_path: Path) -> None:
    con = duckdb.connect(":memory:")
    migrate(con)
    con.execute("""insert into staging.content (source, content_id, kind, created_at, title, body_text, content_hash)
                   values ('beer', 'beer:1', 'question', '2026-01-01', 'Hops?', 'Which hops for an IPA?', 'h1'),
                          ('beer', 'beer:2', 'comment', '2026-01-01', null, 'you absolute idiot', 'h2'),
                          ('beer', 'beer:3', 'comment', '2026-01-01', null, 'meh', 'h3')""")
    rows = [
        ("d1", "beer:1", 1, "pending", "escalated", "escalate", "2026-01-02 10:00"),
        ("d2", "beer:1", 2, "escalated", "approved", "approve", "2026-01-02 11:00"),
        ("d3", "beer:2", 1, "pending", "removed", "remove", "2026-01-02 10:00"),
        ("d4", "beer:3", 1, "pending", "escalated", "escalate", "2026-01-02 10:00"),
    ]
    con.executemany(
        """insert into moderation.decisions (decision_id, source, content_id, item_version, from_state,
                       to_state, action, actor, decided_at, ingested_run_id) values (?, 'beer', ?, ?, ?, ?, ?, 'mod', ?, 'r')""",
        rows,
    )
    loaded = load_decisions(con)
    got = sorted(loaded.frame.select("text", "label").iter_rows())
    assert got == [("Hops?\n\nWhich hops for an IPA?", 0), ("you absolute idiot", 1)]
    assert loaded.rows_read == 4 and set(loaded.frame["source"]) == {"decisions"}
    con.execute("delete from moderation.decisions where to_state <> 'escalated'")
    with pytest.raises(DecisionsUnavailableError, match="no item's latest decision is approved or removed"):
        load_decisions(con)


def test_masked_bce_gives_no_gradient_to_a_missing_label() -> None:
    """A label no row of the batch carries (mask 0) adds nothing to the loss and gets no gradient;
    the labelled cells give the plain BCE mean over those cells."""
    import torch

    from moderation.train import masked_bce

    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 3.0, 1.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # column 2 (identity_attack) unknown everywhere
    loss = masked_bce(logits, targets, mask)
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[:, 2].abs().sum().item() == 0.0 and logits.grad[1, 1].item() == 0.0
    # BCE(2, 1) = log(1 + e^-2) = 0.126928; BCE(-1, 0) = log(1 + e^-1) = 0.313262; BCE(-0.5, 0) = log(1 + e^-0.5) = 0.474077
    assert loss.item() == pytest.approx((0.126928 + 0.313262 + 0.474077) / 3, abs=1e-5)
    assert logits.grad[0, 0].item() == pytest.approx((torch.sigmoid(torch.tensor(2.0)).item() - 1) / 3, abs=1e-6)
    empty = masked_bce(logits, targets, torch.zeros_like(mask))
    assert empty.item() == 0.0


@pytest.mark.full_data
def test_presets_carry_the_auxiliary_labels(full_toxicity_data: Path) -> None:
    """OLID sub-tasks B/C, Davidson class 0 and Kaggle's Insult become insult / identity_attack
    (counts: OLID's paper, Zampieri et al. 2019, Table 3: TIN 3,876, GRP 1,074; Davidson class 0: 1,430)."""
    olid = load_labelled(full_toxicity_data / "olid_train" / "olid-training-v1.0.tsv").frame
    assert (int(olid["insult"].sum()), int(olid["identity_attack"].sum())) == (3876, 1074)
    assert olid["insult"].null_count() == 0
    davidson = load_labelled(full_toxicity_data / "davidson" / "labeled_data.csv").frame
    assert "insult" not in davidson.columns and int(davidson["identity_attack"].sum()) == 1430
    kaggle = load_labelled(full_toxicity_data / "kaggle_insults" / "train.csv").frame
    assert int(kaggle["insult"].sum()) == int(kaggle["label"].sum()) == 1049 and "identity_attack" not in kaggle.columns
