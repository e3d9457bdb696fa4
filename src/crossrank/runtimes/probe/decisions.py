"""``auto``'s decisions: which backends are candidates here, the decision's cache key (the
model, this CPU and the library versions), the on-disk cache, and :func:`resolve_auto`.

The environment variable ``CROSSRANK_BACKEND`` (a backend name) makes ``auto`` resolve to
that backend without probing; an explicit ``backend=`` never probes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from crossrank.runtimes import backends, cpu, openvino
from crossrank.runtimes.cache import cache_root
from crossrank.runtimes.probe.run import Decision

__all__ = [
    "ENV_BACKEND",
    "backend_from_env",
    "candidate_backends",
    "decision_key",
    "resolve_auto",
]

logger = logging.getLogger("crossrank")

#: The environment variable that names the backend ``auto`` resolves to, skipping the probe.
ENV_BACKEND = "CROSSRANK_BACKEND"

#: Bump when the probe's method, data or thresholds change: old decisions are not reused.
_PROBE_VERSION = "5"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def decision_key(fingerprint: str, device: str) -> str:
    """The decision cache's key for a model (its content hash) on ``device`` here."""
    from crossrank._version import __version__

    model = cpu.cpu_summary().split(";", 1)[0]
    parts = {
        "probe": _PROBE_VERSION,
        "model": fingerprint,
        "device": device,
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": cpu.cpu_flags(),
        "python": platform.python_version(),
        "crossrank": __version__,
        **{
            name: _version(name)
            for name in ("torch", "transformers", "onnxruntime", "onnx", "openvino", "nncf")
        },
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def candidate_backends(device: str) -> list[str]:
    """The backends ``auto`` may pick on ``device`` here (``"cpu"``, ``"cuda"``...).

    On a CPU: ``torch``; ``torch-bf16`` where the CPU computes bf16 natively; ``onnx`` with
    the ``onnx`` extra; ``openvino`` and ``openvino-int8`` with the ``openvino`` extra,
    ``openvino-bf16`` where OpenVINO computes bf16 natively. ``onnx-int8`` (dynamic
    quantization) is never a candidate: it lost 0.036 NDCG@10 on SciFact, beyond the
    accuracy guard, and the probe's small sample cannot see that. On CUDA: ``torch``,
    ``torch-fp16`` and ``torch-bf16``; elsewhere only ``torch``.
    """
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        return ["torch", "torch-fp16", "torch-bf16"]
    if kind != "cpu":
        return ["torch"]
    found = ["torch"]
    if cpu.cpu_has_native_bf16():
        found.append("torch-bf16")
    if backends.onnx_available():
        found.append("onnx")
    if openvino.openvino_available("openvino"):
        found.append("openvino")
        if openvino.openvino_supports_bf16():
            found.append("openvino-bf16")
        if openvino.openvino_available("openvino-int8"):
            found.append("openvino-int8")
    return found


def backend_from_env() -> str | None:
    """The backend named by ``CROSSRANK_BACKEND``, or None when it is unset or empty.

    Raises:
        ValueError: It names no backend.
    """
    value = os.environ.get(ENV_BACKEND, "").strip()
    if not value:
        return None
    if value not in backends.BACKENDS:
        raise ValueError(
            f"the environment variable {ENV_BACKEND} must name a backend, one of "
            f"{backends.BACKENDS}, got {value!r}; unset it to let backend='auto' measure "
            "this machine"
        )
    return value


def _decision_path(key: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    return cache_root(cache_dir) / "auto" / f"{key}.json"


def _read_decision(path: Path) -> Decision | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Decision.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or unreadable: probe again (the new file replaces it)


def _write_decision(path: Path, decision: Decision) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(decision.to_json(), f, indent=2)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (POSIX ``flock``) so one process probes at a time;
    where there is no ``fcntl`` the writes stay atomic and both processes probe."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def resolve_auto(
    fingerprint: str,
    device: str,
    probe: Callable[[list[str], str], Decision],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    candidates: Sequence[str] | None = None,
) -> Decision:
    """What ``auto`` means for this model here: from ``CROSSRANK_BACKEND``, the cache, or a
    probe whose decision is then cached.

    Args:
        fingerprint: The model's content hash
            (:func:`crossrank.runtimes.cache.model_fingerprint`).
        device: The device the model runs on (``"cpu"``, ``"cuda:0"``...).
        probe: Runs the probe on (candidates, key), e.g. :func:`run_probe` bound to the
            loaded model.
        cache_dir: The cache folder (see :func:`crossrank.runtimes.cache.cache_root`); the
            decisions live in its ``auto/`` folder.
        candidates: Backends to consider (default: :func:`candidate_backends`).

    Returns:
        The :class:`Decision`; it is logged at INFO when probed, at DEBUG when read.
    """
    named = backend_from_env()
    if named is not None and named != "auto":
        return Decision(backend=named, key="", cpu=cpu.cpu_summary(), source="env")
    key = decision_key(fingerprint, device)
    path = _decision_path(key, cache_dir)
    cached = _read_decision(path)
    if cached is None:
        with _exclusive(path.with_suffix(".lock")):
            cached = _read_decision(path)  # another process may have probed meanwhile
            if cached is None:
                found = list(candidates) if candidates is not None else candidate_backends(device)
                decision = probe(found, key)
                _write_decision(path, decision)
                logger.info(
                    "crossrank: auto probe chose %s in %.1f s\n%s",
                    decision.backend,
                    decision.probe_seconds,
                    decision.summary(),
                )
                return decision
    logger.debug("crossrank: auto -> %s (cached decision %s)", cached.backend, path)
    return cached
