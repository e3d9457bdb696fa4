"""Run the app with uvicorn, draining before it shuts down.

:class:`Server` is uvicorn's server with one change: the first SIGTERM or SIGINT (or
:meth:`Server.drain`) does not close the socket at once. New requests get ``503`` with
``Retry-After`` and ``/health`` says ``draining`` while the requests already admitted
finish; then uvicorn shuts down as usual. A second signal shuts down without waiting for
the queue (uvicorn still lets open responses finish; a third SIGINT forces it).

:func:`running_server` runs an app in a background thread on ``127.0.0.1`` (a free port by
default) until the block ends: for tests, ``crossrank bench --server local`` and notebooks.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from crossrank._optional import missing_extra

try:
    import httpx
    import uvicorn
except ImportError as e:
    raise missing_extra("crossrank serve", "serve", e) from e

from crossrank.serve.engine import Engine

__all__ = ["RunningServer", "Server", "bind", "running_server"]

logger = logging.getLogger("crossrank")


class Server(uvicorn.Server):
    """uvicorn's server, draining the engine's queue before it shuts down.

    Args:
        config: The uvicorn configuration (its app built by
            :func:`crossrank.serve.create_app`).
        engine: The app's engine (``app.state.engine``).
        drain_timeout: Longest wait, in seconds, for admitted requests once draining began.
    """

    def __init__(self, config: uvicorn.Config, *, engine: Engine, drain_timeout: float = 30.0):
        super().__init__(config)
        self.engine = engine
        self.drain_timeout = drain_timeout
        self._drain_started: float | None = None

    def drain(self) -> None:
        """Refuse new requests (``503``), let admitted ones finish, then shut down.
        Thread-safe; again: nothing."""
        if self._drain_started is None:
            self._drain_started = time.monotonic()
            self.engine.drain()
            logger.info(
                "crossrank: draining: %d request(s) in flight; new ones get 503",
                self.engine.in_flight,
            )

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: drain; the next ones: uvicorn's own handling."""
        if self._drain_started is None:
            self.drain()
        else:
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        started = self._drain_started
        if started is not None and not self.should_exit:
            waited = time.monotonic() - started
            if self.engine.in_flight == 0 or waited > self.drain_timeout:
                if self.engine.in_flight:
                    logger.warning(
                        "crossrank: %d request(s) still in flight after drain_timeout=%s s; "
                        "shutting down",
                        self.engine.in_flight,
                        self.drain_timeout,
                    )
                self.should_exit = True
        return await super().on_tick(counter)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one).

    Raises:
        OSError: The address is in use, or not one of this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


@dataclass
class RunningServer:
    """A server started by :func:`running_server`.

    Attributes:
        url: ``http://HOST:PORT``.
        server: The :class:`Server` (``server.drain()`` starts a graceful shutdown).
        thread: The thread it runs in.
    """

    url: str
    server: Server
    thread: threading.Thread

    def drain(self) -> None:
        """Start a graceful shutdown (new requests get 503; admitted ones finish)."""
        self.server.drain()

    def stop(self, timeout: float = 60.0) -> None:
        """Shut down now and wait for the thread (open responses still finish)."""
        self.server.should_exit = True
        self.thread.join(timeout)


@contextmanager
def running_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ready_timeout: float = 120.0,
    drain_timeout: float = 30.0,
    log_level: str = "warning",
) -> Iterator[RunningServer]:
    """Run ``app`` (from :func:`crossrank.serve.create_app`) in a background thread.

    Waits until ``/health`` says ``ok`` (the model is loaded), failing fast with the reason
    if the server stops or the model fails to load; stops the server when the block ends.

    Example:
        >>> with running_server(create_app(scorer)) as running:
        ...     httpx.post(running.url + "/rerank", json={"query": "q", "texts": ["a"]})
    """
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,  # leave the process's logging as it is
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=int(drain_timeout),
    )
    server = Server(config, engine=app.state.engine, drain_timeout=drain_timeout)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="crossrank-server", daemon=True
    )
    shown = f"[{host}]" if ":" in host else host
    running = RunningServer(f"http://{shown}:{bound}", server, thread)
    thread.start()
    try:
        _wait_ready(running, app.state.engine, ready_timeout)
        yield running
    finally:
        running.stop(timeout=drain_timeout + 30)
        sock.close()


def _wait_ready(running: RunningServer, engine: Engine, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if not running.thread.is_alive():
                raise RuntimeError(f"the server at {running.url} stopped while starting")
            if engine.state == "failed":
                raise RuntimeError(f"the server's model failed to load: {engine.load_error}")
            if running.server.started:
                try:
                    answer = client.get(running.url + "/health")
                    if answer.status_code == 200:
                        return
                    last = f"{answer.status_code} {answer.text[:200]}"
                except httpx.TransportError as e:
                    last = f"{type(e).__name__}: {e}"
            time.sleep(0.05)
    running.stop(timeout=10)
    raise RuntimeError(
        f"the server at {running.url} was not ready after {timeout:.0f} s (last /health: {last})"
    )
