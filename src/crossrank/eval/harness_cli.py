"""``crossrank eval``: its flags and its runner, which calls
:func:`crossrank.eval.harness.evaluate_models` and prints
:func:`crossrank.eval.harness_report.format_eval_table`."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from crossrank._cli.argtypes import positive_int
from crossrank._cli.options import add_scorer_options, scorer_kwargs
from crossrank._cli.parser import add_subcommand
from crossrank._cli_checks import InputError, renamed, require_modules
from crossrank.eval import tuning
from crossrank.eval.harness import (
    DEFAULT_KS,
    DEFAULT_LATENCY_QUERIES,
    evaluate_models,
    model_labels,
    parse_ks,
)
from crossrank.eval.harness_report import format_eval_table
from crossrank.eval.progress import hf_progress_bars
from crossrank.eval.report import write_json
from crossrank.eval.systems_cli import (
    add_system_arguments,
    confirm_paid_calls,
    prices_of,
    systems_of,
)

__all__ = ["add_eval_arguments", "register", "run_eval"]


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
        default=DEFAULT_LATENCY_QUERIES,
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
    add_system_arguments(parser)
    # Ranking metrics do not depend on the activation: no --activation/--calibration.
    return add_scorer_options(parser, compare=True, activation=False)


def run_eval(args: argparse.Namespace) -> int:
    """Run ``crossrank eval`` from parsed arguments; print the table; return an exit code."""
    from crossrank.scorer import CrossEncoderScorer

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
    deadlines = options.pop("deadline_ms", None) or []
    own: dict[str, Any] = {
        name: options.pop(name)
        for name in ("device", "batch_size", "max_length", "long_documents", "aggregation",
                     "max_windows")
        if name in options
    }
    backends = options.pop("backend", None)
    members: dict[str, Any] = dict(options)
    members.update(own)
    members |= {"activation": "raw", "backend": (backends or ["torch"])[0]}
    members.pop("model", None)
    systems = systems_of(
        args, lambda spec: CrossEncoderScorer(spec, **members), lambda m: model_labels([m])[0]
    )
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
            backends=backends,
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
            systems=systems,
            deadlines=deadlines,
            prices=prices_of(args),
            latency_budget_ms=args.latency_budget_ms,
            tune_ensemble=args.tune_ensemble,
            confirm=confirm_paid_calls(args),
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
