"""``crossrank calibrate``: its flags and its runner, which calls
:func:`crossrank.eval.calibrate.calibrate`, prints the table and writes the calibration."""

from __future__ import annotations

import argparse
import os
from typing import Any

from crossrank._cli.argtypes import open_fraction, positive_int
from crossrank._cli.options import add_scorer_options, scorer_kwargs
from crossrank._cli.parser import add_subcommand
from crossrank._cli_checks import renamed, require_modules
from crossrank.calibration import CALIBRATION_FILE, METHODS, save_calibration
from crossrank.eval.calibrate import (
    DEFAULT_HELD_OUT,
    DEFAULT_TOP_K,
    calibrate,
    calibration_target,
    format_calibration_table,
)
from crossrank.eval.progress import hf_progress_bars
from crossrank.eval.report import write_json

__all__ = ["add_calibrate_arguments", "register", "run_calibrate"]


def register(subparsers: Any) -> None:
    """Add ``crossrank calibrate`` to the ``crossrank`` parser's subparsers."""
    p = add_subcommand(
        subparsers,
        "calibrate",
        help="fit temperature and Platt scaling so scores become probabilities",
        description="Score a first stage's top-K candidates on a labelled BEIR set, fit "
        "temperature and Platt scaling on part of the queries, report ECE, log-loss and "
        "Brier score on the held-out rest, and write the calibration for "
        "activation='calibrated'.",
    )
    add_calibrate_arguments(p)
    p.set_defaults(func=run_calibrate)


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crossrank calibrate`` flags to ``parser`` and return it."""
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="BEIR folder with qrels/<split>.tsv"
    )
    parser.add_argument(
        "--save",
        metavar="FILE",
        help=f"where to write the calibration (default: {CALIBRATION_FILE} in the model's "
        "folder, for a local model)",
    )
    parser.add_argument(
        "--output",
        nargs="?",
        help=argparse.SUPPRESS,
        action=renamed(
            "--output", "--save", "-o/--out writes the JSON report, as in eval and bench"
        ),
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="platt",
        help="which fit activation='calibrated' applies (both are stored; default: platt)",
    )
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    parser.add_argument("--qrels", metavar="FILE", help="judgments file instead of the split's")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--first-stage", default=None, metavar="bm25|dense:MODEL", help="(default: bm25)"
    )
    source.add_argument("--run", metavar="FILE", help="take the candidates from a TREC run")
    parser.add_argument(
        "--candidates",
        dest="top_k",
        type=positive_int,
        default=DEFAULT_TOP_K,
        metavar="N",
        help=f"first-stage candidates per query, labelled by the qrels (default: "
        f"{DEFAULT_TOP_K})",
    )
    parser.add_argument(
        "--top-k",
        nargs="?",
        help=argparse.SUPPRESS,
        action=renamed(
            "--top-k",
            "--candidates",
            "-k/--top-k means 'keep the best K' (crossrank rerank)",
        ),
    )
    parser.add_argument(
        "--held-out",
        type=open_fraction,
        default=DEFAULT_HELD_OUT,
        metavar="F",
        help=f"fraction of queries held out to measure ECE (default: {DEFAULT_HELD_OUT})",
    )
    parser.add_argument(
        "--max-queries", type=positive_int, metavar="N", help="use N queries (after shuffling)"
    )
    parser.add_argument("--seed", type=int, default=0, help="query shuffle seed (default: 0)")
    parser.add_argument("--bins", type=positive_int, default=15, help="ECE bins (default: 15)")
    parser.add_argument("--out", "-o", metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, notes or warnings on stderr"
    )
    # Calibration is fitted on raw logits: no --activation/--calibration.
    return add_scorer_options(parser, activation=False, fusion=False)


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``crossrank calibrate``; print the table; write the calibration file."""
    from crossrank.scorer import DEFAULT_MODEL

    options = scorer_kwargs(args, changed_only=True)
    own = {
        name: options.pop(name)
        for name in ("backend", "device", "batch_size", "max_length", "long_documents")
        if name in options
    }
    model = options.pop("model", None) or os.environ.get("CROSSRANK_MODEL") or DEFAULT_MODEL
    if args.run is None and (args.first_stage or "bm25") == "bm25":
        require_modules(["bm25s"], "crossrank calibrate's BM25 first stage", "eval")
    target = calibration_target(model, args.save)  # fail before the slow part
    with hf_progress_bars(not args.quiet):
        fits, report = calibrate(
            args.data,
            model,
            split=args.split,
            qrels=args.qrels,
            first_stage=args.first_stage or "bm25",
            run=args.run,
            top_k=args.top_k,
            held_out=args.held_out,
            max_queries=args.max_queries,
            seed=args.seed,
            bins=args.bins,
            progress=not args.quiet,
            scorer_options=options,
            **own,
        )
    report["method"] = args.method
    print(format_calibration_table(report))
    written = save_calibration(target, fits, method=args.method, model=model, report=report)
    print(f"wrote {written} (activation='calibrated' applies {args.method})")
    if args.out:
        print(f"wrote {write_json(report, args.out)}")
    return 0
