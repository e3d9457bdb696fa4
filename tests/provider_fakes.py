"""Each provider's fake, written from its API reference (tests/provider_kit.py serves them):
the fields its request may hold, its auth headers, its limits and truncation switch, its
answer and its error shape. Sources are named on each class; /work/shared/RERANKERS.md
sections 3 and 4 collect them."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

#: The key every fake accepts.
KEY = "sk-test-provider-key-3f9a"
#: Words a fake reads per document before ``truncate: false`` is an error.
MAX_WORDS = 40

Body = dict[str, Any]


# ---------------------------------------------------------------------- field checks


_TYPES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "objs": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    "obj": lambda v: isinstance(v, dict),
    "str|strs": lambda v: (
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    ),
}


def check_fields(body: Any, fields: dict[str, tuple[str, bool]]) -> str | None:
    """What is wrong with ``body`` against ``{name: (type, required)}``, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    for name, (kind, required) in fields.items():
        if name not in body:
            if required:
                return f"missing required field {name!r}"
            continue
        if not _TYPES[kind](body[name]):
            return f"field {name!r} must be {kind}, got {body[name]!r:.60}"
    unknown = sorted(set(body) - set(fields))
    if unknown:
        return f"unknown fields {unknown}"
    return None


# ---------------------------------------------------------------------- the fakes


class Fake:
    """One provider's fake. Subclasses give the routes, the fields, the answer and errors."""

    name: str
    routes: tuple[str, ...]
    docs_field = "documents"
    limit: int | None = None
    limit_status = 400
    raw_field: str | None = None  # the request field asking for logits
    raw_when: bool = True  # the field's value that asks for logits
    truncate_status = 400

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        raise NotImplementedError

    def auth(self, headers: dict[str, str]) -> str | None:
        """None when the headers carry the key; else the token that was received."""
        given = headers.get("authorization", "")
        return None if given == f"Bearer {KEY}" else given.removeprefix("Bearer ")

    def documents(self, body: Body) -> list[str]:
        return list(body[self.docs_field])

    def query(self, body: Body) -> str:
        return str(body["query"])

    def truncate_off(self, body: Body) -> bool:
        return False

    def raw(self, body: Body) -> bool:
        return self.raw_field is not None and body.get(self.raw_field) is self.raw_when

    def error(self, status: int, message: str) -> Body | list[Any]:
        return {"message": message}

    def answer(
        self, route: str, body: Body, scores: list[float], words: int
    ) -> tuple[Any, dict[str, str]]:
        raise NotImplementedError


