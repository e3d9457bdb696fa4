"""``crossrank eval``: rerank a first stage with one or more cross-encoders and measure
quality (nDCG@10, MRR@10, Recall@10, Recall@K) and latency, beside the first stage itself.

The CLI wires it with :func:`register` (``add_eval_arguments``, ``run_eval``), and the
same work is available from Python through :func:`evaluate_models`.

How latency is measured (see ``docs/evaluation.md``): for each model, every query's top
``max(K)`` candidates are scored once, one timed ``score`` call per query; that gives the
scores for every K (a document's score does not depend on the other candidates, so the
ranking at a smaller K is the order of the first K first-stage candidates by that score)
and the latency at ``max(K)``. For each smaller K the call on exactly K candidates is timed
again on the first ``latency_queries`` queries.

With ``fusion`` each model also gets a fused row per K: its cached logits mixed with the
first stage's scores (:mod:`crossrank.fusion`), at a given weight, or at weights chosen
honestly by :mod:`crossrank.eval.tuning` (k-fold cross-validation over the evaluated
queries, or another split).
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossrank._cli.argtypes import positive_int
from crossrank._cli.options import add_scorer_options, scorer_kwargs
from crossrank._cli.parser import add_subcommand
from crossrank._cli_checks import InputError, renamed, require_modules
from crossrank.eval import tuning
from crossrank.eval.data import Dataset, load_beir
from crossrank.eval.first_stage import dense_model, first_stage_run
from crossrank.eval.metrics import CUTOFF, ranked_ids, row_metrics
from crossrank.eval.progress import hf_progress_bars, progress_bar, quiet_truncation_warnings
from crossrank.eval.report import align_table, cell, machine_info, write_json
from crossrank.fusion import Fusion
from crossrank.probe import cpu_flags, cpu_summary

__all__ = [
    "CUTOFF",
    "DEFAULT_KS",
    "add_eval_arguments",
    "evaluate_models",
    "format_eval_table",
    "parse_ks",
    "register",
    "run_eval",
]

#: Candidate counts evaluated when ``--candidates`` is not given.
DEFAULT_KS: tuple[int, ...] = (20, 50, 100)
_DEFAULT_LATENCY_QUERIES = 20
_DOCUMENT_TEXT = "title + '. ' + text (just text when there is no title)"


# ---------------------------------------------------------------------- small helpers


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


def latency_stats(seconds: Sequence[float], pairs: int) -> dict[str, Any]:
    """p50 and p95 (linear interpolation) in milliseconds, and pairs per second."""
    if not seconds:
        return {"latency_p50_ms": None, "latency_p95_ms": None, "pairs_per_second": None}
    arr = np.asarray(seconds, dtype=np.float64)
    total = float(arr.sum())
    return {
        "latency_p50_ms": float(np.percentile(arr, 50)) * 1000.0,
        "latency_p95_ms": float(np.percentile(arr, 95)) * 1000.0,
        "pairs_per_second": pairs / total if total > 0 else None,
    }


def model_labels(models: Sequence[str]) -> list[str]:
    """Short display names: a local folder's name, else the id; full strings if that clashes."""
    short = [Path(m).name if Path(m).expanduser().exists() else m for m in models]
    return short if len(set(short)) == len(short) else list(models)


