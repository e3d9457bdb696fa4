"""Inference backends: which engine and precision run the model's forward pass.

=============  ==========================================================  ============
backend        engine and precision                                        device
=============  ==========================================================  ============
``torch``      PyTorch, fp32 (the reference; equals sentence-transformers)  any
``torch-bf16`` PyTorch, bfloat16 weights and activations                   CPU or CUDA
``torch-fp16`` PyTorch, float16                                            CUDA only
``onnx``       onnxruntime, fp32, exported from the same model             CPU
``onnx-int8``  onnxruntime, int8 weights (dynamic quantization)            CPU
``auto``       the fastest of these that this machine runs natively and
               that passed the accuracy guard (see :func:`choose_backend`)
=============  ==========================================================  ============

The ONNX files are exported once per model and cached on disk (:mod:`crossrank.onnx_export`).

OpenVINO (``backend="openvino"``, as sentence-transformers and Haystack name it) is not
supported yet: :func:`check_backend` says so rather than calling it an unknown name.
"""

from __future__ import annotations

import importlib.util
import logging
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

Backend = Literal["auto", "torch", "torch-bf16", "torch-fp16", "onnx", "onnx-int8"]

#: Every concrete backend, plus ``"auto"``.
BACKENDS: tuple[str, ...] = ("auto", "torch", "torch-bf16", "torch-fp16", "onnx", "onnx-int8")

#: Backends that ``auto`` may pick on a CPU, fastest first. A backend is listed only after
#: it passed the accuracy guard (NDCG@10 on SciFact test, BM25 top-50, within 0.005 of
#: ``torch``) *and* was measured faster than ``torch``. Measured on a 2-core AVX2 CPU
#: (no VNNI, no native bf16; README "Results"): ``onnx`` matches ``torch``'s NDCG but runs
#: about 1.2-1.5x slower; ``onnx-int8`` is about as fast as ``torch`` and loses 0.036
#: NDCG@10 (fails the guard); ``torch-bf16`` is emulated and about 100x slower. So none is
#: listed yet, and ``auto`` resolves to ``torch``; a backend joins this list when a
#: measurement on some class of CPU shows it both faster and within the guard.
_AUTO_CPU_ORDER: tuple[str, ...] = ()


def check_backend(backend: object) -> str:
    """Return ``backend`` if it names a supported backend (one of :data:`BACKENDS`).

    Raises:
        ValueError: Any other value; for ``"openvino"`` and ``"openvino-*"`` the message
            says that OpenVINO is not supported yet and what to use instead.
    """
    if backend in BACKENDS:
        return str(backend)
    if isinstance(backend, str) and (backend == "openvino" or backend.startswith("openvino-")):
        raise ValueError(
            f"backend={backend!r} is not supported yet: crossrank has no OpenVINO backend. "
            f"Use one of {BACKENDS}; on a CPU, 'onnx' (fp32) or 'onnx-int8' run on "
            "onnxruntime (pip install \"crossrank[onnx]\")"
        )
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def onnx_available() -> bool:
    """Whether onnxruntime and onnx (the ``crossrank[onnx]`` extra) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX).

    Without them PyTorch emulates bf16, which is far slower than fp32 (measured about 100x
    on an AVX2-only AMD EPYC), so ``auto`` never picks bf16 there.
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
    """Resolve ``requested`` (``"auto"`` or a backend) for ``device``.

    ``auto`` picks the first backend of the CPU list (see ``_AUTO_CPU_ORDER``: those measured
    faster than ``torch`` within the accuracy guard) that this machine supports, else
    ``torch``; on CUDA it picks ``torch`` (fp32: the half-precision backends are opt-in
    until they have passed the accuracy guard on a GPU).

    Raises:
        ValueError: The backend cannot run on ``device``.
        ImportError: An ONNX backend without the ``crossrank[onnx]`` extra.
    """
    requested = check_backend(requested)
    if requested == "auto":
        if device.type != "cpu":
            return "torch"
        for candidate in _AUTO_CPU_ORDER:
            if candidate.startswith("onnx") and not onnx_available():
                continue
            if candidate == "torch-bf16" and not cpu_has_native_bf16():
                continue
            return candidate
        return "torch"
    if requested.startswith("onnx"):
        if device.type != "cpu":
            raise ValueError(
                f"backend={requested!r} runs on the CPU (onnxruntime's CPU provider), got "
                f"device={str(device)!r}; use device='cpu', or backend='torch' on {device.type}"
            )
        if not onnx_available():
            from crossrank._optional import missing_extra

            missing = "onnxruntime" if importlib.util.find_spec("onnxruntime") is None else "onnx"
            raise missing_extra(f"backend={requested!r}", "onnx", ModuleNotFoundError(name=missing))
    if requested == "torch-fp16" and device.type != "cuda":
        raise ValueError(
            f"backend='torch-fp16' needs a CUDA device, got device={str(device)!r}; on a CPU "
            "use backend='onnx-int8' or 'torch'"
        )
    if requested == "torch-bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logger.warning(
            "crossrank: this CPU has no native bf16 (AVX512-BF16/AMX); PyTorch emulates it "
            "and backend='torch-bf16' will be much slower than 'torch' or 'onnx-int8'"
        )
    return requested
