"""``crossrank eval`` (crossrank.eval.harness, crossrank.eval.plot).

Unit tests run on the tiny random models over a tiny BEIR folder written here; the
integration test runs the shared model on 20 SciFact test queries.
"""

from __future__ import annotations

import argparse
import json
import random
import warnings
from pathlib import Path
from typing import Any

import pytest

from crossrank import CrossEncoderScorer
from crossrank.cli import main as cli_main
from crossrank.eval.data import load_beir
from crossrank.eval.first_stage import BM25Retriever
from crossrank.eval.harness import evaluate_models, parse_ks
from crossrank.eval.harness_cli import add_eval_arguments
from crossrank.eval.harness_report import format_eval_table
from crossrank.eval.metrics import evaluate, ranked_ids

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METRIC_KEYS = ("ndcg@10", "mrr@10", "recall@10", "recall@k")

# Words the tiny models' vocabulary holds whole.
_WORDS = (
    "cell cells protein gene genes cancer risk study studies patients treatment effect "
    "increase decrease blood brain heart drug dose capital city france germany paris berlin "
    "cat dog"
).split()


def write_tiny_beir(folder: Path, *, n_docs: int = 40, n_queries: int = 6) -> Path:
    """A deterministic BEIR folder; query ``q0`` has only a zero judgment (never evaluated)."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    docs = []
    for i in range(n_docs):
        title = " ".join(rng.sample(_WORDS, 2)) if i % 4 else ""  # some docs have no title
        docs.append({"_id": f"d{i}", "title": title, "text": " ".join(rng.choices(_WORDS, k=12))})
    queries, qrels = [], ["query-id\tcorpus-id\tscore"]
    for q in range(n_queries):
        relevant = rng.sample(range(n_docs), 2)
        words = docs[relevant[0]]["text"].split()[:3]
        queries.append({"_id": f"q{q}", "text": " ".join(words)})
        if q == 0:
            qrels.append(f"q{q}\td{relevant[0]}\t0")
        else:
            qrels += [f"q{q}\td{relevant[0]}\t2", f"q{q}\td{relevant[1]}\t1"]
    (folder / "corpus.jsonl").write_text("\n".join(map(json.dumps, docs)) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(map(json.dumps, queries)) + "\n")
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return folder


@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_beir(tmp_path_factory.mktemp("tiny-beir"))


def _rows(report: dict[str, Any], stage: str, k: int | None = None) -> list[dict[str, Any]]:
    return [r for r in report["rows"] if r["stage"] == stage and (k is None or r["k"] == k)]


# ------------------------------------------------------------------ end to end (tiny)


def test_eval_cli_end_to_end_two_models(
    tiny_beir: Path,
    tiny_model_dir: Path,
    tiny_two_logit_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, plot = tmp_path / "res" / "results.json", tmp_path / "plot.png"
    code = cli_main(
        [
            "eval", "--data", str(tiny_beir),
            "--model", str(tiny_model_dir), "--model", str(tiny_two_logit_dir),
            "--candidates", "8,3", "--latency-queries", "2", "--batch-size", "4",
            "--device", "cpu", "--out", str(out), "--plot", str(plot),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert "NDCG@10" in printed.out and tiny_model_dir.name in printed.out
    assert "rerank" in printed.err  # the progress bar

    report = json.loads(out.read_text())
    assert report["command"] == "eval"
    settings = report["settings"]
    assert settings["ks"] == [3, 8]
    assert settings["first_stage"] == "bm25"
    assert settings["models"] == [str(tiny_model_dir), str(tiny_two_logit_dir)]
    assert settings["num_queries"] == 5  # q0 has no relevant document
    for key in ("platform", "cpu_count", "torch_version", "device"):
        assert key in report["machine"]
    assert report["machine"]["device"] == "cpu"

    assert [(r["stage"], r["k"]) for r in report["rows"]] == [
        ("first_stage", 3), ("reranked", 3), ("reranked", 3),
        ("first_stage", 8), ("reranked", 8), ("reranked", 8),
    ]  # fmt: skip
    for row in report["rows"]:
        for key in METRIC_KEYS:
            assert 0.0 <= row[key] <= 1.0, (row["system"], key)
    for k in (3, 8):
        (first,) = _rows(report, "first_stage", k)
        assert first["system"] == "bm25" and first["latency_p95_ms"] is None
        for row in _rows(report, "reranked", k):
            # Reranking the same K candidates cannot change which are in the top K.
            assert row["recall@k"] == pytest.approx(first["recall@k"])
            assert row["latency_p95_ms"] >= row["latency_p50_ms"] > 0
            assert row["pairs_per_second"] > 0
            assert row["latency_queries"] == (5 if k == 8 else 2)
            assert row["truncated_fraction"] == 0.0

    assert plot.read_bytes().startswith(PNG_MAGIC)


def test_eval_metrics_match_an_independent_computation(
    tiny_beir: Path, tiny_model_dir: Path
) -> None:
    """First stage from BM25 directly; reranked from the core's scores of the top max K."""
    report = evaluate_models(tiny_beir, [str(tiny_model_dir)], ks=[4, 10], progress=False)
    dataset = load_beir(tiny_beir)
    qids = [q for q in sorted(dataset.qrels) if q != "q0"]
    qrels = {q: dataset.qrels[q] for q in qids}
    hits = BM25Retriever(dataset.corpus).search_many([dataset.queries[q] for q in qids], 10)
    first = {q: dict(h) for q, h in zip(qids, hits, strict=True)}
    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu")
    candidates = {q: ranked_ids(first[q]) for q in qids}
    scores = {
        q: scorer.score(dataset.queries[q], [dataset.doc_text(d) for d in candidates[q]])
        for q in qids
    }
    for k in (4, 10):
        names = ["ndcg@10", "mrr@10", "recall@10", f"recall@{k}"]
        fs_run = {q: {d: first[q][d] for d in candidates[q][:k]} for q in qids}
        rr_run = {q: dict(zip(candidates[q][:k], scores[q][:k], strict=True)) for q in qids}
        for stage, run in (("first_stage", fs_run), ("reranked", rr_run)):
            expected = evaluate(run, qrels, list(dict.fromkeys(names)))
            (row,) = _rows(report, stage, k)
            got = [row["ndcg@10"], row["mrr@10"], row["recall@10"], row["recall@k"]]
            assert got == pytest.approx([expected[n] for n in names], abs=1e-12), (stage, k)


