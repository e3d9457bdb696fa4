"""The ``crossrank`` command: ``rerank``, ``eval``, ``bench``, ``calibrate``, ``serve``,
``train``.

The scorer's options (model, backend, device, batching, max length, activation and
calibration, long documents, loading) are declared once, by :func:`add_scorer_options`,
for every command that builds a :class:`crossrank.CrossEncoderScorer`;
:func:`scorer_kwargs` turns the parsed flags back into its keyword arguments.

Every subcommand shares one exit-code convention and one error format (see
:mod:`crossrank._cli_checks`), and these flags mean the same in each: ``-m/--model``,
``-o/--out`` (where the command writes its records or its JSON report), ``--quiet`` (no
progress bars, notes or warnings on stderr; errors still print), and ``-k/--top-k``
(``rerank``: keep the best K); the first-stage candidates per query of ``eval``,
``calibrate`` and ``bench`` are ``--candidates``. ``train`` names its model folder
``--output`` (it writes a folder, not records). Before any model is loaded, the command
checks the device, the backends' extras, the input file and every output path.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from crossrank._cli_checks import (
    EXIT_INTERRUPTED,
    EXIT_STATUS,
    EXIT_USAGE,
    InputError,
    check_backends_here,
    check_input_file,
    check_output_path,
    cli_wording,
    error_line,
    exit_code,
)
from crossrank._quiet import drop_log_records
from crossrank._version import __version__
from crossrank.remote.flags import add_provider_options, remote_scorer
from crossrank.runtimes.backends import BACKENDS

__all__ = ["SCORER_FLAGS", "add_scorer_options", "main", "positive_int", "scorer_kwargs"]

#: The :class:`crossrank.CrossEncoderScorer` keyword arguments :func:`add_scorer_options`
#: declares flags for (``--batch-size`` for ``batch_size`` ...), in help order.
SCORER_FLAGS: tuple[str, ...] = (
    "model",
    "backend",
    "device",
    "batch_size",
    "max_tokens_per_batch",
    "max_length",
    "activation",
    "calibration",
    "fusion",
    "fusion_weight",
    "fusion_normalization",
    "long_documents",
    "max_windows",
    "window_stride",
    "aggregation",
    "top_windows",
    "onnx_cache_dir",
    "int8_calibration",
    "cache_dir",
    "revision",
    "local_files_only",
    "trust_remote_code",
    "model_kwargs",
    "tokenizer_kwargs",
    "config_kwargs",
)
_ACTIVATION_FLAGS = ("activation", "calibration")
_FUSION_FLAGS = ("fusion", "fusion_weight", "fusion_normalization")


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value!r}")
    return number


def fraction(value: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {value!r}")
    return number


def _json_object(value: str) -> dict[str, Any]:
    """argparse type: a JSON object, e.g. '{"torch_dtype": "bfloat16"}'."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {value!r} ({e.msg})") from e
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(
            f'must be a JSON object like \'{{"torch_dtype": "bfloat16"}}\', got {value!r}'
        )
    return parsed


