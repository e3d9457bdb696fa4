"""Load retrieval data in BEIR layout (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Dataset", "Qrels", "load_beir", "read_jsonl"]

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
        title = (doc.get("title") or "").strip()
        text = doc.get("text") or ""
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


def load_beir(folder: str | Path, split: str = "test") -> Dataset:
    """Load a BEIR folder; keep the queries judged in ``split``."""
    folder = Path(folder)
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
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
    qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
    queries: dict[str, str] = {}
    for number, rec in read_jsonl(folder / "queries.jsonl"):
        if "_id" not in rec:
            raise ValueError(f"{folder / 'queries.jsonl'}:{number}: missing '_id'")
        qid = str(rec["_id"])
        if qid in qrels:
            queries[qid] = str(rec.get("text") or "")
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise ValueError(f"qrels/{split}.tsv judges queries not in queries.jsonl: {missing[:5]}")
    return Dataset(corpus=corpus, queries=queries, qrels=qrels)
