"""``BiEncoderScorer``: a sentence-transformers bi-encoder as a scorer, for a cascade's
cheap stage.

It embeds the query and each text apart and scores them by cosine similarity, in [-1, 1]
(``activation`` is ``"raw"``: a relative cut is refused). Far cheaper per candidate than a
cross-encoder, and less precise: the usual first stage of a :class:`crossrank.compose.Cascade`.
It has no windows or spans (``passages`` is refused) and no fusion.

Example:
    >>> from crossrank.compose import BiEncoderScorer
    >>> scorer = BiEncoderScorer("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    >>> [h.index for h in scorer.rerank("capital of France", ["Berlin.", "Paris."]).hits]
    [1, 0]
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from crossrank.compose.config import register_config_type
from crossrank.rerank_call import CallOptions, finish, token_counter
from crossrank.results import Reranked
from crossrank.selection import Hit
from crossrank.validation import check_positive_int

__all__ = ["BiEncoderScorer"]

_CONFIG_KEYS = ("model", "device", "batch_size", "local_files_only")


class BiEncoderScorer:
    """Score (query, text) pairs by the cosine of their sentence-transformers embeddings.

    The model loads once, on first use or :meth:`warm_up`; calls from several threads are
    safe (they take turns on the model).

    Args:
        model: A sentence-transformers model id or folder (a bi-encoder).
        device: ``"cpu"``, ``"cuda"``... (None: sentence-transformers' choice).
        batch_size: Texts embedded per forward pass.
        local_files_only: Never contact the Hugging Face Hub.
    """

    config_type: ClassVar[str] = "bi-encoder"
    activation: ClassVar[str] = "raw"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str | None = None,
        batch_size: int = 32,
        local_files_only: bool = False,
    ) -> None:
        model = os.fspath(model) if isinstance(model, os.PathLike) else model
        if not isinstance(model, str) or not model.strip():
            raise TypeError(f"model must be a model id or a folder path, got {model!r}")
        if device is not None and not isinstance(device, str):
            raise TypeError(f"device must be a string or None, got {type(device).__name__}")
        if not isinstance(local_files_only, bool):
            raise TypeError(f"local_files_only must be True or False, got {local_files_only!r}")
        self.model_name = model
        self.device = device
        self.batch_size: int = check_positive_int(batch_size, name="batch_size")  # type: ignore[assignment]
        self.local_files_only = local_files_only
        self._model: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BiEncoderScorer({self.model_name!r})"

    # ------------------------------------------------------------------ config

    def to_config(self) -> dict[str, Any]:
        """A JSON-safe dict :meth:`from_config` rebuilds it from."""
        return {
            "type": self.config_type,
            "model": self.model_name,
            "device": self.device,
            "batch_size": self.batch_size,
            "local_files_only": self.local_files_only,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BiEncoderScorer:
        """The scorer a :meth:`to_config` dict describes."""
        kwargs = {k: v for k, v in config.items() if k != "type"}
        unknown = sorted(set(kwargs) - set(_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"unknown BiEncoderScorer config keys {unknown}; known: {list(_CONFIG_KEYS)}"
            )
        return cls(**kwargs)

    # ------------------------------------------------------------------ loading

    @property
    def is_loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def warm_up(self) -> None:
        """Load the model now."""
        self._encoder()

    async def awarm_up(self) -> None:
        """:meth:`warm_up` in a worker thread."""
        await asyncio.to_thread(self.warm_up)

    def _encoder(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    self.model_name, device=self.device, local_files_only=self.local_files_only
                )
            return self._model

    # ------------------------------------------------------------------ scoring

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """The cosine similarity of the query's and each text's embedding."""
        if not texts:
            return []
        model = self._encoder()
        with self._lock:
            vectors = model.encode(
                [query, *texts],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        sims = np.asarray(vectors[1:], dtype=np.float64) @ np.asarray(vectors[0], dtype=np.float64)
        return [float(s) for s in sims]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text with the model's tokenizer (no special tokens)."""
        if not texts:
            return []
        tokenizer = self._encoder().tokenizer
        with self._lock:
            ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(row) for row in ids]

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
        """Score and select as :meth:`crossrank.CrossEncoderScorer.rerank` does; passages,
        a per-call activation other than ``"raw"`` and fusion are refused."""
        if passages or contents is not None:
            raise ValueError(
                "passages: a bi-encoder scores whole texts (no windows, no spans); use a "
                "CrossEncoderScorer, or a Cascade whose expensive stage finds passages"
            )
        if activation not in (None, "raw"):
            raise ValueError(
                f"a BiEncoderScorer's scores are cosine similarities (activation 'raw'); "
                f"activation={activation!r} cannot be asked for"
            )
        if first_stage_scores is not None or fusion not in (None, "none"):
            raise ValueError("a BiEncoderScorer does not fuse first-stage scores")
        call = CallOptions.checked(
            query, texts, scale="raw", top_k=top_k, score_threshold=score_threshold,
            min_relative_score=min_relative_score, token_budget=token_budget,
        )  # fmt: skip
        counter = token_counter(call, self)
        scores = self.score(call.query, call.texts_of(call.scorable))
        hits = [Hit(i, s) for i, s in zip(call.scorable, scores, strict=True)]
        return finish(call, hits, [], pairs=len(hits), counter=counter)

    async def arerank(self, query: str, texts: Sequence[str | None], **options: Any) -> Reranked:
        """:meth:`rerank` in a worker thread."""
        return await asyncio.to_thread(self.rerank, query, texts, **options)


register_config_type(BiEncoderScorer.config_type, BiEncoderScorer.from_config)
