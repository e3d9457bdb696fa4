"""The sentence-transformers module-pipeline family: a ``Transformer`` (a Hugging Face encoder
read as token embeddings) followed by sentence-transformers' own modules, e.g. the Ettin
rerankers' ``Transformer`` -> ``Pooling`` -> ``Dense`` -> ``LayerNorm`` -> ``Dense``.

crossrank runs the module types sentence-transformers' cross-encoders use, re-implemented
here from sentence-transformers 6.x so the score net can be exported: ``Pooling`` (``cls``,
``mean``, ``max``, ``mean_sqrt_len_tokens``, ``lasttoken``), ``Dense`` (a linear layer and a
``torch.nn`` activation), ``LayerNorm`` and ``Dropout`` (nothing at inference). Weights are
read from each module's folder (``model.safetensors`` or ``pytorch_model.bin``). Pooling
ignores padded positions by selection (``where``), never by multiplying with the mask, so a
non-finite value in a padded position cannot reach the score.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from crossrank.errors import UnsupportedModelError
from crossrank.families.checkpoint import Module
from crossrank.families.net import ScoreNet, relevance
from crossrank.families.source import ModelSource, source_file

__all__ = ["ModulePipelineNet", "build_modules"]

_POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens", "lasttoken")
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


class Pooling(torch.nn.Module):
    """sentence-transformers' ``Pooling``: token embeddings to one vector per row."""

    def __init__(self, modes: Sequence[str]) -> None:
        super().__init__()
        self.modes = tuple(modes)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(-1).bool()
        zero = torch.zeros((), dtype=tokens.dtype, device=tokens.device)
        out = []
        for mode in self.modes:
            if mode == "cls":
                first = mask.to(torch.int32).argmax(dim=1)
                out.append(tokens[torch.arange(tokens.shape[0]), first])
            elif mode == "max":
                out.append(tokens.masked_fill(~keep, float("-inf")).max(dim=1).values)
            elif mode in ("mean", "mean_sqrt_len_tokens"):
                total = torch.where(keep, tokens, zero).sum(dim=1, dtype=torch.float32)
                count = mask.sum(dim=1, keepdim=True).to(torch.float32).clamp(min=1e-9)
                mean = total / (count if mode == "mean" else torch.sqrt(count))
                out.append(mean.to(tokens.dtype))
            else:  # lasttoken: the last position the mask keeps
                length = mask.shape[1]
                values, flipped = mask.to(torch.int32).flip(1).max(1)
                last = torch.where(values == 0, length - 1, length - 1 - flipped)
                out.append(torch.where(keep, tokens, zero)[torch.arange(tokens.shape[0]), last])
        return torch.cat(out, dim=-1)


class Dense(torch.nn.Module):
    """sentence-transformers' ``Dense``: a linear layer and an activation."""

    def __init__(self, linear: torch.nn.Linear, activation: torch.nn.Module) -> None:
        super().__init__()
        self.linear = linear
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.activation(self.linear(x))
        return out


class ModulePipelineNet(ScoreNet):
    """An encoder's token embeddings through the pipeline's modules to one or two outputs."""

    def __init__(
        self,
        encoder: Any,
        pooling: Pooling,
        layers: Sequence[torch.nn.Module],
        input_names: tuple[str, ...],
        outputs: int,
        pipeline: str,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.layers = torch.nn.ModuleList(layers)
        self.input_names = input_names
        self.outputs = outputs
        self.pipeline = pipeline
        self.config = encoder.config

    def score(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        tokens = self.encoder(**inputs).last_hidden_state
        x = self.pooling(tokens, inputs["attention_mask"])
        for layer in self.layers:
            x = layer(x)
        return relevance(x, self.outputs)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pipeline": self.pipeline, "outputs": self.outputs}


def _weights(source: ModelSource, module: Module, hub_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    path = source_file(source, module.file("model.safetensors"), hub_kwargs)
    if path is not None:
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    path = source_file(source, module.file("pytorch_model.bin"), hub_kwargs)
    if path is not None:
        return dict(torch.load(str(path), map_location="cpu", weights_only=True))
    raise UnsupportedModelError(
        source.name,
        f"its {module.type.rsplit('.', 1)[-1]} module at {module.path!r} has no weights "
        "(model.safetensors or pytorch_model.bin)",
        "Re-save the model with sentence-transformers.",
    )


def _prefixed(weights: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}


def _activation(model: str, name: object) -> torch.nn.Module:
    if name is None:  # sentence-transformers' Dense default
        return torch.nn.Tanh()
    if not isinstance(name, str) or not name.startswith("torch."):
        raise UnsupportedModelError(
            model,
            f"its Dense layer's activation {name!r} is not a torch.nn activation",
            "crossrank runs torch.nn activations only (sentence-transformers needs "
            "trust_remote_code for others).",
        )
    module_name, _, cls = name.rpartition(".")
    activation = getattr(importlib.import_module(module_name), cls, None)
    if not (isinstance(activation, type) and issubclass(activation, torch.nn.Module)):
        raise UnsupportedModelError(
            model, f"its Dense layer's activation {name!r} is not a torch.nn module", ""
        )
    return activation()


def _pooling(model: str, config: Mapping[str, Any], prompts: bool) -> Pooling:
    mode = config.get("pooling_mode")
    if mode is None:
        mode = [v for k, v in _LEGACY_POOLING.items() if config.get(k)] or ["mean"]
    modes = [mode] if isinstance(mode, str) else list(mode)
    unknown = [m for m in modes if m not in _POOLING_MODES]
    if unknown:
        raise UnsupportedModelError(
            model,
            f"its Pooling module uses {unknown}, which crossrank does not run",
            f"crossrank runs the pooling modes {_POOLING_MODES}.",
        )
    if prompts and config.get("include_prompt") is False:
        raise UnsupportedModelError(
            model,
            "its Pooling module leaves prompt tokens out (include_prompt=false), which "
            "crossrank does not reproduce",
            "Score it without a prompt (instruction='').",
        )
    return Pooling(modes)


def build_modules(
    source: ModelSource,
    encoder: Any,
    modules: Sequence[Module],
    input_names: tuple[str, ...],
    hub_kwargs: Mapping[str, Any],
    *,
    pipeline: str,
    prompts: bool = False,
) -> ModulePipelineNet:
    """The score net of a module pipeline (the modules after the ``Transformer``).

    Raises:
        UnsupportedModelError: A module cannot be run or its weights are missing.
    """
    model = source.name
    pooling = None
    layers: list[torch.nn.Module] = []
    outputs = 1
    for module in modules:
        config = module.config
        if module.kind == "pooling":
            pooling = _pooling(model, config, prompts)
        elif module.kind == "dense":
            weights = _weights(source, module, hub_kwargs)
            linear = torch.nn.Linear(
                int(config["in_features"]),
                int(config["out_features"]),
                bool(config.get("bias", True)),
            )
            linear.load_state_dict(_prefixed(weights, "linear."))
            layers.append(Dense(linear, _activation(model, config.get("activation_function"))))
            outputs = int(config["out_features"])
        elif module.kind == "layer_norm":
            weights = _weights(source, module, hub_kwargs)
            norm = torch.nn.LayerNorm(int(config["dimension"]))
            norm.load_state_dict(_prefixed(weights, "norm."))
            layers.append(norm)
    if pooling is None:
        raise UnsupportedModelError(model, "its module pipeline has no Pooling module", "")
    net = ModulePipelineNet(encoder, pooling, layers, input_names, outputs, pipeline)
    return net.eval()
