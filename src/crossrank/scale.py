"""Score many (query, text) pairs on a Ray cluster: Ray Data with one scorer per actor.

:func:`rerank_dataset` adds score columns to a Ray Dataset of (query, text) rows with an
actor pool (``map_batches``): each actor holds one :class:`crossrank.CrossEncoderScorer`,
loaded once, and scores the rows of each query in a batch with one ``score_details`` call,
so a pair's score is the one local scoring gives (up to floating-point noise from padding
and thread counts, below 1e-5 on fp32). :func:`score_runs` does the same for
``{query_id: (query, candidate texts)}`` and returns one :class:`crossrank.ScoreDetails`
per query (``crossrank eval --engine ray`` uses it); :func:`runs_to_dataset` and
:func:`runs_from_dataset` are its two halves.

Needs ``pip install "crossrank[ray]"``; this module imports Ray only when called.

Example:
    >>> import ray
    >>> from crossrank.scale import rerank_dataset
    >>> ds = ray.data.from_items([{"query": "what causes tides?", "text": "The moon."}])
    >>> scored = rerank_dataset(ds, model="cross-encoder/ms-marco-MiniLM-L6-v2", concurrency=2)
    >>> scored.take_all()[0]["score"]
    0.97...
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crossrank._optional import missing_extra
from crossrank.scorer import CrossEncoderScorer, ScoreDetails
from crossrank.validation import check_positive_int

if TYPE_CHECKING:
    import pandas as pd
    from ray.data import Dataset

__all__ = [
    "BlankText",
    "init_ray",
    "rerank_dataset",
    "runs_from_dataset",
    "runs_to_dataset",
    "score_runs",
    "worker_scorer_options",
]

logger = logging.getLogger("crossrank")

#: What :func:`rerank_dataset` does with a row whose text is None, NaN, empty or
#: whitespace: ``"skip"`` (not scored: a null score, ``truncated`` False, 0 windows, and a
#: ``crossrank`` warning in the actor's log) or ``"error"`` (ValueError).
#: (A null score reads NaN in a pandas batch and None in a row.)
BlankText = Literal["skip", "error"]

# Columns of the datasets runs_to_dataset builds.
_QUERY_ID, _POSITION, _QUERY, _TEXT = "query_id", "position", "query", "text"
_SCORE, _TRUNCATED, _WINDOWS = "score", "truncated", "windows"
# Options of CrossEncoderScorer that name files or folders: made absolute on the driver,
# since a Ray worker does not run in the driver's working directory.
_PATH_OPTIONS = ("model", "calibration", "cache_dir", "onnx_cache_dir")
# map_batches arguments rerank_dataset sets itself.
_OWN_MAP_ARGS = frozenset(
    {"fn_constructor_kwargs", "compute", "concurrency", "batch_format", "batch_size",
     "num_cpus", "num_gpus", "fn_args", "fn_kwargs", "fn_constructor_args"}
)  # fmt: skip


def _ray_data() -> Any:
    """The ``ray.data`` module, or the ImportError naming the ``ray`` extra."""
    try:
        import ray.data
    except ImportError as e:
        raise missing_extra("crossrank.scale (Ray Data)", "ray", e) from e
    return ray.data


def init_ray(address: str | None = None, *, quiet: bool = False) -> None:
    """Join the Ray cluster at ``address`` (``"auto"``, ``"ray://head:10001"`` ...), or
    start a local one (``None``), unless this process is already connected.

    A local Ray puts its node on 127.0.0.1 and starts no dashboard. With ``quiet`` (for a
    command line tool: it sets Ray's and Ray Data's logging in this process), workers'
    output is not copied here, Ray logs only errors and Ray Data shows no progress bars.
    """
    ray_data = _ray_data()
    import ray

    if not ray.is_initialized():
        local: dict[str, Any] = (
            {"include_dashboard": False, "_node_ip_address": "127.0.0.1"} if address is None else {}
        )
        ray.init(
            address=address,
            log_to_driver=not quiet,
            logging_level=logging.ERROR if quiet else logging.INFO,
            **local,
        )
    if quiet:
        ray_data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)


# ---------------------------------------------------------------------- the actor


class _ScoreBatches:
    """The ``map_batches`` callable: one scorer per actor, loaded in the constructor."""

    def __init__(
        self,
        scorer_options: dict[str, Any],
        columns: dict[str, str | None],
        blank_text: BlankText,
    ) -> None:
        self._scorer = CrossEncoderScorer(**scorer_options)
        self._scorer.warm_up()
        self._columns = columns
        self._blank_text = blank_text

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import numpy as np

        from crossrank._quiet import drop_log_records

        self._check_columns(batch)
        cols = self._columns
        texts = [_text_or_none(t) for t in batch[str(cols["text"])].tolist()]
        scores = np.full(len(texts), np.nan, dtype=np.float64)
        truncated = np.zeros(len(texts), dtype=bool)
        windows = np.zeros(len(texts), dtype=np.int64)
        # The truncated column reports truncation; without it, the core's warnings stay.
        quiet = drop_log_records("were truncated", "windows were read")
        instructions = (
            [None] * len(texts)
            if cols.get("instruction") is None
            else [_text_or_none(i) for i in batch[str(cols["instruction"])].tolist()]
        )
        with quiet if cols["truncated"] is not None else contextlib.nullcontext():
            groups = self._groups(batch[str(cols["query"])].tolist(), instructions)
            for (query, instruction), rows in groups.items():
                picked, details = self._score_group(query, instruction, rows, texts)
                scores[picked] = details.scores
                truncated[picked] = details.truncated
                windows[picked] = details.windows or [1] * len(picked)
        added: dict[str, Any] = {str(cols["score"]): scores}
        if cols["truncated"] is not None:
            added[cols["truncated"]] = truncated
        if cols["windows"] is not None:
            added[cols["windows"]] = windows
        return batch.assign(**added)  # a new frame; the batch passed in is left as it was

    def _check_columns(self, batch: pd.DataFrame) -> None:
        """The query and text columns are there; the columns to add are not."""
        cols = self._columns
        for role in ("query", "text", "instruction"):
            if cols.get(role) is not None and cols[role] not in batch.columns:
                raise ValueError(
                    f"{role}_column={cols[role]!r} is not a column of the dataset; it has "
                    f"{sorted(map(str, batch.columns))}"
                )
        for role in ("score", "truncated", "windows"):
            if cols[role] is not None and cols[role] in batch.columns:
                raise ValueError(
                    f"{role}_column={cols[role]!r} is already a column of the dataset; "
                    f"pass another {role}_column"
                )

    def _groups(
        self, queries: list[Any], instructions: list[Any]
    ) -> dict[tuple[str, str | None], list[int]]:
        """The rows of each (query, instruction), in batch order."""
        groups: dict[tuple[str, str | None], list[int]] = {}
        for row, (query, instruction) in enumerate(zip(queries, instructions, strict=True)):
            if not isinstance(query, str) or not query.strip():
                raise ValueError(
                    f"query_column={self._columns['query']!r} must hold non-blank strings, "
                    f"got {query!r}"
                )
            if instruction is not None and not isinstance(instruction, str):
                raise ValueError(
                    f"instruction_column={self._columns['instruction']!r} must hold strings "
                    f"or nulls, got {instruction!r}"
                )
            groups.setdefault((query, instruction), []).append(row)
        return groups

    def _score_group(
        self, query: str, instruction: str | None, rows: list[int], texts: list[Any]
    ) -> tuple[list[int], ScoreDetails]:
        """One ``score_details`` call for a query's rows with text (with their
        instruction); returns those rows."""
        from crossrank.selection import split_blank

        candidates = [texts[r] for r in rows]
        scorable, skipped = split_blank(candidates)
        if skipped and self._blank_text == "error":
            raise ValueError(
                f"{len(skipped)} row(s) of query {query[:60]!r} have no text in "
                f"text_column={self._columns['text']!r}; drop them first, or pass "
                "blank_text='skip' to give them a null score"
            )
        details = self._scorer.score_details(
            query, [candidates[j] for j in scorable], instruction=instruction
        )
        return [rows[j] for j in scorable], details


def _text_or_none(value: Any) -> Any:
    """pandas gives a missing string as None or NaN: both are "no text"."""
    return None if isinstance(value, float) and math.isnan(value) else value


# ---------------------------------------------------------------------- the public API


def rerank_dataset(
    ds: Dataset,
    *,
    query_column: str = "query",
    text_column: str = "text",
    model: str | os.PathLike[str] | None = None,
    score_column: str = "score",
    truncated_column: str | None = "truncated",
    windows_column: str | None = None,
    instruction_column: str | None = None,
    blank_text: BlankText = "skip",
    concurrency: int | tuple[int, int] = 1,
    rows_per_batch: int | None = 512,
    num_cpus: float | None = 1,
    num_gpus: float | None = None,
    ray_remote_args: Mapping[str, Any] | None = None,
    **scorer_options: Any,
) -> Dataset:
    """Score each (query, text) row of a Ray Dataset with a cross-encoder, on an actor pool.

    Each actor holds one :class:`crossrank.CrossEncoderScorer` built from ``model`` and
    ``scorer_options`` and loaded once; within a batch of rows, the rows of one query are
    scored together by one ``score_details`` call. Every row is kept, with its columns,
    plus ``score_column`` (a float), ``truncated_column`` (whether part of the text was not
    read) and, if named, ``windows_column`` (pairs scored for the row: 1, or the windows in
    ``long_documents="chunk"`` mode). The result is lazy, as ``map_batches`` is: nothing
    runs until it is consumed. Ray Data does not keep row order unless its
    ``DataContext.execution_options.preserve_order`` is set: carry an id column.

    Rows whose text is None, NaN, empty or whitespace are not scored (as
    :meth:`CrossEncoderScorer.rerank` skips them): with ``blank_text="skip"`` (default)
    they get a null score (NaN in a pandas batch, None in a row), ``truncated`` False and 0
    windows, and the actor logs a
    ``crossrank`` warning with their count; with ``"error"`` the run fails with ValueError.
    A blank query is an error.

    Example:
        >>> import ray
        >>> from crossrank.scale import rerank_dataset
        >>> ds = ray.data.read_parquet("pairs.parquet")       # columns: qid, query, doc_id, text
        >>> scored = rerank_dataset(ds, model="my/cross-encoder", concurrency=4, batch_size=64)
        >>> scored.write_parquet("scored/")

    Args:
        ds: A Ray Dataset with a query column and a text column.
        query_column: The column holding each row's query (non-blank strings).
        text_column: The column holding each row's candidate text.
        model: The cross-encoder (as for :class:`crossrank.CrossEncoderScorer`; a local
            folder is made absolute here, so actors find it whatever their working folder).
        score_column: The column the scores go to; it must not exist yet.
        truncated_column: The column saying which texts were not read whole (None: no
            column, and the actors log the core's truncation warnings instead).
        windows_column: If given, the column of pairs scored per row.
        instruction_column: If given, the column holding each row's task instruction for
            an instruction-following model (a string; ``""``: none; null: the scorer's
            ``instruction`` setting, else the model's default), as
            :meth:`CrossEncoderScorer.score` takes it per call. Rows are scored per
            (query, instruction).
        blank_text: ``"skip"`` or ``"error"``, see above.
        concurrency: Actors in the pool: N, or ``(min, max)`` for an autoscaling pool.
        rows_per_batch: Rows handed to an actor at once (``map_batches``'s ``batch_size``;
            None: one block). The scorer's own ``batch_size`` (pairs per forward pass) is
            one of the ``scorer_options``.
        num_cpus: CPUs reserved per actor (Ray also sets its torch threads from it).
        num_gpus: GPUs reserved per actor, e.g. 1 with ``device="cuda"``.
        ray_remote_args: Further ``map_batches`` keyword arguments (``memory``,
            ``resources``, ``runtime_env`` ...), not the ones set from this function's
            arguments.
        **scorer_options: :class:`crossrank.CrossEncoderScorer` keyword arguments
            (``backend``, ``batch_size``, ``max_length``, ``activation``,
            ``long_documents`` ...), with the same names and defaults.

    Returns:
        The scored Dataset (lazy).

    Raises:
        ImportError: Ray is not installed (``pip install "crossrank[ray]"``).
        TypeError, ValueError: A bad argument or scorer option (checked here, before any
            actor starts; the device is checked in the actors, which may have GPUs the
            driver lacks).
    """
    ray_data = _ray_data()
    if not isinstance(ds, ray_data.Dataset):
        raise TypeError(f"ds must be a ray.data.Dataset, got {type(ds).__name__}")
    columns = _check_columns(
        query=query_column,
        text=text_column,
        score=score_column,
        truncated=truncated_column,
        windows=windows_column,
        instruction=instruction_column,
    )
    if blank_text not in ("skip", "error"):
        raise ValueError(f"blank_text must be 'skip' or 'error', got {blank_text!r}")
    compute = ray_data.ActorPoolStrategy(**_pool_size(concurrency))
    rows_per_batch = check_positive_int(rows_per_batch, name="rows_per_batch", allow_none=True)
    extra = dict(ray_remote_args or {})
    clashes = sorted(set(extra) & _OWN_MAP_ARGS)
    if clashes:
        raise ValueError(
            f"ray_remote_args must not set {clashes}: they are set from rerank_dataset's "
            "own arguments (concurrency, rows_per_batch, num_cpus, num_gpus)"
        )
    options = worker_scorer_options({"model": model, **scorer_options})
    return ds.map_batches(  # type: ignore[no-any-return]
        _ScoreBatches,
        fn_constructor_kwargs={
            "scorer_options": options,
            "columns": columns,
            "blank_text": blank_text,
        },
        compute=compute,
        batch_size=rows_per_batch,
        batch_format="pandas",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        **extra,
    )


def runs_to_dataset(
    runs: Mapping[str, tuple[str, Sequence[str | None]]], *, rows_per_block: int = 512
) -> Dataset:
    """One row per (query, candidate): columns ``query_id``, ``position`` (the candidate's
    index in its list), ``query`` and ``text``.

    A block holds whole queries (about ``rows_per_block`` rows; a longer query gets a block
    of its own), so with ``rows_per_batch=None`` each query's candidates reach
    :func:`rerank_dataset`'s scorer in one call, as in local scoring.

    Args:
        runs: ``{query_id: (query, candidate texts)}``.
        rows_per_block: About how many rows a block holds.
    """
    import pandas as pd

    ray_data = _ray_data()
    rows_per_block = int(check_positive_int(rows_per_block, name="rows_per_block") or 1)
    frames: list[pd.DataFrame] = []
    block: dict[str, list[Any]] = {_QUERY_ID: [], _POSITION: [], _QUERY: [], _TEXT: []}
    for query_id, (query, texts) in runs.items():
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise TypeError(
                f"runs[{query_id!r}] must be (query, list of texts), got texts of type "
                f"{type(texts).__name__}"
            )
        if block[_QUERY_ID] and len(block[_QUERY_ID]) + len(texts) > rows_per_block:
            frames.append(pd.DataFrame(block))
            block = {name: [] for name in block}
        block[_QUERY_ID] += [query_id] * len(texts)
        block[_POSITION] += list(range(len(texts)))
        block[_QUERY] += [query] * len(texts)
        block[_TEXT] += list(texts)
    if block[_QUERY_ID] or not frames:
        frames.append(pd.DataFrame(block))
    return ray_data.from_pandas(frames)  # type: ignore[no-any-return]


def runs_from_dataset(
    ds: Dataset | Sequence[Mapping[str, Any]], runs: Mapping[str, tuple[str, Sequence[Any]]]
) -> dict[str, ScoreDetails]:
    """Gather a scored :func:`runs_to_dataset` dataset back into one
    :class:`crossrank.ScoreDetails` per query of ``runs`` (scores as Python floats, in
    candidate order; ``pairs`` summed from the ``windows`` column; no spans).

    Args:
        ds: The scored dataset (with ``score``, ``truncated`` and ``windows`` columns), or
            its rows.
        runs: The runs it was built from, to check that every row came back.

    Raises:
        ValueError: A row is missing or repeated.
    """
    rows = ds if isinstance(ds, Sequence) else ds.take_all()
    found: dict[str, dict[int, Mapping[str, Any]]] = {q: {} for q in runs}
    for row in rows:
        query_id, position = str(row[_QUERY_ID]), int(row[_POSITION])
        if query_id not in found or position in found[query_id]:
            raise ValueError(f"unexpected or repeated row: query {query_id!r}, {position}")
        found[query_id][position] = row
    details: dict[str, ScoreDetails] = {}
    for query_id, (_, texts) in runs.items():
        got = found[query_id]
        if len(got) != len(texts):
            raise ValueError(
                f"query {query_id!r}: {len(texts)} candidates sent, {len(got)} came back"
            )
        ordered = [got[i] for i in range(len(texts))]
        windows = [int(r[_WINDOWS]) for r in ordered]
        details[query_id] = ScoreDetails(
            scores=[math.nan if r[_SCORE] is None else float(r[_SCORE]) for r in ordered],
            truncated=[bool(r[_TRUNCATED]) for r in ordered],
            pairs=sum(windows),
            windows=windows,
        )
    return details


def score_runs(
    runs: Mapping[str, tuple[str, Sequence[str | None]]],
    *,
    model: str | os.PathLike[str] | None = None,
    concurrency: int | tuple[int, int] = 1,
    num_cpus: float | None = 1,
    num_gpus: float | None = None,
    rows_per_block: int = 512,
    **scorer_options: Any,
) -> dict[str, ScoreDetails]:
    """Score ``{query_id: (query, candidate texts)}`` on Ray: :func:`runs_to_dataset`, then
    :func:`rerank_dataset` (each query's candidates in one scorer call), then
    :func:`runs_from_dataset`.

    Example:
        >>> from crossrank.scale import score_runs
        >>> found = score_runs({"q1": ("what causes tides?", ["The moon.", "Tide pods."])},
        ...                    model="cross-encoder/ms-marco-MiniLM-L6-v2", concurrency=2)
        >>> found["q1"].scores
        [0.97..., 0.00...]

    Returns:
        One :class:`crossrank.ScoreDetails` per query, like
        ``CrossEncoderScorer(model, **scorer_options).score_details(query, texts)``;
        candidates without text get a NaN score (see :func:`rerank_dataset`).
    """
    if not any(texts for _, texts in runs.values()):
        worker_scorer_options({"model": model, **scorer_options})  # the checks, without Ray
        return {q: ScoreDetails(scores=[], truncated=[], pairs=0, windows=[]) for q in runs}
    # At least one block per actor, so that every actor gets work.
    actors = _pool_size(concurrency)
    total = sum(len(texts) for _, texts in runs.values())
    per_actor = -(-total // actors.get("size", actors.get("max_size", 1)))
    scored = rerank_dataset(
        runs_to_dataset(runs, rows_per_block=max(1, min(rows_per_block, per_actor))),
        model=model,
        windows_column=_WINDOWS,
        concurrency=concurrency,
        rows_per_batch=None,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        **scorer_options,
    )
    return runs_from_dataset(scored, runs)


# ---------------------------------------------------------------------- checks


def _check_columns(**columns: str | None) -> dict[str, str | None]:
    """Column names: strings, distinct; only truncated, windows and instruction may be
    None."""
    named: dict[str, str] = {}
    for role, name in columns.items():
        if name is None and role in ("truncated", "windows", "instruction"):
            continue
        if not isinstance(name, str) or not name:
            raise TypeError(f"{role}_column must be a non-empty string, got {name!r}")
        if name in named:
            raise ValueError(
                f"{role}_column and {named[name]}_column are both {name!r}; give each its "
                "own column"
            )
        named[name] = role
    return dict(columns)


def _pool_size(concurrency: Any) -> dict[str, int]:
    """``ActorPoolStrategy`` keyword arguments for N or ``(min, max)``."""
    if isinstance(concurrency, tuple) and len(concurrency) == 2:
        low, high = concurrency
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in concurrency)
        if ok and 1 <= low <= high:
            return {"min_size": low, "max_size": high}
    elif isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1:
        return {"size": concurrency}
    raise ValueError(
        f"concurrency must be an int >= 1 or a (min, max) tuple with 1 <= min <= max, got "
        f"{concurrency!r}"
    )


def worker_scorer_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`crossrank.CrossEncoderScorer` keyword arguments to build scorers elsewhere
    (Ray actors, Ray Serve replicas): checked here by building a scorer (nothing is loaded;
    the device is left for the workers, which may have GPUs this machine lacks), ``model``
    resolved (``CROSSRANK_MODEL`` may be unset there), and local paths made absolute (a
    worker does not run in this working directory).

    Raises:
        TypeError, ValueError: An unknown option, or a bad value.
    """
    known = set(inspect.signature(CrossEncoderScorer.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"unknown CrossEncoderScorer option(s) {unknown}; see crossrank.CrossEncoderScorer"
        )
    probe = CrossEncoderScorer(**{**options, "device": None})
    kwargs = {**options, "model": probe.model_name}
    for name in _PATH_OPTIONS:
        value = kwargs.get(name)
        if isinstance(value, (str, os.PathLike)) and Path(value).expanduser().exists():
            kwargs[name] = str(Path(value).expanduser().resolve())
    return kwargs
