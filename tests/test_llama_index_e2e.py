"""End to end: a LlamaIndex query engine over SciFact with BM25 and the shared cross-encoder.

The postprocessor must lose nothing against the core on the same candidates: the nodes
that reach the synthesizer, their scores and NDCG@10 are the core's.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

import llama_index.postprocessor.crossrank_rerank as package
from crossrank import CrossEncoderScorer
from crossrank.eval.data import Dataset
from crossrank.eval.first_stage import BM25Retriever
from crossrank.eval.metrics import evaluate
from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = 20
MAX_LENGTH = 256
NUM_QUERIES = 10


class SciFactBM25Retriever(BaseRetriever):
    """BM25 (bm25s) over the SciFact corpus, as LlamaIndex nodes (id_ = doc id)."""

    def __init__(self, dataset: Dataset, top_k: int = CANDIDATES) -> None:
        super().__init__()
        self._dataset = dataset
        self._top_k = top_k
        self._bm25 = BM25Retriever(dataset.corpus)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=TextNode(id_=doc_id, text=self._dataset.doc_text(doc_id)), score=s)
            for doc_id, s in self._bm25.search(query_bundle.query_str, k=self._top_k)
        ]


@pytest.fixture(scope="module")
def retriever(scifact: Dataset) -> SciFactBM25Retriever:
    return SciFactBM25Retriever(scifact)


@pytest.fixture(scope="module")
def query_ids(scifact: Dataset) -> list[str]:
    return sorted(scifact.qrels)[:NUM_QUERIES]


@pytest.fixture(scope="module")
def core_rankings(
    scifact: Dataset, retriever: SciFactBM25Retriever, query_ids: list[str], shared_model_dir: Path
) -> dict[str, list[tuple[str, float]]]:
    """The core's full ranking of each query's 20 BM25 candidates: [(doc_id, score)]."""
    core = CrossEncoderScorer(shared_model_dir, device="cpu", max_length=MAX_LENGTH)
    out: dict[str, list[tuple[str, float]]] = {}
    for qid in query_ids:
        nodes = retriever.retrieve(scifact.queries[qid])
        assert len(nodes) == CANDIDATES
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        out[qid] = [
            (nodes[h.index].node.node_id, h.score) for h in core.rank(scifact.queries[qid], texts)
        ]
    return out


def make_engine(
    retriever: BaseRetriever, model: Path, top_n: int
) -> tuple[RetrieverQueryEngine, CrossEncoderRerank]:
    rerank = CrossEncoderRerank(model=model, top_n=top_n, device="cpu", max_length=MAX_LENGTH)
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(max_tokens=8), node_postprocessors=[rerank]
    )
    return engine, rerank


@pytest.fixture(scope="module")
def engine_top10(
    retriever: SciFactBM25Retriever, shared_model_dir: Path
) -> tuple[RetrieverQueryEngine, CrossEncoderRerank]:
    return make_engine(retriever, shared_model_dir, top_n=10)


@pytest.fixture(scope="module")
def engine_runs(
    scifact: Dataset,
    query_ids: list[str],
    engine_top10: tuple[RetrieverQueryEngine, CrossEncoderRerank],
) -> dict[str, list[tuple[str, float]]]:
    """What reaches the synthesizer for each query (top_n=10): [(doc_id, score)]."""
    engine, _ = engine_top10
    return {qid: _pairs(engine.query(scifact.queries[qid]).source_nodes) for qid in query_ids}


def _pairs(nodes: list[NodeWithScore]) -> list[tuple[str, float]]:
    assert all(type(n.score) is float for n in nodes)
    return [(n.node.node_id, n.score or 0.0) for n in nodes]


def _assert_same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [d for d, _ in got] == [d for d, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-6)


def _ndcg(run: dict[str, Any], scifact: Dataset, query_ids: list[str]) -> float:
    qrels = {qid: scifact.qrels[qid] for qid in query_ids}
    return evaluate(run, qrels, ["ndcg@10"])["ndcg@10"]


def test_source_nodes_are_the_core_top5(
    scifact: Dataset,
    retriever: SciFactBM25Retriever,
    query_ids: list[str],
    shared_model_dir: Path,
    core_rankings: dict[str, list[tuple[str, float]]],
) -> None:
    engine, rerank = make_engine(retriever, shared_model_dir, top_n=5)
    qid = query_ids[0]
    response = engine.query(scifact.queries[qid])
    _assert_same(_pairs(response.source_nodes), core_rankings[qid][:5])
    assert rerank.scorer.max_length == MAX_LENGTH


def test_engine_equals_core_and_beats_random(
    scifact: Dataset,
    query_ids: list[str],
    engine_runs: dict[str, list[tuple[str, float]]],
    core_rankings: dict[str, list[tuple[str, float]]],
) -> None:
    for qid in query_ids:
        _assert_same(engine_runs[qid], core_rankings[qid][:10])
    adapter = _ndcg({q: dict(p) for q, p in engine_runs.items()}, scifact, query_ids)
    core = _ndcg({q: dict(p[:10]) for q, p in core_rankings.items()}, scifact, query_ids)
    assert abs(adapter - core) < 1e-9
    rng = random.Random(0)
    shuffled: dict[str, dict[str, float]] = {}
    for qid in query_ids:
        ids = [d for d, _ in core_rankings[qid]]
        rng.shuffle(ids)
        shuffled[qid] = {d: float(len(ids) - i) for i, d in enumerate(ids)}
    assert adapter > _ndcg(shuffled, scifact, query_ids)


@pytest.mark.asyncio
async def test_aquery_equals_core(
    scifact: Dataset,
    query_ids: list[str],
    engine_top10: tuple[RetrieverQueryEngine, CrossEncoderRerank],
    core_rankings: dict[str, list[tuple[str, float]]],
) -> None:
    engine, _ = engine_top10
    picked = query_ids[:3]
    responses = await asyncio.gather(*(engine.aquery(scifact.queries[q]) for q in picked))
    for qid, response in zip(picked, responses, strict=True):
        _assert_same(_pairs(response.source_nodes), core_rankings[qid][:10])


EXAMPLE = ROOT / "integrations/llama_index/examples/query_engine.py"


def test_example_imports_only_public_paths() -> None:
    """The example needs ``crossrank[llama-index]`` alone: no crossrank internals, no eval
    extra (bm25s)."""
    import ast

    imported: set[str] = set()
    for node in ast.walk(ast.parse(EXAMPLE.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert "llama_index.postprocessor.crossrank_rerank" in imported
    internal = {m for m in imported if m.startswith(("crossrank.", "bm25s", "rank_bm25"))}
    assert internal == set()


def test_example_runs(shared_model_dir: Path) -> None:
    src = Path(package.__file__).resolve().parents[3]
    env = {
        **os.environ,
        "CROSSRANK_MODEL": str(shared_model_dir),
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"model: {shared_model_dir}" in lines
    ranked = [line for line in lines if line[:1].isdigit()]
    assert len(ranked) == 3
    assert ranked[0].startswith("1. vitamin-d ")
    assert all("rerank=" in line and "bm25=" in line for line in ranked)
    # Library calls print nothing unasked: no "Loading weights" bar, no tokenizer warning.
    assert "Loading weights" not in done.stderr and "Token indices" not in done.stderr


# ---------------------------------------------------------------------- long documents


class ListRetriever(BaseRetriever):
    """Returns fresh nodes for fixed texts, each with metadata (scored in EMBED mode)."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self._texts = texts

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(
                node=TextNode(id_=f"c{i}", text=text, metadata={"source": f"scifact-{i}"}),
                score=1.0 - i / 100,
            )
            for i, text in enumerate(self._texts)
        ]


