"""``crossrank serve --ray``: the same HTTP API on Ray Serve, one model per replica
(``pip install "crossrank[ray]"``).

Each replica builds what ``crossrank serve`` builds (a :class:`crossrank.CrossEncoderScorer`,
its :class:`crossrank.serve.Engine` and :func:`crossrank.serve.create_app`'s app), so the
endpoints, the response shapes, the limits, the API keys and ``/metrics`` are the plain
server's. One thing differs: the rows of concurrent requests are gathered by Ray Serve's
``@serve.batch`` (:class:`ServeBatchRows`; ``max_batch_size`` = ``--max-batch-requests``,
``batch_wait_timeout_s`` = ``--max-wait-ms``) instead of the server's own batcher thread,
and each gathered batch is scored together, in passes of at most ``--max-batch-pairs``
pairs and ``--max-batch-tokens`` padded tokens. Replicas (``--replicas``) or an
autoscaling range (``--autoscaling``) are passed to Ray Serve as they are.

Example:
    >>> from ray import serve
    >>> from crossrank.serve.ray_app import build_app
    >>> serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    >>> serve.run(build_app(model="cross-encoder/ms-marco-MiniLM-L6-v2", num_replicas=2))

For ``serve run`` / ``serve deploy``, :func:`app_builder` takes ``crossrank serve``'s flags
as ``args`` (see examples/ray_serve.yaml and docs/serving.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from crossrank._cli.options import scorer_kwargs
from crossrank._cli_checks import InputError, require_modules
from crossrank.batching import plan_batches, run_pass
from crossrank.errors import CrossrankError
from crossrank.serve.auth import ApiKeys
from crossrank.serve.batcher import BatcherClosedError, PassStats, RowBatcher, report_pass
from crossrank.serve.flags import add_ray_arguments, check_ray_flags, serve_parser

__all__ = [
    "DEPLOYMENT_NAME",
    "ReplicaSettings",
    "ServeBatchRows",
    "add_ray_arguments",
    "app_builder",
    "build_app",
    "check_ray_flags",
    "run_ray_serve",
]

logger = logging.getLogger("crossrank")

#: One ``forward_rows`` call: the scorer's loaded model and its requests' unpadded rows.
_RowJob = tuple[Any, Mapping[str, Sequence[Sequence[int]]]]

#: The Ray Serve deployment's name (a ``serve run`` config's ``deployments:`` uses it).
DEPLOYMENT_NAME = "crossrank"
_APP_NAME = "crossrank"


# ---------------------------------------------------------------------- @serve.batch rows


class ServeBatchRows(RowBatcher):
    """The replica's cross-request batcher: the scorer's ``row_forward`` rows of concurrent
    requests are gathered by Ray Serve's ``@serve.batch`` on the replica's event loop, and
    each batch is scored together, longest rows first, in passes of at most
    ``max_batch_rows`` rows and ``max_batch_tokens`` padded tokens (one pass at a time).

    Batches that ``@serve.batch`` forms while the model is busy wait, and are scored
    together once it is free (up to ``max_batch_requests`` requests at a time), so requests
    arriving during a pass share the next one, as with the plain server's batcher. A
    :class:`crossrank.serve.batcher.RowBatcher` to the engine (``forward_rows``,
    ``waiting_rows``, ``close``, ``on_pass``), without its pass thread.

    Args:
        max_batch_requests: ``@serve.batch``'s ``max_batch_size``: most requests' rows
            gathered into one batch.
        batch_wait_timeout_s: ``@serve.batch``'s ``batch_wait_timeout_s``: longest wait for
            more requests once one is waiting.
        max_batch_rows: Most rows in one forward pass.
        max_batch_tokens: Most padded tokens in one pass (None: no cap).
        on_pass: Called after each pass with its :class:`PassStats` (the metrics).
        max_requests: Requests the replica takes at once (its ``max_ongoing_requests``):
            with Ray >= 2.47, that many ``@serve.batch`` batches may wait for the model.

    Call :meth:`start` on the event loop that is to run the batches (the replica's), then
    hand rows to :meth:`forward_rows` from worker threads.
    """

    def __init__(
        self,
        *,
        max_batch_requests: int = 8,
        batch_wait_timeout_s: float = 0.005,
        max_batch_rows: int = 32,
        max_batch_tokens: int | None = 16384,
        on_pass: Callable[[PassStats], None] | None = None,
        max_requests: int = 128,
    ) -> None:
        from ray import serve

        super().__init__(
            max_batch_rows=max_batch_rows,
            max_batch_tokens=max_batch_tokens,
            max_wait_ms=batch_wait_timeout_s * 1000,
            on_pass=on_pass,
        )
        self.max_batch_requests = max_batch_requests
        self._rows_lock = threading.Lock()
        self._event_loop: asyncio.AbstractEventLoop | None = None
        # Batches gathered while the model is busy wait here, and are scored together.
        self._pending: list[tuple[list[_RowJob], asyncio.Future[list[np.ndarray]]]] = []
        self._runner: asyncio.Task[None] | None = None
        options: dict[str, Any] = {
            "max_batch_size": max_batch_requests,
            "batch_wait_timeout_s": batch_wait_timeout_s,
        }
        if "max_concurrent_batches" in inspect.signature(serve.batch).parameters:
            # Ray >= 2.47 forms each batch at once and queues it for its turn; let every
            # batch (at most one per request) reach _score_batch, which merges those that
            # wait for the model. Ray's warning that max_batch_size x max_concurrent_batches
            # exceeds max_ongoing_requests does not apply: the model runs one pass at a time.
            options["max_concurrent_batches"] = max(1, max_requests)
            logging.getLogger("ray.serve").addFilter(_NotOurBatchWarning())
        self._batched = serve.batch(**options)(self._score_batch)

    def __repr__(self) -> str:
        return (
            f"ServeBatchRows(max_batch_requests={self.max_batch_requests}, "
            f"max_batch_rows={self.max_batch_rows}, max_batch_tokens={self.max_batch_tokens})"
        )

    def start(self) -> ServeBatchRows:
        """Run the batches on the event loop running in this thread; returns the batcher."""
        self._event_loop = asyncio.get_running_loop()
        return self

    def close(self, timeout: float | None = 10.0) -> None:
        """Take no more rows (batches already gathered finish)."""
        self._closed = True

    def forward_rows(
        self, loaded: Any, features: Mapping[str, Sequence[Sequence[int]]]
    ) -> np.ndarray:
        """Raw relevance of each row, in order: the scorer's ``row_forward`` hook (called
        from a worker thread, never from the loop's own thread)."""
        n_rows = len(features["input_ids"])
        if not n_rows:
            return np.empty(0, dtype=np.float64)
        loop = self._event_loop
        if self._closed or loop is None:
            raise BatcherClosedError("the replica's batcher is not running")
        with self._rows_lock:
            self._waiting_rows += n_rows
        future = asyncio.run_coroutine_threadsafe(self._batched((loaded, features)), loop)
        return future.result()

    async def _score_batch(self, jobs: list[_RowJob]) -> list[np.ndarray]:
        """``@serve.batch``'s handler: queue the gathered requests' rows for the model."""
        done: asyncio.Future[list[np.ndarray]] = asyncio.get_running_loop().create_future()
        self._pending.append((jobs, done))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_pending())
        return await done

    async def _run_pending(self) -> None:
        """While batches wait: take up to ``max_batch_requests`` requests' rows (at least
        one batch) and score them together in a worker thread."""
        while self._pending:
            taken: list[tuple[list[_RowJob], asyncio.Future[list[np.ndarray]]]] = []
            while self._pending and (
                not taken
                or sum(len(j) for j, _ in taken) + len(self._pending[0][0])
                <= self.max_batch_requests
            ):
                taken.append(self._pending.pop(0))
            jobs = [job for batch, _ in taken for job in batch]
            with self._rows_lock:
                self._waiting_rows -= sum(len(f["input_ids"]) for _, f in jobs)
            try:
                outs = await asyncio.to_thread(self._passes, jobs)
            except Exception as error:  # every request of these batches gets it
                for _, done in taken:
                    if not done.done():
                        done.set_exception(error)
                continue
            start = 0
            for batch, done in taken:
                if not done.done():
                    done.set_result(outs[start : start + len(batch)])
                start += len(batch)

    def _passes(self, jobs: list[_RowJob]) -> list[np.ndarray]:
        """Score every job's rows, longest first across jobs, pass by pass."""
        loaded = jobs[0][0]
        if any(job[0] is not loaded for job in jobs):
            raise RuntimeError("rows of two models reached one replica's batcher")
        keys = list(jobs[0][1])
        where = [(j, r) for j, (_, f) in enumerate(jobs) for r in range(len(f["input_ids"]))]
        lengths = [len(jobs[j][1]["input_ids"][r]) for j, r in where]
        outs = [np.empty(len(f["input_ids"]), dtype=np.float64) for _, f in jobs]
        for batch in plan_batches(lengths, self.max_batch_rows, self.max_batch_tokens):
            started = time.perf_counter()
            raw, padded = run_pass(
                loaded,
                {k: [jobs[where[i][0]][1][k][where[i][1]] for i in batch] for k in keys},
            )
            for i, value in zip(batch, raw, strict=True):
                outs[where[i][0]][where[i][1]] = value
            report_pass(
                self.on_pass,
                PassStats(
                    requests=len({where[i][0] for i in batch}),
                    rows=len(batch),
                    padded_tokens=padded,
                    seconds=time.perf_counter() - started,
                ),
            )
        return outs


