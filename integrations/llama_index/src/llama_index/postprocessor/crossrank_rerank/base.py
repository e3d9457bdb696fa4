"""``CrossEncoderRerank``: a LlamaIndex node postprocessor backed by crossrank's core scorer.

The adapter only converts: nodes -> (query, texts) -> :meth:`CrossEncoderScorer.rerank`
-> new ``NodeWithScore`` objects (with ``passage_only``, copies holding the best passage,
cut from each node's own text by the core). All scoring,
selection and validation live in the core.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
    from llama_index.core.callbacks.base import EventContext
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle
except ImportError as e:
    from crossrank._optional import missing_extra

    raise missing_extra("The LlamaIndex postprocessor", "llama-index", e) from e

from crossrank.backends import Backend
from crossrank.scorer import Activation, CrossEncoderScorer, LongDocuments
from crossrank.selection import Hit
from crossrank.validation import (
    check_fraction,
    check_positive_int,
    check_query,
    check_relative_cut,
    check_score_threshold,
    check_top_k,
)
from crossrank.windows import Aggregation

__all__ = ["CrossEncoderRerank"]

dispatcher = get_dispatcher(__name__)

#: Metadata key that holds the first-stage score when ``keep_retrieval_score=True``.
RETRIEVAL_SCORE_KEY = "retrieval_score"
#: Metadata key that holds the passage's ``[start, end]`` when ``passage_only=True``.
SPAN_KEY = "crossrank_span"

# Settings that configure the core scorer; with a ready ``scorer`` they must stay unset.
_SCORER_DEFAULTS: dict[str, Any] = {
    "model": None,
    "activation": "sigmoid",
    "batch_size": 32,
    "max_length": None,
    "max_tokens_per_batch": None,
    "backend": "torch",
    "onnx_cache_dir": None,
    "device": None,
    "cache_dir": None,
    "local_files_only": False,
    "calibration": None,
    "long_documents": "truncate",
    "max_windows": 8,
    "window_stride": None,
    "aggregation": "max",
    "top_windows": 2,
}


class CrossEncoderRerank(BaseNodePostprocessor):
    """Rerank retrieved nodes with a cross-encoder, through crossrank's core scorer.

    The model is loaded on first use (or ``rerank.scorer.warm_up()``), not in the
    constructor. The caller's nodes are never changed: the result holds new
    ``NodeWithScore`` objects wrapping copies of the kept nodes, best first, with the
    cross-encoder score as a Python ``float``. The text scored for each node is
    ``node.get_content(metadata_mode=metadata_mode)``; nodes whose own content is empty
    or whitespace are not scored and not returned, whatever their metadata (a log warning
    from the core says how many). The model settings (``model``, ``activation``,
    ``calibration``, ``long_documents`` ... ``top_windows``, ``batch_size`` ...
    ``local_files_only``) are fixed when the postprocessor is built; ``top_n``,
    ``score_threshold``, ``min_relative_score``, ``token_budget``, ``passage_only``,
    ``keep_retrieval_score`` and ``metadata_mode`` are read on each call.

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
        model: A Hugging Face model id or a local folder. Default (None): the environment
            variable ``CROSSRANK_MODEL``, else ``cross-encoder/ms-marco-MiniLM-L6-v2``.
        scorer: A ready :class:`crossrank.CrossEncoderScorer` to use instead of building
            one (share one loaded model between components). Not serialized. With it,
            leave the model settings (see above) unset.
        top_n: Most nodes returned.
        score_threshold: Drop nodes scoring below this (applied before ``top_n``).
        min_relative_score: Drop nodes scoring below this fraction (0..1) of the best
            node's score (after ``score_threshold``, before ``top_n``). Not with
            ``activation="raw"`` (logits can be negative): the core raises.
        token_budget: Keep the best nodes while their tokens (the model's tokenizer) add
            up to at most this; applied last, so the result is a best-first prefix. With
            ``passage_only`` the passages' tokens are counted, else the scored texts'.
        passage_only: Return copies whose text is only the node's best passage (the best
            window in ``long_documents="chunk"`` mode, the part read in ``"truncate"``
            mode), with ``metadata["crossrank_span"] = [start, end]``, character offsets
            into the node's own text. The key is hidden from the LLM's and the
            embedder's text. A node whose best window lies wholly in its metadata keeps
            its whole text and gets no key.
        keep_retrieval_score: Keep each node's first-stage score in the copy's metadata
            under ``"retrieval_score"``, excluded from the LLM's and the embedder's text.
        activation: ``"sigmoid"`` (scores in (0, 1)), ``"raw"`` (logits) or
            ``"calibrated"`` (probabilities of relevance from ``calibration``; see
            docs/scores.md).
        calibration: With ``activation="calibrated"``: a calibration file written by
            ``crossrank calibrate``, or a folder holding ``crossrank_calibration.json``.
            Default (None): the one in the model's folder. Serialized as a path string.
        long_documents: ``"truncate"`` (default): a node longer than the model reads is
            cut (a warning is logged). ``"chunk"``: it is split into overlapping token
            windows, each scored; the node's score aggregates them
            (docs/long-documents.md).
        max_windows: In chunk mode, the most windows scored per node (bounds the cost).
        window_stride: In chunk mode, tokens shared by neighbouring windows. Default: a
            quarter of the room beside the query.
        aggregation: In chunk mode, ``"max"`` (default), ``"mean-top"`` or
            ``"first-weighted"``.
        top_windows: Windows averaged by ``aggregation="mean-top"``.
        metadata_mode: Which metadata goes into the scored text (default
            ``MetadataMode.EMBED``, as LlamaIndex's own rerankers).
        batch_size: Most pairs per forward pass.
        max_length: Tokens per (query, text) pair the model reads. Default: the model's
            own limit. Longer texts are truncated (or windowed in chunk mode).
        max_tokens_per_batch: Optional cap on padded tokens per forward pass.
        backend: ``"torch"`` (fp32), ``"torch-bf16"``, ``"torch-fp16"`` (CUDA), ``"onnx"``,
            ``"onnx-int8"`` (onnxruntime, CPU, ``pip install "crossrank[onnx]"``) or
            ``"auto"``; see docs/backends.md.
        onnx_cache_dir: Where exported ONNX files are cached.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``. Default: CUDA if available.
        cache_dir: Folder for downloaded models (default: the Hugging Face cache).
        local_files_only: Never contact the Hugging Face Hub.
        callback_manager: LlamaIndex callback manager (query engines set their own).
    """

    model: str | None = Field(
        default=None,
        description="Cross-encoder model id or folder; None: CROSSRANK_MODEL, else the "
        "crossrank default.",
    )
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
    activation: Activation = Field(
        default="sigmoid",
        description="'sigmoid' (0..1), 'raw' (logits) or 'calibrated' (probabilities).",
    )
    calibration: str | None = Field(
        default=None,
        description="With activation='calibrated': calibration file or folder; None: the "
        "model folder's crossrank_calibration.json.",
    )
    long_documents: LongDocuments = Field(
        default="truncate",
        description="'truncate' (cut long nodes) or 'chunk' (score overlapping windows).",
    )
    max_windows: int = Field(default=8, description="Chunk mode: most windows per node.")
    window_stride: int | None = Field(
        default=None,
        description="Chunk mode: tokens shared by neighbouring windows; None: a quarter of "
        "the room.",
    )
    aggregation: Aggregation = Field(
        default="max", description="Chunk mode: 'max', 'mean-top' or 'first-weighted'."
    )
    top_windows: int = Field(default=2, description="Windows averaged by 'mean-top'.")
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED,
        description="Text scored: node.get_content(metadata_mode=metadata_mode).",
    )
    batch_size: int = Field(default=32, description="Most pairs per forward pass.")
    max_length: int | None = Field(
        default=None, description="Tokens per pair the model reads; None: the model's limit."
    )
    max_tokens_per_batch: int | None = Field(
        default=None, description="Optional cap on padded tokens per forward pass."
    )
    backend: Backend = Field(
        default="torch",
        description="torch, torch-bf16, torch-fp16, onnx, onnx-int8 or auto (docs/backends.md).",
    )
    onnx_cache_dir: str | None = Field(
        default=None, description="Where exported ONNX files are cached."
    )
    device: str | None = Field(default=None, description="Torch device; None: CUDA if available.")
    cache_dir: str | None = Field(default=None, description="Folder for downloaded models.")
    local_files_only: bool = Field(default=False, description="Never contact the Hub.")

    _scorer: CrossEncoderScorer = PrivateAttr()

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        scorer: CrossEncoderScorer | None = None,
        top_n: int = 5,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        passage_only: bool = False,
        keep_retrieval_score: bool = False,
        activation: Activation = "sigmoid",
        calibration: str | os.PathLike[str] | None = None,
        long_documents: LongDocuments = "truncate",
        max_windows: int = 8,
        window_stride: int | None = None,
        aggregation: Aggregation = "max",
        top_windows: int = 2,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        batch_size: int = 32,
        max_length: int | None = None,
        max_tokens_per_batch: int | None = None,
        backend: Backend = "torch",
        onnx_cache_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        _check_top_n(top_n)
        check_score_threshold(score_threshold)
        check_fraction(min_relative_score, name="min_relative_score")
        check_positive_int(token_budget, name="token_budget", allow_none=True)
        if not isinstance(passage_only, bool):
            raise TypeError(f"passage_only must be True or False, got {passage_only!r}")
        settings: dict[str, Any] = {
            "model": None if model is None else os.fspath(model),
            "activation": activation,
            "calibration": _calibration_path(calibration),
            "long_documents": long_documents,
            "max_windows": max_windows,
            "window_stride": window_stride,
            "aggregation": aggregation,
            "top_windows": top_windows,
            "batch_size": batch_size,
            "max_length": max_length,
            "max_tokens_per_batch": max_tokens_per_batch,
            "backend": backend,
            "onnx_cache_dir": None if onnx_cache_dir is None else os.fspath(onnx_cache_dir),
            "device": device,
            "cache_dir": None if cache_dir is None else os.fspath(cache_dir),
            "local_files_only": local_files_only,
        }
        if scorer is None:
            # Building the scorer validates every setting (and reads a calibration file);
            # it loads no model.
            scorer = CrossEncoderScorer(**settings)
        else:
            settings = _settings_of(scorer, settings)
        # The core checks this on every call; say it once, now.
        check_relative_cut(min_relative_score, scorer.activation)
        fields: dict[str, Any] = {
            "top_n": top_n,
            "score_threshold": score_threshold,
            "min_relative_score": min_relative_score,
            "token_budget": token_budget,
            "passage_only": passage_only,
            "keep_retrieval_score": keep_retrieval_score,
            "metadata_mode": metadata_mode,
            **settings,
        }
        if callback_manager is not None:
            fields["callback_manager"] = callback_manager
        super().__init__(**fields)
        self._scorer = scorer

    @classmethod
    def class_name(cls) -> str:
        """Name stored by LlamaIndex serialization."""
        return "CrossEncoderRerank"

    @property
    def scorer(self) -> CrossEncoderScorer:
        """The core scorer (``rerank.scorer.warm_up()`` loads the model now)."""
        return self._scorer

    # ------------------------------------------------------------------ hooks

    @dispatcher.span
    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query = self._start(nodes, query_bundle)
        if not nodes:
            return self._end(nodes, [], None, passage_only=False)
        texts = self._texts(nodes)
        passage_only = self.passage_only  # read once: the hand-off matches the budget
        with self._event(nodes, query) as event:
            reranked = self._scorer.rerank(
                query, texts, **self._selection(nodes, passage_only)
            )
            return self._end(nodes, reranked.hits, event, passage_only=passage_only)

    @dispatcher.span
    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query = self._start(nodes, query_bundle)
        if not nodes:
            return self._end(nodes, [], None, passage_only=False)
        texts = self._texts(nodes)
        passage_only = self.passage_only
        with self._event(nodes, query) as event:
            # The core scores in a worker thread; the event loop keeps running.
            reranked = await self._scorer.arerank(
                query, texts, **self._selection(nodes, passage_only)
            )
            return self._end(nodes, reranked.hits, event, passage_only=passage_only)

    # ------------------------------------------------------------------ conversion

    def _selection(self, nodes: Sequence[NodeWithScore], passage_only: bool) -> dict[str, Any]:
        """The per-call selection options for the core (which validates them). With
        ``passage_only`` the core cuts each passage from the node's own text, so the token
        budget counts exactly what is handed on."""
        options: dict[str, Any] = {
            "top_k": self.top_n,
            "score_threshold": self.score_threshold,
            "min_relative_score": self.min_relative_score,
            "token_budget": self.token_budget,
        }
        if passage_only:
            options["passages"] = True
            options["contents"] = [
                n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes
            ]
        return options

    def _start(self, nodes: Sequence[NodeWithScore], query_bundle: QueryBundle | None) -> str:
        """Check the inputs, emit ``ReRankStartEvent`` and return the query string."""
        top_n = _check_top_n(self.top_n)
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
                top_n=top_n,
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
        return check_query(query_bundle.query_str)

    def _texts(self, nodes: Sequence[NodeWithScore]) -> list[str | None]:
        """The text scored for each node; None (not scored) when the node has no content.

        A node whose own content is blank has nothing to match the query, whatever its
        metadata: it is skipped rather than scored on its metadata alone.
        """
        texts: list[str | None] = []
        for item in nodes:
            if not item.node.get_content(metadata_mode=MetadataMode.NONE).strip():
                texts.append(None)
            else:
                texts.append(item.node.get_content(metadata_mode=self.metadata_mode))
        return texts

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
        nodes: Sequence[NodeWithScore],
        hits: list[Hit],
        event: EventContext | None,
        *,
        passage_only: bool,
    ) -> list[NodeWithScore]:
        """New NodeWithScore objects for the kept hits (the inputs stay as they were);
        close the callback event and emit ``ReRankEndEvent``."""
        out: list[NodeWithScore] = []
        for hit in hits:
            original = nodes[hit.index]
            node = original.node.model_copy(deep=True)
            if self.keep_retrieval_score:
                old = original.score
                node.metadata[RETRIEVAL_SCORE_KEY] = None if old is None else float(old)
                _hide(node, RETRIEVAL_SCORE_KEY)
            if passage_only:
                _keep_passage(node, hit.passage)
            out.append(NodeWithScore(node=node, score=hit.score))
        if event is not None:
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out


def _hide(node: BaseNode, key: str) -> None:
    """Keep ``metadata[key]`` out of the node's LLM and embedding text."""
    for hidden in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
        if key not in hidden:
            hidden.append(key)


def _keep_passage(node: BaseNode, passage: tuple[int, int] | None) -> None:
    """Cut a node copy's text to its passage (offsets in the node's own text, from the
    core). Where the node records its place in a source document
    (``start_char_idx``/``end_char_idx``), those move with it."""
    if passage is None:  # the best window lies in the metadata: keep the whole text
        return
    content = node.get_content(metadata_mode=MetadataMode.NONE)
    start, end = passage
    node.set_content(content[start:end])
    node.metadata[SPAN_KEY] = [start, end]
    _hide(node, SPAN_KEY)
    origin = getattr(node, "start_char_idx", None)  # TextNode has them; Document does not
    if origin is not None:
        node.start_char_idx = origin + start  # type: ignore[attr-defined]
        if getattr(node, "end_char_idx", None) is not None:
            node.end_char_idx = origin + end  # type: ignore[attr-defined]


def _check_top_n(top_n: Any) -> int:
    if top_n is None:  # the core's None means "all"; a postprocessor always cuts
        raise TypeError("top_n must be an int >= 1, got None; use a large top_n to keep all")
    return check_top_k(top_n, name="top_n")  # type: ignore[return-value]


def _calibration_path(calibration: Any) -> str | None:
    """The calibration as the path string that is serialized."""
    if calibration is None or isinstance(calibration, str):
        return calibration
    if isinstance(calibration, os.PathLike):
        path = os.fspath(calibration)
        if isinstance(path, str):
            return path
    raise TypeError(
        "calibration must be a file or folder path (it is serialized as a string), got "
        f"{type(calibration).__name__}; to use a Calibration object, build "
        "CrossEncoderScorer(..., activation='calibrated', calibration=...) and pass scorer="
    )


def _settings_of(scorer: CrossEncoderScorer, given: dict[str, Any]) -> dict[str, Any]:
    """The serializable settings of a ready scorer; reject settings passed beside it."""
    if not isinstance(scorer, CrossEncoderScorer):
        raise TypeError(
            f"scorer must be a crossrank.CrossEncoderScorer, got {type(scorer).__name__}"
        )
    clashing = [name for name, value in given.items() if value != _SCORER_DEFAULTS[name]]
    if clashing:
        raise ValueError(
            f"pass either scorer or the model settings, not both; got scorer and {clashing}. "
            "Configure the CrossEncoderScorer instead"
        )
    calibration = scorer.calibration
    return {
        "model": scorer.model_name,
        "activation": scorer.activation,
        # The file it was read from (None for a Calibration built in code: not serializable).
        "calibration": None if calibration is None else calibration.source,
        "long_documents": scorer.long_documents,
        "max_windows": scorer.max_windows,
        "window_stride": scorer.window_stride,
        "aggregation": scorer.aggregation,
        "top_windows": scorer.top_windows,
        "batch_size": scorer.batch_size,
        "max_length": scorer.requested_max_length,
        "max_tokens_per_batch": scorer.max_tokens_per_batch,
        "backend": scorer.backend,
        "onnx_cache_dir": scorer.onnx_cache_dir,
        "device": None if scorer.device is None else str(scorer.device),
        "cache_dir": scorer.cache_dir,
        "local_files_only": scorer.local_files_only,
    }
