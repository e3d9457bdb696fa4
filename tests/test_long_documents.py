"""Long documents (chunk mode, window aggregation) and the evidence budget."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank import CrossEncoderScorer, select
from crossrank.windows import aggregate

QUERY = "what is the effect of the drug on blood cells"


# ---------------------------------------------------------------------- aggregation rules


def test_aggregation_rules_on_hand_made_window_scores() -> None:
    windows = [0.5, 2.0, -1.0, 2.0, 1.0]
    assert aggregate(windows, "max") == (2.0, 1)  # ties go to the earlier window
    assert aggregate(windows, "mean-top", top_windows=2) == (2.0, 1)
    assert aggregate(windows, "mean-top", top_windows=3) == (pytest.approx(5.0 / 3), 1)
    assert aggregate(windows, "mean-top", top_windows=99) == (pytest.approx(4.5 / 5), 1)
    assert aggregate(windows, "first-weighted") == (pytest.approx(0.5 * 0.5 + 0.5 * 2.0), 1)
    assert aggregate(windows, "first-weighted", first_weight=1.0) == (0.5, 1)
    assert aggregate([3.0], "mean-top") == (3.0, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": [], "rule": "max"}, "at least one window"),
        ({"scores": [1.0], "rule": "median"}, "aggregation must be one of"),
        ({"scores": [1.0], "rule": "mean-top", "top_windows": 0}, "top_windows must be >= 1"),
        (
            {"scores": [1.0], "rule": "max", "first_weight": 2.0},
            r"first_weight must be in \[0, 1\]",
        ),
    ],
)
def test_aggregation_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        aggregate(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- chunk mode (tiny)


def test_chunk_mode_scores_every_window_and_reports_the_span(tiny_model_dir: Path) -> None:
    # The tiny model reads 128 tokens per pair; this text has ~300.
    long_text = " ".join(["the cat and the dog"] * 60) + " the drug and blood cells"
    short = "blood cells"
    truncate = CrossEncoderScorer(tiny_model_dir, activation="raw")
    chunk = CrossEncoderScorer(tiny_model_dir, activation="raw", long_documents="chunk")
    t = truncate.score_details(QUERY, [short, long_text])
    c = chunk.score_details(QUERY, [short, long_text])
    assert t.windows == [1, 1] and t.truncated == [False, True]
    assert c.windows[0] == 1 and c.windows[1] >= 3 and c.truncated == [False, False]
    assert c.pairs == sum(c.windows)
    assert c.scores[0] == pytest.approx(t.scores[0], abs=1e-6)  # short texts: unchanged
    # The score is the best window's (max rule), and its span lies inside the text.
    start, end = c.spans[1]  # type: ignore[index,misc]
    assert 0 <= start < end <= len(long_text)
    assert t.spans[1][0] == 0 and t.spans[1][1] < len(long_text)  # type: ignore[index]
    assert chunk.rank(QUERY, [short, long_text])[0].span is not None


def test_max_windows_bounds_the_cost_and_is_reported(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long_text = " ".join(["the cat and the dog"] * 400)
    scorer = CrossEncoderScorer(tiny_model_dir, long_documents="chunk", max_windows=3)
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        details = scorer.score_details(QUERY, [long_text])
    assert details.windows == [3] and details.pairs == 3 and details.truncated == [True]
    assert "more than max_windows=3" in caplog.text


def test_window_stride_changes_the_windows(tiny_model_dir: Path) -> None:
    text = " ".join(["the cat and the dog"] * 60)
    few = CrossEncoderScorer(tiny_model_dir, long_documents="chunk", window_stride=1)
    many = CrossEncoderScorer(tiny_model_dir, long_documents="chunk", window_stride=60)
    assert (
        few.score_details(QUERY, [text]).windows[0] < many.score_details(QUERY, [text]).windows[0]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"long_documents": "split"}, ValueError, "long_documents must be 'truncate' or 'chunk'"),
        ({"aggregation": "median"}, ValueError, "aggregation must be one of"),
        ({"max_windows": 0}, ValueError, "max_windows must be >= 1"),
        ({"window_stride": 0}, ValueError, "window_stride must be >= 1"),
    ],
)
def test_chunk_settings_are_checked(kwargs: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        CrossEncoderScorer("some/model", **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- evidence budget


def test_token_budget_is_never_exceeded(tiny_scorer: CrossEncoderScorer) -> None:
    texts = [("blood cells and the drug " * n).strip() for n in (1, 3, 5, 2, 8, 1)]
    counts = tiny_scorer.count_tokens(texts)
    for budget in (1, 5, 12, 20, 40, 1000):
        hits = tiny_scorer.rank(QUERY, texts, token_budget=budget)
        assert sum(counts[h.index] for h in hits) <= budget
        # A best-first prefix of the unlimited ranking.
        full = [h.index for h in tiny_scorer.rank(QUERY, texts)]
        assert [h.index for h in hits] == full[: len(hits)]
        if len(hits) < len(texts):  # the next one would not have fit
            assert sum(counts[i] for i in full[: len(hits) + 1]) > budget


def test_min_relative_score(tiny_scorer: CrossEncoderScorer) -> None:
    texts = ["blood cells", "the drug", "cat", "dog and cat", "gene"]
    scores = tiny_scorer.score(QUERY, texts)
    hits = tiny_scorer.rank(QUERY, texts, min_relative_score=0.999)
    best = max(scores)
    assert {h.index for h in hits} == {i for i, s in enumerate(scores) if s >= 0.999 * best}
    with pytest.raises(ValueError, match=r"min_relative_score must be in \[0, 1\]"):
        tiny_scorer.rank(QUERY, texts, min_relative_score=1.5)
    raw = CrossEncoderScorer(tiny_scorer.model_name, activation="raw")
    with pytest.raises(ValueError, match="needs non-negative scores"):
        raw.rank(QUERY, texts, min_relative_score=0.5)


def test_selection_order_of_application() -> None:
    scores = [0.9, 0.2, 0.8, 0.5, 0.85]
    counts = [10, 10, 10, 10, 10]
    # threshold -> relative cut -> top_k -> token budget
    assert select(scores, score_threshold=0.3) == [0, 4, 2, 3]
    assert select(scores, score_threshold=0.3, min_relative_score=0.85) == [0, 4, 2]
    assert select(scores, score_threshold=0.3, min_relative_score=0.85, top_k=2) == [0, 4]
    assert select(scores, top_k=3, token_counts=counts, token_budget=25) == [0, 4]
    assert select(scores, token_counts=[50, 1, 1, 1, 1], token_budget=20) == []
    with pytest.raises(ValueError, match="token_budget needs token_counts"):
        select(scores, token_budget=5)


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.integers(0, 50)), max_size=40),
    budget=st.integers(1, 300),
    relative=st.one_of(st.none(), st.floats(0, 1)),
)
def test_budget_and_relative_cut_properties(
    data: list[tuple[float, int]], budget: int, relative: float | None
) -> None:
    scores = [s for s, _ in data]
    counts = [c for _, c in data]
    kept = select(scores, min_relative_score=relative, token_counts=counts, token_budget=budget)
    assert sum(counts[i] for i in kept) <= budget
    if relative is not None and kept:
        assert all(scores[i] >= relative * max(scores) for i in kept)
    assert [scores[i] for i in kept] == sorted((scores[i] for i in kept), reverse=True)


# ---------------------------------------------------------------------- the shared model


@pytest.mark.integration
def test_evidence_after_token_1000_is_found_in_chunk_mode_only(
    shared_model_dir: Path, shared_scorer: CrossEncoderScorer, long_evidence_case
) -> None:  # type: ignore[no-untyped-def]
    """A document whose only relevant passage starts after 1,000 tokens of unrelated text
    ranks first in chunk mode and not in truncate mode."""
    case = long_evidence_case
    truncate = shared_scorer.rank(case.query, case.texts)
    chunk_scorer = CrossEncoderScorer(shared_model_dir, long_documents="chunk")
    chunk = chunk_scorer.rank(case.query, case.texts)
    assert chunk[0].index == 0  # found
    assert truncate[0].index != 0  # invisible past the cut
    # The best window lies in (or reaches into) the relevant passage.
    _, end = chunk[0].span  # type: ignore[misc]
    assert end > case.passage_start


# ---------------------------------------------------------------------- passage hand-off


def test_passage_span_maps_into_the_content() -> None:
    from crossrank import passage_span

    scored = "title: a paper\n\nhello wonderful world"
    content = "hello wonderful world"
    offset = scored.index(content)
    # A window cut inside words is widened to whole words.
    assert passage_span(scored, content, (offset + 2, offset + 9)) == (0, 15)
    # A window reaching into the metadata keeps only its part in the content.
    assert passage_span(scored, content, (0, offset + 5)) == (0, 5)
    # Wholly in the metadata, no span, content not there: None.
    assert passage_span(scored, content, (0, 5)) is None
    assert passage_span(scored, content, None) is None
    assert passage_span(scored, "absent", (0, 5)) is None
    assert passage_span(scored, "   ", (0, 5)) is None
    # Frameworks strip the text they build: content with surrounding whitespace is found.
    padded = "\n  hello wonderful world \n"
    start, end = passage_span(scored, padded, (offset + 6, offset + 15))  # type: ignore[misc]
    assert padded[start:end] == "wonderful"


def test_rerank_hands_on_passages_and_budgets_them(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, long_documents="chunk")
    contents = [
        " ".join(["the cat and the dog"] * 60) + " the drug and blood cells",
        "blood cells",
        "the heart and the brain",
    ]
    texts = [f"title: paper {i}\n{c}" for i, c in enumerate(contents)]
    out = scorer.rerank(QUERY, texts, passages=True, contents=contents)
    assert sorted(h.index for h in out.hits) == [0, 1, 2]
    for hit in out.hits:
        assert hit.passage is not None
        start, end = hit.passage
        assert 0 <= start < end <= len(contents[hit.index])
        assert hit.passage == __import__("crossrank").passage_span(
            texts[hit.index], contents[hit.index], hit.span
        )
    passages = {h.index: contents[h.index][slice(*h.passage)] for h in out.hits}  # type: ignore[misc]
    assert len(passages[0]) < len(contents[0])  # one window of the long text
    for budget in (1, 5, 40, 200, 10_000):
        kept = scorer.rerank(QUERY, texts, passages=True, contents=contents, token_budget=budget)
        handed_on = [passages[h.index] for h in kept.hits]
        assert sum(scorer.count_tokens(handed_on)) <= budget
        assert [h.index for h in kept.hits] == [h.index for h in out.hits[: len(kept.hits)]]
    # Without passages there is no passage; contents needs passages, and one per text.
    assert all(h.passage is None for h in scorer.rerank(QUERY, texts).hits)
    with pytest.raises(ValueError, match="only used with passages=True"):
        scorer.rerank(QUERY, texts, contents=contents)
    with pytest.raises(ValueError, match="one entry per text"):
        scorer.rerank(QUERY, texts, passages=True, contents=contents[:2])


def test_count_tokens_of_nothing_and_an_early_relative_cut_check(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, activation="raw")
    assert scorer.count_tokens([]) == []
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        scorer.rerank(QUERY, ["blood"], min_relative_score=0.5)
    assert not scorer.is_loaded  # checked before the model loads
