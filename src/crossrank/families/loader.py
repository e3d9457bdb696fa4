"""Load a checkpoint as its family: the config and tokenizer, the score net, and the input
encoder, with the checks that it is a reranker crossrank can score."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crossrank.errors import UnsupportedModelError
from crossrank.families.inputs import PairEncoder
from crossrank.families.limits import resolve_max_length
from crossrank.families.net import ScoreNet
from crossrank.families.seq_cls import (
    SeqClsNet,
    check_num_labels,
    check_relevance_head,
    is_seq_cls,
)
from crossrank.families.source import ModelSource, from_pretrained, torch_dtype_names

__all__ = ["LoadedFamily", "load_family"]

#: The model inputs a score net may read, in the order it takes them.
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class LoadedFamily:
    """A checkpoint loaded as its family.

    Attributes:
        name: The family (``"sequence-classification"``...).
        detail: What was found (architecture, labels), for ``repr`` and reports.
        net: The score net (on the CPU, as loaded).
        encoder: Turns (query, text) pairs into the net's token rows.
    """

    name: str
    detail: str
    net: ScoreNet
    encoder: PairEncoder

    @property
    def max_length(self) -> int:
        """Tokens per row."""
        return self.encoder.max_length


def _check_fast_tokenizer(model: str, tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise UnsupportedModelError(
            model,
            "it has no fast (Rust) tokenizer",
            "Save a tokenizer.json with the model (AutoTokenizer.from_pretrained(..., "
            "use_fast=True).save_pretrained(folder)).",
        )


def _check_architectures(model: str, config: Any) -> None:
    architectures = list(getattr(config, "architectures", None) or [])
    if architectures and not is_seq_cls(architectures):
        raise UnsupportedModelError(
            model,
            f"it is not a cross-encoder (architectures={architectures}); crossrank needs a "
            "sequence-classification model that reads a (query, text) pair",
            "Use a cross-encoder such as 'cross-encoder/ms-marco-MiniLM-L6-v2'; a bi-encoder "
            "(embedding model) belongs in the first-stage retriever.",
        )


def load_family(
    source: ModelSource,
    *,
    hub_kwargs: Mapping[str, Any],
    max_length: int | None,
    model_kwargs: Mapping[str, Any] | None = None,
    tokenizer_kwargs: Mapping[str, Any] | None = None,
    config_kwargs: Mapping[str, Any] | None = None,
) -> LoadedFamily:
    """Load ``source`` as a reranker: its score net (on the CPU) and its input encoder.

    Raises:
        ModelLoadError: The checkpoint cannot be read or is not a reranker crossrank scores
            (the message names what was found and what to do).
        ValueError: ``max_length`` is above the model's limit or leaves no room for text.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    model = source.name
    config = from_pretrained(AutoConfig, source, "config", hub_kwargs, config_kwargs)
    _check_architectures(model, config)
    num_labels = check_num_labels(model, config)
    tokenizer = from_pretrained(AutoTokenizer, source, "tokenizer", hub_kwargs, tokenizer_kwargs)
    _check_fast_tokenizer(model, tokenizer)
    hf_model, info = from_pretrained(
        AutoModelForSequenceClassification,
        source,
        "model",
        hub_kwargs,
        torch_dtype_names(model_kwargs) if model_kwargs else None,
        config=config,
        output_loading_info=True,
    )
    check_relevance_head(model, info)
    names = tuple(n for n in _INPUTS if n in tokenizer.model_input_names)
    special = int(tokenizer.num_special_tokens_to_add(pair=True))
    length = resolve_max_length(
        max_length, tokenizer, config, source.folder, model=model, special_tokens=special
    )
    architecture = (list(getattr(config, "architectures", None) or []) or ["?"])[0]
    return LoadedFamily(
        name="sequence-classification",
        detail=f"{architecture}, {num_labels} label{'s' if num_labels > 1 else ''}",
        net=SeqClsNet(hf_model.eval(), num_labels, names),
        encoder=PairEncoder(tokenizer, length, names),
    )
