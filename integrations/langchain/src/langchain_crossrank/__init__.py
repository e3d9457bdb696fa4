"""LangChain integration for crossrank: a local cross-encoder document compressor.

Example:
    >>> from langchain_crossrank import CrossEncoderRerank
    >>> reranker = CrossEncoderRerank(top_n=3)  # the model loads on first use
"""

from langchain_crossrank.rerank import CrossEncoderRerank

__all__ = ["CrossEncoderRerank"]
