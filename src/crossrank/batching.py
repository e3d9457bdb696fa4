"""Plan forward passes: sort by length to cut padding, cap pairs and padded tokens; pad
each batch's token rows into arrays."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["pad_batch", "plan_batches", "run_batches", "run_pass"]


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: int | None = None,
    *,
    min_batches: int = 1,
) -> list[list[int]]:
    """Group row indices into batches, longest rows first.

    A batch holds at most ``batch_size`` rows and, when ``max_tokens`` is set, at most
    ``max_tokens`` padded tokens (rows x longest row); a single row longer than the budget
    gets a batch of its own. Sorting longest first puts the peak memory in the first
    batch, so an out-of-memory error shows up at once rather than late in a long run.

    ``min_batches``: for a backend that runs this many batches at once (OpenVINO's
    streams), the number of batches is made a multiple of it, with equal rows per batch
    (100 rows, ``batch_size=32``, 2 streams: four batches of 25, not 32+32+32+4), so that
    no stream waits idle for another's last batch.
    """
    if min_batches > 1 and len(lengths) >= 2:
        n = math.ceil(len(lengths) / batch_size)
        n = math.ceil(n / min_batches) * min_batches
        batch_size = max(1, math.ceil(len(lengths) / n))
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        new_width = max(width, lengths[i])
        full = len(current) >= batch_size or (
            max_tokens is not None and new_width * (len(current) + 1) > max_tokens
        )
        if current and full:
            batches.append(current)
            current, new_width = [], lengths[i]
        current.append(i)
        width = new_width
    if current:
        batches.append(current)
    return batches


def pad_batch(
    features: Mapping[str, Sequence[Sequence[int]]], pad_token_id: int, *, left: bool = False
) -> dict[str, np.ndarray]:
    """Pad one batch's token rows to the longest row, as int64 arrays.

    Args:
        features: Rows per model input (``input_ids``, ``attention_mask``,
            ``token_type_ids``...), all with the same number of rows and the same length
            per row.
        pad_token_id: Fills ``input_ids``; every other input is filled with 0.
        left: Pad on the left (tokenizers with ``padding_side="left"``), else on the right.

    Returns:
        One ``(rows, longest row)`` array per input.
    """
    n = len(features["input_ids"])
    width = max(len(r) for r in features["input_ids"])
    out: dict[str, np.ndarray] = {}
    for key, rows in features.items():
        fill = pad_token_id if key == "input_ids" else 0
        arr = np.full((n, width), fill, dtype=np.int64)
        for i, r in enumerate(rows):
            if left:
                arr[i, width - len(r) :] = r
            else:
                arr[i, : len(r)] = r
        out[key] = arr
    return out


def run_batches(
    forward: Callable[[dict[str, np.ndarray]], np.ndarray],
    batches: Sequence[list[int]],
    make_arrays: Callable[[list[int]], dict[str, np.ndarray]],
    *,
    forward_many: Callable[[list[dict[str, np.ndarray]]], list[np.ndarray]] | None = None,
) -> list[np.ndarray]:
    """Pad and run each batch: one after another with ``forward``, or all at once with
    ``forward_many`` (a backend that runs several batches together, such as OpenVINO's
    streams: :class:`crossrank.runtimes.openvino.StreamForward`). Results in batch order."""
    if forward_many is None or len(batches) < 2:
        return [np.asarray(forward(make_arrays(b))) for b in batches]
    return [np.asarray(out) for out in forward_many([make_arrays(b) for b in batches])]


def run_pass(loaded: Any, feats: Mapping[str, Sequence[Sequence[int]]]) -> tuple[np.ndarray, int]:
    """One forward pass over ``feats``' rows (unpadded, per model input) of a
    :class:`crossrank.loading.LoadedModel`: split into as many equal batches as the backend
    runs at once (``loaded.parallel``, OpenVINO's streams) and run together.

    Returns:
        One raw relevance per row, in order, and the padded tokens of the pass.

    Raises:
        RuntimeError: The backend returned another number of scores than rows.
    """
    keys = list(feats)
    n_rows = len(feats["input_ids"])
    parts = plan_batches(
        [len(r) for r in feats["input_ids"]], max(1, n_rows), min_batches=loaded.parallel
    )
    padded: list[int] = []

    def arrays_of(part: list[int]) -> dict[str, np.ndarray]:
        arrays = pad_batch(
            {k: [feats[k][i] for i in part] for k in keys},
            loaded.pad_token_id,
            left=loaded.padding_side == "left",
        )
        padded.append(int(arrays["input_ids"].size))
        return arrays

    outs = run_batches(loaded.forward, parts, arrays_of, forward_many=loaded.forward_many)
    raw = np.empty(n_rows, dtype=np.float64)
    for part, out in zip(parts, outs, strict=True):
        got = np.asarray(out, dtype=np.float64).reshape(-1)
        if got.shape[0] != len(part):
            raise RuntimeError(
                f"the forward pass returned {got.shape[0]} scores for {len(part)} rows"
            )
        raw[part] = got
    return raw, sum(padded)
