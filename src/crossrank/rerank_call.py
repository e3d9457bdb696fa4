"""One ``rerank`` call's options, checked once, and the order every composite returns.

A composite of :mod:`crossrank.compose` (and the deadline loop, :mod:`crossrank.deadline`)
scores candidates through other scorers with no selection, then orders and selects here,
in the core's order (:func:`crossrank.select`):
the scored candidates best first, cut by ``score_threshold`` and ``min_relative_score``;
then the unscored ones below them, in the order given (a score cut cannot judge them, so
it keeps them); then ``top_k`` and ``token_budget`` over that whole list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossrank.results import Reranked
from crossrank.selection import Hit, select, split_blank
from crossrank.validation import (
    check_positive_int,
    check_query,
    check_relative_cut,
    check_score_threshold,
    check_texts,
    check_top_k,
)

__all__ = ["CallOptions", "TokenCounter", "finish", "token_counter"]

#: Counts the tokens of each text (a scorer's ``count_tokens``).
TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class CallOptions:
    """The options of one ``rerank`` call on the candidates with text, checked.

    Attributes:
        query: The query.
        texts: Every candidate's text, as given (None or blank for a skipped one).
        scorable: Indices of the candidates with text, in input order.
        skipped: Indices of the candidates without text.
        top_k: Most candidates returned (scored and unscored together).
        score_threshold: Scored candidates below it are dropped.
        min_relative_score: Scored candidates below this fraction of the best are dropped.
        token_budget: Most tokens handed on (hits, then unscored candidates).
        passages: Ask for each candidate's best passage.
        contents: With ``passages``: what each candidate's passage is cut from (one per
            text, or None: the texts).
        activation: This call's activation (None: each scorer's own).
        passed_on: Options this call does not read, passed on to every scorer it calls
            (an ``instruction``); None values are left out.
    """

    query: str
    texts: Sequence[str | None]
    scorable: list[int]
    skipped: list[int]
    top_k: int | None = None
    score_threshold: float | None = None
    min_relative_score: float | None = None
    token_budget: int | None = None
    passages: bool = False
    contents: Sequence[str | None] | None = None
    activation: str | None = None
    passed_on: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def checked(
        cls,
        query: Any,
        texts: Any,
        *,
        scale: str,
        fusion: Any = None,
        top_k: Any = None,
        score_threshold: Any = None,
        min_relative_score: Any = None,
        token_budget: Any = None,
        passages: Any = False,
        contents: Any = None,
        activation: Any = None,
        **passed_on: Any,
    ) -> CallOptions:
        """Check one call's arguments, as :meth:`crossrank.CrossEncoderScorer.rerank` does.

        Args:
            scale: The activation the scores that are cut come in (``"raw"`` refuses a
                relative cut).
            fusion: The call's :class:`crossrank.fusion.Fusion` (it decides instead of
                ``scale`` whether a relative cut is allowed).
            **passed_on: Further options, for the scorers called (see ``passed_on``).

        Raises:
            TypeError / ValueError: A bad query, texts, contents or selection value.
        """
        top_k = check_top_k(top_k)
        score_threshold = check_score_threshold(score_threshold)
        min_relative_score = check_relative_cut(min_relative_score, scale, fusion=fusion)
        token_budget = check_positive_int(token_budget, name="token_budget", allow_none=True)
        query = check_query(query)
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            check_texts(texts)  # raises the standard message
        for i, text in enumerate(texts):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a string or None, got {type(text).__name__}")
        if not isinstance(passages, bool):
            raise TypeError(f"passages must be True or False, got {passages!r}")
        if contents is not None:
            if not passages:
                raise ValueError("contents is only used with passages=True")
            if isinstance(contents, (str, bytes)) or len(contents) != len(texts):
                raise ValueError(
                    f"contents must be a list with one entry per text ({len(texts)}), got "
                    f"{type(contents).__name__}"
                )
        scorable, skipped = split_blank(texts)
        return cls(
            query, list(texts), scorable, skipped, top_k, score_threshold,
            min_relative_score, token_budget, passages,
            None if contents is None else list(contents), activation,
            {k: v for k, v in passed_on.items() if v is not None},
        )  # fmt: skip

    def texts_of(self, indices: Sequence[int]) -> list[str]:
        """The texts of these candidates (all have text)."""
        return [self.texts[i] or "" for i in indices]

    def member_kwargs(self, indices: Sequence[int]) -> dict[str, Any]:
        """Keyword arguments of a scorer's ``rerank`` on these candidates, with no selection:
        ``passages``, their ``contents``, and ``activation`` when this call sets one."""
        contents = self.contents
        kwargs: dict[str, Any] = {
            "passages": self.passages,
            "contents": None if contents is None else [contents[i] for i in indices],
        }
        if self.activation is not None:
            kwargs["activation"] = self.activation
        return kwargs | dict(self.passed_on)

    def handed_on(self, index: int, passage: tuple[int, int] | None) -> str:
        """What is handed on for a candidate: its best passage of its content with
        ``passages`` (the whole content where it has none), else its text."""
        if not self.passages:
            return self.texts[index] or ""
        content = self.texts[index] if self.contents is None else self.contents[index]
        content = content or ""
        return content if passage is None else content[passage[0] : passage[1]]


def token_counter(options: CallOptions, *scorers: Any) -> TokenCounter | None:
    """The first ``count_tokens`` of ``scorers`` (a composite's members are searched in
    order), when the call has a token budget; None without one.

    Raises:
        ValueError: A token budget, and no scorer counts tokens.
    """
    if options.token_budget is None:
        return None
    todo = list(scorers)
    while todo:
        scorer = todo.pop(0)
        count = getattr(scorer, "count_tokens", None)
        if callable(count):
            return count  # type: ignore[no-any-return]
        todo[:0] = list(getattr(scorer, "members", ()))
    names = ", ".join(type(s).__name__ for s in scorers)
    raise ValueError(
        f"token_budget counts tokens with a scorer's tokenizer, and none of {names} has one "
        "(count_tokens); cut with top_k instead, or use a CrossEncoderScorer"
    )


def finish(
    options: CallOptions,
    scored: Sequence[Hit],
    unscored: Sequence[int],
    *,
    pairs: int,
    counter: TokenCounter | None = None,
    deadline_unscored: int = 0,
    usage: Mapping[str, float] | None = None,
    result: Callable[..., Reranked] = Reranked,
    **extra: Any,
) -> Reranked:
    """Order and select one call's candidates (see the module docstring).

    Args:
        options: The call.
        scored: One hit per scored candidate (any order; ``index`` into the call's texts).
        unscored: Candidates with text and no score, in the order they are returned.
        pairs: Pairs scored.
        counter: Counts tokens (needed with a token budget).
        deadline_unscored: How many candidates the deadline left unscored.
        usage: What the providers called reported they billed.
        result: The result type (a :class:`Reranked` subclass), built with ``extra``.
    """
    order = select(
        [hit.score for hit in scored],
        score_threshold=options.score_threshold,
        min_relative_score=options.min_relative_score,
    )
    ranked = [scored[j] for j in order]
    counts = None
    if options.token_budget is not None:
        assert counter is not None
        handed = [options.handed_on(h.index, h.passage) for h in ranked]
        handed += [options.handed_on(i, None) for i in unscored]
        counts = counter(handed) if handed else []
    total = len(ranked) + len(unscored)
    # Everything is already in order: select() cuts top_k and the token budget from the
    # front, as it does for scores (a decreasing stand-in keeps the order).
    kept = len(
        select(
            [float(total - i) for i in range(total)],
            top_k=options.top_k,
            token_counts=counts,
            token_budget=options.token_budget,
        )
    )
    return result(
        hits=ranked[:kept],
        skipped=list(options.skipped),
        pairs=pairs,
        unscored=list(unscored[: max(kept - len(ranked), 0)]),
        deadline_unscored=deadline_unscored,
        usage=dict(usage or {}),
        **({"truncated": sum(1 for hit in scored if hit.truncated)} | extra),
    )
