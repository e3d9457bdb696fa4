"""What every adapter must do, checked the same way for Haystack, LangChain and LlamaIndex.

Each framework gets a small kit that builds its adapter, turns plain texts into that
framework's objects, runs it (sync and async) and reads the results back. The behaviours
are written once below; what only one framework has lives in its own test file.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomllib

from crossrank import CrossEncoderScorer
from crossrank.adapters import (
    MODEL_SCORE_KEY,
    SCORER_OPTIONS,
    SECRET_OPTIONS,
    SPAN_KEY,
    scorer_settings,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
QUERY = "what is the effect of the drug on blood cells"
WORDS = "the drug blood cells cancer risk gene protein study patients dose heart brain".split()


#: First-stage scores for a kit's inputs, one per text (None: the object has none).
Scores = list[float | None] | None


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 40)))) for _ in range(n)]


@dataclass(frozen=True)
class Out:
    """One returned candidate, read back from the framework's object."""

    index: int
    score: float
    content: str
    span: list[int] | None
    model_score: float | None = None


#: Bad queries, the error and its message: the same through the core and every adapter.
BAD_QUERIES = [
    ("", ValueError, "query must contain non-whitespace text, got ''"),
    ("   \n\t", ValueError, "query must contain non-whitespace text"),
    (None, TypeError, "query must be a string, got None"),
    (42, TypeError, "query must be a string, got int"),
    (b"bytes", TypeError, "query must be a string, got bytes"),
]


# ---------------------------------------------------------------------- kits


class Kit:
    """How the suite drives one framework's adapter (public API only)."""

    name: str
    extra: str
    module: str
    framework_modules: tuple[str, ...]
    top: str = "top_n"

    def cls(self) -> Any:
        raise NotImplementedError

    def make(self, model: Path | str, **options: Any) -> Any:
        if "top_k" in options:
            options[self.top] = options.pop("top_k")
        return self.cls()(model=str(model), **self.convert(options))

    def convert(self, options: dict[str, Any]) -> dict[str, Any]:
        return options

    def inputs(self, texts: list[str | None], scores: Scores = None) -> list[Any]:
        """The framework's objects for ``texts``, each with its first-stage score where the
        framework keeps one (``scores``; None: the object has none)."""
        raise NotImplementedError

    def run(self, adapter: Any, query: str, objs: list[Any]) -> list[Out]:
        raise NotImplementedError

    async def arun(self, adapter: Any, query: str, objs: list[Any]) -> list[Out]:
        raise NotImplementedError

    def run_instructed(
        self, adapter: Any, query: str, objs: list[Any], instruction: str
    ) -> list[Out]:
        """:meth:`run` with this call's instruction, given as the framework's users give
        per-call input."""
        raise NotImplementedError

    async def arun_instructed(
        self, adapter: Any, query: str, objs: list[Any], instruction: str
    ) -> list[Out]:
        raise NotImplementedError

    def snapshot(self, objs: list[Any]) -> Any:
        return [o.model_dump() if hasattr(o, "model_dump") else o.to_dict() for o in objs]

    def round_trip(self, adapter: Any) -> Any:
        raise NotImplementedError

    def saved_v1(self, model: Path) -> list[tuple[dict[str, Any], Any]]:
        """Each config saved by crossrank 0.1.0 (tests/data), with its saved settings and
        the adapter loaded from it with the model swapped for ``model``."""
        raise NotImplementedError

    def scorer(self, adapter: Any) -> CrossEncoderScorer:
        scorer = getattr(adapter, "scorer", None)
        return scorer if scorer is not None else adapter._scorer


