"""A deadline on any scorer (crossrank.deadline): scored in first-stage order batch by
batch, the rest returned unscored below, never more than one batch past the deadline, never
an exception.

The slow scorer is the real tiny cross-encoder with a planted delay in its forward hook; the
delay moves a clock of the test's own (installed as the loop's clock), so the bounds below
are checked exactly, whatever the load on the machine.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path
from typing import Any

import pytest
from serve_kit import spread_model

from crossrank import CrossEncoderScorer
from crossrank import deadline as loop_module
from crossrank.batching import run_pass
from crossrank.compose import BiEncoderScorer, deadline_batch, rerank_within

QUERY = "cancer risk in patients"
TEXTS = [
    "a study of cancer risk in patients",
    "the dog",
    "cells and genes",
    "heart treatment effect",
    "paris is the capital of france",
    "blood brain drug dose",
    "protein gene expression",
    "the cat and the dog",
    "cancer patients and treatment",
    "berlin is a city in germany",
]


class PlantedClock:
    """The loop's clock; each forward pass of the planted scorer moves it on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.passes: list[tuple[float, float]] = []  # (start, seconds) of each pass

    def __call__(self) -> float:
        return self.now

    def slow_forward(self, seconds: Any) -> Any:
        """A ``row_forward`` hook: the real forward pass, which takes ``seconds()``."""

        def forward(loaded: Any, features: Any) -> Any:
            duration = seconds()
            self.passes.append((self.now, duration))
            self.now += duration
            return run_pass(loaded, features)[0]

        return forward