# ---------------------------------------------------------------------- the evaluation


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
    latency_queries: int = _DEFAULT_LATENCY_QUERIES,
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
) -> dict[str, Any]:
    """Evaluate a first stage and each model reranking its top K, for every K.

    Example:
        >>> from crossrank.eval.harness import evaluate_models, format_eval_table
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
            :mod:`crossrank.backends`; default ``["torch"]``, fp32). With more than one,
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

    Returns:
        The report: ``settings``, ``machine``, ``timings`` and ``rows`` (one per first stage
        x K and per model x K; see ``docs/evaluation.md``). Pass it to
        :func:`format_eval_table`, :func:`write_json` or
        :func:`crossrank.eval.plot.plot_tradeoff`.

    Raises:
        ValueError: On bad settings, or a run file naming documents not in the corpus.
        FileNotFoundError: When the data files are missing.
    """
    from crossrank.backends import check_backend
    from crossrank.scorer import DEFAULT_MODEL, CrossEncoderScorer

    backend_list = [check_backend(b) for b in dict.fromkeys(backends or ["torch"])]
    extra = _check_scorer_options(
        scorer_options,
        set_here=("model", "device", "batch_size", "max_length", "backend", "long_documents",
                  "aggregation", "max_windows", "fusion", "fusion_weight",
                  "fusion_normalization"),
    )
    fusion_plan = _FusionPlan.checked(
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
    model_list = list(models) if models else [os.environ.get("CROSSRANK_MODEL") or DEFAULT_MODEL]

    dataset = load_beir(Path(data), split, qrels_path=None if qrels is None else Path(qrels))
    query_ids = [q for q in sorted(dataset.qrels) if any(r > 0 for r in dataset.qrels[q].values())]
    if limit_queries is not None:
        query_ids = query_ids[:limit_queries]
    if not query_ids:
        raise ValueError("no query has a relevant document in the qrels; nothing to evaluate")
    qrels_used = {q: dataset.qrels[q] for q in query_ids}
    tune_qrels, tune_queries = _tune_set(data, fusion_plan, query_ids)
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

    systems = [
        (model, label if len(backend_list) == 1 else f"{label} [{backend}]", backend)
        for model, label in zip(model_list, model_labels(model_list), strict=True)
        for backend in backend_list
    ]
    model_rows: dict[tuple[int, int], dict[str, Any]] = {}
    fused_rows: dict[tuple[int, int], dict[str, Any]] = {}
    load_seconds: dict[str, float] = {}
    scored = [q for q in query_ids if texts[q]]
    tune_scored = [q for q in tune_qrels if texts[q]]
    sample = scored[:latency_queries]
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    for m, (model, label, backend) in enumerate(systems):
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
        del scorer
        gc.collect()

    rows: list[dict[str, Any]] = []
    for k in k_list:
        rows.append(fs_rows[k])
        for m in range(len(systems)):
            rows.append(model_rows[(k, m)])
            if (k, m) in fused_rows:
                rows.append(fused_rows[(k, m)])
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
        },
        "machine": {**machine_info(device), "cpu": cpu_summary(), "cpu_flags": cpu_flags()},
        "timings": {
            "first_stage_seconds": first_stage_seconds,
            "model_load_seconds": load_seconds,
        },
        "rows": rows,
    }


