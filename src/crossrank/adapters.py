"""What every framework adapter shares, in one framework-free place.

An adapter (Haystack, LangChain, LlamaIndex) holds only its framework's fields, a text
accessor and the code that copies results into its framework's types. Everything else is
here:

- :data:`SCORER_OPTIONS`: the scorer's settings and their defaults, read from
  :class:`crossrank.CrossEncoderScorer`'s signature (the one place they are declared and
  documented), with :func:`scorer_settings` (a scorer's settings as a JSON-safe mapping,
  for ``to_dict`` and pydantic fields) and :func:`check_scorer_options` (settings given
  beside a ready scorer).
- :class:`Selection`: ``top_k``, ``score_threshold``, ``min_relative_score`` and
  ``token_budget``, checked once, with per-call overrides merged.
- :func:`rerank_items` / :func:`arerank_items`: score the caller's own items and return
  them, best first, with score and passage; items without text are reported, not lost.
  With fusion, a :class:`FirstStage` says where each item's first-stage score is.
- :func:`scorer_config` / :func:`scorer_from_config`: a :class:`crossrank.RemoteScorer`
  given as ``scorer=`` as a JSON-safe dict (its key only as an environment variable's
  name), so a pipeline that points at a server saves and loads like one that does not.
- :func:`cut_passage` and :data:`SPAN_KEY`: the passage hand-off every adapter writes;
  :data:`MODEL_SCORE_KEY`: where every adapter keeps the cross-encoder's own score when the
  framework's score field holds the fused one.

Example:
    >>> from crossrank import CrossEncoderScorer
    >>> from crossrank.adapters import Selection, rerank_items
    >>> docs = [{"body": "Paris is in France."}, {"body": "Bananas."}, {"body": ""}]
    >>> out = rerank_items(CrossEncoderScorer(), "capital of France", docs,
    ...                    text=lambda d: d["body"], selection=Selection(top_k=1))
    >>> [(hit.item["body"], type(hit.score)) for hit in out.hits], out.skipped
    ([('Paris is in France.', <class 'float'>)], [{'body': ''}])
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from crossrank.deadline import arerank_with_deadline, rerank_with_deadline
from crossrank.families.prompts import check_instruction
from crossrank.fusion import Fusion, check_first_stage_scores, resolve_fusion
from crossrank.selection import Hit, is_blank
from crossrank.settings import SCORER_OPTIONS, SECRET_OPTIONS, scorer_settings
from crossrank.validation import (
    check_positive_int,
    check_relative_cut,
    check_score_threshold,
    check_top_k,
)

if TYPE_CHECKING:
    from crossrank.scorer import Reranked

__all__ = [
    "CROSS_ENCODER_KEYS",
    "MODEL_SCORE_KEY",
    "SCORER_OPTIONS",
    "SECRET_OPTIONS",
    "SPAN_KEY",
    "UNSCORED_KEY",
    "FirstStage",
    "Ranked",
    "RankedItems",
    "RerankScorer",
    "Selection",
    "arerank_items",
    "check_scorer_options",
    "cut_passage",
    "device_in_use",
    "from_cross_encoder_kwargs",
    "option_docs",
    "rerank_items",
    "scorer_config",
    "scorer_from_config",
    "scorer_settings",
]

T = TypeVar("T")

#: Metadata key of a passage's ``[start, end]`` character offsets in the original content,
#: set by every adapter on a result whose content was cut to its best passage.
SPAN_KEY = "crossrank_span"

#: Metadata key set to ``True`` by every adapter on an item returned without a score: one a
#: deadline left unscored, or one below a cascade's rescored top (it follows the scored
#: items, in the order it came in; its framework score is None).
UNSCORED_KEY = "crossrank_unscored"

#: Metadata key of the cross-encoder's own score, set by every adapter when fusion is on
#: (the framework's score field then holds the fused score that ordered the results).
MODEL_SCORE_KEY = "crossrank_model_score"

def option_docs() -> dict[str, str]:
    """The first sentence of each setting's entry in ``CrossEncoderScorer``'s docstring.

    That docstring is the one place the scorer's settings are documented; adapters show
    these sentences in their own style (pydantic field descriptions, for instance) with a
    pointer back to it.
    """
    from crossrank.scorer import CrossEncoderScorer

    args = (inspect.getdoc(CrossEncoderScorer) or "").partition("\nArgs:\n")[2]
    docs: dict[str, str] = {}
    for match in re.finditer(r"^ {4}(\w+): (.+?)(?=^ {4}\w+: |^\S|\Z)", args, re.M | re.S):
        text = " ".join(match.group(2).split())
        first = re.split(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z`])", text, maxsplit=1)[0]
        docs[match.group(1)] = first.rstrip(".") + "."
    return docs


def device_in_use(device: Any, backend: Any) -> str:
    """The device a scorer with these settings runs on, resolved without loading a model
    (as the peers resolve theirs at construction): ``device`` if given, else CUDA when
    available, else CPU; the ONNX and OpenVINO backends run on the CPU."""
    from crossrank.runtimes.devices import resolve_device

    if device is None and isinstance(backend, str) and backend.startswith(("onnx", "openvino")):
        return "cpu"
    return str(resolve_device(device))


#: sentence-transformers ``CrossEncoder(...)`` keyword -> crossrank scorer setting (older
#: names included). The peers' adapters pass these through (LlamaIndex's
#: ``cross_encoder_kwargs``, LangChain's ``HuggingFaceCrossEncoder(model_kwargs=...)``).
CROSS_ENCODER_KEYS: Mapping[str, str] = {
    "max_length": "max_length",
    "cache_folder": "cache_dir",
    "cache_dir": "cache_dir",
    "trust_remote_code": "trust_remote_code",
    "revision": "revision",
    "local_files_only": "local_files_only",
    "token": "token",
    "backend": "backend",
    "model_kwargs": "model_kwargs",
    "automodel_args": "model_kwargs",
    "tokenizer_kwargs": "tokenizer_kwargs",
    "tokenizer_args": "tokenizer_kwargs",
    "processor_kwargs": "tokenizer_kwargs",
    "config_kwargs": "config_kwargs",
    "activation_fn": "activation",
    "default_activation_function": "activation",
}
#: Keys that have their own top-level argument in the peers (refused inside the kwargs).
_TOP_LEVEL_KEYS = ("model", "model_name", "model_name_or_path", "device")


def from_cross_encoder_kwargs(
    kwargs: Mapping[str, Any] | None, *, name: str = "cross_encoder_kwargs"
) -> dict[str, Any]:
    """sentence-transformers ``CrossEncoder`` keyword arguments as crossrank settings.

    Args:
        kwargs: What the user passed to the peer (``None``: nothing).
        name: How the argument is called in messages.

    Returns:
        ``{setting: value}`` for :data:`SCORER_OPTIONS` names (``activation_fn``
        ``Sigmoid()``/``Identity()`` become ``"sigmoid"``/``"raw"``).

    Raises:
        TypeError: ``kwargs`` is not a dict.
        ValueError: A key has no crossrank equivalent, names the model or device (they
            have their own arguments), or two keys set one setting differently.
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"{name} must be a dict, got {type(kwargs).__name__}")
    top_level = [key for key in kwargs if key in _TOP_LEVEL_KEYS]
    if top_level:
        raise ValueError(
            f"{name} must not hold {top_level}: use the top-level 'model' and 'device' "
            "arguments instead (as the sentence-transformers rerankers require)"
        )
    options: dict[str, Any] = {}
    for key, value in kwargs.items():
        setting = CROSS_ENCODER_KEYS.get(key)
        if setting is None or setting not in SCORER_OPTIONS:
            honoured = sorted(k for k, v in CROSS_ENCODER_KEYS.items() if v in SCORER_OPTIONS)
            raise ValueError(
                f"{name}[{key!r}] has no crossrank equivalent; the keys crossrank honours "
                f"are {honoured}. Drop it, or set the crossrank setting directly"
            )
        if setting == "activation":
            value = _activation_of(f"{name}[{key!r}]", value)
        if setting in options and options[setting] != value:
            raise ValueError(
                f"{name} sets {setting} twice with different values ({options[setting]!r} "
                f"and {key}={value!r}); pass it once"
            )
        options[setting] = value
    return options


