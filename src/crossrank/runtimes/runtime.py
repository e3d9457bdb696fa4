"""Build a runtime for a score net: the chosen backend's forward function on its device,
with ``auto`` resolved by the probe.

This is the runtimes' one entry point (:func:`build_runtime`); the loading hub
(:mod:`crossrank.loading`) calls it with the net and encoder a family built.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank.errors import ModelLoadError
from crossrank.runtimes.backends import choose_backend
from crossrank.runtimes.devices import resolve_device
from crossrank.runtimes.guard import ForwardMany, GuardedMany, guard_forward
from crossrank.runtimes.inputs import Inputs

if TYPE_CHECKING:
    import torch

    from crossrank.runtimes.probe import Decision

__all__ = ["Forward", "Runtime", "build_runtime"]

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Runtime:
    """A score net ready to run.

    Attributes:
        backend: The backend it runs on (``auto`` resolved).
        device: ``"cpu"``, ``"cuda:0"``...
        forward: Padded int64 arrays in, one float64 relevance per row out.
        forward_many: Runs several batches at once (OpenVINO's streams), or None.
        engine: What runs it: the torch module, the ONNX session or the compiled
            OpenVINO model.
        export_path: The exported file it runs (ONNX file, OpenVINO ``model.xml``), or None.
        decision: With ``backend="auto"``: what it resolved to and the probe's measurements.
    """

    backend: str
    device: str
    forward: Forward
    forward_many: ForwardMany | None = None
    engine: Any = None
    export_path: str | None = None
    decision: Decision | None = None

    @property
    def parallel(self) -> int:
        """Batches the backend runs at once (a call is split into at least this many)."""
        return 1 if self.forward_many is None else self.forward_many.parallel


@dataclass(frozen=True)
class _Build:
    """What every backend's construction needs."""

    model: str
    inputs: Inputs
    device: torch.device
    cache_dir: str | None
    load_options: Mapping[str, Any]
    calibration: Sequence[tuple[str, str]] | None


def _onnx(build: _Build, net: Any, backend: str) -> Runtime:
    from crossrank.runtimes.onnx import export_onnx, make_onnx_forward

    try:
        path, _ = export_onnx(
            net.float().eval(),
            build.inputs,
            precision="int8" if backend == "onnx-int8" else "fp32",
            onnx_cache_dir=build.cache_dir,
            load_options=build.load_options,
        )
    except Exception as e:  # the exporter raises many types; say which model failed
        raise ModelLoadError(
            build.model,
            f"its ONNX export failed ({type(e).__name__}: {e})",
            "Use backend='torch', or report the model's architecture to crossrank.",
        ) from e
    # Dynamic int8 scales its activations per call: each row runs alone (batch invariance).
    forward, session = make_onnx_forward(path, per_row=backend == "onnx-int8")
    return Runtime(backend, "cpu", forward, None, session, str(path))


def _openvino(build: _Build, net: Any, backend: str) -> Runtime:
    from crossrank.runtimes.openvino import (
        export_openvino,
        make_openvino_forward,
        openvino_supports_bf16,
    )

    try:
        path, _ = export_openvino(
            net.float().eval(),
            build.inputs,
            precision="int8" if backend == "openvino-int8" else "fp32",
            cache_dir=build.cache_dir,
            load_options=build.load_options,
            calibration=build.calibration,
        )
    except Exception as e:  # the converter and NNCF raise many types; say which model failed
        raise ModelLoadError(
            build.model,
            f"its OpenVINO conversion failed ({type(e).__name__}: {e})",
            "Use backend='torch' or 'onnx', or report the model's architecture to crossrank.",
        ) from e
    precision = "bf16" if backend == "openvino-bf16" else "f32"
    if backend == "openvino-int8" and openvino_supports_bf16():
        # The layers int8 leaves in float run in bf16 where the CPU computes it natively,
        # as OpenVINO itself does by default there (its guard figures: docs/backends.md).
        precision = "bf16"
    forward, compiled, many = make_openvino_forward(path, inference_precision=precision)
    return Runtime(backend, "cpu", forward, many, compiled, str(path))


def _build(build: _Build, net: Any, backend: str) -> Runtime:
    """``backend`` on ``net`` (which the torch backends move or cast), guarded: its failures
    are :class:`~crossrank.errors.ScoringError` and its scores finite
    (:mod:`crossrank.runtimes.guard`)."""
    if backend.startswith("onnx"):
        runtime = _onnx(build, net, backend)
    elif backend.startswith("openvino"):
        runtime = _openvino(build, net, backend)
    else:
        from crossrank.runtimes.pytorch import make_torch_forward

        forward, module = make_torch_forward(net, build.device, backend)
        runtime = Runtime(backend, str(build.device), forward, None, module)
    many = runtime.forward_many
    return dataclasses.replace(
        runtime,
        forward=guard_forward(build.model, backend, runtime.forward),
        forward_many=None if many is None else GuardedMany(build.model, backend, many),
    )


def _resolve_auto(build: _Build, net: Any) -> Decision:
    """``auto``'s backend for this model here: ``CROSSRANK_BACKEND``, the cached decision,
    or a probe of every candidate backend on copies of ``net`` (:mod:`crossrank.runtimes.
    probe`)."""
    from crossrank.runtimes.cache import model_fingerprint
    from crossrank.runtimes.probe import resolve_auto, run_probe

    def forward_of(backend: str) -> tuple[Forward, Any]:
        # The torch backends move or cast the net they get: give them a copy.
        target = copy.deepcopy(net) if backend.startswith("torch") else net
        runtime = _build(build, target, backend)
        return runtime.forward, runtime.forward_many

    def probe(candidates: list[str], key: str) -> Decision:
        return run_probe(forward_of, candidates, inputs=build.inputs, key=key)

    return resolve_auto(
        model_fingerprint(net, build.load_options),
        str(build.device),
        probe,
        cache_dir=build.cache_dir,
    )


def build_runtime(
    net: Any,
    inputs: Inputs,
    *,
    model: str,
    backend: str,
    device: str | torch.device | None,
    cache_dir: str | None = None,
    load_options: Mapping[str, Any] | None = None,
    calibration: Sequence[tuple[str, str]] | None = None,
) -> Runtime:
    """Run ``net`` on ``backend`` (``"auto"``: the probe's choice) on ``device``.

    Args:
        net: The score net (on the CPU, as loaded); the torch backends move it.
        inputs: Its family's encoder (example inputs, calibration and probe rows).
        model: The model's name, for messages.
        backend: A backend name (:data:`crossrank.runtimes.backends.BACKENDS`).
        device: The device, or None (CUDA, then MPS, then the CPU; the CPU for the ONNX and
            OpenVINO backends).
        cache_dir: Where exports and decisions are cached.
        load_options: The options the net was loaded with, part of the export cache key.
        calibration: (query, text) pairs that calibrate ``openvino-int8``.

    Raises:
        ModelLoadError: An export or conversion failed.
        ValueError: The backend cannot run on the device here.
        ImportError: The backend's extra is not installed.
    """
    if device is None and backend.startswith(("onnx", "openvino")):
        device = "cpu"  # the ONNX and OpenVINO backends run on the CPU
    torch_device = resolve_device(device)
    chosen = choose_backend(backend, torch_device)
    build = _Build(
        model=model,
        inputs=inputs,
        device=torch_device,
        cache_dir=cache_dir,
        load_options=dict(load_options or {}),
        calibration=calibration,
    )
    decision = None
    if chosen == "auto":
        decision = _resolve_auto(build, net)
        chosen = choose_backend(decision.backend, torch_device)
    runtime = _build(build, net, chosen)
    return runtime if decision is None else dataclasses.replace(runtime, decision=decision)
