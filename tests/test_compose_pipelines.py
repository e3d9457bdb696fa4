"""The composites as ``scorer=`` in each framework's real pipeline, and saved with it: a
Fallback in a Haystack Pipeline (its primary a failing fake provider), an Ensemble in a
LangChain ContextualCompressionRetriever, a Cascade in a LlamaIndex RetrieverQueryEngine,
and a per-call deadline in a Haystack Pipeline (unscored Documents follow, marked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from haystack import Document as HaystackDocument
from haystack import Pipeline
from langchain_classic.retrievers import ContextualCompressionRetriever
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from pipeline_kit import (
    CORPUS,
    LangChainBM25,
    LlamaBM25,
    corpus_bm25,
    haystack_pipeline,
)
from provider_kit import KEY, Failure, FakeProviders
from serve_kit import QUERIES, spread_model

from crossrank import CrossEncoderScorer, RemoteScorer
from crossrank.adapters import UNSCORED_KEY
from crossrank.compose import BiEncoderScorer, Cascade, Ensemble, Fallback, scorer_to_config
from crossrank.eval.first_stage import BM25Retriever
from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker
from langchain_crossrank import CrossEncoderRerank as LangChainRerank
from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank as LlamaRerank

pytestmark = pytest.mark.timeout(180)

ENV = "CROSSRANK_COMPOSE_PIPELINE_KEY"


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, KEY)
        yield patch


@pytest.fixture(scope="module")
def first(spread_scorer: CrossEncoderScorer) -> CrossEncoderScorer:
    return spread_scorer


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> CrossEncoderScorer:
    return CrossEncoderScorer(spread_model(tmp_path_factory, seed=11), device="cpu")


@pytest.fixture(scope="module")
def bm25() -> BM25Retriever:
    return corpus_bm25()


def _expected(scorer: Any, bm25: BM25Retriever, query: str, **options: Any) -> list[str]:
    """The ids the core scorer returns on the retriever's top 10 (hits, then unscored)."""
    ids = [i for i, _ in bm25.search(query, k=10)]
    out = scorer.rerank(query, [CORPUS[i] for i in ids], **options)
    return [ids[h.index] for h in out.hits] + [ids[i] for i in out.unscored]


# ---------------------------------------------------------------------- Haystack


def _haystack_docs(pipeline: Pipeline, query: str, **ranker: Any) -> list[HaystackDocument]:
    out = pipeline.run({"retriever": {"query": query}, "ranker": {"query": query, **ranker}})
    return list(out["ranker"]["documents"])


def test_a_fallback_serves_in_a_haystack_pipeline_and_is_saved_with_it(
    first: CrossEncoderScorer, fakes: FakeProviders, monkeypatch_module: pytest.MonkeyPatch
) -> None:
    fakes.reset()
    fakes.fail("cohere", Failure(500, times=100))
    primary = RemoteScorer(
        fakes.url("cohere"), provider="cohere", model="rerank-v3.5", api_key_env=ENV, retries=0
    )
    ranker = CrossEncoderRanker(scorer=Fallback(primary, first, timeout_s=5), top_k=4)
    plain = haystack_pipeline(CrossEncoderRanker(scorer=first, top_k=4))
    pipeline = haystack_pipeline(ranker)
    for query in QUERIES[:3]:
        got = _haystack_docs(pipeline, query)
        want = _haystack_docs(plain, query)
        assert [(d.id, d.score) for d in got] == [(d.id, d.score) for d in want]
    assert len(fakes.sent("cohere")) == 3  # the primary was asked each time
    data = ranker.to_dict()
    assert data["type"] == (
        "haystack_integrations.components.rankers.crossrank.ranker.CrossEncoderRanker"
    )
    assert data["init_parameters"]["scorer"] == scorer_to_config(ranker.scorer)
    saved = pipeline.dumps()
    assert KEY not in saved and ENV in saved
    loaded = Pipeline.loads(saved)
    again = loaded.get_component("ranker")
    assert isinstance(again.scorer, Fallback) and again.to_dict() == data
    got = _haystack_docs(loaded, QUERIES[0])
    assert [d.id for d in got] == [d.id for d in _haystack_docs(plain, QUERIES[0])]


