"""The Haystack ranker: a thin adapter over :class:`crossrank.CrossEncoderScorer`.

It turns Documents into ``(query, texts)``, lets the core score and select them, and turns
the kept hits back into copies of the Documents with ``score`` set (and, with
``passage_only``, ``content`` cut to the best passage).
"""

# No ``from __future__ import annotations`` here: Haystack 2.x reads the annotations of
# run() at runtime to build the component's input sockets.

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

from crossrank._optional import missing_extra
from crossrank.backends import Backend
from crossrank.scorer import CrossEncoderScorer, Reranked
from crossrank.validation import (
    check_positive_int,
    check_query,
    check_relative_cut,
    check_score_threshold,
    check_texts,
    check_top_k,
)

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.utils import ComponentDevice, Secret, deserialize_secrets_inplace
except ImportError as e:
    raise missing_extra("The Haystack ranker", "haystack", e) from e

__all__ = ["CrossEncoderRanker"]

logger = logging.getLogger("crossrank")

#: The token Haystack's Hugging Face components read by default.
_DEFAULT_TOKEN = Secret.from_env_var(["HF_API_TOKEN", "HF_TOKEN"], strict=False)


#: Meta key set on a returned Document whose content was cut to its best passage.
SPAN_KEY = "crossrank_span"


def _got(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.60}"


