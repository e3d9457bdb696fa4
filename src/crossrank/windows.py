"""Windows: which tokenized rows each text is read from, and how window scores become one
document score.

The tokenizer returns one row per window of each (query, text) pair (``truncate`` mode
reads the first, ``chunk`` mode the first ``max_windows``). A document longer than the
model reads is split into overlapping token windows that each fit ``max_length`` beside the
query; each window is scored on its own, and the rules here turn the window scores (raw
logits, before the activation) into the document's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "WindowRows",
    "aggregate",
    "pick_rows",
    "resolve_stride",
]

Aggregation = Literal["max", "mean-top", "first-weighted"]

#: The aggregation rules, for validation and docs.
AGGREGATIONS: tuple[str, ...] = ("max", "mean-top", "first-weighted")


@dataclass(frozen=True, slots=True)
class WindowRows:
    """Which tokenized rows each text is scored from.

    Attributes:
        rows: For each text, the indices of its rows that are scored, in document order.
        available: For each text, how many rows (windows) the tokenizer produced.
    """

    rows: list[list[int]]
    available: list[int]

    @property
    def chosen(self) -> list[int]:
        """Every scored row, text by text."""
        return [row for rows in self.rows for row in rows]

    @property
    def truncated(self) -> list[bool]:
        """For each text, whether some of its windows are not scored."""
        return [have > len(rows) for rows, have in zip(self.rows, self.available, strict=True)]

    @property
    def windows(self) -> list[int]:
        """For each text, how many windows are scored."""
        return [len(rows) for rows in self.rows]


def pick_rows(sample_of_row: Sequence[int], n_texts: int, per_text: int) -> WindowRows:
    """Choose each text's first ``per_text`` rows.

    Args:
        sample_of_row: For each tokenized row, the text it belongs to (the tokenizer's
            ``overflow_to_sample_mapping``); a text's rows are in document order.
        n_texts: How many texts were tokenized.
        per_text: Most rows scored per text: 1 in ``truncate`` mode, ``max_windows`` in
            ``chunk`` mode.

    Raises:
        ValueError: ``per_text < 1``, or a row names a text outside ``range(n_texts)``.
    """
    if per_text < 1:
        raise ValueError(f"per_text must be >= 1, got {per_text}")
    rows: list[list[int]] = [[] for _ in range(n_texts)]
    available = [0] * n_texts
    for row, sample in enumerate(sample_of_row):
        if not 0 <= sample < n_texts:
            raise ValueError(
                f"row {row} belongs to text {sample}, but there are {n_texts} texts"
            )
        available[sample] += 1
        if len(rows[sample]) < per_text:
            rows[sample].append(row)
    return WindowRows(rows=rows, available=available)


def resolve_stride(room: int, setting: int | None) -> int:
    """Tokens shared by consecutive windows.

    Args:
        room: Tokens a window has for the document beside the query and special tokens.
        setting: The ``window_stride`` asked for; None: a quarter of ``room``.

    Returns:
        The stride, kept below ``room`` so each window moves forward by at least one token.
    """
    room = max(1, room)
    stride = setting if setting is not None else room // 4
    return max(0, min(stride, room - 1))


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
