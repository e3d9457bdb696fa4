"""Unit tests of the LlamaIndex postprocessor, offline with the tiny random model."""

from __future__ import annotations

import asyncio
import json
import logging
import random
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
from crossrank import DEFAULT_MODEL, CrossEncoderScorer, ModelLoadError, passage_span
from crossrank.calibration import Calibration, save_calibration
from crossrank.runtimes.devices import resolve_device
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
    assert package.__all__ == ["CrossEncoderRerank", "InstructedQueryBundle"]
    assert CrossEncoderRerank.__module__ == "llama_index.postprocessor.crossrank_rerank.base"


def test_is_a_node_postprocessor_named_for_serialization(rerank: CrossEncoderRerank) -> None:
    assert isinstance(rerank, BaseNodePostprocessor)
    assert CrossEncoderRerank.class_name() == "CrossEncoderRerank"
    assert rerank.to_dict()["class_name"] == "CrossEncoderRerank"


def test_framework_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    rerank = CrossEncoderRerank()
    assert rerank.model == rerank.scorer.model_name == DEFAULT_MODEL  # the model in use
    assert (rerank.top_n, rerank.score_threshold, rerank.keep_retrieval_score) == (5, None, False)
    assert (rerank.min_relative_score, rerank.token_budget, rerank.passage_only) == (
        None,
        None,
        False,
    )
    assert rerank.metadata_mode is MetadataMode.EMBED
    assert not rerank.scorer.is_loaded


