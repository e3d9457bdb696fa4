"""One call to a provider that returns scores: the requests it takes, and what is done
with their answers on this side.

A call's documents are split into requests of at most the provider's documents-per-request
limit; the answers' scores are put back in input order and their usage summed (plus
``requests``, how many were sent). Everything that needs only scores then runs here, as the
core runs it: fusion with the first stage's scores (:mod:`crossrank.fusion`) and the
selection (:func:`crossrank.select`: threshold, relative cut, ``top_k``, token budget).

Fusion mixes the model's *logit*, as the core does: the provider's raw score where it can
return one (it is then asked for logits), else ``log(p / (1 - p))`` of its probability
``p`` (clipped to 1e-15 from 0 and 1), so a provider serving the same model fuses as the
local scorer does. A provider whose scores are not all in [0, 1] is fused on its scores as
they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from crossrank.calibration import activate
from crossrank.fusion import Fusion
from crossrank.remote.wire import Provider, Reply, WireOptions

__all__ = ["Ordering", "Plan", "Scoring", "chunks", "logits_of", "order", "scores_plan"]

T = TypeVar("T")

_EPS = 1e-15


@dataclass(frozen=True)
class Plan:
    """The requests of one call (none: nothing to send) and how their replies become the
    call's result."""

    bodies: list[dict[str, Any]]
    finish: Callable[[list[Reply]], Any]


@dataclass(frozen=True)
class Scoring:
    """How a provider is asked for scores.

    Attributes:
        provider: The protocol.
        wire: What each request carries (model, raw or not, truncation).
        limit: Documents per request (None: all in one).
    """

    provider: Provider
    wire: WireOptions
    limit: int | None


def chunks(texts: Sequence[str], limit: int | None) -> list[list[str]]:
    """``texts`` in consecutive parts of at most ``limit`` (None: one part)."""
    if limit is None or len(texts) <= limit:
        return [list(texts)]
    return [list(texts[start : start + limit]) for start in range(0, len(texts), limit)]


def _merge(
    provider: Provider, replies: Sequence[Reply], sizes: Sequence[int]
) -> tuple[list[float], dict[str, float]]:
    scores: list[float] = []
    usage: dict[str, float] = {"requests": float(len(replies))}
    for reply, size in zip(replies, sizes, strict=True):
        scores.extend(provider.scores(reply.body, size))
        for unit, amount in provider.usage(reply).items():
            usage[unit] = usage.get(unit, 0.0) + amount
    return scores, usage


def scores_plan(
    scoring: Scoring,
    query: str,
    texts: Sequence[str],
    finish: Callable[[list[float], dict[str, float]], T],
) -> Plan:
    """The requests scoring ``texts`` (split by the limit), and ``finish`` called with every
    text's score, in input order, and the summed usage."""
    parts = chunks(texts, scoring.limit)
    bodies = [scoring.provider.body(query, part, scoring.wire) for part in parts]

    def done(replies: list[Reply]) -> T:
        scores, usage = _merge(scoring.provider, replies, [len(p) for p in parts])
        return finish(scores, usage)

    return Plan(bodies, done)


def logits_of(scores: Sequence[float]) -> list[float]:
    """``log(p / (1 - p))`` of probabilities (clipped to ``1e-15`` from 0 and 1); scores that
    are not all in [0, 1] are returned as they are."""
    p = np.asarray(scores, dtype=np.float64)
    if p.size == 0 or p.min() < 0.0 or p.max() > 1.0:
        return [float(x) for x in p]
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return [float(x) for x in np.log(p) - np.log1p(-p)]


@dataclass(frozen=True)
class Ordering:
    """How one call's scores become the scores that order and select.

    Attributes:
        activation: The call's activation (``"sigmoid"``, ``"raw"``, or the server's own).
        raw: The provider was asked for logits (then ``activation`` is applied here).
        fusion: The call's fusion (None: off).
        first_stage: With fusion, the first stage's score of each scored text.
    """

    activation: str
    raw: bool
    fusion: Fusion | None = None
    first_stage: list[float] | None = None


def order(scores: Sequence[float], ordering: Ordering) -> tuple[list[float], list[float] | None]:
    """The scores that order and select, and with fusion the model's own beside them (in
    the call's activation; the first list is then the fused scores)."""
    values = [float(s) for s in scores]
    if ordering.raw:
        own = [float(x) for x in activate(np.asarray(values), ordering.activation)]
        model_side = values
    else:
        own, model_side = values, logits_of(values)
    if ordering.fusion is None:
        return own, None
    assert ordering.first_stage is not None
    return ordering.fusion.apply(model_side, ordering.first_stage), own
