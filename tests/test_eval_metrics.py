"""IR metrics (crossrank.eval.metrics) and the TREC / BEIR file readers (crossrank.eval.data).

Metrics are checked on hand-computed cases and against ranx on random runs. Tie rule:
crossrank ranks equal scores by doc id descending (trec_eval's rule); ranx orders ties by
an unstable numba argsort, so the comparison with ranx uses tie-free runs, and the tie rule
is pinned by a hand-computed case instead.
"""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path
from typing import Any

import pytest

from crossrank.eval.data import load_beir, load_qrels, load_trec_run
from crossrank.eval.metrics import evaluate, mrr_at_k, ndcg_at_k, ranked_ids, recall_at_k

# ------------------------------------------------------------------ hand-computed cases

QRELS = {
    "q1": {"a": 2, "b": 1, "z": 0},
    "q2": {"c": 1},
    "q3": {"d": 0},  # no relevant document: skipped by every metric
}
RUN = {
    "q1": {"z": 0.9, "b": 0.8, "x": 0.5, "a": 0.1},  # ranking z, b, x, a
    "q2": {"y": 1.0, "w": 0.7, "c": 0.2},  # ranking y, w, c
    "q3": {"d": 1.0},
}


def test_ranked_ids_best_first_ties_by_doc_id_descending() -> None:
    assert ranked_ids(RUN["q1"]) == ["z", "b", "x", "a"]
    assert ranked_ids({"a": 0.5, "c": 0.5, "b": 0.5, "d": 0.9}) == ["d", "c", "b", "a"]


def test_ndcg_by_hand() -> None:
    # q1: gains z=0, b=1, x=0, a=2 at ranks 1..4; discount 1/log2(rank + 1).
    # DCG@10 = 1/log2(3) + 2/log2(5); ideal order a(2), b(1): IDCG = 2/log2(2) + 1/log2(3).
    ranking = ranked_ids(RUN["q1"])
    assert ndcg_at_k(ranking, QRELS["q1"], 10) == pytest.approx(
        (1 / math.log2(3) + 2 / math.log2(5)) / (2 + 1 / math.log2(3)), abs=1e-12
    )
    # @2: DCG = 1/log2(3) (b at rank 2); IDCG@2 = 2 + 1/log2(3).
    assert ndcg_at_k(ranking, QRELS["q1"], 2) == pytest.approx(
        (1 / math.log2(3)) / (2 + 1 / math.log2(3)), abs=1e-12
    )
    # q2: c at rank 3 -> DCG = 1/log2(4) = 0.5; IDCG = 1 -> 0.5. Cut at 2: 0.
    assert ndcg_at_k(ranked_ids(RUN["q2"]), QRELS["q2"], 10) == pytest.approx(0.5)
    assert ndcg_at_k(ranked_ids(RUN["q2"]), QRELS["q2"], 2) == 0.0


def test_mrr_and_recall_by_hand() -> None:
    r1, r2 = ranked_ids(RUN["q1"]), ranked_ids(RUN["q2"])
    assert mrr_at_k(r1, QRELS["q1"], 10) == 0.5  # first relevant (b) at rank 2
    assert mrr_at_k(r1, QRELS["q1"], 1) == 0.0
    assert mrr_at_k(r2, QRELS["q2"], 10) == pytest.approx(1 / 3)  # c at rank 3
    assert recall_at_k(r1, QRELS["q1"], 2) == 0.5  # b of {a, b}; z (rel 0) is not relevant
    assert recall_at_k(r1, QRELS["q1"], 4) == 1.0
    assert recall_at_k(r2, QRELS["q2"], 2) == 0.0


def test_evaluate_means_over_queries_with_a_relevant_document() -> None:
    got = evaluate(RUN, QRELS, ["ndcg@10", "mrr@10", "recall@2", "recall@10"])
    # q3 has no relevant document and is skipped: means over q1 and q2.
    ndcg_q1 = (1 / math.log2(3) + 2 / math.log2(5)) / (2 + 1 / math.log2(3))
    assert got["ndcg@10"] == pytest.approx((ndcg_q1 + 0.5) / 2, abs=1e-12)
    assert got["mrr@10"] == pytest.approx((1 / 2 + 1 / 3) / 2, abs=1e-12)
    assert got["recall@2"] == pytest.approx((0.5 + 0.0) / 2, abs=1e-12)
    assert got["recall@10"] == pytest.approx(1.0, abs=1e-12)


def test_evaluate_query_missing_from_run_scores_zero() -> None:
    got = evaluate({"q1": RUN["q1"]}, QRELS, ["mrr@10", "recall@10"])
    assert got == {"mrr@10": pytest.approx(0.25), "recall@10": pytest.approx(0.5)}


def test_evaluate_ties_follow_the_doc_id_rule() -> None:
    # Ranking c, b, a: the relevant a is third -> MRR 1/3, nDCG 1/log2(4) = 0.5.
    got = evaluate({"q": {"a": 0.5, "b": 0.5, "c": 0.5}}, {"q": {"a": 1}}, ["mrr@10", "ndcg@10"])
    assert got["mrr@10"] == pytest.approx(1 / 3)
    assert got["ndcg@10"] == pytest.approx(0.5)


