"""Unit tests for the LangChain compressor (langchain_crossrank.CrossEncoderRerank), tiny model."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from pydantic import PrivateAttr

import langchain_crossrank
from crossrank import DEFAULT_MODEL, CrossEncoderScorer, passage_span, select
from crossrank.calibration import CALIBRATION_FILE, Calibration, save_calibration
from langchain_crossrank import CrossEncoderRerank

ROOT = Path(__file__).resolve().parents[1]
QUERY = "what is the capital of france"


def make_docs() -> list[Document]:
    texts = [
        "paris is the capital of france",
        "berlin is the capital city of germany",
        "the cat and the dog",
        "cancer risk in patients",
        "blood and brain and heart",
        "a study of protein and gene",
    ]
    return [
        Document(page_content=t, metadata={"id": f"d{i}", "title": f"title {i}", "tags": ["x"]})
        for i, t in enumerate(texts)
    ]


class ListRetriever(BaseRetriever):
    """Returns the same Documents for every query."""

    documents: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return list(self.documents)


def core_top(
    scorer: CrossEncoderScorer, texts: list[str], **kwargs: Any
) -> list[tuple[int, float]]:
    return [(h.index, h.score) for h in scorer.rank(QUERY, texts, **kwargs)]


def ids_scores(docs: list[Document]) -> list[tuple[int, float]]:
    return [(int(d.metadata["id"][1:]), d.metadata["relevance_score"]) for d in docs]


# ---------------------------------------------------------------------- public surface


def test_all_is_pinned() -> None:
    assert langchain_crossrank.__all__ == ["CrossEncoderRerank"]
    assert (Path(langchain_crossrank.__file__).parent / "py.typed").is_file()


def test_is_a_document_compressor() -> None:
    assert issubclass(CrossEncoderRerank, BaseDocumentCompressor)
    assert CrossEncoderRerank.__module__ == "langchain_crossrank.rerank"


def test_every_field_is_documented() -> None:
    for name, field in CrossEncoderRerank.model_fields.items():
        assert field.description, name


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    reranker = CrossEncoderRerank()
    assert reranker.top_n == 3
    assert reranker.score_threshold is None
    assert reranker.activation == "sigmoid"
    assert reranker.embedding_separator == "\n"
    assert reranker.batch_size == 32
    assert reranker.scorer.model_name == DEFAULT_MODEL
    assert not reranker.scorer.is_loaded


def test_model_from_environment(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    monkeypatch.setenv("CROSSRANK_MODEL", str(tiny_model_dir))
    assert CrossEncoderRerank().scorer.model_name == str(tiny_model_dir)


def test_options_reach_the_scorer(tiny_model_dir: Path, tmp_path: Path) -> None:
    reranker = CrossEncoderRerank(
        model=tiny_model_dir,
        activation="raw",
        batch_size=4,
        max_length=64,
        max_tokens_per_batch=512,
        device="cpu",
        cache_dir=tmp_path,
        local_files_only=True,
    )
    scorer = reranker.scorer
    assert scorer.model_name == str(tiny_model_dir)
    assert (scorer.activation, scorer.batch_size, scorer.max_tokens_per_batch) == ("raw", 4, 512)
    assert (scorer.device, scorer.cache_dir, scorer.local_files_only) == (
        "cpu",
        str(tmp_path),
        True,
    )
    assert scorer.max_length == 64  # loads the tiny model


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"top_n": 0}, ValueError, "top_n must be >= 1, got 0"),
        ({"top_n": "3"}, TypeError, "top_n must be an int >= 1 or None, got str '3'"),
        ({"top_n": True}, TypeError, "got bool True"),
        (
            {"score_threshold": float("nan")},
            ValueError,
            "score_threshold must be a number, got NaN",
        ),
        ({"score_threshold": "0.5"}, TypeError, "score_threshold must be a number or None"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"max_length": 1.5}, TypeError, "max_length must be an int >= 1, got float 1.5"),
        ({"max_tokens_per_batch": -1}, ValueError, "max_tokens_per_batch must be >= 1, got -1"),
        ({"model": "  "}, ValueError, "model must be a model id or a folder path, got '  '"),
        ({"activation": "softmax"}, ValueError, "'softmax'"),
        ({"metadata_keys_to_embed": "title"}, TypeError, "got str 'title'"),
        ({"metadata_keys_to_embed": ["title", 1]}, TypeError, "metadata_keys_to_embed[1]"),
        ({"scorer": "x"}, ValueError, "instance of CrossEncoderScorer"),
        ({"top_k": 3}, ValueError, "top_k"),  # LangChain's name is top_n; no silent ignore
    ],
)
def test_invalid_values_are_rejected_up_front(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        CrossEncoderRerank(**kwargs)
    assert message in str(info.value)


def test_scorer_excludes_loading_options(tiny_scorer: CrossEncoderScorer) -> None:
    with pytest.raises(ValueError, match=r"either scorer or model-loading options.*device='cpu'"):
        CrossEncoderRerank(scorer=tiny_scorer, device="cpu")
    with pytest.raises(ValueError, match="model="):
        CrossEncoderRerank(scorer=tiny_scorer, model="other/model")
    # Defaults spelled out are fine, and the given scorer is the one used.
    reranker = CrossEncoderRerank(scorer=tiny_scorer, model=None, batch_size=32, top_n=2)
    assert reranker.scorer is tiny_scorer
    assert reranker.model is None  # the scorer's settings are not copied into the fields


# ---------------------------------------------------------------------- loading


def test_lazy_loading(tiny_model_dir: Path) -> None:
    reranker = CrossEncoderRerank(model=tiny_model_dir, device="cpu")
    assert not reranker.scorer.is_loaded
    assert reranker.compress_documents([], QUERY) == []
    assert not reranker.scorer.is_loaded
    assert len(reranker.compress_documents(make_docs(), QUERY)) == 3
    assert reranker.scorer.is_loaded


def test_scorer_is_the_one_in_use_and_loads_once(tiny_model_dir: Path) -> None:
    reranker = CrossEncoderRerank(model=tiny_model_dir, device="cpu")
    assert isinstance(reranker.scorer, CrossEncoderScorer)
    reranker.scorer.warm_up()
    loaded = reranker.scorer._loaded
    reranker.compress_documents(make_docs(), QUERY)
    assert reranker.scorer._loaded is loaded


def test_given_scorer_is_not_loaded_by_construction(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    CrossEncoderRerank(scorer=scorer)
    assert not scorer.is_loaded


# ---------------------------------------------------------------------- results


def test_scores_and_order_equal_core_rank(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    texts = [d.page_content for d in docs]
    for top_n in (1, 3, None):
        out = CrossEncoderRerank(scorer=tiny_scorer, top_n=top_n).compress_documents(docs, QUERY)
        assert ids_scores(list(out)) == core_top(tiny_scorer, texts, top_k=top_n)
    assert len(out) == len(docs)


def test_score_threshold_then_top_n(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    texts = [d.page_content for d in docs]
    scores = sorted(tiny_scorer.score(QUERY, texts), reverse=True)
    threshold = scores[2]  # three documents pass
    for top_n, expected in ((None, 3), (2, 2), (5, 3)):
        reranker = CrossEncoderRerank(scorer=tiny_scorer, top_n=top_n, score_threshold=threshold)
        out = list(reranker.compress_documents(docs, QUERY))
        assert len(out) == expected
        assert ids_scores(out) == core_top(
            tiny_scorer, texts, top_k=top_n, score_threshold=threshold
        )
        assert all(d.metadata["relevance_score"] >= threshold for d in out)


def test_raw_activation_matches_core(tiny_model_dir: Path) -> None:
    docs = make_docs()
    raw_scorer = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw")
    reranker = CrossEncoderRerank(model=tiny_model_dir, device="cpu", activation="raw", top_n=None)
    out = list(reranker.compress_documents(docs, QUERY))
    assert ids_scores(out) == core_top(raw_scorer, [d.page_content for d in docs])


def test_relevance_score_is_a_python_float(tiny_scorer: CrossEncoderScorer) -> None:
    out = CrossEncoderRerank(scorer=tiny_scorer, top_n=None).compress_documents(make_docs(), QUERY)
    for doc in out:
        assert type(doc.metadata["relevance_score"]) is float
        assert 0.0 < doc.metadata["relevance_score"] < 1.0


def test_inputs_are_not_mutated(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    docs[0].metadata["relevance_score"] = -1.0  # e.g. from an earlier stage: replaced in copies
    docs[0].id = "kept-id"
    before = copy.deepcopy(docs)
    metadata_objects = [d.metadata for d in docs]
    out = CrossEncoderRerank(scorer=tiny_scorer, top_n=None).compress_documents(docs, QUERY)
    assert docs == before
    assert [d.metadata for d in docs] == [d.metadata for d in before]
    assert all(d.metadata is m for d, m in zip(docs, metadata_objects, strict=True))
    for doc in out:
        assert all(doc is not d and doc.metadata is not d.metadata for d in docs)
    by_id = {d.metadata["id"]: d for d in out}
    assert by_id["d0"].id == "kept-id"
    assert by_id["d0"].metadata["relevance_score"] != -1.0
    assert by_id["d0"].metadata["title"] == "title 0"
    assert by_id["d0"].metadata["tags"] == ["x"]


def test_accepts_any_sequence(tiny_scorer: CrossEncoderScorer) -> None:
    reranker = CrossEncoderRerank(scorer=tiny_scorer)
    docs = make_docs()
    assert reranker.compress_documents(tuple(docs), QUERY) == reranker.compress_documents(
        docs, QUERY
    )


def test_empty_content_is_skipped_and_logged(
    tiny_scorer: CrossEncoderScorer, caplog: pytest.LogCaptureFixture
) -> None:
    docs = make_docs()
    docs.insert(1, Document(page_content="", metadata={"id": "e1", "title": "t"}))
    docs.insert(3, Document(page_content=" \n\t", metadata={"id": "e2", "title": "t"}))
    for keys in (None, ["title"]):
        reranker = CrossEncoderRerank(scorer=tiny_scorer, top_n=None, metadata_keys_to_embed=keys)
        with caplog.at_level(logging.WARNING, logger="crossrank"):
            caplog.clear()
            out = reranker.compress_documents(docs, QUERY)
        assert len(out) == len(docs) - 2
        assert {d.metadata["id"] for d in out}.isdisjoint({"e1", "e2"})
        assert "2 of 8 candidates have no text" in caplog.text
    only_empty = [Document(page_content="")]
    assert CrossEncoderRerank(scorer=tiny_scorer).compress_documents(only_empty, QUERY) == []


def test_blank_query_is_rejected(tiny_scorer: CrossEncoderScorer) -> None:
    reranker = CrossEncoderRerank(scorer=tiny_scorer)
    with pytest.raises(ValueError, match="query must contain non-whitespace text"):
        reranker.compress_documents(make_docs(), "  ")


def test_metadata_keys_to_embed(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    docs[2].metadata["title"] = None  # left out
    del docs[3].metadata["title"]  # left out
    expected_texts = [
        d.page_content
        if not d.metadata.get("title")
        else f"title: {d.metadata['title']}\nid: {d.metadata['id']}\n{d.page_content}"
        for d in docs
    ]
    expected_texts[2] = f"id: d2\n{docs[2].page_content}"
    expected_texts[3] = f"id: d3\n{docs[3].page_content}"
    reranker = CrossEncoderRerank(
        scorer=tiny_scorer, top_n=None, metadata_keys_to_embed=["title", "missing", "id"]
    )
    assert reranker._texts(docs) == expected_texts
    out = list(reranker.compress_documents(docs, QUERY))
    assert ids_scores(out) == core_top(tiny_scorer, expected_texts)
    plain = CrossEncoderRerank(scorer=tiny_scorer, top_n=None).compress_documents(docs, QUERY)
    assert ids_scores(out) != ids_scores(list(plain))  # the metadata was read
    # The returned text is the Document's own page_content.
    assert {d.page_content for d in out} == {d.page_content for d in docs}


def test_embedding_separator(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()[:2]
    reranker = CrossEncoderRerank(
        scorer=tiny_scorer, metadata_keys_to_embed=["title"], embedding_separator=" | "
    )
    assert reranker._texts(docs) == [
        f"title: title {i} | {d.page_content}" for i, d in enumerate(docs)
    ]


# ---------------------------------------------------------------------- async


@pytest.mark.asyncio
async def test_async_equals_sync(tiny_scorer: CrossEncoderScorer) -> None:
    reranker = CrossEncoderRerank(scorer=tiny_scorer, top_n=4)
    docs = make_docs()
    assert await reranker.acompress_documents(docs, QUERY) == reranker.compress_documents(
        docs, QUERY
    )
    assert await reranker.acompress_documents([], QUERY) == []


@pytest.mark.asyncio
async def test_concurrent_async_calls_equal_sequential(tiny_model_dir: Path) -> None:
    reranker = CrossEncoderRerank(model=tiny_model_dir, device="cpu", top_n=None)
    docs = make_docs()
    queries = [
        QUERY,
        "capital of germany",
        "cat dog",
        "cancer risk",
        "blood brain",
        "protein gene",
        "paris",
        "berlin city",
        "heart drug dose",
        "patients treatment effect",
    ]
    # Concurrent first, so the lazy load itself also happens under concurrency.
    concurrent = await asyncio.gather(*(reranker.acompress_documents(docs, q) for q in queries))
    sequential = [reranker.compress_documents(docs, q) for q in queries]
    assert list(concurrent) == sequential
    assert len({tuple(ids_scores(list(r))) for r in sequential}) > 1  # queries differ


# ---------------------------------------------------------------------- LangChain composition


class RecordingHandler(BaseCallbackHandler):
    """Records retriever events with their run ids."""

    def __init__(self) -> None:
        self.events: list[tuple[str, UUID, UUID | None, Any]] = []

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.events.append(("start", run_id, parent_run_id, query))

    def on_retriever_end(
        self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self.events.append(("end", run_id, parent_run_id, list(documents)))


class SpyRerank(CrossEncoderRerank):
    """Records the callbacks argument it was given."""

    _seen: list[Any] = PrivateAttr(default_factory=list)

    def compress_documents(self, documents: Any, query: str, callbacks: Any = None) -> Any:
        self._seen.append(callbacks)
        return super().compress_documents(documents, query, callbacks)


def test_contextual_compression_retriever_and_callbacks(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    reranker = SpyRerank(scorer=tiny_scorer, top_n=2)
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=ListRetriever(documents=docs)
    )
    handler = RecordingHandler()
    out = retriever.invoke(QUERY, config={"callbacks": [handler]})
    expected = CrossEncoderRerank(scorer=tiny_scorer, top_n=2).compress_documents(docs, QUERY)
    assert out == list(expected)

    # Outer retriever start, inner (base) retriever start/end as its child, outer end.
    kinds = [e[0] for e in handler.events]
    assert kinds == ["start", "start", "end", "end"]
    outer_start, inner_start, inner_end, outer_end = handler.events
    assert outer_start[3] == inner_start[3] == QUERY
    assert inner_start[2] == outer_start[1]  # the base retriever runs as a child
    assert inner_end[3] == docs
    assert outer_end[1] == outer_start[1]
    assert outer_end[3] == out
    assert all(isinstance(d.metadata["relevance_score"], float) for d in outer_end[3])
    # The compressor was handed the retriever's child callback manager, with our handler.
    (callbacks,) = reranker._seen
    assert handler in callbacks.handlers


@pytest.mark.asyncio
async def test_contextual_compression_retriever_async(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    retriever = ContextualCompressionRetriever(
        base_compressor=CrossEncoderRerank(scorer=tiny_scorer, top_n=3),
        base_retriever=ListRetriever(documents=docs),
    )
    assert await retriever.ainvoke(QUERY) == retriever.invoke(QUERY)


@pytest.mark.asyncio
async def test_lcel_composition(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    reranker = CrossEncoderRerank(scorer=tiny_scorer, top_n=3)

    def rerank(inputs: dict[str, Any]) -> list[Document]:
        return list(reranker.compress_documents(inputs["docs"], inputs["query"]))

    async def arerank(inputs: dict[str, Any]) -> list[Document]:
        return list(await reranker.acompress_documents(inputs["docs"], inputs["query"]))

    chain = RunnableParallel(
        docs=ListRetriever(documents=docs), query=RunnablePassthrough()
    ) | RunnableLambda(rerank, afunc=arerank)
    expected = list(reranker.compress_documents(docs, QUERY))
    assert chain.invoke(QUERY) == expected
    assert await chain.ainvoke(QUERY) == expected
    assert chain.batch([QUERY, "cat dog"])[0] == expected


# ---------------------------------------------------------------------- issue 8 options

_VOCAB_WORDS = (
    "the cat and dog of cell protein gene cancer risk study patients treatment effect "
    "blood brain heart drug dose paris berlin capital city france germany increase"
).split()


def long_docs(n: int = 5, seed: int = 0) -> list[Document]:
    """Documents of 40 to 160 words (the tiny model reads 128 tokens per pair)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = [rng.choice(_VOCAB_WORDS) for _ in range(rng.randint(40, 160))]
        docs.append(
            Document(
                page_content=" ".join(words) + ".",
                metadata={"id": f"d{i}", "title": f"title {i} {rng.choice(_VOCAB_WORDS)}"},
            )
        )
    return docs


