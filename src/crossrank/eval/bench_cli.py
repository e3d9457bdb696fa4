"""``crossrank bench``: its flags and its runner, which calls
:func:`crossrank.eval.bench.benchmark` (or, with ``--server``,
:func:`crossrank.eval.serve_bench.server_benchmark`) and prints the table
(:mod:`crossrank.eval.bench_report`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from crossrank._cli.argtypes import positive_int
from crossrank._cli.parser import add_subcommand
from crossrank.eval.bench import VARIANTS, benchmark
from crossrank.eval.bench_peer import PEER_PYTHON_ENV
from crossrank.eval.bench_report import format_bench_table, format_server_table
from crossrank.eval.progress import hf_progress_bars
from crossrank.eval.report import write_json
from crossrank.eval.serve_bench import server_benchmark

__all__ = [
    "add_bench_arguments",
    "add_server_bench_arguments",
    "register",
    "run_bench",
    "run_server_bench",
]


def register(subparsers: Any) -> None:
    """Add ``crossrank bench`` to the ``crossrank`` parser's subparsers."""
    p = add_subcommand(
        subparsers,
        "bench",
        help="time crossrank's backends against sentence-transformers",
        description="Time reranking N candidates with each crossrank backend and with "
        "sentence-transformers CrossEncoder.predict (fp32), in one process.",
    )
    add_bench_arguments(p)
    p.set_defaults(func=run_bench)


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crossrank bench`` flags to ``parser`` (a subparser) and return it."""
    parser.description = parser.description or (
        "Time reranking N candidates for one query with each crossrank backend and with "
        "sentence-transformers, interleaved in one process; cold start and peak memory "
        "per backend in a fresh process."
    )
    parser.add_argument(
        "--model",
        "-m",
        metavar="M",
        help="cross-encoder id or folder (default: $CROSSRANK_MODEL or the core default)",
    )
    parser.add_argument(
        "--candidates",
        type=positive_int,
        default=None,
        metavar="N",
        help="texts scored per call (100; with --server, per request: 20)",
    )
    parser.add_argument(
        "--doc-tokens",
        type=positive_int,
        default=256,
        metavar="T",
        help="tokens per text (256)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=10,
        metavar="R",
        help="timed calls per variant (10)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="take the query and texts from this BEIR folder instead of synthetic text",
    )
    parser.add_argument("--split", default="test", help="qrels split used with --data (test)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        metavar="N",
        help="pairs per forward pass (32)",
    )
    parser.add_argument("--device", default="cpu", help="torch device for every variant (cpu)")
    parser.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        metavar="NAME",
        help=f"time only these variants (repeatable; the reference is always timed): "
        f"{', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--peer-python",
        metavar="PATH",
        default=None,
        help="another environment's Python interpreter in which the sentence-transformers "
        "onnx/openvino variants run (their optimum needs transformers<4.58; see "
        f"docs/backends.md) (default: ${PEER_PYTHON_ENV})",
    )
    parser.add_argument(
        "--peer-timeout",
        type=_positive_seconds,
        default=600.0,
        metavar="S",
        help="seconds to wait for each answer of a --peer-python worker; a load includes the "
        "export (600)",
    )
    parser.add_argument("--out", "-o", metavar="FILE", help="write the report as JSON")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, notes or warnings on stderr"
    )
    add_server_bench_arguments(parser)
    return parser


def run_bench(args: argparse.Namespace) -> int:
    """Run ``crossrank bench`` from parsed arguments; print the table; return an exit code."""
    if getattr(args, "server", None):
        return run_server_bench(args)
    with hf_progress_bars(not args.quiet):
        report = benchmark(
            args.model,
            candidates=args.candidates or 100,
            doc_tokens=args.doc_tokens,
            repeats=args.repeats,
            data=args.data,
            split=args.split,
            batch_size=args.batch_size,
            device=args.device,
            variants=args.variant,
            progress=not args.quiet,
            peer_python=args.peer_python,
            peer_timeout_s=args.peer_timeout,
        )
    print(format_bench_table(report))
    if args.out:
        print(f"wrote {write_json(report, args.out)}")
    return 0


def _positive_seconds(value: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {value!r}")
    return number


def add_server_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``crossrank bench --server`` (added to the bench's parser)."""
    group = parser.add_argument_group(
        "server", "with --server: time a scoring server instead of the backends"
    )
    group.add_argument(
        "--server",
        metavar="URL",
        help="a crossrank server's base URL (http://HOST:PORT), or 'local' to start "
        "`crossrank serve --model M` on a free port of 127.0.0.1 for the bench",
    )
    group.add_argument(
        "--concurrency",
        type=positive_int,
        default=16,
        metavar="C",
        help="concurrent clients; each sends --repeats requests of --candidates texts (16)",
    )
    group.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the server's API key",
    )


def run_server_bench(args: argparse.Namespace) -> int:
    """``crossrank bench --server``: print the table (and write ``--out``)."""
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "").strip()
        if not api_key:
            raise ValueError(
                f"api_key_env={args.api_key_env}: the environment variable is not set or empty"
            )
    report = server_benchmark(
        args.server,
        model=args.model,
        concurrency=args.concurrency,
        candidates=args.candidates or 20,
        doc_tokens=args.doc_tokens,
        requests_per_client=args.repeats,
        batch_size=args.batch_size,
        device=args.device,
        api_key=api_key,
        progress=not args.quiet,
    )
    print(format_server_table(report))
    if args.out:
        print(f"wrote {write_json(report, args.out)}")
    return 0
