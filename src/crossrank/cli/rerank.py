"""``crossrank rerank``: score the candidates in a file against one query and write the
best as JSON lines (each input record plus ``score`` and ``rank``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from crossrank._cli.argtypes import positive_int
from crossrank._cli.candidates import read_candidates, write_jsonl
from crossrank._cli.options import add_scorer_options, scorer_defaults, scorer_kwargs
from crossrank._cli.parser import add_subcommand
from crossrank._cli_checks import InputError
from crossrank._quiet import drop_log_records
from crossrank.compose.flags import add_scorer_config_option, saved_scorer
from crossrank.deadline import rerank_with_deadline
from crossrank.remote.flags import add_provider_options, remote_scorer

__all__ = ["register", "run_rerank"]


def register(subparsers: Any) -> None:
    """Add ``crossrank rerank`` to the ``crossrank`` parser's subparsers."""
    p = add_subcommand(
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
    add_scorer_config_option(p)  # --scorer-config FILE: a saved scorer (an Ensemble...)
    p.set_defaults(func=run_rerank)



def run_rerank(args: argparse.Namespace) -> int:
    """Run ``crossrank rerank`` from parsed arguments; write the records; an exit code."""
    from crossrank.eval.data import document_text
    from crossrank.scorer import CrossEncoderScorer

    title_field = args.title_field or None
    score_field = _first_stage_field(args)
    records = read_candidates(
        Path(args.input), args.format, args.text_field, title_field, score_field
    )
    if not records:
        _note(args, f"{args.input} holds no candidates (it is empty or has only blank lines)")
        write_jsonl([], args.out)
        return 0
    contents = [r[args.text_field] for r in records]
    # As crossrank eval reads a BEIR corpus: "title. text" when a record has a title.
    texts = [
        document_text(r.get(title_field) if title_field else None, c)
        for r, c in zip(records, contents, strict=True)
    ]
    options = scorer_kwargs(args)
    deadline = options.pop("deadline_ms", None)  # given to the call: any scorer keeps it
    scorer = (
        saved_scorer(args, options)
        or remote_scorer(args, options)
        or CrossEncoderScorer(**options)
    )
    with drop_log_records("have no text"):  # reported once, below, with lines or ids
        outcome = rerank_with_deadline(
            scorer,
            args.query,
            texts,
            deadline_ms=deadline,
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
    for rank, index in enumerate(outcome.unscored, start=len(rows) + 1):
        # Not scored (a deadline ran out, below a cascade's top): kept in their order.
        rows.append({**records[index], "score": None, "unscored": True, "rank": rank})
    if outcome.deadline_unscored:
        _note(args, f"the deadline left {outcome.deadline_unscored} candidate(s) unscored")
    write_jsonl(rows, args.out)
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
        defaults = scorer_defaults()
        for name in ("fusion_weight", "fusion_normalization"):
            if getattr(args, name) != defaults[name]:
                flag = "--" + name.replace("_", "-")
                raise InputError(f"{flag} is only used with --fusion linear or --fusion rrf")
    return field


def _where(record: dict[str, Any]) -> Any:
    return record.get("id", record.get("_id", record.get("line", "?")))



def _note(args: argparse.Namespace, message: str) -> None:
    """A line on stderr that is not an error (none with ``--quiet``)."""
    if not getattr(args, "quiet", False):
        print(f"crossrank {args.command}: note: {message}", file=sys.stderr)
