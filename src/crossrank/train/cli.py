"""The ``crossrank train`` subcommand: its flags and its runner, which calls
:func:`crossrank.train.run.train`.

Registered by :mod:`crossrank.cli` (:func:`register`) like ``eval`` and ``calibrate``;
importing this module is cheap (the training libraries are imported when the command runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from crossrank._cli.argtypes import open_fraction, positive_int
from crossrank._cli.parser import add_subcommand
from crossrank._cli_checks import InputError, require_modules

__all__ = ["add_train_arguments", "format_train_summary", "register", "run_train"]


def register(subparsers: Any) -> None:
    """Add ``crossrank train`` to the ``crossrank`` parser's subparsers."""
    p = add_subcommand(
        subparsers,
        "train",
        help="fine-tune a cross-encoder on your data with first-stage hard negatives",
        description="Fine-tune a cross-encoder (or a plain encoder, with a new head) on a "
        "BEIR folder's training judgments, with hard negatives mined from the first stage; "
        "keep the best checkpoint on a dev split; write the model, a calibration and a "
        "training report.",
    )
    add_train_arguments(p)
    p.set_defaults(func=run_train)


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0.0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {value!r}")
    return number


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crossrank train`` flags to ``parser`` and return it."""
    from crossrank.train.run import LOSSES

    parser.add_argument(
        "--data", required=True, metavar="DIR",
        help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
    )  # fmt: skip
    parser.add_argument(
        "--model", "-m", required=True, metavar="BASE",
        help="start from this one-logit cross-encoder (trained further) or plain encoder "
        "checkpoint (a new head), an id or a folder",
    )  # fmt: skip
    parser.add_argument(
        "--output", required=True, metavar="OUT",
        help="folder for the trained model, its calibration and the training report",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
        help="continue from the last checkpoint in OUT/checkpoints (or from CHECKPOINT)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-checkpoints", action="store_true",
        help="keep OUT/checkpoints at the end (to resume a finished run with more epochs)",
    )  # fmt: skip
    parser.add_argument("--split", default="train", help="qrels split to train on (default: train)")
    parser.add_argument("--qrels", metavar="FILE", help="judgments file instead of the split's")
    parser.add_argument(
        "--first-stage", default="bm25", metavar="bm25|dense:MODEL",
        help="mines the hard negatives and gives the dev candidates: use the one you rerank "
        "(default: bm25)",
    )  # fmt: skip
    parser.add_argument(
        "--loss", choices=LOSSES, default="bce",
        help="bce: pointwise binary cross-entropy with hard negatives; lambda (LambdaLoss) "
        "or listnet (ListNetLoss): listwise (default: bce)",
    )  # fmt: skip
    parser.add_argument(
        "--negatives", type=positive_int, default=4, metavar="N",
        help="hard negatives per training query (default: 4)",
    )  # fmt: skip
    parser.add_argument(
        "--mining-depth", type=positive_int, default=20, metavar="N",
        help="draw the negatives from the first stage's top N (default: 20)",
    )  # fmt: skip
    parser.add_argument(
        "--candidates", type=positive_int, default=20, metavar="K",
        help="dev candidates reranked per query (default: 20)",
    )  # fmt: skip
    parser.add_argument(
        "--dev-fraction", type=open_fraction, default=0.1, metavar="F",
        help="share of the training queries held out as the dev split (default: 0.1)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=positive_int, default=3, help="most epochs (default: 3)")
    parser.add_argument(
        "--patience", type=positive_int, default=2, metavar="N",
        help="stop after N epochs without a better dev NDCG@10 (default: 2)",
    )  # fmt: skip
    parser.add_argument(
        "--time-limit", type=_positive_float, default=None, metavar="MINUTES",
        help="stop training after MINUTES; the epoch's dev evaluation and checkpoint follow "
        "(default: none)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=positive_int, default=16, metavar="N",
        help="pairs per forward pass, which bounds memory (default: 16)",
    )  # fmt: skip
    parser.add_argument(
        "--learning-rate", type=_positive_float, default=2e-5, metavar="LR",
        help="peak learning rate (default: 2e-5)",
    )  # fmt: skip
    parser.add_argument(
        "--max-length", type=positive_int, default=None, metavar="N",
        help="tokens per pair, kept with the model (default: the model's limit)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument(
        "--bf16", action="store_true", help="bfloat16 autocast (CPUs with AMX, recent GPUs)"
    )
    parser.add_argument(
        "--local-files-only", action="store_true", help="never contact the Hugging Face Hub"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, notes or warnings on stderr"
    )
    return parser


def format_train_summary(report: dict[str, Any]) -> str:
    """The dev NDCG@10 per epoch, the kept checkpoint and the files written."""
    from crossrank.eval.report import align_table

    dev = report["dev"]
    lines = [["epoch", "step", "dev NDCG@10", "MRR@10", "R@10", ""]]

    def row(epoch: str, step: str, metrics: dict[str, float], note: str) -> list[str]:
        values = [f"{metrics.get(m, 0.0):.4f}" for m in ("ndcg@10", "mrr@10", "recall@10")]
        return [epoch, step, *values, note]

    lines.append(row("-", "-", dev["first_stage"], report["first_stage"] + " alone"))
    if "base_model" in dev:  # reports written before it was measured lack it
        note = "the starting model" + (
            " (a new, untrained head)" if report["base_model_kind"] == "encoder" else ""
        )
        lines.append(row("0", "0", dev["base_model"], note))
    for h in dev["history"]:
        kept = "kept" if h["step"] == dev["best_step"] else ""
        lines.append(row(f"{h['epoch']:g}", str(h["step"]), h, kept))
    head = (
        f"trained {report['base_model']} ({report['base_model_kind']}) on {report['data']} "
        f"({report['train']['queries']} queries, {report['train']['pairs']} pairs, loss "
        f"{report['settings']['loss']}); dev: {dev['queries']} queries, "
        f"{report['first_stage']} top {dev['candidates']}\n"
    )
    footer = f"{report['train']['steps']} steps in {report['seconds']['total']:.0f} s"
    return head + align_table(lines, footer=footer)


def run_train(args: argparse.Namespace) -> int:
    """Run ``crossrank train``; print the dev table and the files written."""
    from crossrank.eval.progress import hf_progress_bars
    from crossrank.train.run import REPORT_FILE, REPORT_PLOT, train

    require_modules(["datasets", "accelerate"], "crossrank train", "train")
    if args.first_stage == "bm25":
        require_modules(["bm25s"], "crossrank train's BM25 first stage", "train")
    require_modules(["matplotlib"], "crossrank train's report figure", "train")
    data = Path(args.data).expanduser()
    if not data.is_dir():
        raise InputError(f"--data {args.data}: no such folder (a BEIR folder)")
    with hf_progress_bars(not args.quiet):
        report = train(
            data,
            args.model,
            args.output,
            split=args.split,
            qrels=args.qrels,
            first_stage=args.first_stage,
            loss=args.loss,
            negatives=args.negatives,
            mining_depth=args.mining_depth,
            candidates=args.candidates,
            dev_fraction=args.dev_fraction,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=args.max_length,
            patience=args.patience,
            time_limit=args.time_limit,
            seed=args.seed,
            device=args.device,
            bf16=args.bf16,
            resume=args.resume,
            overwrite=args.overwrite,
            keep_checkpoints=args.keep_checkpoints,
            local_files_only=args.local_files_only,
            progress=not args.quiet,
        )
    print(format_train_summary(report))
    out = Path(report["model"])
    print(f"wrote {out} (the kept model), {out / REPORT_FILE}, {out / REPORT_PLOT}")
    if report["calibration"].get("written"):
        print(f"wrote {report['calibration']['written']} (activation='calibrated')")
    return 0
