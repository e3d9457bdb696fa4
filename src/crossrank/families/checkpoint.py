"""What a checkpoint holds beyond its Hugging Face config: the files sentence-transformers
writes, read once.

- ``modules.json``: the module pipeline (a ``Transformer`` alone; ``Transformer`` +
  ``LogitScore`` for causal rerankers; ``Transformer`` -> ``Pooling`` -> ``Dense`` ->
  ``LayerNorm`` -> ``Dense`` for the Ettin-style rerankers). Module types are accepted under
  every path sentence-transformers has used for them (``sentence_transformers.models.*``,
  ``sentence_transformers.base.models.*``, ``sentence_transformers.base.modules.*``...).
- ``sentence_bert_config.json`` of the ``Transformer`` module: ``transformer_task``,
  ``max_seq_length``, ``processing_kwargs`` (e.g. chat-template keyword arguments).
- ``config_sentence_transformers.json``: ``prompts``, ``default_prompt_name``,
  ``activation_fn``.
- ``chat_template.jinja`` (the tokenizer may also carry a chat template of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crossrank.errors import UnsupportedModelError
from crossrank.families.source import ModelSource, read_json, read_text

__all__ = ["MODULE_KINDS", "Checkpoint", "Module", "read_checkpoint"]

#: sentence-transformers module classes crossrank runs itself, by class name.
MODULE_KINDS: dict[str, str] = {
    "Transformer": "transformer",
    "LogitScore": "logit_score",
    "CausalScoreHead": "logit_score",  # LogitScore's name before sentence-transformers 5.4
    "Pooling": "pooling",
    "Dense": "dense",
    "LayerNorm": "layer_norm",
    "Dropout": "dropout",
    "Normalize": "normalize",
}


@dataclass(frozen=True)
class Module:
    """One entry of ``modules.json``.

    Attributes:
        name: Its ``name`` (``"0"``, ``"1"``...).
        path: Its folder inside the checkpoint (``""`` for the root).
        type: The class path as saved.
        kind: What crossrank runs it as (a value of :data:`MODULE_KINDS`).
        config: Its ``config.json`` (``sentence_bert_config.json`` for the Transformer).
    """

    name: str
    path: str
    type: str
    kind: str
    config: Mapping[str, Any] = field(default_factory=dict)

    def file(self, name: str) -> str:
        """A file of this module, as a path inside the checkpoint."""
        return f"{self.path}/{name}" if self.path else name


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's sentence-transformers files (all empty when it has none).

    Attributes:
        source: Where it is read from.
        modules: The ``modules.json`` pipeline, or None when there is no ``modules.json``.
        st_config: ``config_sentence_transformers.json`` (prompts, activation...).
        chat_template: ``chat_template.jinja`` at the top of the checkpoint, or None.
    """

    source: ModelSource
    modules: tuple[Module, ...] | None
    st_config: Mapping[str, Any]
    chat_template: str | None

    @property
    def transformer(self) -> Mapping[str, Any]:
        """The ``Transformer`` module's settings (``sentence_bert_config.json``)."""
        for module in self.modules or ():
            if module.kind == "transformer":
                return module.config
        return {}

    @property
    def saved_by_sentence_transformers(self) -> bool:
        """Whether sentence-transformers saved it (a ``modules.json``)."""
        return self.modules is not None

    def describe_modules(self) -> str:
        """The pipeline in one line, e.g. ``Transformer(text-generation) -> LogitScore``."""
        parts = []
        for module in self.modules or ():
            short = module.type.rsplit(".", 1)[-1]
            task = module.config.get("transformer_task") if module.kind == "transformer" else None
            parts.append(f"{short}({task})" if task else short)
        return " -> ".join(parts)


def _kind(model: str, entry: Mapping[str, Any]) -> str:
    type_ = str(entry.get("type", ""))
    package, _, cls = type_.rpartition(".")
    kind = MODULE_KINDS.get(cls) if package.startswith("sentence_transformers") else None
    if kind is None:
        known = ", ".join(sorted(MODULE_KINDS))
        raise UnsupportedModelError(
            model,
            f"its modules.json has a module crossrank cannot run: {type_!r} (module "
            f"{entry.get('name', '?')!r} at {entry.get('path', '')!r})",
            f"crossrank runs the sentence-transformers modules {known}; for a custom module, "
            "export the model as a Hugging Face sequence-classification checkpoint.",
        )
    return kind


def read_checkpoint(source: ModelSource, hub_kwargs: Mapping[str, Any]) -> Checkpoint:
    """Read ``source``'s sentence-transformers files.

    Raises:
        UnsupportedModelError: ``modules.json`` is not a list of modules, or names a module
            type crossrank cannot run (the message names it).
    """
    raw = read_json(source, "modules.json", hub_kwargs)
    modules: tuple[Module, ...] | None = None
    if raw is not None:
        if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
            raise UnsupportedModelError(
                source.name,
                "its modules.json is not a list of modules",
                "Re-save the model with sentence-transformers, or remove modules.json.",
            )
        entries = sorted(raw, key=lambda e: int(e.get("idx", 0)))
        built: list[Module] = []
        for entry in entries:
            kind = _kind(source.name, entry)
            path = str(entry.get("path", "")).strip("/")
            config_name = "sentence_bert_config.json" if kind == "transformer" else "config.json"
            config = read_json(source, f"{path}/{config_name}" if path else config_name, hub_kwargs)
            built.append(
                Module(
                    name=str(entry.get("name", len(built))),
                    path=path,
                    type=str(entry["type"]),
                    kind=kind,
                    config=config if isinstance(config, dict) else {},
                )
            )
        modules = tuple(built)
    st_config = read_json(source, "config_sentence_transformers.json", hub_kwargs)
    return Checkpoint(
        source=source,
        modules=modules,
        st_config=st_config if isinstance(st_config, dict) else {},
        chat_template=read_text(source, "chat_template.jinja", hub_kwargs),
    )
