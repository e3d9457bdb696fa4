"""How a (query, text) pair becomes token rows the model reads.

:class:`PairEncoder` is the cross-encoder format: the tokenizer's own pair input
(``[CLS] query [SEP] text [SEP]`` for BERT, ``<s> query </s></s> text </s>`` for RoBERTa),
cut on the text's side when it is longer than ``max_length``, or split into overlapping
windows of the text (``chunk`` mode). Every encoder gives rows without padding, the
document's character span in each row (for passages), and which text each row reads.

The fast tokenizer is not safe to call from several threads at once ("Already borrowed"):
every call goes through the encoder's lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PairEncoder", "PairRows"]

logger = logging.getLogger("crossrank")


@dataclass(frozen=True)
class PairRows:
    """Token rows of (query, text) pairs, one per window, unpadded.

    Attributes:
        features: Rows per model input (``input_ids``, ``attention_mask``...).
        sample_of_row: For each row, the text it reads (a text's rows in document order).
        spans: For each row, the ``(start, end)`` character span of the text it reads, or
            None when it reads no token of the text.
    """

    features: dict[str, list[list[int]]]
    sample_of_row: list[int]
    spans: list[tuple[int, int] | None]

    def select(self, rows: Sequence[int]) -> dict[str, list[list[int]]]:
        """The features of ``rows``, in that order."""
        return {name: [values[r] for r in rows] for name, values in self.features.items()}


class PairEncoder:
    """The tokenizer's pair input: query first, text second, special tokens around them.

    Args:
        tokenizer: A fast tokenizer.
        max_length: Tokens per row.
        input_names: The model inputs to produce (a subset of the tokenizer's).
    """

    def __init__(self, tokenizer: Any, max_length: int, input_names: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.input_names = tuple(input_names)
        self.special_tokens = int(tokenizer.num_special_tokens_to_add(pair=True))
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else 0
        self.padding_side = str(getattr(tokenizer, "padding_side", "right"))
        self._lock = threading.Lock()

    @property
    def fixed_tokens(self) -> int:
        """Tokens of each row that are not the query's or the text's."""
        return self.special_tokens

    def fit_query(self, query: str) -> tuple[str, int]:
        """Cut a query that would leave the text less than half of ``max_length``.

        Returns the query and its token count (without special tokens).
        """
        limit = (self.max_length - self.fixed_tokens) // 2
        with self._lock:
            enc = self.tokenizer(
                query,
                add_special_tokens=False,
                return_offsets_mapping=True,
                truncation=False,
                verbose=False,  # crossrank reports a long query itself
            )
        offsets = enc["offset_mapping"]
        if len(offsets) <= limit:
            return query, len(offsets)
        logger.warning(
            "crossrank: the query has %d tokens; it was cut to %d so documents keep half of "
            "max_length=%d",
            len(offsets),
            limit,
            self.max_length,
        )
        return query[: offsets[limit - 1][1]], limit

    def room(self, query_tokens: int) -> int:
        """Tokens a row has for the text beside a query of ``query_tokens`` tokens."""
        return self.max_length - self.fixed_tokens - query_tokens

    def encode(self, query: str, texts: Sequence[str], *, stride: int = 0) -> PairRows:
        """Every window of each (query, text) pair, cut on the text's side.

        Args:
            query: The query (already fitted by :meth:`fit_query`).
            texts: The texts.
            stride: Tokens shared by consecutive windows of a long text.
        """
        with self._lock:
            enc = self.tokenizer(
                [query] * len(texts),
                list(texts),
                truncation="only_second",
                max_length=self.max_length,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding=False,
                stride=stride,
            )
        spans = [_second_span(enc, row) for row in range(len(enc["input_ids"]))]
        return PairRows(
            features={name: enc[name] for name in self.input_names},
            sample_of_row=list(enc["overflow_to_sample_mapping"]),
            spans=spans,
        )

    def rows(self, query: str, texts: Sequence[str]) -> dict[str, list[list[int]]]:
        """Each (query, text) pair's first row: what the probe, the exporters and the int8
        calibration feed the model."""
        query, _ = self.fit_query(query)
        encoded = self.encode(query, texts)
        first: dict[int, int] = {}
        for row, sample in enumerate(encoded.sample_of_row):
            first.setdefault(sample, row)
        return encoded.select([first[i] for i in range(len(texts))])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (no special tokens)."""
        if not texts:
            return []
        with self._lock:
            ids = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)[
                "input_ids"
            ]
        return [len(row) for row in ids]


def _second_span(encoding: Any, row: int) -> tuple[int, int] | None:
    """Character span of the second sequence's tokens in one row (None: no such token)."""
    offsets = encoding["offset_mapping"][row]
    ids = encoding.sequence_ids(row)
    doc = [offsets[i] for i, seq in enumerate(ids) if seq == 1]
    if not doc:
        return None
    return int(doc[0][0]), int(doc[-1][1])
