"""``CrossEncoderRerank``: a LlamaIndex node postprocessor backed by crossrank's core scorer.

The adapter only converts: nodes -> :func:`crossrank.adapters.rerank_items` -> new
``NodeWithScore`` objects. Scoring, selection, passages and the checks of every setting
live in the core; the scorer's settings are the fields of :class:`CrossEncoderRerank`,
derived from :class:`crossrank.CrossEncoderScorer`'s signature.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr, create_model
    from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
    from llama_index.core.callbacks.base import EventContext
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle
except ImportError as e:
    from crossrank._optional import missing_extra

    raise missing_extra("The LlamaIndex postprocessor", "llama-index", e) from e

from crossrank.adapters import (
    MODEL_SCORE_KEY,
    SCORER_OPTIONS,
    SECRET_OPTIONS,
    SPAN_KEY,
    UNSCORED_KEY,
    FirstStage,
    Ranked,
    RerankScorer,
    Selection,
    check_scorer_options,
    cut_passage,
    device_in_use,
    from_cross_encoder_kwargs,
    option_docs,
    rerank_items,
    scorer_config,
    scorer_from_config,
    scorer_settings,
)
from crossrank.fusion import resolve_fusion
from crossrank.scorer import CrossEncoderScorer
from llama_index.postprocessor.crossrank_rerank.query import instruction_of

__all__ = ["CrossEncoderRerank"]

dispatcher = get_dispatcher(__name__)

#: Metadata key that holds the first-stage score when ``keep_retrieval_score=True``.
RETRIEVAL_SCORE_KEY = "retrieval_score"

#: With fusion, each node's first-stage score is the score its retriever gave it.
_FIRST_STAGE: FirstStage[NodeWithScore] = FirstStage(
    read=lambda item: item.score,
    where="nodes[{i}].score",
    hint="; LlamaIndex's retrievers set NodeWithScore.score, some (and nodes wrapped by "
    "hand) leave it None: give every node a score, or build the postprocessor without fusion",
)

def _scorer_fields() -> dict[str, Any]:
    """One pydantic field per :data:`crossrank.adapters.SCORER_OPTIONS` name, with the
    scorer's default; secrets are kept out of ``to_dict``/``to_json`` and ``repr``."""
    docs = option_docs()
    fields: dict[str, Any] = {}
    for name, default in SCORER_OPTIONS.items():
        description = (
            f"{docs.get(name, '')} Setting of crossrank.CrossEncoderScorer (docs/core.md)."
        ).strip()
        secret = name in SECRET_OPTIONS
        fields[name] = (
            Any,
            Field(default=default, description=description, exclude=secret, repr=not secret),
        )
    return fields


if TYPE_CHECKING:
    _ScorerFields = BaseNodePostprocessor
else:
    _ScorerFields = create_model(
        "_ScorerFields", __base__=BaseNodePostprocessor, **_scorer_fields()
    )


