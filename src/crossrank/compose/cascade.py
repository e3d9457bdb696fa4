"""``Cascade``: a cheap scorer orders every candidate, an expensive one rescores its top.

The cheap scorer (a bi-encoder, a small cross-encoder) scores all candidates; the
expensive one scores only the cheap order's first ``keep``. The result is the rescored
candidates, ranked and selected by the expensive scores, then every other candidate below
them, in the cheap order, in :attr:`crossrank.Reranked.unscored` (they have no expensive
score). ``top_k`` and ``token_budget`` count both; a score cut applies to the rescored ones.

With a deadline, both stages share it: the cheap stage's leftovers follow in first-stage
order, and the top candidates the expensive stage had no time for keep their cheap order.

Example:
    >>> from crossrank import CrossEncoderScorer
    >>> from crossrank.compose import BiEncoderScorer, Cascade
    >>> cascade = Cascade(BiEncoderScorer("sentence-transformers/all-MiniLM-L6-v2"),
    ...                   CrossEncoderScorer(), keep=20)
    >>> out = cascade.rerank(query, fifty_texts, top_k=10)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from crossrank.compose.base import Composite, check_scorer
from crossrank.compose.members import MemberCall, name_of, plan_call
from crossrank.rerank_call import CallOptions, finish, token_counter
from crossrank.results import Reranked, add_usage
from crossrank.selection import Hit
from crossrank.validation import check_deadline_ms, check_positive_int

__all__ = ["Cascade"]


class Cascade(Composite):
    """Rescore the cheap scorer's top ``keep`` with the expensive scorer.

    Args:
        cheap: Orders every candidate (its own selection settings do not apply).
        expensive: Rescores the cheap order's first ``keep``.
        keep: How many candidates the expensive scorer reads per query.
        deadline_ms: Default time budget of each call, shared by both stages.
    """

    config_type: ClassVar[str] = "cascade"
    _member_settings: ClassVar[tuple[str, ...]] = ("cheap", "expensive")

    def __init__(
        self, cheap: Any, expensive: Any, *, keep: int = 20, deadline_ms: float | None = None
    ) -> None:
        self.cheap = check_scorer(cheap, "cheap")
        self.expensive = check_scorer(expensive, "expensive")
        self.members = (self.cheap, self.expensive)
        self.keep: int = check_positive_int(keep, name="keep")  # type: ignore[assignment]
        self.deadline_ms = check_deadline_ms(deadline_ms)

    def settings(self) -> dict[str, Any]:
        return {
            "cheap": self.cheap,
            "expensive": self.expensive,
            "keep": self.keep,
            "deadline_ms": self.deadline_ms,
        }

    @property
    def model_name(self) -> str:
        """``cascade(CHEAP > EXPENSIVE@KEEP)``."""
        return f"cascade({name_of(self.cheap)} > {name_of(self.expensive)}@{self.keep})"

    @property
    def activation(self) -> str:
        """The expensive scorer's."""
        return str(self.expensive.activation)

    # ------------------------------------------------------------------ scoring

    def _cheap_call(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> tuple[CallOptions, MemberCall]:
        activation = options.get("activation")
        scale = activation if activation is not None else self.expensive.activation
        call = CallOptions.checked(query, texts, scale=scale, **options)
        cheap = plan_call(
            self.cheap, call.query, call.texts_of(call.scorable), dict(call.passed_on), at
        )
        return call, cheap

    def _top(self, call: CallOptions, cheap: Reranked) -> tuple[list[int], list[int], set[int]]:
        """The cheap order (scored, then the cheap stage's unscored in first-stage order),
        split into the top ``keep`` and the rest; and the candidates the cheap stage's
        deadline left unscored."""
        scorable = call.scorable
        scored = [scorable[h.index] for h in cheap.hits]
        seen = set(scored)
        late = [i for i in scorable if i not in seen]  # never lose one the stage left out
        order = scored + late
        timed_out = set(late) if cheap.deadline_unscored else set()
        return order[: self.keep], order[self.keep :], timed_out

    def _expensive_call(self, call: CallOptions, top: list[int], at: float | None) -> MemberCall:
        return plan_call(
            self.expensive, call.query, call.texts_of(top), call.member_kwargs(top), at
        )

    def _combine(
        self,
        call: CallOptions,
        top: list[int],
        rest: list[int],
        late: set[int],
        cheap: Reranked,
        expensive: Reranked | None,
    ) -> Reranked:
        scored = [] if expensive is None else [_moved(h, top[h.index]) for h in expensive.hits]
        rescored = {h.index for h in scored}
        unscored = [i for i in top if i not in rescored] + rest
        if expensive is not None and expensive.deadline_unscored:
            late |= {i for i in top if i not in rescored}
        pairs = cheap.pairs + (0 if expensive is None else expensive.pairs)
        return finish(
            call,
            scored,
            unscored,
            pairs=pairs,
            counter=token_counter(call, self.expensive, self.cheap),
            deadline_unscored=len(late),
            usage=add_usage(cheap.usage, {} if expensive is None else expensive.usage),
        )

    def _rerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> Reranked:
        call, cheap_call = self._cheap_call(query, texts, options, at)
        if not call.scorable:
            return finish(call, [], [], pairs=0)
        cheap = cheap_call.run()
        top, rest, late = self._top(call, cheap)
        expensive = self._expensive_call(call, top, at).run() if top else None
        return self._combine(call, top, rest, late, cheap, expensive)

    async def _arerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> Reranked:
        call, cheap_call = await asyncio.to_thread(self._cheap_call, query, texts, options, at)
        if not call.scorable:
            return finish(call, [], [], pairs=0)
        cheap = await cheap_call.arun()
        top, rest, late = self._top(call, cheap)
        expensive = await self._expensive_call(call, top, at).arun() if top else None
        return self._combine(call, top, rest, late, cheap, expensive)


def _moved(hit: Hit, index: int) -> Hit:
    """``hit`` with its index in the whole call."""
    return Hit(index, hit.score, hit.truncated, hit.span, hit.passage, hit.model_score)
