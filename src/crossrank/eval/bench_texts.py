"""The texts ``crossrank bench`` scores: synthetic documents of exactly N tokens (for a
model's tokenizer) with one fixed query, or a BEIR corpus's first documents cut to N tokens
with its first judged query."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

__all__ = ["SYNTHETIC_QUERY", "corpus_texts", "synthetic_texts", "token_count"]

#: Plain English words for synthetic documents (every one is at least one token).
_WORDS = (
    "the a of and to in is was for on that with as by at from are this be which or an "
    "it were has not have their also its these between after been more than other both "
    "cell cells protein gene genes expression patients study studies risk cancer effect "
    "increase decrease blood brain heart drug dose treatment clinical trial mice human "
    "levels activity function response disease therapy tissue tumor growth signal pathway "
    "receptor binding mutation infection immune virus bacteria muscle liver kidney lung "
    "sample data analysis model results evidence association higher lower significant "
    "reduced increased observed measured compared during within across population age "
    "women men children years week day time rate change role factor mechanism process"
).split()

#: The query scored with synthetic texts.
SYNTHETIC_QUERY = "what is the effect of the drug dose on blood cells in patients with cancer"


def token_count(tokenizer: Any, text: str) -> int:
    """The tokens ``tokenizer`` makes of ``text``, without special tokens."""
    return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def _trim(tokenizer: Any, text: str, n_tokens: int) -> str:
    """Cut ``text`` after its first ``n_tokens`` tokens (at a token boundary)."""
    offsets = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
    )[
        "offset_mapping"
    ]
    if len(offsets) <= n_tokens:
        return text
    return text[: offsets[n_tokens - 1][1]]


def synthetic_texts(tokenizer: Any, n: int, n_tokens: int, *, seed: int = 0) -> list[str]:
    """``n`` deterministic documents of exactly ``n_tokens`` tokens each (for ``tokenizer``).

    Words are drawn with ``random.Random(seed)`` from a fixed list; each document is cut at
    a token boundary after ``n_tokens`` tokens.
    """
    rng = random.Random(seed)
    return [
        _trim(tokenizer, " ".join(rng.choice(_WORDS) for _ in range(n_tokens)), n_tokens)
        for _ in range(n)
    ]


def corpus_texts(
    data: str | os.PathLike[str], split: str, tokenizer: Any, n: int, n_tokens: int
) -> tuple[str, list[str]]:
    """The first judged query (by id) and the first ``n`` corpus documents that reach
    ``n_tokens`` tokens (then shorter ones, in corpus order), each cut to ``n_tokens``."""
    from crossrank.eval.data import load_beir

    dataset = load_beir(Path(data), split)
    query = dataset.queries[sorted(dataset.queries)[0]]
    long_enough: list[str] = []
    short: list[str] = []
    for doc_id in dataset.corpus:
        text = _trim(tokenizer, dataset.doc_text(doc_id), n_tokens)
        if not text.strip():
            continue
        (long_enough if token_count(tokenizer, text) >= n_tokens else short).append(text)
        if len(long_enough) >= n:
            break
    return query, (long_enough + short)[:n]