class HaystackKit(Kit):
    name = "haystack"
    extra = "haystack"
    module = "haystack_integrations.components.rankers.crossrank"
    framework_modules = ("haystack",)
    top = "top_k"

    def cls(self) -> Any:
        from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker

        return CrossEncoderRanker

    def convert(self, options: dict[str, Any]) -> dict[str, Any]:
        from haystack.utils import ComponentDevice

        if isinstance(options.get("device"), str):
            options["device"] = ComponentDevice.from_str(options["device"])
        return options

    def inputs(self, texts: list[str | None], scores: Scores = None) -> list[Any]:
        from haystack import Document

        first = scores or [None] * len(texts)
        return [
            Document(content=t, id=str(i), meta={"i": i}, score=first[i])
            for i, t in enumerate(texts)
        ]

    def _read(self, docs: list[Any]) -> list[Out]:
        return [
            Out(d.meta["i"], d.score, d.content, d.meta.get(SPAN_KEY), d.meta.get(MODEL_SCORE_KEY))
            for d in docs
        ]

    def run(self, adapter: Any, query: str, objs: list[Any]) -> list[Out]:
        return self._read(adapter.run(query=query, documents=objs)["documents"])

    async def arun(self, adapter: Any, query: str, objs: list[Any]) -> list[Out]:
        return self._read((await adapter.run_async(query=query, documents=objs))["documents"])

    def run_instructed(
        self, adapter: Any, query: str, objs: list[Any], instruction: str
    ) -> list[Out]:
        out = adapter.run(query=query, documents=objs, instruction=instruction)
        return self._read(out["documents"])

    async def arun_instructed(
        self, adapter: Any, query: str, objs: list[Any], instruction: str
    ) -> list[Out]:
        out = await adapter.run_async(query=query, documents=objs, instruction=instruction)
        return self._read(out["documents"])

    def round_trip(self, adapter: Any) -> Any:
        return self.cls().from_dict(json.loads(json.dumps(adapter.to_dict())))

    def saved_v1(self, model: Path) -> list[tuple[dict[str, Any], Any]]:
        data = json.loads((DATA / "haystack_saved_v1.json").read_text(encoding="utf-8"))
        data["init_parameters"]["model"] = str(model)
        settings = dict(data["init_parameters"])
        return [(settings, self.cls().from_dict(data))]


class LangChainKit(Kit):
    name = "langchain"
    extra = "langchain"
    module = "langchain_crossrank"
    framework_modules = ("langchain_core",)

    def cls(self) -> Any:
        from langchain_crossrank import CrossEncoderRerank

        return CrossEncoderRerank

    def inputs(self, texts: list[str | None], scores: Scores = None) -> list[Any]:
        from langchain_core.documents import Document

        first = scores or [None] * len(texts)
        return [
            Document(
                page_content=t or "",
                metadata={"i": i} if first[i] is None else {"i": i, "score": first[i]},
            )
            for i, t in enumerate(texts)
        ]

    def _read(self, docs: Any) -> list[Out]:
        return [
            Out(d.metadata["i"], d.metadata["relevance_score"], d.page_content,
                d.metadata.get(SPAN_KEY), d.metadata.get(MODEL_SCORE_KEY))
            for d in docs
        ]

    def run(self, adapter: Any, query: str, objs: list[Any]) -> list[Out]:
        return self._read(adapter.compress_documents(objs, query))

    async def arun(self, adapter: Any, query: str, objs: list[Any]) -> list[Out]:
        return self._read(await adapter.acompress_documents(objs, query))

    @staticmethod
    def _callbacks(instruction: str) -> Any:
        """What a retriever run with ``config={"metadata": {...}}`` hands the compressor."""
        from langchain_core.callbacks import CallbackManager

        return CallbackManager([], metadata={"crossrank_instruction": instruction})

    def run_instructed(
        self, adapter: Any, query: str, objs: list[Any], instruction: str
    ) -> list[Out]:
        return self._read(
            adapter.compress_documents(objs, query, callbacks=self._callbacks(instruction))
        )

    async def arun_instructed(
        self, adapter: Any, query: str, objs: list[Any], instruction: str
    ) -> list[Out]:
        return self._read(
            await adapter.acompress_documents(objs, query, callbacks=self._callbacks(instruction))
        )

    def round_trip(self, adapter: Any) -> Any:
        return self.cls().model_validate(json.loads(adapter.model_dump_json()))

    def saved_v1(self, model: Path) -> list[tuple[dict[str, Any], Any]]:
        data = json.loads((DATA / "langchain_saved_v1.json").read_text(encoding="utf-8"))
        data["model"] = str(model)
        return [(dict(data), self.cls().model_validate(data))]


