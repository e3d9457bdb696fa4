"""argparse types shared by the subcommands: each parses one flag's value or raises
``argparse.ArgumentTypeError`` with what must hold and what was given."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "calibration_file",
    "fraction",
    "json_object",
    "open_fraction",
    "positive_int",
    "positive_ms",
]


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value!r}")
    return number


def positive_ms(value: str) -> float:
    """argparse type: a number of milliseconds > 0 (finite)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of milliseconds > 0, got {value!r}")
    return number


def fraction(value: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {value!r}")
    return number


def open_fraction(value: str) -> float:
    """argparse type: a number strictly between 0 and 1 (a share that leaves both parts
    non-empty, such as a held-out fraction)."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {value!r}")
    return number


def json_object(example: str | None = None) -> Callable[[str], dict[str, Any]]:
    """An argparse type: a JSON object. A valid JSON value of another kind is refused with
    ``example`` (e.g. ``'{"torch_dtype": "bfloat16"}'``) when one is given."""
    like = f" like '{example}'" if example else ""

    def parse(value: str) -> dict[str, Any]:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(
                f"must be a JSON object, got {value!r} ({e.msg})"
            ) from e
        if not isinstance(parsed, dict):
            raise argparse.ArgumentTypeError(f"must be a JSON object{like}, got {value!r}")
        return parsed

    return parse


def calibration_file(value: str) -> list[tuple[str, str]]:
    """argparse type: a JSONL file of {"query": ..., "text": ...} lines (int8 calibration)."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"must be a JSONL file of query/text pairs; {value!r} is not a file"
        )
    pairs: list[tuple[str, str]] = []
    try:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            fields = ("query", "text")
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in fields):
                raise ValueError(f'line {n} needs string fields "query" and "text"')
            pairs.append((row["query"], row["text"]))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"cannot read {value!r}: {e}") from e
    if not pairs:
        raise argparse.ArgumentTypeError(f"{value!r} holds no query/text pairs")
    return pairs
