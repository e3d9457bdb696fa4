"""Which system to pick: the best one within a latency budget (``crossrank eval
--latency-budget-ms B``).

For each candidate count K, among the rows that rerank (every stage but the first stage
alone) whose p95 latency is at most the budget, the one with the best NDCG@10 (ties: the
faster, then the first listed) is marked ``best_within_budget``; every row gets
``within_budget`` (None where it has no latency: a first stage, a fused row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["budget_summary", "mark_within_budget"]

_NDCG = "ndcg@10"


def mark_within_budget(rows: Sequence[dict[str, Any]], budget_ms: float) -> None:
    """Set ``within_budget`` and ``best_within_budget`` on each row (see the module
    docstring); changes the rows in place.

    Raises:
        ValueError: ``budget_ms`` is not a number > 0.
    """
    if isinstance(budget_ms, bool) or not isinstance(budget_ms, (int, float)) or not budget_ms > 0:
        raise ValueError(f"the latency budget must be a number of ms > 0, got {budget_ms!r}")
    best: dict[int, dict[str, Any]] = {}
    for row in rows:
        p95 = row.get("latency_p95_ms")
        row["best_within_budget"] = False
        if row["stage"] == "first_stage" or p95 is None:
            row["within_budget"] = None
            continue
        row["within_budget"] = p95 <= budget_ms
        held = best.get(row["k"])
        if row["within_budget"] and (
            held is None or (row[_NDCG], -p95) > (held[_NDCG], -held["latency_p95_ms"])
        ):
            best[row["k"]] = row
    for row in best.values():
        row["best_within_budget"] = True


def budget_summary(rows: Sequence[Mapping[str, Any]], budget_ms: float) -> str:
    """One line per K: the best system within the budget, or that none is."""
    lines = []
    for k in sorted({row["k"] for row in rows}):
        chosen = [r for r in rows if r["k"] == k and r.get("best_within_budget")]
        if chosen:
            row = chosen[0]
            lines.append(
                f"K={k}: best within p95 <= {budget_ms:g} ms: {row['system']} "
                f"(NDCG@10 {row[_NDCG]:.4f}, p95 {row['latency_p95_ms']:.1f} ms)"
            )
        else:
            lines.append(f"K={k}: no system reranks within p95 <= {budget_ms:g} ms")
    return "\n".join(lines)
