"""``RemoteScorer(provider=...)`` against a local fake of each provider, written from its API
reference (tests/provider_kit.py: one uvicorn server on 127.0.0.1, a free port): the core's
scores and selection for every provider, golden request bodies and headers, calls split
across the documents-per-request limit and merged in order, usage summed, each provider's
errors (400/401/413/422/429/503 with Retry-After) worded with what to do, options a provider
cannot carry refused with its name, config round trips, and keys never printed."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from provider_kit import KEY, MAX_WORDS, Failure, FakeProviders
from serve_kit import QUERIES, TEXTS, request_texts

from crossrank import CrossEncoderScorer, RemoteScorer, RemoteScorerError
from crossrank.remote import PROVIDERS, RemoteRequestError, make_provider

pytestmark = pytest.mark.timeout(180)

SELF_HOSTED = ("tei", "vllm", "infinity")
HOSTED = ("cohere", "jina", "voyage", "mixedbread", "pinecone")
NAMES = (*SELF_HOSTED, *HOSTED)
#: The key variable of a self-hosted fake (it checks ``Authorization: Bearer``).
SERVER_ENV = "CROSSRANK_FAKE_SERVER_KEY"
CANDIDATES: list[str | None] = [TEXTS[0], None, TEXTS[3], *TEXTS[4:7], "  ", TEXTS[7]]


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module", autouse=True)
def _keys(monkeypatch_module: pytest.MonkeyPatch) -> None:
    for name in HOSTED:
        env = make_provider(name).key_env
        assert env is not None
        monkeypatch_module.setenv(env, KEY)
    monkeypatch_module.setenv(SERVER_ENV, KEY)


@pytest.fixture(autouse=True)
def _fresh(fakes: FakeProviders) -> None:
    fakes.reset()


def remote(fakes: FakeProviders, name: str, **kwargs: Any) -> RemoteScorer:
    """A RemoteScorer on the fake ``name`` (self-hosted ones with a key variable)."""
    if name in SELF_HOSTED and "api_key" not in kwargs:
        kwargs.setdefault("api_key_env", SERVER_ENV)
    kwargs.setdefault("backoff", 0.01)
    return RemoteScorer(fakes.url(name), provider=name, **kwargs)


def hits_of(reranked: Any) -> list[tuple[int, float, float | None]]:
    return [(h.index, h.score, h.model_score) for h in reranked.hits]


def same(got: list[tuple[int, float, float | None]], want: list[Any]) -> None:
    assert [g[0] for g in got] == [w[0] for w in want]
    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=0, atol=1e-5)
    assert all(type(g[1]) is float for g in got)
    for (_, _, own), (_, _, want_own) in zip(got, want, strict=True):
        assert (own is None) == (want_own is None)
        if own is not None:
            assert own == pytest.approx(want_own, abs=1e-5)


# ---------------------------------------------------------------------- scores and selection


@pytest.mark.parametrize("name", NAMES)
def test_each_provider_gives_the_cores_scores_sync_and_async(
    fakes: FakeProviders, spread_scorer: CrossEncoderScorer, name: str
) -> None:
    scorer = remote(fakes, name)
    texts = TEXTS[:6]
    np.testing.assert_allclose(
        scorer.score(QUERIES[0], texts), spread_scorer.score(QUERIES[0], texts), rtol=0, atol=1e-5
    )
    details = scorer.score_details(QUERIES[0], texts)
    assert details.truncated == [False] * 6 and details.pairs == 6
    assert details.usage is not None and details.usage["requests"] == 1
    out = scorer.rerank(QUERIES[2], CANDIDATES, top_k=4)
    want = spread_scorer.rerank(QUERIES[2], CANDIDATES, top_k=4)
    assert out.skipped == want.skipped == [1, 6] and out.pairs == 6
    same(hits_of(out), hits_of(want))

    async def both() -> tuple[Any, Any]:
        return await asyncio.gather(
            scorer.arerank(QUERIES[2], CANDIDATES, top_k=4), scorer.ascore(QUERIES[0], texts)
        )

    again, scores = asyncio.run(both())
    same(hits_of(again), hits_of(want))
    np.testing.assert_allclose(scores, spread_scorer.score(QUERIES[0], texts), rtol=0, atol=1e-5)
    assert scorer.rank(QUERIES[1], []) == [] and fakes.sent(name)  # no request for nothing


SELECTIONS: list[dict[str, Any]] = [
    {"top_k": 3},
    {"score_threshold": 0.5},
    {"min_relative_score": 0.98, "top_k": 5},
    {"fusion": "linear", "fusion_weight": 0.3, "top_k": 5},
    {"fusion": "rrf", "fusion_weight": 0.6},
    {"fusion": "linear", "fusion_normalization": "minmax", "min_relative_score": 0.5},
]


@pytest.mark.parametrize("name", NAMES)
def test_selection_and_fusion_run_here_and_equal_the_cores(
    fakes: FakeProviders, spread_scorer: CrossEncoderScorer, name: str
) -> None:
    """Everything that needs only scores runs on this side, on the provider's scores: the
    same hits, scores and model scores as the core's on the same model."""
    scorer = remote(fakes, name)
    first = [float((5 * i) % 7) if t and t.strip() else None for i, t in enumerate(CANDIDATES)]
    for options in SELECTIONS:
        extra = {"first_stage_scores": first} if "fusion" in options else {}
        for query in QUERIES[:3]:
            got = scorer.rerank(query, CANDIDATES, **options, **extra)
            want = spread_scorer.rerank(query, CANDIDATES, **options, **extra)  # type: ignore[arg-type]
            assert got.skipped == want.skipped
            same(hits_of(got), hits_of(want))
    # A scorer-level fusion setting is applied to every call, as the core's is.
    fused = remote(fakes, name, fusion="rrf", fusion_weight=0.4)
    core = CrossEncoderScorer(
        spread_scorer.model_name, device="cpu", fusion="rrf", fusion_weight=0.4
    )
    same(
        hits_of(fused.rerank(QUERIES[4], CANDIDATES, first_stage_scores=first)),
        hits_of(core.rerank(QUERIES[4], CANDIDATES, first_stage_scores=first)),
    )
    rank = scorer.rank(QUERIES[5], TEXTS, top_k=3, min_relative_score=0.9)
    same(
        [(h.index, h.score, None) for h in rank],
        [(h.index, h.score, None) for h in spread_scorer.rank(QUERIES[5], TEXTS, top_k=3,
                                                     min_relative_score=0.9)],
    )  # fmt: skip


