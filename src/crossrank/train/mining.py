"""Hard negatives from the first stage the user reranks, and the training rows built on them.

The first stage is the one ``crossrank eval`` runs (BM25 with bm25s, or exact cosine
search with a sentence-transformers bi-encoder, :mod:`crossrank.eval.first_stage`), so the
model learns to separate the positives from the very candidates it will be asked to
reorder. A hard negative of a query is one of its top ``depth`` candidates that is not
judged relevant (relevance > 0); the positives are removed by document id.

Why not ``sentence_transformers.util.mine_hard_negatives`` for the dense first stage: it
works on texts, so it can only exclude a positive by its text (two documents with the same
text are one), and it would be a second, different retriever from the one ``crossrank
eval`` reranks. One retriever for mining, the dev evaluation and the test keeps them equal.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from crossrank.eval.data import Dataset

__all__ = ["Candidates", "first_stage_candidates", "hard_negatives", "listwise_rows", "pair_rows"]

#: ``{query_id: [doc_id, ...]}``, best first-stage candidate first.
Candidates = dict[str, list[str]]


def first_stage_candidates(
    dataset: Dataset, query_ids: Sequence[str], *, first_stage: str, depth: int
) -> tuple[str, Candidates, dict[str, dict[str, float]]]:
    """Retrieve each query's top ``depth`` with ``first_stage`` (``bm25`` or ``dense:MODEL``).

    Returns:
        ``(label, candidates, scores)``: the first stage's name, each query's ranked ids,
        and each query's ``{doc_id: first-stage score}``.
    """
    from crossrank.eval.first_stage import first_stage_run
    from crossrank.eval.metrics import ranked_ids

    label, scores = first_stage_run(
        dataset, list(query_ids), first_stage=first_stage, run_path=None, depth=depth
    )
    return label, {q: ranked_ids(scores[q]) for q in query_ids}, scores


def hard_negatives(
    candidates: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    num_negatives: int,
    depth: int,
    seed: int,
) -> dict[str, list[str]]:
    """Each query's hard negatives: ``num_negatives`` of its top ``depth`` candidates that
    are not judged relevant, drawn at random with ``seed`` (fewer when fewer remain), in
    first-stage order.

    Raises:
        ValueError: If ``num_negatives`` or ``depth`` is below 1.
    """
    if num_negatives < 1 or depth < 1:
        raise ValueError(
            f"num_negatives and depth must be >= 1, got {num_negatives} and {depth}"
        )
    rng = random.Random(seed)
    mined: dict[str, list[str]] = {}
    for qid in sorted(candidates):
        judged = qrels.get(qid, {})
        pool = [d for d in candidates[qid][:depth] if judged.get(d, 0) <= 0]
        picked = set(rng.sample(pool, min(num_negatives, len(pool))))
        mined[qid] = [d for d in pool if d in picked]
    return mined


def _positives(judged: Mapping[str, int]) -> list[str]:
    return sorted(d for d, r in judged.items() if r > 0)


def pair_rows(
    dataset: Dataset, query_ids: Sequence[str], negatives: Mapping[str, Sequence[str]]
) -> dict[str, list[Any]]:
    """Pointwise rows (``query``, ``document``, ``label``): each positive of a query with
    label 1, each of its hard negatives with label 0."""
    rows: dict[str, list[Any]] = {"query": [], "document": [], "label": []}
    for qid in query_ids:
        judged = [(d, 1.0) for d in _positives(dataset.qrels[qid])]
        for doc_id, label in judged + [(d, 0.0) for d in negatives.get(qid, [])]:
            rows["query"].append(dataset.queries[qid])
            rows["document"].append(dataset.doc_text(doc_id))
            rows["label"].append(label)
    return rows


def listwise_rows(
    dataset: Dataset,
    query_ids: Sequence[str],
    negatives: Mapping[str, Sequence[str]],
    *,
    seed: int,
) -> dict[str, list[Any]]:
    """Listwise rows (``query``, ``documents``, ``labels``): one per query, its positives
    (label 1) and hard negatives (label 0) in an order shuffled with ``seed``."""
    rng = random.Random(seed)
    rows: dict[str, list[Any]] = {"query": [], "documents": [], "labels": []}
    for qid in query_ids:
        items = [(d, 1.0) for d in _positives(dataset.qrels[qid])]
        items += [(d, 0.0) for d in negatives.get(qid, [])]
        rng.shuffle(items)
        rows["query"].append(dataset.queries[qid])
        rows["documents"].append([dataset.doc_text(d) for d, _ in items])
        rows["labels"].append([label for _, label in items])
    return rows
