"""Plan forward passes: sort by length to cut padding, cap pairs and padded tokens."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plan_batches"]


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int | None = None
) -> list[list[int]]:
    """Group row indices into batches, longest rows first.

    A batch holds at most ``batch_size`` rows and, when ``max_tokens`` is set, at most
    ``max_tokens`` padded tokens (rows x longest row); a single row longer than the budget
    gets a batch of its own. Sorting longest first puts the peak memory in the first
    batch, so an out-of-memory error shows up at once rather than late in a long run.
    """
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
