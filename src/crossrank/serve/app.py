"""The HTTP app: :func:`create_app` puts one scorer behind TEI- and Cohere-compatible
endpoints, with crossrank's own options in an extra field.

=================  =========================================================================
``POST /rerank``    TEI: ``{query, texts, raw_scores, return_text, truncate}`` ->
                    ``[{index, score[, text]}]``, best first
``POST /v1/rerank`` Cohere / Jina: ``{model, query, documents, top_n, return_documents}`` ->
                    ``{id, model, results: [{index, relevance_score[, document]}], meta}``
``GET /health``     ``{"status": "ok"}`` (200) once the model is loaded; 503 before, while
                    draining, or if loading failed
``GET /info``       model, family, backend, max_length, activation, version, limits, batching
``GET /metrics``    Prometheus text, every name prefixed ``crossrank_``
=================  =========================================================================

Either scoring endpoint takes a top-level ``instruction`` (vLLM's field: the request's task
instruction for an instruction-following model) and ``"crossrank": {...}``
(:class:`CrossrankOptions`): the core's ``rerank`` options (passages, token budget, relative
cut, activation, fusion, instruction). Every error is
``{"error": message, "error_type": kind[, "limit": name]}``. See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from crossrank._optional import missing_extra

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as e:
    raise missing_extra("crossrank serve", "serve", e) from e

from crossrank._version import __version__
from crossrank.errors import CrossrankError
from crossrank.remote import RemoteRequestError, RemoteScorer, RemoteScorerError
from crossrank.scorer import CrossEncoderScorer
from crossrank.selection import Hit
from crossrank.serve.auth import ApiKeys
from crossrank.serve.batcher import BatcherClosedError
from crossrank.serve.engine import (
    Batching,
    Engine,
    Overloaded,
    ScoreCall,
    ScoreResult,
    Unavailable,
)
from crossrank.serve.limits import LimitExceeded, Limits
from crossrank.serve.metrics import CONTENT_TYPE, Metrics
from crossrank.serve.models import (
    CohereRequest,
    CohereResponse,
    CrossrankOptions,
    ErrorBody,
    HealthBody,
    TEIRequest,
    TEIResult,
)

__all__ = ["ENDPOINTS", "OPEN_PATHS", "create_app"]

logger = logging.getLogger("crossrank")

#: The app's paths (requests elsewhere are counted as ``endpoint="other"``).
ENDPOINTS = ("/rerank", "/v1/rerank", "/health", "/info", "/metrics")
#: Paths answered without an API key (load balancers and orchestrators probe them).
OPEN_PATHS = ("/health",)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what}
    for code, what in (
        (401, "missing or wrong API key"),
        (413, "over a limit (the body names it)"),
        (422, "malformed JSON, wrong types, an empty query or documents"),
        (429, "the queue is full; see Retry-After"),
        (503, "not ready, or shutting down; see Retry-After"),
    )
}


def create_app(
    scorer: CrossEncoderScorer | RemoteScorer | Engine | Any,
    *,
    limits: Limits | None = None,
    batching: Batching | None = None,
    api_keys: ApiKeys | Sequence[str] | None = None,
    threads: int = 32,
    load_in_background: bool = True,
) -> FastAPI:
    """Build the server's app around one scorer.

    Args:
        scorer: The scorer to serve (its settings are the server's: model, backend,
            activation, long documents...), a :class:`crossrank.RemoteScorer` to forward to
            its provider, a composite of :mod:`crossrank.compose`, or a ready
            :class:`Engine`.
        limits: Per-request limits and the queue size (default :class:`Limits`).
        batching: How concurrent requests share forward passes (default
            :class:`Batching`).
        api_keys: Accepted API keys (``Authorization: Bearer <key>``); none: no key needed.
        threads: Worker threads running the core for admitted requests.
        load_in_background: Load the model in a thread at startup (``/health`` is 503 until
            it is loaded); False: startup waits for it.

    Returns:
        A FastAPI app; ``app.state.engine`` is its :class:`Engine` and ``app.state.metrics``
        its :class:`crossrank.serve.metrics.Metrics`. Run it with uvicorn, or with
        :func:`crossrank.serve.server.serve` for the drain on shutdown.

    Example:
        >>> from crossrank import CrossEncoderScorer
        >>> from crossrank.serve import create_app
        >>> app = create_app(CrossEncoderScorer("cross-encoder/ms-marco-MiniLM-L6-v2"))
        >>> # uvicorn.run(app, host="127.0.0.1", port=8080)
    """
    if isinstance(scorer, Engine):
        if limits is not None or batching is not None:
            raise ValueError("pass limits and batching to the Engine, not beside it")
        engine = scorer
    else:
        engine = Engine(scorer, limits=limits, batching=batching, threads=threads)
    metrics = engine.metrics or Metrics()
    if engine.metrics is None:
        engine.attach_metrics(metrics)
    keys = api_keys if isinstance(api_keys, ApiKeys) else ApiKeys(api_keys or ())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start(background=load_in_background)
        try:
            yield
        finally:
            engine.drain()
            await asyncio.to_thread(engine.wait_idle, 30.0)
            engine.close()

    app = FastAPI(
        title="crossrank",
        version=__version__,
        summary="A cross-encoder reranker behind TEI- and Cohere-compatible endpoints.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.metrics = metrics
    errors = _Errors(metrics, engine)
    app.add_middleware(
        _Guard,
        keys=keys,
        metrics=metrics,
        errors=errors,
        max_body_bytes=engine.limits.max_body_bytes,
    )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, error: RequestValidationError) -> Response:
        return errors.response(422, "validation", _validation_message(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            message = f"no endpoint {request.url.path}; the endpoints are listed by GET /info"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        kind = "not_found" if error.status_code in (404, 405) else "validation"
        return errors.response(error.status_code, kind, message, headers=error.headers)

    @app.post(
        "/rerank",
        response_model=list[TEIResult],
        responses=_ERRORS,
        summary="Rerank texts (text-embeddings-inference's /rerank)",
    )
    async def rerank_tei(body: TEIRequest) -> Response:
        extra = body.crossrank
        try:
            call = ScoreCall(
                body.query,
                body.texts,
                activation=_tei_activation(body.raw_scores, extra),
                rerank=extra is not None and extra.skip_blank,
                options=body.call_options(),
            )
            result = await engine.score(call)
            if body.truncate is False:
                _refuse_truncated(result, engine)
        except Exception as error:
            return errors.of(error)
        out = []
        for hit in result.hits:
            item: dict[str, Any] = {"index": hit.index, "score": _number(hit.score)}
            if body.return_text:
                item["text"] = body.texts[hit.index]
            if extra is not None:
                item.update(_details(hit, result))
            out.append(item)
        for item in _unscored(result, "score", extra is not None):
            if body.return_text:
                item["text"] = body.texts[item["index"]]
            out.append(item)
        return JSONResponse(out)

    @app.post(
        "/v1/rerank",
        response_model=CohereResponse,
        responses=_ERRORS,
        summary="Rerank documents (Cohere's and Jina's /v1/rerank)",
    )
    async def rerank_cohere(body: CohereRequest) -> Response:
        extra = body.crossrank
        texts = [d if isinstance(d, str) else d.text for d in body.documents]
        try:
            call = ScoreCall(
                body.query,
                texts,
                top_k=body.top_n,
                activation=None if extra is None else extra.activation,
                rerank=extra is not None and extra.skip_blank,
                options=body.call_options(),
            )
            result = await engine.score(call)
        except Exception as error:
            return errors.of(error)
        results = []
        for hit in result.hits:
            item: dict[str, Any] = {"index": hit.index, "relevance_score": _number(hit.score)}
            if body.return_documents:
                doc = body.documents[hit.index]
                item["document"] = {"text": doc} if isinstance(doc, str) else doc.model_dump()
            if extra is not None:
                item.update(_details(hit, result))
            results.append(item)
        for item in _unscored(result, "relevance_score", extra is not None):
            if body.return_documents:
                doc = body.documents[item["index"]]
                item["document"] = {"text": doc} if isinstance(doc, str) else doc.model_dump()
            results.append(item)
        answer: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "model": engine.scorer.model_name,
            "results": results,
            "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}},
        }
        if extra is not None:
            answer["crossrank"] = {
                "skipped": result.skipped,
                "pairs": result.pairs,
                "activation": result.activation,
                "unscored": result.unscored,
                "deadline_unscored": result.deadline_unscored,
            }
            if result.served_by is not None:
                answer["crossrank"]["served_by"] = result.served_by
            if result.usage is not None:
                answer["crossrank"]["usage"] = result.usage
        return JSONResponse(answer)

    @app.get(
        "/health",
        response_model=HealthBody,
        responses={503: {"model": HealthBody, "description": "not ready"}},
        summary="Ready once the model is loaded",
    )
    async def health() -> Response:
        state = engine.state
        if state == "ready":
            return JSONResponse({"status": "ok"})
        body: dict[str, Any] = {"status": state}
        if state == "failed":
            body["detail"] = engine.load_error
        headers = {"Retry-After": str(engine.limits.retry_after)} if state != "failed" else {}
        return JSONResponse(body, status_code=503, headers=headers)

    @app.get("/info", summary="The model, its settings, the limits and the batching")
    async def info() -> dict[str, Any]:
        return engine.info()

    @app.get("/metrics", summary="Prometheus metrics (names prefixed crossrank_)")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


# ---------------------------------------------------------------------- helpers


def _number(score: float) -> float | None:
    """A score for JSON: NaN and infinities (a broken model) become null."""
    return score if math.isfinite(score) else None


def _details(hit: Hit, result: ScoreResult) -> dict[str, Any]:
    details: dict[str, Any] = {
        "truncated": hit.truncated,
        "span": None if hit.span is None else list(hit.span),
        "passage": None if hit.passage is None else list(hit.passage),
    }
    if result.windows is not None:
        details["windows"] = result.windows[hit.index]
    if hit.model_score is not None:
        details["model_score"] = _number(hit.model_score)
    if result.member_scores and hit.index in result.member_scores:
        details["member_scores"] = [_number(x) for x in result.member_scores[hit.index]]
    return details


def _unscored(result: ScoreResult, score_key: str, extra: bool) -> list[dict[str, Any]]:
    """The results of the documents returned without a score, after the hits: a null score
    (and, with a ``crossrank`` field, ``"unscored": true``)."""
    items: list[dict[str, Any]] = []
    for index in result.unscored:
        item: dict[str, Any] = {"index": index, score_key: None}
        if extra:
            item["unscored"] = True
        items.append(item)
    return items


def _tei_activation(raw_scores: bool, extra: CrossrankOptions | None) -> str | None:
    wanted = None if extra is None else extra.activation
    if raw_scores and wanted not in (None, "raw"):
        raise ValueError(
            f"raw_scores=true asks for logits but crossrank.activation is {wanted!r}; "
            "send one of them"
        )
    return "raw" if raw_scores else wanted


def _refuse_truncated(result: ScoreResult, engine: Engine) -> None:
    """TEI's ``truncate: false``: a text the model did not read whole is an error (413)."""
    cut = [hit.index for hit in result.hits if hit.truncated]
    if not cut:
        return
    scorer = engine.scorer
    if not isinstance(scorer, CrossEncoderScorer):  # a crossrank server upstream truncated
        raise LimitExceeded(
            "max_length",
            0,
            len(cut),
            "texts",
            message=f"texts {cut[:10]} were not read whole by {scorer.model_name} and truncate "
            "is false; send truncate: true to score what fits, or shorten them",
        )
    if scorer.long_documents == "chunk":
        limit, value = "max_windows", scorer.max_windows
        why = f"more than max_windows={value} windows of max_length={scorer.max_length} tokens"
    else:
        limit, value = "max_length", scorer.max_length
        why = f"longer than max_length={value} tokens with the query"
    raise LimitExceeded(
        limit,
        value,
        len(cut),
        "texts",
        message=f"texts {cut[:10]} were not read whole ({why}) and truncate is false; send "
        "truncate: true to score what fits, or shorten them",
    )


