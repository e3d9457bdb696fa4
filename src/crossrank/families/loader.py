"""Load a checkpoint as its family: detect it (:mod:`crossrank.families.detect`), build its
score net and the encoder that turns pairs into its rows, and check the result is a reranker
crossrank can score."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crossrank.errors import UnsupportedModelError
from crossrank.families.causal import CausalLogitNet, DecoderHeadNet, check_head, token_id
from crossrank.families.checkpoint import Checkpoint, read_checkpoint
from crossrank.families.detect import Detected, detect
from crossrank.families.inputs import Encoder, PairEncoder, TemplateEncoder
from crossrank.families.limits import resolve_max_length
from crossrank.families.net import ScoreNet
from crossrank.families.prompts import Prompts
from crossrank.families.seq_cls import SeqClsNet, check_num_labels, check_relevance_head
from crossrank.families.source import ModelSource, from_pretrained, torch_dtype_names
from crossrank.families.st_modules import build_modules
from crossrank.families.templates import ChatTemplate, FormatTemplate, Template

__all__ = ["FamilyOptions", "LoadedFamily", "load_family"]

logger = logging.getLogger("crossrank")

#: The model inputs a score net may read, in the order it takes them.
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

#: Patterns that mark a chat template whose message contents are lists of typed parts.
_STRUCTURED = ("content[0]", ".type", "'type'", '"type"', "item.type", "message.content[")


@dataclass(frozen=True)
class FamilyOptions:
    """The scorer's settings that decide how a checkpoint is read.

    Attributes:
        family: ``"auto"`` or a family name (:data:`crossrank.families.detect.FAMILIES`).
        instruction: The instruction (a sentence-transformers prompt), or None.
        prompt_name: A prompt the checkpoint saved, or None.
        template: A format template (``{query}``, ``{document}``...), or None.
        true_token / false_token: The score tokens of a causal LM without a LogitScore.
    """

    family: str = "auto"
    instruction: str | None = None
    prompt_name: str | None = None
    template: str | None = None
    true_token: str | None = None
    false_token: str | None = None


@dataclass(frozen=True)
class LoadedFamily:
    """A checkpoint loaded as its family.

    Attributes:
        name: The family (``"sequence-classification"``, ``"causal-lm"``,
            ``"sentence-transformers"``).
        detail: What was found and how pairs are read and scored, for ``repr`` and reports.
        net: The score net (on the CPU, as loaded).
        encoder: Turns (query, text) pairs into the net's token rows.
    """

    name: str
    detail: str
    net: ScoreNet
    encoder: Encoder

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


def _pad_token_id(model: str, tokenizer: Any) -> int:
    """The pad token's id; a tokenizer without one pads with its end-of-sequence token
    (padded positions are masked, so which token fills them does not change a score)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    if tokenizer.eos_token_id is not None:
        logger.info(
            "crossrank: %s has no pad token; padding with its end-of-sequence token %r",
            model,
            tokenizer.eos_token,
        )
        return int(tokenizer.eos_token_id)
    return 0


def _chat_template(checkpoint: Checkpoint, tokenizer: Any) -> ChatTemplate | None:
    """The chat template sentence-transformers would read pairs with, or None (pair input).

    sentence-transformers renders pairs as messages when its Transformer module supports the
    message modality: as saved (``modality_config``), or, when nothing is saved, whenever the
    tokenizer has a chat template.
    """
    text = getattr(tokenizer, "chat_template", None)
    if not isinstance(text, str) or not text:
        return None
    settings = checkpoint.transformer
    modality = settings.get("modality_config")
    if isinstance(modality, dict) and "message" not in modality:
        return None
    message = modality.get("message") if isinstance(modality, dict) else None
    saved_format = message.get("format") if isinstance(message, dict) else None
    structured = (
        saved_format == "structured"
        if saved_format in ("flat", "structured")
        else any(p in text for p in _STRUCTURED)
    )
    processing = settings.get("processing_kwargs")
    kwargs = dict(processing.get("chat_template") or {}) if isinstance(processing, dict) else {}
    for key in ("restore_suffix", "truncation", "max_length", "padding", "return_tensors"):
        kwargs.pop(key, None)
    source = "chat_template.jinja" if checkpoint.chat_template else "the tokenizer's"
    return ChatTemplate(tokenizer, source, kwargs, structured)


