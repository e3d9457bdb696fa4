"""Calibrated scores: temperature and Platt scaling of a cross-encoder's logits.

A cross-encoder's logit, or its sigmoid, is a ranking score, not a probability: a
threshold of 0.5 means something different for each model. Calibration fits a
monotone map ``p = sigmoid(scale * logit + bias)`` on labelled (query, document) pairs
so that, among pairs scored ``p``, about a fraction ``p`` are relevant.

- **Temperature scaling** fits ``scale = 1 / T`` with ``bias = 0`` (one parameter; a
  logit of 0 stays at 0.5).
- **Platt scaling** fits ``scale`` and ``bias`` (logistic regression on the logit, with
  Platt's smoothed targets, which keeps the fit finite on separable data).

Both are fitted by Newton's method on the log-loss; neither changes the order of the
scores, so ranking metrics are unchanged. ``crossrank calibrate`` fits both on a BEIR set
and writes them to a JSON file; ``CrossEncoderScorer(activation="calibrated")`` then
applies one. See docs/scores.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "CALIBRATION_FILE",
    "METHODS",
    "Activation",
    "Calibration",
    "activate",
    "brier_score",
    "expected_calibration_error",
    "fit_platt",
    "fit_temperature",
    "load_calibration",
    "log_loss",
    "resolve_calibration",
    "save_calibration",
]

logger = logging.getLogger("crossrank")

#: File name ``crossrank calibrate`` writes beside a model, and the scorer looks for.
CALIBRATION_FILE = "crossrank_calibration.json"
#: Calibration methods, in the order they are fitted and reported.
METHODS: tuple[str, ...] = ("temperature", "platt")
_FORMAT = "crossrank-calibration"
_VERSION = 1

Method = Literal["temperature", "platt"]
Activation = Literal["sigmoid", "raw", "calibrated"]
#: How a raw logit becomes the score the scorer returns (see :func:`activate`).
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "raw", "calibrated")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Calibration:
    """One fitted map from a logit to a probability: ``sigmoid(scale * logit + bias)``.

    Attributes:
        method: ``"temperature"`` (``bias`` is 0) or ``"platt"``.
        scale: Multiplies the logit (``1 / T`` for temperature scaling); positive.
        bias: Added after scaling.
        model: The model it was fitted for (a name or folder), if known.
        source: The file it was read from, if any.
    """

    method: Method
    scale: float
    bias: float = 0.0
    model: str | None = None
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"calibration method must be one of {METHODS}, got {self.method!r}")
        for name in ("scale", "bias"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"calibration {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"calibration {name} must be finite, got {value!r}")
        if self.scale <= 0:
            raise ValueError(
                f"calibration scale must be positive (a higher logit must mean more "
                f"relevant), got {self.scale!r}"
            )
        if self.method == "temperature" and self.bias != 0:
            raise ValueError("temperature scaling has no bias; use method='platt'")

    @property
    def temperature(self) -> float:
        """``1 / scale``."""
        return 1.0 / self.scale

    def apply(self, logits: Sequence[float] | np.ndarray) -> np.ndarray:
        """Probabilities for raw logits (float64 array)."""
        return _sigmoid(self.scale * np.asarray(logits, dtype=np.float64) + self.bias)


# ---------------------------------------------------------------------- metrics


def _check_pairs(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"got {p.size} scores but {y.size} labels")
    if p.size == 0:
        raise ValueError("no labelled pairs")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    if not np.all(np.isfinite(p)):
        raise ValueError("scores must be finite")
    return p, y


def expected_calibration_error(probs: Any, labels: Any, *, bins: int = 15) -> float:
    """Expected calibration error of probabilities for binary labels.

    The pairs are put in ``bins`` equal-width bins of the predicted probability; ECE is
    the pair-weighted mean of ``|mean predicted - fraction relevant|`` over the bins.
    (This is the positive-class form: it asks whether ``p`` is the chance of relevance,
    which is what a threshold on the score assumes.)
    """
    p, y = _check_pairs(probs, labels)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    # Bin b holds (b/B, (b+1)/B]; 0 goes to the first bin.
    index = np.clip(np.ceil(p * bins).astype(np.int64) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        if n:
            ece += n / p.size * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return ece


def log_loss(probs: Any, labels: Any) -> float:
    """Mean negative log-likelihood (natural log), probabilities clipped to [1e-15, 1-1e-15]."""
    p, y = _check_pairs(probs, labels)
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier_score(probs: Any, labels: Any) -> float:
    """Mean squared difference between probability and label."""
    p, y = _check_pairs(probs, labels)
    return float(np.mean((p - y) ** 2))


# ---------------------------------------------------------------------- fitting


def _nll(z: np.ndarray, t: np.ndarray) -> float:
    # -[t log s(z) + (1-t) log(1-s(z))] = softplus(z) - t z, computed stably.
    return float(np.mean(np.logaddexp(0.0, z) - t * z))


def _newton(
    x: np.ndarray, t: np.ndarray, *, with_bias: bool, max_iter: int = 100
) -> tuple[float, float]:
    """Minimise the mean log-loss of sigmoid(a x + b) against targets t in [0, 1]."""
    theta = np.array([1.0, 0.0])
    design = np.stack([x, np.ones_like(x)], axis=1) if with_bias else x[:, None]
    params = theta if with_bias else theta[:1]

    def loss(par: np.ndarray) -> float:
        return _nll(design @ par, t)

    current = loss(params)
    for _ in range(max_iter):
        z = design @ params
        s = _sigmoid(z)
        grad = design.T @ (s - t) / x.size
        w = s * (1 - s)
        hess = (design * w[:, None]).T @ design / x.size + 1e-9 * np.eye(params.size)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:  # pragma: no cover - the ridge keeps it invertible
            step = grad
        # Backtracking line search keeps every step a descent step.
        rate = 1.0
        while rate > 1e-10:
            candidate = params - rate * step
            value = loss(candidate)
            if value <= current:
                break
            rate /= 2
        else:
            break
        converged = abs(current - value) < 1e-12 and float(np.max(np.abs(rate * step))) < 1e-9
        params, current = candidate, value
        if converged:
            break
    a = float(params[0])
    b = float(params[1]) if with_bias else 0.0
    return a, b


def _check_fit_input(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _check_pairs(logits, labels)
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        raise ValueError(
            f"calibration needs both relevant and non-relevant pairs; got {positives} "
            f"relevant of {y.size}"
        )
    return x, y


def _positive_scale(a: float, method: str) -> None:
    if not a > 0:
        raise ValueError(
            f"{method} scaling fitted a non-positive scale ({a:.4g}): on these pairs a higher "
            "logit does not mean more relevant, so the model cannot be calibrated on them"
        )


def fit_temperature(logits: Any, labels: Any, *, model: str | None = None) -> Calibration:
    """Fit temperature scaling (``p = sigmoid(logit / T)``) by minimising the log-loss."""
    x, y = _check_fit_input(logits, labels)
    a, _ = _newton(x, y, with_bias=False)
    _positive_scale(a, "temperature")
    return Calibration("temperature", a, 0.0, model=model)


def fit_platt(logits: Any, labels: Any, *, model: str | None = None) -> Calibration:
    """Fit Platt scaling (``p = sigmoid(a * logit + b)``) with Platt's smoothed targets.

    The targets are ``(N+ + 1) / (N+ + 2)`` for relevant pairs and ``1 / (N- + 2)`` for the
    others (Platt, 1999), which keeps ``a`` finite when the logits separate the labels.
    """
    x, y = _check_fit_input(logits, labels)
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = _newton(x, t, with_bias=True)
    _positive_scale(a, "Platt")
    return Calibration("platt", a, b, model=model)


# ---------------------------------------------------------------------- files


def save_calibration(
    path: str | os.PathLike[str],
    fits: Mapping[str, Calibration],
    *,
    method: str,
    model: str | None = None,
    report: Mapping[str, Any] | None = None,
) -> Path:
    """Write fitted calibrations to a JSON file (atomically); return its path.

    Args:
        path: The file, or a folder (a model folder): then ``crossrank_calibration.json``
            in it.
        fits: ``{"temperature": ..., "platt": ...}`` (either or both).
        method: Which of ``fits`` ``activation="calibrated"`` applies.
        model: The model they were fitted for.
        report: How they were fitted and measured (data, pairs, ECE before and after).
    """
    if method not in fits:
        raise ValueError(f"method {method!r} is not among the fits {sorted(fits)}")
    target = Path(path).expanduser()
    if target.is_dir():
        target = target / CALIBRATION_FILE
    payload: dict[str, Any] = {
        "format": _FORMAT,
        "version": _VERSION,
        "method": method,
        "model": model,
        "temperature": None,
        "platt": None,
    }
    for name, fit in fits.items():
        if name not in METHODS or fit.method != name:
            raise ValueError(f"fits[{name!r}] holds a {fit.method!r} calibration")
        payload[name] = {"scale": fit.scale, "bias": fit.bias}
        if name == "temperature":
            payload[name]["temperature"] = fit.temperature
    if report is not None:
        payload["report"] = dict(report)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".calibration-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_calibration(path: str | os.PathLike[str], *, method: str | None = None) -> Calibration:
    """Read a file written by ``crossrank calibrate`` (or a folder holding one).

    Args:
        path: The JSON file, or a model folder with ``crossrank_calibration.json``.
        method: ``"temperature"`` or ``"platt"``; ``None``: the file's own ``method``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is not a crossrank calibration, or lacks ``method``.
    """
    source = Path(path).expanduser()
    if source.is_dir():
        source = source / CALIBRATION_FILE
    if not source.is_file():
        raise FileNotFoundError(
            f"calibration file {source} not found; make one with `crossrank calibrate`"
        )
    try:
        payload = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not valid JSON ({e.msg})") from e
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{source} is not a crossrank calibration file")
    if payload.get("version") != _VERSION:
        raise ValueError(
            f"{source} has calibration format version {payload.get('version')!r}; this "
            f"crossrank reads version {_VERSION}"
        )
    chosen = method if method is not None else payload.get("method")
    if chosen not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, got {chosen!r}")
    params = payload.get(chosen)
    if not isinstance(params, dict):
        raise ValueError(f"{source} holds no {chosen!r} calibration")
    return Calibration(
        chosen,  # type: ignore[arg-type]
        params.get("scale"),  # type: ignore[arg-type]
        params.get("bias", 0.0),
        model=payload.get("model"),
        source=str(source),
    )


# ---------------------------------------------------------------------- activation


def resolve_calibration(
    activation: str, calibration: str | os.PathLike[str] | Calibration | None, model: str
) -> Calibration | None:
    """Check ``activation`` and find the calibration it applies.

    Args:
        activation: One of :data:`ACTIVATIONS`.
        calibration: With ``"calibrated"``: a file written by ``crossrank calibrate``, a
            folder holding :data:`CALIBRATION_FILE`, or a :class:`Calibration`; None: the
            file in ``model``'s folder. Must be None with any other activation.
        model: The scorer's model id or folder (for the default file and a mismatch
            warning).

    Returns:
        The calibration, or None when ``activation`` is not ``"calibrated"``.

    Raises:
        ValueError: An unknown activation, a calibration without ``"calibrated"``, no
            calibration to be found, or a file that is not a crossrank calibration.
        TypeError: ``calibration`` is neither a path nor a :class:`Calibration`.
        FileNotFoundError: The calibration file does not exist.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if activation != "calibrated":
        if calibration is not None:
            raise ValueError(
                f"calibration is only used with activation='calibrated', got "
                f"activation={activation!r}"
            )
        return None
    if calibration is None:
        beside = Path(model).expanduser() / CALIBRATION_FILE
        if not beside.is_file():
            raise ValueError(
                "activation='calibrated' needs a calibration: pass calibration=FILE, or run "
                f"`crossrank calibrate --model {model} --data DIR` to write {CALIBRATION_FILE} "
                "beside a local model"
            )
        calibration = beside
    if isinstance(calibration, Calibration):
        found = calibration
    elif isinstance(calibration, (str, os.PathLike)):
        found = load_calibration(calibration)
    else:
        raise TypeError(
            "calibration must be a file path, a folder or a Calibration, got "
            f"{type(calibration).__name__}"
        )
    if found.model and Path(found.model).name != Path(model).name:
        logger.warning(
            "crossrank: the calibration %s was fitted for %s, not %s; its probabilities "
            "may be off",
            found.source or "",
            found.model,
            model,
        )
    return found


def activate(
    raw: np.ndarray, activation: str, calibration: Calibration | None = None
) -> np.ndarray:
    """Turn raw relevance logits into scores.

    ``"raw"`` returns them as they are, ``"sigmoid"`` maps them into (0, 1), and
    ``"calibrated"`` applies ``calibration`` (required then; see
    :func:`resolve_calibration`).

    Raises:
        ValueError: An unknown activation, or ``"calibrated"`` without a calibration.
    """
    if activation == "raw":
        return raw
    if activation == "sigmoid":
        return _sigmoid(raw)
    if activation == "calibrated":
        if calibration is None:
            raise ValueError(
                "activation='calibrated' needs a Calibration, got None; find one with "
                "resolve_calibration()"
            )
        return calibration.apply(raw)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
