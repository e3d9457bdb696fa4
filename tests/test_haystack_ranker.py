"""What only the Haystack ranker has, on the tiny random model (offline, fast).

What every adapter must do is in tests/test_adapters_contract.py; the drop-in behaviours
for SentenceTransformersSimilarityRanker users are in tests/test_haystack_dropin.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from haystack import Document, Pipeline
from haystack.utils import ComponentDevice, Secret
from haystack.utils.device import Device, DeviceMap

import haystack_integrations.components.rankers.crossrank as package
from crossrank import CrossEncoderScorer
from crossrank.adapters import SCORER_OPTIONS
from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker

TYPE_PATH = "haystack_integrations.components.rankers.crossrank.ranker.CrossEncoderRanker"
CPU = ComponentDevice.from_str("cpu")
QUERY = "what is the capital of france"
TEXTS = [
    "berlin is the capital of germany",
    "paris is the capital of france",
    "the cat and the dog",
    "cells and genes in cancer studies",
    "paris",
    "a study of blood and brain",
]


def _docs(texts: list[str] = TEXTS) -> list[Document]:
    return [Document(id=f"d{i}", content=t, meta={"n": i}) for i, t in enumerate(texts)]


def _ranker(tiny_model_dir: Path, **kwargs: Any) -> CrossEncoderRanker:
    kwargs.setdefault("device", CPU)
    return CrossEncoderRanker(model=str(tiny_model_dir), **kwargs)


def _ids_scores(docs: list[Document]) -> list[tuple[str, float | None]]:
    return [(d.id, d.score) for d in docs]


# ---------------------------------------------------------------------- public surface


def test_all_is_pinned() -> None:
    assert package.__all__ == ["CrossEncoderRanker"]


def test_type_path_is_pinned(tiny_model_dir: Path) -> None:
    # Saved pipelines store this path: it is public API.
    assert _ranker(tiny_model_dir).to_dict()["type"] == TYPE_PATH


def test_sockets(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir)
    inputs = ranker.__haystack_input__._sockets_dict  # type: ignore[attr-defined]
    assert list(inputs) == [
        "query",
        "documents",
        "top_k",
        "score_threshold",
        "min_relative_score",
        "token_budget",
        "scale_score",
        "instruction",
        "deadline_ms",
    ]
    assert not inputs["instruction"].is_mandatory  # an optional socket, default None
    assert not inputs["deadline_ms"].is_mandatory
    assert list(ranker.__haystack_output__._sockets_dict) == ["documents"]  # type: ignore[attr-defined]
    assert ranker.__haystack_supports_async__  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- validation


# Haystack's own parameters; the scorer settings and the selection are checked by the core and
# the shared layer, for every adapter (tests/test_adapters_contract.py).
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"device": "cpu"},
            TypeError,
            "device must be a haystack ComponentDevice or None, got str 'cpu'",
        ),
        (
            {"meta_fields_to_embed": "title"},
            TypeError,
            "meta_fields_to_embed must be a list of strings",
        ),
        (
            {"meta_fields_to_embed": ["title", 3]},
            TypeError,
            "meta_fields_to_embed[1] must be a string, got int 3",
        ),
        (
            {"embedding_separator": None},
            TypeError,
            "embedding_separator must be a string, got NoneType None",
        ),
        ({"query_prefix": 1}, TypeError, "query_prefix must be a string, got int 1"),
        ({"document_prefix": b"x"}, TypeError, "document_prefix must be a string, got bytes"),
        ({"scale_score": None}, TypeError, "scale_score must be True or False, got NoneType"),
        ({"passage_only": "yes"}, TypeError, "passage_only must be True or False, got str 'yes'"),
        ({"top_k": -1}, ValueError, "top_k must be >= 1, got -1"),
        ({"model": "  "}, TypeError, "model must be a model id or a folder path, got '  '"),
    ],
)
def test_init_validation(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    kwargs.setdefault("model", "some/model")
    with pytest.raises(error) as info:
        CrossEncoderRanker(**kwargs)
    assert message in str(info.value)


def test_device_map_is_refused() -> None:
    device_map = DeviceMap({"layer": Device.cpu()})
    with pytest.raises(ValueError, match="device must be a single device, got the device map"):
        CrossEncoderRanker(model="m", device=ComponentDevice.from_multiple(device_map))


def test_token_message_does_not_echo_the_token() -> None:
    with pytest.raises(TypeError, match="token must be a haystack Secret or None, got str") as info:
        CrossEncoderRanker(model="m", token="hf_secret_value")  # type: ignore[arg-type]
    assert "hf_secret_value" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"query": ""}, ValueError, "query must contain non-whitespace text, got ''"),
        ({"query": None}, TypeError, "query must be a string, got NoneType None"),
        (
            {"documents": "a text"},
            TypeError,
            "documents must be a list of haystack Documents, got str",
        ),
        ({"documents": ["a text"]}, TypeError, "documents[0] must be a haystack Document, got str"),
        ({"top_k": 0}, ValueError, "top_k must be >= 1, got 0"),
        ({"score_threshold": "high"}, TypeError, "score_threshold must be a number or None"),
        ({"min_relative_score": -0.1}, ValueError, "min_relative_score must be in [0, 1]"),
        ({"min_relative_score": True}, TypeError, "min_relative_score must be a number"),
        ({"token_budget": 0}, ValueError, "token_budget must be >= 1, got 0"),
        ({"token_budget": "100"}, TypeError, "token_budget must be an int >= 1, got str"),
        ({"scale_score": "no"}, TypeError, "scale_score must be True or False, got str 'no'"),
    ],
)
def test_run_validation(
    tiny_model_dir: Path, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    ranker = _ranker(tiny_model_dir)
    call = {"query": QUERY, "documents": _docs(), **kwargs}
    with pytest.raises(error) as info:
        ranker.run(**call)
    assert message in str(info.value)
    assert not ranker._scorer.is_loaded


def test_model_defaults_to_env_then_core_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    assert CrossEncoderRanker().model == "cross-encoder/ms-marco-MiniLM-L6-v2"
    monkeypatch.setenv("CROSSRANK_MODEL", "my/model")
    assert CrossEncoderRanker().model == "my/model"


# ---------------------------------------------------------------------- loading


async def _run_async_empty(ranker: CrossEncoderRanker) -> dict[str, list[Document]]:
    return await ranker.run_async(query=QUERY, documents=[])


def test_run_async_empty_input_does_not_load(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir)
    assert asyncio.run(_run_async_empty(ranker)) == {"documents": []}
    assert not ranker._scorer.is_loaded


def test_run_warms_up_by_itself(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir)
    ranker.run(query=QUERY, documents=_docs())
    assert ranker._scorer.is_loaded


def test_warm_up_is_idempotent(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir)
    ranker.warm_up()
    loaded = ranker._scorer._loaded
    ranker.warm_up()
    assert ranker._scorer._loaded is loaded


@pytest.mark.asyncio
async def test_warm_up_async(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir)
    await ranker.warm_up_async()
    assert ranker._scorer.is_loaded


def test_token_is_resolved_when_loading(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSRANK_TEST_TOKEN", "hf_abc")
    ranker = _ranker(tiny_model_dir, token=Secret.from_env_var("CROSSRANK_TEST_TOKEN"))
    assert ranker._scorer.token is None  # not read at construction
    ranker.warm_up()
    assert ranker._scorer.token == "hf_abc"


# ---------------------------------------------------------------------- scoring


def test_top_k_and_threshold_per_call_override_init(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, top_k=2)
    docs = _docs()
    assert len(ranker.run(query=QUERY, documents=docs)["documents"]) == 2
    assert len(ranker.run(query=QUERY, documents=docs, top_k=4)["documents"]) == 4

    everything = ranker.run(query=QUERY, documents=docs, top_k=len(docs))["documents"]
    scores = [d.score for d in everything]
    cut = scores[2]  # keeps exactly three
    assert [
        d.score
        for d in ranker.run(query=QUERY, documents=docs, top_k=6, score_threshold=cut)["documents"]
    ] == scores[:3]

    strict = _ranker(tiny_model_dir, top_k=None, score_threshold=2.0)  # sigmoid never reaches 2
    assert strict.run(query=QUERY, documents=docs)["documents"] == []
    assert len(strict.run(query=QUERY, documents=docs, score_threshold=0.0)["documents"]) == len(
        docs
    )
    # A per-call threshold of 0.0 is a real value, not "use the default".
    assert (
        len(strict.run(query=QUERY, documents=docs, score_threshold=0.0, top_k=1)["documents"]) == 1
    )


def test_documents_without_content_are_skipped_and_reported(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ranker = _ranker(
        tiny_model_dir, top_k=None, meta_fields_to_embed=["title"], document_prefix="d: "
    )
    docs = [
        Document(id="none", content=None, meta={"title": "paris"}),
        Document(id="empty", content=""),
        Document(id="blank", content="  \n "),
        Document(id="ok", content="paris is the capital of france"),
    ]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        out = ranker.run(query=QUERY, documents=docs)["documents"]
    assert [d.id for d in out] == ["ok"]
    assert "3 of 4 candidates have no text" in caplog.text


def test_only_empty_documents_return_nothing_without_loading(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir)
    out = ranker.run(query=QUERY, documents=[Document(id="x", content=""), Document(id="y")])
    assert out == {"documents": []}
    assert not ranker._scorer.is_loaded


def test_duplicate_ids_keep_the_higher_incoming_score(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    docs = [
        Document(id="a", content="the cat and the dog", score=0.2),
        Document(id="b", content="berlin is the capital of germany"),
        Document(id="a", content="paris is the capital of france", score=0.9),
        Document(id="b", content="cells and genes", score=None),  # a tie (None): first kept
        Document(id="a", content="blood and brain", score=0.5),
    ]
    out = _ranker(tiny_model_dir, top_k=None).run(query=QUERY, documents=docs)["documents"]
    assert sorted(d.id for d in out) == ["a", "b"]
    contents = {d.id: d.content for d in out}
    assert contents == {
        "a": "paris is the capital of france",
        "b": "berlin is the capital of germany",
    }
    expected = tiny_scorer.score(QUERY, [contents["a"], contents["b"]])
    assert {d.id: d.score for d in out} == {"a": expected[0], "b": expected[1]}


# ---------------------------------------------------------------------- serialization


def test_to_dict(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, top_k=3, meta_fields_to_embed=["title"], max_length=64)
    data = ranker.to_dict()
    assert data["type"] == TYPE_PATH
    params = data["init_parameters"]
    own = {
        "device": {"type": "single", "device": "cpu"},
        "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
        "top_k": 3,
        "query_prefix": "",
        "query_suffix": "",
        "document_prefix": "",
        "document_suffix": "",
        "meta_fields_to_embed": ["title"],
        "embedding_separator": "\n",
        "scale_score": True,
        "score_threshold": None,
        "min_relative_score": None,
        "token_budget": None,
        "passage_only": False,
    }
    assert {k: params[k] for k in own} == own
    # Every other entry is a scorer setting, with its default unless given.
    rest = {k: v for k, v in params.items() if k not in own}
    assert set(rest) == set(SCORER_OPTIONS) - {"device", "token"}
    assert (rest.pop("model"), rest.pop("max_length")) == (str(tiny_model_dir), 64)
    assert rest == {k: SCORER_OPTIONS[k] for k in rest}
    assert json.loads(json.dumps(data)) == data


def test_to_dict_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    params = CrossEncoderRanker(token=None, scale_score=False, cache_dir=Path("/tmp/m")).to_dict()[
        "init_parameters"
    ]
    assert params["model"] == "cross-encoder/ms-marco-MiniLM-L6-v2"
    assert params["device"] == ComponentDevice.resolve_device(None).to_dict()
    assert params["token"] is None
    assert (params["activation"], params["scale_score"]) == ("sigmoid", False)
    assert params["cache_dir"] == "/tmp/m"
    assert params["meta_fields_to_embed"] == []


def test_from_dict_round_trip(tiny_model_dir: Path) -> None:
    ranker = _ranker(
        tiny_model_dir,
        top_k=4,
        score_threshold=0.1,
        token=Secret.from_env_var("SOME_TOKEN", strict=False),
        meta_fields_to_embed=["title"],
        query_prefix="q: ",
        activation="raw",
        batch_size=2,
        max_length=48,
        max_tokens_per_batch=256,
        local_files_only=True,
    )
    data = ranker.to_dict()
    frozen = copy.deepcopy(data)
    again = CrossEncoderRanker.from_dict(data)
    assert data == frozen  # from_dict leaves its input alone
    assert again.to_dict() == data
    assert again.device == CPU
    assert again.token == Secret.from_env_var("SOME_TOKEN", strict=False)
    docs = _docs()
    assert _ids_scores(again.run(query=QUERY, documents=docs)["documents"]) == _ids_scores(
        ranker.run(query=QUERY, documents=docs)["documents"]
    )


def test_from_dict_with_minimal_data() -> None:
    ranker = CrossEncoderRanker.from_dict({"type": TYPE_PATH, "init_parameters": {"model": "m"}})
    assert ranker.model == "m"
    assert ranker.device == ComponentDevice.resolve_device(None)
    assert ranker.top_k == 10
    assert ranker.scale_score is True


def test_pipeline_yaml_round_trip(tiny_model_dir: Path) -> None:
    pipeline = Pipeline()
    pipeline.add_component("ranker", _ranker(tiny_model_dir, top_k=3))
    yaml_text = pipeline.dumps()
    assert TYPE_PATH in yaml_text
    loaded = Pipeline.loads(yaml_text)
    docs = _docs()
    first = pipeline.run({"ranker": {"query": QUERY, "documents": docs}})["ranker"]["documents"]
    second = loaded.run({"ranker": {"query": QUERY, "documents": docs}})["ranker"]["documents"]
    assert len(first) == 3
    assert _ids_scores(first) == _ids_scores(second)


# ---------------------------------------------------------------------- long documents
# Long documents, the evidence budget, passage hand-off and calibrated scores, with what only
# Haystack has: prefixes, embedded meta fields, duplicate ids and per-call values.

LONG_TEXT = (
    " ".join(["the cat and the dog"] * 40)
    + " the drug and blood cells in cancer patients "
    + " ".join(["a study of genes"] * 30)
)
PASSAGE_TEXTS = [
    LONG_TEXT,
    "paris is the capital of france",
    " ".join(["blood and brain"] * 50) + " paris is the capital of france",
    "the heart and the drug dose",
]


def _tokens(scorer: CrossEncoderScorer, docs: list[Document]) -> int:
    """Tokens handed on: the model's tokenizer over the returned contents."""
    return sum(scorer.count_tokens([d.content or "" for d in docs])) if docs else 0


