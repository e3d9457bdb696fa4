"""The command line's ``--scorer-config FILE``, for ``crossrank rerank`` and ``crossrank
serve``: any scorer saved as JSON (:func:`crossrank.compose.scorer_to_config`: an ensemble,
a fallback, a cascade, a remote or a local scorer) instead of one built from the flags.

:func:`add_scorer_config_option` declares the flag, :func:`saved_scorer` builds the scorer
from it, or returns None (the other flags then describe the scorer). A bad file, or a flag
that describes another scorer beside it, is one line naming the flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from crossrank._cli_checks import InputError

__all__ = ["add_scorer_config_option", "saved_scorer", "with_deadline"]


def add_scorer_config_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare ``--scorer-config FILE`` on ``parser``."""
    parser.add_argument(
        "--scorer-config",
        metavar="FILE",
        help="score with the scorer saved in FILE (JSON from crossrank.compose."
        "scorer_to_config: an Ensemble, a Fallback, a Cascade...) instead of --model or "
        "--provider",
    )
    return parser


def saved_scorer(args: argparse.Namespace, scorer_options: Mapping[str, Any]) -> Any:
    """The scorer ``--scorer-config`` names, or None when it is not given.

    Args:
        args: The parsed flags.
        scorer_options: The local scorer's options as the flags set them; beside a saved
            scorer they must be at their defaults (its own settings apply), but for
            ``deadline_ms``, which is given to a call.

    Raises:
        InputError: The file cannot be read or describes no scorer, or ``--provider``,
            ``--url`` or a scorer setting is given beside it.
    """
    from crossrank.compose.config import load_scorer_config
    from crossrank.settings import SCORER_OPTIONS

    path = getattr(args, "scorer_config", None)
    if path is None:
        return None
    for flag in ("provider", "url"):
        if getattr(args, flag, None) is not None:
            raise InputError(f"--scorer-config and --{flag} exclude each other: give one scorer")
    changed = [
        name
        for name, value in scorer_options.items()
        if name != "deadline_ms" and value != SCORER_OPTIONS.get(name, value)
    ]
    if changed:
        raise InputError(
            f"--{changed[0].replace('_', '-')} does not apply with --scorer-config: the saved "
            "scorer's own settings do (edit the file instead)"
        )
    try:
        return load_scorer_config(path)
    except ValueError as e:
        raise InputError(f"--scorer-config: {e}") from e


def with_deadline(scorer: Any, deadline_ms: float) -> Any:
    """``scorer`` with ``--deadline-ms`` as its default for every call (a saved scorer that
    keeps deadlines: a composite, a local model).

    Raises:
        InputError: The saved scorer keeps no deadline of its own (a remote one).
    """
    from crossrank.deadline import takes_deadline

    if not takes_deadline(scorer) or not hasattr(scorer, "deadline_ms"):
        raise InputError(
            f"--deadline-ms: the saved {type(scorer).__name__} keeps no deadline of its own; "
            "wrap it in a composite (its deadline_ms) or leave --deadline-ms out"
        )
    scorer.deadline_ms = deadline_ms
    return scorer
