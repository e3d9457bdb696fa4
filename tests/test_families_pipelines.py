"""Every reranker family through a framework's real pipeline, and instructions per call.

The family kit's tiny checkpoints (tests/family_kit.py) are spread across Haystack
(``Pipeline``: in-memory BM25 -> ``CrossEncoderRanker``), LangChain
(``ContextualCompressionRetriever``: bm25s -> ``CrossEncoderRerank``) and LlamaIndex
(``RetrieverQueryEngine``: bm25s -> ``CrossEncoderRerank`` -> a mock LLM), so each family runs
through one real pipeline and each framework sees a causal LM, a templated sequence-classification
decoder and an encoder. The pipeline's hits (ids, order, raw scores) must be the core's for the
candidates its retriever gave. Then each framework's way of giving one call an instruction, through
the same pipelines, and Haystack's prefixes and suffixes inside a chat template, against
sentence-transformers (what the peer ranker calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from family_kit import (
    DOCUMENTS,
    INSTRUCTION,
    PARITY_FAMILIES,
    QUERY,
    QWEN3_SUFFIX,
    load_cross_encoder,
    reference_of,
)
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from pipeline_kit import (
    corpus_bm25,
    haystack_pipeline,
    haystack_run,
    langchain_run,
    llama_run,
    same_hits,
)

from crossrank import CrossEncoderScorer
from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker
from langchain_crossrank import CrossEncoderRerank as LangChainRerank
from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank as LlamaRerank
from llama_index.postprocessor.crossrank_rerank import InstructedQueryBundle

pytestmark = pytest.mark.timeout(300)

#: The kit's abstracts (short ones and ones longer than max_length), by id.
CORPUS = {f"a{i}": text for i, text in enumerate(DOCUMENTS)}
#: Which framework's pipeline each family goes through.
SPREAD: dict[str, list[str]] = {
    "haystack": ["qwen3-causal", "qwen3-seq-cls", "bert", "xlmr", "bge-gemma", "ettin",
                 "remote-code"],
    "langchain": ["zerank", "qwen3-seq-cls-no-pad", "deberta", "mxbai-v2", "modernbert",
                  "bert-2labels", "qwen3-causal-old-paths"],
    "llama_index": ["qwen3-reranker-original", "qwen3-seq-cls", "electra",
                    "xlmr-short-positions", "bert-default-prompt"],
}  # fmt: skip
CASES = [(framework, name) for framework, names in SPREAD.items() for name in names]
#: An instruction none of the checkpoints saved.
OTHER = "Find the abstracts that contradict the claim"


def _options(name: str) -> dict[str, Any]:
    """Scorer settings: raw logits (no sigmoid to flatten a difference), on the CPU."""
    extra = {"trust_remote_code": True} if name == "remote-code" else {}
    return {"device": "cpu", "activation": "raw", "backend": "torch", **extra}


def _core(folder: Path, name: str, ids: list[str], top: int | None, **call: Any) -> list[Any]:
    """The core's hits for the candidates ``ids``: ``(id, score, None)`` best first."""
    scorer = CrossEncoderScorer(folder, **_options(name))
    hits = scorer.rerank(QUERY, [CORPUS[i] for i in ids], top_k=top, **call).hits
    return [(ids[h.index], h.score, None) for h in hits]


def _haystack_candidates() -> list[str]:
    pipeline = haystack_pipeline(CrossEncoderRanker(model="unused"), CORPUS)
    retriever = pipeline.get_component("retriever")
    assert isinstance(retriever, InMemoryBM25Retriever)
    return [d.id for d in retriever.run(query=QUERY)["documents"]]


def _bm25_candidates() -> list[str]:
    return [i for i, _ in corpus_bm25(CORPUS).search(QUERY, k=10)]


def _run(framework: str, folder: Path, name: str, **call: Any) -> tuple[list[Any], list[Any]]:
    """The pipeline's hits and the core's, with this call's ``instruction`` if given."""
    options = _options(name)
    instruction = call.get("instruction")
    if framework == "haystack":
        ranker = CrossEncoderRanker(model=str(folder), **_haystack(options))
        extra = {} if instruction is None else {"instruction": instruction}
        got = haystack_run(haystack_pipeline(ranker, CORPUS), QUERY, **extra)
        return got, _core(folder, name, _haystack_candidates(), 10, **call)
    if framework == "langchain":
        config = None if instruction is None else {
            "metadata": {"crossrank_instruction": instruction}
        }
        reranker = LangChainRerank(model=str(folder), top_n=3, **options)
        got = langchain_run(reranker, corpus_bm25(CORPUS), QUERY, CORPUS, config)
        return got, _core(folder, name, _bm25_candidates(), 3, **call)
    rerank = LlamaRerank(top_n=5, model=str(folder), **options)
    query = QUERY if instruction is None else InstructedQueryBundle(QUERY, instruction=instruction)
    got = llama_run(rerank, corpus_bm25(CORPUS), query, CORPUS)
    return got, _core(folder, name, _bm25_candidates(), 5, **call)


