"""IR metrics with the conventions of trec_eval / pytrec_eval / ranx.

- nDCG@k: gain = relevance (linear), discount 1/log2(rank + 1); ideal from all judged
  documents of the query.
- MRR@k: 1/rank of the first relevant (relevance > 0) document in the top k, else 0.
- Recall@k: relevant documents in the top k / all relevant documents.

A run is ``{query_id: {doc_id: score}}``; documents are ranked by score, ties broken by
doc id descending as trec_eval does. Queries with no relevant document are skipped, and
queries in qrels but absent from the run score 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "CUTOFF",
    "Run",
    "evaluate",
    "mrr_at_k",
    "ndcg_at_k",
    "ranked_ids",
    "recall_at_k",
    "row_metrics",
]

Run = Mapping[str, Mapping[str, float]]

#: The fixed cut-off of nDCG, MRR and the first Recall column of ``crossrank eval``'s rows.
CUTOFF = 10


def ranked_ids(scores: Mapping[str, float]) -> list[str]:
    """Doc ids best first; ties by doc id descending (trec_eval's rule)."""
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


def ndcg_at_k(ranking: list[str], judged: Mapping[str, int], k: int) -> float:
    dcg = sum(
        judged.get(d, 0) / math.log2(rank + 2) for rank, d in enumerate(ranking[:k])
        if judged.get(d, 0) > 0
    )
    ideal = sorted((r for r in judged.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(rank + 2) for rank, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranking: list[str], judged: Mapping[str, int], k: int) -> float:
    for rank, d in enumerate(ranking[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


def recall_at_k(ranking: list[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {d for d, r in judged.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


_METRICS = {"ndcg": ndcg_at_k, "mrr": mrr_at_k, "recall": recall_at_k}


def evaluate(
    run: Run, qrels: Mapping[str, Mapping[str, int]], metrics: list[str]
) -> dict[str, float]:
    """Mean of each metric (names like ``"ndcg@10"``, ``"mrr@10"``, ``"recall@50"``) over the
    queries of ``qrels`` that have a relevant document."""
    parsed = []
    for name in dict.fromkeys(metrics):  # a name given twice is computed once
        base, _, cut = name.partition("@")
        if base not in _METRICS or not cut.isdigit() or int(cut) < 1:
            raise ValueError(
                f"metric must look like ndcg@10, mrr@10 or recall@100, got {name!r}"
            )
        parsed.append((name, _METRICS[base], int(cut)))
    totals = dict.fromkeys(metrics, 0.0)
    n = 0
    for qid, judged in qrels.items():
        if not any(r > 0 for r in judged.values()):
            continue
        n += 1
        ranking = ranked_ids(run.get(qid, {}))
        for name, fn, k in parsed:
            totals[name] += fn(ranking, judged, k)
    return {name: (total / n if n else 0.0) for name, total in totals.items()}


def row_metrics(
    run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int
) -> dict[str, float]:
    """One row of ``crossrank eval``'s table: nDCG, MRR and Recall at :data:`CUTOFF`, and
    Recall at the row's ``k`` (``"recall@k"``)."""
    names = [f"ndcg@{CUTOFF}", f"mrr@{CUTOFF}", f"recall@{CUTOFF}", f"recall@{k}"]
    values = evaluate(run, qrels, list(dict.fromkeys(names)))
    return {
        f"ndcg@{CUTOFF}": values[names[0]],
        f"mrr@{CUTOFF}": values[names[1]],
        f"recall@{CUTOFF}": values[names[2]],
        "recall@k": values[names[3]],
    }
