"""``HuggingFaceCrossEncoder``'s constructor arguments as crossrank scorer settings.

langchain-community's ``HuggingFaceCrossEncoder(model_name=..., model_kwargs={...})`` builds
``sentence_transformers.CrossEncoder(model_name, **model_kwargs)``: its ``model_kwargs`` are
that class's keyword arguments (``{"device": "cpu"}`` in its docstring). So that code moves
to :class:`langchain_crossrank.CrossrankCrossEncoder` by renaming the class, its
``model_kwargs`` keys that name a sentence-transformers ``CrossEncoder`` argument are read as
``HuggingFaceCrossEncoder`` reads them (:data:`SENTENCE_TRANSFORMERS_KEYS`); every other key
keeps crossrank's meaning, a keyword argument of the model's ``from_pretrained`` (which
sentence-transformers would have refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SENTENCE_TRANSFORMERS_KEYS", "UNSUPPORTED_KEYS", "from_huggingface_cross_encoder"]

#: sentence-transformers ``CrossEncoder`` arguments and the crossrank setting each becomes.
SENTENCE_TRANSFORMERS_KEYS: dict[str, str] = {
    "device": "device",
    "max_length": "max_length",
    "backend": "backend",
    "cache_folder": "cache_dir",
    "trust_remote_code": "trust_remote_code",
    "revision": "revision",
    "local_files_only": "local_files_only",
    "token": "token",
    "config_kwargs": "config_kwargs",
    "processor_kwargs": "tokenizer_kwargs",
    "tokenizer_kwargs": "tokenizer_kwargs",
    "activation_fn": "activation",
    "model_kwargs": "model_kwargs",
}

#: sentence-transformers ``CrossEncoder`` arguments crossrank has no setting for.
UNSUPPORTED_KEYS = (
    "modules",
    "prompts",
    "default_prompt_name",
    "num_labels",
    "use_kernels",
    "kernel_config",
    "model_card_data",
    "keep_in_fp32_modules",
)


def _activation(value: Any) -> str | None:
    """``activation_fn`` (a torch module or None) as crossrank's ``activation``."""
    if value is None:
        return None
    name = type(value).__name__
    if name in ("Sigmoid", "Identity") and type(value).__module__.startswith("torch.nn"):
        return "sigmoid" if name == "Sigmoid" else "raw"
    raise ValueError(
        "model_kwargs['activation_fn'] must be torch.nn.Sigmoid(), torch.nn.Identity() or "
        f"None, got {value!r:.60}; crossrank's activation='sigmoid' or 'raw' are the same"
    )


def from_huggingface_cross_encoder(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (constructor arguments) with ``model_name`` read as ``model`` and the
    sentence-transformers keys of ``model_kwargs`` moved to their settings.

    Raises:
        ValueError: ``model_name`` and ``model`` disagree; a key names a sentence-transformers
            argument crossrank does not take; a setting is given both ways with other values.
    """
    out = dict(data)
    if "model_name" in out:
        name = out.pop("model_name")
        if out.get("model") is not None and out["model"] != name:
            raise ValueError(
                f"model_name={name!r} and model={out['model']!r} name two models; "
                "give one (model_name is HuggingFaceCrossEncoder's name for model)"
            )
        out["model"] = name
    kwargs = out.get("model_kwargs")
    if not isinstance(kwargs, Mapping):
        return out  # None, or a wrong type the scorer's own check reports
    pretrained: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in UNSUPPORTED_KEYS:
            raise ValueError(
                f"model_kwargs[{key!r}] is a sentence-transformers CrossEncoder argument that "
                "crossrank does not take; leave it out (crossrank's settings are listed in "
                "docs/core.md)"
            )
        if key == "model_kwargs":
            pretrained.update(value or {})
            continue
        setting = SENTENCE_TRANSFORMERS_KEYS.get(key)
        if setting is None:
            pretrained[key] = value  # crossrank's meaning: a from_pretrained argument
            continue
        value = _activation(value) if key == "activation_fn" else value
        if value is None:
            continue
        if out.get(setting) is not None and out[setting] != value:
            raise ValueError(
                f"model_kwargs[{key!r}]={value!r} and {setting}={out[setting]!r} disagree; "
                "give one"
            )
        out[setting] = value
    out["model_kwargs"] = pretrained or None
    return out
