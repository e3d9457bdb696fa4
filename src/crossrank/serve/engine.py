"""The serving engine: one scorer, its cross-request batcher, the admission queue.

Framework-free (no FastAPI): :func:`crossrank.serve.app.create_app` puts HTTP in front of
it, and a Ray Serve deployment can hold one per replica. Each request runs the core's own
``rerank()`` (or ``score_details()``) in a worker thread, so tokenization, windows,
selection, passages and fusion are the core's; the forward passes of concurrent requests
are shared by a :class:`crossrank.serve.batcher.RowBatcher` installed as the scorer's
``row_forward`` hook.

The scorer may also be a :class:`crossrank.RemoteScorer` (``crossrank serve --provider``):
the server then forwards to the provider with one key, its queue and worker threads bound
what reaches the provider (``threads`` requests at once, retried as ``Retry-After`` asks),
and each call's usage (search units, tokens) is counted in ``/metrics``. A rerank API takes
one query per request, so there are no shared forward passes to batch.

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
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from crossrank._version import __version__
from crossrank.compose.members import leaves
from crossrank.remote import RemoteScorer
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
_RERANK_ONLY = ("passages", "contents", "deadline_ms", *FUSION_OPTIONS)

#: The time left passed on once a request's deadline is spent (it must be > 0): the scorer
#: then returns every document unscored.
_SPENT_MS = 1e-6

#: The request options ``GET /info`` lists when the scorer takes them.
_OPTIONS = frozenset({*_RERANK_ONLY, "token_budget", "instruction"})


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
            ``contents``, fusion ones, ``instruction``, ``deadline_ms``).
        arrived: When the request arrived (``time.monotonic()``): a deadline counts from
            here, so the wait in the queue is part of it.
    """

    query: str
    texts: Sequence[str | None]
    top_k: int | None = None
    activation: str | None = None
    rerank: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    arrived: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class ScoreResult:
    """What :meth:`Engine.score` returns.

    Attributes:
        hits: The kept documents, best first.
        skipped: Indices of documents without text (``rerank`` only).
        pairs: (query, window) pairs scored.
        windows: Windows scored per document, by input index (``score_details`` only).
        activation: The activation the scores are in.
        usage: What the call cost at the provider, by unit (a forwarding server only).
        unscored: Documents returned without a score, after the hits (a deadline's
            leftovers, a cascade's rest).
        deadline_unscored: Documents the deadline left unscored.
        served_by: A :class:`crossrank.compose.Fallback`'s ``"primary"`` or ``"fallback"``.
        member_scores: An :class:`crossrank.compose.Ensemble`'s member scores, by index.
        truncated: Documents not read in full (kept or not).
    """

    hits: list[Hit]
    skipped: list[int]
    pairs: int
    windows: list[int] | None
    activation: str
    usage: dict[str, float] | None = None
    unscored: list[int] = field(default_factory=list)
    deadline_unscored: int = 0
    served_by: str | None = None
    member_scores: Mapping[int, tuple[float, ...]] | None = None
    truncated: int = 0


