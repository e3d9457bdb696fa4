"""crossrank: cross-encoder reranking for RAG pipelines.

Example:
    >>> from crossrank import CrossEncoderScorer
    >>> scorer = CrossEncoderScorer()  # CROSSRANK_MODEL or cross-encoder/ms-marco-MiniLM-L6-v2
    >>> hits = scorer.rank("query", ["text one", "text two"], top_k=1)
    >>> from crossrank import RemoteScorer
    >>> remote = RemoteScorer("http://127.0.0.1:8080")  # the same interface, on a server
    >>> cohere = RemoteScorer(provider="cohere")  # or a hosted reranker (COHERE_API_KEY)
"""

from crossrank._version import __version__
from crossrank.calibration import Calibration
from crossrank.errors import (
    CrossrankError,
    DeviceUnavailableError,
    HubUnreachableError,
    ModelLoadError,
    ModelNotFoundError,
    ScoringError,
    UnsupportedModelError,
)
from crossrank.remote import RemoteScorer, RemoteScorerError
from crossrank.scorer import DEFAULT_MODEL, CrossEncoderScorer, Reranked, ScoreDetails
from crossrank.selection import Hit, passage_span, select

__all__ = [
    "DEFAULT_MODEL",
    "Calibration",
    "CrossEncoderScorer",
    "CrossrankError",
    "DeviceUnavailableError",
    "Hit",
    "HubUnreachableError",
    "ModelLoadError",
    "ModelNotFoundError",
    "RemoteScorer",
    "RemoteScorerError",
    "Reranked",
    "ScoreDetails",
    "ScoringError",
    "UnsupportedModelError",
    "__version__",
    "passage_span",
    "select",
]
