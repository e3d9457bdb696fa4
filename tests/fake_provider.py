"""A fake hosted reranker on 127.0.0.1, written from Cohere's v1 rerank reference: for the
tests of what calls a provider (a Fallback whose primary fails or hangs, eval's cost column).

``POST /v1/rerank`` with ``Authorization: Bearer <key>`` and ``{model, query, documents,
top_n?, return_documents?}`` answers ``{id, results: [{index, relevance_score}], meta:
{api_version: {version: "1"}, billed_units: {search_units}}}``, results best first; one
search unit per 100 documents, as Cohere bills. Errors are Cohere's ``{"message": ...}``: 401
without the key, 400 for a bad body. The mode says how it behaves:

- ``"ok"``: scores by word overlap with the query (deterministic, in (0, 1));
- ``"fail"``: 500 to every request;
- ``"hang"``: holds each request until :meth:`FakeProvider.release` (at most ``hang_s``).

Run it with ``with FakeProvider() as provider: provider.url``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "fake-provider-key"


def overlap_score(query: str, text: str) -> float:
    """Shared words over the query's words, squeezed into (0, 1)."""
    words = set(query.lower().split())
    shared = len(words & set(text.lower().split()))
    return (shared + 0.5) / (len(words) + 1.0)


class FakeProvider:
    """A Cohere-style rerank API in a thread (see the module docstring)."""

    def __init__(self, mode: str = "ok", *, hang_s: float = 20.0) -> None:
        self.mode = mode
        self.hang_s = hang_s
        self.requests: list[dict[str, Any]] = []
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def release(self) -> None:
        """Let every held request (mode ``"hang"``) finish."""
        self._released.set()

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._thread.is_alive():  # bounded wait for the thread to run
            if time.monotonic() > deadline:
                raise RuntimeError("the fake provider did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    body = None
                if self.path != "/v1/rerank":
                    self._send(404, {"message": f"no route {self.path}"})
                    return
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    self._send(401, {"message": "invalid api token"})
                    return
                provider.requests.append(body if isinstance(body, dict) else {})
                if provider.mode == "fail":
                    self._send(500, {"message": "internal server error"})
                    return
                if provider.mode == "hang":
                    provider._released.wait(provider.hang_s)
                    self._send(503, {"message": "service unavailable"})
                    return
                if (
                    not isinstance(body, dict)
                    or not isinstance(body.get("query"), str)
                    or not isinstance(body.get("documents"), list)
                    or not isinstance(body.get("model"), str)
                ):
                    self._send(400, {"message": "model, query and documents are required"})
                    return
                docs = [d if isinstance(d, str) else d.get("text", "") for d in body["documents"]]
                scored = sorted(
                    ((i, overlap_score(body["query"], d)) for i, d in enumerate(docs)),
                    key=lambda pair: (-pair[1], pair[0]),
                )
                top_n = body.get("top_n")
                if isinstance(top_n, int):
                    scored = scored[:top_n]
                self._send(
                    200,
                    {
                        "id": str(uuid.uuid4()),
                        "results": [{"index": i, "relevance_score": s} for i, s in scored],
                        "meta": {
                            "api_version": {"version": "1"},
                            "billed_units": {"search_units": -(-len(docs) // 100)},
                        },
                    },
                )

        return Handler
