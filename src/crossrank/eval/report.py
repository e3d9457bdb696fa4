"""What every evaluation report shares: the machine it ran on, the JSON file, and aligned
plain-text tables (``crossrank eval``, ``bench``, ``calibrate`` and ``train`` print theirs with
:func:`align_table`)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crossrank._version import __version__

__all__ = ["align_table", "cell", "machine_info", "write_json"]


def machine_info(device: str | None = None) -> dict[str, Any]:
    """Platform, CPU count, Python and torch versions, torch threads, and the device used."""
    import torch

    from crossrank.runtimes.devices import resolve_device

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(resolve_device(device)),
        "crossrank_version": __version__,
    }


def write_json(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``report`` as indented JSON, creating the parent folder."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return out


def align_table(lines: Sequence[Sequence[str]], footer: str = "") -> str:
    """Align rows of cells (the first row the header): first column left, the rest right,
    a rule under the header, then ``footer`` after a blank line."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join([*out, "", footer] if footer else out)


def cell(value: Any, digits: int) -> str:
    """A table cell: ``-`` for None, a float with ``digits`` decimals, else ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
