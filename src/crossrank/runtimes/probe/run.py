"""The probe: build each candidate backend, time it on the timing case, and check its
agreement with fp32 ``torch`` fastest-first (the method is described in
:mod:`crossrank.runtimes.probe`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from crossrank.batching import pad_rows, plan_batches, run_batches
from crossrank.runtimes.cpu import cpu_class, cpu_summary
from crossrank.runtimes.inputs import Inputs
from crossrank.runtimes.int8 import int8_recipe
from crossrank.runtimes.probe.agreement import agreement
from crossrank.runtimes.probe.texts import probe_cases, timing_case

__all__ = ["Decision", "Planned", "Trial", "planned_batches", "run_probe"]

logger = logging.getLogger("crossrank")

#: A more precise backend within this fraction of the fastest's time is preferred.
_TIE_MARGIN = 0.05

#: Timed passes over the timing case per backend (the fastest counts).
_REPEATS = 3

#: A backend whose first timed pass is this many times the fastest so far is not timed
#: again: it cannot win.
_SLOW = 1.5

#: Seconds of fp32 scoring the full probe may cost per candidate (timing and agreement,
#: estimated from the reference's speed on two pairs). A slower model (an LLM reranker on a
#: small CPU) gets the small probe: 4 timing texts, 3 queries of 12 passages.
BUDGET_S = 30.0

#: Pairs the full probe scores per candidate: the timing case (a warm-up and the repeats)
#: and the agreement cases.
_FULL_PAIRS = 16 * (_REPEATS + 1) + 6 * 24

#: How exact each backend is: 0 fp32, 1 half precision, 2 int8 (ties go to the lower).
_PRECISION_RANK: dict[str, int] = {
    "torch": 0,
    "onnx": 0,
    "openvino": 0,
    "torch-bf16": 1,
    "torch-fp16": 1,
    "openvino-bf16": 1,
    "onnx-int8": 2,
    "openvino-int8": 2,
}

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Trial:
    """One backend's result in the probe.

    Attributes:
        backend: The backend's name.
        passed: Whether it kept fp32's top within the thresholds (False if it failed).
        seconds: Its time on the timing case (the fastest of the repeats); None if it
            failed before timing.
        build_seconds: Loading it, including a first export or conversion.
        agreement: What :func:`agreement` returned (empty if it failed to run or was not
            checked).
        error: Why it failed to build or run, if it did.
        checked: Whether its agreement was checked: a backend slower than the choice
            (beyond the tie margin) is not, as it could not be picked.
    """

    backend: str
    passed: bool
    seconds: float | None = None
    build_seconds: float | None = None
    agreement: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    checked: bool = True


@dataclass(frozen=True)
class Decision:
    """What ``auto`` resolved to, and the measurements behind it.

    Attributes:
        backend: The chosen backend.
        key: The decision cache key (:func:`decision_key`).
        trials: Each candidate's :class:`Trial`, in probe order.
        probe_seconds: The whole probe's wall time (building included).
        cpu: :func:`cpu_summary` of the machine that probed.
        source: ``"probe"`` (measured now), ``"cache"`` (read from disk) or ``"env"``.
        small: Whether the model was too slow for the full probe and got the small one.
        cpu_class: The CPU class (:func:`crossrank.runtimes.cpu.cpu_class`), which decides
            the int8 recipe.
        int8_recipe: The recipe ``openvino-int8`` was built with here
            (:func:`crossrank.runtimes.int8.int8_recipe`).
    """

    backend: str
    key: str
    trials: tuple[Trial, ...] = ()
    probe_seconds: float = 0.0
    cpu: str = ""
    source: str = "probe"
    small: bool = False
    cpu_class: str = ""
    int8_recipe: str = ""

    def to_json(self) -> dict[str, Any]:
        """The decision as JSON-ready data."""
        data = asdict(self)
        data.pop("source")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "cache") -> Decision:
        """A decision read back from :meth:`to_json`'s data."""
        trials = tuple(Trial(**t) for t in data.get("trials", ()))
        return cls(
            backend=str(data["backend"]),
            key=str(data["key"]),
            trials=trials,
            probe_seconds=float(data.get("probe_seconds", 0.0)),
            cpu=str(data.get("cpu", "")),
            source=source,
            small=bool(data.get("small", False)),
            cpu_class=str(data.get("cpu_class", "")),
            int8_recipe=str(data.get("int8_recipe", "")),
        )

    def summary(self) -> str:
        """One line per backend: time, agreement, verdict."""
        size = "; the small probe" if self.small else ""
        lines = [f"auto -> {self.backend} ({self.source}; {self.cpu}{size})"]
        if self.cpu_class:
            lines.append(f"  cpu class {self.cpu_class}; int8 recipe {self.int8_recipe}")
        for t in self.trials:
            a = t.agreement
            timing = "-" if t.seconds is None else f"{t.seconds * 1000:.0f} ms"
            verdict = "pass" if t.passed else f"fail{': ' + t.error if t.error else ''}"
            if not t.checked:
                verdict = "not checked: slower than the choice"
            detail = (
                f"top10 min {a['top10_overlap_min']}, ndcg10 {a['ndcg10']:.4f}"
                if a
                else "agreement not measured"
            )
            lines.append(f"  {t.backend}: {timing}, {detail}: {verdict}")
        return "\n".join(lines)


