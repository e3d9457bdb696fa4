"""How :class:`crossrank.RemoteScorer`'s arguments become one provider, address, model and
key, and the checks on its truncation settings.

- ``provider=`` names the protocol; ``protocol=`` is its older name for ``"crossrank"``,
  ``"tei"`` and ``"cohere"`` (``protocol="cohere"`` is Cohere's v1 route, as it always was);
  ``url=`` alone means a ``crossrank serve``.
- ``url=`` is the base address (the route is added); without it, the provider's public
  endpoint (a self-hosted provider needs one).
- The key: ``api_key=`` (never saved), else the variable ``api_key_env=`` names (read now),
  else the provider's usual variable (``COHERE_API_KEY``...) when it is set, which is then
  what a saved config names. A hosted provider's public endpoint without a key is an error
  now, not a 401 later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from crossrank.remote.providers import PROVIDERS, make_provider
from crossrank.remote.wire import Provider
from crossrank.validation import check_positive_int

__all__ = ["OLD_PROTOCOLS", "Resolved", "check_truncation", "resolve"]

#: The names ``protocol=`` takes (before providers; each is a provider now).
OLD_PROTOCOLS: tuple[str, ...] = ("crossrank", "tei", "cohere")


@dataclass(frozen=True)
class Resolved:
    """A RemoteScorer's provider, address, model and key.

    Attributes:
        provider: The protocol, at its route.
        base_url: The address routes are added to.
        url_given: Whether ``url=`` was passed (False: the public endpoint).
        model: The model sent (None: none).
        key: The API key (never shown).
        key_env: The variable the key came from (what a config saves), or None.
        key_help: What a 401 tells the user to do.
    """

    provider: Provider
    base_url: str
    url_given: bool
    model: str | None
    key: str | None
    key_env: str | None
    key_help: str


def _provider_name(url: Any, provider: Any, protocol: Any) -> tuple[str, bool]:
    """The provider's name, and whether it came from ``protocol=`` (the old spelling)."""
    if protocol is not None and protocol not in OLD_PROTOCOLS:
        raise ValueError(
            f"protocol must be one of {OLD_PROTOCOLS}, got {protocol!r}; use provider= for "
            f"the others {PROVIDERS}"
        )
    if provider is not None and protocol is not None and provider != protocol:
        raise ValueError(
            f"pass provider= or protocol= (its older name), not both: got provider="
            f"{provider!r} and protocol={protocol!r}"
        )
    if provider is not None:
        return provider, False
    if protocol is not None:
        return protocol, True
    if url is None:
        raise ValueError(
            f"pass url= (a server's address) or provider= (a hosted reranker: one of {PROVIDERS})"
        )
    return "crossrank", False


def _base_url(url: Any, provider: Provider) -> tuple[str, bool]:
    if url is None:
        if provider.endpoint is None:
            raise ValueError(
                f"provider={provider.name!r} ({provider.title}) is self-hosted: pass url= "
                "(its base address, e.g. http://127.0.0.1:8080; the route is added)"
            )
        return provider.endpoint, False
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    return url.rstrip("/"), True


def _key(
    provider: Provider, api_key: Any, api_key_env: Any, url_given: bool
) -> tuple[str | None, str | None]:
    """The key and the variable it came from."""
    if api_key is not None and api_key_env is not None:
        raise ValueError("pass api_key or api_key_env, not both")
    if api_key is not None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty string")
        return api_key, None
    if api_key_env is not None:
        if not isinstance(api_key_env, str) or not api_key_env:
            raise ValueError(
                f"api_key_env must be an environment variable's name, got {api_key_env!r}"
            )
        key = os.environ.get(api_key_env, "").strip()
        if not key:
            raise ValueError(
                f"api_key_env={api_key_env!r}: the environment variable {api_key_env} is "
                "not set or empty; export the server's key there"
            )
        return key, api_key_env
    usual = provider.key_env
    if usual is not None and os.environ.get(usual, "").strip():
        return os.environ[usual].strip(), usual
    if usual is not None and not url_given:
        raise ValueError(
            f"provider={provider.name!r} needs an API key: set the environment variable "
            f"{usual} (or pass api_key_env='VAR' naming the variable that holds it)"
        )
    return None, None


def _key_help(provider: Provider, key_env: str | None) -> str:
    if key_env is not None:
        return (
            f"set the environment variable {key_env} (api_key_env) to a key "
            f"{'the server' if provider.endpoint is None else provider.title} accepts"
        )
    return "pass api_key= or api_key_env='VAR' (a variable holding a key the server accepts)"


def resolve(
    url: Any,
    *,
    provider: Any,
    protocol: Any,
    route: Any,
    model: Any,
    api_key: Any,
    api_key_env: Any,
) -> Resolved:
    """Check and resolve the arguments (see the module docstring).

    Raises:
        ValueError: An unknown provider or route, a bad url, a missing key, both of two
            exclusive arguments.
        TypeError: ``model`` or ``route`` is not a string.
    """
    name, old = _provider_name(url, provider, protocol)
    if route is not None and not isinstance(route, str):
        raise TypeError(f"route must be a path string or None, got {type(route).__name__}")
    if old and name == "cohere" and route is None:
        route = "/v1/rerank"  # what protocol="cohere" always spoke
    chosen = make_provider(name, route)
    base_url, url_given = _base_url(url, chosen)
    if model is not None and not isinstance(model, str):
        raise TypeError(f"model must be a string or None, got {type(model).__name__}")
    key, key_env = _key(chosen, api_key, api_key_env, url_given)
    return Resolved(
        provider=chosen,
        base_url=base_url,
        url_given=url_given,
        model=model if model is not None else chosen.default_model,
        key=key,
        key_env=key_env,
        key_help=_key_help(chosen, key_env),
    )


def check_truncation(
    provider: Provider,
    *,
    max_length: Any,
    truncate: Any,
    max_documents: Any,
    tokenizer: Any,
) -> tuple[int | None, bool, int | None]:
    """``max_length``, ``truncate`` and ``max_documents``, checked against what the provider
    carries (an option it cannot carry is refused, naming the provider).

    Raises:
        TypeError / ValueError: A bad value, or one the provider cannot carry.
    """
    max_length = check_positive_int(max_length, name="max_length", allow_none=True)
    max_documents = check_positive_int(max_documents, name="max_documents", allow_none=True)
    if not isinstance(truncate, bool):
        raise TypeError(f"truncate must be True or False, got {truncate!r}")
    name = provider.name
    if name == "crossrank":
        given = [
            f"{option}={value!r}"
            for option, value in (
                ("max_length", max_length),
                ("truncate", None if truncate else False),
                ("max_documents", max_documents),
                ("tokenizer", tokenizer),
            )
            if value is not None
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)}: provider='crossrank' reads, truncates, splits and "
                "counts on the server; set these there (crossrank serve --max-length, "
                "--max-documents)"
            )
        return None, True, None
    if max_length is not None and "max_length" not in provider.carries:
        raise ValueError(
            f"max_length={max_length}: provider={name!r} ({provider.title}) takes no token "
            "limit per request (it truncates to its model's own); leave max_length out"
        )
    if not truncate and "truncate" not in provider.carries:
        raise ValueError(
            f"truncate=False: provider={name!r} ({provider.title}) has no switch to refuse "
            "over-long inputs (it truncates them); leave truncate=True"
        )
    return max_length, truncate, max_documents
