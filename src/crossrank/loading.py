"""Load a cross-encoder (tokenizer + sequence-classification model) and wrap its forward pass.

:func:`load_model` is the hub; the steps are small functions: :func:`resolve_source`
(a local folder or a Hub id), one error wrapper around every ``from_pretrained`` call,
the checks that the files are a cross-encoder, the max-length resolution, and the forward
construction (torch, ONNX or OpenVINO; :func:`_build_forward`), each of which turns
logits into relevance with :func:`relevance`, and ``auto``'s resolution by a measured probe
(:func:`_resolve_auto`, :mod:`crossrank.probe`).

Failures become :class:`~crossrank.errors.ModelLoadError` subclasses that name the model,
say what went wrong and what to do.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank._hub import UNREACHABLE_HINT, cache_only
from crossrank._quiet import quiet_transformers
from crossrank.backends import choose_backend
from crossrank.errors import (
    HubUnreachableError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedModelError,
)

if TYPE_CHECKING:
    import torch

    from crossrank.openvino_export import StreamForward
    from crossrank.probe import Decision

__all__ = [
    "HUB_OPTIONS",
    "LoadedModel",
    "ModelSource",
    "load_model",
    "relevance",
    "reserved_load_kwargs",
    "resolve_device",
    "resolve_source",
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
    """The exported file the backend runs (an ONNX file, or an OpenVINO ``model.xml``)."""
    decision: Decision | None = None
    """With ``backend="auto"``: what it resolved to and the probe's measurements."""
    forward_many: StreamForward | None = None
    """Runs several batches at once (OpenVINO's streams), or None: one at a time."""

    @property
    def parallel(self) -> int:
        """Batches the backend runs at once (a call is split into at least this many)."""
        return 1 if self.forward_many is None else self.forward_many.parallel


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


def _sentence_transformers_max_length(folder: Path) -> int | None:
    cfg = folder / "sentence_bert_config.json"
    if not cfg.is_file():
        return None
    try:
        value = json.loads(cfg.read_text()).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


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


