"""The PyTorch backends: the score net itself on a device, in fp32 (the reference, equal to
sentence-transformers), bf16 or fp16."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["DTYPES", "make_torch_forward"]

#: The torch backends that cast the net, and the dtype they cast it to.
DTYPES: dict[str, str] = {"torch-bf16": "bfloat16", "torch-fp16": "float16"}


def make_torch_forward(
    net: Any, device: torch.device, backend: str = "torch"
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any]:
    """The net on ``device`` (cast for ``torch-bf16``/``torch-fp16``) and its forward
    function: padded arrays in, one float64 relevance per row out."""
    import torch

    net = net.to(device).eval()
    dtype = DTYPES.get(backend)
    if dtype is not None:
        net = net.to(getattr(torch, dtype))
    names = tuple(net.input_names)

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        inputs = [torch.from_numpy(arrays[name]).to(device) for name in names]
        with torch.inference_mode():
            scores = net(*inputs).float()
        out: np.ndarray = scores.cpu().numpy().astype(np.float64).reshape(-1)
        return out

    return forward, net
