"""Export a loaded cross-encoder to ONNX (fp32, or int8 by dynamic quantization) and cache it.

The cache key is a hash of the model's content (its config and every weight tensor), of the
options it was loaded with (the scorer's ``model_kwargs`` and ``config_kwargs``), and of
the export settings (format version, opset, precision, torch and onnxruntime versions), so
a changed model or setting gets a new file and a stale one is never read. Files are written
under a unique temporary name and moved into place with :func:`os.replace`, which is
atomic: several processes exporting the same model at once each write their own file, the
last move wins, and a reader only ever sees a complete file.

The cache folder is ``onnx_cache_dir`` if given, else the ``CROSSRANK_CACHE`` environment
variable, else ``$XDG_CACHE_HOME/crossrank`` (``~/.cache/crossrank``), with files under
``onnx/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cache_root", "export_onnx", "make_onnx_forward", "model_fingerprint"]

logger = logging.getLogger("crossrank")

#: Bump when the export changes in a way that makes old files wrong.
_FORMAT_VERSION = "2"
_OPSET = 17


def cache_root(onnx_cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds exported files (created on first export)."""
    if onnx_cache_dir is not None:
        return Path(onnx_cache_dir).expanduser()
    env = os.environ.get("CROSSRANK_CACHE")
    if env:
        return Path(env).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "crossrank" / "onnx"


def model_fingerprint(net: Any, load_options: Mapping[str, Any] | None = None) -> str:
    """A hash of the model's config and weights, and of the options it was loaded with.

    It changes whenever the model does. ``load_options`` (the scorer's ``model_kwargs`` and
    ``config_kwargs``) are hashed too, as some change the exported graph without changing
    a weight or a saved config entry (an attention implementation, for instance); values
    that are not JSON are hashed by their ``str``.
    """
    import torch

    h = hashlib.sha256()
    h.update(net.config.to_json_string(use_diff=False).encode())
    if load_options:
        h.update(json.dumps(load_options, sort_keys=True, default=str).encode())
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _settings_key(precision: str) -> str:
    import onnxruntime
    import torch

    return (
        f"v{_FORMAT_VERSION}-opset{_OPSET}-{precision}-torch{torch.__version__}"
        f"-ort{onnxruntime.__version__}"
    )


def _atomic_target(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return folder / name, Path(tmp)


def _dummy_inputs(tokenizer: Any, input_names: list[str]) -> dict[str, Any]:
    """Two pairs of different lengths, so the traced graph includes the padding mask."""
    enc = tokenizer(
        ["a short query", "another query"],
        ["a document", "a longer document with several more words in it than the first"],
        padding=True,
        return_tensors="pt",
    )
    return {k: enc[k] for k in input_names}


def export_onnx(
    net: Any,
    tokenizer: Any,
    input_names: list[str],
    *,
    precision: str,
    onnx_cache_dir: str | os.PathLike[str] | None = None,
    load_options: Mapping[str, Any] | None = None,
) -> tuple[Path, bool]:
    """Return the path of the cached ONNX file for ``net``, exporting it if needed.

    Args:
        net: A loaded transformers sequence-classification model (fp32, on the CPU).
        tokenizer: Its tokenizer (for the example inputs of the trace).
        input_names: The tensors the model reads, e.g. input_ids, attention_mask,
            token_type_ids.
        precision: ``"fp32"`` or ``"int8"``.
        onnx_cache_dir: The cache folder (see :func:`cache_root`).
        load_options: The options ``net`` was loaded with, part of the cache key (see
            :func:`model_fingerprint`).

    Returns:
        The file's path, and whether this call exported it (False: read from the cache).
    """
    import torch

    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    folder = cache_root(onnx_cache_dir) / model_fingerprint(net, load_options)
    fp32_path = folder / f"model-{_settings_key('fp32')}.onnx"
    wanted = fp32_path if precision == "fp32" else folder / f"model-{_settings_key('int8')}.onnx"
    if wanted.is_file():
        return wanted, False

    started = time.perf_counter()
    if not fp32_path.is_file():
        target, tmp = _atomic_target(folder, fp32_path.name)
        dummy = _dummy_inputs(tokenizer, input_names)
        axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
        axes["logits"] = {0: "batch"}
        cpu_net = net.to("cpu").eval()
        try:
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                # The TorchScript exporter warns about its own deprecation and about traced
                # Python conditions; the graph is checked against PyTorch in the tests.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    cpu_net,
                    tuple(dummy[name] for name in input_names),
                    str(tmp),
                    input_names=input_names,
                    output_names=["logits"],
                    dynamic_axes=axes,
                    opset_version=_OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        target, tmp = _atomic_target(folder, wanted.name)
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
    logger.info(
        "crossrank: exported %s ONNX model to %s in %.1f s",
        precision,
        wanted,
        time.perf_counter() - started,
    )
    return wanted, True


def make_onnx_forward(
    path: Path, input_names: list[str], num_labels: int, threads: int | None = None
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any]:
    """An onnxruntime session on ``path`` and a forward function with the torch one's contract.

    Both turn logits into relevance with :func:`crossrank.loading.relevance`.
    ``InferenceSession.run`` is safe to call from several threads at once.
    """
    import onnxruntime as ort

    from crossrank.backends import usable_cores
    from crossrank.loading import relevance

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The cores this process may use (onnxruntime's own default counts the machine's
    # physical cores, more than a container may be given).
    options.intra_op_num_threads = threads if threads is not None else usable_cores()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: arrays[name] for name in input_names}
        return relevance(session.run(["logits"], feeds)[0], num_labels)

    return forward, session
