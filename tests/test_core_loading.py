"""Model-loading failures: each a crossrank exception naming the model and a hint, and
nothing half-loaded left behind, so a retry can succeed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crossrank import (
    CrossEncoderScorer,
    HubUnreachableError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedModelError,
)


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model"
    scorer = CrossEncoderScorer(missing)
    with pytest.raises(ModelNotFoundError) as info:
        scorer.score("q", ["t"])
    assert info.value.model == str(missing)
    assert "there is no folder at" in str(info.value)
    assert "Pass an existing local model folder" in info.value.hint
    assert not scorer.is_loaded


def test_a_file_is_not_a_model_folder(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="it is a file, not a model folder"):
        CrossEncoderScorer(f).warm_up()


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match=r"the folder has no config\.json"):
        CrossEncoderScorer(tmp_path).warm_up()


def test_bi_encoder_is_rejected_with_a_hint(tiny_bi_encoder_dir: Path) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        CrossEncoderScorer(tiny_bi_encoder_dir).warm_up()
    message = str(info.value)
    assert "it fits no reranker family" in message and "BertModel" in message
    assert "first-stage retriever" in message and "sequence-classification" in info.value.hint


def test_corrupt_weights_then_retry_succeeds(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(b"\x00garbage" * 10)
    scorer = CrossEncoderScorer(broken, device="cpu")
    with pytest.raises(ModelLoadError, match="weights could not be read") as info:
        scorer.warm_up()
    assert "re-download or re-save" in info.value.hint
    assert not scorer.is_loaded
    weights.write_bytes(good)  # the user fixes the files; the same scorer now loads
    assert len(scorer.score("q", ["t"])) == 1


def test_hub_unreachable_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = CrossEncoderScorer(
        "crossrank-test/does-not-exist-anywhere", cache_dir=tmp_path, local_files_only=True
    )
    with pytest.raises(HubUnreachableError) as info:
        scorer.warm_up()
    assert info.value.model == "crossrank-test/does-not-exist-anywhere"
    assert "pass the path of a local model folder" in info.value.hint
    assert not scorer.is_loaded


def test_errors_share_one_base_class() -> None:
    from crossrank import CrossrankError

    for cls in (ModelNotFoundError, HubUnreachableError, UnsupportedModelError):
        assert issubclass(cls, ModelLoadError)
        assert issubclass(cls, CrossrankError)


def test_three_label_model_is_rejected(tmp_path: Path) -> None:
    from conftest import build_tiny_model

    folder = build_tiny_model(tmp_path / "three", num_labels=3)
    with pytest.raises(UnsupportedModelError, match="it has 3 output labels"):
        CrossEncoderScorer(folder).warm_up()


# ------------------------------------------------------------ model/tokenizer/config kwargs


def test_config_kwargs_reach_the_loaded_config(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(
        tiny_model_dir, device="cpu", config_kwargs={"hidden_dropout_prob": 0.0}
    )
    scorer.warm_up()
    assert scorer._model().engine.config.hidden_dropout_prob == 0.0
    default = CrossEncoderScorer(tiny_model_dir, device="cpu")
    default.warm_up()
    assert default._model().engine.config.hidden_dropout_prob == 0.1  # the saved value


def test_tokenizer_kwargs_change_the_resolved_max_length(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(
        tiny_model_dir, device="cpu", tokenizer_kwargs={"model_max_length": 64}
    )
    assert scorer.max_length == 64
    assert CrossEncoderScorer(tiny_model_dir, device="cpu").max_length == 128
    details = scorer.score_details("capital", ["paris " * 70])
    assert details.truncated == [True]


@pytest.mark.parametrize(
    "model_kwargs",
    [{"torch_dtype": "bfloat16"}, {"dtype": "bfloat16"}, {"torch_dtype": "torch.bfloat16"}],
)
def test_model_kwargs_dtype_strings_load_the_model_in_that_dtype(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer, model_kwargs: dict[str, str]
) -> None:
    import torch

    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu", model_kwargs=model_kwargs)
    texts = ["paris is the capital of france", "the cat and the dog"]
    scores = scorer.score("capital of france", texts)
    assert next(scorer._model().engine.parameters()).dtype == torch.bfloat16
    assert all(type(s) is float for s in scores)
    reference = tiny_scorer.score("capital of france", texts)
    assert scores == pytest.approx(reference, abs=0.05)
    assert scorer.model_kwargs == model_kwargs  # kept as given


def test_load_kwargs_are_copied_and_none_stays_none(tiny_model_dir: Path) -> None:
    given = {"hidden_dropout_prob": 0.0}
    scorer = CrossEncoderScorer(tiny_model_dir, config_kwargs=given)
    given["hidden_dropout_prob"] = 0.5
    assert scorer.config_kwargs == {"hidden_dropout_prob": 0.0}
    assert scorer.config_kwargs is not given
    plain = CrossEncoderScorer(tiny_model_dir)
    assert (plain.model_kwargs, plain.tokenizer_kwargs, plain.config_kwargs) == (None, None, None)


@pytest.mark.parametrize("option", ["model_kwargs", "tokenizer_kwargs", "config_kwargs"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("torch_dtype=bfloat16", "must be a dict of keyword arguments .* got str"),
        ([("a", 1)], "must be a dict of keyword arguments .* got list"),
        ({1: "x"}, "keys must be strings, got int 1"),
    ],
)
def test_load_kwargs_must_be_dicts_with_string_keys(
    option: str, value: object, message: str
) -> None:
    with pytest.raises(TypeError, match=f"{option} {message}"):
        CrossEncoderScorer("some/model", **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "key", "instead"),
    [
        ("model_kwargs", "revision", r"CrossEncoderScorer\(revision=...\)"),
        ("model_kwargs", "trust_remote_code", r"CrossEncoderScorer\(trust_remote_code=...\)"),
        ("model_kwargs", "config", "config_kwargs"),
        ("tokenizer_kwargs", "token", r"CrossEncoderScorer\(token=...\)"),
        ("tokenizer_kwargs", "cache_dir", r"CrossEncoderScorer\(cache_dir=...\)"),
        ("config_kwargs", "local_files_only", r"CrossEncoderScorer\(local_files_only=...\)"),
    ],
)
def test_load_kwargs_clashing_with_crossrank_options_say_what_to_use(
    option: str, key: str, instead: str
) -> None:
    with pytest.raises(ValueError, match=f"{option} must not set '{key}'.*{instead}"):
        CrossEncoderScorer("some/model", **{option: {key: "x"}})  # type: ignore[arg-type]


def test_a_bad_model_kwarg_is_reported_with_the_option(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu", model_kwargs={"bogus": 1})
    with pytest.raises(ModelLoadError, match="bogus") as info:
        scorer.warm_up()
    assert "Check model_kwargs (bogus)" in info.value.hint
    assert not scorer.is_loaded
