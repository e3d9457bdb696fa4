"""The composites and the deadline behind ``crossrank serve`` (uvicorn on 127.0.0.1, a free
port): an ensemble's member scores, a fallback's ``served_by`` and its metric, a cascade's
unscored rest in both protocols, a deadline that counts the wait in the queue, and a
``RemoteScorer`` that reads all of it back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from provider_kit import KEY, Failure, FakeProviders
from serve_kit import QUERIES, TEXTS, metric, spread_model

from crossrank import CrossEncoderScorer, RemoteScorer
from crossrank.compose import BiEncoderScorer, Cascade, Ensemble, Fallback, scorer_to_config
from crossrank.serve import Engine, ScoreCall, create_app, running_server

pytestmark = pytest.mark.timeout(180)

ENV = "CROSSRANK_COMPOSE_SERVE_KEY"


@pytest.fixture(scope="module")
def first_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_model(tmp_path_factory)


@pytest.fixture(scope="module")
def second_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_model(tmp_path_factory, seed=11)


def _post(url: str, path: str, body: dict[str, Any]) -> Any:
    answer = httpx.post(url + path, json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_ensemble_server_reports_member_scores(first_dir: Path, second_dir: Path) -> None:
    local = Ensemble([CrossEncoderScorer(first_dir, device="cpu"),
                      CrossEncoderScorer(second_dir, device="cpu")], weights=[1, 3])  # fmt: skip
    served = Ensemble([CrossEncoderScorer(first_dir, device="cpu"),
                       CrossEncoderScorer(second_dir, device="cpu")], weights=[1, 3])  # fmt: skip
    with running_server(create_app(served)) as running:
        info = httpx.get(running.url + "/info").json()
        assert info["scorer"] == scorer_to_config(served)
        assert info["model"] == served.model_name and info["activation"] == "raw"
        body = {"query": QUERIES[1], "documents": TEXTS, "top_n": 4, "crossrank": {}}
        answer = _post(running.url, "/v1/rerank", body)
        want = local.rerank(QUERIES[1], TEXTS, top_k=4)
        assert [r["index"] for r in answer["results"]] == [h.index for h in want.hits]
        for result, hit in zip(answer["results"], want.hits, strict=True):
            assert result["relevance_score"] == pytest.approx(hit.score, abs=1e-5)
            assert result["member_scores"] == pytest.approx(want.member_scores[hit.index], abs=1e-5)
        remote = RemoteScorer(running.url).rerank(QUERIES[1], TEXTS, top_k=4)
        assert [h.index for h in remote.hits] == [h.index for h in want.hits]
        assert metric(running.url, "crossrank_forward_passes_total") >= 2  # both, batched


def test_a_fallback_server_says_which_served_and_counts_it(
    first_dir: Path, fakes: FakeProviders
) -> None:
    fakes.reset()
    fakes.fail("cohere", Failure(503, times=100))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, KEY)
        primary = RemoteScorer(
            fakes.url("cohere"), provider="cohere", model="rerank-v3.5", api_key_env=ENV,
            retries=0,
        )  # fmt: skip
        scorer = Fallback(primary, CrossEncoderScorer(first_dir, device="cpu"))
        with running_server(create_app(scorer)) as running:
            body = {"query": QUERIES[0], "documents": TEXTS, "crossrank": {}}
            answer = _post(running.url, "/v1/rerank", body)
            assert answer["crossrank"]["served_by"] == "fallback"
            assert len(answer["results"]) == len(TEXTS)
            assert metric(running.url, "crossrank_fallback_served_total") == 1
            assert KEY not in httpx.get(running.url + "/info").text


def test_a_cascade_server_returns_the_rest_unscored_in_both_protocols(
    first_dir: Path, tiny_bi_encoder_dir: Path
) -> None:
    def cascade() -> Cascade:
        return Cascade(
            BiEncoderScorer(str(tiny_bi_encoder_dir), device="cpu"),
            CrossEncoderScorer(first_dir, device="cpu"),
            keep=3,
        )

    local = cascade()
    want = local.rerank(QUERIES[2], TEXTS)
    with running_server(create_app(cascade())) as running:
        tei = _post(running.url, "/rerank", {"query": QUERIES[2], "texts": TEXTS})
        assert [r["index"] for r in tei] == [h.index for h in want.hits] + want.unscored
        assert [r["score"] is None for r in tei] == [False] * 3 + [True] * (len(TEXTS) - 3)
        marked = _post(
            running.url, "/v1/rerank", {"query": QUERIES[2], "documents": TEXTS, "crossrank": {}}
        )
        assert [r.get("unscored", False) for r in marked["results"]][2:4] == [False, True]
        assert marked["crossrank"]["unscored"] == want.unscored
        remote = RemoteScorer(running.url).rerank(QUERIES[2], TEXTS)
        assert [h.index for h in remote.hits] == [h.index for h in want.hits]
        assert remote.unscored == want.unscored
        assert metric(running.url, "crossrank_unscored_total") == 0  # by design, not late


def test_a_deadline_in_a_request_and_its_metrics(first_dir: Path) -> None:
    with running_server(create_app(CrossEncoderScorer(first_dir, device="cpu"))) as running:
        body = {"query": QUERIES[3], "documents": TEXTS, "crossrank": {"deadline_ms": 1e-6}}
        answer = _post(running.url, "/v1/rerank", body)
        assert [r["index"] for r in answer["results"]] == list(range(len(TEXTS)))
        assert all(r["relevance_score"] is None and r["unscored"] for r in answer["results"])
        assert answer["crossrank"]["deadline_unscored"] == len(TEXTS)
        assert metric(running.url, "crossrank_unscored_total") == len(TEXTS)
        assert metric(running.url, "crossrank_deadline_cut_requests_total") == 1
        body["crossrank"] = {"deadline_ms": 60_000}
        on_time = _post(running.url, "/v1/rerank", body)
        assert all(isinstance(r["relevance_score"], float) for r in on_time["results"])
        bad = httpx.post(running.url + "/v1/rerank", json={**body, "crossrank": {"deadline_ms": 0}})
        assert bad.status_code == 422 and "deadline_ms" in bad.text
        late = RemoteScorer(running.url).rerank(QUERIES[3], TEXTS)
        assert late.unscored == [] and len(late.hits) == len(TEXTS)


@pytest.fixture
def engine(first_dir: Path) -> Iterator[Engine]:
    engine = Engine(CrossEncoderScorer(first_dir, device="cpu", deadline_ms=5_000))
    engine.start(background=False)
    yield engine
    engine.close()


def test_the_wait_in_the_queue_counts_against_the_deadline(engine: Engine) -> None:
    waited = ScoreCall(QUERIES[0], TEXTS, rerank=True, arrived=time.monotonic() - 10)
    out = asyncio.run(engine.score(waited))  # the scorer's 5 s were spent in the queue
    assert out.hits == [] and out.unscored == list(range(len(TEXTS)))
    fresh = asyncio.run(engine.score(ScoreCall(QUERIES[0], TEXTS, rerank=True)))
    assert len(fresh.hits) == len(TEXTS) and fresh.deadline_unscored == 0
    assert engine.info()["deadline_ms"] == 5_000
