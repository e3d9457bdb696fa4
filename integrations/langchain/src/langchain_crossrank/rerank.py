"""The LangChain document compressor: a thin adapter over crossrank's shared adapter layer.

It reads each Document's text (and, with fusion, its first-stage score from a metadata
key), lets :func:`crossrank.adapters.rerank_items` score and select them, and copies the
kept ones with ``metadata["relevance_score"]`` (and, with ``passage_only``, the best
passage and ``metadata["crossrank_span"]``; with fusion, the cross-encoder's own score in
``metadata["crossrank_model_score"]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, cast

from crossrank._optional import missing_extra
from crossrank.adapters import (
    MODEL_SCORE_KEY,
    SCORER_OPTIONS,
    SPAN_KEY,
    UNSCORED_KEY,
    FirstStage,
    Ranked,
    RerankScorer,
    Selection,
    cut_passage,
    rerank_items,
)
from crossrank.families.prompts import check_instruction
from crossrank.fusion import resolve_fusion
from crossrank.scorer import Reranked
from crossrank.selection import Hit, select, split_blank
from crossrank.validation import check_query, check_texts

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.runnables.config import run_in_executor
    from pydantic import SkipValidation, field_serializer, field_validator, model_validator
except ImportError as e:
    raise missing_extra("The LangChain compressor", "langchain", e) from e
from langchain_crossrank._settings import ScorerSettings
from langchain_crossrank.cross_encoder import BaseCrossEncoder

__all__ = ["CrossEncoderRerank"]


class CrossEncoderRerank(ScorerSettings, BaseDocumentCompressor):
    """Rerank Documents with a local cross-encoder and keep the best ones.

    Each returned Document is a copy of an input Document, best first, with its score in
    ``metadata["relevance_score"]`` (a Python ``float``; in (0, 1) with the default
    ``activation="sigmoid"``). The caller's Documents and metadata dicts are not changed.
    Documents whose ``page_content`` is empty or whitespace are not scored and not
    returned (a ``crossrank`` log warning counts them).

    With ``fusion="linear"`` (or ``"rrf"``) the cross-encoder's score is mixed, per query,
    with each Document's first-stage score, read from ``metadata[first_stage_key]``
    (default ``"score"``): ``relevance_score`` is then the fused score, which orders and
    selects, and ``metadata["crossrank_model_score"]`` the cross-encoder's own. A Document
    with content and no such key is an error (docs/langchain.md, "First-stage fusion").

    The scorer settings (``device``, ``batch_size``, ``activation``, ``long_documents``,
    ``backend``, ``model_kwargs``...) are those of ``crossrank.CrossEncoderScorer``, under
    the same names and with the same defaults; they are documented there (docs/core.md).
    ``model`` also takes a LangChain ``BaseCrossEncoder`` (``HuggingFaceCrossEncoder``,
    ``FakeCrossEncoder``...), as langchain-classic's ``CrossEncoderReranker`` does.

    The model is loaded once, on first use (or by ``reranker.scorer.warm_up()``), and is
    safe to share between threads and concurrent async calls (``acompress_documents`` runs
    in a worker thread). Constructing the compressor is cheap.

    An instruction-following model (Qwen3-Reranker...) reads the ``instruction`` setting;
    one call (or one bound retriever) may give its own in the run's metadata, under
    ``"crossrank_instruction"``, which LangChain hands to the compressor with its callbacks:
    ``retriever.invoke(query, config={"metadata": {"crossrank_instruction": "..."}})`` or
    ``retriever.with_config(metadata={...})`` (docs/langchain.md).

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

    model: SkipValidation[str | BaseCrossEncoder | None] = None
    """Hugging Face model id or local folder of the cross-encoder. ``None``: the
    ``CROSSRANK_MODEL`` environment variable, else ``cross-encoder/ms-marco-MiniLM-L6-v2``.
    Or a LangChain ``BaseCrossEncoder`` object, whose ``score(pairs)`` then gives the
    scores: the scorer settings, ``token_budget`` and ``passage_only`` do not apply to it,
    and it is not written by ``model_dump``. Not together with ``scorer``."""

    top_n: SkipValidation[int | None] = 3
    """Most Documents to return (``None``: all that pass the other cuts)."""

    score_threshold: SkipValidation[float | None] = None
    """Drop Documents scoring below this (applied before ``top_n``). ``None``: keep all."""

    min_relative_score: SkipValidation[float | None] = None
    """Drop Documents scoring below this fraction (0 to 1) of the best one's score (after
    ``score_threshold``, before ``top_n``). Not with ``activation="raw"``. ``None``: off."""

    token_budget: SkipValidation[int | None] = None
    """Keep the best Documents while their tokens (the model's tokenizer) add up to at most
    this; applied last, after ``top_n``. Counts what is handed on: the passage with
    ``passage_only``, else the text scored. ``None``: no budget."""

    passage_only: bool = False
    """Return only each Document's best passage as ``page_content`` (the window its score
    comes from with ``long_documents="chunk"``, the part read with ``"truncate"``), with its
    ``[start, end]`` in the original ``page_content`` in ``metadata["crossrank_span"]``.
    Content kept whole (no key) when the passage lies wholly in embedded metadata."""

    metadata_keys_to_embed: list[str] | None = None
    """Metadata keys whose values are put before ``page_content`` for scoring, one
    ``"key: value"`` line each (keys missing, ``None`` or blank are left out). The returned
    ``page_content`` is unchanged."""

    embedding_separator: str = "\n"
    """Joins the ``"key: value"`` lines and ``page_content``."""

    first_stage_key: str = "score"
    """With ``fusion``: the metadata key holding each Document's first-stage (retriever)
    score. Retrievers differ: ``"score"`` is what LangChain's how-to on adding scores to
    retriever results writes; see docs/langchain.md for others. A Document with content
    and no number there is an error naming the key and the keys it has."""

    @field_validator("metadata_keys_to_embed", mode="before")
    @classmethod
    def _check_metadata_keys(cls, value: Any) -> list[str] | None:
        return None if value is None else check_texts(value, name="metadata_keys_to_embed")

    @field_serializer("model")
    def _save_model(self, model: Any) -> str | None:
        if isinstance(model, BaseCrossEncoder):
            raise TypeError(
                f"model={type(model).__name__}(...) is a LangChain BaseCrossEncoder object, "
                "which has no saved form; save a compressor built from a model id or "
                "folder (model='...') instead"
            )
        return cast(str | None, model)

    @model_validator(mode="after")
    def _scorer_and_selection(self) -> CrossEncoderRerank:
        """Build or adopt the scorer (cheap: the model loads on first use), and check the
        selection against its activation, once, now."""
        if isinstance(self.model, BaseCrossEncoder):
            self.scorer = _CrossEncoderModel.adopt(self)
        else:
            self._use_or_build_scorer("CrossEncoderRerank")
        self._selection()
        return self

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
        *,
        deadline_ms: float | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` against ``query`` and return the best, best first.

        :meth:`acompress_documents` runs this in a worker thread, so the event loop keeps
        running.

        Args:
            documents: The retrieved Documents. Not changed.
            query: The query they are scored against.
            callbacks: The run's callback manager (LangChain passes it): the compressor
                emits no events of its own, and reads this call's instruction from its
                metadata, key ``"crossrank_instruction"`` (a string; ``""``: none).
            deadline_ms: This call's time budget in milliseconds (``None``: the scorer's
                ``deadline_ms``); Documents left unscored follow the scored ones.

        Returns:
            Copies of the kept Documents, with ``metadata["relevance_score"]`` (a Python
            float); with ``passage_only``, ``page_content`` is the best passage and
            ``metadata["crossrank_span"]`` its ``[start, end]``. Then any Documents left
            unscored (a deadline, a cascade's rest), in the order they came in, with
            ``relevance_score`` None and ``metadata["crossrank_unscored"]`` True. ``[]``
            for no Documents (the model is not loaded).
        """
        ranked = rerank_items(
            cast(RerankScorer, self.scorer),
            query,
            list(documents),
            text=self._text,
            content=_page_content,
            selection=self._selection(),
            passages=self.passage_only,
            first_stage=self._first_stage(),
            instruction=_call_instruction(callbacks),
            deadline_ms=deadline_ms,
        )
        unscored = [
            doc.model_copy(
                update={"metadata": {**doc.metadata, "relevance_score": None, UNSCORED_KEY: True}}
            )
            for doc in ranked.unscored
        ]
        return [self._copy(hit) for hit in ranked.hits] + unscored

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
        *,
        deadline_ms: float | None = None,
    ) -> Sequence[Document]:
        """:meth:`compress_documents` in LangChain's executor (same arguments and result):
        what LangChain's own ``acompress_documents`` does, with the run's context (callbacks,
        tracing) carried into the worker thread, plus ``deadline_ms``."""
        if deadline_ms is None:
            return await run_in_executor(None, self.compress_documents, documents, query, callbacks)
        return await run_in_executor(
            None, partial(self.compress_documents, deadline_ms=deadline_ms), documents, query,
            callbacks,
        )  # fmt: skip

    def _first_stage(self) -> FirstStage[Document]:
        key = self.first_stage_key
        return FirstStage(
            read=lambda doc: doc.metadata.get(key),
            where=f"documents[{{i}}].metadata[{key!r}]",
            hint=lambda doc: (
                f"; that Document's metadata keys are {sorted(map(str, doc.metadata))}: set "
                "first_stage_key to the one holding your retriever's score (docs/langchain.md)"
            ),
        )

    def _selection(self) -> Selection:
        scorer = cast(RerankScorer, self.scorer)
        return Selection.checked(
            activation=scorer.activation,
            fusion=resolve_fusion(scorer),
            top_k=self.top_n,
            score_threshold=self.score_threshold,
            min_relative_score=self.min_relative_score,
            token_budget=self.token_budget,
            top_k_name="top_n",
        )

    def _text(self, doc: Document) -> str:
        """What the model reads: ``page_content``, after any embedded metadata lines
        (blank content stays blank, so the Document is skipped)."""
        content = doc.page_content
        keys = self.metadata_keys_to_embed
        if not keys or not content.strip():
            return content
        lines = [
            f"{key}: {value}"
            for key in keys
            if (value := doc.metadata.get(key)) is not None and str(value).strip()
        ]
        return self.embedding_separator.join([*lines, content])

    def _copy(self, hit: Ranked[Document]) -> Document:
        """A copy of a kept Document with its score (and its passage)."""
        doc = hit.item
        metadata = {**doc.metadata, "relevance_score": hit.score}
        if hit.model_score is not None:
            metadata[MODEL_SCORE_KEY] = hit.model_score
        update: dict[str, Any] = {"metadata": metadata}
        if self.passage_only:
            passage, span = cut_passage(doc.page_content, hit.passage)
            if span is not None:
                update["page_content"] = passage
                metadata[SPAN_KEY] = span
        return doc.model_copy(update=update)


def _page_content(doc: Document) -> str:
    return doc.page_content


#: The run-metadata key of a call's instruction (LangChain's ``RunnableConfig`` metadata
#: reaches a compressor through its callback manager; its ``configurable`` does not).
_INSTRUCTION_KEY = "crossrank_instruction"


def _call_instruction(callbacks: Callbacks | None) -> str | None:
    """This call's instruction: the run metadata's ``"crossrank_instruction"``, or None."""
    metadata = getattr(callbacks, "metadata", None)
    if not isinstance(metadata, Mapping):
        return None
    return check_instruction(
        metadata.get(_INSTRUCTION_KEY), name=f"the run metadata's {_INSTRUCTION_KEY!r}"
    )


class _CrossEncoderModel:
    """A LangChain ``BaseCrossEncoder`` as a crossrank scorer: its ``score(pairs)`` gives the
    scores, crossrank's selection keeps the best. Blank texts are skipped, as with
    crossrank's scorer; its scores are the model's own (``activation`` is ``"raw"``)."""

    activation = "raw"

    def __init__(self, model: BaseCrossEncoder) -> None:
        self.model = model
        self.model_name = type(model).__name__

    @classmethod
    def adopt(cls, reranker: CrossEncoderRerank) -> _CrossEncoderModel:
        """The scorer for ``reranker.model``, once the options that cannot apply are refused."""
        model = cast(BaseCrossEncoder, reranker.model)
        given = [
            f"{name}={getattr(reranker, name)!r}"
            for name in (*SCORER_OPTIONS, "scorer", "token_budget", "passage_only")
            if name != "model"
            and getattr(reranker, name)
            != type(reranker).model_fields[name].get_default(call_default_factory=True)
        ]
        if given:
            raise ValueError(
                f"CrossEncoderRerank: model={type(model).__name__}(...) is a LangChain "
                "BaseCrossEncoder, which scores pairs itself, so crossrank's scorer settings, "
                f"scorer, token_budget and passage_only do not apply; got {', '.join(given)}. "
                "Pass a model id or folder (model='...') to use crossrank's scorer with them"
            )
        return cls(model)

    def warm_up(self) -> None:
        """Nothing to load: the object given is ready."""

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
        activation: Any = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: Any = None,
        fusion_weight: float | None = None,
        fusion_normalization: Any = None,
        instruction: str | None = None,
    ) -> Reranked:
        """Score the texts with the model and keep the best (``crossrank.select``)."""
        check_query(query)
        if instruction is not None:
            raise ValueError(
                f"{self.model_name} scores pairs itself and takes no instruction; pass a "
                "model id or folder (model='...') to use crossrank's scorer with one"
            )
        if first_stage_scores is not None or fusion not in (None, "none"):
            raise ValueError(
                f"first-stage fusion needs crossrank's scorer, got model={self.model_name}"
            )
        if activation not in (None, "raw"):
            raise ValueError(
                f"{self.model_name} gives its own scores; activation={activation!r} needs "
                "crossrank's scorer"
            )
        if token_budget is not None or passages:
            raise ValueError(
                f"token_budget and passages need crossrank's scorer, got model={self.model_name}"
            )
        scorable, skipped = split_blank(texts)
        scores = self.model.score([(query, cast(str, texts[i])) for i in scorable])
        scores = [float(s) for s in scores] if scorable else []
        if len(scores) != len(scorable):
            raise ValueError(
                f"{self.model_name}.score returned {len(scores)} scores for "
                f"{len(scorable)} pairs; a BaseCrossEncoder must return one per pair"
            )
        kept = select(
            scores,
            top_k=top_k,
            score_threshold=score_threshold,
            min_relative_score=min_relative_score,
        )
        hits = [Hit(index=scorable[j], score=scores[j]) for j in kept]
        return Reranked(hits=hits, skipped=skipped, pairs=len(scorable))

    async def arerank(self, query: str, texts: Sequence[str | None], **options: Any) -> Reranked:
        """:meth:`rerank` in a worker thread."""
        return await asyncio.to_thread(self.rerank, query, texts, **options)