def test_model_from_environment(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    monkeypatch.setenv("CROSSRANK_MODEL", str(tiny_model_dir))
    assert CrossEncoderRerank().scorer.model_name == str(tiny_model_dir)


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
        ({"top_n": True}, TypeError, "top_n must be an int"),
        ({"top_n": None}, TypeError, "top_n must be an int >= 1, got None; use a large top_n"),
        ({"score_threshold": "0.5"}, TypeError, "score_threshold must be a number"),
        ({"passage_only": "yes"}, TypeError, "passage_only must be True or False"),
        (
            {"activation": "calibrated", "calibration": Calibration("temperature", 0.5)},
            TypeError,
            "calibration must be a file or folder path.*pass scorer=",
        ),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"model": " "}, TypeError, "model must be a model id or a folder path"),
    ],
)
def test_constructor_validates_up_front(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        CrossEncoderRerank(**kwargs)


def test_scorer_and_model_settings_are_exclusive(tiny_scorer: CrossEncoderScorer) -> None:
    with pytest.raises(ValueError, match=r"either scorer or the scorer settings.*device='cpu'"):
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
    # Both events belong to the postprocessor's dispatcher span (async: LlamaIndex runs the
    # same method in a worker thread).
    assert start.span_id == end.span_id
    assert (start.span_id or "").startswith("CrossEncoderRerank._postprocess_nodes-")


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


# ---------------------------------------------------------------------- long documents,
# evidence budget, passage hand-off

_WORDS = (
    "the a of and in cat dog cell cells protein gene cancer risk study patients treatment "
    "effect blood brain heart drug dose paris france berlin germany capital city"
).split()


def long_text(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def make_long_nodes() -> list[NodeWithScore]:
    """Nodes longer than the tiny model reads (128 tokens), with metadata and offsets."""
    sizes = [300, 40, 220, 380, 12, 150]
    nodes = []
    for i, size in enumerate(sizes):
        text = long_text(i, size)
        nodes.append(
            NodeWithScore(
                node=TextNode(
                    id_=f"n{i}",
                    text=text,
                    metadata={"title": f"study {i} of the heart", "source": f"doc{i}"},
                    start_char_idx=1000 * i,
                    end_char_idx=1000 * i + len(text),
                ),
                score=1.0 - i / 10,
            )
        )
    return nodes


def scored_texts(nodes: list[NodeWithScore], mode: MetadataMode = MetadataMode.EMBED) -> list[str]:
    return [n.node.get_content(metadata_mode=mode) for n in nodes]


@pytest.fixture(scope="module")
def chunk_scorer(tiny_model_dir: Path) -> CrossEncoderScorer:
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu", long_documents="chunk")
    scorer.warm_up()
    return scorer


@pytest.fixture
def calibration_file(tmp_path: Path, tiny_model_dir: Path) -> Path:
    return save_calibration(
        tmp_path / "calibration.json",
        {"platt": Calibration("platt", 2.0, -1.0)},
        method="platt",
        model=str(tiny_model_dir),
    )


def test_ready_scorer_describes_its_long_document_and_calibration_settings(
    tiny_model_dir: Path, calibration_file: Path
) -> None:
    scorer = CrossEncoderScorer(
        tiny_model_dir,
        device="cpu",
        activation="calibrated",
        calibration=calibration_file,
        long_documents="chunk",
        max_windows=4,
        window_stride=10,
        aggregation="first-weighted",
        top_windows=5,
    )
    rerank = CrossEncoderRerank(scorer=scorer, token_budget=50, passage_only=True)
    assert rerank.scorer is scorer
    assert (rerank.long_documents, rerank.max_windows, rerank.window_stride) == ("chunk", 4, 10)
    assert (rerank.aggregation, rerank.top_windows) == ("first-weighted", 5)
    assert (rerank.activation, rerank.calibration) == ("calibrated", str(calibration_file))
    # Saved without the scorer, it rebuilds an equal one.
    again = CrossEncoderRerank.from_dict(json.loads(json.dumps(rerank.to_dict())))
    assert again.to_dict() == rerank.to_dict()
    assert again.scorer is not scorer
    assert again.scorer.calibration == scorer.calibration
    assert (again.scorer.long_documents, again.scorer.aggregation) == ("chunk", "first-weighted")


@pytest.mark.parametrize(
    "setting",
    [
        {"long_documents": "chunk"},
        {"max_windows": 2},
        {"window_stride": 4},
        {"aggregation": "mean-top"},
        {"top_windows": 3},
        {"calibration": "calibration.json"},
    ],
)
def test_scorer_settings_clash_with_a_ready_scorer(
    tiny_scorer: CrossEncoderScorer, setting: dict[str, Any]
) -> None:
    [name] = setting
    with pytest.raises(ValueError, match=rf"either scorer or the scorer settings.*{name}="):
        CrossEncoderRerank(scorer=tiny_scorer, **setting)


def test_selection_errors_at_call_time_come_from_the_core(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        CrossEncoderRerank(
            model=tiny_model_dir, device="cpu", activation="raw", min_relative_score=0.5
        )  # at construction, before any model loads
    raw = CrossEncoderRerank(model=tiny_model_dir, device="cpu", activation="raw")
    raw.min_relative_score = 0.5  # fields are read on each call: the core checks again
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        raw.postprocess_nodes(make_nodes(), query_str=QUERY)
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        asyncio.run(raw.apostprocess_nodes(make_nodes(), query_str=QUERY))
    rerank = CrossEncoderRerank(model=tiny_model_dir, device="cpu")
    rerank.token_budget = 0  # fields are read on each call, and checked by the core
    with pytest.raises(ValueError, match="token_budget must be >= 1, got 0"):
        rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    rerank.token_budget = None
    rerank.min_relative_score = 2.0
    with pytest.raises(ValueError, match=r"min_relative_score must be in \[0, 1\], got 2"):
        rerank.postprocess_nodes(make_nodes(), query_str=QUERY)


#: ``to_json()`` of three postprocessors, written by the version before the settings were
#: derived from the scorer (git 7e24553): many options set; ONNX and folders; all defaults.
SAVED_V1 = Path(__file__).resolve().parent / "data" / "llama_index_saved_v1.json"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_configs_saved_by_the_first_version_still_load(
    index: int, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    saved = json.loads(SAVED_V1.read_text(encoding="utf-8"))[index]
    assert saved["class_name"] == "CrossEncoderRerank"
    data = CrossEncoderRerank.from_dict(saved).to_dict()
    for key, value in saved.items():
        if key == "model" and value is None:
            assert data[key] == DEFAULT_MODEL  # written as None: the default at load time
        elif key == "device" and value is None:
            assert data[key] == ("cpu" if saved["backend"] == "onnx" else str(resolve_device(None)))
        else:
            assert data[key] == value, key
    # And it reranks: the same config on a local model.
    local = {**saved, "model": str(tiny_model_dir), "onnx_cache_dir": str(tmp_path)}
    local["max_length"] = None if saved["max_length"] is None else 64  # the tiny model reads 128
    rerank = CrossEncoderRerank.from_dict(local)
    result = rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert 1 <= len(result) <= saved["top_n"]
    assert all(type(n.score) is float for n in result)


def test_configs_saved_without_the_later_options_still_load(tiny_model_dir: Path) -> None:
    later = {
        "min_relative_score",
        "token_budget",
        "passage_only",
        "calibration",
        "long_documents",
        "max_windows",
        "window_stride",
        "aggregation",
        "top_windows",
        "revision",
        "trust_remote_code",
        "model_kwargs",
        "tokenizer_kwargs",
        "config_kwargs",
    }
    data = CrossEncoderRerank(model=tiny_model_dir, top_n=3).to_dict()
    old = {key: value for key, value in data.items() if key not in later}
    assert len(old) < len(data)
    again = CrossEncoderRerank.from_dict(old)
    assert again.to_dict() == data
    assert (again.scorer.long_documents, again.passage_only, again.token_budget) == (
        "truncate",
        False,
        None,
    )


@pytest.mark.parametrize("mode", ["truncate", "chunk"])
@pytest.mark.parametrize("passage_only", [False, True])
def test_token_budget_is_never_exceeded(
    chunk_scorer: CrossEncoderScorer,
    tiny_scorer: CrossEncoderScorer,
    mode: str,
    passage_only: bool,
) -> None:
    scorer = chunk_scorer if mode == "chunk" else tiny_scorer
    nodes = make_long_nodes()
    everything = CrossEncoderRerank(scorer=scorer, top_n=6, passage_only=passage_only)
    ranking = [n.node.node_id for n in everything.postprocess_nodes(nodes, query_str=QUERY)]
    for budget in (1, 60, 150, 300, 700, 5000):
        rerank = CrossEncoderRerank(
            scorer=scorer, top_n=6, token_budget=budget, passage_only=passage_only
        )
        result = rerank.postprocess_nodes(nodes, query_str=QUERY)
        # What is handed on: the passages with passage_only, else the scored texts.
        if passage_only:
            handed = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in result]
        else:
            handed = scored_texts(result)
        assert sum(scorer.count_tokens(handed) if handed else []) <= budget
        assert [n.node.node_id for n in result] == ranking[: len(result)]  # best-first prefix
        if budget == 5000:
            assert len(result) == 6
    tight = CrossEncoderRerank(scorer=scorer, top_n=6, token_budget=300, passage_only=passage_only)
    assert 1 <= len(tight.postprocess_nodes(nodes, query_str=QUERY)) < 6


def test_passage_budget_counts_passages_not_whole_nodes(chunk_scorer: CrossEncoderScorer) -> None:
    nodes = make_long_nodes()
    whole = CrossEncoderRerank(scorer=chunk_scorer, top_n=6, token_budget=400)
    passages = CrossEncoderRerank(scorer=chunk_scorer, top_n=6, token_budget=400, passage_only=True)
    assert len(passages.postprocess_nodes(nodes, query_str=QUERY)) > len(
        whole.postprocess_nodes(nodes, query_str=QUERY)
    )


def _check_passages(
    result: list[NodeWithScore],
    nodes: list[NodeWithScore],
    scorer: CrossEncoderScorer,
    mode: MetadataMode = MetadataMode.EMBED,
) -> None:
    """Each returned text is the core's best span mapped into the node's own text."""
    texts = scored_texts(nodes, mode)
    hits = {f"n{h.index}": h for h in scorer.rank(QUERY, texts)}
    by_id = {n.node.node_id: n.node for n in nodes}
    for out in result:
        original = by_id[out.node.node_id]
        content = original.get_content(metadata_mode=MetadataMode.NONE)
        hit = hits[out.node.node_id]
        start, end = out.node.metadata["crossrank_span"]
        assert (start, end) == passage_span(texts[int(out.node.node_id[1:])], content, hit.span)
        assert out.node.get_content(metadata_mode=MetadataMode.NONE) == content[start:end]
        assert out.node.text == content[start:end]
        assert out.score == hit.score
        # The span is handed on in metadata but never fed to the LLM or the embedder.
        for hidden in (MetadataMode.LLM, MetadataMode.EMBED):
            assert "crossrank_span" not in out.node.get_content(metadata_mode=hidden)
        assert "crossrank_span" in out.node.get_content(metadata_mode=MetadataMode.ALL)
        assert out.node.metadata["title"] == original.metadata["title"]
        assert out.node.start_char_idx == (original.start_char_idx or 0) + start
        assert out.node.end_char_idx == (original.start_char_idx or 0) + end


@pytest.mark.parametrize(
    "mode", [MetadataMode.EMBED, MetadataMode.LLM, MetadataMode.ALL, MetadataMode.NONE]
)
def test_passage_only_in_chunk_mode_hands_on_the_best_window(
    chunk_scorer: CrossEncoderScorer, mode: MetadataMode
) -> None:
    nodes = make_long_nodes()
    before = [n.model_dump() for n in nodes]
    rerank = CrossEncoderRerank(scorer=chunk_scorer, top_n=6, passage_only=True, metadata_mode=mode)
    result = rerank.postprocess_nodes(nodes, query_str=QUERY)
    assert len(result) == 6
    _check_passages(result, nodes, chunk_scorer, mode)
    lengths = {n.node.node_id: len(n.node.text) for n in result}
    for original in nodes:
        if chunk_scorer.count_tokens([original.node.text])[0] > 200:
            assert lengths[original.node.node_id] < len(original.node.text) / 2
    assert lengths["n4"] == len(nodes[4].node.text)  # short: the whole text
    assert [n.model_dump() for n in nodes] == before  # the caller's nodes are untouched
    assert all("crossrank_span" not in n.node.metadata for n in nodes)
    assert all(n.node.excluded_llm_metadata_keys == [] for n in nodes)


def test_passage_only_in_truncate_mode_hands_on_the_part_read(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    nodes = make_long_nodes()
    rerank = CrossEncoderRerank(
        scorer=tiny_scorer, top_n=6, passage_only=True, keep_retrieval_score=True
    )
    result = rerank.postprocess_nodes(nodes, query_str=QUERY)
    _check_passages(result, nodes, tiny_scorer)
    for out in result:
        assert out.node.metadata["crossrank_span"][0] == 0  # the model reads from the start
        assert out.node.metadata["retrieval_score"] is not None
        assert out.node.excluded_llm_metadata_keys == ["retrieval_score", "crossrank_span"]
        assert out.node.excluded_embed_metadata_keys == ["retrieval_score", "crossrank_span"]
    spans = {n.node.node_id: n.node.metadata["crossrank_span"] for n in result}
    assert spans["n3"][1] < len(nodes[3].node.text)  # cut
    assert spans["n4"] == [0, len(nodes[4].node.text)]  # read whole


def test_passage_only_keeps_the_whole_text_when_only_metadata_was_read(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    node = TextNode(
        id_="n0", text="paris is the capital of france", metadata={"title": long_text(7, 200)}
    )
    rerank = CrossEncoderRerank(scorer=tiny_scorer, passage_only=True)
    [out] = rerank.postprocess_nodes([NodeWithScore(node=node)], query_str=QUERY)
    assert out.node.text == node.text
    assert "crossrank_span" not in out.node.metadata
    assert out.node.excluded_llm_metadata_keys == []


def test_passage_only_with_whitespace_around_the_text(tiny_scorer: CrossEncoderScorer) -> None:
    # LlamaIndex strips the text-with-metadata, so the scored text lacks the trailing "\n".
    text = "\n  paris is the capital of france\n\n"
    nodes = [NodeWithScore(node=TextNode(id_="n0", text=text, metadata={"source": "a"}))]
    rerank = CrossEncoderRerank(scorer=tiny_scorer, passage_only=True)
    [out] = rerank.postprocess_nodes(nodes, query_str=QUERY)
    start, end = out.node.metadata["crossrank_span"]
    assert out.node.text == text[start:end] == "paris is the capital of france"
    assert nodes[0].node.text == text


def test_passage_only_with_documents(chunk_scorer: CrossEncoderScorer) -> None:
    from llama_index.core.schema import Document

    docs = [
        NodeWithScore(node=Document(id_=f"n{i}", text=long_text(i, 250), metadata={"k": i}))
        for i in range(3)
    ]
    rerank = CrossEncoderRerank(scorer=chunk_scorer, top_n=3, passage_only=True)
    result = rerank.postprocess_nodes(docs, query_str=QUERY)
    by_id = {d.node.node_id: d.node for d in docs}
    for out in result:
        assert isinstance(out.node, Document)
        start, end = out.node.metadata["crossrank_span"]
        assert out.node.text == by_id[out.node.node_id].text[start:end]
        assert len(out.node.text) < len(by_id[out.node.node_id].text)
    assert all(len(d.node.text) > 1000 for d in docs)


@pytest.mark.parametrize("use_async", [False, True])
def test_instrumentation_with_passages(
    chunk_scorer: CrossEncoderScorer, collector: _Collector, use_async: bool
) -> None:
    rerank = CrossEncoderRerank(scorer=chunk_scorer, top_n=2, passage_only=True)
    nodes = make_long_nodes()
    if use_async:
        result = asyncio.run(rerank.apostprocess_nodes(nodes, query_str=QUERY))
    else:
        result = rerank.postprocess_nodes(nodes, query_str=QUERY)
    start, end = _rerank_events(collector)
    assert start.nodes == nodes  # type: ignore[attr-defined]
    assert [n.node.text for n in end.nodes] == [n.node.text for n in result]  # type: ignore[attr-defined]
    assert all("crossrank_span" in n.node.metadata for n in end.nodes)  # type: ignore[attr-defined]


def test_fusion_keeps_the_model_score_out_of_the_llm_and_embedder_text(
    tiny_model_dir: Path,
) -> None:
    nodes = make_nodes()
    rerank = CrossEncoderRerank(model=str(tiny_model_dir), top_n=7, fusion="linear",
                                fusion_weight=0.3, keep_retrieval_score=True)
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    want = rerank.scorer.rerank(QUERY, texts, first_stage_scores=[n.score for n in nodes])
    assert ids_and_scores(out) == [(f"n{h.index}", h.score) for h in want.hits]
    for got, hit in zip(out, want.hits, strict=True):
        copy = got.node
        assert copy.metadata["crossrank_model_score"] == hit.model_score
        assert copy.metadata["retrieval_score"] == nodes[hit.index].score  # the input's
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            assert "crossrank_model_score" not in copy.get_content(metadata_mode=mode)
        assert copy.excluded_llm_metadata_keys == ["retrieval_score", "crossrank_model_score"]
    assert all(n.node.metadata == {"source": f"doc{i}"} for i, n in enumerate(nodes))