def test_a_per_call_deadline_in_a_haystack_pipeline_marks_the_unscored_documents(
    first: CrossEncoderScorer,
) -> None:
    pipeline = haystack_pipeline(CrossEncoderRanker(scorer=first, top_k=None))
    query = QUERIES[1]
    retrieved = pipeline.run(
        {"retriever": {"query": query}, "ranker": {"query": query}},
        include_outputs_from={"retriever"},
    )
    order = [d.id for d in retrieved["retriever"]["documents"]]
    late = _haystack_docs(pipeline, query, deadline_ms=1e-6)
    assert [d.id for d in late] == order  # nothing scored: the first-stage order
    assert all(d.score is None and d.meta[UNSCORED_KEY] is True for d in late)
    on_time = _haystack_docs(pipeline, query, deadline_ms=60_000)
    assert [d.id for d in on_time] == [d.id for d in _haystack_docs(pipeline, query)]
    assert all(UNSCORED_KEY not in d.meta and isinstance(d.score, float) for d in on_time)
    retrieved_docs = retrieved["retriever"]["documents"]
    assert all(UNSCORED_KEY not in d.meta for d in retrieved_docs)  # inputs untouched


# ---------------------------------------------------------------------- LangChain


def test_an_ensemble_ranks_in_a_langchain_retriever_and_survives_model_dump(
    first: CrossEncoderScorer, second: CrossEncoderScorer, bm25: BM25Retriever
) -> None:
    ensemble = Ensemble([first, second], weights=[1, 2], normalization="rank")
    reranker = LangChainRerank(scorer=ensemble, top_n=5)
    saved = reranker.model_dump_json()
    assert json.loads(saved)["scorer"]["type"] == "ensemble"
    again = LangChainRerank.model_validate_json(saved)
    assert isinstance(again.scorer, Ensemble) and again.scorer.weights == ensemble.weights
    for query in QUERIES[:3]:
        want = _expected(ensemble, bm25, query, top_k=5)
        for compressor in (reranker, again):
            pipeline = ContextualCompressionRetriever(
                base_compressor=compressor, base_retriever=LangChainBM25(bm25=bm25)
            )
            docs = pipeline.invoke(query)
            assert [d.metadata["id"] for d in docs] == want
            assert all(type(d.metadata["relevance_score"]) is float for d in docs)


# ---------------------------------------------------------------------- LlamaIndex


def test_a_cascade_in_a_llama_index_query_engine_returns_the_rest_unscored(
    first: CrossEncoderScorer, tiny_bi_encoder_dir: Path, bm25: BM25Retriever
) -> None:
    cascade = Cascade(BiEncoderScorer(str(tiny_bi_encoder_dir), device="cpu"), first, keep=4)
    rerank = LlamaRerank(scorer=cascade, top_n=6)
    data = rerank.to_dict()
    assert data["scorer"]["type"] == "cascade" and data["scorer"]["keep"] == 4
    copy = LlamaRerank.from_dict(data)
    assert isinstance(copy.scorer, Cascade)
    for query in QUERIES[:2]:
        want = _expected(cascade, bm25, query, top_k=6)
        for postprocessor in (rerank, copy):
            engine = RetrieverQueryEngine.from_args(
                LlamaBM25(bm25), llm=MockLLM(max_tokens=4), node_postprocessors=[postprocessor]
            )
            nodes = engine.query(query).source_nodes
            assert [n.node.node_id for n in nodes] == want
            assert [n.score is None for n in nodes] == [False] * 4 + [True] * 2
            assert [n.node.metadata.get(UNSCORED_KEY) for n in nodes[4:]] == [True, True]