class Engine:
    """One scorer behind a bounded queue, with cross-request batching.

    Args:
        scorer: The scorer to serve. The engine installs its batcher as the ``row_forward``
            hook of the scorer (of every :class:`crossrank.CrossEncoderScorer` in a
            composite of :mod:`crossrank.compose`) when the models are loaded and removes it
            on :meth:`close`; serve scorers nothing else uses. A
            :class:`crossrank.RemoteScorer` is served by forwarding each request to its
            provider (no batcher).
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
        scorer: CrossEncoderScorer | RemoteScorer | Any,
        *,
        batching: Batching | None = None,
        limits: Limits | None = None,
        threads: int = 32,
        metrics: Any = None,
    ) -> None:
        if not callable(getattr(scorer, "rerank", None)):
            raise TypeError(
                "scorer must be a crossrank.CrossEncoderScorer, RemoteScorer or a "
                f"crossrank.compose scorer (anything with rerank), got {type(scorer).__name__}"
            )
        self.scorer = scorer
        #: Whether requests are forwarded to a provider (a RemoteScorer) rather than scored.
        self.forwarding = isinstance(scorer, RemoteScorer)
        #: The scorers whose forward passes the batcher runs (a composite's local members).
        self.local = [s for s in leaves(scorer) if isinstance(s, CrossEncoderScorer)]
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
            batcher = self._new_batcher() if self.local else None
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
                if batcher is not None:
                    batcher.close()
                return
            if batcher is not None:
                self.batcher = batcher
                for scorer in self.local:
                    scorer.row_forward = self._row_forward
            self._state = "ready"
        if self.metrics is not None:
            self.metrics.info.info(
                {"model": self.scorer.model_name, "backend": self.backend, "version": __version__}
            )

    def _new_batcher(self) -> RowBatcher:
        return RowBatcher(
            max_batch_rows=self.batching.max_batch_rows or self.local[0].batch_size,
            max_batch_tokens=self.batching.max_batch_tokens,
            max_wait_ms=self.batching.max_wait_ms,
            on_pass=None if self.metrics is None else self.metrics.observe_pass,
        ).start()

    @property
    def backend(self) -> str:
        """The scorer's backend (``"provider:NAME"`` when forwarding); loads a local model."""
        scorer = self.scorer
        if isinstance(scorer, RemoteScorer):
            return f"provider:{scorer.provider}"
        if isinstance(scorer, CrossEncoderScorer):
            return scorer.active_backend
        kinds = [
            s.active_backend if isinstance(s, CrossEncoderScorer) else _kind_of(s)
            for s in leaves(scorer)
        ]
        return "+".join(dict.fromkeys(kinds))

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
            for scorer in self.local:
                if scorer.row_forward == self._row_forward:
                    scorer.row_forward = None
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
            self.metrics.observe_result(len(call.texts), result)
            if result.usage and isinstance(self.scorer, RemoteScorer):
                self.metrics.observe_usage(self.scorer.provider, result.usage)
        return result

    def _run(self, call: ScoreCall) -> ScoreResult:
        """The core's work for one request (in a worker thread)."""
        scorer = self.scorer
        activation = call.activation or scorer.activation
        if call.rerank or not hasattr(scorer, "score_details"):
            out = scorer.rerank(
                call.query,
                call.texts,
                top_k=call.top_k,
                activation=call.activation,  # type: ignore[arg-type]
                **self._with_deadline(call),
            )
            return ScoreResult(
                out.hits,
                out.skipped,
                out.pairs,
                None,
                activation,
                out.usage,
                unscored=out.unscored,
                deadline_unscored=out.deadline_unscored,
                served_by=getattr(out, "served_by", None),
                member_scores=getattr(out, "member_scores", None),
                truncated=out.truncated,
            )
        options = call.options
        top_k = check_top_k(call.top_k)
        threshold = check_score_threshold(options.get("score_threshold"))
        relative = check_relative_cut(options.get("min_relative_score"), activation)
        budget = check_positive_int(
            options.get("token_budget"), name="token_budget", allow_none=True
        )
        texts = [t if t is not None else "" for t in call.texts]
        details = scorer.score_details(
            call.query,
            texts,
            activation=call.activation,  # type: ignore[arg-type]
            instruction=options.get("instruction"),
        )
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
            hits, [], details.pairs, details.windows, activation, details.usage,
            truncated=details.num_truncated,
        )

    def _with_deadline(self, call: ScoreCall) -> dict[str, Any]:
        """The call's options, its deadline (the request's, else the scorer's) made what is
        left of it after the wait in the queue."""
        options = dict(call.options)
        deadline = options.get("deadline_ms") or getattr(self.scorer, "deadline_ms", None)
        if deadline is not None and deadline != float("inf"):
            waited_ms = (time.monotonic() - call.arrived) * 1000.0
            options["deadline_ms"] = max(deadline - waited_ms, _SPENT_MS)
        return options

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
        if isinstance(scorer, RemoteScorer):
            return self._forwarding_info(scorer)
        if not isinstance(scorer, CrossEncoderScorer):
            return self._composite_info()
        loaded = scorer._loaded
        max_length = loaded.max_length if loaded is not None else scorer.requested_max_length
        calibration = scorer.calibration
        return {
            "model": scorer.model_name,
            "model_id": scorer.model_name,  # TEI's name for it
            "family": None if loaded is None else loaded.family,
            "family_detail": None if loaded is None else loaded.family_detail,
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
            "options": sorted(self._rerank_params & _OPTIONS),
            "deadline_ms": scorer.deadline_ms,
            **self._batching_info(),
        }

    def _batching_info(self) -> dict[str, Any]:
        return {
            "limits": asdict(self.limits),
            "batching": {
                "max_wait_ms": self.batching.max_wait_ms,
                "max_batch_tokens": self.batching.max_batch_tokens,
                "max_batch_rows": self.batching.max_batch_rows
                or (self.local[0].batch_size if self.local else None),
                "threads": self.threads,
            },
        }

    def _composite_info(self) -> dict[str, Any]:
        """``GET /info`` of a composite: its config (members' settings; a remote key only
        as its variable's name), its activation, and the options it takes."""
        from crossrank.compose.config import scorer_to_config

        scorer = self.scorer
        try:
            config: dict[str, Any] | None = scorer_to_config(scorer)
        except TypeError:  # a member of the caller's own kind: no saved form to show
            config = None
        return {
            "model": scorer.model_name,
            "model_id": scorer.model_name,
            "family": None,  # a composite: each member's own family is in its /info
            "family_detail": None,
            "backend": self.backend,
            "scorer": config,
            "activation": scorer.activation,
            "max_client_batch_size": self.limits.max_documents,
            "version": __version__,
            "state": self.state,
            "protocols": {"tei": "/rerank", "cohere": "/v1/rerank", "crossrank": "/v1/rerank"},
            "options": sorted(self._rerank_params & _OPTIONS),
            "deadline_ms": getattr(scorer, "deadline_ms", None),
            **self._batching_info(),
        }

    def _forwarding_info(self, scorer: RemoteScorer) -> dict[str, Any]:
        """``GET /info`` of a server forwarding to a provider."""
        activation = scorer.activation
        return {
            "model": scorer.model_name,
            "model_id": scorer.model_name,
            "family": None,  # the provider's model: not known here
            "family_detail": None,
            "backend": self.backend,
            "provider": scorer.provider,
            "route": scorer.route,
            "upstream": scorer.url,
            "activation": activation,
            "activations": [activation] + (["raw"] if activation != "raw" else []),
            "max_client_batch_size": self.limits.max_documents,
            "version": __version__,
            "state": self.state,
            "protocols": {"tei": "/rerank", "cohere": "/v1/rerank", "crossrank": "/v1/rerank"},
            "options": sorted(self._rerank_params & _OPTIONS),
            "limits": asdict(self.limits),
            "batching": {"threads": self.threads},
        }


def _kind_of(scorer: Any) -> str:
    """A member's backend as ``/metrics`` names it: ``provider:NAME`` for a remote one."""
    if isinstance(scorer, RemoteScorer):
        return f"provider:{scorer.provider}"
    return type(scorer).__name__


_UNAVAILABLE = {
    "new": "the server is starting; the model is not loaded yet",
    "loading": "the model is still loading; retry shortly (GET /health says when it is ready)",
    "failed": "the model failed to load; see GET /health and the server's log",
    "draining": "the server is shutting down; send the request to another replica or retry",
    "closed": "the server is shutting down",
}