class CrossEncoderRerank(_ScorerFields):
    """Rerank retrieved nodes with a cross-encoder, through crossrank's core scorer.

    A drop-in for LlamaIndex's ``SentenceTransformerRerank``: the same positional order
    (``CrossEncoderRerank(3, model)``) and arguments. What differs on purpose is listed in
    docs/llama_index.md ("Migrating from SentenceTransformerRerank"): the caller's nodes
    are never changed (the result wraps copies, best first, scores as Python floats);
    nodes whose own content is blank are not scored and not returned, whatever their
    metadata (a log warning says how many); ``top_n`` defaults to 5; the model loads on
    first use (or ``rerank.scorer.warm_up()``). The text scored for a node is
    ``node.get_content(metadata_mode=metadata_mode)``. The scorer's settings are fixed
    when the postprocessor is built; the other fields are read on each call.

    With ``fusion="linear"`` (or ``"rrf"``) the cross-encoder's score is mixed, per query,
    with each node's incoming ``NodeWithScore.score`` (its retriever's): the returned
    ``score`` is the fused one, which orders and selects, and the node copy's
    ``metadata["crossrank_model_score"]`` (hidden from the LLM's and the embedder's text)
    holds the cross-encoder's own. A node with text and no score is then an error
    (docs/llama_index.md, "First-stage fusion").

    An instruction-following model (Qwen3-Reranker...) reads the ``instruction`` setting;
    a query may carry its own: ``engine.query(InstructedQueryBundle(query,
    instruction="..."))`` (:class:`InstructedQueryBundle`, a ``QueryBundle``).

    Example:
        ```python
        from llama_index.core.query_engine import RetrieverQueryEngine
        from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank

        rerank = CrossEncoderRerank(top_n=5)  # CROSSRANK_MODEL or the core default
        engine = RetrieverQueryEngine.from_args(retriever, node_postprocessors=[rerank])
        for hit in engine.query("what is a cross-encoder?").source_nodes:
            print(hit.node.node_id, hit.score)  # best first; score is a Python float

        # Long nodes: score every window, hand the LLM only the best passage of each,
        # at most 1,500 tokens of evidence in all (docs/long-documents.md).
        rerank = CrossEncoderRerank(
            top_n=5, long_documents="chunk", passage_only=True, token_budget=1500
        )
        ```

    Args:
        top_n: Most nodes returned.
        model: A Hugging Face model id or a local folder. Default (None): the environment
            variable ``CROSSRANK_MODEL``, else ``cross-encoder/ms-marco-MiniLM-L6-v2``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``. Default (None): the one
            crossrank will use (CUDA, then MPS, then CPU; CPU for the ONNX backends),
            resolved now and stored in the ``device`` field, as the peer does.
        keep_retrieval_score: Keep each node's first-stage score in the copy's metadata
            under ``"retrieval_score"``, excluded from the LLM's and the embedder's text.
        trust_remote_code: Run the model repository's own code (needed by some models).
        scorer: A ready scorer to use instead of building one (share one loaded model
            between components): a :class:`crossrank.CrossEncoderScorer`, or any scorer
            with its ``rerank`` contract (:class:`crossrank.adapters.RerankScorer`). Not
            serialized. With it, leave the scorer settings unset.
        score_threshold: Drop nodes scoring below this (applied before ``top_n``).
        min_relative_score: Drop nodes scoring below this fraction (0..1) of the best
            node's score (after ``score_threshold``, before ``top_n``). Not with
            ``activation="raw"``.
        token_budget: Keep the best nodes while their tokens (the model's tokenizer) add
            up to at most this; applied last. With ``passage_only`` the passages' tokens
            are counted, else the scored texts'.
        passage_only: Return copies whose text is only the node's best passage, with
            ``metadata["crossrank_span"] = [start, end]`` (character offsets into the
            node's own text; hidden from the LLM's and the embedder's text). A node whose
            best window lies wholly in its metadata keeps its whole text and gets no key.
        metadata_mode: Which metadata goes into the scored text (default
            ``MetadataMode.EMBED``, as the peer).
        cache_folder: The peer's name for ``cache_dir`` (where downloaded models go).
        cross_encoder_kwargs: Keyword arguments of sentence-transformers' ``CrossEncoder``,
            mapped onto crossrank's settings: ``max_length``, ``cache_folder``,
            ``trust_remote_code``, ``revision``, ``local_files_only``, ``token``,
            ``backend``, ``model_kwargs``, ``tokenizer_kwargs`` (``processor_kwargs``),
            ``config_kwargs``, and ``activation_fn`` (``torch.nn.Sigmoid()`` ->
            ``activation="sigmoid"``, ``torch.nn.Identity()`` -> ``"raw"``). Not
            serialized itself: the settings it maps to are.
        callback_manager: LlamaIndex callback manager (query engines set their own).
        **scorer_options: Any other setting of :class:`crossrank.CrossEncoderScorer`
            (``activation``, ``calibration``, ``long_documents``, ``batch_size``,
            ``backend``, ``cache_dir``, ``token``, ...), with its default and meaning
            there (docs/core.md). Each is a field of this class and is serialized, except
            ``token`` (never written to ``to_dict``/``to_json``; on loading, the Hugging
            Face client reads ``HF_TOKEN``).

    Raises:
        TypeError: A setting has the wrong type, or the name is not a setting.
        ValueError: A setting is out of range, a scorer setting is given beside
            ``scorer``, or ``cross_encoder_kwargs`` holds a key crossrank cannot honour.
    """

    top_n: int = Field(default=5, description="Most nodes returned.")
    score_threshold: float | None = Field(
        default=None, description="Drop nodes scoring below this (before top_n)."
    )
    min_relative_score: float | None = Field(
        default=None,
        description="Drop nodes scoring below this fraction of the best (before top_n; not "
        "with activation='raw').",
    )
    token_budget: int | None = Field(
        default=None,
        description="Keep the best nodes while their tokens add up to at most this (applied "
        "last; counts passages with passage_only).",
    )
    passage_only: bool = Field(
        default=False,
        description="Return copies holding only each node's best passage, with "
        "metadata['crossrank_span'] = [start, end].",
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description="Keep the first-stage score in metadata['retrieval_score'] (hidden from "
        "the LLM and embedder text).",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED,
        description="Text scored: node.get_content(metadata_mode=metadata_mode).",
    )

    _scorer: RerankScorer = PrivateAttr()

    def __init__(
        self,
        top_n: int = 5,
        model: str | os.PathLike[str] | None = None,
        device: str | None = None,
        keep_retrieval_score: bool = False,
        trust_remote_code: bool = False,
        *,
        scorer: RerankScorer | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        passage_only: bool = False,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        cache_folder: str | os.PathLike[str] | None = None,
        cross_encoder_kwargs: Mapping[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        **scorer_options: Any,
    ) -> None:
        if isinstance(top_n, (str, os.PathLike)):
            raise TypeError(
                f"top_n must be an int, got {top_n!r}: the first positional argument is "
                "top_n, as in llama-index-core's SentenceTransformerRerank(top_n, model, "
                f"...); pass the model by keyword: CrossEncoderRerank(model={top_n!r})"
            )
        options = _options(
            scorer_options,
            model=model,
            device=device,
            trust_remote_code=trust_remote_code,
            cache_folder=cache_folder,
            cross_encoder_kwargs=cross_encoder_kwargs,
        )
        if scorer is None:
            options["device"] = device_in_use(options["device"], options["backend"])
            # Building the scorer checks every setting (and reads a calibration file); it
            # loads no model.
            scorer = CrossEncoderScorer(**options)
        else:
            if isinstance(scorer, Mapping):  # a RemoteScorer saved by to_dict
                scorer = scorer_from_config(scorer)
            _check_scorer(scorer)
            check_scorer_options(options, owner="CrossEncoderRerank")
        if not isinstance(passage_only, bool):
            raise TypeError(f"passage_only must be True or False, got {passage_only!r}")
        _selection(scorer, top_n, score_threshold, min_relative_score, token_budget)
        fields: dict[str, Any] = {
            **(_settings(scorer) if scorer_config(scorer) is None else {}),
            "top_n": top_n,
            "score_threshold": score_threshold,
            "min_relative_score": min_relative_score,
            "token_budget": token_budget,
            "passage_only": passage_only,
            "keep_retrieval_score": keep_retrieval_score,
            "metadata_mode": metadata_mode,
        }
        if callback_manager is not None:
            fields["callback_manager"] = callback_manager
        super().__init__(**fields)
        self._scorer = scorer

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The fields, and a ``RemoteScorer`` given as ``scorer`` under ``"scorer"`` as its
        config (the key only as ``api_key_env``, the variable's name); ``from_dict``,
        ``from_json`` and ``CrossEncoderRerank(**data)`` load it back."""
        data = super().to_dict(**kwargs)
        config = scorer_config(self._scorer)
        if config is not None:
            data["scorer"] = config
        return data

    @classmethod
    def class_name(cls) -> str:
        """Name stored by LlamaIndex serialization."""
        return "CrossEncoderRerank"

    @property
    def scorer(self) -> RerankScorer:
        """The core scorer (``rerank.scorer.warm_up()`` loads the model now)."""
        return self._scorer

    # LlamaIndex's BaseNodePostprocessor runs this in a worker thread for
    # ``apostprocess_nodes`` (asyncio.to_thread), so there is no async twin here.
    @dispatcher.span
    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        selection = _selection(
            self._scorer,
            self.top_n,
            self.score_threshold,
            self.min_relative_score,
            self.token_budget,
        )
        query = self._start(nodes, query_bundle)
        if not nodes:
            return self._end([], None, passage_only=False)
        passage_only = self.passage_only  # read once: the hand-off matches the budget
        metadata_mode = self.metadata_mode
        with self._event(nodes, query) as event:
            ranked = rerank_items(
                self._scorer,
                query,
                nodes,
                text=lambda item: _scored_text(item, metadata_mode),
                content=_own_text,
                selection=selection,
                passages=passage_only,
                first_stage=_FIRST_STAGE,
                instruction=instruction_of(query_bundle),
            )
            return self._end(
                ranked.hits, event, passage_only=passage_only, unscored=ranked.unscored
            )

    def _start(self, nodes: Sequence[NodeWithScore], query_bundle: QueryBundle | None) -> str:
        """Check the nodes and the bundle, emit ``ReRankStartEvent``, return the query."""
        if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence):
            raise TypeError(f"nodes must be a list of NodeWithScore, got {type(nodes).__name__}")
        for i, item in enumerate(nodes):
            if not isinstance(item, NodeWithScore):
                raise TypeError(
                    f"nodes[{i}] must be a NodeWithScore, got {type(item).__name__}; "
                    "wrap bare nodes as NodeWithScore(node=node)"
                )
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle,
                nodes=list(nodes),
                top_n=self.top_n,
                model_name=self._scorer.model_name,
            )
        )
        if query_bundle is None:
            raise ValueError(
                "CrossEncoderRerank needs the query, got query_bundle=None; call "
                "postprocess_nodes(nodes, query_bundle=QueryBundle(query)) or "
                "postprocess_nodes(nodes, query_str=query)"
            )
        if not isinstance(query_bundle, QueryBundle):
            raise TypeError(
                f"query_bundle must be a QueryBundle, got {type(query_bundle).__name__}; "
                "pass a string as query_str=..."
            )
        return query_bundle.query_str

    def _event(
        self, nodes: Sequence[NodeWithScore], query: str
    ) -> AbstractContextManager[EventContext]:
        """The ``CBEventType.RERANKING`` callback event around scoring."""
        return self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: list(nodes),
                EventPayload.MODEL_NAME: self._scorer.model_name,
                EventPayload.QUERY_STR: query,
                EventPayload.TOP_K: self.top_n,
            },
        )

    def _end(
        self,
        hits: list[Ranked[NodeWithScore]],
        event: EventContext | None,
        *,
        passage_only: bool,
        unscored: Sequence[NodeWithScore] = (),
    ) -> list[NodeWithScore]:
        """New NodeWithScore objects for the kept hits, then the ``unscored`` ones (score
        None, ``metadata["crossrank_unscored"]`` True; the inputs stay as they were);
        close the callback event and emit ``ReRankEndEvent``."""
        out: list[NodeWithScore] = []
        for hit in hits:
            node = hit.item.node.model_copy(deep=True)
            if self.keep_retrieval_score:
                old = hit.item.score
                node.metadata[RETRIEVAL_SCORE_KEY] = None if old is None else float(old)
                _hide(node, RETRIEVAL_SCORE_KEY)
            if hit.model_score is not None:
                node.metadata[MODEL_SCORE_KEY] = hit.model_score
                _hide(node, MODEL_SCORE_KEY)
            if passage_only:
                _keep_passage(node, hit.passage)
            out.append(NodeWithScore(node=node, score=hit.score))
        for item in unscored:
            node = item.node.model_copy(deep=True)
            node.metadata[UNSCORED_KEY] = True
            _hide(node, UNSCORED_KEY)
            out.append(NodeWithScore(node=node, score=None))
        if event is not None:
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out


# ---------------------------------------------------------------------- settings


def _options(
    given: Mapping[str, Any],
    *,
    model: Any,
    device: Any,
    trust_remote_code: Any,
    cache_folder: Any,
    cross_encoder_kwargs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Every scorer setting by name (defaults filled in) from the arguments, the peer's
    aliases and ``cross_encoder_kwargs``; a setting given two ways must agree."""
    unknown = sorted(set(given) - set(SCORER_OPTIONS))
    if unknown:
        raise TypeError(
            f"CrossEncoderRerank got unexpected keyword argument(s) {unknown}; besides its "
            f"own arguments it takes the settings of crossrank.CrossEncoderScorer: "
            f"{sorted(SCORER_OPTIONS)} (docs/core.md)"
        )
    explicit: dict[str, Any] = {
        **given,
        "model": model,
        "device": device,
        "trust_remote_code": trust_remote_code,
    }
    if cache_folder is not None:
        explicit["cache_dir"] = _once("cache_dir", given, cache_folder, "cache_folder")
    for name, value in from_cross_encoder_kwargs(cross_encoder_kwargs).items():
        explicit[name] = _once(name, explicit, value, f"cross_encoder_kwargs[{name!r}]")
    options = {**SCORER_OPTIONS, **explicit}
    calibration = options["calibration"]
    if calibration is not None and not isinstance(calibration, (str, os.PathLike)):
        raise TypeError(
            "calibration must be a file or folder path (it is serialized as a string), got "
            f"{type(calibration).__name__}; to use a Calibration object, build "
            "CrossEncoderScorer(..., activation='calibrated', calibration=...) and pass scorer="
        )
    return options


def _once(name: str, given: Mapping[str, Any], value: Any, source: str) -> Any:
    """``value`` for setting ``name``, unless it was already set otherwise."""
    before = given.get(name, SCORER_OPTIONS[name])
    if before != SCORER_OPTIONS[name] and before != value:
        raise ValueError(
            f"{name} is given twice with different values: {name}={before!r} and "
            f"{source}={value!r}; pass it once"
        )
    return value


def _check_scorer(scorer: Any) -> None:
    if not isinstance(scorer, RerankScorer):
        raise TypeError(
            "scorer must be a crossrank.CrossEncoderScorer (or a scorer with its rerank "
            f"contract, crossrank.adapters.RerankScorer), got {type(scorer).__name__}"
        )


def _settings(scorer: RerankScorer) -> dict[str, Any]:
    """The scorer's settings as the fields hold them: JSON-safe, secrets included (the
    field keeps them out of ``to_dict``), ``device`` the one in use."""
    settings = scorer_settings(scorer, secrets=True)
    settings["device"] = device_in_use(settings["device"], settings["backend"])
    return settings


def _selection(
    scorer: RerankScorer,
    top_n: Any,
    score_threshold: Any,
    min_relative_score: Any,
    token_budget: Any,
) -> Selection:
    if top_n is None:  # the core's None means "all"; a postprocessor always cuts
        raise TypeError("top_n must be an int >= 1, got None; use a large top_n to keep all")
    return Selection.checked(
        activation=scorer.activation,
        fusion=resolve_fusion(scorer),
        top_k=top_n,
        score_threshold=score_threshold,
        min_relative_score=min_relative_score,
        token_budget=token_budget,
        top_k_name="top_n",
    )


# ---------------------------------------------------------------------- nodes


def _own_text(item: NodeWithScore) -> str:
    return item.node.get_content(metadata_mode=MetadataMode.NONE)


def _scored_text(item: NodeWithScore, metadata_mode: MetadataMode) -> str | None:
    """The text scored for a node; None (not scored) when its own content is blank: it
    has nothing to match the query, whatever its metadata."""
    if not _own_text(item).strip():
        return None
    return item.node.get_content(metadata_mode=metadata_mode)


def _hide(node: BaseNode, key: str) -> None:
    """Keep ``metadata[key]`` out of the node's LLM and embedding text."""
    for hidden in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
        if key not in hidden:
            hidden.append(key)


def _keep_passage(node: BaseNode, passage: tuple[int, int] | None) -> None:
    """Cut a node copy's text to its passage (offsets in the node's own text, from the
    core). Where the node records its place in a source document
    (``start_char_idx``/``end_char_idx``), those move with it."""
    text, span = cut_passage(node.get_content(metadata_mode=MetadataMode.NONE), passage)
    if span is None:  # the best window lies in the metadata: keep the whole text
        return
    start, end = span
    node.set_content(text)
    node.metadata[SPAN_KEY] = span
    _hide(node, SPAN_KEY)
    origin = getattr(node, "start_char_idx", None)  # TextNode has them; Document does not
    if origin is not None:
        node.start_char_idx = origin + start  # type: ignore[attr-defined]
        if getattr(node, "end_char_idx", None) is not None:
            node.end_char_idx = origin + end  # type: ignore[attr-defined]
