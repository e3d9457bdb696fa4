"""Helpers shared by the server tests (test_serve_*.py): a tiny model whose scores differ
enough between texts and queries for a swapped answer to show, queries and texts, a gate
that holds forward passes, and in-process references."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from conftest import build_tiny_model

#: Queries and candidate words of the tiny vocabulary (tests/conftest.py).
QUERIES = [
    "what is the capital of france",
    "cancer risk in patients",
    "dog and cat",
    "blood brain drug dose",
    "which gene increase protein",
    "study of heart treatment effect",
]
TEXTS = [
    "paris is the capital of france",
    "the dog",
    "cells and genes",
    "a study of cancer risk in patients who are treated with a drug dose",
    "heart",
    "berlin is a city in germany",
    "protein gene expression",
    "the cat and the dog",
]
WORDS = (
    "the a of and in is cell cells protein gene genes cancer risk study patients treatment "
    "effect increase decrease blood brain heart drug dose paris berlin city france germany "
    "cat dog capital"
).split()


def spread_model(tmp_path_factory: Any, seed: int = 3) -> Path:
    """:func:`build_spread_model`, built once per test session (and seed)."""
    name = "serve-spread-model" if seed == 3 else f"serve-spread-model-{seed}"
    folder = tmp_path_factory.getbasetemp() / name
    if not (folder / "config.json").is_file():
        build_spread_model(folder, seed=seed)
    return Path(folder)


def build_spread_model(folder: Path, seed: int = 3) -> Path:
    """The tiny random BERT cross-encoder with its head scaled, so that scores of different
    (query, text) pairs differ by 1e-3 or more while batching noise stays near 1e-6."""
    import torch
    from transformers import BertForSequenceClassification

    build_tiny_model(folder, seed=seed)
    model = BertForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.weight.mul_(1000.0)
        model.classifier.bias.fill_(-1.25)
    model.save_pretrained(folder)
    return folder


def request_texts(i: int, n: int = 5) -> list[str]:
    """``n`` distinct texts for request ``i`` (deterministic)."""
    return [
        " ".join(WORDS[(i * 7 + j * 3 + k * 5) % len(WORDS)] for k in range(3 + (i + j) % 6))
        for j in range(n)
    ]


def request_query(i: int) -> str:
    """A distinct query for each request ``i`` below 961."""
    n = len(WORDS)
    return f"{QUERIES[i % len(QUERIES)]} {WORDS[i % n]} {WORDS[(i // n) % n]}"


class Gate:
    """Holds every forward pass of an app's scorer until :meth:`open`: a
    ``row_forward`` that waits, then runs the server's own batcher."""

    def __init__(self, app: Any) -> None:
        self.event = threading.Event()
        scorer = app.state.engine.scorer
        inner: Callable[..., Any] = scorer.row_forward
        assert inner is not None, "install the gate once the model is loaded"

        def gated(loaded: Any, features: Any) -> Any:
            assert self.event.wait(60), "the gate was never opened"
            return inner(loaded, features)

        scorer.row_forward = gated

    def open(self) -> None:
        self.event.set()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def metric(url: str, name: str, headers: dict[str, str] | None = None) -> float:
    """One ``crossrank_*`` value of ``/metrics`` (labels summed)."""
    from crossrank.eval.serve_bench import metrics_snapshot

    return metrics_snapshot(httpx.get(url + "/metrics", headers=headers).text).get(name, 0.0)
