"""LangChain's BaseCrossEncoder interface, both ways, with the tiny model.

- crossrank under langchain-classic's ``CrossEncoderReranker``: ``CrossrankCrossEncoder``.
- LangChain cross-encoders under crossrank's compressor: ``CrossEncoderRerank(model=...)``
  with ``FakeCrossEncoder`` and ``HuggingFaceCrossEncoder`` (langchain-community).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_classic.retrievers.document_compressors.cross_encoder import (
    BaseCrossEncoder as ClassicBaseCrossEncoder,
)
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic_core import PydanticSerializationError

from crossrank import CrossEncoderScorer
from crossrank.adapters import SCORER_OPTIONS, scorer_settings
from langchain_crossrank import CrossEncoderRerank, CrossrankCrossEncoder

QUERY = "what is the capital of france"
TEXTS = [
    "paris is the capital of france",
    "berlin is the capital city of germany",
    "the cat and the dog",
    "cancer risk in patients",
    "blood and brain and heart",
    "a study of protein and gene",
]


def make_docs(texts: list[str] = TEXTS) -> list[Document]:
    return [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]


class ListRetriever(BaseRetriever):
    """Returns the same Documents for every query."""

    documents: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return list(self.documents)


@pytest.fixture(scope="module")
def community() -> Any:
    """langchain_community.cross_encoders (its package warns that it is being sunset)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("langchain_community.cross_encoders")


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: Path) -> CrossrankCrossEncoder:
    return CrossrankCrossEncoder(model=tiny_model_dir, device="cpu")


# ---------------------------------------------------------------------- CrossrankCrossEncoder


def test_is_a_langchain_cross_encoder_at_its_import_path(encoder: CrossrankCrossEncoder) -> None:
    assert isinstance(encoder, ClassicBaseCrossEncoder)  # what CrossEncoderReranker checks
    assert CrossrankCrossEncoder.__module__ == "langchain_crossrank.cross_encoder"
    for name, field in CrossrankCrossEncoder.model_fields.items():
        assert field.description, name
    assert set(CrossrankCrossEncoder.model_fields) == {*SCORER_OPTIONS, "scorer"}
    for name, default in SCORER_OPTIONS.items():
        field = CrossrankCrossEncoder.model_fields[name]
        assert field.get_default(call_default_factory=True) == default, name


def test_scores_are_the_cores_in_pair_order_across_queries(
    encoder: CrossrankCrossEncoder, tiny_scorer: CrossEncoderScorer
) -> None:
    other = "cat dog"
    pairs = [(QUERY if i % 3 else other, text) for i, text in enumerate(TEXTS)]
    pairs.append([QUERY, TEXTS[0]])  # type: ignore[arg-type]  # lists work too
    scores = encoder.score(pairs)
    expected = [tiny_scorer.score(query, [text])[0] for query, text in pairs]
    assert scores == pytest.approx(expected, abs=1e-6)
    assert all(type(s) is float for s in scores)
    assert scores[0] != scores[-1]  # same text, other query


def test_no_pairs_give_nothing_without_loading(tiny_model_dir: Path) -> None:
    encoder = CrossrankCrossEncoder(model=tiny_model_dir)
    assert encoder.score([]) == []
    assert not encoder.scorer.is_loaded


def test_a_blank_text_scores_minus_infinity(encoder: CrossrankCrossEncoder) -> None:
    scores = encoder.score([(QUERY, TEXTS[0]), (QUERY, ""), (QUERY, " \n"), (QUERY, TEXTS[1])])
    assert scores[1] == scores[2] == float("-inf")
    assert min(scores[0], scores[3]) > float("-inf")


