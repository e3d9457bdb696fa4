"""Model families beyond parity: instructions per call, what a checkpoint that fits no family
is told, trust_remote_code, short position tables, a model without a pad token, and a backend
that returns NaN (caught at score time and by auto's probe)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from family_kit import INSTRUCTION, PAIRS, QUERY, UNKNOWN_MODULE_TYPE

from crossrank import CrossEncoderScorer
from crossrank.errors import ModelLoadError, ScoringError, UnsupportedModelError

DOCUMENTS = [d for _, d in PAIRS]
#: An instruction none of the kit's checkpoints saved.
OTHER = "Find the abstracts that contradict the claim"


def scorer(family_kit: Any, name: str, **kw: Any) -> CrossEncoderScorer:
    kw.setdefault("activation", "raw")
    return CrossEncoderScorer(family_kit.path(name), device="cpu", **kw)


# ---------------------------------------------------------------------- instructions


@pytest.mark.parametrize("name", ["qwen3-causal", "qwen3-seq-cls", "bert-default-prompt"])
def test_an_instruction_per_call_scores_as_sentence_transformers_prompt(
    family_kit: Any, name: str
) -> None:
    """``instruction=`` on a call is sentence-transformers' ``prompt=``: the system message
    of a chat template, or text before the query; ``""`` turns the saved default off."""
    own = scorer(family_kit, name)
    with_instruction = np.asarray(own.score(QUERY, DOCUMENTS, instruction=OTHER))
    expected = family_kit.reference(name, prompt=OTHER).scores
    np.testing.assert_allclose(with_instruction, expected, atol=1e-4, rtol=0)
    default = np.asarray(own.score(QUERY, DOCUMENTS))
    assert np.abs(default - with_instruction).max() > 1e-3  # the instruction was read
    off = np.asarray(own.score(QUERY, DOCUMENTS, instruction=""))
    np.testing.assert_allclose(off, family_kit.reference(name, prompt="").scores, atol=1e-4)


def test_the_scorer_instruction_prompt_and_prompt_name(family_kit: Any) -> None:
    name = "qwen3-seq-cls"
    by_name = scorer(family_kit, name, prompt_name="scifact").score(QUERY, DOCUMENTS)
    expected = family_kit.reference(name, prompt_name="scifact").scores
    np.testing.assert_allclose(by_name, expected, atol=1e-4, rtol=0)
    for option in ("instruction", "prompt"):
        same = scorer(family_kit, name, **{option: INSTRUCTION}).score(QUERY, DOCUMENTS)
        np.testing.assert_allclose(same, by_name, atol=1e-6)
    with pytest.raises(ValueError, match=r"prompt_name must name one of the prompts .*scifact"):
        scorer(family_kit, name, prompt_name="nope").warm_up()
    with pytest.raises(ValueError, match="instruction and prompt are the same setting"):
        CrossEncoderScorer(family_kit.path(name), instruction="a", prompt="b")


def test_the_chosen_family_is_said(family_kit: Any) -> None:
    causal = scorer(family_kit, "qwen3-causal")
    assert causal.active_family == "causal-lm"
    assert "LogitScore" in causal.family_detail and "chat template" in causal.family_detail
    assert "causal-lm" in repr(causal)
    gemma = scorer(family_kit, "bge-gemma")
    assert gemma.active_family == "causal-lm"
    assert "bge-reranker-gemma" in gemma.family_detail and "logit('Yes')" in gemma.family_detail
    ettin = scorer(family_kit, "ettin")
    assert ettin.active_family == "sentence-transformers"
    assert "Pooling -> Dense -> LayerNorm -> Dense" in ettin.family_detail


def test_a_known_family_by_name_on_a_checkpoint_without_its_files(family_kit: Any) -> None:
    """``family="qwen3-reranker"`` reads an original checkpoint with the built-in template;
    on a causal LM of an unknown architecture, true_token and template are the way."""
    named = scorer(family_kit, "qwen3-reranker-original", family="qwen3-reranker")
    detected = scorer(family_kit, "qwen3-reranker-original")
    np.testing.assert_allclose(named.score(QUERY, DOCUMENTS), detected.score(QUERY, DOCUMENTS))
    custom = scorer(
        family_kit,
        "qwen3-reranker-original",
        family="causal-lm",
        true_token="yes",
        false_token="no",
        template="Query: {query}\nDocument: {document}\nRelevant:",
    )
    assert "Query: " + QUERY in custom._model().encoder.decode(QUERY, "a short text")
    assert np.all(np.isfinite(custom.score(QUERY, DOCUMENTS)))


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("{query} only", r"must contain \{query\} and \{document\}"),
        ("{query} {document} {extra}", "got the fields"),
        ("{query {document}", "not a valid format string"),
    ],
)
def test_a_bad_template_is_refused(family_kit: Any, template: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CrossEncoderScorer(family_kit.path("qwen3-causal"), template=template)


# ---------------------------------------------------------------------- what fits no family


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("bare-encoder", "BertModel"),
        ("t5", "T5ForConditionalGeneration"),
        ("unknown-module", UNKNOWN_MODULE_TYPE),
    ],
)
def test_a_checkpoint_that_fits_no_family_says_what_was_found(
    family_kit: Any, name: str, found: str
) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        scorer(family_kit, name).warm_up()
    message = str(info.value)
    assert found in message and "\n" not in message
    assert "sequence-classification" in message  # the families crossrank supports


def test_remote_code_needs_the_option_and_names_it(family_kit: Any) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        scorer(family_kit, "remote-code").warm_up()
    assert "trust_remote_code=True" in str(info.value) and "\n" not in str(info.value)
    trusted = scorer(family_kit, "remote-code", trust_remote_code=True)
    assert np.all(np.isfinite(trusted.score(QUERY, DOCUMENTS)))


def test_remote_code_that_does_not_run_names_the_transformers_version(family_kit: Any) -> None:
    import transformers

    with pytest.raises(ModelLoadError) as info:
        scorer(family_kit, "remote-code-broken", trust_remote_code=True).warm_up()
    message = str(info.value)
    assert f"transformers {transformers.__version__}" in message
    assert "create_position_ids_from_input_ids" in message and "\n" not in message


def test_a_short_position_table_caps_max_length_once(
    family_kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A table of 66 rows with RoBERTa's offset embeds 64 tokens, though the tokenizer says
    8192: max_length is capped at 64 (logged once), and long pairs score instead of crashing."""
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        short = scorer(family_kit, "xlmr-short-positions")
        assert short.max_length == 64
        scores = short.score(QUERY, DOCUMENTS)
    assert caplog.text.count("position table embeds 64") == 1
    assert np.all(np.isfinite(scores))
    with pytest.raises(ValueError, match="max_length must be <= the model's limit of 64"):
        scorer(family_kit, "xlmr-short-positions", max_length=65).warm_up()


