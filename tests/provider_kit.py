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
  (:meth:`FakeProviders.fail`: 400/401/413/422/429/503 with ``Retry-After``, or a hang:
  the answer held for ``hang_s`` seconds or until :meth:`FakeProviders.release`).

The fakes themselves, one class per provider with its source, are in
tests/provider_fakes.py; /work/shared/RERANKERS.md sections 3 and 4 collect the sources.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from provider_fakes import FAKES, KEY, MAX_WORDS, Body, Fake, PineconeFake, TEIFake, check_fields

from crossrank import CrossEncoderScorer
from crossrank.serve.server import bind

__all__ = ["FAKES", "KEY", "MAX_WORDS", "Failure", "FakeProviders", "Recorded", "fake_providers"]


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
    hang_s: float = 0.0


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
    released: threading.Event = field(default_factory=threading.Event)

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

    def release(self) -> None:
        """Let every held (hanging) request answer now."""
        self.released.set()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.failures.clear()
            self.limits.clear()
        self.released.set()
        self.released = threading.Event()

    async def _hold(self, name: str) -> None:
        """Wait out the hang of the provider's next planned failure, if it has one (at
        most its ``hang_s``; :meth:`release` ends it)."""
        with self.lock:
            queue = self.failures.get(name) or []
            hang = queue[0].hang_s if queue else 0.0
        released, until = self.released, time.monotonic() + hang
        while hang and not released.is_set() and time.monotonic() < until:
            await asyncio.sleep(0.02)

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

    def scores(
        self, query: str, documents: list[str], raw: bool, instruction: str | None = None
    ) -> list[float]:
        """The local scorer's scores (the model reads ``instruction`` where one is sent)."""
        activation = "raw" if raw else "sigmoid"
        details = self.scorer.score_details(
            query, documents, activation=activation, instruction=instruction
        )
        return details.scores

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
        scores = self.scores(query, documents, fake.raw(body), fake.instruction(body))
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
            await self._hold(fake.name)
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
        try:
            yield fakes
        finally:
            fakes.release()
