"""Tiny checkpoints of every reranker family, saved the way the family's Hub checkpoints are
(tests/family_kit.py lists what each mirrors): random seeded weights, 2 layers of width 32, and a
tokenizer trained on the kit's texts (tests/family_tokenizers.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conftest import build_tiny_model
from family_formats import (
    INSTRUCTION,
    MAX_LENGTH,
    QWEN3_DEFAULT_INSTRUCTION,
    QWEN3_RERANKER_TEMPLATE,
    QWEN25_DEFAULT_SYSTEM,
    ZERANK_TEMPLATE,
    chatml_template,
)
from family_tokenizers import (
    deberta_tokenizer,
    electra_tokenizer,
    gemma_tokenizer,
    modernbert_tokenizer,
    qwen_tokenizer,
    xlmr_tokenizer,
)

#: Weight scale (std): well above the usual 0.02, so that the 8 scores of a random model lie far
#: enough apart (test_family_kit checks 1e-3) for an order check between two scorers to mean
#: something.
INIT_RANGE = 0.4
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
#: Decoders: grouped-query attention (2 heads, 1 key/value head) as in Qwen3 and Gemma.
TINY_DECODER = {**TINY, "num_key_value_heads": 1, "initializer_range": INIT_RANGE}


def _patch_json(path: Path, **updates: Any) -> None:
    saved = json.loads(path.read_text())
    saved.update(updates)
    path.write_text(json.dumps(saved, indent=2) + "\n")


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _save(folder: Path, model: Any, tokenizer: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _staged(folder: Path) -> Path:
    """A sibling folder for the plain transformers save that sentence-transformers re-saves."""
    stage = folder.parent / f"{folder.name}.stage"
    shutil.rmtree(stage, ignore_errors=True)
    return stage


def _st_save(folder: Path, modules: list[Any], **crossencoder_kwargs: Any) -> Path:
    """``CrossEncoder(modules=...).save(folder)``, the identity activation saved with it."""
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(modules=modules, activation_fn=torch.nn.Identity(), **crossencoder_kwargs)
    model.save(str(folder))
    return folder


def _rename_modules(folder: Path, types: Sequence[str]) -> None:
    modules_json = folder / "modules.json"
    modules = json.loads(modules_json.read_text())
    for module, module_type in zip(modules, types, strict=False):
        module["type"] = module_type
    modules_json.write_text(json.dumps(modules, indent=2))


def build_bert(folder: Path, *, num_labels: int = 1, seed: int = 0) -> Path:
    """conftest's tiny BERT cross-encoder, its weights redrawn at :data:`INIT_RANGE`."""
    import torch
    from transformers import BertForSequenceClassification

    build_tiny_model(folder, num_labels=num_labels, seed=seed)
    model = BertForSequenceClassification.from_pretrained(folder)
    _seeded(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                module.weight.normal_(0.0, INIT_RANGE)
    model.save_pretrained(folder)
    return folder


#: The saved prompts of ``bert-default-prompt``; sentence-transformers prepends the default one
#: to the query of each pair (a model without a chat template takes it as text).
BERT_PROMPTS = {"query": "query: ", "scifact": INSTRUCTION + ": "}


def build_bert_default_prompt(folder: Path) -> Path:
    """The BERT cross-encoder saved by sentence-transformers with prompts and a default one."""
    from sentence_transformers.base.modules import Transformer

    stage = build_bert(_staged(folder), seed=15)
    transformer = Transformer(str(stage), transformer_task="sequence-classification")
    _st_save(folder, [transformer], prompts=BERT_PROMPTS, default_prompt_name="query")
    shutil.rmtree(stage)
    return folder


def build_xlmr(
    folder: Path,
    *,
    positions: int = MAX_LENGTH,
    tokenizer_max_length: int = MAX_LENGTH,
    seed: int = 2,
) -> Path:
    """bge-reranker-v2-m3: ``positions`` usable positions, a table of ``positions + 2``."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    _seeded(seed)
    tokenizer = xlmr_tokenizer(tokenizer_max_length)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=positions + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        layer_norm_eps=1e-5,
        num_labels=1,
        initializer_range=INIT_RANGE,
        **TINY,
    )
    return _save(folder, XLMRobertaForSequenceClassification(config), tokenizer)


def build_deberta(folder: Path) -> Path:
    """mxbai-rerank v1 (DeBERTa-v3): relative attention only, no token type embeddings."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    _seeded(3)
    tokenizer = deberta_tokenizer()
    config = DebertaV2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        type_vocab_size=0,
        relative_attention=True,
        position_biased_input=False,
        pos_att_type=["p2c", "c2p"],
        max_relative_positions=-1,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        layer_norm_eps=1e-7,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
        initializer_range=INIT_RANGE,
        **TINY,
    )
    return _save(folder, DebertaV2ForSequenceClassification(config), tokenizer)


