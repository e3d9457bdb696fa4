"""``crossrank calibrate``: fit temperature and Platt scaling on labelled BEIR pairs.

The pairs are what a reranker sees in a pipeline: for each query, the first stage's top-K
candidates (BM25 by default), labelled relevant when the qrels judge them so (unjudged
candidates count as not relevant). The queries are split, with a fixed seed, into a part
the calibration is fitted on and a held-out part it is measured on; the report gives the
expected calibration error (ECE), log-loss and Brier score of the plain sigmoid and of both
fits on the held-out pairs.

The command's flags are in :mod:`crossrank.eval.calibrate_cli`.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.calibration import (
    CALIBRATION_FILE,
    METHODS,
    Calibration,
    _sigmoid,
    brier_score,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
    log_loss,
)
from crossrank.eval.data import load_beir
from crossrank.eval.first_stage import first_stage_run
from crossrank.eval.harness import check_scorer_options
from crossrank.eval.progress import progress_bar, quiet_truncation_warnings
from crossrank.eval.report import align_table, machine_info

__all__ = [
    "DEFAULT_HELD_OUT",
    "DEFAULT_TOP_K",
    "calibrate",
    "calibration_target",
    "format_calibration_table",
]

logger = logging.getLogger("crossrank")

#: First-stage candidates per query, when not given.
DEFAULT_TOP_K = 20
#: The share of queries held out to measure the fits, when not given.
DEFAULT_HELD_OUT = 0.3


def _split_queries(
    query_ids: Sequence[str], held_out: float, seed: int, max_queries: int | None
) -> tuple[list[str], list[str]]:
    """Shuffle with ``seed``; optionally keep ``max_queries``; return (fit, held_out)."""
    shuffled = sorted(query_ids)
    random.Random(seed).shuffle(shuffled)
    if max_queries is not None:
        shuffled = shuffled[:max_queries]
    n_held = round(len(shuffled) * held_out)
    held, fit = shuffled[:n_held], shuffled[n_held:]
    if not held or not fit:
        raise ValueError(
            f"{len(shuffled)} queries cannot be split into a fitted and a held-out part with "
            f"held_out={held_out}; use more queries"
        )
    return fit, held


def _measure(probs: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, float]:
    return {
        "ece": expected_calibration_error(probs, labels, bins=bins),
        "log_loss": log_loss(probs, labels),
        "brier": brier_score(probs, labels),
        "mean_probability": float(np.mean(probs)),
    }


def _params(fit: Calibration) -> dict[str, float]:
    if fit.method == "temperature":
        return {"temperature": fit.temperature}
    return {"scale": fit.scale, "bias": fit.bias}


def calibrate(
    data: str | os.PathLike[str],
    model: str,
    *,
    split: str = "test",
    qrels: str | os.PathLike[str] | None = None,
    first_stage: str = "bm25",
    run: str | os.PathLike[str] | None = None,
    top_k: int = DEFAULT_TOP_K,
    held_out: float = DEFAULT_HELD_OUT,
    max_queries: int | None = None,
    seed: int = 0,
    bins: int = 15,
    backend: str = "torch",
    device: str | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    long_documents: str = "truncate",
    progress: bool = False,
    scorer_options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Calibration], dict[str, Any]]:
    """Fit temperature and Platt scaling for ``model`` on a BEIR set.

    ``scorer_options`` are further :class:`crossrank.CrossEncoderScorer` keyword arguments
    (``aggregation`` and ``max_windows`` in chunk mode, ``model_kwargs`` ...), not the ones
    set by this function's own arguments nor ``activation`` (calibration reads raw logits).

    Returns:
        ``({"temperature": ..., "platt": ...}, report)``; the report holds the data, the
        query split, pair counts and, for the fitted and the held-out pairs, ECE, log-loss
        and Brier score of ``sigmoid`` (uncalibrated), ``temperature`` and ``platt``.
    """
    from crossrank.scorer import CrossEncoderScorer

    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be between 0 and 1, got {held_out!r}")
    extra = check_scorer_options(
        scorer_options,
        set_here=("model", "activation", "calibration", "backend", "device", "batch_size",
                  "max_length", "long_documents"),
    )
    dataset = load_beir(Path(data), split=split, qrels_path=None if qrels is None else Path(qrels))
    fit_ids, held_ids = _split_queries(list(dataset.queries), held_out, seed, max_queries)
    label, candidates = first_stage_run(
        dataset, fit_ids + held_ids, first_stage=first_stage, run_path=run, depth=top_k
    )
    scorer = CrossEncoderScorer(
        model,
        activation="raw",
        backend=backend,  # type: ignore[arg-type]
        device=device,
        batch_size=batch_size,
        max_length=max_length,
        long_documents=long_documents,  # type: ignore[arg-type]
        **extra,
    )
    logits: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    bar = progress_bar(len(fit_ids) + len(held_ids), "scoring", enabled=progress)
    with quiet_truncation_warnings():
        for qid in fit_ids + held_ids:
            ranked = sorted(candidates[qid].items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
            ids = [doc_id for doc_id, _ in ranked]
            if ids:
                texts = [dataset.doc_text(doc_id) for doc_id in ids]
                logits[qid] = np.asarray(scorer.score(dataset.queries[qid], texts))
            else:
                logits[qid] = np.zeros(0)
            judged = dataset.qrels[qid]
            labels[qid] = np.asarray([1.0 if judged.get(d, 0) > 0 else 0.0 for d in ids])
            bar.update(1)
    bar.close()

    def pool(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.concatenate([logits[q] for q in ids]),
            np.concatenate([labels[q] for q in ids]),
        )

    x_fit, y_fit = pool(fit_ids)
    x_held, y_held = pool(held_ids)
    name = str(model)
    fits = {
        "temperature": fit_temperature(x_fit, y_fit, model=name),
        "platt": fit_platt(x_fit, y_fit, model=name),
    }
    sides: dict[str, Any] = {}
    for side, x, y in (("fit", x_fit, y_fit), ("held_out", x_held, y_held)):
        if not (0 < y.sum() < y.size):
            raise ValueError(
                f"the {side} part has {int(y.sum())} relevant of {y.size} pairs; it needs "
                "both relevant and non-relevant pairs (use more queries (max_queries) or "
                "more candidates per query (top_k))"
            )
        measured = {"sigmoid": _measure(_sigmoid(x), y, bins)}
        for method, fit in fits.items():
            measured[method] = _measure(fit.apply(x), y, bins)
        sides[side] = {
            "queries": len(fit_ids if side == "fit" else held_ids),
            "pairs": int(y.size),
            "relevant": int(y.sum()),
            "metrics": measured,
        }
    report: dict[str, Any] = {
        "model": name,
        "data": str(data),
        "split": split,
        "first_stage": label,
        "top_k": top_k,
        "seed": seed,
        "bins": bins,
        "backend": scorer.active_backend,
        "max_length": scorer.max_length,
        "long_documents": long_documents,
        "scorer_options": json.loads(json.dumps(extra, default=str)),
        "params": {method: _params(fit) for method, fit in fits.items()},
        **sides,
        "machine": machine_info(device),
    }
    return fits, report


def calibration_target(model: str, save: str | None) -> Path:
    """Where the calibration goes: ``save``, else beside a local model.

    Raises:
        ValueError: No ``save`` and the model is not a writable local folder.
    """
    if save is not None:
        return Path(save).expanduser()
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise ValueError(
            f"model={model!r} is not a local folder, so the calibration cannot be stored "
            "beside it; pass save=FILE"
        )
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write to the model folder {folder}; pass save=FILE")
    return folder / CALIBRATION_FILE


def format_calibration_table(report: dict[str, Any]) -> str:
    """The held-out comparison as an aligned text table."""
    held, fit = report["held_out"], report["fit"]
    head = (
        f"calibration of {report['model']} on {report['data']} ({report['split']}, "
        f"{report['first_stage']} top-{report['top_k']}, backend {report['backend']})\n"
        f"fitted on {fit['queries']} queries ({fit['pairs']} pairs, {fit['relevant']} "
        f"relevant); measured on {held['queries']} held-out queries ({held['pairs']} pairs, "
        f"{held['relevant']} relevant); ECE with {report['bins']} bins\n"
    )
    lines = [["scores", "ECE", "log-loss", "Brier", "mean p", "parameters"]]
    for method in ("sigmoid", *METHODS):
        m = held["metrics"][method]
        params = report["params"].get(method, {})
        lines.append(
            [
                "sigmoid (uncalibrated)" if method == "sigmoid" else method,
                f"{m['ece']:.4f}",
                f"{m['log_loss']:.4f}",
                f"{m['brier']:.4f}",
                f"{m['mean_probability']:.4f}",
                ", ".join(f"{k}={v:.4g}" for k, v in params.items()),
            ]
        )
    rate = held["relevant"] / held["pairs"]
    return head + align_table(lines, footer=f"fraction relevant (held out): {rate:.4f}")