@pytest.mark.parametrize("name", ["tei", "vllm", "infinity"])
def test_providers_that_return_logits_honour_activation_raw(
    fakes: FakeProviders, spread_scorer: CrossEncoderScorer, name: str
) -> None:
    scorer = remote(fakes, name)
    got = scorer.rerank(QUERIES[3], CANDIDATES, activation="raw")
    same(hits_of(got), hits_of(spread_scorer.rerank(QUERIES[3], CANDIDATES, activation="raw")))
    raw = scorer.score_details(QUERIES[3], TEXTS, activation="raw").scores
    np.testing.assert_allclose(
        raw, spread_scorer.score_details(QUERIES[3], TEXTS, activation="raw").scores, atol=1e-5
    )


@pytest.mark.parametrize("name", NAMES)
def test_the_token_budget_counts_a_local_tokenizer_or_characters(
    fakes: FakeProviders, spread_scorer: CrossEncoderScorer, name: str
) -> None:
    counted = remote(fakes, name, tokenizer=spread_scorer.model_name)
    for budget in (5, 12, 30):
        same(
            hits_of(counted.rerank(QUERIES[1], CANDIDATES, token_budget=budget)),
            hits_of(spread_scorer.rerank(QUERIES[1], CANDIDATES, token_budget=budget)),
        )
    plain = remote(fakes, name)
    assert plain.count_tokens(["paris", "the dog"]) == [5, 7]  # characters
    hits = plain.rerank(QUERIES[1], CANDIDATES, token_budget=40).hits
    texts = [CANDIDATES[h.index] or "" for h in hits]
    assert sum(len(t) for t in texts) <= 40 and hits


