"""How a composite calls one of its members: with what is left of the deadline.

A member that keeps deadlines itself (its ``rerank`` takes ``deadline_ms``: a
:class:`crossrank.CrossEncoderScorer` or a composite) is given the milliseconds left; any
other (a :class:`crossrank.RemoteScorer`, a :class:`crossrank.compose.BiEncoderScorer`) is
run through the deadline loop (:func:`crossrank.compose.rerank_within`). Both ways the
member's result may hold unscored candidates.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from crossrank.deadline import arerank_within, rerank_within, takes_deadline
from crossrank.results import Reranked

__all__ = ["MemberCall", "deadline_at", "leaves", "name_of", "plan_call", "remaining_ms"]

#: What is passed as the time left once a deadline is spent: the member then scores
#: nothing and returns its candidates unscored (a deadline must be > 0).
_SPENT_MS = 1e-6


def deadline_at(deadline_ms: float | None) -> float | None:
    """The ``time.monotonic()`` a deadline of ``deadline_ms`` from now ends at (None: none)."""
    if deadline_ms is None or deadline_ms == float("inf"):
        return None
    return time.monotonic() + deadline_ms / 1000.0


def remaining_ms(at: float) -> float:
    """Milliseconds left until ``at`` (a tiny positive number once it has passed)."""
    return max((at - time.monotonic()) * 1000.0, _SPENT_MS)


@dataclass(frozen=True)
class MemberCall:
    """One ``rerank`` of a member, ready to run in a thread or on the event loop.

    Attributes:
        member: The scorer.
        query: The query.
        texts: Its candidates.
        kwargs: Its keyword arguments (``deadline_ms`` included for a member that keeps
            deadlines itself).
        loop_ms: For a member that does not: the deadline the loop keeps (None: no loop).
    """

    member: Any
    query: str
    texts: Sequence[str | None]
    kwargs: dict[str, Any]
    loop_ms: float | None = None

    def run(self) -> Reranked:
        """Run it here (blocking)."""
        if self.loop_ms is not None:
            return rerank_within(
                self.member, self.query, self.texts, deadline_ms=self.loop_ms, **self.kwargs
            )
        return self.member.rerank(self.query, self.texts, **self.kwargs)  # type: ignore[no-any-return]

    async def arun(self) -> Reranked:
        """Run it without blocking the event loop."""
        if self.loop_ms is not None:
            return await arerank_within(
                self.member, self.query, self.texts, deadline_ms=self.loop_ms, **self.kwargs
            )
        return await self.member.arerank(self.query, self.texts, **self.kwargs)  # type: ignore[no-any-return]


def plan_call(
    member: Any,
    query: str,
    texts: Sequence[str | None],
    kwargs: dict[str, Any],
    at: float | None,
) -> MemberCall:
    """The call of ``member`` on ``texts`` with ``kwargs``, within the deadline ending at
    ``at`` (``time.monotonic()``; None: no deadline, the member's own settings apply)."""
    if at is None:
        return MemberCall(member, query, texts, kwargs)
    left = remaining_ms(at)
    if takes_deadline(member):
        return MemberCall(member, query, texts, {**kwargs, "deadline_ms": left})
    return MemberCall(member, query, texts, kwargs, loop_ms=left)


def leaves(scorer: Any) -> Iterator[Any]:
    """The scorers a (possibly nested) composite is made of, each once, depth first; a
    scorer that is not a composite is its own only leaf."""
    seen: set[int] = set()

    def walk(node: Any) -> Iterator[Any]:
        members = getattr(node, "members", None)
        if isinstance(members, tuple):
            for member in members:
                yield from walk(member)
        elif id(node) not in seen:
            seen.add(id(node))
            yield node

    yield from walk(scorer)


def name_of(scorer: Any) -> str:
    """``scorer.model_name``, or its ``repr`` when it cannot say (a remote scorer whose
    server is down; its ``repr`` never holds a key)."""
    try:
        return str(scorer.model_name)
    except Exception:
        return repr(scorer)
