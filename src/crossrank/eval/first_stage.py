"""First-stage retrievers for evaluation: BM25 (bm25s) and a sentence-transformers bi-encoder,
and :func:`first_stage_run`, the candidates ``eval``, ``calibrate`` and ``train`` rerank (from
a retriever or a TREC run file)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crossrank._optional import missing_extra
from crossrank.eval.data import Dataset, document_text, load_trec_run

__all__ = ["BM25Retriever", "DenseRetriever", "dense_model", "first_stage_run"]

logger = logging.getLogger("crossrank")


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


def dense_model(first_stage: str) -> str | None:
    """None for ``"bm25"``, MODEL for ``"dense:MODEL"``; ValueError for anything else."""
    if first_stage == "bm25":
        return None
    model = first_stage[len("dense:") :].strip() if first_stage.startswith("dense:") else ""
    if not model:
        raise ValueError(
            "first stage must be 'bm25' or 'dense:MODEL' (a sentence-transformers model), "
            f"got {first_stage!r}"
        )
    return model


def first_stage_run(
    dataset: Dataset,
    query_ids: list[str],
    *,
    first_stage: str,
    run_path: str | os.PathLike[str] | None,
    depth: int,
) -> tuple[str, dict[str, dict[str, float]]]:
    """Return (label, {qid: {doc_id: first-stage score}}) holding each query's top ``depth``."""
    if run_path is not None:
        run = load_trec_run(Path(run_path))
        scores = {q: dict(run.get(q, {})) for q in query_ids}
        missing_queries = [q for q in query_ids if not scores[q]]
        if missing_queries:
            logger.warning(
                "crossrank eval: %d of %d evaluated queries are not in %s; they score 0",
                len(missing_queries),
                len(query_ids),
                run_path,
            )
        unknown = sorted({d for q in query_ids for d in scores[q] if d not in dataset.corpus})
        if unknown:
            raise ValueError(
                f"the run file {run_path} names {len(unknown)} document(s) that are not in "
                f"corpus.jsonl (e.g. {unknown[:5]}); the reranker needs each candidate's text. "
                "Use the corpus the run was made from."
            )
        return f"run:{Path(run_path).name}", scores

    retriever: Any
    dense_model_name = dense_model(first_stage)
    if dense_model_name is None:
        retriever = BM25Retriever(dataset.corpus)
    else:
        retriever = DenseRetriever(dataset.corpus, dense_model_name)
    hits = retriever.search_many([dataset.queries[q] for q in query_ids], depth)
    return first_stage, {q: dict(h) for q, h in zip(query_ids, hits, strict=True)}
