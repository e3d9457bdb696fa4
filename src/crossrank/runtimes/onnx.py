"""The ONNX Runtime backends: export a score net to ONNX (fp32, or int8 by dynamic
quantization), cache the file, and run it.

The exported graph is the score net (:class:`crossrank.families.ScoreNet`): token inputs in,
one relevance logit per row out, the family's score head included. It keeps only the inputs
the model reads (an unused ``token_type_ids`` is dropped by the exporter), and the session
is fed only the inputs its graph declares. The cache key (:func:`crossrank.runtimes.cache.
model_fingerprint`) covers the net and its weights; the file name covers the export
settings (format version, opset, precision, torch and onnxruntime versions).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.runtimes.cache import atomic_target, cache_root, model_fingerprint
from crossrank.runtimes.inputs import Inputs, example_batch

__all__ = ["export_onnx", "make_onnx_forward"]

logger = logging.getLogger("crossrank")

#: Bump when the export changes in a way that makes old files wrong.
_FORMAT_VERSION = "3"
_OPSET = 17


def _settings_key(precision: str) -> str:
    import onnxruntime
    import torch

    return (
        f"v{_FORMAT_VERSION}-opset{_OPSET}-{precision}-torch{torch.__version__}"
        f"-ort{onnxruntime.__version__}"
    )


def _export_fp32(net: Any, inputs: Inputs, folder: Path, name: str) -> None:
    import torch

    target, tmp = atomic_target(folder, name)
    prepare = getattr(net, "prepare_export", None)
    if callable(prepare):
        prepare()
    names = list(net.input_names)
    example = example_batch(inputs)
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["scores"] = {0: "batch"}
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The TorchScript exporter warns about its own deprecation and about traced
            # Python conditions; the graph is checked against PyTorch in the tests.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net.to("cpu").eval(),
                tuple(torch.from_numpy(example[n]) for n in names),
                str(tmp),
                input_names=names,
                output_names=["scores"],
                dynamic_axes=axes,
                opset_version=_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _quantize_int8(fp32_path: Path, folder: Path, name: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target, tmp = atomic_target(folder, name)
    try:
        # The quantizer logs advice through the root logger (logging.warning), which
        # would configure logging for the whole program; give it a handler that drops it.
        root = logging.getLogger()
        silent = logging.NullHandler()
        added = not root.handlers
        if added:
            root.addHandler(silent)
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            # Per-channel int8 weights: per-tensor scales cost MiniLM rerankers several
            # NDCG points, per-channel keeps them within the accuracy guard.
            quantize_dynamic(
                str(fp32_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True
            )
        finally:
            root.setLevel(level)
            if added:
                root.removeHandler(silent)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def export_onnx(
    net: Any,
    inputs: Inputs,
    *,
    precision: str,
    onnx_cache_dir: str | os.PathLike[str] | None = None,
    load_options: Mapping[str, Any] | None = None,
) -> tuple[Path, bool]:
    """Return the path of the cached ONNX file for ``net``, exporting it if needed.

    Args:
        net: A score net (fp32, on the CPU).
        inputs: Its family's encoder (for the example inputs of the trace).
        precision: ``"fp32"`` or ``"int8"``.
        onnx_cache_dir: The cache folder (see :func:`crossrank.runtimes.cache.cache_root`).
        load_options: The options ``net`` was loaded with, part of the cache key.

    Returns:
        The file's path, and whether this call exported it (False: read from the cache).
    """
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    folder = cache_root(onnx_cache_dir) / model_fingerprint(net, load_options)
    fp32_path = folder / f"model-{_settings_key('fp32')}.onnx"
    wanted = fp32_path if precision == "fp32" else folder / f"model-{_settings_key('int8')}.onnx"
    if wanted.is_file():
        return wanted, False
    started = time.perf_counter()
    if not fp32_path.is_file():
        _export_fp32(net, inputs, folder, fp32_path.name)
    if precision == "int8":
        _quantize_int8(fp32_path, folder, wanted.name)
    logger.info(
        "crossrank: exported %s ONNX model to %s in %.1f s",
        precision,
        wanted,
        time.perf_counter() - started,
    )
    return wanted, True


def make_onnx_forward(
    path: Path, threads: int | None = None, *, per_row: bool = False
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any]:
    """An onnxruntime session on ``path`` and a forward function: padded arrays in, one
    float64 relevance per row out.

    The session is fed only the inputs its graph declares. ``InferenceSession.run`` is safe
    to call from several threads at once.

    Args:
        path: The ONNX file.
        threads: Intra-op threads (default: the cores this process may use).
        per_row: Run each row alone, cut to its real tokens (its attention mask), as
            ``onnx-int8`` needs: dynamic quantization computes one activation scale per
            call over every row and padding position in it, so in a batch a row's score
            would move with its neighbours (0.035 in raw logits on the shared model).
            Alone, the scales are the row's own, and its score is the same in any batch.
    """
    import onnxruntime as ort

    from crossrank.runtimes.cpu import usable_cores

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The cores this process may use (onnxruntime's own default counts the machine's
    # physical cores, more than a container may be given).
    options.intra_op_num_threads = threads if threads is not None else usable_cores()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(["scores"], feeds)[0], dtype=np.float64).reshape(-1)

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: arrays[name] for name in names}
        if not per_row:
            return run(feeds)
        mask = arrays["attention_mask"]
        out = np.empty(mask.shape[0], dtype=np.float64)
        for i, row in enumerate(mask):
            real = np.flatnonzero(row)
            lo, hi = (int(real[0]), int(real[-1]) + 1) if real.size else (0, row.shape[0])
            out[i] = run({name: value[i : i + 1, lo:hi] for name, value in feeds.items()})[0]
        return out

    return forward, session
