"""The LLM rerankers crossrank knows by name: how each reads a pair and which token logits
make its score, for checkpoints that carry no sentence-transformers files.

A checkpoint saved by sentence-transformers 6.x (``modules.json`` with a ``LogitScore``, a
chat template, saved prompts) says all of this itself and is read from its files
(:mod:`crossrank.families.detect`). An original checkpoint (a ``...ForCausalLM`` with no such
files, as downloaded before its sentence-transformers integration, or a fine-tune saved with
transformers alone) is matched here by architecture, or named with ``family=``; the template
is then one of these, written from the model's own reference code:

- ``qwen3-reranker`` (Qwen/Qwen3-Reranker-0.6B/4B/8B, ``Qwen3ForCausalLM``): the model card's
  ``format_instruction`` prompt (system message, ``<Instruct>``/``<Query>``/``<Document>``,
  assistant turn with an empty think block); score ``logit("yes") - logit("no")``.
- ``bge-reranker-gemma`` (BAAI/bge-reranker-v2-gemma, ``GemmaForCausalLM``): FlagEmbedding's
  ``A: {query}`` / ``B: {passage}`` / prompt layout; score ``logit("Yes")``.
- ``mxbai-rerank-v2`` (mixedbread-ai/mxbai-rerank-base/large-v2, ``Qwen2ForCausalLM``):
  mxbai-rerank's chat prefix, ``query:`` / ``document:`` lines and relevance task prompt;
  score ``logit("1") - logit("0")``.

The references tokenize these pieces one by one; crossrank renders the whole prompt and
tokenizes it once, as sentence-transformers does for templated models, so a token can differ
where a piece boundary falls inside a word (docs/models.md).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KNOWN", "KnownReranker", "known_by_architecture"]


@dataclass(frozen=True)
class KnownReranker:
    """A known LLM reranker's input format and score.

    Attributes:
        name: Its ``family=`` name.
        architectures: The ``config.architectures`` it is recognised by.
        template: The format string (see :class:`crossrank.families.templates.FormatTemplate`).
        default_instruction: The instruction used when none is given ("" for none).
        instruction_format: How a given instruction is written into ``{instruction}``.
        true_token: The token whose logit is the score.
        false_token: The token whose logit is subtracted, or None.
        models: The Hub models it describes, for messages and docs.
    """

    name: str
    architectures: tuple[str, ...]
    template: str
    default_instruction: str
    true_token: str
    false_token: str | None
    models: str
    instruction_format: str = "{instruction}"


QWEN3_RERANKER = KnownReranker(
    name="qwen3-reranker",
    architectures=("Qwen3ForCausalLM",),
    template=(
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
        'Query and the Instruct provided. Note that the answer can only be "yes" or "no".'
        "<|im_end|>\n<|im_start|>user\n<Instruct>: {instruction}\n<Query>: {query}\n"
        "<Document>: {document}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    ),
    default_instruction=(
        "Given a web search query, retrieve relevant passages that answer the query"
    ),
    true_token="yes",
    false_token="no",
    models="Qwen/Qwen3-Reranker-0.6B, -4B, -8B",
)

BGE_RERANKER_GEMMA = KnownReranker(
    name="bge-reranker-gemma",
    architectures=("GemmaForCausalLM",),
    template="{bos_token}A: {query}\nB: {document}\n{instruction}",
    default_instruction=(
        "Given a query A and a passage B, determine whether the passage contains an answer to "
        "the query by providing a prediction of either 'Yes' or 'No'."
    ),
    true_token="Yes",
    false_token=None,
    models="BAAI/bge-reranker-v2-gemma",
)

MXBAI_RERANK_V2 = KnownReranker(
    name="mxbai-rerank-v2",
    architectures=("Qwen2ForCausalLM",),
    template=(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\n{instruction}query: {query}\n"
        "document: {document}\nYou are a search relevance expert who evaluates how well "
        "documents match search queries. For each query-document pair, carefully analyze the "
        "semantic relationship between them, then provide your binary relevance judgment (0 "
        "for not relevant, 1 for relevant).\nRelevance:<|im_end|>\n<|im_start|>assistant\n"
    ),
    default_instruction="",
    instruction_format="instruction: {instruction}\n",
    true_token="1",
    false_token="0",
    models="mixedbread-ai/mxbai-rerank-base-v2, -large-v2",
)

#: Every known reranker, by ``family=`` name.
KNOWN: dict[str, KnownReranker] = {
    k.name: k for k in (QWEN3_RERANKER, BGE_RERANKER_GEMMA, MXBAI_RERANK_V2)
}


def known_by_architecture(architectures: list[str]) -> KnownReranker | None:
    """The known reranker a causal checkpoint's architecture names, or None."""
    for known in KNOWN.values():
        if any(a in known.architectures for a in architectures):
            return known
    return None
