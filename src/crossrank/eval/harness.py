"""``crossrank eval``'s work: rerank a first stage with one or more cross-encoders and
measure quality (nDCG@10, MRR@10, Recall@10, Recall@K) and latency, beside the first stage
itself, with :func:`evaluate_models`.

:mod:`crossrank.eval.harness_report` prints the report as a table
(:func:`~crossrank.eval.harness_report.format_eval_table`), and
:mod:`crossrank.eval.harness_cli` holds the command's flags and calls this module.

How latency is measured (see ``docs/evaluation.md``): for each model, every query's top
``max(K)`` candidates are scored once, one timed ``score`` call per query; that gives the
scores for every K (a document's score does not depend on the other candidates, so the
ranking at a smaller K is the order of the first K first-stage candidates by that score)
and the latency at ``max(K)``. For each smaller K the call on exactly K candidates is timed
again on the first ``latency_queries`` queries.

With ``fusion`` each model also gets a fused row per K (:mod:`crossrank.eval.fused_rows`):
its cached logits mixed with the first stage's scores (:mod:`crossrank.fusion`), at a given
weight, or at weights chosen honestly by :mod:`crossrank.eval.tuning` (k-fold
cross-validation over the evaluated queries, or another split).
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crossrank.eval import tuning
from crossrank.eval.choice import mark_within_budget
from crossrank.eval.data import Dataset, load_beir
from crossrank.eval.ensemble_rows import ensemble_cv_rows
from crossrank.eval.first_stage import dense_model, first_stage_run
from crossrank.eval.fused_rows import FusionPlan, tune_set
from crossrank.eval.latency import latency_stats
from crossrank.eval.metrics import CUTOFF, ranked_ids, row_metrics
from crossrank.eval.progress import progress_bar, quiet_truncation_warnings
from crossrank.eval.report import machine_info
from crossrank.eval.system_rows import run_systems
from crossrank.eval.systems import System, paid_calls_notice
from crossrank.runtimes.cpu import cpu_flags, cpu_summary

__all__ = [
    "CUTOFF",
    "DEFAULT_KS",
    "DEFAULT_LATENCY_QUERIES",
    "check_scorer_options",
    "evaluate_models",
    "parse_ks",
]

#: Candidate counts evaluated when ``--candidates`` is not given.
DEFAULT_KS: tuple[int, ...] = (20, 50, 100)
#: Queries on which each K below the largest is timed, when not given.
DEFAULT_LATENCY_QUERIES = 20
_DOCUMENT_TEXT = "title + '. ' + text (just text when there is no title)"


def parse_ks(value: str | Sequence[int]) -> list[int]:
    """Parse ``"20,50,100"`` (or a list of ints) into sorted, distinct candidate counts.

    Raises:
        ValueError: If a value is not an integer >= 1, or there is none.
    """
    items: list[Any] = value.split(",") if isinstance(value, str) else list(value)
    ks: set[int] = set()
    for item in items:
        text = str(item).strip()
        if not text.isdigit() or int(text) < 1:
            raise ValueError(
                f"ks must be candidate counts, integers >= 1 (a list, or a comma-separated "
                f"string), got {value!r}"
            )
        ks.add(int(text))
    if not ks:
        raise ValueError(f"ks must name at least one candidate count, got {value!r}")
    return sorted(ks)


def model_labels(models: Sequence[str]) -> list[str]:
    """Short display names: a local folder's name, else the id; full strings if that clashes."""
    short = [Path(m).name if Path(m).expanduser().exists() else m for m in models]
    return short if len(set(short)) == len(short) else list(models)


