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
                   keeps fp32's ranking, measured once (:mod:`crossrank.runtimes.probe`)
=================  ======================================================  ============

The ONNX files are exported once per model and cached on disk (:mod:`crossrank.runtimes.onnx`),
and so are the OpenVINO ones (:mod:`crossrank.runtimes.openvino`). ``backend="openvino"`` is
the name sentence-transformers and Haystack's ranker use.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING, Literal

from crossrank.runtimes import cpu

if TYPE_CHECKING:
    import torch

__all__ = [
    "BACKENDS",
    "Backend",
    "check_backend",
    "choose_backend",
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



def choose_backend(requested: str, device: torch.device) -> str:
    """Check that ``requested`` can run on ``device`` here, and return it.

    ``"auto"`` is returned as it is: it is resolved when the model is loaded, by measuring
    this machine (:func:`crossrank.runtimes.probe.resolve_auto`).

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
        from crossrank.runtimes.openvino import openvino_supports_bf16, require_openvino

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
    if requested == "torch-bf16" and device.type == "cpu" and not cpu.cpu_has_native_bf16():
        logger.warning(
            "crossrank: this CPU has no native bf16 (AVX512-BF16/AMX); PyTorch emulates it "
            "and backend='torch-bf16' will be much slower than 'torch' or 'openvino'"
        )
    return requested
