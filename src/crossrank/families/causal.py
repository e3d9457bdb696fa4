"""The causal-LM family: a decoder scored by its next-token logits at the last real position.

The score is ``logit(true) - logit(false)`` (Qwen3-Reranker: "yes"/"no"; mxbai-rerank-v2:
"1"/"0"), or ``logit(true)`` alone (bge-reranker-v2-gemma: "Yes"; zerank-2), as a
sentence-transformers ``LogitScore`` module computes it. :class:`CausalLogitNet` computes only
what that needs: the backbone's last hidden state at the last position (rows are left-padded,
so it is a real token) times the one or two rows of the output head, never the
full-vocabulary head over every position. A causal reranker then costs what its backbone
costs, and the exported graph holds the backbone and a two-row head. At load, the net is
checked against the model's own full head on a short input (:func:`check_head`), so an
architecture that post-processes its logits in a way the net does not reproduce fails loudly
instead of scoring wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from crossrank.errors import UnsupportedModelError
from crossrank.families.net import ScoreNet

__all__ = ["CausalLogitNet", "DecoderHeadNet", "backbone_of", "check_head", "token_id"]


def backbone_of(model: Any) -> Any:
    """The decoder stack of a ``...ForCausalLM`` or decoder ``...ForSequenceClassification``
    (its ``base_model_prefix`` attribute: ``model`` for Qwen, Gemma, Llama, Mistral)."""
    backbone = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    if backbone is None or backbone is model:
        raise TypeError(f"{type(model).__name__} has no decoder stack crossrank can read")
    return backbone


def token_id(model: str, tokenizer: Any, token: str) -> int:
    """The vocabulary id of ``token``, which must be a single token.

    Raises:
        UnsupportedModelError: It is not one token of this tokenizer.
    """
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    direct = tokenizer.convert_tokens_to_ids(token)
    unk = getattr(tokenizer, "unk_token_id", None)
    if isinstance(direct, int) and direct != unk:
        return int(direct)
    if len(ids) == 1:
        return int(ids[0])
    raise UnsupportedModelError(
        model,
        f"the score token {token!r} is not a single token of its tokenizer (it becomes {ids})",
        "Pass true_token/false_token that are single tokens of this model's vocabulary.",
    )


class _LastPosition(ScoreNet):
    """A decoder read at its last position (rows are left-padded)."""

    backbone: Any

    def _last_hidden(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = self.backbone(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            use_cache=False,
        )
        hidden: torch.Tensor = out.last_hidden_state[:, -1]
        return hidden


class CausalLogitNet(_LastPosition):
    """A causal LM's next-token logits of one or two tokens at the last position.

    Args:
        model: A ``...ForCausalLM`` (its backbone and output head are used; the full head is
            not kept).
        true_id: The token whose logit is the score.
        false_id: The token whose logit is subtracted, or None.
    """

    def __init__(self, model: Any, true_id: int, false_id: int | None) -> None:
        super().__init__()
        self.backbone = backbone_of(model)
        head = model.get_output_embeddings()
        ids = [true_id] if false_id is None else [true_id, false_id]
        rows = torch.nn.Linear(head.weight.shape[1], len(ids), bias=head.bias is not None)
        rows = rows.to(dtype=head.weight.dtype, device=head.weight.device)
        with torch.no_grad():
            rows.weight.copy_(head.weight[ids])
            if head.bias is not None:
                rows.bias.copy_(head.bias[ids])
        self.rows = rows
        self.true_id, self.false_id = true_id, false_id
        self.config = model.config
        cap = getattr(model.config, "final_logit_softcapping", None)
        self.softcap = float(cap) if isinstance(cap, (int, float)) and cap > 0 else None

    def score(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits = self.rows(self._last_hidden(inputs)).float()
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        score: torch.Tensor = logits[:, 0] if self.false_id is None else logits[:, 0] - logits[:, 1]
        return score

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "true_id": self.true_id, "false_id": self.false_id}


class DecoderHeadNet(_LastPosition):
    """A decoder ``...ForSequenceClassification`` (Qwen2/Qwen3/Gemma/Llama conversions): its
    ``score`` head on the last position's hidden state.

    transformers finds the last real token by the pad token id, which fails without one
    ("Cannot handle batch sizes > 1 if no padding token is defined") and misreads a row whose
    last real token equals it; rows here are left-padded, so the last position is read.
    """

    def __init__(self, model: Any, num_labels: int) -> None:
        super().__init__()
        self.backbone = backbone_of(model)
        self.head = model.score
        self.num_labels = num_labels
        self.config = model.config

    def score(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        from crossrank.families.net import relevance

        return relevance(self.head(self._last_hidden(inputs)), self.num_labels)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "num_labels": self.num_labels}


def check_head(
    model_name: str,
    model: Any,
    net: CausalLogitNet,
    example: Mapping[str, Sequence[Sequence[int]]],
) -> None:
    """Raise unless ``net`` scores like the full model's own logits on ``example`` rows.

    Raises:
        UnsupportedModelError: The architecture post-processes its logits in a way the net
            does not reproduce.
    """
    with torch.inference_mode():
        for ids in example["input_ids"]:
            input_ids = torch.tensor([list(ids)])
            mask = torch.ones_like(input_ids)
            try:  # the last position's logits only, where the model can
                out = model(
                    input_ids=input_ids, attention_mask=mask, use_cache=False, logits_to_keep=1
                )
            except TypeError:
                out = model(input_ids=input_ids, attention_mask=mask, use_cache=False)
            full = out.logits[0, -1]
            full = full.float()
            expected = full[net.true_id] - (0 if net.false_id is None else full[net.false_id])
            got = net.score({"input_ids": input_ids, "attention_mask": mask})[0]
            exact = net.rows.weight.dtype == torch.float32
            tolerance = (1e-3 if exact else 5e-2) * max(1.0, abs(float(expected)))
            if not torch.isfinite(got) or abs(float(got) - float(expected)) > tolerance:
                raise UnsupportedModelError(
                    model_name,
                    f"its output head is not a plain projection crossrank can cut to the score "
                    f"tokens ({type(model).__name__}: {float(got):.4f} against the full head's "
                    f"{float(expected):.4f})",
                    "Report the architecture to crossrank; meanwhile convert the model to a "
                    "sequence-classification checkpoint.",
                )
