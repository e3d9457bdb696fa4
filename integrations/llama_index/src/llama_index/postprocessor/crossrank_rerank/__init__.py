"""crossrank's cross-encoder reranker as a LlamaIndex node postprocessor.

Example:
    >>> from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank
    >>> rerank = CrossEncoderRerank(top_n=5)  # CROSSRANK_MODEL or the core default

A query may carry its own reranking instruction (Qwen3-Reranker and other
instruction-following models): ``engine.query(InstructedQueryBundle(query, instruction=...))``.
"""

from llama_index.postprocessor.crossrank_rerank.base import CrossEncoderRerank
from llama_index.postprocessor.crossrank_rerank.query import InstructedQueryBundle

__all__ = ["CrossEncoderRerank", "InstructedQueryBundle"]
