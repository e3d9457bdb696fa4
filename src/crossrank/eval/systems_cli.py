"""``crossrank eval``'s flags for the systems beyond single models, and the systems they
describe (:mod:`crossrank.eval.systems`): ``--provider``, ``--provider-url``, ``--price``,
``--ensemble``, ``--tune-ensemble``, ``--cascade``, ``--scorer-config``,
``--latency-budget-ms`` and ``--yes``. A bad value is one line naming its flag.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crossrank._cli.argtypes import positive_ms
from crossrank._cli_checks import InputError
from crossrank.eval.systems import (
    System,
    config_label,
    is_hosted,
    parse_cascade,
    parse_member,
    parse_prices,
    parse_provider,
    parse_provider_urls,
    provider_scorer,
)

__all__ = ["add_system_arguments", "confirm_paid_calls", "prices_of", "systems_of"]


def add_system_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the systems' flags on ``crossrank eval``'s parser (a group of their own)."""
    group = parser.add_argument_group(
        "systems",
        "more systems to compare on the same candidates, each run per K as a pipeline would "
        "(one timed rerank call per query); --deadline-ms adds a row per deadline to each "
        "(hosted providers aside)",
    )
    group.add_argument(
        "--provider",
        action="append",
        metavar="NAME[:MODEL]",
        help="a hosted or self-hosted reranker (cohere, jina, voyage, mixedbread, pinecone, "
        "vllm, infinity, tei, crossrank); hosted ones are paid: the requests are counted and "
        "confirmed first; repeat to compare several",
    )
    group.add_argument(
        "--provider-url",
        action="append",
        metavar="NAME=URL",
        help="the address of provider NAME (a self-hosted one's, or a proxy's)",
    )
    group.add_argument(
        "--price",
        action="append",
        metavar="NAME:UNIT=USD",
        help="the price of one unit provider NAME reports (e.g. cohere:search_units=0.002): "
        "its rows get a cost per 1,000 queries from the usage it reports; no built-in prices",
    )
    group.add_argument(
        "--ensemble",
        action="append",
        metavar="A,B[,...]",
        help="an Ensemble (z-scored logits, equal weights) of members: model ids or folders, "
        "dense:MODEL (a bi-encoder) or NAME:MODEL (a provider); repeat for several",
    )
    group.add_argument(
        "--tune-ensemble",
        action="store_true",
        help="also report each two-member ensemble whose members are --model with its weight "
        "chosen by k-fold cross-validation (--folds), as --tune-fusion does",
    )
    group.add_argument(
        "--cascade",
        action="append",
        metavar="CHEAP:EXPENSIVE@M",
        help="a Cascade: CHEAP orders every candidate, EXPENSIVE rescores its top M (each a "
        "member as for --ensemble, e.g. dense:all-MiniLM-L6-v2:my/cross-encoder@20)",
    )
    group.add_argument(
        "--scorer-config",
        action="append",
        metavar="FILE",
        help="any scorer saved as JSON (crossrank.compose.scorer_to_config): an ensemble, a "
        "fallback, a cascade... ",
    )
    group.add_argument(
        "--latency-budget-ms",
        type=positive_ms,
        metavar="MS",
        help="mark the best system (NDCG@10) whose p95 latency is within MS, per K; --plot "
        "draws the budget",
    )
    group.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="do not ask before sending paid requests to hosted providers (the count is "
        "still printed)",
    )
    return parser


def prices_of(args: argparse.Namespace) -> dict[str, tuple[str, float]]:
    """``--price`` as ``{provider: (unit, usd)}``."""
    try:
        return parse_prices(args.price)
    except ValueError as e:
        raise InputError(f"--price: {e}") from e


