"""What every composite scorer shares: the ``rerank`` contract, warming up its members,
its deadline, and its config.

A composite is a scorer like the others: it has ``model_name``, ``activation``,
``warm_up``, ``rerank`` and ``arerank`` with :meth:`crossrank.CrossEncoderScorer.rerank`'s
arguments (so every adapter, the CLI and ``crossrank serve`` take it), and ``to_config`` /
``from_config`` (so a saved pipeline keeps it). A subclass implements ``_rerank`` and
``_arerank`` on the call's options and the time the deadline ends at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from crossrank.compose.config import register_config_type, scorer_from_config, scorer_to_config
from crossrank.compose.members import deadline_at
from crossrank.results import Reranked
from crossrank.validation import check_deadline_ms

__all__ = ["Composite", "check_scorer"]

_FUSION = ("first_stage_scores", "fusion", "fusion_weight", "fusion_normalization")


def check_scorer(scorer: Any, name: str) -> Any:
    """``scorer`` if it has the rerank contract and no first-stage fusion of its own."""
    if not callable(getattr(scorer, "rerank", None)) or not callable(
        getattr(scorer, "arerank", None)
    ):
        raise TypeError(
            f"{name} must be a scorer with rerank and arerank (CrossEncoderScorer, "
            f"RemoteScorer, BiEncoderScorer or a composite), got {type(scorer).__name__}"
        )
    if getattr(scorer, "fusion", None) is not None:
        raise ValueError(
            f"{name} has fusion={scorer.fusion!r}, and composites pass no first-stage scores "
            "to their members; build it without fusion"
        )
    return scorer


class Composite:
    """The base of :class:`Ensemble`, :class:`Fallback` and :class:`Cascade`.

    Attributes:
        members: The scorers it is made of.
        deadline_ms: The default time budget of each :meth:`rerank` (None: none); see
            :func:`crossrank.compose.rerank_within`.
    """

    #: The config's ``"type"``.
    config_type: ClassVar[str]
    #: Settings that hold one member (``"primary"``) or a list of them (``"scorers"``).
    _member_settings: ClassVar[tuple[str, ...]]

    members: tuple[Any, ...]
    deadline_ms: float | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_config_type(cls.config_type, cls.from_config)

    # ------------------------------------------------------------------ what it is

    @property
    def model_name(self) -> str:
        """A name built from the members' (shown in logs, events and reports)."""
        raise NotImplementedError

    @property
    def activation(self) -> str:
        """The scale of the scores it returns (``"raw"``: can be negative)."""
        raise NotImplementedError

    @property
    def is_loaded(self) -> bool:
        """Whether every member that loads a model has loaded it."""
        return all(getattr(m, "is_loaded", True) is not False for m in self.members)

    def warm_up(self) -> None:
        """Load every member's model now (a server member: check that it answers)."""
        for member in self.members:
            member.warm_up()

    async def awarm_up(self) -> None:
        """:meth:`warm_up` without blocking the event loop."""
        for member in self.members:
            awarm_up = getattr(member, "awarm_up", None)
            await (awarm_up() if awarm_up is not None else asyncio.to_thread(member.warm_up))

    def settings(self) -> dict[str, Any]:
        """Its constructor's arguments (members as the scorers themselves)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={v!r}"
            for k, v in self.settings().items()
            if k not in self._member_settings and v is not None
        )
        members = ", ".join(repr(m) for m in self.members)
        return f"{type(self).__name__}([{members}]{', ' if shown else ''}{shown})"

    # ------------------------------------------------------------------ config

    def to_config(self) -> dict[str, Any]:
        """A JSON-safe dict that :meth:`from_config` (or
        :func:`crossrank.compose.scorer_from_config`) rebuilds it from: its settings, each
        member as its own config (a remote key only as ``api_key_env``)."""
        config: dict[str, Any] = {"type": self.config_type}
        for name, value in self.settings().items():
            if name not in self._member_settings:
                config[name] = list(value) if isinstance(value, tuple) else value
            elif isinstance(value, Sequence):
                config[name] = [scorer_to_config(m) for m in value]
            else:
                config[name] = scorer_to_config(value)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        """The composite a :meth:`to_config` dict describes (``"type"`` may be left out).

        Raises:
            ValueError: An unknown key or a bad value.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        kwargs = {k: v for k, v in config.items() if k != "type"}
        kind = config.get("type", cls.config_type)
        if kind != cls.config_type:
            raise ValueError(f"a {cls.__name__} config has type {cls.config_type!r}, got {kind!r}")
        for name in cls._member_settings:
            value = kwargs.get(name)
            if isinstance(value, Mapping):
                kwargs[name] = scorer_from_config(value)
            elif isinstance(value, Sequence) and not isinstance(value, str):
                kwargs[name] = [scorer_from_config(v) for v in value]
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ValueError(f"a bad {cls.__name__} config ({e})") from e

    # ------------------------------------------------------------------ scoring

    def rerank(
        self,
        query: str,
        texts: Sequence[str | None],
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        passages: bool = False,
        contents: Sequence[str | None] | None = None,
        activation: str | None = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: str | None = None,
        fusion_weight: float | None = None,
        fusion_normalization: str | None = None,
        deadline_ms: float | None = None,
        instruction: str | None = None,
    ) -> Reranked:
        """Score and select, as :meth:`crossrank.CrossEncoderScorer.rerank` does (same
        arguments; first-stage fusion is not available on a composite).

        Args:
            deadline_ms: This call's time budget (None: :attr:`deadline_ms`; ``math.inf``:
                none), passed on to the members.
            instruction: This call's instruction, passed on to every member (each must
                take one: a :class:`crossrank.CrossEncoderScorer` of an instruction-following
                family).

        Returns:
            A :class:`crossrank.Reranked` (a subclass with what the composite adds).
        """
        options = {
            "top_k": top_k, "score_threshold": score_threshold,
            "min_relative_score": min_relative_score, "token_budget": token_budget,
            "passages": passages, "contents": contents, "activation": activation,
        }  # fmt: skip
        if instruction is not None:  # passed on to the members (a scorer that takes it)
            options["instruction"] = instruction
        self._refuse_fusion(first_stage_scores, fusion, fusion_weight, fusion_normalization)
        return self._rerank(query, texts, options, self._deadline_at(deadline_ms))

    async def arerank(
        self,
        query: str,
        texts: Sequence[str | None],
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        passages: bool = False,
        contents: Sequence[str | None] | None = None,
        activation: str | None = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: str | None = None,
        fusion_weight: float | None = None,
        fusion_normalization: str | None = None,
        deadline_ms: float | None = None,
        instruction: str | None = None,
    ) -> Reranked:
        """:meth:`rerank` without blocking the event loop: remote members are awaited,
        local ones run in worker threads."""
        options = {
            "top_k": top_k, "score_threshold": score_threshold,
            "min_relative_score": min_relative_score, "token_budget": token_budget,
            "passages": passages, "contents": contents, "activation": activation,
        }  # fmt: skip
        if instruction is not None:  # passed on to the members (a scorer that takes it)
            options["instruction"] = instruction
        self._refuse_fusion(first_stage_scores, fusion, fusion_weight, fusion_normalization)
        return await self._arerank(query, texts, options, self._deadline_at(deadline_ms))

    def _rerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> Reranked:
        raise NotImplementedError

    async def _arerank(
        self, query: str, texts: Sequence[str | None], options: dict[str, Any], at: float | None
    ) -> Reranked:
        raise NotImplementedError

    def _deadline_at(self, deadline_ms: Any) -> float | None:
        given = check_deadline_ms(deadline_ms)
        return deadline_at(self.deadline_ms if given is None else given)

    def _refuse_fusion(self, *values: Any) -> None:
        given = [n for n, v in zip(_FUSION, values, strict=True) if v not in (None, "none")]
        if given:
            raise ValueError(
                f"{', '.join(given)}: a {type(self).__name__} does not fuse first-stage "
                "scores (its members are called without them); leave them out, or fuse "
                "with a CrossEncoderScorer on its own"
            )
