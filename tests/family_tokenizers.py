"""Tokenizers for the family kit (tests/family_kit.py), trained with the ``tokenizers`` library on
the kit's texts and wrapped in each family's transformers tokenizer class.

Each is trained with the pipeline (normalizer, pre-tokenizer) of the class it is wrapped in, since
transformers 5 rebuilds that pipeline from the class when it loads the saved tokenizer, and keeps
each family's special tokens and their places in the vocabulary.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from family_formats import (
    BGE_GEMMA_PROMPT,
    DOCUMENTS,
    INSTRUCTION,
    MAX_LENGTH,
    MXBAI_TASK_PROMPT,
    QUERY,
    QWEN3_DEFAULT_INSTRUCTION,
    QWEN3_SYSTEM,
    QWEN25_DEFAULT_SYSTEM,
)


def _corpus() -> list[str]:
    fixed = [
        QUERY,
        *DOCUMENTS,
        INSTRUCTION,
        QWEN3_DEFAULT_INSTRUCTION,
        QWEN3_SYSTEM,
        QWEN25_DEFAULT_SYSTEM,
        MXBAI_TASK_PROMPT,
        BGE_GEMMA_PROMPT,
        "<Instruct>: <Query>: <Document>: instruction: query: document: A: B: system user",
    ]
    # The answer words the causal rerankers read must each become one token.
    return fixed * 3 + ["yes", "no", "Yes", "No", "1", "0"] * 20


def _train(like: Any, model: Any, trainer: Any) -> dict[str, Any]:
    """Train ``model`` on the corpus with ``like``'s normalizer and pre-tokenizer."""
    from tokenizers import Tokenizer

    backend = Tokenizer(model)
    backend.normalizer = like.normalizer
    backend.pre_tokenizer = like.pre_tokenizer
    backend.train_from_iterator(_corpus(), trainer)
    trained: dict[str, Any] = json.loads(backend.to_str())["model"]
    return trained


def _words(like: Any, text: str) -> list[str]:
    """``text`` normalized and pre-tokenized as the tokenizer ``like`` does."""
    if like.normalizer is not None:
        text = like.normalizer.normalize_str(text)
    return [word for word, _ in like.pre_tokenizer.pre_tokenize_str(text)]


def _unigram(like: Any, specials: list[str], last: str) -> list[tuple[str, float]]:
    """A Unigram vocabulary: ``specials`` first (the last of them unk), the pieces, ``last``.

    The pieces are the Unigram trainer's. Its EM is not deterministic (its scores move by ~1e-3
    from run to run, and with them the order, hence the ids), so each piece is scored here by its
    frequency in the corpus, and the pieces are ordered by score.
    """
    from tokenizers import models, trainers

    trainer = trainers.UnigramTrainer(
        vocab_size=400, special_tokens=specials, unk_token=specials[-1], show_progress=False
    )
    pieces = [piece for piece, _ in _train(like, models.Unigram(), trainer)["vocab"]]
    words = [word for text in _corpus() for word in _words(like, text)]
    counts = {piece: sum(word.count(piece) for word in words) for piece in pieces[len(specials) :]}
    total = sum(counts.values())
    scored = sorted(
        ((piece, math.log(max(count, 1) / total)) for piece, count in counts.items()),
        key=lambda item: (-item[1], item[0]),
    )
    return [*((token, 0.0) for token in specials), *scored, (last, 0.0)]


