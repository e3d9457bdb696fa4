"""Every score a runtime returns is finite, and every failure inside a runtime is
crossrank's :class:`~crossrank.errors.ScoringError`, naming the model, the backend and what to
do: the forward functions of :func:`crossrank.runtimes.build_runtime` are wrapped here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from crossrank.errors import CrossrankError, ScoringError

__all__ = ["ForwardMany", "GuardedMany", "guard_forward", "hint_for"]

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]


class ForwardMany(Protocol):
    """Runs several padded batches at once (OpenVINO's streams)."""

    @property
    def parallel(self) -> int:
        """How many batches it runs at once."""
        ...

    def __call__(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """One result per batch, in order."""
        ...


def hint_for(backend: str, error: BaseException | None = None) -> str:
    """What to do when ``backend`` fails (``error``: what it raised; None: non-finite scores)."""
    text = f"{type(error).__name__}: {error}".lower() if error is not None else ""
    if error is not None and (
        isinstance(error, MemoryError) or "memory" in text or "allocate" in text
    ):
        return (
            "The batch did not fit in memory: lower max_tokens_per_batch or batch_size, or "
            "max_length."
        )
    if backend == "torch":
        if error is None:
            return (
                "The model itself gives them in fp32 PyTorch: its weights may be corrupt or "
                "untrained; re-download or re-save it, or report it to crossrank."
            )
        return "Report the model and this message to crossrank."
    if backend in ("onnx", "openvino"):
        return "Use backend='torch' (the fp32 reference), and report the model to crossrank."
    return (
        "Use an fp32 backend: backend='openvino' or 'torch' (reduced precision is not "
        "accurate enough for this model), or backend='auto', which checks each candidate."
    )


def _check(model: str, backend: str, out: Any) -> np.ndarray:
    scores = np.asarray(out, dtype=np.float64).reshape(-1)
    bad = int(np.count_nonzero(~np.isfinite(scores)))
    if bad:
        raise ScoringError(
            model,
            backend,
            f"{bad} of {scores.size} scores in a batch are not finite (NaN or infinite)",
            hint_for(backend),
        )
    return scores


def guard_forward(model: str, backend: str, forward: Forward) -> Forward:
    """``forward`` whose failures are :class:`ScoringError` and whose scores are finite."""

    def guarded(arrays: dict[str, np.ndarray]) -> np.ndarray:
        try:
            out = forward(arrays)
        except CrossrankError:
            raise
        except Exception as e:  # torch, onnxruntime and OpenVINO each raise their own
            raise ScoringError(
                model, backend, f"{type(e).__name__}: {e}", hint_for(backend, e)
            ) from e
        return _check(model, backend, out)

    return guarded


class GuardedMany:
    """A runner of several batches at once (OpenVINO's streams), guarded the same way."""

    def __init__(self, model: str, backend: str, many: Any) -> None:
        self.model = model
        self.backend = backend
        self.many = many
        self.parallel = int(many.parallel)

    def __call__(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        try:
            outs = self.many(batches)
        except CrossrankError:
            raise
        except Exception as e:
            raise ScoringError(
                self.model, self.backend, f"{type(e).__name__}: {e}", hint_for(self.backend, e)
            ) from e
        return [_check(self.model, self.backend, out) for out in outs]