def _calibration_file(value: str) -> list[tuple[str, str]]:
    """argparse type: a JSONL file of {"query": ..., "text": ...} lines (int8 calibration)."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"must be a JSONL file of query/text pairs; {value!r} is not a file"
        )
    pairs: list[tuple[str, str]] = []
    try:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            fields = ("query", "text")
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in fields):
                raise ValueError(f'line {n} needs string fields "query" and "text"')
            pairs.append((row["query"], row["text"]))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"cannot read {value!r}: {e}") from e
    if not pairs:
        raise argparse.ArgumentTypeError(f"{value!r} holds no query/text pairs")
    return pairs


def _scorer_defaults() -> dict[str, Any]:
    from crossrank.scorer import CrossEncoderScorer

    params = inspect.signature(CrossEncoderScorer.__init__).parameters
    return {name: p.default for name, p in params.items() if name in SCORER_FLAGS}


def add_scorer_options(
    parser: argparse.ArgumentParser,
    *,
    compare: bool = False,
    activation: bool = True,
    fusion: bool = True,
) -> argparse.ArgumentParser:
    """Declare the :class:`crossrank.CrossEncoderScorer` options as flags on ``parser``.

    Each flag is the option's name with dashes (``--batch-size``), with the scorer's own
    default, and is documented in the scorer's docstring. The flags are in one argument
    group, "scorer options". Read them back with :func:`scorer_kwargs`.

    Args:
        parser: The (sub)parser of a command that builds a scorer.
        compare: ``--model`` and ``--backend`` may be repeated, to compare several (their
            values are then lists, or None when not given).
        activation: Declare ``--activation`` and ``--calibration`` (a command that reads
            raw logits or only ranks, such as ``eval`` and ``calibrate``, leaves them out).
        fusion: Declare ``--fusion``, ``--fusion-weight`` and ``--fusion-normalization``
            (``calibrate``, which fits the model's own logits, leaves them out).

    Returns:
        ``parser``.
    """
    defaults = _scorer_defaults()
    group = parser.add_argument_group("scorer options", "see crossrank.CrossEncoderScorer")
    repeat: dict[str, Any] = {"action": "append"} if compare else {"default": None}
    group.add_argument(
        "--model",
        "-m",
        metavar="M",
        help="cross-encoder id or folder"
        + ("; repeat to compare several" if compare else "")
        + " (default: $CROSSRANK_MODEL, else cross-encoder/ms-marco-MiniLM-L6-v2)",
        **repeat,
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        metavar="B",
        help=f"inference backend{', repeat to compare' if compare else ''} "
        f"({', '.join(BACKENDS)}; default: {defaults['backend']})",
        **({"action": "append"} if compare else {"default": defaults["backend"]}),
    )
    for name, help_text, kwargs in _option_specs(activation, fusion):
        kwargs.setdefault("default", defaults[name])
        group.add_argument("--" + name.replace("_", "-"), help=help_text, **kwargs)
    return parser


def _option_specs(activation: bool, fusion: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(scorer option, help, add_argument keywords) for every flag but --model/--backend."""
    from crossrank.calibration import ACTIVATIONS
    from crossrank.fusion import FUSIONS, NORMALIZATIONS
    from crossrank.windows import AGGREGATIONS

    def count() -> dict[str, Any]:
        return {"type": positive_int, "metavar": "N"}

    def path(metavar: str) -> dict[str, Any]:
        return {"metavar": metavar}

    def switch() -> dict[str, Any]:
        return {"action": "store_true"}

    def json_object() -> dict[str, Any]:
        return {"type": _json_object, "metavar": "JSON"}

    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("device", "cpu, cuda, cuda:1, mps (default: auto)", {}),
        ("batch_size", "most pairs per forward pass (default: %(default)s)", count()),
        (
            "max_tokens_per_batch",
            "most padded tokens per forward pass (default: %(default)s)",
            count(),
        ),
        ("max_length", "tokens per pair the model reads (default: the model's limit)", count()),
    ]
    if activation:
        specs += [
            (
                "activation",
                "how logits become scores (default: %(default)s)",
                {"choices": ACTIVATIONS},
            ),
            (
                "calibration",
                "with --activation calibrated: a file from `crossrank calibrate` "
                "(default: the one in the model's folder)",
                path("FILE"),
            ),
        ]
    if fusion:
        specs += [
            (
                "fusion",
                "mix the cross-encoder's score with each candidate's first-stage score, per "
                "query: linear (weighted sum of per-query normalised scores) or rrf "
                "(weighted reciprocal rank fusion) (default: off)",
                {"choices": FUSIONS},
            ),
            (
                "fusion_weight",
                "the cross-encoder's share of the fused score, in [0, 1] "
                "(default: %(default)s)",
                {"type": fraction, "metavar": "W"},
            ),
            (
                "fusion_normalization",
                "how linear fusion puts both scores on one scale per query "
                "(default: %(default)s)",
                {"choices": NORMALIZATIONS},
            ),
        ]
    specs += [
        (
            "long_documents",
            "cut long texts at max length (default) or score them in overlapping windows",
            {"choices": ("truncate", "chunk")},
        ),
        ("max_windows", "chunk mode: most windows per text (default: %(default)s)", count()),
        (
            "window_stride",
            "chunk mode: tokens shared by consecutive windows (default: a quarter of a window)",
            count(),
        ),
        (
            "aggregation",
            "chunk mode: how window scores become the text's (default: %(default)s)",
            {"choices": AGGREGATIONS},
        ),
        ("top_windows", "chunk mode: windows averaged by mean-top (default: %(default)s)", count()),
        (
            "onnx_cache_dir",
            "where exported ONNX files are cached (default: "
            "$CROSSRANK_CACHE/onnx, else ~/.cache/crossrank/onnx)",
            path("DIR"),
        ),
        (
            "int8_calibration",
            'JSONL file of {"query": ..., "text": ...} pairs from your data that calibrate '
            "openvino-int8 (default: a built-in sample)",
            {"type": _calibration_file, "metavar": "FILE"},
        ),
        (
            "cache_dir",
            "folder for downloaded models (default: the Hugging Face cache)",
            path("DIR"),
        ),
        ("revision", "model revision (branch, tag or commit) on the Hub", path("REV")),
        ("local_files_only", "never contact the Hugging Face Hub", switch()),
        ("trust_remote_code", "allow models that ship their own modelling code", switch()),
    ]
    specs += [
        (name, f"JSON object of keyword arguments for {target} from_pretrained", json_object())
        for name, target in (
            ("model_kwargs", "the model's"),
            ("tokenizer_kwargs", "the tokenizer's"),
            ("config_kwargs", "the config's"),
        )
    ]
    return specs