def planned_batches(
    inputs: Inputs,
    query: str,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    parallel: int = 1,
) -> list[Planned]:
    """(query, text) pairs planned and padded as the scorer plans them (longest first, one
    padded width per batch, at least ``parallel`` batches), each batch with the input
    positions it holds."""
    rows = inputs.rows(query, texts)
    left = inputs.padding_side == "left"
    cap = inputs.max_length
    lengths = [len(r) for r in rows["input_ids"]]
    return [
        Planned(
            batch,
            pad_rows(rows, batch, pad_token_id=inputs.pad_token_id, left=left, cap=cap),
        )
        for batch in plan_batches(lengths, batch_size, min_batches=parallel, cap=cap)
    ]


@dataclass(frozen=True)
class Planned:
    """A padded batch and the rows (input positions) it holds."""

    rows: list[int]
    arrays: dict[str, np.ndarray]


@dataclass
class _Runner:
    """A built backend: its forward function, and the runner of several batches at once
    (OpenVINO's streams) or None."""

    forward: Forward
    many: Any = None

    @property
    def parallel(self) -> int:
        return 1 if self.many is None else int(self.many.parallel)

    def score(self, batches: Sequence[Planned]) -> np.ndarray:
        """Scores in input order, the batches run as the scorer runs them."""
        outs = run_batches(
            self.forward,
            [[i] for i in range(len(batches))],
            lambda b: batches[b[0]].arrays,
            forward_many=self.many,
        )
        scores = np.empty(sum(len(b.rows) for b in batches), dtype=np.float64)
        for batch, out in zip(batches, outs, strict=True):
            scores[batch.rows] = np.asarray(out, dtype=np.float64)
        return scores


def _runner(built: Forward | tuple[Forward, Any]) -> _Runner:
    if isinstance(built, tuple):
        return _Runner(*built)
    return _Runner(built)