class _NotOurBatchWarning(logging.Filter):
    """Drops Ray Serve's ``max_concurrent_batches`` sizing warning (see ServeBatchRows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`max_concurrent_batches`" not in record.getMessage()


# ---------------------------------------------------------------------- the deployment


@dataclass(frozen=True)
class ReplicaSettings:
    """What each replica builds: the scorer, the engine's limits and threads, the
    ``@serve.batch`` and pass sizes, and the API keys.

    Attributes:
        scorer_options: :class:`crossrank.CrossEncoderScorer` keyword arguments.
        limits: :class:`crossrank.serve.Limits` fields (default: its defaults).
        max_batch_requests: ``@serve.batch``'s ``max_batch_size``.
        batch_wait_timeout_s: ``@serve.batch``'s ``batch_wait_timeout_s``.
        max_batch_pairs: Most pairs per forward pass (None: the scorer's ``batch_size``).
        max_batch_tokens: Most padded tokens per forward pass (None: no cap).
        threads: Worker threads running the core for admitted requests.
        api_keys: Accepted API keys (none: no key needed).
    """

    scorer_options: Mapping[str, Any] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)
    max_batch_requests: int = 8
    batch_wait_timeout_s: float = 0.005
    max_batch_pairs: int | None = None
    max_batch_tokens: int | None = 16384
    threads: int = 32
    api_keys: ApiKeys | Sequence[str] = ()

    def __repr__(self) -> str:  # never the keys themselves
        return (
            f"ReplicaSettings(scorer_options={dict(self.scorer_options)!r}, "
            f"limits={dict(self.limits)!r}, max_batch_requests={self.max_batch_requests}, "
            f"batch_wait_timeout_s={self.batch_wait_timeout_s}, "
            f"max_batch_pairs={self.max_batch_pairs}, max_batch_tokens={self.max_batch_tokens}, "
            f"threads={self.threads}, api_keys={self.api_keys!r})"
        )


def _replica_app(settings: ReplicaSettings) -> Any:
    """Build one replica's app: load the model now (the replica is ready when it is), put
    :class:`ServeBatchRows` in place of the engine's batcher, and wrap the engine in
    :func:`crossrank.serve.create_app`. Runs on the replica's event loop."""
    from crossrank.scorer import CrossEncoderScorer
    from crossrank.serve.app import create_app
    from crossrank.serve.engine import Batching, Engine
    from crossrank.serve.limits import Limits
    from crossrank.serve.metrics import Metrics

    scorer = CrossEncoderScorer(**settings.scorer_options)
    metrics = Metrics()
    engine = Engine(
        scorer,
        batching=Batching(
            max_wait_ms=settings.batch_wait_timeout_s * 1000,
            max_batch_tokens=settings.max_batch_tokens,
            max_batch_rows=settings.max_batch_pairs,
        ),
        limits=Limits(**settings.limits),
        threads=settings.threads,
        metrics=metrics,
    )
    engine.start(background=False)
    rows = ServeBatchRows(
        max_batch_requests=settings.max_batch_requests,
        batch_wait_timeout_s=settings.batch_wait_timeout_s,
        max_batch_rows=settings.max_batch_pairs or scorer.batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        on_pass=metrics.observe_pass,
        max_requests=engine.limits.max_queue,
    ).start()
    # The engine reads its batcher at each forward: from now on the passes are ours.
    previous, engine.batcher = engine.batcher, rows
    if previous is not None:
        previous.close()
    keys = settings.api_keys
    return create_app(
        engine,
        api_keys=keys if isinstance(keys, ApiKeys) else list(keys),
        load_in_background=False,
    )


class CrossrankReplica:
    """The Ray Serve deployment's class: the HTTP app is built per replica by
    :func:`build_app`'s ingress (:func:`_replica_app`)."""


def build_app(
    *,
    settings: ReplicaSettings | None = None,
    num_replicas: int | str | None = 1,
    autoscaling_config: Mapping[str, Any] | None = None,
    ray_actor_options: Mapping[str, Any] | None = None,
    max_ongoing_requests: int | None = None,
    graceful_shutdown_timeout_s: float | None = None,
    **scorer_options: Any,
) -> Any:
    """The crossrank Ray Serve application: ``serve.run(build_app(...))``.

    Args:
        settings: What each replica builds (:class:`ReplicaSettings`); the keyword
            ``scorer_options`` go into it when given.
        num_replicas: Replicas, each with its own model (None with ``autoscaling_config``).
        autoscaling_config: Ray Serve's autoscaling settings (``min_replicas``,
            ``max_replicas``, ``target_ongoing_requests`` ...), passed on as they are.
        ray_actor_options: Each replica's resources (default ``{"num_cpus": 1}``).
        max_ongoing_requests: Requests Ray Serve sends one replica at once (default: the
            limits' ``max_queue``; more wait in Ray Serve's router).
        graceful_shutdown_timeout_s: How long a stopping replica waits for its requests.
        **scorer_options: :class:`crossrank.CrossEncoderScorer` keyword arguments
            (``model``, ``backend``, ``device`` ...).

    Returns:
        A bound Ray Serve ``Application``.

    Raises:
        ImportError: Ray Serve is not installed (``pip install "crossrank[ray]"``).
        TypeError, ValueError: A bad scorer option or setting (checked here, before any
            replica starts; the device is checked on the replicas).
    """
    serve = _ray_serve()
    from crossrank.scale import worker_scorer_options
    from crossrank.serve.limits import Limits

    base = settings or ReplicaSettings()
    merged = {**base.scorer_options, **scorer_options}
    base = replace(base, scorer_options=worker_scorer_options(merged))
    limits = Limits(**base.limits)
    if autoscaling_config is not None:
        if not isinstance(autoscaling_config, Mapping):
            raise TypeError(
                "autoscaling_config must be a dict of Ray Serve autoscaling settings, got "
                f"{type(autoscaling_config).__name__}"
            )
        if num_replicas not in (None, 1, "auto"):
            raise ValueError(
                f"num_replicas={num_replicas!r} and autoscaling_config are both set; the "
                "autoscaling range (min_replicas, max_replicas) replaces num_replicas"
            )
        num_replicas = None
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "num_replicas": num_replicas,
        "ray_actor_options": dict(ray_actor_options or {"num_cpus": 1}),
        "max_ongoing_requests": max_ongoing_requests or limits.max_queue,
    }
    if autoscaling_config is not None:
        options["autoscaling_config"] = dict(autoscaling_config)
    if graceful_shutdown_timeout_s is not None:
        options["graceful_shutdown_timeout_s"] = graceful_shutdown_timeout_s
    if "max_constructor_retry_count" in inspect.signature(serve.deployment).parameters:
        options["max_constructor_retry_count"] = 1  # a model that does not load fails fast

    def build_asgi_app() -> Any:  # called in each replica, on its event loop
        return _replica_app(base)

    ingress = serve.ingress(build_asgi_app)(CrossrankReplica)
    return serve.deployment(**options)(ingress).bind()


