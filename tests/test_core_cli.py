"""`crossrank rerank`: JSONL and text input, output records, and errors with line numbers."""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crossrank import CrossEncoderScorer
from crossrank.cli import SCORER_FLAGS, add_scorer_options, build_parser, main, scorer_kwargs


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
    assert (f"{f}:2: field 'text' must be a string, got NoneType; choose the field with "
            "--text-field") in err
    code, _, _ = _run(["rerank", "-q", "q", "-i", str(f), "-m", str(tiny_model_dir),
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


def test_rerank_passage_writes_what_the_budget_counted(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Windows start and end on token boundaries, inside words: the passage handed on (and
    # counted by the budget) is widened to whole words, so it differs from the window.
    long_text = " ".join(["xylophones cat dogma"] * 40) + " the drug and blood cells"
    docs = [{"id": "long", "text": long_text}, {"id": "short", "text": "blood cells and the drug"}]
    f = _write(tmp_path / "docs.jsonl", [json.dumps(d) for d in docs])
    query = "the drug and blood cells"
    code, out, _ = _run(["rerank", "-q", query, "-i", str(f), "-m", str(tiny_model_dir),
                         "--long-documents", "chunk", "--max-windows", "4", "--passage"], capsys)
    assert code == 0
    rows = {r["id"]: r for r in map(json.loads, out.splitlines())}
    scorer = CrossEncoderScorer(tiny_model_dir, long_documents="chunk", max_windows=4)
    hits = scorer.rerank(query, [d["text"] for d in docs], passages=True).hits
    assert any(h.passage != h.span for h in hits)  # the case tells the two apart
    for hit in hits:
        row = rows[docs[hit.index]["id"]]
        assert hit.passage is not None
        assert row["span"] == list(hit.passage)
        assert row["passage"] == row["text"][slice(*hit.passage)]


def test_rerank_passage_is_the_whole_text_when_a_hit_has_none(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    real = CrossEncoderScorer.rerank

    def no_passages(self: CrossEncoderScorer, *args: object, **kwargs: object) -> object:
        outcome = real(self, *args, **kwargs)  # type: ignore[arg-type]
        hits = [dataclasses.replace(h, passage=None) for h in outcome.hits]
        return dataclasses.replace(outcome, hits=hits)

    monkeypatch.setattr(CrossEncoderScorer, "rerank", no_passages)
    f = _write(tmp_path / "docs.txt", ["paris is the capital", "the dog"])
    code, out, _ = _run(["rerank", "-q", "capital", "-i", str(f), "-m", str(tiny_model_dir),
                         "--passage"], capsys)
    assert code == 0
    for row in map(json.loads, out.splitlines()):
        assert row["passage"] == row["text"]
        assert row["span"] == [0, len(row["text"])]


# ------------------------------------------------------------------ shared scorer options


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices[command]  # type: ignore[no-any-return]


def test_scorer_flags_cover_every_scorer_option_but_the_token() -> None:
    params = set(inspect.signature(CrossEncoderScorer.__init__).parameters) - {"self"}
    assert set(SCORER_FLAGS) == params - {"token"}  # secrets stay off the command line


@pytest.mark.parametrize("command", ["rerank", "eval", "calibrate"])
def test_each_command_declares_the_scorer_options_once(command: str) -> None:
    parser = _subparser(command)
    flags = [s for a in parser._actions for s in a.option_strings]
    assert len(flags) == len(set(flags))
    expected = set(SCORER_FLAGS) - (set() if command == "rerank" else {"activation",
                                                                         "calibration"})
    declared = {a.dest for a in parser._actions} & set(SCORER_FLAGS)
    assert declared == expected


@pytest.mark.parametrize("command", ["rerank", "eval", "calibrate"])
def test_scorer_kwargs_build_the_scorer_the_flags_describe(command: str, tmp_path: Path) -> None:
    required = {"rerank": ["-q", "q", "-i", "x"], "eval": ["--data", "d"],
                "calibrate": ["--data", "d"]}[command]
    argv = [*required, "--model", str(tmp_path), "--batch-size", "4", "--window-stride", "7",
            "--long-documents", "chunk", "--top-windows", "3", "--local-files-only",
            "--model-kwargs", '{"torch_dtype": "bfloat16"}',
            "--config-kwargs", '{"hidden_dropout_prob": 0.0}']
    args = _subparser(command).parse_args(argv)
    kwargs = scorer_kwargs(args)
    assert set(kwargs) == {a.dest for a in _subparser(command)._actions} & set(SCORER_FLAGS)
    if command == "eval":  # repeatable to compare models and backends
        assert kwargs["model"] == [str(tmp_path)] and kwargs["backend"] is None
        kwargs["model"], kwargs["backend"] = str(tmp_path), "torch"
    scorer = CrossEncoderScorer(**kwargs)
    assert (scorer.batch_size, scorer.window_stride, scorer.top_windows) == (4, 7, 3)
    assert scorer.long_documents == "chunk" and scorer.local_files_only is True
    assert scorer.model_kwargs == {"torch_dtype": "bfloat16"}
    assert scorer.config_kwargs == {"hidden_dropout_prob": 0.0}
    changed = scorer_kwargs(args, changed_only=True)
    assert "aggregation" not in changed and changed["batch_size"] == 4


def test_scorer_option_values_are_checked_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["--batch-size", "0"], "must be an integer >= 1, got '0'"),
        (["--model-kwargs", "[1]"], "must be a JSON object like"),
        (["--config-kwargs", "{bad"], "must be a JSON object, got '{bad'"),
        (["--backend", "openvino"], "invalid choice: 'openvino'"),
    ):
        with pytest.raises(SystemExit):
            add_scorer_options(argparse.ArgumentParser()).parse_args(argv)
        assert message in capsys.readouterr().err


def test_compare_mode_repeats_model_and_backend() -> None:
    parser = add_scorer_options(argparse.ArgumentParser(), compare=True, activation=False)
    args = parser.parse_args(["-m", "a", "--model", "b", "--backend", "torch",
                              "--backend", "onnx"])
    assert scorer_kwargs(args)["model"] == ["a", "b"]
    assert scorer_kwargs(args)["backend"] == ["torch", "onnx"]
    assert "activation" not in scorer_kwargs(args)
