"""Promotion of a trained candidate to the community model `auto` scores with: compared with the
current model on the candidate's validation rows, refused when worse unless forced, logged, and
picked up by `auto` (a new model id, so the next pipeline run re-scores every text).

The first candidate is a real training run of the tiny BERT of moderation.tiny (its vocabulary is
a small word list, so the texts are generated from it: insults vs beer words); the second is the
first with its classifier negated, so its ROC-AUC on every source is exactly 1 - the first's."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from moderation.scorers import CHECKPOINT_FILE, CONFIG_SUBDIR, LexicalScorer, load_scorer
from moderation.train import TrainConfig, train_model
from pulse.cli import app
from pulse.model_steps import PromotionRefusedError, list_candidates, promote, promotion_log

runner = CliRunner()


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(models folder, better candidate, worse candidate) under ``models/candidates``."""
    from transformers import BertConfig, BertForSequenceClassification

    from moderation.tiny import build_tiny_checkpoint

    tmp = tmp_path_factory.mktemp("promote")
    base = build_tiny_checkpoint(tmp / "tiny") / CONFIG_SUBDIR
    BertForSequenceClassification(BertConfig.from_pretrained(str(base))).save_pretrained(str(base))
    rng = random.Random(7)
    insults, neutral = (
        ["idiot", "stupid", "moron", "loser", "jerk", "trash"],
        ["beer", "ale", "hops", "malt", "glass", "brew"],
    )
    frame = pl.DataFrame(
        {
            "text": [
                " ".join(
                    rng.choice(["you", "the", "my", "this"]) + " " + rng.choice(insults if i % 2 else neutral)
                    for _ in range(3)
                )
                for i in range(240)
            ],
            "label": [i % 2 for i in range(240)],
            "source": ["forum" if i % 3 else "chat" for i in range(240)],
        },
        schema_overrides={"label": pl.Int8},
    )
    models = tmp / "models"
    a = models / "candidates" / "a"
    config = TrainConfig(
        base_model=base, max_length=32, batch_size=16, max_steps=30, eval_every=10, val_fraction=0.25, seed=2,
        learning_rate=1e-3, labels=("toxicity",), calibration="platt",
    )  # fmt: skip
    card = train_model([frame], a, config, progress=False, compare_lexical=False).card
    b = models / "candidates" / "b"
    shutil.copytree(a, b)
    (b / "calibration.json").unlink()
    ckpt = torch.load(b / CHECKPOINT_FILE, weights_only=False)
    for key in ("classifier.weight", "classifier.bias"):
        ckpt["state_dict"][key] = -ckpt["state_dict"][key]
    torch.save(ckpt, b / CHECKPOINT_FILE)
    assert card["validation"]["per_source"]["all"]["roc_auc"] > 0.7  # learnt: insults vs beer words
    return models, a, b


def test_promote_refuses_a_worse_candidate_unless_forced(candidates, empty_torch_hub: Path, tmp_path: Path) -> None:
    models, better, worse = candidates
    before = load_scorer("auto", models_dir=models)
    assert isinstance(before, LexicalScorer) and before.is_fallback
    record = promote(models, better, force=True, actor="alice")
    community = models / "community"
    live = load_scorer("auto", models_dir=models)
    assert live.model_id == record["model_id"] and live.model_id.startswith("checkpoint:community@")
    assert live.model_id != before.model_id  # a new id: the next run scores every text again
    assert record["previous_model_id"] == before.model_id and record["actor"] == "alice"
    v = record["comparison"]["validation"]
    assert set(v["per_source"]) == {"chat", "forum"} and v["candidate"] > 0.7

    with pytest.raises(PromotionRefusedError, match="worse than the current checkpoint:community@") as err:
        promote(models, worse, actor="bob")
    assert "mean per-source validation ROC-AUC" in str(err.value)
    assert load_scorer("auto", models_dir=models).model_id == live.model_id  # nothing changed
    assert len(promotion_log(models)) == 1

    forced = promote(models, worse, force=True, actor="bob")
    assert forced["forced"] is True and forced["previous_model_id"] == live.model_id
    c = forced["comparison"]["validation"]
    assert c["candidate"] == pytest.approx(1 - c["current"], abs=1e-9)  # negated head: AUC mirrored
    assert [r["actor"] for r in promotion_log(models)] == ["alice", "bob"]
    assert len(list((models / "previous").iterdir())) == 1 and (community / CHECKPOINT_FILE).is_file()

    rows = list_candidates(models)
    assert [r["role"] for r in rows] == ["promoted", "candidate", "candidate"]
    assert [r["name"] for r in rows if r["promoted"]] == ["community", worse.name]