def test_eval_quiet_has_no_progress_bar(
    tiny_beir: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(
        ["eval", "--data", str(tiny_beir), "-m", str(tiny_model_dir), "--candidates", "5",
         "--quiet"]
    )
    assert code == 0
    assert "rerank" not in capsys.readouterr().err


def test_eval_reranks_a_trec_run_with_trec_qrels(
    tiny_beir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "my.run"
    run.write_text(
        "q1 Q0 d1 1 9.0 mine\nq1 Q0 d2 2 8.0 mine\nq1 Q0 d3 3 7.0 mine\n"
        "q2 Q0 d5 1 3.0 mine\nq2 Q0 d4 2 2.0 mine\n"
        "q99 Q0 d1 1 1.0 mine\n",  # a query with no judgments is ignored
        encoding="utf-8",
    )
    qrels = tmp_path / "judged.qrels"
    qrels.write_text("q1 0 d2 1\nq1 0 d9 1\nq2 0 d4 2\nq3 0 d7 1\n", encoding="utf-8")
    report = evaluate_models(
        tiny_beir, [str(tiny_model_dir)], run=run, qrels=qrels, ks="2,3", progress=False
    )
    assert report["settings"]["first_stage"] == "run:my.run"
    assert report["settings"]["num_queries"] == 3  # q3 is judged but not in the run: 0
    (first,) = _rows(report, "first_stage", 2)
    # q1 top 2 = d1, d2 -> recall 1/2, MRR 1/2; q2 top 2 = d5, d4 -> recall 1, MRR 1/2; q3: 0.
    assert first["recall@k"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert first["mrr@10"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    (first3,) = _rows(report, "first_stage", 3)
    assert first3["recall@k"] == pytest.approx((0.5 + 1 + 0) / 3)
    for row in _rows(report, "reranked"):
        assert row["latency_queries"] == 2  # only q1 and q2 have candidates


def test_eval_run_naming_documents_outside_the_corpus_is_an_error(
    tiny_beir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "other.run"
    run.write_text("q1 Q0 elsewhere 1 1.0 t\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"not in corpus\.jsonl.*'elsewhere'"):
        evaluate_models(tiny_beir, [str(tiny_model_dir)], run=run, ks=[5], progress=False)


def test_eval_dense_first_stage_and_limit_queries(
    tiny_beir: Path, tiny_model_dir: Path, tiny_bi_encoder_dir: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sentence-transformers adds mean pooling, and says so
        report = evaluate_models(
            tiny_beir,
            [str(tiny_model_dir)],
            first_stage=f"dense:{tiny_bi_encoder_dir}",
            ks=[5],
            limit_queries=2,
            progress=False,
        )
    assert report["settings"]["first_stage"] == f"dense:{tiny_bi_encoder_dir}"
    assert report["settings"]["num_queries"] == 2
    assert [r["stage"] for r in report["rows"]] == ["first_stage", "reranked"]


@pytest.mark.parametrize("spec", ["bm26", "dense:", "dense"])
def test_eval_bad_first_stage(tiny_beir: Path, tiny_model_dir: Path, spec: str) -> None:
    with pytest.raises(ValueError, match="'bm25' or 'dense:MODEL'"):
        evaluate_models(tiny_beir, [str(tiny_model_dir)], first_stage=spec, progress=False)


def test_format_eval_table_is_aligned(tiny_beir: Path, tiny_model_dir: Path) -> None:
    report = evaluate_models(tiny_beir, [str(tiny_model_dir)], ks=[5, 10], progress=False)
    table = format_eval_table(report).split("\n\n")[0].splitlines()
    assert len(table) == 2 + 4  # header, rule, 2 K x (bm25 + 1 model)
    assert len({len(line) for line in table}) <= 2  # rstrip may shorten "-" rows only
    assert table[2].split()[0] == "bm25" and table[2].rstrip().endswith("-")


# ------------------------------------------------------------------ arguments


def test_parse_ks() -> None:
    assert parse_ks("50, 20,20") == [20, 50]
    assert parse_ks([100, 10]) == [10, 100]
    for bad in ("", "0", "10,x", "-5", "1.5"):
        with pytest.raises(ValueError, match="ks must"):
            parse_ks(bad)


def test_eval_arguments() -> None:
    parser = add_eval_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--data", "d"])
    assert args.ks == [20, 50, 100] and args.first_stage is None and args.model is None
    assert args.run is None and args.split == "test" and not args.quiet
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--candidates", "0"])
    with pytest.raises(SystemExit):  # a run file replaces the first stage
        parser.parse_args(["--data", "d", "--run", "r", "--first-stage", "bm25"])


def test_eval_cli_reports_missing_data(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["eval", "--data", str(tmp_path), "--model", str(tiny_model_dir)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("crossrank eval: error: ") and "corpus.jsonl not found" in err


# ------------------------------------------------------------------ SciFact (real model)


@pytest.mark.integration
def test_eval_scifact_subset(
    scifact_dir: Path,
    shared_model_dir: Path,
    scifact_candidates: dict[str, list[tuple[str, float]]],
    tmp_path: Path,
) -> None:
    """20 SciFact test queries, BM25 top 10 reranked by the shared model at 256 tokens."""
    report = evaluate_models(
        scifact_dir,
        [str(shared_model_dir)],
        ks=[10],
        limit_queries=20,
        max_length=256,
        device="cpu",
        progress=False,
    )
    (first,) = _rows(report, "first_stage")
    (reranked,) = _rows(report, "reranked")
    assert report["settings"]["num_queries"] == 20

    # The same BM25 (conftest's fixture: sorted query ids, top 20 -> first 10) through ranx.
    qids = sorted(scifact_candidates)[:20]
    run = {q: dict(scifact_candidates[q][:10]) for q in qids}
    all_qrels = load_beir(scifact_dir).qrels
    qrels = {q: all_qrels[q] for q in qids}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ranx

        expected = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["ndcg@10", "recall@10"])
    assert first["ndcg@10"] == pytest.approx(float(expected["ndcg@10"]), abs=1e-9)
    assert first["recall@k"] == pytest.approx(float(expected["recall@10"]), abs=1e-9)

    for key in METRIC_KEYS:
        assert 0.0 <= reranked[key] <= 1.0
    # A random order of the same 10 candidates, averaged over many shuffles (about 0.37).
    rng = random.Random(0)
    random_ndcg = []
    for _ in range(200):
        shuffled = {}
        for q in qids:
            ids = list(run[q])
            rng.shuffle(ids)
            shuffled[q] = {d: float(len(ids) - i) for i, d in enumerate(ids)}
        random_ndcg.append(evaluate(shuffled, qrels, ["ndcg@10"])["ndcg@10"])
    assert reranked["ndcg@10"] > sum(random_ndcg) / len(random_ndcg) + 0.05
    assert reranked["recall@k"] == pytest.approx(first["recall@k"])


def test_eval_compares_backends(tiny_beir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """One model, two backends: one row each, labelled by backend; onnx fp32 equals torch."""
    from crossrank.eval.harness import evaluate_models

    report = evaluate_models(
        tiny_beir,
        [str(tiny_model_dir)],
        ks=[8],
        backends=["torch", "onnx"],
        device="cpu",
        progress=False,
    )
    rows = _rows(report, "reranked", 8)
    assert [r["system"] for r in rows] == [
        f"{tiny_model_dir.name} [torch]",
        f"{tiny_model_dir.name} [onnx]",
    ]
    assert [r["backend"] for r in rows] == ["torch", "onnx"]
    assert report["settings"]["backends"] == ["torch", "onnx"]
    for key in METRIC_KEYS:
        assert rows[0][key] == pytest.approx(rows[1][key], abs=1e-9), key
    with pytest.raises(ValueError, match="backend must be one of"):
        evaluate_models(tiny_beir, [str(tiny_model_dir)], backends=["tpu"], progress=False)


def test_eval_chunk_mode_scores_windows(
    tiny_beir: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Chunk mode through the CLI: more than one window per document at a small max_length,
    metrics equal to the core's chunk-mode ranking on the same candidates."""
    out = tiny_beir.parent / "chunk.json"
    code = cli_main(
        ["eval", "--data", str(tiny_beir), "--model", str(tiny_model_dir), "--candidates", "8",
         "--max-length", "16", "--long-documents", "chunk", "--aggregation", "mean-top",
         "--max-windows", "3", "--device", "cpu", "--quiet", "--out", str(out)]
    )
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0
    assert "chunk mode (mean-top, at most 3 windows)" in printed
    # More windows than max_windows: reported in aggregate, not as a warning per query.
    assert not [r for r in caplog.records if "windows were read" in r.getMessage()]
    report = json.loads(out.read_text())
    assert report["settings"]["long_documents"] == "chunk"
    (row,) = _rows(report, "reranked", 8)
    assert 1.0 < row["pairs_per_document"] <= 3.0
    dataset = load_beir(tiny_beir)
    scorer = CrossEncoderScorer(
        tiny_model_dir, max_length=16, long_documents="chunk", aggregation="mean-top",
        max_windows=3, device="cpu",
    )
    retriever = BM25Retriever(dataset.corpus)
    run: dict[str, dict[str, float]] = {}
    for qid in [q for q in sorted(dataset.qrels) if any(dataset.qrels[q].values())]:
        ids = [d for d, _ in retriever.search(dataset.queries[qid], k=8)]
        scores = scorer.score(dataset.queries[qid], [dataset.doc_text(d) for d in ids])
        run[qid] = dict(zip(ids, scores, strict=True))
    expected = evaluate(run, dataset.qrels, ["ndcg@10"])["ndcg@10"]
    assert row["ndcg@10"] == pytest.approx(expected, abs=1e-9)


def test_eval_cli_passes_every_scorer_option_to_the_scorer(
    tiny_beir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "chunk.json"
    code = cli_main(
        [
            "eval", "--data", str(tiny_beir), "--model", str(tiny_model_dir), "--candidates", "4",
            "--latency-queries", "1", "--device", "cpu", "--quiet", "--max-length", "16",
            "--long-documents", "chunk", "--aggregation", "mean-top", "--window-stride", "6",
            "--top-windows", "3", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    report = json.loads(out.read_text())
    assert report["settings"]["scorer_options"] == {"window_stride": 6, "top_windows": 3}
    expected = evaluate_models(
        tiny_beir, [str(tiny_model_dir)], ks=[4], latency_queries=1, device="cpu",
        max_length=16, long_documents="chunk", aggregation="mean-top", progress=False,
        scorer_options={"window_stride": 6, "top_windows": 3},
    )  # fmt: skip
    default_stride = evaluate_models(
        tiny_beir, [str(tiny_model_dir)], ks=[4], latency_queries=1, device="cpu",
        max_length=16, long_documents="chunk", aggregation="mean-top", progress=False,
    )  # fmt: skip
    (got,) = _rows(report, "reranked")
    (want,) = _rows(expected, "reranked")
    (plain,) = _rows(default_stride, "reranked")
    assert got["ndcg@10"] == want["ndcg@10"]
    assert got["pairs_per_document"] == want["pairs_per_document"]
    assert got["pairs_per_document"] != plain["pairs_per_document"]  # the stride was used


def test_evaluate_models_rejects_scorer_options_it_sets_itself(tiny_beir: Path) -> None:
    with pytest.raises(ValueError, match=r"scorer_options must not hold \['batch_size'\]"):
        evaluate_models(tiny_beir, ["m"], scorer_options={"batch_size": 2})
    with pytest.raises(TypeError, match="scorer_options must be a dict"):
        evaluate_models(tiny_beir, ["m"], scorer_options=[("a", 1)])  # type: ignore[arg-type]
