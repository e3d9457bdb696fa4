"""Load retrieval data in BEIR layout (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Dataset",
    "Qrels",
    "document_text",
    "load_beir",
    "load_qrels",
    "load_trec_run",
    "read_jsonl",
]

#: {query_id: {doc_id: relevance}}
Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Dataset:
    """A retrieval set: documents, queries and relevance judgments for one split.

    Attributes:
        corpus: ``{doc_id: {"title": ..., "text": ...}}``.
        queries: ``{query_id: text}`` for the judged queries of the split.
        qrels: ``{query_id: {doc_id: relevance}}``.
    """

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: Qrels

    def doc_text(self, doc_id: str) -> str:
        """The text a reranker reads: ``title + '. ' + text`` (or just the text)."""
        doc = self.corpus[doc_id]
        return document_text(doc.get("title"), doc.get("text") or "")


def document_text(title: str | None, text: str) -> str:
    """What crossrank scores for a titled document: ``"TITLE. TEXT"``, or the text alone
    when the title is None or blank (``crossrank eval`` for a BEIR corpus, ``crossrank
    rerank`` for JSONL records with a title)."""
    title = (title or "").strip()
    return f"{title}. {text}" if title else text


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield ``(line_number, record)``; raise ValueError naming the file and line on bad JSON."""
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from e
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {record!r:.60}")
            yield number, record


def load_qrels(path: Path) -> Qrels:
    """Read qrels as BEIR TSV (``query-id corpus-id score`` with a header) or TREC
    (``qid 0 docid rel``, whitespace separated)."""
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t")) if path.suffix == ".tsv" else None
    if rows is None or (rows and len(rows[0]) == 1):
        rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    for number, row in enumerate(rows, start=1):
        if not row or (number == 1 and not row[-1].lstrip("-").isdigit()):
            continue  # blank line or header
        if len(row) == 3:
            qid, doc_id, rel = row
        elif len(row) == 4:
            qid, _, doc_id, rel = row
        else:
            raise ValueError(f"{path}:{number}: expected 3 (BEIR) or 4 (TREC) columns, got {row}")
        try:
            qrels.setdefault(qid, {})[doc_id] = int(float(rel))
        except ValueError as e:
            raise ValueError(f"{path}:{number}: relevance must be a number, got {rel!r}") from e
    return qrels


def load_beir(
    folder: str | Path, split: str = "test", *, qrels_path: str | Path | None = None
) -> Dataset:
    """Load a BEIR folder; keep the queries judged in ``split``.

    Args:
        folder: Holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: Which qrels file to read.
        qrels_path: Read the judgments from this file (BEIR TSV or TREC qrels) instead of
            ``qrels/<split>.tsv``, which then need not exist.
    """
    folder = Path(folder)
    names = ["corpus.jsonl", "queries.jsonl"]
    if qrels_path is None:
        names.append(f"qrels/{split}.tsv")
    elif not Path(qrels_path).is_file():
        raise FileNotFoundError(f"qrels file {qrels_path} not found")
    for name in names:
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} not found: a BEIR folder holds corpus.jsonl, queries.jsonl "
                f"and qrels/{split}.tsv"
            )
    corpus: dict[str, dict[str, str]] = {}
    for number, rec in read_jsonl(folder / "corpus.jsonl"):
        if "_id" not in rec:
            raise ValueError(f"{folder / 'corpus.jsonl'}:{number}: missing '_id'")
        corpus[str(rec["_id"])] = {
            "title": str(rec.get("title") or ""),
            "text": str(rec.get("text") or ""),
        }
    qrels_file = Path(qrels_path) if qrels_path is not None else folder / "qrels" / f"{split}.tsv"
    qrels = load_qrels(qrels_file)
    queries: dict[str, str] = {}
    for number, rec in read_jsonl(folder / "queries.jsonl"):
        if "_id" not in rec:
            raise ValueError(f"{folder / 'queries.jsonl'}:{number}: missing '_id'")
        qid = str(rec["_id"])
        if qid in qrels:
            queries[qid] = str(rec.get("text") or "")
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise ValueError(f"{qrels_file} judges queries not in queries.jsonl: {missing[:5]}")
    return Dataset(corpus=corpus, queries=queries, qrels=qrels)


def load_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file: ``qid Q0 docid rank score tag``, whitespace separated.

    As in trec_eval, the rank column is ignored: documents are ranked by score (ties by doc
    id descending, see :func:`crossrank.eval.metrics.ranked_ids`).

    Returns:
        ``{query_id: {doc_id: score}}``.

    Raises:
        ValueError: On a line without 6 columns, a score that is not a number, or a document
            listed twice for the same query; the message names the file and line.
    """
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            row = line.split()
            if not row:
                continue
            if len(row) != 6:
                raise ValueError(
                    f"{path}:{number}: a TREC run line has 6 columns "
                    f"(qid Q0 docid rank score tag), got {len(row)}: {line.strip()!r:.80}"
                )
            qid, _, doc_id, _, score, _ = row
            try:
                value = float(score)
            except ValueError as e:
                raise ValueError(
                    f"{path}:{number}: the score (5th column) must be a number, got {score!r}"
                ) from e
            if not math.isfinite(value):
                raise ValueError(f"{path}:{number}: the score must be finite, got {score!r}")
            docs = run.setdefault(qid, {})
            if doc_id in docs:
                raise ValueError(
                    f"{path}:{number}: document {doc_id!r} is listed twice for query {qid!r}"
                )
            docs[doc_id] = value
    if not run:
        raise ValueError(f"{path}: the run file is empty")
    return run
