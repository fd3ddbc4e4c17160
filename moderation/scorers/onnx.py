"""The ``onnx-int8`` path of the Detoxify engine: export, quantize, run with ONNX Runtime.

``quantization="onnx-int8"`` runs the same model through ONNX Runtime with int8 weights: the
model is exported once with ``torch.onnx.export(dynamo=True)`` (batch and sequence axes
dynamic), its value-info annotations dropped (ONNX shape inference rejects one of the
exporter's), pre-processed with ``onnxruntime.quantization.shape_inference.quant_pre_process``
and quantized with ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights per output
channel, MatMul nodes: the encoder's linear layers; uint8 activations quantized at run time).
The built file is cached in ``<checkpoint folder>/onnx/<sha12>-onnx-int8-r<recipe>/`` (or
``cache_dir``) and reused; the scorer's ``model_id`` gains ``+onnx-int8`` so scores of different
numerics are never mixed. Activations are quantized per batch tensor at run time, so an int8
score also moves slightly with the texts it is batched with (fp32 scores do not); the size of
that and of the int8-vs-fp32 differences is measured in BENCHMARKS.md ("Scoring"). torch's own int8 path (``torch.ao.quantization.quantize_dynamic``) is
deprecated in torch 2.13 (its migration target, torchao, is not installed) and is not offered.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from moderation.scorers import ScorerUnavailableError

log = logging.getLogger(__name__)

ONNX_RECIPE = "2"
"""Version of the ONNX build recipe; part of the cache key (bump it when the build changes)."""
ONNX_SUBDIR = "onnx"
"""Cache folder for built ONNX models, beside the checkpoint file (git-ignored under models/)."""


def _example_inputs(tokenizer: Any) -> dict[str, Any]:
    """Two texts of different lengths, padded: the export traces a batch with padding."""
    enc = tokenizer(
        ["a short text", "a longer text, so that the first one needs padding in this batch"],
        padding=True, truncation=True, return_tensors="pt",
    )  # fmt: skip
    return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def _export_fp32(model: Any, inputs: dict[str, Any], path: Path) -> None:
    """``torch.onnx.export(dynamo=True)`` with dynamic batch and sequence axes, to one file.

    The exporter's own warnings and progress output (torch 2.13: a pytree FutureWarning raised
    inside torch, notes that input axes share a name, "[torch.onnx] ..." lines, torchvision
    notices) are silenced for the export only; :func:`build_onnx_int8` checks the exported
    graph's logits against the torch model's instead.
    """
    import onnx
    import torch

    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    names = list(inputs)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model.eval(), (), kwargs=inputs, dynamo=True, verbose=False, optimize=True,
                input_names=names, output_names=["logits"],
                dynamic_shapes={name: {0: batch, 1: seq} for name in names},
            )  # fmt: skip
            program.save(str(path), external_data=False)
    finally:
        onnx_logger.setLevel(level)
    # The exporter annotates some intermediate values with static shapes that ONNX's own shape
    # inference then contradicts ("Inferred shape and existing shape differ"), which stops the
    # quantizer. The annotations are optional metadata: drop them and let inference redo them.
    graph = onnx.load(str(path))
    del graph.graph.value_info[:]
    onnx.save(graph, str(path))


def _ort_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads, full graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build_onnx_int8(model: Any, tokenizer: Any, out_dir: Path, *, check_atol: float = 1e-3) -> Path:
    """Build (once) an int8 ONNX model of ``model`` in ``out_dir`` and return its ``model.onnx``.

    Steps: export fp32 (:func:`_export_fp32`); check that ONNX Runtime's fp32 logits equal
    torch's on a padded example batch within ``check_atol``; pre-process
    (``quant_pre_process``, ONNX shape inference and graph optimisation; onnxruntime's symbolic
    shape inference cannot resolve the exporter's graph and is skipped); quantize
    (``quantize_dynamic``: QInt8 weights per output channel on MatMul nodes, i.e. the encoder's
    linear layers; the pooler and classifier Gemm stay fp32). Built in a temporary folder beside
    ``out_dir`` and renamed into place, so concurrent builds never leave a half-written model;
    an existing ``out_dir/model.onnx`` is reused as is. ``out_dir/manifest.json`` records the
    recipe, package versions, the fp32 check and the build time.

    Args:
        model: the Hugging Face sequence-classification model (torch, CPU, eval mode).
        tokenizer: its tokenizer (for the example batch).
        out_dir: the cache folder of this checkpoint and recipe (key it by the weights' hash).
        check_atol: largest tolerated |logit| difference between the fp32 ONNX graph and torch.

    Raises:
        ScorerUnavailableError: ``onnxruntime`` or ``onnxscript`` (torch's ONNX exporter needs
            it) is not installed.
        RuntimeError: the exported fp32 graph disagrees with torch beyond ``check_atol``.
    """
    import importlib.util

    missing = [m for m in ("onnxruntime", "onnxscript", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ScorerUnavailableError(
            f"scorer_quantization=onnx-int8 needs the packages {', '.join(missing)} (pinned in requirements.lock); "
            "install them or use scorer_quantization=none"
        )
    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_dir = Path(out_dir)
    target = out_dir / "model.onnx"
    if target.is_file():
        return target
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the cache is shared like the checkpoint
    try:
        inputs = _example_inputs(tokenizer)
        fp32, pre = work / "fp32.onnx", work / "pre.onnx"
        _export_fp32(model, inputs, fp32)
        with torch.inference_mode():
            expected = model(**inputs)[0].numpy()
        got = _ort_session(fp32, 1).run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        diff = float(np.max(np.abs(got - expected)))
        if not diff <= check_atol:
            raise RuntimeError(
                f"the ONNX export of this model disagrees with torch: largest logit difference {diff:.3g} > {check_atol}; "
                "use scorer_quantization=none"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # onnxruntime's notes on ops it leaves alone
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            # reduce_range (7-bit weights): x86 CPUs without VNNI (AVX2/AVX-512 only) saturate
            # the u8 x s8 products of full-range int8 (ONNX Runtime's quantization docs,
            # "When and why do I need to try U8U8?"); measured here on an AVX2-only EPYC: max
            # score difference to fp32 0.38 full-range vs the 0.02 of a VNNI machine.
            quantize_dynamic(pre, work / "model.onnx", weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=True, op_types_to_quantize=["MatMul"])  # fmt: skip
        fp32.unlink()
        pre.unlink()
        manifest = {
            "recipe": ONNX_RECIPE, "quantization": "onnx-int8", "weights": "QInt8 per channel (7-bit range), MatMul nodes",
            "activations": "QUInt8, dynamic", "fp32_check_max_abs_logit_diff": diff, "build_s": round(time.perf_counter() - t0, 2),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "transformers": importlib.metadata.version("transformers"),
        }  # fmt: skip
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            work.rename(out_dir)
        except OSError:  # another process built it first
            if not target.is_file():
                raise
        log.info("built int8 ONNX model %s in %.1f s", target, time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
