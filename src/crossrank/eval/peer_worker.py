"""A ``crossrank bench`` peer worker: sentence-transformers ``CrossEncoder.predict`` in
another Python environment.

sentence-transformers' ``backend="onnx"`` and ``backend="openvino"`` load through optimum
(optimum-onnx, optimum-intel), which need an older transformers than crossrank's own
environment may have. ``crossrank bench --peer-python PATH`` runs this file, by path, with
that environment's interpreter (``[PATH, this_file]``); it imports only the standard
library, numpy and sentence-transformers, because crossrank is not installed there.

Protocol: one JSON object per line. Requests arrive on stdin; every answer is one line on
stdout that starts with :data:`MARK` (anything else a library prints goes to stderr, and
the bench ignores unmarked lines anyway).

- ``{"op": "load", "model", "backend", "batch_size", "device", "query", "texts"}``: load
  ``CrossEncoder(model, device=device, backend=backend)`` and score ``texts`` once. Answer:
  ``cold_start_s`` (from the start of this process, imports included, to a loaded model),
  ``first_score_s`` (that first call), ``peak_rss_mb`` and ``versions``.
- ``{"op": "score", "query", "texts"}``: answer ``scores`` and ``seconds``, the time spent
  building the pairs and in ``predict`` measured here (so the pipe is not counted).
- ``{"op": "quit"}``: exit.

Each answer has ``"ok": true``, or ``"ok": false`` with ``error`` (type and message) and
``traceback``.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # before any other import: the cold start counts them

import os  # noqa: E402
import sys  # noqa: E402

# Run by path, this file's folder is sys.path[0]; its sibling modules (data.py, metrics.py,
# ...) must not shadow anything the peer environment imports.
_HERE = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]

import json  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

#: Prefix of every protocol line on stdout.
MARK = "CROSSRANK_PEER "

#: The sentence-transformers backends this worker loads ("torch" too, for tests).
BACKENDS = ("torch", "onnx", "openvino")

_PACKAGES = (
    "sentence-transformers",
    "transformers",
    "torch",
    "optimum",
    "optimum-onnx",
    "optimum-intel",
    "onnxruntime",
    "openvino",
    "nncf",
    "numpy",
)


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for package in _PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss if sys.platform == "darwin" else rss * 1024) / 2**20  # Linux reports KiB


class _Peer:
    def __init__(self) -> None:
        self.model: Any = None
        self.batch_size = 32

    def score(self, query: str, texts: list[str]) -> tuple[list[float], float]:
        # The same work as the bench's in-process sentence-transformers variants.
        start = time.perf_counter()
        scores = self.model.predict(
            [(query, t) for t in texts],
            batch_size=self.batch_size,
            show_progress_bar=False,
            activation_fn=lambda logits: logits,  # raw logits, as the bench's other variants
        )
        seconds = time.perf_counter() - start
        rows = scores.tolist()
        # Two labels: the positive class's log-odds, as crossrank's activation="raw".
        values = [r[1] - r[0] if isinstance(r, list) else r for r in rows]
        return [float(v) for v in values], seconds

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        backend = request["backend"]
        if backend not in BACKENDS:
            raise ValueError(f"unknown sentence-transformers backend {backend!r}: {BACKENDS}")
        from sentence_transformers import CrossEncoder

        self.batch_size = int(request["batch_size"])
        self.model = CrossEncoder(request["model"], device=request["device"], backend=backend)
        loaded = time.perf_counter()
        self.score(request["query"], request["texts"])
        done = time.perf_counter()
        return {
            "cold_start_s": loaded - _T0,
            "first_score_s": done - loaded,
            "peak_rss_mb": _peak_rss_mb(),
            "versions": _versions(),
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "load":
            return self.load(request)
        if op == "score":
            if self.model is None:
                raise RuntimeError("score before load")
            scores, seconds = self.score(request["query"], request["texts"])
            return {"scores": scores, "seconds": seconds}
        raise ValueError(f"unknown request {op!r}")


def main() -> None:
    """Answer requests on stdin until ``quit`` or end of input."""
    # Protocol lines go to a private copy of stdout; fd 1 (Python's print and C libraries'
    # printf alike) now goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    peer = _Peer()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("op") == "quit":
                break
            answer = {"ok": True, **peer.handle(request)}
        except Exception as e:  # answered, so the bench can say what went wrong
            answer = {
                "ok": False,
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()[-4000:],
            }
        protocol.write(MARK + json.dumps(answer) + "\n")
        protocol.flush()
    protocol.close()


if __name__ == "__main__":
    main()
