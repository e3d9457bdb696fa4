"""Fake rerank providers, each written from its API reference, on one local HTTP server.

Every fake lives under its own prefix (``http://127.0.0.1:PORT/<provider>`` + the
provider's route), so one uvicorn server on a free port serves them all. A fake:

- checks the request field by field: the required fields, the documented types, no field
  the reference does not list, and the auth headers (a wrong one is a 401 in the
  provider's own error shape);
- answers as documented: its field names (``results`` / ``data`` / a bare array;
  ``relevance_score`` / ``score``), sorted best first, with its usage;
- enforces its documents-per-request limit and its truncation switch with its own error;
- scores with a real local :class:`crossrank.CrossEncoderScorer` (a tiny model), so the
  client's results can be compared with the core's; probabilities are the core's sigmoid,
  logits where the provider returns them on request;
- records each request (path, headers, body) for golden bodies, and fails on demand
  (:meth:`FakeProviders.fail`: 400/401/413/422/429/503 with ``Retry-After``).

Sources are named on each fake; /work/shared/RERANKERS.md sections 3 and 4 collect them.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from crossrank import CrossEncoderScorer
from crossrank.serve.server import bind

#: The key every fake accepts.
KEY = "sk-test-provider-key-3f9a"
#: Words a fake reads per document before ``truncate: false`` is an error.
MAX_WORDS = 40

Body = dict[str, Any]


@dataclass
class Recorded:
    """One request a fake received."""

    provider: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    """A planned failure: the next ``times`` requests get ``status`` with the provider's
    error body (or ``body`` as it is: an answer in another form)."""

    status: int
    times: int = 1
    retry_after: str | None = None
    message: str = "planned failure"
    body: Any = None


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


# ---------------------------------------------------------------------- the server


@dataclass
class FakeProviders:
    """Every fake under one app; ``url(name)`` is a fake's base address once serving."""

    scorer: CrossEncoderScorer
    base: str = ""
    requests: list[Recorded] = field(default_factory=list)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def fail(self, name: str, failure: Failure) -> None:
        """Plan a failure for the provider's next requests."""
        with self.lock:
            self.failures.setdefault(name, []).append(failure)

    def sent(self, name: str) -> list[Recorded]:
        """The requests a provider received, in order."""
        with self.lock:
            return [r for r in self.requests if r.provider == name]

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.failures.clear()
            self.limits.clear()

    def _planned(self, name: str) -> Failure | None:
        with self.lock:
            queue = self.failures.get(name) or []
            if not queue:
                return None
            failure = queue[0]
            failure.times -= 1
            if failure.times <= 0:
                queue.pop(0)
            return failure

    def scores(self, query: str, documents: list[str], raw: bool) -> list[float]:
        activation = "raw" if raw else "sigmoid"
        return self.scorer.score_details(query, documents, activation=activation).scores

    def handle(self, fake: Fake, route: str, headers: dict[str, str], body: Any) -> Response:
        self.requests.append(Recorded(fake.name, route, headers, body))

        def error(status: int, message: str, extra: dict[str, str] | None = None) -> Response:
            return JSONResponse(fake.error(status, message), status_code=status, headers=extra)

        failure = self._planned(fake.name)
        if failure is not None:
            extra = {} if failure.retry_after is None else {"Retry-After": failure.retry_after}
            if failure.body is not None:
                return JSONResponse(failure.body, status_code=failure.status, headers=extra)
            return error(failure.status, failure.message, extra)
        token = fake.auth(headers)
        if token is not None:
            return error(401, f"invalid api key {token!r}")  # echoes it: the client redacts
        if fake.name == "pinecone" and headers.get("x-pinecone-api-version") != "2026-07":
            return error(400, "X-Pinecone-Api-Version is required")
        problem = check_fields(body, fake.fields(route))
        if problem is not None:
            return error(422 if fake.name in ("tei", "infinity", "mixedbread") else 400, problem)
        documents = fake.documents(body)
        limit = self.limits.get(fake.name, fake.limit)
        if fake.name == "pinecone":
            limit = self.limits.get(fake.name, PineconeFake.models.get(body["model"], 100))
        if not documents:
            return error(400, "documents must not be empty")
        if limit is not None and len(documents) > limit:
            return error(
                fake.limit_status, f"batch size {len(documents)} > maximum allowed {limit}"
            )
        if fake.truncate_off(body) and any(len(d.split()) > MAX_WORDS for d in documents):
            return error(fake.truncate_status, f"a document is longer than {MAX_WORDS} tokens")
        query = fake.query(body)
        scores = self.scores(query, documents, fake.raw(body))
        words = len(query.split()) * len(documents) + sum(len(d.split()) for d in documents)
        content, extra = fake.answer(route, body, scores, words)
        return JSONResponse(content, headers=extra)

    def app(self) -> FastAPI:
        app = FastAPI()
        for fake in FAKES.values():
            for route in fake.routes:
                app.add_api_route(
                    f"/{fake.name}{route}", self._endpoint(fake, route), methods=["POST"]
                )
        app.add_api_route("/tei/info", self._tei_info, methods=["GET"])
        app.add_api_route("/tei/health", self._ok, methods=["GET"])
        app.add_api_route("/vllm/health", self._ok, methods=["GET"])
        app.add_api_route("/infinity/health", self._ok, methods=["GET"])
        return app

    def _endpoint(self, fake: Fake, route: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw)
            except ValueError:
                return JSONResponse(fake.error(400, "invalid JSON"), status_code=400)
            headers = {k.lower(): v for k, v in request.headers.items()}
            return self.handle(fake, route, headers, body)

        return endpoint

    async def _tei_info(self) -> Body:
        limit = self.limits.get("tei", TEIFake.limit)
        return {"model_id": "fake/tei-reranker", "max_client_batch_size": limit,
                "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}}}}  # fmt: skip

    async def _ok(self) -> Response:
        return Response(status_code=200)


@contextmanager
def serving(app: Any, *, timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) in a thread; its base URL until the block ends."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-providers", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            assert thread.is_alive(), "the fake providers' server stopped while starting"
            assert time.monotonic() < deadline, f"the fake server did not start in {timeout} s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


@contextmanager
def fake_providers(scorer: CrossEncoderScorer) -> Iterator[FakeProviders]:
    """Every fake provider, scoring with ``scorer``, on one local server."""
    fakes = FakeProviders(scorer)
    with serving(fakes.app()) as base:
        fakes.base = base
        yield fakes
