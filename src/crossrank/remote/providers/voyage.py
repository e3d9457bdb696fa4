"""``voyage``: Voyage AI rerankers, ``POST https://api.voyageai.com/v1/rerank``.

Sources: docs.voyageai.com/docs/reranker and the SDK's types (/work/shared/RERANKERS.md
section 4, [src]); the answer's shape from Voyage's client code [3p, checked against the
TypeScript SDK's ``RerankRequest`` and the Vercel AI provider's reference].

- ``Authorization: Bearer $VOYAGE_API_KEY``.
- request ``{query, documents: string[] (at most 1,000), model (rerank-2.5, rerank-2.5-lite,
  rerank-2, ...), top_k, return_documents (default false), truncation (default true)}``:
  Voyage says ``top_k``, not ``top_n``.
- answer ``{object: "list", data: [{index, relevance_score[, document]}], model, usage:
  {total_tokens}}``; scores in [0, 1].
- limits (rerank-2.5): query <= 8,000 tokens, query plus any one document <= 32,000
  tokens; with ``truncation: false`` an over-long input is an error. Errors are
  ``{"detail": ...}``.

crossrank sends ``truncation`` from its ``truncate`` setting and 1,000 documents per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, WireOptions

__all__ = ["VoyageProvider"]


class VoyageProvider(Provider):
    """Voyage AI Rerank (see the module docstring)."""

    name = "voyage"
    title = "Voyage AI"
    routes = ("/v1/rerank",)
    endpoint = "https://api.voyageai.com"
    key_env = "VOYAGE_API_KEY"
    source = "docs.voyageai.com/docs/reranker; voyageai SDK RerankRequest"
    results_key = "data"
    usage_keys = ("total_tokens",)
    model_default = "rerank-2.5"
    documents_limit = 1000
    carried = frozenset({"truncate"})

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "documents": list(documents)}
        if options.model is not None:
            body["model"] = options.model
        body["truncation"] = options.truncate
        return body
