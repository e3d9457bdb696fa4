"""``crossrank eval --fusion`` / ``--tune-fusion`` (crossrank.eval.tuning, the harness's
fused rows): the weight is never chosen on the queries it is scored on, and the fused rows
measure what the core's ``rerank(first_stage_scores=...)`` does."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_eval_harness import write_tiny_beir

from crossrank import CrossEncoderScorer
from crossrank.cli import main as cli_main
from crossrank.eval.data import load_beir
from crossrank.eval.first_stage import BM25Retriever
from crossrank.eval.harness import evaluate_models
from crossrank.eval.metrics import evaluate
from crossrank.eval.tuning import (
    WEIGHT_GRID,
    assign_folds,
    best_weight,
    cross_validate,
)

K = 10

# ---------------------------------------------------------------------- the tuning


def _table(n_queries: int, seed: int) -> dict[float, dict[str, float]]:
    rng = np.random.default_rng(seed)
    return {w: {f"q{i:02d}": float(rng.random()) for i in range(n_queries)} for w in WEIGHT_GRID}


def test_a_folds_own_queries_never_influence_its_weight() -> None:
    table = _table(30, seed=1)
    queries = sorted(table[0.0])
    cv = cross_validate(table, queries, folds=5)
    rng = np.random.default_rng(7)
    for fold in range(5):
        own = [q for q, f in cv.fold_of.items() if f == fold]
        others = [q for q in queries if q not in own]
        assert cv.weights[fold] == best_weight(table, others)
        # Make the fold's own queries shout for another weight: its weight must not move.
        shouting = float(rng.choice([w for w in WEIGHT_GRID if w != cv.weights[fold]]))
        rigged = {w: dict(per_query) for w, per_query in table.items()}
        for q in own:
            for w in WEIGHT_GRID:
                rigged[w][q] = 100.0 if w == shouting else 0.0
        assert best_weight(rigged, queries) == shouting  # a leaky tuner would follow them
        assert cross_validate(rigged, queries, folds=5).weights[fold] == cv.weights[fold]


def test_the_overall_weight_is_chosen_on_every_query() -> None:
    table = _table(12, seed=2)
    cv = cross_validate(table, sorted(table[0.0]), folds=3)
    assert cv.overall == best_weight(table, table[0.0])
    assert cv.weight_of("q03") == cv.weights[cv.fold_of["q03"]]


def test_folds_are_balanced_and_reproducible() -> None:
    ids = [f"q{i}" for i in range(23)]
    folds = assign_folds(ids, 5)
    assert folds == assign_folds(list(reversed(ids)), 5)  # order-free
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 23
    assert folds != assign_folds(ids, 5, seed=1)
    for bad in (1, 24, 2.5):
        with pytest.raises(ValueError, match=r"folds must be an int from 2 to the number of"):
            assign_folds(ids, bad)  # type: ignore[arg-type]


def test_best_weight_prefers_the_middle_on_ties() -> None:
    flat = {w: {"a": 1.0, "b": 0.0} for w in (0.2, 0.45, 0.55, 0.9)}
    assert best_weight(flat, ["a", "b"]) == 0.45
    flat[0.9]["b"] = 0.5
    assert best_weight(flat, ["a", "b"]) == 0.9
    with pytest.raises(ValueError, match="cannot be chosen on no queries"):
        best_weight(flat, [])


# ---------------------------------------------------------------------- the harness


@pytest.fixture(scope="module")
def split_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BEIR folder whose 13 judged queries are split into test (q1-q8) and train
    (q9-q13)."""
    folder = write_tiny_beir(tmp_path_factory.mktemp("fusion-beir"), n_docs=50, n_queries=14)
    lines = (folder / "qrels" / "test.tsv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    test = [r for r in rows if int(r.split("\t")[0][1:]) <= 8]
    train = [r for r in rows if int(r.split("\t")[0][1:]) > 8]
    (folder / "qrels" / "test.tsv").write_text("\n".join([header, *test]) + "\n")
    (folder / "qrels" / "train.tsv").write_text("\n".join([header, *train]) + "\n")
    return folder


def _eval(data: Path, model: Path, **kwargs: Any) -> dict[str, Any]:
    return evaluate_models(data, [str(model)], ks=[5, K], progress=False, device="cpu",
                           latency_queries=1, **kwargs)


def _row(report: dict[str, Any], stage: str, k: int = K) -> dict[str, Any]:
    [row] = [r for r in report["rows"] if r["stage"] == stage and r["k"] == k]
    return row


@pytest.fixture(scope="module")
def cv_run(split_beir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[dict[str, Any], str]:
    """``crossrank eval --tune-fusion --folds 4``: the JSON report and what it printed."""
    out = tmp_path_factory.mktemp("cv") / "report.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli_main(["eval", "--data", str(split_beir), "-m", str(tiny_model_dir),
                         "--candidates", f"5,{K}", "--tune-fusion", "--folds", "4",
                         "--device", "cpu", "--latency-queries", "1", "--quiet",
                         "--out", str(out)])
    assert code == 0
    return json.loads(out.read_text()), printed.getvalue()


