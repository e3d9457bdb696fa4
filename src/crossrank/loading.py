"""Load a reranker: its family (:mod:`crossrank.families`) on a runtime
(:mod:`crossrank.runtimes`).

:func:`load_model` is the scorer's one interface to both: it resolves where the model comes
from, loads the checkpoint as its family (a score net and the encoder that turns pairs into
its token rows), builds the runtime the backend asks for (``auto``: measured), and returns
what the scorer needs as a :class:`LoadedModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crossrank._hub import cache_only
from crossrank.families import Encoder, FamilyOptions, load_family
from crossrank.families.source import (
    HUB_OPTIONS,
    ModelSource,
    export_key_options,
    reserved_load_kwargs,
    resolve_source,
)
from crossrank.runtimes import build_runtime
from crossrank.runtimes.devices import check_device, resolve_device

if TYPE_CHECKING:
    import torch

    from crossrank.runtimes.guard import ForwardMany
    from crossrank.runtimes.probe import Decision

__all__ = [
    "HUB_OPTIONS",
    "LoadedModel",
    "ModelSource",
    "load_model",
    "reserved_load_kwargs",
    "resolve_device",
    "resolve_source",
]


@dataclass(frozen=True)
class LoadedModel:
    """What the scorer needs from a loaded model.

    Attributes:
        encoder: Turns (query, text) pairs into the model's token rows.
        forward: Padded int64 arrays in, one float64 relevance logit per row out.
        backend: The backend it runs on (``auto`` resolved).
        device: ``"cpu"``, ``"cuda:0"``...
        family: The model's family (``"sequence-classification"``...).
        family_detail: What was found in the checkpoint (architecture, labels...).
        engine: The torch module, ONNX session or compiled OpenVINO model.
        export_path: The exported file the backend runs, or None.
        decision: With ``backend="auto"``: what it resolved to and the probe's measurements.
        forward_many: Runs several batches at once (OpenVINO's streams), or None.
    """

    encoder: Encoder
    forward: Callable[[dict[str, np.ndarray]], np.ndarray]
    backend: str
    device: str
    family: str
    family_detail: str
    engine: Any = None
    export_path: str | None = None
    decision: Decision | None = None
    forward_many: ForwardMany | None = None

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer."""
        return self.encoder.tokenizer

    @property
    def max_length(self) -> int:
        """Tokens per row the model reads."""
        return self.encoder.max_length

    @property
    def pad_token_id(self) -> int:
        """Fills ``input_ids`` in padded batches."""
        return self.encoder.pad_token_id

    @property
    def padding_side(self) -> str:
        """``"right"``, or ``"left"`` for decoders that read the last position."""
        return self.encoder.padding_side

    @property
    def parallel(self) -> int:
        """Batches the backend runs at once (a call is split into at least this many)."""
        return 1 if self.forward_many is None else self.forward_many.parallel


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
    options: FamilyOptions | None = None,
) -> LoadedModel:
    """Load ``model`` and return what the scorer needs; raise a ModelLoadError on failure.

    ``model_kwargs``, ``tokenizer_kwargs`` and ``config_kwargs`` go to the model's, the
    tokenizer's and the config's ``from_pretrained`` (checked by the scorer; see
    :class:`crossrank.CrossEncoderScorer`). ``int8_calibration``: (query, text) pairs that
    calibrate ``openvino-int8`` (default: the built-in sample,
    :func:`crossrank.runtimes.probe.calibration_pairs`). ``backend="auto"`` is resolved by
    the probe (:mod:`crossrank.runtimes.probe`). ``options``: how the checkpoint is read
    (its family, instruction, template, score tokens; default: detected).
    """
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
    family = load_family(
        source,
        hub_kwargs=hub_kwargs,
        max_length=max_length,
        model_kwargs=model_kwargs,
        tokenizer_kwargs=tokenizer_kwargs,
        config_kwargs=config_kwargs,
        options=options,
    )
    runtime = build_runtime(
        family.net,
        family.encoder,
        model=model,
        backend=backend,
        device=device,
        cache_dir=onnx_cache_dir,
        load_options=export_key_options(model_kwargs, config_kwargs),
        calibration=int8_calibration,
    )
    return LoadedModel(
        encoder=family.encoder,
        forward=runtime.forward,
        backend=runtime.backend,
        device=runtime.device,
        family=family.name,
        family_detail=family.detail,
        engine=runtime.engine,
        export_path=runtime.export_path,
        decision=runtime.decision,
        forward_many=runtime.forward_many,
    )
