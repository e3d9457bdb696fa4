"""How well a backend keeps fp32's ranking: top-10 overlap, NDCG@10 with fp32's order as
graded truth, Spearman (reported), and finite scores (a NaN fails the backend)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_NDCG10", "MIN_TOP10_OVERLAP", "agreement"]

#: Fewest of fp32's top 10 a backend must keep on every probe query.
MIN_TOP10_OVERLAP = 9

#: Lowest mean NDCG@10 of a backend's order against fp32's order (graded truth).
MIN_NDCG10 = 0.98


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties getting their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _ndcg10_against(reference: np.ndarray, scores: np.ndarray) -> float:
    """NDCG@10 of ``scores``' order, with ``reference``'s order as graded truth."""
    grade = np.zeros(len(reference))
    top = np.argsort(-reference, kind="stable")[:10]
    grade[top] = np.arange(10, 10 - len(top), -1)
    discount = 1.0 / np.log2(np.arange(2, 12))
    ideal = float(np.sum(np.sort(grade)[::-1][:10] * discount[: min(10, len(grade))]))
    got_order = np.argsort(-scores, kind="stable")[:10]
    got = float(np.sum(grade[got_order] * discount[: len(got_order)]))
    return got / ideal if ideal > 0 else 1.0


def agreement(reference: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> dict[str, Any]:
    """How well ``scores`` keep ``reference``'s top, one array of scores per query.

    Returns:
        ``top10_overlap_min`` and ``top10_overlap_mean`` (how many of the reference's top
        10 are in the scores' top 10), ``ndcg10`` (mean NDCG@10 with the reference's order
        as graded truth), ``spearman`` (mean over queries; reported, not gating),
        ``max_abs_diff`` and ``passed`` (the thresholds :data:`MIN_TOP10_OVERLAP` and
        :data:`MIN_NDCG10`, and finite scores).
    """
    overlaps, ndcgs, rhos, diffs = [], [], [], []
    finite = True
    for ref, got in zip(reference, scores, strict=True):
        ref, got = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
        finite = finite and bool(np.all(np.isfinite(got)))
        k = min(10, len(ref))
        top_ref = set(np.argsort(-ref, kind="stable")[:k].tolist())
        top_got = set(np.argsort(-got, kind="stable")[:k].tolist())
        overlaps.append(len(top_ref & top_got) + (10 - k))
        ndcgs.append(_ndcg10_against(ref, got))
        rho = _spearman(ref, got)
        if rho is not None:
            rhos.append(rho)
        diffs.append(float(np.max(np.abs(ref - got))) if finite else math.inf)
    ndcg = float(np.mean(ndcgs)) if finite else 0.0
    return {
        "top10_overlap_min": int(min(overlaps)),
        "top10_overlap_mean": float(np.mean(overlaps)),
        "ndcg10": ndcg,
        "spearman": float(np.mean(rhos)) if rhos else None,
        "max_abs_diff": float(max(diffs)),
        "passed": finite and min(overlaps) >= MIN_TOP10_OVERLAP and ndcg >= MIN_NDCG10,
    }
