"""``InstructedQueryBundle``: a LlamaIndex ``QueryBundle`` that carries a reranking
instruction for one query.

A node postprocessor sees only the nodes and the query bundle, so the bundle is where a
per-query input belongs; a query engine hands the bundle it was given to its retriever and
to every postprocessor unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

try:
    from llama_index.core.schema import QueryBundle
except ImportError as e:
    from crossrank._optional import missing_extra

    raise missing_extra("The LlamaIndex postprocessor", "llama-index", e) from e

from crossrank.families.prompts import check_instruction

__all__ = ["InstructedQueryBundle", "instruction_of"]


@dataclass
class InstructedQueryBundle(QueryBundle):
    """A ``QueryBundle`` with the instruction crossrank's reranker reads for this query.

    ``instruction`` is the task instruction of an instruction-following reranker
    (Qwen3-Reranker's ``<Instruct>``, a chat template's system message, else text before
    the query), in place of the postprocessor's ``instruction`` setting; ``""``: none;
    ``None``: the setting (else the model's default). The LLM and the retriever read the
    bundle as any other (``query_str``...).

    Example:
        ```python
        from llama_index.postprocessor.crossrank_rerank import InstructedQueryBundle

        engine.query(InstructedQueryBundle(
            "does vitamin D lower fracture risk?",
            instruction="Given a scientific claim, retrieve abstracts that support or refute it",
        ))
        ```
    """

    instruction: str | None = None

    def __post_init__(self) -> None:
        check_instruction(self.instruction)


def instruction_of(query_bundle: Any) -> str | None:
    """The instruction a query bundle carries (an ``instruction`` attribute, as
    :class:`InstructedQueryBundle` has), or None."""
    return check_instruction(
        getattr(query_bundle, "instruction", None), name="query_bundle.instruction"
    )
