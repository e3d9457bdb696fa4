"""The composites of crossrank.compose on real tiny models and the fake hosted providers (a
local HTTP server, tests/provider_kit.py): Ensemble's arithmetic and concurrency, Fallback
on an error, a hang and an open breaker, Cascade's order, and every config round trip."""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from provider_kit import KEY, Failure, FakeProviders
from serve_kit import spread_model, wait_for

from crossrank import CrossEncoderScorer, RemoteScorer
from crossrank.batching import run_pass
from crossrank.compose import (
    BiEncoderScorer,
    Breaker,
    Cascade,
    Ensemble,
    Fallback,
    FallbackError,
    load_scorer_config,
    scorer_from_config,
    scorer_to_config,
)
from crossrank.compose.ensemble import rank_scale
from crossrank.fusion import normalize

pytestmark = pytest.mark.timeout(180)

QUERY = "cancer risk in patients"
TEXTS = [
    "a study of cancer risk in patients",
    "the dog",
    None,
    "cells and genes",
    "heart treatment effect",
    "cancer patients and treatment",
    "  ",
    "berlin is a city in germany",
]
SCORABLE = [0, 1, 3, 4, 5, 7]
ENV = "CROSSRANK_COMPOSE_TEST_KEY"


@pytest.fixture(scope="module")
def first(spread_scorer: CrossEncoderScorer) -> CrossEncoderScorer:
    """The spread model: the one the fake providers score with too."""
    return spread_scorer


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> CrossEncoderScorer:
    scorer = CrossEncoderScorer(spread_model(tmp_path_factory, seed=11), device="cpu")
    scorer.warm_up()
    return scorer


@pytest.fixture(scope="module")
def bi(tiny_bi_encoder_dir: Path) -> BiEncoderScorer:
    scorer = BiEncoderScorer(str(tiny_bi_encoder_dir), device="cpu")
    scorer.warm_up()
    return scorer


@pytest.fixture
def provider_key(monkeypatch: pytest.MonkeyPatch, fakes: FakeProviders) -> str:
    monkeypatch.setenv(ENV, KEY)
    fakes.reset()
    return ENV


def _scores(scorer: Any, texts: list[str]) -> list[float]:
    return [float(s) for s in scorer.score(QUERY, texts)]


def _returned(out: Any) -> list[int]:
    return [h.index for h in out.hits] + list(out.unscored)


# ---------------------------------------------------------------------- Ensemble


@pytest.mark.parametrize("normalization", ["zscore", "rank", "probability"])
def test_ensemble_is_the_weighted_mean_of_normalized_member_scores(
    first: CrossEncoderScorer, second: CrossEncoderScorer, normalization: str
) -> None:
    texts = [TEXTS[i] or "" for i in SCORABLE]
    a, b = np.array(_scores(first, texts)), np.array(_scores(second, texts))
    scale = {
        "zscore": lambda x: normalize(x, "zscore"),
        "rank": lambda x: rank_scale(list(x)),
        "probability": lambda x: x,
    }[normalization]
    want = 0.25 * scale(a) + 0.75 * scale(b)
    ensemble = Ensemble([first, second], weights=[1, 3], normalization=normalization)  # type: ignore[arg-type]
    out = ensemble.rerank(QUERY, TEXTS)
    assert out.skipped == [2, 6] and out.unscored == []
    assert [h.index for h in out.hits] == [SCORABLE[j] for j in np.argsort(-want, kind="stable")]
    got = {h.index: h.score for h in out.hits}
    assert [got[i] for i in SCORABLE] == pytest.approx(list(want), abs=1e-6)
    assert all(type(h.score) is float for h in out.hits)
    assert out.members == (first.model_name, second.model_name)
    assert [out.member_scores[i] for i in SCORABLE] == [
        pytest.approx((x, y), abs=1e-6) for x, y in zip(a, b, strict=True)
    ]
    assert out.pairs == 2 * len(SCORABLE)
    assert ensemble.activation == ("raw" if normalization == "zscore" else "sigmoid")


