"""Rerank BM25 candidates with a cross-encoder inside a LlamaIndex query engine.

Run::

    pip install "crossrank[llama-index]"
    python integrations/llama_index/examples/query_engine.py

The first stage is a few lines of BM25 over the texts below, so the example needs nothing
else; in an application it is your own retriever (``index.as_retriever()``, LlamaIndex's
BM25 retriever ...), and the reranker goes in ``node_postprocessors`` the same way.

The model is ``CROSSRANK_MODEL`` if set (a Hub id or a local folder), else crossrank's
default, ``cross-encoder/ms-marco-MiniLM-L6-v2``. ``MockLLM`` stands in for a real LLM, so
the example needs no API key: look at the source nodes, which are what the LLM would read.
"""

from __future__ import annotations

import math
import re

from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank

DOCS = {
    "vitamin-d": "Vitamin D supplementation and fractures. In a randomized trial of 2,686 "
    "adults aged 65 to 85, vitamin D every four months reduced fractures by 22 percent.",
    "statins": "Statins and cardiovascular events. Lowering LDL cholesterol with statins "
    "reduced heart attacks and strokes in patients at high cardiovascular risk.",
    "sleep": "Sleep deprivation and memory. Healthy adults kept awake for 36 hours recalled "
    "fewer words, and hippocampal activity during learning was lower.",
    "aspirin": "Aspirin for primary prevention. In healthy older adults, daily low-dose "
    "aspirin did not prolong disability-free survival and increased major bleeding.",
    "exercise": "Exercise and depression. Aerobic exercise three times a week reduced "
    "depressive symptoms in older adults about as much as sertraline after 16 weeks.",
    "calcium": "Calcium intake and bone density. Dietary calcium in older adults was not "
    "associated with fewer hip fractures in a large prospective cohort.",
}

QUERY = "Vitamin D supplements prevent fractures in older people."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class BM25NodeRetriever(BaseRetriever):
    """A tiny BM25 first stage over texts held in memory, returning LlamaIndex nodes."""

    def __init__(self, docs: dict[str, str], top_k: int = 5) -> None:
        super().__init__()
        self._docs = docs
        self._top_k = top_k
        self._words = {doc_id: words(text) for doc_id, text in docs.items()}
        self._mean_length = sum(map(len, self._words.values())) / len(docs)

    def _bm25(self, query: list[str], doc: list[str], k1: float = 1.5, b: float = 0.75) -> float:
        score = 0.0
        for word in set(query):
            having = sum(word in other for other in self._words.values())
            tf = doc.count(word)
            if tf:
                idf = math.log(1 + (len(self._words) - having + 0.5) / (having + 0.5))
                norm = k1 * (1 - b + b * len(doc) / self._mean_length)
                score += idf * tf * (k1 + 1) / (tf + norm)
        return score

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = words(query_bundle.query_str)
        scores = {doc_id: self._bm25(query, doc) for doc_id, doc in self._words.items()}
        best = sorted(scores, key=lambda doc_id: (-scores[doc_id], doc_id))[: self._top_k]
        return [
            NodeWithScore(node=TextNode(id_=doc_id, text=self._docs[doc_id]), score=scores[doc_id])
            for doc_id in best
            if scores[doc_id] > 0
        ]


def main() -> None:
    rerank = CrossEncoderRerank(top_n=3, keep_retrieval_score=True)
    engine = RetrieverQueryEngine.from_args(
        BM25NodeRetriever(DOCS), llm=MockLLM(max_tokens=8), node_postprocessors=[rerank]
    )
    response = engine.query(QUERY)
    print(f"model: {rerank.scorer.model_name}")
    print(f"query: {QUERY}")
    print("source nodes, best first:")
    for rank, item in enumerate(response.source_nodes, start=1):
        bm25 = item.node.metadata["retrieval_score"]
        print(f"{rank}. {item.node.node_id:<10} rerank={item.score:.4f} bm25={bm25:.3f}")


if __name__ == "__main__":
    main()
