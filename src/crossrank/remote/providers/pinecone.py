"""``pinecone``: Pinecone Inference rerank, ``POST https://api.pinecone.io/rerank``.

Sources: pinecone-io/pinecone-api ``2026-07/inference_2026-07.oas.yaml`` (post /rerank; the
RerankRequest schema) and docs.pinecone.io "Rerank results" (reranking models and their
limits) (/work/shared/RERANKERS.md section 4, [src]).

- headers ``Api-Key: $PINECONE_API_KEY`` and the required ``X-Pinecone-Api-Version:
  2026-07``.
- request ``{model (required: bge-reranker-v2-m3 | cohere-rerank-3.5 |
  pinecone-rerank-v0), query, documents: [{text, ...}], top_n (default all),
  return_documents (default true), rank_fields (default ["text"]), parameters: {truncate:
  "END" | "NONE"}}``.
- answer ``{model, data: [{index, score (0-1)[, document]}], usage: {rerank_units}}``.
- errors ``{error: {code, message}, status}`` (400, 401, 429 with RESOURCE_EXHAUSTED /
  QUOTA_EXCEEDED, 500).
- documents per request depend on the model (``GET /models?type=rerank`` reports
  ``max_batch_size``): 200 for cohere-rerank-3.5, 100 for bge-reranker-v2-m3 and
  pinecone-rerank-v0 (the docs' model table); crossrank splits by the model's limit, 100 for
  a model it does not know.

crossrank sends each document as ``{"text": ...}``, ``return_documents: false``, and
``parameters: {"truncate": "NONE"}`` only for ``truncate=False`` (``END`` is the default,
and not every model takes the parameter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, WireOptions

__all__ = ["API_VERSION", "PineconeProvider"]

#: The ``X-Pinecone-Api-Version`` every request sends (required by Pinecone).
API_VERSION = "2026-07"

_MAX_DOCUMENTS = {"cohere-rerank-3.5": 200, "bge-reranker-v2-m3": 100, "pinecone-rerank-v0": 100}


class PineconeProvider(Provider):
    """Pinecone Inference rerank (see the module docstring)."""

    name = "pinecone"
    title = "Pinecone"
    routes = ("/rerank",)
    endpoint = "https://api.pinecone.io"
    key_env = "PINECONE_API_KEY"
    source = "pinecone-io/pinecone-api 2026-07/inference_2026-07.oas.yaml; docs.pinecone.io"
    results_key = "data"
    score_key = "score"
    usage_keys = ("rerank_units",)
    model_default = "bge-reranker-v2-m3"
    documents_limit = 100
    carried = frozenset({"truncate"})

    def max_documents_for(self, model: str | None) -> int | None:
        return _MAX_DOCUMENTS.get(model or "", 100)

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"X-Pinecone-Api-Version": API_VERSION}
        if key:
            headers["Api-Key"] = key
        return headers

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if options.model is not None:
            body["model"] = options.model
        body |= {
            "query": query,
            "documents": [{"text": text} for text in documents],
            "return_documents": False,
        }
        if not options.truncate:
            body["parameters"] = {"truncate": "NONE"}
        return body