def app_builder(args: Mapping[str, Any]) -> Any:
    """The application for ``serve run`` / ``serve deploy`` configs
    (``import_path: crossrank.serve.ray_app:app_builder``).

    ``args`` are ``crossrank serve``'s flags without dashes, with their meaning:
    ``{"model": "...", "backend": "onnx", "max_length": 256, "max_batch_requests": 16,
    "max_wait_ms": 5, "max_documents": 200, "api_key_env": "CROSSRANK_KEYS"}`` (a ``true``
    switch is given, a JSON flag takes an object). Replicas, autoscaling and resources are
    the config's ``deployments: [{name: crossrank, ...}]`` settings, or ``replicas``,
    ``autoscaling``, ``cpus_per_replica`` here.

    Raises:
        ValueError: An unknown or bad flag (the message is ``crossrank serve``'s).
    """
    argv = ["serve", "--ray"]
    for key, value in args.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (dict, list)):
            argv += [flag, json.dumps(value)]
        else:
            argv += [flag, str(value)]
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            parsed = serve_parser().parse_args(argv)
    except SystemExit:
        why = said.getvalue().strip().splitlines()
        raise ValueError(
            f"crossrank's app_builder args: {why[-1] if why else 'not crossrank serve flags'}"
        ) from None
    return _application(parsed)


