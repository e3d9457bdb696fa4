"""crossrank's scorer behind LangChain's ``BaseCrossEncoder`` interface (``score(text_pairs)``).

For code built on that interface, langchain-classic's ``CrossEncoderReranker`` first of all:
keep it and swap ``HuggingFaceCrossEncoder`` for :class:`CrossrankCrossEncoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from crossrank._optional import missing_extra
from crossrank.adapters import RerankScorer
from crossrank.validation import check_query

try:
    # langchain-core >= 1.2.19; langchain-classic >= 1.0.3 re-exports this one.
    from langchain_core.cross_encoders import BaseCrossEncoder
except ImportError as first:  # older langchain-core: the class lived in langchain(-classic)
    try:
        from langchain_classic.retrievers.document_compressors.cross_encoder import (
            BaseCrossEncoder,
        )
    except ImportError:
        try:
            from langchain.retrievers.document_compressors.cross_encoder import (  # type: ignore[no-redef]
                BaseCrossEncoder,
            )
        except ImportError:
            raise missing_extra("The LangChain integration", "langchain", first) from first
from pydantic import SkipValidation, model_validator

from langchain_crossrank._hf_compat import from_huggingface_cross_encoder
from langchain_crossrank._settings import ScorerSettings

__all__ = ["BaseCrossEncoder", "CrossrankCrossEncoder"]


class CrossrankCrossEncoder(ScorerSettings, BaseCrossEncoder):
    """A LangChain ``BaseCrossEncoder`` on crossrank's scorer.

    ``score(text_pairs)`` returns one Python ``float`` per ``(query, text)`` pair, in the
    order given (pairs may mix queries: each query's texts are scored together). Use it
    wherever LangChain takes a ``BaseCrossEncoder``, e.g. langchain-classic's
    ``CrossEncoderReranker`` in place of ``HuggingFaceCrossEncoder``. For crossrank's own
    compressor (scores in metadata, thresholds, long documents, token budget) use
    :class:`langchain_crossrank.CrossEncoderRerank`.

    The fields are crossrank's scorer settings (``crossrank.CrossEncoderScorer``,
    docs/core.md), under the same names and defaults, or a ready ``scorer``. The model loads
    on first use, once, and is safe to share between threads.

    ``HuggingFaceCrossEncoder``'s own arguments work too: ``model_name=`` is ``model``, and
    the keys of ``model_kwargs`` that are sentence-transformers ``CrossEncoder`` arguments
    (``device``, ``max_length``, ``backend``, ``cache_folder``, ``trust_remote_code``,
    ``revision``, ``local_files_only``, ``token``, ``config_kwargs``, ``processor_kwargs``,
    ``activation_fn``, and ``model_kwargs`` for ``from_pretrained``) become the settings of
    the same meaning; any other key is a ``from_pretrained`` argument, as in crossrank's
    other classes. So ``HuggingFaceCrossEncoder(model_name=m, model_kwargs={"device":
    "cpu"})`` becomes ``CrossrankCrossEncoder(model_name=m, model_kwargs={"device":
    "cpu"})``. Two defaults differ: without a model, crossrank's default model
    (``HuggingFaceCrossEncoder``'s is ``BAAI/bge-reranker-base``), and ``backend="auto"``
    (sentence-transformers runs ``torch``); pass ``backend="torch"`` for its exact scores
    (docs/langchain.md).

    A blank text (empty or whitespace) is not scored by crossrank: its score is
    ``float("-inf")``, so it sorts last and fails any threshold.

    Example:
        >>> from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
        >>> from langchain_crossrank import CrossrankCrossEncoder
        >>> model = CrossrankCrossEncoder(model="cross-encoder/ms-marco-MiniLM-L6-v2")
        >>> compressor = CrossEncoderReranker(model=model, top_n=3)
        >>> query = "capital of France"
        >>> model.score([(query, "Paris is in France."), (query, "Bananas.")])
        [0.97..., 0.00...]
    """

    model: SkipValidation[str | None] = None
    """Hugging Face model id or local folder of the cross-encoder. ``None``: the
    ``CROSSRANK_MODEL`` environment variable, else ``cross-encoder/ms-marco-MiniLM-L6-v2``.
    Not together with ``scorer``."""

    @model_validator(mode="before")
    @classmethod
    def _huggingface_cross_encoder_arguments(cls, data: Any) -> Any:
        """``model_name`` and ``model_kwargs`` as ``HuggingFaceCrossEncoder`` takes them."""
        return from_huggingface_cross_encoder(data) if isinstance(data, dict) else data

    @property
    def model_name(self) -> str:
        """The model in use (``HuggingFaceCrossEncoder``'s name for it)."""
        return str(self.model if self.model is not None else self.scorer.model_name)  # type: ignore[union-attr]

    @model_validator(mode="after")
    def _scorer(self) -> CrossrankCrossEncoder:
        self._use_or_build_scorer("CrossrankCrossEncoder")
        return self

    def score(self, text_pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Score each ``(query, text)`` pair.

        Args:
            text_pairs: ``(query, text)`` pairs (tuples or two-item lists). Not changed.

        Returns:
            One Python float per pair, in input order; ``-inf`` for a blank text. ``[]``
            for no pairs (the model is not loaded).

        Raises:
            TypeError: A pair is not two strings.
            ValueError: A query is blank.
        """
        by_query: dict[str, list[int]] = {}
        for i, pair in enumerate(text_pairs):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise TypeError(
                    f"text_pairs[{i}] must be a (query, text) pair, got {type(pair).__name__} "
                    f"{pair!r:.60}"
                )
            query = check_query(pair[0])
            if not isinstance(pair[1], str) or pair[1].strip():  # a blank text stays -inf
                by_query.setdefault(query, []).append(i)
        scorer = cast(RerankScorer, self.scorer)
        scores = [float("-inf")] * len(text_pairs)
        for query, positions in by_query.items():
            reranked = scorer.rerank(query, [text_pairs[i][1] for i in positions])
            for hit in reranked.hits:
                scores[positions[hit.index]] = hit.score
        return scores
