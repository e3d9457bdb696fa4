"""Where a model's files come from: a local folder or a Hugging Face Hub id, and one error
wrapper around every ``from_pretrained`` call.

Failures become :class:`~crossrank.errors.ModelLoadError` subclasses that name the model,
say what went wrong and what to do: a local folder's failure says which part of the folder
is wrong; a Hub id's is classified as unreachable, not found, or other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossrank._hub import UNREACHABLE_HINT
from crossrank._quiet import quiet_transformers
from crossrank.errors import (
    HubUnreachableError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedModelError,
)

__all__ = [
    "HUB_OPTIONS",
    "ModelSource",
    "export_key_options",
    "from_pretrained",
    "read_json",
    "read_text",
    "reserved_load_kwargs",
    "resolve_source",
    "source_file",
    "torch_dtype_names",
]

#: The scorer options crossrank passes to every ``from_pretrained`` call itself.
HUB_OPTIONS: tuple[str, ...] = (
    "token",
    "cache_dir",
    "revision",
    "local_files_only",
    "trust_remote_code",
)

_UNREACHABLE = (
    "LocalEntryNotFoundError",
    "OfflineModeIsEnabled",
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "MaxRetryError",
    "NewConnectionError",
    "ConnectError",
)
_NOT_FOUND = ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError")


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith(("/", "./", "../", "~", "\\"))
        or model.count("/") > 1
        or (len(model) > 1 and model[1] == ":")
    )


def _exception_names(error: BaseException) -> set[str]:
    names: set[str] = set()
    seen: BaseException | None = error
    while seen is not None and len(names) < 50:
        names.update(cls.__name__ for cls in type(seen).__mro__)
        seen = seen.__cause__ or seen.__context__
    return names


def reserved_load_kwargs(option: str) -> dict[str, str]:
    """Keys ``option`` (``model_kwargs``, ``tokenizer_kwargs`` or ``config_kwargs``) must not
    hold, because crossrank sets them itself, each with what to do instead."""
    reserved = {
        key: f"crossrank passes its own {key}; set CrossEncoderScorer({key}=...) instead"
        for key in HUB_OPTIONS
    }
    if option == "model_kwargs":
        reserved["config"] = (
            "crossrank passes the config it loaded; put config settings in config_kwargs"
        )
        reserved["output_loading_info"] = (
            "crossrank sets it to check the relevance head; leave it out"
        )
    elif option == "config_kwargs":
        reserved["return_unused_kwargs"] = "crossrank needs the config alone; leave it out"
    elif option != "tokenizer_kwargs":
        raise ValueError(
            "option must be 'model_kwargs', 'tokenizer_kwargs' or 'config_kwargs', got "
            f"{option!r}"
        )
    return reserved


@dataclass(frozen=True)
class ModelSource:
    """Where a model is read from.

    Attributes:
        name: The model as it was asked for (an id or a path), for messages.
        path: What ``from_pretrained`` reads: the local folder, or the Hub id.
        folder: The local folder; None for a Hub id.
    """

    name: str
    path: str
    folder: Path | None

    @property
    def is_local(self) -> bool:
        """Whether the model is a local folder."""
        return self.folder is not None


def resolve_source(model: str) -> ModelSource:
    """Decide whether ``model`` is a local folder or a Hugging Face Hub id.

    Raises:
        ModelNotFoundError: ``model`` is a file, or looks like a path with no folder there.
        UnsupportedModelError: The folder has no ``config.json``.
    """
    local = Path(model).expanduser()
    if not local.exists():
        if _looks_like_path(model):
            raise ModelNotFoundError(
                model,
                f"there is no folder at {local}",
                "Pass an existing local model folder, or a Hugging Face id like "
                "'cross-encoder/ms-marco-MiniLM-L6-v2'.",
            )
        return ModelSource(name=model, path=model, folder=None)
    if not local.is_dir():
        raise ModelNotFoundError(
            model, "it is a file, not a model folder", "Pass the folder that holds config.json."
        )
    if not (local / "config.json").is_file():
        raise UnsupportedModelError(
            model,
            "the folder has no config.json",
            "Pass a Hugging Face model folder (config.json, weights, tokenizer files).",
        )
    return ModelSource(name=model, path=str(local), folder=local)


def _hub_failure(error: Exception) -> tuple[type[ModelLoadError], str, str]:
    """Classify a failed Hub load: (error class, reason, hint)."""
    names = _exception_names(error)
    # Checked first: LocalEntryNotFoundError is also an EntryNotFoundError.
    if names & set(_UNREACHABLE) or "offline" in str(error).lower():
        return (
            HubUnreachableError,
            "the Hugging Face Hub could not be reached and the model is not in the local cache",
            UNREACHABLE_HINT,
        )
    if names & set(_NOT_FOUND):
        return (
            ModelNotFoundError,
            "no such model on the Hugging Face Hub (or it is private)",
            "Check the id, pass token=... for a private model, or pass a local folder.",
        )
    return (
        ModelLoadError,
        f"{type(error).__name__}: {error}",
        "Check that it is a Hugging Face cross-encoder (sequence-classification) model.",
    )


# What each part of a local folder that fails to load says: (error class, reason, hint).
_LOCAL_FAILURES: dict[str, tuple[type[ModelLoadError], str, str]] = {
    "config": (
        UnsupportedModelError,
        "config.json could not be read ({error})",
        "Re-download or re-export it.",
    ),
    "tokenizer": (
        UnsupportedModelError,
        "its tokenizer could not be loaded ({error})",
        "Add the tokenizer files.",
    ),
    "model": (
        ModelLoadError,
        "its weights could not be read ({kind}: {error})",
        "The weight file may be corrupt or incomplete; re-download or re-save it.",
    ),
}
_PART_OPTION = {"config": "config_kwargs", "tokenizer": "tokenizer_kwargs", "model": "model_kwargs"}


def from_pretrained(
    loader: Any,
    source: ModelSource,
    part: str,
    hub_kwargs: Mapping[str, Any],
    user_kwargs: Mapping[str, Any] | None,
    **kwargs: Any,
) -> Any:
    """``loader.from_pretrained`` with every failure turned into a ModelLoadError.

    ``part`` is ``"config"``, ``"tokenizer"`` or ``"model"``. A local folder's failure
    says which part of the folder is wrong; a Hub id's is classified by
    :func:`_hub_failure` (unreachable, not found, other). Either way the hint names the
    user's ``*_kwargs`` when some were passed, as they may be the cause.
    """
    try:
        with quiet_transformers():  # no "Loading weights" bar; the caller's settings stay
            return loader.from_pretrained(
                source.path, **hub_kwargs, **(user_kwargs or {}), **kwargs
            )
    except Exception as e:  # config, tokenizer, torch and safetensors each raise their own
        remote = _remote_code_failure(source, e, bool(hub_kwargs.get("trust_remote_code")))
        if remote is not None:
            raise remote from e
        if source.is_local:
            cls, reason, hint = _LOCAL_FAILURES[part]
            reason = reason.format(kind=type(e).__name__, error=e)
        else:
            cls, reason, hint = _hub_failure(e)
        if user_kwargs:
            hint += (
                f" Check {_PART_OPTION[part]} ({', '.join(sorted(user_kwargs))}), passed to "
                f"{getattr(loader, '__name__', 'the loader')}.from_pretrained."
            )
        raise cls(source.name, reason, hint) from e


def _remote_code_failure(
    source: ModelSource, error: Exception, trusted: bool
) -> ModelLoadError | None:
    """The error for a model that ships its own modelling code (``auto_map``): it needs
    ``trust_remote_code=True``, or its code does not run on the installed transformers.
    None for any other failure."""
    text = str(error)
    if not trusted and "trust_remote_code" in text:
        return UnsupportedModelError(
            source.name,
            "it ships its own modelling code (auto_map in its config), which runs only when "
            "allowed",
            "Pass trust_remote_code=True if you trust the code in its repository.",
        )
    if not trusted:
        return None
    import traceback

    import transformers

    frames = traceback.extract_tb(error.__traceback__)
    chain = [error, error.__cause__, error.__context__]
    in_remote = any("transformers_modules" in (f.filename or "") for f in frames) or any(
        c is not None and "transformers_modules" in str(c) for c in chain
    )
    if not in_remote:
        return None
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return ModelLoadError(
        source.name,
        f"its own modelling code does not run on transformers {transformers.__version__} "
        f"({type(error).__name__}: {first_line})",
        "Install the transformers version its model card names in another environment, or "
        "use a checkpoint that needs no remote code.",
    )


def torch_dtype_names(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``model_kwargs`` with ``"torch.float16"``-style dtype strings (as Haystack saves
    them) written ``"float16"``, the form transformers reads."""
    out = dict(kwargs or {})
    for key in ("torch_dtype", "dtype"):
        value = out.get(key)
        if isinstance(value, str) and value.startswith("torch."):
            out[key] = value[len("torch.") :]
    return out


