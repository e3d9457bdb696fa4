"""Unit tests for the Haystack ranker, on the tiny random model (offline, fast)."""

from __future__ import annotations

import asyncio
import copy
import importlib
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from haystack import Document, Pipeline
from haystack.utils import ComponentDevice, Secret
from haystack.utils.device import Device, DeviceMap

import haystack_integrations.components.rankers.crossrank as package
from crossrank import CrossEncoderScorer
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
    ]
    assert list(ranker.__haystack_output__._sockets_dict) == ["documents"]  # type: ignore[attr-defined]
    assert ranker.__haystack_supports_async__  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"top_k": 0}, ValueError, "top_k must be >= 1, got 0"),
        ({"top_k": "3"}, TypeError, "top_k must be an int >= 1 or None, got str '3'"),
        (
            {"score_threshold": float("nan")},
            ValueError,
            "score_threshold must be a number, got NaN",
        ),
        (
            {"score_threshold": "0.5"},
            TypeError,
            "score_threshold must be a number or None, got str",
        ),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"max_length": -1}, ValueError, "max_length must be >= 1, got -1"),
        ({"max_tokens_per_batch": 1.5}, TypeError, "max_tokens_per_batch must be an int >= 1"),
        (
            {"activation": "softmax"},
            ValueError,
            "activation must be one of ('sigmoid', 'raw', 'calibrated'), got 'softmax'",
        ),
        (
            {"scale_score": "yes"},
            TypeError,
            "scale_score must be True, False or None, got str 'yes'",
        ),
        ({"scale_score": True, "activation": "raw"}, ValueError, "pass only one of them"),
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
        (
            {"local_files_only": "no"},
            TypeError,
            "local_files_only must be True or False, got str 'no'",
        ),
        ({"trust_remote_code": 1}, TypeError, "trust_remote_code must be True or False, got int 1"),
        ({"cache_dir": 3}, TypeError, "cache_dir must be a folder path or None, got int 3"),
        ({"model": "  "}, TypeError, "model must be a model id or a folder path, got '  '"),
        # Long documents, evidence budget, calibration (checked by the core).
        (
            {"long_documents": "split"},
            ValueError,
            "long_documents must be 'truncate' or 'chunk', got 'split'",
        ),
        ({"aggregation": "median"}, ValueError, "aggregation must be one of"),
        ({"max_windows": 0}, ValueError, "max_windows must be >= 1, got 0"),
        ({"window_stride": 0}, ValueError, "window_stride must be >= 1, got 0"),
        ({"window_stride": 2.5}, TypeError, "window_stride must be an int >= 1, got float 2.5"),
        ({"top_windows": "2"}, TypeError, "top_windows must be an int >= 1, got str '2'"),
        (
            {"min_relative_score": 1.5},
            ValueError,
            "min_relative_score must be in [0, 1], got 1.5",
        ),
        (
            {"min_relative_score": "0.5"},
            TypeError,
            "min_relative_score must be a number in [0, 1] or None, got str '0.5'",
        ),
        (
            {"min_relative_score": 0.5, "activation": "raw"},
            ValueError,
            "min_relative_score needs non-negative scores",
        ),
        (
            {"min_relative_score": 0.5, "scale_score": False},
            ValueError,
            "min_relative_score needs non-negative scores",
        ),
        ({"token_budget": 0}, ValueError, "token_budget must be >= 1, got 0"),
        ({"token_budget": 10.0}, TypeError, "token_budget must be an int >= 1, got float 10.0"),
        ({"passage_only": "yes"}, TypeError, "passage_only must be True or False, got str 'yes'"),
        (
            {"scale_score": True, "activation": "calibrated"},
            ValueError,
            "scale_score=True asks for sigmoid scores but activation='calibrated'; "
            "pass only one of them",
        ),
        (
            {"scale_score": False, "activation": "calibrated"},
            ValueError,
            "scale_score=False asks for raw logits but activation='calibrated'",
        ),
        (
            {"activation": "calibrated"},
            ValueError,
            "activation='calibrated' needs a calibration",
        ),
        (
            {"calibration": "cal.json"},
            ValueError,
            "calibration is only used with activation='calibrated'",
        ),
        (
            {"activation": "calibrated", "calibration": "/no/such/calibration.json"},
            FileNotFoundError,
            "calibration file /no/such/calibration.json not found",
        ),
        (
            {"activation": "calibrated", "calibration": 3},
            TypeError,
            "calibration must be the path of a calibration file or folder, or None, got int 3",
        ),
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


def test_scale_score_is_the_peers_name_for_activation() -> None:
    assert CrossEncoderRanker(model="m", scale_score=True).activation == "sigmoid"
    assert CrossEncoderRanker(model="m", scale_score=False).activation == "raw"
    assert CrossEncoderRanker(model="m").activation == "sigmoid"


