"""``vllm``: a vLLM server's pooling routes, ``/rerank`` (default), ``/v1/rerank``,
``/v2/rerank`` and ``/score`` (self-hosted).

Source: vllm-project/vllm ``vllm/entrypoints/pooling/scoring/protocol.py`` and
``api_router.py`` (2026; /work/shared/RERANKERS.md section 3, [src]); the error body from
``ErrorResponse``/``ErrorInfo`` in the same entrypoints.

- rerank routes (``/rerank`` and ``/v1/rerank`` Jina-compatible, ``/v2/rerank`` for the
  Cohere v2 client), one body: ``{model?, query, documents, top_n (0 = all),
  truncate_prompt_tokens, truncation_side, use_activation, max_tokens_per_doc,
  max_tokens_per_query}``; answer ``{id, model, usage: {prompt_tokens, total_tokens},
  results: [{index, document: {text}, relevance_score}]}``.
- ``/score``: ``{model?, queries, documents, use_activation, truncate_prompt_tokens}``
  (``text_1``/``text_2`` is the legacy form); answer ``{id, object: "list", created, model,
  data: [{index, object: "score", score}], usage}``.
- errors ``{error: {message, type, param, code}}``; no per-request document limit.

crossrank sends ``use_activation`` (false for ``activation="raw"`` and fusion: the logit)
and ``truncate_prompt_tokens`` from ``max_length`` (the pair's tokens, crossrank's own
meaning; the prompt is cut on the right, the document's end).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, WireOptions, indexed_scores, results_of

__all__ = ["VLLMProvider"]

SCORE = "/score"


class VLLMProvider(Provider):
    """vLLM's rerank and score routes (see the module docstring)."""

    name = "vllm"
    title = "vLLM"
    routes = ("/rerank", "/v1/rerank", "/v2/rerank", SCORE)
    raw_scores = True
    health_path = "/health"
    source = "vllm-project/vllm vllm/entrypoints/pooling/scoring/protocol.py, api_router.py"
    usage_keys = ("prompt_tokens", "total_tokens")
    carried = frozenset({"max_length"})

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if options.model is not None:
            body["model"] = options.model
        if self.route == SCORE:
            body |= {"queries": query, "documents": list(documents)}
        else:
            body |= {"query": query, "documents": list(documents)}
        body["use_activation"] = not options.raw
        if options.max_length is not None:
            body["truncate_prompt_tokens"] = options.max_length
        return body

    def scores(self, answer: Any, count: int) -> list[float]:
        if self.route == SCORE:
            return indexed_scores(results_of(answer, "data"), count, "score")
        return super().scores(answer, count)
