"""Convert a loaded cross-encoder to OpenVINO (fp32, or int8 by NNCF static quantization),
cache it on disk, and compile it for the CPU.

Three backends run on it (``pip install "crossrank[openvino]"``):

- ``openvino``: the fp32 model, compiled with ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO
  would otherwise run it in bf16 on a CPU with AVX512-BF16 or AMX), so its scores equal
  PyTorch's.
- ``openvino-bf16``: the same file, compiled with ``INFERENCE_PRECISION_HINT=bf16``; only on
  a CPU that OpenVINO reports as computing bf16 natively (:func:`openvino_supports_bf16`).
- ``openvino-int8``: static post-training quantization with NNCF (``nncf.quantize``,
  ``model_type=TRANSFORMER``): int8 weights and activations with scales calibrated once on a
  sample of (query, text) pairs, the user's own (``calibration``) or a built-in sample
  (:func:`crossrank.runtimes.probe.calibration_pairs`). Which layers stay in float depends
  on the CPU class (:mod:`crossrank.runtimes.int8`): on CPUs with native bf16 the relevance
  head and the feed-forward output projections (run in bf16), elsewhere the head only.

The converted model is the score net (:class:`crossrank.families.ScoreNet`, the family's
score head included), saved under the export cache (the same folder per model content, see
:mod:`crossrank.runtimes.cache`): one folder per precision and settings (format
version, OpenVINO, NNCF and torch versions; for int8, a hash of the calibration pairs and
the quantization settings). A folder is written under a temporary name and renamed into
place, which is atomic: several processes converting the same model at once each write
their own, the first rename wins, the others discard theirs, and a reader only ever sees a
complete folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.runtimes import cpu
from crossrank.runtimes.cache import cache_root, folder_in_place, model_fingerprint
from crossrank.runtimes.inputs import Inputs, example_batch
from crossrank.runtimes.int8 import Int8Recipe, int8_recipe

__all__ = [
    "OPENVINO_BACKENDS",
    "PERFORMANCE_HINT",
    "StreamForward",
    "export_openvino",
    "make_openvino_forward",
    "openvino_available",
    "openvino_supports_bf16",
    "require_openvino",
]

logger = logging.getLogger("crossrank")

#: The backends this module serves.
OPENVINO_BACKENDS: tuple[str, ...] = ("openvino", "openvino-bf16", "openvino-int8")

#: Bump when the conversion changes in a way that makes old folders wrong.
_FORMAT_VERSION = "2"

#: Most pairs used to calibrate the int8 model (evenly spaced when more are given): NNCF
#: reads each several times, and 48 were as good as 96 on the shared model.
_CALIBRATION_LIMIT = 48


def openvino_available(backend: str = "openvino") -> bool:
    """Whether ``backend``'s packages are installed: ``openvino``, and ``nncf`` for int8."""
    names = ("openvino", "nncf") if backend == "openvino-int8" else ("openvino",)
    return all(importlib.util.find_spec(name) is not None for name in names)


def require_openvino(backend: str) -> None:
    """Raise the one-line install hint if ``backend`` cannot be imported.

    Raises:
        ImportError: ``openvino`` (or ``nncf`` for ``openvino-int8``) is not installed; the
            message names ``pip install "crossrank[openvino]"``.
    """
    if openvino_available(backend):
        return
    from crossrank._optional import missing_extra

    missing = "openvino" if importlib.util.find_spec("openvino") is None else "nncf"
    raise missing_extra(f"backend={backend!r}", "openvino", ModuleNotFoundError(name=missing))


@lru_cache(maxsize=1)
def _core() -> Any:
    import openvino as ov

    return ov.Core()


