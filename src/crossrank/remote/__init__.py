"""``RemoteScorer``: the scorer's interface over HTTP, for a shared ``crossrank serve``, a
self-hosted server (TEI, vLLM, Infinity) or a hosted reranker (Cohere, Jina, Voyage,
Mixedbread, Pinecone).

=============== ===================================================================
module          concern
=============== ===================================================================
``client``      :class:`RemoteScorer`: settings, config round trip, the scorer's methods
``settings``    provider, address, model and key from the arguments
``calls``       a provider-scored call: split into requests, merge, fuse, select here
``served``      a ``crossrank serve`` call: every option runs on the server
``counting``    what a token budget counts here (a local tokenizer, else characters)
``transport``   HTTP, retries with backoff and ``Retry-After``, error messages
``errors``      :class:`RemoteScorerError`, :class:`RemoteRequestError`
``wire``        the interface each protocol implements
``providers``   one module per protocol
=============== ===================================================================

Example:
    >>> from crossrank import RemoteScorer
    >>> RemoteScorer("http://127.0.0.1:8080")                 # a crossrank serve
    >>> RemoteScorer(provider="cohere", model="rerank-v3.5")  # COHERE_API_KEY
    >>> RemoteScorer("http://gpu:8000", provider="vllm", route="/score")
"""

from __future__ import annotations

from crossrank.remote.client import CONFIG_KEYS, RemoteScorer
from crossrank.remote.errors import RemoteRequestError, RemoteScorerError
from crossrank.remote.providers import PROVIDERS, make_provider
from crossrank.remote.settings import OLD_PROTOCOLS
from crossrank.remote.wire import Provider

__all__ = [
    "CONFIG_KEYS",
    "PROTOCOLS",
    "PROVIDERS",
    "Provider",
    "RemoteRequestError",
    "RemoteScorer",
    "RemoteScorerError",
    "make_provider",
]

#: The names ``protocol=`` takes (its older spelling of ``provider=``).
PROTOCOLS: tuple[str, ...] = OLD_PROTOCOLS
