"""What ``crossrank train`` starts from: a one-logit cross-encoder or a plain encoder.

Checked from the model's config and sentence-transformers files alone, before any weight is
loaded or data is read:

- a cross-encoder (``...ForSequenceClassification`` with one label, of any architecture: a
  BERT, an XLM-R, a Qwen3 seq-cls conversion...) is trained further;
- a plain encoder checkpoint (BERT, RoBERTa, ELECTRA, DeBERTa ... without a head, a
  sentence-transformers bi-encoder folder included) gets a new one-logit head;
- anything else is refused: a folder without ``config.json``, a causal LM reranker (scored by
  next-token logits: fine-tuning one is out of scope) or a sentence-transformers module
  pipeline (Transformer -> Pooling -> Dense ..., the Ettin rerankers), another decoder-only
  or encoder-decoder model, a classifier with other than one label.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from crossrank.families.detect import Detected

__all__ = ["BaseModelKind", "check_base_model"]

#: ``"cross-encoder"`` (continue training) or ``"encoder"`` (a new one-logit head).
BaseModelKind = Literal["cross-encoder", "encoder"]


def _config(model: str, *, local_files_only: bool) -> Any:
    from transformers import AutoConfig

    folder = Path(model).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"model={model!r} is a file; pass a model folder or a Hub id")
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"model={model!r} has no config.json, so it is not a transformers model "
                "folder; pass an encoder checkpoint (BERT, RoBERTa, ...) or a cross-encoder"
            )
    try:
        return AutoConfig.from_pretrained(model, local_files_only=local_files_only)
    except (OSError, ValueError, KeyError) as e:
        from crossrank.errors import ModelNotFoundError

        raise ModelNotFoundError(
            model,
            f"its config could not be read ({type(e).__name__}: {str(e).splitlines()[0]})",
            "Pass a local model folder, or a Hub id with the Hub reachable",
        ) from e


def check_base_model(model: str, *, local_files_only: bool = False) -> BaseModelKind:
    """Say whether ``model`` is a cross-encoder or a plain encoder, from its config.

    Raises:
        ValueError: The folder has no config, or the model is not an encoder (decoder-only,
            encoder-decoder), or it is a classifier with other than one label.
        crossrank.errors.ModelNotFoundError: The config cannot be found or read.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    config = _config(model, local_files_only=local_files_only)
    family = _reranker_family(model, config, local_files_only=local_files_only)
    if family is not None and family.family != "sequence-classification":
        raise ValueError(
            f"model={model!r} is a {_FAMILY_NAMES[family.family]} ({family.found}); crossrank "
            "train fine-tunes sequence-classification cross-encoders and plain encoders, not "
            "causal LM rerankers or module pipelines (docs/training.md): score it as it is, "
            "or start from a sequence-classification checkpoint"
        )
    if family is not None:
        return _one_label(model, config)
    model_type = getattr(config, "model_type", None)
    is_decoder = bool(getattr(config, "is_decoder", False))
    is_seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    encoder = (
        model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
        and not is_decoder
        and not is_seq2seq
    )
    if not encoder:
        what = (
            "an encoder-decoder model" if is_seq2seq
            else "a decoder-only model" if is_decoder or model_type not in
            MODEL_FOR_MASKED_LM_MAPPING_NAMES
            else "not a model with a sequence-classification head"
        )  # fmt: skip
        raise ValueError(
            f"model={model!r} is {what} (model_type {model_type!r}), not an encoder; "
            "crossrank train fine-tunes encoders (BERT, RoBERTa, ELECTRA, DeBERTa, ...) or "
            "cross-encoders built on them"
        )
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return _one_label(model, config)
    return "encoder"


#: How a refused family is named in ``check_base_model``'s message.
_FAMILY_NAMES = {
    "causal-lm": "causal LM reranker scored by next-token logits",
    "sentence-transformers": "sentence-transformers module pipeline",
}


def _one_label(model: str, config: Any) -> BaseModelKind:
    """A sequence-classification checkpoint trains on if it has one label."""
    num_labels = int(getattr(config, "num_labels", 1))
    if num_labels != 1:
        raise ValueError(
            f"model={model!r} is a classifier with {num_labels} labels; crossrank train "
            "trains one relevance logit: start from a one-logit cross-encoder or from "
            "its plain encoder"
        )
    return "cross-encoder"


def _reranker_family(
    model: str, config: Any, *, local_files_only: bool = False
) -> Detected | None:
    """The reranker family crossrank reads ``model`` as (a
    :class:`crossrank.families.detect.Detected`), from ``config`` and its
    sentence-transformers files; None when it fits none (a plain encoder, a bi-encoder, a
    decoder that is no reranker).

    Raises:
        crossrank.errors.UnsupportedModelError: Its ``modules.json`` names a module
            crossrank (and sentence-transformers without remote code) cannot run.
    """
    from crossrank.errors import UnsupportedModelError
    from crossrank.families.checkpoint import read_checkpoint
    from crossrank.families.detect import detect
    from crossrank.families.source import resolve_source

    hub_kwargs = {"local_files_only": local_files_only, "trust_remote_code": False}
    checkpoint = read_checkpoint(resolve_source(model), hub_kwargs)  # an unknown module: raises
    try:
        return detect(model, checkpoint, config)
    except UnsupportedModelError:
        return None