@lru_cache(maxsize=1)
def openvino_supports_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes bf16 natively here (AVX512-BF16 or AMX).

    It asks the plugin (``OPTIMIZATION_CAPABILITIES`` lists ``BF16``) and requires the CPU
    flags too (:func:`crossrank.runtimes.cpu.cpu_has_native_bf16`), so a CPU that would
    emulate bf16 is never offered ``openvino-bf16``. False when OpenVINO is not installed.
    """
    if not openvino_available() or not cpu.cpu_has_native_bf16():
        return False
    try:
        capabilities = _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:  # no CPU plugin
        return False
    return "BF16" in capabilities


def _settings_key(precision: str) -> str:
    import openvino
    import torch

    key = f"ov{_FORMAT_VERSION}-{precision}-openvino{openvino.__version__.split('-')[0]}"
    key += f"-torch{torch.__version__}"
    if precision == "int8":
        import nncf

        key += f"-nncf{nncf.__version__}"
    return key


def _calibration_key(pairs: Sequence[tuple[str, str]], recipe: Int8Recipe) -> str:
    h = hashlib.sha256()
    layers = list(recipe.float_layers)
    h.update(
        json.dumps([layers, recipe.smooth_quant, recipe.overflow_fix, _CALIBRATION_LIMIT]).encode()
    )
    for query, text in pairs:
        h.update(json.dumps([query, text]).encode())
    return h.hexdigest()[:16]


def _convert(net: Any, inputs: Inputs) -> Any:
    """The OpenVINO model of the score net (fp32, dynamic batch and sequence length)."""
    import openvino as ov
    import torch

    prepare = getattr(net, "prepare_export", None)
    if callable(prepare):
        prepare()  # eager attention: an SDPA graph gives NaN for padded rows in OpenVINO
    # Two pairs of different lengths, so the padding mask is part of the traced graph.
    example = {
        name: torch.from_numpy(array)
        for name, array in example_batch(inputs).items()
        if name in net.input_names
    }
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The tracer warns about traced Python conditions; the graph is checked against
        # PyTorch in the tests.
        warnings.simplefilter("ignore")
        model = ov.convert_model(net.float().to("cpu").eval(), example_input=example)
    for port in model.inputs:
        port.get_tensor().set_names({port.get_any_name()})
    return model


def _calibration_items(
    inputs: Inputs, names: Sequence[str], pairs: Sequence[tuple[str, str]]
) -> list[dict[str, np.ndarray]]:
    """At most :data:`_CALIBRATION_LIMIT` pairs, evenly spaced, each as a one-row batch."""
    step = -(-len(pairs) // _CALIBRATION_LIMIT)  # ceil: evenly spaced, at most the limit
    items = []
    for query, text in list(pairs)[::step][:_CALIBRATION_LIMIT]:
        rows = inputs.rows(query, [text])
        items.append({name: np.asarray(rows[name], dtype=np.int64) for name in names})
    return items


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF draws progress bars on stdout and logs through its own logger: keep both quiet."""
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        nncf_logger.setLevel(level)