def _from_pretrained(
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


def _check_cross_encoder(model: str, config: Any) -> int:
    """Return the number of labels if ``config`` is a one- or two-logit cross-encoder."""
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
    return num_labels


def _check_fast_tokenizer(model: str, tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise UnsupportedModelError(
            model,
            "it has no fast (Rust) tokenizer",
            "Save a tokenizer.json with the model (AutoTokenizer.from_pretrained(..., "
            "use_fast=True).save_pretrained(folder)).",
        )


def _check_relevance_head(model: str, info: Mapping[str, Any]) -> None:
    missing = [k for k in info.get("missing_keys", []) if "classifier" in k or "score" in k]
    if missing:
        raise UnsupportedModelError(
            model,
            f"its relevance head was not in the weights (missing {missing[:3]}), so scores "
            "would be random",
            "Use a fine-tuned cross-encoder, not a base encoder.",
        )


def _resolve_max_length(
    requested: int | None, tokenizer: Any, config: Any, source: ModelSource
) -> tuple[int, int]:
    """Tokens per pair the model reads, and the special tokens a pair takes.

    The model's limit is the smallest of the tokenizer's ``model_max_length``, the config's
    ``max_position_embeddings`` and a sentence-transformers ``max_seq_length`` (512 when
    none is known); ``requested`` may lower it, not raise it.

    Raises:
        ValueError: ``requested`` is above the model's limit, or leaves no room for text.
    """
    limits = [
        v
        for v in (
            tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else None,
            getattr(config, "max_position_embeddings", None),
            _sentence_transformers_max_length(source.folder) if source.folder else None,
        )
        if isinstance(v, int) and v > 0
    ]
    model_limit = min(limits) if limits else 512
    if requested is not None and requested > model_limit:
        raise ValueError(
            f"max_length must be <= the model's limit of {model_limit} tokens, got {requested}"
        )
    max_length = requested or model_limit
    special = int(tokenizer.num_special_tokens_to_add(pair=True))
    if max_length <= special + 2:
        raise ValueError(
            f"max_length must leave room for text beside {special} special tokens, "
            f"got {max_length}"
        )
    return max_length, special


def relevance(logits: np.ndarray, num_labels: int) -> np.ndarray:
    """Relevance logits (float64, one per row) from a model's output logits.

    A one-logit model's logit is its relevance; a two-logit (not relevant, relevant)
    model's is the positive class's log-odds, ``logits[:, 1] - logits[:, 0]`` (its sigmoid
    is the softmax probability of the positive class).

    Raises:
        ValueError: ``num_labels`` is not 1 or 2, or ``logits`` has fewer columns.
    """
    arr = np.asarray(logits, dtype=np.float64)
    if num_labels not in (1, 2) or arr.ndim != 2 or arr.shape[1] < num_labels:
        raise ValueError(
            f"relevance needs (rows, num_labels) logits with num_labels 1 or 2, got shape "
            f"{arr.shape} and num_labels={num_labels}"
        )
    if num_labels == 1:
        return arr[:, 0].copy()
    return arr[:, 1] - arr[:, 0]


def _torch_forward(
    net: Any, device: torch.device, dtype: torch.dtype | None, num_labels: int
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any]:
    """The model on ``device`` (cast to ``dtype`` if given) and its forward function."""
    import torch

    net = net.to(device).eval()
    if dtype is not None:
        net = net.to(dtype)

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        inputs = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
        with torch.inference_mode():
            logits = net(**inputs).logits.float()
        return relevance(logits.cpu().numpy(), num_labels)

    return forward, net


def _input_names(tokenizer: Any) -> list[str]:
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    return [n for n in inputs if n in tokenizer.model_input_names]


def _onnx_forward(
    model: str,
    net: Any,
    tokenizer: Any,
    *,
    backend: str,
    num_labels: int,
    onnx_cache_dir: str | None,
    load_options: Mapping[str, Any],
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any, str]:
    """Export ``net`` (fp32) to ONNX, or reuse the cached file, and open a session on it.

    Returns the forward function, the session and the file's path.
    """
    from crossrank.onnx_export import export_onnx, make_onnx_forward

    names = _input_names(tokenizer)
    try:
        path, _ = export_onnx(
            net.float().eval(),
            tokenizer,
            names,
            precision="int8" if backend == "onnx-int8" else "fp32",
            onnx_cache_dir=onnx_cache_dir,
            load_options=load_options,
        )
    except Exception as e:  # the exporter raises many types; say which model failed
        raise ModelLoadError(
            model,
            f"its ONNX export failed ({type(e).__name__}: {e})",
            "Use backend='torch', or report the model's architecture to crossrank.",
        ) from e
    forward, session = make_onnx_forward(path, names, num_labels)
    return forward, session, str(path)


def _openvino_forward(
    model: str,
    net: Any,
    tokenizer: Any,
    *,
    backend: str,
    num_labels: int,
    cache_dir: str | None,
    load_options: Mapping[str, Any],
    max_length: int,
    calibration: Sequence[tuple[str, str]] | None,
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any, str, StreamForward | None]:
    """Convert ``net`` to OpenVINO (int8 for ``openvino-int8``), or reuse the cached model,
    and compile it (bf16 inference precision for ``openvino-bf16``).

    Returns the forward function, the compiled model, the ``model.xml`` path and, with
    several streams, the :class:`~crossrank.openvino_export.StreamForward` that runs that
    many batches at once.
    """
    from crossrank.openvino_export import (
        export_openvino,
        make_openvino_forward,
        openvino_supports_bf16,
    )

    names = _input_names(tokenizer)
    try:
        path, _ = export_openvino(
            net.float().eval(),
            tokenizer,
            names,
            precision="int8" if backend == "openvino-int8" else "fp32",
            cache_dir=cache_dir,
            load_options=load_options,
            calibration=calibration,
            max_length=max_length,
        )
    except Exception as e:  # the converter and NNCF raise many types; say which model failed
        raise ModelLoadError(
            model,
            f"its OpenVINO conversion failed ({type(e).__name__}: {e})",
            "Use backend='torch' or 'onnx', or report the model's architecture to crossrank.",
        ) from e
    precision = "bf16" if backend == "openvino-bf16" else "f32"
    if backend == "openvino-int8" and openvino_supports_bf16():
        # The layers int8 leaves in float run in bf16 where the CPU computes it natively,
        # as OpenVINO itself does by default there (its guard figures: docs/backends.md).
        precision = "bf16"
    forward, compiled, many = make_openvino_forward(
        path, names, num_labels, inference_precision=precision
    )
    return forward, compiled, str(path), many


@dataclass(frozen=True)
class _Build:
    """What every backend's forward construction needs (one loaded model)."""

    model: str
    tokenizer: Any
    num_labels: int
    device: torch.device
    cache_dir: str | None
    load_options: Mapping[str, Any]
    max_length: int
    calibration: Sequence[tuple[str, str]] | None


def _build_forward(
    build: _Build, net: Any, backend: str
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any, str | None, StreamForward | None]:
    """``backend``'s forward function on ``net``: (forward, model or session, file path,
    the runner of several batches at once or None)."""
    import torch

    if backend.startswith("onnx"):
        return (*_onnx_forward(
            build.model,
            net,
            build.tokenizer,
            backend=backend,
            num_labels=build.num_labels,
            onnx_cache_dir=build.cache_dir,
            load_options=build.load_options,
        ), None)
    if backend.startswith("openvino"):
        return _openvino_forward(
            build.model,
            net,
            build.tokenizer,
            backend=backend,
            num_labels=build.num_labels,
            cache_dir=build.cache_dir,
            load_options=build.load_options,
            max_length=build.max_length,
            calibration=build.calibration,
        )
    dtype = {"torch-bf16": torch.bfloat16, "torch-fp16": torch.float16}.get(backend)
    forward, net = _torch_forward(net, build.device, dtype, build.num_labels)
    return forward, net, None, None


def _resolve_auto(build: _Build, net: Any) -> Decision:
    """``auto``'s backend for this model here: ``CROSSRANK_BACKEND``, the cached decision,
    or a probe of every candidate backend on copies of ``net`` (see :mod:`crossrank.probe`)."""
    from crossrank.onnx_export import model_fingerprint
    from crossrank.probe import resolve_auto, run_probe

    def forward_of(backend: str) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], Any]:
        # The torch backends move or cast the model they get: give them a copy.
        target = copy.deepcopy(net) if backend.startswith("torch") else net
        forward, _, _, many = _build_forward(build, target, backend)
        return forward, many

    def probe(candidates: list[str], key: str) -> Decision:
        return run_probe(
            forward_of,
            candidates,
            tokenizer=build.tokenizer,
            max_length=build.max_length,
            input_names=_input_names(build.tokenizer),
            key=key,
        )

    return resolve_auto(
        model_fingerprint(net, build.load_options),
        str(build.device),
        probe,
        cache_dir=build.cache_dir,
    )


