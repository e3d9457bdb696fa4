"""End to end: the LangChain compressor behind a real BM25 retriever over SciFact, real model.

The compressor must lose nothing against the core: same scores, same order, same NDCG@10.
Long documents: evidence past token 1,000 is found in chunk mode, and handed on as a passage.
Drop-in: crossrank's BaseCrossEncoder scores as langchain-community's HuggingFaceCrossEncoder
and ranks as CrossEncoderRerank inside langchain-classic's CrossEncoderReranker.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from crossrank import CrossEncoderScorer
from crossrank.eval.first_stage import BM25Retriever
from crossrank.eval.metrics import evaluate
from langchain_crossrank import CrossEncoderRerank, CrossrankCrossEncoder

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "integrations" / "langchain" / "examples" / "rerank_retriever.py"
CANDIDATES = 20
TOP_N = 10
MAX_LENGTH = 256


class SciFactBM25Retriever(BaseRetriever):
    """BM25 (bm25s) top-k over the SciFact corpus, as LangChain Documents."""

    bm25: BM25Retriever
    dataset: Any
    k: int = CANDIDATES

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(page_content=self.dataset.doc_text(doc_id), metadata={"id": doc_id})
            for doc_id, _ in self.bm25.search(query, k=self.k)
        ]


@pytest.fixture(scope="module")
def query_ids(scifact: Any) -> list[str]:
    return sorted(scifact.qrels)[:10]


@pytest.fixture(scope="module")
def qrels(scifact: Any, query_ids: list[str]) -> dict[str, dict[str, int]]:
    return {qid: scifact.qrels[qid] for qid in query_ids}


@pytest.fixture(scope="module")
def base_retriever(scifact: Any) -> SciFactBM25Retriever:
    return SciFactBM25Retriever(bm25=BM25Retriever(scifact.corpus), dataset=scifact)


@pytest.fixture(scope="module")
def candidates(
    scifact: Any, query_ids: list[str], base_retriever: SciFactBM25Retriever
) -> dict[str, list[Document]]:
    return {qid: base_retriever.invoke(scifact.queries[qid]) for qid in query_ids}


@pytest.fixture(scope="module")
def retriever(
    shared_model_dir: Path, base_retriever: SciFactBM25Retriever
) -> ContextualCompressionRetriever:
    reranker = CrossEncoderRerank(
        model=shared_model_dir, top_n=TOP_N, device="cpu", max_length=MAX_LENGTH
    )
    return ContextualCompressionRetriever(base_compressor=reranker, base_retriever=base_retriever)


@pytest.fixture(scope="module")
def langchain_results(
    scifact: Any, query_ids: list[str], retriever: ContextualCompressionRetriever
) -> dict[str, list[Document]]:
    return {qid: retriever.invoke(scifact.queries[qid]) for qid in query_ids}


@pytest.fixture(scope="module")
def core_results(
    scifact: Any, shared_model_dir: Path, candidates: dict[str, list[Document]]
) -> dict[str, list[tuple[str, float]]]:
    scorer = CrossEncoderScorer(shared_model_dir, device="cpu", max_length=MAX_LENGTH)
    out = {}
    for qid, docs in candidates.items():
        hits = scorer.rank(scifact.queries[qid], [d.page_content for d in docs], top_k=TOP_N)
        out[qid] = [(docs[h.index].metadata["id"], h.score) for h in hits]
    return out


def as_pairs(docs: list[Document]) -> list[tuple[str, float]]:
    return [(d.metadata["id"], d.metadata["relevance_score"]) for d in docs]


def as_run(results: dict[str, list[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    return {qid: dict(pairs) for qid, pairs in results.items()}


def test_retriever_returns_scored_copies(
    scifact: Any,
    candidates: dict[str, list[Document]],
    langchain_results: dict[str, list[Document]],
) -> None:
    for qid, docs in langchain_results.items():
        assert len(candidates[qid]) == CANDIDATES
        assert len(docs) == TOP_N
        candidate_ids = {d.metadata["id"] for d in candidates[qid]}
        for doc in docs:
            assert doc.metadata["id"] in candidate_ids
            assert doc.page_content == scifact.doc_text(doc.metadata["id"])
            assert type(doc.metadata["relevance_score"]) is float
        scores = [d.metadata["relevance_score"] for d in docs]
        assert scores == sorted(scores, reverse=True)


def test_ndcg_equals_core_and_beats_random(
    qrels: dict[str, dict[str, int]],
    candidates: dict[str, list[Document]],
    langchain_results: dict[str, list[Document]],
    core_results: dict[str, list[tuple[str, float]]],
) -> None:
    langchain_pairs = {qid: as_pairs(docs) for qid, docs in langchain_results.items()}
    for qid, pairs in langchain_pairs.items():
        assert [d for d, _ in pairs] == [d for d, _ in core_results[qid]], qid
        for (_, ours), (_, core) in zip(pairs, core_results[qid], strict=True):
            assert abs(ours - core) < 1e-9

    ndcg = evaluate(as_run(langchain_pairs), qrels, ["ndcg@10"])["ndcg@10"]
    core_ndcg = evaluate(as_run(core_results), qrels, ["ndcg@10"])["ndcg@10"]
    assert abs(ndcg - core_ndcg) < 1e-9

    rng = random.Random(0)
    random_run = {
        qid: {d.metadata["id"]: rng.random() for d in docs} for qid, docs in candidates.items()
    }
    random_ndcg = evaluate(random_run, qrels, ["ndcg@10"])["ndcg@10"]
    assert ndcg > random_ndcg


def test_async_path_gives_the_same(
    scifact: Any,
    query_ids: list[str],
    retriever: ContextualCompressionRetriever,
    langchain_results: dict[str, list[Document]],
) -> None:
    async def run_all() -> list[list[Document]]:
        return await asyncio.gather(*(retriever.ainvoke(scifact.queries[q]) for q in query_ids))

    results = asyncio.run(run_all())
    for qid, docs in zip(query_ids, results, strict=True):
        assert as_pairs(docs) == as_pairs(langchain_results[qid])


def test_example_runs(shared_model_dir: Path) -> None:
    env = {**os.environ, "CROSSRANK_MODEL": str(shared_model_dir), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    retriever_part = lines[
        lines.index("ContextualCompressionRetriever:") + 1 : lines.index("LCEL:")
    ]
    lcel_part = lines[lines.index("LCEL:") + 1 :]
    assert len(retriever_part) == 3
    assert retriever_part == lcel_part
    assert retriever_part[0].split()[1] == "aspirin-platelets"
    assert "empty" not in result.stdout


# ---------------------------------------------------------------------- drop-in


def test_cross_encoder_scores_as_huggingface_cross_encoder(
    scifact: Any, shared_model_dir: Path, candidates: dict[str, list[Document]]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # langchain-community is sunset
        community = pytest.importorskip("langchain_community.cross_encoders")
    peer = community.HuggingFaceCrossEncoder(
        model_name=str(shared_model_dir), model_kwargs={"device": "cpu"}
    )
    ours = CrossrankCrossEncoder(model=shared_model_dir, device="cpu")
    pairs = [
        (scifact.queries[qid], doc.page_content)
        for qid, docs in list(candidates.items())[:3]
        for doc in docs
    ]  # three queries mixed in one call
    expected = [float(s) for s in peer.score(pairs)]
    got = ours.score(pairs)
    assert all(type(s) is float for s in got)
    assert got == pytest.approx(expected, abs=1e-4)


def test_cross_encoder_reranker_on_crossrank_ranks_as_cross_encoder_rerank(
    scifact: Any,
    query_ids: list[str],
    shared_model_dir: Path,
    base_retriever: SciFactBM25Retriever,
    langchain_results: dict[str, list[Document]],
) -> None:
    model = CrossrankCrossEncoder(model=shared_model_dir, device="cpu", max_length=MAX_LENGTH)
    retriever = ContextualCompressionRetriever(
        base_compressor=CrossEncoderReranker(model=model, top_n=TOP_N),
        base_retriever=base_retriever,
    )
    for qid in query_ids[:5]:
        docs = retriever.invoke(scifact.queries[qid])
        assert [d.metadata["id"] for d in docs] == [
            d.metadata["id"] for d in langchain_results[qid]
        ]
        assert all("relevance_score" not in d.metadata for d in docs)  # the peer writes none


# ---------------------------------------------------------------------- long documents


class TextsBM25Retriever(BaseRetriever):
    """BM25 (bm25s) over a handful of texts, all returned (best BM25 first)."""

    texts: dict[str, str]
    bm25: BM25Retriever

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(page_content=self.texts[doc_id], metadata={"id": doc_id})
            for doc_id, _ in self.bm25.search(query, k=len(self.texts))
        ]


@pytest.fixture(scope="module")
def long_case_retriever(long_evidence_case: Any) -> TextsBM25Retriever:
    texts = {("long" if i == 0 else f"c{i}"): t for i, t in enumerate(long_evidence_case.texts)}
    corpus = {doc_id: {"title": "", "text": text} for doc_id, text in texts.items()}
    return TextsBM25Retriever(texts=texts, bm25=BM25Retriever(corpus))


@pytest.fixture(scope="module")
def chunk_reranker(shared_model_dir: Path) -> CrossEncoderRerank:
    return CrossEncoderRerank(
        model=shared_model_dir, device="cpu", long_documents="chunk", top_n=None
    )


def test_long_document_ranks_first_in_chunk_mode_only(
    long_evidence_case: Any,
    long_case_retriever: TextsBM25Retriever,
    chunk_reranker: CrossEncoderRerank,
    shared_scorer: CrossEncoderScorer,
) -> None:
    query = long_evidence_case.query
    assert len(long_case_retriever.invoke(query)) == len(long_evidence_case.texts)
    chunk = ContextualCompressionRetriever(
        base_compressor=chunk_reranker, base_retriever=long_case_retriever
    ).invoke(query)
    truncate = ContextualCompressionRetriever(
        base_compressor=CrossEncoderRerank(scorer=shared_scorer, top_n=None),
        base_retriever=long_case_retriever,
    ).invoke(query)
    assert chunk_reranker.scorer.long_documents == "chunk"
    assert chunk[0].metadata["id"] == "long"  # found
    assert truncate[0].metadata["id"] != "long"  # invisible past the cut
    assert chunk[0].page_content == long_evidence_case.texts[0]  # whole without passage_only


def test_passage_only_hands_on_the_evidence_window(
    long_evidence_case: Any,
    long_case_retriever: TextsBM25Retriever,
    chunk_reranker: CrossEncoderRerank,
) -> None:
    long_doc = long_evidence_case.texts[0]
    budget = 1024
    reranker = CrossEncoderRerank(
        scorer=chunk_reranker.scorer, top_n=5, passage_only=True, token_budget=budget
    )
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=long_case_retriever
    )
    docs = retriever.invoke(long_evidence_case.query)
    first = docs[0]
    assert first.metadata["id"] == "long"
    start, end = first.metadata["crossrank_span"]
    assert first.page_content == long_doc[start:end]
    assert end > long_evidence_case.passage_start  # the window reaches the relevant passage
    scorer = chunk_reranker.scorer
    # One window (what fits beside the query), much shorter than the long document.
    passage_tokens, doc_tokens = scorer.count_tokens([first.page_content, long_doc])
    assert passage_tokens <= scorer.max_length
    assert passage_tokens < doc_tokens / 2
    assert len(first.page_content) < len(long_doc) / 2
    assert type(first.metadata["relevance_score"]) is float
    assert sum(scorer.count_tokens([d.page_content for d in docs])) <= budget
    # The async path gives the same.
    assert asyncio.run(retriever.ainvoke(long_evidence_case.query)) == docs
