"""The dev evaluation of ``crossrank train``: rerank the dev queries' first-stage candidates
with the model being trained and measure NDCG@10 with crossrank's own metrics.

It is a sentence-transformers evaluator, so ``CrossEncoderTrainer`` runs it after each
epoch, logs ``eval_dev_ndcg@10``, keeps the best checkpoint on it and stops early on it.
It keeps every evaluation's raw logits by step, so the calibration is fitted on the kept
model's dev scores without scoring the dev pairs again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:  # sentence-transformers >= 6
    from sentence_transformers.base.evaluation import BaseEvaluator as _Evaluator
except ImportError:  # pragma: no cover - sentence-transformers 4 and 5
    from sentence_transformers.evaluation import SentenceEvaluator as _Evaluator  # type: ignore[no-redef]

from crossrank.eval.metrics import evaluate

__all__ = ["DevRerankEvaluator"]

logger = logging.getLogger("crossrank")

_METRICS = ("ndcg@10", "mrr@10", "recall@10")


class DevRerankEvaluator(_Evaluator):
    """Rerank the dev queries' first-stage candidates and report NDCG@10, MRR@10, R@10.

    Example:
        >>> from crossrank.train.evaluator import DevRerankEvaluator
        >>> evaluator = DevRerankEvaluator(queries, candidates, texts, qrels)
        >>> evaluator(CrossEncoder("my-model"))["dev_ndcg@10"]

    Args:
        queries: ``{query_id: text}`` of the dev queries.
        candidates: ``{query_id: [doc_id, ...]}``, the first stage's top K, best first.
        texts: ``{doc_id: text}`` for every candidate, as the reranker reads it.
        qrels: ``{query_id: {doc_id: relevance}}`` of the dev queries.
        batch_size: Pairs per forward pass.
        name: Prefix of the metrics (``dev_ndcg@10``).
        show_progress_bar: Draw the prediction progress bar.
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        candidates: Mapping[str, Sequence[str]],
        texts: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        batch_size: int = 32,
        name: str = "dev",
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.query_ids = sorted(q for q in queries if q in qrels)
        self.queries = {q: queries[q] for q in self.query_ids}
        self.candidates = {q: list(candidates.get(q, [])) for q in self.query_ids}
        self.texts = dict(texts)
        self.qrels = {q: dict(qrels[q]) for q in self.query_ids}
        self.primary_metric = "ndcg@10"
        self.greater_is_better = True
        #: One entry per evaluation: ``{"epoch", "step", "ndcg@10", "mrr@10", "recall@10"}``.
        self.history: list[dict[str, Any]] = []
        #: Raw logits of every evaluation by global step, in :meth:`pairs` order.
        self.logits: dict[int, np.ndarray] = {}

    def pairs(self) -> list[tuple[str, str]]:
        """The (query, document) pairs scored, query by query in sorted id order."""
        return [
            (self.queries[q], self.texts[d]) for q in self.query_ids for d in self.candidates[q]
        ]

    def labels(self) -> np.ndarray:
        """1.0 for a judged-relevant pair, else 0.0, in :meth:`pairs` order."""
        return np.asarray(
            [
                1.0 if self.qrels[q].get(d, 0) > 0 else 0.0
                for q in self.query_ids
                for d in self.candidates[q]
            ]
        )

    def measure(self, scores: Sequence[float] | np.ndarray) -> dict[str, float]:
        """The metrics of the candidates ordered by ``scores`` (in :meth:`pairs` order)."""
        run: dict[str, dict[str, float]] = {}
        i = 0
        for q in self.query_ids:
            ids = self.candidates[q]
            run[q] = {d: float(s) for d, s in zip(ids, scores[i : i + len(ids)], strict=True)}
            i += len(ids)
        return evaluate(run, self.qrels, list(_METRICS))

    def first_stage_metrics(self) -> dict[str, float]:
        """The same metrics for the first stage's own order."""
        # Descending scores in first-stage order, so there is no tie to break.
        scores = [float(-rank) for q in self.query_ids for rank in range(len(self.candidates[q]))]
        return self.measure(scores)

    def score(self, model: Any) -> np.ndarray:
        """Raw logits of :meth:`pairs` under ``model`` (a sentence-transformers CrossEncoder)."""
        import torch

        pairs = self.pairs()
        if not pairs:
            return np.zeros(0)
        logits = model.predict(
            pairs,
            batch_size=self.batch_size,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
            show_progress_bar=self.show_progress_bar,
        )
        return np.asarray(logits, dtype=np.float64).reshape(-1)

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1
    ) -> dict[str, float]:
        logits = self.score(model)
        metrics = self.measure(logits)
        self.logits[int(steps)] = logits
        self.history.append({"epoch": float(epoch), "step": int(steps), **metrics})
        logger.info(
            "crossrank train: dev NDCG@10 %.4f at epoch %s (step %s)",
            metrics["ndcg@10"],
            epoch,
            steps,
        )
        return dict(self.prefix_name_to_metrics(metrics, self.name))