def test_cli_promote_refusal_exits_1(candidates, empty_torch_hub: Path, tmp_path: Path) -> None:
    _, better, worse = candidates
    fresh = tmp_path / "models"
    shutil.copytree(better, fresh / "community")
    result = runner.invoke(
        app,
        ["moderation", "promote", str(worse), "--models-dir", str(fresh)],
        env={"PULSE_WAREHOUSE": str(tmp_path / "none.duckdb")},
    )
    assert result.exit_code == 1 and "not promoted" in result.output and "--force" in result.output
    listed = runner.invoke(app, ["moderation", "candidates", "--models-dir", str(fresh), "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["role"] == "promoted"


@pytest.fixture
def empty_torch_hub(tmp_path: Path):
    """torch hub's cache pointed at an empty folder (no published Detoxify model), then restored."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def test_evaluate_and_audit_steps_cover_every_label(candidates, tmp_path: Path) -> None:
    """The DAG's evaluate / bias_audit steps (all_labels) record each label the model scores and the
    data carries: here a frame whose rows carry insult for half of them."""
    import duckdb

    from pulse.model_steps import bias_audit_step, evaluate_step
    from pulse.settings import load_settings
    from warehouse.db import migrate

    _, better, _ = candidates
    settings = load_settings(warehouse=tmp_path / "w.duckdb", serving=tmp_path / "s.duckdb")
    con = duckdb.connect(str(settings.warehouse))
    migrate(con)
    con.close()
    frame = pl.read_parquet(better / "validation.parquet")
    frame = frame.with_columns(insult=pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.col("label")).otherwise(None))
    data = tmp_path / "val.parquet"
    frame.write_parquet(data)
    # a copy of the candidate that also scores insult: the tiny checkpoint of moderation.tiny has all labels
    from moderation.tiny import build_tiny_checkpoint

    tiny = build_tiny_checkpoint(tmp_path / "tiny-bert")
    evaluated = evaluate_step(settings, [f"checkpoint:{tiny}"], str(data), all_labels=True)
    (model_id,) = evaluated
    assert set(evaluated[model_id]["labels"]) == {"insult"}
    audited = bias_audit_step(settings, [f"checkpoint:{tiny}"], str(data), terms=["you"], all_labels=True)
    assert set(audited[model_id]["labels"]) == {"insult"}
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    labels = con.execute("select distinct score_label from moderation.model_evaluations order by 1").fetchall()
    audits = con.execute("select score_label, count(*) from moderation.bias_audit group by 1 order by 1").fetchall()
    con.close()
    assert labels == [("insult",), ("toxicity",)] and audits == [("insult", 1), ("toxicity", 1)]


def test_pipeline_uses_the_promoted_model_and_rescores(beer_dump: Path, tmp_path: Path, monkeypatch) -> None:
    """A plain run (scorer `auto`, nothing configured) scores with the community model once one is
    promoted, says so, and the next run after another promotion re-scores every text with the new one.
    The working directory is a temp folder, so `data/models` is its own (auto's default)."""
    from datetime import datetime

    from moderation.tiny import build_tiny_checkpoint
    from pulse import steps
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    monkeypatch.chdir(tmp_path)
    previous_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))  # no published Detoxify model cached
    try:
        settings = load_settings(warehouse=Path("data/warehouse.duckdb"), serving=Path("data/serving.duckdb"))
        spec = SourceSpec(kind="stackexchange", path=beer_dump)
        weeks = {"since": datetime(2014, 1, 21), "until": datetime(2014, 2, 1)}
        first = run_pipeline(settings, spec, **weeks).steps["score"]
        assert first["is_fallback"] is True and "make model" in first["fallback_reason"]
        models = Path("data/models")
        one = build_tiny_checkpoint(models / "candidates" / "one")
        shutil.copytree(one, models / "community")  # what `make model` / promote leave behind
        # pulse.steps caches the scorer per process and spec: a new process (pulse run, an Airflow
        # task) sees the new model; this test runs every "run" in one process, so it clears the cache
        steps._cached_scorer.cache_clear()
        second = run_pipeline(settings, spec, **weeks).steps["score"]
        assert second["model_id"].startswith("checkpoint:community@") and second["is_fallback"] is False
        total = second["scored"] + second["already_scored"]
        assert second["scored"] == total > 100  # a new model: every text scored again
        # another model promoted (forced: the tiny models are random): the next run re-scores everything
        two = models / "candidates" / "two"
        shutil.copytree(one, two)
        ckpt = torch.load(two / CHECKPOINT_FILE, weights_only=False)
        ckpt["state_dict"]["classifier.bias"] = ckpt["state_dict"]["classifier.bias"] + 1.0
        torch.save(ckpt, two / CHECKPOINT_FILE)
        pl.DataFrame(
            {"text": ["you idiot", "nice ale", "stupid jerk", "good hops"], "label": [1, 0, 1, 0], "source": ["x"] * 4},
            schema_overrides={"label": pl.Int8},
        ).write_parquet(two / "validation.parquet")
        record = promote(models, two, force=True, actor="carol")
        steps._cached_scorer.cache_clear()
        third = run_pipeline(settings, spec, **weeks).steps["score"]
        assert third["model_id"] == record["model_id"] != second["model_id"]
        assert third["scored"] == total and third["already_scored"] == 0
    finally:
        torch.hub.set_dir(previous_hub)


def test_cli_evaluate_judges_an_auxiliary_label_on_its_own_column(toxicity_data: Path, tmp_path: Path) -> None:
    """`--score-label insult` is judged against the set's insult labels (Jigsaw sample: 6 of 101),
    not against its toxicity labels (13 of 101)."""
    from moderation.tiny import build_tiny_checkpoint

    tiny = build_tiny_checkpoint(tmp_path / "tiny-bert")
    data = toxicity_data / "jigsaw_sample" / "test_examples.csv"
    env = {"PULSE_WAREHOUSE": str(tmp_path / "w.duckdb")}
    got = {}
    for label in ("toxicity", "insult"):
        result = runner.invoke(
            app,
            [
                "moderation",
                "evaluate",
                "--data",
                str(data),
                "--model",
                f"checkpoint:{tiny}",
                "--score-label",
                label,
                "--json",
            ],
            env=env,
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        got[label] = (report["n"], report["n_positive"], report["score_label"])
    assert got == {"toxicity": (101, 13, "toxicity"), "insult": (101, 6, "insult")}
