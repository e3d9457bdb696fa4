"""What scoring returns: :class:`ScoreDetails` (one score per text) and :class:`Reranked`
(the kept candidates of a ``rerank`` call).

Every scorer returns these types: :class:`crossrank.CrossEncoderScorer`,
:class:`crossrank.RemoteScorer` and the composites of :mod:`crossrank.compose`. They live
below all of them, so the code that builds results (the deadline loop, for one) needs no
scorer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crossrank.selection import Hit

__all__ = ["Reranked", "ScoreDetails", "add_usage"]


@dataclass(frozen=True, slots=True)
class ScoreDetails:
    """Scores plus what happened on the way.

    Attributes:
        scores: One Python float per text, in input order.
        truncated: For each text, whether part of it was not read: in ``truncate`` mode,
            it was longer than ``max_length`` and its end was cut; in ``chunk`` mode, it
            had more windows than ``max_windows``.
        pairs: Number of (query, window) pairs the model scored (one per text in
            ``truncate`` mode).
        spans: For each text, the ``(start, end)`` character span the score comes from:
            the part read in ``truncate`` mode, the best window in ``chunk`` mode (None
            for a text with no tokens).
        windows: For each text, how many windows were scored (1 in ``truncate`` mode).
        usage: What the call cost at a hosted provider, by unit, as it reports it
            (``search_units``, ``total_tokens``, ``rerank_units``...) plus ``requests``, the
            HTTP requests sent (:class:`crossrank.RemoteScorer`); None for a local scorer.
    """

    scores: list[float]
    truncated: list[bool]
    pairs: int
    spans: list[tuple[int, int] | None] | None = None
    windows: list[int] | None = None
    usage: dict[str, float] | None = None

    @property
    def num_truncated(self) -> int:
        """How many texts were truncated."""
        return sum(self.truncated)


@dataclass(frozen=True, slots=True)
class Reranked:
    """What :meth:`CrossEncoderScorer.rerank` returns.

    The candidates returned, in order, are ``hits`` (scored, best first) then ``unscored``
    (no score: below every hit, in the order they came in).

    Attributes:
        hits: The kept candidates that were scored, best first.
        skipped: Indices of candidates with no text (None, empty or whitespace), which were
            not scored and are not returned.
        pairs: Number of (query, text) pairs the model scored.
        usage: What the call cost at a hosted provider (see :attr:`ScoreDetails.usage`),
            summed over its requests and a composite's members; None for a local scorer.
        unscored: Indices of kept candidates returned without a score, below the hits: those
            a deadline left unscored (in first-stage order, see ``deadline_ms``), and a
            :class:`crossrank.compose.Cascade`'s candidates below its rescored top (in the
            cheap scorer's order). Empty without either.
        deadline_unscored: How many candidates with text the deadline left unscored, kept
            or cut by the selection (``top_k``, ``token_budget``). 0 without a deadline, or
            when it was met.
        truncated: How many scored candidates were not read in full (cut at ``max_length``,
            or past ``max_windows`` windows), kept or not (a local scorer's count).
    """

    hits: list[Hit]
    skipped: list[int]
    pairs: int
    usage: dict[str, float] | None = None
    unscored: list[int] = field(default_factory=list)
    deadline_unscored: int = 0
    truncated: int = 0


def add_usage(*usages: Mapping[str, float] | None) -> dict[str, float] | None:
    """Usage records summed unit by unit (what several requests or members cost); None
    when none was given (local scorers only)."""
    given = [usage for usage in usages if usage is not None]
    if not given:
        return None
    total: dict[str, float] = {}
    for usage in given:
        for unit, amount in usage.items():
            total[unit] = total.get(unit, 0.0) + float(amount)
    return total