def systems_of(
    args: argparse.Namespace, local: Callable[[str], Any], labels: Callable[[str], str]
) -> list[System]:
    """The systems the flags describe, built only when evaluated.

    Args:
        args: The parsed flags.
        local: Builds a local cross-encoder member from its model id or folder (with the
            command's scorer options).
        labels: A member spec's short name in the table.

    Raises:
        InputError: A malformed value, naming its flag.
    """
    try:
        urls = parse_provider_urls(args.provider_url)
    except ValueError as e:
        raise InputError(f"--provider-url: {e}") from e
    systems: list[System] = []
    for value in args.provider or ():
        try:
            name, model = parse_provider(value)
        except ValueError as e:
            raise InputError(f"--provider: {e}") from e
        systems.append(_provider(value, name, model, urls))
    for value in args.ensemble or ():
        members = [m.strip() for m in value.split(",")]
        if len(members) < 2 or not all(members):
            raise InputError(
                f"--ensemble: must name two or more members, A,B[,...], got {value!r}"
            )
        systems.append(_ensemble(members, local, labels, urls))
    for value in args.cascade or ():
        try:
            cheap, expensive, keep = parse_cascade(value)
        except ValueError as e:
            raise InputError(f"--cascade: {e}") from e
        systems.append(_cascade(cheap, expensive, keep, local, labels, urls))
    for path in args.scorer_config or ():
        systems.append(_saved(path))
    return systems


def _provider(label: str, name: str, model: str | None, urls: Mapping[str, str]) -> System:
    return System(
        label, "provider", lambda: provider_scorer(name, model, url=urls.get(name)), provider=name
    )


def _label(spec: str, labels: Callable[[str], str]) -> str:
    """A member's name in the table: a model's short name, ``dense:`` + a bi-encoder's, a
    provider's spec as given."""
    kind, _, rest = spec.partition(":")
    if kind == "dense" and rest:
        return f"dense:{labels(rest)}"
    if rest and _is_provider(kind):
        return spec
    return labels(spec)


def _hosted_member(specs: list[str]) -> str | None:
    """The first hosted provider among member specs (its calls are paid)."""
    for spec in specs:
        kind, _, rest = spec.partition(":")
        if rest and kind != "dense" and _is_provider(kind) and is_hosted(kind):
            return kind
    return None


def _is_provider(name: str) -> bool:
    from crossrank.remote import PROVIDERS

    return name in PROVIDERS


def _ensemble(
    members: list[str],
    local: Callable[[str], Any],
    labels: Callable[[str], str],
    urls: Mapping[str, str],
) -> System:
    from crossrank.compose import Ensemble

    label = "ensemble(" + "+".join(_label(m, labels) for m in members) + ")"
    return System(
        label,
        "ensemble",
        lambda: Ensemble([parse_member(m, local, urls) for m in members]),
        provider=_hosted_member(members),
        members=members,
    )


def _cascade(
    cheap: str,
    expensive: str,
    keep: int,
    local: Callable[[str], Any],
    labels: Callable[[str], str],
    urls: Mapping[str, str],
) -> System:
    from crossrank.compose import Cascade

    return System(
        f"cascade({_label(cheap, labels)}>{_label(expensive, labels)}@{keep})",
        "cascade",
        lambda: Cascade(
            parse_member(cheap, local, urls), parse_member(expensive, local, urls), keep=keep
        ),
        provider=_hosted_member([cheap, expensive]),
        members=[cheap, expensive],
    )


def _saved(path: str) -> System:
    """A ``--scorer-config`` system; the file is read now, so a bad one fails before any
    model loads."""
    from crossrank.compose import load_scorer_config

    try:
        config = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        load_scorer_config(path)  # checks it (building loads nothing)
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"--scorer-config {path}: {e}") from e
    return System(
        config_label(path),
        "config",
        lambda: load_scorer_config(path),
        provider=_hosted_in(config),
    )


def _hosted_in(config: Any) -> str | None:
    """The first hosted provider a saved scorer calls (its members searched)."""
    if isinstance(config, dict):
        provider = config.get("provider")
        if config.get("type") == "remote" and isinstance(provider, str):
            if _is_provider(provider) and is_hosted(provider):
                return provider
        for value in config.values():
            found = _hosted_in(value)
            if found:
                return found
    elif isinstance(config, list):
        for value in config:
            found = _hosted_in(value)
            if found:
                return found
    return None


def confirm_paid_calls(args: argparse.Namespace) -> Callable[[str], None]:
    """What eval calls with the paid-requests notice: print it; then go on with ``--yes``,
    ask on a terminal, and refuse otherwise (one line: pass --yes)."""

    def confirm(notice: str) -> None:
        print(notice, file=sys.stderr, flush=True)
        if args.yes:
            return
        if not sys.stdin.isatty():
            raise InputError(
                "--provider: hosted providers are paid and this is not a terminal to ask on; "
                "pass --yes to send the requests above"
            )
        answer = input("Send them? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise InputError("--provider: not confirmed; nothing was sent to the providers")

    return confirm
