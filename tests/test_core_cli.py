"""`crossrank rerank`: JSONL and text input, titles, output records, and errors with line
numbers; the scorer flags every command shares."""

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
    assert "none.jsonl: no such file (--input)" in err


def test_rerank_a_directory_as_input_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["rerank", "-q", "q", "-i", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert err == f"crossrank rerank: error: {tmp_path} is a directory; --input takes a file\n"


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_rerank_an_empty_input_says_so_and_exits_0(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "docs.jsonl"
    f.write_text(content, encoding="utf-8")
    out_file = tmp_path / "out.jsonl"
    # No model is loaded: a folder that does not exist would fail the load with exit 1.
    argv = ["rerank", "-q", "q", "-i", str(f), "-m", str(tmp_path / "none"), "-o", str(out_file)]
    code, out, err = _run(argv, capsys)
    assert code == 0 and out == ""
    assert err == (
        f"crossrank rerank: note: {f} holds no candidates (it is empty or has only blank "
        "lines)\n"
    )
    assert out_file.read_text() == ""  # the output exists, with no records
    code, _, err = _run([*argv, "--quiet"], capsys)
    assert code == 0 and err == ""


def test_rerank_blank_texts_are_reported_once(
    tmp_path: Path, tiny_model_dir: Path, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    docs = [{"id": "a", "text": "paris"}, {"id": "b", "text": "  "}, {"id": "c", "text": ""}]
    f = _write(tmp_path / "docs.jsonl", [json.dumps(d) for d in docs])
    code = main(["rerank", "-q", "capital", "-i", str(f), "-m", str(tiny_model_dir)])
    out, err = capfd.readouterr()
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["a"]
    assert err.splitlines() == [
        "crossrank rerank: note: 2 candidate(s) with empty text were not scored "
        "(lines/ids: b, c)"
    ]
    assert "have no text" not in caplog.text  # not the core's warning as well
    code = main(["rerank", "-q", "capital", "-i", str(f), "-m", str(tiny_model_dir), "--quiet"])
    assert code == 0 and capfd.readouterr().err == ""


def test_rerank_quiet_silences_warnings_not_errors(
    tmp_path: Path, tiny_model_dir: Path, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    f = _write(tmp_path / "docs.txt", [" ".join(["cat dog"] * 100), "paris"])
    argv = ["rerank", "-q", "cat", "-i", str(f), "-m", str(tiny_model_dir)]
    assert main(argv) == 0
    assert "were truncated" in caplog.text  # the core's warning, without --quiet
    caplog.clear()
    capfd.readouterr()
    assert main([*argv, "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert err == "" and caplog.records == [] and len(out.splitlines()) == 2
    assert main([*argv, "--quiet", "--max-length", "9999"]) == 2
    assert capfd.readouterr().err == (
        "crossrank rerank: error: --max-length must be <= the model's limit of 128 tokens, "
        "got 9999\n"
    )


def test_rerank_reads_titles_as_eval_does(
    tmp_path: Path, tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crossrank.eval.data import Dataset

    docs = [
        {"_id": "a", "title": "paris", "text": "the capital of france"},
        {"_id": "b", "title": None, "text": "berlin is a city"},
        {"_id": "c", "title": "  ", "text": "the cat and the dog"},
    ]
    f = _write(tmp_path / "corpus.jsonl", [json.dumps(d) for d in docs])
    seen: list[list[str]] = []
    real = CrossEncoderScorer.rerank

    def spy(self: CrossEncoderScorer, query: str, texts: list[str], **kwargs: object) -> object:
        seen.append(list(texts))
        return real(self, query, texts, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(CrossEncoderScorer, "rerank", spy)
    query = "capital of france"
    argv = ["rerank", "-q", query, "-i", str(f), "-m", str(tiny_model_dir)]
    code, out, _ = _run(argv, capsys)
    assert code == 0
    # What eval scores for the same BEIR corpus records.
    beir = Dataset(corpus={d["_id"]: d for d in docs}, queries={}, qrels={})  # type: ignore[misc]
    assert seen[-1] == [beir.doc_text(d["_id"]) for d in docs]
    assert seen[-1] == ["paris. the capital of france", "berlin is a city", "the cat and the dog"]
    rows = [json.loads(line) for line in out.splitlines()]
    expected = dict(zip("abc", tiny_scorer.score(query, seen[-1]), strict=True))
    assert {r["_id"]: r["score"] for r in rows} == pytest.approx(expected, abs=1e-6)
    assert rows[0]["title"] == docs[ord(rows[0]["_id"]) - ord("a")]["title"]  # records intact
    # --title-field '' scores the text alone.
    assert _run([*argv, "--title-field", ""], capsys)[0] == 0
    assert seen[-1] == [d["text"] for d in docs]
    # A passage is cut from the text, not from the title put before it.
    code, out, _ = _run([*argv, "--passage"], capsys)
    assert code == 0
    for row in map(json.loads, out.splitlines()):
        assert row["passage"] == row["text"][slice(*row["span"])]


def test_rerank_a_title_that_is_not_a_string_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _write(tmp_path / "docs.jsonl",
               ['{"text": "a", "title": "t"}', '{"text": "b", "title": 3}'])
    code, _, err = _run(["rerank", "-q", "q", "-i", str(f)], capsys)
    assert code == 2
    assert f"{f}:2: field 'title' must be a string or null, got int" in err


def test_rerank_bad_arguments_exit_2_naming_the_flag(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _write(tmp_path / "docs.txt", ["paris"])
    code, _, err = _run(["rerank", "-q", " ", "-i", str(f), "-m", str(tiny_model_dir)], capsys)
    assert code == 2 and "error: --query must contain non-whitespace text" in err
    code, _, err = _run(["rerank", "-q", "q", "-i", str(f), "-k", "0"], capsys)
    assert code == 2
    assert err == ("crossrank rerank: error: argument --top-k/-k: must be an integer >= 1, "
                   "got '0' (see crossrank rerank --help)\n")
    code, _, err = _run(["rerank", "-q", "q", "-i", str(f), "--token-budget", "-3"], capsys)
    assert code == 2 and "argument --token-budget: must be an integer >= 1" in err


def test_rerank_a_model_that_does_not_load_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _write(tmp_path / "docs.txt", ["paris"])
    code, _, err = _run(["rerank", "-q", "q", "-i", str(f), "-m", str(tmp_path / "m")], capsys)
    assert code == 1 and "there is no folder at" in err and len(err.splitlines()) == 1


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
    assert code == 2 and "error: --min-relative-score must be in [0, 1], got 1.5" in err


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


def test_scorer_flags_cover_every_scorer_option_but_the_token_and_an_alias() -> None:
    params = set(inspect.signature(CrossEncoderScorer.__init__).parameters) - {"self"}
    # Secrets stay off the command line; prompt is instruction's other name (--instruction).
    assert set(SCORER_FLAGS) == params - {"token", "prompt"}


@pytest.mark.parametrize("command", ["rerank", "eval", "calibrate"])
def test_each_command_declares_the_scorer_options_once(command: str) -> None:
    parser = _subparser(command)
    flags = [s for a in parser._actions for s in a.option_strings]
    assert len(flags) == len(set(flags))
    expected = set(SCORER_FLAGS) - (set() if command == "rerank" else {"activation",
                                                                         "calibration"})
    if command == "calibrate":  # it fits the model's own logits: nothing to fuse
        expected -= {"fusion", "fusion_weight", "fusion_normalization"}
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
        (["--backend", "tpu"], "invalid choice: 'tpu'"),
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


# ------------------------------------------------------------------ first-stage fusion

_SCORED = [
    {"id": "a", "text": "berlin is the capital of germany", "bm25": 9.5},
    {"id": "b", "text": "paris is the capital of france", "bm25": 4.0},
    {"id": "c", "text": "", "bm25": None},
    {"id": "d", "text": "the cat and the dog", "bm25": 6.25},
]


def test_rerank_fuses_with_a_first_stage_field(
    tmp_path: Path, tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    f = _write(tmp_path / "docs.jsonl", [json.dumps(d) for d in _SCORED])
    code, out, _ = _run(["rerank", "-q", "capital of france", "-i", str(f), "-m",
                         str(tiny_model_dir), "--fusion", "linear", "--fusion-weight", "0.7",
                         "--first-stage-field", "bm25", "--title-field", ""], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    want = tiny_scorer.rerank("capital of france", [d["text"] for d in _SCORED],
                              fusion="linear", fusion_weight=0.7,
                              first_stage_scores=[d["bm25"] for d in _SCORED])
    assert [r["id"] for r in rows] == [_SCORED[h.index]["id"] for h in want.hits]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in want.hits], abs=1e-6)
    assert [r["model_score"] for r in rows] == pytest.approx(
        [h.model_score for h in want.hits], abs=1e-6
    )
    assert [r["bm25"] for r in rows] == [_SCORED[h.index]["bm25"] for h in want.hits]


@pytest.mark.parametrize(
    ("flags", "lines", "message"),
    [
        (["--fusion", "rrf"], None, "--fusion rrf needs --first-stage-field FIELD"),
        (["--first-stage-field", "bm25"], None,
         "--first-stage-field bm25 is only used with --fusion linear or --fusion rrf"),
        (["--fusion-weight", "0.3"], None, "--fusion-weight is only used with --fusion"),
        (["--fusion", "linear", "--first-stage-field", "bm25"],
         ['{"text": "paris", "bm25": 1}', '{"text": "dog"}'],
         "docs.jsonl:2: field 'bm25' must be a finite number (the candidate's first-stage "
         "score, for --fusion), got no such field; choose the field with --first-stage-field"),
        (["--fusion", "linear", "--first-stage-field", "bm25"],
         ['{"text": "paris", "bm25": "high"}'], "docs.jsonl:1: field 'bm25' must be a finite"),
        (["--fusion", "linear", "--first-stage-field", "bm25", "--format", "text"], ["paris"],
         "--first-stage-field needs JSONL input"),
        (["--fusion", "linear", "--first-stage-field", "bm25", "--min-relative-score", "0.5"],
         None, "--min-relative-score needs non-negative scores, and fused scores with "
         "--fusion linear"),
    ],
)
def test_rerank_fusion_errors_are_one_line_naming_the_flags(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str],
    flags: list[str], lines: list[str] | None, message: str,
) -> None:
    f = _write(tmp_path / "docs.jsonl", lines or [json.dumps(d) for d in _SCORED])
    code, out, err = _run(["rerank", "-q", "q", "-i", str(f), "-m", str(tiny_model_dir),
                           *flags], capsys)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_int8_calibration_flag_reads_a_jsonl_file(tmp_path: Path) -> None:
    from crossrank.cli import add_scorer_options, scorer_kwargs

    good = tmp_path / "cal.jsonl"
    good.write_text('{"query": "q", "text": "t one"}\n\n{"query": "q2", "text": "t two"}\n')
    parser = add_scorer_options(argparse.ArgumentParser())
    args = parser.parse_args(["--int8-calibration", str(good)])
    assert scorer_kwargs(args)["int8_calibration"] == [("q", "t one"), ("q2", "t two")]
    assert scorer_kwargs(parser.parse_args([]))["int8_calibration"] is None
