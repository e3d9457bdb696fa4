"""The framework-free adapter layer (crossrank.adapters): settings, selection, items."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import crossrank.adapters as layer
from crossrank import CrossEncoderScorer, Reranked
from crossrank.adapters import (
    SCORER_OPTIONS,
    SPAN_KEY,
    FirstStage,
    Ranked,
    RerankScorer,
    Selection,
    arerank_items,
    check_scorer_options,
    cut_passage,
    device_in_use,
    from_cross_encoder_kwargs,
    option_docs,
    rerank_items,
    scorer_settings,
)

QUERY = "effect of the drug on blood cells"


@dataclass
class Doc:
    """A caller's own item type, unknown to crossrank."""

    body: str | None
    tag: int


def _docs() -> list[Doc]:
    bodies = ["the drug and blood cells", "", "a cat", None, "blood cells of the heart", "   "]
    return [Doc(b, i) for i, b in enumerate(bodies)]


def test_all_is_pinned() -> None:
    assert sorted(layer.__all__) == sorted(
        [
            "CROSS_ENCODER_KEYS",
            "MODEL_SCORE_KEY",
            "SCORER_OPTIONS",
            "SECRET_OPTIONS",
            "SPAN_KEY",
            "UNSCORED_KEY",
            "FirstStage",
            "Ranked",
            "RankedItems",
            "RerankScorer",
            "Selection",
            "arerank_items",
            "check_scorer_options",
            "cut_passage",
            "device_in_use",
            "from_cross_encoder_kwargs",
            "option_docs",
            "rerank_items",
            "scorer_config",
            "scorer_from_config",
            "scorer_settings",
        ]
    )
    assert SPAN_KEY == "crossrank_span"
    assert layer.MODEL_SCORE_KEY == "crossrank_model_score"


def test_scorer_options_follow_the_scorer_signature() -> None:
    params = inspect.signature(CrossEncoderScorer.__init__).parameters
    expected = {n: p.default for n, p in params.items() if n != "self"}
    expected["model"] = None
    assert dict(SCORER_OPTIONS) == expected
    assert next(iter(SCORER_OPTIONS)) == "model"