def _ranked(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


class TEIFake(Fake):
    """text-embeddings-inference ``POST /rerank``: router/src/http/types.rs, server.rs."""

    name = "tei"
    routes = ("/rerank",)
    docs_field = "texts"
    limit = 32  # --max-client-batch-size's default
    limit_status = 413
    raw_field = "raw_scores"
    truncate_status = 413

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        return {
            "query": ("str", True),
            "texts": ("strs", True),
            "truncate": ("bool", False),
            "truncation_direction": ("str", False),
            "raw_scores": ("bool", False),
            "return_text": ("bool", False),
        }

    def truncate_off(self, body: Body) -> bool:
        return body.get("truncate") is False

    def error(self, status: int, message: str) -> Body:
        kinds = {413: "validation", 422: "tokenizer", 429: "overloaded", 401: "unauthorized"}
        return {"error": message, "error_type": kinds.get(status, "validation")}

    def answer(self, route: str, body: Body, scores: list[float], words: int) -> Any:
        out = [{"index": i, "score": scores[i]} for i in _ranked(scores)]
        return out, {"x-compute-tokens": str(words)}


class CohereFake(Fake):
    """Cohere ``/v2/rerank`` and ``/v1/rerank``: docs.cohere.com/reference/rerank."""

    name = "cohere"
    routes = ("/v2/rerank", "/v1/rerank")
    limit = 10_000

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        if route == "/v1/rerank":
            return {
                "model": ("str", False),
                "query": ("str", True),
                "documents": ("strs", True),
                "top_n": ("int", False),
                "rank_fields": ("strs", False),
                "return_documents": ("bool", False),
                "max_chunks_per_doc": ("int", False),
            }
        return {
            "model": ("str", True),
            "query": ("str", True),
            "documents": ("strs", True),
            "top_n": ("int", False),
            "max_tokens_per_doc": ("int", False),
        }

    def answer(self, route: str, body: Body, scores: list[float], words: int) -> Any:
        version = "1" if route == "/v1/rerank" else "2"
        units = math.ceil(len(scores) / 100)  # a search unit: a query with up to 100 documents
        return {
            "id": "fake-rerank-id",
            "results": [{"index": i, "relevance_score": scores[i]} for i in _ranked(scores)],
            "meta": {
                "api_version": {"version": version},
                "billed_units": {"search_units": units},
                "tokens": {"input_tokens": words, "output_tokens": 0},
            },
        }, {}


class JinaFake(Fake):
    """Jina ``POST /v1/rerank``: haystack JinaRanker; the API reference's mirrors."""

    name = "jina"
    routes = ("/v1/rerank",)

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        return {
            "model": ("str", False),
            "query": ("str", True),
            "documents": ("strs", True),
            "top_n": ("int", False),
            "return_documents": ("bool", False),
        }

    def error(self, status: int, message: str) -> Body:
        return {"detail": message}

    def answer(self, route: str, body: Body, scores: list[float], words: int) -> Any:
        documents = body["documents"]
        with_docs = body.get("return_documents", True)  # Jina's default returns them
        results = []
        for i in _ranked(scores):
            item: Body = {"index": i, "relevance_score": scores[i]}
            if with_docs:
                item["document"] = {"text": documents[i]}
            results.append(item)
        usage = {"total_tokens": words, "prompt_tokens": words}
        return {"model": body.get("model", "jina-reranker-v2-base-multilingual"),
                "usage": usage, "results": results}, {}  # fmt: skip


class VoyageFake(Fake):
    """Voyage ``POST /v1/rerank``: docs.voyageai.com/docs/reranker."""

    name = "voyage"
    routes = ("/v1/rerank",)
    limit = 1000

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        return {
            "query": ("str", True),
            "documents": ("strs", True),
            "model": ("str", True),
            "top_k": ("int", False),
            "return_documents": ("bool", False),
            "truncation": ("bool", False),
        }

    def truncate_off(self, body: Body) -> bool:
        return body.get("truncation") is False

    def error(self, status: int, message: str) -> Body:
        return {"detail": message}

    def answer(self, route: str, body: Body, scores: list[float], words: int) -> Any:
        data = [{"index": i, "relevance_score": scores[i]} for i in _ranked(scores)]
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"total_tokens": words}}, {}  # fmt: skip


class MixedbreadFake(Fake):
    """Mixedbread ``POST /v1/reranking``: mixedbread.com/api-reference/endpoints/reranking."""

    name = "mixedbread"
    routes = ("/v1/reranking",)
    docs_field = "input"
    limit = 1000
    limit_status = 422

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        return {
            "model": ("str", True),
            "query": ("str", True),
            "input": ("strs", True),
            "rank_fields": ("strs", False),
            "top_k": ("int", False),
            "return_input": ("bool", False),
        }

    def error(self, status: int, message: str) -> Body:
        return {"detail": message}

    def answer(self, route: str, body: Body, scores: list[float], words: int) -> Any:
        data = [{"index": i, "score": scores[i]} for i in _ranked(scores)]
        return {"object": "list", "data": data, "model": body["model"], "top_k": len(scores),
                "return_input": False,
                "usage": {"prompt_tokens": words, "total_tokens": words}}, {}  # fmt: skip