def _activation_of(where: str, fn: Any) -> str:
    """crossrank's ``activation`` for a sentence-transformers activation module."""
    import torch

    if fn is None or isinstance(fn, torch.nn.Sigmoid):
        return "sigmoid"
    if isinstance(fn, torch.nn.Identity):
        return "raw"
    raise ValueError(
        f"{where} must be torch.nn.Sigmoid() (activation='sigmoid') or torch.nn.Identity() "
        f"(activation='raw'), got {fn!r}; for calibrated probabilities use "
        "activation='calibrated' (docs/scores.md)"
    )


@runtime_checkable
class RerankScorer(Protocol):
    """What the adapters need of a scorer: :class:`crossrank.CrossEncoderScorer`, or any
    scorer with the same ``rerank``/``arerank`` contract (a remote one, for instance).

    The adapters pass ``first_stage_scores`` and the per-call fusion values only when
    fusion is on, and ``instruction`` only when a call has one, so a scorer without fusion
    or instructions need not take them; one with fusion has
    ``fusion``, ``fusion_weight`` and ``fusion_normalization`` attributes, as
    :class:`crossrank.CrossEncoderScorer` does (:func:`crossrank.fusion.resolve_fusion`
    reads them).
    """

    @property
    def model_name(self) -> str: ...

    @property
    def activation(self) -> str: ...

    def warm_up(self) -> None: ...

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
        activation: Any = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: Any = None,
        fusion_weight: float | None = None,
        fusion_normalization: Any = None,
        instruction: str | None = None,
    ) -> Reranked: ...

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
        activation: Any = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: Any = None,
        fusion_weight: float | None = None,
        fusion_normalization: Any = None,
        instruction: str | None = None,
    ) -> Reranked: ...


