"""The ``crossrank`` command: ``rerank``, ``eval``, ``bench``, ``calibrate``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from crossrank._version import __version__
from crossrank.backends import BACKENDS

__all__ = ["main"]


class InputError(ValueError):
    """A problem with the user's input file, worded for the terminal."""


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
    scorer = CrossEncoderScorer(
        args.model,
        device=args.device,
        batch_size=args.batch_size,
        max_length=args.max_length,
        activation=args.activation,
        calibration=args.calibration,
        backend=args.backend,
        long_documents=args.long_documents,
        max_windows=args.max_windows,
        aggregation=args.aggregation,
    )
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
            if args.passage and hit.span is not None:
                start, end = hit.span
                record["span"] = [start, end]
                record["passage"] = texts[hit.index][start:end]
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
    p.add_argument("--model", "-m", default=None, help="model id or folder (default: "
                   "$CROSSRANK_MODEL, else cross-encoder/ms-marco-MiniLM-L6-v2)")
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
    p.add_argument("--activation", choices=("sigmoid", "raw", "calibrated"), default="sigmoid")
    p.add_argument(
        "--calibration",
        default=None,
        metavar="FILE",
        help="with --activation calibrated: a file from `crossrank calibrate` "
        "(default: the one in the model's folder)",
    )
    p.add_argument(
        "--long-documents",
        choices=("truncate", "chunk"),
        default="truncate",
        help="cut long texts (default) or score them in overlapping windows",
    )
    p.add_argument(
        "--max-windows", type=int, default=8, metavar="N", help="chunk mode: windows per text (8)"
    )
    p.add_argument(
        "--aggregation",
        choices=("max", "mean-top", "first-weighted"),
        default="max",
        help="chunk mode: how window scores become the text's (max)",
    )
    p.add_argument(
        "--passage",
        action="store_true",
        help="add each kept text's best passage ('passage', 'span'); the token budget "
        "counts the passages",
    )
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="inference backend (torch)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: auto)")
    p.add_argument("--out", "-o", default=None, help="output file (default: stdout)")
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
