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

The built-in texts below were written for crossrank (three domains, eight short passages
each) and are also the default calibration sample of ``openvino-int8``
(:func:`calibration_pairs`: other queries against the same passages).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ENV_BACKEND",
    "MIN_NDCG10",
    "MIN_TOP10_OVERLAP",
    "PROBE_QUERIES",
    "RELEVANT_FLAGS",
    "Decision",
    "Trial",
    "agreement",
    "backend_from_env",
    "calibration_pairs",
    "candidate_backends",
    "cpu_flags",
    "cpu_summary",
    "decision_key",
    "encode_batches",
    "planned_batches",
    "resolve_auto",
    "run_probe",
    "timing_case",
]

logger = logging.getLogger("crossrank")

#: The environment variable that names the backend ``auto`` resolves to, skipping the probe.
ENV_BACKEND = "CROSSRANK_BACKEND"

#: Fewest of fp32's top 10 a backend must keep on every probe query.
MIN_TOP10_OVERLAP = 9

#: Lowest mean NDCG@10 of a backend's order against fp32's order (graded truth).
MIN_NDCG10 = 0.98

#: A more precise backend within this fraction of the fastest's time is preferred.
_TIE_MARGIN = 0.05

#: Timed passes over the timing case per backend (the fastest counts).
_REPEATS = 3

#: A backend whose first timed pass is this many times the fastest so far is not timed
#: again: it cannot win.
_SLOW = 1.5

#: Bump when the probe's method, data or thresholds change: old decisions are not reused.
_PROBE_VERSION = "3"

#: CPU flags that decide which kernels are fast; printed with every speed figure.
RELEVANT_FLAGS: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

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

# ---------------------------------------------------------------------- built-in texts

