"""Long documents in ``chunk`` mode: how window scores become one document score.

A document longer than the model reads is split into overlapping token windows that each
fit ``max_length`` beside the query; each window is scored on its own, and the rules here
turn the window scores (raw logits, before the activation) into the document's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = ["AGGREGATIONS", "Aggregation", "aggregate"]

Aggregation = Literal["max", "mean-top", "first-weighted"]

#: The aggregation rules, for validation and docs.
AGGREGATIONS: tuple[str, ...] = ("max", "mean-top", "first-weighted")


def aggregate(
    scores: Sequence[float],
    rule: str = "max",
    *,
    top_windows: int = 2,
    first_weight: float = 0.5,
) -> tuple[float, int]:
    """Aggregate one document's window scores; return the score and the best window's index.

    Rules:
        - ``max`` (default): the best window's score. A document is as relevant as its most
          relevant passage.
        - ``mean-top``: the mean of the ``top_windows`` best windows (all of them when
          there are fewer), which rewards documents with several relevant passages.
        - ``first-weighted``: ``first_weight * first + (1 - first_weight) * max``; the
          opening window (title, abstract) counts extra, as it often summarizes the rest.

    The best window (for the passage hand-off) is always the highest-scoring one; ties go
    to the earlier window.

    Raises:
        ValueError: No scores, an unknown rule, ``top_windows < 1`` or ``first_weight``
            outside [0, 1].
    """
    if not scores:
        raise ValueError("aggregate needs at least one window score, got none")
    if top_windows < 1:
        raise ValueError(f"top_windows must be >= 1, got {top_windows}")
    if not 0.0 <= first_weight <= 1.0:
        raise ValueError(f"first_weight must be in [0, 1], got {first_weight}")
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    if rule == "max":
        return float(scores[best]), best
    if rule == "mean-top":
        top = sorted(scores, reverse=True)[:top_windows]
        return float(sum(top) / len(top)), best
    if rule == "first-weighted":
        return float(first_weight * scores[0] + (1.0 - first_weight) * scores[best]), best
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {rule!r}")
