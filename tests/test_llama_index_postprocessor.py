"""Unit tests of the LlamaIndex postprocessor, offline with the tiny random model."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

import llama_index.postprocessor.crossrank_rerank as package
from crossrank import DEFAULT_MODEL, CrossEncoderScorer, ModelLoadError
from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank

QUERY = "what is the capital of france"
TEXTS = [
    "berlin is the capital of germany",
    "paris is the capital city of france",
    "the cat and the dog",
    "cancer risk in patients",
    "protein and gene study",
    "france and germany",
    "blood and heart",
]


def make_nodes(texts: list[str] = TEXTS) -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(id_=f"n{i}", text=text, metadata={"source": f"doc{i}"}),
            score=1.0 - i / 10,
        )
        for i, text in enumerate(texts)
    ]


def ids_and_scores(nodes: list[NodeWithScore]) -> list[tuple[str, float | None]]:
    return [(n.node.node_id, n.score) for n in nodes]


def core_ranking(
    scorer: CrossEncoderScorer, texts: list[str], top_k: int | None = None
) -> list[tuple[str, float]]:
    """The core's ranking of ``make_nodes(texts)``, on the text the adapter scores."""
    scored = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in make_nodes(texts)]
    return [(f"n{h.index}", h.score) for h in scorer.rank(QUERY, scored, top_k=top_k)]


@pytest.fixture
def rerank(tiny_scorer: CrossEncoderScorer) -> CrossEncoderRerank:
    return CrossEncoderRerank(scorer=tiny_scorer, top_n=3)


# ---------------------------------------------------------------------- public surface


def test_all_is_pinned() -> None:
    assert package.__all__ == ["CrossEncoderRerank"]
    assert CrossEncoderRerank.__module__ == "llama_index.postprocessor.crossrank_rerank.base"


def test_is_a_node_postprocessor_named_for_serialization(rerank: CrossEncoderRerank) -> None:
    assert isinstance(rerank, BaseNodePostprocessor)
    assert CrossEncoderRerank.class_name() == "CrossEncoderRerank"
    assert rerank.to_dict()["class_name"] == "CrossEncoderRerank"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    rerank = CrossEncoderRerank()
    assert rerank.model is None
    assert rerank.scorer.model_name == DEFAULT_MODEL
    assert (rerank.top_n, rerank.score_threshold, rerank.keep_retrieval_score) == (5, None, False)
    assert (rerank.activation, rerank.metadata_mode) == ("sigmoid", MetadataMode.EMBED)
    assert (rerank.batch_size, rerank.max_length, rerank.max_tokens_per_batch) == (32, None, None)
    assert (rerank.device, rerank.cache_dir, rerank.local_files_only) == (None, None, False)
    assert not rerank.scorer.is_loaded