@dataclass(frozen=True)
class _FusionPlan:
    """How eval fuses: a method and normalization, and a fixed ``weight``, or a weight
    tuned on ``tune_split`` or by ``folds``-fold cross-validation."""

    method: str
    normalization: str
    weight: float | None
    tune_split: str | None
    folds: int | None

    @classmethod
    def checked(
        cls,
        fusion: str | None,
        weight: float | None,
        normalization: str,
        tune: bool,
        tune_split: str | None,
        folds: int,
        split: str,
    ) -> _FusionPlan | None:
        tune = tune or tune_split is not None
        if fusion is None and tune:
            fusion = "linear"
        if fusion is None:
            if weight is not None or normalization != "zscore":
                given = "fusion_weight" if weight is not None else "fusion_normalization"
                raise ValueError(f"{given} is only used with fusion='linear' or 'rrf'")
            return None
        if tune and weight is not None:
            raise ValueError(
                f"fusion_weight={weight} and tune_fusion exclude each other: give a weight, or "
                "let tune_fusion choose one"
            )
        checked = Fusion.checked(fusion, 0.5 if weight is None else weight, normalization)
        assert checked is not None  # fusion is not None here
        if tune_split is not None and tune_split == split:
            raise ValueError(
                f"tune_split must differ from split ({split!r}): a weight chosen on the "
                "evaluated queries flatters them; without tune_split the weight is chosen by "
                "cross-validation"
            )
        cross_validated = tune and tune_split is None
        if cross_validated and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
            raise ValueError(f"folds must be an int >= 2, got {folds!r}")
        return cls(
            checked.method,
            checked.normalization,
            None if tune else checked.weight,
            tune_split,
            folds if cross_validated else None,
        )

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "normalization": self.normalization if self.method == "linear" else None,
            "weight": self.weight,
            "tune_split": self.tune_split,
            "folds": self.folds,
            "weight_grid": list(tuning.WEIGHT_GRID) if self.weight is None else None,
            "tuned_metric": f"ndcg@{tuning.TUNED_CUTOFF}" if self.weight is None else None,
        }

    def row(
        self,
        model_row: Mapping[str, Any],
        fs_label: str,
        candidates: Mapping[str, Sequence[str]],
        scores: Mapping[str, Sequence[float]],
        fs_scores: Mapping[str, Mapping[str, float]],
        k: int,
        qrels: Mapping[str, Mapping[str, int]],
        tune_qrels: Mapping[str, Mapping[str, int]],
    ) -> dict[str, Any]:
        """The fused row of one model at one K, from the cached scores."""

        def table(judged: Mapping[str, Mapping[str, int]]) -> dict[float, dict[str, float]]:
            return tuning.weight_table(
                candidates, scores, fs_scores, judged, k=k, method=self.method,
                normalization=self.normalization,
            )  # fmt: skip

        fold_weights: list[float] | None = None
        curve: dict[float, dict[str, float]] | None = None
        if self.weight is not None:
            weight, how = self.weight, f"w={self.weight:.2f}"
            weight_of: dict[str, float] = dict.fromkeys(qrels, weight)
        elif self.tune_split is not None:
            weight = tuning.best_weight(table(tune_qrels), tune_qrels)
            how = f"w={weight:.2f} from {self.tune_split}"
            weight_of = dict.fromkeys(qrels, weight)
        else:
            assert self.folds is not None
            curve = table(qrels)
            cv = tuning.cross_validate(curve, list(qrels), folds=self.folds)
            weight, fold_weights, how = cv.overall, cv.weights, f"{self.folds}-fold CV"
            weight_of = {q: cv.weight_of(q) for q in qrels}
        run: dict[str, dict[str, float]] = {}
        for w in sorted(set(weight_of.values())):
            fusion = Fusion.checked(self.method, w, self.normalization)
            assert fusion is not None
            chosen = [q for q, v in weight_of.items() if v == w]
            run |= tuning.fused_run(candidates, scores, fs_scores, fusion, k=k, queries=chosen)
        scale = f" {self.normalization}" if self.method == "linear" else ""
        return {
            **model_row,
            "system": f"{model_row['system']} + {fs_label} [{self.method}{scale}, {how}]",
            "stage": "fused",
            **row_metrics(run, qrels, k),
            "latency_p50_ms": None,
            "latency_p95_ms": None,
            "pairs_per_second": None,
            "latency_queries": None,
            "fusion": {
                "method": self.method,
                "normalization": self.normalization if self.method == "linear" else None,
                "weight": weight,
                "fold_weights": fold_weights,
                # How flat the optimum is. In-sample (every weight scored on the queries
                # it is shown for): never the reported figure.
                "in_sample_ndcg_by_weight": (
                    None
                    if curve is None
                    else {f"{w:.2f}": float(np.mean(list(v.values()))) for w, v in curve.items()}
                ),
                "tuned_on": (
                    None if self.weight is not None
                    else f"split {self.tune_split} ({len(tune_qrels)} queries)"
                    if self.tune_split is not None
                    else f"{self.folds}-fold cross-validation over the evaluated queries"
                ),
            },
        }


def _tune_set(
    data: str | os.PathLike[str], plan: _FusionPlan | None, query_ids: Sequence[str]
) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """The judgments and texts of the tuning split's judged queries (none without one),
    checked to be disjoint from the evaluated ones."""
    if plan is None or plan.tune_split is None:
        return {}, {}
    tune = load_beir(Path(data), plan.tune_split)
    judged = {q: r for q, r in sorted(tune.qrels.items()) if any(v > 0 for v in r.values())}
    shared = sorted(set(judged) & set(query_ids))
    if shared:
        raise ValueError(
            f"tune_split {plan.tune_split!r} judges {len(shared)} of the evaluated queries "
            f"(e.g. {shared[:5]}); the weight must be chosen on other queries"
        )
    if not judged:
        raise ValueError(f"tune_split {plan.tune_split!r} has no query with a relevant document")
    return judged, {q: tune.queries[q] for q in judged}


