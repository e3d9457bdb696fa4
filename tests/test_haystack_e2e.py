"""End to end: SciFact in a Haystack pipeline (BM25 -> CrossEncoderRanker) with the real model.

The pipeline must lose nothing against the core: same top-10 ids, same scores, same NDCG@10.
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
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import ComponentDevice

from crossrank import CrossEncoderScorer
from crossrank.eval.metrics import evaluate
from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TYPE_PATH = "haystack_integrations.components.rankers.crossrank.ranker.CrossEncoderRanker"
EXAMPLE = ROOT / "integrations" / "haystack" / "examples" / "rerank_pipeline.py"
N_QUERIES = 10
CANDIDATES = 50
TOP_K = 10
MAX_LENGTH = 256
# The async and YAML round-trip checks repeat the work of the first run: a few queries do.
N_REPEAT = 3

Run = dict[str, dict[str, float]]


def _build_pipeline(store: InMemoryDocumentStore, model_dir: Path) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component(
        "retriever", InMemoryBM25Retriever(document_store=store, top_k=CANDIDATES)
    )
    pipeline.add_component(
        "ranker",
        CrossEncoderRanker(
            model=str(model_dir),
            top_k=TOP_K,
            device=ComponentDevice.from_str("cpu"),
            max_length=MAX_LENGTH,
        ),
    )
    pipeline.connect("retriever.documents", "ranker.documents")
    return pipeline


def _inputs(query: str) -> dict[str, Any]:
    return {"retriever": {"query": query}, "ranker": {"query": query}}


def _ranked(result: dict[str, Any]) -> list[tuple[str, float]]:
    return [(d.id, d.score) for d in result["ranker"]["documents"]]


@pytest.fixture(scope="module")
def query_ids(scifact) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(scifact.qrels)[:N_QUERIES]


@pytest.fixture(scope="module")
def store(scifact) -> InMemoryDocumentStore:  # type: ignore[no-untyped-def]
    store = InMemoryDocumentStore()
    store.write_documents(
        [Document(id=doc_id, content=scifact.doc_text(doc_id)) for doc_id in scifact.corpus]
    )
    return store


@pytest.fixture(scope="module")
def pipeline(store: InMemoryDocumentStore, shared_model_dir: Path) -> Pipeline:
    return _build_pipeline(store, shared_model_dir)


@pytest.fixture(scope="module")
def pipeline_results(pipeline: Pipeline, scifact, query_ids: list[str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Each query's pipeline output, with the retriever's candidates included."""
    return {
        qid: pipeline.run(_inputs(scifact.queries[qid]), include_outputs_from={"retriever"})
        for qid in query_ids
    }


@pytest.fixture(scope="module")
def core_run(scifact, pipeline_results: dict[str, Any], shared_model_dir: Path) -> Run:  # type: ignore[no-untyped-def]
    """The core's top 10 on the same candidates, with the same settings."""
    scorer = CrossEncoderScorer(shared_model_dir, device="cpu", max_length=MAX_LENGTH)
    run: Run = {}
    for qid, result in pipeline_results.items():
        ids = [d.id for d in result["retriever"]["documents"]]
        hits = scorer.rank(scifact.queries[qid], [scifact.doc_text(i) for i in ids], top_k=TOP_K)
        run[qid] = {ids[h.index]: h.score for h in hits}
    return run


def test_retriever_gives_the_candidates(pipeline_results: dict[str, Any]) -> None:
    for result in pipeline_results.values():
        assert len(result["retriever"]["documents"]) == CANDIDATES
        assert len(result["ranker"]["documents"]) == TOP_K


def test_pipeline_equals_the_core(
    scifact,  # type: ignore[no-untyped-def]
    query_ids: list[str],
    pipeline_results: dict[str, Any],
    core_run: Run,
) -> None:
    qrels = {qid: scifact.qrels[qid] for qid in query_ids}
    pipeline_run: Run = {qid: dict(_ranked(r)) for qid, r in pipeline_results.items()}
    for qid, result in pipeline_results.items():
        assert [doc_id for doc_id, _ in _ranked(result)] == list(core_run[qid]), qid
        assert all(type(d.score) is float for d in result["ranker"]["documents"])
    ours = evaluate(pipeline_run, qrels, ["ndcg@10"])["ndcg@10"]
    core = evaluate(core_run, qrels, ["ndcg@10"])["ndcg@10"]
    assert abs(ours - core) < 1e-9
    assert pipeline_run == core_run  # the scores themselves, not only the metric

    rng = random.Random(0)
    random_run: Run = {}
    for qid, result in pipeline_results.items():
        ids = [d.id for d in result["retriever"]["documents"]]
        rng.shuffle(ids)
        random_run[qid] = {doc_id: float(len(ids) - i) for i, doc_id in enumerate(ids)}
    shuffled = evaluate(random_run, qrels, ["ndcg@10"])["ndcg@10"]
    assert ours > shuffled, (ours, shuffled)