def total_tokens(scorer: CrossEncoderScorer, docs: Any) -> int:
    texts = [d.page_content for d in docs]
    return sum(scorer.count_tokens(texts)) if texts else 0  # count_tokens([]) raises


@pytest.fixture(scope="module")
def chunk_scorer(tiny_model_dir: Path) -> CrossEncoderScorer:
    """Chunk mode on the tiny model, with short windows so documents have several."""
    scorer = CrossEncoderScorer(
        tiny_model_dir, device="cpu", long_documents="chunk", max_length=32, max_windows=50
    )
    scorer.warm_up()
    return scorer


@pytest.fixture()
def calibration_file(tmp_path: Path, tiny_model_dir: Path) -> Path:
    return save_calibration(
        tmp_path / "calibration.json",
        {"platt": Calibration("platt", 2.0, -1.0)},
        method="platt",
        model=str(tiny_model_dir),
    )


ALL_NEW_OPTIONS: dict[str, Any] = {
    "long_documents": "chunk",
    "max_windows": 3,
    "window_stride": 5,
    "aggregation": "mean-top",
    "top_windows": 3,
    "activation": "calibrated",
    "min_relative_score": 0.25,
    "token_budget": 400,
    "passage_only": True,
}


def test_new_options_reach_the_scorer(tiny_model_dir: Path, calibration_file: Path) -> None:
    reranker = CrossEncoderRerank(
        model=tiny_model_dir, device="cpu", calibration=calibration_file, **ALL_NEW_OPTIONS
    )
    scorer = reranker.scorer
    assert (scorer.long_documents, scorer.max_windows, scorer.window_stride) == ("chunk", 3, 5)
    assert (scorer.aggregation, scorer.top_windows) == ("mean-top", 3)
    assert scorer.activation == "calibrated"
    assert scorer.calibration == Calibration("platt", 2.0, -1.0, model=str(tiny_model_dir))
    assert reranker.calibration == str(calibration_file)  # a Path is kept as a string
    assert (reranker.min_relative_score, reranker.token_budget, reranker.passage_only) == (
        0.25,
        400,
        True,
    )
    assert not scorer.is_loaded  # still lazy
    defaults = CrossEncoderRerank(model=tiny_model_dir).scorer
    assert (defaults.long_documents, defaults.max_windows, defaults.window_stride) == (
        "truncate",
        8,
        None,
    )
    assert (defaults.aggregation, defaults.top_windows, defaults.calibration) == ("max", 2, None)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"long_documents": "split"}, ValueError, "'truncate' or 'chunk'"),
        ({"aggregation": "median"}, ValueError, "'max', 'mean-top' or 'first-weighted'"),
        ({"max_windows": 0}, ValueError, "max_windows must be >= 1, got 0"),
        ({"max_windows": None}, TypeError, "max_windows must be an int >= 1, got NoneType"),
        ({"window_stride": 0}, ValueError, "window_stride must be >= 1, got 0"),
        ({"top_windows": 1.5}, TypeError, "top_windows must be an int >= 1, got float 1.5"),
        ({"min_relative_score": 1.5}, ValueError, "min_relative_score must be in [0, 1], got 1.5"),
        ({"min_relative_score": "0.5"}, TypeError, "min_relative_score must be a number in"),
        ({"token_budget": 0}, ValueError, "token_budget must be >= 1, got 0"),
        ({"token_budget": 2.5}, TypeError, "token_budget must be an int >= 1, got float 2.5"),
        ({"passage_only": "maybe"}, ValueError, "passage_only"),
        (
            {"calibration": "cal.json"},
            ValueError,
            "calibration is only used with activation='calibrated', got activation='sigmoid'",
        ),
        (
            {"activation": "calibrated"},  # default model: a Hub id, no calibration beside it
            ValueError,
            "activation='calibrated' needs a calibration",
        ),
        (
            {"activation": "calibrated", "calibration": "/no/such/calibration.json"},
            FileNotFoundError,
            "calibration file /no/such/calibration.json not found",
        ),
        (
            {"activation": "raw", "min_relative_score": 0.5},
            ValueError,
            "min_relative_score needs non-negative scores",
        ),
    ],
)
def test_invalid_new_options_are_rejected_up_front(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        CrossEncoderRerank(**kwargs)
    assert message in str(info.value)


def test_scorer_excludes_new_loading_options(
    tiny_scorer: CrossEncoderScorer, calibration_file: Path
) -> None:
    for name, value in [
        ("long_documents", "chunk"),
        ("max_windows", 2),
        ("window_stride", 4),
        ("aggregation", "first-weighted"),
        ("top_windows", 3),
        ("activation", "calibrated"),
        ("calibration", str(calibration_file)),
    ]:
        with pytest.raises(ValueError, match=rf"either scorer or model-loading options.*{name}="):
            CrossEncoderRerank(scorer=tiny_scorer, **{name: value})
    # Selection options apply per call, whatever the scorer.
    reranker = CrossEncoderRerank(
        scorer=tiny_scorer, min_relative_score=0.5, token_budget=10, passage_only=True
    )
    assert reranker.scorer is tiny_scorer


def test_min_relative_score_with_a_raw_scorer_is_rejected(tiny_model_dir: Path) -> None:
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw")
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        CrossEncoderRerank(scorer=raw, min_relative_score=0.5)


def test_serialization_round_trip(tiny_model_dir: Path, calibration_file: Path) -> None:
    reranker = CrossEncoderRerank(
        model=tiny_model_dir,
        device="cpu",
        top_n=4,
        metadata_keys_to_embed=["title"],
        calibration=calibration_file,
        **ALL_NEW_OPTIONS,
    )
    saved = reranker.model_dump_json(exclude={"scorer"})
    data = json.loads(saved)
    assert data["calibration"] == str(calibration_file)
    for name, value in ALL_NEW_OPTIONS.items():
        assert data[name] == value, name
    loaded = CrossEncoderRerank.model_validate_json(saved)
    assert loaded.model_dump(exclude={"scorer", "model"}) == reranker.model_dump(
        exclude={"scorer", "model"}
    )
    assert str(loaded.model) == str(reranker.model)
    scorer, again = reranker.scorer, loaded.scorer
    for attr in ("long_documents", "max_windows", "window_stride", "aggregation"):
        assert getattr(again, attr) == getattr(scorer, attr), attr
    assert (again.top_windows, again.activation) == (scorer.top_windows, scorer.activation)
    assert again.calibration == scorer.calibration
    assert again.calibration.source == str(calibration_file)  # the path survived
    docs = long_docs()
    assert loaded.compress_documents(docs, QUERY) == reranker.compress_documents(docs, QUERY)


def test_old_saved_fields_load_with_defaults(tiny_model_dir: Path) -> None:
    # What a compressor saved before these options existed.
    old = {
        "model": str(tiny_model_dir),
        "top_n": 2,
        "score_threshold": None,
        "activation": "sigmoid",
        "metadata_keys_to_embed": None,
        "embedding_separator": "\n",
        "batch_size": 32,
        "max_length": None,
        "max_tokens_per_batch": None,
        "backend": "torch",
        "onnx_cache_dir": None,
        "device": "cpu",
        "cache_dir": None,
        "local_files_only": False,
    }
    reranker = CrossEncoderRerank.model_validate(old)
    assert (reranker.long_documents, reranker.passage_only, reranker.token_budget) == (
        "truncate",
        False,
        None,
    )
    assert (reranker.calibration, reranker.min_relative_score) == (None, None)
    assert reranker.scorer.long_documents == "truncate"


@pytest.mark.parametrize("passage_only", [False, True])
@pytest.mark.parametrize("keys", [None, ["title"]])
def test_token_budget_is_never_exceeded(
    chunk_scorer: CrossEncoderScorer, passage_only: bool, keys: list[str] | None
) -> None:
    docs = long_docs(6, seed=1)
    unbudgeted = CrossEncoderRerank(
        scorer=chunk_scorer, top_n=None, passage_only=passage_only, metadata_keys_to_embed=keys
    ).compress_documents(docs, QUERY)
    sizes = set()
    for budget in (1, 40, 100, 300, 5000):
        reranker = CrossEncoderRerank(
            scorer=chunk_scorer,
            top_n=None,
            token_budget=budget,
            passage_only=passage_only,
            metadata_keys_to_embed=keys,
        )
        out = list(reranker.compress_documents(docs, QUERY))
        assert total_tokens(chunk_scorer, out) <= budget
        # A best-first prefix of the unbudgeted ranking.
        assert out == list(unbudgeted)[: len(out)]
        sizes.add(len(out))
    assert len(sizes) > 2  # the budget did cut, at several places


def test_min_relative_score_equals_core_select(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    scores = tiny_scorer.score(QUERY, [d.page_content for d in docs])
    ranked = sorted(scores, reverse=True)
    for fraction in (0.0, ranked[2] / ranked[0], ranked[-1] / ranked[0] + 1e-9, 1.0):
        out = CrossEncoderRerank(
            scorer=tiny_scorer, top_n=None, min_relative_score=fraction
        ).compress_documents(docs, QUERY)
        expected = select(scores, min_relative_score=fraction)
        assert [int(d.metadata["id"][1:]) for d in out] == expected
        assert [d.metadata["relevance_score"] for d in out] == [scores[i] for i in expected]
    # Then top_n, as in the core.
    out = CrossEncoderRerank(
        scorer=tiny_scorer, top_n=2, min_relative_score=0.0
    ).compress_documents(docs, QUERY)
    assert [int(d.metadata["id"][1:]) for d in out] == select(
        scores, min_relative_score=0.0, top_k=2
    )


def test_min_relative_score_error_from_the_core_is_not_swallowed(tiny_model_dir: Path) -> None:
    # A scorer switched to raw after the compressor was built: the core's call-time check.
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    reranker = CrossEncoderRerank(scorer=scorer, min_relative_score=0.5)
    scorer.activation = "raw"
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        reranker.compress_documents(make_docs(), QUERY)


@pytest.mark.parametrize("keys", [None, ["title"]])
def test_passage_only_in_chunk_mode(
    chunk_scorer: CrossEncoderScorer, keys: list[str] | None
) -> None:
    docs = long_docs(5, seed=2)
    docs[1].metadata["crossrank_span"] = "from an earlier stage"
    before = copy.deepcopy(docs)
    reranker = CrossEncoderRerank(
        scorer=chunk_scorer, top_n=None, passage_only=True, metadata_keys_to_embed=keys
    )
    texts = reranker._texts(docs)
    out = list(reranker.compress_documents(docs, QUERY))
    assert docs == before  # inputs unchanged
    hits = chunk_scorer.rerank(QUERY, texts, passages=True).hits
    assert [int(d.metadata["id"][1:]) for d in out] == [h.index for h in hits]
    shorter = 0
    for doc, hit in zip(out, hits, strict=True):
        original = docs[hit.index].page_content
        start, end = doc.metadata["crossrank_span"]
        assert (start, end) == passage_span(texts[hit.index], original, hit.span)
        assert doc.page_content == original[start:end]
        assert doc.metadata["relevance_score"] == hit.score
        assert doc.metadata["title"] == docs[hit.index].metadata["title"]
        assert chunk_scorer.count_tokens([doc.page_content])[0] <= 32
        shorter += len(doc.page_content) < len(original)
    assert shorter == len(out)  # every document here is longer than one window
    # Without passage_only: whole content, no span key added.
    whole = CrossEncoderRerank(
        scorer=chunk_scorer, top_n=None, metadata_keys_to_embed=keys
    ).compress_documents(docs, QUERY)
    assert {d.page_content for d in whole} == {d.page_content for d in docs}
    assert all("crossrank_span" not in d.metadata for d in whole if d.metadata["id"] != "d1")


def test_passage_only_in_truncate_mode(tiny_scorer: CrossEncoderScorer) -> None:
    docs = [
        *long_docs(4, seed=3),
        Document(page_content=" ".join(_VOCAB_WORDS * 8), metadata={"id": "long"}),
        *(
            Document(page_content=d.page_content, metadata={"id": f"s{i}"})
            for i, d in enumerate(make_docs()[:2])
        ),
    ]
    by_id = {d.metadata["id"]: d.page_content for d in docs}
    reranker = CrossEncoderRerank(scorer=tiny_scorer, top_n=None, passage_only=True)
    out = list(reranker.compress_documents(docs, QUERY))
    assert len(out) == len(docs)
    cut = 0
    for doc in out:
        original = by_id[doc.metadata["id"]]
        start, end = doc.metadata["crossrank_span"]
        assert start == 0  # the part read is the beginning
        assert doc.page_content == original[:end]
        cut += end < len(original)
    assert 0 < cut < len(docs)  # some documents were longer than the model reads, not all


def test_passage_only_keeps_content_when_the_window_is_all_metadata(
    tiny_model_dir: Path,
) -> None:
    scorer = CrossEncoderScorer(
        tiny_model_dir, device="cpu", long_documents="chunk", max_length=32, max_windows=1
    )
    doc = Document(
        page_content="paris is the capital of france",
        metadata={"id": "d0", "title": " ".join(["blood brain heart"] * 20)},
    )
    reranker = CrossEncoderRerank(
        scorer=scorer, passage_only=True, metadata_keys_to_embed=["title"]
    )
    (out,) = reranker.compress_documents([doc], QUERY)
    assert out.page_content == doc.page_content
    assert "crossrank_span" not in out.metadata
    assert isinstance(out.metadata["relevance_score"], float)


def test_calibrated_scores_equal_the_core(tiny_model_dir: Path, calibration_file: Path) -> None:
    docs = make_docs()
    texts = [d.page_content for d in docs]
    core = CrossEncoderScorer(
        tiny_model_dir, device="cpu", activation="calibrated", calibration=calibration_file
    )
    expected = core.score(QUERY, texts)
    sigmoid = CrossEncoderScorer(tiny_model_dir, device="cpu").score(QUERY, texts)
    assert max(abs(a - b) for a, b in zip(expected, sigmoid, strict=True)) > 1e-3
    for calibration in (calibration_file, str(calibration_file)):
        reranker = CrossEncoderRerank(
            model=tiny_model_dir,
            device="cpu",
            activation="calibrated",
            calibration=calibration,
            top_n=None,
        )
        out = reranker.compress_documents(docs, QUERY)
        for doc in out:
            score = doc.metadata["relevance_score"]
            assert abs(score - expected[int(doc.metadata["id"][1:])]) < 1e-6
        # The file path survives serialization.
        again = CrossEncoderRerank.model_validate_json(reranker.model_dump_json(exclude={"scorer"}))
        assert again.calibration == str(calibration_file)
        assert again.compress_documents(docs, QUERY) == out


def test_calibration_folder_and_model_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    save_calibration(model, {"platt": Calibration("platt", 0.5, 0.2)}, method="platt")
    assert (model / CALIBRATION_FILE).is_file()
    beside = CrossEncoderRerank(model=model, device="cpu", activation="calibrated")
    folder = CrossEncoderRerank(
        model=tiny_model_dir, device="cpu", activation="calibrated", calibration=str(model)
    )
    assert beside.scorer.calibration == folder.scorer.calibration == Calibration("platt", 0.5, 0.2)
    docs = make_docs()
    assert [d.metadata["relevance_score"] for d in beside.compress_documents(docs, QUERY)] == [
        d.metadata["relevance_score"] for d in folder.compress_documents(docs, QUERY)
    ]


@pytest.mark.asyncio
async def test_async_with_the_new_options(chunk_scorer: CrossEncoderScorer) -> None:
    docs = long_docs(6, seed=4)
    before = copy.deepcopy(docs)
    reranker = CrossEncoderRerank(
        scorer=chunk_scorer,
        top_n=4,
        min_relative_score=0.1,
        token_budget=60,
        passage_only=True,
        metadata_keys_to_embed=["title"],
    )
    out = await reranker.acompress_documents(docs, QUERY)
    assert out == reranker.compress_documents(docs, QUERY)
    assert 0 < len(out) <= 4
    assert total_tokens(chunk_scorer, out) <= 60
    assert all("crossrank_span" in d.metadata for d in out)
    assert docs == before


# ---------------------------------------------------------------------- missing extra


def test_missing_langchain_core_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['langchain_core'] = None\n"
        "try:\n"
        "    import langchain_crossrank\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e.name, type(e.__cause__).__name__)\n"
        "    print(e)\n"
        "else:\n"
        "    print('imported')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    first, message = result.stdout.strip().split("\n", 1)
    assert re.fullmatch(r"ImportError langchain_core(\.\w+)? ModuleNotFoundError", first)
    assert message.startswith("The LangChain compressor needs an optional dependency")
    assert 'pip install "crossrank[langchain]"' in message
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^langchain = \["langchain-core', pyproject, re.MULTILINE)
