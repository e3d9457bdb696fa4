"""``infinity``: michaelfeil/infinity's ``POST /rerank`` (self-hosted; ``/v1/rerank`` when
started with ``--url-prefix /v1``).

Source: michaelfeil/infinity ``libs/infinity_emb/infinity_emb/fastapi_schemas/pymodels.py``
(``RerankInput``, ``ReRankResult``) and ``errors.py`` (``OpenAIException``) at fcb951c
(2025-10-06, the last commit; /work/shared/RERANKERS.md section 3, [src]).

- request ``{query, documents (1 to 2,048: INFINITY_MAX_CLIENT_BATCH_SIZE), return_documents
  (false), raw_scores (false: a sigmoid is applied), model ("default/not-specified"),
  top_n?}``.
- answer ``{object: "rerank", results: [{relevance_score, index[, document]}], model,
  usage: {prompt_tokens, total_tokens}, id, created}``.
- errors ``{error: {message, type, param, code}}``; no truncation setting (the
  cross-encoder truncates ``longest_first``).

Infinity is effectively unmaintained (no release since 0.0.77, 2025-08; transformers 5 is
not supported, issue #657).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, WireOptions

__all__ = ["InfinityProvider"]


class InfinityProvider(Provider):
    """Infinity's rerank route (see the module docstring)."""

    name = "infinity"
    title = "Infinity"
    routes = ("/rerank", "/v1/rerank")
    raw_scores = True
    health_path = "/health"
    source = "michaelfeil/infinity fastapi_schemas/pymodels.py, errors.py (fcb951c)"
    usage_keys = ("prompt_tokens", "total_tokens")
    documents_limit = 2048

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "documents": list(documents)}
        if options.model is not None:
            body["model"] = options.model
        body["raw_scores"] = options.raw
        return body