class LlamaIndexKit(Kit):
    name = "llama_index"
    extra = "llama-index"
    module = "llama_index.postprocessor.crossrank_rerank"
    framework_modules = ("llama_index.core",)

    def cls(self) -> Any:
        from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank

        return CrossEncoderRerank

    def inputs(self, texts: list[str | None], scores: Scores = None) -> list[Any]:
        from llama_index.core.schema import NodeWithScore, TextNode

        first = scores or [0.5] * len(texts)
        return [
            NodeWithScore(node=TextNode(text=t or "", id_=str(i)), score=first[i])
            for i, t in enumerate(texts)
        ]

    def _read(self, nodes: Any) -> list[Out]:
        from llama_index.core.schema import MetadataMode

        return [
            Out(int(n.node.node_id), n.score, n.node.get_content(metadata_mode=MetadataMode.NONE),
                n.node.metadata.get(SPAN_KEY), n.node.metadata.get(MODEL_SCORE_KEY))
            for n in nodes
        ]

    def run(self, adapter: Any, query: str, objs: list[Any]) -> list[Out]:
        from llama_index.core.schema import QueryBundle

        return self._read(adapter.postprocess_nodes(objs, query_bundle=QueryBundle(query)))

    async def arun(self, adapter: Any, query: str, objs: list[Any]) -> list[Out]:
        from llama_index.core.schema import QueryBundle

        return self._read(
            await adapter.apostprocess_nodes(objs, query_bundle=QueryBundle(query))
        )

    def run_instructed(
        self, adapter: Any, query: str, objs: list[Any], instruction: str
    ) -> list[Out]:
        from llama_index.postprocessor.crossrank_rerank import InstructedQueryBundle

        bundle = InstructedQueryBundle(query, instruction=instruction)
        return self._read(adapter.postprocess_nodes(objs, query_bundle=bundle))

    async def arun_instructed(
        self, adapter: Any, query: str, objs: list[Any], instruction: str
    ) -> list[Out]:
        from llama_index.postprocessor.crossrank_rerank import InstructedQueryBundle

        bundle = InstructedQueryBundle(query, instruction=instruction)
        return self._read(await adapter.apostprocess_nodes(objs, query_bundle=bundle))

    def round_trip(self, adapter: Any) -> Any:
        return self.cls().from_dict(json.loads(json.dumps(adapter.to_dict())))

    def saved_v1(self, model: Path) -> list[tuple[dict[str, Any], Any]]:
        out = []
        for data in json.loads((DATA / "llama_index_saved_v1.json").read_text(encoding="utf-8")):
            data["model"] = str(model)
            if (data.get("max_length") or 0) > 128:  # the tiny model reads 128 tokens
                data["max_length"] = 128
            out.append((dict(data), self.cls().from_dict(data)))
        return out


KITS = [HaystackKit(), LangChainKit(), LlamaIndexKit()]


@pytest.fixture(params=KITS, ids=[k.name for k in KITS])
def kit(request: pytest.FixtureRequest) -> Kit:
    return request.param  # type: ignore[no-any-return]


def _core(model: Path, texts: list[str | None], **options: Any) -> list[tuple[int, float]]:
    hits = CrossEncoderScorer(model, device="cpu").rerank(QUERY, texts, **options).hits
    return [(h.index, h.score) for h in hits]


def _pairs(outs: list[Out]) -> list[tuple[int, float]]:
    return [(o.index, o.score) for o in outs]


def _assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-6)


# ---------------------------------------------------------------------- scoring


def test_scores_and_order_are_the_cores(kit: Kit, tiny_model_dir: Path) -> None:
    texts: list[str | None] = list(_texts(25, seed=9))
    outs = kit.run(kit.make(tiny_model_dir, top_k=25), QUERY, kit.inputs(texts))
    _assert_same(_pairs(outs), _core(tiny_model_dir, texts))
    assert all(type(o.score) is float for o in outs)
    assert [o.content for o in outs] == [texts[o.index] for o in outs]
    assert all(o.model_score is None for o in outs)  # written with fusion only