_PASSAGES: tuple[tuple[str, ...], ...] = (
    (  # health and medicine
        "Vitamin D helps the intestine absorb calcium and phosphate, the two minerals that "
        "make bone hard. In adults who are deficient, supplements of 800 to 1,000 units a day "
        "raised blood levels of 25-hydroxyvitamin D within three months, and trials in older "
        "people living in care homes found fewer hip fractures when vitamin D was given "
        "together with calcium. Given alone, without calcium, the same doses did not reduce "
        "fractures in people who already had normal levels.",
        "Bone density falls by about one percent a year after the age of fifty, faster in "
        "women in the years after menopause. Weight-bearing exercise such as walking, stair "
        "climbing and resistance training slows the loss, and in several randomized trials it "
        "also improved balance, which matters because most fractures in older people follow "
        "a fall. Smoking and heavy drinking speed up bone loss.",
        "Statins lower LDL cholesterol by blocking HMG-CoA reductase, an enzyme the liver "
        "needs to make cholesterol. In large trials, each reduction of LDL by one millimole "
        "per litre cut major vascular events such as heart attack and stroke by about a "
        "fifth over five years. Muscle pain is the side effect patients report most, though "
        "in blinded trials it was almost as common on placebo.",
        "Adults who sleep less than six hours a night have higher blood pressure, gain more "
        "weight and report more infections than those who sleep seven to eight hours. In "
        "laboratory studies a single week of short sleep reduced insulin sensitivity in "
        "healthy young men, and the response to a vaccine was weaker in people who had slept "
        "badly in the nights before the injection.",
        "Type 2 diabetes develops when the body's cells respond poorly to insulin and the "
        "pancreas cannot make enough extra insulin to compensate. Metformin, usually the "
        "first drug prescribed, lowers the amount of glucose the liver releases. Losing five "
        "to ten percent of body weight improves blood sugar control, and some people who "
        "lose more than fifteen kilograms go into remission.",
        "Antibiotic resistance spreads when bacteria exchange genes on small circles of DNA "
        "called plasmids. Using antibiotics when they are not needed, for example for viral "
        "colds, and stopping a course early both give resistant strains an advantage. "
        "Hospitals track resistant infections such as MRSA and limit the use of the last "
        "drugs that still work against them.",
        "The influenza vaccine is updated every year because the virus changes its surface "
        "proteins, a process called antigenic drift. How well the vaccine works depends on "
        "how closely the chosen strains match the ones that circulate; in good seasons it "
        "prevents about half of the illnesses that need a doctor's visit, and it lowers the "
        "risk of severe disease in older adults.",
        "Calcium supplements taken without vitamin D had little effect on fracture rates in "
        "most trials, and high doses were linked with kidney stones. Dietary calcium from "
        "milk, cheese, yoghurt, tofu and green vegetables is absorbed as well as tablets. "
        "Guidelines advise around 1,000 milligrams a day for adults and more for women over "
        "fifty.",
    ),
    (  # software and computing
        "A database index is a separate data structure, most often a B-tree, that keeps the "
        "values of one or more columns sorted together with pointers to the rows. A query "
        "that filters on an indexed column can find matching rows in logarithmic time "
        "instead of scanning the whole table. Every index slows down inserts and updates, "
        "because it has to be kept in step with the table.",
        "A cache keeps the results of expensive operations close to where they are used. "
        "The hard part is invalidation: when the underlying data changes, stale entries must "
        "be removed or refreshed. Common policies evict the least recently used entry when "
        "the cache is full, and give each entry a time to live after which it expires.",
        "Python's global interpreter lock lets only one thread execute Python bytecode at a "
        "time, so threads do not speed up CPU-bound pure Python code. They still help with "
        "input and output, and libraries such as NumPy release the lock inside their "
        "compiled loops. For CPU-bound work, processes or native extensions are the usual "
        "answer.",
        "A composite index on two columns, say last name then first name, helps queries that "
        "filter on the last name alone or on both, but not queries that filter only on the "
        "first name, because the entries are sorted by the first column of the index. Query "
        "planners use statistics about the data to decide whether an index scan is cheaper "
        "than reading the table.",
        "Version control systems such as Git record every change to a set of files as a "
        "commit with a parent, which makes the history a directed acyclic graph. Branches "
        "are movable names for commits, so creating one is cheap. A merge joins two lines of "
        "history, and conflicts appear only where both sides changed the same lines.",
        "Garbage collectors free memory that a program can no longer reach. A tracing "
        "collector starts from the roots, such as the stack and global variables, and marks "
        "everything reachable; generational collectors scan young objects more often "
        "because most objects die young. Reference counting frees objects as soon as the "
        "last reference goes, but needs help with cycles.",
        "Transport Layer Security encrypts traffic between a browser and a server. During "
        "the handshake the two sides agree on keys, and the server proves its identity with "
        "a certificate signed by an authority the browser trusts. Version 1.3 of the "
        "protocol removed old ciphers and needs one fewer round trip than earlier versions.",
        "Without an index, a query that looks for one customer by email must read every row "
        "of the table, which takes time proportional to the size of the table. Adding an "
        "index on the email column turned such a lookup from seconds into milliseconds on a "
        "table of ten million rows, at the price of extra disk space and slower writes.",
    ),
    (  # earth and environment
        "Coral bleaching happens when water stays too warm for too long and corals expel the "
        "algae that live in their tissues and feed them. Without the algae the coral turns "
        "white and starves unless temperatures fall within weeks. Marine heatwaves in 2016 "
        "and 2017 bleached large parts of the Great Barrier Reef, and many corals died.",
        "Mountain glaciers have lost mass almost everywhere since the 1970s, and the loss "
        "has sped up in this century. Meltwater feeds rivers in dry summers, so towns and "
        "farms below glaciers in the Andes and the Himalaya depend on it. As glaciers "
        "shrink, summer river flow first rises and then falls.",
        "Ocean acidification is the fall in the pH of seawater as it absorbs carbon dioxide "
        "from the air. More acidic water holds less carbonate, which corals, oysters and "
        "some plankton need to build shells and skeletons. The surface ocean has become "
        "about thirty percent more acidic since the start of the industrial era.",
        "Healthy soil holds carbon, water and the microbes that recycle nutrients. Ploughing "
        "breaks up soil structure and speeds the loss of organic matter, while cover crops "
        "and leaving crop residue on the field protect the surface from erosion. Some "
        "farmers have raised soil carbon over a decade by changing how they till.",
        "Reefs can recover from bleaching if the heat stress is short and other pressures "
        "are low. Studies after mass bleaching found that reefs with clear water, many "
        "herbivorous fish and little pollution regrew coral cover within ten to fifteen "
        "years, while reefs hit again before they recovered lost most of their corals.",
        "Wetlands store large amounts of carbon in waterlogged soil where decay is slow, and "
        "they reduce flooding by holding water after heavy rain. Draining peatlands for "
        "farming releases that carbon as the peat dries and oxidises. Restoring wetlands by "
        "blocking drainage ditches raises the water table again.",
        "Wind and solar power now supply a growing share of electricity in many countries. "
        "Because their output varies with the weather, grids balance them with storage, "
        "flexible gas plants, links to neighbouring regions and demand that can shift in "
        "time. The cost of solar panels fell by about ninety percent between 2010 and 2020.",
        "Sea surface temperatures during El Nino years are higher across the central and "
        "eastern Pacific, and coral reefs in the region bleach more often in those years. "
        "Scientists use satellite measurements of water temperature to issue bleaching "
        "alerts weeks in advance, which lets reef managers plan surveys.",
    ),
)