def _core_ndcg(data: Path, model: Path, weight_of: dict[str, float], method: str,
               normalization: str = "zscore") -> float:
    """NDCG@10 of the core's own fused rerank of each query's BM25 top K, each query at its
    weight: what a pipeline would do."""
    dataset = load_beir(data, "test")
    retriever = BM25Retriever(dataset.corpus)
    scorer = CrossEncoderScorer(model, device="cpu", fusion=method,  # type: ignore[arg-type]
                                fusion_normalization=normalization)  # type: ignore[arg-type]
    run: dict[str, dict[str, float]] = {}
    for q, weight in weight_of.items():
        hits = retriever.search(dataset.queries[q], K)
        out = scorer.rerank(dataset.queries[q], [dataset.doc_text(d) for d, _ in hits],
                            first_stage_scores=[s for _, s in hits], fusion_weight=weight)
        run[q] = {hits[h.index][0]: h.score for h in out.hits}
    qrels = {q: dataset.qrels[q] for q in weight_of}
    return evaluate(run, qrels, ["ndcg@10"])["ndcg@10"]


def _evaluated(data: Path) -> list[str]:
    return [q for q in sorted(load_beir(data, "test").qrels) if q != "q0"]  # q0: no relevant


def test_fused_rows_measure_what_the_core_does(split_beir: Path, tiny_model_dir: Path) -> None:
    report = _eval(split_beir, tiny_model_dir, fusion="rrf", fusion_weight=0.3)
    fused = _row(report, "fused")
    assert fused["system"].endswith(" + bm25 [rrf, w=0.30]")
    assert fused["fusion"]["weight"] == 0.3 and fused["fusion"]["tuned_on"] is None
    want = _core_ndcg(split_beir, tiny_model_dir, dict.fromkeys(_evaluated(split_beir), 0.3),
                      "rrf")
    assert fused["ndcg@10"] == pytest.approx(want, abs=1e-12)
    assert report["settings"]["fusion"]["method"] == "rrf"
    assert [r["stage"] for r in report["rows"]] == ["first_stage", "reranked", "fused"] * 2


def test_cross_validation_scores_each_query_with_its_folds_weight(
    split_beir: Path, tiny_model_dir: Path, cv_run: tuple[dict[str, Any], str]
) -> None:
    report, _ = cv_run
    fused = _row(report, "fused")
    detail = fused["fusion"]
    assert detail["method"] == "linear" and len(detail["fold_weights"]) == 4
    assert detail["tuned_on"] == "4-fold cross-validation over the evaluated queries"
    assert detail["weight"] in WEIGHT_GRID
    fold_of = assign_folds(_evaluated(split_beir), 4)
    weight_of = {q: detail["fold_weights"][f] for q, f in fold_of.items()}
    assert fused["ndcg@10"] == pytest.approx(
        _core_ndcg(split_beir, tiny_model_dir, weight_of, "linear"), abs=1e-12
    )


