"""The on-disk cache of exported models and ``auto``'s decisions.

The cache folder is ``onnx_cache_dir`` if given, else the ``CROSSRANK_CACHE`` environment
variable, else ``$XDG_CACHE_HOME/crossrank`` (``~/.cache/crossrank``), with files under
``onnx/``. Each model gets a folder named by :func:`model_fingerprint`, a hash of the score
net's description (family, head, config), of every weight tensor, and of the options it
was loaded with, so a changed model or setting gets a new file and a stale one is never
read.

Files are written under a unique temporary name and moved into place with
:func:`os.replace` (folders with :func:`os.rename`), which is atomic: several processes
exporting the same model at once each write their own, and a reader only ever sees a
complete file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["atomic_target", "cache_root", "folder_in_place", "model_fingerprint"]


def cache_root(onnx_cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds exported files (created on first export)."""
    if onnx_cache_dir is not None:
        return Path(onnx_cache_dir).expanduser()
    env = os.environ.get("CROSSRANK_CACHE")
    if env:
        return Path(env).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "crossrank" / "onnx"


def model_fingerprint(net: Any, load_options: Mapping[str, Any] | None = None) -> str:
    """A hash of what the score net computes and of its weights, and of the options it was
    loaded with.

    It changes whenever the model does. ``load_options`` (the scorer's ``model_kwargs`` and
    ``config_kwargs``) are hashed too, as some change the exported graph without changing
    a weight or a saved config entry (an attention implementation, for instance); values
    that are not JSON are hashed by their ``str``.
    """
    import torch

    h = hashlib.sha256()
    describe = getattr(net, "describe", None)
    about = describe() if callable(describe) else net.config.to_dict()
    h.update(json.dumps(about, sort_keys=True, default=str).encode())
    if load_options:
        h.update(json.dumps(load_options, sort_keys=True, default=str).encode())
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def atomic_target(folder: Path, name: str) -> tuple[Path, Path]:
    """``(folder / name, a new temporary file beside it)``: write the temporary file, then
    ``os.replace`` it onto the target."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return folder / name, Path(tmp)


def folder_in_place(final: Path, write: Callable[[Path], None], marker: str) -> bool:
    """Write a folder with ``write(tmp)`` and rename it to ``final`` atomically.

    Returns True if this call's folder was put in place, False if another writer's was
    already there (its ``marker`` file exists; this call's copy is then discarded).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if (final / marker).is_file():
                return False  # another process won the race; its folder is complete
            raise
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