def _validation_message(errors: Sequence[Any]) -> str:
    """One readable line for pydantic's errors: where, and what must hold."""
    messages: list[str] = []
    for err in errors:
        kind = err.get("type")
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error") or err.get("msg")
            return f"the request body is not valid JSON ({reason}); send a JSON object"
        if not loc:
            if kind == "missing":
                return "the request body is missing; send a JSON object"
            messages.append(
                f"the request body must be a JSON object (Content-Type: application/json): "
                f"{err.get('msg')}"
            )
            continue
        if len(loc) >= 2 and loc[0] == "documents" and loc[-1] in ("str", "TextDocument"):
            messages.append(
                f'documents.{loc[1]}: must be a string or an object like {{"text": "..."}}'
            )
            continue
        message = err.get("msg", "invalid")
        if kind == "extra_forbidden":
            message = "unknown field (check its spelling; crossrank's options go in 'crossrank')"
        messages.append(f"{'.'.join(loc)}: {message}")
    unique = list(dict.fromkeys(messages))
    more = f" (and {len(unique) - 5} more)" if len(unique) > 5 else ""
    return "; ".join(unique[:5]) + more


class _Errors:
    """Every error response: ``{"error", "error_type"[, "limit"]}``, counted by kind."""

    def __init__(self, metrics: Metrics, engine: Engine) -> None:
        self.metrics = metrics
        self.engine = engine

    def response(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        limit: str | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        self.metrics.errors.labels(kind=kind).inc()
        body: dict[str, Any] = {"error": message, "error_type": kind}
        if limit is not None:
            body["limit"] = limit
        out = dict(headers or {})
        if retry_after is not None:
            out["Retry-After"] = str(retry_after)
        return JSONResponse(body, status_code=status, headers=out)

    def of(self, error: BaseException) -> JSONResponse:
        """The response for an error raised while answering a scoring request."""
        if isinstance(error, LimitExceeded):
            return self.response(413, "limit", str(error), limit=error.limit)
        if isinstance(error, Overloaded):
            return self.response(429, "overloaded", str(error), retry_after=error.retry_after)
        if isinstance(error, Unavailable):
            closing = self.engine.state in ("draining", "closed")
            return self.response(
                503,
                "unavailable",
                str(error),
                retry_after=error.retry_after,
                headers={"Connection": "close"} if closing else None,
            )
        if isinstance(error, BatcherClosedError):
            return self.response(503, "unavailable", "the server is shutting down", retry_after=1)
        if isinstance(error, RemoteScorerError):
            return self._upstream(error)
        if isinstance(error, (ValueError, TypeError)) and not isinstance(error, CrossrankError):
            return self.response(422, "validation", str(error))
        logger.error("crossrank: scoring failed", exc_info=error)
        return self.response(
            500,
            "internal",
            f"scoring failed ({type(error).__name__}); the server's log has the details",
        )

    def _upstream(self, error: RemoteScorerError) -> JSONResponse:
        """A provider this server forwards to failed: its refusal of the request is the
        client's (422), its rate limit a 429, anything else a bad gateway (502)."""
        message = f"the provider {error.provider or ''} failed: {error}"
        if isinstance(error, RemoteRequestError):
            return self.response(422, "validation", message)
        if error.status in (429, 503):
            retry = self.engine.limits.retry_after
            return self.response(429, "overloaded", message, retry_after=retry)
        logger.error("crossrank: the provider failed: %s", error)
        return self.response(502, "upstream", message)


class _Guard:
    """Pure ASGI middleware in front of everything: the API key, the body size cap (before
    any parsing), UTF-8, and the request metrics."""

    def __init__(
        self,
        app: Any,
        *,
        keys: ApiKeys,
        metrics: Metrics,
        errors: _Errors,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self.errors = errors
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self._refuse(scope, path)
            if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
                body, refusal = await self._read_body(receive)
                if body is None and refusal is None:  # the client went away
                    status = 499
                    return
                receive = _replay(body or b"", receive)
            if refusal is not None:
                await refusal(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(endpoint=endpoint, code=str(status)).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)

    def _refuse(self, scope: Scope, path: str) -> Response | None:
        headers = dict(scope.get("headers") or [])
        if self.keys and path not in OPEN_PATHS:
            given = headers.get(b"authorization")
            if not self.keys.allows(None if given is None else given.decode("latin-1")):
                return self.errors.response(
                    401,
                    "unauthorized",
                    "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return self.errors.response(422, "validation", "Content-Length is not a number")
            if size > self.max_body_bytes:
                return self._too_large(size)
        return None

    def _too_large(self, size: int | None) -> Response:
        got = f"{size} bytes" if size is not None else "more"
        return self.errors.response(
            413,
            "limit",
            f"the request body has {got}, more than max_body_bytes={self.max_body_bytes} "
            "allows; split it into smaller requests",
            limit="max_body_bytes",
        )

    async def _read_body(self, receive: Receive) -> tuple[bytes | None, Response | None]:
        """The whole body (at most ``max_body_bytes``), checked to be UTF-8."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, self._too_large(None)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, self.errors.response(
                422,
                "validation",
                f"the request body is not valid UTF-8 (byte {e.start}); send JSON encoded in UTF-8",
            )
        return body, None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read ahead, then the client's later messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
