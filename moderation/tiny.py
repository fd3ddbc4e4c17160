"""A tiny Detoxify-format checkpoint for tests and benchmarks (no download, < 1 s to load).

:func:`build_tiny_checkpoint` writes a checkpoint folder in the layout
:func:`moderation.scorers.load_scorer` reads for ``checkpoint:DIR``: ``DIR/model.ckpt`` (a
Detoxify checkpoint around a 2-layer BERT with random weights) and ``DIR/hf/`` (its
``config.json`` and a BERT WordPiece tokenizer). Its scores are meaningless but
deterministic; it exercises the real ``Detoxify`` loading and prediction path.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

from moderation.scorers import CHECKPOINT_FILE, CONFIG_SUBDIR

ORIGINAL_CLASSES: tuple[str, ...] = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
"""Class names of Detoxify's ``original`` model (Jigsaw 2018); Detoxify renames them to ours."""

_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_WORDS = [
    "the",
    "a",
    "an",
    "and",
    "or",
    "but",
    "if",
    "of",
    "to",
    "in",
    "on",
    "at",
    "for",
    "with",
    "from",
    "by",
    "about",
    "as",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "it",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "i",
    "you",
    "he",
    "she",
    "we",
    "they",
    "me",
    "him",
    "her",
    "us",
    "them",
    "my",
    "your",
    "his",
    "its",
    "our",
    "their",
    "what",
    "which",
    "who",
    "when",
    "where",
    "why",
    "how",
    "not",
    "no",
    "yes",
    "all",
    "any",
    "some",
    "more",
    "most",
    "very",
    "can",
    "could",
    "will",
    "would",
    "should",
    "may",
    "might",
    "must",
    "do",
    "does",
    "did",
    "have",
    "has",
    "had",
    "get",
    "got",
    "make",
    "made",
    "good",
    "bad",
    "great",
    "best",
    "worst",
    "nice",
    "thanks",
    "thank",
    "please",
    "help",
    "question",
    "answer",
    "post",
    "comment",
    "beer",
    "ale",
    "lager",
    "stout",
    "ipa",
    "hops",
    "malt",
    "yeast",
    "brew",
    "brewing",
    "bottle",
    "glass",
    "taste",
    "flavor",
    "idiot",
    "stupid",
    "dumb",
    "moron",
    "hate",
    "kill",
    "die",
    "shut",
    "up",
    "ugly",
    "loser",
    "trash",
    "fool",
    "jerk",
    "love",
    "like",
    "think",
    "know",
    "see",
    "want",
    "need",
    "use",
    "try",
]


def _vocab() -> list[str]:
    """Special tokens, words, single characters and ``##`` continuations (so nothing is UNK)."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = list(_SPECIAL_TOKENS)
    for tok in [*_WORDS, *chars, *(f"##{c}" for c in string.ascii_lowercase + string.digits)]:
        if tok not in vocab:
            vocab.append(tok)
    return vocab


def build_tiny_checkpoint(
    out_dir: Path,
    labels: Sequence[str] = ORIGINAL_CLASSES,
    *,
    seed: int = 0,
    model_type: str | None = "bert-base-uncased",
    max_length: int = 128,
    initializer_range: float = 0.3,
) -> Path:
    """Write a tiny Detoxify checkpoint folder and return ``out_dir``.

    The model is a ``BertForSequenceClassification`` with 2 layers, hidden size 32, 2 heads,
    intermediate size 37 and a ~150-token WordPiece vocabulary, random weights from ``seed``
    (the same seed gives the same weights and scores). ``initializer_range`` is larger than
    BERT's 0.02 so that scores differ visibly between texts.

    Layout::

        out_dir/model.ckpt       {"config": {"arch": {"args": {...}}, "dataset": {"args": {"classes": labels}}},
                                  "state_dict": ...}
        out_dir/hf/config.json   num_labels == len(labels), id2label from labels
        out_dir/hf/tokenizer.json, tokenizer_config.json, vocab.txt

    Args:
        out_dir: folder to create (may exist; its two entries are overwritten).
        labels: the checkpoint's class names, e.g. Detoxify's original six (default) or
            :data:`moderation.scorers.LABELS` (seven).
        seed: torch seed for the weights.
        model_type: ``arch.args.model_type`` recorded in the checkpoint. The default mimics a
            published checkpoint (a hub name, so plain ``Detoxify(checkpoint=...)`` would go
            online); None records the local ``hf`` folder's absolute path instead, which plain
            ``Detoxify(checkpoint=..., huggingface_config_path=...)`` can load offline.
        max_length: position embeddings and the tokenizer's ``model_max_length``.
        initializer_range: std of the random weights.

    Returns:
        ``out_dir``, loadable with ``load_scorer(f"checkpoint:{out_dir}")``.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    labels = list(labels)
    if not labels:
        raise ValueError("labels must name at least one class")
    out_dir = Path(out_dir)
    hf_dir = out_dir / CONFIG_SUBDIR
    hf_dir.mkdir(parents=True, exist_ok=True)

    vocab = _vocab()
    # transformers 5: BertTokenizer is the fast (tokenizers) class and takes the vocabulary as
    # ``vocab=`` (a dict or a file path); the old ``vocab_file=`` keyword is silently ignored.
    tokenizer = BertTokenizer(
        vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True, model_max_length=max_length
    )
    tokenizer.save_pretrained(hf_dir)  # tokenizer.json + tokenizer_config.json
    (hf_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")  # for slow/other loaders

    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=max_length,
        initializer_range=initializer_range,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        problem_type="multi_label_classification",
        pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    model.eval()
    config.save_pretrained(hf_dir)

    checkpoint = {
        "config": {
            "arch": {
                "args": {
                    "model_type": model_type if model_type is not None else str(hf_dir.resolve()),
                    "model_name": "BertForSequenceClassification",
                    "tokenizer_name": "BertTokenizer",
                    "num_classes": len(labels),
                }
            },
            "dataset": {"args": {"classes": labels}},
        },
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
    torch.save(checkpoint, out_dir / CHECKPOINT_FILE)
    return out_dir