def test_the_weights_ends_are_the_first_stage_and_the_model(
    cv_run: tuple[dict[str, Any], str],
) -> None:
    report, _ = cv_run
    for k in (5, K):
        curve = _row(report, "fused", k)["fusion"]["in_sample_ndcg_by_weight"]
        assert set(curve) == {f"{w:.2f}" for w in WEIGHT_GRID}
        assert curve["0.00"] == pytest.approx(_row(report, "first_stage", k)["ndcg@10"], abs=1e-12)
        assert curve["1.00"] == pytest.approx(_row(report, "reranked", k)["ndcg@10"], abs=1e-12)


def test_eval_cli_prints_the_held_out_figure_and_the_weights(
    cv_run: tuple[dict[str, Any], str],
) -> None:
    report, printed = cv_run
    lines = printed.splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["bm25", "tiny-ce0", "tiny-ce0"]
    assert lines[4].split(" + ")[1].startswith("bm25 [linear zscore, 4-fold CV]")
    weights = " ".join(f"{w:.2f}" for w in _row(report, "fused")["fusion"]["fold_weights"])
    assert f"chosen on the other folds only: {weights}; the weight to use" in printed
    assert "\ncpu: " in printed and report["machine"]["cpu_flags"]


def test_a_tuning_split_chooses_one_weight_on_other_queries(
    split_beir: Path, tiny_model_dir: Path
) -> None:
    report = _eval(split_beir, tiny_model_dir, tune_split="train", fusion_normalization="minmax")
    fused = _row(report, "fused")
    detail = fused["fusion"]
    assert detail["tuned_on"] == "split train (5 queries)" and detail["fold_weights"] is None
    assert report["settings"]["num_queries"] == 8  # the train queries are not evaluated
    weight_of = dict.fromkeys(_evaluated(split_beir), detail["weight"])
    assert fused["ndcg@10"] == pytest.approx(
        _core_ndcg(split_beir, tiny_model_dir, weight_of, "linear", "minmax"), abs=1e-12
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tune_split": "test"}, "tune_split must differ from split"),
        ({"tune_fusion": True, "fusion_weight": 0.3}, "exclude each other"),
        ({"fusion_weight": 0.3}, "fusion_weight is only used with fusion"),
        ({"tune_fusion": True, "folds": 1}, "folds must be an int >= 2"),
        ({"fusion": "linear", "fusion_weight": 2.0}, r"fusion_weight must be in \[0, 1\]"),
        ({"scorer_options": {"fusion": "rrf"}}, r"must not hold \['fusion'\]"),
    ],
)
def test_bad_fusion_settings_fail_before_scoring(
    split_beir: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_models(split_beir, ["never-loaded"], ks=[5], progress=False, **kwargs)


def test_a_tuning_split_sharing_evaluated_queries_is_refused(
    split_beir: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaky = tmp_path / "leaky"
    shutil.copytree(split_beir, leaky)
    header, *rows = (leaky / "qrels" / "test.tsv").read_text().splitlines()
    shared = [r for r in rows if r.split("\t")[0] in ("q1", "q2")]
    (leaky / "qrels" / "dev.tsv").write_text("\n".join([header, *shared]) + "\n")
    with pytest.raises(ValueError, match=r"tune_split 'dev' judges 2 of the evaluated queries"):
        evaluate_models(leaky, [str(tiny_model_dir)], ks=[5], progress=False, tune_split="dev")
    code = cli_main(["eval", "--data", str(split_beir), "-m", str(tiny_model_dir),
                     "--tune-fusion", "--fusion-weight", "0.2"])
    assert code == 2
    assert "--fusion-weight 0.2 and --tune-fusion exclude each other" in capsys.readouterr().err