def _dtype_names(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``model_kwargs`` with ``"torch.float16"``-style dtype strings (as Haystack saves
    them) written ``"float16"``, the form transformers reads."""
    out = dict(kwargs or {})
    for key in ("torch_dtype", "dtype"):
        value = out.get(key)
        if isinstance(value, str) and value.startswith("torch."):
            out[key] = value[len("torch.") :]
    return out


def _export_key_options(
    model_kwargs: Mapping[str, Any] | None, config_kwargs: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The loading options that are part of the ONNX export's cache key (the ones given)."""
    given = {"model_kwargs": model_kwargs, "config_kwargs": config_kwargs}
    return {name: dict(value) for name, value in given.items() if value}


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
    model_kwargs: Mapping[str, Any] | None = None,
    tokenizer_kwargs: Mapping[str, Any] | None = None,
    config_kwargs: Mapping[str, Any] | None = None,
    int8_calibration: Sequence[tuple[str, str]] | None = None,
) -> LoadedModel:
    """Load ``model`` and return what the scorer needs; raise a ModelLoadError on failure.

    ``model_kwargs``, ``tokenizer_kwargs`` and ``config_kwargs`` go to the model's, the
    tokenizer's and the config's ``from_pretrained`` (checked by the scorer; see
    :class:`crossrank.CrossEncoderScorer`). ``int8_calibration``: (query, text) pairs that
    calibrate ``openvino-int8`` (default: the built-in sample,
    :func:`crossrank.probe.calibration_pairs`). ``backend="auto"`` is resolved here, by
    :func:`_resolve_auto`.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from crossrank.devices import check_device

    check_device(device)  # before loading: a device this machine lacks fails now
    source = resolve_source(model)
    # Offline, or the Hub did not answer one request: the cache only, no retries.
    local_files_only = local_files_only or (not source.is_local and cache_only())
    hub_kwargs: dict[str, Any] = {
        "token": token,
        "cache_dir": cache_dir,
        "revision": revision,
        "local_files_only": local_files_only,
        "trust_remote_code": trust_remote_code,
    }
    config = _from_pretrained(AutoConfig, source, "config", hub_kwargs, config_kwargs)
    num_labels = _check_cross_encoder(model, config)
    tokenizer = _from_pretrained(AutoTokenizer, source, "tokenizer", hub_kwargs, tokenizer_kwargs)
    _check_fast_tokenizer(model, tokenizer)
    net, info = _from_pretrained(
        AutoModelForSequenceClassification,
        source,
        "model",
        hub_kwargs,
        _dtype_names(model_kwargs) if model_kwargs else None,
        config=config,
        output_loading_info=True,
    )
    _check_relevance_head(model, info)
    effective_max_length, special = _resolve_max_length(max_length, tokenizer, config, source)

    if device is None and backend.startswith(("onnx", "openvino")):
        device = "cpu"  # the ONNX and OpenVINO backends run on the CPU
    torch_device = resolve_device(device)
    chosen = choose_backend(backend, torch_device)
    build = _Build(
        model=model,
        tokenizer=tokenizer,
        num_labels=num_labels,
        device=torch_device,
        cache_dir=onnx_cache_dir,
        load_options=_export_key_options(model_kwargs, config_kwargs),
        max_length=effective_max_length,
        calibration=int8_calibration,
    )
    decision = None
    if chosen == "auto":
        decision = _resolve_auto(build, net)
        chosen = choose_backend(decision.backend, torch_device)
    forward, net, onnx_path, many = _build_forward(build, net, chosen)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return LoadedModel(
        tokenizer=tokenizer,
        model=net,
        backend=chosen,
        onnx_path=onnx_path,
        decision=decision,
        device="cpu" if chosen.startswith(("onnx", "openvino")) else str(torch_device),
        max_length=effective_max_length,
        num_labels=num_labels,
        special_tokens=special,
        pad_token_id=int(pad_id),
        padding_side=str(getattr(tokenizer, "padding_side", "right")),
        forward=forward,
        forward_many=many,
    )
