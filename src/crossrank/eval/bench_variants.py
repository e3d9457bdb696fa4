"""What ``crossrank bench`` can time: a :class:`Variant` is one way of scoring (a name, a
description, a factory that builds a loaded :class:`ScorerLike`, and why it cannot run here,
if it cannot), and :data:`BUILTIN_VARIANTS` are the ones crossrank ships: each crossrank
backend and sentence-transformers' ``CrossEncoder.predict``, the reference.

:mod:`crossrank.eval.bench` registers them in ``VARIANTS`` (another one is added with
``register_variant``) and times them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BUILTIN_VARIANTS", "REFERENCE", "BenchConfig", "ScorerLike", "Variant"]


class ScorerLike(Protocol):
    """What a bench variant must offer: one score per text, in order."""

    def score(self, query: str, texts: Sequence[str]) -> Sequence[float]:
        """Score each text against the query."""
        ...


@dataclass(frozen=True)
class BenchConfig:
    """What a variant factory receives.

    Attributes:
        model: Model id or folder.
        batch_size: Pairs per forward pass.
        device: Torch device string.
    """

    model: str
    batch_size: int
    device: str
    onnx_cache_dir: str | None = None


@dataclass(frozen=True)
class Variant:
    """One way of scoring, timed by the bench.

    Attributes:
        name: Short unique name, used in tables and JSON.
        description: One line: engine, precision, device handling.
        factory: Builds a loaded :class:`ScorerLike` (imports its heavy modules inside, so
            the cold-start figure includes them).
    """

    name: str
    description: str
    factory: Callable[[BenchConfig], ScorerLike]
    unavailable: Callable[[BenchConfig], str | None] | None = None
    """Returns why the variant cannot run with this config (then it is skipped), or None."""
    peer_backend: str | None = None
    """A sentence-transformers backend: with a peer Python (``--peer-python``) the variant
    runs as ``CrossEncoder(model, backend=peer_backend)`` in that environment's
    :class:`PeerWorker` instead of ``factory`` here (``unavailable`` is then not asked)."""


def _crossrank(backend: str) -> Callable[[BenchConfig], ScorerLike]:
    def factory(config: BenchConfig) -> ScorerLike:
        from crossrank.scorer import CrossEncoderScorer

        scorer = CrossEncoderScorer(
            config.model,
            device=config.device,
            batch_size=config.batch_size,
            backend=backend,  # type: ignore[arg-type]
            onnx_cache_dir=config.onnx_cache_dir,
        )
        scorer.warm_up()
        return scorer

    return factory


def _needs_onnx(config: BenchConfig) -> str | None:
    from crossrank.runtimes.backends import onnx_available

    if not str(config.device).startswith("cpu"):
        return "the ONNX backends run on the CPU"
    return None if onnx_available() else 'needs pip install "crossrank[onnx]"'


def _needs_bf16(config: BenchConfig) -> str | None:
    from crossrank.runtimes.cpu import cpu_has_native_bf16

    if str(config.device).startswith("cpu") and not cpu_has_native_bf16():
        return "this CPU has no native bf16 (AVX512-BF16/AMX); emulated bf16 is far slower"
    return None


def _needs_cuda(config: BenchConfig) -> str | None:
    return None if str(config.device).startswith("cuda") else "needs a CUDA device"


def _needs_openvino(backend: str) -> Callable[[BenchConfig], str | None]:
    def check(config: BenchConfig) -> str | None:
        from crossrank.runtimes.openvino import openvino_available, openvino_supports_bf16

        if not str(config.device).startswith("cpu"):
            return "the OpenVINO backends run on the CPU"
        if not openvino_available(backend):
            return 'needs pip install "crossrank[openvino]"'
        if backend == "openvino-bf16" and not openvino_supports_bf16():
            return "this CPU has no native bf16 (AVX512-BF16/AMX)"
        return None

    return check


def _needs_optimum(backend: str) -> Callable[[BenchConfig], str | None]:
    """sentence-transformers' ONNX and OpenVINO backends load through optimum (optimum-onnx,
    optimum-intel); they are skipped, with the import error, where those do not import."""
    module = "optimum.onnxruntime" if backend == "onnx" else "optimum.intel.openvino"
    package = "optimum-onnx[onnxruntime]" if backend == "onnx" else "optimum-intel[openvino]"

    def check(config: BenchConfig) -> str | None:
        import importlib

        if not str(config.device).startswith("cpu"):
            return f"sentence-transformers backend={backend!r} is timed on the CPU"
        try:
            importlib.import_module(module)
        except Exception as e:  # an incompatible optimum raises more than ImportError
            return (
                f"sentence-transformers backend={backend!r} needs {package}, which does not "
                f"import here ({type(e).__name__}: {str(e)[:120]}); run it in another "
                "environment with --peer-python (docs/backends.md)"
            )
        return None

    return check


class _SentenceTransformersScorer:
    """sentence-transformers ``CrossEncoder.predict``, as the peers call it.

    ``backend="onnx"`` and ``"openvino"`` are its fastest documented CPU paths: the model is
    exported on load by optimum (``export=True`` when the folder holds no exported file).
    """

    def __init__(self, config: BenchConfig, backend: str = "torch") -> None:
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(config.model, device=config.device, backend=backend)
        self._batch_size = config.batch_size

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        scores = self._model.predict(
            [(query, t) for t in texts], batch_size=self._batch_size, show_progress_bar=False
        )
        return [float(s) for s in scores]


def _sentence_transformers(backend: str) -> Callable[[BenchConfig], ScorerLike]:
    def factory(config: BenchConfig) -> ScorerLike:
        return _SentenceTransformersScorer(config, backend)

    return factory


#: Name of the reference variant that ratios are computed against.
REFERENCE = "sentence-transformers-fp32"

#: The variants crossrank ships, in table order (the reference last).
BUILTIN_VARIANTS: tuple[Variant, ...] = (
    Variant(
        "crossrank-torch-fp32",
        "crossrank core (CrossEncoderScorer), PyTorch fp32",
        _crossrank("torch"),
    ),
    Variant(
        "crossrank-torch-bf16",
        "crossrank core, PyTorch bfloat16",
        _crossrank("torch-bf16"),
        _needs_bf16,
    ),
    Variant(
        "crossrank-torch-fp16",
        "crossrank core, PyTorch float16",
        _crossrank("torch-fp16"),
        _needs_cuda,
    ),
    Variant(
        "crossrank-onnx-fp32",
        "crossrank core, onnxruntime fp32 (exported, cached)",
        _crossrank("onnx"),
        _needs_onnx,
    ),
    Variant(
        "crossrank-onnx-int8",
        "crossrank core, onnxruntime int8 dynamic quantization (per-channel)",
        _crossrank("onnx-int8"),
        _needs_onnx,
    ),
    Variant(
        "crossrank-openvino-fp32",
        "crossrank core, OpenVINO fp32 (converted, cached)",
        _crossrank("openvino"),
        _needs_openvino("openvino"),
    ),
    Variant(
        "crossrank-openvino-bf16",
        "crossrank core, OpenVINO with bf16 inference precision",
        _crossrank("openvino-bf16"),
        _needs_openvino("openvino-bf16"),
    ),
    Variant(
        "crossrank-openvino-int8",
        "crossrank core, OpenVINO int8 (NNCF static quantization, built-in calibration)",
        _crossrank("openvino-int8"),
        _needs_openvino("openvino-int8"),
    ),
    Variant(
        "crossrank-auto",
        "crossrank core, backend='auto' (the probe's choice on this machine)",
        _crossrank("auto"),
    ),
    Variant(
        "sentence-transformers-onnx",
        "sentence-transformers CrossEncoder(backend='onnx'), exported by optimum",
        _sentence_transformers("onnx"),
        _needs_optimum("onnx"),
        peer_backend="onnx",
    ),
    Variant(
        "sentence-transformers-openvino",
        "sentence-transformers CrossEncoder(backend='openvino'), exported by optimum-intel",
        _sentence_transformers("openvino"),
        _needs_optimum("openvino"),
        peer_backend="openvino",
    ),
    Variant(
        REFERENCE,
        "sentence-transformers CrossEncoder.predict, fp32",
        _sentence_transformers("torch"),
    ),
)