@pytest.fixture(scope="module")
def spread_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with scores far enough apart for batching noise not to matter."""
    return spread_model(tmp_path_factory)


@pytest.fixture(scope="module")
def slow_scorer(spread_dir: Path) -> CrossEncoderScorer:
    scorer = CrossEncoderScorer(spread_dir, device="cpu", batch_size=2)
    scorer.warm_up()
    return scorer


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, slow_scorer: CrossEncoderScorer) -> PlantedClock:
    planted = PlantedClock()
    monkeypatch.setattr(loop_module, "clock", planted)
    monkeypatch.setattr(slow_scorer, "row_forward", planted.slow_forward(lambda: 0.030))
    loop_module._PACE.pop(slow_scorer, None)  # each test starts with the pace unknown
    return planted


def test_a_batch_is_one_forward_pass_of_the_scorer(slow_scorer: CrossEncoderScorer) -> None:
    assert deadline_batch(slow_scorer) == 2  # batch_size; 128-token pairs fit 8192 tokens
    chunked = CrossEncoderScorer(
        slow_scorer.model_name, batch_size=32, max_tokens_per_batch=1024, long_documents="chunk",
        max_windows=2,
    )  # fmt: skip
    assert deadline_batch(chunked) == 4  # 1024 // 128 = 8 pairs, 2 windows each


def test_scored_in_first_stage_order_until_the_time_is_spent(
    slow_scorer: CrossEncoderScorer, clock: PlantedClock
) -> None:
    out = slow_scorer.rerank(QUERY, TEXTS, deadline_ms=70)
    # Passes at 0 and 30 ms; a third would end at 90 ms, past 70: not started.
    assert len(clock.passes) == 2
    scored = sorted(hit.index for hit in out.hits)
    assert scored == [0, 1, 2, 3]
    assert out.unscored == [4, 5, 6, 7, 8, 9]
    assert out.deadline_unscored == 6
    assert out.pairs == 4
    assert [hit.score for hit in out.hits] == sorted((h.score for h in out.hits), reverse=True)
    assert all(isinstance(hit.score, float) and math.isfinite(hit.score) for hit in out.hits)


def test_a_known_pace_sizes_the_batches_to_the_time_left(
    slow_scorer: CrossEncoderScorer, clock: PlantedClock
) -> None:
    """The first call learns the pace (30 ms per pass of 2: 15 ms a candidate); then a
    deadline shorter than a full pass scores a batch of one instead of overrunning by a
    pass, and a batch that fits part of the time left is cut to fit."""
    slow_scorer.rerank(QUERY, TEXTS, deadline_ms=70)
    assert loop_module._PACE[slow_scorer] == pytest.approx(0.015)
    clock.passes.clear()
    sizes: list[int] = []
    planted = clock.slow_forward(lambda: 0.015 * sizes[-1])

    def forward(loaded: Any, features: Any) -> Any:
        sizes.append(len(features["input_ids"]))
        return planted(loaded, features)

    slow_scorer.row_forward = forward  # type: ignore[method-assign]
    started = clock.now
    out = slow_scorer.rerank(QUERY, TEXTS, deadline_ms=20)
    assert sizes == [1]  # 20 ms holds one candidate at 15 ms
    assert len(out.hits) == 1 and out.unscored == list(range(1, len(TEXTS)))
    assert clock.now - started <= 0.020
    sizes.clear()
    out = slow_scorer.rerank(QUERY, TEXTS, deadline_ms=50)
    assert sizes == [2, 1]  # 30 ms, then 20 ms left: one more candidate, not two
    assert sorted(h.index for h in out.hits) == [0, 1, 2]
    sizes.clear()
    out = slow_scorer.rerank(QUERY, TEXTS, deadline_ms=5)  # less than one candidate's time
    assert sizes == [1] and len(out.hits) == 1  # the first batch holds one: something scored


def test_never_more_than_one_batch_past_the_deadline(
    slow_scorer: CrossEncoderScorer, clock: PlantedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    planted = clock.slow_forward(lambda: rng.uniform(0.005, 0.08))
    monkeypatch.setattr(slow_scorer, "row_forward", planted)
    overshoots = []
    for i in range(200):
        deadline_ms = rng.choice([10, 25, 50, 100, 150, 400])
        clock.passes.clear()
        started = clock.now
        out = slow_scorer.rerank(QUERY, TEXTS[: 4 + i % 7], deadline_ms=deadline_ms)
        elapsed = clock.now - started
        longest = max((seconds for _, seconds in clock.passes), default=0.0)
        # every pass starts before the deadline, so a call ends at most one pass past it
        assert all(start < started + deadline_ms / 1000 for start, _ in clock.passes)
        assert elapsed <= deadline_ms / 1000 + longest
        overshoots.append(max(elapsed - deadline_ms / 1000, 0.0) / max(longest, 1e-9))
        returned = sorted([h.index for h in out.hits] + out.unscored)
        assert returned == list(range(len(TEXTS[: 4 + i % 7])))  # every candidate is back
    assert sorted(overshoots)[int(0.99 * len(overshoots))] <= 1.0  # p99: within one pass


def test_a_deadline_spent_before_any_batch_returns_the_first_stage_order(
    slow_scorer: CrossEncoderScorer, caplog: pytest.LogCaptureFixture
) -> None:
    texts = [*TEXTS[:3], "  ", *TEXTS[3:5]]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        out = slow_scorer.rerank(QUERY, texts, deadline_ms=1e-6, top_k=4)
    assert out.hits == []
    assert out.unscored == [0, 1, 2, 4]  # first-stage order, cut by top_k
    assert out.skipped == [3]
    assert out.deadline_unscored == 5
    assert "the deadline left no time to score any of the 5 candidates" in caplog.text


def test_a_model_still_loading_counts_against_the_deadline(tiny_model_dir: Path) -> None:
    cold = CrossEncoderScorer(tiny_model_dir, device="cpu")
    out = cold.rerank(QUERY, TEXTS[:3], deadline_ms=0.001)
    assert cold.is_loaded  # it loaded, and the time went
    assert out.hits == [] and out.unscored == [0, 1, 2]


def test_a_score_cut_keeps_the_unscored_and_top_k_counts_them(
    slow_scorer: CrossEncoderScorer, clock: PlantedClock
) -> None:
    out = slow_scorer.rerank(QUERY, TEXTS, deadline_ms=70, score_threshold=2.0, top_k=3)
    assert out.hits == []  # no sigmoid score reaches 2
    assert out.unscored == [4, 5, 6]
    some = slow_scorer.rerank(QUERY, TEXTS, deadline_ms=70, top_k=6)
    assert len(some.hits) == 4 and some.unscored == [4, 5]


def test_with_time_enough_it_is_the_scorer_without_a_deadline(
    slow_scorer: CrossEncoderScorer,
) -> None:
    first_stage = [float(i % 4) for i in range(len(TEXTS))]
    for options in (
        {"top_k": 5},
        {"passages": True, "token_budget": 12},
        {"fusion": "linear", "first_stage_scores": first_stage, "fusion_weight": 0.7},
        {"activation": "raw", "score_threshold": 0.0},
    ):
        plain = slow_scorer.rerank(QUERY, TEXTS, **options)  # type: ignore[arg-type]
        timed = slow_scorer.rerank(QUERY, TEXTS, deadline_ms=60_000, **options)  # type: ignore[arg-type]
        assert [h.index for h in timed.hits] == [h.index for h in plain.hits], options
        plain_scores = [h.score for h in plain.hits]
        assert [h.score for h in timed.hits] == pytest.approx(plain_scores, rel=1e-4, abs=1e-5)
        assert [h.passage for h in timed.hits] == [h.passage for h in plain.hits]
        assert [h.model_score is None for h in timed.hits] == [
            h.model_score is None for h in plain.hits
        ]
        assert timed.unscored == [] and timed.deadline_unscored == 0


def test_the_scorer_setting_applies_and_a_call_can_turn_it_off(
    spread_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = CrossEncoderScorer(spread_dir, device="cpu", batch_size=2, deadline_ms=70)
    scorer.warm_up()
    planted = PlantedClock()
    monkeypatch.setattr(loop_module, "clock", planted)
    scorer.row_forward = planted.slow_forward(lambda: 0.030)
    assert len(scorer.rerank(QUERY, TEXTS).unscored) == 6
    assert scorer.rerank(QUERY, TEXTS, deadline_ms=math.inf).unscored == []


@pytest.mark.parametrize("bad", [0, -5, float("nan"), "100", True])
def test_a_bad_deadline_is_refused(tiny_model_dir: Path, bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="deadline_ms"):
        CrossEncoderScorer(tiny_model_dir, deadline_ms=bad)


def test_any_scorer_gets_a_deadline_through_its_public_rerank(
    tiny_bi_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bi = BiEncoderScorer(str(tiny_bi_encoder_dir), device="cpu", batch_size=3)
    ticks = iter(range(0, 10_000, 40))  # each clock read is 40 ms later
    monkeypatch.setattr(loop_module, "clock", lambda: next(ticks) / 1000)
    out = rerank_within(bi, QUERY, TEXTS, deadline_ms=200)
    assert 0 < len(out.hits) < len(TEXTS)
    assert sorted(h.index for h in out.hits) == list(range(len(out.hits)))
    assert out.unscored == list(range(len(out.hits), len(TEXTS)))
    full = rerank_within(bi, QUERY, TEXTS, deadline_ms=None)
    assert [h.index for h in full.hits] == [h.index for h in bi.rerank(QUERY, TEXTS).hits]
