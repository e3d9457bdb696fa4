"""Ranking and selection: from scores to the hits that are kept.

This is the one selection function every adapter goes through, so a ``top_k`` or a
threshold means the same thing in Haystack, LangChain and LlamaIndex.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Hit", "is_blank", "passage_span", "select", "split_blank"]


logger = logging.getLogger("crossrank")


def is_blank(text: object) -> bool:
    """Whether a candidate has no text to score: None, empty or whitespace."""
    return text is None or (isinstance(text, str) and not text.strip())


def split_blank(texts: Sequence[str | None]) -> tuple[list[int], list[int]]:
    """Indices of the candidates to score and of those with no text (None, empty or
    whitespace), which cannot be relevant: they are not scored or returned, and are
    counted in one ``crossrank`` log warning. Every scorer's ``rerank`` goes through it."""
    scorable: list[int] = []
    skipped: list[int] = []
    for i, text in enumerate(texts):
        if is_blank(text):
            skipped.append(i)
        else:
            scorable.append(i)
    if skipped:
        logger.warning(
            "crossrank: %d of %d candidates have no text and were not scored or returned",
            len(skipped),
            len(texts),
        )
    return scorable, skipped


@dataclass(frozen=True, slots=True)
class Hit:
    """One kept candidate.

    Attributes:
        index: Position of the candidate in the list that was passed in.
        score: Its score, a Python ``float``.
        truncated: True when part of the candidate was not read (see
            :class:`crossrank.ScoreDetails`).
        span: ``(start, end)`` character span of the text the score comes from: the part
            read (``truncate`` mode) or the best window (``chunk`` mode); None if unknown.
        passage: With ``rerank(..., passages=True)``: the span's part in the candidate's
            content (``contents[i]``, else its text), in the content's own character
            offsets; None when the span lies wholly outside the content (the whole content
            is then what is handed on).
        model_score: With fusion: the cross-encoder's own score (in the call's activation),
            while ``score`` is the fused score that ordered and selected the hit. None
            without fusion, where ``score`` is the cross-encoder's.
    """

    index: int
    score: float
    truncated: bool = False
    span: tuple[int, int] | None = None
    passage: tuple[int, int] | None = None
    model_score: float | None = None


def _order_key(scores: Sequence[float]):  # type: ignore[no-untyped-def]
    def key(i: int) -> tuple[bool, float, int]:
        s = scores[i]
        # Best first; NaN sorts after every number, -inf included; ties keep input order.
        nan = math.isnan(s)
        return (nan, 0.0 if nan else -s, i)

    return key


def select(
    scores: Sequence[float],
    *,
    top_k: int | None = None,
    score_threshold: float | None = None,
    min_relative_score: float | None = None,
    token_counts: Sequence[int] | None = None,
    token_budget: int | None = None,
) -> list[int]:
    """Return the indices of the kept scores, best first.

    Order of application:

    1. sort by score (descending, ties in input order, NaN last);
    2. drop scores below ``score_threshold`` (NaN scores are dropped when a threshold is
       set);
    3. drop scores below ``min_relative_score`` x the best score (a relative cut, for
       non-negative scores such as sigmoid ones; NaN is dropped);
    4. keep the first ``top_k``;
    5. keep candidates, best first, while their ``token_counts`` add up to at most
       ``token_budget``; the first candidate that does not fit ends the selection, so the
       result is always a best-first prefix. A best candidate larger than the whole budget
       gives an empty selection.

    Arguments are assumed validated (see :mod:`crossrank.validation`); ``token_counts`` is
    required with ``token_budget``.
    """
    order = sorted(range(len(scores)), key=_order_key(scores))
    if score_threshold is not None:
        order = [i for i in order if scores[i] >= score_threshold]
    if min_relative_score is not None and order:
        best = scores[order[0]]
        if not math.isnan(best):
            cut = best * min_relative_score
            order = [i for i in order if scores[i] >= cut]
    if top_k is not None:
        order = order[:top_k]
    if token_budget is not None:
        if token_counts is None:
            raise ValueError("token_budget needs token_counts, one per score")
        kept: list[int] = []
        used = 0
        for i in order:
            if used + token_counts[i] > token_budget:
                break
            kept.append(i)
            used += token_counts[i]
        order = kept
    return order


def passage_span(
    scored_text: str, content: str, span: tuple[int, int] | None
) -> tuple[int, int] | None:
    """Map a :attr:`Hit.span` over the text the model read to a passage of ``content``.

    Adapters score ``content`` with things put before it (a prefix, metadata); a hit's
    span is over that scored text. This finds ``content`` at the end of the scored text
    (else its last occurrence; else the same with surrounding whitespace stripped, as
    frameworks strip the text they build) and returns the span's part that lies in it, in
    ``content``'s own character offsets, widened to whole words (a window starts and ends
    on token boundaries, which can fall inside a word). None when there is no span,
    ``content`` is not in the scored text, or the span lies wholly outside ``content``
    (in the metadata).
    """
    inner = content.strip()
    if span is None or not inner:
        return None
    lead = len(content) - len(content.lstrip())
    offset = _locate(scored_text, content)
    if offset < 0:
        found = _locate(scored_text, inner)
        if found < 0:
            return None
        offset = found - lead  # content[lead:] starts at ``found``
    start = max(span[0] - offset, lead)
    end = min(span[1] - offset, lead + len(inner))
    if end <= start:
        return None
    while start > 0 and content[start - 1].isalnum() and content[start].isalnum():
        start -= 1
    while end < len(content) and content[end - 1].isalnum() and content[end].isalnum():
        end += 1
    return start, end


def _locate(text: str, piece: str) -> int:
    """Where ``piece`` starts in ``text``: at its end if it ends it, else its last
    occurrence; -1 if absent."""
    if text.endswith(piece):
        return len(text) - len(piece)
    return text.rfind(piece)
