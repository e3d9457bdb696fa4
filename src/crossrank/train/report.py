"""The training report's figure: dev NDCG@10 per epoch beside the first stage's.

Drawn with matplotlib's Agg canvas directly, so the caller's pyplot backend is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crossrank._optional import missing_extra

__all__ = ["plot_training"]


def plot_training(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save a PNG of the dev NDCG@10 after each epoch, the kept checkpoint marked, the
    starting model's at epoch 0, and the first stage's dev NDCG@10 as a dashed line.

    Example:
        >>> from crossrank.train.report import plot_training
        >>> plot_training(json.loads(Path("out/training_report.json").read_text()), "dev.png")

    Args:
        report: The training report (``training_report.json``).
        path: Where to write the PNG (its folder is created).

    Returns:
        The path written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise missing_extra("The crossrank train report's figure", "train", e) from e

    dev = report["dev"]
    history = dev["history"]
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    values = [h["ndcg@10"] for h in history]
    ax.plot(epochs, values, marker="o", label=f"reranked ({Path(report['model']).name})")
    best = dev.get("best_step")
    kept = [h for h in history if h["step"] == best]
    if kept:
        ax.plot(
            [kept[0]["epoch"]], [kept[0]["ndcg@10"]], marker="*", markersize=14,
            linestyle="none", label="kept checkpoint",
        )  # fmt: skip
    if "base_model" in dev:
        ax.plot(
            [0], [dev["base_model"]["ndcg@10"]], marker="s", linestyle="none",
            label="starting model",
        )  # fmt: skip
    ax.axhline(
        dev["first_stage"]["ndcg@10"],
        linestyle="--",
        color="grey",
        label=f"{report['first_stage']} alone",
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"dev NDCG@10 (top {dev['candidates']} reranked)")
    ax.set_title(
        f"crossrank train: {dev['queries']} dev queries, first stage {report['first_stage']}",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=120)
    return out
