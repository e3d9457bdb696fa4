"""What a user sees while an evaluation runs: a progress bar, transformers' own bars off
with ``--quiet``, and the core's per-call truncation warnings dropped (the reports count
truncation instead)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crossrank._optional import missing_extra
from crossrank._quiet import drop_log_records

__all__ = ["hf_progress_bars", "progress_bar", "quiet_truncation_warnings"]


def progress_bar(total: int, desc: str, *, enabled: bool) -> Any:
    """A tqdm bar on stderr (a no-op one when ``enabled`` is False)."""
    try:
        from tqdm.auto import tqdm
    except ImportError as e:  # pragma: no cover - tqdm comes with transformers
        raise missing_extra("The progress bar of crossrank eval/bench", "eval", e) from e
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, leave=False)


@contextmanager
def quiet_truncation_warnings() -> Iterator[None]:
    """Drop the core's per-call truncation warnings (cut at max_length, or more than
    max_windows windows) in this thread for a while; eval reports truncation in aggregate."""
    with drop_log_records("were truncated", "windows were read"):
        yield


@contextmanager
def hf_progress_bars(enabled: bool) -> Iterator[None]:
    """Turn off transformers' own progress bars ("Loading weights") while not ``enabled``."""
    from transformers.utils import logging as hf_logging

    switch = not enabled and hf_logging.is_progress_bar_enabled()
    if switch:
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if switch:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
