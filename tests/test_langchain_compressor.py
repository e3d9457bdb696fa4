"""Unit tests for the LangChain compressor (langchain_crossrank.CrossEncoderRerank), tiny model."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
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
from crossrank import DEFAULT_MODEL, CrossEncoderScorer
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
