"""Plan forward passes: sort by length to cut padding, cap pairs and padded tokens, and pad
each row to a width that depends on its own length alone, so that its score does not
depend on what else shares its batch.

Why the width matters: a backend's kernels are chosen and blocked by the shape they run
on, so the same row padded to 120 or to 240 tokens is summed in another order, and gets
another rounding of its float results. In fp32 that moves a raw logit by about 1e-6; in an
int8 model every such difference can flip an activation's rounding to the next int8 step,
which moved raw logits by up to 0.0023 on an AVX512-VNNI Xeon (docs/backends.md). So a row
of ``n`` tokens is always padded to :func:`padded_width` ``(n)`` (``n`` rounded up to a
step of 16 tokens, or 1/32 of the next power of two for rows over 512 tokens), and
:func:`plan_batches` puts only rows of the same width in a batch: whatever its neighbours,
a row runs at the same width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "WIDTH_STEP",
    "pad_batch",
    "pad_rows",
    "padded_width",
    "plan_batches",
    "run_batches",
    "run_pass",
]

#: The smallest step between padded widths, in tokens.
WIDTH_STEP = 16


def padded_width(length: int, cap: int | None = None) -> int:
    """The width a row of ``length`` tokens is padded to, whatever shares its batch.

    ``length`` rounded up to a multiple of :data:`WIDTH_STEP` (16) tokens, or of 1/32 of the
    next power of two above 512 tokens (32 up to 1024, 64 up to 2048...), so padding adds
    at most 15 tokens up to 512, and at most 6.25% of a longer row; never more than
    ``cap`` (the model's ``max_length``, which no row exceeds).

    Example:
        >>> [padded_width(n) for n in (1, 16, 17, 250, 257, 500, 513)]
        [16, 16, 32, 256, 272, 512, 544]
    """
    if length <= 0:
        return 0
    step = max(WIDTH_STEP, (1 << (length - 1).bit_length()) // 32)
    width = -(-length // step) * step
    return width if cap is None else min(width, max(cap, length))


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: int | None = None,
    *,
    min_batches: int = 1,
    cap: int | None = None,
) -> list[list[int]]:
    """Group row indices into batches, longest rows first, one padded width per batch.

    A batch holds rows of one :func:`padded_width` (``cap``: the model's ``max_length``),
    at most ``batch_size`` of them and, when ``max_tokens`` is set, at most ``max_tokens``
    padded tokens (rows x width); a single row wider than the budget gets a batch of its
    own. Sorting longest first puts the peak memory in the first batch, so an out-of-memory
    error shows up at once rather than late in a long run.

    ``min_batches``: for a backend that runs this many batches at once (OpenVINO's
    streams), the rows of each width are split into a multiple of it, with equal rows per
    batch (100 rows, ``batch_size=32``, 2 streams: four batches of 25, not 32+32+32+4), so
    that no stream waits idle for another's last batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    for i in order:
        width = padded_width(lengths[i], cap)
        if groups and padded_width(lengths[groups[-1][0]], cap) == width:
            groups[-1].append(i)
        else:
            groups.append([i])
    batches: list[list[int]] = []
    for group in groups:
        width = padded_width(lengths[group[0]], cap)
        size = batch_size
        if max_tokens is not None:
            size = max(1, min(size, max_tokens // max(width, 1)))
        n = math.ceil(len(group) / size)
        if min_batches > 1 and len(group) >= 2:
            n = math.ceil(n / min_batches) * min_batches
            size = max(1, math.ceil(len(group) / n))
        batches.extend(group[start : start + size] for start in range(0, len(group), size))
    return batches


def pad_batch(
    features: Mapping[str, Sequence[Sequence[int]]],
    pad_token_id: int,
    *,
    left: bool = False,
    width: int | None = None,
) -> dict[str, np.ndarray]:
    """Pad one batch's token rows to ``width`` (default: the longest row), as int64 arrays.

    Args:
        features: Rows per model input (``input_ids``, ``attention_mask``,
            ``token_type_ids``...), all with the same number of rows and the same length
            per row.
        pad_token_id: Fills ``input_ids``; every other input is filled with 0.
        left: Pad on the left (tokenizers with ``padding_side="left"``), else on the right.
        width: The padded width; at least the longest row.

    Returns:
        One ``(rows, width)`` array per input.
    """
    n = len(features["input_ids"])
    longest = max(len(r) for r in features["input_ids"])
    width = longest if width is None else max(width, longest)
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


def pad_rows(
    features: Mapping[str, Sequence[Sequence[int]]],
    rows: Sequence[int],
    *,
    pad_token_id: int,
    left: bool = False,
    cap: int | None = None,
) -> dict[str, np.ndarray]:
    """``rows`` of ``features`` as one batch, padded to the :func:`padded_width` of its
    longest row (``cap``: the model's ``max_length``): the arrays a planned batch
    (:func:`plan_batches`) is run on."""
    picked = {k: [values[i] for i in rows] for k, values in features.items()}
    longest = max(len(r) for r in picked["input_ids"])
    return pad_batch(picked, pad_token_id, left=left, width=padded_width(longest, cap))


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


def run_pass(
    loaded: Any,
    feats: Mapping[str, Sequence[Sequence[int]]],
    *,
    batch_size: int | None = None,
    max_tokens: int | None = None,
) -> tuple[np.ndarray, int]:
    """Run ``feats``' rows (unpadded, per model input) through a
    :class:`crossrank.loading.LoadedModel`, planned by :func:`plan_batches`: one batch per
    padded width (a caller that groups rows by :func:`padded_width`, as the server's
    batcher does, gets one), at most ``batch_size`` rows (default: all) and ``max_tokens``
    padded tokens each, split into as many equal batches as the backend runs at once
    (``loaded.parallel``, OpenVINO's streams).

    Returns:
        One raw relevance per row, in order, and the padded tokens computed.

    Raises:
        RuntimeError: The backend returned another number of scores than rows.
    """
    n_rows = len(feats["input_ids"])
    cap = loaded.max_length
    parts = plan_batches(
        [len(r) for r in feats["input_ids"]],
        max(1, n_rows) if batch_size is None else batch_size,
        max_tokens,
        min_batches=loaded.parallel,
        cap=cap,
    )
    padded: list[int] = []
    left = loaded.padding_side == "left"

    def arrays_of(part: list[int]) -> dict[str, np.ndarray]:
        arrays = pad_rows(feats, part, pad_token_id=loaded.pad_token_id, left=left, cap=cap)
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
