"""Report the texts a scorer did not read in full: one warning per scorer, counts for the
rest.

A service that reranks long documents truncates on most calls; a warning per call would
flood its log. So each scorer logs the first call that truncates at WARNING, with what was
cut and the count so far, and later ones at DEBUG; the counts stay available where a
program reads them: :attr:`crossrank.ScoreDetails.truncated` (per text) and
``num_truncated``, :attr:`crossrank.Reranked.truncated` (per call),
:attr:`crossrank.CrossEncoderScorer.truncated_texts` (so far), and ``crossrank serve``'s
``crossrank_truncated_texts_total`` metric.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["TruncationLog"]

logger = logging.getLogger("crossrank")


class TruncationLog:
    """Counts truncated texts and logs the first truncation once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._warned = False

    @property
    def count(self) -> int:
        """Texts truncated so far."""
        return self._count

    def record(self, cut: int, texts: int, what: str) -> None:
        """Count ``cut`` of ``texts`` texts as truncated (``what`` says how, e.g. "were
        longer than max_length=512 tokens and were truncated (document side)"); the first
        time, log a WARNING, afterwards a DEBUG record."""
        if cut <= 0:
            return
        with self._lock:
            self._count += cut
            total, first = self._count, not self._warned
            self._warned = True
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "crossrank: %d of %d texts %s (%d so far by this scorer). This is logged once per "
            "scorer: later truncations are counted in ScoreDetails.truncated, "
            "CrossEncoderScorer.truncated_texts and crossrank serve's "
            "crossrank_truncated_texts_total",
            cut,
            texts,
            what,
            total,
        )
