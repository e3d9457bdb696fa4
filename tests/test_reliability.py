"""Reliability: concurrency, the bad-input matrix, property-based selection, adapter parity.

What every adapter must do (parity on the tiny model, threads, async, no mutation...) is in
``test_adapters_contract.py``; here, the core and the real model through every path.

Model-failure cases (missing path, corrupt weights then a successful retry, hub unreachable,
a bi-encoder folder) are in ``test_core_loading.py``.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank import CrossEncoderScorer, select
from crossrank.scorer import Reranked

QUERY = "what is the effect of the drug on blood cells"
WORDS = "the drug blood cells cancer risk gene protein study patients dose heart brain".split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 40)))) for _ in range(n)]


# ---------------------------------------------------------------------- concurrency


def test_eight_threads_fifty_calls_each_match_sequential(tiny_scorer: CrossEncoderScorer) -> None:
    jobs = [(f"{QUERY} {i % 7}", _texts(12, seed=i)) for i in range(400)]
    expected = [tiny_scorer.score(q, t) for q, t in jobs[:50]]
    errors: list[BaseException] = []

    def worker(offset: int) -> list[list[float]]:
        try:
            return [tiny_scorer.score(*jobs[(offset + j) % 50]) for j in range(50)]
        except BaseException as e:  # collected and re-raised below
            errors.append(e)
            raise

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    assert not errors
    for offset, got in enumerate(results):
        for j, scores in enumerate(got):
            assert scores == expected[(offset + j) % 50]


# ---------------------------------------------------------------------- bad input matrix


# Bad queries, through the core and every adapter: test_adapters_contract.py.


def test_no_text_candidates_are_reported_never_lost(
    tiny_scorer: CrossEncoderScorer, caplog: pytest.LogCaptureFixture
) -> None:
    texts = ["blood cells", None, "", "   ", "\n\t", "the drug", "\x00", "drug"]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        result = tiny_scorer.rerank(QUERY, texts)  # type: ignore[arg-type]
    returned = {h.index for h in result.hits}
    assert returned | set(result.skipped) == set(range(len(texts)))
    assert not returned & set(result.skipped)
    assert result.skipped == [1, 2, 3, 4]
    assert "4 of 8 candidates have no text" in caplog.text


def test_non_string_content_is_a_clear_error(tiny_scorer: CrossEncoderScorer) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string, got int"):
        tiny_scorer.rerank(QUERY, ["ok", 5])  # type: ignore[list-item]


def test_one_megabyte_document_is_truncated_and_reported(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reported per text, per call, in the scorer's count, and in a warning the first time
    (a fresh scorer: the shared one may have warned already, and warns once)."""
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    huge = ("blood cells and the drug " * 45_000)[:1_000_000]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        hits = scorer.rank(QUERY, ["the drug", huge])
        again = scorer.rerank(QUERY, ["the drug", huge])
    assert len(hits) == 2
    assert {h.index: h.truncated for h in hits} == {0: False, 1: True}
    assert caplog.text.count("1 of 2 texts were longer than max_length") == 1
    assert again.truncated == 1 and scorer.truncated_texts == 2


def test_ten_thousand_documents_all_scored(tiny_scorer: CrossEncoderScorer) -> None:
    texts = _texts(10_000, seed=3)
    scores = tiny_scorer.score(QUERY, texts)
    assert len(scores) == 10_000 and all(math.isfinite(s) for s in scores)
    # The same texts in a smaller call give the same scores (up to float rounding from
    # different padding within a batch).
    np.testing.assert_allclose(scores[:100], tiny_scorer.score(QUERY, texts[:100]), atol=1e-6)


def test_unicode_is_scored(tiny_scorer: CrossEncoderScorer) -> None:
    texts = [
        "血液细胞与药物",  # CJK
        "تأثير الدواء على خلايا الدم",  # right-to-left
        "drug 💊 blood 🩸",  # emoji
        "cafe\u0301 re\u0301sume\u0301",  # combining marks
        "nul\x00inside",
        "\u200b\u200d zero width",
    ]
    scores = tiny_scorer.score("药物 💊 ﻿query", texts)
    assert len(scores) == len(texts) and all(math.isfinite(s) for s in scores)


