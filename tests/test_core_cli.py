"""`crossrank rerank`: JSONL and text input, output records, and errors with line numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crossrank import CrossEncoderScorer
from crossrank.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_rerank_jsonl_keeps_records_and_adds_scores(
    tmp_path: Path, tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = [
        {"id": "a", "text": "berlin is the capital of germany", "source": "x"},
        {"id": "b", "text": "paris is the capital of france"},
        {"id": "c", "text": "the cat and the dog"},
    ]
    f = _write(tmp_path / "docs.jsonl", [json.dumps(d) for d in docs])
    code, out, _ = _run(["rerank", "-q", "capital of france", "-i", str(f), "-m",
                         str(tiny_model_dir), "--top-k", "2"], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    expected = tiny_scorer.rank("capital of france", [d["text"] for d in docs], top_k=2)
    assert [r["id"] for r in rows] == [docs[h.index]["id"] for h in expected]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert [r["rank"] for r in rows] == [1, 2]
    first = next(d for d in docs if d["id"] == rows[0]["id"])
    assert {k: rows[0][k] for k in first} == first  # input fields pass through


def test_rerank_plain_text_lines_and_out_file(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _write(tmp_path / "docs.txt", ["paris", "", "berlin", "dog"])
    out_file = tmp_path / "out.jsonl"
    code, out, _ = _run(["rerank", "-q", "capital", "-i", str(f), "-m", str(tiny_model_dir),
                         "-o", str(out_file)], capsys)
    assert code == 0 and out == ""
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert sorted(r["line"] for r in rows) == [1, 3, 4]  # blank line skipped
    assert {r["text"] for r in rows} == {"paris", "berlin", "dog"}


def test_rerank_bad_json_line_names_the_line(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _write(tmp_path / "docs.jsonl", ['{"id": 1, "text": "ok"}', '{"id": 2, "text": ',
                                         '{"id": 3, "text": "ok"}'])
    code, out, err = _run(["rerank", "-q", "q", "-i", str(f), "-m", str(tiny_model_dir)], capsys)
    assert code == 2 and out == ""
    assert f"{f}:2: not valid JSON" in err


def test_rerank_missing_text_field_names_the_line(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _write(tmp_path / "docs.jsonl", ['{"id": 1, "text": "ok"}', '{"id": 2, "body": "x"}'])
    code, _, err = _run(["rerank", "-q", "q", "-i", str(f), "-m", str(tiny_model_dir)], capsys)
    assert code == 2
    assert f"{f}:2: field 'text' must be a string, got NoneType; choose the field with --text-field" in err
    code, out, _ = _run(["rerank", "-q", "q", "-i", str(f), "-m", str(tiny_model_dir),
                         "--format", "jsonl", "--text-field", "body"], capsys)
    assert code == 2  # line 1 has no 'body'


def test_rerank_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["rerank", "-q", "q", "-i", str(tmp_path / "none.jsonl")], capsys)
    assert code == 2
    assert "none.jsonl: no such file" in err


def test_rerank_bad_arguments_exit_non_zero(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _write(tmp_path / "docs.txt", ["paris"])
    code, _, err = _run(["rerank", "-q", " ", "-i", str(f), "-m", str(tiny_model_dir)], capsys)
    assert code == 1 and "query must contain non-whitespace text" in err
    code, _, err = _run(["rerank", "-q", "q", "-i", str(f), "-m", str(tmp_path / "m"), "-k", "1"],
                        capsys)
    assert code == 1 and "there is no folder at" in err
    code, _, err = _run(["rerank", "-q", "q", "-i", str(f), "-k", "0"], capsys)
    assert code == 1 and "top_k must be >= 1, got 0" in err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: crossrank" in capsys.readouterr().err


@pytest.mark.integration
def test_console_script_ranks_a_jsonl_file_with_the_shared_model(
    tmp_path: Path, shared_model_dir: Path, scifact, shared_scorer: CrossEncoderScorer  # type: ignore[no-untyped-def]
) -> None:
    doc_ids = sorted(scifact.corpus)[:15]
    f = _write(tmp_path / "docs.jsonl",
               [json.dumps({"id": d, "text": scifact.doc_text(d)}) for d in doc_ids])
    query = scifact.queries[sorted(scifact.qrels)[0]]
    exe = Path(sys.executable).with_name("crossrank")
    result = subprocess.run(
        [str(exe), "rerank", "--query", query, "--input", str(f), "--model",
         str(shared_model_dir), "--top-k", "5", "--device", "cpu"],
        capture_output=True, text=True, check=True,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = shared_scorer.rank(query, [scifact.doc_text(d) for d in doc_ids], top_k=5)
    assert [r["id"] for r in rows] == [doc_ids[h.index] for h in expected]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in expected], abs=1e-5)


def test_rerank_chunk_mode_passages_budget_and_calibration(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crossrank.calibration import Calibration, save_calibration

    long_text = " ".join(["the cat and the dog"] * 60) + " the drug and blood cells"
    docs = [
        {"id": "long", "text": long_text},
        {"id": "short", "text": "blood cells and the drug"},
        {"id": "other", "text": "capital city of france"},
    ]
    f = _write(tmp_path / "docs.jsonl", [json.dumps(d) for d in docs])
    cal = save_calibration(
        tmp_path / "cal.json", {"platt": Calibration("platt", 0.5, -1.0)}, method="platt"
    )
    query = "the drug and blood cells"
    args = ["rerank", "-q", query, "-i", str(f), "-m", str(tiny_model_dir),
            "--long-documents", "chunk", "--max-windows", "4", "--aggregation", "mean-top",
            "--passage", "--token-budget", "200", "--activation", "calibrated",
            "--calibration", str(cal)]
    code, out, _ = _run(args, capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    scorer = CrossEncoderScorer(
        tiny_model_dir, long_documents="chunk", max_windows=4, aggregation="mean-top",
        activation="calibrated", calibration=cal,
    )
    texts = [d["text"] for d in docs]
    expected = scorer.rerank(query, texts, token_budget=200, passages=True)
    assert [r["id"] for r in rows] == [docs[h.index]["id"] for h in expected.hits]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in expected.hits], abs=1e-6)
    for row in rows:
        start, end = row["span"]
        assert row["passage"] == row["text"][start:end]
    # The budget counts the passages handed on, and is never exceeded.
    assert sum(scorer.count_tokens([r["passage"] for r in rows])) <= 200
    code, _, err = _run(["rerank", "-q", query, "-i", str(f), "-m", str(tiny_model_dir),
                         "--min-relative-score", "1.5"], capsys)
    assert code == 1 and "min_relative_score" in err