def test_long_evidence_is_found_in_chunk_mode_and_handed_on_as_a_passage(
    shared_model_dir: Path, shared_scorer: CrossEncoderScorer, long_evidence_case: Any
) -> None:
    case = long_evidence_case
    retriever = ListRetriever(case.texts)
    truncate = CrossEncoderRerank(scorer=shared_scorer, top_n=10)
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(max_tokens=8), node_postprocessors=[truncate]
    )
    ranked = engine.query(case.query).source_nodes
    assert len(ranked) == 10
    assert ranked[0].node.node_id != "c0"  # the evidence lies past the cut

    budget = 1000
    chunk = CrossEncoderRerank(
        model=shared_model_dir,
        device="cpu",
        top_n=3,
        long_documents="chunk",
        passage_only=True,
        token_budget=budget,
    )
    # MockLLM without max_tokens answers with its prompt: what the LLM would read.
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(), node_postprocessors=[chunk])
    response = engine.query(case.query)
    first = response.source_nodes[0]
    assert first.node.node_id == "c0"  # found in chunk mode
    start, end = first.node.metadata["crossrank_span"]
    assert end > case.passage_start  # the window reaches into the relevant passage
    assert first.node.get_content(metadata_mode=MetadataMode.NONE) == case.texts[0][start:end]
    assert len(first.node.text) < len(case.texts[0]) / 2
    handed = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in response.source_nodes]
    assert sum(chunk.scorer.count_tokens(handed)) <= budget
    # The LLM reads the passages, not the whole long document, and not the span key.
    prompt = str(response)
    assert first.node.text in prompt
    assert case.texts[0] not in prompt
    assert "crossrank_span" not in prompt

    again = asyncio.run(engine.aquery(case.query))
    assert [(n.node.node_id, n.node.text) for n in again.source_nodes] == [
        (n.node.node_id, n.node.text) for n in response.source_nodes
    ]
    assert [n.score for n in again.source_nodes] == pytest.approx(
        [n.score for n in response.source_nodes], abs=1e-6
    )


# ---------------------------------------------------------------------- the peer


def test_same_nodes_and_scores_as_sentence_transformer_rerank(
    scifact: Dataset,
    retriever: SciFactBM25Retriever,
    query_ids: list[str],
    shared_model_dir: Path,
) -> None:
    """LlamaIndex's own SentenceTransformerRerank (llama-index-core, on sentence-transformers)
    and CrossEncoderRerank built the same way keep the same nodes with the same scores."""
    from llama_index.core.postprocessor import SentenceTransformerRerank

    peer = SentenceTransformerRerank(5, str(shared_model_dir), "cpu", True)
    ours = CrossEncoderRerank(5, str(shared_model_dir), "cpu", True)
    for qid in query_ids[:5]:
        bundle = QueryBundle(scifact.queries[qid])
        peer_nodes = peer.postprocess_nodes(retriever.retrieve(bundle), bundle)
        our_nodes = ours.postprocess_nodes(retriever.retrieve(bundle), bundle)
        _assert_same(
            _pairs(our_nodes), [(n.node.node_id, float(n.score or 0.0)) for n in peer_nodes]
        )
        assert [n.node.metadata["retrieval_score"] for n in our_nodes] == pytest.approx(
            [n.node.metadata["retrieval_score"] for n in peer_nodes]
        )
    # A config the peer saved loads as CrossEncoderRerank's.
    loaded = CrossEncoderRerank.from_dict(peer.to_dict())
    assert (loaded.model, loaded.top_n, loaded.device) == (str(shared_model_dir), 5, "cpu")
    assert loaded.keep_retrieval_score is True
