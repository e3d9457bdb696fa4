"""Any scorer as a JSON-safe config dict, and back.

A composite is saved as its settings with each member saved the same way, so a pipeline
holding ``Ensemble([CrossEncoderScorer(...), RemoteScorer(...)])`` saves and loads like one
holding a single scorer. Every config has a ``"type"``:

================ =========================================================================
``"local"``      a :class:`crossrank.CrossEncoderScorer`: its settings
                 (:func:`crossrank.settings.scorer_settings`; the Hugging Face ``token`` is
                 never written: set ``HF_TOKEN`` where the config is loaded)
``"remote"``     a :class:`crossrank.RemoteScorer`: :meth:`~crossrank.RemoteScorer.to_config`
                 (the key only as ``api_key_env``, the variable's name)
``"bi-encoder"`` a :class:`crossrank.compose.BiEncoderScorer`
``"ensemble"``,  the composites of :mod:`crossrank.compose`, with their members' configs
``"fallback"``,
``"cascade"``
================ =========================================================================

Example:
    >>> from crossrank.compose import Ensemble, scorer_from_config, scorer_to_config
    >>> config = scorer_to_config(Ensemble([CrossEncoderScorer("a"), CrossEncoderScorer("b")]))
    >>> config["type"], [m["model"] for m in config["scorers"]]
    ('ensemble', ['a', 'b'])
    >>> scorer_from_config(config)
    Ensemble([...], normalization='zscore')
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_TYPES",
    "load_scorer_config",
    "register_config_type",
    "remote_config",
    "saves_itself",
    "scorer_from_config",
    "scorer_to_config",
]

logger = logging.getLogger("crossrank")

_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {}

#: The ``"type"`` of every config :func:`scorer_from_config` reads.
CONFIG_TYPES: list[str] = ["local", "remote"]


def register_config_type(name: str, build: Callable[[Mapping[str, Any]], Any]) -> None:
    """Let :func:`scorer_from_config` build configs whose ``"type"`` is ``name`` with
    ``build(config)`` (each composite registers itself)."""
    _BUILDERS[name] = build
    if name not in CONFIG_TYPES:
        CONFIG_TYPES.append(name)


def saves_itself(scorer: Any) -> bool:
    """Whether ``scorer`` has a ``to_config`` with a registered ``"type"`` (a composite, a
    :class:`crossrank.compose.BiEncoderScorer`)."""
    kind = getattr(scorer, "config_type", None)
    registered = isinstance(kind, str) and kind in _BUILDERS
    return registered and callable(getattr(scorer, "to_config", None))


def remote_config(scorer: Any) -> dict[str, Any]:
    """A :class:`crossrank.RemoteScorer`'s :meth:`~crossrank.RemoteScorer.to_config`, with a
    ``crossrank`` log warning when its key was given as ``api_key=`` (never saved)."""
    if not scorer.key_saved:
        logger.warning(
            "crossrank: the RemoteScorer for %s has a key given as api_key=, which is never "
            "saved; the saved pipeline has no key. Use api_key_env='VAR' to save the "
            "variable's name instead",
            scorer.url,
        )
    return scorer.to_config()  # type: ignore[no-any-return]


def scorer_to_config(scorer: Any) -> dict[str, Any]:
    """``scorer`` as a JSON-safe dict with a ``"type"`` (see the module docstring).

    Raises:
        TypeError: A scorer crossrank cannot rebuild (a LangChain ``BaseCrossEncoder``, a
            scorer of your own).
    """
    from crossrank.remote import RemoteScorer
    from crossrank.scorer import CrossEncoderScorer
    from crossrank.settings import scorer_settings

    if saves_itself(scorer):
        return scorer.to_config()  # type: ignore[no-any-return]
    if isinstance(scorer, RemoteScorer):
        return {"type": "remote", **remote_config(scorer)}
    if isinstance(scorer, CrossEncoderScorer):
        return {"type": "local", **scorer_settings(scorer)}
    raise TypeError(
        f"a scorer of type {type(scorer).__name__} has no saved form; compose "
        "CrossEncoderScorer, RemoteScorer, BiEncoderScorer and the crossrank.compose scorers"
    )


def scorer_from_config(config: Mapping[str, Any]) -> Any:
    """The scorer a :func:`scorer_to_config` dict describes (a remote key is read now from
    the variable ``api_key_env`` names).

    Raises:
        TypeError: ``config`` is not a dict.
        ValueError: No or an unknown ``"type"``, an unknown key, or a bad value (the
            scorer's own checks).
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"a scorer config must be a dict, got {type(config).__name__}")
    kind = config.get("type")
    rest = {k: v for k, v in config.items() if k != "type"}
    if kind == "remote":
        from crossrank.remote import RemoteScorer

        return RemoteScorer.from_config(rest)
    if kind == "local":
        from crossrank.scorer import CrossEncoderScorer
        from crossrank.settings import SCORER_OPTIONS

        unknown = sorted(set(rest) - set(SCORER_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown CrossEncoderScorer settings {unknown} in a 'local' scorer config; "
                f"known: {list(SCORER_OPTIONS)}"
            )
        return CrossEncoderScorer(**rest)
    build = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if build is None:
        raise ValueError(
            f"a scorer config needs a 'type', one of {CONFIG_TYPES}; got {kind!r} (in a "
            f"config with keys {sorted(config)})"
        )
    return build(rest)


def load_scorer_config(path: str | Path) -> Any:
    """The scorer described by a JSON file holding a :func:`scorer_to_config` dict.

    Raises:
        ValueError: The file cannot be read, is not JSON, or does not describe a scorer
            (the message names the file).
    """
    try:
        config = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"cannot read the scorer config {str(path)!r}: {e}") from e
    try:
        return scorer_from_config(config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
