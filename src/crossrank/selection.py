"""Ranking and selection: from scores to the hits that are kept.

This is the one selection function every adapter goes through, so a ``top_k`` or a
threshold means the same thing in Haystack, LangChain and LlamaIndex.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Hit", "select"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One kept candidate.

    Attributes:
        index: Position of the candidate in the list that was passed in.
        score: Its score, a Python ``float``.
        truncated: True when the candidate was longer than the model reads and was cut.
    """

    index: int
    score: float
    truncated: bool = False


def _order_key(scores: Sequence[float]):  # type: ignore[no-untyped-def]
    def key(i: int) -> tuple[bool, float, int]:
        s = scores[i]
        # Best first; NaN sorts after every number, -inf included; ties keep input order.
        nan = math.isnan(s)
        return (nan, 0.0 if nan else -s, i)

    return key


def select(
    scores: Sequence[float],
    *,
    top_k: int | None = None,
    score_threshold: float | None = None,
) -> list[int]:
    """Return the indices of the kept scores, best first.

    Order of application: sort by score (descending, ties in input order, NaN last),
    drop scores below ``score_threshold`` (NaN scores are dropped when a threshold is
    set), then keep the first ``top_k``.

    Arguments are assumed validated (see :mod:`crossrank.validation`).
    """
    order = sorted(range(len(scores)), key=_order_key(scores))
    if score_threshold is not None:
        order = [i for i in order if scores[i] >= score_threshold]
    if top_k is not None:
        order = order[:top_k]
    return order
