"""``Ensemble``: several scorers' scores, normalized per query, in one weighted mean.

Each member scores every candidate (members run at once: local ones in threads, remote ones
as concurrent requests with :meth:`Ensemble.arerank`); each member's scores are put on one
scale over the query's candidates; the ensemble's score is their weighted mean:

================= ======================================================================
``"zscore"``      ``(s - mean) / std`` per member (a member whose scores are all equal
                  gives 0); ensemble scores are centred on 0 (``activation`` ``"raw"``)
``"rank"``        ``(n - rank) / (n - 1)`` per member, best 1, worst 0, ties sharing the
                  better rank (a Borda count); scores in [0, 1]
``"probability"`` each member's probability of relevance as it is (``sigmoid`` or
                  ``calibrated``; a ``raw`` member is asked for its sigmoid); scores in
                  [0, 1]
================= ======================================================================

A candidate one member left unscored (a deadline) has no ensemble score: it is returned
below the scored ones, in first-stage order. The result reports each member's score of
every scored candidate (:attr:`EnsembleReranked.member_scores`).

Example:
    >>> from crossrank import CrossEncoderScorer
    >>> from crossrank.compose import Ensemble
    >>> ensemble = Ensemble([CrossEncoderScorer("model-a"), CrossEncoderScorer("model-b")])
    >>> out = ensemble.rerank("capital of France", ["Berlin.", "Paris."], top_k=1)
    >>> out.hits[0].index, out.member_scores[1]
    (1, (0.98..., 0.95...))
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, ClassVar, Literal

import numpy as np

from crossrank.compose.base import Composite, check_scorer
from crossrank.compose.members import MemberCall, name_of, plan_call
from crossrank.fusion import normalize, reciprocal_ranks
from crossrank.rerank_call import CallOptions, finish, token_counter
from crossrank.results import Reranked, add_usage
from crossrank.selection import Hit
from crossrank.validation import check_deadline_ms

__all__ = [
    "ENSEMBLE_NORMALIZATIONS",
    "Ensemble",
    "EnsembleNormalization",
    "EnsembleReranked",
    "rank_scale",
]

EnsembleNormalization = Literal["zscore", "rank", "probability"]
#: How an :class:`Ensemble` puts its members' scores on one scale.
ENSEMBLE_NORMALIZATIONS: tuple[str, ...] = ("zscore", "rank", "probability")
_PROBABILITIES = ("sigmoid", "calibrated")


@dataclass(frozen=True, slots=True)
class EnsembleReranked(Reranked):
    """What :meth:`Ensemble.rerank` returns.

    Attributes:
        members: Each member's ``model_name``, in the ensemble's order.
        member_scores: For each scored candidate (by index): each member's own score, in
            the members' order and each member's activation.
    """

    members: tuple[str, ...] = ()
    member_scores: dict[int, tuple[float, ...]] = field(default_factory=dict)


def _check_weights(weights: Any, count: int) -> tuple[float, ...]:
    if weights is None:
        return tuple(1.0 / count for _ in range(count))
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise TypeError(f"weights must be a list of numbers or None, got {type(weights).__name__}")
    if len(weights) != count:
        raise ValueError(f"weights must hold one weight per scorer ({count}), got {len(weights)}")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, Real) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weights must be finite numbers >= 0, got {list(weights)}")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"weights must not all be 0, got {list(weights)}")
    return tuple(float(w) / total for w in weights)


def rank_scale(scores: Sequence[float]) -> np.ndarray:
    """Scores as ``(n - rank) / (n - 1)``: best 1, worst 0, ties sharing the better rank
    (one candidate: 1)."""
    n = len(scores)
    if n == 1:
        return np.ones(1)
    ranks = 1.0 / reciprocal_ranks(scores, k=1) - 1.0  # 1 = best; non-finite scores: NaN
    return (n - ranks) / (n - 1)


class Ensemble(Composite):
    """Several scorers' scores, normalized per query, averaged with weights.

    Args:
        scorers: Two or more scorers (local, remote or composite), each without fusion.
        weights: One weight >= 0 per scorer (None: equal); normalized to sum to 1.
            ``crossrank eval --ensemble`` picks them by cross-validation.
        normalization: ``"zscore"`` (default), ``"rank"`` or ``"probability"`` (see the
            module docstring).
        deadline_ms: Default time budget of each call, passed on to every member.

    The members' own selection settings do not apply (the ensemble selects); passages come
    from the first member that reports one; ``token_budget`` counts with the first member
    that has a tokenizer.
    """

    config_type: ClassVar[str] = "ensemble"
    _member_settings: ClassVar[tuple[str, ...]] = ("scorers",)

    def __init__(
        self,
        scorers: Sequence[Any],
        *,
        weights: Sequence[float] | None = None,
        normalization: EnsembleNormalization = "zscore",
        deadline_ms: float | None = None,
    ) -> None:
        if isinstance(scorers, (str, bytes)) or not isinstance(scorers, Sequence):
            raise TypeError(f"scorers must be a list of scorers, got {type(scorers).__name__}")
        if len(scorers) < 2:
            raise ValueError(f"an Ensemble needs at least 2 scorers, got {len(scorers)}")
        self.members = tuple(check_scorer(s, f"scorers[{i}]") for i, s in enumerate(scorers))
        self.weights = _check_weights(weights, len(self.members))
        if normalization not in ENSEMBLE_NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {ENSEMBLE_NORMALIZATIONS}, got {normalization!r}"
            )
        self.normalization: EnsembleNormalization = normalization
        self.deadline_ms = check_deadline_ms(deadline_ms)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        return {
            "scorers": list(self.members),
            "weights": list(self.weights),
            "normalization": self.normalization,
            "deadline_ms": self.deadline_ms,
        }

    @property
    def model_name(self) -> str:
        """``ensemble(A+B)``."""
        return "ensemble(" + "+".join(name_of(m) for m in self.members) + ")"

    @property
    def activation(self) -> str:
        """``"raw"`` with ``"zscore"`` (scores centred on 0), else ``"sigmoid"`` (in [0, 1])."""
        return "raw" if self.normalization == "zscore" else "sigmoid"

    # ------------------------------------------------------------------ scoring

    def _prepare(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> tuple[CallOptions, list[MemberCall]]:
        activation = options.pop("activation")
        if activation not in (None, self.activation):
            raise ValueError(
                f"an Ensemble's scores are its normalization's ({self.normalization!r}: "
                f"activation {self.activation!r}); activation={activation!r} cannot be asked "
                "for one call"
            )
        call = CallOptions.checked(query, texts, scale=self.activation, **options)
        kwargs = call.member_kwargs(call.scorable)
        member_texts = call.texts_of(call.scorable)
        calls = [
            plan_call(member, call.query, member_texts, kwargs | self._scale_of(member), at)
            for member in self.members
        ]
        return call, calls

    def _scale_of(self, member: Any) -> dict[str, Any]:
        """The activation a member is asked for: its own, but probabilities for
        ``"probability"``."""
        if self.normalization == "probability" and member.activation not in _PROBABILITIES:
            return {"activation": "sigmoid"}
        return {}

    def _rerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> Reranked:
        call, calls = self._prepare(query, texts, options, at)
        if not call.scorable:
            return self._combine(call, [])
        outs = list(self._threads().map(MemberCall.run, calls))
        return self._combine(call, outs)

    async def _arerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> Reranked:
        call, calls = await asyncio.to_thread(self._prepare, query, texts, options, at)
        if not call.scorable:
            return self._combine(call, [])
        outs = await asyncio.gather(*(c.arun() for c in calls))
        return self._combine(call, list(outs))

    def _threads(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=len(self.members), thread_name_prefix="crossrank-ensemble"
                )
            return self._pool

    def _combine(self, call: CallOptions, outs: list[Reranked]) -> Reranked:
        """The members' results as one: the candidates every member scored get the
        weighted mean of the normalized scores; the rest are unscored."""
        names = tuple(name_of(m) for m in self.members)
        scorable = call.scorable
        by_member = [{scorable[h.index]: h for h in out.hits} for out in outs]
        both = [i for i in scorable if outs and all(i in hits for hits in by_member)]
        unscored = [i for i in scorable if i not in set(both)]
        member_scores = {i: tuple(hits[i].score for hits in by_member) for i in both}
        scored: list[Hit] = []
        if both:
            matrix = np.array([member_scores[i] for i in both], dtype=np.float64)
            combined = np.zeros(len(both))
            for m, weight in enumerate(self.weights):
                combined += weight * self._normalized(matrix[:, m])
            for row, i in enumerate(both):
                hits = [member[i] for member in by_member]
                passage = next((h.passage for h in hits if h.passage is not None), None)
                span = next((h.span for h in hits if h.span is not None), None)
                truncated = any(h.truncated for h in hits)
                scored.append(Hit(i, float(combined[row]), truncated, span, passage))
        late = any(out.deadline_unscored for out in outs)
        return finish(
            call,
            scored,
            unscored,
            pairs=sum(out.pairs for out in outs),
            counter=token_counter(call, *self.members),
            deadline_unscored=len(unscored) if late else 0,
            usage=add_usage(*(out.usage for out in outs)),
            result=EnsembleReranked,
            members=names,
            member_scores=member_scores,
        )

    def _normalized(self, scores: np.ndarray) -> np.ndarray:
        if self.normalization == "zscore":
            return normalize(scores, "zscore")
        if self.normalization == "rank":
            return rank_scale(list(scores))
        return scores

