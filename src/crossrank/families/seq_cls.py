"""The sequence-classification family: a Hugging Face ``...ForSequenceClassification`` model
with one or two labels (BERT, RoBERTa/XLM-R, DeBERTa, ELECTRA, ModernBERT... cross-encoders).

Its score is the classifier's logit (one label) or the positive class's log-odds (two
labels), computed inside the net (:func:`crossrank.families.net.relevance`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from crossrank.errors import UnsupportedModelError
from crossrank.families.net import ScoreNet, relevance

__all__ = ["SeqClsNet", "check_num_labels", "check_relevance_head", "is_seq_cls"]


def is_seq_cls(architectures: list[str]) -> bool:
    """Whether the config's architectures name a sequence-classification model."""
    return any(a.endswith("ForSequenceClassification") for a in architectures)


def check_num_labels(model: str, config: Any) -> int:
    """Return the number of labels if ``config`` is a one- or two-logit classifier."""
    num_labels = int(getattr(config, "num_labels", 1))
    if num_labels not in (1, 2):
        raise UnsupportedModelError(
            model,
            f"it has {num_labels} output labels",
            "crossrank scores relevance with one-logit or two-logit (relevant/not) models.",
        )
    return num_labels


def check_relevance_head(model: str, info: Mapping[str, Any]) -> None:
    """Raise when the classifier's weights were not in the checkpoint (random scores)."""
    missing = [k for k in info.get("missing_keys", []) if "classifier" in k or "score" in k]
    if missing:
        raise UnsupportedModelError(
            model,
            f"its relevance head was not in the weights (missing {missing[:3]}), so scores "
            "would be random",
            "Use a fine-tuned cross-encoder, not a base encoder.",
        )


class SeqClsNet(ScoreNet):
    """A sequence-classification model whose logits become one relevance per row."""

    def __init__(self, model: Any, num_labels: int, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.num_labels = num_labels
        self.input_names = input_names
        self.config = model.config

    def score(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return relevance(self.model(**inputs).logits, self.num_labels)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "num_labels": self.num_labels}