def test_evaluate_same_metric_twice_is_computed_once() -> None:
    got = evaluate(RUN, QRELS, ["recall@10", "recall@10"])
    assert got == {"recall@10": pytest.approx(1.0)}


@pytest.mark.parametrize("name", ["ndcg", "ndcg@0", "map@10", "recall@x", "@10"])
def test_evaluate_rejects_bad_metric_names(name: str) -> None:
    with pytest.raises(ValueError, match="metric must look like ndcg@10"):
        evaluate(RUN, QRELS, [name])


# ------------------------------------------------------------------ against ranx


def _ranx() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety and deprecation warnings
        import ranx
    return ranx


def _random_case(seed: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    """Graded qrels (0-3, each query with a relevant document) and a tie-free run holding
    judged and unjudged documents; some relevant documents are never retrieved."""
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(25):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[qid] = {d: rng.randint(0, 3) for d in judged}
        qrels[qid][judged[0]] = rng.randint(1, 3)
        retrieved = rng.sample(docs, rng.randint(1, 40))
        scores = rng.sample(range(10_000), len(retrieved))  # distinct: no ties
        run[qid] = {d: s / 97.0 for d, s in zip(retrieved, scores, strict=True)}
    return run, qrels


@pytest.mark.parametrize("seed", range(5))
def test_metrics_agree_with_ranx_on_random_runs(seed: int) -> None:
    ranx = _ranx()
    run, qrels = _random_case(seed)
    names = [f"{m}@{k}" for m in ("ndcg", "mrr", "recall") for k in (1, 3, 10, 100)]
    ours = evaluate(run, qrels, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), names)
    for name in names:
        assert ours[name] == pytest.approx(float(theirs[name]), abs=1e-9), name


def test_metrics_agree_with_ranx_when_queries_are_missing_from_the_run() -> None:
    ranx = _ranx()
    run, qrels = _random_case(7)
    partial = {q: r for i, (q, r) in enumerate(run.items()) if i % 3}
    names = ["ndcg@10", "mrr@10", "recall@20"]
    ours = evaluate(partial, qrels, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(partial), names, make_comparable=True)
    for name in names:
        assert ours[name] == pytest.approx(float(theirs[name]), abs=1e-9), name


# ------------------------------------------------------------------ TREC run files


def test_load_trec_run(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    path.write_text(
        "q1 Q0 a 1 2.5 bm25\n"
        "\n"
        "q1\tQ0\tb\t2\t-1e-3\tbm25\n"
        "q2 Q0 a 7 3 bm25\n",  # rank column disagrees with nothing: it is ignored
        encoding="utf-8",
    )
    assert load_trec_run(path) == {"q1": {"a": 2.5, "b": -0.001}, "q2": {"a": 3.0}}


def test_load_trec_run_ranks_by_score_not_by_rank_column(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    path.write_text("q Q0 a 1 0.1 t\nq Q0 b 2 0.9 t\n", encoding="utf-8")
    assert ranked_ids(load_trec_run(path)["q"]) == ["b", "a"]


def test_load_trec_run_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.run"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_trec_run(path)


# ------------------------------------------------------------------ qrels files


def test_load_qrels_trec_and_beir(tmp_path: Path) -> None:
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 a 2\nq1 0 b 0\nq2 0 c 1\n", encoding="utf-8")
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\ta\t2\nq1\tb\t0\nq2\tc\t1\n", encoding="utf-8")
    expected = {"q1": {"a": 2, "b": 0}, "q2": {"c": 1}}
    assert load_qrels(trec) == expected
    assert load_qrels(beir) == expected


@pytest.mark.parametrize(
    ("loader", "body", "line", "message"),
    [
        (load_trec_run, "q Q0 a 1 1.0 t\nq Q0 b 2 0.5\n", 2, "6 columns"),
        (load_trec_run, "q Q0 a 1 high t\n", 1, "must be a number, got 'high'"),
        (load_trec_run, "q Q0 a 1 1.0 t\n\nq Q0 a 2 0.5 t\n", 3, "listed twice"),
        (load_trec_run, "q Q0 a 1 nan t\n", 1, "finite"),
        (load_qrels, "q1 0 a 1\nq1 0 b 1 extra\n", 2, r"expected 3 \(BEIR\) or 4 \(TREC\)"),
        (load_qrels, "q1 0 a 1\nq1 0 b yes\n", 2, "relevance must be a number"),
    ],
)
def test_trec_file_errors_name_file_and_line(
    tmp_path: Path, loader: Any, body: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        loader(path)
    assert f"{path}:{line}:" in str(info.value)


def test_load_beir_with_a_separate_qrels_file(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "a", "title": "T", "text": "x"}\n{"_id": "b", "text": "y"}\n', encoding="utf-8"
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "one"}\n{"_id": "q2", "text": "two"}\n', encoding="utf-8"
    )
    qrels = tmp_path / "judged.txt"
    qrels.write_text("q2 0 b 1\n", encoding="utf-8")
    dataset = load_beir(tmp_path, qrels_path=qrels)  # no qrels/test.tsv needed
    assert dataset.queries == {"q2": "two"}
    assert dataset.qrels == {"q2": {"b": 1}}
    assert dataset.doc_text("a") == "T. x"
    with pytest.raises(FileNotFoundError, match=r"qrels/test\.tsv"):
        load_beir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        load_beir(tmp_path, qrels_path=tmp_path / "nope.txt")
