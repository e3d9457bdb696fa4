"""Choosing the fusion weight for ``crossrank eval`` honestly.

A weight tuned on the queries it is then scored on flatters the fused system. ``crossrank
eval --tune-fusion`` therefore reports a held-out figure: the evaluated queries are split
into folds, the weight for each fold is the one that does best on the *other* folds, and
each query is scored with its fold's weight (k-fold cross-validation). With
``--tune-split`` the weight is chosen on another split's queries (disjoint from the
evaluated ones) and every evaluated query is scored with it.

Everything here works on cached scores: the cross-encoder scores each query's candidates
once, and a weight only changes how those scores are mixed with the first stage's, so a
grid of weights costs milliseconds. The quantity tuned is each query's NDCG@10
(:func:`crossrank.eval.metrics.ndcg_at_k`, trec_eval's conventions); the weight with the
best mean wins, ties going to the weight nearest 0.5 (then the smaller).

Example:
    >>> table = weight_table(candidates, model_scores, first_stage, qrels, k=20,
    ...                      method="linear", normalization="zscore")
    >>> cv = cross_validate(table, sorted(qrels), folds=5)
    >>> cv.weights            # one weight per fold, each chosen without that fold
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from crossrank.eval.metrics import ndcg_at_k, ranked_ids
from crossrank.fusion import Fusion

__all__ = [
    "DEFAULT_FOLDS",
    "TUNED_CUTOFF",
    "WEIGHT_GRID",
    "CrossValidation",
    "assign_folds",
    "best_weight",
    "cross_validate",
    "fused_run",
    "weight_table",
]

#: The weights tried: 0, 0.05, ..., 1 (the cross-encoder's share).
WEIGHT_GRID: tuple[float, ...] = tuple(i / 20 for i in range(21))
#: Folds of the cross-validation unless told otherwise.
DEFAULT_FOLDS = 5
#: The cut-off of the NDCG the weight is chosen by.
TUNED_CUTOFF = 10

#: ``{query_id: {doc_id: score}}``.
Run = dict[str, dict[str, float]]


def fused_run(
    candidates: Mapping[str, Sequence[str]],
    model_scores: Mapping[str, Sequence[float]],
    first_stage: Mapping[str, Mapping[str, float]],
    fusion: Fusion,
    *,
    k: int,
    queries: Iterable[str] | None = None,
) -> Run:
    """Each query's first ``k`` candidates with their fused scores.

    Args:
        candidates: Each query's candidates, first-stage order.
        model_scores: The cross-encoder's logit of each candidate, same order.
        first_stage: Each query's first-stage scores by document id.
        fusion: Method, weight and normalization; each query is normalised over its
            first ``k`` candidates, as a pipeline reranking ``k`` candidates would.
        k: Candidates per query.
        queries: The queries to fuse (default: every query with model scores).
    """
    run: Run = {}
    for q in model_scores if queries is None else queries:
        if q not in model_scores:
            continue  # a query without candidates: absent from the run, scores 0
        ids = list(candidates[q][:k])
        fused = fusion.apply(model_scores[q][:k], [first_stage[q][d] for d in ids])
        run[q] = dict(zip(ids, fused, strict=True))
    return run


def weight_table(
    candidates: Mapping[str, Sequence[str]],
    model_scores: Mapping[str, Sequence[float]],
    first_stage: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    k: int,
    method: str,
    normalization: str,
    grid: Sequence[float] = WEIGHT_GRID,
) -> dict[float, dict[str, float]]:
    """``{weight: {query_id: NDCG@10}}`` for every weight of ``grid`` and query of
    ``qrels`` (a query without candidates scores 0)."""
    table: dict[float, dict[str, float]] = {}
    for weight in grid:
        fusion = Fusion.checked(method, weight, normalization)
        assert fusion is not None
        run = fused_run(candidates, model_scores, first_stage, fusion, k=k, queries=qrels)
        table[float(weight)] = {
            q: ndcg_at_k(ranked_ids(run.get(q, {})), judged, TUNED_CUTOFF)
            for q, judged in qrels.items()
        }
    return table


def best_weight(table: Mapping[float, Mapping[str, float]], queries: Iterable[str]) -> float:
    """The weight with the best mean over ``queries`` (ties: nearest 0.5, then smaller).

    Raises:
        ValueError: ``queries`` is empty (nothing to choose by).
    """
    chosen = list(queries)
    if not chosen:
        raise ValueError("a weight cannot be chosen on no queries")
    means = {w: float(np.mean([per_query[q] for q in chosen])) for w, per_query in table.items()}
    top = max(means.values())
    return min((w for w, m in means.items() if m == top), key=lambda w: (abs(w - 0.5), w))


def assign_folds(query_ids: Sequence[str], folds: int, *, seed: int = 0) -> dict[str, int]:
    """Each query's fold: the ids in sorted order, shuffled with ``seed``, dealt round-robin
    (fold sizes differ by at most one; the same ids always give the same folds).

    Raises:
        ValueError: ``folds`` is below 2 or above the number of queries.
    """
    ids = sorted(set(query_ids))
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(ids):
        raise ValueError(
            f"folds must be an int from 2 to the number of evaluated queries ({len(ids)}), "
            f"got {folds!r}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[int(j)]: n % folds for n, j in enumerate(order)}


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """The outcome of :func:`cross_validate`.

    Attributes:
        fold_of: Each query's fold.
        weights: Fold ``f``'s weight, chosen on the queries of every other fold.
        overall: The weight chosen on all the queries: the one to use from now on. Its
            score on these queries is in-sample, so it is not the reported figure.
    """

    fold_of: dict[str, int]
    weights: list[float]
    overall: float

    def weight_of(self, query_id: str) -> float:
        """The weight a query is scored with: its fold's."""
        return self.weights[self.fold_of[query_id]]


def cross_validate(
    table: Mapping[float, Mapping[str, float]],
    query_ids: Sequence[str],
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> CrossValidation:
    """k-fold cross-validation of the weight over ``query_ids``.

    Each fold's weight is :func:`best_weight` over the other folds' queries only, so a
    query's score never comes from a weight its own judgments helped choose.
    """
    fold_of = assign_folds(query_ids, folds, seed=seed)
    weights = [
        best_weight(table, [q for q, f in fold_of.items() if f != fold]) for fold in range(folds)
    ]
    return CrossValidation(fold_of, weights, best_weight(table, fold_of))
