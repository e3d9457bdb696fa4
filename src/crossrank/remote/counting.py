"""What a token budget counts when a provider scores: tokens of a local tokenizer, or
characters.

A hosted reranker does not say how many tokens a document has, so
:class:`crossrank.RemoteScorer` counts them here: with ``tokenizer=`` (a Hugging Face
tokenizer's id or folder, loaded on first use) each text's tokens without special tokens,
as :meth:`crossrank.CrossEncoderScorer.count_tokens` counts them; without one, its
characters (``len(text)``), so ``token_budget`` is then a character budget.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["TokenCounter"]


class TokenCounter:
    """Counts what a token budget spends.

    Args:
        tokenizer: A tokenizer's Hugging Face id or local folder; None: count characters.
    """

    def __init__(self, tokenizer: str | None) -> None:
        if tokenizer is not None and (not isinstance(tokenizer, str) or not tokenizer.strip()):
            raise TypeError(
                f"tokenizer must be a tokenizer's id or folder (a string) or None, got "
                f"{tokenizer!r}"
            )
        self.tokenizer = tokenizer
        self._loaded: Any = None
        self._lock = threading.Lock()

    @property
    def unit(self) -> str:
        """``"tokens"`` with a tokenizer, ``"characters"`` without."""
        return "characters" if self.tokenizer is None else "tokens"

    def _load(self) -> Any:
        with self._lock:
            if self._loaded is None:
                from transformers import AutoTokenizer

                try:
                    self._loaded = AutoTokenizer.from_pretrained(self.tokenizer)
                except Exception as error:  # OSError, ValueError, HTTP errors...
                    raise ValueError(
                        f"tokenizer={self.tokenizer!r} could not be loaded "
                        f"({type(error).__name__}: {str(error)[:200]}); pass a tokenizer's "
                        "Hugging Face id or a folder holding one, or tokenizer=None to count "
                        "characters"
                    ) from error
            return self._loaded

    def count(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens (no special tokens), or characters without a tokenizer."""
        if self.tokenizer is None or not texts:
            return [len(text) for text in texts]
        tokenizer = self._load()
        with self._lock:  # a fast tokenizer is not safe to share between threads
            ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(row) for row in ids]
