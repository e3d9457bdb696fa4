"""The errors :class:`crossrank.RemoteScorer` raises, and how an error answer is read.

Every message names the server (its address) and, for a hosted provider, the provider; none
ever holds the API key: :func:`redact` takes it out of whatever a server sent back.
"""

from __future__ import annotations

from typing import Any

from crossrank.errors import CrossrankError

__all__ = ["RemoteRequestError", "RemoteScorerError", "error_text", "redact"]


class RemoteScorerError(CrossrankError):
    """A scoring server could not be reached, or answered with an error.

    Attributes:
        url: The address that was called.
        status: The HTTP status (None: no answer).
        error_type: The server's kind of error where it names one (crossrank's and TEI's
            ``error_type``, an OpenAI-style ``error.type``, Pinecone's ``error.code``), else
            None.
        hint: What to do about it.
        provider: The provider's name (``"cohere"``, ``"tei"``...).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        error_type: str | None = None,
        hint: str = "",
        provider: str | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.error_type = error_type
        self.hint = hint
        self.provider = provider
        super().__init__(f"{message}; {hint}" if hint else message)


class RemoteRequestError(RemoteScorerError, ValueError):
    """The server refused what the request holds (400 malformed, 413 over a limit, 422
    invalid): a :class:`ValueError` too, like the core's own checks."""


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (an API key) replaced by ``***``."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def _first_text(value: Any) -> str | None:
    """A message from one error field: a string, an object's ``message``/``msg``/``detail``,
    or a list of such (FastAPI's validation errors)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        for key in ("message", "msg", "detail"):
            found = _first_text(value.get(key))
            if found:
                return found
    if isinstance(value, list) and value:
        parts = [_first_text(item) for item in value[:3]]
        joined = "; ".join(p for p in parts if p)
        return joined or None
    return None


def _kind(body: dict[str, Any]) -> str | None:
    kind = body.get("error_type")
    error = body.get("error")
    if not isinstance(kind, str) and isinstance(error, dict):
        kind = error.get("type") or error.get("code")
    return kind if isinstance(kind, str) else None


def error_text(body: Any, fallback: str) -> tuple[str, str | None]:
    """The message and kind of an error answer, in the shapes the providers document.

    ``{"error": "...", "error_type": ...}`` (crossrank, TEI), ``{"message": ...}`` (Cohere),
    ``{"detail": ...}`` (Jina, Voyage, FastAPI's 422 list), ``{"error": {"message", "type"
    | "code"}}`` (vLLM, Infinity, Pinecone). ``fallback`` (the raw text or the reason
    phrase) when the body is none of these.
    """
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            found = _first_text(body.get(key))
            if found:
                return found[:500], _kind(body)
        if body:
            return str(body)[:300], None
    return (fallback or "no detail")[:300], None
