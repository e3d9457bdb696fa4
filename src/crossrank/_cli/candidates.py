"""Candidate files in, JSON lines out: what ``crossrank rerank`` reads and writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from crossrank._cli_checks import InputError, check_input_file

__all__ = ["read_candidates", "write_jsonl"]


def read_candidates(
    path: Path,
    fmt: str,
    text_field: str,
    title_field: str | None = None,
    score_field: str | None = None,
) -> list[dict[str, Any]]:
    """Read candidates as records with at least ``text_field``.

    ``fmt`` is ``jsonl`` (one JSON object per line), ``text`` (one candidate per line) or
    ``auto`` (JSONL when the first non-blank line starts with ``{``). Blank lines are
    skipped; a file with nothing else gives ``[]``. With ``title_field``, a JSONL record's
    title there must be a string or null when present. With ``score_field`` (a first-stage
    score, for fusion) the input must be JSONL and every record with non-blank text must
    hold a finite number there. Errors name the file and line.

    Raises:
        InputError: ``path`` is missing or a directory, is not UTF-8, or a line is not a
            JSON object with a string ``text_field`` (and a number in ``score_field``).
    """
    check_input_file(str(path), "--input")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e})") from e
    if fmt == "auto":
        first = next((line for line in lines if line.strip()), "")
        fmt = "jsonl" if first.lstrip().startswith("{") else "text"
    if score_field and fmt == "text" and any(line.strip() for line in lines):
        raise InputError(
            f"{path}: --first-stage-field needs JSONL input (one object per line with the "
            f"text and the score), got plain text lines"
        )
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if fmt == "text":
            records.append({"line": number, text_field: line})
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{number}: not valid JSON ({e.msg})") from e
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {line.strip()[:60]}")
        text = record.get(text_field)
        if not isinstance(text, str):
            raise InputError(
                f"{path}:{number}: field {text_field!r} must be a string, got "
                f"{type(text).__name__}; choose the field with --text-field"
            )
        title = record.get(title_field) if title_field else None
        if title is not None and not isinstance(title, str):
            raise InputError(
                f"{path}:{number}: field {title_field!r} must be a string or null, got "
                f"{type(title).__name__}; choose the field with --title-field "
                "(--title-field '' ignores titles)"
            )
        if score_field and text.strip():
            value = record.get(score_field, _MISSING)
            _check_first_stage_field(value, f"{path}:{number}", score_field)
        records.append(record)
    return records


_MISSING = object()


def _check_first_stage_field(value: Any, where: str, field: str) -> None:
    """A record's first-stage score must be a finite number."""
    if value is _MISSING or value is None:
        got = "no such field" if value is _MISSING else "null"
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        got = f"{type(value).__name__} {json.dumps(value)[:40]}"
    elif value != value or value in (float("inf"), float("-inf")):
        got = str(value)
    else:
        return
    raise InputError(
        f"{where}: field {field!r} must be a finite number (the candidate's first-stage "
        f"score, for --fusion), got {got}; choose the field with --first-stage-field"
    )


def write_jsonl(rows: list[dict[str, Any]], out: str | None) -> None:
    """Write ``rows`` as JSON lines to ``out`` (None or ``-``: stdout), making its folder."""
    if out in (None, "-"):
        _dump(rows, sys.stdout)
        return
    target = Path(out).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as f:
        _dump(rows, f)


def _dump(rows: list[dict[str, Any]], stream: TextIO) -> None:
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")
