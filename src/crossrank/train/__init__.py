"""Fine-tune a cross-encoder on your data: ``crossrank train`` (extra ``crossrank[train]``).

Hard negatives come from the first stage you rerank (BM25 or a dense model), training is
sentence-transformers' ``CrossEncoderTrainer`` with a pointwise or a listwise loss, and a
dev split carved from the training queries picks the checkpoint (NDCG@10 of the reranked
first stage, measured by crossrank's own metrics). The output folder loads everywhere
crossrank does, with a calibration fitted on the dev split and a training report.

Example:
    >>> from crossrank.train import train
    >>> report = train("scifact/", "cross-encoder/ms-marco-MiniLM-L6-v2", "my-reranker/")
    >>> from crossrank import CrossEncoderScorer
    >>> CrossEncoderScorer("my-reranker/", activation="calibrated")

Importing this package needs only crossrank's core; :func:`train` raises the install hint
(``pip install "crossrank[train]"``) when the training libraries are missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["train"]

if TYPE_CHECKING:
    from crossrank.train.run import train


def __getattr__(name: str) -> Any:
    # Lazy, so that ``crossrank --help`` does not import the training stack.
    if name == "train":
        from crossrank.train.run import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
