"""crossrank's scorer settings as pydantic fields, shared by the LangChain classes.

One field per name in :data:`crossrank.adapters.SCORER_OPTIONS`, with the scorer's default,
derived from :class:`crossrank.CrossEncoderScorer`'s signature: a setting added to the core
appears here with no change. Values are checked by the core when the scorer is built (at
construction; the model itself loads on first use).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

from crossrank._optional import missing_extra
from crossrank.adapters import (
    SCORER_OPTIONS,
    SECRET_OPTIONS,
    RerankScorer,
    check_scorer_options,
    option_docs,
    scorer_config,
    scorer_from_config,
    scorer_settings,
)
from crossrank.scorer import CrossEncoderScorer

try:
    from pydantic import (
        BaseModel,
        ConfigDict,
        Field,
        SecretStr,
        create_model,
        field_serializer,
        field_validator,
        model_serializer,
        model_validator,
    )
except ImportError as e:
    raise missing_extra("The LangChain integration", "langchain", e) from e

__all__ = ["ScorerSettings"]

_SETTING = (
    "A setting of crossrank's scorer, passed to ``crossrank.CrossEncoderScorer`` under this "
    "name with its default; see its docstring or docs/core.md. Checked when the compressor "
    "is built. Paths are kept as strings."
)
_SECRET = (
    "A secret setting of crossrank's scorer (``crossrank.CrossEncoderScorer``, docs/core.md): "
    "held as a pydantic ``SecretStr`` and never written by ``model_dump``/"
    "``model_dump_json``; give it again when loading saved settings."
)


class _ScorerSettingsBase(BaseModel):
    """The scorer in use, and how it is built or adopted (the setting fields are added to
    :data:`ScorerSettings` below, from the scorer's signature)."""

    scorer: RerankScorer | None = None
    """A ready scorer to use (and share) instead of building one: a
    ``crossrank.RemoteScorer`` (a shared server), a ``crossrank.CrossEncoderScorer``, or any
    scorer with their ``rerank``/``arerank`` contract (``crossrank.adapters.RerankScorer``).
    Leave the scorer settings at their defaults beside it. Once built, this is always the
    scorer in use (``.scorer.warm_up()`` loads the model now). ``model_dump`` writes a
    ``RemoteScorer`` as its config (``RemoteScorer.to_config()``: the key only as
    ``api_key_env``, the variable's name), which loads back into a ``RemoteScorer``; any
    other scorer as ``None``: the settings of a ``CrossEncoderScorer`` given here are copied
    into the setting fields, so a dump reloads into an equal scorer."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        extra="forbid",
        protected_namespaces=(),
        use_attribute_docstrings=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _paths_as_strings(cls, data: Any) -> Any:
        """Keep path settings as strings, so the fields serialize as they were given."""
        if not isinstance(data, dict):
            return data
        return {
            key: os.fspath(value)
            if key in SCORER_OPTIONS and isinstance(value, os.PathLike)
            else value
            for key, value in data.items()
        }

    @field_validator("scorer", mode="before")
    @classmethod
    def _load_scorer(cls, value: Any) -> Any:
        """A saved ``RemoteScorer`` config (a dict) becomes the scorer again."""
        return scorer_from_config(value) if isinstance(value, dict) else value

    @field_serializer("scorer")
    def _save_scorer(self, scorer: Any) -> dict[str, Any] | None:
        return scorer_config(scorer)

    @model_serializer(mode="wrap")
    def _without_local_scorer(self, handler: Any) -> Any:
        """``scorer`` is written only for a ``RemoteScorer`` (a local one is its settings)."""
        data = handler(self)
        if isinstance(data, dict) and data.get("scorer", 0) is None:
            del data["scorer"]
        return data

    def scorer_options(self) -> dict[str, Any]:
        """The scorer settings as ``CrossEncoderScorer`` keyword arguments (secrets revealed)."""
        options = {name: getattr(self, name) for name in SCORER_OPTIONS}
        for name in SECRET_OPTIONS:
            if isinstance(options.get(name), SecretStr):
                options[name] = options[name].get_secret_value()
        return options

    def _use_or_build_scorer(self, owner: str) -> RerankScorer:
        """Build the scorer from the settings, or adopt the given one (settings at their
        defaults); a given ``CrossEncoderScorer``'s settings are copied into the fields."""
        if self.scorer is None:
            built = CrossEncoderScorer(**self.scorer_options())
            self.scorer = cast(RerankScorer, built)  # activation: a Literal, a str here
            return self.scorer
        check_scorer_options({name: getattr(self, name) for name in SCORER_OPTIONS}, owner=owner)
        if isinstance(self.scorer, CrossEncoderScorer):
            for name, value in scorer_settings(self.scorer).items():
                setattr(self, name, value)
        return self.scorer


def _field(name: str, default: Any, docs: dict[str, str]) -> tuple[Any, Any]:
    """The field for one setting: its first sentence from the scorer's docstring, then
    where the rest is documented."""
    first = docs.get(name, "")
    if name in SECRET_OPTIONS:
        description = f"{first} {_SECRET}".strip()
        return SecretStr | None, Field(default=default, exclude=True, description=description)
    return Any, Field(default=default, description=f"{first} {_SETTING}".strip())


if TYPE_CHECKING:
    ScorerSettings = _ScorerSettingsBase
else:
    #: The base of the LangChain classes: every scorer setting but ``model``, which each
    #: class declares with its own meaning.
    _DOCS = option_docs()
    ScorerSettings = create_model(
        "ScorerSettings",
        __base__=_ScorerSettingsBase,
        __module__=__name__,
        **{
            name: _field(name, default, _DOCS)
            for name, default in SCORER_OPTIONS.items()
            if name != "model"
        },
    )
