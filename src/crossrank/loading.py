"""Load a cross-encoder (tokenizer + sequence-classification model) and wrap its forward pass.

Failures become :class:`~crossrank.errors.ModelLoadError` subclasses that name the model,
say what went wrong and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank.backends import choose_backend
from crossrank.errors import (
    HubUnreachableError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedModelError,
)

if TYPE_CHECKING:
    import torch

__all__ = ["LoadedModel", "load_model", "resolve_device"]

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


@dataclass(frozen=True)
class LoadedModel:
    """What the scorer needs from a loaded model."""

    tokenizer: Any
    model: Any
    device: str
    max_length: int
    num_labels: int
    special_tokens: int
    pad_token_id: int
    padding_side: str
    forward: Callable[[dict[str, np.ndarray]], np.ndarray]
    backend: str = "torch"
    onnx_path: str | None = None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Pick CUDA, then MPS, then CPU when ``device`` is None."""
    import torch

    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"device must be like 'cpu', 'cuda', 'cuda:1' or 'mps', got {device!r}"
        ) from e


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


def _wrap_hub_error(model: str, error: Exception) -> ModelLoadError:
    names = _exception_names(error)
    # Checked first: LocalEntryNotFoundError is also an EntryNotFoundError.
    if names & set(_UNREACHABLE) or "offline" in str(error).lower():
        return HubUnreachableError(
            model,
            "the Hugging Face Hub could not be reached and the model is not in the local cache",
            "Download it once where the Hub is reachable (it is then cached), "
            "or pass the path of a local model folder.",
        )
    if names & set(_NOT_FOUND):
        return ModelNotFoundError(
            model,
            "no such model on the Hugging Face Hub (or it is private)",
            "Check the id, pass token=... for a private model, or pass a local folder.",
        )
    return ModelLoadError(
        model,
        f"{type(error).__name__}: {error}",
        "Check that it is a Hugging Face cross-encoder (sequence-classification) model.",
    )


