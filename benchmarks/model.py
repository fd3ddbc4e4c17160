"""Model quality: the recipe table (in-source and leave-one-source-out) of the community model.

Runs :func:`moderation.recipes.compare_recipes` on the full toxicity sets (Davidson, OLID,
Kaggle insults; ``benchmarks.common.toxicity_dir``), one training at a time, each capped at
``PULSE_BENCH_MODEL_MINUTES`` (default 45) minutes, recipes from ``PULSE_BENCH_MODEL_RECIPES``
(comma-separated names of :data:`moderation.train.RECIPES`, or ``all``). The checkpoints go
to ``<work dir>/model/<recipe>/<fold>``. All recipes with LOSO are 4 trainings each: about
15 hours on 2 shared cores. So a plain ``python -m benchmarks.run`` (``make bench``) trains
nothing: without ``PULSE_BENCH_MODEL_RECIPES`` it re-renders the last comparison found in
``<work dir>/model/recipes.json`` (or says it has not been run).
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.common import BenchConfig, toxicity_dir

NAME = "model"
COMMAND = "python -m benchmarks.run --only model"


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Compare the recipes; return ``moderation.recipes.compare_recipes``'s results (see the module docstring)."""
    import json

    from moderation.datasets import load_labelled
    from moderation.recipes import RESULTS_JSON, compare_recipes
    from moderation.train import RECIPES, TrainConfig

    chosen = os.environ.get("PULSE_BENCH_MODEL_RECIPES", "")
    if not chosen:
        last = cfg.work_dir / "model" / RESULTS_JSON
        if last.is_file():
            return json.loads(last.read_text(encoding="utf-8"))
        return {"recipes": {}, "sources": [], "recommended": None, "not_run": "set PULSE_BENCH_MODEL_RECIPES=all"}
    tox = toxicity_dir()
    sets = [
        load_labelled(tox / "davidson" / "labeled_data.csv"),
        load_labelled(tox / "olid_train" / "olid-training-v1.0.tsv"),
        load_labelled(tox / "kaggle_insults" / "train.csv"),
    ]
    names = list(RECIPES) if chosen == "all" else [n.strip() for n in chosen.split(",") if n.strip()]
    minutes = float(os.environ.get("PULSE_BENCH_MODEL_MINUTES", "45"))
    base = TrainConfig(max_minutes=minutes, epochs=1, threads=int(os.environ.get("PULSE_BENCH_MODEL_THREADS", "2")))
    return compare_recipes(sets, cfg.work_dir / "model", recipes=names, base=base)


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    from moderation.recipes import render_results

    head = "## Model quality: recipe table (in-source and leave-one-source-out)\n\n"
    if result.get("not_run"):
        return head + f"Not run ({result['not_run']}; one training per recipe and fold, up to 45 min each).\n"
    return head + render_results(result)
