"""Exceptions raised by crossrank.

Every model-loading failure is a :class:`ModelLoadError` carrying the model that was
asked for (``model``) and what to do about it (``hint``), so callers can catch one type.
A device this machine does not have is a :class:`DeviceUnavailableError`, raised before
anything is loaded. A loaded model that fails while scoring (an error inside torch,
onnxruntime or OpenVINO, or scores that are not finite) is a :class:`ScoringError`: crossrank
never returns a NaN score.
"""

from __future__ import annotations

__all__ = [
    "CrossrankError",
    "DeviceUnavailableError",
    "HubUnreachableError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ScoringError",
    "UnsupportedModelError",
]


class CrossrankError(Exception):
    """Base class of every error crossrank raises on purpose."""


class ModelLoadError(CrossrankError):
    """A cross-encoder could not be loaded.

    Attributes:
        model: The model id or folder that was asked for.
        hint: What to do instead.
    """

    def __init__(self, model: str, reason: str, hint: str) -> None:
        self.model = model
        self.reason = reason
        self.hint = hint
        super().__init__(f"Could not load cross-encoder {model!r}: {reason}. {hint}")


class ModelNotFoundError(ModelLoadError):
    """The model is neither an existing local folder nor a model id on the Hub."""


class HubUnreachableError(ModelLoadError):
    """The Hugging Face Hub could not be reached and the model is not in the local cache."""


class UnsupportedModelError(ModelLoadError):
    """The files load, but they are not a cross-encoder crossrank can score with."""


class DeviceUnavailableError(CrossrankError, ValueError):
    """The device asked for does not exist on this machine (no CUDA, no such GPU, no MPS).

    It is also a :class:`ValueError`: the ``device`` argument is wrong for this machine.

    Attributes:
        device: The device that was asked for, as a string (``"cuda:1"``).
        reason: What this machine lacks.
        hint: What to do instead.
    """

    def __init__(self, device: str, reason: str, hint: str) -> None:
        self.device = device
        self.reason = reason
        self.hint = hint
        super().__init__(f"device={device!r} is not available here: {reason}. {hint}")


class ScoringError(CrossrankError, RuntimeError):
    """A loaded model failed while scoring: its backend raised, or gave scores that are not
    finite (NaN or infinite), which crossrank never returns.

    Attributes:
        model: The model id or folder.
        backend: The backend it ran on.
        reason: What went wrong.
        hint: What to do instead.
    """

    def __init__(self, model: str, backend: str, reason: str, hint: str) -> None:
        self.model = model
        self.backend = backend
        self.reason = reason
        self.hint = hint
        super().__init__(
            f"Could not score with {model!r} on backend={backend!r}: {reason}. {hint}"
        )