def scorer_kwargs(args: argparse.Namespace, *, changed_only: bool = False) -> dict[str, Any]:
    """The :class:`crossrank.CrossEncoderScorer` keyword arguments in parsed flags.

    Every option :func:`add_scorer_options` declared on the command's parser is returned
    (with its default when the flag was not given), so ``CrossEncoderScorer(**kwargs)``
    builds the scorer the flags describe. With ``compare=True``, ``model`` and ``backend``
    are lists (or None); the caller picks one of each.

    Args:
        args: The parsed flags.
        changed_only: Return only the options whose value differs from the scorer's
            default.

    Example:
        >>> parser = add_scorer_options(argparse.ArgumentParser())
        >>> scorer_kwargs(parser.parse_args(["-m", "my/model", "--batch-size", "8"]))["batch_size"]
        8
    """
    values = vars(args)
    kwargs = {name: values[name] for name in SCORER_FLAGS if name in values}
    if changed_only:
        defaults = _scorer_defaults()
        kwargs = {k: v for k, v in kwargs.items() if v != defaults[k]}
    return kwargs


def read_candidates(
    path: Path,
    fmt: str,
    text_field: str,
    title_field: str | None = None,
    score_field: str | None = None,
) -> list[dict[str, Any]]:
    """Read candidates as records with at least ``text_field``.

    ``fmt`` is ``jsonl`` (one JSON object per line), ``text`` (one candidate per line) or
    ``auto`` (JSONL when the first non-blank line starts with ``{``). Blank lines are
    skipped; a file with nothing else gives ``[]``. With ``title_field``, a JSONL record's
    title there must be a string or null when present. With ``score_field`` (a first-stage
    score, for fusion) the input must be JSONL and every record with non-blank text must
    hold a finite number there. Errors name the file and line.

    Raises:
        InputError: ``path`` is missing or a directory, is not UTF-8, or a line is not a
            JSON object with a string ``text_field`` (and a number in ``score_field``).
    """
    check_input_file(str(path), "--input")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e})") from e
    if fmt == "auto":
        first = next((line for line in lines if line.strip()), "")
        fmt = "jsonl" if first.lstrip().startswith("{") else "text"
    if score_field and fmt == "text" and any(line.strip() for line in lines):
        raise InputError(
            f"{path}: --first-stage-field needs JSONL input (one object per line with the "
            f"text and the score), got plain text lines"
        )
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if fmt == "text":
            records.append({"line": number, text_field: line})
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{number}: not valid JSON ({e.msg})") from e
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {line.strip()[:60]}")
        text = record.get(text_field)
        if not isinstance(text, str):
            raise InputError(
                f"{path}:{number}: field {text_field!r} must be a string, got "
                f"{type(text).__name__}; choose the field with --text-field"
            )
        title = record.get(title_field) if title_field else None
        if title is not None and not isinstance(title, str):
            raise InputError(
                f"{path}:{number}: field {title_field!r} must be a string or null, got "
                f"{type(title).__name__}; choose the field with --title-field "
                "(--title-field '' ignores titles)"
            )
        if score_field and text.strip():
            value = record.get(score_field, _MISSING)
            _check_first_stage_field(value, f"{path}:{number}", score_field)
        records.append(record)
    return records