def test_ensemble_weight_one_is_the_member_alone_and_selection_applies(
    first: CrossEncoderScorer, second: CrossEncoderScorer
) -> None:
    alone = Ensemble([first, second], weights=[0, 2], normalization="probability")
    want = second.rerank(QUERY, TEXTS, top_k=3, score_threshold=0.0)
    got = alone.rerank(QUERY, TEXTS, top_k=3, score_threshold=0.0)
    assert [h.index for h in got.hits] == [h.index for h in want.hits]
    assert [h.score for h in got.hits] == pytest.approx([h.score for h in want.hits], abs=1e-6)
    budget = alone.rerank(QUERY, TEXTS, token_budget=6)
    counts = first.count_tokens([TEXTS[h.index] or "" for h in budget.hits])
    assert sum(counts) <= 6 and len(budget.hits) < len(SCORABLE)


def test_ensemble_members_run_at_once_in_threads_and_on_the_event_loop(
    first: CrossEncoderScorer, second: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = threading.Barrier(2, timeout=30)  # each member waits until the other is in too
    threads: list[str] = []

    def meeting(loaded: Any, features: Any) -> Any:
        threads.append(threading.current_thread().name)
        inside.wait()
        return run_pass(loaded, features)[0]

    monkeypatch.setattr(first, "row_forward", meeting)
    monkeypatch.setattr(second, "row_forward", meeting)
    ensemble = Ensemble([first, second])
    ensemble.rerank(QUERY, TEXTS)  # a member scored alone would wait out the barrier
    assert len(set(threads)) == 2
    asyncio.run(ensemble.arerank(QUERY, TEXTS))
    assert len(threads) == 4


def test_ensemble_refuses_what_it_cannot_do(
    first: CrossEncoderScorer, second: CrossEncoderScorer, tiny_model_dir: Path
) -> None:
    with pytest.raises(ValueError, match="at least 2 scorers"):
        Ensemble([first])
    with pytest.raises(ValueError, match="one weight per scorer"):
        Ensemble([first, second], weights=[1.0])
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        Ensemble([first, second], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="must not all be 0"):
        Ensemble([first, second], weights=[0, 0])
    with pytest.raises(ValueError, match="normalization must be one of"):
        Ensemble([first, second], normalization="minmax")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"scorers\[1\] must be a scorer"):
        Ensemble([first, "model-b"])
    fused = CrossEncoderScorer(tiny_model_dir, fusion="linear")
    with pytest.raises(ValueError, match="has fusion='linear'"):
        Ensemble([first, fused])
    ensemble = Ensemble([first, second])
    with pytest.raises(ValueError, match="activation='sigmoid' cannot be asked"):
        ensemble.rerank(QUERY, TEXTS, activation="sigmoid")
    with pytest.raises(ValueError, match="does not fuse first-stage scores"):
        ensemble.rerank(QUERY, TEXTS, fusion="linear", first_stage_scores=[1.0] * len(TEXTS))
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        ensemble.rerank(QUERY, TEXTS, min_relative_score=0.5)
    assert ensemble.rerank(QUERY, ["", None]).hits == []


# ---------------------------------------------------------------------- Fallback


def _cohere(url: str, env: str, **kwargs: Any) -> RemoteScorer:
    return RemoteScorer(url, provider="cohere", model="rerank-v3.5", api_key_env=env, **kwargs)


def _accounted(out: Any, texts: list[Any]) -> None:
    """Every candidate is returned or reported skipped, once."""
    assert sorted(_returned(out) + out.skipped) == list(range(len(texts)))


