"""Prompts and instructions: the text a reranker is told besides the query and the document.

One setting covers what the model families call by different names: a sentence-transformers
*prompt* (prepended to the query for a pair-input model; the system message for a chat
template), a Qwen3-Reranker *instruction* (``<Instruct>: ...``), bge-reranker-gemma's
closing *prompt*, mxbai-rerank-v2's ``instruction:`` line. Which one applies to a call, in
sentence-transformers' order:

1. the call's ``instruction=`` (``""`` means none, even where the model has a default);
2. the scorer's ``instruction`` (or its alias ``prompt``);
3. the scorer's ``prompt_name``, looked up in the prompts the checkpoint saved
   (``config_sentence_transformers.json``);
4. the checkpoint's ``default_prompt_name``;
5. none (a built-in template then uses the model's own default instruction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Prompts", "check_instruction"]


def check_instruction(value: object, *, name: str = "instruction") -> str | None:
    """Return ``value`` if it is None or a string.

    Raises:
        TypeError: Anything else.
    """
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Prompts:
    """The prompts a checkpoint saved and the scorer's own settings.

    Attributes:
        saved: Named prompts from ``config_sentence_transformers.json``.
        default_name: Its ``default_prompt_name``, or None.
        instruction: The scorer's ``instruction`` (or ``prompt``), or None.
        prompt_name: The scorer's ``prompt_name``, or None.
    """

    saved: Mapping[str, str] = field(default_factory=dict)
    default_name: str | None = None
    instruction: str | None = None
    prompt_name: str | None = None

    @classmethod
    def of(
        cls,
        st_config: Mapping[str, Any],
        *,
        model: str,
        instruction: str | None,
        prompt_name: str | None,
    ) -> Prompts:
        """The prompts of a checkpoint (its ``config_sentence_transformers.json``) with the
        scorer's settings.

        Raises:
            ValueError: ``prompt_name`` is not one of the saved prompts, or the saved default
                names none.
        """
        raw = st_config.get("prompts")
        saved = {str(k): v for k, v in raw.items() if isinstance(v, str)} if isinstance(
            raw, dict
        ) else {}
        default = st_config.get("default_prompt_name")
        default = default if isinstance(default, str) and default in saved else None
        if prompt_name is not None and prompt_name not in saved:
            have = sorted(saved) or "none"
            raise ValueError(
                f"prompt_name must name one of the prompts {model} saved ({have}), got "
                f"{prompt_name!r}; pass instruction='...' for a prompt of your own"
            )
        return cls(saved, default, instruction, prompt_name)

    def resolve(self, instruction: str | None = None) -> str | None:
        """The instruction for a call (``instruction``: the call's own, or None)."""
        if instruction is not None:
            return instruction or None
        if self.instruction is not None:
            return self.instruction or None
        if self.prompt_name is not None:
            return self.saved[self.prompt_name] or None
        if self.default_name is not None:
            return self.saved[self.default_name] or None
        return None

    def describe(self) -> str | None:
        """Where the default instruction comes from, for reports; None when there is none."""
        if self.instruction is not None:
            return f"instruction {self.instruction!r}" if self.instruction else None
        if self.prompt_name is not None:
            return f"prompt {self.prompt_name!r}"
        if self.default_name is not None:
            return f"saved default prompt {self.default_name!r}"
        return None