# ---------------------------------------------------------------------- crossrank serve --ray


def _application(args: argparse.Namespace) -> Any:
    """The Ray Serve application ``crossrank serve --ray`` flags describe."""
    from crossrank.serve.auth import load_api_keys
    from crossrank.serve.limits import Limits

    check_ray_flags(args)
    keys = load_api_keys(env=args.api_key_env, file=args.api_key_file)
    settings = ReplicaSettings(
        scorer_options=scorer_kwargs(args),
        limits={f.name: getattr(args, f.name) for f in fields(Limits)},
        max_batch_requests=args.max_batch_requests or 8,
        batch_wait_timeout_s=args.max_wait_ms / 1000,
        max_batch_pairs=args.max_batch_pairs,
        max_batch_tokens=args.max_batch_tokens,
        threads=args.threads,
        api_keys=keys,
    )
    cpus = 1 if args.cpus_per_replica is None else args.cpus_per_replica
    actor: dict[str, Any] = {"num_cpus": cpus}
    if args.gpus_per_replica:
        actor["num_gpus"] = args.gpus_per_replica
    return build_app(
        settings=settings,
        num_replicas=None if args.autoscaling is not None else (args.replicas or 1),
        autoscaling_config=args.autoscaling,
        ray_actor_options=actor,
        graceful_shutdown_timeout_s=args.drain_timeout,
    )