def export_key_options(
    model_kwargs: Mapping[str, Any] | None, config_kwargs: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The loading options that are part of the ONNX export's cache key (the ones given)."""
    given = {"model_kwargs": model_kwargs, "config_kwargs": config_kwargs}
    return {name: dict(value) for name, value in given.items() if value}


def source_file(
    source: ModelSource, name: str, hub_kwargs: Mapping[str, Any] | None = None
) -> Path | None:
    """A file of the model (``"modules.json"``, ``"1_LogitScore/config.json"``...): in its
    local folder, or from the Hub (downloaded, or read from the cache when offline); None
    when the model has no such file or it cannot be had."""
    if source.folder is not None:
        path = source.folder / name
        return path if path.is_file() else None
    from transformers.utils.hub import cached_file

    kwargs = {
        k: v
        for k, v in (hub_kwargs or {}).items()
        if k in ("token", "cache_dir", "revision", "local_files_only")
    }
    try:
        with quiet_transformers():
            found = cached_file(
                source.path,
                name,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                **kwargs,
            )
    except Exception:  # an optional file: its absence is not an error
        return None
    return Path(found) if found else None


def read_text(
    source: ModelSource, name: str, hub_kwargs: Mapping[str, Any] | None = None
) -> str | None:
    """The text of one of the model's files, or None (see :func:`source_file`)."""
    path = source_file(source, name, hub_kwargs)
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def read_json(
    source: ModelSource, name: str, hub_kwargs: Mapping[str, Any] | None = None
) -> Any:
    """One of the model's JSON files, parsed, or None (absent, unreadable or not JSON)."""
    text = read_text(source, name, hub_kwargs)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
