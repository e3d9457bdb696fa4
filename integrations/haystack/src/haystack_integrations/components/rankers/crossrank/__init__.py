"""Haystack integration for crossrank: a local cross-encoder ranker component.

Example:
    >>> from haystack_integrations.components.rankers.crossrank import CrossEncoderRanker
    >>> ranker = CrossEncoderRanker(top_k=5)  # the model loads on warm_up() or first run()
"""

from haystack_integrations.components.rankers.crossrank.ranker import CrossEncoderRanker

__all__ = ["CrossEncoderRanker"]
