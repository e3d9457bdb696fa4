"""The parser classes every ``crossrank`` command shares: one-line usage errors (exit 2),
help that ends with the exit-status table, and the ``crossrank`` parser that subcommands are
added to with :func:`add_subcommand`."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from crossrank._cli_checks import EXIT_STATUS, EXIT_USAGE
from crossrank._version import __version__

__all__ = ["CommandParser", "HelpFormatter", "add_subcommand", "command_parser"]


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual, and prints the exit-status table as it is written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == EXIT_STATUS:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit 2), not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_subcommand(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subparser whose ``--help`` ends with the exit codes; errors are worded with its
    flags (``args.command_parser``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, formatter_class=HelpFormatter, epilog=EXIT_STATUS, **kwargs
    )
    parser.set_defaults(command_parser=parser)
    return parser


def command_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The ``crossrank`` parser (``--version``, the exit-status table) and its subparsers,
    to which each subcommand adds itself with :func:`add_subcommand`."""
    parser = CommandParser(
        prog="crossrank",
        description="Cross-encoder reranking for RAG pipelines.",
        formatter_class=HelpFormatter,
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, subparsers
