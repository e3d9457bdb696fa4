"""The family kit (tests/family_kit.py) the family parity tests stand on: each reranker family's
tiny checkpoint is saved as its Hub checkpoints are and loads as they do, and sentence-transformers'
reference for it has what a parity test needs (distinct scores, truncated rows, the template)."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from family_formats import (
    BGE_GEMMA_PROMPT,
    MXBAI_TASK_PROMPT,
    QWEN3_DEFAULT_INSTRUCTION,
    QWEN3_SYSTEM,
    QWEN25_DEFAULT_SYSTEM,
)
from family_kit import (
    BERT_PROMPTS,
    DOCUMENTS,
    FAMILIES,
    INSTRUCTION,
    MAX_LENGTH,
    OLD_MODULE_PATHS,
    PARITY_FAMILIES,
    QUERY,
    UNKNOWN_MODULE_TYPE,
    FamilyKit,
    load_cross_encoder,
)

TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
LOGIT_SCORE = "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"
IDENTITY = "torch.nn.modules.linear.Identity"
HF_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
ST_FILES = {
    "README.md",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
}
ST_CAUSAL_FILES = {"1_LogitScore/config.json", "chat_template.jinja", "generation_config.json"}
#: What each folder holds: what its Hub checkpoint holds, minus the tokenizer files transformers 5
#: no longer writes (sentencepiece models, vocab.json, merges.txt, special_tokens_map.json).
FILES = {
    "bert": HF_FILES,
    "bert-2labels": HF_FILES,
    "bert-default-prompt": HF_FILES | ST_FILES,
    "xlmr": HF_FILES,
    "xlmr-short-positions": HF_FILES,
    "deberta": HF_FILES,
    "modernbert": HF_FILES,
    "electra": HF_FILES,
    "qwen3-seq-cls": HF_FILES | ST_FILES | {"chat_template.jinja"},
    "qwen3-seq-cls-no-pad": HF_FILES | ST_FILES | {"chat_template.jinja"},
    "qwen3-causal": HF_FILES | ST_FILES | ST_CAUSAL_FILES,
    "qwen3-causal-old-paths": HF_FILES | ST_FILES | ST_CAUSAL_FILES,
    "zerank": HF_FILES | ST_FILES | ST_CAUSAL_FILES,
    "bge-gemma": HF_FILES | {"generation_config.json"},
    "mxbai-v2": HF_FILES | {"generation_config.json", "chat_template.jinja"},
    "qwen3-reranker-original": HF_FILES | {"generation_config.json"},
    "ettin": HF_FILES
    | ST_FILES
    | {"1_Pooling/config.json", "3_LayerNorm/config.json", "3_LayerNorm/model.safetensors"}
    | {f"{n}_Dense/{f}" for n in (2, 4) for f in ("config.json", "model.safetensors")},
    "remote-code": HF_FILES | {"configuration_tiny_rerank.py", "modeling_tiny_rerank.py"},
    "remote-code-broken": HF_FILES | {"configuration_tiny_rerank.py", "modeling_tiny_rerank.py"},
    "bare-encoder": HF_FILES,
    "t5": HF_FILES | {"generation_config.json"},
    "unknown-module": HF_FILES | ST_FILES | {"1_TemperatureScale/config.json"},
}
SEQ, CAUSAL_LM = "AutoModelForSequenceClassification", "AutoModelForCausalLM"
#: The transformers Auto class each checkpoint loads with, the model class and tokenizer it gives.
AUTO = {
    "bert": (SEQ, "BertForSequenceClassification", "BertTokenizer"),
    "bert-2labels": (SEQ, "BertForSequenceClassification", "BertTokenizer"),
    "bert-default-prompt": (SEQ, "BertForSequenceClassification", "BertTokenizer"),
    "xlmr": (SEQ, "XLMRobertaForSequenceClassification", "XLMRobertaTokenizer"),
    "xlmr-short-positions": (SEQ, "XLMRobertaForSequenceClassification", "XLMRobertaTokenizer"),
    "deberta": (SEQ, "DebertaV2ForSequenceClassification", "DebertaV2Tokenizer"),
    "modernbert": (SEQ, "ModernBertForSequenceClassification", "TokenizersBackend"),
    # ElectraTokenizer is an alias of BertTokenizer in transformers 5.
    "electra": (SEQ, "ElectraForSequenceClassification", "BertTokenizer"),
    "qwen3-seq-cls": (SEQ, "Qwen3ForSequenceClassification", "Qwen2Tokenizer"),
    "qwen3-seq-cls-no-pad": (SEQ, "Qwen3ForSequenceClassification", "Qwen2Tokenizer"),
    "qwen3-causal": (CAUSAL_LM, "Qwen3ForCausalLM", "Qwen2Tokenizer"),
    "qwen3-causal-old-paths": (CAUSAL_LM, "Qwen3ForCausalLM", "Qwen2Tokenizer"),
    "zerank": (CAUSAL_LM, "Qwen3ForCausalLM", "Qwen2Tokenizer"),
    "bge-gemma": (CAUSAL_LM, "GemmaForCausalLM", "GemmaTokenizer"),
    "mxbai-v2": (CAUSAL_LM, "Qwen2ForCausalLM", "Qwen2Tokenizer"),
    "qwen3-reranker-original": (CAUSAL_LM, "Qwen3ForCausalLM", "Qwen2Tokenizer"),
    "ettin": ("AutoModel", "ModernBertModel", "TokenizersBackend"),
    "remote-code": (SEQ, "TinyRerankForSequenceClassification", "XLMRobertaTokenizer"),
    "bare-encoder": ("AutoModel", "BertModel", "BertTokenizer"),
    "t5": ("AutoModelForSeq2SeqLM", "T5ForConditionalGeneration", "XLMRobertaTokenizer"),
    "unknown-module": (SEQ, "BertForSequenceClassification", "BertTokenizer"),
}
CAUSAL = {"qwen3-causal", "qwen3-causal-old-paths", "zerank", "bge-gemma", "mxbai-v2"}
CAUSAL |= {"qwen3-reranker-original"}


def qwen3_input(instruction: str, query: str, document: str) -> str:
    """Qwen3-Reranker's input, as its model card and sentence-transformers' tests spell it."""
    return (
        f"<|im_start|>system\n{QWEN3_SYSTEM}<|im_end|>\n<|im_start|>user\n"
        f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


#: Each templated family's input for the first (short) pair, spelled out independently.
FIRST_INPUT = {
    "qwen3-seq-cls": qwen3_input(QWEN3_DEFAULT_INSTRUCTION, QUERY, DOCUMENTS[0]),
    "qwen3-causal": qwen3_input(INSTRUCTION, QUERY, DOCUMENTS[0]),
    "qwen3-reranker-original": qwen3_input(QWEN3_DEFAULT_INSTRUCTION, QUERY, DOCUMENTS[0]),
    "zerank": f"<|im_start|>system\n{QUERY}<|im_end|>\n<|im_start|>user\n{DOCUMENTS[0]}"
    "<|im_end|>\n<|im_start|>assistant\n",
    "mxbai-v2": f"<|im_start|>system\n{QWEN25_DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n"
    f"query: {QUERY}\ndocument: {DOCUMENTS[0]}\n{MXBAI_TASK_PROMPT}<|im_end|>\n"
    "<|im_start|>assistant\n",
    "bge-gemma": f"<bos>A: {QUERY}\nB: {DOCUMENTS[0]}\n{BGE_GEMMA_PROMPT}",
}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def score_columns(scores: list[Any]) -> list[list[float]]:
    """The scores of each label (one column for one-label models)."""
    if isinstance(scores[0], float):
        return [scores]
    return [list(column) for column in zip(*scores, strict=True)]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_checkpoint_holds_the_files_of_its_hub_checkpoint(
    family_kit: FamilyKit, name: str
) -> None:
    folder = family_kit.path(name)
    files = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
    assert files == FILES[name]
    assert not list(folder.parent.glob("*.stage")), "a staging folder was left behind"


@pytest.mark.parametrize("name", sorted(AUTO))
def test_each_checkpoint_loads_with_its_transformers_auto_classes(
    family_kit: FamilyKit, name: str
) -> None:
    import transformers

    auto_class, model_class, tokenizer_class = AUTO[name]
    folder = family_kit.path(name)
    trust = name == "remote-code"
    model = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=trust)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
    assert (type(model).__name__, type(tokenizer).__name__) == (model_class, tokenizer_class)
    assert tokenizer.is_fast
    # The texts were in the tokenizer's training corpus: nothing is unknown.
    ids = tokenizer(QUERY, DOCUMENTS[4])["input_ids"]
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids


@pytest.mark.parametrize(
    ("name", "types"),
    [
        ("bert-default-prompt", [TRANSFORMER]),
        ("qwen3-seq-cls", [TRANSFORMER]),
        ("qwen3-causal", [TRANSFORMER, LOGIT_SCORE]),
        ("qwen3-causal-old-paths", list(OLD_MODULE_PATHS)),
        ("zerank", [TRANSFORMER, LOGIT_SCORE]),
        (
            "ettin",
            [
                TRANSFORMER,
                "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
                "sentence_transformers.base.modules.dense.Dense",
                "sentence_transformers.sentence_transformer.modules.layer_norm.LayerNorm",
                "sentence_transformers.base.modules.dense.Dense",
            ],
        ),
        ("unknown-module", [TRANSFORMER, UNKNOWN_MODULE_TYPE]),
    ],
)
def test_modules_json_names_each_module_of_the_format(
    family_kit: FamilyKit, name: str, types: list[str]
) -> None:
    modules = read_json(family_kit.path(name) / "modules.json")
    assert [module["type"] for module in modules] == types
    assert modules[0]["path"] == ""


@pytest.mark.parametrize(
    ("name", "task", "prompts", "default_prompt"),
    [
        ("bert-default-prompt", "sequence-classification", BERT_PROMPTS, "query"),
        (
            "qwen3-seq-cls",
            "sequence-classification",
            {"web_search": QWEN3_DEFAULT_INSTRUCTION, "scifact": INSTRUCTION},
            "web_search",
        ),
        ("qwen3-causal", "text-generation", {"query": INSTRUCTION}, "query"),
        ("zerank", "text-generation", {}, None),
        ("ettin", "feature-extraction", {}, None),
    ],
)
def test_sentence_transformers_configs_hold_the_task_prompts_and_identity_activation(
    family_kit: FamilyKit,
    name: str,
    task: str,
    prompts: dict[str, str],
    default_prompt: str | None,
) -> None:
    folder = family_kit.path(name)
    module_config = read_json(folder / "sentence_bert_config.json")
    model_config = read_json(folder / "config_sentence_transformers.json")
    assert module_config["transformer_task"] == task
    assert model_config["prompts"] == prompts
    assert model_config["default_prompt_name"] == default_prompt
    assert model_config["activation_fn"] == IDENTITY
    assert model_config["model_type"] == "CrossEncoder"


@pytest.mark.parametrize(
    ("name", "true_token", "false_token"),
    [
        ("qwen3-causal", "yes", "no"),
        ("qwen3-causal-old-paths", "yes", "no"),
        ("zerank", "Yes", None),
    ],
)
def test_causal_rerankers_load_in_sentence_transformers_with_their_logit_score(
    family_kit: FamilyKit, name: str, true_token: str, false_token: str | None
) -> None:
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.cross_encoder.modules import LogitScore

    folder = family_kit.path(name)
    model = load_cross_encoder(folder)
    transformer, head = list(model)
    tokenizer = transformer.tokenizer
    assert isinstance(transformer, Transformer) and isinstance(head, LogitScore)
    assert transformer.transformer_task == "text-generation"
    assert type(transformer.model).__name__ == "Qwen3ForCausalLM"
    assert tokenizer.padding_side == "left"
    expected_false = None if false_token is None else tokenizer.convert_tokens_to_ids(false_token)
    assert (head.true_token_id, head.false_token_id) == (
        tokenizer.convert_tokens_to_ids(true_token),
        expected_false,
    )
    # Each answer word is one token of the vocabulary, as in the real tokenizers.
    for token in filter(None, (true_token, false_token)):
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [
            tokenizer.convert_tokens_to_ids(token)
        ]
    saved = read_json(folder / "1_LogitScore" / "config.json")
    assert saved == {
        "true_token_id": head.true_token_id,
        "false_token_id": head.false_token_id,
        "module_input_name": "causal_logits",
    }


def test_zerank_opens_the_assistant_turn_through_its_saved_processing_kwargs(
    family_kit: FamilyKit,
) -> None:
    module_config = read_json(family_kit.path("zerank") / "sentence_bert_config.json")
    assert module_config["processing_kwargs"] == {"chat_template": {"add_generation_prompt": True}}


def test_ettin_loads_as_its_pooling_dense_layernorm_dense_chain(family_kit: FamilyKit) -> None:
    import torch
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import LayerNorm, Pooling

    folder = family_kit.path("ettin")
    model = load_cross_encoder(folder)
    transformer, pooling, inner, norm, score = list(model)
    assert isinstance(transformer, Transformer)
    assert type(transformer.model).__name__ == "ModernBertModel"
    assert isinstance(pooling, Pooling) and pooling.pooling_mode == "cls"
    assert isinstance(inner, Dense) and isinstance(inner.activation_function, torch.nn.GELU)
    assert inner.linear.bias is None and inner.out_features == inner.in_features
    assert isinstance(norm, LayerNorm)
    assert isinstance(score, Dense) and score.out_features == 1
    assert score.module_output_name == "scores" and score.linear.bias is not None
    assert read_json(folder / "1_Pooling" / "config.json")["pooling_mode"] == "cls"
    dense = read_json(folder / "2_Dense" / "config.json")
    assert dense["activation_function"] == "torch.nn.modules.activation.GELU"
    assert read_json(folder / "4_Dense" / "config.json")["module_output_name"] == "scores"


@pytest.mark.parametrize("name", PARITY_FAMILIES)
def test_reference_scores_are_finite_and_far_enough_apart_to_order(
    family_kit: FamilyKit, name: str
) -> None:
    reference = family_kit.reference(name)
    assert len(reference.scores) == len(DOCUMENTS)
    for column in score_columns(reference.scores):
        assert all(math.isfinite(score) for score in column)
        ordered = sorted(column)
        assert min(b - a for a, b in itertools.pairwise(ordered)) > 1e-3, column


@pytest.mark.parametrize("name", PARITY_FAMILIES)
def test_reference_mixes_pairs_cut_at_max_length_and_whole_pairs(
    family_kit: FamilyKit, name: str
) -> None:
    reference = family_kit.reference(name)
    bert = dict.fromkeys(["bert", "bert-2labels", "bert-default-prompt"], 128)
    expected = {**bert, "xlmr-short-positions": 64}
    assert reference.max_length == expected.get(name, MAX_LENGTH)
    assert all(len(ids) <= reference.max_length for ids in reference.input_ids)
    assert 1 <= sum(reference.truncated) < len(DOCUMENTS)


@pytest.mark.parametrize("name", PARITY_FAMILIES)
def test_causal_rerankers_are_left_padded_and_the_others_right_padded(
    family_kit: FamilyKit, name: str
) -> None:
    assert family_kit.reference(name).padding_side == ("left" if name in CAUSAL else "right")


@pytest.mark.parametrize("name", [name for name in PARITY_FAMILIES if FAMILIES[name].suffix])
def test_truncated_templated_inputs_keep_the_template_tail(
    family_kit: FamilyKit, name: str
) -> None:
    reference = family_kit.reference(name)
    suffix = FAMILIES[name].suffix
    assert suffix is not None and any(reference.truncated)
    for text, truncated in zip(reference.inputs, reference.truncated, strict=True):
        assert text.endswith(suffix), (truncated, text[-200:])


@pytest.mark.parametrize("name", sorted(FIRST_INPUT))
def test_templates_render_each_models_documented_input(family_kit: FamilyKit, name: str) -> None:
    assert family_kit.reference(name).inputs[0] == FIRST_INPUT[name]


@pytest.mark.parametrize(
    ("name", "options", "expected_text"),
    [
        ("bert-default-prompt", {"prompt": ""}, "[CLS] vitamin d"),
        ("bert-default-prompt", {"prompt_name": "scifact"}, "[CLS] given a scientific claim"),
        ("qwen3-causal", {"prompt": ""}, f"<Instruct>: {QWEN3_DEFAULT_INSTRUCTION}\n"),
        ("qwen3-seq-cls", {"prompt_name": "scifact"}, f"<Instruct>: {INSTRUCTION}\n"),
        ("qwen3-reranker-original", {"prompt": INSTRUCTION}, f"<Instruct>: {INSTRUCTION}\n"),
        ("mxbai-v2", {"prompt": INSTRUCTION}, f"\ninstruction: {INSTRUCTION}\nquery: "),
        ("bge-gemma", {"prompt": INSTRUCTION}, f"\n{INSTRUCTION}"),
    ],
)
def test_a_prompt_changes_the_input_and_the_scores(
    family_kit: FamilyKit, name: str, options: dict[str, str], expected_text: str
) -> None:
    default = family_kit.reference(name)
    prompted = family_kit.reference(name, **options)
    assert all(expected_text in text for text in prompted.inputs)
    assert not any(expected_text in text for text in default.inputs)
    assert max(abs(a - b) for a, b in zip(default.scores, prompted.scores, strict=True)) > 1e-3


@pytest.mark.parametrize("name", [name for name, family in FAMILIES.items() if family.st_error])
def test_sentence_transformers_default_load_fails_as_recorded(
    family_kit: FamilyKit, name: str
) -> None:
    error, message = FAMILIES[name].st_error or (Exception, "")
    with pytest.raises(error, match=re.escape(message)):
        family_kit.st_default(name)


def test_sentence_transformers_default_for_bge_gemma_is_not_its_card(
    family_kit: FamilyKit,
) -> None:
    """No modules.json and a ForCausalLM: yes/no logits on the bare pair, not "Yes" on A:/B:."""
    default = family_kit.st_default("bge-gemma")
    model = load_cross_encoder(family_kit.path("bge-gemma"))
    tokenizer = model.tokenizer
    assert (model[1].true_token_id, model[1].false_token_id) == (
        tokenizer.convert_tokens_to_ids("yes"),
        tokenizer.convert_tokens_to_ids("no"),
    )
    assert default.inputs[0] == f"<bos>{QUERY}<bos>{DOCUMENTS[0]}"
    card = family_kit.reference("bge-gemma")
    assert max(abs(a - b) for a, b in zip(default.scores, card.scores, strict=True)) > 1e-3


def test_short_position_table_is_capped_without_the_offset_by_sentence_transformers(
    family_kit: FamilyKit,
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    folder = family_kit.path("xlmr-short-positions")
    assert AutoConfig.from_pretrained(folder).max_position_embeddings == 66
    assert AutoTokenizer.from_pretrained(folder).model_max_length == 8192
    assert load_cross_encoder(folder).max_seq_length == 66  # 64 would fit: positions start at 2
    full = AutoConfig.from_pretrained(family_kit.path("xlmr"))
    assert (full.max_position_embeddings, full.pad_token_id) == (MAX_LENGTH + 2, 1)


def test_deberta_ignores_the_token_type_ids_its_tokenizer_returns(family_kit: FamilyKit) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = family_kit.path("deberta")
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    features = AutoTokenizer.from_pretrained(folder)(QUERY, DOCUMENTS[2], return_tensors="pt")
    assert model.config.type_vocab_size == 0
    assert int(features["token_type_ids"].max()) == 1
    with torch.no_grad():
        given = model(**features).logits
        zeros = model(**{**features, "token_type_ids": torch.zeros_like(features["input_ids"])})
    assert torch.equal(given, zeros.logits)


def test_modernbert_pads_rows_past_its_local_attention_window(family_kit: FamilyKit) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(family_kit.path("modernbert"))
    assert config.layer_types == ["full_attention", "sliding_attention"]
    assert (config.local_attention, config.classifier_pooling) == (16, "mean")
    lengths = [len(ids) for ids in family_kit.reference("modernbert").input_ids]
    assert min(lengths) > config.local_attention and len(set(lengths)) > 1


def test_no_pad_checkpoint_has_no_pad_token_anywhere(family_kit: FamilyKit) -> None:
    from transformers import AutoConfig, AutoTokenizer

    folder = family_kit.path("qwen3-seq-cls-no-pad")
    assert AutoTokenizer.from_pretrained(folder).pad_token is None
    assert AutoConfig.from_pretrained(folder).pad_token_id is None
    assert family_kit.reference("qwen3-seq-cls-no-pad").scores == pytest.approx(
        family_kit.reference("qwen3-seq-cls").scores, abs=1e-5
    ), "the same seeded weights score each pair alone as the padded batch does"


def test_older_download_keeps_its_chat_template_in_tokenizer_config(family_kit: FamilyKit) -> None:
    folder = family_kit.path("qwen3-reranker-original")
    template = read_json(folder / "tokenizer_config.json")["chat_template"]
    assert "'system', 'user', 'assistant'" in template and "query" not in template


def test_remote_code_checkpoint_loads_only_when_trusted(family_kit: FamilyKit) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = family_kit.path("remote-code")
    assert read_json(folder / "config.json")["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_tiny_rerank.TinyRerankForSequenceClassification"
    )
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoConfig.from_pretrained(folder, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__name__ == "TinyRerankForSequenceClassification"


def test_broken_remote_code_fails_on_the_import_transformers_5_removed(
    family_kit: FamilyKit,
) -> None:
    from transformers import AutoModelForSequenceClassification

    folder = family_kit.path("remote-code-broken")
    with pytest.raises(ImportError, match="create_position_ids_from_input_ids"):
        AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    with pytest.raises(ImportError, match="create_position_ids_from_input_ids"):
        load_cross_encoder(folder, trust_remote_code=True)


def test_unknown_module_cannot_be_loaded_even_when_trusted(family_kit: FamilyKit) -> None:
    with pytest.raises(ModuleNotFoundError, match=UNKNOWN_MODULE_TYPE.split(".")[0]):
        load_cross_encoder(family_kit.path("unknown-module"), trust_remote_code=True)


@pytest.mark.parametrize("name", ["bare-encoder", "t5"])
def test_sentence_transformers_gives_a_checkpoint_without_a_family_a_random_head(
    family_kit: FamilyKit, name: str
) -> None:
    first, second = (family_kit.st_default(name).scores for _ in range(2))
    assert first != second


def test_checkpoints_and_references_are_reproducible(family_kit: FamilyKit, tmp_path: Path) -> None:
    again = FamilyKit(tmp_path)
    # One per kind of trained tokenizer: Unigram, WordPiece, byte-level BPE.
    for name in ("xlmr", "electra", "qwen3-causal"):
        first, second = family_kit.path(name), again.path(name)
        for file in ("tokenizer.json", "model.safetensors"):
            assert (first / file).read_bytes() == (second / file).read_bytes(), (name, file)
        assert again.reference(name) == family_kit.reference(name)
