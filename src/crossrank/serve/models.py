"""Request and response bodies of each protocol (pydantic, strict: wrong types are ``422``).

- TEI (``POST /rerank``): :class:`TEIRequest` -> a list of :class:`TEIResult`, best first.
- Cohere / Jina (``POST /v1/rerank``): :class:`CohereRequest` -> :class:`CohereResponse`.
- a top-level ``instruction`` (vLLM's field) on either: the request's task instruction for an
  instruction-following model (TEI and Cohere clients that do not send it get the model's).
- crossrank's own options ride on either as the extra field ``crossrank``
  (:class:`CrossrankOptions`); with it, each result also carries ``truncated``, ``span``
  and ``passage``, and the Cohere response a top-level ``crossrank`` with ``skipped`` and
  ``pairs``.
"""

from __future__ import annotations

from typing import Any, Literal

from crossrank._optional import missing_extra

try:
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as e:  # pragma: no cover - pydantic comes with fastapi
    raise missing_extra("crossrank serve", "serve", e) from e

__all__ = [
    "CohereRequest",
    "CohereResponse",
    "CohereResult",
    "CrossrankOptions",
    "CrossrankResultFields",
    "ErrorBody",
    "HealthBody",
    "TEIRequest",
    "TEIResult",
    "TextDocument",
]

_STRICT = ConfigDict(extra="forbid", strict=True)

_INSTRUCTION = (
    "this request's task instruction for an instruction-following model (Qwen3-Reranker's "
    "<Instruct>, a chat template's system message, else text before the query); '' for "
    "none; null: the server's (its --instruction, else the model's default)"
)


class CrossrankOptions(BaseModel):
    """crossrank's own options, beyond what TEI and Cohere carry (the ``crossrank`` field).

    Each has the meaning of the same argument of :meth:`crossrank.CrossEncoderScorer.rerank`.
    """

    model_config = _STRICT

    skip_blank: bool = Field(
        True,
        description="true: documents without text (empty or whitespace) are not scored and "
        "are listed in crossrank.skipped, as CrossEncoderScorer.rerank does; false: every "
        "document is scored as it is, as CrossEncoderScorer.score does (passages, contents "
        "and fusion then need true)",
    )
    score_threshold: float | None = Field(None, description="drop scores below this")
    min_relative_score: float | None = Field(
        None, description="drop scores below this fraction of the best (0 < F <= 1)"
    )
    token_budget: int | None = Field(
        None, description="keep the best while their tokens add up to at most this"
    )
    passages: bool = Field(
        False, description="find each kept document's best passage (results' 'passage')"
    )
    contents: list[str | None] | None = Field(
        None, description="with passages: what each document's passage is cut from"
    )
    activation: Literal["raw", "sigmoid", "calibrated"] | None = Field(
        None, description="this request's activation (null: the server's)"
    )
    first_stage_scores: list[float | None] | None = Field(
        None, description="the first stage's score of each document, for fusion"
    )
    fusion: str | None = Field(None, description="how first-stage and reranker scores combine")
    fusion_weight: float | None = Field(
        None,
        description="the cross-encoder's share in [0, 1] (1 - fusion_weight goes to the first "
        "stage)",
    )
    fusion_normalization: str | None = Field(
        None, description="how scores are normalized before fusion"
    )
    instruction: str | None = Field(None, description=_INSTRUCTION)
    deadline_ms: float | None = Field(
        None,
        gt=0,
        description="this request's time budget in milliseconds from its arrival (the wait "
        "in the queue counts; null: the server's): documents are scored in the order sent "
        "until it is spent, and the rest follow unscored (null score, unscored: true)",
    )

    def rerank_options(self) -> dict[str, Any]:
        """The options as keyword arguments of the core's ``rerank`` (fusion ones only when
        given)."""
        options: dict[str, Any] = {
            "score_threshold": self.score_threshold,
            "min_relative_score": self.min_relative_score,
            "token_budget": self.token_budget,
        }
        if self.passages or self.contents is not None:
            options["passages"] = self.passages
            options["contents"] = self.contents
        names = ("first_stage_scores", "fusion", "fusion_weight", "fusion_normalization",
                 "instruction", "deadline_ms")  # fmt: skip
        for name in names:
            value = getattr(self, name)
            if value is not None:
                options[name] = value
        return options


