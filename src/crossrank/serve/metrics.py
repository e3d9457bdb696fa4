"""Prometheus metrics of one server, in a registry of its own.

Each app gets its own :class:`prometheus_client.CollectorRegistry`, so several apps in one
process (tests, a Ray replica) never collide. Every name starts with ``crossrank_``:

=========================================== ==========================================
``crossrank_requests_total{endpoint,code}``  answered requests, by endpoint and status
``crossrank_request_duration_seconds``       latency histogram, by endpoint
``crossrank_documents_total``                documents received in scoring requests
``crossrank_pairs_total``                    (query, window) pairs scored
``crossrank_truncated_texts_total``          documents not read in full (cut at
                                             max_length, or past max_windows)
``crossrank_forward_passes_total``           forward passes run
``crossrank_pass_requests``                  histogram: requests sharing one pass
``crossrank_pass_pairs``                     histogram: pairs in one pass
``crossrank_pass_duration_seconds``          histogram: time of one pass
``crossrank_queue_depth``                    requests admitted and not yet answered
``crossrank_batcher_waiting_pairs``          pairs queued for the next passes
``crossrank_errors_total{kind}``             errors by kind (validation, limit,
                                             overloaded, unavailable, unauthorized,
                                             internal, not_found, upstream: the provider a
                                             forwarding server calls failed)
``crossrank_unscored_total``                 documents a deadline left unscored
``crossrank_deadline_cut_requests_total``    requests whose deadline left some unscored
``crossrank_fallback_served_total``          requests a ``Fallback``'s fallback served
``crossrank_info{model,backend,version}``    the served model
``crossrank_provider_usage_total``           forwarding to a provider: what the calls
``{provider,unit}``                          cost, by unit as the provider reports it
                                             (``search_units``, ``total_tokens``...) and
                                             ``requests`` sent to it
=========================================== ==========================================

Requests per forward pass on average: ``crossrank_pass_requests_sum /
crossrank_pass_requests_count``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from crossrank._optional import missing_extra

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        Info,
        generate_latest,
    )
except ImportError as e:  # pragma: no cover - the serve extra is installed in the tests
    raise missing_extra("crossrank serve's metrics", "serve", e) from e

from crossrank.serve.batcher import PassStats

__all__ = ["CONTENT_TYPE", "ERROR_KINDS", "Metrics"]

#: The ``Content-Type`` of :meth:`Metrics.render`.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: The ``kind`` label values of ``crossrank_errors_total``.
ERROR_KINDS = (
    "validation",
    "limit",
    "overloaded",
    "unavailable",
    "unauthorized",
    "internal",
    "not_found",
    "upstream",
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_COUNT_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
_PAIR_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The server's metrics; :meth:`render` gives the ``/metrics`` text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "crossrank_requests", "Answered requests", ["endpoint", "code"], registry=r
        )
        self.latency = Histogram(
            "crossrank_request_duration_seconds",
            "Time from a request's arrival to its answer",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.documents = Counter(
            "crossrank_documents", "Documents received in scoring requests", registry=r
        )
        self.pairs = Counter("crossrank_pairs", "(query, window) pairs scored", registry=r)
        self.truncated = Counter(
            "crossrank_truncated_texts",
            "Documents not read in full (cut at max_length, or past max_windows)",
            registry=r,
        )
        self.passes = Counter("crossrank_forward_passes", "Forward passes run", registry=r)
        self.pass_requests = Histogram(
            "crossrank_pass_requests",
            "Requests whose rows share one forward pass",
            buckets=_COUNT_BUCKETS,
            registry=r,
        )
        self.pass_pairs = Histogram(
            "crossrank_pass_pairs", "Pairs in one forward pass", buckets=_PAIR_BUCKETS, registry=r
        )
        self.pass_seconds = Histogram(
            "crossrank_pass_duration_seconds",
            "Time of one forward pass (padding included)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "crossrank_queue_depth", "Requests admitted and not yet answered", registry=r
        )
        self.waiting_pairs = Gauge(
            "crossrank_batcher_waiting_pairs",
            "Pairs queued for the next forward passes",
            registry=r,
        )
        self.errors = Counter("crossrank_errors", "Errors by kind", ["kind"], registry=r)
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)  # every kind is listed, at 0, from the start
        self.unscored = Counter(
            "crossrank_unscored", "Documents a deadline left unscored", registry=r
        )
        self.deadline_cut = Counter(
            "crossrank_deadline_cut_requests",
            "Requests whose deadline left some documents unscored",
            registry=r,
        )
        self.fallback_served = Counter(
            "crossrank_fallback_served",
            "Requests a Fallback's fallback scorer answered (the primary failed or was late)",
            registry=r,
        )
        self.info = Info("crossrank", "The served model", registry=r)
        self.provider_usage = Counter(
            "crossrank_provider_usage",
            "What calls forwarded to a provider cost, by unit as it reports it, and requests",
            ["provider", "unit"],
            registry=r,
        )

    def observe_pass(self, stats: PassStats) -> None:
        """Record one forward pass (the batcher's ``on_pass``)."""
        self.passes.inc()
        self.pass_requests.observe(stats.requests)
        self.pass_pairs.observe(stats.rows)
        self.pass_seconds.observe(stats.seconds)

    def observe_usage(self, provider: str, usage: Mapping[str, float]) -> None:
        """Count one forwarded call's usage (its units and the requests it took)."""
        for unit, amount in usage.items():
            self.provider_usage.labels(provider=provider, unit=unit).inc(amount)

    def observe_result(self, documents: int, result: Any) -> None:
        """Record one answered scoring request (a :class:`crossrank.serve.ScoreResult`):
        its documents, pairs, and what a deadline or a fallback did."""
        self.documents.inc(documents)
        self.pairs.inc(result.pairs)
        self.truncated.inc(result.truncated)
        if result.deadline_unscored:
            self.unscored.inc(result.deadline_unscored)
            self.deadline_cut.inc()
        if result.served_by == "fallback":
            self.fallback_served.inc()

    def track_waiting(self, waiting: Callable[[], float]) -> None:
        """Read ``crossrank_batcher_waiting_pairs`` from ``waiting()`` at each scrape."""
        self.waiting_pairs.set_function(waiting)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