def evaluate_models(
    data: str | os.PathLike[str],
    models: Sequence[str] | None = None,
    *,
    first_stage: str = "bm25",
    ks: Sequence[int] | str = DEFAULT_KS,
    split: str = "test",
    qrels: str | os.PathLike[str] | None = None,
    run: str | os.PathLike[str] | None = None,
    limit_queries: int | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    device: str | None = None,
    backends: Sequence[str] | None = None,
    latency_queries: int = DEFAULT_LATENCY_QUERIES,
    long_documents: str = "truncate",
    aggregation: str = "max",
    max_windows: int = 8,
    progress: bool = True,
    scorer_options: Mapping[str, Any] | None = None,
    fusion: str | None = None,
    fusion_weight: float | None = None,
    fusion_normalization: str = "zscore",
    tune_fusion: bool = False,
    tune_split: str | None = None,
    folds: int = tuning.DEFAULT_FOLDS,
    engine: str = "local",
    engine_options: Mapping[str, Any] | None = None,
    systems: Sequence[System] = (),
    deadlines: Sequence[float] = (),
    prices: Mapping[str, tuple[str, float]] | None = None,
    latency_budget_ms: float | None = None,
    tune_ensemble: bool = False,
    confirm: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a first stage and each model reranking its top K, for every K.

    Example:
        >>> from crossrank.eval.harness import evaluate_models
        >>> from crossrank.eval.harness_report import format_eval_table
        >>> report = evaluate_models("scifact/", ["cross-encoder/ms-marco-MiniLM-L6-v2"], ks=[50])
        >>> print(format_eval_table(report))

    Args:
        data: A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
        models: Cross-encoders to compare (ids or folders). Default: ``CROSSRANK_MODEL``,
            else the core's default model.
        first_stage: ``"bm25"`` or ``"dense:MODEL"`` (a sentence-transformers bi-encoder).
            Ignored when ``run`` is given.
        ks: Candidate counts to rerank, e.g. ``[20, 50, 100]`` or ``"20,50,100"``.
        split: The qrels split of the BEIR folder.
        qrels: Read judgments from this file (BEIR TSV or TREC) instead of the split's.
        run: A TREC run file (``qid Q0 docid rank score tag``) to rerank instead of
            retrieving; its documents must be in the corpus.
        limit_queries: Evaluate only the first N judged queries (by sorted query id).
        batch_size: Pairs per forward pass.
        max_length: Tokens per pair the models read (default: each model's limit).
        device: ``"cpu"``, ``"cuda"`` ... (default: CUDA when available, else CPU).
        backends: Inference backends to compare for each model (see
            :mod:`crossrank.runtimes.backends`; default ``["torch"]``, fp32). With more than one,
            each row's system label names its backend.
        latency_queries: Queries on which the rerank call is timed for each K below the
            largest (the largest is timed on every query).
        long_documents: ``"truncate"`` or ``"chunk"`` (see docs/long-documents.md); in chunk
            mode ``truncated_fraction`` is the fraction of documents with more than
            ``max_windows`` windows, and ``pairs_per_document`` the windows scored.
        aggregation: Chunk mode's window aggregation.
        max_windows: Chunk mode's cap on windows per document.
        progress: Show a progress bar on stderr.
        scorer_options: Further :class:`crossrank.CrossEncoderScorer` keyword arguments
            for every model (``window_stride``, ``model_kwargs``, ``revision`` ...); not
            the ones set above.
        fusion: ``"linear"`` or ``"rrf"``: also report each model fused with the first
            stage (:mod:`crossrank.fusion`), from the same cached scores.
        fusion_weight: The cross-encoder's share (default 0.5); not with tuning.
        fusion_normalization: ``"zscore"`` or ``"minmax"`` (``"linear"`` only).
        tune_fusion: Choose the weight by ``folds``-fold cross-validation over the
            evaluated queries: each query is scored with a weight chosen on the other
            folds (:mod:`crossrank.eval.tuning`). Implies ``fusion="linear"`` if unset.
        tune_split: Choose the weight on this split's judged queries instead (they must
            not be evaluated ones); implies ``tune_fusion``.
        folds: Folds of the cross-validation.
        engine: ``"local"`` (default): score in this process, one timed call per query.
            ``"ray"``: score every query's candidates in one Ray Data run
            (:func:`crossrank.scale.score_runs`, ``pip install "crossrank[ray]"``); the
            scores are local scoring's, the rows get no per-query latency, and
            ``pairs_per_second`` is over the whole run.
        engine_options: With ``engine="ray"``: :func:`crossrank.scale.score_runs`'s
            ``concurrency``, ``num_cpus``, ``num_gpus``.
        systems: Further systems to compare on the same candidates (providers, ensembles,
            cascades, saved configs: :mod:`crossrank.eval.systems`), each run per K
            (:mod:`crossrank.eval.system_rows`). Local engine only.
        deadlines: Deadlines in ms: each model (its first backend) and each system but a
            hosted provider gets one more row per deadline.
        prices: A provider's ``(unit, usd)``: its rows' cost per 1,000 queries.
        latency_budget_ms: Mark the best system within this p95 latency, per K
            (:mod:`crossrank.eval.choice`).
        tune_ensemble: Also give each two-member ensemble of evaluated models a row with
            its weight cross-validated over ``folds`` (:mod:`crossrank.eval.ensemble_rows`).
        confirm: Called with what will be sent to hosted providers, before any request
            (when a system is one); it raises to stop.

    Returns:
        The report: ``settings``, ``machine``, ``timings`` and ``rows`` (one per first stage
        x K and per model x K; see ``docs/evaluation.md``). Pass it to
        :func:`crossrank.eval.harness_report.format_eval_table`,
        :func:`crossrank.eval.report.write_json` or :func:`crossrank.eval.plot.plot_tradeoff`.

    Raises:
        ValueError: On bad settings, or a run file naming documents not in the corpus.
        FileNotFoundError: When the data files are missing.
    """
    from crossrank.runtimes.backends import check_backend
    from crossrank.scorer import DEFAULT_MODEL, CrossEncoderScorer

    backend_list = [check_backend(b) for b in dict.fromkeys(backends or ["torch"])]
    extra = check_scorer_options(
        scorer_options,
        set_here=("model", "device", "batch_size", "max_length", "backend", "long_documents",
                  "aggregation", "max_windows", "fusion", "fusion_weight",
                  "fusion_normalization"),
    )
    fusion_plan = FusionPlan.checked(
        fusion, fusion_weight, fusion_normalization, tune_fusion, tune_split, folds, split
    )
    k_list = parse_ks(ks)
    max_k = k_list[-1]
    if limit_queries is not None and limit_queries < 1:
        raise ValueError(f"limit_queries must be >= 1 or None, got {limit_queries}")
    if latency_queries < 1:
        raise ValueError(f"latency_queries must be >= 1, got {latency_queries}")
    if run is None:
        dense_model(first_stage)  # fail before loading any data
    model_list = list(models or [])
    if not model_list and not systems:
        model_list = [os.environ.get("CROSSRANK_MODEL") or DEFAULT_MODEL]
    if engine != "local" and (systems or deadlines):
        raise ValueError("systems and deadlines are run with engine='local' only")

    dataset = load_beir(Path(data), split, qrels_path=None if qrels is None else Path(qrels))
    query_ids = [q for q in sorted(dataset.qrels) if any(r > 0 for r in dataset.qrels[q].values())]
    if limit_queries is not None:
        query_ids = query_ids[:limit_queries]
    if not query_ids:
        raise ValueError("no query has a relevant document in the qrels; nothing to evaluate")
    qrels_used = {q: dataset.qrels[q] for q in query_ids}
    tune_qrels, tune_queries = tune_set(data, fusion_plan, query_ids)
    if tune_qrels:
        dataset = Dataset(dataset.corpus, {**tune_queries, **dataset.queries}, dataset.qrels)

    started = time.perf_counter()
    fs_label, fs_scores = first_stage_run(
        dataset, [*query_ids, *tune_qrels], first_stage=first_stage, run_path=run, depth=max_k
    )
    first_stage_seconds = time.perf_counter() - started
    candidates = {q: ranked_ids(fs_scores[q])[:max_k] for q in fs_scores}
    texts = {q: [dataset.doc_text(d) for d in candidates[q]] for q in fs_scores}
    if tune_qrels and not any(texts[q] for q in tune_qrels):
        raise ValueError(
            f"no query of the tuning split {tune_split!r} has first-stage candidates (is it in "
            "the run file?); nothing to choose a fusion weight on"
        )

    # Asked before any model loads: the answer may be no.
    notice = paid_calls_notice(systems, len([q for q in query_ids if texts[q]]), k_list)
    if notice is not None and confirm is not None:
        confirm(notice)

    fs_rows: dict[int, dict[str, Any]] = {}
    for k in k_list:
        run_k = {q: {d: fs_scores[q][d] for d in candidates[q][:k]} for q in query_ids}
        fs_rows[k] = {
            "system": fs_label,
            "stage": "first_stage",
            "model": None,
            "backend": None,
            "k": k,
            **row_metrics(run_k, qrels_used, k),
            "latency_p50_ms": None,
            "latency_p95_ms": None,
            "pairs_per_second": None,
            "latency_queries": None,
            "truncated_fraction": None,
            "pairs_per_document": None,
        }

    models_run = [
        (model, label if len(backend_list) == 1 else f"{label} [{backend}]", backend)
        for model, label in zip(model_list, model_labels(model_list), strict=True)
        for backend in backend_list
    ]
    model_rows: dict[tuple[int, int], dict[str, Any]] = {}
    fused_rows: dict[tuple[int, int], dict[str, Any]] = {}
    load_seconds: dict[str, float] = {}
    model_scores: dict[str, dict[str, list[float]]] = {}  # first backend's logits, by model
    timed_models: list[System] = []  # each model again under each deadline
    scored = [q for q in query_ids if texts[q]]
    tune_scored = [q for q in tune_qrels if texts[q]]
    sample = scored[:latency_queries]
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    for m, (model, label, backend) in enumerate(models_run):
        options: dict[str, Any] = {
            "device": device,
            "batch_size": batch_size,
            "max_length": max_length,
            "backend": backend,
            "long_documents": long_documents,
            "aggregation": aggregation,
            "max_windows": max_windows,
            **extra,
        }
        scorer = CrossEncoderScorer(model, **options)
        if backend == backend_list[0]:
            timed_models += [
                System(label, "model", _builder(model, options), model=model).with_deadline(d)
                for d in deadlines
            ]
        t0 = time.perf_counter()
        on_ray: dict[str, Any] = {}
        if engine == "ray":  # every query in one Ray Data run; the actors load the model
            from crossrank.scale import score_runs

            on_ray = score_runs(
                {q: (dataset.queries[q], texts[q]) for q in scored},
                model=model,
                # logits, as the local engine scores them (fusion mixes logits)
                **{**options, "activation": "raw"},
                **(engine_options or {}),
            )
            load_seconds[label] = time.perf_counter() - t0  # loading and scoring
        else:
            scorer.warm_up()
            load_seconds[label] = time.perf_counter() - t0
        family = _family(scorer, engine)
        scores: dict[str, list[float]] = {}
        cut: dict[str, list[bool]] = {}
        windows: dict[str, list[int]] = {}
        seconds: dict[int, list[float]] = {k: [] for k in k_list}
        pairs: dict[int, int] = dict.fromkeys(k_list, 0)
        smaller = [k for k in k_list if k < max_k] if engine == "local" else []
        bar = progress_bar(
            len(scored) + len(sample) * len(smaller) + len(tune_scored),
            f"rerank {label}",
            enabled=progress,
        )
        with quiet_truncation_warnings(), bar:
            if scored and engine == "local":  # warm-up: one full batch, untimed
                q0 = scored[0]
                scorer.score(dataset.queries[q0], texts[q0][: min(batch_size, max_k)])
            for q in scored:
                t = time.perf_counter()
                if engine == "ray":
                    details = on_ray[q]
                else:
                    # Logits: the ranking is the activation's, and fusion mixes logits.
                    details = scorer.score_details(
                        dataset.queries[q], texts[q], activation="raw"
                    )
                    seconds[max_k].append(time.perf_counter() - t)
                pairs[max_k] += details.pairs
                scores[q] = details.scores
                cut[q] = details.truncated
                windows[q] = details.windows or [1] * len(details.scores)
                bar.update(1)
            for k in smaller:
                for q in sample:
                    t = time.perf_counter()
                    details = scorer.score_details(
                        dataset.queries[q], texts[q][:k], activation="raw"
                    )
                    seconds[k].append(time.perf_counter() - t)
                    pairs[k] += details.pairs
                    bar.update(1)
            for q in tune_scored:  # untimed: only the fusion weight is chosen on them
                details = scorer.score_details(dataset.queries[q], texts[q], activation="raw")
                scores[q] = details.scores
                bar.update(1)
        for k in k_list:
            run_k = {q: dict(zip(candidates[q][:k], scores[q][:k], strict=True)) for q in scored}
            n_pairs = sum(len(cut[q][:k]) for q in scored)
            n_cut = sum(sum(cut[q][:k]) for q in scored)
            model_rows[(k, m)] = {
                "system": label,
                "stage": "reranked",
                "model": model,
                "backend": scorer.active_backend if engine == "local" else scorer.backend,
                **family,
                "k": k,
                **row_metrics(run_k, qrels_used, k),
                **latency_stats(seconds[k], pairs[k]),
                "latency_queries": len(seconds[k]),
                "truncated_fraction": n_cut / n_pairs if n_pairs else 0.0,
                "pairs_per_document": (
                    sum(sum(windows[q][:k]) for q in scored) / n_pairs if n_pairs else 0.0
                ),
            }
            if engine == "ray" and k == max_k:  # the whole run, the actors' start included
                model_rows[(k, m)]["pairs_per_second"] = pairs[k] / load_seconds[label]
            if fusion_plan is not None:
                fused_rows[(k, m)] = fusion_plan.row(
                    model_rows[(k, m)], fs_label, candidates, scores, fs_scores, k,
                    qrels_used, tune_qrels,
                )
        model_scores.setdefault(model, scores)
        del scorer
        gc.collect()

    late = [s.with_deadline(d) for s in systems if not s.paid for d in deadlines]
    all_systems = [*systems, *timed_models, *late]
    system_rows, system_load = run_systems(
        all_systems, queries=dataset.queries, query_ids=query_ids, candidates=candidates,
        texts=texts, qrels=qrels_used, ks=k_list, prices=prices, progress=progress,
    )  # fmt: skip
    load_seconds.update(system_load)
    cv_rows, notes = ensemble_cv_rows(
        systems if tune_ensemble else [], model_scores, candidates=candidates,
        qrels=qrels_used, ks=k_list, timed=system_rows, folds=folds,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    for k in k_list:
        rows.append(fs_rows[k])
        for m in range(len(models_run)):
            rows.append(model_rows[(k, m)])
            if (k, m) in fused_rows:
                rows.append(fused_rows[(k, m)])
        rows += system_rows[k] + cv_rows[k]
    if latency_budget_ms is not None:
        mark_within_budget(rows, latency_budget_ms)
    return {
        "command": "eval",
        "settings": {
            "data": str(data),
            "split": split,
            "qrels": None if qrels is None else str(qrels),
            "run": None if run is None else str(run),
            "first_stage": fs_label,
            "models": model_list,
            "backends": backend_list,
            "ks": k_list,
            "cutoff": CUTOFF,
            "num_queries": len(query_ids),
            "limit_queries": limit_queries,
            "batch_size": batch_size,
            "max_length": max_length,
            "device": device,
            "latency_queries": latency_queries,
            "long_documents": long_documents,
            "aggregation": aggregation if long_documents == "chunk" else None,
            "max_windows": max_windows if long_documents == "chunk" else None,
            "scorer_options": json.loads(json.dumps(extra, default=str)),
            "engine": engine,
            "engine_options": dict(engine_options or {}),
            "document_text": _DOCUMENT_TEXT,
            "fusion": None if fusion_plan is None else fusion_plan.settings(),
            "systems": [s.label for s in systems],
            "deadlines_ms": list(deadlines),
            "prices": {name: list(price) for name, price in (prices or {}).items()},
            "latency_budget_ms": latency_budget_ms,
            "notes": notes,
        },
        "machine": {**machine_info(device), "cpu": cpu_summary(), "cpu_flags": cpu_flags()},
        "timings": {
            "first_stage_seconds": first_stage_seconds,
            "model_load_seconds": load_seconds,
        },
        "rows": rows,
    }


def _family(scorer: Any, engine: str) -> dict[str, str]:
    """What a model row says of the model's family: the loaded scorer's, or (Ray: the model
    loads in the actors) what its files say."""
    if engine == "local":
        return {"family": scorer.active_family, "family_detail": scorer.family_detail}
    from crossrank.loading import model_family

    family, found = model_family(scorer)
    return {"family": family, "family_detail": found}
def _builder(model: str, options: Mapping[str, Any]) -> Callable[[], Any]:
    """Builds the scorer of ``model`` with ``options`` (a deadline system's)."""
    from crossrank.scorer import CrossEncoderScorer

    return lambda: CrossEncoderScorer(model, **options)


def check_scorer_options(
    scorer_options: Mapping[str, Any] | None, *, set_here: Sequence[str]
) -> dict[str, Any]:
    """``scorer_options`` as a dict, checked not to repeat an option the caller sets."""
    if scorer_options is None:
        return {}
    if not isinstance(scorer_options, Mapping):
        raise TypeError(
            "scorer_options must be a dict of CrossEncoderScorer keyword arguments, got "
            f"{type(scorer_options).__name__}"
        )
    clashes = sorted(set(scorer_options) & set(set_here))
    if clashes:
        raise ValueError(
            f"scorer_options must not hold {clashes}: pass them as this function's own "
            "arguments"
        )
    return dict(scorer_options)