def _modernbert_config(tokenizer: Any, **kwargs: Any) -> Any:
    """Layer 0 global, layer 1 local (a window of 16 tokens), rotary positions."""
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=8192,
        local_attention=16,
        global_attn_every_n_layers=3,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        initializer_range=INIT_RANGE,
        **TINY,
        **kwargs,
    )


def build_modernbert(folder: Path, *, seed: int = 9) -> Path:
    """gte-reranker-modernbert-base: ``ModernBertForSequenceClassification``, mean pooling."""
    from transformers import ModernBertForSequenceClassification

    _seeded(seed)
    tokenizer = modernbert_tokenizer()
    config = _modernbert_config(tokenizer, classifier_pooling="mean", num_labels=1)
    return _save(folder, ModernBertForSequenceClassification(config), tokenizer)


def build_electra(folder: Path) -> Path:
    """ms-marco-electra-base: ``ElectraForSequenceClassification``, ``ElectraTokenizer``."""
    from transformers import ElectraConfig, ElectraForSequenceClassification

    _seeded(5)
    tokenizer = electra_tokenizer()
    config = ElectraConfig(
        vocab_size=len(tokenizer),
        embedding_size=32,
        max_position_embeddings=512,
        num_labels=1,
        initializer_range=INIT_RANGE,
        **TINY,
    )
    _save(folder, ElectraForSequenceClassification(config), tokenizer)
    # transformers 5 saves ElectraTokenizer (an alias) as BertTokenizer; the Hub's file says Electra
    _patch_json(folder / "tokenizer_config.json", tokenizer_class="ElectraTokenizer")
    return folder


def _qwen3_config(tokenizer: Any, **kwargs: Any) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=len(tokenizer),
        head_dim=16,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_DECODER,
        **kwargs,
    )


def build_qwen3_seq_cls(folder: Path, *, pad: bool = True) -> Path:
    """Qwen3-Reranker-0.6B-seq-cls-STv6: one sequence-classification Transformer module."""
    from sentence_transformers.base.modules import Transformer
    from transformers import Qwen3ForSequenceClassification

    _seeded(6)
    tokenizer = qwen_tokenizer(pad=pad, chat_template=QWEN3_RERANKER_TEMPLATE)
    model = Qwen3ForSequenceClassification(_qwen3_config(tokenizer, num_labels=1))
    stage = _save(_staged(folder), model, tokenizer)
    transformer = Transformer(str(stage), transformer_task="sequence-classification")
    prompts = {"web_search": QWEN3_DEFAULT_INSTRUCTION, "scifact": INSTRUCTION}
    _st_save(folder, [transformer], prompts=prompts, default_prompt_name="web_search")
    shutil.rmtree(stage)
    return folder


