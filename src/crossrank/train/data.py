"""Training data for ``crossrank train``: judged queries read and checked, a dev split.

The judgments come from a BEIR folder (``qrels/<split>.tsv``, ``train`` by default) or a
TREC qrels file. Before anything is trained, every judged query must be in
``queries.jsonl``, every judged document in ``corpus.jsonl``, and the split must hold
positives. The dev split is carved from the training queries with a seed; queries also
judged in the folder's test split are left out of both, so neither training nor model
selection ever sees a test query.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from crossrank.eval.data import Dataset, Qrels, load_beir, load_qrels

__all__ = ["TrainingData", "load_training_data", "split_dev", "write_qrels"]

logger = logging.getLogger("crossrank")

#: The split held out for testing in a BEIR folder: never trained on, never a dev query.
_TEST_SPLIT = "test"


@dataclass(frozen=True)
class TrainingData:
    """Checked training data.

    Attributes:
        dataset: The corpus, the judged queries of the split and their judgments.
        train_ids: Query ids trained on (each with at least one positive), sorted.
        dev_ids: Query ids of the dev split (disjoint from ``train_ids`` and from the test
            split), sorted.
        excluded_test_ids: Queries of the split that the folder's test split also judges;
            left out of both.
    """

    dataset: Dataset
    train_ids: list[str]
    dev_ids: list[str]
    excluded_test_ids: list[str]

    @property
    def dev_qrels(self) -> Qrels:
        """The judgments of the dev queries."""
        return {q: dict(self.dataset.qrels[q]) for q in self.dev_ids}


def _positives(judged: Mapping[str, int]) -> list[str]:
    return sorted(d for d, r in judged.items() if r > 0)


def _check_judgments(dataset: Dataset, source: str) -> None:
    unknown = sorted({d for judged in dataset.qrels.values() for d in judged} - set(dataset.corpus))
    if unknown:
        raise ValueError(
            f"{source} judges {len(unknown)} document(s) that are not in corpus.jsonl (e.g. "
            f"{unknown[:5]}); use the qrels made for this corpus"
        )
    if not any(_positives(judged) for judged in dataset.qrels.values()):
        raise ValueError(
            f"{source} holds no positive judgment (relevance > 0); training needs relevant "
            "documents to learn from"
        )


def split_dev(
    query_ids: list[str], dev_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Shuffle ``query_ids`` with ``seed`` and return ``(train_ids, dev_ids)``, each sorted.

    Raises:
        ValueError: If ``dev_fraction`` is not in (0, 1) or either part would be empty.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be between 0 and 1, got {dev_fraction!r}")
    shuffled = sorted(query_ids)
    random.Random(seed).shuffle(shuffled)
    n_dev = round(len(shuffled) * dev_fraction)
    dev, train = shuffled[:n_dev], shuffled[n_dev:]
    if not dev or not train:
        raise ValueError(
            f"{len(shuffled)} queries with positives cannot be split into training and dev "
            f"queries with dev_fraction={dev_fraction}; use more queries or another fraction"
        )
    return sorted(train), sorted(dev)


def load_training_data(
    data: str | Path,
    *,
    split: str = "train",
    qrels: str | Path | None = None,
    dev_fraction: float = 0.1,
    seed: int = 0,
) -> TrainingData:
    """Load a BEIR folder's training judgments, check them, and carve out a dev split.

    Args:
        data: A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
        split: The qrels split trained on; never ``test``.
        qrels: Read the judgments from this file instead (BEIR TSV or TREC qrels).
        dev_fraction: Share of the training queries (with a positive) held out as dev.
        seed: Seed of the dev split.

    Raises:
        ValueError: The split is ``test``; the judgments name unknown queries or documents;
            there is no positive; too few queries to split.
        FileNotFoundError: A file of the folder or ``qrels`` is missing.
    """
    if qrels is None and split == _TEST_SPLIT:
        raise ValueError(
            "split must not be 'test': the test split measures the trained model; train on "
            "'train' (or pass qrels=FILE)"
        )
    folder = Path(data)
    source = str(qrels) if qrels is not None else str(folder / "qrels" / f"{split}.tsv")
    dataset = load_beir(folder, split=split, qrels_path=qrels)
    _check_judgments(dataset, source)
    test_file = folder / "qrels" / f"{_TEST_SPLIT}.tsv"
    test_ids: set[str] = set()
    if test_file.is_file() and Path(source).resolve() != test_file.resolve():
        test_ids = set(load_qrels(test_file))
    elif Path(source).resolve() == test_file.resolve():
        raise ValueError(
            f"qrels {source} is the folder's test split; train on other judgments so the test "
            "split can measure the trained model"
        )
    excluded = sorted(q for q in dataset.qrels if q in test_ids)
    if excluded:
        logger.warning(
            "crossrank train: %d query(ies) of %s are also judged in %s; they are left out",
            len(excluded),
            source,
            test_file,
        )
    usable = [q for q, judged in dataset.qrels.items() if _positives(judged) and q not in test_ids]
    if not usable:
        raise ValueError(f"{source} has no query with a positive outside the test split")
    train_ids, dev_ids = split_dev(usable, dev_fraction, seed)
    return TrainingData(
        dataset=dataset, train_ids=train_ids, dev_ids=dev_ids, excluded_test_ids=excluded
    )


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: str | Path) -> Path:
    """Write judgments as a BEIR qrels TSV (with its header), readable by ``--qrels``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"]
    for qid in sorted(qrels):
        lines += [f"{qid}\t{doc_id}\t{rel}" for doc_id, rel in sorted(qrels[qid].items())]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
