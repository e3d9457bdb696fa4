"""The serving engine: one scorer, its cross-request batcher, the admission queue.

Framework-free (no FastAPI): :func:`crossrank.serve.app.create_app` puts HTTP in front of
it, and a Ray Serve deployment can hold one per replica. Each request runs the core's own
``rerank()`` (or ``score_details()``) in a worker thread, so tokenization, windows,
selection, passages and fusion are the core's; the forward passes of concurrent requests
are shared by a :class:`crossrank.serve.batcher.RowBatcher` installed as the scorer's
``row_forward`` hook.

Example:
    >>> import asyncio
    >>> from crossrank import CrossEncoderScorer
    >>> from crossrank.serve import Engine, ScoreCall
    >>> engine = Engine(CrossEncoderScorer("cross-encoder/ms-marco-MiniLM-L6-v2"))
    >>> engine.start(background=False)
    >>> result = asyncio.run(engine.score(ScoreCall("what causes tides?", ["The moon.", "Pods."])))
    >>> [hit.index for hit in result.hits]
    [0, 1]
    >>> engine.close()
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from crossrank._version import __version__
from crossrank.scorer import CrossEncoderScorer
from crossrank.selection import Hit, select
from crossrank.serve.batcher import RowBatcher
from crossrank.serve.limits import LimitExceeded, Limits, TokenAllowance, token_allowance
from crossrank.validation import (
    check_positive_int,
    check_query,
    check_relative_cut,
    check_score_threshold,
    check_top_k,
)

__all__ = [
    "FUSION_OPTIONS",
    "Batching",
    "Engine",
    "Overloaded",
    "ScoreCall",
    "ScoreResult",
    "Unavailable",
]

logger = logging.getLogger("crossrank")

#: Keyword arguments of the core's ``rerank`` a request may carry once the core has them.
FUSION_OPTIONS = ("first_stage_scores", "fusion", "fusion_weight", "fusion_normalization")

#: Options that only the core's ``rerank`` takes (``skip_blank=False`` uses
#: ``score_details``).
_RERANK_ONLY = ("passages", "contents", *FUSION_OPTIONS)


class Overloaded(Exception):
    """The queue is full (``429``); try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class Unavailable(Exception):
    """The model is not ready, failed to load, or the server is draining (``503``)."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(frozen=True)
class Batching:
    """How concurrent requests share forward passes (see :class:`RowBatcher`).

    Attributes:
        max_wait_ms: Longest wait for more rows before a pass that is not full.
        max_batch_tokens: Most padded tokens (rows x padded width) per pass.
        max_batch_rows: Most rows per pass (None: the scorer's ``batch_size``).
    """

    max_wait_ms: float = 5.0
    max_batch_tokens: int | None = 16384
    max_batch_rows: int | None = None


@dataclass(frozen=True)
class ScoreCall:
    """One scoring request, as an endpoint hands it to :meth:`Engine.score`.

    Attributes:
        query: The query.
        texts: The documents' texts.
        top_k: Keep the best K (None: all).
        activation: This request's activation (None: the scorer's).
        rerank: Run the core's ``rerank`` (documents without text are skipped and
            reported; passages and fusion available). False: ``score_details`` then the
            selection, every document scored as it is.
        options: Further keyword arguments of the core's ``rerank``
            (``score_threshold``, ``min_relative_score``, ``token_budget``, ``passages``,
            ``contents``, fusion ones).
    """

    query: str
    texts: Sequence[str | None]
    top_k: int | None = None
    activation: str | None = None
    rerank: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreResult:
    """What :meth:`Engine.score` returns.

    Attributes:
        hits: The kept documents, best first.
        skipped: Indices of documents without text (``rerank`` only).
        pairs: (query, window) pairs scored.
        windows: Windows scored per document, by input index (``score_details`` only).
        activation: The activation the scores are in.
        truncated: Documents not read in full (kept or not).
    """

    hits: list[Hit]
    skipped: list[int]
    pairs: int
    windows: list[int] | None
    activation: str
    truncated: int = 0


class Engine:
    """One scorer behind a bounded queue, with cross-request batching.

    Args:
        scorer: The scorer to serve. The engine installs its batcher as the scorer's
            ``row_forward`` hook when the model is loaded and removes it on :meth:`close`;
            serve a scorer nothing else uses.
        batching: How requests share forward passes.
        limits: Per-request limits and the queue size.
        threads: Worker threads running the core for admitted requests (tokenization,
            selection; they wait while the batcher runs their rows).
        metrics: A :class:`crossrank.serve.metrics.Metrics` to record into (None: none).

    Lifecycle: :meth:`start` loads the model (in a thread by default) and starts the
    batcher; :attr:`state` is ``"loading"``, ``"ready"``, ``"failed"``, ``"draining"`` or
    ``"closed"``; :meth:`drain` refuses new requests while admitted ones finish;
    :meth:`close` stops everything.
    """

    def __init__(
        self,
        scorer: CrossEncoderScorer,
        *,
        batching: Batching | None = None,
        limits: Limits | None = None,
        threads: int = 32,
        metrics: Any = None,
    ) -> None:
        if not isinstance(scorer, CrossEncoderScorer):
            raise TypeError(
                f"scorer must be a crossrank.CrossEncoderScorer, got {type(scorer).__name__}"
            )
        self.scorer = scorer
        self.batching = batching or Batching()
        self.limits = limits or Limits()
        self.threads: int = check_positive_int(threads, name="threads")  # type: ignore[assignment]
        self.metrics = metrics
        self.batcher: RowBatcher | None = None
        self.load_error: str | None = None
        self._state = "new"
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._executor: ThreadPoolExecutor | None = None
        self._rerank_params = set(inspect.signature(scorer.rerank).parameters)
        if metrics is not None:
            self.attach_metrics(metrics)

    def attach_metrics(self, metrics: Any) -> None:
        """Record into ``metrics`` (a :class:`crossrank.serve.metrics.Metrics`): passes,
        pairs, documents, the queue depth and the rows waiting for a pass. Call it before
        :meth:`start`."""
        self.metrics = metrics
        metrics.queue_depth.set_function(lambda: self._in_flight)
        metrics.track_waiting(lambda: self.batcher.waiting_rows if self.batcher else 0)

    def __repr__(self) -> str:
        return f"Engine({self.scorer!r}, state={self.state!r}, in_flight={self._in_flight})"

    # ------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> str:
        """``"new"``, ``"loading"``, ``"ready"``, ``"failed"``, ``"draining"`` or
        ``"closed"``."""
        return self._state

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet finished (the queue depth)."""
        return self._in_flight

    def start(self, *, background: bool = True) -> None:
        """Load the model and start the batcher; again: nothing.

        Args:
            background: Load in a thread (``/health`` says ``loading`` until it is done);
                False: load now, and raise what loading raises.
        """
        with self._lock:
            if self._state != "new":
                return
            self._state = "loading"
            self._executor = ThreadPoolExecutor(
                max_workers=self.threads, thread_name_prefix="crossrank-worker"
            )
        if background:
            threading.Thread(target=self._load, name="crossrank-load", daemon=True).start()
        else:
            self._load(reraise=True)

    def _load(self, reraise: bool = False) -> None:
        try:
            self.scorer.warm_up()
            batching = self.batching
            batcher = RowBatcher(
                max_batch_rows=batching.max_batch_rows or self.scorer.batch_size,
                max_batch_tokens=batching.max_batch_tokens,
                max_wait_ms=batching.max_wait_ms,
                on_pass=None if self.metrics is None else self.metrics.observe_pass,
            ).start()
        except Exception as error:
            self.load_error = f"{type(error).__name__}: {error}"
            with self._lock:
                if self._state == "loading":
                    self._state = "failed"
            logger.error("crossrank: the model could not be loaded: %s", self.load_error)
            if reraise:
                raise
            return
        with self._lock:
            if self._state != "loading":  # closed while loading
                batcher.close()
                return
            self.batcher = batcher
            self.scorer.row_forward = self._row_forward
            self._state = "ready"
        if self.metrics is not None:
            self.metrics.info.info(
                {
                    "model": self.scorer.model_name,
                    "backend": self.scorer.active_backend,
                    "version": __version__,
                }
            )

    def drain(self) -> None:
        """Refuse new requests (``503``) from now on; admitted ones finish."""
        with self._lock:
            if self._state in ("new", "loading", "ready", "failed"):
                self._state = "draining"
            self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is in flight; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self) -> None:
        """Stop the batcher and the workers and remove the hook from the scorer."""
        with self._lock:
            self._state = "closed"
            batcher, self.batcher = self.batcher, None
            executor, self._executor = self._executor, None
            if self.scorer.row_forward == self._row_forward:
                self.scorer.row_forward = None
        if batcher is not None:
            batcher.close()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ requests

    def check(self, call: ScoreCall) -> None:
        """The checks made before a request takes a place in the queue: the query, the
        number of documents and characters, and options this core supports.

        Raises:
            ValueError / TypeError: A bad query or option.
            LimitExceeded: Too many documents or characters.
        """
        check_query(call.query)
        if not call.texts:
            raise ValueError("documents must not be empty: send at least one document")
        limits = self.limits
        if len(call.texts) > limits.max_documents:
            raise LimitExceeded("max_documents", limits.max_documents, len(call.texts), "documents")
        chars = len(call.query) + sum(len(t) for t in call.texts if t)
        contents = call.options.get("contents") or ()
        chars += sum(len(c) for c in contents if c)
        if chars > limits.max_chars:
            raise LimitExceeded("max_chars", limits.max_chars, chars, "characters")
        given = [name for name, value in call.options.items() if value is not None]
        unknown = [name for name in given if name not in self._rerank_params]
        if unknown:
            raise ValueError(
                f"this server's crossrank {__version__} does not support {', '.join(unknown)}; "
                "upgrade the server or leave them out"
            )
        if not call.rerank:
            needs_rerank = [n for n in _RERANK_ONLY if call.options.get(n) not in (None, False)]
            if needs_rerank:
                raise ValueError(
                    f"{', '.join(needs_rerank)} need skip_blank=true (the core's rerank); "
                    "remove skip_blank=false"
                )

    def _admit(self) -> None:
        """Take a place in the queue, or raise why not."""
        retry = self.limits.retry_after
        with self._lock:
            state = self._state
            if state != "ready":
                raise Unavailable(_UNAVAILABLE.get(state, f"the server is {state}"), retry)
            if self._in_flight >= self.limits.max_queue:
                raise Overloaded(
                    f"the server is busy: {self._in_flight} requests are queued, "
                    f"max_queue={self.limits.max_queue}; retry after {retry} s",
                    retry,
                )
            self._in_flight += 1

    def _leave(self, future: Any = None) -> None:
        """Give a place in the queue back (``future``: the worker's, done)."""
        if future is not None and not future.cancelled():
            future.exception()  # retrieved: no "never retrieved" log for a gone client
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    async def score(self, call: ScoreCall) -> ScoreResult:
        """Check ``call``, take a place in the queue, and run the core in a worker thread.

        Raises:
            ValueError / TypeError: Bad input (the core's own checks included).
            LimitExceeded: A per-request limit.
            Overloaded: The queue is full.
            Unavailable: Not ready, failed, or draining.
        """
        self.check(call)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        context.run(token_allowance.set, TokenAllowance(self.limits.max_tokens))
        self._admit()
        try:
            executor = self._executor
            if executor is None:
                raise Unavailable("the server is shutting down", self.limits.retry_after)
            future = loop.run_in_executor(executor, context.run, self._run, call)
        except BaseException:
            self._leave()
            raise
        # The place is given back when the worker is done, even if this request's task is
        # cancelled (a client that went away): the queue bounds the work, not the waiters.
        future.add_done_callback(self._leave)
        result = await asyncio.shield(future)
        if self.metrics is not None:
            self.metrics.documents.inc(len(call.texts))
            self.metrics.pairs.inc(result.pairs)
            self.metrics.truncated.inc(result.truncated)
        return result

    def _run(self, call: ScoreCall) -> ScoreResult:
        """The core's work for one request (in a worker thread)."""
        scorer = self.scorer
        activation = call.activation or scorer.activation
        if call.rerank:
            out = scorer.rerank(
                call.query,
                call.texts,
                top_k=call.top_k,
                activation=call.activation,  # type: ignore[arg-type]
                **call.options,
            )
            return ScoreResult(
                out.hits, out.skipped, out.pairs, None, activation, out.truncated
            )
        options = call.options
        top_k = check_top_k(call.top_k)
        threshold = check_score_threshold(options.get("score_threshold"))
        relative = check_relative_cut(options.get("min_relative_score"), activation)
        budget = check_positive_int(
            options.get("token_budget"), name="token_budget", allow_none=True
        )
        texts = [t if t is not None else "" for t in call.texts]
        details = scorer.score_details(call.query, texts, activation=call.activation)  # type: ignore[arg-type]
        kept = select(
            details.scores,
            top_k=top_k,
            score_threshold=threshold,
            min_relative_score=relative,
            token_counts=None if budget is None else scorer.count_tokens(texts),
            token_budget=budget,
        )
        spans = details.spans or [None] * len(texts)
        hits = [Hit(i, details.scores[i], details.truncated[i], spans[i]) for i in kept]
        return ScoreResult(
            hits, [], details.pairs, details.windows, activation, details.num_truncated
        )

    def _row_forward(self, loaded: Any, features: Mapping[str, Sequence[Sequence[int]]]) -> Any:
        """The scorer's ``row_forward`` hook: count the request's tokens, then batch."""
        allowance = token_allowance.get()
        if allowance is not None:
            allowance.spend(sum(len(row) for row in features["input_ids"]))
        batcher = self.batcher
        if batcher is None:
            raise Unavailable("the server is shutting down", self.limits.retry_after)
        return batcher.forward_rows(loaded, features)

    # ------------------------------------------------------------------ describing

    def info(self) -> dict[str, Any]:
        """What ``GET /info`` returns: the model and its settings, limits and batching
        (never a secret)."""
        scorer = self.scorer
        loaded = scorer._loaded
        max_length = loaded.max_length if loaded is not None else scorer.requested_max_length
        calibration = scorer.calibration
        return {
            "model": scorer.model_name,
            "model_id": scorer.model_name,  # TEI's name for it
            "backend": loaded.backend if loaded is not None else scorer.backend,
            "device": None if loaded is None else str(loaded.device),
            "max_length": max_length,
            "max_input_length": max_length,  # TEI's name for it
            "max_client_batch_size": self.limits.max_documents,  # TEI's name for it
            "activation": scorer.activation,
            "activations": ["raw", "sigmoid"] + (["calibrated"] if calibration else []),
            "long_documents": scorer.long_documents,
            "batch_size": scorer.batch_size,
            "version": __version__,
            "state": self.state,
            "protocols": {"tei": "/rerank", "cohere": "/v1/rerank", "crossrank": "/v1/rerank"},
            "options": sorted(self._rerank_params & {*_RERANK_ONLY, "token_budget"}),
            "limits": asdict(self.limits),
            "batching": {
                "max_wait_ms": self.batching.max_wait_ms,
                "max_batch_tokens": self.batching.max_batch_tokens,
                "max_batch_rows": self.batching.max_batch_rows or scorer.batch_size,
                "threads": self.threads,
            },
        }


_UNAVAILABLE = {
    "new": "the server is starting; the model is not loaded yet",
    "loading": "the model is still loading; retry shortly (GET /health says when it is ready)",
    "failed": "the model failed to load; see GET /health and the server's log",
    "draining": "the server is shutting down; send the request to another replica or retry",
    "closed": "the server is shutting down",
}
