"""``tei``: Hugging Face text-embeddings-inference's ``POST /rerank`` (self-hosted).

Source: huggingface/text-embeddings-inference, ``router/src/http/types.rs`` and
``server.rs`` (HEAD 2026-07, v1.9.3; /work/shared/RERANKERS.md section 3, [src]):

- request ``{query, texts[], truncate?, truncation_direction: "Right"|"Left",
  raw_scores: false, return_text: false}``; ``truncate`` defaults to the server's
  ``--auto-truncate``;
- answer: a bare JSON array ``[{index, score[, text]}]`` sorted by score; ``raw_scores:
  false`` applies a sigmoid (one label);
- the response header ``x-compute-tokens`` counts the tokens computed;
- errors ``{error, error_type}``: 400 empty, 413 over ``--max-client-batch-size``
  (default 32), 422 tokenizer, 424 backend, 429 overloaded; ``GET /info`` gives
  ``model_id`` and ``max_client_batch_size``, ``GET /health`` readiness.

crossrank sends ``truncate`` from its ``truncate`` setting (the document's end is cut:
TEI's default direction), ``raw_scores`` true for ``activation="raw"`` and fusion, and
splits a call into requests of ``max_client_batch_size`` documents (from ``GET /info``,
else 32).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossrank.remote.wire import Provider, Reply, WireOptions

__all__ = ["TEIProvider"]


class TEIProvider(Provider):
    """text-embeddings-inference (see the module docstring)."""

    name = "tei"
    title = "text-embeddings-inference"
    routes = ("/rerank",)
    raw_scores = True
    info_path = "/info"
    health_path = "/health"
    source = "huggingface/text-embeddings-inference router/src/http/types.rs, server.rs"
    results_key = None
    score_key = "score"
    documents_limit = 32  # --max-client-batch-size's default; GET /info tells the server's own
    carried = frozenset({"truncate"})

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        return {
            "query": query,
            "texts": list(documents),
            "raw_scores": options.raw,
            "truncate": options.truncate,
        }

    def usage(self, reply: Reply) -> dict[str, float]:
        tokens = reply.headers.get("x-compute-tokens", "")
        return {"tokens": float(tokens)} if tokens.isdigit() else {}
