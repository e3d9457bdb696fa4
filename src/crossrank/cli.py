"""The ``crossrank`` command: ``rerank``, ``eval``, ``bench``, ``calibrate``.

The scorer's options (model, backend, device, batching, max length, activation and
calibration, long documents, loading) are declared once, by :func:`add_scorer_options`,
for every command that builds a :class:`crossrank.CrossEncoderScorer`;
:func:`scorer_kwargs` turns the parsed flags back into its keyword arguments.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from crossrank._version import __version__
from crossrank.backends import BACKENDS

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
    "long_documents",
    "max_windows",
    "window_stride",
    "aggregation",
    "top_windows",
    "onnx_cache_dir",
    "cache_dir",
    "revision",
    "local_files_only",
    "trust_remote_code",
    "model_kwargs",
    "tokenizer_kwargs",
    "config_kwargs",
)
_ACTIVATION_FLAGS = ("activation", "calibration")


class InputError(ValueError):
    """A problem with the user's input file, worded for the terminal."""


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value!r}")
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


def _scorer_defaults() -> dict[str, Any]:
    from crossrank.scorer import CrossEncoderScorer

    params = inspect.signature(CrossEncoderScorer.__init__).parameters
    return {name: p.default for name, p in params.items() if name in SCORER_FLAGS}


def add_scorer_options(
    parser: argparse.ArgumentParser, *, compare: bool = False, activation: bool = True
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
    for name, help_text, kwargs in _option_specs(activation):
        kwargs.setdefault("default", defaults[name])
        group.add_argument("--" + name.replace("_", "-"), help=help_text, **kwargs)
    return parser


def _option_specs(activation: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(scorer option, help, add_argument keywords) for every flag but --model/--backend."""
    from crossrank.calibration import ACTIVATIONS
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
        ("max_tokens_per_batch", "most padded tokens per forward pass (default: no cap)", count()),
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


def read_candidates(path: Path, fmt: str, text_field: str) -> list[dict[str, Any]]:
    """Read candidates as records with at least ``text_field``.

    ``fmt`` is ``jsonl`` (one JSON object per line), ``text`` (one candidate per line) or
    ``auto`` (JSONL when the first non-blank line starts with ``{``). Blank lines are
    skipped. Errors name the file and line.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e})") from e
    if fmt == "auto":
        first = next((line for line in lines if line.strip()), "")
        fmt = "jsonl" if first.lstrip().startswith("{") else "text"
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
        records.append(record)
    return records


def _rerank(args: argparse.Namespace) -> int:
    from crossrank.scorer import CrossEncoderScorer

    records = read_candidates(Path(args.input), args.format, args.text_field)
    scorer = CrossEncoderScorer(**scorer_kwargs(args))
    texts = [r[args.text_field] for r in records]
    outcome = scorer.rerank(
        args.query,
        texts,
        top_k=args.top_k,
        score_threshold=args.score_threshold,
        min_relative_score=args.min_relative_score,
        token_budget=args.token_budget,
        passages=args.passage,
    )
    if outcome.skipped:
        skipped = ", ".join(str(_where(records[i])) for i in outcome.skipped[:10])
        print(
            f"crossrank: {len(outcome.skipped)} candidate(s) with empty text were not scored "
            f"(lines/ids: {skipped})",
            file=sys.stderr,
        )
    out: TextIO = sys.stdout if args.out in (None, "-") else open(args.out, "w", encoding="utf-8")
    try:
        for rank, hit in enumerate(outcome.hits, start=1):
            record = dict(records[hit.index])
            record["score"] = hit.score
            record["rank"] = rank
            if hit.truncated:
                record["truncated"] = True
            if args.passage:
                # What the token budget counted: the best passage, else the whole text.
                text = texts[hit.index]
                start, end = hit.passage if hit.passage is not None else (0, len(text))
                record["span"] = [start, end]
                record["passage"] = text[start:end]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _where(record: dict[str, Any]) -> Any:
    return record.get("id", record.get("line", "?"))


def _add_rerank(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rerank",
        help="rerank the candidates in a file for one query",
        description="Score each candidate against the query and write the top K as JSONL "
        "(each input record plus 'score' and 'rank').",
    )
    p.add_argument("--query", "-q", required=True, help="the query")
    p.add_argument(
        "--input", "-i", required=True, help="JSONL ({'id', 'text', ...} per line) or text lines"
    )
    p.add_argument("--top-k", "-k", type=int, default=None, help="keep the best K (default: all)")
    p.add_argument("--score-threshold", type=float, default=None, help="drop scores below this")
    p.add_argument("--format", choices=("auto", "jsonl", "text"), default="auto")
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")
    p.add_argument(
        "--min-relative-score",
        type=float,
        default=None,
        metavar="F",
        help="drop scores below F x the best (0 < F <= 1)",
    )
    p.add_argument(
        "--token-budget",
        type=int,
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
    p.add_argument("--out", "-o", default=None, help="output file (default: stdout)")
    add_scorer_options(p)
    p.set_defaults(func=_rerank)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossrank", description="Cross-encoder reranking for RAG pipelines."
    )
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_rerank(subparsers)
    _add_optional_commands(subparsers)
    return parser


def _add_optional_commands(subparsers: Any) -> None:
    from crossrank.eval import bench, calibrate, harness

    p = subparsers.add_parser(
        "eval",
        help="evaluate first stage + rerankers on a BEIR/TREC set",
        description="Retrieve with a first stage, rerank with each model, and report "
        "NDCG@10, MRR@10, Recall@10, Recall@K, latency and throughput.",
    )
    harness.add_eval_arguments(p)
    p.set_defaults(func=harness.run_eval)
    p = subparsers.add_parser(
        "bench",
        help="time crossrank's backends against sentence-transformers",
        description="Time reranking N candidates with each crossrank backend and with "
        "sentence-transformers CrossEncoder.predict (fp32), in one process.",
    )
    bench.add_bench_arguments(p)
    p.set_defaults(func=bench.run_bench)
    p = subparsers.add_parser(
        "calibrate",
        help="fit temperature and Platt scaling so scores become probabilities",
        description="Score a first stage's top-K candidates on a labelled BEIR set, fit "
        "temperature and Platt scaling on part of the queries, report ECE, log-loss and "
        "Brier score on the held-out rest, and write the calibration for "
        "activation='calibrated'.",
    )
    calibrate.add_calibrate_arguments(p)
    p.set_defaults(func=calibrate.run_calibrate)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crossrank`` command; returns the exit code."""
    from crossrank.errors import CrossrankError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (InputError, FileNotFoundError) as e:
        print(f"crossrank {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (CrossrankError, ValueError, TypeError) as e:
        print(f"crossrank {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
