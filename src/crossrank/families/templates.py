"""Templates: the text a (query, document) pair becomes before it is tokenized, for the
rerankers that read one prompt rather than a tokenizer pair.

Two kinds render the same three things (an instruction, the query, the document):

- :class:`ChatTemplate`: the tokenizer's chat template (``chat_template.jinja`` or the one in
  ``tokenizer_config.json``), given the messages sentence-transformers 6.x builds for a pair:
  ``[{"role": "system", "content": instruction}]`` (only when there is one),
  ``{"role": "query", ...}``, ``{"role": "document", ...}``. A template that does not render
  both roles is refused, as sentence-transformers refuses it.
- :class:`FormatTemplate`: a Python format string with ``{query}``, ``{document}`` and
  ``{instruction}`` (and ``{bos_token}``/``{eos_token}``): the built-in templates of the known
  LLM rerankers (:mod:`crossrank.families.known`) and the ``template=`` option.

Where the instruction comes from (an explicit one, a saved prompt, the model's default) is
decided in :mod:`crossrank.families.prompts`; how the rendered text becomes token rows, in
:mod:`crossrank.families.inputs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from crossrank.errors import UnsupportedModelError

__all__ = ["ChatTemplate", "FormatTemplate", "Template", "check_format_template"]

#: Contents that tell whether a template carries each role (they differ in first character and
#: length, so even a template that cuts hard still moves with them).
_PROBES = (("alpha", "bravo"), ("charlie", "bravo"), ("alpha", "foxtrot"))


class Template(Protocol):
    """Renders a pair (and an optional instruction) into the text the model reads; the
    template writes every special token itself (the text is tokenized without adding any),
    as a chat template does."""

    def render(self, query: str, document: str, instruction: str | None) -> str:
        """The text for one pair."""
        ...

    def describe(self) -> str:
        """One line for reports."""
        ...


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template, rendered as sentence-transformers 6.x renders a pair.

    Attributes:
        tokenizer: The tokenizer whose ``apply_chat_template`` renders it.
        source: Where the template came from, for reports (``"chat_template.jinja"``...).
        kwargs: Keyword arguments for ``apply_chat_template`` (a checkpoint's saved
            ``processing_kwargs["chat_template"]``, e.g. ``add_generation_prompt``).
        structured: Whether message contents are lists of typed parts
            (``[{"type": "text", "text": ...}]``) rather than strings.
    """

    tokenizer: Any
    source: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    structured: bool = False

    def messages(self, query: str, document: str, instruction: str | None) -> list[dict[str, Any]]:
        """The messages sentence-transformers builds for a pair."""

        def content(text: str) -> Any:
            return [{"type": "text", "text": text}] if self.structured else text

        messages = [
            {"role": "query", "content": content(query)},
            {"role": "document", "content": content(document)},
        ]
        if instruction:
            messages.insert(0, {"role": "system", "content": content(instruction)})
        return messages

    def render(self, query: str, document: str, instruction: str | None) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                self.messages(query, document, instruction), tokenize=False, **self.kwargs
            )
        )

    def check(self, model: str) -> None:
        """Raise unless the template renders both the query and the document.

        Raises:
            UnsupportedModelError: It raises, or drops one of the two.
        """
        try:
            base, query_moved, document_moved = (
                self.render(q, d, None) for q, d in _PROBES
            )
        except Exception as e:  # a Jinja template can raise anything
            raise UnsupportedModelError(
                model,
                f"its chat template ({self.source}) cannot render a (query, document) pair "
                f"({type(e).__name__}: {e})",
                _TEMPLATE_HINT,
            ) from e
        dropped = [
            role
            for role, render in (("query", query_moved), ("document", document_moved))
            if render == base
        ]
        if dropped:
            raise UnsupportedModelError(
                model,
                f"its chat template ({self.source}) does not render the {' and '.join(dropped)} "
                "role of a pair, so the model would not read it",
                _TEMPLATE_HINT,
            )

    def describe(self) -> str:
        return f"chat template ({self.source})"


_TEMPLATE_HINT = (
    "Pass template='...{query}...{document}...' (a format string), or a chat template that "
    "renders the 'query' and 'document' roles as tokenizer_kwargs={'chat_template': ...}, "
    "or family='sequence-classification' to read the pair without a template."
)


@dataclass(frozen=True)
class FormatTemplate:
    """A Python format string with ``{query}``, ``{document}``, ``{instruction}``,
    ``{bos_token}`` and ``{eos_token}`` (literal braces doubled).

    Attributes:
        text: The format string.
        default_instruction: Used when a pair comes with no instruction ("" for none).
        instruction_format: How an instruction is written into ``{instruction}`` (e.g.
            ``"instruction: {instruction}\\n"``); no instruction writes nothing.
        bos_token / eos_token: The tokenizer's, for templates that write them.
        source: Where the template came from, for reports.
    """

    text: str
    default_instruction: str = ""
    instruction_format: str = "{instruction}"
    bos_token: str = ""
    eos_token: str = ""
    source: str = "template="

    def render(self, query: str, document: str, instruction: str | None) -> str:
        instruction = instruction or self.default_instruction
        return self.text.format(
            query=query,
            document=document,
            instruction=self.instruction_format.format(instruction=instruction)
            if instruction
            else "",
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )

    def describe(self) -> str:
        return f"template ({self.source})"


def check_format_template(text: object, *, name: str = "template") -> str:
    """Return ``text`` if it is a usable format template.

    Raises:
        ValueError: It is not a string, lacks ``{query}`` or ``{document}``, names another
            field, or is not a valid format string.
    """
    import string

    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} must be a non-empty format string, got {text!r}")
    allowed = {"query", "document", "instruction", "bos_token", "eos_token"}
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as e:
        raise ValueError(
            f"{name} is not a valid format string ({e}); write literal braces as {{{{ and }}}}"
        ) from e
    if not {"query", "document"} <= fields or not fields <= allowed:
        raise ValueError(
            f"{name} must contain {{query}} and {{document}} and may contain {{instruction}}, "
            f"{{bos_token}} and {{eos_token}}, got the fields {sorted(fields)}"
        )
    return text