def test_duplicate_ids_are_collapsed_and_reported_in_haystack(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from haystack import Document

    from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker

    ranker = CrossEncoderRanker(model=str(tiny_model_dir), top_k=5)
    docs = [
        Document(content="blood cells", id="a", score=0.1),
        Document(content="blood cells", id="a", score=0.9),
        Document(content="the drug", id="b"),
    ]
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        out = ranker.run(query=QUERY, documents=docs)["documents"]
    assert sorted(d.id for d in out) == ["a", "b"]
    assert "1 duplicate" in caplog.text


def test_nan_and_inf_scores_from_a_broken_model(tiny_model_dir: Path) -> None:
    scorer = CrossEncoderScorer(tiny_model_dir, activation="raw")
    scorer.warm_up()
    loaded = scorer._loaded
    assert loaded is not None
    broken = np.array([np.nan, np.inf, 1.0, -np.inf, np.nan])

    given: list[int] = []  # the broken scores handed out so far, in the order of the rows

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        start = len(given)
        given.extend(range(start, start + len(arrays["input_ids"])))
        return broken[start : len(given)]

    object.__setattr__(loaded, "forward", forward)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]  # distinct lengths: a known order
    order = sorted(range(5), key=lambda i: -len(texts[i]))  # batches are longest first
    raw = {order[j]: broken[j] for j in range(5)}
    hits = scorer.rank(QUERY, texts)
    given.clear()
    assert len(hits) == 5  # nothing lost
    finite_or_inf = [h.index for h in hits if not math.isnan(h.score)]
    assert finite_or_inf == sorted(
        (i for i in raw if not math.isnan(raw[i])), key=lambda i: -raw[i]
    )
    assert all(math.isnan(h.score) for h in hits[-2:])  # NaN last
    kept = scorer.rank(QUERY, texts, score_threshold=0.0)
    assert all(not math.isnan(h.score) and h.score >= 0.0 for h in kept)


@pytest.mark.parametrize(
    ("top_k", "outcome"),
    [(100, 3), (3, 3), (1, 1), (0, "top_k must be >= 1"), (-2, "top_k must be >= 1")],
)
def test_top_k_edges(tiny_scorer: CrossEncoderScorer, top_k: int, outcome: Any) -> None:
    texts = ["blood", "drug", "cells"]
    if isinstance(outcome, int):
        assert len(tiny_scorer.rank(QUERY, texts, top_k=top_k)) == outcome
    else:
        with pytest.raises(ValueError, match=outcome):
            tiny_scorer.rank(QUERY, texts, top_k=top_k)


def test_nan_threshold_is_rejected(tiny_scorer: CrossEncoderScorer) -> None:
    with pytest.raises(ValueError, match="score_threshold must be a number, got NaN"):
        tiny_scorer.rank(QUERY, ["a"], score_threshold=float("nan"))


# ---------------------------------------------------------------------- properties

scores_strategy = st.lists(
    st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=0, max_size=60
)


@settings(max_examples=300, deadline=None)
@given(
    scores=scores_strategy,
    top_k=st.one_of(st.none(), st.integers(min_value=1, max_value=80)),
    threshold=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)