def _template(
    model: str,
    checkpoint: Checkpoint,
    detected: Detected,
    tokenizer: Any,
    options: FamilyOptions,
) -> Template | None:
    """How pairs are rendered: the ``template=`` option, a named known reranker's template, the
    checkpoint's chat template (as sentence-transformers reads it), a known reranker's
    template for an original checkpoint, or None (the tokenizer's pair input)."""
    bos, eos = str(tokenizer.bos_token or ""), str(tokenizer.eos_token or "")
    if options.template is not None:
        return FormatTemplate(options.template, bos_token=bos, eos_token=eos)
    known = detected.known
    named = known is not None and options.family == known.name
    if known is not None and (named or not checkpoint.saved_by_sentence_transformers):
        return FormatTemplate(
            known.template,
            default_instruction=known.default_instruction,
            instruction_format=known.instruction_format,
            bos_token=bos,
            eos_token=eos,
            source=f"{known.name}, built in",
        )
    chat = _chat_template(checkpoint, tokenizer)
    if chat is not None:
        chat.check(model)
    return chat


def _score_ids(
    model: str, detected: Detected, tokenizer: Any, options: FamilyOptions
) -> tuple[int, int | None, str]:
    """The causal LM's score tokens: the options', the LogitScore's, or the known reranker's."""
    if options.true_token is not None:
        true_id = token_id(model, tokenizer, options.true_token)
        false_id = (
            None if options.false_token is None else token_id(model, tokenizer, options.false_token)
        )
        return true_id, false_id, "true_token/false_token"
    if detected.true_token_id is not None:
        return detected.true_token_id, detected.false_token_id, "LogitScore"
    if detected.known is not None:
        known = detected.known
        true_id = token_id(model, tokenizer, known.true_token)
        false_id = (
            None if known.false_token is None else token_id(model, tokenizer, known.false_token)
        )
        return true_id, false_id, known.name
    raise UnsupportedModelError(
        model, "it has no score tokens", "Pass true_token='yes' (and false_token='no')."
    )


def _token_text(tokenizer: Any, token: int | None) -> str:
    return "-" if token is None else repr(tokenizer.convert_ids_to_tokens(int(token)))