def run_probe(
    build: Callable[[str], Forward | tuple[Forward, Any]],
    candidates: Sequence[str],
    *,
    inputs: Inputs,
    key: str = "",
    clock: Callable[[], float] = time.perf_counter,
) -> Decision:
    """Time each of ``candidates`` and pick the fastest that keeps fp32's top.

    1. Every candidate is built, warmed up on the timing case, and timed on it once; those
       within :data:`_SLOW` of the fastest are timed :data:`_REPEATS` times in all (the
       fastest pass counts).
    2. fp32 ``torch`` scores the agreement cases (the reference); then the candidates are
       checked **fastest first**: the first that passes is the choice, unless a more
       precise one within :data:`_TIE_MARGIN` of its time passes too. A candidate slower
       than the choice by more than the margin is not checked (it could not be picked):
       its trial says so (``checked=False``).

    Args:
        build: Returns the forward function of a backend, or (forward function, runner
            of several batches at once or None), e.g. OpenVINO's streams
            (:class:`crossrank.runtimes.openvino.StreamForward`); ``build("torch")`` is the
            fp32 reference. It may raise, and that backend then fails.
        candidates: Backends to try; ``"torch"`` is added first if missing.
        inputs: The model's encoder: the probe's pairs are read as the model reads them
            (its template and ``max_length`` included).
        key: The decision's cache key (stored in the decision).
        clock: The timer (tests pass a fake one).

    Returns:
        The :class:`Decision` (``source="probe"``), its trials in candidate order.
    """
    started = time.perf_counter()
    order = ["torch", *[c for c in candidates if c != "torch"]]
    query, texts = timing_case()
    small = False

    def encode(q: str, t: Sequence[str], parallel: int) -> list[Planned]:
        return planned_batches(inputs, q, t, parallel=parallel)

    runners: dict[str, _Runner] = {}
    build_s: dict[str, float] = {}
    seconds: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    agreed: dict[str, dict[str, Any]] = {}

    def fail(backend: str, e: Exception) -> None:
        if backend == "torch":
            raise e
        logger.warning("crossrank: auto probe: %s failed (%s: %s)", backend, type(e), e)
        errors[backend] = f"{type(e).__name__}: {e}"
        runners.pop(backend, None)

    def time_once(backend: str) -> None:
        runner = runners[backend]
        batches = encode(query, texts, runner.parallel)
        tick = clock()
        runner.score(batches)
        seconds[backend].append(clock() - tick)

    # 1. Build, warm up, time once; then repeat the contenders.
    for backend in order:
        t0 = time.perf_counter()
        try:
            runners[backend] = _runner(build(backend))
            build_s[backend] = time.perf_counter() - t0
            runner = runners[backend]
            if backend == "torch":  # the reference sizes the probe
                small = _too_slow(runner, encode(query, texts[:2], 1))
                if small:
                    query, texts = timing_case(4)
            runner.score(encode(query, texts, runner.parallel))  # warm-up
            seconds[backend] = []
            time_once(backend)
        except Exception as e:  # a backend that cannot run here is not picked
            fail(backend, e)
    for _ in range(_REPEATS - 1):
        fastest = min(min(v) for v in seconds.values() if v)
        for backend in list(runners):
            if min(seconds[backend]) <= _SLOW * fastest:
                try:
                    time_once(backend)
                except Exception as e:
                    fail(backend, e)

    # 2. Agreement, fastest first, until the choice is certain.
    cases = probe_cases(small)

    def scores_of(backend: str) -> list[np.ndarray]:
        runner = runners[backend]
        return [runner.score(encode(q, t, runner.parallel)) for q, t in cases]

    reference = scores_of("torch")
    agreed["torch"] = agreement(reference, reference)
    chosen_time: float | None = None
    for backend in sorted(runners, key=lambda b: (min(seconds[b]), _rank(b))):
        best = min(seconds[backend])
        if chosen_time is not None and best > chosen_time * (1 + _TIE_MARGIN):
            break  # slower than the choice beyond the margin: it cannot be picked
        if backend not in agreed:
            try:
                agreed[backend] = agreement(reference, scores_of(backend))
            except Exception as e:
                fail(backend, e)
                continue
        if agreed[backend]["passed"] and chosen_time is None:
            chosen_time = best

    trials = []
    for backend in order:
        if backend in errors:
            trials.append(
                Trial(backend, False, build_seconds=build_s.get(backend), error=errors[backend])
            )
            continue
        checked = backend in agreed
        trials.append(
            Trial(
                backend,
                bool(checked and agreed[backend]["passed"]),
                seconds=min(seconds[backend]),
                build_seconds=build_s[backend],
                agreement=agreed.get(backend, {}),
                checked=checked,
            )
        )
    chosen = _pick(trials)
    return Decision(
        backend=chosen,
        key=key,
        trials=tuple(trials),
        probe_seconds=time.perf_counter() - started,
        cpu=cpu_summary(),
        small=small,
        cpu_class=cpu_class(),
        int8_recipe=int8_recipe().name,
    )


def _too_slow(reference: _Runner, two_pairs: list[Planned]) -> bool:
    """Whether the full probe would cost more than :data:`BUDGET_S` per candidate at the
    reference's speed on two pairs (wall time: stubbed clocks do not size the probe)."""
    tick = time.perf_counter()
    reference.score(two_pairs)
    per_pair = (time.perf_counter() - tick) / 2
    if per_pair * _FULL_PAIRS <= BUDGET_S:
        return False
    logger.warning(
        "crossrank: auto measures this model's backends once per machine; at %.2f s per pair "
        "in fp32 that takes minutes here, so the probe is the small one (set backend=... or "
        "CROSSRANK_BACKEND to skip it)",
        per_pair,
    )
    return True


def _rank(backend: str) -> int:
    return _PRECISION_RANK.get(backend, 3)


def _pick(trials: Sequence[Trial]) -> str:
    passed = [t for t in trials if t.passed and t.seconds is not None]
    if not passed:
        return "torch"
    fastest = min(t.seconds for t in passed if t.seconds is not None)
    close = [
        t for t in passed if t.seconds is not None and t.seconds <= fastest * (1 + _TIE_MARGIN)
    ]
    best = min(close, key=lambda t: (_rank(t.backend), t.seconds))
    return best.backend
