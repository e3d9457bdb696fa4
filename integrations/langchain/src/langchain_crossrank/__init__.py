"""LangChain integration for crossrank: a local cross-encoder document compressor, and
crossrank's scorer behind LangChain's ``BaseCrossEncoder`` interface.

Example:
    >>> from langchain_crossrank import CrossEncoderRerank
    >>> reranker = CrossEncoderRerank(top_n=3)  # the model loads on first use
"""

from langchain_crossrank.cross_encoder import CrossrankCrossEncoder
from langchain_crossrank.rerank import CrossEncoderRerank

__all__ = ["CrossEncoderRerank", "CrossrankCrossEncoder"]
