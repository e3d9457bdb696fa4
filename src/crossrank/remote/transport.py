"""HTTP for :class:`crossrank.RemoteScorer`: one provider's requests, retried, and their
errors worded.

Requests are retried (``retries`` times, exponential backoff from ``backoff`` seconds) on
429, 502, 503, 504 and connection failures, waiting what ``Retry-After`` asks (seconds or an
HTTP date, at most ``max_retry_wait``); a read timeout is not retried. Errors name the
server (and the provider), the status and what to do, and never hold the key.
"""

from __future__ import annotations

import asyncio
import email.utils
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from crossrank._version import __version__
from crossrank.remote.errors import RemoteRequestError, RemoteScorerError, error_text, redact
from crossrank.remote.wire import Provider, Reply

__all__ = ["CONCURRENT_REQUESTS", "RETRY_STATUSES", "Transport"]

#: Statuses retried (with ``Retry-After`` when the server sends one).
RETRY_STATUSES = (429, 502, 503, 504)

#: Requests of one split call in flight at once (async calls; sync ones send in turn).
CONCURRENT_REQUESTS = 4


class Transport:
    """One server's HTTP: headers, retries, and the errors of its answers.

    Args:
        base_url: The server's base address (routes are added to it).
        provider: The protocol (its auth headers; its name in messages).
        key: The API key (None: none).
        key_help: What to do about a 401 (which variable to set).
        timeout: Seconds to wait for each answer.
        retries: Retries after a 429/502/503/504 or a connection failure.
        backoff: First wait between retries (doubled each time) without ``Retry-After``.
        max_retry_wait: Longest wait between two tries.
    """

    def __init__(
        self,
        base_url: str,
        provider: Provider,
        *,
        key: str | None,
        key_help: str,
        timeout: float,
        retries: int,
        backoff: float,
        max_retry_wait: float,
    ) -> None:
        self.base_url = base_url
        self.provider = provider
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self._key = key
        self._key_help = key_help
        self._lock = threading.Lock()
        self._client: Any = None

    @property
    def has_key(self) -> bool:
        """Whether requests carry a key."""
        return bool(self._key)

    def headers(self) -> dict[str, str]:
        """Every request's headers (the key among them: never logged or shown)."""
        return {"User-Agent": f"crossrank/{__version__}", **self.provider.headers(self._key)}

    def _where(self, url: str) -> str:
        name = self.provider.name
        return f"the server at {url}" if name == "crossrank" else f"the {name} server at {url}"

    # ---------------------------------------------------------------- clients

    def _sync_client(self) -> Any:
        import httpx

        with self._lock:
            if self._client is None:
                client = httpx.Client(timeout=self.timeout, headers=self.headers())
                weakref.finalize(self, client.close)
                self._client = client
            return self._client

    def close(self) -> None:
        """Close the connections kept for synchronous calls (reopened when needed)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # ---------------------------------------------------------------- requests

    def post_many(self, path: str, bodies: Sequence[dict[str, Any]]) -> list[Reply]:
        """POST each body in turn; their replies in order."""
        return [self._post(path, body) for body in bodies]

    async def apost_many(self, path: str, bodies: Sequence[dict[str, Any]]) -> list[Reply]:
        """POST the bodies concurrently (at most :data:`CONCURRENT_REQUESTS` at once, one
        connection pool); their replies in order."""
        import httpx

        gate = asyncio.Semaphore(CONCURRENT_REQUESTS)

        async def one(client: Any, body: dict[str, Any]) -> Reply:
            async with gate:
                return await self._apost(client, path, body)

        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers()) as client:
            return list(await asyncio.gather(*(one(client, body) for body in bodies)))

    def _post(self, path: str, body: dict[str, Any]) -> Reply:
        import httpx

        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                response = self._sync_client().post(url, json=body)
            except httpx.TransportError as error:
                time.sleep(self._transport_retry(url, error, attempt))
                continue
            wait = self._status_retry(response, attempt)
            if wait is None:
                return self._reply(url, response)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apost(self, client: Any, path: str, body: dict[str, Any]) -> Reply:
        import httpx

        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as error:
                await asyncio.sleep(self._transport_retry(url, error, attempt))
                continue
            wait = self._status_retry(response, attempt)
            if wait is None:
                return self._reply(url, response)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path: str) -> dict[str, Any]:
        """GET ``path``: its JSON object (retried as a POST is)."""
        import httpx

        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                response = self._sync_client().get(url)
            except httpx.TransportError as error:
                time.sleep(self._transport_retry(url, error, attempt))
                continue
            wait = self._status_retry(response, attempt)
            if wait is None:
                body = self._reply(url, response).body
                if not isinstance(body, dict):
                    raise self.bad_answer(path, f"GET {path} is not a JSON object")
                return body
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def health(self, path: str) -> tuple[int, dict[str, Any]]:
        """One ``GET path`` (not retried): its status and JSON object (``{}`` if none)."""
        import httpx

        url = self.base_url + path
        try:
            response = self._sync_client().get(url)
        except httpx.TransportError as error:
            raise self._unreachable(url, error, 1) from error
        try:
            body = response.json()
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    # ---------------------------------------------------------------- retries

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        wait: float = self.backoff * 2.0**attempt
        if retry_after:
            try:
                wait = float(retry_after)
            except ValueError:  # an HTTP date
                try:
                    wait = email.utils.parsedate_to_datetime(retry_after).timestamp() - time.time()
                except (TypeError, ValueError):
                    pass  # unreadable: the backoff
        return min(max(wait, 0.0), self.max_retry_wait)

    def _transport_retry(self, url: str, error: Exception, attempt: int) -> float:
        """The wait before retrying after ``error``; raises when it must not be retried."""
        import httpx

        if isinstance(error, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
            raise RemoteScorerError(
                f"{self._where(url)} did not answer within timeout={self.timeout} s",
                url=url,
                hint="raise timeout=, send fewer documents per call, or add server capacity",
                provider=self.provider.name,
            ) from error
        if attempt >= self.retries:
            raise self._unreachable(url, error, attempt + 1) from error
        return self._delay(attempt)

    def _unreachable(self, url: str, error: Exception, tries: int) -> RemoteScorerError:
        if self.provider.name == "crossrank":
            hint = "check the url and that the server runs (crossrank serve --model M --port P)"
        elif self.provider.endpoint is not None and url.startswith(self.provider.endpoint):
            hint = f"check this machine's network access to {self.provider.endpoint}"
        else:
            hint = "check the url and that the server runs"
        return RemoteScorerError(
            redact(
                f"could not reach {self._where(url)} ({type(error).__name__}: {error}) after "
                f"{tries} attempt(s)",
                self._key,
            ),
            url=url,
            hint=hint,
            provider=self.provider.name,
        )

    def _status_retry(self, response: Any, attempt: int) -> float | None:
        """The wait before retrying this answer, or None to read it as it is."""
        if response.status_code in RETRY_STATUSES and attempt < self.retries:
            return self._delay(attempt, response.headers.get("retry-after"))
        return None

    # ---------------------------------------------------------------- answers

    def bad_answer(self, path: str, what: str) -> RemoteScorerError:
        """The error for an answer not in the protocol's form."""
        url = self.base_url + path
        name = self.provider.name
        return RemoteScorerError(
            redact(
                f"{self._where(url)} answered in a form provider={name!r} does not expect ({what})",
                self._key,
            ),
            url=url,
            hint="check the url and the provider (and its route=)",
            provider=name,
        )

    def _reply(self, url: str, response: Any) -> Reply:
        """A 2xx answer's JSON and headers; the error it describes otherwise."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= status < 300:
            if body is None:
                raise self.bad_answer(
                    url[len(self.base_url) :],
                    f"{status} with a body that is not JSON: {response.text[:200]!r}",
                )
            return Reply(body, {k.lower(): v for k, v in response.headers.items()})
        message, kind = error_text(body, response.text or response.reason_phrase)
        raise self._error(url, status, redact(message, self._key), kind)

    def _error(self, url: str, status: int, message: str, kind: str | None) -> RemoteScorerError:
        where = f"{self._where(url)} answered {status}"
        common: dict[str, Any] = {
            "url": url,
            "status": status,
            "error_type": kind,
            "provider": self.provider.name,
        }
        if status in (401, 403):
            return RemoteScorerError(f"{where}: {message}", hint=self._key_help, **common)
        if status in (400, 413, 422):
            return RemoteRequestError(
                f"{where}: {message}",
                hint="the request breaks one of the server's rules or limits"
                + (" (see GET /info)" if self.provider.info_path else ""),
                **common,
            )
        if status in RETRY_STATUSES:
            return RemoteScorerError(
                f"{where} after {self.retries} retries: {message}",
                hint="retry later, raise retries=, lower the concurrency or add server capacity",
                **common,
            )
        return RemoteScorerError(
            f"{where}: {message}",
            hint="check the url and the provider" if status == 404 else "see the server's log",
            **common,
        )
