"""``jina``: Jina AI Reranker, ``POST https://api.jina.ai/v1/rerank``.

Sources: haystack-core-integrations' ``JinaRanker`` and the models' Hugging Face cards
(/work/shared/RERANKERS.md section 4, [src]); the answer's ``usage`` and the request's
defaults from third-party mirrors of the API reference (docs.newapi.pro "Jina AI Rerank",
LocalAI's ``core/schema/jina.go``) [3p, checked].

- ``Authorization: Bearer $JINA_API_KEY``.
- request ``{model, query, documents: [string | {text} | {image}], top_n, return_documents}``
  (``return_documents`` defaults to true; crossrank sends false).
- answer ``{model, usage: {total_tokens[, prompt_tokens]}, results: [{index,
  relevance_score[, document: {text}]}]}``; scores in [0, 1] for the v2 models.
- errors ``{"detail": ...}``; 401 and 429 appear in the API description. No documented
  per-request document limit; no truncation setting (``max_length`` and
  ``truncate=False`` are refused).

The default model is ``jina-reranker-v2-base-multilingual`` (pointwise). ``jina-reranker-v3``
is listwise: its scores depend on the other documents of the request, so a call split
across requests (``max_documents=``) would mix scales; crossrank does not split by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, WireOptions

__all__ = ["JinaProvider"]


class JinaProvider(Provider):
    """Jina AI Reranker (see the module docstring)."""

    name = "jina"
    title = "Jina AI"
    routes = ("/v1/rerank",)
    endpoint = "https://api.jina.ai"
    key_env = "JINA_API_KEY"
    source = "haystack-core-integrations JinaRanker; Jina model cards; docs.newapi.pro [3p]"
    usage_keys = ("total_tokens", "prompt_tokens")
    model_default = "jina-reranker-v2-base-multilingual"

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if options.model is not None:
            body["model"] = options.model
        return body | {"query": query, "documents": list(documents), "return_documents": False}
