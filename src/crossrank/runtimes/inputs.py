"""What the runtimes feed a score net when they export, calibrate or probe it.

The runtimes never tokenize: a family's encoder (:class:`crossrank.families.PairEncoder` and
the others) turns pairs into rows, and :func:`padded` pads them as the scorer does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from crossrank.batching import pad_batch

__all__ = ["Inputs", "example_batch", "padded"]


class Inputs(Protocol):
    """A family's encoder, as the runtimes see it."""

    input_names: tuple[str, ...]
    max_length: int
    pad_token_id: int
    padding_side: str

    def rows(self, query: str, texts: Sequence[str]) -> dict[str, list[list[int]]]:
        """Each (query, text) pair's first row, unpadded."""
        ...


def padded(inputs: Inputs, query: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The pairs as one padded int64 batch, padded on the encoder's side."""
    return pad_batch(
        inputs.rows(query, texts), inputs.pad_token_id, left=inputs.padding_side == "left"
    )


def example_batch(inputs: Inputs) -> dict[str, np.ndarray]:
    """Two pairs of different lengths, so a traced graph includes the padding mask."""
    return padded(
        inputs,
        "a short query",
        ["a document", "a longer document with several more words in it than the first"],
    )
