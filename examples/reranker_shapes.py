"""Build random-weight checkpoints at the real shapes of two large rerankers, for timing.

``crossrank bench`` measures speed, and speed depends on a model's shape, not its weights:
these folders let anyone time the big families without downloading gigabytes (and on
machines that cannot reach the Hub). Their scores are meaningless; their cost is real.

- ``qwen3-reranker-0.6b-shape``: Qwen3-Reranker-0.6B's shape (28 layers, hidden 1024, 16
  query and 8 key/value heads of 128, MLP 3072, its vocabulary of 151,669, tied embeddings)
  saved as sentence-transformers 6.x saves Qwen3-Reranker (a text-generation ``Transformer``
  and a ``LogitScore`` on "yes"/"no", its chat template), so sentence-transformers and
  crossrank read it as they read the real one.
- ``bge-reranker-v2-m3-shape``: bge-reranker-v2-m3's shape (XLM-R large: 24 layers, hidden
  1024, 16 heads, MLP 4096, vocabulary 250,002, 8,194 positions), a plain
  ``XLMRobertaForSequenceClassification`` save.

The tokenizers are trained here with the ``tokenizers`` library on SciFact abstracts (or the
built-in text when the data is absent), so token counts are close to the real models' on
English text.

Usage::

    python examples/reranker_shapes.py OUT_FOLDER [--data ../shared/data/scifact]
    crossrank bench --model OUT_FOLDER/qwen3-reranker-0.6b-shape --candidates 20 \\
        --doc-tokens 256 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

#: Qwen3-Reranker's chat template as its sentence-transformers files render it: the
#: instruction from the system role (with the model card's default), query and document roles.
QWEN3_TEMPLATE = (
    '{%- set instruction = messages | selectattr("role", "eq", "system") '
    '| map(attribute="content") | first | default("Given a web search query, retrieve relevant '
    'passages that answer the query") -%}'
    '{%- set query = messages | selectattr("role", "eq", "query") | map(attribute="content") '
    "| first -%}"
    '{%- set document = messages | selectattr("role", "eq", "document") '
    '| map(attribute="content") | first -%}'
    '{{- "<|im_start|>system\\nJudge whether the Document meets the requirements based on the '
    'Query and the Instruct provided. Note that the answer can only be \\"yes\\" or \\"no\\".'
    '<|im_end|>\\n<|im_start|>user\\n<Instruct>: " + instruction + "\\n<Query>: " + query + '
    '"\\n<Document>: " + document + "<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>'
    '\\n\\n" -}}'
)

_FALLBACK_TEXT = [
    "Vitamin D helps the intestine absorb calcium and phosphate, the minerals that make bone.",
    "A database index keeps the values of a column sorted with pointers to the rows.",
    "Coral bleaching happens when water stays too warm and corals expel their algae.",
    "yes no Yes No 1 0 query document relevance instruction judge whether the document",
]


def _corpus(data: Path | None) -> list[str]:
    path = None if data is None else data / "corpus.jsonl"
    if path is None or not path.is_file():
        return _FALLBACK_TEXT * 200
    texts = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 3000:
                break
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}")
    return texts + _FALLBACK_TEXT


def _bpe(texts: list[str], specials: list[str], size: int) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def build_qwen3(out: Path, texts: list[str]) -> Path:
    """Qwen3-Reranker-0.6B's shape in its sentence-transformers 6.x format."""
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.cross_encoder.modules import LogitScore
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(texts, specials, 16000),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=40960,
    )
    tokenizer.chat_template = QWEN3_TEMPLATE
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=151669,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        architectures=["Qwen3ForCausalLM"],
    )
    stage = out.with_name(out.name + ".stage")
    Qwen3ForCausalLM(config).save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    transformer = Transformer(str(stage), transformer_task="text-generation")
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    model = CrossEncoder(
        modules=[transformer, LogitScore(true_token_id=yes, false_token_id=no)],
        activation_fn=torch.nn.Identity(),
    )
    model.save(str(out))
    shutil.rmtree(stage)
    return out


def build_xlmr_large(out: Path, texts: list[str]) -> Path:
    """bge-reranker-v2-m3's shape (XLM-R large, 8,192 usable positions)."""
    import torch
    from tokenizers import processors
    from transformers import (
        PreTrainedTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = _bpe(texts, specials, 16000)
    backend.post_processor = processors.RobertaProcessing(  # type: ignore[attr-defined]
        ("</s>", 2), ("<s>", 0), add_prefix_space=False
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=8192,
    )
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=250002,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=8194,
        type_vocab_size=1,
        pad_token_id=1,
        layer_norm_eps=1e-5,
        num_labels=1,
        architectures=["XLMRobertaForSequenceClassification"],
    )
    XLMRobertaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the checkpoints into")
    parser.add_argument("--data", type=Path, default=None, help="a BEIR folder for the tokenizers")
    args = parser.parse_args()
    texts = _corpus(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    print(build_qwen3(args.out / "qwen3-reranker-0.6b-shape", texts))
    print(build_xlmr_large(args.out / "bge-reranker-v2-m3-shape", texts))


if __name__ == "__main__":
    main()
