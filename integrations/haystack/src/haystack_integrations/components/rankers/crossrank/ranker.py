"""The Haystack ranker: a thin adapter over :class:`crossrank.CrossEncoderScorer`.

It gives the shared adapter layer (:mod:`crossrank.adapters`) each Document's text (and,
with fusion, its incoming ``score``), and copies the kept Documents it returns into new
Documents with ``score`` set (and, with ``passage_only``, ``content`` cut to the best
passage).
"""

# No ``from __future__ import annotations`` here: Haystack reads the annotations of run()
# at runtime to build the component's input sockets.

import asyncio
import copy
import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

from crossrank._optional import missing_extra
from crossrank.adapters import (
    MODEL_SCORE_KEY,
    SCORER_OPTIONS,
    SPAN_KEY,
    UNSCORED_KEY,
    FirstStage,
    RankedItems,
    RerankScorer,
    Selection,
    arerank_items,
    check_scorer_options,
    cut_passage,
    device_in_use,
    rerank_items,
    scorer_config,
    scorer_from_config,
    scorer_settings,
)
from crossrank.fusion import resolve_fusion
from crossrank.scorer import CrossEncoderScorer
from crossrank.validation import check_query, check_texts

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.utils import ComponentDevice, Secret, deserialize_secrets_inplace
except ImportError as e:
    raise missing_extra("The Haystack ranker", "haystack", e) from e

__all__ = ["CrossEncoderRanker"]

logger = logging.getLogger("crossrank")

#: The token Haystack's Hugging Face components read by default.
_DEFAULT_TOKEN = Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False)

#: Scorer settings that have a Haystack-typed parameter of their own; every other one comes
#: in ``**scorer_options``.
_TYPED = ("model", "device", "token")


def _got(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.60}"


def _content(doc: Document) -> str | None:
    return doc.content


#: With fusion, each Document's first-stage score is the ``score`` its retriever set.
_FIRST_STAGE: FirstStage[Document] = FirstStage(
    read=lambda doc: doc.score,
    where="Document.score",
    hint=lambda doc: (
        f" (the Document with id {doc.id!r} has none); Haystack's retrievers set it, "
        "Documents built by hand or fetched by id have none: set their score, or build the "
        "ranker without fusion"
    ),
)