def run_ray_serve(args: argparse.Namespace) -> int:
    """Run ``crossrank serve --ray`` until SIGINT/SIGTERM; an exit code."""
    require_modules(("ray", "fastapi", "uvicorn", "prometheus_client"), "crossrank serve --ray",
                    "ray")  # fmt: skip
    from crossrank.scale import init_ray
    from crossrank.serve.server import bind

    app = _application(args)  # every flag checked before Ray starts
    if args.ray_address is None:  # replicas on this machine: a missing folder fails now
        from crossrank.families.source import resolve_source
        from crossrank.scorer import DEFAULT_MODEL

        resolve_source(args.model or os.environ.get("CROSSRANK_MODEL") or DEFAULT_MODEL)
    try:
        bind(args.host, args.port).close()  # Ray Serve's proxy would retry a port in use
    except OSError as e:
        raise InputError(
            f"--host {args.host} --port {args.port}: cannot listen there "
            f"({e.strerror or e}); choose another --port or stop what listens on it"
        ) from e
    init_ray(args.ray_address, quiet=args.quiet)
    serve = _ray_serve()
    import ray

    local = args.ray_address is None
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        try:
            serve.run(app, name=_APP_NAME, route_prefix="/")
        except RuntimeError as e:
            raise _DeployError(f"the Ray Serve deployment failed: {e}") from e
        # After Ray's own handlers are in place: SIGINT/SIGTERM stop the wait below.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
        if not args.quiet:
            replicas = (
                f"autoscaling {json.dumps(args.autoscaling)}"
                if args.autoscaling is not None
                else f"{args.replicas or 1} replica(s)"
            )
            shown = f"[{args.host}]" if ":" in args.host else args.host
            print(
                f"crossrank serve --ray: {args.model or 'the default model'} on Ray Serve, "
                f"{replicas}, on http://{shown}:{args.port} (POST /rerank, /v1/rerank; GET "
                "/health, /info, /metrics); Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
        while not stop.wait(1.0):  # a timed wait: signal handlers run between waits
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(Exception):
            if local:
                serve.shutdown()
                ray.shutdown()
            else:  # leave the cluster's other applications alone
                serve.delete(_APP_NAME)
    return 0


class _DeployError(CrossrankError):
    """The deployment did not come up (exit 1)."""


def _ray_serve() -> Any:
    """``ray.serve``, or the ImportError naming the ``ray`` extra."""
    try:
        from ray import serve
    except ImportError as e:
        from crossrank._optional import missing_extra

        raise missing_extra("crossrank serve --ray (Ray Serve)", "ray", e) from e
    return serve