class PineconeFake(Fake):
    """Pinecone ``POST /rerank``: pinecone-api 2026-07/inference_2026-07.oas.yaml."""

    name = "pinecone"
    routes = ("/rerank",)
    version = "2026-07"
    models: ClassVar[dict[str, int]] = {
        "bge-reranker-v2-m3": 100,
        "pinecone-rerank-v0": 100,
        "cohere-rerank-3.5": 200,
    }

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        return {
            "model": ("str", True),
            "query": ("str", True),
            "documents": ("objs", True),
            "top_n": ("int", False),
            "return_documents": ("bool", False),
            "rank_fields": ("strs", False),
            "parameters": ("obj", False),
        }

    def auth(self, headers: dict[str, str]) -> str | None:
        given = headers.get("api-key", "")
        return None if given == KEY else given

    def documents(self, body: Body) -> list[str]:
        return [str(d.get("text")) for d in body["documents"]]

    def truncate_off(self, body: Body) -> bool:
        return (body.get("parameters") or {}).get("truncate") == "NONE"

    def error(self, status: int, message: str) -> Body:
        codes = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED"}
        return {"error": {"code": codes.get(status, "UNKNOWN"), "message": message},
                "status": status}  # fmt: skip

    def answer(self, route: str, body: Body, scores: list[float], words: int) -> Any:
        data = [{"index": i, "score": scores[i]} for i in _ranked(scores)]
        return {"model": body["model"], "data": data, "usage": {"rerank_units": 1}}, {}


class VLLMFake(Fake):
    """vLLM's pooling routes: vllm/entrypoints/pooling/scoring/protocol.py, api_router.py."""

    name = "vllm"
    routes = ("/rerank", "/v1/rerank", "/v2/rerank", "/score")
    raw_field = "use_activation"
    raw_when = False

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        common = {
            "model": ("str", False),
            "documents": ("str|strs", True),
            "truncate_prompt_tokens": ("int", False),
            "truncation_side": ("str", False),
            "use_activation": ("bool", False),
        }
        if route == "/score":
            return {"queries": ("str|strs", True), **common}
        return {
            "query": ("str", True),
            "top_n": ("int", False),
            "max_tokens_per_doc": ("int", False),
            "max_tokens_per_query": ("int", False),
            **common,
        }

    def query(self, body: Body) -> str:
        return str(body.get("query", body.get("queries")))

    def error(self, status: int, message: str) -> Body:
        return {"error": {"message": message, "type": "BadRequestError", "param": None,
                          "code": status}}  # fmt: skip

    def answer(self, route: str, body: Body, scores: list[float], words: int) -> Any:
        usage = {"prompt_tokens": words, "total_tokens": words}
        model = body.get("model", "served-model")
        if route == "/score":
            data = [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)]
            return {"id": "score-1", "object": "list", "created": 0, "model": model,
                    "data": data, "usage": usage}, {}  # fmt: skip
        documents = body["documents"]
        results = [
            {"index": i, "document": {"text": documents[i], "multi_modal": None},
             "relevance_score": scores[i]}
            for i in _ranked(scores)
        ]  # fmt: skip
        return {"id": "rerank-1", "model": model, "usage": usage, "results": results}, {}


class InfinityFake(Fake):
    """Infinity ``POST /rerank``: infinity_emb fastapi_schemas/pymodels.py, errors.py."""

    name = "infinity"
    routes = ("/rerank", "/v1/rerank")
    limit = 2048
    limit_status = 422
    raw_field = "raw_scores"

    def fields(self, route: str) -> dict[str, tuple[str, bool]]:
        return {
            "query": ("str", True),
            "documents": ("strs", True),
            "return_documents": ("bool", False),
            "raw_scores": ("bool", False),
            "model": ("str", False),
            "top_n": ("int", False),
        }

    def error(self, status: int, message: str) -> Body:
        return {"error": {"message": message, "type": None, "param": None, "code": status}}

    def answer(self, route: str, body: Body, scores: list[float], words: int) -> Any:
        results = [{"relevance_score": scores[i], "index": i} for i in _ranked(scores)]
        return {"object": "rerank", "results": results, "model": body.get("model", "default"),
                "usage": {"prompt_tokens": words, "total_tokens": words},
                "id": "infinity-1", "created": 0}, {}  # fmt: skip


#: Every fake, by provider name.
FAKES: dict[str, Fake] = {
    fake.name: fake
    for fake in (
        TEIFake(),
        CohereFake(),
        JinaFake(),
        VoyageFake(),
        MixedbreadFake(),
        PineconeFake(),
        VLLMFake(),
        InfinityFake(),
    )
}