def test_model_defaults_to_env_then_core_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    assert CrossEncoderRanker().model == "cross-encoder/ms-marco-MiniLM-L6-v2"
    monkeypatch.setenv("CROSSRANK_MODEL", "my/model")
    assert CrossEncoderRanker().model == "my/model"


# ---------------------------------------------------------------------- loading


def test_construction_and_empty_input_do_not_load(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir)
    assert ranker.run(query=QUERY, documents=[]) == {"documents": []}
    assert not ranker._scorer.is_loaded


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


def test_order_and_scores_equal_the_core(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    ranker = _ranker(tiny_model_dir, top_k=None)
    out = ranker.run(query=QUERY, documents=_docs())["documents"]
    hits = tiny_scorer.rank(QUERY, TEXTS)
    assert _ids_scores(out) == [(f"d{h.index}", h.score) for h in hits]
    assert all(type(d.score) is float for d in out)


def test_raw_activation_equals_the_core(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, top_k=None, scale_score=False)
    out = ranker.run(query=QUERY, documents=_docs())["documents"]
    core = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw")
    assert _ids_scores(out) == [(f"d{h.index}", h.score) for h in core.rank(QUERY, TEXTS)]


def test_prefixes_and_meta_fields_build_the_scored_text(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    ranker = _ranker(
        tiny_model_dir,
        top_k=None,
        meta_fields_to_embed=["title", "year", "empty", "absent"],
        embedding_separator=" | ",
        query_prefix="q: ",
        document_prefix="d: ",
    )
    docs = [
        Document(
            id="a", content="paris is a city", meta={"title": "france", "year": 2020, "empty": ""}
        ),
        Document(id="b", content="the dog", meta={"title": "pets"}),
    ]
    out = ranker.run(query=QUERY, documents=docs)["documents"]
    expected_texts = ["d: france | 2020 | paris is a city", "d: pets | the dog"]
    scores = tiny_scorer.score("q: " + QUERY, expected_texts)
    assert {d.id: d.score for d in out} == {"a": scores[0], "b": scores[1]}
    assert [d.content for d in out if d.id == "a"] == ["paris is a city"]


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


def test_inputs_are_not_changed(tiny_model_dir: Path) -> None:
    docs = [
        Document(id=f"d{i}", content=t, meta={"n": i, "tags": ["x"]}, score=0.5)
        for i, t in enumerate(TEXTS)
    ]
    docs.append(Document(id="empty", content=None, score=0.1))
    before = copy.deepcopy(docs)
    out = _ranker(tiny_model_dir, top_k=None).run(query=QUERY, documents=docs)["documents"]
    assert docs == before
    assert all(d.score == 0.5 for d in docs[:-1])
    assert not any(o is d for o in out for d in docs)
    # The copies carry everything but the score.
    originals = {d.id: d for d in docs}
    for o in out:
        assert o.content == originals[o.id].content and o.meta == originals[o.id].meta


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
    assert ranker.to_dict() == {
        "type": TYPE_PATH,
        "init_parameters": {
            "model": str(tiny_model_dir),
            "device": {"type": "single", "device": "cpu"},
            "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
            "top_k": 3,
            "score_threshold": None,
            "min_relative_score": None,
            "token_budget": None,
            "activation": "sigmoid",
            "calibration": None,
            "meta_fields_to_embed": ["title"],
            "embedding_separator": "\n",
            "query_prefix": "",
            "document_prefix": "",
            "batch_size": 32,
            "max_length": 64,
            "max_tokens_per_batch": None,
            "long_documents": "truncate",
            "max_windows": 8,
            "window_stride": None,
            "aggregation": "max",
            "top_windows": 2,
            "passage_only": False,
            "backend": "torch",
            "onnx_cache_dir": None,
            "cache_dir": None,
            "local_files_only": False,
            "trust_remote_code": False,
        },
    }


def test_to_dict_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    params = CrossEncoderRanker(token=None, scale_score=False, cache_dir=Path("/tmp/m")).to_dict()[
        "init_parameters"
    ]
    assert params["model"] == "cross-encoder/ms-marco-MiniLM-L6-v2"
    assert params["device"] is None
    assert params["token"] is None
    assert params["activation"] == "raw"
    assert params["cache_dir"] == "/tmp/m"
    assert "scale_score" not in params


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
    assert ranker.device is None
    assert ranker.top_k == 10


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


# ---------------------------------------------------------------------- async


@pytest.mark.asyncio
async def test_run_async_equals_run(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, top_k=4)
    docs = _docs()
    expected = ranker.run(query=QUERY, documents=docs, score_threshold=0.0)
    got = await ranker.run_async(query=QUERY, documents=docs, score_threshold=0.0)
    assert _ids_scores(got["documents"]) == _ids_scores(expected["documents"])


@pytest.mark.asyncio
async def test_concurrent_run_async_equals_sequential(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, top_k=None, batch_size=2)  # several batches per call
    queries = [
        f"{QUERY} {word}"
        for word in (
            "cat",
            "dog",
            "cell",
            "gene",
            "blood",
            "brain",
            "heart",
            "drug",
            "dose",
            "risk",
        )
    ]
    sequential = [ranker.run(query=q, documents=_docs())["documents"] for q in queries]
    concurrent = await asyncio.gather(
        *(ranker.run_async(query=q, documents=_docs()) for q in queries)
    )
    assert [_ids_scores(r["documents"]) for r in concurrent] == [_ids_scores(r) for r in sequential]


# ---------------------------------------------------------------------- missing extra


def test_missing_haystack_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        m for m in sys.modules if m.startswith("haystack_integrations.components.rankers.crossrank")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "haystack", None)  # makes `import haystack` fail
    with pytest.raises(ImportError) as info:
        importlib.import_module("haystack_integrations.components.rankers.crossrank")
    assert 'pip install "crossrank[haystack]"' in str(info.value)
    assert "The Haystack ranker" in str(info.value)
    assert info.value.name == "haystack"
    assert isinstance(info.value.__cause__, ImportError)


# ---------------------------------------------------------------------- issue 8 options
# Long documents, the evidence budget, passage hand-off and calibrated scores. The adapter
# passes them to the core; these tests check that they arrive and that what comes back is
# the core's answer, in Haystack's terms.

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


def test_new_options_reach_the_scorer(tiny_model_dir: Path, calibration_file: Path) -> None:
    ranker = _ranker(
        tiny_model_dir,
        long_documents="chunk",
        max_windows=3,
        window_stride=16,
        aggregation="mean-top",
        top_windows=3,
        activation="calibrated",
        calibration=calibration_file,  # a PathLike is accepted and saved as a string
        min_relative_score=0.25,
        token_budget=300,
        passage_only=True,
    )
    scorer = ranker._scorer
    assert scorer.long_documents == "chunk"
    assert scorer.max_windows == 3
    assert scorer.window_stride == 16
    assert scorer.aggregation == "mean-top"
    assert scorer.top_windows == 3
    assert scorer.activation == "calibrated"
    assert scorer.calibration is not None
    assert (scorer.calibration.method, scorer.calibration.scale, scorer.calibration.bias) == (
        "platt",
        2.0,
        -1.0,
    )
    assert ranker.calibration == str(calibration_file)
    assert (ranker.min_relative_score, ranker.token_budget, ranker.passage_only) == (
        0.25,
        300,
        True,
    )
    defaults = CrossEncoderRanker(model="m")._scorer
    assert (defaults.long_documents, defaults.max_windows, defaults.window_stride) == (
        "truncate",
        8,
        None,
    )
    assert (defaults.aggregation, defaults.top_windows, defaults.calibration) == ("max", 2, None)


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


def test_calibrated_scores_equal_the_core(tiny_model_dir: Path, calibration_file: Path) -> None:
    ranker = _ranker(
        tiny_model_dir, top_k=None, activation="calibrated", calibration=str(calibration_file)
    )
    out = ranker.run(query=QUERY, documents=_docs())["documents"]
    core = CrossEncoderScorer(
        tiny_model_dir, device="cpu", activation="calibrated", calibration=calibration_file
    )
    hits = core.rank(QUERY, TEXTS)
    assert [d.id for d in out] == [f"d{h.index}" for h in hits]
    for doc, hit in zip(out, hits, strict=True):
        assert doc.score == pytest.approx(hit.score, abs=1e-6)
        assert type(doc.score) is float
    # The Platt map applied to the raw logits.
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw").score(QUERY, TEXTS)
    expected = [1.0 / (1.0 + math.exp(-(2.0 * x - 1.0))) for x in raw]
    assert {d.id: d.score for d in out} == pytest.approx(
        {f"d{i}": p for i, p in enumerate(expected)}, abs=1e-6
    )
    # The path survives serialization, and the loaded component scores the same.
    data = ranker.to_dict()
    assert data["init_parameters"]["calibration"] == str(calibration_file)
    assert data["init_parameters"]["activation"] == "calibrated"
    again = CrossEncoderRanker.from_dict(data)
    assert again.calibration == str(calibration_file)
    assert _ids_scores(again.run(query=QUERY, documents=_docs())["documents"]) == _ids_scores(out)


def test_calibration_from_a_folder_or_beside_the_model(
    tiny_model_dir: Path, calibration_file: Path, tmp_path: Path
) -> None:
    from crossrank.calibration import CALIBRATION_FILE

    expected = _ids_scores(
        _ranker(tiny_model_dir, activation="calibrated", calibration=str(calibration_file)).run(
            query=QUERY, documents=_docs()
        )["documents"]
    )
    folder = tmp_path / "calibration"
    folder.mkdir()
    shutil.copy(calibration_file, folder / CALIBRATION_FILE)
    from_folder = _ranker(tiny_model_dir, activation="calibrated", calibration=str(folder))
    assert _ids_scores(from_folder.run(query=QUERY, documents=_docs())["documents"]) == expected

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    shutil.copy(calibration_file, model / CALIBRATION_FILE)
    beside = CrossEncoderRanker(model=str(model), device=CPU, activation="calibrated")
    assert beside.to_dict()["init_parameters"]["calibration"] is None
    assert _ids_scores(beside.run(query=QUERY, documents=_docs())["documents"]) == expected
    # min_relative_score works on calibrated probabilities.
    assert (
        beside.run(query=QUERY, documents=_docs(), min_relative_score=1.0)["documents"][0].id
        == (expected[0][0])
    )


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


def test_serialization_round_trip_with_every_new_option(
    tiny_model_dir: Path, calibration_file: Path
) -> None:
    ranker = _all_options(tiny_model_dir, calibration_file)
    data = ranker.to_dict()
    params = data["init_parameters"]
    assert {
        k: params[k]
        for k in (
            "min_relative_score",
            "token_budget",
            "activation",
            "calibration",
            "long_documents",
            "max_windows",
            "window_stride",
            "aggregation",
            "top_windows",
            "passage_only",
        )
    } == {
        "min_relative_score": 0.25,
        "token_budget": 400,
        "activation": "calibrated",
        "calibration": str(calibration_file),
        "long_documents": "chunk",
        "max_windows": 3,
        "window_stride": 16,
        "aggregation": "first-weighted",
        "top_windows": 3,
        "passage_only": True,
    }
    frozen = copy.deepcopy(data)
    again = CrossEncoderRanker.from_dict(data)
    assert data == frozen
    assert again.to_dict() == data
    for name in ("long_documents", "max_windows", "window_stride", "aggregation", "top_windows"):
        assert getattr(again._scorer, name) == getattr(ranker._scorer, name)
    assert again._scorer.calibration == ranker._scorer.calibration
    docs = _long_docs()
    first = ranker.run(query=QUERY, documents=docs)["documents"]
    second = again.run(query=QUERY, documents=docs)["documents"]
    assert first and [(d.id, d.score, d.content, d.meta) for d in first] == [
        (d.id, d.score, d.content, d.meta) for d in second
    ]
    assert all("crossrank_span" in d.meta for d in first)

    # Through a pipeline YAML file, too.
    pipeline = Pipeline()
    pipeline.add_component("ranker", ranker)
    yaml_text = pipeline.dumps()
    loaded = Pipeline.loads(yaml_text)
    assert loaded.dumps() == yaml_text
    result = loaded.run({"ranker": {"query": QUERY, "documents": docs}})["ranker"]["documents"]
    assert [(d.id, d.score, d.content) for d in result] == [
        (d.id, d.score, d.content) for d in first
    ]


def test_a_dict_saved_before_these_options_still_loads(tiny_model_dir: Path) -> None:
    old = {
        "type": TYPE_PATH,
        "init_parameters": {
            "model": str(tiny_model_dir),
            "device": {"type": "single", "device": "cpu"},
            "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
            "top_k": 3,
            "score_threshold": None,
            "activation": "sigmoid",
            "meta_fields_to_embed": None,
            "embedding_separator": "\n",
            "query_prefix": "",
            "document_prefix": "",
            "batch_size": 32,
            "max_length": None,
            "max_tokens_per_batch": None,
            "backend": "torch",
            "onnx_cache_dir": None,
            "cache_dir": None,
            "local_files_only": False,
            "trust_remote_code": False,
        },
    }
    ranker = CrossEncoderRanker.from_dict(old)
    params = ranker.to_dict()["init_parameters"]
    assert {k: v for k, v in params.items() if k in old["init_parameters"]} == old[
        "init_parameters"
    ]
    assert {k: v for k, v in params.items() if k not in old["init_parameters"]} == {
        "min_relative_score": None,
        "token_budget": None,
        "calibration": None,
        "long_documents": "truncate",
        "max_windows": 8,
        "window_stride": None,
        "aggregation": "max",
        "top_windows": 2,
        "passage_only": False,
    }
    out = ranker.run(query=QUERY, documents=_docs())["documents"]
    assert _ids_scores(out) == _ids_scores(
        _ranker(tiny_model_dir, top_k=3).run(query=QUERY, documents=_docs())["documents"]
    )


@pytest.mark.asyncio
async def test_run_async_with_the_new_options_equals_run(
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
