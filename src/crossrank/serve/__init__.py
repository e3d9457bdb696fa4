"""``crossrank serve``: one scorer behind an HTTP server (``pip install "crossrank[serve]"``).

TEI-compatible ``POST /rerank``, Cohere/Jina-compatible ``POST /v1/rerank`` (crossrank's own
options in an extra ``crossrank`` field), ``GET /health``, ``GET /info`` and ``GET /metrics``;
concurrent requests share forward passes; a bounded queue, per-request limits, optional API
keys and a graceful drain. See docs/serving.md.

Example:
    >>> from crossrank import CrossEncoderScorer
    >>> from crossrank.serve import create_app
    >>> app = create_app(CrossEncoderScorer("cross-encoder/ms-marco-MiniLM-L6-v2"))
    >>> # uvicorn.run(app), or: crossrank serve --model cross-encoder/ms-marco-MiniLM-L6-v2

The names are imported on first use, so ``crossrank.serve.batcher`` and
``crossrank.serve.engine`` work without the web framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossrank.serve.app import create_app
    from crossrank.serve.auth import ApiKeys
    from crossrank.serve.batcher import RowBatcher
    from crossrank.serve.engine import Batching, Engine, ScoreCall, ScoreResult
    from crossrank.serve.limits import Limits
    from crossrank.serve.metrics import Metrics
    from crossrank.serve.server import Server, running_server

__all__ = [
    "ApiKeys",
    "Batching",
    "Engine",
    "Limits",
    "Metrics",
    "RowBatcher",
    "ScoreCall",
    "ScoreResult",
    "Server",
    "create_app",
    "running_server",
]

_MODULES = {
    "create_app": "app",
    "ApiKeys": "auth",
    "RowBatcher": "batcher",
    "Batching": "engine",
    "Engine": "engine",
    "ScoreCall": "engine",
    "ScoreResult": "engine",
    "Limits": "limits",
    "Metrics": "metrics",
    "Server": "server",
    "running_server": "server",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'crossrank.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(f"crossrank.serve.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
