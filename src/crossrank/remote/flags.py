"""The command line's provider flags, for every command that builds a scorer.

``--provider NAME[:MODEL]`` scores with a hosted or self-hosted reranker
(:class:`crossrank.RemoteScorer`) instead of a local model; ``--url`` points it (or, alone,
a ``crossrank serve``) at an address. :func:`add_provider_options` declares the flags,
:func:`remote_scorer` builds the scorer from them, or returns None for a local model. A bad
value or a missing key variable is one line naming the flag.

Example:
    >>> parser = add_provider_options(argparse.ArgumentParser())
    >>> args = parser.parse_args(["--provider", "cohere:rerank-v3.5"])
    >>> (args.provider, args.provider_model)
    ('cohere', 'rerank-v3.5')
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from crossrank._cli.argtypes import positive_int
from crossrank._cli_checks import InputError
from crossrank.remote.providers import PROVIDERS

__all__ = ["PROVIDER_FLAGS", "REMOTE_SCORER_OPTIONS", "add_provider_options", "remote_scorer"]

#: The flags :func:`add_provider_options` declares (their ``args`` names).
PROVIDER_FLAGS: tuple[str, ...] = (
    "provider",
    "url",
    "provider_key_env",
    "route",
    "tokenizer",
    "documents_per_request",
)

#: The local scorer's options a provider takes too (the others are a local model's).
REMOTE_SCORER_OPTIONS: tuple[str, ...] = (
    "max_length",
    "fusion",
    "fusion_weight",
    "fusion_normalization",
)


class _ProviderAction(argparse.Action):
    """``--provider NAME[:MODEL]``: sets ``provider`` and ``provider_model``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        name, _, model = str(values).partition(":")
        if name not in PROVIDERS:
            raise argparse.ArgumentError(
                self,
                f"must be NAME[:MODEL] with NAME one of {', '.join(PROVIDERS)}; got {values!r}",
            )
        if ":" in str(values) and not model:
            raise argparse.ArgumentError(
                self, f"MODEL is empty in {values!r}; write NAME or NAME:MODEL"
            )
        namespace.provider = name
        namespace.provider_model = model or None


def add_provider_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the provider flags on ``parser`` (a subcommand that builds a scorer), in one
    argument group; read them back with :func:`remote_scorer`."""
    group = parser.add_argument_group(
        "provider options",
        "score with a hosted or self-hosted reranker instead of a local model "
        "(crossrank.RemoteScorer, docs/providers.md)",
    )
    group.add_argument(
        "--provider",
        action=_ProviderAction,
        metavar="NAME[:MODEL]",
        help=f"the reranker: one of {', '.join(PROVIDERS)}, with its model (default: the "
        "provider's); hosted ones read their usual key variable (COHERE_API_KEY...)",
    )
    parser.set_defaults(provider=None, provider_model=None)
    group.add_argument(
        "--url",
        metavar="URL",
        help="the server's base address: a self-hosted provider (tei, vllm, infinity), a "
        "proxy in front of a hosted one, or alone a crossrank serve",
    )
    group.add_argument(
        "--provider-key-env",
        metavar="NAME",
        help="environment variable holding the provider's key (default: the provider's usual "
        "one; only its name is ever saved or shown)",
    )
    group.add_argument(
        "--route", metavar="PATH", help="one of the provider's routes (vllm: /score ...)"
    )
    group.add_argument(
        "--tokenizer",
        metavar="T",
        help="a Hugging Face tokenizer (id or folder) that counts --token-budget here "
        "(default: characters)",
    )
    group.add_argument(
        "--documents-per-request",
        type=positive_int,
        metavar="N",
        help="split a call into requests of at most N documents (default: the provider's limit)",
    )
    return parser


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def remote_scorer(args: argparse.Namespace, scorer_options: Mapping[str, Any]) -> Any:
    """The :class:`crossrank.RemoteScorer` the flags describe, or None (no ``--provider``
    and no ``--url``: a local model).

    Args:
        args: The parsed flags (with :func:`add_provider_options`'s).
        scorer_options: The local scorer's options as the flags set them (the command's
            ``scorer_kwargs``); those a provider does not take must be at their defaults.

    Raises:
        InputError: A provider flag without ``--provider``/``--url``, a local model's flag
            beside them, or a value the provider refuses (a missing key variable, an option
            it cannot carry), each naming the flag.
    """
    from crossrank.adapters import SCORER_OPTIONS
    from crossrank.remote.client import RemoteScorer

    provider, url = args.provider, args.url
    if provider is None and url is None:
        given = [_flag(n) for n in PROVIDER_FLAGS[2:] if getattr(args, n, None) is not None]
        if given:
            raise InputError(f"{given[0]} is only used with --provider or --url")
        return None
    shown = "--url " + url if provider is None else "--provider " + provider
    local = [
        name
        for name, value in scorer_options.items()
        if name not in REMOTE_SCORER_OPTIONS and value != SCORER_OPTIONS.get(name, value)
    ]
    if local:
        raise InputError(
            f"{_flag(local[0])} is a local model's setting and does not apply with {shown}"
            + (" (name the model as --provider NAME:MODEL)" if local[0] == "model" else "")
        )
    if getattr(args, "passage", False) and provider not in (None, "crossrank"):
        raise InputError(
            f"--passage needs a crossrank serve (--url alone), which finds each text's best "
            f"passage; {shown} returns one score per text"
        )
    try:
        return RemoteScorer(
            url,
            provider=provider,
            model=args.provider_model,
            route=args.route,
            api_key_env=args.provider_key_env,
            tokenizer=args.tokenizer,
            max_documents=args.documents_per_request,
            **{n: scorer_options[n] for n in REMOTE_SCORER_OPTIONS if n in scorer_options},
        )
    except (ValueError, TypeError) as error:  # each names its option: the flag, worded
        raise InputError(_worded(str(error))) from error


def _worded(message: str) -> str:
    """A RemoteScorer message with the flags' names (``api_key_env=`` -> the flag)."""
    return (
        message.replace("api_key_env='VAR'", "--provider-key-env VAR")
        .replace("api_key_env=", "--provider-key-env ")
        .replace("max_documents=", "--documents-per-request ")
        .replace("pass url= ", "pass --url ")
    )
