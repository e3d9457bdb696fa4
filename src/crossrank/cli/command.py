"""The ``crossrank`` command itself: :func:`build_parser` registers every subcommand (each
module's ``register``), and :func:`main` parses, checks and runs one with the shared exit
codes and error format (:mod:`crossrank._cli_checks`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from crossrank._cli.parser import command_parser
from crossrank._cli_checks import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    check_backends_here,
    check_output_path,
    cli_wording,
    error_line,
    exit_code,
)
from crossrank._quiet import drop_log_records

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``crossrank`` argument parser, with every subcommand."""
    # Imported here: ``import crossrank.cli`` (the shared flags) stays light.
    from crossrank.cli import rerank
    from crossrank.eval import bench_cli, calibrate_cli, harness_cli
    from crossrank.serve import cli as serve_cli
    from crossrank.train import cli as train_cli

    parser, subparsers = command_parser()
    for command in (rerank, harness_cli, bench_cli, calibrate_cli, serve_cli, train_cli):
        command.register(subparsers)
    return parser


def _preflight(args: argparse.Namespace) -> None:
    """Checks every command makes before it loads anything: the device, each backend
    (runs here, extra installed) and every output path."""
    from crossrank.runtimes.devices import check_device

    device = getattr(args, "device", None)
    check_device(device)
    backends = getattr(args, "backend", None)
    if backends:
        check_backends_here([backends] if isinstance(backends, str) else backends, device)
    for dest in ("out", "plot", "save"):
        check_output_path(getattr(args, dest, None), f"--{dest}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crossrank`` command; returns the exit code.

    Exit codes: 0 done, 1 the work failed (the model could not be loaded, scoring failed),
    2 a usage or input error, 130 interrupted (see ``crossrank --help``). An error is one
    line on stderr, worded with the command's flags; an unexpected error (a bug) keeps its
    traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a usage error (2), or --help / --version (0)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    quiet = drop_log_records() if getattr(args, "quiet", False) else contextlib.nullcontext()
    try:
        with quiet:
            _preflight(args)
            return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        code = exit_code(e)
        if code is None:
            raise
        message = cli_wording(error_line(e), args.command_parser)
        print(f"crossrank {args.command}: error: {message}", file=sys.stderr)
        return code
