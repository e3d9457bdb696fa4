"""Scorers that compose: each is a scorer like the others (``scorer=`` in every adapter,
``crossrank serve``, the CLI), and serializable.

- :class:`Ensemble`: several scorers at once, their scores normalized per query and
  averaged with weights; the result reports each member's score.
- :class:`Fallback`: a second scorer serves when the first fails or is late, with a breaker
  that stops calling a primary that keeps failing; the result says which served.
- :class:`Cascade`: a cheap scorer orders every candidate, an expensive one rescores the top.
- :func:`rerank_within`: a deadline on any scorer (``deadline_ms=`` on
  :class:`crossrank.CrossEncoderScorer` and on each composite uses it).
- :class:`BiEncoderScorer`: a sentence-transformers bi-encoder, a cascade's cheap stage.
- :func:`scorer_to_config` / :func:`scorer_from_config`: any of these as a JSON-safe dict.

See docs/compose.md.

Example:
    >>> from crossrank import CrossEncoderScorer, RemoteScorer
    >>> from crossrank.compose import Ensemble, Fallback
    >>> local = CrossEncoderScorer("cross-encoder/ms-marco-MiniLM-L6-v2")
    >>> scorer = Fallback(RemoteScorer("http://reranker:8080"), local, timeout_s=1.0)
"""

from crossrank.compose.base import Composite
from crossrank.compose.bi_encoder import BiEncoderScorer
from crossrank.compose.breaker import Breaker
from crossrank.compose.cascade import Cascade
from crossrank.compose.config import (
    CONFIG_TYPES,
    load_scorer_config,
    scorer_from_config,
    scorer_to_config,
)
from crossrank.compose.ensemble import ENSEMBLE_NORMALIZATIONS, Ensemble, EnsembleReranked
from crossrank.compose.fallback import FALLBACK_ON, Fallback, FallbackError, FallbackReranked
from crossrank.deadline import arerank_within, deadline_batch, rerank_within

__all__ = [
    "CONFIG_TYPES",
    "ENSEMBLE_NORMALIZATIONS",
    "FALLBACK_ON",
    "BiEncoderScorer",
    "Breaker",
    "Cascade",
    "Composite",
    "Ensemble",
    "EnsembleReranked",
    "Fallback",
    "FallbackError",
    "FallbackReranked",
    "arerank_within",
    "deadline_batch",
    "load_scorer_config",
    "rerank_within",
    "scorer_from_config",
    "scorer_to_config",
]