def test_run_async_gives_the_same(
    pipeline: Pipeline,
    scifact,  # type: ignore[no-untyped-def]
    query_ids: list[str],
    pipeline_results: dict[str, Any],
) -> None:
    async def run_all() -> list[dict[str, Any]]:
        return [
            await pipeline.run_async(_inputs(scifact.queries[qid])) for qid in query_ids[:N_REPEAT]
        ]

    for qid, result in zip(query_ids[:N_REPEAT], asyncio.run(run_all()), strict=True):
        assert _ranked(result) == _ranked(pipeline_results[qid])


def test_yaml_round_trip_gives_the_same(
    pipeline: Pipeline,
    scifact,  # type: ignore[no-untyped-def]
    query_ids: list[str],
    pipeline_results: dict[str, Any],
) -> None:
    yaml_text = pipeline.dumps()
    assert (
        "haystack_integrations.components.rankers.crossrank.ranker.CrossEncoderRanker" in yaml_text
    )
    loaded = Pipeline.loads(yaml_text)
    assert loaded.dumps() == yaml_text
    for qid in query_ids[:N_REPEAT]:
        result = loaded.run(_inputs(scifact.queries[qid]))
        assert _ranked(result) == _ranked(pipeline_results[qid])


def test_example_runs(shared_model_dir: Path) -> None:
    env = {**os.environ, "CROSSRANK_MODEL": str(shared_model_dir), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Query: What is the capital of France?"
    ranked = [line for line in lines[1:] if line[:1].isdigit()]
    assert len(ranked) == 3
    scores = [float(line.split()[1]) for line in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)
    assert "Paris" in ranked[0]


# ---------------------------------------------------------------------- long documents
# The shared "evidence after token 1,000" case (tests/conftest.py), through a real Pipeline
# that feeds the ten candidates to the ranker (a BM25 retriever would drop the candidates
# that share no term with the query).


def _long_case_run(case: Any, model_dir: Path, **ranker_kwargs: Any) -> list[Document]:  # type: ignore[no-untyped-def]
    docs = [Document(id=f"c{i}", content=text, meta={"n": i}) for i, text in enumerate(case.texts)]
    pipeline = Pipeline()
    pipeline.add_component(
        "ranker",
        CrossEncoderRanker(
            model=str(model_dir), device=ComponentDevice.from_str("cpu"), **ranker_kwargs
        ),
    )
    result = pipeline.run({"ranker": {"query": case.query, "documents": docs}})
    return result["ranker"]["documents"]


def test_chunk_mode_finds_evidence_past_the_cut(shared_model_dir: Path, long_evidence_case) -> None:  # type: ignore[no-untyped-def]
    chunk = _long_case_run(long_evidence_case, shared_model_dir, long_documents="chunk")
    truncate = _long_case_run(long_evidence_case, shared_model_dir)
    assert chunk[0].id == "c0"  # found
    assert truncate[0].id != "c0"  # invisible past the cut
    assert chunk[0].content == long_evidence_case.texts[0]  # whole without passage_only


def test_passage_only_hands_on_the_evidence(shared_model_dir: Path, long_evidence_case) -> None:  # type: ignore[no-untyped-def]
    case = long_evidence_case
    long_doc = case.texts[0]
    counter = CrossEncoderScorer(shared_model_dir, device="cpu")
    budget = 800
    assert counter.count_tokens([long_doc])[0] > budget  # the whole document would not fit
    out = _long_case_run(
        case,
        shared_model_dir,
        long_documents="chunk",
        passage_only=True,
        token_budget=budget,
        top_k=5,
    )
    first = out[0]
    assert first.id == "c0"
    start, end = first.meta["crossrank_span"]
    assert end > case.passage_start  # the window reaches into the relevant passage
    assert first.content == long_doc[start:end]
    assert len(first.content or "") < len(long_doc) / 3  # a passage, not the whole file
    assert first.meta["n"] == 0
    # The budget counts what is handed on (the passages), and is never exceeded.
    assert 0 < sum(counter.count_tokens([d.content or "" for d in out])) <= budget
