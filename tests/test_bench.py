"""``crossrank bench`` (crossrank.eval.bench) on the tiny model: structure, not speed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from crossrank.cli import main as cli_main
from crossrank.eval import bench, bench_peer, bench_report, bench_texts, bench_variants
from crossrank.eval.bench import (
    REFERENCE,
    VARIANTS,
    Variant,
    benchmark,
    register_variant,
    synthetic_texts,
)
from crossrank.runtimes.backends import BACKENDS
from crossrank.runtimes.cpu import cpu_flags

#: The variants the CLI test times (each backend's own path has its own tests): a fp32 and
#: an int8 backend, and auto's probe. A variant asked for that cannot run here is refused
#: (tests/test_cli_errors.py); without --variant it is skipped with its reason (below).
TIMED = ["crossrank-torch-fp32", "crossrank-onnx-int8", "crossrank-auto"]


def test_bench_cli_tiny(
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CROSSRANK_BACKEND")  # auto probes here (conftest pins it to torch)
    out = tmp_path / "bench.json"
    code = cli_main(
        [
            "bench", "--model", str(tiny_model_dir), "--candidates", "8", "--doc-tokens", "16",
            "--repeats", "2", "--batch-size", "4", "--out", str(out), "--quiet",
            *(arg for name in TIMED for arg in ("--variant", name)),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert "vs ST" in printed.out and REFERENCE in printed.out
    assert "timing" not in printed.err  # --quiet: no progress bar

    report = json.loads(out.read_text())
    assert report["command"] == "bench"
    assert report["settings"]["candidates"] == 8 and report["settings"]["repeats"] == 2
    assert report["reference"] == REFERENCE
    for key in ("platform", "cpu_count", "torch_version", "device"):
        assert key in report["machine"]
    given = report["input"]
    assert given["source"] == "synthetic" and given["num_texts"] == 8
    assert given["text_tokens_min"] == given["text_tokens_max"] == 16

    rows = {row["name"]: row for row in report["variants"]}
    skipped = report["skipped"]
    # Every variant asked for is timed or skipped with its reason; the reference is last.
    asked = [*TIMED, REFERENCE]
    assert list(rows) == [name for name in VARIANTS if name in asked and name not in skipped]
    assert set(rows) | set(skipped) == set(asked) and list(rows)[-1] == REFERENCE
    assert set(TIMED) <= set(rows)
    assert all(isinstance(why, str) and why for why in skipped.values())
    reference = rows[REFERENCE]
    for row in rows.values():
        assert len(row["times_s"]) == 2
        assert row["p95_s"] >= row["median_s"] >= row["min_s"] > 0
        assert row["ratio_vs_sentence_transformers"] == pytest.approx(
            reference["median_s"] / row["median_s"]
        )
        assert row["pairs_per_second"] == pytest.approx(8 / row["median_s"])
        assert row["peak_rss_mb"] > 0
        assert row["cold_start_s"] > 0 and row["first_score_s"] > 0
        # The fp32 backends compute the same scores as sentence-transformers; int8 and
        # bf16 are within their stated tolerance (docs/backends.md).
        tolerance = 1e-4 if row["name"].endswith("fp32") else 0.05
        assert row["max_abs_score_diff_vs_reference"] < tolerance
    assert reference["ratio_vs_sentence_transformers"] == 1.0
    # The CPU flags that decide the fast kernels, with every report.
    assert report["machine"]["cpu_flags"] == cpu_flags()  # whatever this CPU has
    assert "CPU: " in printed.out and "flags:" in printed.out
    assert "padding: " in printed.out and 0 <= given["padding_waste_sorted"] < 1
    # auto: probed in the cold child, read from the cache when it starts again.
    assert report["auto"]["backend"] in BACKENDS and report["auto"]["backend"] != "auto"
    assert report["auto"]["trials"][0]["backend"] == "torch"  # the reference it measured
    assert rows["crossrank-auto"]["second_start_s"] > 0
    assert rows["crossrank-auto"]["second_peak_rss_mb"] > 0
    assert f"auto -> {report['auto']['backend']}" in printed.out


def test_peer_fast_paths_run_or_say_what_they_need(tiny_model_dir: Path) -> None:
    """sentence-transformers' ONNX and OpenVINO paths: runnable, or a reason naming the
    package they need (the bench then skips them)."""
    config = bench.BenchConfig(model=str(tiny_model_dir), batch_size=4, device="cpu")
    for peer, package in (("onnx", "optimum-onnx"), ("openvino", "optimum-intel")):
        check = VARIANTS[f"sentence-transformers-{peer}"].unavailable
        assert check is not None
        reason = check(config)
        assert reason is None or package in reason


def test_padding_waste_of_sorted_and_input_order_batches() -> None:
    lengths = [10, 100, 10, 100]
    waste = bench.padding_waste(lengths, 2)
    # Sorted: (100, 100), (10, 10): no padding. Input order: (10, 100), (10, 100): 180 of 400.
    assert waste["padding_waste_sorted"] == 0.0
    assert waste["padding_waste_input_order"] == pytest.approx(180 / 400)


def test_synthetic_texts_have_exactly_the_requested_tokens(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = synthetic_texts(tokenizer, 5, 24, seed=3)
    assert len(texts) == 5 and len(set(texts)) == 5
    for text in texts:
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 24
    assert synthetic_texts(tokenizer, 5, 24, seed=3) == texts  # deterministic
    assert synthetic_texts(tokenizer, 5, 24, seed=4) != texts


def test_corpus_texts_prefer_documents_long_enough(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    docs = [
        {"_id": "short", "title": "", "text": "cell"},
        {"_id": "long1", "title": "Gene", "text": "cancer risk " * 20},
        {"_id": "long2", "title": "", "text": "blood brain heart " * 20},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(map(json.dumps, docs)) + "\n")
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "b", "text": "second"}\n{"_id": "a", "text": "drug dose"}\n'
    )
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\na\tlong1\t1\nb\tx\t1\n"
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    query, texts = bench_texts.corpus_texts(tmp_path, "test", tokenizer, 3, 10)
    assert query == "drug dose"  # the first judged query by id
    assert texts[0].startswith("Gene. cancer") and texts[1].startswith("blood")
    assert texts[2] == "cell"  # shorter documents only fill up
    assert [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts] == [10, 10, 1]


def test_bench_rejects_texts_longer_than_the_model_reads(tiny_model_dir: Path) -> None:
    # The tiny model reads 128 tokens per pair.
    with pytest.raises(ValueError, match=r"--doc-tokens <= \d+, got 200"):
        benchmark(str(tiny_model_dir), candidates=2, doc_tokens=200, repeats=1, progress=False)


def test_bench_rejects_bad_settings(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown bench variant"):
        benchmark(str(tiny_model_dir), variants=["onnx-int3"], progress=False)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, got 0"):
        benchmark(str(tiny_model_dir), repeats=0, progress=False)


def test_register_variant_keeps_the_reference_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "VARIANTS", dict(VARIANTS))
    extra = Variant("crossrank-test-variant", "test", bench_variants._crossrank("torch"))
    register_variant(extra)
    assert list(bench.VARIANTS)[-2:] == ["crossrank-test-variant", REFERENCE]
    with pytest.raises(ValueError, match="already registered"):
        register_variant(extra)


def test_asking_for_a_variant_that_cannot_run_here_is_an_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"crossrank-torch-fp16.* cannot run here: needs a CUDA"):
        benchmark(
            str(tiny_model_dir), variants=["crossrank-torch-fp16"], device="cpu", progress=False
        )


def test_spearman_matches_a_hand_computed_case() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert bench._spearman(a, a) == pytest.approx(1.0)
    assert bench._spearman(a, -a) == pytest.approx(-1.0)
    # Ties get average ranks: ranks (0.5, 0.5, 2, 3) against (0, 1, 2, 3).
    assert bench._spearman(np.array([1.0, 1.0, 3.0, 4.0]), a) == pytest.approx(
        np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1]
    )
    assert bench._spearman(np.array([1.0]), np.array([2.0])) is None


# ---------------------------------------------------------------------- --peer-python


def _peer_variant(monkeypatch: pytest.MonkeyPatch, backend: str) -> str:
    """Only the reference and a peer variant running ``backend`` in the worker."""
    name = f"sentence-transformers-peer-{backend}"
    variants = {
        name: Variant(
            name, "test peer", bench_variants._sentence_transformers(backend), peer_backend=backend
        ),
        REFERENCE: VARIANTS[REFERENCE],
    }
    monkeypatch.setattr(bench, "VARIANTS", variants)
    return name


def test_peer_worker_scores_as_sentence_transformers_here(tiny_model_dir: Path) -> None:
    """The worker protocol end to end, with this interpreter as the peer and backend torch:
    the same scores as sentence-transformers in this process."""
    texts = ["cancer risk study", "blood brain heart", "the cat", "gene expression in cells"]
    config = bench.BenchConfig(model=str(tiny_model_dir), batch_size=2, device="cpu")
    here = bench_variants._SentenceTransformersScorer(config, "torch").score("drug dose", texts)
    with bench.PeerWorker(sys.executable, "test-peer", timeout_s=120) as worker:
        cold = worker.load(
            str(tiny_model_dir), "torch", batch_size=2, device="cpu", query="drug dose",
            texts=texts,
        )  # fmt: skip
        assert cold["cold_start_s"] > 0 and cold["first_score_s"] > 0 and cold["peak_rss_mb"] > 0
        assert worker.versions["sentence-transformers"] and worker.versions["transformers"]
        scores, seconds = worker.score("drug dose", texts)
        assert seconds > 0
        np.testing.assert_allclose(scores, here, atol=1e-5, rtol=0)
        with pytest.raises(bench.PeerWorkerError, match="unknown sentence-transformers backend"):
            worker.load(
                str(tiny_model_dir), "tensorrt", batch_size=2, device="cpu", query="q", texts=["a"]
            )
        process = worker._proc
    assert process.poll() is not None  # closed on exit


def test_bench_times_a_peer_variant_in_the_worker(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _peer_variant(monkeypatch, "torch")
    report = benchmark(
        str(tiny_model_dir), candidates=6, doc_tokens=12, repeats=2, batch_size=4,
        progress=False, peer_python=sys.executable, peer_timeout_s=120,
    )  # fmt: skip
    rows = {row["name"]: row for row in report["variants"]}
    assert list(rows) == [name, REFERENCE] and report["skipped"] == {}
    peer = rows[name]
    assert peer["peer"]["python"] == os.path.abspath(sys.executable)
    assert peer["peer"]["versions"]["sentence-transformers"]
    assert "peer" not in rows[REFERENCE]
    assert report["settings"]["peer_python"] == os.path.abspath(sys.executable)
    assert len(peer["times_s"]) == 2 and peer["cold_start_s"] > 0 and peer["peak_rss_mb"] > 0
    assert peer["max_abs_score_diff_vs_reference"] < 1e-5
    assert f"{name} ran in {sys.executable}" in bench_report.format_bench_table(report)


def test_a_peer_variant_that_fails_to_load_is_skipped_or_refused(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _peer_variant(monkeypatch, "tensorrt")  # the worker knows no such backend
    report = benchmark(
        str(tiny_model_dir), candidates=2, doc_tokens=8, repeats=1, progress=False,
        peer_python=sys.executable, peer_timeout_s=120,
    )  # fmt: skip
    assert [row["name"] for row in report["variants"]] == [REFERENCE]
    assert "unknown sentence-transformers backend 'tensorrt'" in report["skipped"][name]
    with pytest.raises(ValueError, match=rf"{name}.* cannot run here: .*tensorrt"):
        benchmark(
            str(tiny_model_dir), candidates=2, doc_tokens=8, repeats=1, progress=False,
            variants=[name], peer_python=sys.executable, peer_timeout_s=120,
        )  # fmt: skip


def test_a_stuck_peer_worker_fails_fast_and_is_killed(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'fake peer: starting up' >&2\nsleep 300\n")
    fake.chmod(0o755)
    worker = bench.PeerWorker(str(fake), "sentence-transformers-onnx", timeout_s=1.5)
    try:
        start = time.monotonic()
        # Texts larger than a pipe's buffer: writing them must not block past the timeout.
        with pytest.raises(bench.PeerWorkerError) as raised:
            worker.load("m", "onnx", batch_size=2, device="cpu", query="q", texts=["x" * 10**6])
        assert time.monotonic() - start < 10
        message = str(raised.value)
        assert "'sentence-transformers-onnx'" in message and "within 1.5 s" in message
        assert "fake peer: starting up" in message and "\n" not in message
        assert worker._proc.poll() is not None  # killed, with the sleep it started
    finally:
        worker.close()
    with pytest.raises(bench.PeerWorkerError, match="closed"):
        worker.score("q", ["a"])


def test_a_peer_worker_that_exits_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: sentence_transformers' >&2\nexit 3\n")
    fake.chmod(0o755)
    with bench.PeerWorker(str(fake), "sentence-transformers-openvino", timeout_s=30) as worker:
        with pytest.raises(bench.PeerWorkerError, match=r"exited \(code 3\).*ModuleNotFound"):
            worker.load("m", "openvino", batch_size=2, device="cpu", query="q", texts=["a"])


@pytest.mark.parametrize("kind", ["missing", "not executable"])
def test_bench_refuses_a_bad_peer_python(
    kind: str, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "python"
    if kind == "not executable":
        path.write_text("")
    code = cli_main(["bench", "--model", str(tiny_model_dir), "--peer-python", str(path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("crossrank bench: error: --peer-python")
    assert str(path) in err and ("does not exist" if kind == "missing" else "executable") in err


def test_bench_reads_the_peer_python_from_the_environment(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(bench.PEER_PYTHON_ENV, "/nonexistent/python")
    with pytest.raises(ValueError, match=r"peer_python \(from \$CROSSRANK_BENCH_PEER_PYTHON\)"):
        benchmark(str(tiny_model_dir), progress=False)
    monkeypatch.setenv(bench.PEER_PYTHON_ENV, "")
    assert bench.resolve_peer_python(None) is None
    assert bench.resolve_peer_python(sys.executable) == os.path.abspath(sys.executable)


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_peer_venv_runs_sentence_transformers_fast_paths(
    backend: str, tiny_model_dir: Path
) -> None:
    """The real peer environment (optimum with transformers<4.58): only where
    CROSSRANK_TEST_PEER_PYTHON names its python (never in CI by default)."""
    python = os.environ.get("CROSSRANK_TEST_PEER_PYTHON")
    if not python:
        pytest.skip("set CROSSRANK_TEST_PEER_PYTHON to a peer environment's python")
    texts = ["cancer risk study", "blood brain heart", "the cat", "gene expression in cells"]
    config = bench.BenchConfig(model=str(tiny_model_dir), batch_size=2, device="cpu")
    here = bench_variants._SentenceTransformersScorer(config, "torch").score("drug dose", texts)
    with bench.PeerWorker(python, f"sentence-transformers-{backend}", timeout_s=300) as worker:
        worker.load(
            str(tiny_model_dir), backend, batch_size=2, device="cpu", query="drug dose",
            texts=texts,
        )  # fmt: skip
        assert worker.versions["optimum"]
        scores, _ = worker.score("drug dose", texts)
    # OpenVINO runs bf16 by default on CPUs with native bf16.
    np.testing.assert_allclose(scores, here, atol=1e-5 if backend == "onnx" else 1e-2, rtol=0)


def test_peer_worker_file_needs_only_sentence_transformers() -> None:
    """The worker runs where crossrank is not installed: the standard library and
    sentence-transformers only, and the answer marker the bench looks for."""
    import ast

    source = bench_peer._PEER_WORKER.read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names - {"__future__"} == {"sentence_transformers"}
    assert f'MARK = "{bench_peer._PEER_MARK}"' in source