def _net(
    source: ModelSource,
    detected: Detected,
    config: Any,
    tokenizer: Any,
    hub_kwargs: Mapping[str, Any],
    model_kwargs: Mapping[str, Any] | None,
    options: FamilyOptions,
    prompts: Prompts,
) -> tuple[ScoreNet, str, bool, Any]:
    """The score net, how it scores (for reports), whether it reads the last position (left
    padding), and a causal LM's full model (to check the cut head against; else None)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    model = source.name
    user = torch_dtype_names(model_kwargs) if model_kwargs else None
    if detected.family == "causal-lm":
        config.use_cache = False
        lm = from_pretrained(AutoModelForCausalLM, source, "model", hub_kwargs, user, config=config)
        true_id, false_id, where = _score_ids(model, detected, tokenizer, options)
        net: ScoreNet = CausalLogitNet(lm.eval(), true_id, false_id)
        score = f"logit({_token_text(tokenizer, true_id)})"
        if false_id is not None:
            score += f" - logit({_token_text(tokenizer, false_id)})"
        return net, f"{score} at the last token ({where})", True, lm
    if detected.family == "sentence-transformers":
        encoder = from_pretrained(AutoModel, source, "model", hub_kwargs, user, config=config)
        names = tuple(n for n in _INPUTS if n in tokenizer.model_input_names)
        modules = detected.modules
        pipeline = " -> ".join(m.type.rsplit(".", 1)[-1] for m in modules)
        net = build_modules(
            source,
            encoder.eval(),
            modules,
            names,
            hub_kwargs,
            pipeline=pipeline,
            prompts=prompts.resolve() is not None,
        )
        return net, f"modules {pipeline}", False, None
    num_labels = check_num_labels(model, config)
    hf, info = from_pretrained(
        AutoModelForSequenceClassification,
        source,
        "model",
        hub_kwargs,
        user,
        config=config,
        output_loading_info=True,
    )
    check_relevance_head(model, info)
    labels = f"{num_labels} label{'s' if num_labels > 1 else ''}"
    if hasattr(hf, "score") and not hasattr(hf, "classifier"):  # a decoder conversion
        config.use_cache = False
        net = DecoderHeadNet(hf.eval(), num_labels)
        return net, f"classifier head, {labels}, last token", True, None
    names = tuple(n for n in _INPUTS if n in tokenizer.model_input_names)
    return SeqClsNet(hf.eval(), num_labels, names), f"classifier head, {labels}", False, None


def load_family(
    source: ModelSource,
    *,
    hub_kwargs: Mapping[str, Any],
    max_length: int | None,
    model_kwargs: Mapping[str, Any] | None = None,
    tokenizer_kwargs: Mapping[str, Any] | None = None,
    config_kwargs: Mapping[str, Any] | None = None,
    options: FamilyOptions | None = None,
) -> LoadedFamily:
    """Load ``source`` as a reranker: its score net (on the CPU) and its input encoder.

    Raises:
        ModelLoadError: The checkpoint cannot be read or is not a reranker crossrank scores
            (the message names what was found and what to do).
        ValueError: ``max_length`` is above the model's limit or leaves no room for text, or
            ``prompt_name`` names no saved prompt.
    """
    from transformers import AutoConfig, AutoTokenizer

    options = options or FamilyOptions()
    model = source.name
    config = from_pretrained(AutoConfig, source, "config", hub_kwargs, config_kwargs)
    checkpoint = read_checkpoint(source, hub_kwargs)
    detected = detect(
        model, checkpoint, config, family=options.family, true_token=options.true_token
    )
    tokenizer = from_pretrained(AutoTokenizer, source, "tokenizer", hub_kwargs, tokenizer_kwargs)
    _check_fast_tokenizer(model, tokenizer)
    prompts = Prompts.of(
        checkpoint.st_config,
        model=model,
        instruction=options.instruction,
        prompt_name=options.prompt_name,
    )
    net, scoring, last_position, full = _net(
        source, detected, config, tokenizer, hub_kwargs, model_kwargs, options, prompts
    )
    template = _template(model, checkpoint, detected, tokenizer, options)
    if last_position:
        names: tuple[str, ...] = ("input_ids", "attention_mask")
        net.input_names = names
    else:
        names = net.input_names
    side = "left" if last_position else str(getattr(tokenizer, "padding_side", "right"))
    common: dict[str, Any] = {
        "prompts": prompts,
        "padding_side": side,
        "pad_token_id": _pad_token_id(model, tokenizer),
    }
    if template is None:
        fixed = int(tokenizer.num_special_tokens_to_add(pair=True))
    else:
        rendered = template.render("", "", prompts.resolve())
        fixed = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    length = resolve_max_length(
        max_length,
        tokenizer,
        config,
        checkpoint.transformer.get("max_seq_length"),
        model=model,
        special_tokens=fixed,
    )
    encoder: Encoder = (
        PairEncoder(tokenizer, length, names, **common)
        if template is None
        else TemplateEncoder(tokenizer, length, names, template, **common)
    )
    if full is not None and isinstance(net, CausalLogitNet):
        check_head(model, full, net, encoder.rows("what does a reranker do", ["It orders texts."]))
        del full  # the full output head is not kept
    return LoadedFamily(
        name=detected.family,
        detail=f"{detected.found}; reads {encoder.describe()}; scores {scoring}",
        net=net,
        encoder=encoder,
    )
