"""The score net: a model reduced to what a relevance score needs.

Every family turns its checkpoint into a :class:`ScoreNet`, a ``torch.nn.Module`` that takes
the token inputs named in :attr:`ScoreNet.input_names` (positionally, in that order) and
returns one float32 relevance logit per row. The runtimes (:mod:`crossrank.runtimes`) run,
export and quantize that module and nothing else, so a family's score head is part of the
exported graph and every backend computes the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["ScoreNet", "relevance"]


def relevance(logits: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Relevance logits (float32, one per row) from a classifier's ``(rows, labels)`` logits.

    A one-logit model's logit is its relevance; a two-logit (not relevant, relevant)
    model's is the positive class's log-odds, ``logits[:, 1] - logits[:, 0]`` (its sigmoid
    is the softmax probability of the positive class).

    Raises:
        ValueError: ``num_labels`` is not 1 or 2, or ``logits`` has fewer columns.
    """
    if num_labels not in (1, 2) or logits.dim() != 2 or logits.shape[1] < num_labels:
        raise ValueError(
            f"relevance needs (rows, num_labels) logits with num_labels 1 or 2, got shape "
            f"{tuple(logits.shape)} and num_labels={num_labels}"
        )
    logits = logits.float()
    if num_labels == 1:
        return logits[:, 0]
    return logits[:, 1] - logits[:, 0]


class ScoreNet(torch.nn.Module):
    """Token inputs in, one relevance logit per row out.

    Subclasses implement :meth:`score` and set :attr:`input_names` (a prefix of
    ``input_ids, attention_mask, token_type_ids``); :meth:`describe` says
    what the net computes (it is part of the export cache key, with the weights).

    Attributes:
        input_names: The inputs :meth:`forward` takes, in order (``input_ids`` and
            ``attention_mask`` first, ``token_type_ids`` where the model reads it).
        config: The Hugging Face config of the model inside, or None.
    """

    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    config: Any = None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Relevance logits ``(rows,)`` in float32 (inputs by name or in
        :attr:`input_names` order, so the exporters can trace it)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.score(inputs)

    def score(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Relevance logits ``(rows,)`` for named inputs."""
        raise NotImplementedError

    def prepare_export(self) -> None:
        """Make the models inside export correctly with padding: eager attention, whose
        padding mask is a large finite number (an SDPA graph gives NaN in OpenVINO for the
        fully masked rows that padding makes, and the NaN reaches real rows), and no KV cache
        among the outputs. Idempotent; the weights and the scores do not change."""
        for module in self.modules():
            config = getattr(module, "config", None)
            if config is None:
                continue
            if getattr(config, "use_cache", None):
                config.use_cache = False
            setter = getattr(module, "set_attn_implementation", None)
            if callable(setter) and getattr(config, "_attn_implementation", "eager") != "eager":
                try:
                    setter("eager")
                except (ValueError, NotImplementedError, AttributeError):
                    pass  # a model with one attention implementation keeps it

    def describe(self) -> dict[str, Any]:
        """What this net computes, as JSON-ready data (family, head, config)."""
        config = None if self.config is None else dict(self.config.to_dict())
        if config is not None:  # runtime settings that prepare_export may change
            config.pop("use_cache", None)
            config = {k: v for k, v in config.items() if not k.startswith("_attn")}
        return {"net": type(self).__name__, "inputs": list(self.input_names), "config": config}
