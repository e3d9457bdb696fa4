"""A text's score does not depend on what else shares its forward passes, on every backend
this machine runs: alone, in a batch, beside longer texts, and through a real server
(uvicorn on 127.0.0.1, a free port) under concurrent requests of mixed lengths, within
1e-5 in raw logits of the text scored alone in process.

The fast tier runs the tiny model; the integration tier runs the shared model on SciFact
texts and prints the worst difference per backend (the figures of docs/backends.md, "Batch
invariance"): ``CROSSRANK_TEST_ALL_BACKENDS=1 pytest -m integration
tests/test_batch_invariance.py -s`` (without the variable: torch and the int8 backends).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serve_kit import WORDS, spread_model

from crossrank import CrossEncoderScorer
from crossrank.batching import padded_width, plan_batches
from crossrank.runtimes import cpu
from crossrank.runtimes.backends import onnx_available
from crossrank.runtimes.openvino import openvino_available, openvino_supports_bf16
from crossrank.serve import Batching, create_app, running_server

pytestmark = pytest.mark.timeout(600)

#: Raw-logit tolerance between a text scored alone and in any batch.
TOLERANCE = 1e-5


def _runs_here(backend: str) -> bool:
    if backend.startswith("onnx"):
        return onnx_available()
    if backend == "openvino-bf16":
        return openvino_supports_bf16()
    if backend.startswith("openvino"):
        return openvino_available(backend)
    if backend == "torch-bf16":
        return cpu.cpu_has_native_bf16()  # emulated bf16 is ~100x slower: not tried
    return True


BACKENDS = [
    b
    for b in (
        "torch",
        "onnx",
        "onnx-int8",
        "openvino",
        "openvino-int8",
        "torch-bf16",
        "openvino-bf16",
    )
    if _runs_here(b)
]


def _texts(seed: int, n: int, low: int, high: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))) for _ in range(n)]


def _worst(a: list[float], b: list[float]) -> float:
    return float(np.max(np.abs(np.subtract(a, b))))


def in_process_differences(
    scorer: CrossEncoderScorer, query: str, short: list[str], longer: list[str]
) -> dict[str, float]:
    """The worst raw-logit difference of ``short``'s scores alone against: all of them in
    one call, beside ``longer`` (after them, and interleaved)."""
    alone = [scorer.score(query, [t])[0] for t in short]
    together = scorer.score(query, short)
    beside = scorer.score(query, [*longer, *short])[len(longer) :]
    mixed = [t for pair in zip(short, longer, strict=False) for t in pair]
    interleaved = scorer.score(query, mixed)[::2]
    return {
        "together": _worst(alone, together),
        "beside_longer": _worst(alone, beside),
        "interleaved": _worst(alone, interleaved),
    }


def served_difference(
    scorer: CrossEncoderScorer, requests: list[tuple[str, list[str]]], clients: int
) -> tuple[float, float]:
    """Send ``requests`` from ``clients`` concurrent clients to a real server around a
    scorer of ``scorer``'s settings; return the worst raw-logit difference from each
    request's texts scored one by one in process, and the mean requests per pass."""
    served = CrossEncoderScorer(
        scorer.model_name, backend=scorer.backend, device="cpu", activation="raw"
    )
    app = create_app(served, batching=Batching(max_wait_ms=20))
    answers: dict[int, list[float]] = {}

    async def run(url: str) -> None:
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

            async def one(jobs: list[int]) -> None:
                for i in jobs:
                    query, texts = requests[i]
                    answer = await client.post("/rerank", json={"query": query, "texts": texts})
                    assert answer.status_code == 200, answer.text
                    results = sorted(answer.json(), key=lambda r: r["index"])
                    answers[i] = [r["score"] for r in results]

            shares = [list(range(c, len(requests), clients)) for c in range(clients)]
            await asyncio.gather(*(one(jobs) for jobs in shares))

    with running_server(app) as running:
        asyncio.run(run(running.url))
        metrics = app.state.metrics
        passes = metrics.pass_requests.collect()[0].samples
        total = {s.name: s.value for s in passes}
    assert sorted(answers) == list(range(len(requests)))  # nothing lost
    worst = 0.0
    for i, (query, texts) in enumerate(requests):
        alone = [scorer.score(query, [t])[0] for t in texts]
        worst = max(worst, _worst(answers[i], alone))
    shared = total["crossrank_pass_requests_sum"] / total["crossrank_pass_requests_count"]
    return worst, shared


# ---------------------------------------------------------------------- the plan


def test_each_batch_holds_one_padded_width_that_depends_on_a_rows_own_length() -> None:
    lengths = [5, 300, 17, 16, 130, 31, 299, 512, 1, 40]
    batches = plan_batches(lengths, batch_size=3, max_tokens=1000, cap=512)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len({padded_width(lengths[i], 512) for i in batch}) == 1
        assert len(batch) <= 3
        assert len(batch) == 1 or padded_width(lengths[batch[0]], 512) * len(batch) <= 1000
    # A row's width is its own: the same alone and beside any other row.
    for n in lengths:
        assert plan_batches([n], 8, cap=512) == [[0]]
        assert padded_width(n, 512) >= n
    assert padded_width(300, 512) == padded_width(299, 512) == 304
    assert padded_width(35, 40) == 40  # never wider than the model reads


