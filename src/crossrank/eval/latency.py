"""Latency figures of ``crossrank eval``'s rows: percentiles of per-query call times."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["latency_stats", "percentile_ms"]


def percentile_ms(seconds: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation) of ``seconds``, in ms; None for none."""
    return float(np.percentile(seconds, q)) * 1000.0 if len(seconds) else None


def latency_stats(seconds: Sequence[float], pairs: int) -> dict[str, Any]:
    """p50 and p95 (linear interpolation) in milliseconds, and pairs per second."""
    if not seconds:
        return {"latency_p50_ms": None, "latency_p95_ms": None, "pairs_per_second": None}
    arr = np.asarray(seconds, dtype=np.float64)
    total = float(arr.sum())
    return {
        "latency_p50_ms": float(np.percentile(arr, 50)) * 1000.0,
        "latency_p95_ms": float(np.percentile(arr, 95)) * 1000.0,
        "pairs_per_second": pairs / total if total > 0 else None,
    }
