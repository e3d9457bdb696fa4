"""Which family a checkpoint is, from what it holds: sentence-transformers' files first
(``modules.json``), then the Hugging Face config's architecture; ``family=`` overrides.

=============================  ==============================================================
family                         what it is
=============================  ==============================================================
``sequence-classification``    a ``...ForSequenceClassification`` with 1 or 2 labels: BERT,
                               XLM-R, DeBERTa, ModernBERT, ELECTRA cross-encoders, and decoder
                               conversions (Qwen2/Qwen3/Gemma ``...ForSequenceClassification``)
``causal-lm``                  a ``...ForCausalLM`` scored by next-token logits: a
                               sentence-transformers ``LogitScore``, or a known reranker
                               (:mod:`crossrank.families.known`), or ``true_token=``
``sentence-transformers``      a module pipeline (``Transformer`` -> ``Pooling`` -> ``Dense``
                               -> ``LayerNorm`` -> ``Dense``...), e.g. the Ettin rerankers
=============================  ==============================================================

A known reranker's name (``family="qwen3-reranker"``...) picks that reranker's template and
tokens; on a sequence-classification checkpoint it picks the template only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossrank.errors import UnsupportedModelError
from crossrank.families.checkpoint import Checkpoint, Module
from crossrank.families.known import KNOWN, KnownReranker, known_by_architecture

__all__ = ["FAMILIES", "Detected", "check_family", "detect"]

#: The values ``family=`` takes.
FAMILIES: tuple[str, ...] = (
    "auto",
    "sequence-classification",
    "causal-lm",
    "sentence-transformers",
    *KNOWN,
)

_SUPPORTED = (
    "crossrank scores sequence-classification cross-encoders (1 or 2 labels), causal LM "
    "rerankers scored by next-token logits (a sentence-transformers LogitScore module, "
    f"the known {', '.join(KNOWN)}, or true_token=...) and sentence-transformers module "
    "pipelines ending in a one-output Dense layer"
)


def check_family(value: object) -> str:
    """Return ``value`` if it names a family (one of :data:`FAMILIES`).

    Raises:
        ValueError: Anything else, with the list.
    """
    if value in FAMILIES:
        return str(value)
    raise ValueError(f"family must be one of {FAMILIES}, got {value!r}")


@dataclass(frozen=True)
class Detected:
    """A checkpoint's family and what it was recognised by.

    Attributes:
        family: ``"sequence-classification"``, ``"causal-lm"`` or ``"sentence-transformers"``.
        found: What was found, in one line (``modules.json: Transformer(text-generation) ->
            LogitScore``, ``config: BertForSequenceClassification``...).
        known: The known reranker whose template (and, for causal LMs, tokens) apply.
        true_token_id / false_token_id: A ``LogitScore``'s token ids.
        modules: The module pipeline after the ``Transformer`` (``sentence-transformers``).
    """

    family: str
    found: str
    known: KnownReranker | None = None
    true_token_id: int | None = None
    false_token_id: int | None = None
    modules: tuple[Module, ...] = ()


def _architectures(config: Any) -> list[str]:
    return list(getattr(config, "architectures", None) or [])


def _no_family(model: str, found: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        model,
        f"it fits no reranker family ({found})",
        _SUPPORTED + "; pass family=... if it is one of them.",
    )


def _from_modules(model: str, checkpoint: Checkpoint, config: Any) -> Detected:
    modules = [m for m in checkpoint.modules or () if m.kind != "dropout"]
    found = f"modules.json: {checkpoint.describe_modules()}"
    if not modules or modules[0].kind != "transformer":
        raise _no_family(model, found)
    task = str(modules[0].config.get("transformer_task") or "")
    rest = modules[1:]
    kinds = [m.kind for m in rest]
    if kinds == ["logit_score"]:
        score = rest[0].config
        true_id = score.get("true_token_id")
        if not isinstance(true_id, int):
            raise UnsupportedModelError(
                model,
                f"its LogitScore module has no true_token_id ({dict(score)})",
                "Re-save the model with sentence-transformers, or pass family='causal-lm' "
                "with true_token='...'.",
            )
        false_id = score.get("false_token_id")
        return Detected(
            "causal-lm",
            found,
            true_token_id=true_id,
            false_token_id=false_id if isinstance(false_id, int) else None,
        )
    if not rest:
        if task in ("", "sequence-classification") or any(
            a.endswith("ForSequenceClassification") for a in _architectures(config)
        ):
            return Detected("sequence-classification", found)
        raise _no_family(model, f"{found}; a {task} Transformer with no score module")
    if kinds and kinds[-1] == "dense" and set(kinds) <= {"pooling", "dense", "layer_norm"}:
        if "pooling" not in kinds:
            raise _no_family(model, f"{found}; no Pooling before the Dense layers")
        out = rest[-1].config.get("out_features")
        if out in (1, 2):
            return Detected("sentence-transformers", found, modules=tuple(rest))
        raise _no_family(
            model,
            f"{found}; its last Dense layer has {out} outputs, not a relevance score (an "
            "embedding model belongs in the first-stage retriever)",
        )
    if "normalize" in kinds or kinds == ["pooling"]:
        raise _no_family(
            model,
            f"{found}: an embedding model (a bi-encoder); it belongs in the first-stage "
            "retriever",
        )
    raise _no_family(model, found)


def detect(
    model: str,
    checkpoint: Checkpoint,
    config: Any,
    *,
    family: str = "auto",
    true_token: str | None = None,
) -> Detected:
    """The checkpoint's family.

    Args:
        model: The model's name, for messages.
        checkpoint: Its sentence-transformers files (:func:`crossrank.families.checkpoint.
            read_checkpoint`).
        config: Its Hugging Face config.
        family: ``"auto"`` (detect) or a value of :data:`FAMILIES`.
        true_token: The scorer's ``true_token`` option (a causal LM with no LogitScore and
            no known template is scored with it).

    Raises:
        UnsupportedModelError: It fits no family (the message names what was found and the
            families crossrank supports), or not the one asked for.
    """
    architectures = _architectures(config)
    by_config = f"config: architectures={architectures or 'none'}"
    if family in KNOWN:
        known = KNOWN[family]
        if any(a.endswith("ForSequenceClassification") for a in architectures):
            return Detected("sequence-classification", f"{by_config}, family={family!r}", known)
        if checkpoint.modules is not None:
            detected = _from_modules(model, checkpoint, config)
            return Detected(detected.family, f"{detected.found}, family={family!r}", known,
                            detected.true_token_id, detected.false_token_id, detected.modules)
        return Detected("causal-lm", f"{by_config}, family={family!r}", known)
    if family == "auto" and checkpoint.modules is not None:
        return _from_modules(model, checkpoint, config)
    if family in ("auto", "sequence-classification") and any(
        a.endswith("ForSequenceClassification") for a in architectures
    ):
        return Detected("sequence-classification", by_config)
    if family == "sentence-transformers":
        if checkpoint.modules is None:
            raise UnsupportedModelError(
                model,
                "family='sentence-transformers' needs a modules.json, and it has none",
                "Leave family='auto' to detect the family from its config.",
            )
        return _from_modules(model, checkpoint, config)
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    if family in ("auto", "causal-lm") and causal:
        by_arch = known_by_architecture(architectures)
        if true_token is not None:
            return Detected("causal-lm", f"{by_config}, true_token={true_token!r}", by_arch)
        if by_arch is not None:
            return Detected("causal-lm", f"{by_config}, as {by_arch.name}", by_arch)
        raise UnsupportedModelError(
            model,
            f"it is a causal LM ({', '.join(architectures)}) with no sentence-transformers "
            "LogitScore module and not one of the known rerankers "
            f"({', '.join(k.name for k in KNOWN.values())})",
            "Pass true_token='yes' (and false_token='no') and template='...{query}..."
            "{document}...' to score it by next-token logits, or family=NAME for a known "
            "reranker.",
        )
    if family == "causal-lm":
        raise UnsupportedModelError(
            model, f"family='causal-lm' needs a ...ForCausalLM checkpoint ({by_config})",
            "Leave family='auto' to detect its family.",
        )
    if family == "sequence-classification":
        raise UnsupportedModelError(
            model,
            f"family='sequence-classification' needs a ...ForSequenceClassification "
            f"checkpoint ({by_config})",
            "Leave family='auto' to detect its family.",
        )
    if architectures and all(a.endswith(("Model", "ForMaskedLM")) for a in architectures):
        raise _no_family(
            model,
            f"{by_config}: a base encoder with no relevance head (an embedding model "
            "belongs in the first-stage retriever; a base model needs fine-tuning, e.g. "
            "with crossrank train)",
        )
    raise _no_family(model, by_config)
