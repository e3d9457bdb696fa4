"""First-stage score fusion: mix the cross-encoder's score with the retriever's, per query.

A cross-encoder and a first-stage retriever (BM25, a bi-encoder) see different evidence,
and on many data sets a weighted mix of the two orders better than either alone. This
module holds the arithmetic; :meth:`crossrank.CrossEncoderScorer.rerank` applies it when
the scorer (or the call) sets ``fusion`` and the call passes ``first_stage_scores``.

Definitions (one query, the candidates that were scored; ``w`` is ``fusion_weight``, the
cross-encoder's share):

- ``"linear"``: ``w * norm(model) + (1 - w) * norm(first_stage)``, each signal normalised
  over the query's candidates by ``normalization``:

  - ``"zscore"``: ``(x - mean) / std`` (population standard deviation). Fused scores are
    centred on 0 and can be negative.
  - ``"minmax"``: ``(x - min) / (max - min)``, in [0, 1]; fused scores are in [0, 1].

  A signal that is the same for every candidate (one candidate, or ties all round) carries
  no order: it becomes its normalisation's centre (0 for ``zscore``, 0.5 for ``minmax``)
  and the other signal decides alone.
- ``"rrf"``: weighted reciprocal rank fusion, ``w / (k + rank_model) + (1 - w) / (k +
  rank_first_stage)`` with ranks from 1 and ``k`` = :data:`RRF_K` (60, Cormack et al.,
  2009). Equal scores share the better rank ("1224" ranking), so ties in either signal
  never depend on input order. ``normalization`` is not used. Scores are in (0, 1/(k+1)].

``w = 1`` orders by the cross-encoder alone, ``w = 0`` by the first stage alone; ``w``
outside [0, 1] is an error. The cross-encoder's side is its relevance *logit* (the score
before any activation), so the fused order and the fused scores are the same whatever
``activation`` is: a sigmoid or a calibration is a monotone map that would otherwise bend
the mix. First-stage scores must be finite numbers (NaN, infinities, None, strings and
booleans are errors); a model score that is not finite (a broken model) gives a NaN fused
score, which :func:`crossrank.select` ranks last.

Example:
    >>> from crossrank.fusion import fuse
    >>> fuse([2.0, 0.0, -2.0], [1.0, 3.0, 2.0], method="linear", weight=0.5)
    [0.0, 0.6123..., -0.6123...]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal

import numpy as np

__all__ = [
    "FUSIONS",
    "NORMALIZATIONS",
    "RRF_K",
    "Fusion",
    "FusionMethod",
    "Normalization",
    "check_first_stage_scores",
    "first_stage_of",
    "fuse",
    "normalize",
    "reciprocal_ranks",
    "resolve_fusion",
]

FusionMethod = Literal["linear", "rrf"]
Normalization = Literal["zscore", "minmax"]

#: The fusion methods; ``None`` (or ``"none"``) turns fusion off.
FUSIONS: tuple[str, ...] = ("linear", "rrf")
#: How ``"linear"`` puts both signals on one scale, per query.
NORMALIZATIONS: tuple[str, ...] = ("zscore", "minmax")
#: Reciprocal rank fusion's constant ``k`` (Cormack, Clarke and Buettcher, SIGIR 2009).
RRF_K = 60

#: One query's scores: a list of floats or a 1-d array.
_Scores = Sequence[float] | np.ndarray


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:57] + '...' if len(text) > 60 else text}"


def normalize(scores: _Scores, method: str) -> np.ndarray:
    """One query's scores on a common scale (see the module docstring).

    Non-finite scores stay NaN and are left out of the statistics; a constant list becomes
    the method's centre (0 for ``"zscore"``, 0.5 for ``"minmax"``).

    Raises:
        ValueError: ``method`` is not one of :data:`NORMALIZATIONS`.
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"fusion_normalization must be one of {NORMALIZATIONS}, got {method!r}")
    x = np.asarray(scores, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    finite = np.isfinite(x)
    if not finite.any():
        return out
    values = x[finite]
    low, high = values.min(), values.max()
    if low == high:
        out[finite] = 0.0 if method == "zscore" else 0.5
    elif method == "zscore":
        out[finite] = (values - values.mean()) / values.std()
    else:
        out[finite] = (values - low) / (high - low)
    return out


def reciprocal_ranks(scores: _Scores, k: int = RRF_K) -> np.ndarray:
    """``1 / (k + rank)`` for each score, ranks from 1, best (highest) first.

    Equal scores share the better rank (1 + how many scores are strictly higher); a score
    that is not finite gets NaN and does not count in the others' ranks.

    Raises:
        ValueError: ``k`` is not an int >= 1.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the RRF constant k must be an int >= 1, got {_describe(k)}")
    x = np.asarray(scores, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    finite = np.isfinite(x)
    values = np.sort(x[finite])
    # rank = 1 + number of finite scores strictly greater than this one
    above = len(values) - np.searchsorted(values, x[finite], side="right")
    out[finite] = 1.0 / (k + 1 + above)
    return out


def _check_weight(weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, Real):
        raise TypeError(
            f"fusion_weight must be a number in [0, 1] (the cross-encoder's share), got "
            f"{_describe(weight)}"
        )
    value = float(weight)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"fusion_weight must be in [0, 1] (the cross-encoder's share; 1 - fusion_weight "
            f"goes to the first stage), got {weight}"
        )
    return value


@dataclass(frozen=True, slots=True)
class Fusion:
    """A checked fusion setting: ``method``, the cross-encoder's ``weight`` and the
    ``normalization`` (used by ``"linear"``). Build it with :meth:`checked`."""

    method: FusionMethod
    weight: float = 0.5
    normalization: Normalization = "zscore"

    @classmethod
    def checked(
        cls, method: Any, weight: Any = 0.5, normalization: Any = "zscore"
    ) -> Fusion | None:
        """The setting, or None when ``method`` is None or ``"none"`` (fusion off).

        ``weight`` and ``normalization`` are checked either way, so a bad value fails
        where it is written, not when fusion is later turned on.

        Raises:
            TypeError: ``weight`` is not a number.
            ValueError: An unknown method or normalization, or ``weight`` outside [0, 1].
        """
        checked_weight = _check_weight(weight)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"fusion_normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        if method is None or method == "none":
            return None
        if method not in FUSIONS:
            raise ValueError(f"fusion must be None, 'linear' or 'rrf', got {method!r}")
        return cls(method, checked_weight, normalization)

    @property
    def non_negative(self) -> bool:
        """Whether fused scores are always >= 0 (so a cut relative to the best means
        something): true for ``"rrf"`` and for ``"linear"`` with ``"minmax"``."""
        return self.method == "rrf" or self.normalization == "minmax"

    def describe(self) -> str:
        """``fusion='linear'`` and its settings, as messages name them."""
        extra = f", fusion_normalization={self.normalization!r}" if self.method == "linear" else ""
        return f"fusion={self.method!r}, fusion_weight={self.weight:g}{extra}"

    def apply(self, model_scores: Sequence[float], first_stage: Sequence[float]) -> list[float]:
        """The fused scores of one query's candidates (:func:`fuse` with this setting)."""
        return fuse(
            model_scores,
            first_stage,
            method=self.method,
            weight=self.weight,
            normalization=self.normalization,
        )


def resolve_fusion(
    scorer: Any,
    *,
    fusion: Any = None,
    fusion_weight: Any = None,
    fusion_normalization: Any = None,
) -> Fusion | None:
    """The fusion one call runs with: the scorer's settings (its ``fusion``,
    ``fusion_weight`` and ``fusion_normalization`` attributes; a scorer without them has
    fusion off), each replaced by this call's value where one is given (``None``: keep the
    scorer's; ``fusion="none"``: off for this call).

    Raises:
        ValueError: A bad value, or a weight or normalization given for a call whose
            fusion is off (it would be ignored).
    """
    base = getattr(scorer, "fusion", None)
    checked = Fusion.checked(
        base if fusion is None else fusion,
        getattr(scorer, "fusion_weight", 0.5) if fusion_weight is None else fusion_weight,
        (
            getattr(scorer, "fusion_normalization", "zscore")
            if fusion_normalization is None
            else fusion_normalization
        ),
    )
    if checked is None and (fusion_weight is not None or fusion_normalization is not None):
        given = "fusion_weight" if fusion_weight is not None else "fusion_normalization"
        raise ValueError(
            f"{given} was given for this call, but fusion is off (the scorer's fusion is "
            f"{base!r}, this call's {fusion!r}); pass fusion='linear' or 'rrf' too"
        )
    return checked


def fuse(
    model_scores: Sequence[float],
    first_stage_scores: Sequence[float],
    *,
    method: str,
    weight: float,
    normalization: str = "zscore",
    k: int = RRF_K,
) -> list[float]:
    """Fuse one query's cross-encoder scores (logits) with its first-stage scores.

    Args:
        model_scores: The cross-encoder's score of each candidate (its logit).
        first_stage_scores: The retriever's score of each candidate, same order; finite.
        method: ``"linear"`` or ``"rrf"``.
        weight: The cross-encoder's share, in [0, 1].
        normalization: ``"zscore"`` or ``"minmax"`` (``"linear"`` only).
        k: RRF's constant (``"rrf"`` only).

    Returns:
        One Python float per candidate, in input order (NaN where the model's score is not
        finite).

    Raises:
        ValueError: The lists differ in length, a first-stage score is not finite, or a
            setting is out of range.
    """
    setting = Fusion.checked(method, weight, normalization)
    if setting is None:
        raise ValueError(f"method must be 'linear' or 'rrf', got {method!r}")
    if len(model_scores) != len(first_stage_scores):
        raise ValueError(
            f"first_stage_scores must hold one score per candidate ({len(model_scores)}), "
            f"got {len(first_stage_scores)}"
        )
    first = np.asarray(first_stage_scores, dtype=np.float64)
    if not np.isfinite(first).all():
        bad = int(np.flatnonzero(~np.isfinite(first))[0])
        raise ValueError(
            f"first_stage_scores must be finite numbers, got {first[bad]} at position {bad}"
        )
    if setting.method == "rrf":
        model_part, first_part = reciprocal_ranks(model_scores, k), reciprocal_ranks(first, k)
    else:
        model_part = normalize(model_scores, setting.normalization)
        first_part = normalize(first, setting.normalization)
    fused = setting.weight * model_part + (1.0 - setting.weight) * first_part
    return [float(x) for x in fused]


def check_first_stage_scores(
    values: Any,
    *,
    count: int,
    needed: Iterable[int],
    where: str = "first_stage_scores[{i}]",
    hint: str = "",
) -> list[float]:
    """The first-stage scores of the ``needed`` candidates, as floats, in that order.

    Candidates that are not needed (skipped for having no text) may hold anything, None
    included.

    Args:
        values: One first-stage score per candidate.
        count: How many candidates there are.
        needed: The positions whose scores fusion uses.
        where: How a position is named in messages, with ``{i}`` for the position
            (``"documents[{i}].score"``, for instance).
        hint: Said after the message of a missing score (what to do).

    Raises:
        TypeError: ``values`` is not a list, or a needed score is not a number.
        ValueError: ``values`` has the wrong length, or a needed score is missing (None),
            NaN or infinite.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"first_stage_scores must be a list of numbers, got {_describe(values)}")
    if len(values) != count:
        raise ValueError(
            f"first_stage_scores must hold one score per candidate ({count}), got {len(values)}"
        )
    out: list[float] = []
    for i in needed:
        value = values[i]
        name = where.replace("{i}", str(i))
        if value is None:
            raise ValueError(
                f"{name} is missing (None): fusion needs a first-stage score for every "
                f"candidate with text{hint}"
            )
        if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
            raise TypeError(
                f"{name} must be a number (a first-stage score), got {_describe(value)}"
            )
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number, got {number}")
        out.append(number)
    return out


def first_stage_of(
    fusion: Fusion | None, values: Any, count: int, needed: Sequence[int]
) -> list[float] | None:
    """The first-stage scores of the candidates that are scored, checked; None without
    fusion (where passing them is an error: they would be ignored).

    Args:
        fusion: The call's fusion (:func:`resolve_fusion`), None when off.
        values: What the call passed as ``first_stage_scores``.
        count: How many candidates there are.
        needed: The positions that are scored.

    Raises:
        ValueError: Scores given with fusion off, missing with fusion on, or not one finite
            score per scored candidate (see :func:`check_first_stage_scores`).
    """
    if fusion is None:
        if values is not None:
            raise ValueError(
                "first_stage_scores are only used with fusion, and fusion is off; pass "
                "fusion='linear' or 'rrf' (to this call or to the scorer), or leave "
                "first_stage_scores out"
            )
        return None
    if values is None:
        raise ValueError(
            f"{fusion.describe()} needs first_stage_scores: the first-stage retriever's "
            "score of each candidate, one per text; pass them, or fusion='none' for this call"
        )
    return check_first_stage_scores(values, count=count, needed=needed)
