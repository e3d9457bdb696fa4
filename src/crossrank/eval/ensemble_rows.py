"""A two-model ensemble's weight, chosen honestly: ``crossrank eval --ensemble A,B
--tune-ensemble``.

An :class:`crossrank.compose.Ensemble` of two models with ``"zscore"`` normalization scores
a query's candidates ``w * z(A) + (1 - w) * z(B)``: linear fusion
(:mod:`crossrank.fusion`) with B's logits in the first stage's place. So the weight is
chosen as ``--tune-fusion`` chooses fusion's (:mod:`crossrank.eval.tuning`): on the
members' cached logits, by k-fold cross-validation over the evaluated queries, each query
scored with the weight its fold got from the other folds. The row's latency is the
ensemble's own (its weight costs nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crossrank.eval import tuning
from crossrank.eval.system_rows import CUTOFF, metrics_row
from crossrank.fusion import Fusion

__all__ = ["ensemble_cv_row"]


def ensemble_cv_row(
    label: str,
    *,
    candidates: Mapping[str, Sequence[str]],
    first: Mapping[str, Sequence[float]],
    second: Mapping[str, Sequence[float]],
    qrels: Mapping[str, Mapping[str, int]],
    k: int,
    folds: int = tuning.DEFAULT_FOLDS,
    timed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The row of the ensemble of two models at ``k`` with cross-validated weights.

    Args:
        label: The ensemble's label (the row is ``"<label> cv"``).
        candidates: Each query's candidates, first-stage order.
        first: The first member's logits of each candidate, same order.
        second: The second member's.
        qrels: The evaluated queries' judgments.
        k: Candidates per query.
        folds: Folds of the cross-validation.
        timed: The ensemble's own row at ``k``, whose latency columns are copied.

    Returns:
        The row (stage ``"ensemble-cv"``), with ``ensemble`` holding each fold's weight of
        the first member and the weight chosen on all the queries (the one to use).
    """
    as_first_stage = {
        q: dict(zip(candidates[q][:k], second[q][:k], strict=True)) for q in second
    }
    table = tuning.weight_table(
        candidates, first, as_first_stage, qrels, k=k, method="linear", normalization="zscore"
    )
    cv = tuning.cross_validate(table, sorted(qrels), folds=folds)
    run = {}
    for q in first:
        if q not in qrels:
            continue
        fusion = Fusion.checked("linear", cv.weight_of(q), "zscore")
        assert fusion is not None
        run.update(tuning.fused_run(candidates, first, as_first_stage, fusion, k=k, queries=[q]))
    latency = {
        key: (timed or {}).get(key)
        for key in ("latency_p50_ms", "latency_p95_ms", "pairs_per_second", "latency_queries")
    }
    return {
        "system": f"{label} cv",
        "stage": "ensemble-cv",
        "model": None,
        "backend": None,
        "k": k,
        **metrics_row(run, qrels, k),
        **latency,
        "truncated_fraction": None,
        "pairs_per_document": None,
        "ensemble": {
            "normalization": "zscore",
            "fold_weights": cv.weights,
            "weight": cv.overall,
            "cutoff": CUTOFF,
        },
    }