def test_an_instruction_per_call_scores_as_the_core(kit: Kit, tiny_model_dir: Path) -> None:
    """A call's instruction replaces the adapter's (``""``: none), sync and async, and the
    same loaded model serves every instruction."""
    texts: list[str | None] = list(_texts(10, seed=4))
    plain = kit.make(tiny_model_dir, top_k=10)
    call = "Find the abstracts about blood cells"
    own = kit.run_instructed(plain, QUERY, kit.inputs(texts), call)
    _assert_same(_pairs(own), _core(tiny_model_dir, texts, instruction=call))
    assert not np.allclose(  # the instruction was read
        [o.score for o in sorted(own, key=lambda o: o.index)],
        [s for _, s in sorted(_core(tiny_model_dir, texts))],
    )
    again = asyncio.run(kit.arun_instructed(plain, QUERY, kit.inputs(texts), call))
    _assert_same(_pairs(again), _pairs(own))
    set_once = kit.make(tiny_model_dir, top_k=10, instruction="Judge the drug studies")
    _assert_same(
        _pairs(kit.run(set_once, QUERY, kit.inputs(texts))),
        _core(tiny_model_dir, texts, instruction="Judge the drug studies"),
    )
    _assert_same(
        _pairs(kit.run_instructed(set_once, QUERY, kit.inputs(texts), "")),
        _core(tiny_model_dir, texts),
    )


def test_top_k_and_threshold_select_as_the_core(kit: Kit, tiny_model_dir: Path) -> None:
    texts: list[str | None] = list(_texts(12, seed=3))
    scores = sorted(s for _, s in _core(tiny_model_dir, texts))
    threshold = scores[4]
    adapter = kit.make(tiny_model_dir, top_k=5, score_threshold=threshold)
    outs = kit.run(adapter, QUERY, kit.inputs(texts))
    _assert_same(_pairs(outs), _core(tiny_model_dir, texts, top_k=5, score_threshold=threshold))
    assert len(outs) == 5


def test_the_callers_objects_are_not_changed(kit: Kit, tiny_model_dir: Path) -> None:
    texts: list[str | None] = [*_texts(5, seed=1), " ".join(WORDS * 12)]
    objs = kit.inputs(texts)
    before = copy.deepcopy(kit.snapshot(objs))
    adapter = kit.make(
        tiny_model_dir, top_k=3, long_documents="chunk", max_length=32, passage_only=True
    )
    kit.run(adapter, QUERY, objs)
    asyncio.run(kit.arun(adapter, QUERY, objs))
    assert kit.snapshot(objs) == before


