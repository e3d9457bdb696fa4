"""The Haystack ranker as a drop-in for ``SentenceTransformersSimilarityRanker``.

The peer (``sentence-transformers-haystack`` 2.0.0) is not installed here: these tests pin
its parameters, the files it saves and the texts it builds, and check that crossrank takes
them with the same meaning, on the tiny random model. Files saved by earlier crossrank
versions must load too.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from haystack import Document, Pipeline
from haystack.utils import ComponentDevice, Secret

from crossrank import CrossEncoderScorer
from crossrank.adapters import SCORER_OPTIONS
from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker

DATA = Path(__file__).parent / "data"
CPU = ComponentDevice.from_str("cpu")
QUERY = "what is the capital of france"
TEXTS = ["berlin is the capital of germany", "paris is the capital of france", "the cat"]

#: The peer's init parameters and defaults (sentence-transformers-haystack 2.0.0), but
#: ``device`` (resolved) and ``token`` (a Secret), checked on their own.
PEER_INIT = {
    "model": "cross-encoder/ms-marco-MiniLM-L-6-v2",
    "top_k": 10,
    "query_prefix": "",
    "query_suffix": "",
    "document_prefix": "",
    "document_suffix": "",
    "meta_fields_to_embed": None,
    "embedding_separator": "\n",
    "scale_score": True,
    "score_threshold": None,
    "trust_remote_code": False,
    "model_kwargs": None,
    "tokenizer_kwargs": None,
    "config_kwargs": None,
    "backend": "torch",
    "batch_size": 16,
}
#: Where crossrank's default deliberately differs (docs/haystack.md, migration table).
DIFFERENT_DEFAULTS = {
    "model": "cross-encoder/ms-marco-MiniLM-L6-v2",
    "batch_size": 32,
    "backend": "auto",  # measured per machine (docs/backends.md); a saved "torch" stays torch
}


def _docs(texts: list[str] = TEXTS) -> list[Document]:
    return [Document(id=f"d{i}", content=t) for i, t in enumerate(texts)]


def _ranker(model: Path, **kwargs: Any) -> CrossEncoderRanker:
    kwargs.setdefault("device", CPU)
    return CrossEncoderRanker(model=str(model), **kwargs)


def _scored(out: dict[str, list[Document]]) -> list[tuple[str, float | None]]:
    return [(d.id, d.score) for d in out["documents"]]


def _load(text: str, model: Path) -> Pipeline:
    """A saved pipeline, with its model swapped for a local one (nothing is downloaded)."""
    data = yaml.safe_load(text)
    data["components"]["ranker"]["init_parameters"]["model"] = str(model)
    return Pipeline.from_dict(data)


# ---------------------------------------------------------------------- the peer's parameters


def test_every_peer_init_parameter_is_accepted_with_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    params = CrossEncoderRanker().to_dict()["init_parameters"]
    for name, default in PEER_INIT.items():
        if name == "meta_fields_to_embed":
            assert params[name] == [], name  # the peer saves None as [] too
        else:
            assert params[name] == DIFFERENT_DEFAULTS.get(name, default), name
    assert params["device"] == ComponentDevice.resolve_device(None).to_dict()
    assert (
        params["token"] == Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False).to_dict()
    )


def test_every_scorer_setting_is_an_init_parameter_with_the_cores_default() -> None:
    params = CrossEncoderRanker(model="m", device=CPU).to_dict()["init_parameters"]
    for name, default in SCORER_OPTIONS.items():
        if name not in ("model", "device", "token"):
            assert params[name] == default, name


def test_run_takes_the_peers_arguments_by_keyword(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir)
    out = ranker.run(
        query=QUERY, documents=_docs(), top_k=2, scale_score=False, score_threshold=-9.0
    )
    assert len(out["documents"]) == 2
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw")
    assert _scored(out) == [(f"d{h.index}", h.score) for h in raw.rank(QUERY, TEXTS, top_k=2)]


def test_unknown_options_are_refused_with_the_known_ones() -> None:
    with pytest.raises(TypeError) as info:
        CrossEncoderRanker(model="m", batchsize=8)
    message = str(info.value)
    assert "unknown option(s) ['batchsize']" in message
    assert "'batch_size'" in message and "'model_kwargs'" in message


def test_the_peers_backend_names_reach_the_core() -> None:
    for backend in ("torch", "onnx", "openvino"):
        assert CrossEncoderRanker(model="m", backend=backend)._scorer.backend == backend
    with pytest.raises(ValueError, match="backend"):
        CrossEncoderRanker(model="m", backend="tensorrt")


def test_scorer_flags_must_be_booleans() -> None:
    with pytest.raises(TypeError, match="trust_remote_code must be True or False, got int 1"):
        CrossEncoderRanker(model="m", trust_remote_code=1)
    with pytest.raises(TypeError, match="local_files_only must be True or False, got str"):
        CrossEncoderRanker(model="m", local_files_only="no")


# ---------------------------------------------------------------------- device


def test_device_is_resolved_and_saved_as_a_component_device() -> None:
    ranker = CrossEncoderRanker(model="m")
    assert ranker.device == ComponentDevice.resolve_device(None)
    assert ranker._scorer.device == ranker.device.to_torch_str()
    assert ranker.to_dict()["init_parameters"]["device"] == ranker.device.to_dict()
    explicit = CrossEncoderRanker(model="m", device=CPU)
    assert (explicit.device, explicit._scorer.device) == (CPU, "cpu")


# ---------------------------------------------------------------------- the text the model reads


def test_meta_values_are_embedded_unless_missing_or_none(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    ranker = _ranker(
        tiny_model_dir,
        top_k=None,
        meta_fields_to_embed=["rating", "flag", "empty", "none", "absent"],
        embedding_separator=" | ",
    )
    meta = {"rating": 0, "flag": False, "empty": "", "none": None}
    docs = [
        Document(id="a", content="paris is a city", meta=meta),
        Document(id="b", content="the dog", meta={"rating": 5}),
    ]
    out = {d.id: d for d in ranker.run(query=QUERY, documents=docs)["documents"]}
    expected = tiny_scorer.score(QUERY, ["0 | False |  | paris is a city", "5 | the dog"])
    assert (out["a"].score, out["b"].score) == (expected[0], expected[1])
    assert out["a"].content == "paris is a city" and out["a"].meta == meta


def test_prefixes_and_suffixes_wrap_the_query_and_each_document(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    ranker = _ranker(
        tiny_model_dir,
        top_k=None,
        query_prefix="q: ",
        query_suffix=" ?",
        document_prefix="d: ",
        document_suffix=" .",
        meta_fields_to_embed=["title"],
    )
    docs = [Document(id="a", content="paris is a city", meta={"title": "france"})]
    out = ranker.run(query=QUERY, documents=docs)["documents"]
    expected = tiny_scorer.score(f"q: {QUERY} ?", ["d: france\nparis is a city ."])
    assert [d.score for d in out] == expected
    assert out[0].content == "paris is a city"


def test_a_passage_is_cut_from_the_content_between_prefix_and_suffix(tiny_model_dir: Path) -> None:
    content = " ".join(["the cat and the dog"] * 40)
    ranker = _ranker(
        tiny_model_dir,
        passage_only=True,
        long_documents="chunk",
        document_prefix="d: ",
        document_suffix=" end of document",
    )
    out = ranker.run(query=QUERY, documents=[Document(id="a", content=content)])["documents"]
    start, end = out[0].meta["crossrank_span"]
    assert 0 <= start < end <= len(content)
    assert out[0].content == content[start:end]


@pytest.mark.parametrize(
    ("option", "value"),
    [("query_suffix", 1), ("document_suffix", None), ("scale_score", "yes")],
)
def test_new_text_options_are_type_checked(option: str, value: Any) -> None:
    with pytest.raises(TypeError, match=f"{option} must be"):
        CrossEncoderRanker(model="m", **{option: value})


# ---------------------------------------------------------------------- scale_score


def test_scale_score_false_gives_the_raw_logits(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, top_k=None, scale_score=False)
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw").rank(QUERY, TEXTS)
    assert _scored(ranker.run(query=QUERY, documents=_docs())) == [
        (f"d{h.index}", h.score) for h in raw
    ]
    assert (ranker.scale_score, ranker.activation) == (False, "sigmoid")
    params = ranker.to_dict()["init_parameters"]
    assert (params["scale_score"], params["activation"]) == (False, "sigmoid")


def test_scale_score_per_call_overrides_the_init_value(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw")
    want_raw = [(f"d{h.index}", h.score) for h in raw.rank(QUERY, TEXTS)]
    want_sigmoid = [(f"d{h.index}", h.score) for h in tiny_scorer.rank(QUERY, TEXTS)]
    scaled = _ranker(tiny_model_dir, top_k=None)
    unscaled = _ranker(tiny_model_dir, top_k=None, scale_score=False)
    assert _scored(scaled.run(query=QUERY, documents=_docs(), scale_score=False)) == want_raw
    assert _scored(unscaled.run(query=QUERY, documents=_docs(), scale_score=True)) == want_sigmoid
    assert _scored(scaled.run(query=QUERY, documents=_docs())) == want_sigmoid  # unchanged


@pytest.mark.asyncio
async def test_scale_score_per_call_in_run_async(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, top_k=None)
    sync = ranker.run(query=QUERY, documents=_docs(), scale_score=False)
    assert _scored(await ranker.run_async(query=QUERY, documents=_docs(), scale_score=False)) == (
        _scored(sync)
    )


def test_scale_score_false_turns_a_calibration_off(tiny_model_dir: Path, tmp_path: Path) -> None:
    from crossrank.calibration import Calibration, save_calibration

    path = save_calibration(
        tmp_path / "cal.json", {"platt": Calibration("platt", 2.0, -1.0)}, method="platt"
    )
    ranker = _ranker(tiny_model_dir, top_k=None, activation="calibrated", calibration=str(path))
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw").rank(QUERY, TEXTS)
    got = ranker.run(query=QUERY, documents=_docs(), scale_score=False)
    assert _scored(got) == [(f"d{h.index}", h.score) for h in raw]
    assert ranker.to_dict()["init_parameters"]["calibration"] == str(path)


def test_a_relative_cut_needs_scaled_scores_per_call_too(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        _ranker(tiny_model_dir, scale_score=False, min_relative_score=0.5)
    ranker = _ranker(tiny_model_dir, min_relative_score=0.5)
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        ranker.run(query=QUERY, documents=_docs(), scale_score=False)
    with pytest.raises(TypeError, match="scale_score must be True or False, got int 0"):
        ranker.run(query=QUERY, documents=_docs(), scale_score=0)  # type: ignore[arg-type]
    assert not ranker._scorer.is_loaded


def test_one_loaded_model_serves_scaled_and_raw_calls(tiny_model_dir: Path) -> None:
    ranker = _ranker(tiny_model_dir, top_k=None)
    scaled = _scored(ranker.run(query=QUERY, documents=_docs()))
    loaded = ranker._scorer._loaded
    raw = _scored(ranker.run(query=QUERY, documents=_docs(), scale_score=False))
    assert ranker._scorer._loaded is loaded  # the same model, not a second copy
    assert [d for d, _ in raw] == [d for d, _ in scaled]
    assert [s for _, s in scaled] == pytest.approx([1 / (1 + math.exp(-s)) for _, s in raw])


# ---------------------------------------------------------------------- model loading options


def test_loading_kwargs_reach_the_scorer_and_round_trip(tiny_model_dir: Path) -> None:
    options: dict[str, Any] = {
        "model_kwargs": {"torch_dtype": torch.float32},
        "tokenizer_kwargs": {"model_max_length": 16},
        "config_kwargs": {"hidden_dropout_prob": 0.0},
    }
    ranker = _ranker(tiny_model_dir, top_k=None, **copy.deepcopy(options))
    params = ranker.to_dict()["init_parameters"]
    assert params["model_kwargs"] == {"torch_dtype": "torch.float32"}  # as the peer saves it
    assert params["tokenizer_kwargs"] == {"model_max_length": 16}
    assert params["config_kwargs"] == {"hidden_dropout_prob": 0.0}
    core = CrossEncoderScorer(tiny_model_dir, device="cpu", **options)
    long_texts = [t + " and the dog and the cat and the blood" for t in TEXTS]
    want = [(f"d{h.index}", h.score) for h in core.rank(QUERY, long_texts)]
    assert _scored(ranker.run(query=QUERY, documents=_docs(long_texts))) == want
    again = CrossEncoderRanker.from_dict(json.loads(json.dumps(ranker.to_dict())))
    assert again.to_dict() == ranker.to_dict()
    assert _scored(again.run(query=QUERY, documents=_docs(long_texts))) == want
    # model_max_length=16 shortened what the model read.
    assert want != [
        (f"d{h.index}", h.score)
        for h in CrossEncoderScorer(tiny_model_dir, device="cpu").rank(QUERY, long_texts)
    ]


# ---------------------------------------------------------------------- saved pipelines


def test_a_pipeline_saved_by_the_peer_loads_with_only_the_type_changed(
    tiny_model_dir: Path,
) -> None:
    text = (DATA / "haystack_peer_saved.yaml").read_text(encoding="utf-8")
    saved = yaml.safe_load(text)["components"]["ranker"]["init_parameters"]
    ranker = Pipeline.loads(text).get_component("ranker")
    assert isinstance(ranker, CrossEncoderRanker)
    params = ranker.to_dict()["init_parameters"]
    assert {k: params[k] for k in saved} == saved  # every value the peer saved, kept

    docs = [
        Document(id="a", content="paris is the capital", meta={"title": "france"}),
        Document(id="b", content="the cat and the dog", meta={"title": 0}),
        Document(id="c", content="berlin", meta={}),
    ]
    got = _load(text, tiny_model_dir).run({"ranker": {"query": QUERY, "documents": docs}})
    core = CrossEncoderScorer(
        tiny_model_dir,
        device="cpu",
        activation="raw",  # scale_score: false
        tokenizer_kwargs={"model_max_length": 64},
        config_kwargs={"hidden_dropout_prob": 0.0},
    )
    texts = ["d: france | paris is the capital .", "d: 0 | the cat and the dog .", "d: berlin ."]
    hits = core.rank(f"q: {QUERY} ?", texts, top_k=3, score_threshold=-5.0)
    assert _scored(got["ranker"]) == [("abc"[h.index], h.score) for h in hits]


def test_a_component_dict_saved_by_crossrank_v1_still_loads(tiny_model_dir: Path) -> None:
    saved = json.loads((DATA / "haystack_saved_v1.json").read_text(encoding="utf-8"))
    frozen = copy.deepcopy(saved)
    ranker = CrossEncoderRanker.from_dict(saved)
    assert saved == frozen
    params = ranker.to_dict()["init_parameters"]
    assert {k: params[k] for k in saved["init_parameters"]} == saved["init_parameters"]
    added = {k: v for k, v in params.items() if k not in saved["init_parameters"]}
    assert added["scale_score"] is True
    assert {"query_suffix": "", "document_suffix": ""}.items() <= added.items()

    saved["init_parameters"]["model"] = str(tiny_model_dir)
    loaded = CrossEncoderRanker.from_dict(saved)
    fresh = _ranker(
        tiny_model_dir,
        **{
            k: v
            for k, v in frozen["init_parameters"].items()
            if k not in ("model", "device", "token")
        },
    )
    docs = [
        Document(id=f"p{i}", content=t * 20, meta={"title": f"paper {i}"})
        for i, t in enumerate(TEXTS)
    ]
    first = loaded.run(query=QUERY, documents=docs)["documents"]
    assert first and [(d.id, d.score, d.content, d.meta) for d in first] == [
        (d.id, d.score, d.content, d.meta)
        for d in fresh.run(query=QUERY, documents=docs)["documents"]
    ]


def test_a_pipeline_saved_by_crossrank_v1_still_loads(tiny_model_dir: Path) -> None:
    text = (DATA / "haystack_saved_v1.yaml").read_text(encoding="utf-8")
    ranker = Pipeline.loads(text).get_component("ranker")
    assert isinstance(ranker, CrossEncoderRanker)
    params = ranker.to_dict()["init_parameters"]
    assert params["device"] == ComponentDevice.resolve_device(None).to_dict()  # was null
    assert params["meta_fields_to_embed"] == []  # was null
    # It was saved with scale_score=False, folded into activation="raw" back then.
    assert (params["activation"], params["scale_score"], params["top_k"]) == ("raw", True, 3)
    got = _load(text, tiny_model_dir).run({"ranker": {"query": QUERY, "documents": _docs()}})
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw").rank(
        QUERY, TEXTS, top_k=3
    )
    assert _scored(got["ranker"]) == [(f"d{h.index}", h.score) for h in raw]
