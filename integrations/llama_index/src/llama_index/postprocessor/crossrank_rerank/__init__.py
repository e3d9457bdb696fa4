"""crossrank's cross-encoder reranker as a LlamaIndex node postprocessor.

Example:
    >>> from llama_index.postprocessor.crossrank_rerank import CrossEncoderRerank
    >>> rerank = CrossEncoderRerank(top_n=5)  # CROSSRANK_MODEL or the core default
"""

from llama_index.postprocessor.crossrank_rerank.base import CrossEncoderRerank

__all__ = ["CrossEncoderRerank"]
