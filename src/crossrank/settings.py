"""The settings of :class:`crossrank.CrossEncoderScorer`, read from its signature.

:data:`SCORER_OPTIONS` (every setting and its default) and :func:`scorer_settings` (a
scorer's settings as a JSON-safe dict) are what the adapters derive their fields and saved
forms from (:mod:`crossrank.adapters` re-exports them), and what
:mod:`crossrank.compose` saves a local member of a composite as.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

from crossrank.scorer import CrossEncoderScorer

__all__ = ["SCORER_OPTIONS", "SECRET_OPTIONS", "json_safe", "scorer_settings"]


#: Scorer options that hold a secret: never serialized in plain text. Each framework stores
#: them its own way (a Haystack ``Secret``, an environment variable name).
SECRET_OPTIONS: tuple[str, ...] = ("token",)


def _scorer_options() -> dict[str, Any]:
    params = inspect.signature(CrossEncoderScorer.__init__).parameters
    return {
        name: (None if p.default is inspect.Parameter.empty else p.default)
        for name, p in params.items()
        if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


#: Every setting of :class:`crossrank.CrossEncoderScorer` with its default, in signature
#: order (``model`` first). Adapters declare the same names with these defaults, build the
#: scorer from them, and serialize them; a test pins that each adapter covers them all.
SCORER_OPTIONS: Mapping[str, Any] = _scorer_options()


def json_safe(value: Any) -> Any:
    """``value`` with paths, devices and dtypes as strings, tuples as lists (for JSON)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # torch.device, torch.dtype, ...


def scorer_settings(scorer: Any, *, secrets: bool = False) -> dict[str, Any]:
    """A scorer's settings as a JSON-safe dict, one entry per :data:`SCORER_OPTIONS` name.

    Paths become strings, a device its string (``"cpu"``, ``"cuda:0"``), a calibration the
    file it was read from (None for one built in code), ``max_length`` the value that was
    asked for (not the model's resolved limit, so a saved pipeline still follows the model).

    Args:
        scorer: A :class:`crossrank.CrossEncoderScorer`; for another scorer
            (:class:`crossrank.adapters.RerankScorer`), the settings it does not have take
            their defaults.
        secrets: Include the options in :data:`SECRET_OPTIONS` (off: they are left out).
    """
    settings: dict[str, Any] = {}
    for name in SCORER_OPTIONS:
        if name in SECRET_OPTIONS and not secrets:
            continue
        if name == "model":
            value: Any = scorer.model_name
        elif name == "max_length":
            value = getattr(scorer, "requested_max_length", None)
        elif name == "calibration":
            calibration = getattr(scorer, "calibration", None)
            value = getattr(calibration, "source", calibration)
        else:
            value = getattr(scorer, name, SCORER_OPTIONS[name])
        settings[name] = json_safe(value)
    return settings