def _haystack(options: dict[str, Any]) -> dict[str, Any]:
    from haystack.utils import ComponentDevice

    return {**options, "device": ComponentDevice.from_str(options["device"])}


def test_every_family_goes_through_a_pipeline_and_each_framework_sees_the_three_kinds() -> None:
    assert sorted({name for _, name in CASES}) == sorted(PARITY_FAMILIES)
    causal = {"qwen3-causal", "qwen3-causal-old-paths", "zerank", "bge-gemma", "mxbai-v2",
              "qwen3-reranker-original"}  # fmt: skip
    templated_decoder = {"qwen3-seq-cls", "qwen3-seq-cls-no-pad"}
    encoder = {"bert", "bert-2labels", "bert-default-prompt", "xlmr", "xlmr-short-positions",
               "deberta", "modernbert", "electra", "remote-code"}  # fmt: skip
    for framework, names in SPREAD.items():
        for kind in (causal, templated_decoder, encoder):
            assert kind & set(names), (framework, kind)


@pytest.mark.parametrize(("framework", "name"), CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_a_family_in_a_real_pipeline_scores_as_the_core(
    family_kit: Any, framework: str, name: str
) -> None:
    folder = family_kit.path(name)
    got, want = _run(framework, folder, name)
    assert got  # the pipeline handed documents on
    same_hits(got, want)


# A model whose template reads the instruction, per framework.
INSTRUCTED = [("haystack", "qwen3-causal"), ("langchain", "qwen3-causal-old-paths"),
              ("llama_index", "qwen3-reranker-original")]  # fmt: skip


@pytest.mark.parametrize(("framework", "name"), INSTRUCTED, ids=[f for f, _ in INSTRUCTED])
def test_an_instruction_for_one_call_reaches_the_model_through_the_pipeline(
    family_kit: Any, framework: str, name: str
) -> None:
    """Haystack: ``pipeline.run({"ranker": {"instruction": ...}})``; LangChain: the run's
    metadata (``retriever.invoke(query, config={"metadata": {"crossrank_instruction": ...}})``);
    LlamaIndex: ``engine.query(InstructedQueryBundle(query, instruction=...))``."""
    folder = family_kit.path(name)
    got, want = _run(framework, folder, name, instruction=OTHER)
    same_hits(got, want)
    default, _ = _run(framework, folder, name)
    scores = dict((i, s) for i, s, _ in default)
    assert max(abs(s - scores[i]) for i, s, _ in got if i in scores) > 1e-3  # it was read


def test_a_langchain_retriever_bound_with_an_instruction_passes_it_on(family_kit: Any) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from pipeline_kit import LangChainBM25

    folder = family_kit.path("qwen3-causal")
    reranker = LangChainRerank(model=str(folder), top_n=8, **_options("qwen3-causal"))
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=LangChainBM25(bm25=corpus_bm25(CORPUS),
                                                               corpus=CORPUS)
    )  # fmt: skip
    bound = retriever.with_config(metadata={"crossrank_instruction": INSTRUCTION})
    got = [(d.metadata["id"], d.metadata["relevance_score"], None) for d in bound.invoke(QUERY)]
    same_hits(got, _core(folder, "qwen3-causal", _bm25_candidates(), 8, instruction=INSTRUCTION))
    with pytest.raises(TypeError, match="the run metadata's 'crossrank_instruction' must be a"):
        retriever.invoke(QUERY, config={"metadata": {"crossrank_instruction": 3}})


def test_haystack_prefixes_and_suffixes_land_inside_the_template_as_the_peer_puts_them(
    family_kit: Any,
) -> None:
    """The peer ranker scores ``(query_prefix + query + query_suffix, document_prefix + text +
    document_suffix)`` with sentence-transformers; with a chat template both become the query's
    and the document's message, inside the template."""
    folder = family_kit.path("qwen3-seq-cls")
    ranker = CrossEncoderRanker(
        model=str(folder),
        top_k=None,
        query_prefix="claim: ",
        query_suffix=" (true?)",
        document_prefix="abstract: ",
        document_suffix=" [end]",
        **_haystack(_options("qwen3-seq-cls")),
    )
    from haystack import Document

    docs = [Document(id=i, content=t) for i, t in CORPUS.items()]
    got = {d.id: d.score for d in ranker.run(query=QUERY, documents=docs)["documents"]}
    query = f"claim: {QUERY} (true?)"
    pairs = [(query, f"abstract: {t} [end]") for t in CORPUS.values()]
    peer = reference_of(load_cross_encoder(folder), pairs)
    np.testing.assert_allclose([got[i] for i in CORPUS], peer.scores, atol=1e-4, rtol=0)
    assert f"<Query>: {query}\n<Document>: abstract: " in peer.inputs[0]  # inside the template
    assert peer.inputs[0].endswith(" [end]" + QWEN3_SUFFIX)  # then the template's tail