def test_select_properties(scores: list[float], top_k: int | None, threshold: float | None) -> None:
    kept = select(scores, top_k=top_k, score_threshold=threshold)
    # A subset of the input, without repeats.
    assert len(set(kept)) == len(kept) and set(kept) <= set(range(len(scores)))
    # Never longer than top_k.
    if top_k is not None:
        assert len(kept) <= top_k
    # Thresholds respected (NaN never passes one).
    if threshold is not None:
        assert all(scores[i] >= threshold for i in kept)
    # Best first; ties in input order; NaN after every number.
    keys = [
        (math.isnan(scores[i]), -scores[i] if not math.isnan(scores[i]) else 0.0, i) for i in kept
    ]
    assert keys == sorted(keys)
    # Nothing better than a kept item is left out.
    if kept and top_k is not None and len(kept) == top_k:
        worst = kept[-1]
        for i in set(range(len(scores))) - set(kept):
            if threshold is not None and not scores[i] >= threshold:
                continue
            assert not (scores[i] > scores[worst]) or math.isnan(scores[worst])
    # Deterministic.
    assert select(scores, top_k=top_k, score_threshold=threshold) == kept


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=40)), min_size=0, max_size=12),
    top_k=st.one_of(st.none(), st.integers(min_value=1, max_value=15)),
)
def test_rerank_accounts_for_every_candidate(
    tiny_scorer: CrossEncoderScorer, texts: list[str | None], top_k: int | None
) -> None:
    result: Reranked = tiny_scorer.rerank(QUERY, texts, top_k=top_k)
    returned = [h.index for h in result.hits]
    skipped = set(result.skipped)
    assert skipped == {i for i, t in enumerate(texts) if t is None or not t.strip()}
    assert not skipped & set(returned)
    scorable = len(texts) - len(skipped)
    assert len(returned) == (scorable if top_k is None else min(top_k, scorable))
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert tiny_scorer.rerank(QUERY, texts, top_k=top_k) == result


# ---------------------------------------------------------------------- parity


def _through_every_path(
    model: Path, query: str, texts: list[str]
) -> dict[str, list[tuple[int, float]]]:
    from haystack import Document
    from langchain_core.documents import Document as LCDocument
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

    from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker
    from langchain_crossrank import CrossEncoderRerank as LangChainRerank
    from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank as LlamaRerank

    n = len(texts)
    core = CrossEncoderScorer(model, device="cpu").rank(query, texts)
    haystack = CrossEncoderRanker(model=str(model), top_k=n).run(
        query=query, documents=[Document(content=t, id=str(i)) for i, t in enumerate(texts)]
    )["documents"]
    langchain = LangChainRerank(model=str(model), top_n=n).compress_documents(
        [LCDocument(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)], query
    )
    llama = LlamaRerank(
        model=str(model), top_n=n, metadata_mode=MetadataMode.NONE
    ).postprocess_nodes(
        [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(texts)],
        query_bundle=QueryBundle(query),
    )
    return {
        "core": [(h.index, h.score) for h in core],
        "haystack": [(int(d.id), float(d.score)) for d in haystack],
        "langchain": [(d.metadata["i"], d.metadata["relevance_score"]) for d in langchain],
        "llama_index": [(int(n.node.node_id), float(n.score)) for n in llama],
    }


def _assert_parity(paths: dict[str, list[tuple[int, float]]]) -> None:
    core = paths.pop("core")
    for name, got in paths.items():
        assert [i for i, _ in got] == [i for i, _ in core], name
        np.testing.assert_allclose(
            [s for _, s in got], [s for _, s in core], atol=1e-6, err_msg=name
        )


@pytest.mark.integration
def test_parity_across_core_and_adapters_shared(
    shared_model_dir: Path, scifact, scifact_candidates
) -> None:  # type: ignore[no-untyped-def]
    qid = sorted(scifact_candidates)[1]
    texts = [scifact.doc_text(d) for d, _ in scifact_candidates[qid]]
    _assert_parity(_through_every_path(shared_model_dir, scifact.queries[qid], texts))


def test_scorer_lock_is_not_held_during_the_forward_pass(tiny_model_dir: Path) -> None:
    """Tokenizer calls are serialized; model calls are not: two threads overlap in forward."""
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    scorer.warm_up()
    loaded = scorer._loaded
    assert loaded is not None
    inner = loaded.forward
    inside = threading.Semaphore(0)
    both = threading.Barrier(2, timeout=30)

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        both.wait()  # returns only when two forwards run at once
        inside.release()
        return inner(arrays)

    object.__setattr__(loaded, "forward", forward)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda q: scorer.score(q, ["blood cells"]), ["a drug", "a dose"]))
    assert len(results) == 2
