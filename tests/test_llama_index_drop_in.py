"""CrossEncoderRerank as a drop-in for LlamaIndex's SentenceTransformerRerank, and its
settings derived from the core scorer's. Offline, with the tiny random model."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.core.utils import infer_torch_device

from crossrank import CrossEncoderScorer
from crossrank.adapters import SCORER_OPTIONS, SECRET_OPTIONS, RerankScorer, scorer_settings
from crossrank.scorer import Reranked
from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank

QUERY = "what is the capital of france"
TEXTS = [
    "berlin is the capital of germany",
    "paris is the capital city of france",
    "the cat and the dog",
    "france and germany",
]


def make_nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(id_=f"n{i}", text=t), score=1.0 - i / 10)
        for i, t in enumerate(TEXTS)
    ]


def ranking(rerank: CrossEncoderRerank) -> list[tuple[str, float | None]]:
    return [
        (n.node.node_id, n.score)
        for n in rerank.postprocess_nodes(make_nodes(), QueryBundle(QUERY))
    ]


# ---------------------------------------------------------------------- constructor


def test_positional_arguments_follow_the_peer(tiny_model_dir: Path) -> None:
    params = list(inspect.signature(CrossEncoderRerank.__init__).parameters.values())[1:]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    # llama-index-core's SentenceTransformerRerank(top_n, model, device,
    # keep_retrieval_score, trust_remote_code)
    assert positional == ["top_n", "model", "device", "keep_retrieval_score", "trust_remote_code"]
    rerank = CrossEncoderRerank(3, str(tiny_model_dir), "cpu", True, True)
    assert (rerank.top_n, rerank.model, rerank.device) == (3, str(tiny_model_dir), "cpu")
    assert rerank.keep_retrieval_score is True
    assert (rerank.trust_remote_code, rerank.scorer.trust_remote_code) == (True, True)
    assert (
        len(CrossEncoderRerank(3, tiny_model_dir).postprocess_nodes(make_nodes(), query_str=QUERY))
        == 3
    )


def test_a_model_passed_first_says_to_pass_it_by_keyword(tiny_model_dir: Path) -> None:
    with pytest.raises(
        TypeError, match=r"top_n must be an int.*first positional argument is top_n.*model="
    ):
        CrossEncoderRerank(str(tiny_model_dir))  # type: ignore[arg-type]


def test_trust_remote_code_is_off_unless_asked(tiny_model_dir: Path) -> None:
    rerank = CrossEncoderRerank(model=tiny_model_dir)
    assert (rerank.trust_remote_code, rerank.scorer.trust_remote_code) == (False, False)


def test_unknown_keyword_names_the_settings() -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['modle'\].*'model'"):
        CrossEncoderRerank(modle="x")


# ---------------------------------------------------------------------- device


def test_device_is_resolved_to_the_one_in_use(tiny_model_dir: Path) -> None:
    rerank = CrossEncoderRerank(model=tiny_model_dir)
    assert rerank.device == infer_torch_device()  # what the peer stores
    assert rerank.scorer.device == rerank.device  # and what the scorer runs on
    assert json.loads(rerank.to_json())["device"] == rerank.device
    assert CrossEncoderRerank(model=tiny_model_dir, device="cpu").device == "cpu"


def test_onnx_backends_resolve_to_the_cpu(tiny_model_dir: Path) -> None:
    assert CrossEncoderRerank(model=tiny_model_dir, backend="onnx").device == "cpu"


def test_a_ready_scorer_reports_the_device_it_will_use(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir)  # device=None: chosen on loading
    rerank = CrossEncoderRerank(scorer=scorer)
    assert rerank.device == infer_torch_device()
    assert scorer.device is None  # the caller's scorer is not changed


# ---------------------------------------------------------------------- peer arguments


def test_cache_folder_is_cache_dir(tiny_model_dir: Path, tmp_path: Path) -> None:
    rerank = CrossEncoderRerank(model=tiny_model_dir, cache_folder=tmp_path)
    assert (rerank.cache_dir, rerank.scorer.cache_dir) == (str(tmp_path), str(tmp_path))
    data = json.loads(rerank.to_json())
    assert data["cache_dir"] == str(tmp_path) and "cache_folder" not in data
    assert CrossEncoderRerank.from_dict(data).scorer.cache_dir == str(tmp_path)
    same = CrossEncoderRerank(model=tiny_model_dir, cache_folder=tmp_path, cache_dir=tmp_path)
    assert same.cache_dir == str(tmp_path)
    with pytest.raises(ValueError, match="cache_dir is given twice with different values"):
        CrossEncoderRerank(model=tiny_model_dir, cache_folder=tmp_path, cache_dir="/elsewhere")


#: sentence-transformers CrossEncoder keyword, its value, and crossrank's setting and value.
_KWARGS: list[tuple[str, Any, str, Any]] = [
    ("max_length", 64, "max_length", 64),
    ("cache_folder", "/tmp/st-cache", "cache_dir", "/tmp/st-cache"),
    ("trust_remote_code", True, "trust_remote_code", True),
    ("revision", "main", "revision", "main"),
    ("local_files_only", True, "local_files_only", True),
    ("backend", "onnx", "backend", "onnx"),
    (
        "model_kwargs",
        {"attn_implementation": "eager"},
        "model_kwargs",
        {"attn_implementation": "eager"},
    ),
    ("tokenizer_kwargs", {"model_max_length": 64}, "tokenizer_kwargs", {"model_max_length": 64}),
    ("processor_kwargs", {"model_max_length": 64}, "tokenizer_kwargs", {"model_max_length": 64}),
    ("config_kwargs", {"hidden_dropout_prob": 0.0}, "config_kwargs", {"hidden_dropout_prob": 0.0}),
    ("activation_fn", torch.nn.Identity(), "activation", "raw"),
    ("activation_fn", torch.nn.Sigmoid(), "activation", "sigmoid"),
    ("default_activation_function", torch.nn.Identity(), "activation", "raw"),
]


@pytest.mark.parametrize(("key", "value", "name", "expected"), _KWARGS)
def test_cross_encoder_kwargs_become_crossrank_settings(
    tiny_model_dir: Path, key: str, value: Any, name: str, expected: Any
) -> None:
    rerank = CrossEncoderRerank(model=tiny_model_dir, cross_encoder_kwargs={key: value})
    assert getattr(rerank, name) == expected
    assert scorer_settings(rerank.scorer)[name] == expected
    data = json.loads(rerank.to_json())
    assert "cross_encoder_kwargs" not in data  # the settings it maps to are saved instead
    assert data[name] == expected
    assert getattr(CrossEncoderRerank.from_dict(data), name) == expected


def test_cross_encoder_kwargs_token_is_a_secret(tiny_model_dir: Path) -> None:
    rerank = CrossEncoderRerank(model=tiny_model_dir, cross_encoder_kwargs={"token": "hf_abc"})
    assert rerank.scorer.token == "hf_abc"
    assert "hf_abc" not in rerank.to_json()


def test_cross_encoder_kwargs_score_as_the_settings_they_map_to(tiny_model_dir: Path) -> None:
    kwargs = {"max_length": 32, "activation_fn": torch.nn.Identity()}
    mapped = CrossEncoderRerank(model=tiny_model_dir, device="cpu", cross_encoder_kwargs=kwargs)
    direct = CrossEncoderRerank(model=tiny_model_dir, device="cpu", max_length=32, activation="raw")
    assert ranking(mapped) == ranking(direct)
    sigmoid = dict(ranking(CrossEncoderRerank(model=tiny_model_dir, device="cpu", max_length=32)))
    for node_id, logit in ranking(mapped):  # Identity: the logits, not their sigmoid
        assert 1 / (1 + math.exp(-(logit or 0.0))) == pytest.approx(sigmoid[node_id])
        assert logit != pytest.approx(sigmoid[node_id])


@pytest.mark.parametrize("key", ["device", "model", "model_name_or_path"])
def test_cross_encoder_kwargs_refuse_model_and_device_as_the_peer(
    tiny_model_dir: Path, key: str
) -> None:
    with pytest.raises(ValueError, match=rf"must not hold \['{key}'\]: use the top-level"):
        CrossEncoderRerank(model=tiny_model_dir, cross_encoder_kwargs={key: "cpu"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"num_labels": 1},
            r"cross_encoder_kwargs\['num_labels'\] has no crossrank equivalent.*"
            r"'max_length'",
        ),
        ({"prompts": {}}, r"cross_encoder_kwargs\['prompts'\] has no crossrank equivalent"),
        ({"activation_fn": torch.nn.Tanh()}, r"must be torch.nn.Sigmoid\(\).*got Tanh"),
        ({"cache_folder": "/a", "cache_dir": "/b"}, "sets cache_dir twice with different values"),
    ],
)
def test_cross_encoder_kwargs_crossrank_cannot_honour_are_refused(
    tiny_model_dir: Path, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        CrossEncoderRerank(model=tiny_model_dir, cross_encoder_kwargs=kwargs)


def test_cross_encoder_kwargs_must_agree_with_the_arguments(tiny_model_dir: Path) -> None:
    with pytest.raises(
        ValueError, match=r"max_length=32 and cross_encoder_kwargs\['max_length'\]=64"
    ):
        CrossEncoderRerank(
            model=tiny_model_dir, max_length=32, cross_encoder_kwargs={"max_length": 64}
        )
    agreed = CrossEncoderRerank(
        model=tiny_model_dir, max_length=64, cross_encoder_kwargs={"max_length": 64}
    )
    assert agreed.max_length == 64
    with pytest.raises(TypeError, match="cross_encoder_kwargs must be a dict, got list"):
        CrossEncoderRerank(model=tiny_model_dir, cross_encoder_kwargs=[("max_length", 64)])  # type: ignore[arg-type]


def test_cross_encoder_kwargs_beside_a_ready_scorer_are_refused(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    with pytest.raises(ValueError, match=r"either scorer or the scorer settings.*max_length=64"):
        CrossEncoderRerank(scorer=tiny_scorer, cross_encoder_kwargs={"max_length": 64})


# ---------------------------------------------------------------------- saved by the peer


def test_a_config_saved_by_the_core_peer_loads(tiny_model_dir: Path) -> None:
    # The keys llama-index-core's SentenceTransformerRerank.to_dict() writes.
    saved = {
        "model": str(tiny_model_dir),
        "top_n": 3,
        "device": "cpu",
        "keep_retrieval_score": True,
        "trust_remote_code": False,
        "class_name": "SentenceTransformerRerank",
    }
    rerank = CrossEncoderRerank.from_dict(saved)
    assert (rerank.model, rerank.top_n, rerank.device) == (str(tiny_model_dir), 3, "cpu")
    [first, *_] = rerank.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert first.node.metadata["retrieval_score"] == make_nodes()[int(first.node.node_id[1:])].score


def test_a_config_saved_by_the_package_peer_loads(tiny_model_dir: Path) -> None:
    # The keys llama-index-postprocessor-sbert-rerank's SentenceTransformerRerank writes.
    saved = {
        "model": str(tiny_model_dir),
        "top_n": 2,
        "keep_retrieval_score": False,
        "cross_encoder_kwargs": {"max_length": 64},
        "class_name": "SentenceTransformerRerank",
    }
    rerank = CrossEncoderRerank.from_dict(saved)
    assert (rerank.top_n, rerank.max_length, rerank.scorer.max_length) == (2, 64, 64)


# ---------------------------------------------------------------------- settings


def test_every_scorer_setting_is_a_field_with_the_scorers_default() -> None:
    fields = CrossEncoderRerank.model_fields
    for name, default in SCORER_OPTIONS.items():
        assert name in fields, name
        assert fields[name].default == default, name
        assert "crossrank.CrossEncoderScorer (docs/core.md)" in (fields[name].description or "")
    own = set(fields) - set(SCORER_OPTIONS) - {"callback_manager"}
    assert own == {
        "top_n",
        "score_threshold",
        "min_relative_score",
        "token_budget",
        "passage_only",
        "keep_retrieval_score",
        "metadata_mode",
    }


def test_a_setting_is_described_from_the_scorers_docstring() -> None:
    fields = CrossEncoderRerank.model_fields
    assert fields["batch_size"].description == (
        "Most pairs per forward pass. Setting of crossrank.CrossEncoderScorer (docs/core.md)."
    )
    assert (fields["max_windows"].description or "").startswith("In ``chunk`` mode, the most")


@pytest.mark.parametrize("secret", SECRET_OPTIONS)
def test_secrets_are_never_serialized(tiny_model_dir: Path, secret: str) -> None:
    rerank = CrossEncoderRerank(model=tiny_model_dir, **{secret: "hf_very_secret"})
    assert getattr(rerank.scorer, secret) == "hf_very_secret"
    assert "hf_very_secret" not in rerank.to_json()
    assert "hf_very_secret" not in repr(rerank)
    assert secret not in rerank.to_dict()
    assert getattr(CrossEncoderRerank.from_json(rerank.to_json()).scorer, secret) is None


# ---------------------------------------------------------------------- any scorer


class _Remote:
    """A scorer with the rerank contract that is not a CrossEncoderScorer (as a remote
    scorer would be); here it delegates to a local one."""

    def __init__(self, inner: CrossEncoderScorer) -> None:
        self._inner = inner
        self.model_name = "remote/reranker"
        self.activation = inner.activation
        self.calls = 0

    def warm_up(self) -> None:
        self._inner.warm_up()

    def rerank(self, query: str, texts: Sequence[str | None], **kwargs: Any) -> Reranked:
        self.calls += 1
        return self._inner.rerank(query, texts, **kwargs)

    async def arerank(self, query: str, texts: Sequence[str | None], **kwargs: Any) -> Reranked:
        return await self._inner.arerank(query, texts, **kwargs)


def test_any_scorer_with_the_rerank_contract_is_accepted(tiny_scorer: CrossEncoderScorer) -> None:
    remote = _Remote(tiny_scorer)
    assert isinstance(remote, RerankScorer)
    rerank = CrossEncoderRerank(scorer=remote, top_n=3, metadata_mode=MetadataMode.NONE)
    assert rerank.model == "remote/reranker"
    local = CrossEncoderRerank(scorer=tiny_scorer, top_n=3, metadata_mode=MetadataMode.NONE)
    assert ranking(rerank) == ranking(local)
    assert remote.calls == 1
