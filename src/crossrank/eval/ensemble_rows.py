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
from crossrank.eval.metrics import CUTOFF, row_metrics
from crossrank.fusion import Fusion

__all__ = ["ensemble_cv_row", "ensemble_cv_rows"]


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
        **row_metrics(run, qrels, k),
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


def ensemble_cv_rows(
    systems: Sequence[Any],
    model_scores: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    candidates: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int],
    timed: Mapping[int, Sequence[Mapping[str, Any]]],
    folds: int = tuning.DEFAULT_FOLDS,
) -> tuple[dict[int, list[dict[str, Any]]], list[str]]:
    """The cross-validated row of every two-member ensemble whose members were evaluated as
    models (their logits are cached in ``model_scores``, by model), per K; and a note for
    each ensemble that could not get one.

    Args:
        systems: The evaluated systems (:class:`crossrank.eval.systems.System`).
        model_scores: Each evaluated model's logits of each query's candidates.
        candidates: Each query's candidates, first-stage order.
        qrels: The evaluated queries' judgments.
        ks: Candidate counts.
        timed: The systems' rows by K (an ensemble's own row gives the latency).
        folds: Folds of the cross-validation.
    """
    rows: dict[int, list[dict[str, Any]]] = {k: [] for k in ks}
    notes: list[str] = []
    for system in systems:
        if system.kind != "ensemble" or system.deadline_ms is not None:
            continue
        members = system.members
        if len(members) != 2 or not all(m in model_scores for m in members):
            notes.append(
                f"{system.label}: no cross-validated weight (it needs exactly two members, "
                "each also evaluated with --model)"
            )
            continue
        for k in ks:
            own = next((r for r in timed.get(k, ()) if r["system"] == system.label), None)
            rows[k].append(
                ensemble_cv_row(
                    system.label,
                    candidates=candidates,
                    first=model_scores[members[0]],
                    second=model_scores[members[1]],
                    qrels=qrels,
                    k=k,
                    folds=folds,
                    timed=own,
                )
            )
    return rows, notes
