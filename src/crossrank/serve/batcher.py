"""Cross-request dynamic batching at the row level.

Each request runs the core's normal ``rerank()`` or ``score_details()`` in its own worker
thread: tokenization, windows, selection, passages, fusion are all the core's. Only the
forward pass is shared: the scorer hands its unpadded token rows to
:attr:`crossrank.CrossEncoderScorer.row_forward`, and a :class:`RowBatcher` installed there
gathers rows from concurrent calls for up to ``max_wait_ms`` (or until a pass is full),
pads them once (:func:`crossrank.batching.run_pass`), runs ONE forward pass and hands each
caller exactly its own rows' outputs.

A pass holds rows of one padded width (:func:`crossrank.batching.padded_width`, which
depends on a row's own length only), so a row is computed at the same width whatever the
other requests are, and its score is the one the scorer gives it in process (see
docs/backends.md, "Batch invariance"). A pass holds at most ``max_batch_rows`` rows and
``max_batch_tokens`` padded tokens (rows x width); the first queued caller's widest
remaining rows decide the pass's width, every queued caller's rows of that width join it,
and a large caller is spread over several passes, so a small request never waits behind a
whole large one. One thread runs the passes, one after another (one model, one device).

The batcher imports no web framework; the server (:mod:`crossrank.serve.app`) and a Ray
Serve deployment can share it.

Example:
    >>> from crossrank import CrossEncoderScorer
    >>> from crossrank.serve.batcher import RowBatcher
    >>> scorer = CrossEncoderScorer("cross-encoder/ms-marco-MiniLM-L6-v2")
    >>> batcher = RowBatcher(max_wait_ms=5).start()
    >>> scorer.row_forward = batcher.forward_rows   # calls from many threads now share passes
    >>> scorer.score("what causes tides?", ["The moon.", "Tide pods."])
    [0.98..., 0.00...]
    >>> batcher.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossrank.batching import padded_width, run_pass

__all__ = ["BatcherClosedError", "PassStats", "RowBatcher"]

logger = logging.getLogger("crossrank")


class BatcherClosedError(RuntimeError):
    """The batcher was closed before (or while) these rows were scored."""


@dataclass(frozen=True, slots=True)
class PassStats:
    """One forward pass, as reported to ``on_pass``.

    Attributes:
        requests: Callers (``forward_rows`` calls) whose rows share this pass.
        rows: Rows (query, window pairs) in the pass.
        padded_tokens: Rows x padded width: what the model computed.
        seconds: Time of the pass (padding and forward).
    """

    requests: int
    rows: int
    padded_tokens: int
    seconds: float


def report_pass(on_pass: Callable[[PassStats], None] | None, stats: PassStats) -> None:
    """Hand ``stats`` to ``on_pass`` (if set); a failing callback is logged, never raised:
    metrics must never stop the passes."""
    if on_pass is None:
        return
    try:
        on_pass(stats)
    except Exception:
        logger.exception("crossrank: the batcher's on_pass callback failed")


@dataclass(eq=False)
class _Job:
    """One ``forward_rows`` call: its rows, their padded widths, the rows not yet handed to
    a pass (longest first), and where their outputs go."""

    loaded: Any
    features: Mapping[str, Sequence[Sequence[int]]]
    widths: list[int]
    pending: list[int]
    out: np.ndarray
    arrived: float = field(default_factory=time.monotonic)
    left: int = 0  # rows handed out and not yet computed, plus rows not handed out
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class RowBatcher:
    """Coalesce the forward passes of concurrent scorer calls.

    Args:
        max_batch_rows: Most rows in one forward pass.
        max_batch_tokens: Most padded tokens (rows x padded width) in one pass; a single
            row wider than this gets a pass of its own.
        max_wait_ms: How long a call's rows may wait for others to fill a pass: a pass that
            is not full runs once the oldest queued call has waited this long. 0: run what
            is queued at once (concurrent callers still share passes while the previous one
            runs).
        on_pass: Called after each pass with its :class:`PassStats` (metrics); an exception
            in it is logged, never raised.

    Call :meth:`start` before use and :meth:`close` when done. ``forward_rows`` is the
    :attr:`crossrank.CrossEncoderScorer.row_forward` hook; it blocks its caller (a worker
    thread) until the caller's rows are scored.
    """

    def __init__(
        self,
        *,
        max_batch_rows: int = 32,
        max_batch_tokens: int | None = 16384,
        max_wait_ms: float = 5.0,
        on_pass: Callable[[PassStats], None] | None = None,
    ) -> None:
        if isinstance(max_batch_rows, bool) or not isinstance(max_batch_rows, int):
            raise TypeError(f"max_batch_rows must be an int >= 1, got {max_batch_rows!r}")
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be >= 1, got {max_batch_rows}")
        if max_batch_tokens is not None and (
            isinstance(max_batch_tokens, bool)
            or not isinstance(max_batch_tokens, int)
            or max_batch_tokens < 1
        ):
            raise ValueError(
                f"max_batch_tokens must be an int >= 1 or None, got {max_batch_tokens!r}"
            )
        if not isinstance(max_wait_ms, (int, float)) or not 0 <= max_wait_ms <= 60_000:
            raise ValueError(f"max_wait_ms must be between 0 and 60000, got {max_wait_ms!r}")
        self.max_batch_rows = max_batch_rows
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_ms = float(max_wait_ms)
        self.on_pass = on_pass
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._waiting_rows = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return (
            f"RowBatcher(max_batch_rows={self.max_batch_rows}, "
            f"max_batch_tokens={self.max_batch_tokens}, max_wait_ms={self.max_wait_ms})"
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> RowBatcher:
        """Start the pass thread (once); returns the batcher."""
        with self._cond:
            if self._closed:
                raise BatcherClosedError("this RowBatcher was closed; build a new one")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="crossrank-batcher", daemon=True
                )
                self._thread.start()
        return self

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking rows, finish the pass in progress, and fail rows still queued with
        :class:`BatcherClosedError`. Safe to call more than once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            queued = list(self._queue)
            self._queue.clear()
            self._waiting_rows = 0
        for job in queued:
            job.error = BatcherClosedError("the server is shutting down")
            job.done.set()

    @property
    def waiting_rows(self) -> int:
        """Rows queued and not yet in a pass."""
        return self._waiting_rows

    # ------------------------------------------------------------------ the hook

    def forward_rows(
        self, loaded: Any, features: Mapping[str, Sequence[Sequence[int]]]
    ) -> np.ndarray:
        """Raw relevance of each row in ``features``, in order (the ``row_forward`` hook).

        Args:
            loaded: The scorer's :class:`crossrank.loading.LoadedModel` (its ``forward``,
                ``pad_token_id`` and ``padding_side`` are used). Rows of different models
                never share a pass.
            features: Unpadded rows per model input (``input_ids``, ``attention_mask``...).

        Raises:
            BatcherClosedError: The batcher was closed, or not started.
            Exception: Whatever the forward pass raised, for every caller in that pass.
        """
        lengths = [len(row) for row in features["input_ids"]]
        if not lengths:
            return np.empty(0, dtype=np.float64)
        cap = loaded.max_length
        job = _Job(
            loaded=loaded,
            features=features,
            widths=[padded_width(n, cap) for n in lengths],
            pending=sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)),
            out=np.empty(len(lengths), dtype=np.float64),
            left=len(lengths),
        )
        with self._cond:
            if self._closed or self._thread is None:
                raise BatcherClosedError(
                    "the RowBatcher is not running (call start(); a closed one cannot restart)"
                )
            self._queue.append(job)
            self._waiting_rows += len(lengths)
            self._cond.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.out

    # ------------------------------------------------------------------ the pass thread

    def _loop(self) -> None:
        try:
            while True:
                taken = self._gather()
                if taken is None:
                    return
                self._run(taken)
        except BaseException:  # a bug here must not leave callers waiting for ever
            logger.exception("crossrank: the batcher's pass thread failed; closing it")
            self.close(timeout=0)
            raise

    def _plan(self, take: bool) -> tuple[list[tuple[_Job, list[int]]], bool]:
        """The rows the next pass would hold, in queue order, and whether the pass is full.
        With ``take``, they are removed from the queue. Called with the lock held.

        The pass takes rows of one model (the first queued job's) and one padded width (that
        job's widest pending row's), from every queued job of that model, up to
        ``max_batch_rows`` rows and ``max_batch_tokens`` padded tokens.
        """
        head = self._queue[0]
        loaded = head.loaded
        width = head.widths[head.pending[0]]
        room = self.max_batch_rows
        if self.max_batch_tokens is not None:
            room = max(1, min(room, self.max_batch_tokens // width))
        chosen: list[tuple[_Job, list[int]]] = []
        rows = 0
        for job in self._queue:
            if job.loaded is not loaded or rows >= room:
                continue
            picked = [r for r in job.pending if job.widths[r] == width][: room - rows]
            if picked:
                chosen.append((job, picked))
                rows += len(picked)
        if take:
            for job, picked in chosen:
                taken = set(picked)
                job.pending = [r for r in job.pending if r not in taken]
                self._waiting_rows -= len(picked)
                if not job.pending:
                    self._queue.remove(job)
        return chosen, rows >= room

    def _gather(self) -> list[tuple[_Job, list[int]]] | None:
        """Wait for rows, then for a full pass until the oldest queued call has waited
        ``max_wait_ms`` (rows left by an earlier pass, of another width, have waited
        already: they run at once); take the pass."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            while not self._closed:
                _, full = self._plan(take=False)
                remaining = self._queue[0].arrived + self.max_wait_ms / 1000 - time.monotonic()
                if full or remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._closed or not self._queue:  # close() fails what is still queued
                return None
            taken, _ = self._plan(take=True)
            return taken

    def _run(self, taken: list[tuple[_Job, list[int]]]) -> None:
        started = time.perf_counter()
        loaded = taken[0][0].loaded
        keys = list(taken[0][0].features)
        try:
            feats = {k: [job.features[k][r] for job, rows in taken for r in rows] for k in keys}
            n_rows = len(feats["input_ids"])
            # One pass of one padded width; a backend that runs several batches at once
            # (OpenVINO's streams) gets it split into that many, run together.
            raw, padded = run_pass(loaded, feats)
        except BaseException as error:  # every caller in the pass gets the error
            self._fail(taken, error)
            return
        start = 0
        for job, rows in taken:
            job.out[rows] = raw[start : start + len(rows)]
            start += len(rows)
            job.left -= len(rows)
            if job.left == 0:
                job.done.set()
        report_pass(
            self.on_pass,
            PassStats(
                requests=len(taken),
                rows=n_rows,
                padded_tokens=padded,
                seconds=time.perf_counter() - started,
            ),
        )

    def _fail(self, taken: list[tuple[_Job, list[int]]], error: BaseException) -> None:
        with self._cond:
            for job, _ in taken:
                if job in self._queue:  # rows of it still queued: drop them
                    self._queue.remove(job)
                    self._waiting_rows -= len(job.pending)
        for job, _ in taken:
            job.error = error
            job.done.set()
