"""Retrieve with BM25, then rerank with a local cross-encoder, in a Haystack pipeline.

Run it with::

    pip install "crossrank[haystack]"
    python integrations/haystack/examples/rerank_pipeline.py

The model is ``$CROSSRANK_MODEL`` when set (a Hugging Face id or a local folder), else
``cross-encoder/ms-marco-MiniLM-L6-v2``.
"""

from __future__ import annotations

from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker

DOCUMENTS = [
    Document(content="Paris is the capital and largest city of France.", meta={"title": "Paris"}),
    Document(
        content="Berlin is the capital of Germany and its largest city.", meta={"title": "Berlin"}
    ),
    Document(content="Lyon is a French city known for its cuisine.", meta={"title": "Lyon"}),
    Document(
        content="The Eiffel Tower was built for the 1889 World's Fair in Paris.",
        meta={"title": "Eiffel Tower"},
    ),
    Document(
        content="France is a country in Western Europe; its capital is Paris.",
        meta={"title": "France"},
    ),
    Document(content="Bananas are a good source of potassium.", meta={"title": "Bananas"}),
]


def build_pipeline() -> Pipeline:
    """A BM25 retriever over the documents above, feeding the cross-encoder ranker."""
    store = InMemoryDocumentStore()
    store.write_documents(DOCUMENTS)
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=5))
    # model=None: $CROSSRANK_MODEL, else cross-encoder/ms-marco-MiniLM-L6-v2.
    pipeline.add_component("ranker", CrossEncoderRanker(top_k=3, meta_fields_to_embed=["title"]))
    pipeline.connect("retriever.documents", "ranker.documents")
    return pipeline


def main() -> None:
    pipeline = build_pipeline()
    query = "What is the capital of France?"
    result = pipeline.run({"retriever": {"query": query}, "ranker": {"query": query}})
    print(f"Query: {query}")
    for rank, doc in enumerate(result["ranker"]["documents"], start=1):
        print(f"{rank}. {doc.score:.4f}  {doc.meta['title']}: {doc.content}")


if __name__ == "__main__":
    main()
