"""The small interface every wire protocol implements, and the helpers they share.

A protocol is one module in :mod:`crossrank.remote.providers` with one :class:`Provider`
subclass: its name, routes, public endpoint and key variable, its per-request limits, which
options it carries, how a request body is written, how an answer's scores and usage are
read, and its auth headers. :class:`crossrank.RemoteScorer` does everything else (retries,
splitting a call across requests, selection, fusion), so adding a provider is one file and
a test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "Provider",
    "Reply",
    "WireError",
    "WireOptions",
    "indexed_scores",
    "numbers",
    "results_of",
]


class WireError(ValueError):
    """An answer that is not in the protocol's documented form (the client names the
    server and the provider around this message)."""


@dataclass(frozen=True, slots=True)
class WireOptions:
    """What a request carries besides the query and the documents.

    Attributes:
        model: The model name to send (None: send none).
        raw: Ask for logits rather than the provider's probabilities (only where
            :attr:`Provider.raw_scores`).
        max_length: Tokens the provider should read, where it takes a limit (see
            :attr:`Provider.carries`); None: its own.
        truncate: False: an over-long input is an error at the provider, where it has the
            switch; True: it is truncated (every provider's default).
    """

    model: str | None = None
    raw: bool = False
    max_length: int | None = None
    truncate: bool = True


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: its JSON body and its headers (lower-case names)."""

    body: Any
    headers: Mapping[str, str]


class Provider:
    """One wire protocol. Subclasses set the class attributes and write :meth:`body` and
    :meth:`scores`; the rest has defaults.

    Class attributes:
        name: The ``provider=`` name.
        title: How documents name it (``"Cohere"``).
        routes: The paths it answers, the default first (``route=`` picks another).
        endpoint: Its public base address; None for a self-hosted server (``url=`` needed).
        key_env: The environment variable its SDKs read the key from (None: no key needed).
        raw_scores: Whether it returns logits when asked (``activation="raw"``, fusion).
        info_path: ``GET`` path describing the served model (None: none).
        health_path: ``GET`` path that answers 200 once the model is ready (None: none).
        source: Where the request and answer shapes come from (docs).
        results_key: Where the answer's results are (None: the answer is their list).
        score_key: Each result's score field.
        usage_keys: The numeric fields of the answer's ``usage`` object that are kept.
        model_default, documents_limit, carried: :attr:`default_model`,
            :attr:`max_documents` and :attr:`carries` on every route.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    routes: ClassVar[tuple[str, ...]]
    endpoint: ClassVar[str | None] = None
    key_env: ClassVar[str | None] = None
    raw_scores: ClassVar[bool] = False
    info_path: ClassVar[str | None] = None
    health_path: ClassVar[str | None] = None
    source: ClassVar[str] = ""
    results_key: ClassVar[str | None] = "results"
    score_key: ClassVar[str] = "relevance_score"
    usage_keys: ClassVar[tuple[str, ...]] = ()
    model_default: ClassVar[str | None] = None
    documents_limit: ClassVar[int | None] = None
    carried: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, route: str | None = None) -> None:
        chosen = self.routes[0] if route is None else route
        if chosen not in self.routes:
            raise ValueError(
                f"route={route!r} is not one of provider={self.name!r}'s routes {self.routes}"
            )
        self.route = chosen

    def __repr__(self) -> str:
        return f"{type(self).__name__}(route={self.route!r})"

    # ---------------------------------------------------------------- facts per route

    @property
    def default_model(self) -> str | None:
        """The model sent when none is given (None: send none)."""
        return self.model_default

    @property
    def max_documents(self) -> int | None:
        """Documents one request may hold (None: no documented limit); a call with more is
        split into several requests."""
        return self.documents_limit

    def max_documents_for(self, model: str | None) -> int | None:
        """:attr:`max_documents` for ``model`` (a provider whose limit depends on the model
        overrides this)."""
        return self.max_documents

    @property
    def carries(self) -> frozenset[str]:
        """The truncation settings it takes per request: ``"max_length"`` (a token limit)
        and ``"truncate"`` (an error instead of truncating)."""
        return self.carried

    # ---------------------------------------------------------------- the wire

    def headers(self, key: str | None) -> dict[str, str]:
        """Auth headers for ``key`` (``Authorization: Bearer`` by default)."""
        return {} if not key else {"Authorization": f"Bearer {key}"}

    def body(self, query: str, documents: Sequence[str], options: WireOptions) -> dict[str, Any]:
        """The JSON body asking for every document's score."""
        raise NotImplementedError

    def scores(self, answer: Any, count: int) -> list[float]:
        """One score per document sent, in input order (each result's :attr:`score_key`,
        found by its ``index`` under :attr:`results_key`).

        Raises:
            WireError: The answer is not in the documented form.
        """
        return indexed_scores(results_of(answer, self.results_key), count, self.score_key)

    def usage(self, reply: Reply) -> dict[str, float]:
        """What the answer says it cost (search units, tokens), by name: the
        :attr:`usage_keys` of its ``usage`` object; ``{}``: nothing."""
        body = reply.body if isinstance(reply.body, dict) else {}
        return numbers(body.get("usage"), self.usage_keys)


def results_of(answer: Any, key: str | None) -> list[dict[str, Any]]:
    """``answer[key]`` (``key`` None: ``answer`` itself) as a list of objects each with an
    int ``index``.

    Raises:
        WireError: Anything else.
    """
    results = answer if key is None else (answer.get(key) if isinstance(answer, dict) else None)
    if not isinstance(results, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("index"), int)
        and not isinstance(r.get("index"), bool)
        for r in results
    ):
        where = "a list" if key is None else f"a list under {key!r}"
        raise WireError(f"expected {where} of results with an 'index' each: {str(answer)[:200]}")
    return results


def indexed_scores(results: Sequence[Mapping[str, Any]], count: int, key: str) -> list[float]:
    """The ``key`` score of each of ``count`` documents, in input order.

    Raises:
        WireError: An index missing, repeated or out of range, or a score that is not a
            finite number.
    """
    by_index = {int(r["index"]): r for r in results}
    if len(by_index) != len(results) or sorted(by_index) != list(range(count)):
        raise WireError(
            f"expected one result per document (indices 0..{count - 1}), got indices "
            f"{sorted(r['index'] for r in results)[:20]}"
        )
    out: list[float] = []
    for i in range(count):
        value = by_index[i].get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WireError(f"the score {key!r} of document {i} is not a number: {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise WireError(f"the score {key!r} of document {i} is not finite: {number}")
        out.append(number)
    return out


def numbers(source: Any, keys: Sequence[str], prefix: str = "") -> dict[str, float]:
    """The numeric ``keys`` of a usage object, as ``{prefix + key: value}`` (others are
    left out)."""
    if not isinstance(source, Mapping):
        return {}
    return {
        prefix + key: float(source[key])
        for key in keys
        if isinstance(source.get(key), (int, float)) and not isinstance(source.get(key), bool)
    }