def test_model_from_environment(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    monkeypatch.setenv("CROSSRANK_MODEL", str(tiny_model_dir))
    assert CrossEncoderRerank().scorer.model_name == str(tiny_model_dir)


def test_settings_reach_the_core_scorer(tiny_model_dir: Path, tmp_path: Path) -> None:
    rerank = CrossEncoderRerank(
        model=tiny_model_dir,
        activation="raw",
        batch_size=4,
        max_length=64,
        max_tokens_per_batch=256,
        device="cpu",
        cache_dir=tmp_path,
        local_files_only=True,
    )
    scorer = rerank.scorer
    assert (scorer.model_name, rerank.model) == (str(tiny_model_dir), str(tiny_model_dir))
    assert (scorer.activation, scorer.batch_size, scorer.max_tokens_per_batch) == ("raw", 4, 256)
    assert (scorer.device, scorer.cache_dir, scorer.local_files_only) == (
        "cpu",
        str(tmp_path),
        True,
    )
    assert rerank.cache_dir == str(tmp_path)
    assert scorer.max_length == 64


def test_ready_scorer_is_used_and_described(tiny_scorer: CrossEncoderScorer) -> None:
    rerank = CrossEncoderRerank(scorer=tiny_scorer)
    assert rerank.scorer is tiny_scorer
    assert rerank.model == tiny_scorer.model_name
    assert (rerank.activation, rerank.device) == ("sigmoid", "cpu")
    assert "scorer" not in rerank.to_dict()


def test_serialization_round_trip(tiny_model_dir: Path) -> None:
    rerank = CrossEncoderRerank(
        model=tiny_model_dir, top_n=2, score_threshold=0.1, metadata_mode=MetadataMode.LLM
    )
    data = json.loads(json.dumps(rerank.to_dict()))
    assert "callback_manager" not in data
    again = CrossEncoderRerank.from_dict(data)
    assert again.to_dict() == rerank.to_dict()
    assert again.metadata_mode is MetadataMode.LLM
    assert CrossEncoderRerank.from_json(rerank.to_json()).to_dict() == rerank.to_dict()


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"top_n": 0}, ValueError, "top_n must be >= 1, got 0"),
        ({"top_n": True}, TypeError, "top_n must be an int"),
        ({"top_n": None}, TypeError, "top_n must be an int"),
        ({"score_threshold": math.nan}, ValueError, "score_threshold must be a number"),
        ({"score_threshold": "0.5"}, TypeError, "score_threshold must be a number"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"max_length": -1}, ValueError, "max_length must be >= 1"),
        ({"max_tokens_per_batch": 0}, ValueError, "max_tokens_per_batch must be >= 1"),
        ({"activation": "softmax"}, ValueError, "activation must be one of"),
        ({"model": " "}, TypeError, "model must be a model id or a folder path"),
    ],
)
def test_constructor_validates_up_front(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        CrossEncoderRerank(**kwargs)


def test_scorer_and_model_settings_are_exclusive(tiny_scorer: CrossEncoderScorer) -> None:
    with pytest.raises(ValueError, match=r"either scorer or the model settings.*'device'"):
        CrossEncoderRerank(scorer=tiny_scorer, device="cpu")
    with pytest.raises(TypeError, match=r"scorer must be a crossrank\.CrossEncoderScorer"):
        CrossEncoderRerank(scorer="cross-encoder/x")  # type: ignore[arg-type]


def test_missing_query_bundle_is_a_clear_value_error(rerank: CrossEncoderRerank) -> None:
    with pytest.raises(ValueError, match=r"needs the query, got query_bundle=None"):
        rerank.postprocess_nodes(make_nodes())
    with pytest.raises(ValueError, match=r"needs the query"):
        rerank.postprocess_nodes([])
    with pytest.raises(ValueError, match=r"needs the query"):
        asyncio.run(rerank.apostprocess_nodes(make_nodes()))


def test_bad_inputs_say_what_to_do(rerank: CrossEncoderRerank) -> None:
    with pytest.raises(ValueError, match="query must contain non-whitespace text"):
        rerank.postprocess_nodes(make_nodes(), query_str="  ")
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a NodeWithScore, got TextNode"):
        rerank.postprocess_nodes([TextNode(text="x")], query_str=QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query_bundle must be a QueryBundle, got str"):
        rerank.postprocess_nodes(make_nodes(), query_bundle=QUERY)  # type: ignore[arg-type]
    rerank.top_n = 0
    with pytest.raises(ValueError, match="top_n must be >= 1, got 0"):
        rerank.postprocess_nodes(make_nodes(), query_str=QUERY)


# ---------------------------------------------------------------------- behaviour


def test_model_loads_lazily(tiny_model_dir: Path) -> None:
    rerank = CrossEncoderRerank(model=tiny_model_dir, device="cpu")
    assert not rerank.scorer.is_loaded
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    assert asyncio.run(rerank.apostprocess_nodes([], query_str=QUERY)) == []
    assert not rerank.scorer.is_loaded
    rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert rerank.scorer.is_loaded


def test_missing_model_fails_on_first_use_not_in_constructor(tmp_path: Path) -> None:
    rerank = CrossEncoderRerank(model=tmp_path / "no-such-model", local_files_only=True)
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(ModelLoadError, match="no-such-model"):
        rerank.postprocess_nodes(make_nodes(), query_str=QUERY)


def test_scores_and_order_equal_core_rank(
    rerank: CrossEncoderRerank, tiny_scorer: CrossEncoderScorer
) -> None:
    result = rerank.postprocess_nodes(make_nodes(), query_bundle=QueryBundle(QUERY))
    assert ids_and_scores(result) == core_ranking(tiny_scorer, TEXTS, top_k=3)
    rerank.top_n = len(TEXTS)
    result = rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert ids_and_scores(result) == core_ranking(tiny_scorer, TEXTS)


def test_model_path_and_raw_activation_equal_core(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    core = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw")
    rerank = CrossEncoderRerank(model=tiny_model_dir, device="cpu", activation="raw", top_n=7)
    result = rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert ids_and_scores(result) == core_ranking(core, TEXTS)
    sigmoid = dict(core_ranking(tiny_scorer, TEXTS))
    for node_id, logit in ids_and_scores(result):
        assert 1 / (1 + math.exp(-(logit or 0.0))) == pytest.approx(sigmoid[node_id])


def test_scores_are_python_floats_and_json_serialisable(rerank: CrossEncoderRerank) -> None:
    result = rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert result
    assert all(type(n.score) is float for n in result)
    assert all(0.0 < n.score < 1.0 for n in result if n.score is not None)  # sigmoid default
    json.dumps([n.score for n in result])
    json.dumps([n.to_dict() for n in result])


def test_top_n_and_threshold(rerank: CrossEncoderRerank, tiny_scorer: CrossEncoderScorer) -> None:
    scores = [score for _, score in core_ranking(tiny_scorer, TEXTS)]
    rerank.top_n = 2
    assert len(rerank.postprocess_nodes(make_nodes(), query_str=QUERY)) == 2
    rerank.top_n = 7
    rerank.score_threshold = scores[3]
    kept = rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert [n.score for n in kept] == scores[:4]
    rerank.score_threshold = scores[0] + 1e-6
    assert rerank.postprocess_nodes(make_nodes(), query_str=QUERY) == []


def test_inputs_are_never_mutated(tiny_scorer: CrossEncoderScorer) -> None:
    rerank = CrossEncoderRerank(scorer=tiny_scorer, top_n=7, keep_retrieval_score=True)
    nodes = make_nodes()
    before = [n.model_dump() for n in nodes]
    metadata_dicts = [n.node.metadata for n in nodes]
    result = rerank.postprocess_nodes(nodes, query_str=QUERY)
    assert [n.model_dump() for n in nodes] == before
    assert all(n.node.metadata is m for n, m in zip(nodes, metadata_dicts, strict=True))
    assert all("retrieval_score" not in m for m in metadata_dicts)
    originals = (
        {id(n) for n in nodes} | {id(n.node) for n in nodes} | {id(m) for m in metadata_dicts}
    )
    for out in result:
        assert not {id(out), id(out.node), id(out.node.metadata)} & originals
        assert id(out.node.excluded_llm_metadata_keys) not in {
            id(n.node.excluded_llm_metadata_keys) for n in nodes
        }
    # The copies keep everything but the score.
    by_id = {n.node.node_id: n for n in nodes}
    for out in result:
        original = by_id[out.node.node_id].node
        assert out.node.get_content(MetadataMode.NONE) == original.get_content(MetadataMode.NONE)
        assert out.node.metadata["source"] == original.metadata["source"]


def test_keep_retrieval_score_reaches_neither_llm_nor_embedder(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    nodes = make_nodes()
    nodes[0].node.excluded_llm_metadata_keys = ["source"]
    nodes[1].score = np.float32(0.25)  # assigned: not validated, stays numpy
    rerank = CrossEncoderRerank(scorer=tiny_scorer, top_n=7, keep_retrieval_score=True)
    result = {n.node.node_id: n for n in rerank.postprocess_nodes(nodes, query_str=QUERY)}
    for original in nodes:
        copy = result[original.node.node_id].node
        assert copy.metadata["retrieval_score"] == pytest.approx(float(original.score or 0))
        assert type(copy.metadata["retrieval_score"]) is float
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            assert "retrieval_score" not in copy.get_content(metadata_mode=mode)
        assert "retrieval_score" in copy.get_content(metadata_mode=MetadataMode.ALL)
        assert copy.excluded_embed_metadata_keys == ["retrieval_score"]
    assert result["n0"].node.excluded_llm_metadata_keys == ["source", "retrieval_score"]
    assert nodes[0].node.excluded_llm_metadata_keys == ["source"]
    json.dumps([n.node.metadata for n in result.values()])


def test_keep_retrieval_score_off_adds_nothing(rerank: CrossEncoderRerank) -> None:
    for out in rerank.postprocess_nodes(make_nodes(), query_str=QUERY):
        assert "retrieval_score" not in out.node.metadata
        assert out.node.excluded_llm_metadata_keys == []
        assert out.node.excluded_embed_metadata_keys == []


def test_keep_retrieval_score_none_score(tiny_scorer: CrossEncoderScorer) -> None:
    rerank = CrossEncoderRerank(scorer=tiny_scorer, keep_retrieval_score=True)
    nodes = [NodeWithScore(node=TextNode(text="paris"))]
    [out] = rerank.postprocess_nodes(nodes, query_str=QUERY)
    assert out.node.metadata["retrieval_score"] is None


@pytest.mark.parametrize(
    "mode", [MetadataMode.EMBED, MetadataMode.LLM, MetadataMode.ALL, MetadataMode.NONE]
)
def test_metadata_mode_selects_the_scored_text(
    tiny_scorer: CrossEncoderScorer, mode: MetadataMode
) -> None:
    node = TextNode(
        id_="n0",
        text="the cat and the dog",
        metadata={"title": "paris capital of france", "secret": "berlin germany"},
        excluded_embed_metadata_keys=["secret"],
        excluded_llm_metadata_keys=["title"],
    )
    rerank = CrossEncoderRerank(scorer=tiny_scorer, metadata_mode=mode)
    [out] = rerank.postprocess_nodes([NodeWithScore(node=node)], query_str=QUERY)
    text = node.get_content(metadata_mode=mode)
    assert out.score == tiny_scorer.score(QUERY, [text])[0]
    assert len({node.get_content(metadata_mode=m) for m in MetadataMode}) == 4


def test_nodes_without_content_are_skipped_and_logged(
    rerank: CrossEncoderRerank, tiny_scorer: CrossEncoderScorer, caplog: pytest.LogCaptureFixture
) -> None:
    texts = ["paris is the capital", "", "   ", "berlin"]
    nodes = make_nodes(texts)  # every node has metadata: only its own content counts
    rerank.top_n = 4
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        result = rerank.postprocess_nodes(nodes, query_str=QUERY)
    scored = [nodes[i].node.get_content(metadata_mode=MetadataMode.EMBED) for i in (0, 3)]
    assert ids_and_scores(result) == [
        (f"n{(0, 3)[h.index]}", h.score) for h in tiny_scorer.rank(QUERY, scored)
    ]
    assert "2 of 4 candidates have no text" in caplog.text
    only_empty = make_nodes(["", " \n"])
    assert rerank.postprocess_nodes(only_empty, query_str=QUERY) == []


def test_query_engine_uses_the_reranked_nodes(rerank: CrossEncoderRerank) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.retrievers import BaseRetriever

    class ListRetriever(BaseRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return make_nodes()

    engine = RetrieverQueryEngine.from_args(
        ListRetriever(), llm=MockLLM(max_tokens=5), node_postprocessors=[rerank]
    )
    response = engine.query(QUERY)
    expected = rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert ids_and_scores(response.source_nodes) == ids_and_scores(expected)


# ---------------------------------------------------------------------- async


@pytest.mark.asyncio
async def test_async_concurrent_calls_equal_sequential(tiny_scorer: CrossEncoderScorer) -> None:
    rerank = CrossEncoderRerank(scorer=tiny_scorer, top_n=4)
    queries = [f"{QUERY} {word}" for word in [*TEXTS, "cells", "drug", "dose"]]
    sequential = [
        ids_and_scores(rerank.postprocess_nodes(make_nodes(), query_str=q)) for q in queries
    ]
    concurrent = await asyncio.gather(
        *(rerank.apostprocess_nodes(make_nodes(), query_str=q) for q in queries)
    )
    assert len(queries) == 10
    assert [ids_and_scores(r) for r in concurrent] == sequential


@pytest.mark.asyncio
async def test_async_scores_off_the_event_loop(
    tiny_scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    original = tiny_scorer.rerank

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_scorer, "rerank", spy)
    rerank = CrossEncoderRerank(scorer=tiny_scorer)
    result = await rerank.apostprocess_nodes(make_nodes(), query_str=QUERY)
    assert threads and threading.get_ident() not in threads
    monkeypatch.undo()
    assert ids_and_scores(result) == core_ranking(tiny_scorer, TEXTS, top_k=5)


# ---------------------------------------------------------------------- instrumentation


class _Collector(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Collector"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def collector() -> Iterator[_Collector]:
    handler = _Collector()
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        yield handler
    finally:
        root.event_handlers.remove(handler)


def _rerank_events(collector: _Collector) -> list[BaseEvent]:
    return [e for e in collector.events if isinstance(e, (ReRankStartEvent, ReRankEndEvent))]


@pytest.mark.parametrize("use_async", [False, True])
def test_instrumentation_events(
    rerank: CrossEncoderRerank, collector: _Collector, use_async: bool
) -> None:
    nodes = make_nodes()
    bundle = QueryBundle(QUERY)
    if use_async:
        result = asyncio.run(rerank.apostprocess_nodes(nodes, query_bundle=bundle))
    else:
        result = rerank.postprocess_nodes(nodes, query_bundle=bundle)
    start, end = _rerank_events(collector)
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.query is bundle
    assert start.nodes == nodes
    assert (start.top_n, start.model_name) == (3, rerank.scorer.model_name)
    assert ids_and_scores(end.nodes) == ids_and_scores(result)
    # Both events belong to the postprocessor's dispatcher span.
    method = "_apostprocess_nodes" if use_async else "_postprocess_nodes"
    assert start.span_id == end.span_id
    assert (start.span_id or "").startswith(f"CrossEncoderRerank.{method}-")


def test_instrumentation_for_empty_input(rerank: CrossEncoderRerank, collector: _Collector) -> None:
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    start, end = _rerank_events(collector)
    assert start.nodes == [] and end.nodes == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("use_async", [False, True])
def test_callback_reranking_event(tiny_scorer: CrossEncoderScorer, use_async: bool) -> None:
    debug = LlamaDebugHandler(print_trace_on_end=False)
    rerank = CrossEncoderRerank(
        scorer=tiny_scorer, top_n=2, callback_manager=CallbackManager([debug])
    )
    nodes = make_nodes()
    if use_async:
        result = asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY))
    else:
        result = rerank.postprocess_nodes(nodes, query_str=QUERY)
    [(start, end)] = debug.get_event_pairs(CBEventType.RERANKING)
    assert start.payload is not None and end.payload is not None
    assert start.payload[EventPayload.NODES] == nodes
    assert start.payload[EventPayload.MODEL_NAME] == tiny_scorer.model_name
    assert start.payload[EventPayload.QUERY_STR] == QUERY
    assert start.payload[EventPayload.TOP_K] == 2
    assert ids_and_scores(end.payload[EventPayload.NODES]) == ids_and_scores(result)


# ---------------------------------------------------------------------- missing extra


def test_missing_llama_index_names_the_extra() -> None:
    src = Path(package.__file__).resolve().parents[3]
    code = (
        "import sys\n"
        "sys.modules['llama_index.core'] = None\n"
        "try:\n"
        "    from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank\n"
        "except ImportError as e:\n"
        "    assert isinstance(e.__cause__, ImportError), repr(e.__cause__)\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('imported without llama_index.core')\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "The LlamaIndex postprocessor needs an optional dependency" in done.stdout
    assert 'pip install "crossrank[llama-index]"' in done.stdout


def test_extra_named_in_the_message_exists() -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert any(dep.startswith("llama-index-core") for dep in extras["llama-index"])
