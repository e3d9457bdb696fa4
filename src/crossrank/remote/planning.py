"""What one :class:`crossrank.RemoteScorer` call sends and how it is answered: the call's
arguments checked as the core checks them, then a :class:`crossrank.remote.calls.Plan`,
through the server's own protocol (:mod:`crossrank.remote.served`) or a provider that
returns scores (:mod:`crossrank.remote.calls`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from crossrank.calibration import ACTIVATIONS
from crossrank.fusion import Fusion, first_stage_of, resolve_fusion
from crossrank.remote import served
from crossrank.remote.calls import Ordering, Plan, Scoring, order, scores_plan
from crossrank.remote.counting import TokenCounter
from crossrank.remote.providers.crossrank import CrossrankProvider
from crossrank.remote.wire import Provider, WireOptions
from crossrank.scorer import Reranked, ScoreDetails
from crossrank.selection import Hit, select, split_blank
from crossrank.validation import (
    check_positive_int,
    check_query,
    check_relative_cut,
    check_score_threshold,
    check_texts,
    check_top_k,
)

__all__ = ["Planner"]

_FUSION = ("fusion", "fusion_weight", "fusion_normalization")


class Planner:
    """Plans one scorer's calls.

    Args:
        wire: The provider.
        options: What every request carries (model, truncation); ``raw`` is set per call.
        counter: What a token budget counts (providers other than crossrank).
        owner: The object whose ``fusion``, ``fusion_weight`` and ``fusion_normalization``
            are the default fusion (the scorer).
        activation: The server's default activation (looked up only when needed).
        limit: Documents per request (looked up only when a request is planned).
    """

    def __init__(
        self,
        wire: Provider,
        options: WireOptions,
        counter: TokenCounter,
        *,
        owner: Any,
        activation: Callable[[], str],
        limit: Callable[[], int | None],
    ) -> None:
        self.wire = wire
        self.options = options
        self.counter = counter
        self.owner = owner
        self._activation = activation
        self._limit = limit

    @property
    def _served(self) -> CrossrankProvider | None:
        """The crossrank protocol (the server does the work), else None."""
        return self.wire if isinstance(self.wire, CrossrankProvider) else None

    def scoring(self, raw: bool) -> Scoring:
        """How the provider is asked for scores (``raw``: logits)."""
        return Scoring(self.wire, replace(self.options, raw=raw), self._limit())

    def _call_activation(self, activation: Any) -> tuple[str | None, bool]:
        """This call's activation (None: the server's default, not looked up) and whether
        the provider is asked for logits."""
        if activation is None:
            return None, False
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if self._served is not None:
            return activation, False
        default = self._activation()
        if activation == default:
            return default, False
        if activation == "raw" and self.wire.raw_scores:
            return "raw", True
        can = f"{default!r}{' or raw' if self.wire.raw_scores else ''}"
        raise ValueError(
            f"provider={self.wire.name!r} cannot ask for activation={activation!r} (it gives "
            f"{can}); use provider='crossrank' (a crossrank serve) for other activations"
        )

    def _relative_cut(self, value: Any, activation: str | None, fused: Fusion | None) -> Any:
        """``min_relative_score`` checked against the call's scores (the server's default
        activation is looked up only when a cut is given)."""
        if value is None:
            return None
        return check_relative_cut(value, activation or self._activation(), fusion=fused)

    def _ordering(
        self, activation: str | None, raw: bool, fused: Fusion | None, first: list[float] | None
    ) -> Ordering:
        """How a provider's scores are ordered with this call's fusion: logits are asked for
        where the provider can give them, and its activation applied here."""
        if fused is None or raw or not self.wire.raw_scores:
            return Ordering(activation or "sigmoid", raw, fused, first)
        act = activation or self._activation()
        if act not in ("sigmoid", "raw"):
            raise ValueError(
                f"fusion with activation={act!r} needs provider='crossrank' (the calibration "
                "is on the server)"
            )
        return Ordering(act, True, fused, first)

    def details(self, query: str, texts: Sequence[str], activation: Any) -> Plan:
        """The plan of :meth:`crossrank.RemoteScorer.score_details`."""
        query = check_query(query)
        texts = check_texts(texts)
        act, raw = self._call_activation(activation)
        if not texts:
            return Plan([], lambda _: ScoreDetails(scores=[], truncated=[], pairs=0))
        if self._served is not None:
            return served.details_plan(self._served, query, texts, activation)
        ordering = Ordering(act or "sigmoid", raw)

        def finish(scores: list[float], usage: dict[str, float]) -> ScoreDetails:
            own = order(scores, ordering)[0]
            n = len(own)
            return ScoreDetails(scores=own, truncated=[False] * n, pairs=n, usage=usage)

        return scores_plan(self.scoring(raw), query, texts, finish)

    def rank(
        self,
        query: str,
        texts: Sequence[str],
        top_k: Any,
        score_threshold: Any,
        min_relative_score: Any,
        token_budget: Any,
    ) -> Plan:
        """The plan of :meth:`crossrank.RemoteScorer.rank`."""
        top_k = check_top_k(top_k)
        score_threshold = check_score_threshold(score_threshold)
        query = check_query(query)
        texts = check_texts(texts)
        token_budget = check_positive_int(token_budget, name="token_budget", allow_none=True)
        min_relative_score = self._relative_cut(min_relative_score, None, None)
        if not texts:
            return Plan([], lambda _: [])
        selection = {"score_threshold": score_threshold, "min_relative_score": min_relative_score}
        if self._served is not None:
            return served.rank_plan(
                self._served,
                query,
                texts,
                top_k=top_k,
                selection={**selection, "token_budget": token_budget},
            )
        counts = None if token_budget is None else self.counter.count(texts)

        def finish(scores: list[float], usage: dict[str, float]) -> list[Hit]:
            kept = select(
                scores, top_k=top_k, token_counts=counts, token_budget=token_budget, **selection
            )
            return [Hit(i, scores[i], False) for i in kept]

        return scores_plan(self.scoring(False), query, texts, finish)

    def rerank(self, query: str, texts: Sequence[str | None], options: dict[str, Any]) -> Plan:
        """The plan of :meth:`crossrank.RemoteScorer.rerank` (``options``: its keyword
        arguments)."""
        call = self._checked_rerank(query, texts, options)
        if self._served is not None:
            if not texts:
                return Plan([], lambda _: Reranked(hits=[], skipped=[], pairs=0))
            sent: dict[str, Any] = {
                "score_threshold": call.score_threshold,
                "min_relative_score": call.min_relative_score,
                "token_budget": call.token_budget,
                "activation": options["activation"],
                **_fusion_sent(call.fusion, call.given, options["first_stage_scores"]),
            }
            if call.passages:
                contents = options["contents"]
                sent["passages"] = True
                sent["contents"] = None if contents is None else list(contents)
            return served.rerank_plan(self._served, query, texts, top_k=call.top_k, options=sent)
        return self._scored_rerank(query, texts, call, options["first_stage_scores"])

    def _checked_rerank(self, query: Any, texts: Any, options: dict[str, Any]) -> _RerankCall:
        """A rerank call's options, checked as the core checks them; passages refused by a
        provider that returns one score per document."""
        top_k = check_top_k(options["top_k"])
        score_threshold = check_score_threshold(options["score_threshold"])
        activation, raw = self._call_activation(options["activation"])
        given = {n: options[n] for n in _FUSION if options[n] is not None}
        fused = resolve_fusion(self.owner, **given)
        relative = self._relative_cut(options["min_relative_score"], activation, fused)
        token_budget = check_positive_int(
            options["token_budget"], name="token_budget", allow_none=True
        )
        check_query(query)
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            check_texts(texts)  # raises the standard message
        passages = options["passages"]
        if not isinstance(passages, bool):
            raise TypeError(f"passages must be True or False, got {passages!r}")
        if options["contents"] is not None and not passages:
            raise ValueError("contents is only used with passages=True")
        if passages and self._served is None:
            raise ValueError(
                f"passages=True needs provider='crossrank' (a crossrank serve cuts each long "
                f"document into windows and finds its best passage); provider="
                f"{self.wire.name!r} returns one score per document"
            )
        for i, text in enumerate(texts):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a string or None, got {type(text).__name__}")
        return _RerankCall(
            top_k, score_threshold, relative, token_budget, activation, raw, fused, given, passages
        )

    def _scored_rerank(
        self, query: str, texts: Sequence[str | None], call: _RerankCall, first_stage: Any
    ) -> Plan:
        """A provider scores the candidates with text; fusion and selection run here."""
        scorable, skipped = split_blank(texts) if texts else ([], [])
        first = first_stage_of(call.fusion, first_stage, len(texts), scorable)
        if not scorable:
            return Plan([], lambda _: Reranked(hits=[], skipped=skipped, pairs=0))
        scored = [cast(str, texts[i]) for i in scorable]
        counts = None if call.token_budget is None else self.counter.count(scored)
        ordering = self._ordering(call.activation, call.raw, call.fusion, first)

        def finish(scores: list[float], usage: dict[str, float]) -> Reranked:
            ordered, own = order(scores, ordering)
            kept = select(
                ordered,
                top_k=call.top_k,
                score_threshold=call.score_threshold,
                min_relative_score=call.min_relative_score,
                token_counts=counts,
                token_budget=call.token_budget,
            )
            hits = [
                Hit(scorable[j], ordered[j], False, None, None, None if own is None else own[j])
                for j in kept
            ]
            return Reranked(hits=hits, skipped=skipped, pairs=len(scorable), usage=usage)

        return scores_plan(self.scoring(ordering.raw), query, scored, finish)


@dataclass(frozen=True)
class _RerankCall:
    """A rerank call's checked options."""

    top_k: int | None
    score_threshold: float | None
    min_relative_score: float | None
    token_budget: int | None
    activation: str | None
    raw: bool
    fusion: Fusion | None
    given: dict[str, Any]
    passages: bool


def _fusion_sent(
    fused: Fusion | None, given: Mapping[str, Any], first_stage_scores: Any
) -> dict[str, Any]:
    """The fusion fields a crossrank server gets: all of them when fusion is on (the
    server's own settings then do not matter), ``"none"`` when this call turns it off."""
    sent: dict[str, Any] = {}
    if fused is not None:
        sent = {
            "fusion": fused.method,
            "fusion_weight": fused.weight,
            "fusion_normalization": fused.normalization,
        }
    elif "fusion" in given:
        sent = {"fusion": "none"}
    if first_stage_scores is not None:
        sent["first_stage_scores"] = list(first_stage_scores)
    return sent
