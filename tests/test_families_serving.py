"""Serving every family: ``crossrank serve`` with a causal LM reranker (which TEI cannot serve)
over the TEI and Cohere APIs, its ``instruction`` field (vLLM's, top level) and crossrank's own,
``/info``'s family, ``RemoteScorer`` sending an instruction where the protocol carries one
(crossrank's, vLLM's) and refusing it where it cannot, and ``crossrank serve`` started from the
command line with ``--instruction`` and its family said at start.

Real servers on 127.0.0.1 (uvicorn on a free port; the fake providers of tests/provider_kit.py,
scoring with the same tiny causal checkpoint), real HTTP clients.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from family_kit import DOCUMENTS, INSTRUCTION, QUERY
from provider_kit import KEY, FakeProviders, fake_providers

from crossrank import CrossEncoderScorer, RemoteScorer
from crossrank.serve import create_app, running_server
from crossrank.serve.server import RunningServer

pytestmark = pytest.mark.timeout(180)

MODEL = "qwen3-causal"
#: The served scorer's settings and the in-process reference's: raw logits.
SETTINGS: dict[str, Any] = {"device": "cpu", "activation": "raw", "backend": "torch"}
OTHER = "Find the abstracts that contradict the claim"


@pytest.fixture(scope="module")
def folder(family_kit: Any) -> Path:
    return family_kit.path(MODEL)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def reference(folder: Path) -> CrossEncoderScorer:
    scorer = CrossEncoderScorer(folder, **SETTINGS)
    scorer.warm_up()
    return scorer


@pytest.fixture(scope="module")
def served(folder: Path) -> Iterator[RunningServer]:
    with running_server(create_app(CrossEncoderScorer(folder, **SETTINGS))) as running:
        yield running


def _by_index(results: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in sorted(results, key=lambda r: r["index"])]


def _close(got: list[float], want: list[float]) -> None:
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------- the server


def test_the_server_reads_an_instruction_at_the_top_level_or_in_its_crossrank_field(
    served: RunningServer, reference: CrossEncoderScorer
) -> None:
    want = reference.score(QUERY, DOCUMENTS, instruction=OTHER)
    default = reference.score(QUERY, DOCUMENTS)
    assert np.abs(np.subtract(want, default)).max() > 1e-3  # the instruction matters
    body = {"query": QUERY, "documents": DOCUMENTS}
    with httpx.Client(base_url=served.url, timeout=60) as client:
        top = client.post("/v1/rerank", json={**body, "instruction": OTHER})
        assert top.status_code == 200, top.text
        _close(_by_index(top.json()["results"], "relevance_score"), want)
        extra = client.post("/v1/rerank", json={**body, "crossrank": {"instruction": OTHER}})
        _close(_by_index(extra.json()["results"], "relevance_score"), want)
        both = client.post(
            "/v1/rerank", json={**body, "instruction": OTHER, "crossrank": {"instruction": OTHER}}
        )
        _close(_by_index(both.json()["results"], "relevance_score"), want)
        clash = client.post(
            "/v1/rerank", json={**body, "instruction": OTHER, "crossrank": {"instruction": "x"}}
        )
        assert clash.status_code == 422
        assert "instruction and crossrank.instruction differ" in clash.json()["error"]
        tei = client.post(
            "/rerank", json={"query": QUERY, "texts": DOCUMENTS, "instruction": OTHER,
                             "raw_scores": True},
        )  # fmt: skip
        _close(_by_index(tei.json(), "score"), want)
        # TEI and Cohere clients that send none get the model's default.
        plain = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS})
        _close(_by_index(plain.json(), "score"), default)
        off = client.post("/v1/rerank", json={**body, "instruction": ""})
        _close(
            _by_index(off.json()["results"], "relevance_score"),
            reference.score(QUERY, DOCUMENTS, instruction=""),
        )
        wrong = client.post("/v1/rerank", json={**body, "instruction": 3})
        assert wrong.status_code == 422 and "instruction" in wrong.json()["error"]


def test_info_says_the_family_and_that_requests_may_carry_an_instruction(
    served: RunningServer,
) -> None:
    info = httpx.get(served.url + "/info", timeout=30).json()
    assert info["family"] == "causal-lm"
    assert "LogitScore" in info["family_detail"] and "chat template" in info["family_detail"]
    assert "instruction" in info["options"]


# ---------------------------------------------------------------------- RemoteScorer


def test_a_remote_scorer_sends_each_calls_instruction_to_a_crossrank_server(
    served: RunningServer, reference: CrossEncoderScorer
) -> None:
    remote = RemoteScorer(served.url)
    want = reference.score(QUERY, DOCUMENTS, instruction=OTHER)
    _close(remote.score(QUERY, DOCUMENTS, instruction=OTHER), want)
    _close(asyncio.run(remote.ascore(QUERY, DOCUMENTS, instruction=OTHER)), want)
    details = remote.score_details(QUERY, DOCUMENTS, instruction=OTHER)
    assert details.truncated == reference.score_details(QUERY, DOCUMENTS).truncated
    hits = remote.rank(QUERY, DOCUMENTS, top_k=3, instruction=OTHER)
    local = reference.rank(QUERY, DOCUMENTS, top_k=3, instruction=OTHER)
    assert [h.index for h in hits] == [h.index for h in local]
    reranked = remote.rerank(QUERY, [*DOCUMENTS, " "], top_k=4, instruction=OTHER)
    expected = reference.rerank(QUERY, [*DOCUMENTS, " "], top_k=4, instruction=OTHER)
    assert [h.index for h in reranked.hits] == [h.index for h in expected.hits]
    _close([h.score for h in reranked.hits], [h.score for h in expected.hits])
    assert reranked.skipped == [len(DOCUMENTS)]
    remote.close()


@pytest.fixture(scope="module")
def fakes(folder: Path) -> Iterator[FakeProviders]:
    """The fake providers, scoring with the causal checkpoint (vLLM's fake reads the
    instruction as vLLM does: into the model's template)."""
    with fake_providers(CrossEncoderScorer(folder, **SETTINGS)) as running:
        yield running


@pytest.mark.parametrize("route", ["/rerank", "/v1/rerank", "/v2/rerank", "/score"])
def test_vllm_gets_the_instruction_in_its_own_field(
    fakes: FakeProviders, reference: CrossEncoderScorer, route: str
) -> None:
    fakes.reset()
    vllm = RemoteScorer(fakes.url("vllm"), provider="vllm", route=route, api_key=KEY)
    got = vllm.score_details(QUERY, DOCUMENTS, activation="raw", instruction=OTHER).scores
    _close(got, reference.score(QUERY, DOCUMENTS, instruction=OTHER))
    (sent,) = fakes.sent("vllm")
    assert sent.body["instruction"] == OTHER
    reranked = vllm.rerank(QUERY, DOCUMENTS, top_k=2, instruction=INSTRUCTION)
    assert fakes.sent("vllm")[-1].body["instruction"] == INSTRUCTION
    assert len(reranked.hits) == 2
    vllm.score(QUERY, DOCUMENTS)
    assert "instruction" not in fakes.sent("vllm")[-1].body  # none given: none sent


@pytest.mark.parametrize(
    "name", ["tei", "cohere", "jina", "voyage", "mixedbread", "pinecone", "infinity"]
)
def test_a_provider_without_an_instruction_field_refuses_one_naming_itself(
    fakes: FakeProviders, name: str
) -> None:
    fakes.reset()
    scorer = RemoteScorer(fakes.url(name), provider=name, api_key=KEY)
    message = f"provider='{name}' cannot carry an instruction"
    for call in (
        lambda: scorer.score(QUERY, DOCUMENTS, instruction=OTHER),
        lambda: scorer.rank(QUERY, DOCUMENTS, instruction=""),
        lambda: scorer.rerank(QUERY, DOCUMENTS, instruction=OTHER),
        lambda: asyncio.run(scorer.arerank(QUERY, DOCUMENTS, instruction=OTHER)),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    assert fakes.sent(name) == []  # refused before any request
    with pytest.raises(TypeError, match="instruction must be a string or None, got int"):
        scorer.score(QUERY, DOCUMENTS, instruction=3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- crossrank serve


def test_crossrank_serve_says_the_family_at_start_and_serves_its_instruction_flag(
    folder: Path, reference: CrossEncoderScorer
) -> None:
    """The command line's ``--instruction`` is the server's default; a request's own wins."""
    argv = [sys.executable, "-m", "crossrank", "serve", "--model", str(folder), "--port", "0",
            "--device", "cpu", "--backend", "torch", "--activation", "raw",
            "--instruction", INSTRUCTION]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while len(lines) < 2 and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            if line.startswith("crossrank serve:"):
                lines.append(line.strip())
        assert len(lines) == 2, lines
        url = re.search(r"on (http://\S+) ", lines[0])
        assert url is not None and "(causal-lm, torch, max_length 160)" in lines[0]
        assert lines[1].startswith("crossrank serve: causal-lm (modules.json: Transformer(")
        assert f"instruction {INSTRUCTION!r}" in lines[1]
        body = {"query": QUERY, "documents": DOCUMENTS}
        served = httpx.post(url.group(1) + "/v1/rerank", json=body, timeout=60).json()
        want = reference.score(QUERY, DOCUMENTS, instruction=INSTRUCTION)
        _close(_by_index(served["results"], "relevance_score"), want)
        own = httpx.post(
            url.group(1) + "/v1/rerank", json={**body, "instruction": OTHER}, timeout=60
        ).json()
        _close(
            _by_index(own["results"], "relevance_score"),
            reference.score(QUERY, DOCUMENTS, instruction=OTHER),
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