def _wordpiece(like: Any, specials: list[str]) -> dict[str, int]:
    """A WordPiece vocabulary, ``specials`` first.

    The WordPiece trainer is not deterministic (its merge ties depend on hash order), so the
    pieces come from the BPE trainer, which is, run on words marked "▁" at their start: a marked
    piece starts a word, any other continues one ("##"). Every character is both.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    marked = [" ".join("▁" + word for word in _words(like, text)) for text in _corpus()]
    alphabet = sorted({char for text in marked for char in text if char not in " ▁"})
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=["▁", *alphabet], show_progress=False
    )
    bpe.train_from_iterator(marked, trainer)
    trained = json.loads(bpe.to_str())["model"]["vocab"]
    pieces = [*alphabet, *("##" + char for char in alphabet)]
    for piece in sorted(trained, key=trained.get):
        pieces.append(piece[1:] if piece.startswith("▁") else "##" + piece)
    return {piece: i for i, piece in enumerate(dict.fromkeys([*specials, *pieces]))}


def _bpe(
    like: Any, specials: Sequence[str] = (), **kwargs: Any
) -> tuple[dict[str, int], list[Any]]:
    """A BPE vocabulary of 1000 and its merges, ``specials`` first."""
    from tokenizers import models, trainers

    trainer = trainers.BpeTrainer(
        vocab_size=1000, special_tokens=list(specials), show_progress=False, **kwargs
    )
    trained = _train(like, models.BPE(), trainer)
    return trained["vocab"], [tuple(merge) for merge in trained["merges"]]


def xlmr_tokenizer(model_max_length: int) -> Any:
    """XLM-R's layout: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, pieces, ``<mask>``."""
    from transformers import XLMRobertaTokenizer

    like = XLMRobertaTokenizer().backend_tokenizer
    vocab = _unigram(like, ["<s>", "<pad>", "</s>", "<unk>"], "<mask>")
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=model_max_length)


def deberta_tokenizer() -> Any:
    """DeBERTa-v3's layout: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3, the pieces, [MASK]."""
    from transformers import DebertaV2Tokenizer

    like = DebertaV2Tokenizer().backend_tokenizer
    vocab = _unigram(like, ["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[MASK]")
    return DebertaV2Tokenizer(vocab=vocab, model_max_length=MAX_LENGTH)


def electra_tokenizer() -> Any:
    """BERT's uncased WordPiece (ELECTRA's tokenizer is BERT's)."""
    from transformers import ElectraTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    like = ElectraTokenizer(vocab={token: i for i, token in enumerate(specials)})
    vocab = _wordpiece(like.backend_tokenizer, specials)
    return ElectraTokenizer(vocab=vocab, model_max_length=MAX_LENGTH)


def modernbert_tokenizer() -> Any:
    """ModernBERT's: byte-level BPE, then [UNK] [CLS] [SEP] [PAD] [MASK]; pairs as
    ``[CLS] a [SEP] b [SEP]``, no token types; ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    vocab, merges = _bpe(backend, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    for token in ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"):
        vocab[token] = len(vocab)
    backend.model = models.BPE(vocab=vocab, merges=merges)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],
        model_max_length=MAX_LENGTH,
        clean_up_tokenization_spaces=True,
    )


def qwen_tokenizer(*, pad: bool = True, chat_template: str | None = None) -> Any:
    """Qwen2/Qwen3's: byte-level BPE, then ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``
    (special) and ``<think>``, ``</think>`` (not special); eos ``<|im_end|>``, pad
    ``<|endoftext|>`` (none with ``pad=False``), no bos, no unk."""
    from tokenizers import AddedToken, pre_tokenizers
    from transformers import Qwen2Tokenizer

    like = Qwen2Tokenizer().backend_tokenizer
    vocab, merges = _bpe(like, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>" if pad else None,
        extra_special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        model_max_length=MAX_LENGTH,
    )
    tokenizer.add_tokens([AddedToken(token, special=False) for token in ("<think>", "</think>")])
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def gemma_tokenizer() -> Any:
    """Gemma's: SentencePiece-style BPE over "▁"-joined words (no piece crosses a word),
    ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3, ``<mask>`` 4; adds ``<bos>``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import GemmaTokenizer

    like = Tokenizer(models.BPE())
    like.normalizer = normalizers.Replace(" ", "▁")
    like.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    vocab, merges = _bpe(like, ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])
    return GemmaTokenizer(
        vocab=vocab, merges=merges, add_bos_token=True, model_max_length=MAX_LENGTH
    )
