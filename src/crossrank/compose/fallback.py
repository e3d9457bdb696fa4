"""``Fallback``: a second scorer serves when the first fails or is late.

The primary gets every call, with all its options; when it raises (``"error"``) or has not
answered after ``timeout_s`` (``"timeout"``), the fallback gets the same call and its answer
is returned, saying which served and why (:class:`FallbackReranked`). A primary that keeps
failing is not called for a cool-down (a :class:`crossrank.compose.breaker.Breaker`): after
``breaker_failures`` failures in a row the fallback serves at once for
``breaker_cooldown_s`` seconds, then one call tries the primary again.

What counts as an error: anything the primary raises except a plain ``ValueError`` or
``TypeError``, which is the caller's input (the fallback would refuse it too); a
:class:`crossrank.RemoteScorerError` (a server down, a 5xx, a 413 from a provider's limit),
a :class:`crossrank.ModelLoadError`, a ``RuntimeError``, an ``OSError``... falls back.

A late primary is not stopped: a local one finishes its work in its thread (a bounded
pool), a remote one is cancelled with :meth:`Fallback.arerank` or runs to its own
``timeout`` in a thread; its answer is dropped.

Example:
    >>> from crossrank import CrossEncoderScorer, RemoteScorer
    >>> from crossrank.compose import Fallback
    >>> scorer = Fallback(RemoteScorer(provider="cohere", model="rerank-v3.5"),
    ...                   CrossEncoderScorer(), timeout_s=2.0)
    >>> out = scorer.rerank("capital of France", ["Berlin.", "Paris."])
    >>> out.served_by, out.reason
    ('fallback', 'error: RemoteScorerError: could not reach the server at ...')
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from crossrank.compose.base import Composite, check_scorer
from crossrank.compose.breaker import Breaker
from crossrank.compose.members import MemberCall, name_of, plan_call
from crossrank.errors import CrossrankError
from crossrank.results import Reranked
from crossrank.validation import check_deadline_ms

__all__ = ["FALLBACK_ON", "Fallback", "FallbackError", "FallbackReranked"]

logger = logging.getLogger("crossrank")

#: What may make the fallback serve.
FALLBACK_ON: tuple[str, ...] = ("error", "timeout")

#: Threads running timed primary calls; a primary that hangs holds one until it returns,
#: and a call waiting for a free thread is late like any other.
_THREADS = 16


class FallbackError(CrossrankError):
    """The fallback failed too; the message says why the primary did not serve."""


class _Late(Exception):
    """The primary had not answered within ``timeout_s``."""


@dataclass(frozen=True, slots=True)
class FallbackReranked(Reranked):
    """What :meth:`Fallback.rerank` returns: the serving scorer's result, and which served.

    Attributes:
        served_by: ``"primary"`` or ``"fallback"``.
        reason: Why the fallback served (``"timeout: ..."``, ``"error: ..."``,
            ``"breaker open: ..."``); None when the primary served.
        served: The serving scorer's own result (an ensemble's member scores, for one).
    """

    served_by: Literal["primary", "fallback"] = "primary"
    reason: str | None = None
    served: Reranked | None = None


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"timeout_s must be a number of seconds > 0, got {value!r}")
    return float(value)


class Fallback(Composite):
    """The primary scorer, or the fallback when the primary fails or is late.

    Args:
        primary: The scorer that serves when it can (a hosted provider, a shared server).
        fallback: The scorer that serves when it cannot (a local model).
        on: What makes the fallback serve: ``"error"``, ``"timeout"`` or both (default).
        timeout_s: With ``"timeout"``: seconds the primary has to answer.
        breaker_failures: Failures in a row after which the primary is not called...
        breaker_cooldown_s: ...for this many seconds (then one call tries it again).
        deadline_ms: Default time budget of each call, passed on to whichever serves.
    """

    config_type: ClassVar[str] = "fallback"
    _member_settings: ClassVar[tuple[str, ...]] = ("primary", "fallback")

    def __init__(
        self,
        primary: Any,
        fallback: Any,
        *,
        on: Sequence[str] = FALLBACK_ON,
        timeout_s: float = 5.0,
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 30.0,
        deadline_ms: float | None = None,
    ) -> None:
        self.primary = check_scorer(primary, "primary")
        self.fallback = check_scorer(fallback, "fallback")
        self.members = (self.primary, self.fallback)
        if isinstance(on, str) or not isinstance(on, Sequence) or not on:
            raise TypeError(f"on must be a non-empty list of {FALLBACK_ON}, got {on!r}")
        unknown = [x for x in on if x not in FALLBACK_ON]
        if unknown:
            raise ValueError(f"on must hold only {FALLBACK_ON}, got {list(on)}")
        self.on = tuple(dict.fromkeys(on))
        self.timeout_s = _seconds(timeout_s)
        self.breaker = Breaker(breaker_failures, breaker_cooldown_s)
        self.deadline_ms = check_deadline_ms(deadline_ms)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "fallback": self.fallback,
            "on": list(self.on),
            "timeout_s": self.timeout_s,
            "breaker_failures": self.breaker.failures,
            "breaker_cooldown_s": self.breaker.cooldown_s,
            "deadline_ms": self.deadline_ms,
        }

    @property
    def model_name(self) -> str:
        """``fallback(PRIMARY -> FALLBACK)``."""
        return f"fallback({name_of(self.primary)} -> {name_of(self.fallback)})"

    @property
    def activation(self) -> str:
        """The primary's (the fallback's while the primary cannot say: a server down)."""
        try:
            return str(self.primary.activation)
        except Exception as error:
            if not self._falls_back(error):
                raise
            return str(self.fallback.activation)

    def warm_up(self) -> None:
        """Load the fallback's model (the primary may be down: that is what the fallback is
        for); a primary that fails to warm up is logged, not raised."""
        self.fallback.warm_up()
        try:
            self.primary.warm_up()
        except Exception as error:
            if not self._falls_back(error):
                raise
            logger.warning(
                "crossrank: the primary %s did not warm up (%s: %s); the fallback serves "
                "until it answers",
                name_of(self.primary),
                type(error).__name__,
                error,
            )

    async def awarm_up(self) -> None:
        """:meth:`warm_up` in a worker thread."""
        await asyncio.to_thread(self.warm_up)

    # ------------------------------------------------------------------ scoring

    def _rerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> Reranked:
        reason = self._closed_reason()
        if reason is None:
            call = plan_call(self.primary, query, texts, dict(options), at)
            try:
                out = self._timed(call)
            except Exception as error:
                reason = self._failure(error)
            else:
                self.breaker.success()
                return _served(out, "primary", None)
        call = plan_call(self.fallback, query, texts, dict(options), at)
        try:
            out = call.run()
        except Exception as error:
            raise self._both_failed(error, reason) from error
        return _served(out, "fallback", reason)

    async def _arerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> Reranked:
        reason = self._closed_reason()
        if reason is None:
            call = plan_call(self.primary, query, texts, dict(options), at)
            try:
                if "timeout" in self.on:
                    out = await asyncio.wait_for(call.arun(), self.timeout_s)
                else:
                    out = await call.arun()
            except Exception as error:
                reason = self._failure(error)
            else:
                self.breaker.success()
                return _served(out, "primary", None)
        call = plan_call(self.fallback, query, texts, dict(options), at)
        try:
            out = await call.arun()
        except Exception as error:
            raise self._both_failed(error, reason) from error
        return _served(out, "fallback", reason)

    def _closed_reason(self) -> str | None:
        """None when the primary may be called; else why not (the breaker is open)."""
        if self.breaker.allow():
            return None
        return (
            f"breaker open: the primary failed {self.breaker.failures} times in a row; it is "
            f"tried again in {self.breaker.retry_in():.1f} s"
        )

    def _timed(self, call: MemberCall) -> Reranked:
        """The primary's answer, within ``timeout_s`` when ``"timeout"`` is on."""
        if "timeout" not in self.on:
            return call.run()
        future = self._threads().submit(call.run)
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError as error:
            future.cancel()  # not started yet (every thread busy): never started
            future.add_done_callback(_drop)
            raise _Late() from error

    def _threads(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="crossrank-primary")
            return self._pool

    def _falls_back(self, error: BaseException) -> bool:
        """Whether ``error`` is the primary's failure (not the caller's input)."""
        if isinstance(error, (_Late, asyncio.TimeoutError, TimeoutError)):
            return "timeout" in self.on
        caller = isinstance(error, (ValueError, TypeError)) and not isinstance(
            error, CrossrankError
        )
        return not caller and "error" in self.on

    def _failure(self, error: Exception) -> str:
        """Why the fallback serves, once the primary raised ``error``; re-raises an error
        the fallback is not for."""
        if not self._falls_back(error):
            self.breaker.release()
            raise error
        self.breaker.failure()
        if isinstance(error, (_Late, asyncio.TimeoutError, TimeoutError)):
            reason = f"timeout: the primary did not answer within timeout_s={self.timeout_s:g}"
        else:
            reason = f"error: {type(error).__name__}: {error}"
        logger.warning(
            "crossrank: the primary %s did not serve (%s); the fallback %s serves",
            name_of(self.primary),
            reason[:300],
            name_of(self.fallback),
        )
        return reason

    def _both_failed(self, error: Exception, reason: str) -> Exception:
        if isinstance(error, (ValueError, TypeError)) and not isinstance(error, CrossrankError):
            return error
        return FallbackError(
            f"the fallback {name_of(self.fallback)} failed too ({type(error).__name__}: "
            f"{error}); the primary did not serve ({reason[:300]}). Check both scorers"
        )


def _served(out: Reranked, by: Literal["primary", "fallback"], reason: str | None) -> Reranked:
    return FallbackReranked(
        hits=out.hits,
        skipped=out.skipped,
        pairs=out.pairs,
        unscored=out.unscored,
        deadline_unscored=out.deadline_unscored,
        usage=out.usage,
        served_by=by,
        reason=reason,
        served=out,
    )


def _drop(future: concurrent.futures.Future[Any]) -> None:
    """A late primary's answer or error, read so nothing logs "never retrieved"."""
    if not future.cancelled() and future.exception() is not None:
        logger.debug("crossrank: a late primary call failed: %s", future.exception())
