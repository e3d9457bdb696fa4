"""How a (query, text) pair becomes the token rows a model reads.

Two encoders cover every family:

- :class:`PairEncoder`: the cross-encoder format, the tokenizer's own pair input
  (``[CLS] query [SEP] text [SEP]`` for BERT, ``<s> query </s></s> text </s>`` for RoBERTa),
  with an instruction (a sentence-transformers prompt) prepended to the query.
- :class:`TemplateEncoder`: one prompt rendered from a template (a chat template, or a known
  reranker's format string, :mod:`crossrank.families.templates`) and tokenized whole, as
  sentence-transformers tokenizes a templated pair.

Both cut the *document* when a pair is longer than ``max_length``, never the template's fixed
parts: the system prompt, the instruction and the closing part (an assistant turn, the
relevance question) are always read in full. In ``truncate`` mode this gives exactly
sentence-transformers' input: a pair is truncated ``longest_first`` (the document first, the
query only when it is the longer of the two), and a template's rendered prompt is cut at the
document with the closing tokens restored, as sentence-transformers restores them.
``long_documents="chunk"`` splits the document into overlapping windows, each beside the
same query (cut to half of ``max_length`` if longer, logged) and inside the same template.

Every encoder gives rows without padding, the character span of the text each row reads (for
passages), and which text each row belongs to. The fast tokenizer is not safe to call from
several threads at once ("Already borrowed"): every call goes through the encoder's lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from crossrank.families.prompts import Prompts
from crossrank.families.templates import Template

__all__ = ["Encoder", "PairEncoder", "PairRows", "TemplateEncoder"]

logger = logging.getLogger("crossrank")

#: Stands for the document while a template's fixed parts are located.
_SENTINEL = "\u2063crossrank-document\u2063"


@dataclass(frozen=True)
class PairRows:
    """Token rows of (query, text) pairs, one per window, unpadded.

    Attributes:
        features: Rows per model input (``input_ids``, ``attention_mask``...).
        sample_of_row: For each row, the text it reads (a text's rows in document order).
        spans: For each row, the ``(start, end)`` character span of the text it reads, or
            None when it reads no token of the text.
        truncated: In ``truncate`` mode (one row per text), whether each text was cut; None
            for windows (a text's windows beyond the first are its unread part).
    """

    features: dict[str, list[list[int]]]
    sample_of_row: list[int]
    spans: list[tuple[int, int] | None]
    truncated: list[bool] | None = None

    def select(self, rows: Sequence[int]) -> dict[str, list[list[int]]]:
        """The features of ``rows``, in that order."""
        return {name: [values[r] for r in rows] for name, values in self.features.items()}


class Encoder:
    """What every encoder shares: the tokenizer, its lock, the row limit, padding, prompts.

    Args:
        tokenizer: A fast tokenizer.
        max_length: Tokens per row.
        input_names: The model inputs to produce.
        prompts: Where the instruction comes from (:class:`crossrank.families.prompts.Prompts`).
        padding_side: ``"left"`` for models that read the last position, else ``"right"``.
        pad_token_id: Fills ``input_ids`` in padded batches.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int,
        input_names: Sequence[str],
        *,
        prompts: Prompts | None = None,
        padding_side: str = "right",
        pad_token_id: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.input_names = tuple(input_names)
        self.prompts = prompts or Prompts()
        self.padding_side = padding_side
        self.pad_token_id = pad_token_id
        self._lock = threading.Lock()

    def _tokens(self, text: str) -> Any:
        with self._lock:
            return self.tokenizer(
                text,
                add_special_tokens=False,
                return_offsets_mapping=True,
                truncation=False,
                verbose=False,  # crossrank reports long inputs itself
            )

    def _cut_query(self, query: str, limit: int) -> str:
        """``query`` cut to ``limit`` tokens (logged when cut)."""
        offsets = self._tokens(query)["offset_mapping"]
        if len(offsets) <= limit:
            return query
        logger.warning(
            "crossrank: the query has %d tokens; it was cut to %d so documents keep half of "
            "what the model reads (max_length=%d)",
            len(offsets),
            limit,
            self.max_length,
        )
        return query[: offsets[limit - 1][1]] if limit > 0 else ""

    def room(self, query: str, instruction: str | None = None) -> int:
        """Tokens a window has for the document beside ``query`` (cut to half of what the
        model reads when it is longer), for the stride of ``chunk`` mode."""
        raise NotImplementedError

    def encode(
        self,
        query: str,
        texts: Sequence[str],
        *,
        stride: int | None = None,
        instruction: str | None = None,
    ) -> PairRows:
        """The rows of each (query, text) pair.

        Args:
            query: The query.
            texts: The texts.
            stride: None: ``truncate`` mode, one row per text, cut as sentence-transformers
                cuts it. A number: ``chunk`` mode, every window of each text, consecutive
                windows sharing ``stride`` tokens.
            instruction: This call's instruction (see :mod:`crossrank.families.prompts`).
        """
        raise NotImplementedError

    def rows(self, query: str, texts: Sequence[str]) -> dict[str, list[list[int]]]:
        """Each (query, text) pair's row: what the probe, the exporters and the int8
        calibration feed the model."""
        return self.encode(query, texts).features

    def decode(self, query: str, text: str, instruction: str | None = None) -> str:
        """The model's input for one pair, decoded: what the model reads."""
        row = self.encode(query, [text], instruction=instruction).features["input_ids"][0]
        with self._lock:
            return str(self.tokenizer.decode(row, skip_special_tokens=False))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (no special tokens)."""
        if not texts:
            return []
        with self._lock:
            ids = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)[
                "input_ids"
            ]
        return [len(row) for row in ids]

    def describe(self) -> str:
        """How pairs are read, for reports."""
        raise NotImplementedError


class PairEncoder(Encoder):
    """The tokenizer's pair input: query first (after any instruction), text second."""

    def __init__(self, tokenizer: Any, max_length: int, input_names: Sequence[str], **kw: Any):
        super().__init__(tokenizer, max_length, input_names, **kw)
        self.special_tokens = int(tokenizer.num_special_tokens_to_add(pair=True))

    def _first(self, query: str, instruction: str | None) -> str:
        prompt = self.prompts.resolve(instruction)
        return (prompt or "") + query

    def _fit(self, query: str, instruction: str | None) -> tuple[str, int]:
        """The query cut to half of the row (less the instruction), and the document's room."""
        prompt = self.prompts.resolve(instruction) or ""
        half = (self.max_length - self.special_tokens) // 2
        prompt_tokens = len(self._tokens(prompt)["input_ids"]) if prompt else 0
        if prompt_tokens >= half:
            raise ValueError(
                f"the instruction has {prompt_tokens} tokens, more than half of the "
                f"{self.max_length} the model reads (max_length); shorten it"
            )
        query = self._cut_query(query, half - prompt_tokens)
        first = len(self._tokens(prompt + query)["input_ids"])
        return query, self.max_length - self.special_tokens - first

    def room(self, query: str, instruction: str | None = None) -> int:
        return self._fit(query, instruction)[1]

    def encode(
        self,
        query: str,
        texts: Sequence[str],
        *,
        stride: int | None = None,
        instruction: str | None = None,
    ) -> PairRows:
        if stride is None:
            return self._truncated(query, texts, instruction)
        query, _ = self._fit(query, instruction)
        first = self._first(query, instruction)
        with self._lock:
            enc = self.tokenizer(
                [first] * len(texts),
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

    def _truncated(self, query: str, texts: Sequence[str], instruction: str | None) -> PairRows:
        """One row per pair, truncated ``longest_first`` as sentence-transformers truncates:
        the longer of query and text loses tokens first, so a short text is read whole beside
        a long query, and a long text keeps at least the query's length."""
        first = self._first(query, instruction)
        if len(self._tokens(first)["input_ids"]) > self.max_length - self.special_tokens - 1:
            first = self._first(self._fit(query, instruction)[0], instruction)
        with self._lock:
            enc = self.tokenizer(
                [first] * len(texts),
                list(texts),
                truncation="longest_first",
                max_length=self.max_length,
                return_offsets_mapping=True,
                padding=False,
            )
            whole = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)
        spans, truncated = [], []
        for row in range(len(texts)):
            ids = enc.sequence_ids(row)
            read = sum(1 for seq in ids if seq == 1)
            truncated.append(read < len(whole["input_ids"][row]))
            spans.append(_second_span(enc, row))
        return PairRows(
            features={name: enc[name] for name in self.input_names},
            sample_of_row=list(range(len(texts))),
            spans=spans,
            truncated=truncated,
        )

    def describe(self) -> str:
        prompt = self.prompts.describe()
        return "tokenizer pair input" + (f", {prompt} before the query" if prompt else "")


class TemplateEncoder(Encoder):
    """One prompt per pair, rendered from a template and tokenized whole.

    Args:
        template: The template (:class:`crossrank.families.templates.ChatTemplate` or
            :class:`~crossrank.families.templates.FormatTemplate`); it writes every special
            token itself.
        (the rest as :class:`Encoder`)
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int,
        input_names: Sequence[str],
        template: Template,
        **kw: Any,
    ):
        super().__init__(tokenizer, max_length, input_names, **kw)
        self.template = template
        self._layout = lru_cache(maxsize=64)(self._layout_uncached)

    def _layout_uncached(self, query: str, instruction: str | None) -> tuple[str, str, list[int]]:
        """The rendered text before and after the document, and the tokens of the part after."""
        rendered = self.template.render(query, _SENTINEL, instruction)
        if rendered.count(_SENTINEL) != 1:
            raise ValueError(
                f"the {self.template.describe()} must write the document exactly once, "
                f"it wrote it {rendered.count(_SENTINEL)} times"
            )
        before, after = rendered.split(_SENTINEL)
        return before, after, list(self._tokens(after)["input_ids"]) if after else []

    def _fixed(self, query: str, instruction: str | None) -> int:
        """Tokens of everything but the document, for ``query``."""
        before, after, _ = self._layout(query, instruction)
        return len(self._tokens(before + after)["input_ids"])

    def _fit(self, query: str, instruction: str | None) -> tuple[str, int]:
        """The query cut to half of what the template leaves (logged), and the document's
        room; ``instruction`` is resolved."""
        fixed = self._fixed("", instruction)
        room = self.max_length - fixed
        if room <= 2:
            raise ValueError(
                f"the {self.template.describe()} and its instruction take {fixed} tokens, "
                f"leaving no room in max_length={self.max_length}; raise max_length or shorten "
                "the instruction"
            )
        query = self._cut_query(query, room // 2)
        return query, self.max_length - self._fixed(query, instruction)

    def room(self, query: str, instruction: str | None = None) -> int:
        return self._fit(query, self.prompts.resolve(instruction))[1]

    def _placed(
        self, query: str, texts: Sequence[str], instruction: str | None
    ) -> tuple[list[str], list[tuple[int, int, int]]]:
        """Each text rendered in the template, and where the text is in it: ``(start, end,
        shift)``, the rendered characters of the text and where they start in the text."""
        before, after, _ = self._layout(query, instruction)
        full = [before + t + after for t in texts]
        if not texts or self.template.render(query, texts[0], instruction) == full[0]:
            return full, [(len(before), len(before) + len(t), 0) for t in texts]
        # The template changes what it is given (a trim, say): render each text and find it.
        rendered, places = [], []
        for text in texts:
            one = self.template.render(query, text, instruction)
            core = text.strip()
            at = one.rfind(core) if core else len(before)
            if at < 0:
                raise ValueError(
                    f"the {self.template.describe()} changes the document's text, so crossrank "
                    "cannot cut the document apart from the template; use a template that "
                    "writes the document as given"
                )
            rendered.append(one)
            places.append((at, at + len(core), text.find(core) if core else 0))
        return rendered, places

    def encode(
        self,
        query: str,
        texts: Sequence[str],
        *,
        stride: int | None = None,
        instruction: str | None = None,
    ) -> PairRows:
        instruction = self.prompts.resolve(instruction)
        query, _ = self._fit(query, instruction)
        _, _, tail = self._layout(query, instruction)
        full, places = self._placed(query, texts, instruction)
        with self._lock:
            enc = self.tokenizer(
                full,
                add_special_tokens=False,
                return_offsets_mapping=True,
                truncation=False,
                padding=False,
                verbose=False,
            )
        ids_rows: list[list[int]] = []
        samples: list[int] = []
        spans: list[tuple[int, int] | None] = []
        cut: list[bool] = []
        rows_of = zip(enc["input_ids"], enc["offset_mapping"], places, strict=True)
        for i, (ids, offsets, place) in enumerate(rows_of):
            windows = _windows(ids, offsets, place, tail, self.max_length, stride or 0)
            cut.append(len(windows) > 1)
            if stride is None:
                windows = windows[:1]
            for row, span in windows:
                ids_rows.append(row)
                samples.append(i)
                spans.append(span)
        features: dict[str, list[list[int]]] = {"input_ids": ids_rows}
        for name in self.input_names:
            if name == "attention_mask":
                features[name] = [[1] * len(r) for r in ids_rows]
            elif name != "input_ids":
                features[name] = [[0] * len(r) for r in ids_rows]
        return PairRows(
            features=features,
            sample_of_row=samples,
            spans=spans,
            truncated=cut if stride is None else None,
        )

    def describe(self) -> str:
        prompt = self.prompts.describe()
        return self.template.describe() + (f", {prompt}" if prompt else "")


def _windows(
    ids: Sequence[int],
    offsets: Sequence[tuple[int, int]],
    place: tuple[int, int, int],
    tail: list[int],
    max_length: int,
    stride: int,
) -> list[tuple[list[int], tuple[int, int] | None]]:
    """One rendered pair's rows: whole when it fits, else windows of the document tokens
    between the fixed part before them and the template's closing tokens (``tail``), as
    sentence-transformers restores them.

    ``place``: the document's characters in the rendered text (start, end) and where they
    start in the document itself.
    """
    start, end, shift = place
    doc = [j for j, (a, b) in enumerate(offsets) if b > start and a < end and b > a]
    if not doc:
        return [(list(ids), None)]

    def span(first: int, last: int) -> tuple[int, int]:
        return (
            max(0, offsets[first][0] - start) + shift,
            min(end, offsets[last][1]) - start + shift,
        )

    if len(ids) <= max_length:
        return [(list(ids), span(doc[0], doc[-1]))]
    head = list(ids[: doc[0]])
    room = max(1, max_length - len(head) - len(tail))
    step = max(1, room - stride)
    rows: list[tuple[list[int], tuple[int, int] | None]] = []
    at = 0
    while True:
        window = doc[at : at + room]
        piece = list(ids[window[0] : window[-1] + 1])
        rows.append((head + piece + tail, span(window[0], window[-1])))
        if at + room >= len(doc):
            break
        at += step
    return rows


def _second_span(encoding: Any, row: int) -> tuple[int, int] | None:
    """Character span of the second sequence's tokens in one row (None: no such token)."""
    offsets = encoding["offset_mapping"][row]
    ids = encoding.sequence_ids(row)
    doc = [offsets[i] for i, seq in enumerate(ids) if seq == 1]
    if not doc:
        return None
    return int(doc[0][0]), int(doc[-1][1])