def test_blank_candidates_are_reported_and_the_rest_returned(
    kit: Kit, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts: list[str | None] = ["the drug", "", "blood cells", "   \n", "a dose"]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        outs = kit.run(kit.make(tiny_model_dir, top_k=10), QUERY, kit.inputs(texts))
    assert sorted(o.index for o in outs) == [0, 2, 4]
    reports = [r for r in caplog.records if "have no text" in r.getMessage()]
    assert len(reports) == 1 and "2 of 5" in reports[0].getMessage()


def test_no_candidates_give_nothing_without_loading(kit: Kit, tiny_model_dir: Path) -> None:
    adapter = kit.make(tiny_model_dir, top_k=3)
    assert kit.run(adapter, QUERY, []) == []
    assert not kit.scorer(adapter).is_loaded


@pytest.mark.parametrize(("query", "error", "message"), BAD_QUERIES)
def test_bad_queries_fail_as_in_the_core(
    kit: Kit, tiny_model_dir: Path, query: Any, error: type[Exception], message: str
) -> None:
    if kit.name == "llama_index" and not isinstance(query, str):
        pytest.skip("a QueryBundle only holds strings")
    with pytest.raises(error, match=message):
        CrossEncoderScorer(tiny_model_dir).rank(query, ["text"])
    with pytest.raises(error, match=message):
        kit.run(kit.make(tiny_model_dir), query, kit.inputs(["text"]))


# ---------------------------------------------------------------------- evidence budget


def test_token_budget_counts_what_is_handed_on(kit: Kit, tiny_model_dir: Path) -> None:
    texts: list[str | None] = list(_texts(10, seed=5))
    adapter = kit.make(tiny_model_dir, top_k=10, token_budget=60)
    outs = kit.run(adapter, QUERY, kit.inputs(texts))
    _assert_same(_pairs(outs), _core(tiny_model_dir, texts, token_budget=60))
    scorer = kit.scorer(adapter)
    assert 0 < sum(scorer.count_tokens([o.content for o in outs])) <= 60


def test_passages_are_the_cores_and_cut_from_the_content(kit: Kit, tiny_model_dir: Path) -> None:
    long = " ".join(["the cat and the dog"] * 30 + ["the drug on blood cells"])
    texts: list[str | None] = [long, *_texts(4, seed=2)]
    options = {"long_documents": "chunk", "max_length": 32}
    adapter = kit.make(tiny_model_dir, top_k=5, passage_only=True, token_budget=200, **options)
    outs = kit.run(adapter, QUERY, kit.inputs(texts))
    core = CrossEncoderScorer(tiny_model_dir, **options).rerank(  # type: ignore[arg-type]
        QUERY, texts, top_k=5, token_budget=200, passages=True
    )
    assert [o.index for o in outs] == [h.index for h in core.hits]
    for out, hit in zip(outs, core.hits, strict=True):
        original = texts[out.index]
        assert original is not None
        if hit.passage is None:
            assert out.span is None and out.content == original
        else:
            assert out.span == list(hit.passage)
            assert out.content == original[hit.passage[0] : hit.passage[1]]
    long_out = next(o for o in outs if o.index == 0)
    assert long_out.span is not None and len(long_out.content) < len(long)


# ---------------------------------------------------------------------- score contract


def test_calibrated_scores_are_the_cores(kit: Kit, tiny_model_dir: Path, tmp_path: Path) -> None:
    from crossrank.calibration import fit_platt, save_calibration

    fit = fit_platt([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], [0, 0, 1, 0, 1, 1])
    path = save_calibration(tmp_path / "cal.json", {"platt": fit}, method="platt")
    texts: list[str | None] = list(_texts(8, seed=4))
    adapter = kit.make(tiny_model_dir, top_k=8, activation="calibrated", calibration=str(path))
    outs = kit.run(adapter, QUERY, kit.inputs(texts))
    core = CrossEncoderScorer(tiny_model_dir, activation="calibrated", calibration=path)
    want = [(h.index, h.score) for h in core.rerank(QUERY, texts).hits]
    _assert_same(_pairs(outs), want)
    rebuilt = kit.round_trip(adapter)
    _assert_same(_pairs(kit.run(rebuilt, QUERY, kit.inputs(texts))), want)


def test_relative_cut_is_the_cores_and_refused_on_raw_logits(
    kit: Kit, tiny_model_dir: Path
) -> None:
    with pytest.raises(ValueError, match="min_relative_score needs non-negative scores"):
        kit.make(tiny_model_dir, activation="raw", min_relative_score=0.5)
    texts: list[str | None] = list(_texts(10, seed=6))
    outs = kit.run(kit.make(tiny_model_dir, top_k=10, min_relative_score=0.9), QUERY,
                   kit.inputs(texts))
    _assert_same(_pairs(outs), _core(tiny_model_dir, texts, min_relative_score=0.9))


# ---------------------------------------------------------------------- first-stage fusion


def test_fusion_reads_the_frameworks_first_stage_score_and_orders_as_the_core(
    kit: Kit, tiny_model_dir: Path
) -> None:
    texts: list[str | None] = [*_texts(9, seed=11), ""]
    first: list[float | None] = [float(x) for x in np.random.default_rng(3).normal(5, 2, 9)]
    first.append(None)  # the blank one needs no score
    options = {"fusion": "linear", "fusion_weight": 0.3}
    adapter = kit.make(tiny_model_dir, top_k=10, **options)
    outs = kit.run(adapter, QUERY, kit.inputs(texts, first))
    core = CrossEncoderScorer(tiny_model_dir, device="cpu", **options).rerank(  # type: ignore[arg-type]
        QUERY, texts, first_stage_scores=first
    )
    _assert_same(_pairs(outs), [(h.index, h.score) for h in core.hits])
    assert len(outs) == 9
    np.testing.assert_allclose(
        [o.model_score for o in outs], [h.model_score for h in core.hits], atol=1e-6
    )
    assert all(type(o.model_score) is float for o in outs)
    # The async path and a serialized copy read the same field.
    assert _pairs(asyncio.run(kit.arun(adapter, QUERY, kit.inputs(texts, first)))) == _pairs(outs)
    rebuilt = kit.round_trip(adapter)
    _assert_same(_pairs(kit.run(rebuilt, QUERY, kit.inputs(texts, first))), _pairs(outs))


def test_a_candidate_without_a_first_stage_score_is_an_error(
    kit: Kit, tiny_model_dir: Path
) -> None:
    adapter = kit.make(tiny_model_dir, top_k=3, fusion="rrf")
    field = {"haystack": r"Document\.score", "langchain": r"documents\[1\]\.metadata\['score'\]",
             "llama_index": r"nodes\[1\]\.score"}[kit.name]
    with pytest.raises(ValueError, match=field + r" is missing \(None\)"):
        kit.run(adapter, QUERY, kit.inputs(["the drug", "blood cells"], [1.0, None]))
    assert not kit.scorer(adapter).is_loaded  # refused before any scoring
    with pytest.raises(ValueError, match="fusion_normalization='zscore' can be negative"):
        kit.make(tiny_model_dir, fusion="linear", min_relative_score=0.5)


@pytest.mark.parametrize(("option", "value", "error"), [
    ("top_k", 0, ValueError),
    ("top_k", "3", TypeError),
    ("score_threshold", float("nan"), ValueError),
    ("token_budget", 0, ValueError),
    ("min_relative_score", 1.5, ValueError),
    ("batch_size", 0, ValueError),
    ("long_documents", "split", ValueError),
    ("fusion", "sum", ValueError),
    ("fusion_weight", 1.5, ValueError),
])
def test_bad_settings_fail_at_construction(
    kit: Kit, tiny_model_dir: Path, option: str, value: Any, error: type[Exception]
) -> None:
    name = kit.top if option == "top_k" else option
    with pytest.raises(error, match=name):
        kit.make(tiny_model_dir, **{option: value})


# ---------------------------------------------------------------------- settings


#: A non-default value for each scorer setting; a new setting must be added here.
_NON_DEFAULTS: dict[str, Any] = {
    "device": "cpu",
    "batch_size": 7,
    "max_tokens_per_batch": 512,
    "deadline_ms": 250.0,
    "max_length": 64,
    "family": "qwen3-reranker",
    "instruction": "Given a claim, find the evidence",
    "prompt": "Given a claim, find the evidence",  # the same setting's other name
    "prompt_name": "query",
    "template": "Q: {query}\nD: {document}\n{instruction}",
    "true_token": "yes",
    "false_token": "no",
    "activation": "raw",
    "fusion": "linear",
    "fusion_weight": 0.3,
    "fusion_normalization": "minmax",
    "backend": "torch-bf16",
    "onnx_cache_dir": "/tmp/crossrank-onnx-test",
    "int8_calibration": [["a calibration query", "a calibration text"]],
    "long_documents": "chunk",
    "max_windows": 3,
    "window_stride": 8,
    "aggregation": "mean-top",
    "top_windows": 3,
    "cache_dir": "/tmp/crossrank-hf-test",
    "revision": "v1",
    "local_files_only": True,
    "trust_remote_code": True,
    "model_kwargs": {"attn_implementation": "eager"},
    "tokenizer_kwargs": {"model_max_length": 64},
    "config_kwargs": {"hidden_dropout_prob": 0.0},
}
#: Settings checked elsewhere: the model (every test), calibration (its own test), secrets.
_ELSEWHERE = {"model", "calibration", *SECRET_OPTIONS}


def test_every_scorer_setting_has_a_value_in_this_suite() -> None:
    missing = set(SCORER_OPTIONS) - set(_NON_DEFAULTS) - _ELSEWHERE
    assert not missing, f"add a non-default value for {sorted(missing)} to _NON_DEFAULTS"


def test_every_scorer_setting_reaches_the_scorer_and_survives_a_round_trip(
    kit: Kit, tiny_model_dir: Path
) -> None:
    given = {k: v for k, v in _NON_DEFAULTS.items() if k in SCORER_OPTIONS}
    adapter = kit.make(tiny_model_dir, **copy.deepcopy(given))
    for restored in (adapter, kit.round_trip(adapter)):
        settings = scorer_settings(kit.scorer(restored))
        assert settings["model"] == str(tiny_model_dir)
        for name, value in given.items():
            assert settings[name] == value, name


def test_adapter_defaults_are_the_scorers(kit: Kit, tiny_model_dir: Path) -> None:
    settings = scorer_settings(kit.scorer(kit.make(tiny_model_dir)))
    for name, default in SCORER_OPTIONS.items():
        if name in _ELSEWHERE or name == "device":
            continue  # device: adapters resolve it to the one in use, as their peers do
        assert settings[name] == default, name


def test_configs_saved_by_the_first_release_still_load_with_their_meaning(
    kit: Kit, tiny_model_dir: Path
) -> None:
    texts: list[str | None] = list(_texts(6, seed=8))
    for saved, adapter in kit.saved_v1(tiny_model_dir):
        settings = scorer_settings(kit.scorer(adapter))
        for name, value in saved.items():
            if name in SCORER_OPTIONS and name not in ("device", *SECRET_OPTIONS):
                assert settings[name] == value, name
        outs = kit.run(adapter, QUERY, kit.inputs(texts))
        assert outs and all(type(o.score) is float for o in outs)
        # Each framework's own tests compare these results with a freshly built adapter.


def test_round_trip_gives_the_same_results(kit: Kit, tiny_model_dir: Path) -> None:
    texts: list[str | None] = list(_texts(8, seed=7))
    adapter = kit.make(tiny_model_dir, top_k=4, score_threshold=0.0, token_budget=500)
    rebuilt = kit.round_trip(adapter)
    assert type(rebuilt) is type(adapter)
    _assert_same(
        _pairs(kit.run(rebuilt, QUERY, kit.inputs(texts))),
        _pairs(kit.run(adapter, QUERY, kit.inputs(texts))),
    )


# ---------------------------------------------------------------------- concurrency


def test_threads_share_one_adapter_safely(kit: Kit, tiny_model_dir: Path) -> None:
    adapter = kit.make(tiny_model_dir, top_k=5)
    jobs = [(f"{QUERY} {i}", _texts(30, seed=i)) for i in range(16)]
    sequential = [_pairs(kit.run(adapter, q, kit.inputs(list(t)))) for q, t in jobs]

    def call(i: int) -> list[tuple[int, float]]:
        q, t = jobs[i % len(jobs)]
        return _pairs(kit.run(adapter, q, kit.inputs(list(t))))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(4 * len(jobs))))
    for i, got in enumerate(results):
        assert got == sequential[i % len(jobs)]


