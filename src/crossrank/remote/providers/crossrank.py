"""``crossrank``: a ``crossrank serve``'s own protocol, which carries every option.

Source: this project's server (:mod:`crossrank.serve.app`, :mod:`crossrank.serve.models`):
``POST /v1/rerank`` with the Cohere-v1 body plus a ``crossrank`` field holding the core's
``rerank`` options (selection, token budget, passages, activation, fusion); each result
carries ``truncated``, ``span``, ``passage`` (and ``windows``, ``model_score``), and the
answer a top-level ``crossrank`` with ``skipped`` and ``pairs``. Errors are ``{error,
error_type[, limit]}``. ``GET /info`` describes the model (its activation, limits),
``GET /health`` says when it is loaded. Selection, the token budget (the server's
tokenizer) and fusion run on the server; nothing is split (the server's
``max_documents`` applies).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, WireError, WireOptions, results_of
from crossrank.scorer import ScoreDetails
from crossrank.selection import Hit

__all__ = ["CrossrankProvider"]


class CrossrankProvider(Provider):
    """A ``crossrank serve`` (every option is carried; see the module docstring)."""

    name = "crossrank"
    title = "crossrank serve"
    routes = ("/v1/rerank",)
    raw_scores = True
    info_path = "/info"
    health_path = "/health"
    source = "crossrank.serve (this project)"
    instruction_field = "instruction"

    def rerank_body(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None,
        options: dict[str, Any],
        model: str | None = None,
    ) -> dict[str, Any]:
        """The body of one call with crossrank's options (None values are left out)."""
        body: dict[str, Any] = {"query": query, "documents": list(documents)}
        if model is not None:
            body["model"] = model
        if top_n is not None:
            body["top_n"] = top_n
        body["crossrank"] = {k: v for k, v in options.items() if v is not None}
        return body

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        activation = "raw" if options.raw else None
        return self.rerank_body(
            query,
            documents,
            top_n=None,
            options={
                "skip_blank": False,
                "activation": activation,
                "instruction": options.instruction,
            },
            model=options.model,
        )

    def scores(self, answer: Any, count: int) -> list[float]:
        return self.details(answer, count).scores

    # ---------------------------------------------------------------- crossrank's answers

    def hits(self, answer: Any) -> tuple[list[Hit], list[int], int]:
        """The hits (in the server's order), skipped indices and pairs of an answer (results
        marked ``unscored`` are not hits: :meth:`unscored` reads them)."""
        hits = [_hit(r) for r in results_of(answer, "results") if not r.get("unscored")]
        extra = answer.get("crossrank") if isinstance(answer, dict) else None
        if not isinstance(extra, dict):
            raise WireError(
                "no 'crossrank' field in the answer: is this a crossrank server? (use "
                "provider='cohere' with route='/v1/rerank' for other /v1/rerank servers)"
            )
        skipped = [int(i) for i in extra.get("skipped", [])]
        return hits, skipped, int(extra.get("pairs", len(hits)))

    def unscored(self, answer: Any) -> tuple[list[int], int]:
        """The indices of the results returned without a score (a deadline, a cascade's
        rest), in the server's order, and how many the deadline left unscored."""
        indices = [int(r["index"]) for r in results_of(answer, "results") if r.get("unscored")]
        extra = answer.get("crossrank") if isinstance(answer, dict) else None
        late = extra.get("deadline_unscored", 0) if isinstance(extra, dict) else 0
        return indices, int(late)

    def details(self, answer: Any, count: int) -> ScoreDetails:
        """ScoreDetails of an answer holding every document's result."""
        results = results_of(answer, "results")
        by_index = {r["index"]: r for r in results}
        if sorted(by_index) != list(range(count)):
            raise WireError(
                f"expected one result per text (0..{count - 1}), got indices "
                f"{sorted(by_index)[:20]}"
            )
        ordered = [by_index[i] for i in range(count)]
        hits = [_hit(r) for r in ordered]
        windows = [r.get("windows") for r in ordered]
        extra = answer.get("crossrank") if isinstance(answer, dict) else None
        pairs = int(extra.get("pairs", count)) if isinstance(extra, dict) else count
        return ScoreDetails(
            scores=[h.score for h in hits],
            truncated=[h.truncated for h in hits],
            pairs=pairs,
            spans=[h.span for h in hits],
            windows=None if None in windows else [int(w) for w in windows],  # type: ignore[arg-type]
        )


def _score(value: Any) -> float:
    if value is None:
        return math.nan  # the server sends null for its model's NaN and infinities
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(f"a score is not a number: {value!r}")
    return float(value)


def _hit(result: dict[str, Any]) -> Hit:
    span = result.get("span")
    passage = result.get("passage")
    model_score: float | None = None
    if "model_score" in result:  # with fusion; null: NaN or an infinity
        model_score = _score(result["model_score"])
    return Hit(
        result["index"],
        _score(result.get("relevance_score")),
        bool(result.get("truncated", False)),
        None if span is None else (int(span[0]), int(span[1])),
        None if passage is None else (int(passage[0]), int(passage[1])),
        model_score,
    )
