"""First-stage score fusion: the arithmetic (crossrank.fusion) checked by hand on small
cases, and the core scorer's ``first_stage_scores`` / ``fusion`` options on the tiny model."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoderScorer, select
from crossrank.fusion import (
    RRF_K,
    Fusion,
    check_first_stage_scores,
    fuse,
    normalize,
    reciprocal_ranks,
    resolve_fusion,
)
from crossrank.validation import check_relative_cut

QUERY = "effect of the drug on blood cells"
TEXTS = [
    "the drug and blood cells",
    "a cat and a dog",
    "blood cells of the heart",
    "cancer risk in patients",
    "the dose of the drug",
    "gene and protein study",
]
BM25 = [7.0, 1.0, 5.5, 2.0, 6.0, 3.0]


# ---------------------------------------------------------------------- the arithmetic


def test_zscore_and_minmax_by_hand() -> None:
    np.testing.assert_allclose(normalize([1.0, 2.0, 3.0], "zscore"), [-1.224744871, 0, 1.224744871])
    np.testing.assert_allclose(normalize([2.0, 4.0, 6.0, 3.0], "minmax"), [0, 0.5, 1, 0.25])
    # A constant signal (ties all round, or one candidate) carries no order: its centre.
    np.testing.assert_array_equal(normalize([0.1, 0.1, 0.1], "zscore"), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(normalize([4.0], "minmax"), [0.5])
    assert normalize([], "zscore").shape == (0,)


def test_non_finite_scores_are_left_out_and_stay_nan() -> None:
    got = normalize([1.0, float("nan"), 3.0, float("inf")], "minmax")
    np.testing.assert_array_equal(got[[0, 2]], [0.0, 1.0])
    assert math.isnan(got[1]) and math.isnan(got[3])
    assert np.isnan(normalize([float("nan")], "zscore")).all()
    fused = fuse([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0], method="linear", weight=0.5)
    assert math.isnan(fused[1])
    assert select(fused) == [2, 0, 1]  # NaN last, as select ranks any NaN


def test_reciprocal_ranks_share_the_better_rank_on_ties() -> None:
    # ranks 1, 4, 1, 3 ("1224" ranking): the two 3.0s tie for first.
    np.testing.assert_allclose(
        reciprocal_ranks([3.0, 1.0, 3.0, 2.0]), [1 / 61, 1 / 64, 1 / 61, 1 / 63]
    )
    np.testing.assert_allclose(reciprocal_ranks([5.0, 9.0], k=1), [1 / 3, 1 / 2])
    got = reciprocal_ranks([2.0, float("nan"), 1.0])
    assert math.isnan(got[1]) and got[0] == 1 / (RRF_K + 1) and got[2] == 1 / (RRF_K + 2)
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="RRF constant k must be an int >= 1"):
            reciprocal_ranks([1.0], k=k)  # type: ignore[arg-type]


def test_linear_and_rrf_fusion_by_hand() -> None:
    # zscore: model [1.2247, 0, -1.2247], first stage [-1.2247, 1.2247, 0]
    got = fuse([2.0, 0.0, -2.0], [1.0, 3.0, 2.0], method="linear", weight=0.5)
    np.testing.assert_allclose(got, [0.0, 0.612372436, -0.612372436])
    got = fuse([2.0, 0.0, -2.0], [1.0, 3.0, 2.0], method="linear", weight=0.25,
               normalization="minmax")
    np.testing.assert_allclose(got, [0.25 * 1 + 0.75 * 0, 0.25 * 0.5 + 0.75 * 1, 0.75 * 0.5])
    # rrf: model ranks 1, 2, 3; first-stage ranks 3, 1, 2
    got = fuse([2.0, 0.0, -2.0], [1.0, 3.0, 2.0], method="rrf", weight=0.3)
    np.testing.assert_allclose(
        got, [0.3 / 61 + 0.7 / 63, 0.3 / 62 + 0.7 / 61, 0.3 / 63 + 0.7 / 62]
    )
    assert all(type(x) is float for x in got)
    # The weight's ends: the first stage alone (0), the model alone (1).
    assert select(fuse([2.0, 0.0, -2.0], [1.0, 3.0, 2.0], method="linear", weight=0)) == [1, 2, 0]
    assert select(fuse([2.0, 0.0, -2.0], [1.0, 3.0, 2.0], method="rrf", weight=1)) == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"weight": 1.5}, ValueError, r"fusion_weight must be in \[0, 1\].*got 1.5"),
        ({"weight": -0.1}, ValueError, "fusion_weight must be in"),
        ({"weight": float("nan")}, ValueError, "fusion_weight must be in"),
        ({"weight": True}, TypeError, "fusion_weight must be a number in"),
        ({"weight": "0.3"}, TypeError, "fusion_weight must be a number in"),
        ({"method": "sum"}, ValueError, "fusion must be None, 'linear' or 'rrf', got 'sum'"),
        ({"normalization": "rank"}, ValueError, "fusion_normalization must be one of"),
    ],
)
def test_bad_fusion_settings(kwargs: dict[str, object], error: type, message: str) -> None:
    options: dict[str, object] = {"method": "linear", "weight": 0.5, "normalization": "zscore"}
    options.update(kwargs)
    with pytest.raises(error, match=message):
        Fusion.checked(options["method"], options["weight"], options["normalization"])
    with pytest.raises(error, match=message):
        CrossEncoderScorer("m", **{"fusion": options["method"],  # type: ignore[arg-type]
                                   "fusion_weight": options["weight"],
                                   "fusion_normalization": options["normalization"]})


def test_fuse_refuses_what_it_cannot_mix() -> None:
    with pytest.raises(ValueError, match=r"one score per candidate \(2\), got 1"):
        fuse([1.0, 2.0], [1.0], method="linear", weight=0.5)
    with pytest.raises(ValueError, match="must be finite numbers, got inf at position 1"):
        fuse([1.0, 2.0], [1.0, float("inf")], method="linear", weight=0.5)
    with pytest.raises(ValueError, match="method must be 'linear' or 'rrf', got None"):
        fuse([1.0], [1.0], method=None, weight=0.5)  # type: ignore[arg-type]


def test_first_stage_scores_are_checked_where_they_are_used() -> None:
    got = check_first_stage_scores([1, None, np.float32(2.5)], count=3, needed=[0, 2])
    assert got == [1.0, 2.5]
    with pytest.raises(ValueError, match=r"first_stage_scores\[1\] is missing \(None\)"):
        check_first_stage_scores([1.0, None], count=2, needed=[0, 1])
    with pytest.raises(ValueError, match=r"docs\[1\]\.score is missing.*; set it"):
        check_first_stage_scores([1.0, None], count=2, needed=[1], where="docs[{i}].score",
                                 hint="; set it")
    with pytest.raises(TypeError, match=r"\[0\] must be a number .*got str '3'"):
        check_first_stage_scores(["3"], count=1, needed=[0])
    with pytest.raises(TypeError, match=r"\[0\] must be a number .*got bool"):
        check_first_stage_scores([True], count=1, needed=[0])
    with pytest.raises(ValueError, match=r"\[0\] must be a finite number, got nan"):
        check_first_stage_scores([float("nan")], count=1, needed=[0])
    with pytest.raises(ValueError, match=r"one score per candidate \(3\), got 2"):
        check_first_stage_scores([1.0, 2.0], count=3, needed=[0])
    with pytest.raises(TypeError, match="must be a list of numbers, got str"):
        check_first_stage_scores("12", count=2, needed=[0])


def test_the_relative_cut_needs_fused_scores_that_cannot_be_negative() -> None:
    zscore = Fusion.checked("linear", 0.5, "zscore")
    with pytest.raises(ValueError, match=r"fused scores with fusion='linear'.*can be negative"):
        check_relative_cut(0.5, "sigmoid", fusion=zscore)
    # minmax fused scores are in [0, 1], rrf's positive: the cut is allowed, whatever the
    # activation (the fused score does not depend on it).
    for method, normalization in (("linear", "minmax"), ("rrf", "zscore")):
        fusion = Fusion.checked(method, 0.5, normalization)
        assert fusion is not None and fusion.non_negative
        assert check_relative_cut(0.5, "raw", fusion=fusion) == 0.5
    assert check_relative_cut(None, "raw", fusion=zscore) is None


def test_a_calls_fusion_is_the_scorers_with_its_own_values() -> None:
    scorer = CrossEncoderScorer("m", fusion="linear", fusion_weight=0.3)
    assert resolve_fusion(scorer) == Fusion("linear", 0.3, "zscore")
    assert resolve_fusion(scorer, fusion="rrf") == Fusion("rrf", 0.3, "zscore")
    assert resolve_fusion(scorer, fusion="none") is None
    assert resolve_fusion(object()) is None  # a scorer without fusion settings
    plain = CrossEncoderScorer("m")
    assert plain.fusion is None and resolve_fusion(plain, fusion_weight=None) is None
    with pytest.raises(ValueError, match="fusion_weight was given for this call, but fusion is"):
        resolve_fusion(plain, fusion_weight=0.4)
    assert CrossEncoderScorer("m", fusion="none").fusion is None


# ---------------------------------------------------------------------- the core scorer


def _logits(scorer: CrossEncoderScorer, texts: list[str]) -> list[float]:
    return scorer.score_details(QUERY, texts, activation="raw").scores


def test_rerank_orders_and_selects_by_the_fused_score_and_reports_the_models(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    want = fuse(_logits(tiny_scorer, TEXTS), BM25, method="linear", weight=0.3)
    own = tiny_scorer.score(QUERY, TEXTS)
    out = tiny_scorer.rerank(QUERY, TEXTS, first_stage_scores=BM25, fusion="linear",
                             fusion_weight=0.3)
    assert [h.index for h in out.hits] == select(want)
    for hit in out.hits:
        assert hit.score == pytest.approx(want[hit.index], abs=1e-9)
        assert hit.model_score == pytest.approx(own[hit.index], abs=1e-9)  # sigmoid, as asked
        assert type(hit.score) is float and type(hit.model_score) is float
    # The selection reads the fused score: threshold, then top_k.
    cut = sorted(want)[2]
    kept = tiny_scorer.rerank(QUERY, TEXTS, first_stage_scores=BM25, fusion="linear",
                              fusion_weight=0.3, score_threshold=cut, top_k=3)
    assert [h.index for h in kept.hits] == select(want, score_threshold=cut, top_k=3)
    # Without fusion nothing changes: the model's own score, no model_score.
    plain = tiny_scorer.rerank(QUERY, TEXTS)
    assert [h.score for h in plain.hits] == sorted(own, reverse=True)
    assert all(h.model_score is None for h in plain.hits)


def test_weight_one_is_the_model_alone_and_zero_the_first_stage(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    alone = [h.index for h in tiny_scorer.rerank(QUERY, TEXTS).hits]
    for method in ("linear", "rrf"):
        one = tiny_scorer.rerank(QUERY, TEXTS, first_stage_scores=BM25, fusion=method,
                                 fusion_weight=1.0)
        zero = tiny_scorer.rerank(QUERY, TEXTS, first_stage_scores=BM25, fusion=method,
                                  fusion_weight=0.0)
        assert [h.index for h in one.hits] == alone
        assert [h.index for h in zero.hits] == select(BM25)


def test_the_fused_score_does_not_depend_on_the_activation(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer, tmp_path: Path
) -> None:
    from crossrank.calibration import fit_platt, save_calibration

    fit = fit_platt([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], [0, 0, 1, 0, 1, 1])
    path = save_calibration(tmp_path / "cal.json", {"platt": fit}, method="platt")
    calibrated = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="calibrated",
                                    calibration=path, fusion="linear", fusion_weight=0.6)
    runs = {
        act: tiny_scorer.rerank(QUERY, TEXTS, first_stage_scores=BM25, fusion="linear",
                                fusion_weight=0.6, activation=act)  # type: ignore[arg-type]
        for act in ("raw", "sigmoid")
    }
    runs["calibrated"] = calibrated.rerank(QUERY, TEXTS, first_stage_scores=BM25)
    fused = {act: [(h.index, round(h.score, 9)) for h in r.hits] for act, r in runs.items()}
    assert fused["raw"] == fused["sigmoid"] == fused["calibrated"]
    # model_score is each activation's own: the logit, the sigmoid, the calibrated probability.
    logits = _logits(tiny_scorer, TEXTS)
    for hit in runs["raw"].hits:
        assert hit.model_score == pytest.approx(logits[hit.index], abs=1e-9)
    for hit in runs["calibrated"].hits:
        assert hit.model_score == pytest.approx(fit.apply(np.array([logits[hit.index]]))[0],
                                                abs=1e-6)


def test_relative_cut_on_fused_scores(tiny_scorer: CrossEncoderScorer) -> None:
    want = fuse(_logits(tiny_scorer, TEXTS), BM25, method="linear", weight=0.5,
                normalization="minmax")
    out = tiny_scorer.rerank(QUERY, TEXTS, first_stage_scores=BM25, fusion="linear",
                             fusion_normalization="minmax", min_relative_score=0.6,
                             activation="raw")  # allowed: the fused scores are in [0, 1]
    assert [h.index for h in out.hits] == select(want, min_relative_score=0.6)
    assert 0 < len(out.hits) < len(TEXTS)
    with pytest.raises(ValueError, match="can be negative"):
        tiny_scorer.rerank(QUERY, TEXTS, first_stage_scores=BM25, fusion="linear",
                           min_relative_score=0.6)


def test_blank_candidates_need_no_first_stage_score(tiny_scorer: CrossEncoderScorer) -> None:
    texts: list[str | None] = [TEXTS[0], None, TEXTS[2], "  ", TEXTS[4]]
    first: list[float | None] = [3.0, None, 1.0, None, 2.0]
    out = tiny_scorer.rerank(QUERY, texts, first_stage_scores=first, fusion="rrf")
    assert out.skipped == [1, 3]
    want = fuse(_logits(tiny_scorer, [TEXTS[0], TEXTS[2], TEXTS[4]]), [3.0, 1.0, 2.0],
                method="rrf", weight=0.5)
    assert [h.index for h in out.hits] == [[0, 2, 4][j] for j in select(want)]


def test_fusion_errors_say_what_is_missing(tiny_scorer: CrossEncoderScorer,
                                           tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="first_stage_scores are only used with fusion"):
        tiny_scorer.rerank(QUERY, TEXTS, first_stage_scores=BM25)
    with pytest.raises(ValueError, match="needs first_stage_scores"):
        tiny_scorer.rerank(QUERY, TEXTS, fusion="linear")
    with pytest.raises(ValueError, match=r"first_stage_scores\[2\] is missing"):
        tiny_scorer.rerank(QUERY, TEXTS, fusion="linear",
                           first_stage_scores=[1.0, 2.0, None, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="fusion_normalization was given for this call"):
        tiny_scorer.rank(QUERY, TEXTS, fusion_normalization="minmax")
    # Checked before the model loads.
    lazy = CrossEncoderScorer(tiny_model_dir, fusion="linear")
    with pytest.raises(ValueError, match="needs first_stage_scores"):
        lazy.rerank(QUERY, TEXTS)
    assert not lazy.is_loaded


def test_per_call_values_equal_a_scorer_built_with_them(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    built = CrossEncoderScorer(tiny_model_dir, device="cpu", fusion="rrf", fusion_weight=0.8)
    want = built.rank(QUERY, TEXTS, first_stage_scores=BM25)
    assert want == tiny_scorer.rank(QUERY, TEXTS, first_stage_scores=BM25, fusion="rrf",
                                    fusion_weight=0.8)
    assert want == asyncio.run(built.arank(QUERY, TEXTS, first_stage_scores=BM25))
    reranked = asyncio.run(built.arerank(QUERY, TEXTS, first_stage_scores=BM25, top_k=2))
    assert reranked.hits == want[:2]
    # fusion="none" turns the scorer's fusion off for one call: today's output exactly.
    assert built.rank(QUERY, TEXTS, fusion="none") == tiny_scorer.rank(QUERY, TEXTS)
