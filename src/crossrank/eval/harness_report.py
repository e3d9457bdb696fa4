"""``crossrank eval``'s report as an aligned plain-text table: one line per system x K, then
what the settings were and what the fused rows' weights are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crossrank.eval.metrics import CUTOFF
from crossrank.eval.report import align_table, cell

__all__ = ["format_eval_table"]


def format_eval_table(report: Mapping[str, Any]) -> str:
    """The report's rows as an aligned plain-text table (one line per system x K)."""
    header = ["system", "K", "NDCG@10", "MRR@10", "R@10", "R@K", "p50 ms", "p95 ms", "pairs/s"]
    lines = [header]
    for row in report["rows"]:
        lines.append(
            [
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
        )
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
        + _fusion_footer(report),
    )


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
