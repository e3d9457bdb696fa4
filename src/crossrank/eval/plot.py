"""The ``crossrank eval --plot`` figure: NDCG@10 against p95 rerank latency.

One point per system x K (models, providers, ensembles, cascades, deadlines: every row
that was timed), joined per system in order of K; a dashed line marks the first stage's
own NDCG@10 at the largest K, and a dotted vertical line the latency budget
(``--latency-budget-ms``), the best system within it ringed. Up and to the left is
better. Drawn with matplotlib's Agg canvas directly, so the caller's pyplot backend is left
alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crossrank._optional import missing_extra

__all__ = ["plot_tradeoff"]


def plot_tradeoff(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save a PNG of NDCG@10 (y) against p95 latency per query in ms (x, log scale).

    Example:
        >>> from crossrank.eval.harness import evaluate_models
        >>> from crossrank.eval.plot import plot_tradeoff
        >>> plot_tradeoff(evaluate_models("scifact/", ks=[20, 50]), "tradeoff.png")

    Args:
        report: What :func:`crossrank.eval.harness.evaluate_models` returns.
        path: Where to write the PNG (its folder is created).

    Returns:
        The path written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError as e:
        raise missing_extra("crossrank eval --plot", "eval", e) from e

    rows = report["rows"]
    settings = report["settings"]
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    markers = "osD^v<>ph*"
    timed = [
        r for r in rows if r["stage"] not in ("first_stage", "fused") and r["latency_p95_ms"]
    ]
    systems = list(dict.fromkeys(r["system"] for r in timed))
    for i, system in enumerate(systems):
        points = sorted(
            (r["k"], r["latency_p95_ms"], r["ndcg@10"]) for r in timed if r["system"] == system
        )
        if not points:
            continue
        xs = [p[1] for p in points]
        ys = [p[2] for p in points]
        (line,) = ax.plot(xs, ys, marker=markers[i % len(markers)], label=system)
        for k, x, y in points:
            ax.annotate(
                f"K={k}",
                (x, y),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=8,
                color=line.get_color(),
            )
    first = [r for r in rows if r["stage"] == "first_stage"]
    if first:
        top = max(first, key=lambda r: r["k"])
        ax.axhline(
            top["ndcg@10"],
            linestyle="--",
            color="grey",
            label=f"{top['system']} alone (no rerank)",
        )
    budget = settings.get("latency_budget_ms")
    if budget is not None:
        ax.axvline(budget, linestyle=":", color="black", label=f"budget: p95 {budget:g} ms")
        for row in (r for r in timed if r.get("best_within_budget")):
            ax.scatter(
                [row["latency_p95_ms"]], [row["ndcg@10"]], s=220, facecolors="none",
                edgecolors="black", zorder=3,
            )  # fmt: skip
    ax.set_xscale("log")
    plain = FuncFormatter(lambda value, _pos: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    low, high = ax.get_xlim()
    # Label the 2..9 ticks only when less than a decade is shown; else they collide.
    ax.xaxis.set_minor_formatter(plain if high < 10 * low else NullFormatter())
    ax.set_xlabel("p95 latency per query (ms, one rerank call on K candidates)")
    ax.set_ylabel("NDCG@10")
    ax.set_title(
        f"{Path(str(settings['data'])).name or settings['data']}: "
        f"{settings['num_queries']} queries, first stage {settings['first_stage']}",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=120)
    return out
