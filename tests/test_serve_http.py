"""``crossrank serve`` over HTTP: a real uvicorn server on 127.0.0.1 (a free port) with the
tiny model, real httpx clients. Each protocol's shapes and scores (against the same scorer
settings in process), crossrank's own options, the bad-input matrix, API keys, the queue
limit, the drain on shutdown, and 32 concurrent clients."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serve_kit import (
    QUERIES,
    TEXTS,
    Gate,
    metric,
    request_query,
    request_texts,
    spread_model,
    wait_for,
)

from crossrank import Calibration, CrossEncoderScorer
from crossrank.serve import Limits, create_app, running_server
from crossrank.serve.metrics import ERROR_KINDS
from crossrank.serve.server import RunningServer

pytestmark = pytest.mark.timeout(180)

#: The served scorer's settings (and the in-process reference's): chunk mode with short
#: windows, and calibrated scores, so that those paths are the ones compared.
SETTINGS: dict[str, Any] = {
    "device": "cpu",
    "long_documents": "chunk",
    "max_length": 40,
    "max_windows": 3,
    "activation": "calibrated",
    "calibration": Calibration("platt", 2.0, -1.0),
}
LIMITS = Limits(max_documents=50, max_chars=40_000, max_tokens=3000, max_body_bytes=60_000)
LONG = " ".join([TEXTS[3]] * 12)  # more windows than max_windows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_model(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> CrossEncoderScorer:
    return CrossEncoderScorer(model_dir, **SETTINGS)


@pytest.fixture(scope="module")
def served(model_dir: Path) -> Iterator[RunningServer]:
    app = create_app(CrossEncoderScorer(model_dir, **SETTINGS), limits=LIMITS)
    with running_server(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(served: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60.0) as client:
        yield client


def _by_index(results: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in sorted(results, key=lambda r: r["index"])]


# ---------------------------------------------------------------------- protocols


def test_tei_rerank_gives_every_text_best_first_with_the_cores_scores(
    client: httpx.Client, reference: CrossEncoderScorer
) -> None:
    texts = [*TEXTS, LONG]
    answer = client.post("/rerank", json={"query": QUERIES[0], "texts": texts})
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert [set(r) for r in results] == [{"index", "score"}] * len(texts)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(
        _by_index(results, "score"), reference.score(QUERIES[0], texts), rtol=0, atol=1e-5
    )
    raw = client.post(
        "/rerank",
        json={"query": QUERIES[0], "texts": texts, "raw_scores": True, "return_text": True},
    ).json()
    want = reference.score_details(QUERIES[0], texts, activation="raw").scores
    np.testing.assert_allclose(_by_index(raw, "score"), want, rtol=0, atol=1e-5)
    assert all(r["text"] == texts[r["index"]] for r in raw)
    # Calibrated and raw scores are not the same numbers: the activation was applied.
    assert np.max(np.abs(np.subtract(_by_index(results, "score"), want))) > 0.1


def test_cohere_rerank_top_n_and_return_documents(
    client: httpx.Client, reference: CrossEncoderScorer
) -> None:
    documents: list[Any] = [TEXTS[0], {"text": TEXTS[1], "id": "d1"}, *TEXTS[2:6]]
    texts = [d if isinstance(d, str) else d["text"] for d in documents]
    body = {"model": "rerank-v3.5", "query": QUERIES[1], "documents": documents, "top_n": 3}
    answer = client.post("/v1/rerank", json={**body, "return_documents": True})
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert set(out) == {"id", "model", "results", "meta"}
    assert out["model"] == reference.model_name and out["meta"]["api_version"] == {"version": "1"}
    expected = reference.rank(QUERIES[1], texts, top_k=3)
    assert [r["index"] for r in out["results"]] == [h.index for h in expected]
    np.testing.assert_allclose(
        [r["relevance_score"] for r in out["results"]], [h.score for h in expected], atol=1e-5
    )
    for r in out["results"]:
        doc = documents[r["index"]]
        assert r["document"] == ({"text": doc} if isinstance(doc, str) else doc)
    plain = client.post("/v1/rerank", json=body).json()
    assert all(set(r) == {"index", "relevance_score"} for r in plain["results"])
    assert plain["id"] != out["id"]


@pytest.mark.parametrize(
    "options",
    [
        {"passages": True, "token_budget": 30},
        {"min_relative_score": 0.9, "score_threshold": 0.3, "activation": "sigmoid"},
        {"activation": "raw", "passages": True, "contents": "same"},
    ],
    ids=["passages-budget", "relative-cut", "raw-contents"],
)
def test_the_crossrank_field_reaches_the_cores_rerank(
    client: httpx.Client, reference: CrossEncoderScorer, options: dict[str, Any]
) -> None:
    texts: list[str] = [TEXTS[0], "", LONG, *TEXTS[4:7], "   "]
    contents = None
    if options.get("contents") == "same":
        contents = [f"TITLE. {t}" if t.strip() else t for t in texts]
        options = {**options, "contents": contents}
        texts = [f"TITLE. {t}" if t.strip() else t for t in texts]
    answer = client.post(
        "/v1/rerank",
        json={"query": QUERIES[1], "documents": texts, "top_n": 5, "crossrank": options},
    )
    assert answer.status_code == 200, answer.text
    out = answer.json()
    expected = reference.rerank(QUERIES[1], texts, top_k=5, **options)
    assert out["crossrank"]["skipped"] == expected.skipped == [1, 6]
    assert out["crossrank"]["pairs"] == expected.pairs
    assert out["crossrank"]["activation"] == options.get("activation", "calibrated")
    assert [r["index"] for r in out["results"]] == [h.index for h in expected.hits]
    for r, hit in zip(out["results"], expected.hits, strict=True):
        assert r["relevance_score"] == pytest.approx(hit.score, abs=1e-5)
        assert r["truncated"] == hit.truncated
        assert r["span"] == (None if hit.span is None else list(hit.span))
        assert r["passage"] == (None if hit.passage is None else list(hit.passage))
    assert any(r["truncated"] for r in out["results"]) or 2 not in [h.index for h in expected.hits]


def test_skip_blank_false_scores_every_text_as_score_and_rank_do(
    client: httpx.Client, reference: CrossEncoderScorer
) -> None:
    texts = [TEXTS[0], "", LONG, TEXTS[5]]
    answer = client.post(
        "/v1/rerank",
        json={"query": QUERIES[2], "documents": texts, "top_n": 3,
              "crossrank": {"skip_blank": False, "token_budget": 60}},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    out = answer.json()
    expected = reference.rank(QUERIES[2], texts, top_k=3, token_budget=60)
    details = reference.score_details(QUERIES[2], texts)
    assert [r["index"] for r in out["results"]] == [h.index for h in expected]
    assert out["crossrank"]["skipped"] == [] and out["crossrank"]["pairs"] == details.pairs
    assert [r["windows"] for r in out["results"]] == [details.windows[h.index] for h in expected]  # type: ignore[index]


def test_health_info_and_metrics(client: httpx.Client, reference: CrossEncoderScorer) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["model"] == reference.model_name and info["backend"] == "torch"
    assert info["max_length"] == 40 and info["activation"] == "calibrated"
    assert info["version"] and info["state"] == "ready"
    assert info["limits"]["max_documents"] == 50 and info["protocols"]["tei"] == "/rerank"
    before = httpx.get(client.base_url.join("/metrics")).text
    for _ in range(2):
        assert client.post("/rerank", json={"query": "q", "texts": TEXTS[:3]}).status_code == 200
    text = client.get("/metrics").text
    names = [line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"]
    assert names and all(name.startswith("crossrank_") for name in names)
    for family in ("crossrank_requests_total", "crossrank_request_duration_seconds_bucket",
                   "crossrank_pairs_total", "crossrank_forward_passes_total",
                   "crossrank_pass_requests_sum", "crossrank_pass_pairs_sum",
                   "crossrank_queue_depth", "crossrank_batcher_waiting_pairs",
                   "crossrank_info"):  # fmt: skip
        assert family in names, family
    assert all(f'crossrank_errors_total{{kind="{kind}"}}' in text for kind in ERROR_KINDS)
    from crossrank.eval.serve_bench import metrics_snapshot

    grew = (
        metrics_snapshot(text)["crossrank_pairs_total"]
        - metrics_snapshot(before)["crossrank_pairs_total"]
    )
    assert grew == 6


def test_metrics_count_the_documents_not_read_in_full(client: httpx.Client) -> None:
    from crossrank.eval.serve_bench import metrics_snapshot

    def truncated() -> float:
        return metrics_snapshot(client.get("/metrics").text)["crossrank_truncated_texts_total"]

    before = truncated()
    body = {"query": "q", "documents": [LONG, "a", LONG], "top_n": 1}
    assert client.post(COHERE, json=body).status_code == 200
    assert client.post(TEI, json={"query": "q", "texts": [LONG, "a"]}).status_code == 200
    assert truncated() - before == 3  # kept or not


# ---------------------------------------------------------------------- bad input


def _j(body: Any) -> bytes:
    return json.dumps(body).encode()


TEI = "/rerank"
COHERE = "/v1/rerank"
OK = {"query": "q", "texts": ["a"]}
BAD_INPUT = [
    # id, path, body, status, error_type, message, limit
    ("malformed-json", TEI, b'{"query": "q", "texts": [', 422, "validation",
     "the request body is not valid JSON", None),
    ("not-an-object", TEI, b"[1, 2]", 422, "validation", "must be a JSON object", None),
    ("no-body", TEI, b"", 422, "validation", "the request body is missing", None),
    ("texts-not-a-list", TEI, _j({"query": "q", "texts": "one"}), 422, "validation",
     "texts: Input should be a valid list", None),
    ("query-not-a-string", TEI, _j({"query": 3, "texts": ["a"]}), 422, "validation",
     "query: Input should be a valid string", None),
    ("top-n-a-string", COHERE, _j({"query": "q", "documents": ["a"], "top_n": "3"}), 422,
     "validation", "top_n: Input should be a valid integer", None),
    ("top-n-zero", COHERE, _j({"query": "q", "documents": ["a"], "top_n": 0}), 422,
     "validation", "top_n: Input should be greater than or equal to 1", None),
    ("unknown-field", TEI, _j({**OK, "top_k": 3}), 422, "validation",
     "top_k: unknown field", None),
    ("empty-query", TEI, _j({"query": "  ", "texts": ["a"]}), 422, "validation",
     "query must contain non-whitespace text", None),
    ("empty-documents", COHERE, _j({"query": "q", "documents": []}), 422, "validation",
     "documents must not be empty", None),
    ("document-without-text", COHERE, _j({"query": "q", "documents": [{"title": "t"}]}), 422,
     "validation", 'documents.0: must be a string or an object like {"text": "..."}', None),
    ("non-utf8", TEI, b'{"query": "\xff\xfe", "texts": ["a"]}', 422, "validation",
     "the request body is not valid UTF-8", None),
    ("bad-activation", COHERE, _j({"query": "q", "documents": ["a"],
                                   "crossrank": {"activation": "softmax"}}), 422,
     "validation", "crossrank.activation: Input should be", None),
    ("raw-and-sigmoid", TEI, _j({**OK, "raw_scores": True,
                                 "crossrank": {"activation": "sigmoid"}}), 422,
     "validation", "raw_scores=true asks for logits", None),
    ("relative-cut-of-logits", COHERE, _j({"query": "q", "documents": ["a"], "crossrank": {
        "activation": "raw", "min_relative_score": 0.5}}), 422, "validation",
     "min_relative_score", None),
    ("passages-without-rerank", COHERE, _j({"query": "q", "documents": ["a"], "crossrank": {
        "skip_blank": False, "passages": True}}), 422, "validation",
     "passages need skip_blank=true", None),
    ("oversized-body", TEI, _j({"query": "q", "texts": ["word " * 13_000]}), 413, "limit",
     "more than max_body_bytes=60000", "max_body_bytes"),
    ("too-many-documents", COHERE, _j({"query": "q", "documents": ["a"] * 51}), 413, "limit",
     "the request has 51 documents, more than max_documents=50", "max_documents"),
    ("too-many-characters", TEI, _j({"query": "q", "texts": ["cell " * 3200] * 3}), 413,
     "limit", "more than max_chars=40000", "max_chars"),
    ("too-many-tokens", TEI, _j({"query": "q", "texts": [LONG] * 30}), 413, "limit",
     "more than max_tokens=3000", "max_tokens"),
    ("truncate-false", TEI, _j({"query": "q", "texts": [LONG, "a"], "truncate": False}), 413,
     "limit", "were not read whole", "max_windows"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "message", "limit"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_gets_its_status_and_a_clear_error_and_the_server_stays_healthy(
    client: httpx.Client,
    path: str,
    body: bytes,
    status: int,
    kind: str,
    message: str,
    limit: str | None,
) -> None:
    answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error_type"] == kind
    assert message in error["error"], error["error"]
    assert error.get("limit") == limit
    assert client.get("/health").status_code == 200
    assert client.post(TEI, json=OK).status_code == 200


def test_wrong_methods_and_paths_are_json_errors(client: httpx.Client) -> None:
    answer = client.get("/rerank")
    assert answer.status_code == 405 and "GET is not allowed on /rerank" in answer.json()["error"]
    answer = client.post("/v2/rerank", json=OK)
    assert answer.status_code == 404 and "GET /info" in answer.json()["error"]


# ---------------------------------------------------------------------- API keys


def test_api_keys_guard_everything_but_health(model_dir: Path) -> None:
    key = "s3cret-key-do-not-echo"
    app = create_app(CrossEncoderScorer(model_dir, device="cpu"), api_keys=[key, "other-key"])
    with running_server(app) as running, httpx.Client(base_url=running.url) as client:
        refused: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer wrong-key-xyz"},
            {"Authorization": f"Basic {key}"},
            {"Authorization": "Bearer"},
        ]
        for headers in refused:
            answer = client.post(TEI, json=OK, headers=headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["error_type"] == "unauthorized"
            assert "Authorization: Bearer <key>" in answer.json()["error"]
            assert "wrong-key-xyz" not in answer.text and key not in answer.text
        assert client.get("/health").status_code == 200  # probes need no key
        assert client.get("/info").status_code == 401
        assert client.get("/metrics").status_code == 401
        good = {"Authorization": f"Bearer {key}"}
        assert client.post(TEI, json=OK, headers=good).status_code == 200
        assert (
            client.post(TEI, json=OK, headers={"Authorization": "bearer other-key"}).status_code
            == 200
        )
        seen = client.get("/info", headers=good).text + client.get("/metrics", headers=good).text
        assert key not in seen and "other-key" not in seen
        assert (
            'crossrank_errors_total{kind="unauthorized"} 6.0'
            in client.get("/metrics", headers=good).text
        )


# ---------------------------------------------------------------------- load


def _post_in_thread(url: str, body: dict[str, Any], out: list[httpx.Response]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append(httpx.post(url, json=body, timeout=60)))
    thread.start()
    return thread


def test_a_full_queue_answers_429_with_retry_after_and_the_held_requests_finish(
    model_dir: Path, reference: CrossEncoderScorer
) -> None:
    scorer = CrossEncoderScorer(model_dir, **SETTINGS)
    app = create_app(scorer, limits=Limits(max_queue=2, retry_after=3))
    with running_server(app) as running:
        gate = Gate(app)
        engine = app.state.engine
        held: list[httpx.Response] = []
        bodies = [{"query": request_query(i), "texts": request_texts(i)} for i in range(2)]
        threads = [_post_in_thread(running.url + TEI, body, held) for body in bodies]
        wait_for(lambda: engine.in_flight == 2, "two requests in the queue")
        refused = httpx.post(running.url + TEI, json=OK, timeout=30)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "3"
        assert refused.json()["error_type"] == "overloaded"
        assert "max_queue=2" in refused.json()["error"]
        # The event loop is free while the two are held: health and info answer.
        assert httpx.get(running.url + "/health").status_code == 200
        assert httpx.get(running.url + "/info").json()["state"] == "ready"
        gate.open()
        for thread in threads:
            thread.join(60)
        assert [r.status_code for r in held] == [200, 200]
        for answer in held:  # each its own request's scores
            sent = json.loads(answer.request.content)
            np.testing.assert_allclose(
                _by_index(answer.json(), "score"),
                reference.score(sent["query"], sent["texts"]),
                rtol=0,
                atol=1e-5,
            )
        assert metric(running.url, "crossrank_errors_total") == 1
        assert engine.in_flight == 0


def test_shutdown_lets_admitted_requests_finish_and_refuses_new_ones(
    model_dir: Path, reference: CrossEncoderScorer
) -> None:
    app = create_app(CrossEncoderScorer(model_dir, **SETTINGS))
    body = {"query": QUERIES[3], "texts": TEXTS}
    with running_server(app) as running:
        gate = Gate(app)
        held: list[httpx.Response] = []
        thread = _post_in_thread(running.url + TEI, body, held)
        wait_for(lambda: app.state.engine.in_flight == 1, "the request to be admitted")
        running.drain()
        refused = httpx.post(running.url + TEI, json=OK, timeout=30)
        assert refused.status_code == 503 and refused.json()["error_type"] == "unavailable"
        assert "shutting down" in refused.json()["error"] and refused.headers["retry-after"]
        health = httpx.get(running.url + "/health")
        assert health.status_code == 503 and health.json() == {"status": "draining"}
        assert running.thread.is_alive()  # it waits for the admitted request
        gate.open()
        thread.join(60)
        running.thread.join(60)
        assert not running.thread.is_alive()  # and then stops by itself
    assert held[0].status_code == 200
    np.testing.assert_allclose(
        _by_index(held[0].json(), "score"), reference.score(body["query"], body["texts"]), atol=1e-5
    )


def test_thirty_two_clients_get_their_own_scores(
    served: RunningServer, reference: CrossEncoderScorer
) -> None:
    clients, per_client = 32, 10
    jobs = [[c * per_client + r for r in range(per_client)] for c in range(clients)]
    queries = {i: request_query(i) for job in jobs for i in job}
    texts = {i: request_texts(i, 3 + i % 4) for i in queries}
    expected = {i: reference.score(queries[i], texts[i]) for i in queries}
    # The check can fail: answers for different requests differ.
    assert len({tuple(round(s, 4) for s in v) for v in expected.values()}) == len(expected)

    async def run() -> dict[int, list[float]]:
        answers: dict[int, list[float]] = {}
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=served.url, timeout=120, limits=limits) as client:

            async def one(job: list[int]) -> None:
                for i in job:
                    answer = await client.post(TEI, json={"query": queries[i], "texts": texts[i]})
                    assert answer.status_code == 200, answer.text
                    answers[i] = _by_index(answer.json(), "score")

            await asyncio.gather(*(one(job) for job in jobs))
        return answers

    answers = asyncio.run(run())
    assert sorted(answers) == sorted(queries)  # nothing lost
    for i, want in expected.items():
        np.testing.assert_allclose(answers[i], want, rtol=0, atol=1e-5, err_msg=f"request {i}")
    assert httpx.get(served.url + "/health").status_code == 200
