"""``mixedbread``: Mixedbread Rerank, ``POST https://api.mixedbread.com/v1/reranking``.

Sources: mixedbread.com/api-reference/endpoints/reranking (/work/shared/RERANKERS.md
section 4, [src]); the answer's ``data``/``score``/``usage`` keys from the same reference
page's response body and the api-evangelist example payload [3p, checked].

- ``Authorization: Bearer $MXBAI_API_KEY`` (the legacy host was ``api.mixedbread.ai``).
- request ``{model (required), query, input: string[] | object[] (1 to 1,000 items),
  rank_fields, top_k, return_input (default false)}``: Mixedbread names the documents
  ``input`` and the limit ``top_k``.
- answer ``{object: "list", data: [{index, score[, input]}], model, usage: {prompt_tokens,
  total_tokens}}``; scores in [0, 1].
- documents over the model's token limit are truncated by the service: there is no
  truncation setting (``max_length`` and ``truncate=False`` are refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, WireOptions

__all__ = ["MixedbreadProvider"]


class MixedbreadProvider(Provider):
    """Mixedbread Rerank (see the module docstring)."""

    name = "mixedbread"
    title = "Mixedbread"
    routes = ("/v1/reranking",)
    endpoint = "https://api.mixedbread.com"
    key_env = "MXBAI_API_KEY"
    source = "mixedbread.com/api-reference/endpoints/reranking"
    results_key = "data"
    score_key = "score"
    usage_keys = ("total_tokens", "prompt_tokens")
    model_default = "mixedbread-ai/mxbai-rerank-large-v2"
    documents_limit = 1000

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if options.model is not None:
            body["model"] = options.model
        return body | {"query": query, "input": list(documents), "return_input": False}
