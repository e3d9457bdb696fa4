"""``RemoteScorer``: the scorer's interface over HTTP, for a shared server.

A pipeline moves from an in-process :class:`crossrank.CrossEncoderScorer` to a shared
``crossrank serve`` by changing one argument: ``RemoteScorer(url)`` has ``score``,
``score_details``, ``rank``, ``rerank`` and their async forms, returns the same types and,
against a crossrank server, the same scores. It also talks to other servers:

============= ===================== =========================================================
protocol      endpoint              what it carries
============= ===================== =========================================================
``crossrank`` ``POST /v1/rerank``   everything: selection, token budget, passages, contents,
              (+ ``crossrank``      per-call activation, fusion, truncation, spans, skipped
              field)
``tei``       ``POST /rerank``      scores (``raw_scores`` for ``activation="raw"``);
                                    selection is done here; no token budget, passages,
                                    truncation flags or spans
``cohere``    ``POST /v1/rerank``   scores in the server's activation (``model`` is sent);
                                    selection is done here; as ``tei`` otherwise
============= ===================== =========================================================

Requests are retried (``retries`` times, exponential backoff from ``backoff`` seconds) on
429, 502, 503, 504 and connection failures, waiting what ``Retry-After`` asks (at most
``max_retry_wait``); errors name the server, the status and what to do.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from crossrank._version import __version__
from crossrank.calibration import ACTIVATIONS
from crossrank.errors import CrossrankError
from crossrank.fusion import Fusion, resolve_fusion
from crossrank.scorer import Reranked, ScoreDetails
from crossrank.selection import Hit, select, split_blank
from crossrank.validation import (
    check_positive_int,
    check_query,
    check_relative_cut,
    check_score_threshold,
    check_texts,
    check_top_k,
)

__all__ = ["PROTOCOLS", "RemoteRequestError", "RemoteScorer", "RemoteScorerError"]

Protocol = Literal["crossrank", "tei", "cohere"]

#: The wire protocols :class:`RemoteScorer` speaks.
PROTOCOLS: tuple[str, ...] = ("crossrank", "tei", "cohere")

_PATHS = {"crossrank": "/v1/rerank", "tei": "/rerank", "cohere": "/v1/rerank"}
_RETRY_STATUSES = (429, 502, 503, 504)
_FUSION = ("first_stage_scores", "fusion", "fusion_weight", "fusion_normalization")
_CONFIG_KEYS = (
    "url",
    "protocol",
    "timeout",
    "retries",
    "api_key_env",
    "model",
    "fusion",
    "fusion_weight",
    "fusion_normalization",
)


class RemoteScorerError(CrossrankError):
    """A scoring server could not be reached, or answered with an error.

    Attributes:
        url: The address that was called.
        status: The HTTP status (None: no answer).
        error_type: The server's ``error_type`` (crossrank and TEI servers), else None.
        hint: What to do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        error_type: str | None = None,
        hint: str = "",
    ) -> None:
        self.url = url
        self.status = status
        self.error_type = error_type
        self.hint = hint
        super().__init__(f"{message}; {hint}" if hint else message)


class RemoteRequestError(RemoteScorerError, ValueError):
    """The server refused what the request holds (413 over a limit, 422 invalid): a
    :class:`ValueError` too, like the core's own checks."""


@dataclass(frozen=True)
class _Call:
    """One request to send (``payload`` None: nothing to send) and how to read the answer."""

    payload: dict[str, Any] | None
    finish: Callable[[Any], Any]


