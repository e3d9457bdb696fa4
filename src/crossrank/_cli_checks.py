"""What the ``crossrank`` command checks before it works, and how it reports a failure.

One convention for every subcommand (:data:`EXIT_STATUS`, printed by ``--help``):

- ``0``: done (an input with no candidates is done too, with a note on stderr);
- ``2``: the command cannot run as given: a flag or value, an input file (missing, a
  directory, malformed), an ``--out`` path that cannot be written, a device this machine
  lacks, a missing extra. Checked before any model is loaded where it can be;
- ``1``: the work failed: the model could not be loaded (not found, the Hub unreachable,
  not a cross-encoder), or scoring failed;
- ``130``: interrupted.

Each error is one line, ``crossrank COMMAND: error: ...``, worded with the command's flags
(:func:`cli_wording` turns the library's ``top_k must be >= 1`` into ``--top-k must be >=
1``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from crossrank.errors import CrossrankError, DeviceUnavailableError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_STATUS",
    "EXIT_USAGE",
    "InputError",
    "check_backends_here",
    "check_input_file",
    "check_output_path",
    "cli_wording",
    "error_line",
    "exit_code",
    "renamed",
    "require_modules",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: The exit codes, as ``--help`` prints them (every subcommand's epilog).
EXIT_STATUS = """\
exit status:
  0    done (an input with no candidates too: a note says so on stderr)
  1    the work failed: the model could not be loaded (not found, Hub unreachable,
       not a cross-encoder) or scoring failed
  2    usage or input error: a bad flag or value; an input that is missing, a
       directory or malformed; an --out path that cannot be written; a device this
       machine lacks; a missing extra (the message names the pip install)
  130  interrupted"""

_EXTRA_HINT = 'pip install "crossrank['


class InputError(ValueError):
    """A problem with the user's files or flags, already worded for the terminal."""


def exit_code(error: BaseException) -> int | None:
    """The exit code for ``error`` (see :data:`EXIT_STATUS`); None for an unexpected error
    (a bug), which the command lets through with its traceback."""
    if isinstance(error, (InputError, DeviceUnavailableError)):
        return EXIT_USAGE
    if isinstance(error, CrossrankError):
        return EXIT_FAILURE
    if isinstance(error, ImportError):
        return EXIT_USAGE if _EXTRA_HINT in str(error) else EXIT_FAILURE
    if isinstance(error, (ValueError, TypeError)):
        return EXIT_USAGE
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return EXIT_USAGE
    if isinstance(error, (OSError, RuntimeError)):
        return EXIT_FAILURE
    return None


def error_line(error: BaseException) -> str:
    """The error's message; prefixed with its type where the message alone is not ours."""
    text = str(error) or type(error).__name__
    ours = isinstance(error, (CrossrankError, ValueError, TypeError, FileNotFoundError))
    if isinstance(error, ImportError) and _EXTRA_HINT in text:
        ours = True
    return text if ours else f"{type(error).__name__}: {text}"


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{dest: its long flag} for the parser's options (the first long spelling)."""
    flags: dict[str, str] = {}
    for action in parser._actions:
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and action.dest not in ("help", argparse.SUPPRESS) and action.help != (
            argparse.SUPPRESS
        ):
            flags.setdefault(action.dest, long[0])
    return flags


_VALUE = r"""'[^']*'|"[^"]*"|[^\s,;)]+"""


def cli_wording(message: str, parser: argparse.ArgumentParser) -> str:
    """Reword a library message with ``parser``'s flags: ``top_k must`` -> ``--top-k must``,
    ``device='cpu'`` -> ``--device cpu``, ``model_kwargs`` -> ``--model-kwargs``.

    Only the options ``parser`` declares are reworded, and only where the name is used as
    an argument: followed by ``=value``, by ``must``, ``is only`` or ``unset``, or (names
    with an underscore) anywhere as a whole word. ``CrossEncoderScorer(name=...)`` becomes
    the flag too.
    """
    flags = _flags(parser)
    if not flags:
        return message
    names = "|".join(re.escape(n) for n in sorted(flags, key=len, reverse=True))

    def scorer_call(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{flags[name]} ..." if name in flags else match.group(0)

    message = re.sub(r"CrossEncoderScorer\((\w+)=[^)]*\)", scorer_call, message)

    def replace(match: re.Match[str]) -> str:
        name, value = match.group("name"), match.group("value")
        if value is not None:
            return f"{flags[name]} {value.strip(chr(39) + chr(34))}"
        if match.group("verb") is None and "_" not in name:
            return match.group(0)  # a plain word in a sentence ("the model's limit")
        return flags[name]

    pattern = (
        rf"(?<![\w.\-'\"/$`])(?P<name>{names})\b"
        rf"(?:=(?P<value>{_VALUE})|(?P<verb>(?= must\b| is only\b| unset\b)))?"
    )
    return re.sub(pattern, replace, message)


def renamed(old: str, new: str, why: str) -> type[argparse.Action]:
    """An argparse action for a flag that was renamed: using it is a usage error that names
    the new flag (exit 2). Declare it with ``help=argparse.SUPPRESS``."""

    class Renamed(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
            parser.error(f"{old} was renamed {new}: {why}")

    return Renamed


def check_input_file(path: str, flag: str) -> Path:
    """``path`` as a Path if it is a readable file; InputError saying what it is otherwise."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise InputError(f"{path} is a directory; {flag} takes a file")
    if not file.exists():
        raise InputError(f"{path}: no such file ({flag})")
    if not os.access(file, os.R_OK):
        raise InputError(f"{path}: not readable ({flag}); check its permissions")
    return file


def check_output_path(path: str | None, flag: str) -> None:
    """Raise InputError unless ``path`` (None or ``-``: stdout) can be written as a file:
    not a directory, and its nearest existing folder writable (missing folders are made)."""
    if path is None or path == "-":
        return
    target = Path(path).expanduser()
    if target.is_dir():
        raise InputError(f"{flag} {path} is a directory; give a file path, e.g. {target / 'out'}")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise InputError(f"{flag} {path}: the file is not writable; check its permissions")
        return
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"{flag} {path}: cannot create files in {parent}; check its permissions or "
            "write elsewhere"
        )


def require_modules(modules: Iterable[str], feature: str, extra: str) -> None:
    """Raise the install hint for ``extra`` (``pip install "crossrank[...]"``) if a module
    is missing."""
    from crossrank._optional import missing_extra

    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ValueError:  # a module with no spec (sys.modules holds a placeholder)
            found = True
        if not found:
            raise missing_extra(feature, extra, ModuleNotFoundError(name=name))


def check_backends_here(backends: Iterable[str], device: str | None) -> None:
    """Check, before loading, that each backend runs on ``device`` here and has its extra
    installed (:func:`crossrank.runtimes.backends.choose_backend`, whose warnings are left for the
    load itself)."""
    from crossrank._quiet import drop_log_records
    from crossrank.runtimes.backends import choose_backend
    from crossrank.runtimes.devices import resolve_device

    for backend in backends:
        # As the loader does: the ONNX and OpenVINO backends run on the CPU.
        here = "cpu" if device is None and backend.startswith(("onnx", "openvino")) else device
        with drop_log_records():
            choose_backend(backend, resolve_device(here))
