"""``RemoteScorer``: the scorer's interface over HTTP, for a shared server or a hosted API.

A pipeline moves from an in-process :class:`crossrank.CrossEncoderScorer` to a shared
``crossrank serve`` by changing one argument, ``RemoteScorer(url)``, and to a hosted or
self-hosted reranker with ``RemoteScorer(provider="voyage", model="rerank-2.5")``: the same
``score``, ``score_details``, ``rank``, ``rerank`` and async forms, the same result types.

With ``provider="crossrank"`` (the default for a bare ``url``) the server runs the core's
``rerank`` with every option. Every other provider returns one score per document; a call
is split into requests of the provider's documents-per-request limit, and what needs only
scores runs here: ``top_k``, ``score_threshold``, ``min_relative_score``, ``token_budget``
(counted with ``tokenizer=``, else in characters: :mod:`crossrank.remote.counting`) and
fusion with the first stage's scores (:mod:`crossrank.remote.calls`). Passages of long
documents and per-call activations a provider cannot give are refused, naming it. The
protocols are in :mod:`crossrank.remote.providers`; HTTP, retries and errors in
:mod:`crossrank.remote.transport`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from crossrank.calibration import ACTIVATIONS
from crossrank.fusion import Fusion
from crossrank.remote.calls import Plan
from crossrank.remote.counting import TokenCounter
from crossrank.remote.errors import RemoteScorerError
from crossrank.remote.planning import Planner
from crossrank.remote.settings import check_truncation, resolve
from crossrank.remote.transport import Transport
from crossrank.remote.wire import Reply, WireError, WireOptions
from crossrank.scorer import Reranked, ScoreDetails
from crossrank.selection import Hit

__all__ = ["CONFIG_KEYS", "RemoteScorer"]

#: The keys of :meth:`RemoteScorer.to_config` (``protocol``, the older name of
#: ``provider``, is also read).
CONFIG_KEYS: tuple[str, ...] = (
    "url",
    "provider",
    "route",
    "model",
    "timeout",
    "retries",
    "api_key_env",
    "max_length",
    "truncate",
    "max_documents",
    "tokenizer",
    "fusion",
    "fusion_weight",
    "fusion_normalization",
)


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


class RemoteScorer:
    """Score (query, text) pairs on a server or a hosted reranker, with
    :class:`crossrank.CrossEncoderScorer`'s interface.

    Example:
        >>> from crossrank import RemoteScorer
        >>> scorer = RemoteScorer("http://127.0.0.1:8080")   # crossrank serve --model M
        >>> scorer.score("what causes tides?", ["The moon's gravity.", "Tide pods."])
        [0.98..., 0.00...]
        >>> voyage = RemoteScorer(provider="voyage", model="rerank-2.5")  # VOYAGE_API_KEY
        >>> [hit.index for hit in voyage.rank("capital of France", ["Berlin", "Paris"], top_k=1)]
        [1]

    Args:
        url: The server's base address, e.g. ``http://127.0.0.1:8080`` (the provider's route
            is added). None: the provider's public endpoint (hosted providers only).
        provider: The wire protocol: ``"crossrank"`` (a ``crossrank serve``: every feature;
            the default with a ``url``), ``"tei"``, ``"cohere"``, ``"jina"``, ``"voyage"``,
            ``"mixedbread"``, ``"pinecone"``, ``"vllm"`` or ``"infinity"`` (see
            :mod:`crossrank.remote.providers` and docs/providers.md).
        protocol: The older name of ``provider`` for ``"crossrank"``, ``"tei"`` and
            ``"cohere"`` (``protocol="cohere"`` is the Cohere-v1-style ``/v1/rerank``).
        model: The model the provider runs (hosted ones have a default, e.g. ``"rerank-v3.5"``
            for Cohere); also :attr:`model_name` when given.
        route: One of the provider's routes, when it has several (Cohere ``"/v1/rerank"``;
            vLLM ``"/v1/rerank"``, ``"/v2/rerank"``, ``"/score"``).
        api_key: The key, sent as the provider asks (``Authorization: Bearer``, Pinecone's
            ``Api-Key``). Never saved, shown or logged.
        api_key_env: The environment variable holding the key (read now); this name, never
            the key, is what :meth:`to_config` saves. Default: the provider's usual variable
            (``COHERE_API_KEY``, ``VOYAGE_API_KEY``, ``JINA_API_KEY``, ``MXBAI_API_KEY``,
            ``PINECONE_API_KEY``) when it is set.
        timeout: Seconds to wait for each answer.
        retries: Retries after a 429/502/503/504 or a connection failure (0: none).
        backoff: First wait between retries, in seconds (doubled each time), when the server
            sends no ``Retry-After``.
        max_retry_wait: Longest wait between two tries, whatever ``Retry-After`` says.
        max_length: Tokens the provider reads, for providers that take a limit per request
            (Cohere v2 ``max_tokens_per_doc``, vLLM ``truncate_prompt_tokens``); refused by
            the others. None: the provider's own.
        truncate: False: an over-long input is an error at the provider instead of being
            truncated (TEI ``truncate``, Voyage ``truncation``, Pinecone ``truncate:
            "NONE"``); refused by providers without the switch.
        max_documents: Documents per request (a call with more is split and merged in
            order). Default: the provider's limit (Cohere, Voyage and Mixedbread 1,000,
            Pinecone 100 or 200 by model, TEI its ``GET /info`` ``max_client_batch_size``,
            Infinity 2,048; Jina and vLLM none).
        tokenizer: A Hugging Face tokenizer (id or folder) that counts ``token_budget``'s
            tokens here; None: the budget counts characters. (``provider="crossrank"``
            counts on the server.)
        fusion: First-stage fusion for every :meth:`rerank` (``"linear"``, ``"rrf"``; None:
            off), as :class:`crossrank.CrossEncoderScorer`'s ``fusion``: run on the server
            with ``provider="crossrank"``, here with the others (on the model's logit).
        fusion_weight: The reranker's share in fusion, in [0, 1].
        fusion_normalization: How scores are normalized before linear fusion.

    ``model_name`` and ``activation`` come from the server's ``GET /info`` (fetched once, on
    first use) where the provider has one (crossrank, TEI); otherwise they are ``model``
    (else the URL) and ``"sigmoid"`` (the provider's probabilities).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        provider: str | None = None,
        protocol: str | None = None,
        model: str | None = None,
        route: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_retry_wait: float = 30.0,
        max_length: int | None = None,
        truncate: bool = True,
        max_documents: int | None = None,
        tokenizer: str | None = None,
        fusion: str | None = None,
        fusion_weight: float = 0.5,
        fusion_normalization: str = "zscore",
    ) -> None:
        resolved = resolve(
            url,
            provider=provider,
            protocol=protocol,
            route=route,
            model=model,
            api_key=api_key,
            api_key_env=api_key_env,
        )
        self.timeout = _seconds("timeout", timeout)
        self.backoff = _seconds("backoff", backoff)
        self.max_retry_wait = _seconds("max_retry_wait", max_retry_wait)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        self._wire = resolved.provider
        self.max_length, self.truncate, self.max_documents = check_truncation(
            self._wire,
            max_length=max_length,
            truncate=truncate,
            max_documents=max_documents,
            tokenizer=tokenizer,
        )
        self._counter = TokenCounter(tokenizer)
        checked = Fusion.checked(fusion, fusion_weight, fusion_normalization)
        self.provider: str = self._wire.name
        self.route: str = self._wire.route
        self.url: str = resolved.base_url
        self._url_given = resolved.url_given
        self.model: str | None = resolved.model
        self.retries = retries
        self.api_key_env = resolved.key_env
        self._key_given = api_key is not None
        self.fusion = None if checked is None else checked.method
        self.fusion_weight = float(fusion_weight)
        self.fusion_normalization = fusion_normalization
        self._transport = Transport(
            self.url,
            self._wire,
            key=resolved.key,
            key_help=resolved.key_help,
            timeout=self.timeout,
            retries=retries,
            backoff=self.backoff,
            max_retry_wait=self.max_retry_wait,
        )
        self._info: dict[str, Any] | None = None
        self._info_lock = threading.Lock()
        self._plans = Planner(
            self._wire,
            WireOptions(model=self.model, max_length=self.max_length, truncate=self.truncate),
            self._counter,
            owner=self,
            activation=lambda: self.activation,
            limit=self._limit,
        )

    def __repr__(self) -> str:  # never the key
        model = "" if self.model is None else f", model={self.model!r}"
        return f"RemoteScorer(provider={self.provider!r}, url={self.url!r}{model})"

    @property
    def protocol(self) -> str:
        """The provider's name (``protocol`` is its older name)."""
        return self.provider

    @property
    def tokenizer(self) -> str | None:
        """What counts ``token_budget`` here (None: characters)."""
        return self._counter.tokenizer

    # ------------------------------------------------------------------ configuration

    def to_config(self) -> dict[str, Any]:
        """A JSON-safe dict to rebuild this scorer with :meth:`from_config` (keys
        :data:`CONFIG_KEYS`): ``url`` (None: the provider's public endpoint), ``provider``,
        ``route`` (None: its default), ``model``, the timeouts, truncation, split and fusion
        settings, and ``api_key_env`` (the variable's name; never the key, so a key passed
        as ``api_key=`` is not saved)."""
        return {
            "url": self.url if self._url_given else None,
            "provider": self.provider,
            "route": None if self.route == self._wire.routes[0] else self.route,
            "model": self.model,
            "timeout": self.timeout,
            "retries": self.retries,
            "api_key_env": self.api_key_env,
            "max_length": self.max_length,
            "truncate": self.truncate,
            "max_documents": self.max_documents,
            "tokenizer": self.tokenizer,
            "fusion": self.fusion,
            "fusion_weight": self.fusion_weight,
            "fusion_normalization": self.fusion_normalization,
        }

    @property
    def key_saved(self) -> bool:
        """Whether :meth:`to_config` keeps what the key needs: True without a key or with
        ``api_key_env``; False for a key passed as ``api_key=`` (it is never written)."""
        return not self._key_given

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RemoteScorer:
        """The scorer a :meth:`to_config` dict describes (the key is read from
        ``api_key_env`` now). Older configs, with ``protocol`` and without the newer keys,
        are read too."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        known = (*CONFIG_KEYS, "protocol")
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f"unknown RemoteScorer config keys {unknown}; known: {list(known)}")
        return cls(**dict(config))

    # ------------------------------------------------------------------ server facts

    @property
    def model_name(self) -> str:
        """The served model: ``model`` when given, else the server's ``GET /info``, else
        the URL."""
        if self.model is not None:
            return self.model
        info = self._server_info()
        return str(info.get("model") or info.get("model_id") or self.url)

    @property
    def activation(self) -> str:
        """The activation the scores are in by default (``GET /info`` where the provider
        has one; ``"sigmoid"``, the provider's probabilities, otherwise)."""
        activation = self._server_info().get("activation")
        return activation if activation in ACTIVATIONS else "sigmoid"

    def _server_info(self) -> dict[str, Any]:
        path = self._wire.info_path
        if path is None:
            return {}
        with self._info_lock:
            if self._info is None:
                self._info = self._transport.get(path)
            return self._info

    def _limit(self) -> int | None:
        """Documents per request: the setting, the server's ``max_client_batch_size``
        (``GET /info``), or the provider's documented limit."""
        if self.max_documents is not None:
            return self.max_documents
        advertised = self._server_info().get("max_client_batch_size")
        if isinstance(advertised, int) and not isinstance(advertised, bool) and advertised > 0:
            return advertised
        return self._wire.max_documents_for(self.model)

    def warm_up(self) -> None:
        """Check the server answers (``GET /info``) and wait, up to ``timeout``, until its
        model is loaded (``GET /health``). Nothing to do for a hosted provider."""
        self._server_info()
        path = self._wire.health_path
        if path is None:
            return
        deadline = time.monotonic() + self.timeout
        while True:
            status, body = self._transport.health(path)
            if status in (200, 404):  # 404: a server without /health answered /info
                return
            if time.monotonic() > deadline or body.get("status") == "failed":
                raise RemoteScorerError(
                    f"the server at {self.url} is not ready ({status}: "
                    f"{body.get('status') or body.get('error') or 'no detail'})",
                    url=self.url + path,
                    status=status,
                    hint="see the server's log",
                    provider=self.provider,
                )
            time.sleep(0.2)

    async def awarm_up(self) -> None:
        """:meth:`warm_up` in a worker thread."""
        await asyncio.to_thread(self.warm_up)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """What ``token_budget`` counts for each text here: tokens of ``tokenizer``, else
        characters."""
        return self._counter.count(texts)

    # ------------------------------------------------------------------ scoring

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, in input order (``[]`` for no texts, without a request)."""
        return self.score_details(query, texts).scores

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        """:meth:`score` without blocking the event loop."""
        return (await self.ascore_details(query, texts)).scores

    def score_details(
        self, query: str, texts: Sequence[str], *, activation: str | None = None
    ) -> ScoreDetails:
        """Scores plus truncation, pairs, spans and ``usage`` (what the provider reports it
        cost, and the requests sent). Only ``provider="crossrank"`` reports truncation and
        spans; the others report nothing truncated and one pair per text."""
        return cast(ScoreDetails, self._send(self._plans.details(query, texts, activation)))

    async def ascore_details(
        self, query: str, texts: Sequence[str], *, activation: str | None = None
    ) -> ScoreDetails:
        """:meth:`score_details` without blocking the event loop."""
        return cast(ScoreDetails, await self._asend(self._plans.details(query, texts, activation)))

    def rank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
    ) -> list[Hit]:
        """The kept texts, best first, selected as :meth:`CrossEncoderScorer.rank` does
        (``token_budget``: the server's tokenizer with ``provider="crossrank"``, else
        :meth:`count_tokens`)."""
        plan = self._plans.rank(
            query, texts, top_k, score_threshold, min_relative_score, token_budget
        )
        return cast(list[Hit], self._send(plan))

    async def arank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
    ) -> list[Hit]:
        """:meth:`rank` without blocking the event loop."""
        plan = self._plans.rank(
            query, texts, top_k, score_threshold, min_relative_score, token_budget
        )
        return cast(list[Hit], await self._asend(plan))

    def rerank(
        self,
        query: str,
        texts: Sequence[str | None],
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        passages: bool = False,
        contents: Sequence[str | None] | None = None,
        activation: str | None = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: str | None = None,
        fusion_weight: float | None = None,
        fusion_normalization: str | None = None,
    ) -> Reranked:
        """:meth:`CrossEncoderScorer.rerank` through the provider: candidates without text
        are skipped and reported, the rest scored and selected; ``usage`` says what it cost.

        ``passages`` and ``contents`` need ``provider="crossrank"`` (a provider returns one
        score per document). Fusion runs on the server with ``provider="crossrank"``, here
        with the others.
        """
        options = dict(
            top_k=top_k,
            score_threshold=score_threshold,
            min_relative_score=min_relative_score,
            token_budget=token_budget,
            passages=passages,
            contents=contents,
            activation=activation,
            first_stage_scores=first_stage_scores,
            fusion=fusion,
            fusion_weight=fusion_weight,
            fusion_normalization=fusion_normalization,
        )
        return cast(Reranked, self._send(self._plans.rerank(query, texts, options)))

    async def arerank(
        self,
        query: str,
        texts: Sequence[str | None],
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        passages: bool = False,
        contents: Sequence[str | None] | None = None,
        activation: str | None = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: str | None = None,
        fusion_weight: float | None = None,
        fusion_normalization: str | None = None,
    ) -> Reranked:
        """:meth:`rerank` without blocking the event loop."""
        options = dict(
            top_k=top_k,
            score_threshold=score_threshold,
            min_relative_score=min_relative_score,
            token_budget=token_budget,
            passages=passages,
            contents=contents,
            activation=activation,
            first_stage_scores=first_stage_scores,
            fusion=fusion,
            fusion_weight=fusion_weight,
            fusion_normalization=fusion_normalization,
        )
        return cast(Reranked, await self._asend(self._plans.rerank(query, texts, options)))

    # ------------------------------------------------------------------ transport

    def close(self) -> None:
        """Close the connections kept for synchronous calls (reopened when needed)."""
        self._transport.close()

    def __enter__(self) -> RemoteScorer:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _finish(self, plan: Plan, replies: list[Reply]) -> Any:
        try:
            return plan.finish(replies)
        except WireError as error:
            raise self._transport.bad_answer(self.route, str(error)) from error

    def _send(self, plan: Plan) -> Any:
        replies = self._transport.post_many(self.route, plan.bodies) if plan.bodies else []
        return self._finish(plan, replies)

    async def _asend(self, plan: Plan) -> Any:
        replies = await self._transport.apost_many(self.route, plan.bodies) if plan.bodies else []
        return self._finish(plan, replies)
