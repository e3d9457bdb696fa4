"""First-stage retrievers for evaluation: BM25 (bm25s) and a sentence-transformers bi-encoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crossrank._optional import missing_extra
from crossrank.eval.data import document_text

__all__ = ["BM25Retriever", "DenseRetriever"]


def _doc_text(doc: Mapping[str, str]) -> str:
    return document_text(doc.get("title"), doc.get("text") or "")


class BM25Retriever:
    """BM25 over a BEIR corpus with bm25s (English stopwords, Snowball stemmer when
    PyStemmer is installed).

    Args:
        corpus: ``{doc_id: {"title": ..., "text": ...}}``.
    """

    def __init__(self, corpus: Mapping[str, Mapping[str, str]]) -> None:
        try:
            import bm25s
        except ImportError as e:
            raise missing_extra("BM25 first-stage retrieval", "eval", e) from e
        try:
            import Stemmer

            self._stemmer: Any = Stemmer.Stemmer("english")
        except ImportError:
            self._stemmer = None
        self._bm25s = bm25s
        self.doc_ids = list(corpus)
        tokens = bm25s.tokenize(
            [_doc_text(corpus[d]) for d in self.doc_ids],
            stopwords="en",
            stemmer=self._stemmer,
            show_progress=False,
        )
        self._index = bm25s.BM25()
        self._index.index(tokens, show_progress=False)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top ``k`` ``(doc_id, bm25_score)``, best first."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self.doc_ids))
        tokens = self._bm25s.tokenize(
            queries, stopwords="en", stemmer=self._stemmer, show_progress=False
        )
        results, scores = self._index.retrieve(tokens, k=k, show_progress=False)
        return [
            [(self.doc_ids[int(i)], float(s)) for i, s in zip(row_ids, row_scores, strict=True)]
            for row_ids, row_scores in zip(results, scores, strict=True)
        ]


class DenseRetriever:
    """Exact cosine search with a sentence-transformers bi-encoder.

    Args:
        corpus: ``{doc_id: {"title": ..., "text": ...}}``.
        model: A sentence-transformers model id or folder.
    """

    def __init__(
        self, corpus: Mapping[str, Mapping[str, str]], model: str, *, batch_size: int = 64
    ) -> None:
        from sentence_transformers import SentenceTransformer

        from crossrank._quiet import quiet_transformers

        with quiet_transformers():  # no "Loading weights" bar
            self._model = SentenceTransformer(model, device="cpu")
        self.doc_ids = list(corpus)
        self._embeddings = self._model.encode(
            [_doc_text(corpus[d]) for d in self.doc_ids],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int) -> list[list[tuple[str, float]]]:
        import numpy as np

        q = self._model.encode(
            queries, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        sims = q @ self._embeddings.T
        k = min(k, len(self.doc_ids))
        out = []
        for row in sims:
            top = np.argpartition(-row, k - 1)[:k]
            top = top[np.argsort(-row[top], kind="stable")]
            out.append([(self.doc_ids[int(i)], float(row[i])) for i in top])
        return out