#: Probe queries: (domain index, query). Each domain's passages are graded for it.
_PROBE_QUERIES: tuple[tuple[int, str], ...] = (
    (0, "does vitamin D prevent fractures in older adults"),
    (0, "what lowers the risk of heart attack"),
    (1, "how does an index speed up database queries"),
    (1, "why do threads not make python code faster"),
    (2, "what causes coral bleaching"),
    (2, "how do glaciers affect river flow"),
)

#: Calibration queries for int8: other wordings, other questions.
_CALIBRATION_QUERIES: tuple[str, ...] = (
    "calcium intake and bone health",
    "side effects of cholesterol drugs",
    "when should a cache entry expire",
    "how git merges branches",
    "effects of carbon dioxide on the ocean",
    "how farming changes soil carbon",
    "sleep and the immune response",
    "grid storage for renewable energy",
)


#: The probe's queries; each is scored against all 24 built-in passages.
PROBE_QUERIES: tuple[str, ...] = tuple(q for _, q in _PROBE_QUERIES)


def _passages() -> list[str]:
    return [p for domain in _PASSAGES for p in domain]


def probe_cases() -> list[tuple[str, list[str]]]:
    """The agreement cases: each probe query with all 24 built-in passages."""
    passages = _passages()
    return [(query, list(passages)) for query in PROBE_QUERIES]


def timing_case() -> tuple[str, list[str]]:
    """The timing case: one query and 16 texts of three passages each (about 220 tokens)."""
    passages = _passages()
    n = len(passages)
    texts = [" ".join(passages[(i + k * 7) % n] for k in range(3)) for i in range(16)]
    return _PROBE_QUERIES[0][1], texts


def calibration_pairs() -> list[tuple[str, str]]:
    """The built-in int8 calibration sample: 48 (query, text) pairs.

    Each of eight calibration queries (other wordings than the probe's) is paired with six
    texts of one to six passages joined, so that the pairs span about 60 to 450 tokens and
    both related and unrelated texts.
    """
    passages = _passages()
    n = len(passages)
    pairs = []
    for qi, query in enumerate(_CALIBRATION_QUERIES):
        for width in range(1, 7):
            start = (qi * 5 + width * 7) % n
            pairs.append((query, " ".join(passages[(start + k) % n] for k in range(width))))
    return pairs


# ---------------------------------------------------------------------- machine and key


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
    return model, flags


def cpu_flags() -> dict[str, bool]:
    """Whether this CPU has each of :data:`RELEVANT_FLAGS` (all False where unknown)."""
    _, flags = _cpuinfo()
    return {flag: flag in flags for flag in RELEVANT_FLAGS}


