"""A circuit breaker: stop calling a scorer that keeps failing, for a cool-down.

Closed (calls go through) until ``failures`` calls in a row fail; then open (calls are
refused) for ``cooldown_s`` seconds; then half-open: one call goes through as a trial (the
others are still refused), and its outcome closes the breaker or opens it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from crossrank.validation import check_positive_int

__all__ = ["Breaker"]


class Breaker:
    """Counts a scorer's failures in a row and says whether to call it (thread-safe).

    Args:
        failures: Failures in a row that open it.
        cooldown_s: Seconds it stays open before a trial call.
        clock: Seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        failures: int = 5,
        cooldown_s: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures: int = check_positive_int(failures, name="breaker_failures")  # type: ignore[assignment]
        number = isinstance(cooldown_s, (int, float)) and not isinstance(cooldown_s, bool)
        if not number or not cooldown_s >= 0:
            raise ValueError(
                f"breaker_cooldown_s must be a number of seconds >= 0, got {cooldown_s!r}"
            )
        self.cooldown_s = float(cooldown_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (cooled down, trial pending or
        running)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._cooled() else "open"

    def _cooled(self) -> bool:
        assert self._opened_at is not None
        return self._clock() - self._opened_at >= self.cooldown_s

    def allow(self) -> bool:
        """Whether to call the scorer now (a True in the half-open state is the trial: report
        its outcome with :meth:`success`, :meth:`failure` or :meth:`release`)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._trial or not self._cooled():
                return False
            self._trial = True
            return True

    def retry_in(self) -> float:
        """Seconds until the next trial (0 when closed or cooled down)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(self.cooldown_s - (self._clock() - self._opened_at), 0.0)

    def success(self) -> None:
        """The call succeeded: closed, the count starts again."""
        with self._lock:
            self._in_a_row = 0
            self._opened_at = None
            self._trial = False

    def failure(self) -> None:
        """The call failed (or was late): one more in a row; open at ``failures`` (a failed
        trial opens it again at once)."""
        with self._lock:
            self._in_a_row += 1
            if self._trial or self._in_a_row >= self.failures:
                self._opened_at = self._clock()
            self._trial = False

    def release(self) -> None:
        """The call ended without saying anything of the scorer (the caller's input was
        refused): a pending trial may run again."""
        with self._lock:
            self._trial = False