class RemoteScorer:
    """Score (query, text) pairs on a server, with :class:`crossrank.CrossEncoderScorer`'s
    interface.

    Example:
        >>> from crossrank import RemoteScorer
        >>> scorer = RemoteScorer("http://127.0.0.1:8080")   # crossrank serve --model M
        >>> scorer.score("what causes tides?", ["The moon's gravity.", "Tide pods."])
        [0.98..., 0.00...]
        >>> [hit.index for hit in scorer.rank("capital of France", ["Berlin", "Paris"], top_k=1)]
        [1]

    Args:
        url: The server's base address, e.g. ``http://127.0.0.1:8080`` (the protocol's path
            is added).
        protocol: ``"crossrank"`` (a ``crossrank serve``: every feature), ``"tei"``
            (text-embeddings-inference's ``/rerank``) or ``"cohere"`` (Cohere/Jina-style
            ``/v1/rerank``); see the module's table for what each carries.
        api_key: Sent as ``Authorization: Bearer <key>``. Not saved by :meth:`to_config`.
        api_key_env: Name of the environment variable holding the key (read now); this name,
            never the key, is what :meth:`to_config` saves.
        timeout: Seconds to wait for each answer.
        retries: Retries after a 429/502/503/504 or a connection failure (0: none).
        model: The model name sent with the ``cohere`` protocol (Cohere and Jina need one),
            and :attr:`model_name` when given.
        backoff: First wait between retries, in seconds (doubled each time), when the server
            sends no ``Retry-After``.
        max_retry_wait: Longest wait between two tries, whatever ``Retry-After`` says.
        fusion: First-stage fusion for every :meth:`rerank` (``"linear"``, ``"rrf"``;
            ``None``: off), as :class:`crossrank.CrossEncoderScorer`'s ``fusion``: sent with
            each call, so ``RemoteScorer(url, fusion="linear")`` ranks as
            ``CrossEncoderScorer(model, fusion="linear")`` does. Needs the ``crossrank``
            protocol.
        fusion_weight: The cross-encoder's share in fusion, in [0, 1].
        fusion_normalization: How scores are normalized before linear fusion.

    ``model_name`` and ``activation`` come from the server's ``GET /info`` (fetched once, on
    first use); with the ``cohere`` protocol they are ``model`` (else the URL) and
    ``"sigmoid"``.
    """

    def __init__(
        self,
        url: str,
        *,
        protocol: Protocol = "crossrank",
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        model: str | None = None,
        backoff: float = 0.25,
        max_retry_wait: float = 30.0,
        fusion: str | None = None,
        fusion_weight: float = 0.5,
        fusion_normalization: str = "zscore",
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        for name, value in (
            ("timeout", timeout),
            ("backoff", backoff),
            ("max_retry_wait", max_retry_wait),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if api_key is not None and api_key_env is not None:
            raise ValueError("pass api_key or api_key_env, not both")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValueError("api_key must be a non-empty string")
        if api_key_env is not None:
            if not isinstance(api_key_env, str) or not api_key_env:
                raise ValueError(
                    f"api_key_env must be an environment variable's name, got {api_key_env!r}"
                )
            api_key = os.environ.get(api_key_env, "").strip()
            if not api_key:
                raise ValueError(
                    f"api_key_env={api_key_env!r}: the environment variable {api_key_env} is "
                    "not set or empty; export the server's key there"
                )
        if model is not None and not isinstance(model, str):
            raise TypeError(f"model must be a string or None, got {type(model).__name__}")
        checked = Fusion.checked(fusion, fusion_weight, fusion_normalization)
        if checked is not None and protocol != "crossrank":
            raise ValueError(
                f"fusion={fusion!r} needs protocol='crossrank' (a crossrank server); "
                f"protocol={protocol!r} carries scores only"
            )
        self.url = url.rstrip("/")
        self.protocol: str = protocol
        self.timeout = float(timeout)
        self.retries = retries
        self.api_key_env = api_key_env
        self.model = model
        self.backoff = float(backoff)
        self.max_retry_wait = float(max_retry_wait)
        self.fusion = None if checked is None else checked.method
        self.fusion_weight = float(fusion_weight)
        self.fusion_normalization = fusion_normalization
        self._api_key = api_key
        self._info: dict[str, Any] | None = None
        self._info_lock = threading.Lock()
        self._client_lock = threading.Lock()
        self._client: Any = None

    def __repr__(self) -> str:  # never the key
        return f"RemoteScorer({self.url!r}, protocol={self.protocol!r})"

    # ------------------------------------------------------------------ configuration

    def to_config(self) -> dict[str, Any]:
        """A JSON-safe dict to rebuild this scorer with :meth:`from_config`: url, protocol,
        timeout, retries, model, the fusion settings and ``api_key_env`` (the variable's
        name; never the key, so a key passed as ``api_key=`` is not saved)."""
        return {
            "url": self.url,
            "protocol": self.protocol,
            "timeout": self.timeout,
            "retries": self.retries,
            "api_key_env": self.api_key_env,
            "model": self.model,
            "fusion": self.fusion,
            "fusion_weight": self.fusion_weight,
            "fusion_normalization": self.fusion_normalization,
        }

    @property
    def key_saved(self) -> bool:
        """Whether :meth:`to_config` keeps what the key needs: True without a key or with
        ``api_key_env``; False for a key passed as ``api_key=`` (it is never written)."""
        return self._api_key is None or self.api_key_env is not None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RemoteScorer:
        """The scorer a :meth:`to_config` dict describes (the key is read from
        ``api_key_env`` now)."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"unknown RemoteScorer config keys {unknown}; known: {list(_CONFIG_KEYS)}"
            )
        if "url" not in config:
            raise ValueError("a RemoteScorer config needs 'url'")
        return cls(**dict(config))

    # ------------------------------------------------------------------ server facts

    @property
    def model_name(self) -> str:
        """The served model (``GET /info``), or ``model`` when given."""
        if self.model is not None:
            return self.model
        info = self._server_info()
        return str(info.get("model") or info.get("model_id") or self.url)

    @property
    def activation(self) -> str:
        """The activation the server's scores are in (``GET /info``; ``"sigmoid"`` where the
        server does not say)."""
        activation = self._server_info().get("activation")
        return activation if activation in ACTIVATIONS else "sigmoid"

    def _server_info(self) -> dict[str, Any]:
        if self.protocol == "cohere":
            return {}
        with self._info_lock:
            if self._info is None:
                self._info = self._get("/info")
            return self._info

    def warm_up(self) -> None:
        """Check the server answers (``GET /info``) and wait, up to ``timeout``, until it
        has loaded its model (``GET /health``). Nothing to do with the ``cohere`` protocol."""
        if self.protocol == "cohere":
            return
        self._server_info()
        deadline = time.monotonic() + self.timeout
        while True:
            status, body = self._health()
            if status == 200:
                return
            if status == 404:  # a server without /health (some TEI builds): /info answered
                return
            if time.monotonic() > deadline or body.get("status") == "failed":
                raise RemoteScorerError(
                    f"the server at {self.url} is not ready ({status}: "
                    f"{body.get('status') or body.get('error') or 'no detail'})",
                    url=self.url + "/health",
                    status=status,
                    hint="see the server's log",
                )
            time.sleep(0.2)

    async def awarm_up(self) -> None:
        """:meth:`warm_up` in a worker thread."""
        await asyncio.to_thread(self.warm_up)

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
        """Scores plus truncation, pairs and spans (the ``crossrank`` protocol; the others
        report nothing truncated, one pair per text and no spans)."""
        return self._send(self._plan_details(query, texts, activation))  # type: ignore[no-any-return]

    async def ascore_details(
        self, query: str, texts: Sequence[str], *, activation: str | None = None
    ) -> ScoreDetails:
        """:meth:`score_details` without blocking the event loop."""
        return await self._asend(self._plan_details(query, texts, activation))  # type: ignore[no-any-return]

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
        (``token_budget`` needs the ``crossrank`` protocol: it counts with the server's
        tokenizer)."""
        return self._send(  # type: ignore[no-any-return]
            self._plan_rank(query, texts, top_k, score_threshold, min_relative_score, token_budget)
        )

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
        return await self._asend(  # type: ignore[no-any-return]
            self._plan_rank(query, texts, top_k, score_threshold, min_relative_score, token_budget)
        )

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
        """:meth:`CrossEncoderScorer.rerank` on the server: candidates without text are
        skipped and reported, the rest scored and selected.

        ``token_budget``, ``passages``, ``contents`` and the fusion options need the
        ``crossrank`` protocol (they are sent in its ``crossrank`` field; fusion ones only
        when given, and the server's crossrank must support them).
        """
        return self._send(  # type: ignore[no-any-return]
            self._plan_rerank(
                query,
                texts,
                dict(
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
                ),
            )
        )

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
        return await self._asend(  # type: ignore[no-any-return]
            self._plan_rerank(
                query,
                texts,
                dict(
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
                ),
            )
        )

    # ------------------------------------------------------------------ requests

    def _payload(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_n: int | None = None,
        activation: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The request body for this protocol."""
        if self.protocol == "tei":
            return {"query": query, "texts": list(texts), "raw_scores": activation == "raw"}
        payload: dict[str, Any] = {"query": query, "documents": list(texts)}
        if self.protocol == "cohere" and self.model is not None:
            payload["model"] = self.model
        if top_n is not None:
            payload["top_n"] = top_n
        if self.protocol == "crossrank":
            payload["crossrank"] = {k: v for k, v in (extra or {}).items() if v is not None}
        return payload

    def _wire_activation(self, activation: Any) -> str | None:
        """This call's activation as the protocol can carry it (None: the server's)."""
        if activation is None:
            return None
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if self.protocol == "crossrank" or activation == self.activation:
            return activation if self.protocol != "cohere" else None
        if self.protocol == "tei" and activation == "raw":
            return "raw"
        raise ValueError(
            f"protocol={self.protocol!r} cannot ask for activation={activation!r} (the server "
            f"gives {self.activation!r}{' or raw' if self.protocol == 'tei' else ''}); use "
            "protocol='crossrank'"
        )

    def _refuse_options(self, **given: Any) -> None:
        """Options the tei and cohere protocols do not carry."""
        if self.protocol == "crossrank":
            return
        named = [name for name, value in given.items() if value not in (None, False)]
        if named:
            raise ValueError(
                f"{', '.join(named)} need protocol='crossrank' (a crossrank server); "
                f"protocol={self.protocol!r} carries scores only"
            )

    def _fusion_of(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The fusion fields of one call: this call's values over this scorer's settings,
        all sent when fusion is on (the server's own settings then do not matter)."""
        given = {n: options[n] for n in _FUSION[1:] if options[n] is not None}
        fusion = resolve_fusion(self, **given)
        sent: dict[str, Any] = {}
        if fusion is not None:
            sent = {
                "fusion": fusion.method,
                "fusion_weight": fusion.weight,
                "fusion_normalization": fusion.normalization,
            }
        elif "fusion" in given and self.protocol == "crossrank":
            sent = {"fusion": "none"}
        if options["first_stage_scores"] is not None:
            sent["first_stage_scores"] = options["first_stage_scores"]
        return sent

    def _plan_details(self, query: str, texts: Sequence[str], activation: Any) -> _Call:
        query = check_query(query)
        texts = check_texts(texts)
        wire = self._wire_activation(activation)
        if not texts:
            return _Call(None, lambda _: ScoreDetails(scores=[], truncated=[], pairs=0))
        payload = self._payload(
            query, texts, activation=wire, extra={"skip_blank": False, "activation": wire}
        )
        return _Call(payload, lambda answer: self._details_of(answer, len(texts)))

    def _plan_rank(
        self,
        query: str,
        texts: Sequence[str],
        top_k: Any,
        score_threshold: Any,
        min_relative_score: Any,
        token_budget: Any,
    ) -> _Call:
        top_k = check_top_k(top_k)
        score_threshold = check_score_threshold(score_threshold)
        query = check_query(query)
        texts = check_texts(texts)
        token_budget = check_positive_int(token_budget, name="token_budget", allow_none=True)
        self._refuse_options(token_budget=token_budget)
        if min_relative_score is not None:
            min_relative_score = check_relative_cut(min_relative_score, self.activation)
        if not texts:
            return _Call(None, lambda _: [])
        selection = {
            "top_k": top_k,
            "score_threshold": score_threshold,
            "min_relative_score": min_relative_score,
        }
        if self.protocol == "crossrank":
            extra = {"skip_blank": False, "token_budget": token_budget}
            extra |= {k: v for k, v in selection.items() if k != "top_k"}
            payload = self._payload(query, texts, top_n=top_k, extra=extra)
            return _Call(payload, lambda answer: self._hits_of(answer)[0])
        payload = self._payload(query, texts)

        def finish(answer: Any) -> list[Hit]:
            details = self._details_of(answer, len(texts))
            kept = select(details.scores, **selection)
            return [Hit(i, details.scores[i], False) for i in kept]

        return _Call(payload, finish)

    def _plan_rerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any]
    ) -> _Call:
        top_k = check_top_k(options["top_k"])
        score_threshold = check_score_threshold(options["score_threshold"])
        wire = self._wire_activation(options["activation"])
        min_relative_score = options["min_relative_score"]
        if min_relative_score is not None:
            min_relative_score = check_relative_cut(min_relative_score, wire or self.activation)
        token_budget = check_positive_int(
            options["token_budget"], name="token_budget", allow_none=True
        )
        query = check_query(query)
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            check_texts(texts)  # raises the standard message
        passages = options["passages"]
        contents = options["contents"]
        if not isinstance(passages, bool):
            raise TypeError(f"passages must be True or False, got {passages!r}")
        if contents is not None and not passages:
            raise ValueError("contents is only used with passages=True")
        fusion = self._fusion_of(options)
        self._refuse_options(
            token_budget=token_budget, passages=passages, contents=contents, **fusion
        )
        for i, text in enumerate(texts):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a string or None, got {type(text).__name__}")
        if not texts:
            return _Call(None, lambda _: Reranked(hits=[], skipped=[], pairs=0))
        if self.protocol == "crossrank":
            extra: dict[str, Any] = {
                "score_threshold": score_threshold,
                "min_relative_score": min_relative_score,
                "token_budget": token_budget,
                "activation": wire,
                **{k: list(v) if k == "first_stage_scores" else v for k, v in fusion.items()},
            }
            if passages:
                extra["passages"] = True
                extra["contents"] = None if contents is None else list(contents)
            sent = ["" if t is None else t for t in texts]
            payload = self._payload(query, sent, top_n=top_k, extra=extra)

            def finish_crossrank(answer: Any) -> Reranked:
                hits, skipped, pairs = self._hits_of(answer)
                extra = answer.get("crossrank", {})
                return Reranked(
                    hits=hits,
                    skipped=skipped,
                    pairs=pairs,
                    unscored=[int(r["index"]) for r in answer["results"] if r.get("unscored")],
                    deadline_unscored=int(extra.get("deadline_unscored", 0)),
                )

            return _Call(payload, finish_crossrank)
        # tei / cohere: candidates without text are skipped here, as the core does.
        scorable, skipped = split_blank(texts)
        if not scorable:
            return _Call(None, lambda _: Reranked(hits=[], skipped=skipped, pairs=0))
        payload = self._payload(query, [texts[i] for i in scorable], activation=wire)  # type: ignore[misc]

        def finish(answer: Any) -> Reranked:
            details = self._details_of(answer, len(scorable))
            kept = select(
                details.scores,
                top_k=top_k,
                score_threshold=score_threshold,
                min_relative_score=min_relative_score,
            )
            hits = [Hit(scorable[j], details.scores[j], False) for j in kept]
            usage = _usage_of(answer) if self.protocol == "cohere" else {}
            return Reranked(hits=hits, skipped=skipped, pairs=details.pairs, usage=usage)

        return _Call(payload, finish)

    # ------------------------------------------------------------------ answers

    def _results(self, answer: Any) -> list[dict[str, Any]]:
        if self.protocol == "tei":
            results = answer
        else:
            results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or not all(
            isinstance(r, dict) and isinstance(r.get("index"), int) for r in results
        ):
            raise self._bad_answer(f"no list of results with an 'index' each: {str(answer)[:200]}")
        return results

    def _score_of(self, result: dict[str, Any]) -> float:
        value = result.get("score" if self.protocol == "tei" else "relevance_score")
        if value is None:
            return math.nan  # the server sends null for NaN and infinities
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad_answer(f"a score is not a number: {value!r}")
        return float(value)

    def _hit_of(self, result: dict[str, Any]) -> Hit:
        span = result.get("span")
        passage = result.get("passage")
        model_score: float | None = None
        if "model_score" in result:  # with fusion; null: NaN or an infinity
            own = result["model_score"]
            model_score = math.nan if own is None else float(own)
        return Hit(
            result["index"],
            self._score_of(result),
            bool(result.get("truncated", False)),
            None if span is None else (int(span[0]), int(span[1])),
            None if passage is None else (int(passage[0]), int(passage[1])),
            model_score,
        )

    def _hits_of(self, answer: Any) -> tuple[list[Hit], list[int], int]:
        """Hits (server order), skipped and pairs of a crossrank answer (results marked
        ``unscored`` are not hits: :meth:`_unscored_of` reads them)."""
        results = self._results(answer)
        hits = [self._hit_of(r) for r in results if not r.get("unscored")]
        extra = answer.get("crossrank") if isinstance(answer, dict) else None
        if not isinstance(extra, dict):
            raise self._bad_answer(
                "no 'crossrank' field in the answer: is this a crossrank server? (use "
                "protocol='cohere' for other /v1/rerank servers)"
            )
        return hits, [int(i) for i in extra.get("skipped", [])], int(extra.get("pairs", len(hits)))

    def _details_of(self, answer: Any, n: int) -> ScoreDetails:
        """ScoreDetails of an answer holding every text's result."""
        results = self._results(answer)
        by_index = {r["index"]: r for r in results}
        if sorted(by_index) != list(range(n)):
            raise self._bad_answer(
                f"expected one result per text (0..{n - 1}), got indices {sorted(by_index)[:20]}"
            )
        ordered = [by_index[i] for i in range(n)]
        hits = [self._hit_of(r) for r in ordered]
        if self.protocol != "crossrank":
            return ScoreDetails(scores=[h.score for h in hits], truncated=[False] * n, pairs=n)
        windows = [r.get("windows") for r in ordered]
        pairs = int(answer.get("crossrank", {}).get("pairs", n)) if isinstance(answer, dict) else n
        return ScoreDetails(
            scores=[h.score for h in hits],
            truncated=[h.truncated for h in hits],
            pairs=pairs,
            spans=[h.span for h in hits],
            windows=None if None in windows else [int(w) for w in windows],  # type: ignore[arg-type]
        )

    def _bad_answer(self, what: str) -> RemoteScorerError:
        return RemoteScorerError(
            f"the server at {self.url}{_PATHS[self.protocol]} answered in a form protocol="
            f"{self.protocol!r} does not expect ({what})",
            url=self.url + _PATHS[self.protocol],
            hint=f"check the url and protocol (one of {PROTOCOLS})",
        )

    # ------------------------------------------------------------------ transport

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"crossrank/{__version__}"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _sync_client(self) -> Any:
        import httpx

        with self._client_lock:
            if self._client is None:
                client = httpx.Client(timeout=self.timeout, headers=self._headers())
                weakref.finalize(self, client.close)
                self._client = client
            return self._client

    def close(self) -> None:
        """Close the connections kept for synchronous calls (reopened when needed)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> RemoteScorer:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _send(self, call: _Call) -> Any:
        if call.payload is None:
            return call.finish(None)
        return call.finish(self._post(_PATHS[self.protocol], call.payload))

    async def _asend(self, call: _Call) -> Any:
        if call.payload is None:
            return call.finish(None)
        return call.finish(await self._apost(_PATHS[self.protocol], call.payload))

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        import httpx

        url = self.url + path
        for attempt in range(self.retries + 1):
            try:
                response = self._sync_client().post(url, json=payload)
            except httpx.TransportError as error:
                wait = self._transport_retry(url, error, attempt)
                time.sleep(wait)
                continue
            wait_for = self._status_retry(response, attempt)
            if wait_for is None:
                return self._answer(url, response)
            time.sleep(wait_for)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apost(self, path: str, payload: dict[str, Any]) -> Any:
        import httpx

        url = self.url + path
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as client:
            for attempt in range(self.retries + 1):
                try:
                    response = await client.post(url, json=payload)
                except httpx.TransportError as error:
                    await asyncio.sleep(self._transport_retry(url, error, attempt))
                    continue
                wait_for = self._status_retry(response, attempt)
                if wait_for is None:
                    return self._answer(url, response)
                await asyncio.sleep(wait_for)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, path: str) -> dict[str, Any]:
        import httpx

        url = self.url + path
        for attempt in range(self.retries + 1):
            try:
                response = self._sync_client().get(url)
            except httpx.TransportError as error:
                time.sleep(self._transport_retry(url, error, attempt))
                continue
            wait_for = self._status_retry(response, attempt)
            if wait_for is None:
                answer = self._answer(url, response)
                if not isinstance(answer, dict):
                    raise self._bad_answer(f"GET {path} is not a JSON object")
                return answer
            time.sleep(wait_for)
        raise AssertionError("unreachable")  # pragma: no cover

    def _health(self) -> tuple[int, dict[str, Any]]:
        import httpx

        try:
            response = self._sync_client().get(self.url + "/health")
        except httpx.TransportError as error:
            raise self._unreachable(self.url + "/health", error, 1) from error
        try:
            body = response.json()
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        wait: float = self.backoff * 2.0**attempt
        if retry_after:
            try:
                wait = float(retry_after)
            except ValueError:  # an HTTP date
                try:
                    wait = email.utils.parsedate_to_datetime(retry_after).timestamp() - time.time()
                except (TypeError, ValueError):
                    pass  # unreadable: the backoff
        return min(max(wait, 0.0), self.max_retry_wait)

    def _transport_retry(self, url: str, error: Exception, attempt: int) -> float:
        """The wait before retrying after ``error``; raises when it must not be retried."""
        import httpx

        if isinstance(error, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
            raise RemoteScorerError(
                f"the server at {url} did not answer within timeout={self.timeout} s",
                url=url,
                hint="raise timeout=, send fewer documents per call, or add server capacity",
            ) from error
        if attempt >= self.retries:
            raise self._unreachable(url, error, attempt + 1) from error
        return self._delay(attempt)

    def _unreachable(self, url: str, error: Exception, tries: int) -> RemoteScorerError:
        return RemoteScorerError(
            f"could not reach the server at {url} ({type(error).__name__}: {error}) after "
            f"{tries} attempt(s)",
            url=url,
            hint="check the url and that the server runs (crossrank serve --model M --port P)",
        )

    def _status_retry(self, response: Any, attempt: int) -> float | None:
        """The wait before retrying this answer, or None to read it as it is."""
        if response.status_code in _RETRY_STATUSES and attempt < self.retries:
            return self._delay(attempt, response.headers.get("retry-after"))
        return None

    def _answer(self, url: str, response: Any) -> Any:
        """The JSON of a 2xx answer; the error it describes otherwise."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= status < 300:
            if body is None:
                raise self._bad_answer(
                    f"{status} with a body that is not JSON: {response.text[:200]!r}"
                )
            return body
        message, error_type = _error_text(body, response)
        where = f"the server at {url} answered {status}"
        if status in (401, 403):
            raise RemoteScorerError(
                f"{where}: {message}",
                url=url,
                status=status,
                error_type=error_type,
                hint="pass api_key= or set the environment variable named by api_key_env to a "
                "key the server accepts",
            )
        if status in (413, 422, 400):
            raise RemoteRequestError(
                f"{where}: {message}",
                url=url,
                status=status,
                error_type=error_type,
                hint="the request breaks one of the server's rules or limits (see GET /info)",
            )
        if status in _RETRY_STATUSES:
            raise RemoteScorerError(
                f"{where} after {self.retries} retries: {message}",
                url=url,
                status=status,
                error_type=error_type,
                hint="retry later, raise retries=, lower the concurrency or add server capacity",
            )
        raise RemoteScorerError(
            f"{where}: {message}",
            url=url,
            status=status,
            error_type=error_type,
            hint="check the url and protocol" if status == 404 else "see the server's log",
        )


def _usage_of(answer: Any) -> dict[str, float]:
    """What a Cohere-style answer says was billed: Cohere's ``meta.billed_units``
    (``search_units``), or Jina's, vLLM's and Infinity's ``usage`` (``total_tokens``...);
    numbers only."""
    if not isinstance(answer, dict):
        return {}
    meta = answer.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    found = billed if isinstance(billed, dict) else answer.get("usage")
    if not isinstance(found, dict):
        return {}
    return {
        str(unit): float(amount)
        for unit, amount in found.items()
        if isinstance(amount, (int, float)) and not isinstance(amount, bool)
    }


def _error_text(body: Any, response: Any) -> tuple[str, str | None]:
    """The message and kind of an error answer (crossrank/TEI, Cohere or FastAPI shapes)."""
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                kind = body.get("error_type")
                return value, kind if isinstance(kind, str) else None
        if body:
            return str(body)[:300], None
    return (response.text or response.reason_phrase or "no detail")[:300], None
