"""``cohere``: Cohere Rerank, ``POST /v2/rerank`` (default) or ``/v1/rerank``.

Sources: docs.cohere.com/reference/rerank, the rerank-v3.5 changelog and the "Best
practices for Rerank" page (/work/shared/RERANKERS.md section 4, [src]); the v1 answer's
shape from LiteLLM's Cohere-compatible types, ``litellm/types/rerank.py`` [3p, checked].

- ``Authorization: Bearer $COHERE_API_KEY``, ``X-Client-Name``; public endpoint
  ``https://api.cohere.com``.
- v2 request ``{model (required), query, documents: string[], top_n, max_tokens_per_doc
  (default 4096)}``; v1 ``{model?, query, documents, top_n, return_documents,
  max_chunks_per_doc}``.
- answer ``{id, results: [{index, relevance_score}], meta: {api_version, billed_units:
  {search_units}, tokens?: {input_tokens, output_tokens}}}``; scores in [0, 1].
- 1 to 10,000 documents per request, at most 1,000 recommended: crossrank sends 1,000 per
  request. Errors are ``{"message": ...}`` (401 bad key, 429 rate limit, 400/422 invalid).

crossrank sends ``max_tokens_per_doc`` from ``max_length`` (v2; Cohere counts the
document's tokens only, crossrank's ``max_length`` the pair's, so the document gets a little
more room than a local model would); v1 carries no truncation setting. ``route='/v1/rerank'``
with ``url=`` also speaks to Cohere-v1-style servers (a ``crossrank serve``'s ``/v1/rerank``,
gateways); this is what the old ``protocol='cohere'`` was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, Reply, WireOptions, numbers

__all__ = ["CohereProvider"]

V1 = "/v1/rerank"


class CohereProvider(Provider):
    """Cohere Rerank (see the module docstring)."""

    name = "cohere"
    title = "Cohere"
    routes = ("/v2/rerank", V1)
    endpoint = "https://api.cohere.com"
    key_env = "COHERE_API_KEY"
    source = "docs.cohere.com/reference/rerank; changelog rerank-v3.5; reranking best practices"

    @property
    def default_model(self) -> str | None:
        return None if self.route == V1 else "rerank-v3.5"

    @property
    def max_documents(self) -> int | None:
        return 1000

    @property
    def carries(self) -> frozenset[str]:
        return frozenset() if self.route == V1 else frozenset({"max_length"})

    def headers(self, key: str | None) -> dict[str, str]:
        return {**super().headers(key), "X-Client-Name": "crossrank"}

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if options.model is not None:
            body["model"] = options.model
        body |= {"query": query, "documents": list(documents)}
        if self.route != V1 and options.max_length is not None:
            body["max_tokens_per_doc"] = options.max_length
        return body

    def usage(self, reply: Reply) -> dict[str, float]:
        meta = reply.body.get("meta") if isinstance(reply.body, dict) else None
        if not isinstance(meta, dict):
            return {}
        return numbers(meta.get("billed_units"), ("search_units",)) | numbers(
            meta.get("tokens"), ("input_tokens", "output_tokens")
        )