def test_a_model_without_a_pad_token_scores_in_batches(family_kit: Any) -> None:
    no_pad = scorer(family_kit, "qwen3-seq-cls-no-pad", batch_size=8)
    batched = np.asarray(no_pad.score(QUERY, DOCUMENTS))
    alone = np.asarray([no_pad.score(QUERY, [d])[0] for d in DOCUMENTS])
    np.testing.assert_allclose(batched, alone, atol=1e-4)


# ---------------------------------------------------------------------- never a NaN


def _nan_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant an ONNX backend whose first score in every batch is NaN."""
    from crossrank.runtimes import onnx

    real = onnx.make_onnx_forward

    def planted(*args: Any, **kwargs: Any) -> Any:
        forward, session = real(*args, **kwargs)

        def nan_forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
            out = forward(arrays).copy()
            out[0] = np.nan
            return out

        return nan_forward, session

    monkeypatch.setattr(onnx, "make_onnx_forward", planted)


def test_a_backend_that_returns_nan_raises_instead(
    family_kit: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    pytest.importorskip("onnxruntime")
    _nan_onnx(monkeypatch)
    planted = scorer(family_kit, "bert", backend="onnx", onnx_cache_dir=tmp_path)
    with pytest.raises(ScoringError) as info:
        planted.score(QUERY, DOCUMENTS)
    error = info.value
    assert error.backend == "onnx" and "not finite" in str(error)
    assert "backend='torch'" in str(error) and str(family_kit.path("bert")) in str(error)


def test_auto_never_picks_a_backend_that_returns_nan(
    family_kit: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from crossrank.runtimes import backends, cpu, openvino

    pytest.importorskip("onnxruntime")
    _nan_onnx(monkeypatch)
    monkeypatch.delenv("CROSSRANK_BACKEND", raising=False)
    monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(backends, "onnx_available", lambda: True)
    monkeypatch.setattr(openvino, "openvino_available", lambda backend="openvino": False)
    auto = scorer(family_kit, "qwen3-causal", backend="auto", onnx_cache_dir=tmp_path)
    assert auto.active_backend == "torch"
    trial = {t.backend: t for t in auto._model().decision.trials}["onnx"]  # type: ignore[union-attr]
    assert not trial.passed and "not finite" in (trial.error or "")
    assert np.all(np.isfinite(auto.score(QUERY, DOCUMENTS)))


# ---------------------------------------------------------------------- the command line


def test_rerank_takes_the_family_options_and_an_instruction(
    family_kit: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from crossrank.cli import main

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCUMENTS), encoding="utf-8")
    folder = str(family_kit.path("qwen3-reranker-original"))
    argv = ["rerank", "-q", QUERY, "-i", str(docs), "-m", folder, "--activation", "raw",
            "--family", "qwen3-reranker", "--instruction", OTHER]
    assert main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    same = scorer(family_kit, "qwen3-reranker-original", family="qwen3-reranker", instruction=OTHER)
    expected = same.rank(QUERY, DOCUMENTS)
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert main([*argv[:-4], "--family", "nope"]) == 2
    assert "--family" in capsys.readouterr().err
