"""A deadline on any scorer: score in first-stage order, batch by batch, until the time is
spent.

:func:`rerank_within` (and :func:`arerank_within`) is ``rerank`` with a time budget, through
the scorer's public ``rerank``:

1. The clock starts when the call does; loading the model (``warm_up``) counts.
2. The candidates with text are scored in the order they came in (the first stage's), one
   batch at a time (:func:`deadline_batch`: one forward pass of a
   :class:`crossrank.CrossEncoderScorer`).
3. A batch starts only while time is left, and holds only as many candidates as the pace
   known so far says will end in time: the slowest batch of this call (seconds per
   candidate), else the scorer's last batch in an earlier call (remembered per scorer). A
   later batch that cannot hold one candidate is not started; the first holds at least one.
   So a call ends at most one batch past the deadline, and usually before it; and once a
   scorer's pace is known, a deadline shorter than a full forward pass scores a smaller
   batch instead of overrunning by a whole pass.
4. The scored candidates are ranked and selected as ``rerank`` does (with fusion, over the
   scored ones); the unscored ones follow in first-stage order, in
   :attr:`crossrank.Reranked.unscored`, counted in
   :attr:`crossrank.Reranked.deadline_unscored`. A score cut (``score_threshold``,
   ``min_relative_score``) cannot judge them, so it keeps them; ``top_k`` and
   ``token_budget`` count them.
5. A deadline spent before any batch could start (a model still loading, a long wait in a
   server's queue) returns every candidate unscored, in first-stage order, with a
   ``crossrank`` log warning; never an exception.

``CrossEncoderScorer(deadline_ms=...)`` and ``rerank(..., deadline_ms=...)`` use it, as do
the composites (:mod:`crossrank.compose`, which exports it) for members without a deadline
of their own. It sits below the scorer and the composites, so neither imports the other.

Example:
    >>> from crossrank import CrossEncoderScorer
    >>> from crossrank.compose import rerank_within
    >>> scorer = CrossEncoderScorer()
    >>> out = rerank_within(scorer, "capital of France", ["Paris.", "Berlin."], deadline_ms=200)
    >>> [h.index for h in out.hits] + out.unscored
    [0, 1]
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossrank.calibration import activate
from crossrank.fusion import first_stage_of, resolve_fusion
from crossrank.rerank_call import CallOptions, finish, token_counter
from crossrank.results import Reranked, add_usage
from crossrank.selection import Hit
from crossrank.validation import check_deadline_ms

__all__ = [
    "DEFAULT_BATCH",
    "arerank_with_deadline",
    "arerank_within",
    "deadline_batch",
    "rerank_with_deadline",
    "rerank_within",
    "takes_deadline",
]

logger = logging.getLogger("crossrank")

#: Candidates per batch for a scorer that says nothing of its batches.
DEFAULT_BATCH = 32

#: The loop's clock, in seconds (a test may put a clock of its own here).
clock: Callable[[], float] = time.monotonic

_SIGNATURES: dict[type, bool] = {}

#: Each scorer's last measured pace (seconds per candidate), which sizes the first batch of
#: its next deadline call.
_PACE: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _known_pace(scorer: Any) -> float:
    try:
        return _PACE.get(scorer, 0.0)
    except TypeError:  # not weakly referenceable: no memory
        return 0.0


def _remember_pace(scorer: Any, seconds_per_candidate: float) -> None:
    try:
        _PACE[scorer] = seconds_per_candidate
    except TypeError:
        pass


def takes_deadline(scorer: Any) -> bool:
    """Whether ``scorer.rerank`` takes ``deadline_ms`` (it then keeps deadlines itself)."""
    kind = type(scorer)
    if kind not in _SIGNATURES:
        try:
            params = inspect.signature(scorer.rerank).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        _SIGNATURES[kind] = "deadline_ms" in params
    return _SIGNATURES[kind]


def deadline_batch(scorer: Any) -> int:
    """Candidates scored per step of the deadline loop: one forward pass.

    The scorer's ``batch_size`` (else :data:`DEFAULT_BATCH`), lowered so that the batch
    fits ``max_tokens_per_batch`` even when every pair is ``max_length`` tokens long, and
    divided by ``max_windows`` in ``chunk`` mode (each text is then up to that many rows).
    Reads ``max_length``, which loads a :class:`crossrank.CrossEncoderScorer`'s model.
    """
    size = getattr(scorer, "batch_size", None)
    size = size if isinstance(size, int) and size > 0 else DEFAULT_BATCH
    tokens = getattr(scorer, "max_tokens_per_batch", None)
    length = getattr(scorer, "max_length", None) if tokens else None
    if isinstance(tokens, int) and isinstance(length, int) and length > 0:
        size = min(size, max(1, tokens // length))
    windows = getattr(scorer, "max_windows", None)
    if getattr(scorer, "long_documents", None) == "chunk" and isinstance(windows, int):
        size = max(1, size // windows)
    return size


class _Loop:
    """The state of one deadline call: the checked options, the clock, what was scored."""

    def __init__(
        self,
        scorer: Any,
        query: Any,
        texts: Any,
        deadline_ms: Any,
        options: dict[str, Any],
        started: float,
        batch: int | None,
    ) -> None:
        milliseconds = check_deadline_ms(deadline_ms)
        self.scorer = scorer
        self.deadline_ms = math.inf if milliseconds is None else milliseconds
        self.deadline = started + self.deadline_ms / 1000.0
        names = ("fusion", "fusion_weight", "fusion_normalization")
        self.fusion = resolve_fusion(scorer, **{k: options.pop(k, None) for k in names})
        first_stage = options.pop("first_stage_scores", None)
        activation = options.get("activation")
        scale = activation if activation is not None else scorer.activation
        self.call = CallOptions.checked(query, texts, scale=scale, fusion=self.fusion, **options)
        self.scale: str = scale
        self.counter = token_counter(self.call, scorer)
        needed = self.call.scorable
        first = first_stage_of(self.fusion, first_stage, len(self.call.texts), needed)
        self.first = {} if first is None else dict(zip(needed, first, strict=True))
        self.batch = batch
        self.todo = list(self.call.scorable)
        self.scored: dict[int, Hit] = {}
        self.pairs = 0
        self.usage: dict[str, float] | None = None
        self.slowest = 0.0  # seconds per candidate of the slowest batch so far
        self.pace = _known_pace(scorer)  # the scorer's pace in an earlier call, if any

    def prepare(self) -> None:
        """Load the scorer's model if it has one still to load (the clock runs), and size
        the batches."""
        if not self.todo:
            return
        if getattr(self.scorer, "is_loaded", True) is False:
            self.scorer.warm_up()
        if self.batch is None:
            self.batch = deadline_batch(self.scorer)

    def next_batch(self) -> list[int] | None:
        """The next candidates to score, or None: all done, or no time for another batch."""
        if not self.todo or self.batch is None:
            return None
        size = min(self.batch, len(self.todo))
        left = self.deadline - clock()
        if left <= 0:
            return None
        per = self.slowest or self.pace
        if per > 0:
            fit = left / per  # candidates that end in time (inf without a deadline)
            if fit < 1:
                if self.slowest:  # a later batch: it must end in time
                    return None
                fit = 1  # the first batch: at least one candidate
            size = int(min(fit, size))
        chunk, self.todo = self.todo[:size], self.todo[size:]
        return chunk

    def kwargs(self, chunk: Sequence[int]) -> dict[str, Any]:
        """``rerank`` keywords for one batch: no selection, no deadline of the scorer's own,
        and with fusion the logits (fused later, over every scored candidate)."""
        kwargs = self.call.member_kwargs(chunk)
        if self.fusion is not None:
            kwargs |= {"activation": "raw", "fusion": "none"}
        if takes_deadline(self.scorer):
            kwargs["deadline_ms"] = math.inf
        return kwargs

    def record(self, chunk: Sequence[int], out: Reranked, started: float) -> None:
        """Keep one batch's hits (their ``index`` back in the call's numbering)."""
        seconds = clock() - started
        per = seconds / max(len(chunk), 1)
        self.slowest = max(self.slowest, per)
        _remember_pace(self.scorer, per)
        self.pairs += out.pairs
        self.usage = add_usage(self.usage, out.usage)
        for hit in out.hits:  # the rest of the batch (if any) stays unscored
            index = chunk[hit.index]
            self.scored[index] = Hit(index, hit.score, hit.truncated, hit.span, hit.passage)

    def result(self) -> Reranked:
        scored = [self.scored[i] for i in self.call.scorable if i in self.scored]
        unscored = [i for i in self.call.scorable if i not in self.scored]
        if unscored and not scored:
            logger.warning(
                "crossrank: the deadline left no time to score any of the %d candidates "
                "(loading the model and waiting in a queue count); they are returned "
                "unscored, in first-stage order. Warm the scorer up first, or raise "
                "deadline_ms",
                len(unscored),
            )
        elif unscored:
            logger.info(
                "crossrank: the deadline of %g ms left %d of %d candidates unscored",
                self.deadline_ms,
                len(unscored),
                len(self.call.scorable),
            )
        if self.fusion is not None and scored:
            scored = self._fused(scored)
        return finish(
            self.call,
            scored,
            unscored,
            pairs=self.pairs,
            counter=self.counter,
            deadline_unscored=len(unscored),
            usage=self.usage,
        )

    def _fused(self, scored: list[Hit]) -> list[Hit]:
        """The scored hits with fused scores (over the scored candidates) and, as
        ``model_score``, the model's own in this call's activation."""
        assert self.fusion is not None
        raw = [hit.score for hit in scored]
        fused = self.fusion.apply(raw, [self.first[hit.index] for hit in scored])
        calibration = getattr(self.scorer, "calibration", None)
        own = activate(np.asarray(raw, dtype=np.float64), self.scale, calibration)
        return [
            Hit(h.index, f, h.truncated, h.span, h.passage, float(o))
            for h, f, o in zip(scored, fused, own, strict=True)
        ]


def rerank_within(
    scorer: Any,
    query: str,
    texts: Sequence[str | None],
    *,
    deadline_ms: float | None,
    batch: int | None = None,
    **options: Any,
) -> Reranked:
    """``scorer.rerank(query, texts, **options)`` within ``deadline_ms`` milliseconds (see
    the module docstring).

    Args:
        scorer: Any scorer with ``rerank`` (:class:`crossrank.adapters.RerankScorer`).
        query: The query.
        texts: The candidates, in first-stage order (None or blank: skipped).
        deadline_ms: The time budget in milliseconds, from this call's start (None or inf:
            none; every candidate is scored, batch by batch).
        batch: Candidates per batch (None: :func:`deadline_batch`).
        **options: The keyword arguments of :meth:`crossrank.CrossEncoderScorer.rerank`
            (selection, passages, contents, activation, fusion).

    Returns:
        A :class:`crossrank.Reranked`: the scored candidates ranked and selected, then the
        unscored ones in first-stage order (``unscored``), counted in
        ``deadline_unscored``.

    Raises:
        TypeError / ValueError: A bad argument (checked before the clock matters).
    """
    started = clock()
    loop = _Loop(scorer, query, texts, deadline_ms, dict(options), started, batch)
    loop.prepare()
    while (chunk := loop.next_batch()) is not None:
        began = clock()
        out = scorer.rerank(loop.call.query, loop.call.texts_of(chunk), **loop.kwargs(chunk))
        loop.record(chunk, out, began)
    return loop.result()


async def arerank_within(
    scorer: Any,
    query: str,
    texts: Sequence[str | None],
    *,
    deadline_ms: float | None,
    batch: int | None = None,
    **options: Any,
) -> Reranked:
    """:func:`rerank_within` with the scorer's ``arerank``, so the event loop keeps running."""
    started = clock()
    loop = _Loop(scorer, query, texts, deadline_ms, dict(options), started, batch)
    await asyncio.to_thread(loop.prepare)
    while (chunk := loop.next_batch()) is not None:
        began = clock()
        call = loop.call
        out = await scorer.arerank(call.query, call.texts_of(chunk), **loop.kwargs(chunk))
        loop.record(chunk, out, began)
    return loop.result()