def test_concurrent_async_calls_keep_the_event_loop_running(
    kit: Kit, tiny_model_dir: Path
) -> None:
    adapter = kit.make(tiny_model_dir, top_k=5)
    jobs = [(f"{QUERY} {i}", _texts(200, seed=i)) for i in range(20)]

    async def main() -> tuple[list[Any], list[Any], int]:
        sequential = [_pairs(await kit.arun(adapter, q, kit.inputs(list(t)))) for q, t in jobs]
        ticks = 0
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        beat = asyncio.create_task(heartbeat())
        concurrent = await asyncio.gather(
            *(kit.arun(adapter, q, kit.inputs(list(t))) for q, t in jobs)
        )
        done.set()
        await beat
        return sequential, [_pairs(c) for c in concurrent], ticks

    sequential, concurrent, ticks = asyncio.run(main())
    assert concurrent == sequential
    assert all(len(r) == 5 for r in concurrent)
    # Scoring runs off the loop's thread: the loop kept turning meanwhile. On the loop's
    # thread the heartbeat could run at most about once per call.
    assert ticks > 2 * len(jobs)


# ---------------------------------------------------------------------- packaging


def _extras() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["project"]["optional-dependencies"])


def test_a_missing_framework_names_the_extra(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    root = kit.module.split(".")[0]
    for name in list(sys.modules):
        if name == kit.module or name.startswith(kit.module + ".") or (
            root == "langchain_crossrank" and name.startswith(root)
        ):
            monkeypatch.delitem(sys.modules, name)
    for framework in kit.framework_modules:
        for name in [framework, *(m for m in sys.modules if m.startswith(framework + "."))]:
            monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    with pytest.raises(ImportError) as info:
        importlib.import_module(kit.module)
    message = str(info.value)
    assert f'pip install "crossrank[{kit.extra}]"' in message
    assert kit.extra in _extras()
