"""Each framework's real pipeline around a reranker, for the tests that compare scorers in
them: Haystack ``Pipeline`` (in-memory BM25 retriever, then the ranker), LangChain
``ContextualCompressionRetriever`` (bm25s retriever, then the compressor) and LlamaIndex
``RetrieverQueryEngine`` (bm25s retriever, the postprocessor, a mock LLM). Each ``*_run``
returns ``[(id, score, crossrank_model_score)]`` best first."""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Document as HaystackDocument
from haystack import Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LangChainDocument
from langchain_core.retrievers import BaseRetriever as LangChainRetriever
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever as LlamaRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import ConfigDict
from serve_kit import TEXTS, request_texts

from crossrank.eval.first_stage import BM25Retriever
from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker
from langchain_crossrank import CrossEncoderRerank as LangChainRerank
from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank as LlamaRerank

#: The documents every pipeline retrieves from, by id.
CORPUS = {f"d{i}": text for i, text in enumerate([*TEXTS, *request_texts(3, 6)])}


def corpus_bm25() -> BM25Retriever:
    """bm25s over :data:`CORPUS`."""
    return BM25Retriever({i: {"title": "", "text": t} for i, t in CORPUS.items()})


def same_hits(got: list[tuple[str, float, float | None]], want: list[Any]) -> None:
    """Same ids in the same order, scores (and model scores) within 1e-5."""
    assert [g[0] for g in got] == [w[0] for w in want]
    for (_, score, own), (_, want_score, want_own) in zip(got, want, strict=True):
        assert type(score) is float
        assert score == pytest.approx(want_score, abs=1e-5)
        assert (own is None) == (want_own is None)
        if own is not None:
            assert own == pytest.approx(want_own, abs=1e-5)


def haystack_pipeline(ranker: CrossEncoderRanker) -> Pipeline:
    store = InMemoryDocumentStore()
    store.write_documents([HaystackDocument(id=i, content=t) for i, t in CORPUS.items()])
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=10))
    pipeline.add_component("ranker", ranker)
    pipeline.connect("retriever.documents", "ranker.documents")
    return pipeline


def haystack_run(pipeline: Pipeline, query: str, **ranker: Any) -> list[Any]:
    out = pipeline.run({"retriever": {"query": query}, "ranker": {"query": query, **ranker}})
    return [
        (d.id, d.score, d.meta.get("crossrank_model_score")) for d in out["ranker"]["documents"]
    ]


class LangChainBM25(LangChainRetriever):
    """bm25s over the corpus, as LangChain Documents with their score in metadata."""

    bm25: Any
    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LangChainDocument]:
        return [
            LangChainDocument(page_content=CORPUS[i], metadata={"id": i, "score": s})
            for i, s in self.bm25.search(query, k=10)
        ]


def langchain_run(reranker: LangChainRerank, bm25: BM25Retriever, query: str) -> list[Any]:
    pipeline = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=LangChainBM25(bm25=bm25)
    )
    return [
        (d.metadata["id"], d.metadata["relevance_score"], d.metadata.get("crossrank_model_score"))
        for d in pipeline.invoke(query)
    ]


class LlamaBM25(LlamaRetriever):
    def __init__(self, bm25: BM25Retriever) -> None:
        super().__init__()
        self._bm25 = bm25

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=TextNode(id_=i, text=CORPUS[i]), score=s)
            for i, s in self._bm25.search(query_bundle.query_str, k=10)
        ]


def llama_run(rerank: LlamaRerank, bm25: BM25Retriever, query: str) -> list[Any]:
    engine = RetrieverQueryEngine.from_args(
        LlamaBM25(bm25), llm=MockLLM(max_tokens=4), node_postprocessors=[rerank]
    )
    return [
        (n.node.node_id, n.score, n.node.metadata.get("crossrank_model_score"))
        for n in engine.query(query).source_nodes
    ]