def _call_options(extra: CrossrankOptions | None, instruction: str | None) -> dict[str, Any]:
    """A request's core options: ``extra``'s, with a top-level ``instruction``.

    Raises:
        ValueError: The top-level instruction and ``crossrank.instruction`` differ.
    """
    options = {} if extra is None else extra.rerank_options()
    if instruction is not None:
        given = options.get("instruction")
        if given is not None and given != instruction:
            raise ValueError(
                "instruction and crossrank.instruction differ; send the instruction once"
            )
        options["instruction"] = instruction
    return options


class TEIRequest(BaseModel):
    """``POST /rerank``, as text-embeddings-inference takes it."""

    model_config = _STRICT

    query: str
    texts: list[str]
    raw_scores: bool = Field(False, description="true: logits; false: the server's activation")
    return_text: bool = Field(False, description="include each text in its result")
    truncate: bool | None = Field(
        None,
        description="false: a text longer than the model reads is an error (413); "
        "true or null: it is truncated, as the core does",
    )
    truncation_direction: Literal["right", "Right"] = Field(
        "right", description="only 'right' (the end of the document is cut)"
    )
    instruction: str | None = Field(None, description=_INSTRUCTION + " (vLLM's field)")
    crossrank: CrossrankOptions | None = None

    def call_options(self) -> dict[str, Any]:
        """The core's options this request carries (see :meth:`CohereRequest.call_options`)."""
        return _call_options(self.crossrank, self.instruction)


class CrossrankResultFields(BaseModel):
    """What each result also carries when the request has a ``crossrank`` field."""

    truncated: bool | None = Field(None, description="part of the document was not read")
    span: list[int] | None = Field(None, description="[start, end] characters the score comes from")
    passage: list[int] | None = Field(
        None, description="with passages: [start, end] of the best passage in the content"
    )
    windows: int | None = Field(
        None, description="with skip_blank false: windows scored for the document"
    )
    model_score: float | None = Field(
        None,
        description="with fusion: the cross-encoder's own score (the score field holds the "
        "fused one that ordered the results)",
    )
    unscored: bool | None = Field(
        None,
        description="true: returned without a score (a deadline ran out, or below a cascade's "
        "rescored top); such results follow the scored ones, in the order sent",
    )
    member_scores: list[float | None] | None = Field(
        None, description="an ensemble's: each member's own score, in the members' order"
    )


class TEIResult(CrossrankResultFields):
    """One text's result; ``score`` is null only where the model gave NaN or infinity."""

    index: int
    score: float | None
    text: str | None = None


class TextDocument(BaseModel):
    """A document as an object: ``{"text": ...}`` (other fields are kept and returned)."""

    model_config = ConfigDict(extra="allow", strict=True)

    text: str


class CohereRequest(BaseModel):
    """``POST /v1/rerank``, as Cohere, Jina and Voyage-style clients send it."""

    model_config = _STRICT

    model: str | None = Field(None, description="accepted and ignored: the server has one model")
    query: str
    documents: list[str | TextDocument]
    top_n: int | None = Field(None, ge=1, description="return the best N (null: all)")
    return_documents: bool = Field(False, description="include each document in its result")
    rank_fields: list[Literal["text"]] | None = Field(None, description="only ['text']")
    max_chunks_per_doc: int | None = Field(
        None, description="accepted and ignored: the server's long_documents setting applies"
    )
    max_tokens_per_doc: int | None = Field(
        None, description="accepted and ignored: the model reads up to its max_length"
    )
    instruction: str | None = Field(None, description=_INSTRUCTION + " (vLLM's field)")
    crossrank: CrossrankOptions | None = None

    def call_options(self) -> dict[str, Any]:
        """The core's ``rerank`` options this request carries: :meth:`CrossrankOptions.
        rerank_options` and the instruction (top-level or in ``crossrank``)."""
        return _call_options(self.crossrank, self.instruction)


class CohereResult(CrossrankResultFields):
    """One document's result."""

    index: int
    relevance_score: float | None
    document: dict[str, Any] | None = None


class CohereResponse(BaseModel):
    """The ``POST /v1/rerank`` answer."""

    id: str
    model: str
    results: list[CohereResult]
    meta: dict[str, Any]
    crossrank: dict[str, Any] | None = Field(
        None,
        description="with a crossrank request field: skipped (indices), pairs, activation, "
        "unscored (indices), deadline_unscored and, from a Fallback, served_by",
    )


class ErrorBody(BaseModel):
    """Every error: a message, its kind and, for a limit, the limit's name."""

    error: str
    error_type: str
    limit: str | None = None


class HealthBody(BaseModel):
    """``GET /health``: ``ok`` (200) or ``loading``, ``draining``, ``failed`` (503)."""

    status: str
    detail: str | None = None
