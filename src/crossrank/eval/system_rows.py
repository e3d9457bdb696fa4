"""``crossrank eval``'s rows for the systems that are not a single local model: providers,
ensembles, cascades, saved scorer configs, and any system under a deadline.

Each such system is run as it would be in a pipeline: for every K, one timed ``rerank``
call per query on that query's first K first-stage candidates (the same candidates every
system gets), its returned order (the scored candidates, then the unscored ones) ranked as
is. Unlike a single model's scores, an ensemble's or a cascade's order at a smaller K is not
its order at the largest K cut short, and a deadline's depends on the time, so nothing is
derived: each K is a run of its own.

Beside the quality and latency of a model's row, a row here has:

- ``cost_per_1000_queries``: for a provider, what it reported it billed (its usage, in its
  own units), times the price per unit given with ``--price``, per 1,000 queries; None
  without a price or a usage in that unit.
- ``usage``: the usage it reported, summed, by unit;
- ``requests``: calls made (one per query and K, plus one untimed warm-up);
- ``unscored_fraction``: the share of candidates a deadline left unscored;
- ``deadline_ms``: the system's deadline (None: none); with one, ``latency_p99_ms`` and
  ``batch_p99_ms``, the p99 of one batch's call (the deadline loop's step,
  :func:`crossrank.deadline_batch` candidates, no deadline) on the same queries: a
  call ends at most one batch past the deadline, so ``latency_p99_ms`` should stay within
  ``deadline_ms + batch_p99_ms``.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from crossrank.deadline import deadline_batch, takes_deadline
from crossrank.eval.latency import latency_stats, percentile_ms
from crossrank.eval.metrics import row_metrics
from crossrank.eval.progress import progress_bar, quiet_truncation_warnings
from crossrank.eval.systems import System
from crossrank.results import add_usage

__all__ = ["cost_per_1000", "run_systems", "system_rows"]


def cost_per_1000(
    usage: Mapping[str, float] | None, queries: int, price: tuple[str, float] | None
) -> float | None:
    """USD per 1,000 queries: the usage in the price's unit, per query, times the price."""
    if price is None or queries == 0 or usage is None or price[0] not in usage:
        return None
    unit, usd = price
    return usage[unit] / queries * 1000.0 * usd


def _batch_p99(
    scorer: Any,
    queries: Mapping[str, str],
    scored: Sequence[str],
    texts: Mapping[str, Sequence[str]],
    calls: int = 20,
) -> float | None:
    """The p99, in ms, of one deadline batch's call (no deadline) on the first queries."""
    size = deadline_batch(scorer)
    no_deadline = {"deadline_ms": math.inf} if takes_deadline(scorer) else {}
    seconds = []
    for q in scored[:calls]:
        batch = list(texts[q][:size])
        t = time.perf_counter()
        scorer.rerank(queries[q], batch, **no_deadline)
        seconds.append(time.perf_counter() - t)
    return percentile_ms(seconds, 99)


def system_rows(
    system: System,
    *,
    queries: Mapping[str, str],
    query_ids: Sequence[str],
    candidates: Mapping[str, Sequence[str]],
    texts: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int],
    price: tuple[str, float] | None = None,
    progress: Any = None,
) -> tuple[list[dict[str, Any]], float]:
    """One row per K for ``system`` (see the module docstring), and its load time.

    Args:
        system: The system.
        queries: Query text by id.
        query_ids: The evaluated queries (those without candidates score 0).
        candidates: Each query's first-stage candidates (ids), best first.
        texts: Their texts, same order.
        qrels: The judgments of the evaluated queries.
        ks: Candidate counts.
        price: ``(unit, usd)`` for a provider's cost.
        progress: A progress bar to advance once per call (None: none).
    """
    scorer = system.build()
    started = time.perf_counter()
    scorer.warm_up()
    scored = [q for q in query_ids if texts[q]]
    options = {} if system.deadline_ms is None else {"deadline_ms": system.deadline_ms}
    if scored:  # warm-up: one call on the first query's first candidates, untimed
        scorer.rerank(queries[scored[0]], list(texts[scored[0]][: min(ks)]))
    load_seconds = time.perf_counter() - started
    batch_p99 = _batch_p99(scorer, queries, scored, texts) if system.deadline_ms else None
    rows = []
    for k in ks:
        seconds: list[float] = []
        pairs = unscored = offered = 0
        usage: dict[str, float] | None = None
        run: dict[str, dict[str, float]] = {}
        for q in scored:
            ids, batch = list(candidates[q][:k]), list(texts[q][:k])
            t = time.perf_counter()
            out = scorer.rerank(queries[q], batch, **options)
            seconds.append(time.perf_counter() - t)
            order = [h.index for h in out.hits] + list(out.unscored) + list(out.skipped)
            order += [i for i in range(len(ids)) if i not in set(order)]  # cut by nothing
            run[q] = {ids[i]: float(len(order) - rank) for rank, i in enumerate(order)}
            pairs += out.pairs
            unscored += out.deadline_unscored
            offered += len(ids)
            usage = add_usage(usage, out.usage)
            if progress is not None:
                progress.update(1)
        rows.append(
            {
                "system": system.label,
                "stage": system.kind,
                "model": system.model,
                "backend": getattr(scorer, "active_backend", None) if system.model else None,
                "k": k,
                **row_metrics(run, qrels, k),
                **latency_stats(seconds, pairs),
                "latency_queries": len(seconds),
                "truncated_fraction": None,
                "pairs_per_document": pairs / offered if offered else None,
                "deadline_ms": system.deadline_ms,
                **(
                    {}
                    if batch_p99 is None
                    else {"latency_p99_ms": percentile_ms(seconds, 99), "batch_p99_ms": batch_p99}
                ),
                "unscored_fraction": unscored / offered if offered else None,
                "provider": system.provider,
                "requests": len(scored),
                "usage": usage,
                "cost_per_1000_queries": cost_per_1000(usage, len(scored), price),
            }
        )
    del scorer
    gc.collect()
    return rows, load_seconds


def run_systems(
    systems: Sequence[System],
    *,
    queries: Mapping[str, str],
    query_ids: Sequence[str],
    candidates: Mapping[str, Sequence[str]],
    texts: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int],
    prices: Mapping[str, tuple[str, float]] | None = None,
    progress: bool = True,
) -> tuple[dict[int, list[dict[str, Any]]], dict[str, float]]:
    """:func:`system_rows` for every system, one after another (each loaded, run and
    dropped before the next): the rows by K, in the systems' order, and each one's load
    time."""
    rows: dict[int, list[dict[str, Any]]] = {k: [] for k in ks}
    load_seconds: dict[str, float] = {}
    calls = sum(1 for q in query_ids if texts[q]) * len(ks)
    for system in systems:
        bar = progress_bar(calls, f"rerank {system.label}", enabled=progress)
        with quiet_truncation_warnings(), bar:
            found, load_seconds[system.label] = system_rows(
                system,
                queries=queries,
                query_ids=query_ids,
                candidates=candidates,
                texts=texts,
                qrels=qrels,
                ks=ks,
                price=(prices or {}).get(system.provider or ""),
                progress=bar,
            )
        for row in found:
            rows[row["k"]].append(row)
    return rows, load_seconds
