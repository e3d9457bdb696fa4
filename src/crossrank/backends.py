"""Inference backends: which engine and precision run the model's forward pass.

=================  ======================================================  ============
backend            engine and precision                                    device
=================  ======================================================  ============
``torch``          PyTorch, fp32 (the reference; equals sentence-transformers)  any
``torch-bf16``     PyTorch, bfloat16 weights and activations               CPU or CUDA
``torch-fp16``     PyTorch, float16                                        CUDA only
``onnx``           onnxruntime, fp32, exported from the same model         CPU
``onnx-int8``      onnxruntime, int8 weights (dynamic quantization)        CPU
``openvino``       OpenVINO, fp32 (converted from the same model)          CPU
``openvino-bf16``  OpenVINO, bf16 inference precision                      CPU with bf16
``openvino-int8``  OpenVINO, int8 by NNCF static quantization (calibrated) CPU
``auto``           the fastest of these that this machine runs and that
                   keeps fp32's ranking, measured once (:mod:`crossrank.probe`)
=================  ======================================================  ============

The ONNX files are exported once per model and cached on disk (:mod:`crossrank.onnx_export`),
and so are the OpenVINO ones (:mod:`crossrank.openvino_export`). ``backend="openvino"`` is
the name sentence-transformers and Haystack's ranker use.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

__all__ = [
    "BACKENDS",
    "Backend",
    "check_backend",
    "choose_backend",
    "cpu_has_native_bf16",
    "onnx_available",
]

logger = logging.getLogger("crossrank")

Backend = Literal[
    "auto",
    "torch",
    "torch-bf16",
    "torch-fp16",
    "onnx",
    "onnx-int8",
    "openvino",
    "openvino-bf16",
    "openvino-int8",
]

#: Every concrete backend, plus ``"auto"``.
BACKENDS: tuple[str, ...] = (
    "auto",
    "torch",
    "torch-bf16",
    "torch-fp16",
    "onnx",
    "onnx-int8",
    "openvino",
    "openvino-bf16",
    "openvino-int8",
)

def check_backend(backend: object) -> str:
    """Return ``backend`` if it names a backend (one of :data:`BACKENDS`).

    Raises:
        ValueError: Any other value, with the list of backends.
    """
    if backend in BACKENDS:
        return str(backend)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def onnx_available() -> bool:
    """Whether onnxruntime and onnx (the ``crossrank[onnx]`` extra) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, else ``os.cpu_count()``): the
    intra-op threads of the ONNX Runtime and OpenVINO backends."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX).

    Without them PyTorch emulates bf16, which is far slower than fp32 (measured about 100x
    on an AVX2-only AMD EPYC), so ``auto`` does not even try bf16 there.
    """
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return False  # Apple CPUs: no bf16 fast path in PyTorch's CPU kernels
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    except OSError:
        pass
    return False


def choose_backend(requested: str, device: torch.device) -> str:
    """Check that ``requested`` can run on ``device`` here, and return it.

    ``"auto"`` is returned as it is: it is resolved when the model is loaded, by measuring
    this machine (:func:`crossrank.probe.resolve_auto`).

    Raises:
        ValueError: The backend cannot run on ``device``.
        ImportError: An ONNX or OpenVINO backend without its extra (the message names
            ``pip install "crossrank[onnx]"`` or ``"crossrank[openvino]"``).
    """
    requested = check_backend(requested)
    if requested.startswith(("onnx", "openvino")):
        engine = "onnxruntime" if requested.startswith("onnx") else "OpenVINO"
        if device.type != "cpu":
            raise ValueError(
                f"backend={requested!r} runs on the CPU ({engine}), got "
                f"device={str(device)!r}; use device='cpu', or backend='torch' on {device.type}"
            )
    if requested.startswith("onnx") and not onnx_available():
        from crossrank._optional import missing_extra

        missing = "onnxruntime" if importlib.util.find_spec("onnxruntime") is None else "onnx"
        raise missing_extra(f"backend={requested!r}", "onnx", ModuleNotFoundError(name=missing))
    if requested.startswith("openvino"):
        from crossrank.openvino_export import openvino_supports_bf16, require_openvino

        require_openvino(requested)
        if requested == "openvino-bf16" and not openvino_supports_bf16():
            raise ValueError(
                "backend='openvino-bf16' needs a CPU that computes bf16 natively (AVX512-BF16 "
                "or AMX), and this one does not; use backend='openvino' (fp32) or "
                "'openvino-int8', or 'auto' to measure which is fastest here"
            )
    if requested == "torch-fp16" and device.type != "cuda":
        raise ValueError(
            f"backend='torch-fp16' needs a CUDA device, got device={str(device)!r}; on a CPU "
            "use backend='openvino-int8', 'onnx' or 'torch'"
        )
    if requested == "torch-bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logger.warning(
            "crossrank: this CPU has no native bf16 (AVX512-BF16/AMX); PyTorch emulates it "
            "and backend='torch-bf16' will be much slower than 'torch' or 'openvino'"
        )
    return requested