@component
class CrossEncoderRanker:
    """Rank Documents by relevance to a query with a local cross-encoder.

    A drop-in for Haystack's ``SentenceTransformersSimilarityRanker`` (package
    ``sentence-transformers-haystack``): it takes all of that component's init and run
    parameters with their meaning, so a pipeline saved with it loads once its ``type:``
    line names this class (docs/haystack.md lists what differs, and why).

    The cross-encoder reads the query and each Document together and scores the pair. Each
    returned Document is a copy of an input Document (``dataclasses.replace``), best first,
    with ``score`` set to a Python ``float``: in (0, 1) by default, the model's logit with
    ``scale_score=False`` or ``activation="raw"``, a calibrated probability of relevance
    with ``activation="calibrated"``. The caller's Documents are never changed.

    - Documents whose ``content`` is None, empty or whitespace are not scored and not
      returned; a ``crossrank`` log warning counts them.
    - Documents sharing an ``id`` are collapsed before scoring, keeping the one with the
      higher incoming ``score`` (the first one on a tie), as the peer does.
    - ``long_documents="chunk"`` scores long Documents window by window;
      ``passage_only=True`` then hands on only each Document's best passage (``content``
      cut, ``meta["crossrank_span"]`` its ``[start, end]``); ``token_budget`` keeps the best
      Documents while their tokens fit.
    - ``fusion="linear"`` (or ``"rrf"``) mixes the cross-encoder's score with each
      Document's incoming ``score`` (its retriever's), per query: the returned ``score`` is
      the fused one, which orders and selects, and ``meta["crossrank_model_score"]`` holds
      the cross-encoder's own. A Document with content and no ``score`` is then an error
      (docs/haystack.md, "First-stage fusion").

    The model loads once, in :meth:`warm_up` (a Pipeline calls it) or on the first
    :meth:`run`; constructing the component is cheap. :meth:`run_async` scores in a worker
    thread, and concurrent calls share one model safely.

    Usage example:
        ```python
        from haystack import Document
        from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker

        ranker = CrossEncoderRanker(top_k=2)
        docs = [
            Document(content="Paris is the capital of France."),
            Document(content="Berlin is the capital of Germany."),
            Document(content="Bananas are rich in potassium."),
        ]
        result = ranker.run(query="capital of Germany", documents=docs)
        print([(d.content, round(d.score, 3)) for d in result["documents"]])
        ```
    """

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        device: ComponentDevice | None = None,
        token: Secret | None = _DEFAULT_TOKEN,
        top_k: int | None = 10,
        query_prefix: str = "",
        query_suffix: str = "",
        document_prefix: str = "",
        document_suffix: str = "",
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        scale_score: bool = True,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        passage_only: bool = False,
        scorer: RerankScorer | None = None,
        **scorer_options: Any,
    ) -> None:
        """Create the ranker. Nothing is loaded until :meth:`warm_up` or :meth:`run`.

        Args:
            model: A Hugging Face model id or a local folder of a cross-encoder. ``None``:
                ``$CROSSRANK_MODEL``, else ``cross-encoder/ms-marco-MiniLM-L6-v2``; the name
                resolved here is the one :meth:`to_dict` saves.
            device: Where the model runs, e.g. ``ComponentDevice.from_str("cuda:0")``.
                ``None``: Haystack's default device (CUDA, XPU, MPS, else CPU), resolved here
                and saved by :meth:`to_dict`, as the peer does. Device maps are not supported.
            token: Hugging Face token for private models, resolved when the model loads.
            top_k: Most Documents to return (``None``: all that pass the cuts).
            query_prefix: Put before the query for scoring (an instruction, for example).
            query_suffix: Put after the query for scoring.
            document_prefix: Put before each Document's text for scoring.
            document_suffix: Put after each Document's text for scoring.
            meta_fields_to_embed: Meta fields whose values are put before ``content`` for
                scoring, as ``str(value)``; a field missing or None is left out (``0``,
                ``False`` and ``""`` are embedded). Returned Documents keep their content.
            embedding_separator: Joins the meta values and ``content``.
            scale_score: ``True``: scores go through ``activation`` (a sigmoid by default);
                ``False``: scores are the model's raw logits, whatever ``activation`` says.
                :meth:`run` takes it per call too.
            score_threshold: Drop Documents scoring below this (applied before ``top_k``).
            min_relative_score: Drop Documents scoring below this fraction (in [0, 1]) of
                the best one's score. Not with raw logits.
            token_budget: Keep the best Documents while their tokens (the model's
                tokenizer) add up to at most this; applied last. It counts the text the model
                reads, or with ``passage_only`` the passage handed on.
            passage_only: Hand on only each Document's best passage: the returned copy's
                ``content`` is the part of the content the score comes from, and
                ``meta["crossrank_span"]`` its ``[start, end]`` in the original content.
                When that part lies wholly in a prefix, suffix or embedded meta field, the
                content is kept whole and no key is added.
            scorer: A ready scorer to use instead of building one: a
                :class:`crossrank.RemoteScorer` (a shared ``crossrank serve``, or a hosted or
                self-hosted reranker: ``RemoteScorer(provider="cohere")``, docs/providers.md)
                or a :class:`crossrank.CrossEncoderScorer` to share one
                loaded model. With it, leave ``model``, ``device``, ``token`` and the scorer
                settings unset (set them on the scorer). :meth:`to_dict` saves a
                ``RemoteScorer`` as its config, the key as an environment-variable
                ``Secret``; a ``CrossEncoderScorer`` as its settings (loading builds a new
                scorer with them). A composite of :mod:`crossrank.compose` (``Ensemble``,
                ``Fallback``, ``Cascade``) works too and is saved as its ``to_config()``.
            **scorer_options: Every other setting of :class:`crossrank.CrossEncoderScorer`,
                by the same name and with the same default (see docs/core.md): for instance
                ``batch_size``, ``max_length``, ``activation``, ``calibration``, ``backend``,
                ``long_documents``, ``trust_remote_code``, ``model_kwargs``,
                ``tokenizer_kwargs`` and ``config_kwargs`` for the model, tokenizer and
                config loading, and ``fusion``, ``fusion_weight`` and
                ``fusion_normalization`` to fuse with each Document's incoming ``score``.

        Raises:
            TypeError: An argument has the wrong type, or an unknown option was given.
            ValueError: An argument is out of range, or a setting the core refuses
                (``backend="openvino"``, ``min_relative_score`` with raw logits...).
        """
        unknown = sorted(set(scorer_options) - set(SCORER_OPTIONS))
        if unknown:
            settings = [name for name in SCORER_OPTIONS if name not in _TYPED]
            raise TypeError(
                f"CrossEncoderRanker got unknown option(s) {unknown}; besides its own "
                f"parameters it takes the settings of crossrank.CrossEncoderScorer: {settings}"
            )
        _check_types(
            query_prefix=query_prefix,
            query_suffix=query_suffix,
            document_prefix=document_prefix,
            document_suffix=document_suffix,
            embedding_separator=embedding_separator,
            scale_score=scale_score,
            passage_only=passage_only,
            **{k: v for k, v in scorer_options.items() if isinstance(SCORER_OPTIONS[k], bool)},
        )
        if scorer is not None:
            if not isinstance(scorer, RerankScorer):
                raise TypeError(
                    "scorer must be a crossrank.RemoteScorer or CrossEncoderScorer (or a "
                    "scorer with their rerank contract, crossrank.adapters.RerankScorer), got "
                    f"{_got(scorer)}"
                )
            given = {**scorer_options, "model": model, "device": device}
            if token != _DEFAULT_TOKEN:
                given["token"] = token
            check_scorer_options(given, owner="CrossEncoderRanker")
        self.device = _resolve_device(device)
        if token is not None and not isinstance(token, Secret):
            raise TypeError(
                f"token must be a haystack Secret or None, got {type(token).__name__}; "
                "use Secret.from_env_var('HF_TOKEN') or Secret.from_token(...)"
            )
        self.token = token
        if scorer is None:
            options = {**scorer_options, "model": model, "device": self.device.to_torch_str()}
            # The core checks every scorer setting; building the scorer loads nothing. Calls
            # with scale_score=False ask the same scorer for raw logits.
            scorer = CrossEncoderScorer(**options)
            self._token_resolved = False
        else:
            self._token_resolved = True  # a given scorer has its own token (or key)
        self._scorer: RerankScorer = scorer
        self._given = self._token_resolved
        # A server's activation is asked (GET /info) only when a relative cut needs it, so
        # building the ranker (loading a pipeline) needs no running server.
        local = isinstance(scorer, CrossEncoderScorer)
        needs_activation = local or min_relative_score is not None
        self._selection = Selection.checked(
            activation=(scorer.activation if needs_activation else "sigmoid")
            if scale_score
            else "raw",
            fusion=resolve_fusion(self._scorer),
            top_k=top_k,
            score_threshold=score_threshold,
            min_relative_score=min_relative_score,
            token_budget=token_budget,
        )
        # The init parameters, as Haystack components keep them; the scorer settings as
        # to_dict saves them.
        if local:
            for name, value in scorer_settings(self._scorer).items():
                if name not in _TYPED:
                    setattr(self, name, value)
        self.model: str | None = self._scorer.model_name if local else None
        self.scorer: RerankScorer | None = scorer if self._given else None
        self.top_k = self._selection.top_k
        self.score_threshold = self._selection.score_threshold
        self.min_relative_score = self._selection.min_relative_score
        self.token_budget = self._selection.token_budget
        self.query_prefix = query_prefix
        self.query_suffix = query_suffix
        self.document_prefix = document_prefix
        self.document_suffix = document_suffix
        self.meta_fields_to_embed: list[str] = (
            []
            if meta_fields_to_embed is None
            else check_texts(meta_fields_to_embed, name="meta_fields_to_embed")
        )
        self.embedding_separator = embedding_separator
        self.scale_score = scale_score
        self.passage_only = passage_only

    # ------------------------------------------------------------------ loading

    def _ready_scorer(self) -> RerankScorer:
        """The scorer, with the token resolved before the model can load."""
        if not self._token_resolved:
            token = self.token.resolve_value() if self.token is not None else None
            self._scorer.token = token  # type: ignore[attr-defined]  # our own scorer
            self._token_resolved = True
        return self._scorer

    def warm_up(self) -> None:
        """Load the model now rather than on the first run. Safe to call repeatedly."""
        self._ready_scorer().warm_up()

    async def warm_up_async(self) -> None:
        """Like :meth:`warm_up`, loading in a worker thread so the event loop keeps running."""
        scorer = self._ready_scorer()
        awarm_up = getattr(scorer, "awarm_up", None)
        if awarm_up is not None:
            await awarm_up()
        else:
            await asyncio.to_thread(scorer.warm_up)

    # ------------------------------------------------------------------ serialization

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component to a dictionary.

        Returns:
            The type path and every init parameter: the scorer settings as
            :func:`crossrank.adapters.scorer_settings` gives them, ``device`` and ``token``
            in Haystack's own forms (a token only as an environment-variable Secret). A
            ``RemoteScorer`` given as ``scorer`` is saved under ``scorer`` as its config,
            its key as an environment-variable ``Secret`` (never the key), with no scorer
            settings; a given ``CrossEncoderScorer`` as its settings.
        """
        config = scorer_config(self._scorer)
        settings: dict[str, Any]
        if config is not None:
            if "type" not in config:  # a RemoteScorer: its key as a Haystack Secret
                env = config.pop("api_key_env")
                config["api_key"] = None if env is None else Secret.from_env_var(env).to_dict()
            settings = {"scorer": config}
        elif isinstance(self._scorer, CrossEncoderScorer):
            settings = {**scorer_settings(self._scorer), "token": self.token}
            settings["device"] = (
                ComponentDevice.from_str(device_in_use(settings["device"], settings["backend"]))
                if self._given
                else self.device
            )
        else:
            raise TypeError(
                f"CrossEncoderRanker.to_dict: a scorer of type {type(self._scorer).__name__} "
                "has no saved form; give a crossrank.RemoteScorer or CrossEncoderScorer"
            )
        return default_to_dict(
            self,
            **settings,
            top_k=self.top_k,
            query_prefix=self.query_prefix,
            query_suffix=self.query_suffix,
            document_prefix=self.document_prefix,
            document_suffix=self.document_suffix,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            scale_score=self.scale_score,
            score_threshold=self.score_threshold,
            min_relative_score=self.min_relative_score,
            token_budget=self.token_budget,
            passage_only=self.passage_only,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CrossEncoderRanker":
        """Build the component from :meth:`to_dict`'s output (``data`` is not changed).

        Also loads what ``SentenceTransformersSimilarityRanker`` saves (only the ``type``
        changed), and what older crossrank versions saved: options missing from ``data``
        take their defaults.

        Args:
            data: The dictionary to deserialize from.

        Returns:
            A new, not yet warmed-up component.
        """
        init_params = copy.deepcopy(data.get("init_parameters", {}))
        deserialize_secrets_inplace(init_params, keys=["token"])
        if isinstance(init_params.get("scorer"), dict):
            init_params["scorer"] = _remote_scorer(init_params["scorer"])
        if isinstance(init_params.get("device"), dict):
            init_params["device"] = ComponentDevice.from_dict(init_params["device"])
        return default_from_dict(cls, {**data, "init_parameters": init_params})

    # ------------------------------------------------------------------ running

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        scale_score: bool | None = None,
        instruction: str | None = None,
        deadline_ms: float | None = None,
    ) -> dict[str, list[Document]]:
        """Rank ``documents`` by relevance to ``query``, best first.

        Selection, in this order: sort by score, ``score_threshold``,
        ``min_relative_score``, ``top_k``, ``token_budget``. Each per-call value replaces
        the init value for this call; ``None`` keeps the init value (``0.0`` is a value).

        Args:
            query: The query the Documents are scored against.
            documents: The candidates, usually a retriever's output. Not changed.
            top_k: Most Documents to return.
            score_threshold: Drop Documents scoring below this.
            min_relative_score: Drop Documents scoring below this fraction of the best.
            token_budget: Most tokens handed on in all.
            scale_score: ``False``: raw logits for this call; ``True``: the ``activation``.
                The same loaded model serves both.
            instruction: This call's task instruction for an instruction-following model
                (Qwen3-Reranker's ``<Instruct>``, a chat template's system message, else
                text before the query), in place of the ``instruction`` init setting;
                ``""``: none; ``None``: the init setting (else the model's default). See
                docs/haystack.md.
            deadline_ms: This call's time budget in milliseconds (``None``: the scorer's
                ``deadline_ms``): Documents are scored in the order they came in until it
                is spent; those left unscored follow the scored ones, in that order, with
                ``score`` None and ``meta["crossrank_unscored"]`` True.

        Returns:
            ``{"documents": [...]}``: copies of the kept Documents, best first, each with
            ``score`` set (a Python float; with fusion the fused score, and the
            cross-encoder's own in ``meta["crossrank_model_score"]``), and with
            ``passage_only`` its best passage as ``content``; then any Documents left
            unscored (a deadline, a cascade's rest), marked. ``[]`` for no Documents,
            without loading the model.
        """
        call = self._call(
            query, documents, top_k, score_threshold, min_relative_score, token_budget, scale_score
        )
        call["deadline_ms"] = deadline_ms
        return self._output(rerank_items(**call, instruction=instruction))

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        scale_score: bool | None = None,
        instruction: str | None = None,
        deadline_ms: float | None = None,
    ) -> dict[str, list[Document]]:
        """:meth:`run`, scoring in a worker thread so the event loop keeps running.

        Same arguments and result. Safe to await from many tasks at once; they share one
        model.
        """
        call = self._call(
            query, documents, top_k, score_threshold, min_relative_score, token_budget, scale_score
        )
        call["deadline_ms"] = deadline_ms
        return self._output(await arerank_items(**call, instruction=instruction))

    # ------------------------------------------------------------------ conversion

    def _call(
        self,
        query: str,
        documents: Sequence[Document],
        top_k: int | None,
        score_threshold: float | None,
        min_relative_score: float | None,
        token_budget: int | None,
        scale_score: bool | None,
    ) -> dict[str, Any]:
        """The arguments of :func:`crossrank.adapters.rerank_items` for one call."""
        check_query(query)
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
            raise TypeError(
                f"documents must be a list of haystack Documents, got {_got(documents)}"
            )
        for i, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise TypeError(f"documents[{i}] must be a haystack Document, got {_got(doc)}")
        if scale_score is not None:
            _check_types(scale_score=scale_score)
        scale = self.scale_score if scale_score is None else scale_score
        activation = self._scorer.activation if scale else "raw"
        selection = self._selection.override(
            activation=activation,
            fusion=resolve_fusion(self._scorer),
            top_k=top_k,
            score_threshold=score_threshold,
            min_relative_score=min_relative_score,
            token_budget=token_budget,
        )
        return {
            "scorer": self._ready_scorer(),
            "query": self.query_prefix + query + self.query_suffix,
            "items": _deduplicate(documents),
            "text": self._text,
            "content": _content,
            "selection": selection,
            "passages": self.passage_only,
            "activation": activation,
            "first_stage": _FIRST_STAGE,
        }

    def _text(self, doc: Document) -> str | None:
        """What the model reads for ``doc``; None when it has no content (skipped)."""
        content = doc.content
        if content is None or not content.strip():
            return None
        meta = [
            str(doc.meta[key]) for key in self.meta_fields_to_embed if doc.meta.get(key) is not None
        ]
        return (
            self.document_prefix
            + self.embedding_separator.join([*meta, content])
            + self.document_suffix
        )

    @staticmethod
    def _output(ranked: RankedItems[Document]) -> dict[str, list[Document]]:
        """Copies of the kept Documents, best first, with their scores (and passages);
        then the unscored ones, marked."""
        out: list[Document] = []
        for hit in ranked.hits:
            doc = hit.item
            content, span = cut_passage(doc.content or "", hit.passage)
            update: dict[str, Any] = {"score": hit.score}
            meta = dict(doc.meta)
            if span is not None:
                update["content"] = content
                meta[SPAN_KEY] = span
            if hit.model_score is not None:
                meta[MODEL_SCORE_KEY] = hit.model_score
            if meta != doc.meta:
                update["meta"] = meta
            out.append(dataclasses.replace(doc, **update))
        for doc in ranked.unscored:
            meta = {**doc.meta, UNSCORED_KEY: True}
            out.append(dataclasses.replace(doc, score=None, meta=meta))
        return {"documents": out}


_TEXTS = (
    "query_prefix",
    "query_suffix",
    "document_prefix",
    "document_suffix",
    "embedding_separator",
)


def _check_types(**values: Any) -> None:
    """Strings must be strings and flags True or False (the core checks the rest)."""
    for name, value in values.items():
        wanted, kind = ("True or False", bool) if name not in _TEXTS else ("a string", str)
        if not isinstance(value, kind):
            raise TypeError(f"{name} must be {wanted}, got {_got(value)}")


def _remote_scorer(saved: dict[str, Any]) -> RerankScorer:
    """The ``RemoteScorer`` :meth:`CrossEncoderRanker.to_dict` saved (its key read now from
    the environment variable its ``Secret`` names: the first one set)."""
    config = dict(saved)
    api_key = config.pop("api_key", None)
    if api_key is not None:
        secret = Secret.from_dict(api_key)
        names = list(secret.to_dict().get("env_vars") or [])
        if not names:
            raise ValueError(
                "the saved RemoteScorer's api_key must be an environment-variable Secret, "
                f"got {api_key!r}"
            )
        config["api_key_env"] = next((n for n in names if os.environ.get(n)), names[0])
    return scorer_from_config(config)  # type: ignore[no-any-return]


def _resolve_device(device: ComponentDevice | None) -> ComponentDevice:
    """``device``, or Haystack's default one; a single device only."""
    if device is not None and not isinstance(device, ComponentDevice):
        raise TypeError(
            f"device must be a haystack ComponentDevice or None, got {_got(device)}; "
            "use ComponentDevice.from_str('cuda:0'), for example"
        )
    if device is not None and device.has_multiple_devices:
        raise ValueError(
            f"device must be a single device, got the device map {device.to_dict()}; "
            "use ComponentDevice.from_str('cuda:0'), for example"
        )
    return ComponentDevice.resolve_device(device)


def _deduplicate(documents: Sequence[Document]) -> list[Document]:
    """One Document per id, in first-seen order: the one with the higher score (None lowest)."""
    best: dict[str, Document] = {}
    for doc in documents:
        kept = best.get(doc.id)
        if kept is None or _score(doc) > _score(kept):
            best[doc.id] = doc
    collapsed = len(documents) - len(best)
    if collapsed:
        logger.warning(
            "crossrank: %d duplicate Document(s) (same id) were collapsed into the one with "
            "the higher incoming score",
            collapsed,
        )
    return list(best.values())


def _score(doc: Document) -> float:
    return -float("inf") if doc.score is None else doc.score