def test_fallback_serves_when_the_provider_fails_and_the_breaker_opens(
    first: CrossEncoderScorer, fakes: FakeProviders, provider_key: str
) -> None:
    fakes.fail("cohere", Failure(500, times=100))
    primary = _cohere(fakes.url("cohere"), provider_key, retries=0)
    scorer = Fallback(primary, first, breaker_failures=2, breaker_cooldown_s=30)
    now = [0.0]
    scorer.breaker = Breaker(2, 30.0, clock=lambda: now[0])
    want = first.rerank(QUERY, TEXTS, top_k=4)
    for _ in range(2):
        out = scorer.rerank(QUERY, TEXTS, top_k=4)
        assert out.served_by == "fallback"
        assert out.reason is not None and out.reason.startswith("error: ")
        assert "500" in out.reason
        assert [h.index for h in out.hits] == [h.index for h in want.hits]
        assert out.served is not None and out.skipped == [2, 6]
    assert len(fakes.sent("cohere")) == 2 and scorer.breaker.state == "open"
    out = scorer.rerank(QUERY, TEXTS)
    assert out.served_by == "fallback" and out.reason.startswith("breaker open")  # type: ignore[union-attr]
    assert len(fakes.sent("cohere")) == 2  # the primary was not called
    _accounted(out, TEXTS)
    now[0] = 31.0  # cooled down: one trial call, which fails and opens it again
    assert scorer.breaker.state == "half-open"
    assert scorer.rerank(QUERY, TEXTS).reason.startswith("error")  # type: ignore[attr-defined]
    assert len(fakes.sent("cohere")) == 3 and scorer.breaker.state == "open"


def test_fallback_answers_within_the_timeout_when_the_provider_hangs(
    first: CrossEncoderScorer, fakes: FakeProviders, provider_key: str
) -> None:
    fakes.fail("cohere", Failure(503, times=100, hang_s=60))
    primary = _cohere(fakes.url("cohere"), provider_key, retries=0, timeout=60.0)
    scorer = Fallback(primary, first, timeout_s=0.5)
    started = time.monotonic()
    first.rerank(QUERY, TEXTS, top_k=5)  # the fallback's own time: one batch here
    batch_s = time.monotonic() - started
    for how, run in (
        ("sync", lambda: scorer.rerank(QUERY, TEXTS, top_k=5)),
        ("async", lambda: asyncio.run(scorer.arerank(QUERY, TEXTS, top_k=5))),
    ):
        started = time.monotonic()
        out = run()
        waited = time.monotonic() - started
        print(f"\nfallback ({how}): answered in {waited:.3f} s; timeout_s 0.5, one batch "
              f"{batch_s:.3f} s, the provider hangs 60 s")  # fmt: skip
        # Not the provider's 60 s: the timeout, then the fallback's batch (with room for a
        # loaded machine's scheduling).
        assert waited < 0.5 + 3 * batch_s + 2.0, (waited, batch_s)
        assert out.served_by == "fallback"
        assert out.reason == "timeout: the primary did not answer within timeout_s=0.5"
        assert len(out.hits) == 5
        assert [h.index for h in out.hits] == [
            h.index for h in first.rerank(QUERY, TEXTS, top_k=5).hits
        ]
    fakes.release()  # the late calls answer now; wait for them, so none outlives the test
    wait_for(lambda: len(fakes.sent("cohere")) == 2, "the two held requests")


def test_fallback_passes_the_callers_errors_and_says_when_both_fail(
    first: CrossEncoderScorer, fakes: FakeProviders, provider_key: str
) -> None:
    fakes.fail("cohere", Failure(500, times=100))
    url = fakes.url("cohere")
    scorer = Fallback(_cohere(url, provider_key, retries=0), first)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        scorer.rerank(QUERY, TEXTS, top_k=0)  # the caller's input: no fallback, no failure
    assert scorer.breaker.state == "closed" and fakes.sent("cohere") == []
    only_late = Fallback(_cohere(url, provider_key, retries=0), first, on=("timeout",))
    with pytest.raises(Exception, match="500"):
        only_late.rerank(QUERY, TEXTS)
    both = Fallback(_cohere(url, provider_key, retries=0), _cohere(url, provider_key, retries=0))
    with pytest.raises(FallbackError, match="failed too"):
        both.rerank(QUERY, TEXTS)
    with pytest.raises(ValueError, match="on must hold only"):
        Fallback(first, first, on=("error", "slow"))
    with pytest.raises(ValueError, match="timeout_s must be"):
        Fallback(first, first, timeout_s=0)