def _quantize(model: Any, items: list[dict[str, np.ndarray]], recipe: Int8Recipe) -> Any:
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )

    smoothing = AdvancedSmoothQuantParameters(matmul=recipe.smooth_quant)
    with _quiet_nncf(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(
            model,
            nncf.Dataset(items),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(items),
            ignored_scope=nncf.IgnoredScope(patterns=list(recipe.float_layers), validate=False),
            advanced_parameters=AdvancedQuantizationParameters(
                smooth_quant_alphas=smoothing, overflow_fix=OverflowFix(recipe.overflow_fix)
            ),
        )


def export_openvino(
    net: Any,
    inputs: Inputs,
    *,
    precision: str,
    cache_dir: str | os.PathLike[str] | None = None,
    load_options: Mapping[str, Any] | None = None,
    calibration: Sequence[tuple[str, str]] | None = None,
    recipe: Int8Recipe | None = None,
) -> tuple[Path, bool]:
    """Return the cached OpenVINO model (``model.xml``) for ``net``, converting it if needed.

    Args:
        net: A score net (on the CPU).
        inputs: Its family's encoder (the example inputs and the calibration rows, cut at
            the scorer's ``max_length``).
        precision: ``"fp32"`` (also what ``openvino-bf16`` compiles) or ``"int8"``.
        cache_dir: The cache folder (see :func:`crossrank.runtimes.cache.cache_root`).
        load_options: The options ``net`` was loaded with, part of the cache key.
        calibration: For int8: the (query, text) pairs whose activations set the int8
            scales (at most 48 are used, evenly spaced). Default: the built-in sample
            (:func:`crossrank.runtimes.probe.calibration_pairs`). Other pairs give another
            file.
        recipe: For int8: which layers stay in float (default: this CPU class's,
            :func:`crossrank.runtimes.int8.int8_recipe`). Another recipe gives another file.

    Returns:
        The path of ``model.xml``, and whether this call converted it (False: cached).

    Raises:
        ValueError: ``precision`` is neither ``"fp32"`` nor ``"int8"``, or ``calibration``
            is empty.
    """
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    if calibration is not None and not calibration:
        raise ValueError(
            "calibration must hold at least one (query, text) pair, got an empty sequence; "
            "pass None to use the built-in sample"
        )
    folder = cache_root(cache_dir) / model_fingerprint(net, load_options)
    fp32_dir = folder / f"openvino-{_settings_key('fp32')}"
    wanted = fp32_dir
    pairs: Sequence[tuple[str, str]] = ()
    chosen = recipe if recipe is not None else int8_recipe()
    if precision == "int8":
        if calibration is None:
            from crossrank.runtimes.probe.texts import calibration_pairs

            calibration = calibration_pairs()
        pairs = list(calibration)
        key = _calibration_key(pairs, chosen)
        wanted = folder / f"openvino-{_settings_key('int8')}-{chosen.name}-cal{key}"
    if (wanted / "model.xml").is_file():
        return wanted / "model.xml", False

    import openvino as ov

    started = time.perf_counter()
    if (fp32_dir / "model.xml").is_file():
        model = _core().read_model(fp32_dir / "model.xml")
    else:
        model = _convert(net, inputs)
        folder_in_place(
            fp32_dir,
            lambda tmp: ov.save_model(model, tmp / "model.xml", compress_to_fp16=False),
            "model.xml",
        )
    if precision == "int8":
        names = [port.get_any_name() for port in model.inputs]
        quantized = _quantize(model, _calibration_items(inputs, names, pairs), chosen)
        folder_in_place(
            wanted,
            lambda tmp: ov.save_model(quantized, tmp / "model.xml", compress_to_fp16=False),
            "model.xml",
        )
    logger.info(
        "crossrank: converted the model to OpenVINO %s in %.1f s (%s)",
        precision,
        time.perf_counter() - started,
        wanted,
    )
    return wanted / "model.xml", True


#: OpenVINO's performance hint for the OpenVINO backends (see :func:`make_openvino_forward`).
PERFORMANCE_HINT = "LATENCY"


def _scores(output: Any) -> np.ndarray:
    """A score net's output tensor as one float64 relevance per row."""
    return np.asarray(output, dtype=np.float64).reshape(-1)


class StreamForward:
    """Runs several padded batches at once on a compiled model's streams.

    OpenVINO's own way to use them: an ``AsyncInferQueue`` with one inference request per
    stream, fed from one thread (calls are serialised by a lock, so several threads may
    share it). ``parallel`` is the number of streams.
    """

    def __init__(self, compiled: Any, parallel: int):
        self.parallel = parallel
        self._compiled = compiled
        self._names = [port.get_any_name() for port in compiled.inputs]
        self._lock = threading.Lock()
        self._queue: Any = None

    def __call__(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        import openvino as ov

        out: list[Any] = [None] * len(batches)
        with self._lock:
            if self._queue is None:
                self._queue = ov.AsyncInferQueue(self._compiled, self.parallel)

                def done(request: Any, index: int) -> None:
                    self._out[index] = request.get_output_tensor(0).data.copy()

                self._queue.set_callback(done)
            self._out = out
            for i, arrays in enumerate(batches):
                self._queue.start_async({name: arrays[name] for name in self._names}, i)
            self._queue.wait_all()
        return [_scores(o) for o in out]


def make_openvino_forward(
    path: Path,
    *,
    inference_precision: str = "f32",
    threads: int | None = None,
    hint: str | None = None,
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any, StreamForward | None]:
    """Compile ``path`` for the CPU; return a forward function (padded arrays in, one
    float64 relevance per row out), the compiled model, and, where the model has several
    streams, a :class:`StreamForward` that runs that many batches at once (else None).

    Args:
        path: A ``model.xml`` from :func:`export_openvino`.
        inference_precision: ``"f32"`` (exact) or ``"bf16"``: what the float layers run in.
        threads: Intra-op threads (default: the cores this process may use,
            :func:`crossrank.runtimes.cpu.usable_cores`).
        hint: OpenVINO's ``PERFORMANCE_HINT`` (default :data:`PERFORMANCE_HINT`).

    The model is compiled with :data:`PERFORMANCE_HINT` (``LATENCY``: one stream that uses
    every core). With ``hint="THROUGHPUT"`` OpenVINO splits the cores into streams (on 2
    cores, two streams of one thread) and the :class:`StreamForward` runs one batch per
    stream at once; measured on the 2-core Xeon of docs/backends.md it was not faster
    enough to pay for its memory (1,000 pairs of ~412 tokens: 28-42 s and 1.9-2.2 GB peak
    RSS, against 31 s and 1.0 GB with ``LATENCY``), so it is not the default. The forward
    function (one batch) is safe to call from several threads at once: each thread gets its
    own inference request. Each is fed only the inputs the compiled model declares.
    """
    if inference_precision not in ("f32", "bf16"):
        raise ValueError(
            f"inference_precision must be 'f32' or 'bf16', got {inference_precision!r}"
        )
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": inference_precision,
        "PERFORMANCE_HINT": hint or PERFORMANCE_HINT,
        "INFERENCE_NUM_THREADS": threads if threads is not None else cpu.usable_cores(),
    }
    compiled = _core().compile_model(str(path), "CPU", config)
    names = [port.get_any_name() for port in compiled.inputs]
    try:
        streams = max(1, int(compiled.get_property("NUM_STREAMS")))
    except (RuntimeError, TypeError, ValueError):  # not reported: one batch at a time
        streams = 1
    local = threading.local()

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        request.infer({name: arrays[name] for name in names})
        return _scores(request.get_output_tensor(0).data)

    many = StreamForward(compiled, streams) if streams > 1 else None
    return forward, compiled, many
