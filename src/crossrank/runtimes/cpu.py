"""What this CPU offers the runtimes: its flags, native bf16 and int8 dot products, the
cores this process may use, and the one-line summary printed beside every speed figure.

Every choice that depends on the CPU class (AVX2 only; AVX512-VNNI without native bf16;
AVX512-BF16/AMX) reads these functions, so tests stub them to cover the classes a
developer's machine does not have.
"""

from __future__ import annotations

import contextlib
import os
import platform
from functools import lru_cache

__all__ = [
    "CPU_CLASSES",
    "RELEVANT_FLAGS",
    "cpu_class",
    "cpu_flags",
    "cpu_has_native_bf16",
    "cpu_has_vnni",
    "cpu_summary",
    "usable_cores",
]

#: CPU flags that decide which kernels are fast; printed with every speed figure.
RELEVANT_FLAGS: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of this CPU, from ``/proc/cpuinfo`` where there is one."""
    model, flags = platform.processor() or platform.machine(), frozenset[str]()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
    return model, flags


def cpu_flags() -> dict[str, bool]:
    """Whether this CPU has each of :data:`RELEVANT_FLAGS` (all False where unknown)."""
    _, flags = _cpuinfo()
    return {flag: flag in flags for flag in RELEVANT_FLAGS}


def cpu_summary() -> str:
    """One line: the CPU's model name, core count and which relevant flags it has."""
    model, _ = _cpuinfo()
    have = [f for f, ok in cpu_flags().items() if ok] or ["none of " + ", ".join(RELEVANT_FLAGS)]
    return f"{model}; {os.cpu_count()} cores; flags: {' '.join(have)}"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX).

    Without them PyTorch emulates bf16, which is far slower than fp32 (measured about 100x
    on an AVX2-only AMD EPYC), so ``auto`` does not even try bf16 there.
    """
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return False  # Apple CPUs: no bf16 fast path in PyTorch's CPU kernels
    _, flags = _cpuinfo()
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_vnni() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8),
    the ones that make int8 matrix products faster than fp32."""
    _, flags = _cpuinfo()
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


#: The CPU classes the backends' choices depend on, fastest int8/bf16 hardware first.
CPU_CLASSES: tuple[str, ...] = ("native-bf16", "vnni", "avx2", "other")


def cpu_class() -> str:
    """This CPU's class: ``"native-bf16"`` (AVX512-BF16 or AMX: bf16 and int8 are both
    fast), ``"vnni"`` (int8 dot products, AVX512-VNNI or AVX-VNNI, without native bf16: int8
    is the only fast path), ``"avx2"`` (neither), or ``"other"``."""
    if cpu_has_native_bf16():
        return "native-bf16"
    if cpu_has_vnni():
        return "vnni"
    return "avx2" if cpu_flags()["avx2"] else "other"


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, else ``os.cpu_count()``): the
    intra-op threads of the ONNX Runtime and OpenVINO backends."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)