def scorer_config(scorer: Any) -> dict[str, Any] | None:
    """What an adapter saves for a ``scorer=`` it was given.

    Args:
        scorer: The adapter's scorer.

    Returns:
        For a :class:`crossrank.RemoteScorer`, its :meth:`~crossrank.RemoteScorer.to_config`
        (url, provider, route, model, timeouts, truncation, split and fusion settings and
        ``api_key_env``, the name of the variable holding the key; never the key). For a
        composite of :mod:`crossrank.compose` (or a :class:`crossrank.compose.BiEncoderScorer`),
        its ``to_config()``: a dict with a ``"type"``, each member saved the same way.
        ``None`` for any other scorer: a :class:`crossrank.CrossEncoderScorer` is saved as
        its settings (:func:`scorer_settings`) and loads as a new scorer with the same
        settings.

    A key passed as ``RemoteScorer(api_key=...)`` is not written: the saved scorer then has
    no key, and a ``crossrank`` log warning says so. Pass ``api_key_env=`` for a key that
    survives saving.
    """
    from crossrank.compose.config import remote_config, saves_itself
    from crossrank.remote import RemoteScorer

    if saves_itself(scorer):
        return scorer.to_config()  # type: ignore[no-any-return]
    if not isinstance(scorer, RemoteScorer):
        return None
    return remote_config(scorer)


def scorer_from_config(config: Mapping[str, Any]) -> Any:
    """The scorer a :func:`scorer_config` dict describes: a :class:`crossrank.RemoteScorer`
    (its key read now from the variable ``api_key_env`` names), or, for a dict with a
    ``"type"``, the scorer :func:`crossrank.compose.scorer_from_config` builds.

    Raises:
        TypeError: ``config`` is not a dict.
        ValueError: An unknown key, no ``url``, or a bad value (the scorer's own checks).
    """
    from crossrank.compose.config import scorer_from_config as typed_scorer
    from crossrank.remote import RemoteScorer

    if isinstance(config, Mapping) and "type" in config:
        return typed_scorer(config)
    return RemoteScorer.from_config(config)


def check_scorer_options(given: Mapping[str, Any], *, owner: str) -> None:
    """Refuse scorer settings passed beside a ready scorer (they would be ignored).

    Args:
        given: The scorer options the user passed, by name (others are ignored).
        owner: The class named in the message, e.g. ``"CrossEncoderRerank"``.

    Raises:
        ValueError: Some option differs from its default; the message lists them.
    """
    clashing = [
        f"{name}={value!r}"
        for name, value in given.items()
        if name in SCORER_OPTIONS and value != SCORER_OPTIONS[name]
    ]
    if clashing:
        raise ValueError(
            f"{owner}: pass either scorer or the scorer settings, not both; got scorer and "
            f"{', '.join(clashing)}. Set these on the scorer instead "
            "(CrossEncoderScorer(model, ...))"
        )