@pytest.mark.parametrize(
    ("pairs", "error", "message"),
    [
        ([(QUERY, "a", "b")], TypeError, r"text_pairs\[0\] must be a \(query, text\) pair"),
        ([(QUERY, "a"), "ab"], TypeError, r"text_pairs\[1\] must be a \(query, text\) pair"),
        ([("  ", "a")], ValueError, "query must contain non-whitespace text"),
        ([(QUERY, 3)], TypeError, r"texts\[0\] must be a string"),
    ],
)
def test_bad_pairs_are_refused(
    encoder: CrossrankCrossEncoder, pairs: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        encoder.score(pairs)


def test_settings_reach_the_scorer_and_round_trip(tiny_model_dir: Path) -> None:
    encoder = CrossrankCrossEncoder(
        model=tiny_model_dir, device="cpu", activation="raw", max_length=64, token="hf_secret"
    )
    assert (encoder.scorer.activation, encoder.scorer.requested_max_length) == ("raw", 64)
    assert encoder.scorer.token == "hf_secret"
    saved = encoder.model_dump_json()
    assert "hf_secret" not in saved and "scorer" not in json.loads(saved)
    again = CrossrankCrossEncoder.model_validate_json(saved)
    assert scorer_settings(again.scorer) == scorer_settings(encoder.scorer)
    assert again.score([(QUERY, TEXTS[0])]) == encoder.score([(QUERY, TEXTS[0])])


def test_huggingface_cross_encoders_arguments_give_its_scores(
    community: Any, tiny_model_dir: Path
) -> None:
    """``HuggingFaceCrossEncoder(model_name=..., model_kwargs=...)`` code runs unchanged with
    the class renamed, and scores as the peer does (side by side)."""
    arguments = {
        "model_name": str(tiny_model_dir),
        "model_kwargs": {"device": "cpu", "max_length": 16, "backend": "torch"},
    }
    peer = community.HuggingFaceCrossEncoder(**arguments)
    ours = CrossrankCrossEncoder(**arguments)
    assert ours.model_name == peer.model_name == str(tiny_model_dir)
    assert (ours.device, ours.max_length, ours.backend, ours.model_kwargs) == (
        "cpu", 16, "torch", None
    )  # fmt: skip
    pairs = [(QUERY, text * 3) for text in TEXTS]  # some longer than 16 tokens
    assert ours.score(pairs) == pytest.approx(list(peer.score(pairs)), abs=1e-5)
    assert ours.scorer.truncated_texts > 0  # max_length reached the scorer
    # The nested model_kwargs go to from_pretrained; activation_fn sets the activation.
    import torch

    raw = CrossrankCrossEncoder(
        model_name=str(tiny_model_dir),
        model_kwargs={
            "device": "cpu",
            "activation_fn": torch.nn.Identity(),
            "model_kwargs": {"attn_implementation": "eager"},
        },
    )
    assert raw.activation == "raw"
    assert raw.scorer.model_kwargs == {"attn_implementation": "eager"}
    raw_peer = community.HuggingFaceCrossEncoder(
        model_name=str(tiny_model_dir),
        model_kwargs={"device": "cpu", "activation_fn": torch.nn.Identity()},
    )
    assert raw.score(pairs[:2]) == pytest.approx(list(raw_peer.score(pairs[:2])), abs=1e-5)
    # Saved and loaded back: the same settings, in crossrank's own fields.
    again = CrossrankCrossEncoder.model_validate_json(raw.model_dump_json())
    assert scorer_settings(again.scorer) == scorer_settings(raw.scorer)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"model_kwargs": {"prompts": {"q": "query: "}}},
         r"model_kwargs\['prompts'\] is a sentence-transformers CrossEncoder argument"),
        ({"device": "cpu", "model_kwargs": {"device": "cuda"}},
         r"model_kwargs\['device'\]='cuda' and device='cpu' disagree"),
        ({"model": "a", "model_name": "b"}, "model_name='b' and model='a' name two models"),
        ({"model_kwargs": {"activation_fn": "softmax"}},
         r"activation_fn'\] must be torch.nn.Sigmoid\(\), torch.nn.Identity\(\) or None"),
    ],
)  # fmt: skip
def test_huggingface_cross_encoder_arguments_that_cannot_hold_are_refused(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CrossrankCrossEncoder(**arguments)


def test_a_given_scorer_is_shared(tiny_scorer: CrossEncoderScorer) -> None:
    encoder = CrossrankCrossEncoder(scorer=tiny_scorer)
    assert encoder.scorer is tiny_scorer
    assert encoder.model == tiny_scorer.model_name
    with pytest.raises(ValueError, match=r"either scorer or the scorer settings.*device='cpu'"):
        CrossrankCrossEncoder(scorer=tiny_scorer, device="cpu")


def test_inside_langchain_classics_cross_encoder_reranker(
    encoder: CrossrankCrossEncoder, tiny_scorer: CrossEncoderScorer
) -> None:
    docs = make_docs()
    peer = CrossEncoderReranker(model=encoder)  # the peer's class, its default top_n=3
    out = peer.compress_documents(docs, QUERY)
    expected = [hit.index for hit in tiny_scorer.rank(QUERY, TEXTS, top_k=3)]
    assert [d.metadata["i"] for d in out] == expected
    assert all(d is docs[d.metadata["i"]] for d in out)  # the peer returns the same objects
    assert peer.compress_documents([], QUERY) == []


@pytest.mark.asyncio
async def test_in_a_contextual_compression_retriever(
    encoder: CrossrankCrossEncoder, tiny_scorer: CrossEncoderScorer
) -> None:
    retriever = ContextualCompressionRetriever(
        base_compressor=CrossEncoderReranker(model=encoder, top_n=4),
        base_retriever=ListRetriever(documents=make_docs()),
    )
    expected = [hit.index for hit in tiny_scorer.rank(QUERY, TEXTS, top_k=4)]
    assert [d.metadata["i"] for d in retriever.invoke(QUERY)] == expected
    assert [d.metadata["i"] for d in await retriever.ainvoke(QUERY)] == expected


# ---------------------------------------------------------------------- model=BaseCrossEncoder


def test_a_fake_cross_encoder_as_model(community: Any) -> None:
    fake = community.FakeCrossEncoder()
    texts = ["aaa1", "bbb1", "aaa2", "bbb2", "aaa3", "bbb3"]
    docs = make_docs(texts)
    reranker = CrossEncoderRerank(model=fake)  # top_n=3, as the peer
    out = reranker.compress_documents(docs, "bbb2")
    expected = sorted(range(6), key=lambda i: -fake.score([("bbb2", texts[i])])[0])[:3]
    assert [d.metadata["i"] for d in out] == expected
    assert out[0].page_content == "bbb2"
    for doc in out:  # the model's own score, as a Python float, in a copy
        (score,) = fake.score([("bbb2", doc.page_content)])
        assert doc.metadata["relevance_score"] == score
        assert type(doc.metadata["relevance_score"]) is float
        assert doc is not docs[doc.metadata["i"]]
    assert all("relevance_score" not in d.metadata for d in docs)
    assert reranker.compress_documents([], "bbb2") == []


def test_a_model_object_gets_crossranks_selection(
    community: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = community.FakeCrossEncoder()
    texts = ["bbb2", "", "bbb1", "aaa1", "  ", "bbb3"]
    scores = fake.score([("bbb2", t) for t in texts])
    threshold = sorted(scores[i] for i in (0, 2, 3, 5))[1]
    reranker = CrossEncoderRerank(model=fake, top_n=None, score_threshold=threshold)
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        out = reranker.compress_documents(make_docs(texts), "bbb2")
    kept = [i for i in sorted((0, 2, 3, 5), key=lambda i: -scores[i]) if scores[i] >= threshold]
    assert [d.metadata["i"] for d in out] == kept  # blank ones neither scored nor returned
    assert "2 of 6 candidates have no text" in caplog.text
    with pytest.raises(ValueError, match="query must contain non-whitespace text"):
        reranker.compress_documents(make_docs(texts), " ")


@pytest.mark.parametrize(
    "options",
    [
        {"device": "cpu"},
        {"token_budget": 100},
        {"passage_only": True},
        {"long_documents": "chunk"},
        {"fusion": "linear"},
        {"scorer": "tiny"},
    ],
)
def test_a_model_object_refuses_what_needs_crossranks_scorer(
    community: Any, tiny_scorer: CrossEncoderScorer, options: dict[str, Any]
) -> None:
    if options.get("scorer") == "tiny":
        options = {"scorer": tiny_scorer}
    with pytest.raises(ValueError, match=r"FakeCrossEncoder.*is a LangChain BaseCrossEncoder") as e:
        CrossEncoderRerank(model=community.FakeCrossEncoder(), **options)
    assert f"{next(iter(options))}=" in str(e.value)


def test_a_model_object_refuses_an_instruction_in_the_run_metadata(community: Any) -> None:
    from langchain_core.callbacks import CallbackManager

    reranker = CrossEncoderRerank(model=community.FakeCrossEncoder())
    callbacks = CallbackManager([], metadata={"crossrank_instruction": "find the b texts"})
    with pytest.raises(ValueError, match="FakeCrossEncoder scores pairs itself and takes no"):
        reranker.compress_documents(make_docs(["aaa1", "bbb1"]), "bbb1", callbacks=callbacks)


def test_a_model_object_refuses_a_relative_cut(community: Any) -> None:
    # Its scores are the model's own: nothing says they are non-negative.
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        CrossEncoderRerank(model=community.FakeCrossEncoder(), min_relative_score=0.5)


def test_a_model_object_is_not_saved(community: Any) -> None:
    reranker = CrossEncoderRerank(model=community.FakeCrossEncoder())
    with pytest.raises(PydanticSerializationError, match="has no saved form"):
        reranker.model_dump_json()


@pytest.mark.asyncio
async def test_a_model_object_async_equals_sync(community: Any) -> None:
    reranker = CrossEncoderRerank(model=community.FakeCrossEncoder(), top_n=4)
    docs = make_docs(["aaa1", "bbb1", "aaa2", "bbb2"])
    assert await reranker.acompress_documents(docs, "bbb2") == reranker.compress_documents(
        docs, "bbb2"
    )


def test_huggingface_cross_encoder_as_model_ranks_as_crossrank(
    community: Any, tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    hf = community.HuggingFaceCrossEncoder(
        model_name=str(tiny_model_dir), model_kwargs={"device": "cpu"}
    )
    docs = make_docs()
    out = CrossEncoderRerank(model=hf, top_n=None).compress_documents(docs, QUERY)
    ours = CrossEncoderRerank(scorer=tiny_scorer, top_n=None).compress_documents(docs, QUERY)
    # sentence-transformers applies the same sigmoid to the same one-logit model.
    assert [d.metadata["i"] for d in out] == [d.metadata["i"] for d in ours]
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx(
        [d.metadata["relevance_score"] for d in ours], abs=1e-5
    )
    assert all(type(d.metadata["relevance_score"]) is float for d in out)


def test_crossrank_cross_encoder_as_model_equals_the_model_id(
    encoder: CrossrankCrossEncoder, tiny_model_dir: Path
) -> None:
    docs = make_docs()
    through_interface = CrossEncoderRerank(model=encoder, top_n=4).compress_documents(docs, QUERY)
    direct = CrossEncoderRerank(model=tiny_model_dir, device="cpu", top_n=4).compress_documents(
        docs, QUERY
    )
    assert [d.metadata["i"] for d in through_interface] == [d.metadata["i"] for d in direct]
    assert [d.metadata["relevance_score"] for d in through_interface] == pytest.approx(
        [d.metadata["relevance_score"] for d in direct], abs=1e-9
    )
