"""The systems ``crossrank eval`` compares, from its flags: local models, hosted or
self-hosted providers, ensembles, cascades, saved scorer configs, each optionally under a
deadline.

=============================== =========================================================
``--model M``                   a :class:`crossrank.CrossEncoderScorer` (id or folder)
``--provider NAME:MODEL``       a provider's reranker (:func:`provider_scorer`); its
                                address from ``--provider-url NAME=URL`` where given
``--ensemble A,B[,...]``        an :class:`crossrank.compose.Ensemble` of members
``--cascade A:B@M``             a :class:`crossrank.compose.Cascade`: A orders, B rescores
                                A's top M
``--scorer-config FILE``        any scorer saved with
                                :func:`crossrank.compose.scorer_to_config`
``--deadline-ms D``             one more row per system (hosted providers aside) with a
                                deadline of D ms (repeat for a curve)
=============================== =========================================================

A member (of an ensemble or a cascade) is a model id or folder, ``dense:MODEL`` (a
sentence-transformers bi-encoder, :class:`crossrank.compose.BiEncoderScorer`) or
``NAME:MODEL`` for a provider.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossrank.remote.providers import PROVIDERS

__all__ = [
    "System",
    "config_label",
    "is_hosted",
    "paid_calls_notice",
    "parse_cascade",
    "parse_member",
    "parse_prices",
    "parse_provider",
    "parse_provider_urls",
    "provider_scorer",
    "requests_needed",
]


def is_hosted(name: str) -> bool:
    """Whether provider ``name`` is a hosted (paid) API: it has a public endpoint."""
    from crossrank.remote.providers import PROVIDER_CLASSES

    return PROVIDER_CLASSES[name].endpoint is not None


def provider_scorer(name: str, model: str | None, *, url: str | None = None) -> Any:
    """The scorer for ``--provider NAME:MODEL``: a :class:`crossrank.RemoteScorer` with
    ``provider=name`` (its key from the provider's usual variable, ``COHERE_API_KEY``...).

    Args:
        name: One of :data:`crossrank.remote.PROVIDERS`.
        model: The provider's model name (None: its default one).
        url: Its address (default: the public endpoint; required for a self-hosted one).

    Raises:
        ValueError: An unknown provider, a self-hosted one without ``url``, or a hosted one
            without its key (the message names the variable).
    """
    from crossrank.remote import RemoteScorer

    return RemoteScorer(url, provider=name, model=model)


def parse_provider(value: str) -> tuple[str, str | None]:
    """``"NAME[:MODEL]"`` as ``(name, model)`` (None: the provider's default model).

    Raises:
        ValueError: No name, or an unknown provider.
    """
    name, _, model = value.partition(":")
    if not name:
        raise ValueError(f"must be NAME[:MODEL] (e.g. cohere:rerank-v3.5), got {value!r}")
    if name not in PROVIDERS:
        raise ValueError(f"unknown provider {name!r} in {value!r}; known: {list(PROVIDERS)}")
    return name, model or None


def parse_provider_urls(values: Sequence[str] | None) -> dict[str, str]:
    """``["NAME=URL", ...]`` as ``{name: url}``.

    Raises:
        ValueError: A value that is not ``NAME=http(s)://...`` for a known provider.
    """
    urls: dict[str, str] = {}
    for value in values or ():
        name, _, url = value.partition("=")
        if name not in PROVIDERS or not url.startswith(("http://", "https://")):
            raise ValueError(
                f"must be NAME=URL with NAME one of {list(PROVIDERS)} and an http(s) URL, "
                f"got {value!r}"
            )
        urls[name] = url
    return urls


def parse_prices(values: Sequence[str] | None) -> dict[str, tuple[str, float]]:
    """``["NAME:UNIT=USD", ...]`` (the price of one unit the provider reports, e.g.
    ``cohere:search_units=0.002``) as ``{name: (unit, usd)}``.

    Raises:
        ValueError: A malformed value, an unknown provider or a price that is not a
            number >= 0.
    """
    prices: dict[str, tuple[str, float]] = {}
    for value in values or ():
        left, _, amount = value.partition("=")
        name, _, unit = left.partition(":")
        try:
            usd = float(amount)
        except ValueError:
            usd = math.nan
        if name not in PROVIDERS or not unit or not usd >= 0 or math.isinf(usd):
            raise ValueError(
                "must be NAME:UNIT=USD, the price of one unit the provider reports (e.g. "
                f"cohere:search_units=0.002 or jina:total_tokens=0.00000002), got {value!r}"
            )
        prices[name] = (unit, usd)
    return prices


def _split_member(tokens: list[str]) -> tuple[str, list[str]]:
    """The first member of ``tokens`` (a spec split on ``:``) and the rest."""
    if len(tokens) >= 2 and (tokens[0] == "dense" or tokens[0] in PROVIDERS):
        return f"{tokens[0]}:{tokens[1]}", tokens[2:]
    return tokens[0], tokens[1:]


def parse_member(spec: str, build_model: Callable[[str], Any], urls: Mapping[str, str]) -> Any:
    """The scorer a member spec names: ``dense:MODEL`` (a bi-encoder), ``NAME:MODEL`` (a
    provider) or a cross-encoder (``build_model(spec)``).

    Raises:
        ValueError: An empty spec, or a provider that cannot be built.
    """
    from crossrank.compose import BiEncoderScorer

    if not spec.strip():
        raise ValueError("a member must name a model, dense:MODEL or NAME:MODEL")
    kind, _, rest = spec.partition(":")
    if kind == "dense" and rest:
        return BiEncoderScorer(rest)
    if kind in PROVIDERS and rest:
        return provider_scorer(kind, rest, url=urls.get(kind))
    return build_model(spec)


def parse_cascade(value: str) -> tuple[str, str, int]:
    """``"CHEAP:EXPENSIVE@M"`` as ``(cheap, expensive, m)``; each side a member spec.

    Raises:
        ValueError: No ``@M``, M not an integer >= 1, or not two members.
    """
    specs, at, keep = value.rpartition("@")
    if not at or not keep.isdigit() or int(keep) < 1:
        raise ValueError(f"must be CHEAP:EXPENSIVE@M (e.g. dense:BI:MODEL@20), got {value!r}")
    cheap, rest = _split_member(specs.split(":"))
    expensive, extra = _split_member(rest) if rest else ("", [])
    if not cheap or not expensive or extra:
        raise ValueError(
            f"must be CHEAP:EXPENSIVE@M with two members (a model, dense:MODEL or "
            f"NAME:MODEL each), got {value!r}"
        )
    return cheap, expensive, int(keep)


@dataclass
class System:
    """One system ``crossrank eval`` evaluates.

    Attributes:
        label: Its name in the table.
        kind: ``"model"``, ``"provider"``, ``"ensemble"``, ``"cascade"`` or ``"config"``.
        build: Builds its scorer (called once, when it is evaluated).
        deadline_ms: The deadline of its calls (None: none).
        provider: The provider called, for a provider system (hosted or self-hosted).
        members: Member specs (ensembles) for reuse of the members' scores.
        model: The model id or folder of a ``"model"`` system.
    """

    label: str
    kind: str
    build: Callable[[], Any]
    deadline_ms: float | None = None
    provider: str | None = None
    members: list[str] = field(default_factory=list)
    model: str | None = None

    @property
    def paid(self) -> bool:
        """Whether its calls cost money (a hosted provider, wherever its address points)."""
        return self.provider is not None and is_hosted(self.provider)

    def with_deadline(self, deadline_ms: float) -> System:
        """The same system under a deadline (its label says so)."""
        return System(
            f"{self.label} @{deadline_ms:g}ms", self.kind, self.build, deadline_ms,
            self.provider, list(self.members), self.model,
        )  # fmt: skip


def config_label(path: str | os.PathLike[str]) -> str:
    """A ``--scorer-config`` system's label: its file's stem."""
    return Path(path).stem


def requests_needed(system: System, queries: int, ks: Sequence[int]) -> int:
    """Calls ``crossrank eval`` makes to ``system``: one per query and K, plus a warm-up."""
    return queries * len(ks) + 1


def paid_calls_notice(
    systems: Sequence[System], queries: int, ks: Sequence[int]
) -> str | None:
    """What ``crossrank eval`` says before calling hosted providers: each paid system, its
    endpoint's provider and how many requests it will get; None when no system is paid.

    One request per query and candidate count (each under a provider's per-request limit
    of documents), plus one warm-up.
    """
    paid = [s for s in systems if s.paid]
    if not paid:
        return None
    lines = [
        f"  {s.label}: {requests_needed(s, queries, ks)} requests ({queries} queries x "
        f"{len(ks)} candidate count(s) + 1 warm-up) to {s.provider}"
        for s in paid
    ]
    total = sum(requests_needed(s, queries, ks) for s in paid)
    return "\n".join(
        [f"crossrank eval will send {total} paid request(s) to hosted rerankers:", *lines]
    )