_MISSING = object()


def _check_first_stage_field(value: Any, where: str, field: str) -> None:
    """A record's first-stage score must be a finite number."""
    if value is _MISSING or value is None:
        got = "no such field" if value is _MISSING else "null"
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        got = f"{type(value).__name__} {json.dumps(value)[:40]}"
    elif value != value or value in (float("inf"), float("-inf")):
        got = str(value)
    else:
        return
    raise InputError(
        f"{where}: field {field!r} must be a finite number (the candidate's first-stage "
        f"score, for --fusion), got {got}; choose the field with --first-stage-field"
    )


def _note(args: argparse.Namespace, message: str) -> None:
    """A line on stderr that is not an error (none with ``--quiet``)."""
    if not getattr(args, "quiet", False):
        print(f"crossrank {args.command}: note: {message}", file=sys.stderr)


def _write_jsonl(rows: list[dict[str, Any]], out: str | None) -> None:
    """Write ``rows`` as JSON lines to ``out`` (None or ``-``: stdout), making its folder."""
    if out in (None, "-"):
        _dump(rows, sys.stdout)
        return
    target = Path(out).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as f:
        _dump(rows, f)


def _dump(rows: list[dict[str, Any]], stream: TextIO) -> None:
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")


def _rerank(args: argparse.Namespace) -> int:
    from crossrank.eval.data import document_text
    from crossrank.scorer import CrossEncoderScorer

    title_field = args.title_field or None
    score_field = _first_stage_field(args)
    records = read_candidates(
        Path(args.input), args.format, args.text_field, title_field, score_field
    )
    if not records:
        _note(args, f"{args.input} holds no candidates (it is empty or has only blank lines)")
        _write_jsonl([], args.out)
        return 0
    contents = [r[args.text_field] for r in records]
    # As crossrank eval reads a BEIR corpus: "title. text" when a record has a title.
    texts = [
        document_text(r.get(title_field) if title_field else None, c)
        for r, c in zip(records, contents, strict=True)
    ]
    options = scorer_kwargs(args)
    scorer = remote_scorer(args, options) or CrossEncoderScorer(**options)
    with drop_log_records("have no text"):  # reported once, below, with lines or ids
        outcome = scorer.rerank(
            args.query,
            texts,
            top_k=args.top_k,
            score_threshold=args.score_threshold,
            min_relative_score=args.min_relative_score,
            token_budget=args.token_budget,
            passages=args.passage,
            contents=contents if args.passage else None,
            first_stage_scores=(
                [r.get(score_field) for r in records] if score_field else None
            ),
        )
    if outcome.skipped:
        where = ", ".join(str(_where(records[i])) for i in outcome.skipped[:10])
        more = ", ..." if len(outcome.skipped) > 10 else ""
        _note(
            args,
            f"{len(outcome.skipped)} candidate(s) with empty text were not scored "
            f"(lines/ids: {where}{more})",
        )
    rows = []
    for rank, hit in enumerate(outcome.hits, start=1):
        record = dict(records[hit.index])
        record["score"] = hit.score
        if hit.model_score is not None:
            record["model_score"] = hit.model_score
        record["rank"] = rank
        if hit.truncated:
            record["truncated"] = True
        if args.passage:
            # What the token budget counted: the best passage, else the whole text.
            text = contents[hit.index]
            start, end = hit.passage if hit.passage is not None else (0, len(text))
            record["span"] = [start, end]
            record["passage"] = text[start:end]
        rows.append(record)
    _write_jsonl(rows, args.out)
    return 0