@dataclass(frozen=True, slots=True)
class Selection:
    """Which scored candidates are kept, in the core's order (:func:`crossrank.select`):
    sort, ``score_threshold``, ``min_relative_score``, ``top_k``, ``token_budget``.

    Build it with :meth:`checked` (validates each value, naming it as the framework does)
    and apply per-call values with :meth:`override`.
    """

    top_k: int | None = None
    score_threshold: float | None = None
    min_relative_score: float | None = None
    token_budget: int | None = None
    #: How ``top_k`` is called in messages (``"top_n"`` in LangChain and LlamaIndex).
    top_k_name: str = field(default="top_k", compare=False)

    @classmethod
    def checked(
        cls,
        *,
        activation: str,
        top_k: Any = None,
        score_threshold: Any = None,
        min_relative_score: Any = None,
        token_budget: Any = None,
        top_k_name: str = "top_k",
        fusion: Fusion | None = None,
    ) -> Selection:
        """Check each value once; ``activation`` (or, with ``fusion``, the fusion) decides
        whether a relative cut is allowed.

        Raises:
            TypeError: A value has the wrong type.
            ValueError: A value is out of range, or ``min_relative_score`` is set where the
                scores can be negative (``activation="raw"`` without fusion; linear fusion
                with ``"zscore"``).
        """
        return cls(
            top_k=check_top_k(top_k, name=top_k_name),
            score_threshold=check_score_threshold(score_threshold),
            min_relative_score=check_relative_cut(min_relative_score, activation, fusion=fusion),
            token_budget=check_positive_int(token_budget, name="token_budget", allow_none=True),
            top_k_name=top_k_name,
        )

    def override(
        self,
        *,
        activation: str,
        top_k: Any = None,
        score_threshold: Any = None,
        min_relative_score: Any = None,
        token_budget: Any = None,
        fusion: Fusion | None = None,
    ) -> Selection:
        """This selection with per-call values (``None``: keep this selection's value)."""
        return Selection.checked(
            activation=activation,
            fusion=fusion,
            top_k=self.top_k if top_k is None else top_k,
            score_threshold=self.score_threshold if score_threshold is None else score_threshold,
            min_relative_score=(
                self.min_relative_score if min_relative_score is None else min_relative_score
            ),
            token_budget=self.token_budget if token_budget is None else token_budget,
            top_k_name=self.top_k_name,
        )

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`crossrank.CrossEncoderScorer.rerank`."""
        return {
            "top_k": self.top_k,
            "score_threshold": self.score_threshold,
            "min_relative_score": self.min_relative_score,
            "token_budget": self.token_budget,
        }


@dataclass(frozen=True, slots=True)
class Ranked(Generic[T]):
    """One kept item: the caller's own object and what the scorer found.

    Attributes:
        item: The caller's object, unchanged (adapters copy it before writing).
        index: Its position in the items passed in.
        score: Its score, a Python ``float`` (what the selection used).
        truncated: Part of its text was not read (see :class:`crossrank.ScoreDetails`).
        passage: With ``passages=True``: ``(start, end)`` of its best passage in its
            content; None when the passage lies wholly outside the content (then the whole
            content is handed on) or without ``passages``.
        model_score: With fusion: the cross-encoder's own score (``score`` is the fused
            one); None without fusion. Adapters store it under :data:`MODEL_SCORE_KEY`.
    """

    item: T
    index: int
    score: float
    truncated: bool = False
    passage: tuple[int, int] | None = None
    model_score: float | None = None


@dataclass(frozen=True, slots=True)
class FirstStage(Generic[T]):
    """Where an adapter finds each item's first-stage score, for fusion.

    Attributes:
        read: The item's first-stage score (None when it has none: an error for an item
            with text, named with ``where``).
        where: How item ``{i}``'s score is named in messages, e.g.
            ``"documents[{i}].score"``.
        hint: What to do about a missing score: a sentence, or a function of the item that
            gives one (to list the metadata keys it does have, say).
    """

    read: Callable[[T], Any]
    where: str
    hint: str | Callable[[T], str] = ""


@dataclass(frozen=True, slots=True)
class RankedItems(Generic[T]):
    """What :func:`rerank_items` returns.

    Attributes:
        hits: The kept items that were scored, best first.
        skipped: Items with no text (None, empty or whitespace): not scored, not returned
            in ``hits``, reported here (and in a ``crossrank`` log warning).
        pairs: (query, window) pairs the model scored.
        unscored: Kept items returned without a score, after ``hits`` (a deadline's
            leftovers in the order they came in; a cascade's rest in its cheap order).
            Adapters return them after the hits, marked with :data:`UNSCORED_KEY`.
        deadline_unscored: How many items with text the deadline left unscored.
    """

    hits: list[Ranked[T]]
    skipped: list[T]
    pairs: int
    unscored: list[T] = field(default_factory=list)
    deadline_unscored: int = 0


def _texts_and_contents(
    items: Sequence[T],
    text: Callable[[T], str | None],
    content: Callable[[T], str | None] | None,
    passages: bool,
) -> tuple[list[str | None], list[str | None] | None]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError(f"items must be a list, got {type(items).__name__}")
    texts = [text(item) for item in items]
    contents: list[str | None] | None = None
    if passages and content is not None:
        contents = [content(item) or "" for item in items]
    return texts, contents


def _rerank_call(
    scorer: RerankScorer,
    items: Sequence[T],
    text: Callable[[T], str | None],
    content: Callable[[T], str | None] | None,
    selection: Selection | None,
    passages: bool,
    activation: str | None,
    first_stage: FirstStage[T] | None,
    fusion: dict[str, Any],
    instruction: str | None,
) -> tuple[list[str | None], dict[str, Any]]:
    """The texts and keyword arguments of one ``scorer.rerank`` call over ``items``."""
    texts, contents = _texts_and_contents(items, text, content, passages)
    options = {**(selection or Selection()).kwargs(), "passages": passages, "contents": contents}
    # Scorers without per-call activations or instructions still work when none is given.
    if activation is not None:
        options["activation"] = activation
    if instruction is not None:
        options["instruction"] = check_instruction(instruction)
    options |= _fusion_options(scorer, items, texts, first_stage, fusion)
    return texts, options


def _collect(items: Sequence[T], reranked: Reranked) -> RankedItems[T]:
    hits = [_ranked(items, hit) for hit in reranked.hits]
    return RankedItems(
        hits=hits,
        skipped=[items[i] for i in reranked.skipped],
        pairs=reranked.pairs,
        unscored=[items[i] for i in reranked.unscored],
        deadline_unscored=reranked.deadline_unscored,
    )


def _ranked(items: Sequence[T], hit: Hit) -> Ranked[T]:
    own = None if hit.model_score is None else float(hit.model_score)
    return Ranked(
        items[hit.index], hit.index, float(hit.score), hit.truncated, hit.passage, own
    )


def _fusion_options(
    scorer: RerankScorer,
    items: Sequence[T],
    texts: list[str | None],
    first_stage: FirstStage[T] | None,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The fusion keywords of one ``scorer.rerank`` call: none when fusion is off (and no
    per-call value was given), else the per-call values and each item's first-stage score,
    checked here so a missing one is named as the framework names it."""
    given = {name: value for name, value in overrides.items() if value is not None}
    fusion = resolve_fusion(scorer, **given)
    if fusion is None:
        return given
    if first_stage is None:
        raise ValueError(
            f"{fusion.describe()} needs each item's first-stage score; pass "
            "first_stage=FirstStage(read=..., where=...) to rerank_items"
        )
    values = [first_stage.read(item) for item in items]
    needed = [i for i, t in enumerate(texts) if not is_blank(t)]
    hint = first_stage.hint
    if callable(hint):
        missing = next((i for i in needed if values[i] is None), None)
        hint = "" if missing is None else hint(items[missing])
    check_first_stage_scores(
        values, count=len(items), needed=needed, where=first_stage.where, hint=hint
    )
    return {**given, "first_stage_scores": values}


def rerank_items(
    scorer: RerankScorer,
    query: str,
    items: Sequence[T],
    *,
    text: Callable[[T], str | None],
    content: Callable[[T], str | None] | None = None,
    selection: Selection | None = None,
    passages: bool = False,
    activation: str | None = None,
    first_stage: FirstStage[T] | None = None,
    fusion: str | None = None,
    fusion_weight: float | None = None,
    fusion_normalization: str | None = None,
    instruction: str | None = None,
    deadline_ms: float | None = None,
) -> RankedItems[T]:
    """Score the caller's items against ``query`` and return the kept ones, best first.

    Args:
        scorer: The scorer (:class:`crossrank.CrossEncoderScorer` or one like it).
        query: The query.
        items: The caller's objects (Documents, nodes, dicts...). Not changed.
        text: What the model reads for an item (content plus any prefix or embedded
            metadata); None, empty or whitespace: the item is skipped and reported.
        content: With ``passages``: the text an item's passage is cut from, when ``text``
            puts something before it. ``None``: the text itself.
        selection: What is kept (default: everything, best first).
        passages: Find each kept item's best passage (:attr:`Ranked.passage`); the token
            budget then counts the passages, so what is handed on fits.
        activation: This call's activation (``None``: the scorer's), e.g. ``"raw"`` for
            Haystack's per-call ``scale_score=False``; the same loaded model serves it.
        first_stage: Where each item's first-stage score is; read only when fusion is on
            (the scorer's, or this call's). An item with text and no score is an error
            naming it (``first_stage.where``).
        fusion: This call's fusion method (``None``: the scorer's; ``"none"``: off).
        fusion_weight: This call's cross-encoder share (``None``: the scorer's).
        fusion_normalization: This call's normalization (``None``: the scorer's).
        instruction: This call's instruction (``None``: the scorer's; ``""``: none), as
            :meth:`crossrank.CrossEncoderScorer.score` takes it.
        deadline_ms: This call's time budget in milliseconds (``None``: the scorer's own
            ``deadline_ms``, if it has one); a scorer without deadlines of its own (a
            :class:`crossrank.RemoteScorer`) is run through
            :func:`crossrank.compose.rerank_within`. Items left unscored come back in
            ``unscored``.

    Returns:
        A :class:`RankedItems`; with fusion each hit's ``score`` is the fused score and
        ``model_score`` the cross-encoder's. No items: no hits, and the model is not loaded.
    """
    texts, options = _rerank_call(
        scorer, items, text, content, selection, passages, activation, first_stage,
        {"fusion": fusion, "fusion_weight": fusion_weight,
         "fusion_normalization": fusion_normalization}, instruction,
    )  # fmt: skip
    if deadline_ms is not None:
        options["deadline_ms"] = deadline_ms
    return _collect(items, rerank_with_deadline(scorer, query, texts, **options))


async def arerank_items(
    scorer: RerankScorer,
    query: str,
    items: Sequence[T],
    *,
    text: Callable[[T], str | None],
    content: Callable[[T], str | None] | None = None,
    selection: Selection | None = None,
    passages: bool = False,
    activation: str | None = None,
    first_stage: FirstStage[T] | None = None,
    fusion: str | None = None,
    fusion_weight: float | None = None,
    fusion_normalization: str | None = None,
    instruction: str | None = None,
    deadline_ms: float | None = None,
) -> RankedItems[T]:
    """:func:`rerank_items` with the scoring off the event loop (same arguments)."""
    texts, options = _rerank_call(
        scorer, items, text, content, selection, passages, activation, first_stage,
        {"fusion": fusion, "fusion_weight": fusion_weight,
         "fusion_normalization": fusion_normalization}, instruction,
    )  # fmt: skip
    if deadline_ms is not None:
        options["deadline_ms"] = deadline_ms
    return _collect(items, await arerank_with_deadline(scorer, query, texts, **options))


def cut_passage(content: str, passage: tuple[int, int] | None) -> tuple[str, list[int] | None]:
    """The text handed on for a hit, and the ``[start, end]`` stored under :data:`SPAN_KEY`.

    Args:
        content: The item's original content.
        passage: :attr:`Ranked.passage`.

    Returns:
        ``(content[start:end], [start, end])``, or ``(content, None)`` when there is no
        passage in the content (the whole content is handed on and no key is written).
    """
    if passage is None:
        return content, None
    start, end = passage
    return content[start:end], [start, end]

