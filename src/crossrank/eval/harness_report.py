"""``crossrank eval``'s report as an aligned plain-text table: one line per system x K (a
cost column when a provider has a price, a mark on the best system within a latency
budget), then what the settings were, the fused rows' and ensembles' weights, the
deadlines' bounds and the choice within the budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crossrank.eval.choice import budget_summary
from crossrank.eval.metrics import CUTOFF
from crossrank.eval.report import align_table, cell

__all__ = ["format_eval_table"]


def format_eval_table(report: Mapping[str, Any]) -> str:
    """The report's rows as an aligned plain-text table (one line per system x K)."""
    header = ["system", "K", "NDCG@10", "MRR@10", "R@10", "R@K", "p50 ms", "p95 ms", "pairs/s"]
    rows = report["rows"]
    costs = any(row.get("cost_per_1000_queries") is not None for row in rows)
    budget = report["settings"].get("latency_budget_ms")
    header += ["$/1k q"] * costs + ([] if budget is None else [f"p95<={budget:g}"])
    lines = [header]
    for row in rows:
        line = [
            str(row["system"]),
            str(row["k"]),
            cell(row[f"ndcg@{CUTOFF}"], 4),
            cell(row[f"mrr@{CUTOFF}"], 4),
            cell(row[f"recall@{CUTOFF}"], 4),
            cell(row["recall@k"], 4),
            cell(row["latency_p50_ms"], 1),
            cell(row["latency_p95_ms"], 1),
            cell(row["pairs_per_second"], 1),
        ]
        if costs:
            line.append(cell(row.get("cost_per_1000_queries"), 3))
        if budget is not None:
            line.append(_budget_mark(row))
        lines.append(line)
    settings = report["settings"]
    mode = ""
    if settings.get("long_documents") == "chunk":
        per_doc = [r["pairs_per_document"] for r in report["rows"] if r["stage"] == "reranked"]
        mode = (
            f"; chunk mode ({settings['aggregation']}, at most {settings['max_windows']} "
            f"windows), {max(per_doc, default=0.0):.2f} windows per document"
        )
    if settings.get("engine") == "ray":
        mode += "; engine ray: no per-query latency, pairs/s over the whole Ray run"
    return align_table(
        lines,
        f"{settings['num_queries']} queries, first stage {settings['first_stage']}; "
        f"latency = one rerank call on K candidates (p95 over {settings['latency_queries']} "
        f"queries below the largest K, over all queries at it){mode}"
        + (f"\ncpu: {report['machine']['cpu']}" if report.get("machine", {}).get("cpu") else "")
        + _family_footer(report)
        + _fusion_footer(report)
        + _systems_footer(report),
    )


def _budget_mark(row: Mapping[str, Any]) -> str:
    if row.get("best_within_budget"):
        return "best"
    return {True: "yes", False: "no"}.get(row.get("within_budget"), "-")  # type: ignore[arg-type]


def _systems_footer(report: Mapping[str, Any]) -> str:
    """The deadline rows' bound, the ensembles' weights, the prices, the budget's choice."""
    rows = report["rows"]
    settings = report["settings"]
    lines: list[str] = []
    timed = [r for r in rows if r.get("deadline_ms") is not None]
    if timed:
        lines.append(
            "deadline rows: candidates scored in first-stage order until the deadline, the rest "
            "ranked below unscored; a call ends at most one batch late: p99 vs deadline + one "
            "batch's p99:"
        )
        lines += [
            f"  K={r['k']} {r['system']}: p99 {cell(r.get('latency_p99_ms'), 1)} ms, bound "
            f"{cell(_bound(r), 1)} ms, {cell(100 * (r.get('unscored_fraction') or 0.0), 1)}% "
            "unscored"
            for r in timed
        ]
    for row in rows:
        detail = row.get("ensemble")
        if detail:
            per_fold = " ".join(f"{w:.2f}" for w in detail["fold_weights"])
            lines.append(
                f"K={row['k']} {row['system']}: held-out figure; the first member's weight per "
                f"fold, chosen on the other folds: {per_fold}; on all queries: "
                f"{detail['weight']:.2f}"
            )
    for name, (unit, usd) in (settings.get("prices") or {}).items():
        lines.append(f"price: {name} {usd:g} USD per {unit} (as given with --price)")
    lines += list(settings.get("notes") or [])
    if settings.get("latency_budget_ms") is not None:
        lines.append(budget_summary(rows, settings["latency_budget_ms"]))
    return "\n" + "\n".join(lines) if lines else ""


def _bound(row: Mapping[str, Any]) -> float | None:
    batch = row.get("batch_p99_ms")
    return None if batch is None else row["deadline_ms"] + batch


def _family_footer(report: Mapping[str, Any]) -> str:
    """Each reranking system's model family and what it was recognised by, once."""
    seen: dict[str, str] = {}
    for row in report["rows"]:
        if row["stage"] == "reranked" and row.get("family") and row["system"] not in seen:
            seen[row["system"]] = f"{row['family']} ({row['family_detail']})"
    return "".join(f"\n{system}: {family}" for system, family in seen.items())


def _fusion_footer(report: Mapping[str, Any]) -> str:
    """What the fused rows are, and the weights they used."""
    fused = [r for r in report["rows"] if r["stage"] == "fused"]
    if not fused:
        return ""
    settings = report["settings"]["fusion"]
    lines = [
        "",
        f"fused rows: each model's logits mixed with the first stage's scores per query "
        f"({settings['method']} fusion; w = the cross-encoder's share). No latency: a fused "
        "call costs the model's rerank call plus microseconds",
    ]
    for row in fused:
        detail = row["fusion"]
        if detail["fold_weights"] is not None:
            per_fold = " ".join(f"{w:.2f}" for w in detail["fold_weights"])
            lines.append(
                f"K={row['k']} {row['system']}: held-out figure; each fold scored with a weight "
                f"chosen on the other folds only: {per_fold}; the weight to use, chosen on all "
                f"{report['settings']['num_queries']} queries: {detail['weight']:.2f}"
            )
        elif detail["tuned_on"] is not None:
            lines.append(
                f"K={row['k']} {row['system']}: w={detail['weight']:.2f}, chosen on "
                f"{detail['tuned_on']}"
            )
    return "\n".join(lines)