def _first_stage_field(args: argparse.Namespace) -> str | None:
    """``--first-stage-field``, which goes with ``--fusion`` both ways."""
    field: str | None = args.first_stage_field
    if args.fusion and not field:
        raise InputError(
            f"--fusion {args.fusion} needs --first-stage-field FIELD: the JSONL field holding "
            "each candidate's first-stage (retriever) score"
        )
    if field and not args.fusion:
        raise InputError(
            f"--first-stage-field {field} is only used with --fusion linear or --fusion rrf"
        )
    if not args.fusion:
        defaults = _scorer_defaults()
        for name in ("fusion_weight", "fusion_normalization"):
            if getattr(args, name) != defaults[name]:
                flag = "--" + name.replace("_", "-")
                raise InputError(f"{flag} is only used with --fusion linear or --fusion rrf")
    return field


def _where(record: dict[str, Any]) -> Any:
    return record.get("id", record.get("_id", record.get("line", "?")))


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual, and prints the exit-status table as it is written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == EXIT_STATUS:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit 2), not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_subcommand(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subparser whose ``--help`` ends with the exit codes; errors are worded with its
    flags (``args.command_parser``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, formatter_class=_HelpFormatter, epilog=EXIT_STATUS, **kwargs
    )
    parser.set_defaults(command_parser=parser)
    return parser


def _add_rerank(subparsers: Any) -> None:
    p = _add_subcommand(
        subparsers,
        "rerank",
        help="rerank the candidates in a file for one query",
        description="Score each candidate against the query and write the top K as JSONL "
        "(each input record plus 'score' and 'rank').",
    )
    p.add_argument("--query", "-q", required=True, help="the query")
    p.add_argument(
        "--input", "-i", required=True, help="JSONL ({'id', 'text', ...} per line) or text lines"
    )
    p.add_argument(
        "--top-k", "-k", type=positive_int, default=None, metavar="K",
        help="keep the best K (default: all)",
    )  # fmt: skip
    p.add_argument("--score-threshold", type=float, default=None, help="drop scores below this")
    p.add_argument("--format", choices=("auto", "jsonl", "text"), default="auto")
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")
    p.add_argument(
        "--first-stage-field",
        default=None,
        metavar="FIELD",
        help="with --fusion: JSONL field holding each candidate's first-stage (retriever) "
        "score; 'score' is then the fused score and 'model_score' the cross-encoder's",
    )
    p.add_argument(
        "--title-field",
        default="title",
        metavar="FIELD",
        help="JSONL field holding a title, read as crossrank eval reads a BEIR corpus: the "
        "model scores 'TITLE. TEXT' ('' ignores titles; default: %(default)s)",
    )
    p.add_argument(
        "--min-relative-score",
        type=float,
        default=None,
        metavar="F",
        help="drop scores below F x the best (0 < F <= 1)",
    )
    p.add_argument(
        "--token-budget",
        type=positive_int,
        default=None,
        metavar="N",
        help="keep the best while their tokens add up to at most N",
    )
    p.add_argument(
        "--passage",
        action="store_true",
        help="add what each kept text hands on, which the token budget counts: 'passage' "
        "(its best passage, whole words; the whole text when the best window lies "
        "outside it) and 'span' ([start, end] characters in the text)",
    )
    p.add_argument(
        "--out", "-o", default=None, metavar="FILE", help="write the records here (default: stdout)"
    )
    p.add_argument(
        "--quiet", action="store_true", help="no notes or warnings on stderr (errors still print)"
    )
    add_scorer_options(p)
    add_provider_options(p)  # --provider NAME[:MODEL], --url: a RemoteScorer instead
    p.set_defaults(func=_rerank)


def build_parser() -> argparse.ArgumentParser:
    """The ``crossrank`` argument parser, with every subcommand."""
    parser = _Parser(
        prog="crossrank",
        description="Cross-encoder reranking for RAG pipelines.",
        formatter_class=_HelpFormatter,
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_rerank(subparsers)
    _add_optional_commands(subparsers)
    return parser


def _add_optional_commands(subparsers: Any) -> None:
    from crossrank.eval import bench, calibrate, harness

    p = _add_subcommand(
        subparsers,
        "eval",
        help="evaluate first stage + rerankers on a BEIR/TREC set",
        description="Retrieve with a first stage, rerank with each model, and report "
        "NDCG@10, MRR@10, Recall@10, Recall@K, latency and throughput.",
    )
    harness.add_eval_arguments(p)
    p.set_defaults(func=harness.run_eval)
    p = _add_subcommand(
        subparsers,
        "bench",
        help="time crossrank's backends against sentence-transformers",
        description="Time reranking N candidates with each crossrank backend and with "
        "sentence-transformers CrossEncoder.predict (fp32), in one process.",
    )
    bench.add_bench_arguments(p)
    p.set_defaults(func=bench.run_bench)
    p = _add_subcommand(
        subparsers,
        "calibrate",
        help="fit temperature and Platt scaling so scores become probabilities",
        description="Score a first stage's top-K candidates on a labelled BEIR set, fit "
        "temperature and Platt scaling on part of the queries, report ECE, log-loss and "
        "Brier score on the held-out rest, and write the calibration for "
        "activation='calibrated'.",
    )
    calibrate.add_calibrate_arguments(p)
    p.set_defaults(func=calibrate.run_calibrate)
    from crossrank.serve import cli as serve

    p = _add_subcommand(
        subparsers,
        "serve",
        help="serve one scorer over HTTP (TEI- and Cohere-compatible; crossrank[serve])",
        description="Serve one cross-encoder over HTTP: POST /rerank (TEI), POST /v1/rerank "
        "(Cohere/Jina, crossrank's options in the 'crossrank' field), GET /health, /info and "
        "/metrics. Concurrent requests share forward passes. See docs/serving.md.",
    )
    serve.add_serve_arguments(p)
    from crossrank.serve import ray_app

    ray_app.add_ray_arguments(p)  # --ray, --replicas, --autoscaling ... (crossrank[ray])
    p.set_defaults(func=_serve)

    from crossrank.train import cli as train_cli

    p = _add_subcommand(
        subparsers,
        "train",
        help="fine-tune a cross-encoder on your data with first-stage hard negatives",
        description="Fine-tune a cross-encoder (or a plain encoder, with a new head) on a "
        "BEIR folder's training judgments, with hard negatives mined from the first stage; "
        "keep the best checkpoint on a dev split; write the model, a calibration and a "
        "training report.",
    )
    train_cli.add_train_arguments(p)
    p.set_defaults(func=train_cli.run_train)


def _serve(args: argparse.Namespace) -> int:
    """``crossrank serve``: one process, or Ray Serve with ``--ray``."""
    from crossrank.serve import cli as serve
    from crossrank.serve import ray_app

    if args.ray:
        if args.provider or args.url:
            raise InputError(
                f"--ray serves local models; {'--provider' if args.provider else '--url'} is "
                "served by one process: leave out --ray"
            )
        return ray_app.run_ray_serve(args)
    ray_app.check_ray_flags(args)  # a Ray flag without --ray is a usage error
    return serve.run_serve(args)


def _preflight(args: argparse.Namespace) -> None:
    """Checks every command makes before it loads anything: the device, each backend
    (runs here, extra installed) and every output path."""
    from crossrank.runtimes.devices import check_device

    device = getattr(args, "device", None)
    check_device(device)
    backends = getattr(args, "backend", None)
    if backends:
        check_backends_here([backends] if isinstance(backends, str) else backends, device)
    for dest in ("out", "plot", "save"):
        check_output_path(getattr(args, dest, None), f"--{dest}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crossrank`` command; returns the exit code.

    Exit codes: 0 done, 1 the work failed (the model could not be loaded, scoring failed),
    2 a usage or input error, 130 interrupted (see ``crossrank --help``). An error is one
    line on stderr, worded with the command's flags; an unexpected error (a bug) keeps its
    traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a usage error (2), or --help / --version (0)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    quiet = drop_log_records() if getattr(args, "quiet", False) else contextlib.nullcontext()
    try:
        with quiet:
            _preflight(args)
            return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        code = exit_code(e)
        if code is None:
            raise
        message = cli_wording(error_line(e), args.command_parser)
        print(f"crossrank {args.command}: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
