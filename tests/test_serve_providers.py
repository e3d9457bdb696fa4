"""``crossrank serve`` in front of a provider: one key and one quota for many pipelines.

A real app (uvicorn on 127.0.0.1) holding ``RemoteScorer(provider=...)`` forwards to the
fake providers (tests/provider_kit.py): its clients get the core's results over every
protocol while only the server holds the provider's key; each call's usage comes back in
``crossrank.usage`` and is counted in ``/metrics``; a provider's refusal, rate limit or
outage reaches the client as 422, 429 with Retry-After, or 502."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from provider_kit import KEY, Failure, FakeProviders
from serve_kit import QUERIES, TEXTS, metric

from crossrank import CrossEncoderScorer, RemoteScorer, RemoteScorerError
from crossrank.remote import RemoteRequestError
from crossrank.serve import Limits, create_app, running_server
from crossrank.serve.server import RunningServer

pytestmark = pytest.mark.timeout(180)

CLIENT_KEY = "client-key-for-the-crossrank-server"
CANDIDATES: list[str | None] = [TEXTS[0], None, *TEXTS[3:7]]
FIRST: list[float | None] = [1.0, None, 3.0, 0.5, 2.0, 4.0]


@pytest.fixture(scope="module")
def served(fakes: FakeProviders) -> Iterator[RunningServer]:
    """A crossrank server forwarding to the fake Cohere (its key in the server only)."""
    upstream = RemoteScorer(
        fakes.url("cohere"), provider="cohere", api_key=KEY, retries=1, backoff=0.01
    )
    app = create_app(upstream, api_keys=[CLIENT_KEY], limits=Limits(retry_after=1), threads=4)
    with running_server(app) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(fakes: FakeProviders) -> None:
    fakes.reset()


def client(served: RunningServer, **kwargs: object) -> RemoteScorer:
    return RemoteScorer(served.url, api_key=CLIENT_KEY, retries=0, **kwargs)  # type: ignore[arg-type]


def test_clients_of_a_forwarding_server_get_the_cores_results(
    served: RunningServer, fakes: FakeProviders, spread_scorer: CrossEncoderScorer
) -> None:
    own = client(served)
    out = own.rerank(QUERIES[0], CANDIDATES, top_k=3, fusion="rrf",
                     first_stage_scores=FIRST)  # fmt: skip
    want = spread_scorer.rerank(QUERIES[0], CANDIDATES, top_k=3, fusion="rrf",
                        first_stage_scores=FIRST)  # fmt: skip
    assert out.skipped == want.skipped == [1]
    assert [h.index for h in out.hits] == [h.index for h in want.hits]
    np.testing.assert_allclose([h.score for h in out.hits], [h.score for h in want.hits], atol=1e-5)
    # The provider's usage comes back through the server.
    assert out.usage is not None and out.usage["input_tokens"] > 0
    assert {k: v for k, v in out.usage.items() if k != "input_tokens"} == {
        "requests": 1.0, "provider_requests": 1.0, "search_units": 1.0, "output_tokens": 0.0
    }  # fmt: skip
    tei = client(served, provider="tei")
    np.testing.assert_allclose(
        tei.score(QUERIES[1], TEXTS), spread_scorer.score(QUERIES[1], TEXTS), rtol=0, atol=1e-5
    )
    # Only the server's key reached the provider.
    assert {r.headers["authorization"] for r in fakes.sent("cohere")} == {f"Bearer {KEY}"}
    info = httpx.get(served.url + "/info", headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    body = info.json()
    assert body["provider"] == "cohere" and body["model"] == "rerank-v3.5"
    assert body["backend"] == "provider:cohere" and KEY not in info.text


def test_many_pipelines_share_the_server_and_its_usage_is_counted(
    served: RunningServer, fakes: FakeProviders, spread_scorer: CrossEncoderScorer
) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    before = metric(served.url, "crossrank_provider_usage_total", headers)
    own = client(served)

    async def many() -> list[list[float]]:
        return list(await asyncio.gather(*(own.ascore(q, TEXTS) for q in QUERIES)))

    results = asyncio.run(many())
    for query, scores in zip(QUERIES, results, strict=True):
        np.testing.assert_allclose(scores, spread_scorer.score(query, TEXTS), rtol=0, atol=1e-5)
    text = httpx.get(served.url + "/metrics", headers=headers).text
    assert 'crossrank_provider_usage_total{provider="cohere",unit="search_units"}' in text
    assert 'crossrank_provider_usage_total{provider="cohere",unit="requests"}' in text
    after = metric(served.url, "crossrank_provider_usage_total", headers)
    assert after - before >= 2 * len(QUERIES)  # a search unit and a request each, at least
    assert len(fakes.sent("cohere")) == len(QUERIES)


def test_a_providers_failures_reach_clients_as_http_errors(
    served: RunningServer, fakes: FakeProviders
) -> None:
    own = client(served)
    fakes.fail("cohere", Failure(400, message="too many tokens in the query"))
    with pytest.raises(RemoteRequestError, match=r"answered 422.*too many tokens") as refused:
        own.score(QUERIES[0], TEXTS)
    assert refused.value.status == 422
    fakes.fail("cohere", Failure(429, times=2, retry_after="0", message="rate limited"))
    with pytest.raises(RemoteScorerError, match=r"answered 429.*rate limited") as limited:
        own.score(QUERIES[0], TEXTS)
    assert limited.value.status == 429
    fakes.fail("cohere", Failure(401, message="bad key"))
    with pytest.raises(RemoteScorerError, match=r"answered 502.*bad key") as gateway:
        own.score(QUERIES[0], TEXTS)
    assert gateway.value.status == 502 and KEY not in str(gateway.value)
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    text = httpx.get(served.url + "/metrics", headers=headers).text
    assert 'crossrank_errors_total{kind="upstream"} 1.0' in text