# ---------------------------------------------------------------------- golden bodies

Q, D = "what is the capital of france", ["paris is the capital of france", "the dog"]
GOLDEN: list[tuple[str, dict[str, Any], dict[str, Any], str, dict[str, Any]]] = [
    ("tei", {}, {}, "/rerank", {"query": Q, "texts": D, "raw_scores": False, "truncate": True}),
    ("tei", {"truncate": False}, {"activation": "raw"}, "/rerank",
     {"query": Q, "texts": D, "raw_scores": True, "truncate": False}),
    ("cohere", {}, {}, "/v2/rerank", {"model": "rerank-v3.5", "query": Q, "documents": D}),
    ("cohere", {"model": "rerank-v4.0-fast", "max_length": 256}, {}, "/v2/rerank",
     {"model": "rerank-v4.0-fast", "query": Q, "documents": D, "max_tokens_per_doc": 256}),
    ("cohere", {"route": "/v1/rerank"}, {}, "/v1/rerank", {"query": Q, "documents": D}),
    ("jina", {}, {}, "/v1/rerank", {"model": "jina-reranker-v2-base-multilingual", "query": Q,
                                    "documents": D, "return_documents": False}),
    ("voyage", {}, {}, "/v1/rerank",
     {"query": Q, "documents": D, "model": "rerank-2.5", "truncation": True}),
    ("voyage", {"model": "rerank-2.5-lite", "truncate": False}, {}, "/v1/rerank",
     {"query": Q, "documents": D, "model": "rerank-2.5-lite", "truncation": False}),
    ("mixedbread", {}, {}, "/v1/reranking", {"model": "mixedbread-ai/mxbai-rerank-large-v2",
                                             "query": Q, "input": D, "return_input": False}),
    ("pinecone", {}, {}, "/rerank", {"model": "bge-reranker-v2-m3", "query": Q,
                                     "documents": [{"text": d} for d in D],
                                     "return_documents": False}),
    ("pinecone", {"model": "cohere-rerank-3.5", "truncate": False}, {}, "/rerank",
     {"model": "cohere-rerank-3.5", "query": Q, "documents": [{"text": d} for d in D],
      "return_documents": False, "parameters": {"truncate": "NONE"}}),
    ("vllm", {}, {}, "/rerank", {"query": Q, "documents": D, "use_activation": True}),
    ("vllm", {"model": "BAAI/bge-reranker-v2-m3", "max_length": 128, "route": "/v2/rerank"},
     {"activation": "raw"}, "/v2/rerank",
     {"model": "BAAI/bge-reranker-v2-m3", "query": Q, "documents": D, "use_activation": False,
      "truncate_prompt_tokens": 128}),
    ("vllm", {"route": "/score"}, {}, "/score",
     {"queries": Q, "documents": D, "use_activation": True}),
    ("infinity", {}, {}, "/rerank", {"query": Q, "documents": D, "raw_scores": False}),
    ("infinity", {"route": "/v1/rerank", "model": "mxbai"}, {"activation": "raw"}, "/v1/rerank",
     {"query": Q, "documents": D, "model": "mxbai", "raw_scores": True}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "settings", "call", "route", "body"),
    GOLDEN,
    ids=[f"{g[0]}-{i}" for i, g in enumerate(GOLDEN)],
)
def test_golden_request_bodies_and_headers(
    fakes: FakeProviders,
    name: str,
    settings: dict[str, Any],
    call: dict[str, Any],
    route: str,
    body: dict[str, Any],
) -> None:
    remote(fakes, name, **settings).score_details(Q, D, **call)
    sent = fakes.sent(name)
    assert [r.path for r in sent] == [route]
    assert sent[0].body == body
    headers = sent[0].headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("crossrank/")
    if name == "pinecone":
        assert headers["api-key"] == KEY and "authorization" not in headers
        assert headers["x-pinecone-api-version"] == "2026-07"
    else:
        assert headers["authorization"] == f"Bearer {KEY}"
    if name == "cohere":
        assert headers["x-client-name"] == "crossrank"


# ---------------------------------------------------------------------- split and merge