def test_the_primary_serves_when_it_answers(
    first: CrossEncoderScorer, second: CrossEncoderScorer, fakes: FakeProviders,
    provider_key: str,
) -> None:
    scorer = Fallback(_cohere(fakes.url("cohere"), provider_key), second)
    out = scorer.rerank(QUERY, TEXTS, top_k=3)
    assert out.served_by == "primary" and out.reason is None
    assert fakes.sent("cohere")[0].body["documents"] == [TEXTS[i] for i in SCORABLE]
    want = first.rerank(QUERY, TEXTS, top_k=3)  # the fake scores with the spread model
    assert [h.index for h in out.hits] == [h.index for h in want.hits]
    assert out.usage is not None and out.usage["requests"] == 1
    local = Fallback(first, second).rerank(QUERY, TEXTS)
    assert [h.index for h in local.hits] == [h.index for h in first.rerank(QUERY, TEXTS).hits]


# ---------------------------------------------------------------------- Cascade


def test_cascade_rescores_the_cheap_top_and_keeps_the_rest_in_the_cheap_order(
    bi: BiEncoderScorer, first: CrossEncoderScorer
) -> None:
    cascade = Cascade(bi, first, keep=3)
    cheap = [h.index for h in bi.rerank(QUERY, TEXTS).hits]
    top, rest = cheap[:3], cheap[3:]
    out = cascade.rerank(QUERY, TEXTS)
    expensive = first.rerank(QUERY, [TEXTS[i] for i in top])
    assert [h.index for h in out.hits] == [top[h.index] for h in expensive.hits]
    assert [h.score for h in out.hits] == pytest.approx([h.score for h in expensive.hits])
    assert out.unscored == rest and out.deadline_unscored == 0
    assert out.pairs == len(SCORABLE) + 3
    assert _returned(cascade.rerank(QUERY, TEXTS, top_k=4)) == _returned(out)[:4]
    _accounted(out, TEXTS)
    assert cascade.activation == "sigmoid"
    assert cascade.model_name == f"cascade({bi.model_name} > {first.model_name}@3)"
    with pytest.raises(ValueError, match="keep must be >= 1"):
        Cascade(bi, first, keep=0)


def test_cascade_passages_come_from_the_expensive_scorer(
    bi: BiEncoderScorer, first: CrossEncoderScorer
) -> None:
    out = Cascade(bi, first, keep=2).rerank(QUERY, TEXTS, passages=True)
    assert all(h.passage is not None for h in out.hits)
    with pytest.raises(ValueError, match="passages: a bi-encoder scores whole texts"):
        Cascade(first, bi, keep=2).rerank(QUERY, TEXTS, passages=True)


# ---------------------------------------------------------------------- configs


def test_every_composite_survives_a_config_round_trip(
    first: CrossEncoderScorer,
    second: CrossEncoderScorer,
    bi: BiEncoderScorer,
    provider_key: str,
    tmp_path: Path,
) -> None:
    remote = _cohere("http://127.0.0.1:9", provider_key, timeout=2.0)
    scorer = Fallback(
        Ensemble([remote, first], weights=[2, 1], normalization="rank", deadline_ms=300),
        Cascade(bi, second, keep=7),
        timeout_s=1.5,
        on=("timeout",),
        breaker_failures=3,
        breaker_cooldown_s=12,
    )
    config = scorer_to_config(scorer)
    text = json.dumps(config)
    assert KEY not in text and ENV in text
    assert config["type"] == "fallback" and config["primary"]["type"] == "ensemble"
    assert [m["type"] for m in config["primary"]["scorers"]] == ["remote", "local"]
    assert config["fallback"]["cheap"] == {
        "type": "bi-encoder", "model": bi.model_name, "device": "cpu", "batch_size": 32,
        "local_files_only": False,
    }  # fmt: skip
    again = scorer_from_config(json.loads(text))
    assert isinstance(again, Fallback) and scorer_to_config(again) == config
    assert again.primary.weights == pytest.approx((2 / 3, 1 / 3))
    assert again.primary.deadline_ms == 300.0 and again.fallback.keep == 7
    path = tmp_path / "scorer.json"
    path.write_text(text)
    assert scorer_to_config(load_scorer_config(path)) == config
    for bad, message in (
        ({"type": "stack"}, "needs a 'type', one of"),
        ({"model": "m"}, "needs a 'type'"),
        ({"type": "local", "modle": "m"}, "unknown CrossEncoderScorer settings"),
        ({"type": "cascade", "cheap": config["fallback"]["cheap"]}, "bad Cascade config"),
    ):
        with pytest.raises(ValueError, match=message):
            scorer_from_config(bad)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read the scorer config"):
        load_scorer_config(tmp_path / "broken.json")


