"""The core scorer: reads each (query, text) pair jointly and scores it.

Every adapter (Haystack, LangChain, LlamaIndex) calls this class; no scoring logic
lives anywhere else. This module coordinates; the work is done in leaf modules: loading
(:mod:`crossrank.loading`), batching and padding (:mod:`crossrank.batching`), window
rows and aggregation (:mod:`crossrank.windows`), activation and calibration
(:mod:`crossrank.calibration`), first-stage fusion (:mod:`crossrank.fusion`) and selection
(:mod:`crossrank.selection`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crossrank.batching import run_pass
from crossrank.calibration import ACTIVATIONS, Calibration, activate, resolve_calibration
from crossrank.calibration import Activation as Activation
from crossrank.deadline import rerank_within
from crossrank.families import FamilyOptions, check_family
from crossrank.families.prompts import check_instruction
from crossrank.families.templates import check_format_template
from crossrank.fusion import (
    Fusion,
    FusionMethod,
    Normalization,
    first_stage_of,
    resolve_fusion,
)
from crossrank.loading import LoadedModel, load_model, reserved_load_kwargs
from crossrank.results import Reranked, ScoreDetails
from crossrank.runtimes.backends import Backend, check_backend
from crossrank.runtimes.devices import check_device
from crossrank.selection import Hit, passage_span, select, split_blank
from crossrank.truncation import TruncationLog
from crossrank.validation import (
    check_deadline_ms,
    check_load_kwargs,
    check_positive_int,
    check_query,
    check_relative_cut,
    check_score_threshold,
    check_texts,
    check_top_k,
)
from crossrank.windows import (
    AGGREGATIONS,
    Aggregation,
    aggregate,
    pick_rows,
    resolve_stride,
)

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_MODEL", "CrossEncoderScorer", "Reranked", "ScoreDetails"]

logger = logging.getLogger("crossrank")

#: Used when neither ``model`` nor the ``CROSSRANK_MODEL`` environment variable is set.
DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"

LongDocuments = Literal["truncate", "chunk"]

# Documents are tokenized and scored in groups of this many, so host memory for token
# ids stays bounded whatever the number of candidates.
_GROUP_SIZE = 1024


class CrossEncoderScorer:
    """Score (query, text) pairs with a cross-encoder.

    The model is loaded lazily, once, on first use or on :meth:`warm_up`; loading and
    scoring are safe to call from several threads at once.

    Example:
        >>> from crossrank import CrossEncoderScorer
        >>> scorer = CrossEncoderScorer("cross-encoder/ms-marco-MiniLM-L6-v2")
        >>> texts = ["A cross-encoder reads both texts.", "Bananas."]
        >>> scorer.score("what is a cross-encoder?", texts)
        [0.97..., 0.00...]
        >>> [hit.index for hit in scorer.rank("capital of France", ["Berlin", "Paris"], top_k=1)]
        [1]

    Args:
        model: A Hugging Face model id or a local folder. Defaults to the environment
            variable ``CROSSRANK_MODEL``, else ``cross-encoder/ms-marco-MiniLM-L6-v2``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``.
            Default: CUDA when available, else CPU.
        batch_size: Most pairs per forward pass.
        max_tokens_per_batch: Most padded tokens per forward pass (``pairs x longest
            pair``), default 8192: batches are sorted by length and cut by both limits,
            so 32 short pairs share a pass but 512-token pairs go 16 at a time, which
            bounds activation memory whatever the documents' length. ``None``: no cap.
        deadline_ms: A time budget for each :meth:`rerank` call, in milliseconds from the
            call's start (loading the model counts): candidates are scored in the order
            given (the first stage's), one forward pass at a time, until it is spent; the
            scored ones are ranked above the unscored ones, which keep their order and are
            listed in :attr:`Reranked.unscored` (counted in ``deadline_unscored``). A call
            ends at most one pass past it, and a deadline spent before anything was scored
            returns every candidate unscored with a log warning, never an error. ``None``
            (default): no deadline. See :func:`crossrank.compose.rerank_within` and
            docs/compose.md.
        max_length: Tokens per pair the model reads (query + document + special
            tokens). Default: the model's own limit. Longer pairs are truncated on the
            document side, and this is reported: per text in :meth:`score_details`, per
            call in :attr:`Reranked.truncated`, in all by :attr:`truncated_texts`, and by a
            log warning the first time only (:mod:`crossrank.truncation`).
        family: How the checkpoint is read: ``"auto"`` (default: detected from its files,
            sentence-transformers' first, then its config; :attr:`family_detail` says what
            was found), ``"sequence-classification"``, ``"causal-lm"`` (a decoder scored by
            next-token logits), ``"sentence-transformers"`` (a module pipeline), or a known
            LLM reranker: ``"qwen3-reranker"``, ``"bge-reranker-gemma"``,
            ``"mxbai-rerank-v2"`` (its template and score tokens, for checkpoints without
            sentence-transformers files). See docs/models.md.
        instruction: The task instruction, as sentence-transformers' ``prompt``: prepended to
            the query for a pair-input model, the system message of a chat template, the
            ``<Instruct>`` of Qwen3-Reranker. Default: the checkpoint's saved default prompt,
            else the template's own default; ``""`` turns a default off. Every call may pass
            its own (``score(..., instruction=...)``).
        prompt: sentence-transformers' name for ``instruction`` (pass one of the two).
        prompt_name: One of the prompts the checkpoint saved
            (``config_sentence_transformers.json``).
        template: A format string for the model's input, with ``{query}`` and
            ``{document}`` (and optionally ``{instruction}``, ``{bos_token}``,
            ``{eos_token}``), for a causal LM or decoder classifier without a template of
            its own. The template's fixed parts are never truncated.
        true_token: For a causal LM with no sentence-transformers ``LogitScore`` and no known
            template: the token whose next-token logit is the score (e.g. ``"yes"``).
        false_token: With ``true_token``: the token whose logit is subtracted (``"no"``).
        activation: ``"sigmoid"`` (default) gives scores in (0, 1); ``"raw"`` gives the
            logit. Two-logit models score the positive class: ``raw`` is its log-odds,
            ``sigmoid`` its softmax probability. ``"calibrated"`` gives probabilities of
            relevance from a calibration fitted by ``crossrank calibrate`` (see
            ``calibration`` and docs/scores.md).
        calibration: With ``activation="calibrated"``: a file written by ``crossrank
            calibrate``, a folder holding ``crossrank_calibration.json``, or a
            :class:`crossrank.calibration.Calibration`. ``None``: the
            ``crossrank_calibration.json`` in the model's folder (a local model only).
        fusion: Mix the cross-encoder's score with the first stage's, per query: ``None``
            (default: off), ``"linear"`` (a weighted sum of the two, each normalised per
            query) or ``"rrf"`` (weighted reciprocal rank fusion). With fusion,
            :meth:`rerank` and :meth:`rank` need ``first_stage_scores`` (the retriever's
            score of each candidate); hits are ordered and selected by the fused score, and
            :attr:`Hit.model_score` keeps the cross-encoder's own. The fused score mixes the
            model's logit, so it is the same whatever ``activation`` is; see
            :mod:`crossrank.fusion` and docs/fusion.md.
        fusion_weight: The cross-encoder's share of the fused score, in [0, 1]; the first
            stage gets the rest. Default 0.5; ``crossrank eval --tune-fusion`` picks one on
            held-out queries.
        fusion_normalization: How ``"linear"`` puts both scores on one scale, per query:
            ``"zscore"`` (default; fused scores centred on 0) or ``"minmax"`` (fused scores
            in [0, 1], as ``min_relative_score`` needs). Not used by ``"rrf"``.
        backend: Engine and precision of the forward pass: ``"auto"`` (default): the
            fastest backend installed here that keeps fp32's top 10, measured once per
            model and machine and cached (:mod:`crossrank.runtimes.probe`; the first load takes
            about 10 s more, plus the first exports; ``CROSSRANK_BACKEND=torch`` or an
            explicit backend skips the measurement; :attr:`active_backend` tells which);
            ``"torch"`` (fp32, the reference: equal to sentence-transformers), ``"torch-bf16"``,
            ``"torch-fp16"`` (CUDA), ``"onnx"`` (fp32) and ``"onnx-int8"`` (onnxruntime on
            the CPU; ``pip install "crossrank[onnx]"``), ``"openvino"`` (fp32),
            ``"openvino-bf16"`` (CPUs with native bf16) and ``"openvino-int8"`` (static
            int8; ``pip install "crossrank[openvino]"``). See docs/backends.md.
        onnx_cache_dir: Where exported ONNX and OpenVINO models and ``auto``'s decisions are
            cached (default: ``CROSSRANK_CACHE``, else ``~/.cache/crossrank/onnx``).
        int8_calibration: ``(query, text)`` pairs from your own data that calibrate the
            activation scales of ``openvino-int8`` (and of ``auto``'s int8 candidate);
            at most 48 are used, evenly spaced. Default: a built-in sample
            (:func:`crossrank.runtimes.probe.calibration_pairs`). Other pairs give another cached
            model. See docs/backends.md.
        long_documents: ``"truncate"`` (default): a pair longer than ``max_length`` is cut
            on the document side (reported). ``"chunk"``: a long document is split into
            overlapping token windows that each fit beside the query; every window is
            scored and the scores are aggregated (see ``aggregation``); the best window's
            character span is reported (:attr:`Hit.span`). See docs/long-documents.md.
        max_windows: In ``chunk`` mode, the most windows scored per document (the first
            ones); a document with more is reported as truncated. Bounds the cost.
        window_stride: In ``chunk`` mode, tokens shared by consecutive windows. Default: a
            quarter of the room the document has beside the query.
        aggregation: In ``chunk`` mode, how window scores become the document's: ``"max"``
            (default), ``"mean-top"`` (mean of the ``top_windows`` best) or
            ``"first-weighted"`` (half the first window, half the best); see
            :func:`crossrank.windows.aggregate`.
        top_windows: Windows averaged by ``"mean-top"``.
        token: Hugging Face token for private models (default: the ``HF_TOKEN`` setting).
        cache_dir: Folder for downloaded models (default: the Hugging Face cache).
        revision: Model revision (branch, tag or commit) on the Hub.
        local_files_only: Never contact the Hub; load from ``cache_dir`` or a folder.
        trust_remote_code: Allow models that ship their own modelling code.
        model_kwargs: Keyword arguments for the model's ``from_pretrained``
            (``AutoModelForSequenceClassification``), e.g. ``{"torch_dtype": "bfloat16"}``
            or ``{"attn_implementation": "eager"}``; dtype names may also be written
            ``"torch.bfloat16"``. With an ONNX backend they apply to the PyTorch model that is
            exported, which is exported in fp32 (``onnx``) or int8 (``onnx-int8``) whatever
            dtype it was loaded in; a change gives a new cached export.
        tokenizer_kwargs: Keyword arguments for the tokenizer's ``from_pretrained``
            (``AutoTokenizer``), e.g. ``{"model_max_length": 256}``, which also lowers the
            default ``max_length``. The tokenizer must stay a fast one.
        config_kwargs: Keyword arguments for the config's ``from_pretrained``
            (``AutoConfig``), which override entries of ``config.json``, e.g.
            ``{"hidden_dropout_prob": 0.0}``. With an ONNX backend they apply to the model
            that is exported (a change gives a new cached export).

    The three ``*_kwargs`` must be dicts with string keys (or None); keys crossrank sets from
    its own options (``token``, ``cache_dir``, ``revision``, ``local_files_only``,
    ``trust_remote_code``, and the model's ``config``) raise ValueError naming the option to
    use. They are kept, copied, as attributes of the same names.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 32,
        max_tokens_per_batch: int | None = 8192,
        deadline_ms: float | None = None,
        max_length: int | None = None,
        family: str = "auto",
        instruction: str | None = None,
        prompt: str | None = None,
        prompt_name: str | None = None,
        template: str | None = None,
        true_token: str | None = None,
        false_token: str | None = None,
        activation: Activation = "sigmoid",
        calibration: str | os.PathLike[str] | Calibration | None = None,
        fusion: FusionMethod | Literal["none"] | None = None,
        fusion_weight: float = 0.5,
        fusion_normalization: Normalization = "zscore",
        backend: Backend = "auto",
        onnx_cache_dir: str | os.PathLike[str] | None = None,
        int8_calibration: Sequence[tuple[str, str]] | None = None,
        long_documents: LongDocuments = "truncate",
        max_windows: int = 8,
        window_stride: int | None = None,
        aggregation: Aggregation = "max",
        top_windows: int = 2,
        token: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if model is None:
            model = os.environ.get("CROSSRANK_MODEL") or DEFAULT_MODEL
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if not isinstance(model, str) or not model.strip():
            raise TypeError(f"model must be a model id or a folder path, got {model!r}")
        self.model_name: str = model
        self.device = device
        check_device(device)  # a device this machine lacks fails now, not at load
        self.batch_size: int = check_positive_int(batch_size, name="batch_size")  # type: ignore[assignment]
        self.max_tokens_per_batch = check_positive_int(
            max_tokens_per_batch, name="max_tokens_per_batch", allow_none=True
        )
        self.deadline_ms = check_deadline_ms(deadline_ms)
        self._requested_max_length = check_positive_int(
            max_length, name="max_length", allow_none=True
        )
        self.family: str = check_family(family)
        self.instruction = check_instruction(instruction)
        self.prompt = check_instruction(prompt, name="prompt")
        if instruction is not None and prompt is not None and instruction != prompt:
            raise ValueError(
                "instruction and prompt are the same setting (prompt is its "
                "sentence-transformers name); pass one of them"
            )
        self.prompt_name = _optional_str(prompt_name, "prompt_name")
        self.template = None if template is None else check_format_template(template)
        self.true_token = _optional_str(true_token, "true_token")
        self.false_token = _optional_str(false_token, "false_token")
        if self.false_token is not None and self.true_token is None:
            raise ValueError(
                "false_token needs true_token: the score is logit(true) - logit(false)"
            )
        self.activation: Activation = activation
        self.calibration: Calibration | None = resolve_calibration(activation, calibration, model)
        checked = Fusion.checked(fusion, fusion_weight, fusion_normalization)
        self.fusion: FusionMethod | None = None if checked is None else checked.method
        self.fusion_weight: float = float(fusion_weight)
        self.fusion_normalization: Normalization = fusion_normalization
        self.backend: str = check_backend(backend)
        if long_documents not in ("truncate", "chunk"):
            raise ValueError(
                f"long_documents must be 'truncate' or 'chunk', got {long_documents!r}"
            )
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.long_documents: LongDocuments = long_documents
        self.max_windows: int = check_positive_int(max_windows, name="max_windows")  # type: ignore[assignment]
        self.window_stride = check_positive_int(
            window_stride, name="window_stride", allow_none=True
        )
        self.aggregation: Aggregation = aggregation
        self.top_windows: int = check_positive_int(top_windows, name="top_windows")  # type: ignore[assignment]
        self.onnx_cache_dir = _folder(onnx_cache_dir, "onnx_cache_dir")
        self.int8_calibration = _calibration_pairs(int8_calibration)
        self.token = _optional_str(token, "token")
        self.cache_dir = _folder(cache_dir, "cache_dir")
        self.revision = _optional_str(revision, "revision")
        self.local_files_only = _flag(local_files_only, "local_files_only")
        self.trust_remote_code = _flag(trust_remote_code, "trust_remote_code")
        self.model_kwargs = check_load_kwargs(
            model_kwargs, name="model_kwargs", reserved=reserved_load_kwargs("model_kwargs")
        )
        self.tokenizer_kwargs = check_load_kwargs(
            tokenizer_kwargs,
            name="tokenizer_kwargs",
            reserved=reserved_load_kwargs("tokenizer_kwargs"),
        )
        self.config_kwargs = check_load_kwargs(
            config_kwargs, name="config_kwargs", reserved=reserved_load_kwargs("config_kwargs")
        )
        self._loaded: LoadedModel | None = None
        self._load_lock = threading.Lock()
        self._truncations = TruncationLog()

    def __repr__(self) -> str:
        loaded = self._loaded
        state = f"loaded, {loaded.backend}, {loaded.family}" if loaded else "not loaded"
        return f"CrossEncoderScorer(model={self.model_name!r}, backend={self.backend!r}, {state})"

    # ------------------------------------------------------------------ loading

    @property
    def is_loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._loaded is not None

    def warm_up(self) -> None:
        """Load the model now rather than on first use. Safe to call repeatedly."""
        self._model()

    def _model(self) -> LoadedModel:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._load_lock:
            if self._loaded is None:
                # Assign only once fully loaded: a failure leaves nothing half-loaded.
                self._loaded = load_model(
                    self.model_name,
                    device=self.device,
                    max_length=self._requested_max_length,
                    token=self.token,
                    cache_dir=self.cache_dir,
                    revision=self.revision,
                    local_files_only=self.local_files_only,
                    trust_remote_code=self.trust_remote_code,
                    backend=self.backend,
                    onnx_cache_dir=self.onnx_cache_dir,
                    int8_calibration=self.int8_calibration,
                    model_kwargs=self.model_kwargs,
                    tokenizer_kwargs=self.tokenizer_kwargs,
                    config_kwargs=self.config_kwargs,
                    options=FamilyOptions(
                        family=self.family,
                        instruction=self.prompt if self.instruction is None else self.instruction,
                        prompt_name=self.prompt_name,
                        template=self.template,
                        true_token=self.true_token,
                        false_token=self.false_token,
                    ),
                )
                logger.info(
                    "crossrank: loaded %s (%s: %s) with backend %s on %s (max_length=%d)",
                    self.model_name,
                    self._loaded.family,
                    self._loaded.family_detail,
                    self._loaded.backend,
                    self._loaded.device,
                    self._loaded.max_length,
                )
            return self._loaded

    @property
    def active_backend(self) -> str:
        """The backend in use, with ``"auto"`` resolved (loads the model if needed)."""
        return self._model().backend

    @property
    def active_family(self) -> str:
        """The model's family (``"sequence-classification"``, ``"causal-lm"``,
        ``"sentence-transformers"``), with ``family="auto"`` resolved (loads the model)."""
        return self._model().family

    @property
    def family_detail(self) -> str:
        """What the checkpoint was recognised by, how pairs are read (template, instruction)
        and how the score is made (loads the model)."""
        return self._model().family_detail

    @property
    def requested_max_length(self) -> int | None:
        """The ``max_length`` passed in (None: the model's own limit); never loads."""
        return self._requested_max_length

    @property
    def max_length(self) -> int:
        """Tokens per pair the model reads (loads the model if needed)."""
        return self._model().max_length

    # ------------------------------------------------------------------ scoring

    def score(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> list[float]:
        """Score each text against the query.

        Args:
            instruction: This call's instruction (a sentence-transformers prompt: prepended to
                the query, or the template's instruction); ``None``: the scorer's; ``""``:
                none. See docs/models.md.

        Returns:
            One Python float per text, in input order. ``[]`` for no texts (the model is
            not loaded).
        """
        return self.score_details(query, texts, instruction=instruction).scores

    def score_details(
        self,
        query: str,
        texts: Sequence[str],
        *,
        activation: Activation | None = None,
        instruction: str | None = None,
    ) -> ScoreDetails:
        """Like :meth:`score`, and also report which texts were truncated.

        Args:
            activation: This call's activation, ``None``: the scorer's (see
                :meth:`rerank`).
            instruction: This call's instruction (see :meth:`score`).
        """
        act = self._activation(activation)
        instruction = check_instruction(instruction)
        query = check_query(query)
        texts = check_texts(texts)
        if not texts:
            return ScoreDetails(scores=[], truncated=[], pairs=0)
        loaded = self._model()
        stride = (
            resolve_stride(loaded.encoder.room(query, instruction), self.window_stride)
            if self.long_documents == "chunk"
            else None
        )
        groups = [
            self._score_group(
                loaded, query, texts[start : start + _GROUP_SIZE], stride, act, instruction
            )
            for start in range(0, len(texts), _GROUP_SIZE)
        ]
        details = ScoreDetails(
            scores=[s for g in groups for s in g.scores],
            truncated=[t for g in groups for t in g.truncated],
            pairs=sum(g.pairs for g in groups),
            spans=[span for g in groups for span in (g.spans or [])],
            windows=[w for g in groups for w in (g.windows or [])],
        )
        self._warn_truncated(details, loaded)
        return details

    def _warn_truncated(self, details: ScoreDetails, loaded: LoadedModel) -> None:
        """Count the texts not read in full; log the first such call (:mod:`crossrank.
        truncation`)."""
        if self.long_documents == "chunk":
            what = (
                f"had more than max_windows={self.max_windows} windows; only their first "
                f"{self.max_windows} windows were read"
            )
        else:
            what = (
                f"were longer than max_length={loaded.max_length} tokens and were truncated "
                "(document side); the model did not read their ends"
            )
        self._truncations.record(details.num_truncated, len(details.scores), what)

    @property
    def truncated_texts(self) -> int:
        """Texts this scorer has truncated so far (read in part: cut at ``max_length``, or
        past ``max_windows`` windows), over every call."""
        return self._truncations.count

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text with the model's tokenizer (no special tokens)."""
        if not texts:
            return []
        return self._model().encoder.count_tokens(texts)

    def _select(
        self,
        texts: Sequence[str],
        details: ScoreDetails,
        top_k: int | None,
        score_threshold: float | None,
        min_relative_score: float | None,
        token_budget: int | None,
    ) -> list[int]:
        """Apply the selection; ``texts`` are what the token budget counts."""
        counts = None if token_budget is None or not texts else self.count_tokens(texts)
        return select(
            details.scores,
            top_k=top_k,
            score_threshold=score_threshold,
            min_relative_score=min_relative_score,
            token_counts=counts,
            token_budget=token_budget,
        )

    def _ordered(
        self,
        query: str,
        texts: list[str],
        activation: Activation,
        fusion: Fusion | None,
        first_stage: list[float] | None,
        instruction: str | None = None,
    ) -> tuple[ScoreDetails, list[float] | None]:
        """The details whose ``scores`` order and select the texts, and (with fusion) the
        cross-encoder's own scores beside them.

        With fusion the model is asked for logits, which are fused with the first stage;
        the model's own scores are those logits through ``activation``, exactly what a call
        without fusion gives.
        """
        if fusion is None:
            details = self.score_details(
                query, texts, activation=activation, instruction=instruction
            )
            return details, None
        raw = self.score_details(query, texts, activation="raw", instruction=instruction)
        assert first_stage is not None
        fused = fusion.apply(raw.scores, first_stage)
        own = activate(np.asarray(raw.scores, dtype=np.float64), activation, self.calibration)
        return dataclasses.replace(raw, scores=fused), [float(x) for x in own]

    def rank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        first_stage_scores: Sequence[float] | None = None,
        fusion: FusionMethod | Literal["none"] | None = None,
        fusion_weight: float | None = None,
        fusion_normalization: Normalization | None = None,
        instruction: str | None = None,
    ) -> list[Hit]:
        """Score the texts and return the kept ones, best first.

        Order of application (:func:`crossrank.select`): sort by score (ties keep input
        order), drop scores below ``score_threshold``, drop scores below
        ``min_relative_score`` x the best, keep the first ``top_k``, then keep the best
        while their tokens (model tokenizer) add up to at most ``token_budget``. With
        fusion, "score" is the fused score (see :meth:`rerank`).

        ``instruction``: this call's instruction (see :meth:`score`).

        Returns:
            :class:`Hit` objects (``index`` into ``texts``, ``score``, ``truncated``,
            ``span``, and with fusion ``model_score``).
        """
        fused = resolve_fusion(
            self,
            fusion=fusion,
            fusion_weight=fusion_weight,
            fusion_normalization=fusion_normalization,
        )
        top_k = check_top_k(top_k)
        score_threshold = check_score_threshold(score_threshold)
        min_relative_score = check_relative_cut(min_relative_score, self.activation, fusion=fused)
        token_budget = check_positive_int(token_budget, name="token_budget", allow_none=True)
        check_query(query)
        texts = check_texts(texts)
        first = first_stage_of(fused, first_stage_scores, len(texts), range(len(texts)))
        details, own = self._ordered(query, texts, self.activation, fused, first, instruction)
        kept = self._select(
            texts, details, top_k, score_threshold, min_relative_score, token_budget
        )
        return [_hit(i, details, model_scores=own) for i in kept]

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
        activation: Activation | None = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: FusionMethod | Literal["none"] | None = None,
        fusion_weight: float | None = None,
        fusion_normalization: Normalization | None = None,
        deadline_ms: float | None = None,
        instruction: str | None = None,
    ) -> Reranked:
        """The adapters' entry point: like :meth:`rank`, but candidates may lack text.

        A candidate whose text is None, empty or whitespace cannot be relevant to the
        query: it is not scored, not returned, and reported in ``skipped`` (and in a log
        warning). Every other candidate is scored; the kept ones are in ``hits``.

        Args:
            passages: The caller hands on each kept candidate's best passage rather than
                its whole text: each hit gets :attr:`Hit.passage`, and ``token_budget``
                counts the passages' tokens (the whole content where a hit has no passage).
            contents: With ``passages``: what each candidate's passage is cut from, when
                ``texts`` put something before it (a prefix, metadata). ``None``: the texts.
            activation: This call's activation, ``None``: the scorer's. One loaded model
                serves them all: ``"raw"`` and ``"sigmoid"`` always, ``"calibrated"`` when
                the scorer has a calibration (Haystack's per-call ``scale_score`` uses it).
            first_stage_scores: With fusion: the first-stage retriever's score of each
                candidate (one per text, finite numbers; a skipped candidate's may be None).
                Each hit's ``score`` is then the fused score, which orders and selects
                (threshold, relative cut, ``top_k``, token budget), and ``model_score`` the
                cross-encoder's own score in this call's activation. Without fusion, an
                error (they would be ignored).
            fusion: This call's fusion method, ``None``: the scorer's; ``"none"`` turns
                the scorer's fusion off for this call.
            fusion_weight: This call's cross-encoder share, ``None``: the scorer's.
            fusion_normalization: This call's normalization, ``None``: the scorer's.
            deadline_ms: This call's time budget in milliseconds, ``None``: the scorer's
                ``deadline_ms``; ``math.inf``: none for this call. Candidates the deadline
                leaves unscored are returned below the hits in :attr:`Reranked.unscored`.
            instruction: This call's instruction (see :meth:`score`).

        Raises:
            ValueError: Fusion is on and ``first_stage_scores`` is missing, has the wrong
                length, or lacks a finite score for a candidate with text; or it is given
                with fusion off; or ``min_relative_score`` is set where (fused) scores can
                be negative.
        """
        deadline = self.deadline_ms if deadline_ms is None else check_deadline_ms(deadline_ms)
        if deadline is not None and deadline != math.inf:
            return rerank_within(
                self, query, texts, deadline_ms=deadline, top_k=top_k,
                score_threshold=score_threshold, min_relative_score=min_relative_score,
                token_budget=token_budget, passages=passages, contents=contents,
                activation=activation, first_stage_scores=first_stage_scores, fusion=fusion,
                fusion_weight=fusion_weight, fusion_normalization=fusion_normalization,
                instruction=instruction,
            )  # fmt: skip
        act = self._activation(activation)
        fused = resolve_fusion(
            self,
            fusion=fusion,
            fusion_weight=fusion_weight,
            fusion_normalization=fusion_normalization,
        )
        top_k = check_top_k(top_k)
        score_threshold = check_score_threshold(score_threshold)
        min_relative_score = check_relative_cut(min_relative_score, act, fusion=fused)
        token_budget = check_positive_int(token_budget, name="token_budget", allow_none=True)
        check_query(query)
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            check_texts(texts)  # raises the standard message
        scorable, skipped = split_blank(texts)
        scorable_texts = check_texts([texts[i] for i in scorable])
        scorable_contents = _check_contents(contents, texts, scorable, passages=passages)
        first = first_stage_of(fused, first_stage_scores, len(texts), scorable)
        details, own = self._ordered(query, scorable_texts, act, fused, first, instruction)
        handed_on: list[str] = scorable_texts
        cuts: list[tuple[int, int] | None] = [None] * len(scorable)
        if passages:
            handed_on, cuts = _cut_passages(scorable_texts, scorable_contents, details.spans)
        kept = self._select(
            handed_on, details, top_k, score_threshold, min_relative_score, token_budget
        )
        hits = [
            _hit(j, details, index=scorable[j], passage=cuts[j], model_scores=own) for j in kept
        ]
        return Reranked(
            hits=hits, skipped=skipped, pairs=details.pairs, truncated=details.num_truncated
        )

    # ------------------------------------------------------------------ async

    async def ascore(
        self, query: str, texts: Sequence[str], *, instruction: str | None = None
    ) -> list[float]:
        """:meth:`score` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.score, query, texts, instruction=instruction)

    async def arank(
        self,
        query: str,
        texts: Sequence[str],
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        min_relative_score: float | None = None,
        token_budget: int | None = None,
        first_stage_scores: Sequence[float] | None = None,
        fusion: FusionMethod | Literal["none"] | None = None,
        fusion_weight: float | None = None,
        fusion_normalization: Normalization | None = None,
        instruction: str | None = None,
    ) -> list[Hit]:
        """:meth:`rank` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(
            self.rank,
            query,
            texts,
            top_k=top_k,
            score_threshold=score_threshold,
            min_relative_score=min_relative_score,
            token_budget=token_budget,
            first_stage_scores=first_stage_scores,
            fusion=fusion,
            fusion_weight=fusion_weight,
            fusion_normalization=fusion_normalization,
            instruction=instruction,
        )

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
        activation: Activation | None = None,
        first_stage_scores: Sequence[float | None] | None = None,
        fusion: FusionMethod | Literal["none"] | None = None,
        fusion_weight: float | None = None,
        fusion_normalization: Normalization | None = None,
        deadline_ms: float | None = None,
        instruction: str | None = None,
    ) -> Reranked:
        """:meth:`rerank` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(
            self.rerank,
            query,
            texts,
            top_k=top_k,
            score_threshold=score_threshold,
            min_relative_score=min_relative_score,
            token_budget=token_budget,
            passages=passages,
            contents=contents,
            activation=activation,
            first_stage_scores=first_stage_scores,
            fusion=fusion,
            fusion_weight=fusion_weight,
            fusion_normalization=fusion_normalization,
            deadline_ms=deadline_ms,
            instruction=instruction,
        )

    async def awarm_up(self) -> None:
        """:meth:`warm_up` in a worker thread."""
        await asyncio.to_thread(self.warm_up)

    # ------------------------------------------------------------------ internals

    def _activation(self, activation: Any) -> Activation:
        """A call's activation: the scorer's, or one this scorer can also give."""
        if activation is None:
            return self.activation
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if activation == "calibrated" and self.calibration is None:
            raise ValueError(
                "activation='calibrated' for one call needs a scorer built with a "
                "calibration (activation='calibrated', calibration=FILE)"
            )
        return activation  # type: ignore[no-any-return]

    def _score_group(
        self,
        loaded: LoadedModel,
        query: str,
        texts: list[str],
        stride: int | None,
        activation: Activation,
        instruction: str | None,
    ) -> ScoreDetails:
        """Score one group; ``stride`` is set in chunk mode (windows), None in truncate mode."""
        encoded = loaded.encoder.encode(query, texts, stride=stride, instruction=instruction)
        # One row per window: truncate mode reads each text's first, chunk mode its first
        # max_windows.
        picked = pick_rows(
            encoded.sample_of_row, len(texts), 1 if stride is None else self.max_windows
        )
        chosen = picked.chosen
        raw_rows = self._forward_rows(loaded, encoded.select(chosen))
        raw = np.empty(len(texts), dtype=np.float64)
        spans: list[tuple[int, int] | None] = []
        start = 0
        for t, rows in enumerate(picked.rows):
            window_scores = [float(x) for x in raw_rows[start : start + len(rows)]]
            start += len(rows)
            if len(rows) == 1:
                raw[t], best = window_scores[0], 0
            else:
                raw[t], best = aggregate(
                    window_scores, self.aggregation, top_windows=self.top_windows
                )
            spans.append(encoded.spans[rows[best]])
        return ScoreDetails(
            scores=[float(x) for x in activate(raw, activation, self.calibration)],
            truncated=picked.truncated if encoded.truncated is None else encoded.truncated,
            pairs=len(chosen),
            spans=spans,
            windows=picked.windows,
        )

    #: Optional hook that runs the forward passes of :meth:`_forward_rows` instead of the
    #: scorer: ``row_forward(loaded, features)`` gets the :class:`LoadedModel` and the rows'
    #: unpadded features (``{"input_ids": [[...], ...], "attention_mask": ...}``) and returns
    #: one raw relevance per row, in order. The server's cross-request batcher
    #: (:class:`crossrank.serve.batcher.RowBatcher`) is one. None: the scorer plans, pads and
    #: runs its own batches.
    row_forward: Any = None

    def _forward_rows(
        self, loaded: LoadedModel, feats: dict[str, list[list[int]]]
    ) -> np.ndarray:
        """Raw relevance of the token rows in ``feats`` (unpadded, per model input), in
        order, batch by batch."""
        if self.row_forward is not None:
            return np.asarray(self.row_forward(loaded, feats), dtype=np.float64)
        raw, _ = run_pass(
            loaded, feats, batch_size=self.batch_size, max_tokens=self.max_tokens_per_batch
        )
        return raw



def _folder(value: Any, name: str) -> str | None:
    """A folder option as an expanded path string (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise TypeError(f"{name} must be a folder path or None, got {value!r}")
    return str(Path(value).expanduser())


def _calibration_pairs(value: Any) -> list[tuple[str, str]] | None:
    """``int8_calibration`` as a list of (query, text) tuples; lists of two strings (as a
    saved pipeline stores them) are accepted."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise TypeError(
            "int8_calibration must be a non-empty list of (query, text) pairs or None, "
            f"got {value!r:.80}"
        )
    pairs = []
    for i, pair in enumerate(value):
        if (
            isinstance(pair, (str, bytes))
            or not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(isinstance(x, str) and x.strip() for x in pair)
        ):
            raise TypeError(
                f"int8_calibration[{i}] must be a (query, text) pair of non-empty strings, "
                f"got {pair!r:.80}"
            )
        pairs.append((pair[0], pair[1]))
    return pairs


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, got {type(value).__name__}")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _hit(
    i: int,
    details: ScoreDetails,
    *,
    index: int | None = None,
    passage: tuple[int, int] | None = None,
    model_scores: list[float] | None = None,
) -> Hit:
    span = None if details.spans is None else details.spans[i]
    return Hit(
        i if index is None else index,
        details.scores[i],
        details.truncated[i],
        span,
        passage,
        None if model_scores is None else model_scores[i],
    )


def _check_contents(
    contents: Sequence[str | None] | None,
    texts: Sequence[str | None],
    scorable: list[int],
    *,
    passages: bool,
) -> list[str] | None:
    """The contents of the scorable candidates (None: cut passages from the texts)."""
    if contents is None:
        return None
    if not passages:
        raise ValueError("contents is only used with passages=True")
    if isinstance(contents, (str, bytes)) or len(contents) != len(texts):
        raise ValueError(
            f"contents must be a list with one entry per text ({len(texts)}), got "
            f"{type(contents).__name__}"
            + ("" if isinstance(contents, (str, bytes)) else f" of {len(contents)}")
        )
    out: list[str] = []
    for i in scorable:
        content = contents[i]
        if not isinstance(content, str):
            raise TypeError(f"contents[{i}] must be a string, got {type(content).__name__}")
        out.append(content)
    return out


def _cut_passages(
    texts: list[str],
    contents: list[str] | None,
    spans: list[tuple[int, int] | None] | None,
) -> tuple[list[str], list[tuple[int, int] | None]]:
    """What each candidate hands on (its best passage, else its whole content) and the
    passage's ``(start, end)`` in the content (None where the whole content is handed on)."""
    handed_on: list[str] = []
    cuts: list[tuple[int, int] | None] = []
    for j, text in enumerate(texts):
        content = text if contents is None else contents[j]
        cut = passage_span(text, content, None if spans is None else spans[j])
        cuts.append(cut)
        handed_on.append(content if cut is None else content[cut[0] : cut[1]])
    return handed_on, cuts