SPLITS = {  # provider: (documents, settings), past each documented limit
    "tei": (33, {}),  # GET /info's max_client_batch_size (32, TEI's default)
    "cohere": (2001, {}),  # 1,000 recommended per request
    "voyage": (1001, {}),
    "mixedbread": (1001, {}),
    "pinecone": (201, {}),  # bge-reranker-v2-m3: 100
    "infinity": (2049, {}),
    "jina": (20, {"max_documents": 7}),  # no documented limit: set one
    "vllm": (20, {"max_documents": 7}),
}


@pytest.mark.parametrize("name", NAMES)
def test_a_call_past_the_limit_is_split_and_merged_in_order(
    fakes: FakeProviders, spread_scorer: CrossEncoderScorer, name: str
) -> None:
    count, settings = SPLITS[name]
    texts = [" ".join(request_texts(i, 2)) for i in range(count)]
    scorer = remote(fakes, name, **settings)
    limit = settings.get("max_documents") or scorer._limit()
    details = scorer.score_details(QUERIES[1], texts)
    np.testing.assert_allclose(
        details.scores, spread_scorer.score(QUERIES[1], texts), rtol=0, atol=1e-5
    )
    sent = fakes.sent(name)
    sizes = [len(r.body.get("texts") or r.body.get("input") or r.body["documents"]) for r in sent]
    assert sizes == [limit] * (count // limit) + ([count % limit] if count % limit else [])
    assert details.usage is not None and details.usage["requests"] == len(sent) >= 2
    expected_units = {
        "cohere": ("search_units", sum(math.ceil(s / 100) for s in sizes)),
        "pinecone": ("rerank_units", len(sent)),
    }
    if name in expected_units:
        unit, amount = expected_units[name]
        assert details.usage[unit] == amount
    elif name == "tei":
        assert details.usage["tokens"] > 0
    else:
        assert details.usage["total_tokens"] > 0
    top = scorer.rerank(QUERIES[1], texts, top_k=5)
    want = spread_scorer.rerank(QUERIES[1], texts, top_k=5)
    # The same top 5 up to ties: the tiny model scores many texts within 1e-6 of each other,
    # and the provider's batches round them apart differently than one local call does.
    got = hits_of(top)
    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in hits_of(want)], atol=1e-5)
    local = spread_scorer.score(QUERIES[1], texts)
    assert all(abs(local[index] - score) <= 1e-5 for index, score, _ in got)
    asynchronous = asyncio.run(scorer.ascore_details(QUERIES[1], texts))
    np.testing.assert_allclose(asynchronous.scores, details.scores, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_refused_request_is_a_value_error_naming_the_provider(
    fakes: FakeProviders, name: str, status: int
) -> None:
    fakes.fail(name, Failure(status, message=f"the provider says no ({status})"))
    with pytest.raises(RemoteRequestError) as error:
        remote(fakes, name, retries=3).score(Q, D)
    assert isinstance(error.value, ValueError)
    assert error.value.status == status and error.value.provider == name
    message = str(error.value)
    assert f"the provider says no ({status})" in message and f"answered {status}" in message
    assert "rules or limits" in message and len(fakes.sent(name)) == 1  # not retried


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_key_names_the_variable_and_is_never_shown(
    fakes: FakeProviders, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    wrong = "sk-wrong-key-5c1e77"
    env = make_provider(name).key_env or SERVER_ENV
    monkeypatch.setenv(env, wrong)
    scorer = remote(fakes, name, api_key_env=env)
    with pytest.raises(RemoteScorerError) as error:
        scorer.score(Q, D)
    assert error.value.status == 401 and not isinstance(error.value, ValueError)
    message = str(error.value)
    assert wrong not in message and "***" in message  # the fake echoed it: redacted
    assert f"set the environment variable {env}" in message


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_are_retried_as_retry_after_asks(
    fakes: FakeProviders, spread_scorer: CrossEncoderScorer, name: str, status: int
) -> None:
    fakes.fail(name, Failure(status, times=2, retry_after="0"))
    scores = remote(fakes, name, retries=2).score(Q, D)
    np.testing.assert_allclose(scores, spread_scorer.score(Q, D), rtol=0, atol=1e-5)
    assert len(fakes.sent(name)) == 3
    fakes.fail(name, Failure(status, times=5, retry_after="0", message="slow down"))
    with pytest.raises(RemoteScorerError, match=f"answered {status} after 1 retries: slow down"):
        remote(fakes, name, retries=1).score(Q, D)


def test_limits_and_truncation_come_back_as_the_providers_errors(fakes: FakeProviders) -> None:
    # Pinecone refuses more documents than the model takes (the split was overridden).
    with pytest.raises(RemoteRequestError, match=r"answered 400.*maximum allowed 100") as error:
        remote(fakes, "pinecone", max_documents=150).score(Q, [f"doc {i}" for i in range(150)])
    assert error.value.error_type == "INVALID_ARGUMENT"
    long = " ".join(["word"] * (MAX_WORDS + 5))
    for name, status in (("tei", 413), ("voyage", 400), ("pinecone", 400)):
        with pytest.raises(RemoteRequestError, match=f"answered {status}.*longer than"):
            remote(fakes, name, truncate=False).score(Q, [long])
        remote(fakes, name).score(Q, [long])  # truncate=True: the provider truncates
    # A TEI whose /info advertises a smaller batch gets smaller requests.
    fakes.reset()
    fakes.limits["tei"] = 4
    remote(fakes, "tei").score(Q, [f"doc {i}" for i in range(10)])
    assert [len(r.body["texts"]) for r in fakes.sent("tei")] == [4, 4, 2]


def test_an_answer_in_another_form_is_named_with_the_server(fakes: FakeProviders) -> None:
    cohere_answer = {"results": [{"index": 0, "relevance_score": 0.5}]}
    cases = [
        ("voyage", cohere_answer, "expected a list under 'data'"),
        ("cohere", cohere_answer, r"one result per document \(indices 0..1\), got indices \[0\]"),
        ("tei", [{"index": 0, "score": None}, {"index": 1, "score": 0.1}], "not a number"),
        ("jina", {"results": "nope"}, "expected a list under 'results'"),
    ]
    for name, body, what in cases:
        fakes.fail(name, Failure(200, body=body))
        with pytest.raises(RemoteScorerError, match=what) as error:
            remote(fakes, name).score(Q, D)
        assert f"the {name} server at {fakes.url(name)}" in str(error.value)
        assert f"provider='{name}' does not expect" in str(error.value)


# ---------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"provider": "jina", "max_length": 512}, ValueError,
         "max_length=512: provider='jina' .* takes no token limit"),
        ({"provider": "mixedbread", "truncate": False}, ValueError,
         "truncate=False: provider='mixedbread' .* has no switch"),
        ({"provider": "infinity", "url": "http://127.0.0.1:1", "max_length": 64}, ValueError,
         "provider='infinity'"),
        ({"url": "http://127.0.0.1:1", "max_documents": 10}, ValueError,
         "provider='crossrank' reads, truncates, splits and counts on the server"),
        ({"url": "http://127.0.0.1:1", "tokenizer": "bert"}, ValueError, "tokenizer='bert'"),
        ({"provider": "tei"}, ValueError, "provider='tei' .* is self-hosted: pass url="),
        ({"provider": "openai"}, ValueError, "provider must be one of"),
        ({"provider": "cohere", "route": "/v3/rerank"}, ValueError,
         "route='/v3/rerank' is not one of provider='cohere'"),
        ({"provider": "tei", "protocol": "cohere", "url": "http://x"}, ValueError,
         "pass provider= or protocol="),
        ({"protocol": "voyage", "url": "http://x"}, ValueError,
         "protocol must be one of .*use provider="),
        ({}, ValueError, "pass url= .* or provider="),
        ({"provider": "voyage", "model": 3}, TypeError, "model must be a string"),
        ({"provider": "voyage", "tokenizer": 3}, TypeError, "tokenizer must be"),
    ],
)  # fmt: skip
def test_settings_a_provider_cannot_carry_are_refused_naming_it(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RemoteScorer(**kwargs)


def test_a_hosted_provider_without_its_key_variable_fails_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in HOSTED:
        env = make_provider(name).key_env
        assert env is not None
        monkeypatch.delenv(env)
        with pytest.raises(ValueError, match=f"provider='{name}' needs an API key: set .*{env}"):
            RemoteScorer(provider=name)
        # A proxy (url=) may hold the key itself.
        assert RemoteScorer("http://127.0.0.1:1", provider=name).api_key_env is None
    with pytest.raises(ValueError, match="NO_SUCH_VARIABLE is not set"):
        RemoteScorer(provider="voyage", api_key_env="NO_SUCH_VARIABLE")


def test_call_options_a_provider_cannot_carry_are_refused_before_any_request(
    fakes: FakeProviders,
) -> None:
    for name in NAMES:
        scorer = remote(fakes, name)
        with pytest.raises(ValueError, match=f"passages=True needs provider='crossrank'.*{name}"):
            scorer.rerank(Q, D, passages=True)
        with pytest.raises(ValueError, match="cannot ask for activation='calibrated'"):
            scorer.rerank(Q, D, activation="calibrated")
    for name in HOSTED:
        with pytest.raises(ValueError, match=f"provider='{name}' cannot ask for .*'raw'"):
            remote(fakes, name).score_details(Q, D, activation="raw")
    with pytest.raises(ValueError, match="first_stage_scores are only used with fusion"):
        remote(fakes, "voyage").rerank(Q, D, first_stage_scores=[1.0, 2.0])
    with pytest.raises(ValueError, match="needs first_stage_scores"):
        remote(fakes, "voyage", fusion="rrf").rerank(Q, D)
    with pytest.raises(ValueError, match="min_relative_score needs non-negative"):
        remote(fakes, "tei").rerank(Q, D, activation="raw", min_relative_score=0.5)
    assert fakes.sent("voyage") == [] and fakes.sent("cohere") == []


# ---------------------------------------------------------------------- configs and keys


@pytest.mark.parametrize("name", PROVIDERS)
def test_configs_round_trip_with_the_key_variables_name_only(
    fakes: FakeProviders, name: str
) -> None:
    url = fakes.url(name) if name != "crossrank" else "http://127.0.0.1:1"
    extra: dict[str, Any] = {"timeout": 7.5, "retries": 1, "fusion": "linear"}
    if name not in ("crossrank",):
        extra["max_documents"] = 50
    scorer = remote(fakes, name, **extra) if name != "crossrank" else RemoteScorer(url, **extra)
    config = scorer.to_config()
    text = json.dumps(config)
    assert KEY not in text and KEY not in repr(scorer)
    assert config["provider"] == name and config["url"] == url
    again = RemoteScorer.from_config(json.loads(text))
    assert again.to_config() == config and repr(again) == repr(scorer)
    if name in HOSTED:  # the public endpoint is saved as None and found again
        hosted = RemoteScorer(provider=name)
        saved = hosted.to_config()
        assert saved["url"] is None and saved["api_key_env"] == make_provider(name).key_env
        assert RemoteScorer.from_config(saved).url == make_provider(name).endpoint


def test_keys_never_appear_in_repr_configs_errors_or_logs(
    fakes: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for name in NAMES:
            scorer = remote(fakes, name)
            scorer.rerank(Q, D, top_k=1)
            fakes.fail(name, Failure(429, times=1, retry_after="0", message=f"slow {KEY}"))
            fakes.fail(name, Failure(400, message=f"bad request for key {KEY}"))
            with pytest.raises(RemoteRequestError) as error:
                scorer.score(Q, D)
            seen = [repr(scorer), json.dumps(scorer.to_config()), str(error.value),
                    repr(error.value), error.value.hint]  # fmt: skip
            assert all(KEY not in text for text in seen), name
            direct = RemoteScorer(fakes.url(name), provider=name, api_key=KEY)
            assert KEY not in repr(direct) and KEY not in json.dumps(direct.to_config())
            assert not direct.key_saved and direct.to_config()["api_key_env"] is None
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert caplog.records and KEY not in logged