@component
class CrossEncoderRanker:
    """Rank Documents by relevance to a query with a local cross-encoder.

    The cross-encoder reads the query and each Document together and scores the pair. Each
    returned Document is a copy of an input Document (``dataclasses.replace``), best first,
    with ``score`` set to a Python ``float``: in (0, 1) with the default
    ``activation="sigmoid"``, the model's logit with ``"raw"``, a calibrated probability of
    relevance with ``"calibrated"``. The caller's Documents are never changed.

    - ``long_documents="chunk"`` scores long Documents window by window, so evidence past
      the model's ``max_length`` counts; ``passage_only=True`` then hands on only each
      Document's best passage (``content`` cut, ``meta["crossrank_span"]`` its character
      offsets); ``token_budget`` keeps the best Documents while their tokens fit.

    - Documents whose ``content`` is None, empty or whitespace are not scored and not
      returned; a ``crossrank`` log warning counts them.
    - Documents sharing an ``id`` are collapsed before scoring, keeping the one with the
      higher incoming ``score`` (the first one on a tie), as Haystack's own rankers do.

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
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        activation: Literal["sigmoid", "raw", "calibrated"] = "sigmoid",
        calibration: str | os.PathLike[str] | None = None,
        scale_score: bool | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        query_prefix: str = "",
        document_prefix: str = "",
        batch_size: int = 32,
        max_length: int | None = None,
        max_tokens_per_batch: int | None = None,
        long_documents: Literal["truncate", "chunk"] = "truncate",
        max_windows: int = 8,
        window_stride: int | None = None,
        aggregation: Literal["max", "mean-top", "first-weighted"] = "max",
        top_windows: int = 2,
        passage_only: bool = False,
        backend: Backend = "torch",
        onnx_cache_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        """Create the ranker. Nothing is loaded until :meth:`warm_up` or :meth:`run`.

        Args:
            model: A Hugging Face model id or a local folder of a cross-encoder. ``None``:
                the ``CROSSRANK_MODEL`` environment variable, else
                ``cross-encoder/ms-marco-MiniLM-L6-v2``; the name resolved here is the one
                :meth:`to_dict` saves.
            device: Where the model runs, e.g. ``ComponentDevice.from_str("cuda:0")``.
                ``None``: CUDA when available, else CPU. Device maps are not supported.
            token: Hugging Face token for private models, resolved when the model loads.
            top_k: Most Documents to return (``None``: all that pass ``score_threshold``).
            score_threshold: Drop Documents scoring below this (applied before ``top_k``).
            min_relative_score: Drop Documents scoring below this fraction (in [0, 1]) of
                the best one's score, e.g. ``0.5``. Not with ``activation="raw"``.
            token_budget: Keep the best Documents while their tokens (the model's
                tokenizer) add up to at most this; applied last, after ``top_k``. It counts
                the text the model reads (prefix and embedded meta fields included), or with
                ``passage_only`` the best passage, so what is handed on fits.
            activation: ``"sigmoid"`` gives scores in (0, 1); ``"raw"`` gives the logit;
                ``"calibrated"`` gives probabilities of relevance from a calibration fitted
                by ``crossrank calibrate`` (see ``calibration`` and docs/scores.md).
            calibration: With ``activation="calibrated"``: the path of a calibration file
                written by ``crossrank calibrate``, or a folder holding
                ``crossrank_calibration.json``. ``None``: that file in the model's folder.
                Saved by :meth:`to_dict` as a string.
            scale_score: The name Haystack's ``SentenceTransformersSimilarityRanker`` uses:
                ``True`` means ``activation="sigmoid"``, ``False`` means ``"raw"``. When set,
                it takes precedence over ``activation``; it cannot be combined with
                ``activation="calibrated"`` (or ``True`` with ``"raw"``).
            meta_fields_to_embed: Meta fields whose values are put before ``content`` for
                scoring (fields missing or falsy are left out). Returned Documents keep
                their content unchanged.
            embedding_separator: Joins the meta values and ``content``.
            query_prefix: Put before the query for scoring (an instruction, for example).
            document_prefix: Put before each Document's text for scoring.
            batch_size: Most (query, Document) pairs per forward pass.
            max_length: Tokens per pair the model reads (query + Document). ``None``: the
                model's own limit. Longer Documents are truncated on their end, and a
                ``crossrank`` log warning says how many.
            max_tokens_per_batch: Optional cap on padded tokens per forward pass, to bound
                memory.
            long_documents: ``"truncate"`` (default): a Document longer than ``max_length``
                is cut at its end (reported). ``"chunk"``: it is split into overlapping token
                windows that each fit beside the query, every window is scored, and the
                scores are aggregated (see docs/long-documents.md).
            max_windows: In ``"chunk"`` mode, the most windows scored per Document (its
                first ones); bounds the cost.
            window_stride: In ``"chunk"`` mode, tokens shared by neighbouring windows.
                ``None``: a quarter of the room beside the query.
            aggregation: In ``"chunk"`` mode, how window scores make the Document's:
                ``"max"`` (best window), ``"mean-top"`` (mean of the ``top_windows`` best) or
                ``"first-weighted"`` (half the first window, half the best).
            top_windows: Windows averaged by ``aggregation="mean-top"``.
            passage_only: Hand on only each Document's best passage: the returned copy's
                ``content`` is the part of the content the score comes from (the best
                window in ``"chunk"`` mode, the part read in ``"truncate"`` mode), and
                ``meta["crossrank_span"]`` is ``[start, end]``, its character offsets in the
                original content. When that part lies wholly in the prefix or embedded
                meta fields, the content is kept whole and no key is added.
            backend: Engine and precision: ``"torch"`` (fp32), ``"torch-bf16"``,
                ``"torch-fp16"`` (CUDA), ``"onnx"``, ``"onnx-int8"`` (onnxruntime on the CPU,
                ``pip install "crossrank[onnx]"``) or ``"auto"``; see docs/backends.md.
            onnx_cache_dir: Where exported ONNX files are cached (default:
                ``~/.cache/crossrank/onnx``).
            cache_dir: Folder for downloaded models. ``None``: the Hugging Face cache.
            local_files_only: Never contact the Hugging Face Hub; load from ``cache_dir``
                or a local folder.
            trust_remote_code: Allow models that ship their own modelling code.

        Raises:
            TypeError: An argument has the wrong type (the message shows what was received).
            ValueError: An argument is out of range, ``scale_score`` contradicts
                ``activation``, ``min_relative_score`` is set with ``activation="raw"``,
                or the calibration is missing or not a crossrank calibration file.
            FileNotFoundError: ``calibration`` names no file.
        """
        if scale_score is not None:
            if not isinstance(scale_score, bool):
                raise TypeError(f"scale_score must be True, False or None, got {_got(scale_score)}")
            if activation == "calibrated" or (scale_score and activation == "raw"):
                wanted = "sigmoid scores" if scale_score else "raw logits"
                raise ValueError(
                    f"scale_score={scale_score} asks for {wanted} but "
                    f"activation={activation!r}; pass only one of them"
                )
            activation = "sigmoid" if scale_score else "raw"
        if calibration is not None and not isinstance(calibration, (str, os.PathLike)):
            raise TypeError(
                "calibration must be the path of a calibration file or folder, or None, got "
                f"{_got(calibration)}"
            )
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
        if token is not None and not isinstance(token, Secret):
            raise TypeError(
                f"token must be a haystack Secret or None, got {type(token).__name__}; "
                "use Secret.from_env_var('HF_TOKEN') or Secret.from_token(...)"
            )
        plain: tuple[tuple[str, Any, type, str], ...] = (
            ("embedding_separator", embedding_separator, str, "a string"),
            ("query_prefix", query_prefix, str, "a string"),
            ("document_prefix", document_prefix, str, "a string"),
            ("passage_only", passage_only, bool, "True or False"),
            ("local_files_only", local_files_only, bool, "True or False"),
            ("trust_remote_code", trust_remote_code, bool, "True or False"),
        )
        for name, value, kind, wanted in plain:
            if not isinstance(value, kind):
                raise TypeError(f"{name} must be {wanted}, got {_got(value)}")
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a folder path or None, got {_got(cache_dir)}")
        self.top_k = check_top_k(top_k)
        self.score_threshold = check_score_threshold(score_threshold)
        self.min_relative_score = check_relative_cut(min_relative_score, activation)
        self.token_budget = check_positive_int(token_budget, name="token_budget", allow_none=True)
        self.meta_fields_to_embed = (
            None
            if meta_fields_to_embed is None
            else check_texts(meta_fields_to_embed, name="meta_fields_to_embed")
        )
        # The core checks model, activation, calibration, batch_size, max_length,
        # max_tokens_per_batch and the long-document options.
        self._scorer = CrossEncoderScorer(
            model,
            device=None if device is None else device.to_torch_str(),
            batch_size=batch_size,
            max_tokens_per_batch=max_tokens_per_batch,
            max_length=max_length,
            activation=activation,
            calibration=calibration,
            long_documents=long_documents,
            max_windows=max_windows,
            window_stride=window_stride,
            aggregation=aggregation,
            top_windows=top_windows,
            backend=backend,
            onnx_cache_dir=onnx_cache_dir,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            trust_remote_code=trust_remote_code,
        )
        self.model: str = self._scorer.model_name
        self.device = device
        self.token = token
        self.activation = activation
        self.calibration = None if calibration is None else os.fspath(calibration)
        self.long_documents = long_documents
        self.max_windows = max_windows
        self.window_stride = window_stride
        self.aggregation = aggregation
        self.top_windows = top_windows
        self.passage_only = passage_only
        self.embedding_separator = embedding_separator
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_tokens_per_batch = max_tokens_per_batch
        self.backend = backend
        self.onnx_cache_dir = None if onnx_cache_dir is None else os.fspath(onnx_cache_dir)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.local_files_only = local_files_only
        self.trust_remote_code = trust_remote_code
        self._token_resolved = False

    # ------------------------------------------------------------------ loading

    def _ready_scorer(self) -> CrossEncoderScorer:
        """The core scorer, with the token resolved before the model can load."""
        if not self._token_resolved:
            self._scorer.token = self.token.resolve_value() if self.token is not None else None
            self._token_resolved = True
        return self._scorer

    def warm_up(self) -> None:
        """Load the model now rather than on the first run. Safe to call repeatedly."""
        self._ready_scorer().warm_up()

    async def warm_up_async(self) -> None:
        """Like :meth:`warm_up`, loading in a worker thread so the event loop keeps running."""
        await self._ready_scorer().awarm_up()

    # ------------------------------------------------------------------ serialization

    def to_dict(self) -> dict[str, Any]:
        """Serialize the component to a dictionary.

        Returns:
            The type path and init parameters; ``token`` and ``device`` in Haystack's own
            serialized forms (an environment-variable Secret only).
        """
        return default_to_dict(
            self,
            model=self.model,
            device=None if self.device is None else self.device.to_dict(),
            token=None if self.token is None else self.token.to_dict(),
            top_k=self.top_k,
            score_threshold=self.score_threshold,
            min_relative_score=self.min_relative_score,
            token_budget=self.token_budget,
            activation=self.activation,
            calibration=self.calibration,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            batch_size=self.batch_size,
            max_length=self.max_length,
            max_tokens_per_batch=self.max_tokens_per_batch,
            long_documents=self.long_documents,
            max_windows=self.max_windows,
            window_stride=self.window_stride,
            aggregation=self.aggregation,
            top_windows=self.top_windows,
            passage_only=self.passage_only,
            backend=self.backend,
            onnx_cache_dir=self.onnx_cache_dir,
            cache_dir=self.cache_dir,
            local_files_only=self.local_files_only,
            trust_remote_code=self.trust_remote_code,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CrossEncoderRanker":
        """Build the component from :meth:`to_dict`'s output (``data`` is not changed).

        Options missing from ``data`` (a pipeline saved by an older version) take their
        defaults.

        Args:
            data: The dictionary to deserialize from.

        Returns:
            A new, not yet warmed-up component.
        """
        init_params = dict(data.get("init_parameters", {}))
        deserialize_secrets_inplace(init_params, keys=["token"])
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
    ) -> dict[str, list[Document]]:
        """Rank ``documents`` by relevance to ``query``, best first.

        Selection, in this order: sort by score, ``score_threshold``,
        ``min_relative_score``, ``top_k``, ``token_budget``.

        Args:
            query: The query the Documents are scored against.
            documents: The candidates, usually a retriever's output. Not changed.
            top_k: Most Documents to return; ``None``: the value given at init.
            score_threshold: Drop Documents scoring below this; ``None``: the value given
                at init.
            min_relative_score: Drop Documents scoring below this fraction of the best;
                ``None``: the value given at init.
            token_budget: Most tokens handed on in all; ``None``: the value given at init.

        Returns:
            ``{"documents": [...]}``: copies of the kept Documents, best first, each with
            ``score`` set (a Python float), and with ``passage_only`` its best passage as
            ``content``. ``[]`` for no Documents, without loading the model.
        """
        query, docs, texts, selection = self._prepare(
            query, documents, top_k, score_threshold, min_relative_score, token_budget
        )
        if not docs:
            return {"documents": []}
        reranked = self._ready_scorer().rerank(
            query, texts, **self._passages(docs), **selection
        )
        return {"documents": self._output(docs, reranked)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
    ) -> dict[str, list[Document]]:
        """Like :meth:`run`, scoring in a worker thread so the event loop keeps running.

        Same arguments and result as :meth:`run`. Safe to await from many tasks at once;
        they share one model.
        """
        query, docs, texts, selection = self._prepare(
            query, documents, top_k, score_threshold, min_relative_score, token_budget
        )
        if not docs:
            return {"documents": []}
        reranked = await self._ready_scorer().arerank(
            query, texts, **self._passages(docs), **selection
        )
        return {"documents": self._output(docs, reranked)}

    # ------------------------------------------------------------------ conversion

    def _prepare(
        self,
        query: str,
        documents: Sequence[Document],
        top_k: int | None,
        score_threshold: float | None,
        min_relative_score: float | None,
        token_budget: int | None,
    ) -> tuple[str, list[Document], list[str | None], dict[str, Any]]:
        """Check the inputs; return the query, the deduplicated Documents, their texts and
        the selection settings for this call (per-call values, else the init ones)."""
        check_query(query)
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
            raise TypeError(
                f"documents must be a list of haystack Documents, got {_got(documents)}"
            )
        for i, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise TypeError(f"documents[{i}] must be a haystack Document, got {_got(doc)}")
        top_k = self.top_k if top_k is None else check_top_k(top_k)
        if score_threshold is None:
            score_threshold = self.score_threshold
        else:
            score_threshold = check_score_threshold(score_threshold)
        if min_relative_score is None:
            min_relative_score = self.min_relative_score
        else:
            min_relative_score = check_relative_cut(min_relative_score, self.activation)
        if token_budget is None:
            token_budget = self.token_budget
        else:
            token_budget = check_positive_int(token_budget, name="token_budget")
        selection = {
            "top_k": top_k,
            "score_threshold": score_threshold,
            "min_relative_score": min_relative_score,
            "token_budget": token_budget,
        }
        docs = _deduplicate(documents)
        texts = [self._text(doc) for doc in docs]
        return self.query_prefix + query, docs, texts, selection

    def _passages(self, docs: list[Document]) -> dict[str, Any]:
        """The core's passage options: it cuts each passage from the Document's content."""
        if not self.passage_only:
            return {}
        return {"passages": True, "contents": [doc.content or "" for doc in docs]}

    def _output(self, documents: list[Document], reranked: Reranked) -> list[Document]:
        """Copies of the kept Documents, best first, each with its new score (and, with
        ``passage_only``, its best passage as content and ``meta["crossrank_span"]``)."""
        out: list[Document] = []
        for hit in reranked.hits:
            doc = documents[hit.index]
            content = doc.content or ""  # kept hits always have content
            span = hit.passage if self.passage_only else None
            if span is None:
                out.append(dataclasses.replace(doc, score=hit.score))
            else:
                start, end = span
                out.append(
                    dataclasses.replace(
                        doc,
                        score=hit.score,
                        content=content[start:end],
                        meta={**doc.meta, SPAN_KEY: [start, end]},
                    )
                )
        return out

    def _text(self, doc: Document) -> str | None:
        """What the model reads for ``doc``; None when it has no content (skipped)."""
        content = doc.content
        if content is None or not content.strip():
            return None
        meta = [str(doc.meta[key]) for key in self.meta_fields_to_embed or () if doc.meta.get(key)]
        return self.document_prefix + self.embedding_separator.join([*meta, content])


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
