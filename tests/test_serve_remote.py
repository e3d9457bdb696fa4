"""``crossrank.RemoteScorer`` against a real ``crossrank serve`` (uvicorn on 127.0.0.1, tiny
model): each protocol returns what the in-process scorer returns, sync and async; what a
protocol cannot carry is refused before any request; errors name the server and what to do;
429s are retried as Retry-After asks; the config round trip never holds the key."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serve_kit import QUERIES, TEXTS, Gate, metric, spread_model, wait_for

from crossrank import CrossEncoderScorer, RemoteScorer, RemoteScorerError, Reranked
from crossrank.adapters import RerankScorer
from crossrank.remote import RemoteRequestError
from crossrank.serve import Limits, create_app, running_server
from crossrank.serve.server import RunningServer, bind

pytestmark = pytest.mark.timeout(180)

SETTINGS: dict[str, Any] = {
    "device": "cpu",
    "long_documents": "chunk",
    "max_length": 40,
    "max_windows": 3,
}
LONG = " ".join([TEXTS[3]] * 12)
CANDIDATES: list[str | None] = [TEXTS[0], None, LONG, *TEXTS[4:7], "  "]
KEY = "remote-test-key"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_model(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> CrossEncoderScorer:
    return CrossEncoderScorer(model_dir, **SETTINGS)


@pytest.fixture(scope="module")
def served(model_dir: Path) -> Iterator[RunningServer]:
    app = create_app(
        CrossEncoderScorer(model_dir, **SETTINGS),
        limits=Limits(max_documents=20),
        api_keys=[KEY],
    )
    with running_server(app) as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def _key(monkeypatch_module: pytest.MonkeyPatch) -> None:
    monkeypatch_module.setenv("CROSSRANK_TEST_KEY", KEY)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _remote(served: RunningServer, protocol: str = "crossrank", **kwargs: Any) -> RemoteScorer:
    return RemoteScorer(served.url, protocol=protocol, api_key_env="CROSSRANK_TEST_KEY", **kwargs)  # type: ignore[arg-type]


def _same_hits(got: list[Any], want: list[Any], *, details: bool = True) -> None:
    assert [h.index for h in got] == [h.index for h in want]
    np.testing.assert_allclose([h.score for h in got], [h.score for h in want], rtol=0, atol=1e-5)
    assert all(type(h.score) is float for h in got)
    if details:
        assert [(h.truncated, h.span, h.passage) for h in got] == [
            (h.truncated, h.span, h.passage) for h in want
        ]


# ---------------------------------------------------------------------- crossrank protocol


def test_the_crossrank_protocol_gives_the_cores_results(
    served: RunningServer, reference: CrossEncoderScorer
) -> None:
    remote = _remote(served)
    texts = [t for t in CANDIDATES if t is not None]
    assert remote.score(QUERIES[1], texts) == pytest.approx(
        reference.score(QUERIES[1], texts), abs=1e-5
    )
    got, want = remote.score_details(QUERIES[1], texts), reference.score_details(QUERIES[1], texts)
    assert (got.truncated, got.pairs, got.spans, got.windows) == (
        want.truncated, want.pairs, want.spans, want.windows
    )  # fmt: skip
    assert got.num_truncated == 1
    for kwargs in ({"top_k": 3}, {"token_budget": 40, "score_threshold": 0.2},
                   {"min_relative_score": 0.95}):  # fmt: skip
        _same_hits(
            remote.rank(QUERIES[2], texts, **kwargs), reference.rank(QUERIES[2], texts, **kwargs)
        )
    contents = [f"body of {t}" if t and t.strip() else t for t in CANDIDATES]
    prefixed = [f"TITLE. {c}" if c and c.strip() else c for c in contents]
    for query, items, kwargs in (
        (QUERIES[0], CANDIDATES, {"top_k": 4, "passages": True, "token_budget": 50}),
        (QUERIES[3], prefixed, {"passages": True, "contents": contents}),
        (QUERIES[4], CANDIDATES, {"activation": "raw", "score_threshold": -1.0}),
    ):
        out = remote.rerank(query, items, **kwargs)
        expected = reference.rerank(query, items, **kwargs)
        assert isinstance(out, Reranked)
        assert out.skipped == expected.skipped == [1, 6] and out.pairs == expected.pairs
        _same_hits(out.hits, expected.hits)
    remote.close()


def test_async_forms_give_the_sync_results(served: RunningServer) -> None:
    remote = _remote(served)
    texts = TEXTS[:5]

    async def run() -> tuple[Any, ...]:
        return await asyncio.gather(
            remote.ascore(QUERIES[0], texts),
            remote.ascore_details(QUERIES[0], texts),
            remote.arank(QUERIES[0], texts, top_k=2),
            remote.arerank(QUERIES[0], CANDIDATES, passages=True),
            remote.awarm_up(),
        )

    # Run together, their rows may share forward passes: equal within the batch-invariance
    # bound (1e-5; torch is not bit-identical across batch widths, docs/backends.md).
    score, details, rank, rerank, _ = asyncio.run(run())
    assert score == pytest.approx(remote.score(QUERIES[0], texts), abs=1e-5)
    sync = remote.score_details(QUERIES[0], texts)
    assert details.scores == pytest.approx(sync.scores, abs=1e-5)
    assert (details.truncated, details.spans, details.pairs) == (
        sync.truncated,
        sync.spans,
        sync.pairs,
    )
    _same_hits(rank, remote.rank(QUERIES[0], texts, top_k=2))
    again = remote.rerank(QUERIES[0], CANDIDATES, passages=True)
    assert (rerank.skipped, rerank.pairs) == (again.skipped, again.pairs)
    _same_hits(rerank.hits, again.hits)


def test_it_is_a_rerank_scorer_with_the_servers_model_and_activation(
    served: RunningServer, reference: CrossEncoderScorer
) -> None:
    remote = _remote(served)
    assert isinstance(remote, RerankScorer)
    assert remote.model_name == reference.model_name and remote.activation == "sigmoid"
    remote.warm_up()
    assert RemoteScorer(served.url, protocol="cohere", model="m").model_name == "m"


# ---------------------------------------------------------------------- tei and cohere


@pytest.mark.parametrize("protocol", ["tei", "cohere"])
def test_tei_and_cohere_protocols_carry_scores_and_select_here(
    served: RunningServer, reference: CrossEncoderScorer, model_dir: Path, protocol: str
) -> None:
    remote = _remote(served, protocol, model="any-model")
    texts = TEXTS[:6]
    assert remote.score(QUERIES[0], texts) == pytest.approx(
        reference.score(QUERIES[0], texts), abs=1e-5
    )
    _same_hits(
        remote.rank(QUERIES[0], texts, top_k=3, min_relative_score=0.9),
        reference.rank(QUERIES[0], texts, top_k=3, min_relative_score=0.9),
        details=False,
    )
    out = remote.rerank(QUERIES[2], CANDIDATES, top_k=3)
    expected = reference.rerank(QUERIES[2], CANDIDATES, top_k=3)
    assert out.skipped == expected.skipped
    _same_hits(out.hits, expected.hits, details=False)
    details = remote.score_details(QUERIES[0], [LONG])
    assert details.truncated == [False] and details.spans is None  # not carried
    with pytest.raises(ValueError, match="passages=True needs provider='crossrank'"):
        remote.rerank(QUERIES[0], texts, passages=True)
    # The token budget is counted here, with the model's own tokenizer when one is given.
    counted = _remote(served, protocol, model="any-model", tokenizer=str(model_dir))
    for budget in (6, 15):
        _same_hits(
            counted.rerank(QUERIES[1], CANDIDATES, token_budget=budget).hits,
            reference.rerank(QUERIES[1], CANDIDATES, token_budget=budget).hits,
            details=False,
        )
    if protocol == "tei":
        raw = remote.rerank(QUERIES[0], texts, activation="raw")
        want = reference.rerank(QUERIES[0], texts, activation="raw")
        _same_hits(raw.hits, want.hits, details=False)
    else:
        with pytest.raises(ValueError, match="cannot ask for activation='raw'"):
            remote.rerank(QUERIES[0], texts, activation="raw")


# ---------------------------------------------------------------------- errors


def _closed_port_url() -> str:
    with bind("127.0.0.1", 0) as sock:
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_bad_input_fails_as_in_the_core_before_any_request() -> None:
    remote = RemoteScorer(_closed_port_url(), retries=0)  # nothing listens there
    assert remote.score("q", []) == [] and remote.rerank("q", []).hits == []
    assert remote.rank("q", []) == []
    with pytest.raises(ValueError, match="query must contain non-whitespace text"):
        remote.rerank("  ", ["a"])
    with pytest.raises(TypeError, match="texts must be a list of strings"):
        remote.score("q", "one text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k must be >= 1, got 0"):
        remote.rerank("q", ["a"], top_k=0)
    with pytest.raises(ValueError, match="contents is only used with passages=True"):
        remote.rerank("q", ["a"], contents=["a"])


def test_an_unreachable_server_is_named_with_what_to_do() -> None:
    url = _closed_port_url()
    remote = RemoteScorer(url, retries=1, backoff=0.01)
    with pytest.raises(RemoteScorerError) as error:
        remote.score("q", ["a"])
    message = str(error.value)
    assert f"could not reach the server at {url}/v1/rerank" in message
    assert "after 2 attempt(s)" in message and "crossrank serve" in message
    assert error.value.status is None and error.value.url == url + "/v1/rerank"


def test_a_wrong_key_and_a_limit_are_errors_naming_them(served: RunningServer) -> None:
    with pytest.raises(RemoteScorerError, match="answered 401") as error:
        RemoteScorer(served.url, api_key="not-the-key").score("q", ["a"])
    assert error.value.status == 401 and "api_key" in str(error.value)
    assert "not-the-key" not in str(error.value)
    with pytest.raises(RemoteRequestError, match="max_documents=20") as limit:
        _remote(served).score("q", ["a"] * 21)
    assert isinstance(limit.value, ValueError) and limit.value.status == 413


def test_a_full_queue_is_retried_as_retry_after_asks(
    model_dir: Path, reference: CrossEncoderScorer
) -> None:
    app = create_app(CrossEncoderScorer(model_dir, **SETTINGS), limits=Limits(max_queue=1))
    with running_server(app) as running:
        gate = Gate(app)
        holder = threading.Thread(
            target=lambda: httpx.post(running.url + "/rerank", json={"query": "q", "texts": ["a"]})
        )
        holder.start()
        wait_for(lambda: app.state.engine.in_flight == 1, "the queue to fill")
        with pytest.raises(RemoteScorerError, match="answered 429 after 0 retries") as error:
            RemoteScorer(running.url, retries=0).score("q", ["a"])
        assert error.value.status == 429 and error.value.error_type == "overloaded"
        out: list[list[float]] = []
        patient = threading.Thread(
            target=lambda: out.append(
                RemoteScorer(running.url, retries=20).score(QUERIES[0], TEXTS)
            )
        )
        patient.start()
        wait_for(lambda: metric(running.url, "crossrank_errors_total") >= 2, "a second 429")
        gate.open()  # the next try, after Retry-After, is admitted
        patient.join(60)
        holder.join(60)
        assert out and out[0] == pytest.approx(reference.score(QUERIES[0], TEXTS), abs=1e-5)


# ---------------------------------------------------------------------- configuration


def test_to_config_holds_the_key_variables_name_never_the_key(served: RunningServer) -> None:
    remote = _remote(served, timeout=12.5, retries=2)
    config = remote.to_config()
    assert config == {
        "url": served.url, "provider": "crossrank", "route": None, "model": None,
        "timeout": 12.5, "retries": 2, "api_key_env": "CROSSRANK_TEST_KEY",
        "max_length": None, "truncate": True, "max_documents": None, "tokenizer": None,
        "fusion": None, "fusion_weight": 0.5, "fusion_normalization": "zscore",
    }  # fmt: skip
    assert KEY not in repr(config) and KEY not in repr(remote)
    again = RemoteScorer.from_config(config)
    assert again.to_config() == config
    assert again.score(QUERIES[0], TEXTS[:2]) == remote.score(QUERIES[0], TEXTS[:2])
    assert RemoteScorer(served.url, api_key=KEY).to_config()["api_key_env"] is None
    with pytest.raises(ValueError, match=r"unknown RemoteScorer config keys \['api_key'\]"):
        RemoteScorer.from_config({**config, "api_key": KEY})
    # A config saved before providers (with "protocol") still loads.
    old = {"url": served.url, "protocol": "tei", "timeout": 5.0, "retries": 1,
           "api_key_env": "CROSSRANK_TEST_KEY", "model": None, "fusion": None,
           "fusion_weight": 0.5, "fusion_normalization": "zscore"}  # fmt: skip
    assert RemoteScorer.from_config(old).to_config()["provider"] == "tei"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "127.0.0.1:8080"}, "url must start with http:// or https://"),
        ({"protocol": "grpc"}, "protocol must be one of"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"retries": -1}, "retries must be an int >= 0"),
        ({"api_key": "k", "api_key_env": "X"}, "pass api_key or api_key_env, not both"),
        ({"api_key_env": "CROSSRANK_NO_SUCH_VARIABLE"}, "CROSSRANK_NO_SUCH_VARIABLE is not set"),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RemoteScorer(**{"url": "http://127.0.0.1:1", **kwargs})


# ---------------------------------------------------------------------- the shared model


@pytest.mark.integration
@pytest.mark.timeout(900)  # alone, its session fixtures score 30 queries first
def test_the_shared_model_served_gives_the_cores_scores(
    shared_model_dir: Path, scifact: Any, scifact_candidates: Any, scifact_core_run: Any
) -> None:
    """Three SciFact queries with their BM25 top 20, sent at once (their rows share passes),
    through the crossrank and tei protocols: the core's scores and order."""
    qids = sorted(scifact_candidates)[:3]
    app = create_app(CrossEncoderScorer(shared_model_dir, device="cpu"))
    with running_server(app) as running:
        remote = RemoteScorer(running.url)
        tei = RemoteScorer(running.url, protocol="tei")

        async def run() -> list[Reranked]:
            return list(
                await asyncio.gather(
                    *(
                        remote.arerank(
                            scifact.queries[qid],
                            [scifact.doc_text(d) for d, _ in scifact_candidates[qid]],
                        )
                        for qid in qids
                    )
                )
            )

        outs = asyncio.run(run())
        for qid, out in zip(qids, outs, strict=True):
            ids = [d for d, _ in scifact_candidates[qid]]
            want = scifact_core_run[qid]
            got = {ids[h.index]: h.score for h in out.hits}
            assert set(got) == set(want)
            assert [ids[h.index] for h in out.hits] == sorted(want, key=lambda d: -want[d])
            assert max(abs(got[d] - want[d]) for d in want) < 1e-5
        qid = qids[0]
        texts = [scifact.doc_text(d) for d, _ in scifact_candidates[qid]]
        ids = [d for d, _ in scifact_candidates[qid]]
        np.testing.assert_allclose(
            tei.score(scifact.queries[qid], texts),
            [scifact_core_run[qid][d] for d in ids],
            rtol=0,
            atol=1e-5,
        )
