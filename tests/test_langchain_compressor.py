"""LangChain specifics of langchain_crossrank.CrossEncoderRerank, with the tiny model.

What every adapter shares (parity with the core, no mutation, blank texts, budget, passages,
calibration, async and threads, round trip, missing extra) is in test_adapters_contract.py.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from pydantic import PrivateAttr, SecretStr

import langchain_crossrank
from crossrank import DEFAULT_MODEL, CrossEncoderScorer, passage_span
from crossrank.adapters import SCORER_OPTIONS, scorer_settings
from crossrank.calibration import Calibration, save_calibration
from langchain_crossrank import CrossEncoderRerank

ROOT = Path(__file__).resolve().parents[1]
SAVED_V1 = ROOT / "tests" / "data" / "langchain_saved_v1.json"
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


def ids_scores(docs: Any) -> list[tuple[int, float]]:
    return [(int(d.metadata["id"][1:]), d.metadata["relevance_score"]) for d in docs]


def texts_read(reranker: CrossEncoderRerank, docs: list[Document]) -> list[str]:
    return [reranker._text(doc) for doc in docs]


# ---------------------------------------------------------------------- public surface


def test_all_is_pinned() -> None:
    assert langchain_crossrank.__all__ == ["CrossEncoderRerank", "CrossrankCrossEncoder"]
    assert (Path(langchain_crossrank.__file__).parent / "py.typed").is_file()


def test_is_a_document_compressor_at_its_import_path() -> None:
    assert issubclass(CrossEncoderRerank, BaseDocumentCompressor)
    assert CrossEncoderRerank.__module__ == "langchain_crossrank.rerank"


def test_every_field_is_documented() -> None:
    for name, field in CrossEncoderRerank.model_fields.items():
        assert field.description, name


def test_every_scorer_setting_is_a_field_with_the_scorers_default() -> None:
    fields = CrossEncoderRerank.model_fields
    for name, default in SCORER_OPTIONS.items():
        assert name in fields, name
        assert fields[name].get_default(call_default_factory=True) == default, name
    # The rest is the compressor's own: selection, hand-off, text, and the scorer.
    assert set(fields) - set(SCORER_OPTIONS) == {
        "scorer",
        "top_n",
        "score_threshold",
        "min_relative_score",
        "token_budget",
        "passage_only",
        "metadata_keys_to_embed",
        "embedding_separator",
        "first_stage_key",
    }


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    reranker = CrossEncoderRerank()
    assert reranker.top_n == 3  # as langchain-classic's CrossEncoderReranker
    assert (reranker.score_threshold, reranker.token_budget, reranker.passage_only) == (
        None,
        None,
        False,
    )
    assert reranker.embedding_separator == "\n"
    assert reranker.scorer.model_name == DEFAULT_MODEL
    assert not reranker.scorer.is_loaded  # constructing is cheap


def test_model_from_environment(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> None:
    monkeypatch.setenv("CROSSRANK_MODEL", str(tiny_model_dir))
    reranker = CrossEncoderRerank()
    assert reranker.scorer.model_name == str(tiny_model_dir)
    assert reranker.model is None  # saved as None: the environment decides on loading


def test_paths_are_kept_as_strings(tiny_model_dir: Path, tmp_path: Path) -> None:
    reranker = CrossEncoderRerank(model=tiny_model_dir, cache_dir=tmp_path, onnx_cache_dir=tmp_path)
    assert (reranker.model, reranker.cache_dir, reranker.onnx_cache_dir) == (
        str(tiny_model_dir),
        str(tmp_path),
        str(tmp_path),
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"top_n": True}, TypeError, "top_n must be an int >= 1 or None, got bool True"),
        ({"score_threshold": "0.5"}, TypeError, "score_threshold must be a number or None"),
        ({"min_relative_score": "0.5"}, TypeError, "min_relative_score must be a number in"),
        ({"model": "  "}, TypeError, "model must be a model id or a folder path, got '  '"),
        ({"model": 3}, TypeError, "model must be a model id or a folder path, got 3"),
        ({"metadata_keys_to_embed": "title"}, TypeError, "got str 'title'"),
        ({"metadata_keys_to_embed": ["title", 1]}, TypeError, "metadata_keys_to_embed[1]"),
        ({"passage_only": "maybe"}, ValueError, "passage_only"),
        ({"scorer": "x"}, ValueError, "instance of RerankScorer"),
        ({"top_k": 3}, ValueError, "top_k"),  # LangChain's name is top_n; no silent ignore
        ({"aggregation": "median"}, ValueError, "aggregation must be one of"),
    ],
)
def test_invalid_values_are_rejected_up_front(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        CrossEncoderRerank(**kwargs)
    assert message in str(info.value)


# ---------------------------------------------------------------------- a given scorer


@pytest.mark.parametrize(
    ("name", "value"),
    [("device", "cpu"), ("model", "other/model"), ("long_documents", "chunk"), ("revision", "v1")],
)
def test_a_given_scorer_refuses_scorer_settings(
    tiny_scorer: CrossEncoderScorer, name: str, value: Any
) -> None:
    with pytest.raises(ValueError, match=rf"either scorer or the scorer settings.*{name}="):
        CrossEncoderRerank(scorer=tiny_scorer, **{name: value})


def test_a_given_scorer_is_used_and_its_settings_are_the_fields(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu", batch_size=4, max_windows=3)
    # Defaults spelled out are fine; selection options apply with any scorer.
    reranker = CrossEncoderRerank(scorer=scorer, batch_size=32, top_n=2, min_relative_score=0.5)
    assert reranker.scorer is scorer
    assert not scorer.is_loaded  # construction loads nothing
    assert (reranker.model, reranker.device, reranker.batch_size, reranker.max_windows) == (
        str(tiny_model_dir),
        "cpu",
        4,
        3,
    )
    # So a dump reloads into an equal scorer (a new one: a scorer object is not saved).
    again = CrossEncoderRerank.model_validate_json(reranker.model_dump_json())
    assert again.scorer is not scorer
    assert scorer_settings(again.scorer) == scorer_settings(scorer)
    docs = make_docs()
    assert again.compress_documents(docs, QUERY) == reranker.compress_documents(docs, QUERY)


def test_a_given_scorer_is_checked_against_the_selection(tiny_model_dir: Path) -> None:
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw")
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        CrossEncoderRerank(scorer=raw, min_relative_score=0.5)


def test_the_selection_is_checked_again_on_each_call(tiny_model_dir: Path) -> None:
    # Fields changed after construction, and a scorer switched to raw: the call checks.
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    reranker = CrossEncoderRerank(scorer=scorer, min_relative_score=0.5)
    reranker.top_n = 2
    assert len(reranker.compress_documents(make_docs(), QUERY)) <= 2
    reranker.top_n = 0
    with pytest.raises(ValueError, match="top_n must be >= 1, got 0"):
        reranker.compress_documents(make_docs(), QUERY)
    reranker.top_n = 3
    scorer.activation = "raw"
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        reranker.compress_documents(make_docs(), QUERY)


def test_scorer_is_the_one_in_use_and_loads_once(tiny_model_dir: Path) -> None:
    reranker = CrossEncoderRerank(model=tiny_model_dir, device="cpu")
    assert isinstance(reranker.scorer, CrossEncoderScorer)
    reranker.scorer.warm_up()
    loaded = reranker.scorer._loaded
    reranker.compress_documents(make_docs(), QUERY)
    assert reranker.scorer._loaded is loaded


# ---------------------------------------------------------------------- saving


def test_the_dump_has_every_setting_and_no_scorer(tiny_model_dir: Path) -> None:
    reranker = CrossEncoderRerank(model=tiny_model_dir, device="cpu", top_n=4)
    data = json.loads(reranker.model_dump_json())  # no exclude= needed
    assert "scorer" not in data and "token" not in data
    assert set(data) == set(CrossEncoderRerank.model_fields) - {"scorer", "token"}
    assert (data["model"], data["device"], data["top_n"]) == (str(tiny_model_dir), "cpu", 4)
    assert "scorer" not in reranker.model_dump()


def test_the_token_is_a_secret_never_dumped(tiny_model_dir: Path) -> None:
    reranker = CrossEncoderRerank(model=tiny_model_dir, token="hf_secret_value")
    assert isinstance(reranker.token, SecretStr)
    assert reranker.scorer.token == "hf_secret_value"  # the scorer gets the value
    for text in (reranker.model_dump_json(), str(reranker.model_dump()), repr(reranker)):
        assert "hf_secret_value" not in text
    again = CrossEncoderRerank.model_validate_json(reranker.model_dump_json())
    assert again.token is None and again.scorer.token is None  # give it again when loading


def test_calibration_path_survives_a_round_trip(
    tiny_model_dir: Path, calibration_file: Path
) -> None:
    path = calibration_file
    reranker = CrossEncoderRerank(
        model=tiny_model_dir, device="cpu", activation="calibrated", calibration=path, top_n=None
    )
    assert reranker.calibration == str(path)
    again = CrossEncoderRerank.model_validate_json(reranker.model_dump_json())
    assert again.calibration == str(path)
    assert again.scorer.calibration == reranker.scorer.calibration
    docs = make_docs()
    assert again.compress_documents(docs, QUERY) == reranker.compress_documents(docs, QUERY)


def test_settings_saved_by_the_previous_version_load(tiny_model_dir: Path) -> None:
    # Written by CrossEncoderRerank(...).model_dump_json(exclude={"scorer"}) before the
    # fields were derived from the scorer's signature.
    saved = json.loads(SAVED_V1.read_text(encoding="utf-8"))
    reranker = CrossEncoderRerank.model_validate(saved)
    for name, value in saved.items():
        assert getattr(reranker, name) == value, name
    settings = scorer_settings(reranker.scorer)
    for name in ("long_documents", "max_windows", "window_stride", "aggregation", "batch_size"):
        assert settings[name] == saved[name], name
    # On this machine the model is the tiny one; everything else as saved.
    here = CrossEncoderRerank.model_validate({**saved, "model": str(tiny_model_dir)})
    core = CrossEncoderScorer(
        tiny_model_dir, **{k: saved[k] for k in SCORER_OPTIONS if k in saved and k != "model"}
    )
    docs = long_docs(6, seed=5)
    out = here.compress_documents(docs, QUERY)
    hits = core.rerank(
        QUERY,
        texts_read(here, docs),
        top_k=4,
        score_threshold=0.01,
        min_relative_score=0.2,
        token_budget=500,
        passages=True,
        contents=[d.page_content for d in docs],
    ).hits
    assert ids_scores(out) == [(h.index, h.score) for h in hits]
    assert len(out) > 0


def test_settings_saved_before_the_long_document_options_load(tiny_model_dir: Path) -> None:
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
    assert reranker.scorer.long_documents == "truncate"


# ---------------------------------------------------------------------- results


def test_copies_keep_id_and_metadata_and_replace_an_old_score(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    docs = make_docs()
    docs[0].metadata["relevance_score"] = -1.0  # e.g. from an earlier stage
    docs[0].id = "kept-id"
    metadata_objects = [d.metadata for d in docs]
    out = CrossEncoderRerank(scorer=tiny_scorer, top_n=None).compress_documents(docs, QUERY)
    assert all(d.metadata is m for d, m in zip(docs, metadata_objects, strict=True))
    assert docs[0].metadata["relevance_score"] == -1.0
    for doc in out:
        assert all(doc is not d and doc.metadata is not d.metadata for d in docs)
    by_id = {d.metadata["id"]: d for d in out}
    assert by_id["d0"].id == "kept-id"
    assert by_id["d0"].metadata["relevance_score"] != -1.0
    assert (by_id["d0"].metadata["title"], by_id["d0"].metadata["tags"]) == ("title 0", ["x"])


def test_accepts_any_sequence(tiny_scorer: CrossEncoderScorer) -> None:
    reranker = CrossEncoderRerank(scorer=tiny_scorer)
    docs = make_docs()
    assert reranker.compress_documents(tuple(docs), QUERY) == reranker.compress_documents(
        docs, QUERY
    )


def test_metadata_alone_does_not_make_a_blank_document_scorable(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    docs = make_docs()
    docs.insert(1, Document(page_content=" \n", metadata={"id": "e1", "title": "paris"}))
    reranker = CrossEncoderRerank(scorer=tiny_scorer, top_n=None, metadata_keys_to_embed=["title"])
    out = reranker.compress_documents(docs, QUERY)
    assert len(out) == len(docs) - 1
    assert "e1" not in {d.metadata["id"] for d in out}


def test_metadata_keys_to_embed(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()
    docs[2].metadata["title"] = None  # left out
    del docs[3].metadata["title"]  # left out
    docs[4].metadata["title"] = 0  # a falsy value that is not blank: embedded
    expected_texts = [
        f"title: {d.metadata.get('title')}\nid: {d.metadata['id']}\n{d.page_content}" for d in docs
    ]
    expected_texts[2] = f"id: d2\n{docs[2].page_content}"
    expected_texts[3] = f"id: d3\n{docs[3].page_content}"
    assert expected_texts[4].startswith("title: 0\n")
    reranker = CrossEncoderRerank(
        scorer=tiny_scorer, top_n=None, metadata_keys_to_embed=["title", "missing", "id"]
    )
    assert texts_read(reranker, docs) == expected_texts
    out = list(reranker.compress_documents(docs, QUERY))
    assert ids_scores(out) == core_top(tiny_scorer, expected_texts)
    plain = CrossEncoderRerank(scorer=tiny_scorer, top_n=None).compress_documents(docs, QUERY)
    assert ids_scores(out) != ids_scores(plain)  # the metadata was read
    # The returned text is the Document's own page_content.
    assert {d.page_content for d in out} == {d.page_content for d in docs}


def test_embedding_separator(tiny_scorer: CrossEncoderScorer) -> None:
    docs = make_docs()[:2]
    reranker = CrossEncoderRerank(
        scorer=tiny_scorer, metadata_keys_to_embed=["title"], embedding_separator=" | "
    )
    assert texts_read(reranker, docs) == [
        f"title: title {i} | {d.page_content}" for i, d in enumerate(docs)
    ]


# ---------------------------------------------------------------------- async


class ThreadSpyRerank(CrossEncoderRerank):
    """Records the thread each compress_documents call ran on."""

    _threads: list[int] = PrivateAttr(default_factory=list)

    def compress_documents(self, documents: Any, query: str, callbacks: Any = None) -> Any:
        self._threads.append(threading.get_ident())
        return super().compress_documents(documents, query, callbacks)


@pytest.mark.asyncio
async def test_async_is_langchains_executor_around_the_sync_method(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    # One code path: the async method runs the sync one (as LangChain's own does, in its
    # executor with the run's context), adding only the deadline.
    reranker = ThreadSpyRerank(scorer=tiny_scorer, top_n=4)
    docs = make_docs()
    out = await reranker.acompress_documents(docs, QUERY)
    assert out == CrossEncoderRerank(scorer=tiny_scorer, top_n=4).compress_documents(docs, QUERY)
    assert reranker._threads[0] != threading.get_ident()  # off the event loop's thread
    assert await reranker.acompress_documents([], QUERY) == []
    assert len(reranker._threads) == 2


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


# ---------------------------------------------------------------------- long documents

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
    texts = texts_read(reranker, docs)
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


# ---------------------------------------------------------------------- first-stage fusion


def test_fusion_reads_the_first_stage_score_from_the_configured_metadata_key(
    tiny_model_dir: Path,
) -> None:
    docs = make_docs()
    for i, doc in enumerate(docs):
        doc.metadata["_score"] = float((7 * i) % 5)  # an Elasticsearch-style hit's key
    reranker = CrossEncoderRerank(model=str(tiny_model_dir), top_n=6, fusion="linear",
                                  fusion_weight=0.4, first_stage_key="_score")
    got = reranker.compress_documents(docs, QUERY)
    want = reranker.scorer.rerank(QUERY, [d.page_content for d in docs],
                                  first_stage_scores=[d.metadata["_score"] for d in docs])
    assert ids_scores(got) == [(h.index, h.score) for h in want.hits]
    assert [d.metadata["crossrank_model_score"] for d in got] == [h.model_score for h in want.hits]
    saved = json.loads(reranker.model_dump_json())
    assert CrossEncoderRerank.model_validate(saved).first_stage_key == "_score"
    # The default key is "score"; a Document without it is named, with the keys it has.
    default = CrossEncoderRerank(model=str(tiny_model_dir), fusion="rrf")
    with pytest.raises(ValueError, match=r"documents\[0\]\.metadata\['score'\] is missing \(None"
                       r"\).*keys are \['_score', 'id', 'tags', 'title'\]: set first_stage_key"):
        default.compress_documents(docs, QUERY)

