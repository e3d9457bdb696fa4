"""Argument checks shared by the core and every adapter.

Each check raises with what must hold, what was received and, where it helps, what to do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "check_deadline_ms",
    "check_fraction",
    "check_load_kwargs",
    "check_positive_int",
    "check_query",
    "check_relative_cut",
    "check_score_threshold",
    "check_texts",
    "check_top_k",
]


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def check_query(query: Any) -> str:
    """Return ``query`` if it is a non-blank string; raise otherwise."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {_describe(query)}")
    if not query.strip():
        raise ValueError(f"query must contain non-whitespace text, got {query!r}")
    return query


def check_texts(texts: Any, *, name: str = "texts") -> list[str]:
    """Return ``texts`` as a list if it is a sequence of strings; raise otherwise.

    Empty strings are allowed (they are scored as they are); ``None`` is not.
    """
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(
            f"{name} must be a list of strings, got {_describe(texts)}; "
            "wrap a single text in a list"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"{name}[{i}] must be a string, got {_describe(text)}; "
                "drop or replace missing texts before scoring"
            )
    return list(texts)


def check_top_k(top_k: Any, *, name: str = "top_k") -> int | None:
    """Return ``top_k`` if it is None or an int >= 1; raise otherwise."""
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"{name} must be an int >= 1 or None, got {_describe(top_k)}")
    if top_k < 1:
        raise ValueError(f"{name} must be >= 1, got {top_k}")
    return top_k


def check_score_threshold(threshold: Any, *, name: str = "score_threshold") -> float | None:
    """Return ``threshold`` as a float if it is None or a non-NaN number; raise otherwise."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {_describe(threshold)}")
    if math.isnan(threshold):
        raise ValueError(f"{name} must be a number, got NaN")
    return float(threshold)


def check_positive_int(value: Any, *, name: str, allow_none: bool = False) -> int | None:
    """Return ``value`` if it is an int >= 1 (or None when allowed); raise otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def check_deadline_ms(value: Any, *, name: str = "deadline_ms") -> float | None:
    """Return ``value`` as a float if it is None or a number of milliseconds > 0 (``inf``:
    no deadline); raise otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number of milliseconds > 0 or None, got {_describe(value)}"
        )
    if math.isnan(value) or value <= 0:
        raise ValueError(
            f"{name} must be a number of milliseconds > 0 (None or inf: no deadline), got {value}"
        )
    return float(value)


def check_fraction(value: Any, *, name: str) -> float | None:
    """Return ``value`` as a float if it is None or a number in [0, 1]; raise otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1] or None, got {_describe(value)}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def check_relative_cut(
    min_relative_score: Any, activation: str, *, fusion: Any = None
) -> float | None:
    """``check_fraction`` for ``min_relative_score``, which also needs non-negative scores.

    Without fusion the scores are the activation's: ValueError with ``activation="raw"``
    (logits can be negative, so a fraction of the best is meaningless). With ``fusion`` (a
    :class:`crossrank.fusion.Fusion`) the cut applies to the fused score, which does not
    depend on the activation: ValueError when it can be negative (``"linear"`` with
    ``"zscore"``), whatever the activation.
    """
    value = check_fraction(min_relative_score, name="min_relative_score")
    if value is None:
        return None
    if fusion is not None:
        if not fusion.non_negative:
            raise ValueError(
                f"min_relative_score needs non-negative scores, and fused scores with "
                f"{fusion.describe()} can be negative (they are centred on 0); use "
                "fusion_normalization='minmax' (fused scores in [0, 1]) or fusion='rrf', or "
                "cut with score_threshold or top_k"
            )
        return value
    if activation == "raw":
        raise ValueError(
            "min_relative_score needs non-negative scores; use activation='sigmoid' or "
            "'calibrated' (raw logits can be negative, so a fraction of the best is "
            "meaningless)"
        )
    return value


def check_load_kwargs(
    value: Any, *, name: str, reserved: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """Return a copy of ``value`` if it is None or a mapping with string keys; raise otherwise.

    For ``model_kwargs``, ``tokenizer_kwargs`` and ``config_kwargs``: keyword arguments
    passed on to a ``from_pretrained`` call.

    Args:
        value: The mapping to check.
        name: The option's name, for the message.
        reserved: Keys crossrank sets itself, each with the option to use instead
            (``{"revision": "revision=..."}``); a key given here raises ValueError.

    Raises:
        TypeError: ``value`` is not a mapping, or a key is not a string.
        ValueError: A key is one crossrank sets from its own option.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{name} must be a dict of keyword arguments (string keys) or None, got "
            f"{_describe(value)}"
        )
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"{name} keys must be strings, got {_describe(key)}")
    clashes = [key for key in value if reserved and key in reserved]
    if clashes:
        assert reserved is not None
        instead = "; ".join(f"{key!r}: use {reserved[key]}" for key in clashes)
        raise ValueError(
            f"{name} must not set {', '.join(map(repr, clashes))}, which crossrank sets "
            f"itself ({instead})"
        )
    return dict(value)
