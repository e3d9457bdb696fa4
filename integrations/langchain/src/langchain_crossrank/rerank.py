"""The LangChain document compressor: a thin adapter over :class:`crossrank.CrossEncoderScorer`.

It turns Documents into ``(query, texts)``, lets the core score and select them, and turns
the kept hits back into copies of the Documents with ``metadata["relevance_score"]`` (and,
with ``passage_only``, the best passage and ``metadata["crossrank_span"]``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

from crossrank._optional import missing_extra
from crossrank.backends import Backend
from crossrank.scorer import CrossEncoderScorer, Reranked
from crossrank.validation import (
    check_fraction,
    check_positive_int,
    check_relative_cut,
    check_score_threshold,
    check_texts,
    check_top_k,
)

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict, field_validator, model_validator
except ImportError as e:
    raise missing_extra("The LangChain compressor", "langchain", e) from e

__all__ = ["CrossEncoderRerank"]

# Metadata key of the best passage's ``[start, end]`` in the original ``page_content``.
_SPAN_KEY = "crossrank_span"

# Fields that only matter when the compressor builds its own scorer.
_LOADING_OPTIONS = (
    "model",
    "activation",
    "calibration",
    "long_documents",
    "max_windows",
    "window_stride",
    "aggregation",
    "top_windows",
    "batch_size",
    "max_length",
    "max_tokens_per_batch",
    "backend",
    "onnx_cache_dir",
    "device",
    "cache_dir",
    "local_files_only",
)


class CrossEncoderRerank(BaseDocumentCompressor):
    """Rerank Documents with a local cross-encoder and keep the best ones.

    Each returned Document is a copy of an input Document, best first, with its score in
    ``metadata["relevance_score"]`` (a Python ``float``; in (0, 1) with the default
    ``activation="sigmoid"``). The caller's Documents and metadata dicts are not changed.
    Documents whose ``page_content`` is empty or whitespace are not scored and not
    returned (a ``crossrank`` log warning counts them).

    Long documents: ``long_documents="chunk"`` scores overlapping windows of each Document
    and ``passage_only=True`` hands on only the best one (its ``[start, end]`` in the
    original ``page_content`` in ``metadata["crossrank_span"]``); ``token_budget`` caps the
    tokens handed on. See docs/long-documents.md.

    The model is loaded once, on first use (or by ``reranker.scorer.warm_up()``), and is
    safe to share between threads and concurrent async calls. Constructing the compressor
    is cheap.

    Example:
        >>> from langchain_crossrank import CrossEncoderRerank
        >>> from langchain_core.documents import Document
        >>> reranker = CrossEncoderRerank(top_n=1)
        >>> docs = [Document(page_content="Berlin is in Germany."),
        ...         Document(page_content="Paris is the capital of France.")]
        >>> [d.page_content for d in reranker.compress_documents(docs, "capital of France")]
        ['Paris is the capital of France.']

        With a retriever (``langchain-classic``)::

            from langchain_classic.retrievers import ContextualCompressionRetriever

            retriever = ContextualCompressionRetriever(
                base_compressor=CrossEncoderRerank(top_n=5), base_retriever=base_retriever
            )
    """

    model: str | Path | None = None
    """Hugging Face model id or local folder of the cross-encoder. ``None``: the
    ``CROSSRANK_MODEL`` environment variable, else ``cross-encoder/ms-marco-MiniLM-L6-v2``.
    Not together with ``scorer``."""

    scorer: CrossEncoderScorer | None = None
    """A ready :class:`crossrank.CrossEncoderScorer` to use (and share) instead of building
    one. Its own settings apply: leave ``model``, ``activation``, ``calibration``,
    ``long_documents``, ``max_windows``, ``window_stride``, ``aggregation``,
    ``top_windows``, ``batch_size``, ``max_length``, ``max_tokens_per_batch``, ``backend``,
    ``onnx_cache_dir``, ``device``, ``cache_dir`` and ``local_files_only`` at their
    defaults. Once built, this is always the scorer in use (``reranker.scorer.warm_up()``
    loads the model now)."""

    top_n: int | None = 3
    """Most Documents to return (``None``: all that pass the other cuts)."""

    score_threshold: float | None = None
    """Drop Documents scoring below this (applied before ``top_n``). ``None``: keep all."""

    min_relative_score: float | None = None
    """Drop Documents scoring below this fraction (0 to 1) of the best one's score (after
    ``score_threshold``, before ``top_n``). Not with ``activation="raw"``. ``None``: off."""

    token_budget: int | None = None
    """Keep the best Documents while their tokens (the model's tokenizer) add up to at most
    this; applied last, after ``top_n``. Counts what is handed on: the passage with
    ``passage_only``, else the text scored. ``None``: no budget."""

    passage_only: bool = False
    """Return only each Document's best passage as ``page_content`` (the window its score
    comes from in ``long_documents="chunk"`` mode, the part read in ``"truncate"`` mode),
    with its ``[start, end]`` in the original ``page_content`` in
    ``metadata["crossrank_span"]``. Content kept whole (no key) when the passage lies
    wholly in embedded metadata."""

    activation: Literal["sigmoid", "raw", "calibrated"] = "sigmoid"
    """``"sigmoid"`` gives scores in (0, 1); ``"raw"`` gives the model's logit;
    ``"calibrated"`` gives probabilities of relevance from ``calibration`` (docs/scores.md)."""

    calibration: str | None = None
    """With ``activation="calibrated"``: a file written by ``crossrank calibrate``, or a
    folder holding ``crossrank_calibration.json``. ``None``: the one in the model's folder.
    Kept as a string (a ``Path`` is converted)."""

    long_documents: Literal["truncate", "chunk"] = "truncate"
    """``"truncate"``: text past ``max_length`` is not read (a log warning counts it).
    ``"chunk"``: each Document is scored in overlapping token windows and the window scores
    are aggregated (``aggregation``). See docs/long-documents.md."""

    max_windows: int = 8
    """In ``"chunk"`` mode, most windows scored per Document (the first ones); bounds cost."""

    window_stride: int | None = None
    """In ``"chunk"`` mode, tokens shared by consecutive windows. ``None``: a quarter of the
    room beside the query."""

    aggregation: Literal["max", "mean-top", "first-weighted"] = "max"
    """In ``"chunk"`` mode, how window scores make the Document's: ``"max"`` (best window),
    ``"mean-top"`` (mean of the ``top_windows`` best) or ``"first-weighted"`` (half the
    first window, half the best)."""

    top_windows: int = 2
    """Windows averaged by ``aggregation="mean-top"``."""

    metadata_keys_to_embed: list[str] | None = None
    """Metadata keys whose values are put before ``page_content`` for scoring, one
    ``"key: value"`` line each (keys missing, ``None`` or blank are left out). The returned
    ``page_content`` is unchanged."""

    embedding_separator: str = "\n"
    """Joins the ``"key: value"`` lines and ``page_content``."""

    batch_size: int = 32
    """Most (query, document) pairs per forward pass."""

    max_length: int | None = None
    """Tokens per pair the model reads (query + document). ``None``: the model's own limit.
    Longer documents are truncated; a ``crossrank`` log warning says how many."""

    max_tokens_per_batch: int | None = None
    """Optional cap on padded tokens per forward pass, to bound memory."""

    backend: Backend = "torch"
    """Engine and precision: ``"torch"`` (fp32), ``"torch-bf16"``, ``"torch-fp16"`` (CUDA),
    ``"onnx"``, ``"onnx-int8"`` (onnxruntime on the CPU, ``pip install "crossrank[onnx]"``)
    or ``"auto"``; see docs/backends.md."""

    onnx_cache_dir: str | Path | None = None
    """Where exported ONNX files are cached. ``None``: ``~/.cache/crossrank/onnx``."""

    device: str | None = None
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``. ``None``: CUDA, else MPS, else CPU."""

    cache_dir: str | Path | None = None
    """Folder for downloaded models. ``None``: the Hugging Face cache."""

    local_files_only: bool = False
    """Never contact the Hugging Face Hub; load from ``cache_dir`` or a local folder."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", use_attribute_docstrings=True
    )

    # ------------------------------------------------------------------ validation

    @field_validator("model", mode="before")
    @classmethod
    def _check_model(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"model must be a model id or a folder path, got {value!r}")
        return value

    @field_validator("top_n", mode="before")
    @classmethod
    def _check_top_n(cls, value: Any) -> int | None:
        return check_top_k(value, name="top_n")

    @field_validator("score_threshold", mode="before")
    @classmethod
    def _check_score_threshold(cls, value: Any) -> float | None:
        return check_score_threshold(value)

    @field_validator("batch_size", "max_windows", "top_windows", mode="before")
    @classmethod
    def _check_positive(cls, value: Any, info: Any) -> int | None:
        return check_positive_int(value, name=info.field_name)

    @field_validator(
        "max_length", "max_tokens_per_batch", "window_stride", "token_budget", mode="before"
    )
    @classmethod
    def _check_optional_positive(cls, value: Any, info: Any) -> int | None:
        return check_positive_int(value, name=info.field_name, allow_none=True)

    @field_validator("min_relative_score", mode="before")
    @classmethod
    def _check_min_relative_score(cls, value: Any) -> float | None:
        return check_fraction(value, name="min_relative_score")

    @field_validator("calibration", mode="before")
    @classmethod
    def _check_calibration(cls, value: Any) -> Any:
        """A path is kept as a string, so the field serializes as one."""
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("metadata_keys_to_embed", mode="before")
    @classmethod
    def _check_metadata_keys(cls, value: Any) -> list[str] | None:
        return None if value is None else check_texts(value, name="metadata_keys_to_embed")

    @model_validator(mode="after")
    def _use_or_build_scorer(self) -> CrossEncoderRerank:
        """Check ``scorer`` against the loading options, or build the scorer from them.

        Building is cheap: the model loads on first use.
        """
        if self.scorer is None:
            self.scorer = CrossEncoderScorer(
                self.model,
                device=self.device,
                batch_size=self.batch_size,
                max_tokens_per_batch=self.max_tokens_per_batch,
                max_length=self.max_length,
                activation=self.activation,
                calibration=self.calibration,
                long_documents=self.long_documents,
                max_windows=self.max_windows,
                window_stride=self.window_stride,
                aggregation=self.aggregation,
                top_windows=self.top_windows,
                backend=self.backend,
                onnx_cache_dir=self.onnx_cache_dir,
                cache_dir=self.cache_dir,
                local_files_only=self.local_files_only,
            )
        else:
            fields = type(self).model_fields
            given = [n for n in _LOADING_OPTIONS if getattr(self, n) != fields[n].default]
            if given:
                raise ValueError(
                    "pass either scorer or model-loading options, not both: got scorer="
                    f"{self.scorer!r} and "
                    f"{', '.join(f'{n}={getattr(self, n)!r}' for n in given)}; "
                    "set these on the CrossEncoderScorer instead"
                )
        # The core checks this on every call; say it once, now.
        check_relative_cut(self.min_relative_score, self.scorer.activation)
        return self

    # ------------------------------------------------------------------ public API

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` against ``query`` and return the best, best first.

        Args:
            documents: The retrieved Documents. Not changed.
            query: The query they are scored against.
            callbacks: Accepted for the LangChain interface; the compressor emits no
                events of its own.

        Returns:
            Copies of the kept Documents, with ``metadata["relevance_score"]`` (a Python
            float); with ``passage_only``, ``page_content`` is the best passage and
            ``metadata["crossrank_span"]`` its ``[start, end]``. ``[]`` for no Documents
            (the model is not loaded).
        """
        docs = list(documents)
        texts = self._texts(docs)
        scorer = cast(CrossEncoderScorer, self.scorer)
        reranked = scorer.rerank(query, texts, **self._selection(docs))
        return self._results(docs, reranked)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Like :meth:`compress_documents`, scoring in a worker thread so the event loop runs.

        Safe to await from many tasks at once; they share one model.
        """
        docs = list(documents)
        texts = self._texts(docs)
        reranked = await cast(CrossEncoderScorer, self.scorer).arerank(
            query, texts, **self._selection(docs)
        )
        return self._results(docs, reranked)

    # ------------------------------------------------------------------ conversion

    def _selection(self, documents: list[Document]) -> dict[str, Any]:
        """The core's selection arguments (applied per call, whatever the scorer). With
        ``passage_only`` the core cuts each passage from ``page_content``, so the token
        budget counts exactly what is handed on."""
        options: dict[str, Any] = {
            "top_k": self.top_n,
            "score_threshold": self.score_threshold,
            "min_relative_score": self.min_relative_score,
            "token_budget": self.token_budget,
        }
        if self.passage_only:
            options["passages"] = True
            options["contents"] = [doc.page_content for doc in documents]
        return options

    def _texts(self, documents: list[Document]) -> list[str]:
        """The text the model reads for each Document (blank content stays blank: skipped)."""
        keys = self.metadata_keys_to_embed
        if not keys:
            return [doc.page_content for doc in documents]
        texts = []
        for doc in documents:
            content = doc.page_content
            lines = [
                f"{key}: {value}"
                for key in keys
                if (value := doc.metadata.get(key)) is not None and str(value).strip()
            ]
            blank = not content or not content.strip()
            texts.append(content if blank else self.embedding_separator.join([*lines, content]))
        return texts

    def _results(self, documents: list[Document], reranked: Reranked) -> list[Document]:
        """Copies of the kept Documents, best first, with their scores (and passages)."""
        out = []
        for hit in reranked.hits:
            doc = documents[hit.index]
            update: dict[str, Any] = {}
            metadata = {**doc.metadata, "relevance_score": hit.score}
            if self.passage_only:
                span = hit.passage
                if span is not None:
                    update["page_content"] = doc.page_content[span[0] : span[1]]
                    metadata[_SPAN_KEY] = [span[0], span[1]]
            update["metadata"] = metadata
            out.append(doc.model_copy(update=update))
        return out