# ---------------------------------------------------------------------- the tiny model


@pytest.fixture(scope="module", params=BACKENDS)
def tiny_backend_scorer(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> CrossEncoderScorer:
    # The tiny model with a scaled head: its texts' raw scores differ by far more than the
    # tolerance, so a mixed-up or moved score shows.
    scorer = CrossEncoderScorer(
        spread_model(tmp_path_factory), backend=request.param, device="cpu", activation="raw"
    )
    scorer.warm_up()
    return scorer


def test_a_texts_raw_score_is_the_same_alone_in_a_batch_and_beside_longer_texts(
    tiny_backend_scorer: CrossEncoderScorer,
) -> None:
    short, longer = _texts(1, 8, 2, 20), _texts(2, 32, 25, 60)
    query = "cancer risk in patients"
    differences = in_process_differences(tiny_backend_scorer, query, short, longer)
    assert max(differences.values()) <= TOLERANCE, differences
    # The check can fail: the texts' scores differ from each other.
    scores = tiny_backend_scorer.score(query, short)
    assert np.ptp(scores) > 100 * TOLERANCE


def test_served_scores_under_concurrent_mixed_requests_equal_in_process_scores(
    tiny_backend_scorer: CrossEncoderScorer,
) -> None:
    requests = [
        (f"{WORDS[i % len(WORDS)]} cancer risk {WORDS[(3 * i) % len(WORDS)]}",
         _texts(100 + i, 3 + i % 5, 2 if i % 2 else 20, 15 if i % 2 else 60))
        for i in range(32)
    ]  # fmt: skip
    worst, shared = served_difference(tiny_backend_scorer, requests, clients=16)
    assert worst <= TOLERANCE, f"{tiny_backend_scorer.backend}: {worst}"
    assert shared > 1.0  # requests did share forward passes


# ---------------------------------------------------------------------- the shared model

#: Claims in SciFact's style, written for this test: the served requests' queries.
CLAIMS = [
    "Vitamin D supplements reduce hip fractures in older people.",
    "Statins lower the risk of stroke.",
    "Short sleep reduces insulin sensitivity.",
    "Metformin lowers glucose release by the liver.",
    "Antibiotic resistance spreads through plasmids.",
    "Influenza vaccines prevent severe disease in older adults.",
    "Exercise slows bone loss after menopause.",
    "Smoking increases the risk of lung cancer.",
    "Aspirin reduces the risk of heart attack.",
    "Obesity is associated with type 2 diabetes.",
    "Gene expression changes with age in the brain.",
    "Tumour cells evade the immune system.",
    "Microbiome composition affects drug response.",
    "Blood pressure rises with salt intake.",
    "Stem cells can repair heart tissue.",
    "Protein misfolding causes neurodegeneration.",
]


@pytest.fixture(scope="module")
def scifact_texts(scifact_dir: Path) -> list[str]:
    texts = []
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as f:
        for line, _ in zip(f, range(600), strict=False):
            doc = json.loads(line)
            texts.append(f"{doc['title']} {doc['text']}")
    return texts


#: On the shared model, the backends whose scores padding could move (the tiny model's
#: tests above cover every backend; fp32 onnx and openvino compute torch's scores to 1e-6).
#: ``CROSSRANK_TEST_ALL_BACKENDS=1`` runs every backend (the docs' figures).
SHARED_BACKENDS = (
    BACKENDS
    if os.environ.get("CROSSRANK_TEST_ALL_BACKENDS") == "1"
    else [b for b in ("torch", "openvino-int8", "onnx-int8") if b in BACKENDS]
)


@pytest.mark.integration
@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_the_shared_model_scores_a_text_the_same_alone_batched_and_served(
    backend: str, shared_model_dir: Path, scifact_texts: list[str]
) -> None:
    scorer = CrossEncoderScorer(shared_model_dir, backend=backend, device="cpu", activation="raw")
    lengths = scorer.count_tokens(scifact_texts)
    short = [t for t, n in zip(scifact_texts, lengths, strict=True) if 40 <= n < 200][:8]
    longer = [t for t, n in zip(scifact_texts, lengths, strict=True) if n >= 300][:32]
    query = "Vitamin D supplements reduce hip fractures in older people."
    differences = in_process_differences(scorer, query, short, longer)
    rng = random.Random(7)
    requests = [
        (CLAIMS[i % len(CLAIMS)], rng.sample(scifact_texts[:300], 2 + i % 6)) for i in range(32)
    ]
    served, shared = served_difference(scorer, requests, clients=32)
    figures: dict[str, Any] = {**differences, "served": served, "requests_per_pass": shared}
    print(f"\nbatch invariance {backend}: " + json.dumps(figures))
    assert max(differences.values()) <= TOLERANCE, figures
    assert served <= TOLERANCE, figures
