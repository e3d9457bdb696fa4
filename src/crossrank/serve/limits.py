"""What one request may ask of the server, and how much the server holds at once.

Every limit has a name (the CLI flag without dashes, ``max_documents``...) and a request
past it is answered ``413`` with a JSON error naming it; a full queue is ``429`` with
``Retry-After``. The per-request token count is the tokens the model would read (query and
document windows, special tokens included), checked as the core hands its rows to the
forward pass, before any pass runs.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, fields

__all__ = ["LimitExceeded", "Limits", "TokenAllowance", "token_allowance"]


@dataclass(frozen=True)
class Limits:
    """Per-request limits and the server's queue.

    Attributes:
        max_documents: Documents in one request.
        max_chars: Characters in one request (the query, the documents and any
            ``contents``).
        max_tokens: Tokens the model reads for one request (every window of every
            document, with the query and special tokens).
        max_body_bytes: Bytes of one request body, refused before it is read or parsed.
        max_queue: Requests admitted at once (being scored or waiting); past it, ``429``.
        retry_after: Seconds a ``429``/``503`` tells the client to wait
            (``Retry-After``).
    """

    max_documents: int = 1000
    max_chars: int = 4_000_000
    max_tokens: int = 1_000_000
    max_body_bytes: int = 8 * 2**20
    max_queue: int = 128
    retry_after: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{f.name} must be an int >= 1, got {value!r}")


class LimitExceeded(ValueError):
    """A request is over one of the :class:`Limits` (answered ``413``).

    Attributes:
        limit: The limit's name (``"max_documents"``...).
        value: The limit.
        received: What the request had.
    """

    def __init__(
        self, limit: str, value: int, received: int, what: str, message: str | None = None
    ) -> None:
        self.limit = limit
        self.value = value
        self.received = received
        super().__init__(
            message
            or f"the request has {received} {what}, more than {limit}={value} allows; split "
            "it into smaller requests"
        )


class TokenAllowance:
    """Counts the tokens one request hands to the forward pass, against ``max_tokens``."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.spent = 0
        self._lock = threading.Lock()

    def spend(self, tokens: int) -> None:
        """Add ``tokens``; raise :class:`LimitExceeded` past the allowance."""
        with self._lock:
            self.spent += tokens
            if self.spent > self.max_tokens:
                raise LimitExceeded(
                    "max_tokens", self.max_tokens, self.spent, "tokens for the model to read"
                )


#: The allowance of the request the current worker thread is scoring (None: no limit).
token_allowance: contextvars.ContextVar[TokenAllowance | None] = contextvars.ContextVar(
    "crossrank_token_allowance", default=None
)