def _long_docs(texts: list[str] = PASSAGE_TEXTS) -> list[Document]:
    return [
        Document(id=f"p{i}", content=t, meta={"title": f"paper {i}", "tags": ["x"]}, score=0.5)
        for i, t in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    from crossrank.calibration import Calibration, save_calibration

    return save_calibration(
        tmp_path_factory.mktemp("calibration") / "tiny-calibration.json",
        {"platt": Calibration("platt", 2.0, -1.0)},
        method="platt",
        model=str(tiny_model_dir),
    )


def test_per_call_raw_relative_cut_fails_before_loading(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, activation="raw")
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        ranker.run(query=QUERY, documents=_docs(), min_relative_score=0.5)
    assert not ranker._scorer.is_loaded


@pytest.mark.parametrize("long_documents", ["truncate", "chunk"])
@pytest.mark.parametrize("passage_only", [False, True])
def test_token_budget_is_never_exceeded(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer, long_documents: str, passage_only: bool
) -> None:
    texts = [*PASSAGE_TEXTS, *TEXTS]
    docs = [Document(id=f"t{i}", content=t) for i, t in enumerate(texts)]
    ranker = _ranker(
        tiny_model_dir,
        top_k=None,
        long_documents=long_documents,
        passage_only=passage_only,
        document_prefix="d: ",
    )
    core = CrossEncoderScorer(tiny_model_dir, device="cpu", long_documents=long_documents)
    scored = ["d: " + t for t in texts]
    unlimited = ranker.run(query=QUERY, documents=docs)["documents"]
    sizes = []
    for budget in (1, 30, 120, 10_000):
        out = ranker.run(query=QUERY, documents=docs, token_budget=budget)["documents"]
        assert _tokens(tiny_scorer, out) <= budget
        # The core's selection, best first: a prefix of the unlimited ranking.
        hits = core.rerank(
            QUERY,
            scored,
            token_budget=budget,
            passages=passage_only,
            contents=texts if passage_only else None,
        ).hits
        assert [d.id for d in out] == [f"t{h.index}" for h in hits]
        assert [d.id for d in out] == [d.id for d in unlimited[: len(out)]]
        sizes.append(len(out))
    assert sizes == sorted(sizes) and sizes[-1] == len(docs)  # a larger budget keeps more
    assert any(n < len(docs) for n in sizes)  # the budget did cut somewhere


def test_token_budget_init_and_per_call(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    ranker = _ranker(tiny_model_dir, top_k=None, token_budget=12)
    docs = _docs()
    out = ranker.run(query=QUERY, documents=docs)["documents"]
    assert 0 < len(out) < len(docs)
    assert _tokens(tiny_scorer, out) <= 12
    assert len(ranker.run(query=QUERY, documents=docs, token_budget=1000)["documents"]) == len(docs)
    # top_k is applied before the budget.
    assert (
        len(ranker.run(query=QUERY, documents=docs, top_k=1, token_budget=1000)["documents"]) == 1
    )


def test_min_relative_score_equals_core_select(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    from crossrank import select

    scores = tiny_scorer.score(QUERY, TEXTS)
    ordered = sorted(scores, reverse=True)
    fraction = (ordered[2] + ordered[3]) / 2 / ordered[0]  # keeps exactly three
    expected = [f"d{i}" for i in select(scores, min_relative_score=fraction)]
    assert len(expected) == 3

    ranker = _ranker(tiny_model_dir, top_k=None, min_relative_score=fraction)
    out = ranker.run(query=QUERY, documents=_docs())["documents"]
    assert [d.id for d in out] == expected
    assert [d.score for d in out] == [scores[int(i[1:])] for i in expected]
    # Per call: 0.0 is a real value (keeps all), None uses the init value.
    assert len(ranker.run(query=QUERY, documents=_docs(), min_relative_score=0.0)["documents"]) == 6
    plain = _ranker(tiny_model_dir, top_k=None)
    per_call = plain.run(query=QUERY, documents=_docs(), min_relative_score=fraction)["documents"]
    assert [d.id for d in per_call] == expected
    # Applied before top_k.
    assert [
        d.id for d in ranker.run(query=QUERY, documents=_docs(), top_k=2)["documents"]
    ] == expected[:2]


@pytest.mark.parametrize("long_documents", ["chunk", "truncate"])
def test_passage_only_hands_on_the_best_passage(tiny_model_dir: Path, long_documents: str) -> None:
    from crossrank import passage_span

    kwargs: dict[str, Any] = {
        "top_k": None,
        "long_documents": long_documents,
        "meta_fields_to_embed": ["title"],
        "embedding_separator": " | ",
        "document_prefix": "d: ",
    }
    docs = _long_docs()
    # A duplicate id with a lower incoming score: collapsed, never handed on.
    docs.append(Document(id="p1", content="the cat", meta={"title": "dup"}, score=0.1))
    before = copy.deepcopy(docs)
    out = _ranker(tiny_model_dir, passage_only=True, **kwargs).run(query=QUERY, documents=docs)
    whole = _ranker(tiny_model_dir, **kwargs).run(query=QUERY, documents=docs)["documents"]
    assert docs == before  # the caller's Documents are not changed
    assert all(d.score == 0.5 for d in docs[:-1])

    originals = {d.id: d for d in docs[:-1]}
    scored = {i: f"d: {d.meta['title']} | {d.content}" for i, d in originals.items()}
    core = CrossEncoderScorer(tiny_model_dir, device="cpu", long_documents=long_documents)
    ids = list(scored)
    hits = {ids[h.index]: h for h in core.rank(QUERY, [scored[i] for i in ids])}

    got = out["documents"]
    assert _ids_scores(got) == _ids_scores(whole)  # same selection, same scores
    for doc in got:
        original = originals[doc.id]
        assert original.content is not None
        start, end = doc.meta["crossrank_span"]
        assert (start, end) == passage_span(scored[doc.id], original.content, hits[doc.id].span)
        assert doc.content == original.content[start:end]
        assert {k: v for k, v in doc.meta.items() if k != "crossrank_span"} == original.meta
        assert "crossrank_span" not in original.meta
        assert doc.id == original.id
    long_out = {d.id: d for d in got}["p0"]
    assert len(long_out.content or "") < len(LONG_TEXT)  # the model read less than all of it
    short_out = {d.id: d for d in got}["p1"]
    assert short_out.content == "paris is the capital of france"
    assert short_out.meta["crossrank_span"] == [0, len(short_out.content)]
    # Without passage_only, contents are whole and no key is added.
    assert all("crossrank_span" not in d.meta for d in whole)
    assert {d.id: d.content for d in whole} == {i: d.content for i, d in originals.items()}


def test_passage_only_keeps_content_whole_when_the_passage_is_in_the_meta(
    tiny_model_dir: Path,
) -> None:
    # Truncate mode reads the first 128 tokens: here all of them are the embedded title.
    docs = [
        Document(id="a", content="paris is the capital of france", meta={"title": "cat " * 200}),
        Document(id="b", content="the cat and the dog", meta={"title": "short"}),
    ]
    ranker = _ranker(tiny_model_dir, top_k=None, passage_only=True, meta_fields_to_embed=["title"])
    out = {d.id: d for d in ranker.run(query=QUERY, documents=docs)["documents"]}
    assert out["a"].content == "paris is the capital of france"
    assert "crossrank_span" not in out["a"].meta
    assert out["b"].meta["crossrank_span"] == [0, len("the cat and the dog")]


def _all_options(tiny_model_dir: Path, calibration_file: Path) -> CrossEncoderRanker:
    return _ranker(
        tiny_model_dir,
        top_k=5,
        min_relative_score=0.25,
        token_budget=400,
        activation="calibrated",
        calibration=str(calibration_file),
        meta_fields_to_embed=["title"],
        long_documents="chunk",
        max_windows=3,
        window_stride=16,
        aggregation="first-weighted",
        top_windows=3,
        passage_only=True,
    )


def test_a_pipeline_yaml_round_trip_keeps_passages_and_scores(
    tiny_model_dir: Path, calibration_file: Path
) -> None:
    ranker = _all_options(tiny_model_dir, calibration_file)
    docs = _long_docs()
    first = ranker.run(query=QUERY, documents=docs)["documents"]
    assert first and all("crossrank_span" in d.meta for d in first)
    pipeline = Pipeline()
    pipeline.add_component("ranker", ranker)
    yaml_text = pipeline.dumps()
    loaded = Pipeline.loads(yaml_text)
    assert loaded.dumps() == yaml_text
    result = loaded.run({"ranker": {"query": QUERY, "documents": docs}})["ranker"]["documents"]
    assert [(d.id, d.score, d.content, d.meta) for d in result] == [
        (d.id, d.score, d.content, d.meta) for d in first
    ]


@pytest.mark.asyncio
async def test_run_async_takes_the_same_per_call_values_as_run(
    tiny_model_dir: Path, calibration_file: Path
) -> None:
    ranker = _all_options(tiny_model_dir, calibration_file)
    docs = _long_docs()
    for call in (
        {},
        {"token_budget": 60, "min_relative_score": 0.5},
        {"min_relative_score": 0.0, "top_k": 2},
    ):
        expected = ranker.run(query=QUERY, documents=docs, **call)["documents"]
        got = (await ranker.run_async(query=QUERY, documents=docs, **call))["documents"]
        assert [(d.id, d.score, d.content, d.meta) for d in got] == [
            (d.id, d.score, d.content, d.meta) for d in expected
        ]
    assert docs == _long_docs()


def test_fusion_in_a_pipeline_reads_the_retrievers_scores(tiny_model_dir: Path) -> None:
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    store.write_documents([
        Document(content=text, id=f"d{i}")
        for i, text in enumerate([
            "the drug and blood cells", "blood cells of the heart", "the cat and the dog",
            "the dose of the drug", "cancer risk of the drug in patients", "gene and protein",
        ])
    ])
    ranker = CrossEncoderRanker(model=str(tiny_model_dir), top_k=4, fusion="rrf",
                                fusion_weight=0.4)
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=5))
    pipeline.add_component("ranker", ranker)
    pipeline.connect("retriever.documents", "ranker.documents")
    result = pipeline.run({"retriever": {"query": QUERY}, "ranker": {"query": QUERY}})
    got = result["ranker"]["documents"]
    retrieved = InMemoryBM25Retriever(document_store=store, top_k=5).run(query=QUERY)["documents"]
    assert all(d.score is not None for d in retrieved)
    want = ranker._scorer.rerank(QUERY, [d.content for d in retrieved], top_k=4,
                                 first_stage_scores=[d.score for d in retrieved])
    assert [(d.id, d.score, d.meta["crossrank_model_score"]) for d in got] == [
        (retrieved[h.index].id, h.score, h.model_score) for h in want.hits
    ]
