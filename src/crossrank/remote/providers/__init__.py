"""The wire protocols :class:`crossrank.RemoteScorer` speaks, one module each.

=============== ==================================================================
``crossrank``   a ``crossrank serve`` (every option, on the server)
``tei``         text-embeddings-inference ``/rerank``
``cohere``      Cohere ``/v2/rerank`` (default) and ``/v1/rerank``
``jina``        Jina AI ``/v1/rerank``
``voyage``      Voyage AI ``/v1/rerank``
``mixedbread``  Mixedbread ``/v1/reranking``
``pinecone``    Pinecone Inference ``/rerank``
``vllm``        vLLM ``/rerank``, ``/v1/rerank``, ``/v2/rerank``, ``/score``
``infinity``    Infinity ``/rerank``
=============== ==================================================================

To add one: a module here with a :class:`crossrank.remote.wire.Provider` subclass, its
entry in :data:`PROVIDERS`, and its fake server in ``tests/provider_kit.py``.
"""

from __future__ import annotations

from crossrank.remote.providers.cohere import CohereProvider
from crossrank.remote.providers.crossrank import CrossrankProvider
from crossrank.remote.providers.infinity import InfinityProvider
from crossrank.remote.providers.jina import JinaProvider
from crossrank.remote.providers.mixedbread import MixedbreadProvider
from crossrank.remote.providers.pinecone import PineconeProvider
from crossrank.remote.providers.tei import TEIProvider
from crossrank.remote.providers.vllm import VLLMProvider
from crossrank.remote.providers.voyage import VoyageProvider
from crossrank.remote.wire import Provider

__all__ = ["PROVIDERS", "PROVIDER_CLASSES", "make_provider"]

#: Each provider's class, by name, in the order the docs list them.
PROVIDER_CLASSES: dict[str, type[Provider]] = {
    cls.name: cls
    for cls in (
        CrossrankProvider,
        TEIProvider,
        CohereProvider,
        JinaProvider,
        VoyageProvider,
        MixedbreadProvider,
        PineconeProvider,
        VLLMProvider,
        InfinityProvider,
    )
}

#: The names ``provider=`` takes.
PROVIDERS: tuple[str, ...] = tuple(PROVIDER_CLASSES)


def make_provider(name: str, route: str | None = None) -> Provider:
    """The provider called ``name``, at ``route`` (None: its default route).

    Raises:
        ValueError: An unknown name, or a route the provider does not have.
    """
    cls = PROVIDER_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"provider must be one of {PROVIDERS}, got {name!r}")
    return cls(route)