def cpu_summary() -> str:
    """One line: the CPU's model name, core count and which relevant flags it has."""
    model, _ = _cpuinfo()
    have = [f for f, ok in cpu_flags().items() if ok] or ["none of " + ", ".join(RELEVANT_FLAGS)]
    return f"{model}; {os.cpu_count()} cores; flags: {' '.join(have)}"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def decision_key(fingerprint: str, device: str) -> str:
    """The decision cache's key for a model (its content hash) on ``device`` here."""
    from crossrank._version import __version__

    model, _ = _cpuinfo()
    parts = {
        "probe": _PROBE_VERSION,
        "model": fingerprint,
        "device": device,
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": cpu_flags(),
        "python": platform.python_version(),
        "crossrank": __version__,
        **{
            name: _version(name)
            for name in ("torch", "transformers", "onnxruntime", "onnx", "openvino", "nncf")
        },
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def candidate_backends(device: str) -> list[str]:
    """The backends ``auto`` may pick on ``device`` here (``"cpu"``, ``"cuda"``...).

    On a CPU: ``torch``; ``torch-bf16`` where the CPU computes bf16 natively; ``onnx`` with
    the ``onnx`` extra; ``openvino`` and ``openvino-int8`` with the ``openvino`` extra,
    ``openvino-bf16`` where OpenVINO computes bf16 natively. ``onnx-int8`` (dynamic
    quantization) is never a candidate: it lost 0.036 NDCG@10 on SciFact, beyond the
    accuracy guard, and the probe's small sample cannot see that. On CUDA: ``torch``,
    ``torch-fp16`` and ``torch-bf16``; elsewhere only ``torch``.
    """
    from crossrank.backends import cpu_has_native_bf16, onnx_available
    from crossrank.openvino_export import openvino_available, openvino_supports_bf16

    kind = device.split(":", 1)[0]
    if kind == "cuda":
        return ["torch", "torch-fp16", "torch-bf16"]
    if kind != "cpu":
        return ["torch"]
    found = ["torch"]
    if cpu_has_native_bf16():
        found.append("torch-bf16")
    if onnx_available():
        found.append("onnx")
    if openvino_available("openvino"):
        found.append("openvino")
        if openvino_supports_bf16():
            found.append("openvino-bf16")
        if openvino_available("openvino-int8"):
            found.append("openvino-int8")
    return found


def backend_from_env() -> str | None:
    """The backend named by ``CROSSRANK_BACKEND``, or None when it is unset or empty.

    Raises:
        ValueError: It names no backend.
    """
    from crossrank.backends import BACKENDS

    value = os.environ.get(ENV_BACKEND, "").strip()
    if not value:
        return None
    if value not in BACKENDS:
        raise ValueError(
            f"the environment variable {ENV_BACKEND} must name a backend, one of {BACKENDS}, "
            f"got {value!r}; unset it to let backend='auto' measure this machine"
        )
    return value


# ---------------------------------------------------------------------- agreement


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties getting their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _ndcg10_against(reference: np.ndarray, scores: np.ndarray) -> float:
    """NDCG@10 of ``scores``' order, with ``reference``'s order as graded truth."""
    grade = np.zeros(len(reference))
    top = np.argsort(-reference, kind="stable")[:10]
    grade[top] = np.arange(10, 10 - len(top), -1)
    discount = 1.0 / np.log2(np.arange(2, 12))
    ideal = float(np.sum(np.sort(grade)[::-1][:10] * discount[: min(10, len(grade))]))
    got_order = np.argsort(-scores, kind="stable")[:10]
    got = float(np.sum(grade[got_order] * discount[: len(got_order)]))
    return got / ideal if ideal > 0 else 1.0


def agreement(reference: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> dict[str, Any]:
    """How well ``scores`` keep ``reference``'s top, one array of scores per query.

    Returns:
        ``top10_overlap_min`` and ``top10_overlap_mean`` (how many of the reference's top
        10 are in the scores' top 10), ``ndcg10`` (mean NDCG@10 with the reference's order
        as graded truth), ``spearman`` (mean over queries; reported, not gating),
        ``max_abs_diff`` and ``passed`` (the thresholds :data:`MIN_TOP10_OVERLAP` and
        :data:`MIN_NDCG10`, and finite scores).
    """
    overlaps, ndcgs, rhos, diffs = [], [], [], []
    finite = True
    for ref, got in zip(reference, scores, strict=True):
        ref, got = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
        finite = finite and bool(np.all(np.isfinite(got)))
        k = min(10, len(ref))
        top_ref = set(np.argsort(-ref, kind="stable")[:k].tolist())
        top_got = set(np.argsort(-got, kind="stable")[:k].tolist())
        overlaps.append(len(top_ref & top_got) + (10 - k))
        ndcgs.append(_ndcg10_against(ref, got))
        rho = _spearman(ref, got)
        if rho is not None:
            rhos.append(rho)
        diffs.append(float(np.max(np.abs(ref - got))) if finite else math.inf)
    ndcg = float(np.mean(ndcgs)) if finite else 0.0
    return {
        "top10_overlap_min": int(min(overlaps)),
        "top10_overlap_mean": float(np.mean(overlaps)),
        "ndcg10": ndcg,
        "spearman": float(np.mean(rhos)) if rhos else None,
        "max_abs_diff": float(max(diffs)),
        "passed": finite and min(overlaps) >= MIN_TOP10_OVERLAP and ndcg >= MIN_NDCG10,
    }


# ---------------------------------------------------------------------- the probe


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
    """

    backend: str
    key: str
    trials: tuple[Trial, ...] = ()
    probe_seconds: float = 0.0
    cpu: str = ""
    source: str = "probe"

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
        )

    def summary(self) -> str:
        """One line per backend: time, agreement, verdict."""
        lines = [f"auto -> {self.backend} ({self.source}; {self.cpu})"]
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


def encode_batches(
    tokenizer: Any,
    query: str,
    texts: Sequence[str],
    *,
    max_length: int,
    input_names: Sequence[str],
    batch_size: int = 32,
) -> list[dict[str, np.ndarray]]:
    """(query, text) pairs as padded int64 batches in input order, truncated on the text
    side."""
    batches = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        enc = tokenizer(
            [query] * len(chunk),
            chunk,
            padding=True,
            truncation="only_second",
            max_length=max_length,
            return_tensors="np",
        )
        batches.append({name: enc[name].astype(np.int64) for name in input_names})
    return batches


def planned_batches(
    tokenizer: Any,
    query: str,
    texts: Sequence[str],
    *,
    max_length: int,
    input_names: Sequence[str],
    batch_size: int = 32,
    parallel: int = 1,
) -> list[Planned]:
    """(query, text) pairs planned and padded as the scorer plans them (longest first, at
    least ``parallel`` batches), each batch with the input positions it holds."""
    from crossrank.batching import pad_batch, plan_batches

    enc = tokenizer(
        [query] * len(texts),
        list(texts),
        truncation="only_second",
        max_length=max_length,
        padding=False,
    )
    rows = {name: enc[name] for name in input_names}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    left = getattr(tokenizer, "padding_side", "right") == "left"
    lengths = [len(r) for r in rows["input_ids"]]
    return [
        Planned(
            batch,
            pad_batch({k: [v[i] for i in batch] for k, v in rows.items()}, pad_id, left=left),
        )
        for batch in plan_batches(lengths, batch_size, min_batches=parallel)
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
        from crossrank.batching import run_batches

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
    tokenizer: Any,
    max_length: int,
    input_names: Sequence[str],
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
            (:class:`crossrank.openvino_export.StreamForward`); ``build("torch")`` is the
            fp32 reference. It may raise, and that backend then fails.
        candidates: Backends to try; ``"torch"`` is added first if missing.
        tokenizer: The model's tokenizer.
        max_length: Tokens per pair.
        input_names: The tensors the forward functions read.
        key: The decision's cache key (stored in the decision).
        clock: The timer (tests pass a fake one).

    Returns:
        The :class:`Decision` (``source="probe"``), its trials in candidate order.
    """
    started = time.perf_counter()
    order = ["torch", *[c for c in candidates if c != "torch"]]
    query, texts = timing_case()

    def encode(q: str, t: Sequence[str], parallel: int) -> list[Planned]:
        return planned_batches(
            tokenizer, q, t, max_length=max_length, input_names=input_names, parallel=parallel
        )

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
    cases = probe_cases()

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
    )


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


# ---------------------------------------------------------------------- the cache


def _decision_path(key: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    from crossrank.onnx_export import cache_root

    return cache_root(cache_dir) / "auto" / f"{key}.json"


def _read_decision(path: Path) -> Decision | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Decision.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or unreadable: probe again (the new file replaces it)


def _write_decision(path: Path, decision: Decision) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(decision.to_json(), f, indent=2)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (POSIX ``flock``) so one process probes at a time;
    where there is no ``fcntl`` the writes stay atomic and both processes probe."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def resolve_auto(
    fingerprint: str,
    device: str,
    probe: Callable[[list[str], str], Decision],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    candidates: Sequence[str] | None = None,
) -> Decision:
    """What ``auto`` means for this model here: from ``CROSSRANK_BACKEND``, the cache, or a
    probe whose decision is then cached.

    Args:
        fingerprint: The model's content hash
            (:func:`crossrank.onnx_export.model_fingerprint`).
        device: The device the model runs on (``"cpu"``, ``"cuda:0"``...).
        probe: Runs the probe on (candidates, key), e.g. :func:`run_probe` bound to the
            loaded model.
        cache_dir: The cache folder (see :func:`crossrank.onnx_export.cache_root`); the
            decisions live in its ``auto/`` folder.
        candidates: Backends to consider (default: :func:`candidate_backends`).

    Returns:
        The :class:`Decision`; it is logged at INFO when probed, at DEBUG when read.
    """
    named = backend_from_env()
    if named is not None and named != "auto":
        return Decision(backend=named, key="", cpu=cpu_summary(), source="env")
    key = decision_key(fingerprint, device)
    path = _decision_path(key, cache_dir)
    cached = _read_decision(path)
    if cached is None:
        with _exclusive(path.with_suffix(".lock")):
            cached = _read_decision(path)  # another process may have probed meanwhile
            if cached is None:
                found = list(candidates) if candidates is not None else candidate_backends(device)
                decision = probe(found, key)
                _write_decision(path, decision)
                logger.info(
                    "crossrank: auto probe chose %s in %.1f s\n%s",
                    decision.backend,
                    decision.probe_seconds,
                    decision.summary(),
                )
                return decision
    logger.debug("crossrank: auto -> %s (cached decision %s)", cached.backend, path)
    return cached