def _causal_st(
    folder: Path,
    tokenizer: Any,
    true_token: str,
    false_token: str | None,
    *,
    seed: int,
    processing_kwargs: dict[str, Any] | None = None,
    **crossencoder_kwargs: Any,
) -> Path:
    """A ``Qwen3ForCausalLM`` saved by sentence-transformers with a ``LogitScore`` head."""
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.cross_encoder.modules import LogitScore
    from transformers import Qwen3ForCausalLM

    _seeded(seed)
    stage = _save(_staged(folder), Qwen3ForCausalLM(_qwen3_config(tokenizer)), tokenizer)
    transformer = Transformer(
        str(stage), transformer_task="text-generation", processing_kwargs=processing_kwargs
    )
    false_id = None if false_token is None else tokenizer.convert_tokens_to_ids(false_token)
    head = LogitScore(tokenizer.convert_tokens_to_ids(true_token), false_id)
    _st_save(folder, [transformer, head], **crossencoder_kwargs)
    shutil.rmtree(stage)
    return folder


def build_qwen3_causal(folder: Path) -> Path:
    """Qwen3-Reranker in sentence-transformers 6.x format, saved by sentence-transformers."""
    tokenizer = qwen_tokenizer(chat_template=QWEN3_RERANKER_TEMPLATE)
    prompts = {"query": INSTRUCTION}
    return _causal_st(
        folder, tokenizer, "yes", "no", seed=7, prompts=prompts, default_prompt_name="query"
    )


#: Older paths of the Transformer and LogitScore modules that sentence-transformers 6.3 resolves.
OLD_MODULE_PATHS = (
    "sentence_transformers.models.Transformer",
    "sentence_transformers.cross_encoder.modules.LogitScore",
)


def build_qwen3_causal_old_paths(folder: Path) -> Path:
    build_qwen3_causal(folder)
    _rename_modules(folder, OLD_MODULE_PATHS)
    return folder


def build_zerank(folder: Path) -> Path:
    """zerank-2: "Yes" logit alone; the query as the system turn, the document as the user's."""
    tokenizer = qwen_tokenizer(chat_template=ZERANK_TEMPLATE)
    opens_assistant_turn = {"chat_template": {"add_generation_prompt": True}}
    return _causal_st(
        folder, tokenizer, "Yes", None, seed=8, processing_kwargs=opens_assistant_turn
    )


def build_bge_gemma(folder: Path) -> Path:
    """bge-reranker-v2-gemma: a plain ``GemmaForCausalLM`` save."""
    from transformers import GemmaConfig, GemmaForCausalLM

    _seeded(9)
    tokenizer = gemma_tokenizer()
    config = GemmaConfig(
        vocab_size=len(tokenizer),
        head_dim=16,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **TINY_DECODER,
    )
    return _save(folder, GemmaForCausalLM(config), tokenizer)


def build_mxbai_v2(folder: Path) -> Path:
    """mxbai-rerank-base-v2: a plain ``Qwen2ForCausalLM`` save, Qwen2.5's kind of chat template."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _seeded(10)
    tokenizer = qwen_tokenizer(chat_template=chatml_template(QWEN25_DEFAULT_SYSTEM))
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        **TINY_DECODER,
    )
    return _save(folder, Qwen2ForCausalLM(config), tokenizer)


def build_qwen3_reranker_original(folder: Path) -> Path:
    """An older Qwen3-Reranker download: no sentence-transformers files, the ordinary chat template
    inside tokenizer_config.json (where tokenizers kept it before chat_template.jinja)."""
    from transformers import Qwen3ForCausalLM

    _seeded(11)
    tokenizer = qwen_tokenizer(chat_template=chatml_template())
    _save(folder, Qwen3ForCausalLM(_qwen3_config(tokenizer)), tokenizer)
    template = folder / "chat_template.jinja"
    _patch_json(folder / "tokenizer_config.json", chat_template=template.read_text())
    template.unlink()
    return folder


def build_ettin(folder: Path) -> Path:
    """ettin-reranker-*-v1, built as its training script builds it and saved by
    sentence-transformers: Transformer -> Pooling(cls) -> Dense(GELU) -> LayerNorm -> Dense(1)."""
    import torch
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import LayerNorm, Pooling
    from transformers import ModernBertModel

    _seeded(12)
    tokenizer = modernbert_tokenizer()
    stage = _save(_staged(folder), ModernBertModel(_modernbert_config(tokenizer)), tokenizer)
    transformer = Transformer(str(stage))
    transformer.model.config.num_labels = 1
    size = transformer.get_embedding_dimension()
    hidden = {"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"}
    modules = [
        transformer,
        Pooling(embedding_dimension=size, pooling_mode="cls"),
        Dense(size, size, bias=False, activation_function=torch.nn.GELU(), **hidden),
        LayerNorm(dimension=size),
        Dense(
            size,
            1,
            bias=True,
            activation_function=torch.nn.Identity(),
            module_input_name="sentence_embedding",
            module_output_name="scores",
        ),
    ]
    _st_save(folder, modules, num_labels=1)
    shutil.rmtree(stage)
    return folder


REMOTE_CONFIGURATION = """\
from transformers import BertConfig


