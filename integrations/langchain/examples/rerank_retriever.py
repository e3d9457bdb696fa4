"""Rerank a retriever's results with crossrank in LangChain, two ways.

1. ``ContextualCompressionRetriever`` (from ``langchain-classic``) around a base retriever.
2. Plain LCEL (``langchain-core`` only): the retriever and the query side by side, then a
   ``RunnableLambda`` that calls the compressor.

The base retriever is a small BM25 (bm25s) index over a few in-memory Documents. The
cross-encoder is ``$CROSSRANK_MODEL`` if set, else cross-encoder/ms-marco-MiniLM-L6-v2.

Run::

    pip install "crossrank[langchain]" langchain-classic bm25s
    python integrations/langchain/examples/rerank_retriever.py
"""

from __future__ import annotations

from typing import Any

import bm25s
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from pydantic import PrivateAttr

from langchain_crossrank import CrossEncoderRerank

DOCUMENTS = [
    Document(
        page_content="Aspirin irreversibly inhibits cyclooxygenase, which lowers the "
        "production of thromboxane and so reduces platelet aggregation.",
        metadata={"id": "aspirin-platelets"},
    ),
    Document(
        page_content="Aspirin is sold in pharmacies as tablets of 81 mg or 325 mg.",
        metadata={"id": "aspirin-tablets"},
    ),
    Document(
        page_content="Statins lower LDL cholesterol by inhibiting HMG-CoA reductase in the liver.",
        metadata={"id": "statins"},
    ),
    Document(
        page_content="A platelet is a small cell fragment in the blood; platelets form clots.",
        metadata={"id": "platelets"},
    ),
    Document(
        page_content="Regular aerobic exercise lowers resting blood pressure in adults.",
        metadata={"id": "exercise"},
    ),
    Document(page_content="", metadata={"id": "empty"}),  # never returned: nothing to score
]


class BM25DocumentRetriever(BaseRetriever):
    """Keyword retrieval (BM25, bm25s) over a list of Documents held in memory."""

    documents: list[Document]
    """The Documents to search."""
    k: int = 4
    """How many Documents to return."""

    _index: Any = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        tokens = bm25s.tokenize(
            [d.page_content for d in self.documents], stopwords="en", show_progress=False
        )
        self._index = bm25s.BM25()
        self._index.index(tokens, show_progress=False)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        k = min(self.k, len(self.documents))
        ids, _ = self._index.retrieve(tokens, k=k, show_progress=False)
        return [self.documents[int(i)] for i in ids[0]]


def show(title: str, documents: list[Document]) -> None:
    print(title)
    for doc in documents:
        print(f"  {doc.metadata['relevance_score']:.4f}  {doc.metadata['id']}")


def main() -> None:
    query = "How does aspirin reduce platelet aggregation?"
    base_retriever = BM25DocumentRetriever(documents=DOCUMENTS, k=5)
    # Cheap to build: the model loads on the first query.
    reranker = CrossEncoderRerank(top_n=3)

    # 1. ContextualCompressionRetriever: retrieve with BM25, keep the cross-encoder's top 3.
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=base_retriever
    )
    show("ContextualCompressionRetriever:", retriever.invoke(query))

    # 2. LCEL: run the retriever and pass the query through, then rerank. afunc makes
    # chain.ainvoke score off the event loop.
    def rerank(inputs: dict[str, Any]) -> list[Document]:
        return list(reranker.compress_documents(inputs["docs"], inputs["query"]))

    async def arerank(inputs: dict[str, Any]) -> list[Document]:
        return list(await reranker.acompress_documents(inputs["docs"], inputs["query"]))

    chain = RunnableParallel(docs=base_retriever, query=RunnablePassthrough()) | RunnableLambda(
        rerank, afunc=arerank
    )
    show("LCEL:", chain.invoke(query))


if __name__ == "__main__":
    main()