def test_scorer_settings_are_json_safe_and_rebuild_the_same_scorer(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(
        tiny_model_dir,
        device="cpu",
        batch_size=7,
        long_documents="chunk",
        max_windows=3,
        aggregation="mean-top",
        token="hf_secret",
    )
    settings = scorer_settings(scorer)
    assert set(settings) == set(SCORER_OPTIONS) - {"token"}
    assert "hf_secret" not in json.dumps(settings)
    assert settings["model"] == str(tiny_model_dir)
    assert settings["device"] == "cpu"
    assert settings["batch_size"] == 7
    assert settings["max_length"] is None  # asked for, not the model's resolved limit
    rebuilt = CrossEncoderScorer(**settings)
    assert scorer_settings(rebuilt) == settings
    assert scorer_settings(scorer, secrets=True)["token"] == "hf_secret"


def test_scorer_settings_keep_the_calibration_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    from crossrank.calibration import fit_platt, save_calibration

    fit = fit_platt([-2.0, -1.0, 0.5, 2.0, 3.0], [0, 0, 1, 1, 1])
    path = save_calibration(tmp_path / "cal.json", {"platt": fit}, method="platt")
    scorer = CrossEncoderScorer(tiny_model_dir, activation="calibrated", calibration=path)
    assert Path(scorer_settings(scorer)["calibration"]) == Path(path)


def test_settings_beside_a_ready_scorer_are_refused() -> None:
    check_scorer_options({"batch_size": 32, "backend": "auto", "top_n": 3}, owner="X")
    with pytest.raises(ValueError, match=r"X: pass either scorer .* batch_size=8"):
        check_scorer_options({"batch_size": 8}, owner="X")


def test_selection_is_checked_with_the_framework_name() -> None:
    with pytest.raises(ValueError, match="top_n must be >= 1, got 0"):
        Selection.checked(activation="sigmoid", top_k=0, top_k_name="top_n")
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        Selection.checked(activation="raw", min_relative_score=0.5)
    with pytest.raises(TypeError, match="token_budget must be an int"):
        Selection.checked(activation="sigmoid", token_budget="10")


def test_selection_override_keeps_unset_values_and_checks_new_ones() -> None:
    base = Selection.checked(activation="sigmoid", top_k=3, score_threshold=0.1, top_k_name="top_n")
    merged = base.override(activation="sigmoid", top_k=5, token_budget=100)
    assert merged.kwargs() == {
        "top_k": 5,
        "score_threshold": 0.1,
        "min_relative_score": None,
        "token_budget": 100,
    }
    assert base.top_k == 3
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        base.override(activation="sigmoid", top_k=-1)


def test_rerank_items_returns_the_callers_items_and_reports_the_blank(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    docs = _docs()
    out = rerank_items(tiny_scorer, QUERY, docs, text=lambda d: d.body)
    assert sorted(h.item.tag for h in out.hits) == [0, 2, 4]
    assert [d.tag for d in out.skipped] == [1, 3, 5]
    assert all(h.item is docs[h.index] for h in out.hits)
    assert all(type(h.score) is float for h in out.hits)
    core = tiny_scorer.rerank(QUERY, [d.body for d in docs])
    assert [(h.index, h.score) for h in out.hits] == [(h.index, h.score) for h in core.hits]
    assert out.pairs == core.pairs == 3
    assert docs == _docs()  # not changed


def test_rerank_items_applies_the_selection(tiny_scorer: CrossEncoderScorer) -> None:
    docs = _docs()
    out = rerank_items(
        tiny_scorer, QUERY, docs, text=lambda d: d.body, selection=Selection(top_k=2)
    )
    full = rerank_items(tiny_scorer, QUERY, docs, text=lambda d: d.body)
    assert [h.index for h in out.hits] == [h.index for h in full.hits][:2]


def test_passages_are_cut_from_the_content_not_the_prefixed_text(
    tiny_model_dir: Path,
) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, long_documents="chunk", max_length=24)
    long = " ".join(["the cat and the dog"] * 20 + ["the drug on blood cells"])
    docs = [Doc(long, 0), Doc("blood cells", 1)]
    out = rerank_items(
        scorer,
        QUERY,
        docs,
        text=lambda d: f"title: x\n{d.body}",
        content=lambda d: d.body,
        passages=True,
    )
    for hit in out.hits:
        body = hit.item.body
        assert body is not None
        handed, span = cut_passage(body, hit.passage)
        if span is None:
            assert handed == body
        else:
            assert handed == body[span[0] : span[1]]
            assert handed and handed in body
    long_hit = next(h for h in out.hits if h.index == 0)
    assert long_hit.passage is not None
    assert long_hit.passage[1] - long_hit.passage[0] < len(long)


def test_cut_passage_without_a_passage_keeps_the_content() -> None:
    assert cut_passage("abc def", None) == ("abc def", None)
    assert cut_passage("abc def", (4, 7)) == ("def", [4, 7])


def test_async_matches_sync(tiny_scorer: CrossEncoderScorer) -> None:
    docs = _docs()
    sync = rerank_items(tiny_scorer, QUERY, docs, text=lambda d: d.body)
    got = asyncio.run(arerank_items(tiny_scorer, QUERY, docs, text=lambda d: d.body))
    assert got == sync


def test_items_must_be_a_list(tiny_scorer: CrossEncoderScorer) -> None:
    with pytest.raises(TypeError, match="items must be a list, got str"):
        rerank_items(tiny_scorer, QUERY, "abc", text=str)  # type: ignore[arg-type]


def test_no_items_do_not_load_the_model(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir)
    out = rerank_items(scorer, QUERY, [], text=lambda d: d)
    assert out.hits == [] and out.skipped == [] and not scorer.is_loaded


def test_the_scorer_protocol_accepts_the_core_scorer(tiny_scorer: CrossEncoderScorer) -> None:
    assert isinstance(tiny_scorer, RerankScorer)
    assert not isinstance(object(), RerankScorer)
    assert Ranked(item="x", index=0, score=1.0).passage is None


def test_a_call_can_ask_for_another_activation_on_the_same_model(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir)
    raw = CrossEncoderScorer(tiny_model_dir, activation="raw")
    docs = _docs()
    got = rerank_items(scorer, QUERY, docs, text=lambda d: d.body, activation="raw")
    want = rerank_items(raw, QUERY, docs, text=lambda d: d.body)
    assert [(h.index, h.score) for h in got.hits] == [(h.index, h.score) for h in want.hits]
    default = rerank_items(scorer, QUERY, docs, text=lambda d: d.body)
    assert all(0.0 < h.score < 1.0 for h in default.hits)  # the scorer's own: sigmoid
    async_got = asyncio.run(
        arerank_items(scorer, QUERY, docs, text=lambda d: d.body, activation="raw")
    )
    assert async_got == got


def test_a_per_call_activation_is_checked(tiny_scorer: CrossEncoderScorer) -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        tiny_scorer.rerank(QUERY, ["blood"], activation="softmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a scorer built with a calibration"):
        tiny_scorer.rerank(QUERY, ["blood"], activation="calibrated")
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        tiny_scorer.rerank(QUERY, ["blood"], activation="raw", min_relative_score=0.5)


def test_every_scorer_setting_is_documented_once_in_the_scorer() -> None:
    docs = option_docs()
    assert set(SCORER_OPTIONS) <= set(docs)
    assert docs["batch_size"] == "Most pairs per forward pass."
    assert all(text.endswith(".") and "\n" not in text for text in docs.values())


def test_device_in_use_is_resolved_without_loading() -> None:
    assert device_in_use("cpu", "torch") == "cpu"
    assert device_in_use(None, "onnx") == "cpu"
    assert device_in_use(None, "openvino-int8") == "cpu"
    import torch

    assert device_in_use(None, "torch") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_sentence_transformers_kwargs_become_crossrank_settings() -> None:
    import torch

    got = from_cross_encoder_kwargs(
        {"cache_folder": "/c", "automodel_args": {"a": 1}, "activation_fn": torch.nn.Identity()}
    )
    assert got == {"cache_dir": "/c", "model_kwargs": {"a": 1}, "activation": "raw"}
    assert from_cross_encoder_kwargs(None) == {}
    with pytest.raises(ValueError, match=r"x\['prompts'\] has no crossrank equivalent"):
        from_cross_encoder_kwargs({"prompts": {}}, name="x")
    with pytest.raises(ValueError, match="must not hold \\['device'\\]"):
        from_cross_encoder_kwargs({"device": "cpu"})
    with pytest.raises(ValueError, match="sets cache_dir twice"):
        from_cross_encoder_kwargs({"cache_folder": "/a", "cache_dir": "/b"})
    with pytest.raises(TypeError, match="must be a dict, got list"):
        from_cross_encoder_kwargs([])  # type: ignore[arg-type]


def test_settings_of_a_scorer_that_only_has_the_protocol() -> None:
    class Remote:
        model_name = "remote-model"
        activation = "sigmoid"

    settings = scorer_settings(Remote())
    assert settings["model"] == "remote-model"
    assert settings["batch_size"] == SCORER_OPTIONS["batch_size"]
    assert settings["calibration"] is None and settings["max_length"] is None


# ---------------------------------------------------------------------- fusion


@dataclass
class Hit1:
    """A caller's item with a retriever's score beside its text."""

    body: str | None
    bm25: float | None


_FIRST = FirstStage(read=lambda d: d.bm25, where="hits[{i}].bm25",
                    hint=lambda d: f" ({d.body!r}); give it one")


def test_rerank_items_fuses_with_the_items_first_stage_score(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    items = [Hit1("the drug and blood cells", 2.0), Hit1("", None), Hit1("a cat", 9.0),
             Hit1("blood cells of the heart", 4.0)]
    got = rerank_items(tiny_scorer, QUERY, items, text=lambda d: d.body, first_stage=_FIRST,
                       fusion="rrf", fusion_weight=0.2)
    want = tiny_scorer.rerank(QUERY, [d.body for d in items], fusion="rrf", fusion_weight=0.2,
                              first_stage_scores=[d.bm25 for d in items])
    assert [(h.index, h.score, h.model_score) for h in got.hits] == [
        (h.index, h.score, h.model_score) for h in want.hits
    ]
    assert all(type(h.model_score) is float for h in got.hits)
    assert [d.body for d in got.skipped] == [""]
    assert asyncio.run(arerank_items(tiny_scorer, QUERY, items, text=lambda d: d.body,
                                     first_stage=_FIRST, fusion="rrf", fusion_weight=0.2)) == got
    with pytest.raises(ValueError, match=r"hits\[1\]\.bm25 is missing \(None\).*\('x'\); give"):
        rerank_items(tiny_scorer, QUERY, [Hit1("a", 1.0), Hit1("x", None)],
                     text=lambda d: d.body, first_stage=_FIRST, fusion="linear")
    with pytest.raises(ValueError, match=r"needs each item's first-stage score; pass first_st"):
        rerank_items(tiny_scorer, QUERY, items, text=lambda d: d.body, fusion="linear")
    # Fusion off: the first-stage scores are not read, so items need none.
    plain = rerank_items(tiny_scorer, QUERY, [Hit1("a", None)], text=lambda d: d.body,
                         first_stage=_FIRST)
    assert plain.hits[0].model_score is None


class _PlainScorer:
    """A scorer with the protocol's pre-fusion ``rerank`` (a remote one, say): no fusion
    keywords, no fusion settings."""

    def __init__(self, inner: CrossEncoderScorer) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.activation = inner.activation

    def warm_up(self) -> None:
        self.inner.warm_up()

    def rerank(self, query: str, texts: Sequence[str | None], *, top_k: int | None = None,
               score_threshold: float | None = None, min_relative_score: float | None = None,
               token_budget: int | None = None, passages: bool = False,
               contents: Sequence[str | None] | None = None) -> Reranked:
        return self.inner.rerank(query, texts, top_k=top_k, score_threshold=score_threshold,
                                 min_relative_score=min_relative_score,
                                 token_budget=token_budget, passages=passages,
                                 contents=contents)

    async def arerank(self, query: str, texts: Sequence[str | None], **kwargs: Any) -> Reranked:
        return self.rerank(query, texts, **kwargs)


def test_a_scorer_without_fusion_still_serves_the_adapters(
    tiny_scorer: CrossEncoderScorer,
) -> None:
    plain = _PlainScorer(tiny_scorer)
    got = rerank_items(plain, QUERY, _docs(), text=lambda d: d.body, first_stage=_FIRST)
    want = rerank_items(tiny_scorer, QUERY, _docs(), text=lambda d: d.body)
    assert got == want
    # Asking it to fuse fails loudly rather than reranking without the first stage.
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        rerank_items(plain, QUERY, [Hit1("a", 1.0)], text=lambda d: d.body,
                     first_stage=_FIRST, fusion="linear")
