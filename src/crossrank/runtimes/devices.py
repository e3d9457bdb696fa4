"""Check that a device exists on this machine before anything is loaded.

torch accepts any well-formed device name (``torch.device("cuda:7")``) and fails only when
a tensor is moved there, after the model has loaded: with an ``AssertionError`` ("Torch not
compiled with CUDA enabled") on a CPU-only build, a ``RuntimeError`` for MPS or a missing
GPU. :func:`check_device` asks torch up front and raises
:class:`~crossrank.errors.DeviceUnavailableError`, which names the devices there are.

Example:
    >>> from crossrank.runtimes.devices import check_device
    >>> check_device("cpu")
    >>> check_device("cuda:1")  # on a machine with one GPU, or none
    Traceback (most recent call last):
    crossrank.errors.DeviceUnavailableError: device='cuda:1' is not available here: ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crossrank.errors import DeviceUnavailableError

if TYPE_CHECKING:
    import torch

__all__ = ["available_devices", "check_device", "resolve_device"]


def _mps(torch_module: Any) -> Any:
    return getattr(torch_module.backends, "mps", None)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Pick CUDA, then MPS, then CPU when ``device`` is None.

    Raises:
        ValueError: ``device`` is not a device name torch understands.
    """
    import torch

    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = _mps(torch)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"device must be like 'cpu', 'cuda', 'cuda:1' or 'mps', got {device!r}"
        ) from e


def available_devices() -> list[str]:
    """The devices crossrank can run on here: ``"cpu"``, then ``"cuda:0"`` ..., then ``"mps"``."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = _mps(torch)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(device: str | torch.device | None) -> None:
    """Raise unless ``device`` is None (pick the best one here) or exists on this machine.

    CPU, CUDA (with its index, ``"cuda:1"``) and MPS are checked; other device types torch
    knows are left to torch.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``, or None.

    Raises:
        DeviceUnavailableError: This machine has no such device (no CUDA in this PyTorch
            build or no GPU visible, fewer GPUs than the index, no MPS). The message names
            the devices there are and what to pass instead.
        ValueError: ``device`` is not a device name torch understands.
    """
    if device is None:
        return
    parsed = resolve_device(device)  # ValueError for a malformed name
    if parsed.type == "cpu":
        return
    import torch

    name = device if isinstance(device, str) else str(parsed)
    here = ", ".join(repr(d) for d in available_devices())
    hint = (
        f"Pass one of the devices this machine has ({here}), or leave device unset to "
        "take the best one there is (CUDA, then MPS, then the CPU)."
    )
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                reason = f"this PyTorch build ({torch.__version__}) has no CUDA support"
            else:
                reason = "no CUDA GPU is visible (torch.cuda.is_available() is False)"
            raise DeviceUnavailableError(name, reason, hint)
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise DeviceUnavailableError(
                name, f"this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}", hint
            )
    elif parsed.type == "mps":
        mps = _mps(torch)
        if mps is None or not mps.is_available():
            built = mps is not None and mps.is_built()
            reason = (
                "MPS (the Apple GPU) is not available on this machine"
                if built
                else f"this PyTorch build ({torch.__version__}) has no MPS support"
            )
            raise DeviceUnavailableError(name, reason, hint)
