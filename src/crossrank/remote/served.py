"""One call to a ``crossrank serve`` over its own protocol: the server runs the core's
``rerank`` (or ``score_details``) with every option, so the request carries them and the
answer is read as the core's result (truncation, spans, passages, skipped, pairs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.calls import Plan
from crossrank.remote.providers.crossrank import CrossrankProvider
from crossrank.remote.wire import Reply
from crossrank.scorer import Reranked, ScoreDetails
from crossrank.selection import Hit

__all__ = ["details_plan", "rank_plan", "rerank_plan"]


def _usage(replies: Sequence[Reply]) -> dict[str, float]:
    """The requests sent, plus what a server forwarding to a provider reports that the
    provider charged (its ``crossrank.usage``; its ``requests`` as ``provider_requests``)."""
    usage = {"requests": float(len(replies))}
    for reply in replies:
        extra = reply.body.get("crossrank") if isinstance(reply.body, dict) else None
        upstream = extra.get("usage") if isinstance(extra, dict) else None
        if not isinstance(upstream, dict):
            continue
        for unit, amount in upstream.items():
            if isinstance(amount, (int, float)) and not isinstance(amount, bool):
                name = "provider_requests" if unit == "requests" else str(unit)
                usage[name] = usage.get(name, 0.0) + float(amount)
    return usage


def details_plan(
    provider: CrossrankProvider,
    query: str,
    texts: Sequence[str],
    activation: str | None,
    instruction: str | None = None,
) -> Plan:
    """Every text's score, truncation, span and windows (the core's ``score_details``)."""
    options = {"skip_blank": False, "activation": activation, "instruction": instruction}
    body = provider.rerank_body(query, texts, top_n=None, options=options)

    def finish(replies: list[Reply]) -> ScoreDetails:
        details = provider.details(replies[0].body, len(texts))
        return ScoreDetails(
            scores=details.scores,
            truncated=details.truncated,
            pairs=details.pairs,
            spans=details.spans,
            windows=details.windows,
            usage=_usage(replies),
        )

    return Plan([body], finish)


def rank_plan(
    provider: CrossrankProvider,
    query: str,
    texts: Sequence[str],
    *,
    top_k: int | None,
    selection: dict[str, Any],
) -> Plan:
    """The kept texts, best first, selected on the server (the core's ``rank``)."""
    body = provider.rerank_body(
        query, texts, top_n=top_k, options={"skip_blank": False, **selection}
    )

    def finish(replies: list[Reply]) -> list[Hit]:
        return provider.hits(replies[0].body)[0]

    return Plan([body], finish)


def rerank_plan(
    provider: CrossrankProvider,
    query: str,
    texts: Sequence[str | None],
    *,
    top_k: int | None,
    options: dict[str, Any],
) -> Plan:
    """The core's ``rerank`` on the server; ``options`` are its keyword arguments as sent
    (fusion ones only when given; None values are left out)."""
    sent = ["" if t is None else t for t in texts]
    body = provider.rerank_body(query, sent, top_n=top_k, options=options)

    def finish(replies: list[Reply]) -> Reranked:
        hits, skipped, pairs = provider.hits(replies[0].body)
        unscored, late = provider.unscored(replies[0].body)
        return Reranked(
            hits=hits,
            skipped=skipped,
            pairs=pairs,
            usage=_usage(replies),
            unscored=unscored,
            deadline_unscored=late,
        )

    return Plan([body], finish)
