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
    with pytest.raises(UnsupportedModelError, match="the folder has no config.json"):
        CrossEncoderScorer(tmp_path).warm_up()


def test_bi_encoder_is_rejected_with_a_hint(tiny_bi_encoder_dir: Path) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        CrossEncoderScorer(tiny_bi_encoder_dir).warm_up()
    assert "it is not a cross-encoder (architectures=['BertModel'])" in str(info.value)
    assert "first-stage retriever" in info.value.hint


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
