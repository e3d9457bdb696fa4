"""The core against sentence-transformers on the real shared model and SciFact.

The shared model is small and ranks below BM25 on SciFact; these tests compare crossrank's
path with the direct sentence-transformers path, never this model with BM25.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from crossrank import CrossEncoderScorer
from crossrank.eval.metrics import evaluate

pytestmark = pytest.mark.integration

#: Queries (of conftest's 30, each with 20 BM25 candidates) scored by sentence-transformers.
ST_QUERIES = 10


@pytest.fixture(scope="module")
def st_run(scifact, scifact_candidates, shared_model_dir):  # type: ignore[no-untyped-def]
    """sentence-transformers CrossEncoder.predict (fp32) on the first ST_QUERIES queries'
    candidates (200 pairs: enough to compare the paths, and each pair costs CI time)."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(shared_model_dir), device="cpu")
    run = {}
    for qid in sorted(scifact_candidates)[:ST_QUERIES]:
        hits = scifact_candidates[qid]
        ids = [d for d, _ in hits]
        pairs = [(scifact.queries[qid], scifact.doc_text(d)) for d in ids]
        scores = [float(s) for s in model.predict(pairs, batch_size=32)]
        run[qid] = dict(zip(ids, scores, strict=True))
    return run


def test_scores_match_sentence_transformers(scifact_core_run, st_run) -> None:  # type: ignore[no-untyped-def]
    assert len(st_run) == ST_QUERIES and st_run.keys() <= scifact_core_run.keys()
    for q in st_run:
        assert st_run[q].keys() == scifact_core_run[q].keys()
    diffs = [
        abs(scifact_core_run[q][d] - st_run[q][d]) for q in st_run for d in st_run[q]
    ]
    assert len(diffs) == ST_QUERIES * 20
    assert max(diffs) < 1e-5


def test_reranked_ndcg_equals_sentence_transformers(scifact, scifact_core_run, st_run) -> None:  # type: ignore[no-untyped-def]
    qrels = {q: scifact.qrels[q] for q in st_run}
    metrics = ["ndcg@10", "mrr@10", "recall@10"]
    core = evaluate({q: scifact_core_run[q] for q in st_run}, qrels, metrics)
    st = evaluate(st_run, qrels, metrics)
    for m in metrics:
        assert core[m] == pytest.approx(st[m], abs=1e-12)
    # Same top-10 per query, not only the same mean.
    def top(run: dict[str, dict[str, float]], q: str) -> list[str]:
        return sorted(run[q], key=lambda d: -run[q][d])[:10]

    for q in st_run:
        assert top(scifact_core_run, q) == top(st_run, q)


def test_reranking_beats_a_random_order(scifact, scifact_candidates, scifact_core_run) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(0)
    random_run = {}
    for q, hits in scifact_candidates.items():
        ids = [d for d, _ in hits]
        rng.shuffle(ids)
        random_run[q] = {d: float(len(ids) - i) for i, d in enumerate(ids)}
    qrels = {q: scifact.qrels[q] for q in scifact_candidates}
    reranked = evaluate(scifact_core_run, qrels, ["ndcg@10"])["ndcg@10"]
    shuffled = evaluate(random_run, qrels, ["ndcg@10"])["ndcg@10"]
    assert reranked > shuffled + 0.1


def test_truncation_is_reported_on_real_long_documents(
    scifact, shared_scorer: CrossEncoderScorer
) -> None:
    texts = [scifact.doc_text(d) for d in sorted(scifact.corpus)[:200]]
    lengths = [len(shared_scorer._model().tokenizer(t)["input_ids"]) for t in texts]
    query = "a claim about cells"
    q_len = len(shared_scorer._model().tokenizer(query, add_special_tokens=False)["input_ids"])
    long_ones = [i for i, n in enumerate(lengths) if n - 2 + q_len + 3 > 512]
    assert long_ones, "expected some SciFact abstracts longer than 512 tokens with the query"
    sample = long_ones[:3] + [i for i in range(len(texts)) if i not in long_ones][:3]
    details = shared_scorer.score_details(query, [texts[i] for i in sample])
    assert details.truncated == [True] * 3 + [False] * 3
    assert np.isfinite(details.scores).all()
