"""``crossrank bench``: time reranking N candidates for one query with every backend
crossrank offers and with sentence-transformers' ``CrossEncoder.predict`` (the engine under
most peer rerankers), in one process.

Method (see ``docs/evaluation.md``):

- **Timing**, in this process: every variant is loaded and warmed up (one untimed call on
  the same candidates), then the variants take turns, one call each per repeat, the
  starting variant rotating between repeats (so none is always first). Median and p95 of
  the per-call seconds; ``ratio_vs_sentence_transformers`` is the reference's median over
  the variant's (> 1 means faster than sentence-transformers).
- **Cold start and peak memory**, one fresh child process per variant, run one after
  another before the timing: from before ``import`` to a loaded model (``cold_start_s``),
  the first call on the candidates (``first_score_s``) and the child's peak resident set
  size (``getrusage(RUSAGE_SELF).ru_maxrss``).
- **Peer variants** (sentence-transformers ``onnx`` and ``openvino``, whose optimum needs
  an older transformers) can run in another environment's Python (``--peer-python``): a
  :class:`PeerWorker` there (``peer_worker.py``, run by path) is their fresh process for
  the cold start and then takes its turns in the interleaved timing, each call timed
  inside the worker.

Variants are registered in :data:`VARIANTS` (name -> :class:`Variant`): the built-in ones
(:data:`crossrank.eval.bench_variants.BUILTIN_VARIANTS`) when this module is imported;
another one is added with :func:`register_variant`, and every bench then includes it.

:mod:`crossrank.eval.bench_report` prints the report as a table, and
:mod:`crossrank.eval.bench_cli` holds the command's flags and calls this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossrank.eval.bench_peer import (
    PEER_PYTHON_ENV,
    PeerScorer,
    PeerWorker,
    PeerWorkerError,
    resolve_peer_python,
)
from crossrank.eval.bench_texts import SYNTHETIC_QUERY, corpus_texts, synthetic_texts, token_count
from crossrank.eval.bench_variants import (
    BUILTIN_VARIANTS,
    REFERENCE,
    BenchConfig,
    ScorerLike,
    Variant,
)
from crossrank.eval.progress import progress_bar, quiet_truncation_warnings
from crossrank.eval.report import machine_info
from crossrank.runtimes.cpu import cpu_flags, cpu_summary

__all__ = [
    "PEER_PYTHON_ENV",
    "REFERENCE",
    "VARIANTS",
    "BenchConfig",
    "PeerWorker",
    "PeerWorkerError",
    "ScorerLike",
    "Variant",
    "benchmark",
    "padding_waste",
    "register_variant",
    "resolve_peer_python",
    "synthetic_texts",
]

#: Every variant the bench times, in table order (the reference last).
VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> None:
    """Add a variant to :data:`VARIANTS` (before the reference); its name must be new."""
    if variant.name in VARIANTS:
        raise ValueError(f"a bench variant named {variant.name!r} is already registered")
    reference = VARIANTS.pop(REFERENCE, None)
    VARIANTS[variant.name] = variant
    if reference is not None:
        VARIANTS[REFERENCE] = reference


for _variant in BUILTIN_VARIANTS:
    register_variant(_variant)


# ---------------------------------------------------------------------- measuring


def _stats(seconds: Sequence[float], pairs: int) -> dict[str, Any]:
    arr = np.asarray(seconds, dtype=np.float64)
    median = float(np.median(arr))
    return {
        "median_s": median,
        "p95_s": float(np.percentile(arr, 95)),
        "mean_s": float(arr.mean()),
        "min_s": float(arr.min()),
        "pairs_per_second": pairs / median if median > 0 else None,
        "times_s": [float(s) for s in arr],
    }


_CHILD_CODE = (
    "import time; _t0 = time.perf_counter()\n"
    "import sys\n"
    "from crossrank.eval.bench import _child_main\n"
    "_child_main(_t0, sys.argv[1])\n"
)
_CHILD_MARK = "CROSSRANK_BENCH_CHILD "


def _child_main(t0: float, job_path: str) -> None:
    """In a fresh process: load one variant, score once, print cold start and peak RSS."""
    import resource

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    config = BenchConfig(**job["config"])
    scorer = VARIANTS[job["variant"]].factory(config)
    loaded = time.perf_counter()
    with quiet_truncation_warnings():
        scorer.score(job["query"], job["texts"])
    done = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB
    result = {
        "cold_start_s": loaded - t0,
        "first_score_s": done - loaded,
        "peak_rss_mb": rss_bytes / 2**20,
    }
    print(_CHILD_MARK + json.dumps(result), flush=True)


def _measure_in_child(
    variant: str, config: BenchConfig, query: str, texts: list[str], folder: Path
) -> dict[str, Any]:
    job = folder / f"{variant}.json"
    job.write_text(
        json.dumps({"variant": variant, "config": vars(config), "query": query, "texts": texts}),
        encoding="utf-8",
    )
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD_CODE, str(job)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_CHILD_MARK):
            result: dict[str, Any] = json.loads(line[len(_CHILD_MARK) :])
            return result
    raise RuntimeError(
        f"the cold-start/memory child process for {variant!r} failed "
        f"(exit code {proc.returncode}):\n{proc.stderr[-2000:]}"
    )


def _peer_unavailable(config: BenchConfig) -> str | None:
    if not str(config.device).startswith("cpu"):
        return "the sentence-transformers peer variants are timed on the CPU"
    return None


def _measure(
    names: list[str],
    config: BenchConfig,
    query: str,
    texts: list[str],
    repeats: int,
    progress: bool,
    peer: tuple[str, float] | None,
    workers: dict[str, PeerWorker],
    skip: Callable[[str, str], None],
) -> tuple[dict[str, dict[str, Any]], dict[str, list[float]], dict[str, list[float]], Any]:
    """Cold start of every variant, then the interleaved timing. With ``peer`` (its python
    and timeout), the variants with a ``peer_backend`` start a :class:`PeerWorker` each,
    which ``workers`` receives (the caller closes them); one that fails to load is passed
    to ``skip`` with the reason and left out."""
    # Cold start and peak RSS, one fresh process per variant, before any timing. The
    # children get an empty export cache, so their cold start includes the first export
    # (and for auto, the probe); auto then starts once more on the filled cache. A peer
    # variant's fresh process is its worker, which stays up for the timing.
    cold: dict[str, dict[str, Any]] = {}
    bar = progress_bar(len(names), "cold start", enabled=progress)
    with tempfile.TemporaryDirectory(prefix="crossrank-bench-") as tmp, bar:
        cold_config = BenchConfig(
            model=config.model,
            batch_size=config.batch_size,
            device=config.device,
            onnx_cache_dir=f"{tmp}/onnx",
        )
        for name in names:
            backend = VARIANTS[name].peer_backend
            if peer is not None and backend is not None:
                worker = workers[name] = PeerWorker(peer[0], name, timeout_s=peer[1])
                try:
                    cold[name] = worker.load(
                        config.model, backend, batch_size=config.batch_size,
                        device=config.device, query=query, texts=texts,
                    )  # fmt: skip
                except PeerWorkerError as e:
                    worker.close()
                    del workers[name]
                    skip(name, f"failed in the peer environment: {e}")
            else:
                cold[name] = _measure_in_child(name, cold_config, query, texts, Path(tmp))
            if name == "crossrank-auto":
                again = _measure_in_child(name, cold_config, query, texts, Path(tmp))
                cold[name]["second_start_s"] = again["cold_start_s"]
                # Its peak RSS without the probe (which holds every candidate backend).
                cold[name]["second_peak_rss_mb"] = again["peak_rss_mb"]
            bar.update(1)
    names = [n for n in names if n in cold]

    # Interleaved timing in this process, after an untimed warm-up call per variant. A peer
    # variant's call is timed by its worker (``last_seconds``: predict, not the pipe).
    scorers: dict[str, ScorerLike] = {
        name: PeerScorer(workers[name]) if name in workers else VARIANTS[name].factory(config)
        for name in names
    }
    seconds: dict[str, list[float]] = {name: [] for name in names}
    scores: dict[str, list[float]] = {}
    bar = progress_bar(repeats * len(names), "timing", enabled=progress)
    with quiet_truncation_warnings(), bar:
        for name in names:
            scores[name] = [float(s) for s in scorers[name].score(query, texts)]
        for r in range(repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                t = time.perf_counter()
                scorers[name].score(query, texts)
                elapsed = time.perf_counter() - t
                own = getattr(scorers[name], "last_seconds", None)
                seconds[name].append(elapsed if own is None else own)
                bar.update(1)
    auto = scorers.get("crossrank-auto")
    decision = getattr(auto._model(), "decision", None) if auto is not None else None  # type: ignore[attr-defined]
    del scorers
    return cold, seconds, scores, decision


def benchmark(
    model: str | None = None,
    *,
    candidates: int = 100,
    doc_tokens: int = 256,
    repeats: int = 10,
    data: str | os.PathLike[str] | None = None,
    split: str = "test",
    batch_size: int = 32,
    device: str = "cpu",
    variants: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    peer_python: str | os.PathLike[str] | None = None,
    peer_timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Time reranking ``candidates`` texts for one query with every variant.

    Example:
        >>> from crossrank.eval.bench import benchmark
        >>> from crossrank.eval.bench_report import format_bench_table
        >>> print(format_bench_table(benchmark("cross-encoder/ms-marco-MiniLM-L6-v2")))

    Args:
        model: Cross-encoder id or folder (default: ``CROSSRANK_MODEL``, else the core's).
        candidates: Texts scored per call.
        doc_tokens: Tokens per text (synthetic texts have exactly this many; corpus texts
            are cut to it).
        repeats: Timed calls per variant.
        data: A BEIR folder to take the query and texts from instead of synthetic text.
        split: The qrels split whose first query (by id) is used with ``data``.
        batch_size: Pairs per forward pass, for every variant.
        device: Torch device for every variant.
        variants: Names from :data:`VARIANTS` to time (default: all); the reference is
            always included.
        seed: Seed of the synthetic text.
        progress: Show a progress bar on stderr.
        peer_python: Another environment's Python interpreter (default:
            ``$CROSSRANK_BENCH_PEER_PYTHON``) in which the variants with a ``peer_backend``
            (sentence-transformers' ``onnx`` and ``openvino``) run, each in a
            :class:`PeerWorker`: its cold start is the worker's, and its timed calls, in the
            same interleaved loop, are the seconds the worker spent in ``predict``.
        peer_timeout_s: Seconds to wait for each answer of a peer worker (a load includes
            the export).

    Returns:
        The report: ``settings``, ``machine``, ``input``, ``reference`` and ``variants``
        (one entry each, see ``docs/evaluation.md``).

    Raises:
        ValueError: On bad settings, an unknown variant, a ``peer_python`` that is not an
            executable file, a variant asked for that cannot run here (a peer one whose
            worker fails to load too), or texts that would not fit the model's
            ``max_length`` beside the query.
        PeerWorkerError: A peer worker failed or did not answer in time while timed.
    """
    from transformers import AutoTokenizer

    from crossrank.scorer import DEFAULT_MODEL, CrossEncoderScorer

    for name, value in (
        ("candidates", candidates),
        ("doc_tokens", doc_tokens),
        ("repeats", repeats),
        ("batch_size", batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not peer_timeout_s > 0:
        raise ValueError(f"peer_timeout_s must be > 0, got {peer_timeout_s!r}")
    peer = resolve_peer_python(peer_python)
    names = list(VARIANTS) if not variants else list(dict.fromkeys([*variants, REFERENCE]))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown bench variant(s) {unknown}; known: {list(VARIANTS)}")
    model = model or os.environ.get("CROSSRANK_MODEL") or DEFAULT_MODEL
    config = BenchConfig(model=model, batch_size=batch_size, device=device)
    skipped: dict[str, str] = {}

    def in_peer(name: str) -> bool:
        return peer is not None and VARIANTS[name].peer_backend is not None

    def skip(name: str, reason: str) -> None:
        if variants and name in variants:
            raise ValueError(f"bench variant {name!r} cannot run here: {reason}")
        skipped[name] = reason

    for name in names:
        check = _peer_unavailable if in_peer(name) else VARIANTS[name].unavailable
        reason = None if check is None else check(config)
        if reason is not None:
            skip(name, reason)
    names = [n for n in names if n not in skipped]

    # The model's pair limit, through the core (its errors name the model and what to do).
    probe = CrossEncoderScorer(model, device="cpu", backend="torch")  # no auto probe here
    limit = probe.max_length
    del probe
    tokenizer = AutoTokenizer.from_pretrained(model)
    if data is None:
        query = SYNTHETIC_QUERY
        texts = synthetic_texts(tokenizer, candidates, doc_tokens, seed=seed)
    else:
        query, texts = corpus_texts(data, split, tokenizer, candidates, doc_tokens)
    query_tokens = token_count(tokenizer, query)
    special = int(tokenizer.num_special_tokens_to_add(pair=True))
    lengths = [token_count(tokenizer, t) for t in texts]
    if query_tokens + max(lengths) + special > limit:
        raise ValueError(
            f"doc_tokens must leave the pair within the model's {limit} tokens: the query has "
            f"{query_tokens} tokens and there are {special} special tokens, so use "
            f"--doc-tokens <= {limit - query_tokens - special}, got {doc_tokens}"
        )
    # Peer workers (another environment) live until the timing is done, whatever happens.
    workers: dict[str, PeerWorker] = {}
    try:
        cold, seconds, scores, decision = _measure(
            names, config, query, texts, repeats, progress,
            None if peer is None else (peer, peer_timeout_s), workers, skip,
        )  # fmt: skip
    finally:
        for worker in workers.values():
            worker.close()
    names = [n for n in names if n not in skipped]
    peers = {
        name: {"python": peer, "versions": worker.versions} for name, worker in workers.items()
    }

    rows = []
    reference = _stats(seconds[REFERENCE], len(texts))
    ref_scores = np.asarray(scores[REFERENCE], dtype=np.float64)
    # sentence-transformers' predict applies sigmoid to one-logit models, as the core does.
    for name in names:
        stats = _stats(seconds[name], len(texts))
        mine = np.asarray(scores[name], dtype=np.float64)
        diff = float(np.max(np.abs(mine - ref_scores)))
        rows.append(
            {
                "name": name,
                "description": VARIANTS[name].description,
                **stats,
                "ratio_vs_sentence_transformers": reference["median_s"] / stats["median_s"],
                **cold[name],
                **({"peer": peers[name]} if name in peers else {}),
                "max_abs_score_diff_vs_reference": diff,
                "spearman_vs_reference": _spearman(mine, ref_scores),
                "top10_overlap_vs_reference": len(
                    set(np.argsort(-mine, kind="stable")[:10].tolist())
                    & set(np.argsort(-ref_scores, kind="stable")[:10].tolist())
                ),
            }
        )
    return {
        "command": "bench",
        "settings": {
            "model": model,
            "candidates": candidates,
            "doc_tokens": doc_tokens,
            "repeats": repeats,
            "batch_size": batch_size,
            "device": device,
            "data": None if data is None else str(data),
            "split": split if data is not None else None,
            "seed": seed,
            "peer_python": peer,
        },
        "machine": {**machine_info(device), "cpu": cpu_summary(), "cpu_flags": cpu_flags()},
        "auto": None if decision is None else decision.to_json() | {"source": decision.source},
        "input": {
            "source": "synthetic" if data is None else "corpus",
            "query": query,
            "query_tokens": query_tokens,
            "num_texts": len(texts),
            "text_tokens_min": min(lengths),
            "text_tokens_mean": sum(lengths) / len(lengths),
            "text_tokens_max": max(lengths),
            "model_max_length": limit,
            **padding_waste(
                [query_tokens + n + special for n in lengths], batch_size, max_tokens=None
            ),
        },
        "reference": REFERENCE,
        "variants": rows,
        "skipped": skipped,
    }


def padding_waste(
    pair_lengths: Sequence[int], batch_size: int, *, max_tokens: int | None = None
) -> dict[str, float]:
    """The share of padded token positions that are padding, for the core's length-sorted
    batches (:func:`crossrank.batching.plan_batches`) and for batches in input order (what
    an engine that does not sort pads)."""
    from crossrank.batching import plan_batches

    def waste(batches: list[list[int]]) -> float:
        padded = sum(len(b) * max(pair_lengths[i] for i in b) for b in batches)
        return 1.0 - sum(pair_lengths) / padded if padded else 0.0

    n = len(pair_lengths)
    in_order = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    return {
        "padding_waste_sorted": waste(plan_batches(pair_lengths, batch_size, max_tokens)),
        "padding_waste_input_order": waste(in_order),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation (average ranks for ties); None when undefined."""
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(spearmanr(a, b).statistic)