def test_a_scorer_without_a_saved_form_is_named(first: CrossEncoderScorer) -> None:
    class Mine:
        model_name = "mine"
        activation = "raw"

        def rerank(self, *args: Any, **kwargs: Any) -> Any: ...

        async def arerank(self, *args: Any, **kwargs: Any) -> Any: ...

    with pytest.raises(TypeError, match="a scorer of type Mine has no saved form"):
        scorer_to_config(Ensemble([first, Mine()]))


def test_no_score_is_nan_and_scores_are_python_floats(
    first: CrossEncoderScorer, second: CrossEncoderScorer, bi: BiEncoderScorer
) -> None:
    for scorer in (Ensemble([first, second]), Cascade(bi, first, keep=2), Fallback(first, bi)):
        out = scorer.rerank(QUERY, TEXTS)
        assert all(type(h.score) is float and not math.isnan(h.score) for h in out.hits)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("crossrank.results", ["Reranked", "ScoreDetails", "add_usage"]),
        ("crossrank.settings", ["SCORER_OPTIONS", "SECRET_OPTIONS", "json_safe",
                                "scorer_settings"]),
        ("crossrank.compose", ["BiEncoderScorer", "Breaker", "CONFIG_TYPES", "Cascade",
                               "Composite", "ENSEMBLE_NORMALIZATIONS", "Ensemble",
                               "EnsembleReranked", "FALLBACK_ON", "Fallback", "FallbackError",
                               "FallbackReranked", "arerank_within", "deadline_batch",
                               "load_scorer_config", "rerank_within", "scorer_from_config",
                               "scorer_to_config"]),
        ("crossrank.deadline", ["DEFAULT_BATCH", "arerank_with_deadline", "arerank_within",
                                "deadline_batch", "rerank_with_deadline", "rerank_within",
                                "takes_deadline"]),
        ("crossrank.rerank_call", ["CallOptions", "TokenCounter", "finish",
                                        "token_counter"]),
        ("crossrank.compose.members", ["MemberCall", "deadline_at", "leaves", "name_of",
                                       "plan_call", "remaining_ms"]),
        ("crossrank.compose.config", ["CONFIG_TYPES", "load_scorer_config",
                                      "register_config_type", "remote_config", "saves_itself",
                                      "scorer_from_config", "scorer_to_config"]),
        ("crossrank.compose.base", ["Composite", "check_scorer"]),
        ("crossrank.compose.ensemble", ["ENSEMBLE_NORMALIZATIONS", "Ensemble",
                                        "EnsembleNormalization", "EnsembleReranked",
                                        "rank_scale"]),
        ("crossrank.compose.fallback", ["FALLBACK_ON", "Fallback", "FallbackError",
                                        "FallbackReranked"]),
        ("crossrank.compose.cascade", ["Cascade"]),
        ("crossrank.compose.breaker", ["Breaker"]),
        ("crossrank.compose.bi_encoder", ["BiEncoderScorer"]),
        ("crossrank.compose.flags", ["add_scorer_config_option", "saved_scorer",
                                     "with_deadline"]),
        ("crossrank.eval.systems", ["System", "config_label", "is_hosted", "paid_calls_notice",
                                    "parse_cascade", "parse_member", "parse_prices",
                                    "parse_provider", "parse_provider_urls",
                                    "provider_scorer", "requests_needed"]),
        ("crossrank.eval.system_rows", ["cost_per_1000", "run_systems", "system_rows"]),
        ("crossrank.eval.systems_cli", ["add_system_arguments", "confirm_paid_calls",
                                        "prices_of", "systems_of"]),
        ("crossrank.eval.choice", ["budget_summary", "mark_within_budget"]),
        ("crossrank.eval.ensemble_rows", ["ensemble_cv_row", "ensemble_cv_rows"]),
        ("crossrank.eval.latency", ["latency_stats", "percentile_ms"]),
    ],
)  # fmt: skip
def test_each_module_pins_its_all(module: str, names: list[str]) -> None:
    assert sorted(importlib.import_module(module).__all__) == sorted(names)
