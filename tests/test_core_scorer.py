"""Unit tests of the core scorer on a tiny random BERT cross-encoder (offline, fast)."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import crossrank
from crossrank import CrossEncoderScorer, Hit, select
from crossrank.batching import plan_batches

QUERY = "what is the capital of france"
TEXTS = [
    "paris is the capital of france",
    "berlin is the capital of germany",
    "the cat and the dog",
    "a study of cancer risk in patients",
    "paris",
    "",
]


def _direct_logits(folder: Path, query: str, texts: list[str]) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = tok([query] * len(texts), texts, padding=True, truncation="only_second",
              return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits.double().numpy()


def test_public_api_is_pinned() -> None:
    assert sorted(crossrank.__all__) == sorted([
        "DEFAULT_MODEL", "Calibration", "CrossEncoderScorer", "CrossrankError",
        "DeviceUnavailableError", "Hit",
        "HubUnreachableError", "ModelLoadError", "ModelNotFoundError", "RemoteScorer",
        "RemoteScorerError", "Reranked", "ScoreDetails", "ScoringError", "UnsupportedModelError",
        "__version__",
        "passage_span", "select",
    ])
    for name in crossrank.__all__:
        assert hasattr(crossrank, name)


def test_scores_are_python_floats_in_input_order(tiny_scorer: CrossEncoderScorer) -> None:
    scores = tiny_scorer.score(QUERY, TEXTS)
    assert len(scores) == len(TEXTS)
    assert all(type(s) is float for s in scores)
    assert all(0.0 < s < 1.0 for s in scores)
    # Each score is independent of the other candidates: scoring one at a time agrees.
    for text, s in zip(TEXTS, scores, strict=True):
        assert tiny_scorer.score(QUERY, [text])[0] == pytest.approx(s, abs=1e-6)


def test_scores_equal_sentence_transformers(tiny_model_dir: Path,
                                            tiny_scorer: CrossEncoderScorer) -> None:
    from sentence_transformers import CrossEncoder

    st = CrossEncoder(str(tiny_model_dir), device="cpu")
    expected = st.predict([(QUERY, t) for t in TEXTS])
    np.testing.assert_allclose(tiny_scorer.score(QUERY, TEXTS), expected, atol=1e-5)


def test_raw_activation_gives_logits(tiny_model_dir: Path) -> None:
    raw = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw").score(QUERY, TEXTS)
    np.testing.assert_allclose(raw, _direct_logits(tiny_model_dir, QUERY, TEXTS)[:, 0], atol=1e-5)
    sig = CrossEncoderScorer(tiny_model_dir, device="cpu").score(QUERY, TEXTS)
    np.testing.assert_allclose(sig, [1 / (1 + math.exp(-r)) for r in raw], atol=1e-9)


def test_two_logit_model_scores_the_positive_class(tiny_two_logit_dir: Path) -> None:
    logits = _direct_logits(tiny_two_logit_dir, QUERY, TEXTS)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    sig = CrossEncoderScorer(tiny_two_logit_dir, device="cpu").score(QUERY, TEXTS)
    np.testing.assert_allclose(sig, probs[:, 1], atol=1e-6)
    raw = CrossEncoderScorer(tiny_two_logit_dir, device="cpu", activation="raw").score(QUERY, TEXTS)
    np.testing.assert_allclose(raw, logits[:, 1] - logits[:, 0], atol=1e-5)


@pytest.mark.parametrize(
    ("batch_size", "budget"), [(1, None), (2, None), (32, None), (32, 40), (4, 10_000)]
)
def test_batching_does_not_change_scores(tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer,
                                         batch_size: int, budget: int | None) -> None:
    texts = TEXTS * 7 + ["word " * n for n in range(1, 60, 7)]
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu", batch_size=batch_size,
                                max_tokens_per_batch=budget)
    np.testing.assert_allclose(scorer.score(QUERY, texts), tiny_scorer.score(QUERY, texts),
                               atol=1e-5)


def test_plan_batches_respects_size_and_token_budget() -> None:
    lengths = [5, 50, 7, 30, 30, 9, 100, 1]
    batches = plan_batches(lengths, batch_size=3, max_tokens=100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        widest = max(lengths[i] for i in batch)
        assert widest * len(batch) <= 100
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
    assert batches[0] == [6]  # the longest row first, alone because of the budget
    # A row longer than the budget still gets a batch of its own.
    assert plan_batches([500, 3], batch_size=8, max_tokens=100) == [[0], [1]]


def test_plan_batches_for_streams_gives_each_stream_equal_batches() -> None:
    """A backend that runs two batches at once gets a multiple of two, of equal size."""
    sizes = [len(b) for b in plan_batches([10] * 100, batch_size=32, min_batches=2)]
    assert sizes == [25, 25, 25, 25]
    sizes = [len(b) for b in plan_batches([10] * 16, batch_size=32, min_batches=2)]
    assert sizes == [8, 8]
    assert plan_batches([10], batch_size=32, min_batches=2) == [[0]]
    # One stream: as before.
    assert [len(b) for b in plan_batches([10] * 100, batch_size=32)] == [32, 32, 32, 4]


def test_truncation_is_warned_once_per_scorer_and_counted_every_time(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long_text = "paris " * 400
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    with caplog.at_level(logging.DEBUG, logger="crossrank"):
        details = scorer.score_details(QUERY, ["paris", long_text, "berlin"])
        assert details.truncated == [False, True, False]
        assert details.num_truncated == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert "1 of 3 texts were longer than max_length=128" in message
        assert "(1 so far by this scorer)" in message and "logged once" in message
        caplog.clear()
        reranked = scorer.rerank(QUERY, [long_text, "paris", long_text], top_k=1)
        hits = scorer.rank(QUERY, ["paris", long_text])
    assert reranked.truncated == 2  # kept or not
    assert {h.index: h.truncated for h in hits} == {0: False, 1: True}
    assert scorer.truncated_texts == 4
    # Later truncations are DEBUG records, with the count so far.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "(4 so far by this scorer)" in caplog.records[-1].getMessage()
    # Each scorer warns on its own first truncation.
    other = CrossEncoderScorer(tiny_model_dir, device="cpu", long_documents="chunk",
                               max_windows=1)
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        caplog.clear()
        other.score(QUERY, [long_text])
    assert "1 of 1 texts had more than max_windows=1 windows" in caplog.text
    assert other.truncated_texts == 1 and scorer.truncated_texts == 4


def test_truncation_cuts_the_document_only(tiny_model_dir: Path,
                                           tiny_scorer: CrossEncoderScorer) -> None:
    # The model reads the query whole and the first part of the document: appending text
    # beyond the limit does not change the score.
    base = "cancer risk " * 80
    a, b = tiny_scorer.score(QUERY, [base, base + " paris berlin dog" * 50])
    assert a == pytest.approx(b, abs=1e-6)
    from sentence_transformers import CrossEncoder

    st = CrossEncoder(str(tiny_model_dir), device="cpu")
    assert st.predict([(QUERY, base)])[0] == pytest.approx(a, abs=1e-5)


def test_overlong_query_is_cut_with_a_warning(tiny_scorer: CrossEncoderScorer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        scores = tiny_scorer.score("capital " * 300, ["paris", "berlin"])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    assert "the query has 300 tokens" in caplog.text


def test_max_length_option(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu", max_length=16)
    assert scorer.max_length == 16
    details = scorer.score_details("capital", ["paris " * 20, "paris"])
    assert details.truncated == [True, False]
    too_long = CrossEncoderScorer(tiny_model_dir, device="cpu", max_length=4096)
    with pytest.raises(ValueError, match="max_length must be <= the model's limit of 128"):
        too_long.warm_up()


def test_rank_orders_best_first_with_ties_in_input_order(tiny_scorer: CrossEncoderScorer) -> None:
    texts = ["the cat", "paris is the capital", "the cat", "berlin"]
    scores = tiny_scorer.score(QUERY, texts)
    hits = tiny_scorer.rank(QUERY, texts)
    assert [h.score for h in hits] == sorted(scores, reverse=True)
    cat_positions = [h.index for h in hits if texts[h.index] == "the cat"]
    assert cat_positions == [0, 2]
    assert all(isinstance(h, Hit) and type(h.score) is float for h in hits)


def test_rank_top_k_and_threshold(tiny_scorer: CrossEncoderScorer) -> None:
    scores = tiny_scorer.score(QUERY, TEXTS)
    assert len(tiny_scorer.rank(QUERY, TEXTS, top_k=2)) == 2
    assert len(tiny_scorer.rank(QUERY, TEXTS, top_k=100)) == len(TEXTS)
    cut = sorted(scores)[3]
    kept = tiny_scorer.rank(QUERY, TEXTS, score_threshold=cut)
    assert {h.index for h in kept} == {i for i, s in enumerate(scores) if s >= cut}
    assert tiny_scorer.rank(QUERY, TEXTS, score_threshold=2.0) == []
    both = tiny_scorer.rank(QUERY, TEXTS, top_k=1, score_threshold=cut)
    assert [h.index for h in both] == [int(np.argmax(scores))]


def test_select_puts_nan_last_and_drops_it_under_a_threshold() -> None:
    scores = [0.2, math.nan, 0.9, 0.2]
    assert select(scores) == [2, 0, 3, 1]
    assert select(scores, score_threshold=0.0) == [2, 0, 3]
    assert select(scores, top_k=2) == [2, 0]


def test_empty_texts_return_empty_without_loading(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir)
    assert scorer.score(QUERY, []) == []
    assert scorer.rank(QUERY, [], top_k=3) == []
    assert scorer.rerank(QUERY, []).hits == []
    assert not scorer.is_loaded


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ("", ValueError, "query must contain non-whitespace text, got ''"),
        ("  \n", ValueError, "query must contain non-whitespace text"),
        (None, TypeError, "query must be a string, got NoneType None"),
        (42, TypeError, "query must be a string, got int 42"),
        (["q"], TypeError, "query must be a string, got list"),
    ],
)
def test_bad_query(
    tiny_scorer: CrossEncoderScorer, query: object, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        tiny_scorer.score(query, ["text"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("a single string", "texts must be a list of strings, got str"),
        (None, "texts must be a list of strings, got NoneType"),
        (["ok", None], r"texts\[1\] must be a string, got NoneType None"),
        (["ok", 3], r"texts\[1\] must be a string, got int 3"),
        ({"a": 1}, "texts must be a list of strings, got dict"),
    ],
)
def test_bad_texts(tiny_scorer: CrossEncoderScorer, texts: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        tiny_scorer.score(QUERY, texts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"top_k": 0}, ValueError, "top_k must be >= 1, got 0"),
        ({"top_k": -3}, ValueError, "top_k must be >= 1, got -3"),
        ({"top_k": 2.5}, TypeError, "top_k must be an int >= 1 or None, got float 2.5"),
        ({"top_k": True}, TypeError, "top_k must be an int >= 1 or None, got bool"),
        ({"score_threshold": math.nan}, ValueError, "score_threshold must be a number, got NaN"),
        ({"score_threshold": "0.5"}, TypeError, "score_threshold must be a number or None"),
    ],
)
def test_bad_rank_arguments_fail_before_loading(tiny_model_dir: Path, kwargs: dict[str, object],
                                                error: type, message: str) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir)
    with pytest.raises(error, match=message):
        scorer.rank(QUERY, ["text"], **kwargs)  # type: ignore[arg-type]
    assert not scorer.is_loaded


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"max_length": -1}, ValueError, "max_length must be >= 1, got -1"),
        ({"max_tokens_per_batch": "x"}, TypeError, "max_tokens_per_batch must be an int"),
        ({"activation": "softmax"}, ValueError, "activation must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        CrossEncoderScorer("some/model", **kwargs)  # type: ignore[arg-type]


def test_default_model_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                  tiny_model_dir: Path) -> None:
    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    assert CrossEncoderScorer().model_name == crossrank.DEFAULT_MODEL
    monkeypatch.setenv("CROSSRANK_MODEL", str(tiny_model_dir))
    assert CrossEncoderScorer().model_name == str(tiny_model_dir)
    assert CrossEncoderScorer(tiny_model_dir).model_name == str(tiny_model_dir)


def test_loading_is_lazy_and_happens_once_across_threads(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crossrank.scorer as scorer_module

    calls = []
    real = scorer_module.load_model

    def counting(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scorer_module, "load_model", counting)
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    assert not scorer.is_loaded and calls == []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        scorer.score(QUERY, TEXTS)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    scorer.warm_up()
    assert calls == [1]


def test_concurrent_scoring_matches_sequential(tiny_scorer: CrossEncoderScorer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    inputs = [(f"{QUERY} {i}", [*TEXTS[i % 3 :], "dog " * i]) for i in range(40)]
    expected = [tiny_scorer.score(q, t) for q, t in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda qt: tiny_scorer.score(*qt), inputs))
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-6)


def test_async_variants_match_sync(tiny_scorer: CrossEncoderScorer) -> None:
    async def main() -> tuple[list[float], list[Hit], list[Hit]]:
        return await asyncio.gather(  # type: ignore[return-value]
            tiny_scorer.ascore(QUERY, TEXTS),
            tiny_scorer.arank(QUERY, TEXTS, top_k=2),
            tiny_scorer.arerank(QUERY, [None, *TEXTS[:-1]], top_k=2),
        )

    scores, hits, reranked = asyncio.run(main())
    np.testing.assert_allclose(scores, tiny_scorer.score(QUERY, TEXTS), atol=1e-6)
    assert [h.index for h in hits] == [h.index for h in tiny_scorer.rank(QUERY, TEXTS, top_k=2)]
    without_empty = [h.index for h in tiny_scorer.rank(QUERY, TEXTS[:-1], top_k=2)]
    assert [h.index - 1 for h in reranked.hits] == without_empty  # type: ignore[attr-defined]


def test_rerank_skips_and_reports_candidates_without_text(
    tiny_scorer: CrossEncoderScorer, caplog: pytest.LogCaptureFixture
) -> None:
    texts = ["paris", None, "", "   ", "berlin"]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        outcome = tiny_scorer.rerank(QUERY, texts)
    assert outcome.skipped == [1, 2, 3]
    assert sorted(h.index for h in outcome.hits) == [0, 4]
    assert outcome.pairs == 2
    assert "3 of 5 candidates have no text" in caplog.text
    expected = tiny_scorer.rank(QUERY, ["paris", "berlin"])
    assert [(h.score) for h in outcome.hits] == [h.score for h in expected]
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string, got int"):
        tiny_scorer.rerank(QUERY, ["a", 5])  # type: ignore[list-item]


def test_unicode_and_control_characters(tiny_scorer: CrossEncoderScorer) -> None:
    texts = [
        "中文文本", "مرحبا بالعالم", "emoji 😀🎉", "e\u0301 combining", "nul\x00byte", "\u200b"
    ]
    scores = tiny_scorer.score(QUERY, texts)
    assert len(scores) == len(texts) and all(math.isfinite(s) for s in scores)


def test_many_candidates_are_scored_in_bounded_groups(tiny_scorer: CrossEncoderScorer) -> None:
    texts = [f"text number {i} " + "cell " * (i % 13) for i in range(2500)]
    scores = tiny_scorer.score(QUERY, texts)
    assert len(scores) == 2500
    # Identical texts get identical scores across group boundaries (groups of 1024).
    assert scores[13] == pytest.approx(tiny_scorer.score(QUERY, [texts[13]])[0], abs=1e-6)
    assert scores[2013] == pytest.approx(tiny_scorer.score(QUERY, [texts[2013]])[0], abs=1e-6)


def test_repr_does_not_load(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir)
    assert "not loaded" in repr(scorer)
    assert not scorer.is_loaded


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("cache_dir", 3, "cache_dir must be a folder path or None, got 3"),
        ("onnx_cache_dir", "", "onnx_cache_dir must be a folder path or None"),
        ("revision", 1, "revision must be a string or None, got int"),
        ("token", b"hf", "token must be a string or None, got bytes"),
        ("local_files_only", "yes", "local_files_only must be True or False, got 'yes'"),
        ("trust_remote_code", 1, "trust_remote_code must be True or False, got 1"),
    ],
)
def test_loading_options_are_type_checked_before_loading(
    tiny_model_dir: Path, option: str, value: object, message: str
) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        CrossEncoderScorer(tiny_model_dir, **{option: value})  # type: ignore[arg-type]