def _check_scorer_options(
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


# ---------------------------------------------------------------------- output


def format_eval_table(report: Mapping[str, Any]) -> str:
    """The report's rows as an aligned plain-text table (one line per system x K)."""
    header = ["system", "K", "NDCG@10", "MRR@10", "R@10", "R@K", "p50 ms", "p95 ms", "pairs/s"]
    lines = [header]
    for row in report["rows"]:
        lines.append(
            [
                str(row["system"]),
                str(row["k"]),
                cell(row[f"ndcg@{CUTOFF}"], 4),
                cell(row[f"mrr@{CUTOFF}"], 4),
                cell(row[f"recall@{CUTOFF}"], 4),
                cell(row["recall@k"], 4),
                cell(row["latency_p50_ms"], 1),
                cell(row["latency_p95_ms"], 1),
                cell(row["pairs_per_second"], 1),
            ]
        )
    settings = report["settings"]
    mode = ""
    if settings.get("long_documents") == "chunk":
        per_doc = [r["pairs_per_document"] for r in report["rows"] if r["stage"] == "reranked"]
        mode = (
            f"; chunk mode ({settings['aggregation']}, at most {settings['max_windows']} "
            f"windows), {max(per_doc, default=0.0):.2f} windows per document"
        )
    if settings.get("engine") == "ray":
        mode += "; engine ray: no per-query latency, pairs/s over the whole Ray run"
    return align_table(
        lines,
        f"{settings['num_queries']} queries, first stage {settings['first_stage']}; "
        f"latency = one rerank call on K candidates (p95 over {settings['latency_queries']} "
        f"queries below the largest K, over all queries at it){mode}"
        + (f"\ncpu: {report['machine']['cpu']}" if report.get("machine", {}).get("cpu") else "")
        + _fusion_footer(report),
    )


def _fusion_footer(report: Mapping[str, Any]) -> str:
    """What the fused rows are, and the weights they used."""
    fused = [r for r in report["rows"] if r["stage"] == "fused"]
    if not fused:
        return ""
    settings = report["settings"]["fusion"]
    lines = [
        "",
        f"fused rows: each model's logits mixed with the first stage's scores per query "
        f"({settings['method']} fusion; w = the cross-encoder's share). No latency: a fused "
        "call costs the model's rerank call plus microseconds",
    ]
    for row in fused:
        detail = row["fusion"]
        if detail["fold_weights"] is not None:
            per_fold = " ".join(f"{w:.2f}" for w in detail["fold_weights"])
            lines.append(
                f"K={row['k']} {row['system']}: held-out figure; each fold scored with a weight "
                f"chosen on the other folds only: {per_fold}; the weight to use, chosen on all "
                f"{report['settings']['num_queries']} queries: {detail['weight']:.2f}"
            )
        elif detail["tuned_on"] is not None:
            lines.append(
                f"K={row['k']} {row['system']}: w={detail['weight']:.2f}, chosen on "
                f"{detail['tuned_on']}"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------- CLI


def register(subparsers: Any) -> None:
    """Add ``crossrank eval`` to the ``crossrank`` parser's subparsers."""
    p = add_subcommand(
        subparsers,
        "eval",
        help="evaluate first stage + rerankers on a BEIR/TREC set",
        description="Retrieve with a first stage, rerank with each model, and report "
        "NDCG@10, MRR@10, Recall@10, Recall@K, latency and throughput.",
    )
    add_eval_arguments(p)
    p.set_defaults(func=run_eval)


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crossrank eval`` flags to ``parser`` (a subparser) and return it."""
    parser.description = parser.description or (
        "Rerank a first stage (BM25, a dense retriever or your TREC run) with one or more "
        "cross-encoders; report NDCG@10, MRR@10, Recall@10, Recall@K and latency."
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--first-stage",
        default=None,  # not "bm25": argparse would not see "--run R --first-stage bm25" clash
        metavar="bm25|dense:MODEL",
        help="first-stage retriever (default: bm25)",
    )
    source.add_argument(
        "--run",
        metavar="FILE",
        help="rerank this TREC run file (qid Q0 docid rank score tag) instead of retrieving",
    )
    parser.add_argument(
        "--candidates",
        dest="ks",
        default=",".join(map(str, DEFAULT_KS)),
        type=_ks_type,
        metavar="K[,K...]",
        help="first-stage candidates reranked per query; each count is evaluated "
        "(default: 20,50,100)",
    )
    parser.add_argument(
        "--k",
        nargs="?",
        help=argparse.SUPPRESS,
        action=renamed(
            "--k", "--candidates", "-k/--top-k means 'keep the best K' (crossrank rerank)"
        ),
    )
    parser.add_argument(
        "--limit-queries",
        type=positive_int,
        metavar="N",
        help="evaluate only the first N judged queries (sorted by id)",
    )
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    parser.add_argument(
        "--qrels",
        metavar="FILE",
        help="judgments file (BEIR TSV or TREC qid 0 docid rel) instead of qrels/<split>.tsv",
    )
    parser.add_argument("--out", "-o", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG of NDCG@10 against p95 latency")
    parser.add_argument(
        "--latency-queries",
        type=positive_int,
        default=_DEFAULT_LATENCY_QUERIES,
        metavar="N",
        help="queries timed for each K below the largest (default: 20)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, notes or warnings on stderr"
    )
    fusion = parser.add_argument_group(
        "fusion",
        "also report each model fused with the first stage's scores (--fusion linear|rrf, "
        "--fusion-weight, --fusion-normalization: see the scorer options), from the same "
        "cached scores",
    )
    fusion.add_argument(
        "--tune-fusion",
        action="store_true",
        help="choose the fusion weight by k-fold cross-validation over the evaluated "
        "queries: each fold is scored with the weight that does best (NDCG@10) on the other "
        "folds; prints the held-out figure and the weights (implies --fusion linear unless "
        "--fusion is given)",
    )
    fusion.add_argument(
        "--tune-split",
        metavar="NAME",
        help="choose the fusion weight on this split's judged queries instead (e.g. train; "
        "they must not be evaluated ones); implies --tune-fusion",
    )
    fusion.add_argument(
        "--folds",
        type=positive_int,
        default=tuning.DEFAULT_FOLDS,
        metavar="N",
        help="folds of --tune-fusion's cross-validation (default: %(default)s)",
    )
    engine = parser.add_argument_group("engine", "where the reranking runs")
    engine.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: in this process, timed per query (default); ray: every query in one "
        'Ray Data run on an actor pool, one model per actor (pip install "crossrank[ray]")',
    )
    engine.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --engine ray: the cluster to join, e.g. ray://head:10001 or auto "
        "(default: a local Ray)",
    )
    engine.add_argument(
        "--concurrency",
        type=positive_int,
        default=1,
        metavar="N",
        help="with --engine ray: actors, each with its own model (default: 1)",
    )
    engine.add_argument(
        "--cpus-per-actor",
        type=positive_int,
        default=1,
        metavar="N",
        help="with --engine ray: CPUs each actor reserves, and its torch threads (default: 1)",
    )
    # Ranking metrics do not depend on the activation: no --activation/--calibration.
    return add_scorer_options(parser, compare=True, activation=False)


def run_eval(args: argparse.Namespace) -> int:
    """Run ``crossrank eval`` from parsed arguments; print the table; return an exit code."""
    if args.run is None and (args.first_stage or "bm25") == "bm25":
        require_modules(["bm25s"], "crossrank eval's BM25 first stage", "eval")
    if args.plot:
        require_modules(["matplotlib"], "crossrank eval --plot", "eval")
    engine_options: dict[str, Any] = {}
    if args.engine == "ray":
        from crossrank.scale import init_ray

        require_modules(["ray"], "crossrank eval --engine ray", "ray")
        init_ray(args.ray_address, quiet=args.quiet)
        engine_options = {"concurrency": args.concurrency, "num_cpus": args.cpus_per_actor}
    elif args.ray_address is not None or args.concurrency != 1 or args.cpus_per_actor != 1:
        raise InputError("--ray-address, --concurrency and --cpus-per-actor need --engine ray")
    options = scorer_kwargs(args, changed_only=True)
    for name in ("fusion", "fusion_weight", "fusion_normalization"):
        options.pop(name, None)  # eval's own, read from args (an explicit 0.5 counts)
    own = {
        name: options.pop(name)
        for name in ("device", "batch_size", "max_length", "long_documents", "aggregation",
                     "max_windows")
        if name in options
    }
    with hf_progress_bars(not args.quiet):
        report = evaluate_models(
            args.data,
            options.pop("model", None),
            first_stage=args.first_stage or "bm25",
            ks=args.ks,
            split=args.split,
            qrels=args.qrels,
            run=args.run,
            limit_queries=args.limit_queries,
            backends=options.pop("backend", None),
            latency_queries=args.latency_queries,
            progress=not args.quiet,
            scorer_options=options,
            fusion=args.fusion,
            fusion_weight=_given_weight(args),
            fusion_normalization=args.fusion_normalization,
            tune_fusion=args.tune_fusion,
            tune_split=args.tune_split,
            folds=args.folds,
            engine=args.engine,
            engine_options=engine_options,
            **own,
        )
    print(format_eval_table(report))
    if args.out:
        print(f"wrote {write_json(report, args.out)}")
    if args.plot:
        from crossrank.eval.plot import plot_tradeoff

        print(f"wrote {plot_tradeoff(report, args.plot)}")
    return 0


def _given_weight(args: argparse.Namespace) -> float | None:
    """``--fusion-weight``, or None where it is the default (0.5 without tuning; chosen
    with it, when a weight given beside ``--tune-fusion`` is an error)."""
    from crossrank.scorer import CrossEncoderScorer

    default = inspect.signature(CrossEncoderScorer).parameters["fusion_weight"].default
    weight: float = args.fusion_weight
    return None if weight == default else weight


def _ks_type(value: str) -> list[int]:
    try:
        return parse_ks(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated list of integers >= 1, got {value!r}"
        ) from e