def rerank_with_deadline(
    scorer: Any,
    query: str,
    texts: Sequence[str | None],
    *,
    deadline_ms: float | None = None,
    **options: Any,
) -> Reranked:
    """``scorer.rerank(query, texts, **options)``, within ``deadline_ms`` when given: passed
    to a scorer that keeps deadlines itself, else kept by :func:`rerank_within`. None: the
    scorer's own setting, if it has one."""
    if deadline_ms is None:
        return scorer.rerank(query, texts, **options)  # type: ignore[no-any-return]
    if takes_deadline(scorer):
        return scorer.rerank(query, texts, deadline_ms=deadline_ms, **options)  # type: ignore[no-any-return]
    return rerank_within(scorer, query, texts, deadline_ms=deadline_ms, **options)


async def arerank_with_deadline(
    scorer: Any,
    query: str,
    texts: Sequence[str | None],
    *,
    deadline_ms: float | None = None,
    **options: Any,
) -> Reranked:
    """:func:`rerank_with_deadline` with the scorer's ``arerank``."""
    if deadline_ms is None:
        return await scorer.arerank(query, texts, **options)  # type: ignore[no-any-return]
    if takes_deadline(scorer):
        return await scorer.arerank(query, texts, deadline_ms=deadline_ms, **options)  # type: ignore[no-any-return]
    return await arerank_within(scorer, query, texts, deadline_ms=deadline_ms, **options)
