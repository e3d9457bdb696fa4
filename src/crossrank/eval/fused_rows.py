"""``crossrank eval``'s fused rows: each model's cached logits mixed with the first stage's
scores (:mod:`crossrank.fusion`), at a given weight, or at a weight chosen by k-fold
cross-validation over the evaluated queries or on another split (:mod:`crossrank.eval.tuning`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.eval import tuning
from crossrank.eval.data import load_beir
from crossrank.eval.metrics import row_metrics
from crossrank.fusion import Fusion

__all__ = ["FusionPlan", "tune_set"]


@dataclass(frozen=True)
class FusionPlan:
    """How eval fuses: a method and normalization, and a fixed ``weight``, or a weight
    tuned on ``tune_split`` or by ``folds``-fold cross-validation."""

    method: str
    normalization: str
    weight: float | None
    tune_split: str | None
    folds: int | None

    @classmethod
    def checked(
        cls,
        fusion: str | None,
        weight: float | None,
        normalization: str,
        tune: bool,
        tune_split: str | None,
        folds: int,
        split: str,
    ) -> FusionPlan | None:
        tune = tune or tune_split is not None
        if fusion is None and tune:
            fusion = "linear"
        if fusion is None:
            if weight is not None or normalization != "zscore":
                given = "fusion_weight" if weight is not None else "fusion_normalization"
                raise ValueError(f"{given} is only used with fusion='linear' or 'rrf'")
            return None
        if tune and weight is not None:
            raise ValueError(
                f"fusion_weight={weight} and tune_fusion exclude each other: give a weight, or "
                "let tune_fusion choose one"
            )
        checked = Fusion.checked(fusion, 0.5 if weight is None else weight, normalization)
        assert checked is not None  # fusion is not None here
        if tune_split is not None and tune_split == split:
            raise ValueError(
                f"tune_split must differ from split ({split!r}): a weight chosen on the "
                "evaluated queries flatters them; without tune_split the weight is chosen by "
                "cross-validation"
            )
        cross_validated = tune and tune_split is None
        if cross_validated and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
            raise ValueError(f"folds must be an int >= 2, got {folds!r}")
        return cls(
            checked.method,
            checked.normalization,
            None if tune else checked.weight,
            tune_split,
            folds if cross_validated else None,
        )

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "normalization": self.normalization if self.method == "linear" else None,
            "weight": self.weight,
            "tune_split": self.tune_split,
            "folds": self.folds,
            "weight_grid": list(tuning.WEIGHT_GRID) if self.weight is None else None,
            "tuned_metric": f"ndcg@{tuning.TUNED_CUTOFF}" if self.weight is None else None,
        }

    def row(
        self,
        model_row: Mapping[str, Any],
        fs_label: str,
        candidates: Mapping[str, Sequence[str]],
        scores: Mapping[str, Sequence[float]],
        fs_scores: Mapping[str, Mapping[str, float]],
        k: int,
        qrels: Mapping[str, Mapping[str, int]],
        tune_qrels: Mapping[str, Mapping[str, int]],
    ) -> dict[str, Any]:
        """The fused row of one model at one K, from the cached scores."""

        def table(judged: Mapping[str, Mapping[str, int]]) -> dict[float, dict[str, float]]:
            return tuning.weight_table(
                candidates, scores, fs_scores, judged, k=k, method=self.method,
                normalization=self.normalization,
            )  # fmt: skip

        fold_weights: list[float] | None = None
        curve: dict[float, dict[str, float]] | None = None
        if self.weight is not None:
            weight, how = self.weight, f"w={self.weight:.2f}"
            weight_of: dict[str, float] = dict.fromkeys(qrels, weight)
        elif self.tune_split is not None:
            weight = tuning.best_weight(table(tune_qrels), tune_qrels)
            how = f"w={weight:.2f} from {self.tune_split}"
            weight_of = dict.fromkeys(qrels, weight)
        else:
            assert self.folds is not None
            curve = table(qrels)
            cv = tuning.cross_validate(curve, list(qrels), folds=self.folds)
            weight, fold_weights, how = cv.overall, cv.weights, f"{self.folds}-fold CV"
            weight_of = {q: cv.weight_of(q) for q in qrels}
        run: dict[str, dict[str, float]] = {}
        for w in sorted(set(weight_of.values())):
            fusion = Fusion.checked(self.method, w, self.normalization)
            assert fusion is not None
            chosen = [q for q, v in weight_of.items() if v == w]
            run |= tuning.fused_run(candidates, scores, fs_scores, fusion, k=k, queries=chosen)
        scale = f" {self.normalization}" if self.method == "linear" else ""
        return {
            **model_row,
            "system": f"{model_row['system']} + {fs_label} [{self.method}{scale}, {how}]",
            "stage": "fused",
            **row_metrics(run, qrels, k),
            "latency_p50_ms": None,
            "latency_p95_ms": None,
            "pairs_per_second": None,
            "latency_queries": None,
            "fusion": {
                "method": self.method,
                "normalization": self.normalization if self.method == "linear" else None,
                "weight": weight,
                "fold_weights": fold_weights,
                # How flat the optimum is. In-sample (every weight scored on the queries
                # it is shown for): never the reported figure.
                "in_sample_ndcg_by_weight": (
                    None
                    if curve is None
                    else {f"{w:.2f}": float(np.mean(list(v.values()))) for w, v in curve.items()}
                ),
                "tuned_on": (
                    None if self.weight is not None
                    else f"split {self.tune_split} ({len(tune_qrels)} queries)"
                    if self.tune_split is not None
                    else f"{self.folds}-fold cross-validation over the evaluated queries"
                ),
            },
        }


def tune_set(
    data: str | os.PathLike[str], plan: FusionPlan | None, query_ids: Sequence[str]
) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """The judgments and texts of the tuning split's judged queries (none without one),
    checked to be disjoint from the evaluated ones."""
    if plan is None or plan.tune_split is None:
        return {}, {}
    tune = load_beir(Path(data), plan.tune_split)
    judged = {q: r for q, r in sorted(tune.qrels.items()) if any(v > 0 for v in r.values())}
    shared = sorted(set(judged) & set(query_ids))
    if shared:
        raise ValueError(
            f"tune_split {plan.tune_split!r} judges {len(shared)} of the evaluated queries "
            f"(e.g. {shared[:5]}); the weight must be chosen on other queries"
        )
    if not judged:
        raise ValueError(f"tune_split {plan.tune_split!r} has no query with a relevant document")
    return judged, {q: tune.queries[q] for q in judged}
