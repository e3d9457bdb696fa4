"""How many tokens a model reads: the smallest of what its tokenizer, its position table and
its sentence-transformers settings allow, lowered (never raised) by the user's ``max_length``.

A position table holds ``max_position_embeddings`` rows, but RoBERTa-style models (RoBERTa,
XLM-R, CamemBERT...) number positions from ``pad_token_id + 1``, so two of XLM-R's 514 rows
are never a token's: such a model embeds 512 tokens. A tokenizer that allows more than the
table holds (a converted checkpoint saying 8192 beside a 514-row table) would otherwise
crash deep inside the model with an index error; the limit is capped instead, and the cap
is logged once, when the model loads.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["position_limit", "resolve_max_length"]

logger = logging.getLogger("crossrank")

#: Model types whose position ids start after the padding index (``create_position_ids_
#: from_input_ids`` in transformers): the table's first ``pad_token_id + 1`` rows are unused.
_OFFSET_POSITIONS = frozenset(
    {
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
        "camembert",
        "data2vec-text",
        "longformer",
        "mpnet",
        "roberta-prelayernorm",
        "xmod",
        "ibert",
    }
)

#: Used when neither the tokenizer, the config nor sentence-transformers says.
_FALLBACK = 512


def position_limit(config: Any) -> int | None:
    """Tokens the model's position table can embed, or None when it has no absolute table
    (or does not say)."""
    table = getattr(config, "max_position_embeddings", None)
    if not isinstance(table, int) or table <= 0:
        return None
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        pad = getattr(config, "pad_token_id", None)
        table -= (pad if isinstance(pad, int) and pad >= 0 else 1) + 1
    return table if table > 0 else None


def resolve_max_length(
    requested: int | None,
    tokenizer: Any,
    config: Any,
    st_max_length: object = None,
    *,
    model: str,
    special_tokens: int,
) -> int:
    """Tokens per pair the model reads.

    The model's limit is the smallest of the tokenizer's ``model_max_length``, the position
    table (:func:`position_limit`) and a sentence-transformers ``max_seq_length`` (512 when
    none is known); ``requested`` may lower it, not raise it.

    Args:
        requested: The user's ``max_length``, or None.
        tokenizer: The model's tokenizer.
        config: The model's config.
        st_max_length: The ``max_seq_length`` sentence-transformers saved, or None.
        model: The model's name, for the log line.
        special_tokens: Tokens the input format adds around the texts (special tokens, a
            template's fixed parts), which must leave room for text.

    Raises:
        ValueError: ``requested`` is above the model's limit, or leaves no room for text.
    """
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if not isinstance(tokenizer_limit, int) or tokenizer_limit >= 1_000_000:
        tokenizer_limit = None  # transformers' "no limit" sentinel
    table = position_limit(config)
    st_limit = st_max_length if isinstance(st_max_length, int) and st_max_length > 0 else None
    limits = [v for v in (tokenizer_limit, table, st_limit) if v is not None]
    model_limit = min(limits) if limits else _FALLBACK
    if table is not None and tokenizer_limit is not None and table < tokenizer_limit:
        if st_limit is None or st_limit > table:
            logger.warning(
                "crossrank: %s: its tokenizer allows %d tokens but its position table embeds "
                "%d; max_length is capped at %d",
                model,
                tokenizer_limit,
                table,
                model_limit,
            )
    if requested is not None and requested > model_limit:
        raise ValueError(
            f"max_length must be <= the model's limit of {model_limit} tokens, got {requested}"
        )
    max_length = requested or model_limit
    if max_length <= special_tokens + 2:
        raise ValueError(
            f"max_length must leave room for text beside {special_tokens} special or template "
            f"tokens, got {max_length}"
        )
    return max_length
