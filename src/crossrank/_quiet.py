"""Keep third-party and per-call output out of crossrank's calls, without touching the
caller's settings.

- :func:`quiet_transformers`: transformers draws a "Loading weights" progress bar on every
  ``from_pretrained`` (5.x). Inside this context manager the bars transformers creates *in
  the calling thread* are empty ones; other threads, and the caller's own transformers
  settings (``enable_progress_bar``/``disable_progress_bar``, verbosity, their tqdm hook),
  are left as they were. It uses transformers' ``set_tqdm_hook`` where it exists; on older
  5.x releases without it, it switches transformers' bars off while any crossrank load
  runs and switches them back on after the last one (only when they were on).
- :func:`drop_log_records`: drop some of the ``crossrank`` logger's records emitted by
  the calling thread for a while (the CLI and ``crossrank eval`` report those themselves).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["drop_log_records", "quiet_transformers"]

# How deep the current thread (or task) is in quiet_transformers sections.
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("crossrank_quiet_depth", default=0)
_lock = threading.Lock()
_sections = 0  # quiet sections running in every thread together
_previous_hook: Any = None  # the hook that was set before ours (the caller's, usually None)
_switched_off = False  # fallback: whether we turned transformers' bars off


def _hook(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """transformers' tqdm hook: an empty bar inside a quiet section, else what was there."""
    if _depth.get():
        from transformers.utils.logging import EmptyTqdm

        return EmptyTqdm(*args, **kwargs)  # type: ignore[no-untyped-call]
    previous = _previous_hook
    if previous is not None:
        return previous(factory, args, kwargs)
    return factory(*args, **kwargs)


def _enter() -> None:
    global _sections, _previous_hook, _switched_off
    from transformers.utils import logging as hf_logging

    with _lock:
        _sections += 1
        if _sections > 1:
            return
        set_hook = getattr(hf_logging, "set_tqdm_hook", None)
        if set_hook is not None:
            _previous_hook = set_hook(_hook)
        elif hf_logging.is_progress_bar_enabled():
            # No per-thread hook in this transformers: the module-level switch only
            # (not disable_progress_bar(), which also switches off huggingface_hub's bars).
            hf_logging._tqdm_active = False
            _switched_off = True


def _exit() -> None:
    global _sections, _previous_hook, _switched_off
    from transformers.utils import logging as hf_logging

    with _lock:
        _sections -= 1
        if _sections > 0:
            return
        set_hook = getattr(hf_logging, "set_tqdm_hook", None)
        if set_hook is not None:
            current = set_hook(_previous_hook)
            if current is not _hook:  # someone set their own hook meanwhile: keep theirs
                set_hook(current)
            _previous_hook = None
        elif _switched_off:
            hf_logging._tqdm_active = True
            _switched_off = False


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Empty progress bars for transformers calls made in this thread while inside.

    Re-entrant and safe to use from several threads at once; when the last section ends,
    transformers' settings are what they were before the first began.

    Example:
        >>> from transformers import AutoConfig
        >>> with quiet_transformers():
        ...     config = AutoConfig.from_pretrained("path/to/model")
    """
    token = _depth.set(_depth.get() + 1)
    _enter()
    try:
        yield
    finally:
        _exit()
        _depth.reset(token)


class _DropRecords(logging.Filter):
    """Drop records of one thread whose message contains one of ``fragments``
    (every record below ERROR when ``fragments`` is empty)."""

    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        if not self.fragments:
            return record.levelno >= logging.ERROR
        message = str(record.msg)
        return not any(fragment in message for fragment in self.fragments)


@contextmanager
def drop_log_records(*fragments: str, logger: str = "crossrank") -> Iterator[None]:
    """Drop ``logger``'s records from the calling thread whose message contains one of
    ``fragments`` (with none given: every record below ERROR), while inside.

    Records from other threads pass, so a library call running elsewhere keeps its
    warnings.

    Example:
        >>> with drop_log_records("were truncated"):
        ...     scorer.score(query, long_texts)  # no per-call truncation warning
    """
    flt = _DropRecords(fragments)
    target = logging.getLogger(logger)
    target.addFilter(flt)
    try:
        yield
    finally:
        target.removeFilter(flt)