def _sentence_transformers_max_length(folder: Path) -> int | None:
    cfg = folder / "sentence_bert_config.json"
    if not cfg.is_file():
        return None
    try:
        value = json.loads(cfg.read_text()).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def load_model(
    model: str,
    *,
    device: str | torch.device | None,
    max_length: int | None,
    token: str | None,
    cache_dir: str | None,
    revision: str | None,
    local_files_only: bool,
    trust_remote_code: bool,
    backend: str = "torch",
    onnx_cache_dir: str | None = None,
) -> LoadedModel:
    """Load ``model`` and return what the scorer needs; raise a ModelLoadError on failure."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    local = Path(model).expanduser()
    is_local = local.exists()
    if is_local and not local.is_dir():
        raise ModelNotFoundError(
            model, "it is a file, not a model folder", "Pass the folder that holds config.json."
        )
    if not is_local and _looks_like_path(model):
        raise ModelNotFoundError(
            model,
            f"there is no folder at {local}",
            "Pass an existing local model folder, or a Hugging Face id like "
            "'cross-encoder/ms-marco-MiniLM-L6-v2'.",
        )
    if is_local and not (local / "config.json").is_file():
        raise UnsupportedModelError(
            model,
            "the folder has no config.json",
            "Pass a Hugging Face model folder (config.json, weights, tokenizer files).",
        )
    source = str(local) if is_local else model
    hub_kwargs: dict[str, Any] = {
        "token": token,
        "cache_dir": cache_dir,
        "revision": revision,
        "local_files_only": local_files_only,
        "trust_remote_code": trust_remote_code,
    }

    try:
        config = AutoConfig.from_pretrained(source, **hub_kwargs)
    except (OSError, ValueError) as e:
        if is_local:
            raise UnsupportedModelError(
                model, f"config.json could not be read ({e})", "Re-download or re-export it."
            ) from e
        raise _wrap_hub_error(model, e) from e

    architectures = list(getattr(config, "architectures", None) or [])
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise UnsupportedModelError(
            model,
            f"it is not a cross-encoder (architectures={architectures}); crossrank needs a "
            "sequence-classification model that reads a (query, text) pair",
            "Use a cross-encoder such as 'cross-encoder/ms-marco-MiniLM-L6-v2'; a bi-encoder "
            "(embedding model) belongs in the first-stage retriever.",
        )
    num_labels = int(getattr(config, "num_labels", 1))
    if num_labels not in (1, 2):
        raise UnsupportedModelError(
            model,
            f"it has {num_labels} output labels",
            "crossrank scores relevance with one-logit or two-logit (relevant/not) models.",
        )

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs)
    except (OSError, ValueError) as e:
        if is_local:
            raise UnsupportedModelError(
                model, f"its tokenizer could not be loaded ({e})", "Add the tokenizer files."
            ) from e
        raise _wrap_hub_error(model, e) from e
    if not getattr(tokenizer, "is_fast", False):
        raise UnsupportedModelError(
            model,
            "it has no fast (Rust) tokenizer",
            "Save a tokenizer.json with the model (AutoTokenizer.from_pretrained(..., "
            "use_fast=True).save_pretrained(folder)).",
        )

    try:
        net, info = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, output_loading_info=True, **hub_kwargs
        )
    except Exception as e:  # safetensors, torch and transformers each raise their own types
        if is_local:
            raise ModelLoadError(
                model,
                f"its weights could not be read ({type(e).__name__}: {e})",
                "The weight file may be corrupt or incomplete; re-download or re-save it.",
            ) from e
        raise _wrap_hub_error(model, e) from e
    missing = [k for k in info.get("missing_keys", []) if "classifier" in k or "score" in k]
    if missing:
        raise UnsupportedModelError(
            model,
            f"its relevance head was not in the weights (missing {missing[:3]}), so scores "
            "would be random",
            "Use a fine-tuned cross-encoder, not a base encoder.",
        )

    limits = [
        v
        for v in (
            tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else None,
            getattr(config, "max_position_embeddings", None),
            _sentence_transformers_max_length(local) if is_local else None,
        )
        if isinstance(v, int) and v > 0
    ]
    model_limit = min(limits) if limits else 512
    if max_length is not None and max_length > model_limit:
        raise ValueError(
            f"max_length must be <= the model's limit of {model_limit} tokens, got {max_length}"
        )
    effective_max_length = max_length or model_limit
    special = int(tokenizer.num_special_tokens_to_add(pair=True))
    if effective_max_length <= special + 2:
        raise ValueError(
            f"max_length must leave room for text beside {special} special tokens, "
            f"got {effective_max_length}"
        )

    if device is None and backend.startswith("onnx"):
        device = "cpu"  # the ONNX backends run on onnxruntime's CPU provider
    torch_device = resolve_device(device)
    chosen = choose_backend(backend, torch_device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    onnx_path: str | None = None
    forward: Callable[[dict[str, np.ndarray]], np.ndarray]
    if chosen.startswith("onnx"):
        from crossrank.onnx_export import export_onnx, make_onnx_forward

        names = [
            n
            for n in ("input_ids", "attention_mask", "token_type_ids")
            if n in tokenizer.model_input_names
        ]
        try:
            path, _ = export_onnx(
                net.eval(),
                tokenizer,
                names,
                precision="int8" if chosen == "onnx-int8" else "fp32",
                onnx_cache_dir=onnx_cache_dir,
            )
        except Exception as e:  # the exporter raises many types; say which model failed
            raise ModelLoadError(
                model,
                f"its ONNX export failed ({type(e).__name__}: {e})",
                "Use backend='torch', or report the model's architecture to crossrank.",
            ) from e
        forward, net = make_onnx_forward(path, names, num_labels)
        onnx_path = str(path)
    else:
        dtype = {"torch-bf16": torch.bfloat16, "torch-fp16": torch.float16}.get(chosen)
        net = net.to(torch_device).eval()
        if dtype is not None:
            net = net.to(dtype)

        def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
            inputs = {k: torch.from_numpy(v).to(torch_device) for k, v in arrays.items()}
            with torch.inference_mode():
                logits = net(**inputs).logits.float()
            if num_labels == 1:
                raw = logits[:, 0]
            else:
                raw = logits[:, 1] - logits[:, 0]
            return raw.cpu().numpy().astype(np.float64)

    return LoadedModel(
        tokenizer=tokenizer,
        model=net,
        backend=chosen,
        onnx_path=onnx_path,
        device="cpu" if chosen.startswith("onnx") else str(torch_device),
        max_length=effective_max_length,
        num_labels=num_labels,
        special_tokens=special,
        pad_token_id=int(pad_id),
        padding_side=str(getattr(tokenizer, "padding_side", "right")),
        forward=forward,
    )

