"""``auto``: measure the backends this machine runs and pick the fastest accurate one.

On first use for a key (the model's content, this CPU's model name, core count and
relevant flags, the device, and the versions of Python, torch, transformers, onnxruntime,
OpenVINO, NNCF and crossrank), :func:`run_probe` builds each backend the machine can run
(:func:`candidate_backends`), scores a fixed built-in set of (query, text) pairs with it,
checks its ranking against fp32 ``torch`` at the top, times it, and picks the fastest that
passes. The decision is cached on disk as JSON (:func:`resolve_auto`): later processes read
it and neither probe nor export again.

**Agreement** (:data:`MIN_TOP10_OVERLAP`, :data:`MIN_NDCG10`): on each of the
:data:`PROBE_QUERIES` (six queries, each against all 24 built-in passages), the backend must
keep at least 9 of fp32 ``torch``'s top 10, and the mean NDCG@10 of its order, with fp32's
order as graded truth (fp32's first gets grade 10, its tenth grade 1, the rest 0), must be
at least 0.98. Spearman over all candidates is reported, not gating: the order of the
irrelevant tail is noise. ``torch`` fp32 is the reference and always passes.

**Speed**: after the agreement pass (which also warms the backend up), the backend scores
the timing case (one query, 16 texts of about 220 tokens: three passages each) three times;
its time is the fastest of the three (the least disturbed by other work on the machine);
a backend whose first pass takes 1.5x the fastest so far is timed once only.
``auto`` picks the fastest backend that passed; a more precise one (fp32 before bf16 before
int8) within 5% of it is preferred, as the difference is within timing noise.

The environment variable ``CROSSRANK_BACKEND`` (a backend name) makes ``auto`` resolve to
that backend without probing; an explicit ``backend=`` never probes.

The built-in texts (:mod:`~crossrank.runtimes.probe.texts`) were written for crossrank (three
domains, eight short passages each), are read through the model's own input format
(template and ``max_length`` included), and are also the default calibration sample of
``openvino-int8`` (:func:`calibration_pairs`: other queries against the same passages).

=================  ==========================================================
module             what it holds
=================  ==========================================================
``texts``          the built-in passages, probe and calibration queries
``agreement``      top-10 overlap, NDCG@10 against fp32, finite scores
``run``            :func:`run_probe`, :class:`Trial`, :class:`Decision`
``decisions``      candidates, the cache key, the on-disk cache, ``resolve_auto``
=================  ==========================================================
"""


from crossrank.runtimes.cpu import RELEVANT_FLAGS, cpu_flags, cpu_summary
from crossrank.runtimes.probe.agreement import MIN_NDCG10, MIN_TOP10_OVERLAP, agreement
from crossrank.runtimes.probe.decisions import (
    ENV_BACKEND,
    backend_from_env,
    candidate_backends,
    decision_key,
    resolve_auto,
)
from crossrank.runtimes.probe.run import Decision, Planned, Trial, planned_batches, run_probe
from crossrank.runtimes.probe.texts import (
    PROBE_QUERIES,
    calibration_pairs,
    probe_cases,
    timing_case,
)

__all__ = [
    "ENV_BACKEND",
    "MIN_NDCG10",
    "MIN_TOP10_OVERLAP",
    "PROBE_QUERIES",
    "RELEVANT_FLAGS",
    "Decision",
    "Planned",
    "Trial",
    "agreement",
    "backend_from_env",
    "calibration_pairs",
    "candidate_backends",
    "cpu_flags",
    "cpu_summary",
    "decision_key",
    "planned_batches",
    "probe_cases",
    "resolve_auto",
    "run_probe",
    "timing_case",
]
