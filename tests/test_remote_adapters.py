"""Every adapter with ``scorer=RemoteScorer(url)`` against a real ``crossrank serve``
(uvicorn on 127.0.0.1, a free port, one server per module): the same documents, order and
scores as with the local scorer in each framework's real pipeline, fusion included, and a
RemoteScorer that survives each framework's serialization with its key's variable name only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from haystack import Document as HaystackDocument
from haystack import Pipeline
from haystack.utils import ComponentDevice
from langchain_core.documents import Document as LangChainDocument
from pipeline_kit import (
    corpus_bm25,
    haystack_pipeline,
    haystack_run,
    langchain_run,
    llama_run,
    same_hits,
)
from serve_kit import QUERIES, TEXTS, spread_model

from crossrank import CrossEncoderScorer, RemoteScorer
from crossrank.adapters import scorer_config, scorer_from_config
from crossrank.eval.first_stage import BM25Retriever
from crossrank.serve import create_app, running_server
from crossrank.serve.server import RunningServer
from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker
from langchain_crossrank import CrossEncoderRerank as LangChainRerank
from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank as LlamaRerank

pytestmark = pytest.mark.timeout(180)

KEY = "remote-adapters-key"
ENV = "CROSSRANK_REMOTE_ADAPTERS_KEY"
FUSIONS: list[dict[str, Any]] = [
    {},
    {"fusion": "linear", "fusion_weight": 0.3},
    {"fusion": "rrf", "fusion_weight": 0.6},
]


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module", autouse=True)
def _key(monkeypatch_module: pytest.MonkeyPatch) -> None:
    monkeypatch_module.setenv(ENV, KEY)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_model(tmp_path_factory)


@pytest.fixture(scope="module")
def served(model_dir: Path) -> Iterator[RunningServer]:
    app = create_app(CrossEncoderScorer(model_dir, device="cpu"), api_keys=[KEY])
    with running_server(app, ready_timeout=120) as running:
        yield running


def _remote(url: str, **kwargs: Any) -> RemoteScorer:
    return RemoteScorer(url, api_key_env=ENV, **kwargs)


# ---------------------------------------------------------------------- fusion on the wire


def test_fused_hits_over_the_wire_equal_the_local_ones(
    served: RunningServer, model_dir: Path
) -> None:
    texts: list[str | None] = [*TEXTS[:5], None, *TEXTS[5:]]
    first = [float((3 * i) % 7) for i in range(len(texts))]
    first[5] = None  # type: ignore[call-overload]  # no text: no first-stage score needed
    for settings in FUSIONS[1:]:
        local = CrossEncoderScorer(model_dir, device="cpu", **settings)
        remote = _remote(served.url, **settings)
        want = local.rerank(QUERIES[1], texts, first_stage_scores=first, top_k=6)
        got = remote.rerank(QUERIES[1], texts, first_stage_scores=first, top_k=6)
        assert got.skipped == want.skipped == [5]
        assert all(h.model_score is not None for h in got.hits)
        same_hits(
            [(str(h.index), h.score, h.model_score) for h in got.hits],
            [(str(h.index), h.score, h.model_score) for h in want.hits],
        )
    # A per-call fusion over a scorer without one, as the core takes it.
    plain, local = _remote(served.url), CrossEncoderScorer(model_dir, device="cpu")
    call = {"first_stage_scores": first, "fusion": "linear", "fusion_weight": 0.8}
    same_hits(
        [
            (str(h.index), h.score, h.model_score)
            for h in plain.rerank(QUERIES[2], texts, **call).hits
        ],
        [
            (str(h.index), h.score, h.model_score)
            for h in local.rerank(QUERIES[2], texts, **call).hits
        ],
    )
    # Over TEI's /rerank only scores travel: fusion runs here, on the logits, and gives the
    # core's fused order and scores.
    for settings in FUSIONS[1:]:
        local = CrossEncoderScorer(model_dir, device="cpu", **settings)
        tei = _remote(served.url, provider="tei", **settings)
        got = tei.rerank(QUERIES[1], texts, first_stage_scores=first, top_k=6)
        want = local.rerank(QUERIES[1], texts, first_stage_scores=first, top_k=6)
        assert got.skipped == want.skipped == [5]
        same_hits(
            [(str(h.index), h.score, h.model_score) for h in got.hits],
            [(str(h.index), h.score, h.model_score) for h in want.hits],
        )


# ---------------------------------------------------------------------- Haystack


@pytest.mark.parametrize("settings", FUSIONS, ids=["plain", "linear", "rrf"])
def test_haystack_pipeline_remote_equals_local(
    served: RunningServer, model_dir: Path, settings: dict[str, Any]
) -> None:
    cpu = ComponentDevice.from_str("cpu")
    local = haystack_pipeline(
        CrossEncoderRanker(model=str(model_dir), device=cpu, top_k=5, **settings)
    )
    remote = haystack_pipeline(CrossEncoderRanker(scorer=_remote(served.url, **settings), top_k=5))
    for query in QUERIES[:3]:
        want = haystack_run(local, query)
        assert len(want) == 5
        same_hits(haystack_run(remote, query), want)
    if not settings:  # per-call Haystack parameters travel too
        extra = {"scale_score": False, "top_k": 3, "score_threshold": -100.0}
        same_hits(
            haystack_run(remote, QUERIES[3], **extra), haystack_run(local, QUERIES[3], **extra)
        )


def test_haystack_saves_the_remote_scorer_with_the_key_as_an_env_secret(
    served: RunningServer,
) -> None:
    ranker = CrossEncoderRanker(scorer=_remote(served.url, fusion="linear"), top_k=4)
    data = ranker.to_dict()
    assert data["type"] == (
        "haystack_integrations.components.rankers.crossrank.ranker.CrossEncoderRanker"
    )
    assert data["init_parameters"]["scorer"] == {
        "url": served.url,
        "provider": "crossrank",
        "route": None,
        "model": None,
        "timeout": 30.0,
        "retries": 3,
        "max_length": None,
        "truncate": True,
        "max_documents": None,
        "tokenizer": None,
        "fusion": "linear",
        "fusion_weight": 0.5,
        "fusion_normalization": "zscore",
        "api_key": {"type": "env_var", "env_vars": [ENV], "strict": True},
    }
    assert "model" not in data["init_parameters"] and "device" not in data["init_parameters"]
    pipeline = haystack_pipeline(ranker)
    saved = pipeline.dumps()
    assert KEY not in saved and ENV in saved
    loaded = Pipeline.loads(saved)
    again = loaded.get_component("ranker")
    assert isinstance(again, CrossEncoderRanker) and isinstance(again.scorer, RemoteScorer)
    assert again.to_dict() == data
    for query in QUERIES[:2]:
        same_hits(haystack_run(loaded, query), haystack_run(pipeline, query))


def test_haystack_refuses_settings_beside_a_scorer_and_saves_a_local_one_as_settings(
    served: RunningServer, model_dir: Path
) -> None:
    with pytest.raises(ValueError, match=r"either scorer or the scorer settings.*batch_size=4"):
        CrossEncoderRanker(scorer=_remote(served.url), batch_size=4)
    with pytest.raises(ValueError, match=r"model="):
        CrossEncoderRanker(scorer=_remote(served.url), model=str(model_dir))
    with pytest.raises(TypeError, match="scorer must be"):
        CrossEncoderRanker(scorer="http://127.0.0.1:1")  # type: ignore[arg-type]
    shared = CrossEncoderScorer(model_dir, device="cpu", batch_size=8)
    saved = CrossEncoderRanker(scorer=shared, top_k=2).to_dict()
    data = saved["init_parameters"]
    assert "scorer" not in data and data["model"] == str(model_dir) and data["batch_size"] == 8
    rebuilt = CrossEncoderRanker.from_dict(saved)
    assert rebuilt.scorer is None and rebuilt.model == str(model_dir)
    with pytest.raises(ValueError, match="cannot ask for activation='raw'"):
        cohere = CrossEncoderRanker(scorer=RemoteScorer(served.url, protocol="cohere"))
        cohere.run(
            query=QUERIES[0], documents=[HaystackDocument(content=TEXTS[0])], scale_score=False
        )


# ---------------------------------------------------------------------- LangChain


@pytest.fixture(scope="module")
def bm25() -> BM25Retriever:
    return corpus_bm25()


@pytest.mark.parametrize("settings", FUSIONS, ids=["plain", "linear", "rrf"])
def test_langchain_pipeline_remote_equals_local_and_survives_model_dump(
    served: RunningServer, model_dir: Path, bm25: BM25Retriever, settings: dict[str, Any]
) -> None:
    local = LangChainRerank(model=str(model_dir), device="cpu", top_n=5, **settings)
    remote = LangChainRerank(scorer=_remote(served.url, **settings), top_n=5)
    saved = remote.model_dump_json()
    assert KEY not in saved
    assert json.loads(saved)["scorer"] == {**_remote(served.url, **settings).to_config()}
    again = LangChainRerank.model_validate_json(saved)
    rebuilt = LangChainRerank(**remote.model_dump())
    assert isinstance(again.scorer, RemoteScorer) and isinstance(rebuilt.scorer, RemoteScorer)
    for query in QUERIES[:3]:
        want = langchain_run(local, bm25, query)
        assert len(want) == 5
        for reranker in (remote, again, rebuilt):
            same_hits(langchain_run(reranker, bm25, query), want)
    assert "scorer" not in local.model_dump()  # a local scorer is saved as its settings


# ---------------------------------------------------------------------- LlamaIndex


@pytest.mark.parametrize("settings", FUSIONS, ids=["plain", "linear", "rrf"])
def test_llama_index_engine_remote_equals_local_and_survives_to_dict(
    served: RunningServer, model_dir: Path, bm25: BM25Retriever, settings: dict[str, Any]
) -> None:
    local = LlamaRerank(model=str(model_dir), device="cpu", top_n=5, **settings)
    remote = LlamaRerank(scorer=_remote(served.url, **settings), top_n=5)
    data = remote.to_dict()
    assert data["scorer"] == _remote(served.url, **settings).to_config()
    assert KEY not in remote.to_json()
    copies = [LlamaRerank.from_dict(data), LlamaRerank.from_json(remote.to_json())]
    assert all(isinstance(c.scorer, RemoteScorer) for c in copies)
    assert copies[0].to_dict() == data
    for query in QUERIES[:3]:
        want = llama_run(local, bm25, query)
        assert len(want) == 5
        for rerank in (remote, *copies):
            same_hits(llama_run(rerank, bm25, query), want)


# ---------------------------------------------------------------------- the key


def test_a_key_given_directly_is_never_written(
    served: RunningServer, bm25: BM25Retriever, caplog: pytest.LogCaptureFixture
) -> None:
    direct = RemoteScorer(served.url, api_key=KEY)
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        saved = [
            json.dumps(CrossEncoderRanker(scorer=direct).to_dict()),
            LangChainRerank(scorer=direct).model_dump_json(),
            LlamaRerank(scorer=direct).to_json(),
        ]
    assert all(KEY not in text for text in saved)
    haystack, langchain, llama = (json.loads(text) for text in saved)
    assert haystack["init_parameters"]["scorer"]["api_key"] is None
    assert langchain["scorer"]["api_key_env"] is None and llama["scorer"]["api_key_env"] is None
    assert "never saved" in caplog.text
    config = scorer_config(direct)
    assert config is not None and config["api_key_env"] is None
    assert scorer_config(CrossEncoderScorer()) is None
    assert isinstance(scorer_from_config(config), RemoteScorer)
    # The reloaded scorer has no key: the server refuses it, naming what to do.
    with pytest.raises(Exception, match="api_key_env"):
        LangChainRerank.model_validate_json(saved[1]).compress_documents(
            [LangChainDocument(page_content=TEXTS[0])], QUERIES[0]
        )


# ---------------------------------------------------------------------- shared model


@pytest.fixture(scope="module")
def served_shared(shared_model_dir: Path) -> Iterator[RunningServer]:
    app = create_app(CrossEncoderScorer(shared_model_dir, device="cpu", max_length=256))
    with running_server(app, ready_timeout=180) as running:
        yield running


@pytest.mark.integration
def test_shared_model_one_case_per_framework(
    served_shared: RunningServer, shared_model_dir: Path, bm25: BM25Retriever
) -> None:
    url, model, query = served_shared.url, str(shared_model_dir), QUERIES[1]
    fusion = {"fusion": "linear", "fusion_weight": 0.7}
    haystack = [
        haystack_run(haystack_pipeline(ranker), query)
        for ranker in (
            CrossEncoderRanker(
                model=model, device=ComponentDevice.from_str("cpu"), max_length=256, top_k=5
            ),
            CrossEncoderRanker(scorer=RemoteScorer(url), top_k=5),
        )
    ]
    same_hits(haystack[1], haystack[0])
    langchain = [
        langchain_run(reranker, bm25, query)
        for reranker in (
            LangChainRerank(model=model, device="cpu", max_length=256, top_n=5, **fusion),
            LangChainRerank(scorer=RemoteScorer(url, **fusion), top_n=5),
        )
    ]
    same_hits(langchain[1], langchain[0])
    llama = [
        llama_run(rerank, bm25, query)
        for rerank in (
            LlamaRerank(model=model, device="cpu", max_length=256, top_n=5),
            LlamaRerank(scorer=RemoteScorer(url), top_n=5),
        )
    ]
    same_hits(llama[1], llama[0])
