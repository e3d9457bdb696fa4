"""What ``crossrank train`` starts from: a one-logit cross-encoder or a plain encoder.

Checked from the model's config alone, before any weight is loaded or data is read:

- a cross-encoder (``...ForSequenceClassification`` with one label) is trained further;
- a plain encoder checkpoint (BERT, RoBERTa, ELECTRA, DeBERTa ... without a head, a
  sentence-transformers bi-encoder folder included) gets a new one-logit head;
- anything else is refused: a folder without ``config.json``, a decoder-only or
  encoder-decoder model, a classifier with other than one label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

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
        num_labels = int(getattr(config, "num_labels", 1))
        if num_labels != 1:
            raise ValueError(
                f"model={model!r} is a classifier with {num_labels} labels; crossrank train "
                "trains one relevance logit: start from a one-logit cross-encoder or from "
                "its plain encoder"
            )
        return "cross-encoder"
    return "encoder"