class TinyRerankConfig(BertConfig):
    model_type = "tiny_rerank"
"""
REMOTE_MODELING = """\
from transformers import BertForSequenceClassification

from .configuration_tiny_rerank import TinyRerankConfig


class TinyRerankForSequenceClassification(BertForSequenceClassification):
    config_class = TinyRerankConfig
"""
#: The import that breaks jina-reranker-v2's code on transformers 5 (the function is gone).
REMOTE_MODELING_BROKEN = (
    "from transformers.models.xlm_roberta.modeling_xlm_roberta import "
    "create_position_ids_from_input_ids\n" + REMOTE_MODELING
)


def build_remote_code(folder: Path, *, broken: bool = False) -> Path:
    """A trust_remote_code checkpoint: config.json's ``auto_map`` names code in the folder."""
    from transformers import BertConfig, BertForSequenceClassification

    _seeded(13)
    tokenizer = xlmr_tokenizer(MAX_LENGTH)
    config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_LENGTH,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
        initializer_range=INIT_RANGE,
        **TINY,
    )
    _save(folder, BertForSequenceClassification(config), tokenizer)
    (folder / "configuration_tiny_rerank.py").write_text(REMOTE_CONFIGURATION)
    modeling = REMOTE_MODELING_BROKEN if broken else REMOTE_MODELING
    (folder / "modeling_tiny_rerank.py").write_text(modeling)
    _patch_json(
        folder / "config.json",
        model_type="tiny_rerank",
        architectures=["TinyRerankForSequenceClassification"],
        auto_map={
            "AutoConfig": "configuration_tiny_rerank.TinyRerankConfig",
            "AutoModelForSequenceClassification": (
                "modeling_tiny_rerank.TinyRerankForSequenceClassification"
            ),
        },
    )
    return folder


def build_t5(folder: Path) -> Path:
    """An encoder-decoder (``T5ForConditionalGeneration``), which no reranker family covers."""
    from transformers import T5Config, T5ForConditionalGeneration

    _seeded(14)
    tokenizer = xlmr_tokenizer(MAX_LENGTH)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return _save(folder, T5ForConditionalGeneration(config), tokenizer)


#: The extra module that ``unknown-module``'s modules.json names (its code is nowhere).
UNKNOWN_MODULE_TYPE = "temperature_scale.TemperatureScale"


def build_unknown_module(folder: Path) -> Path:
    """The BERT cross-encoder saved by sentence-transformers, then a module nobody can load."""
    from sentence_transformers.base.modules import Transformer

    stage = build_tiny_model(_staged(folder))
    _st_save(folder, [Transformer(str(stage), transformer_task="sequence-classification")])
    shutil.rmtree(stage)
    modules_json = folder / "modules.json"
    modules = json.loads(modules_json.read_text())
    path = "1_TemperatureScale"
    modules.append({"idx": 1, "name": "1", "path": path, "type": UNKNOWN_MODULE_TYPE})
    modules_json.write_text(json.dumps(modules, indent=2))
    (folder / path).mkdir()
    (folder / path / "config.json").write_text('{"temperature": 2.0}\n')
    return folder
