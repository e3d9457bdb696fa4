"""``crossrank serve`` on the command line (its flags, one-line errors and exit codes) and
``crossrank bench --server`` against a running server and a local one it starts and stops."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_kit import spread_model

from crossrank import CrossEncoderScorer
from crossrank._cli_checks import EXIT_STATUS
from crossrank.cli import SCORER_FLAGS, build_parser, main, scorer_kwargs
from crossrank.serve import Limits, create_app, running_server
from crossrank.serve.server import RunningServer, bind

pytestmark = pytest.mark.timeout(240)


def _serve_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices["serve"]  # type: ignore[no-any-return]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_serve_help_lists_the_server_flags_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(["serve", "--help"], capsys)
    assert code == 0 and EXIT_STATUS in out
    for flag in ("--host", "--port", "--api-key-env", "--api-key-file", "--max-documents",
                 "--max-chars", "--max-tokens", "--max-body-bytes", "--max-queue",
                 "--retry-after", "--max-wait-ms", "--max-batch-tokens", "--max-batch-pairs",
                 "--threads", "--drain-timeout", "--quiet", "--model", "--activation",
                 "--long-documents"):  # fmt: skip
        assert flag in out, flag
    assert "(default: 127.0.0.1, this machine only" in " ".join(out.split())
    code, out, _ = _run(["--help"], capsys)
    assert "serve one scorer over HTTP" in out


def test_serve_declares_every_scorer_option_once(tmp_path: Path) -> None:
    parser = _serve_parser()
    flags = [s for a in parser._actions for s in a.option_strings]
    assert len(flags) == len(set(flags))
    assert {a.dest for a in parser._actions} & set(SCORER_FLAGS) == set(SCORER_FLAGS)
    args = parser.parse_args(
        ["-m", str(tmp_path), "--batch-size", "4", "--long-documents", "chunk", "--max-queue",
         "9", "--activation", "raw"]
    )  # fmt: skip
    scorer = CrossEncoderScorer(**scorer_kwargs(args))
    assert (scorer.batch_size, scorer.long_documents, scorer.activation) == (4, "chunk", "raw")
    assert args.max_queue == 9 and args.host == "127.0.0.1" and args.port == 8080
    assert args.max_documents == Limits().max_documents


@pytest.fixture
def busy_port() -> Iterator[int]:
    with bind("127.0.0.1", 0) as sock:
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--port", "70000"], 2, "argument --port: must be a port number 0-65535, got '70000'"),
        (["--max-queue", "0"], 2, "argument --max-queue: must be an integer >= 1, got '0'"),
        (["--max-wait-ms", "-1"], 2, "argument --max-wait-ms: must be between 0 and 60000 ms"),
        (["--api-key-env", "CROSSRANK_NO_SUCH_VAR"], 2,
         "--api-key-env CROSSRANK_NO_SUCH_VAR: the environment variable CROSSRANK_NO_SUCH_VAR "
         "is not set"),
        (["--api-key-file", "MISSING"], 2, "--api-key-file MISSING: no such file"),
        (["--port", "BUSY"], 2, "cannot listen there"),
        (["--model", "NONE", "--port", "0"], 1, "Could not load cross-encoder"),
    ],
    ids=["port", "queue", "wait", "key-env", "key-file", "port-in-use", "model"],
)  # fmt: skip
def test_serve_errors_are_one_line_with_the_exit_code(
    argv: list[str],
    code: int,
    message: str,
    busy_port: int,
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        {"BUSY": str(busy_port), "MISSING": str(tmp_path / "keys.txt"),
         "NONE": str(tmp_path / "none")}.get(a, a)
        for a in argv
    ]  # fmt: skip
    if "--model" not in argv:
        argv += ["--model", str(tiny_model_dir)]
    got, out, err = _run(["serve", *argv], capsys)
    assert got == code and out == ""
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert message.replace("MISSING", str(tmp_path / "keys.txt")) in err, err


def test_serve_without_its_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    code, _, err = _run(["serve", "-m", str(tiny_model_dir)], capsys)
    assert code == 2
    assert err == (
        "crossrank serve: error: crossrank serve needs an optional dependency that is not "
        'installed (fastapi). Install it with: pip install "crossrank[serve]"\n'
    )


# ---------------------------------------------------------------------- bench --server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    model = spread_model(tmp_path_factory)
    app = create_app(CrossEncoderScorer(model, device="cpu"), limits=Limits(max_queue=4))
    with running_server(app) as running:
        yield running


def _check_report(report: dict[str, Any], *, pairs: int, burst: int) -> None:
    inproc, served, over = report["in_process"], report["served"], report["overload"]
    assert inproc["pairs"] == served["pairs"] == pairs
    assert len(inproc["seconds"]) == 2 and all(s > 0 for s in inproc["seconds"])
    assert report["ratio_served_vs_in_process"] == pytest.approx(
        served["pairs_per_second"] / inproc["pairs_per_second"]
    )
    assert 0 < served["latency_p50_ms"] <= served["latency_p95_ms"] <= served["latency_p99_ms"]
    assert served["max_abs_score_diff_vs_in_process"] < 1e-4 and served["mixed_up"] == 0
    assert report["batching"]["forward_passes"] >= 1
    assert report["batching"]["requests_per_pass"] >= 1
    assert over["requests"] == burst and over["lost"] == 0 and over["mixed_up"] == 0
    assert over["ok"] >= 1 and over["ok"] + over["rejected_429"] == burst
    assert over["other_status"] == [] and over["healthy_after"] is True
    machine = report["machine"]
    assert len(machine["load_average_before"]) == 3 and "cpu_flags" in machine


def test_bench_measures_a_running_server(
    served: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "serve-bench.json"
    code, printed, _ = _run(
        ["bench", "--server", served.url, "--concurrency", "3", "--candidates", "4",
         "--repeats", "2", "--doc-tokens", "8", "--out", str(out), "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0
    assert "server, 3 clients" in printed and "requests and" in printed
    report = json.loads(out.read_text())
    _check_report(report, pairs=24, burst=16)
    assert report["settings"]["server"] == served.url and "local_server_exit_code" not in report


def test_bench_starts_serves_and_stops_a_local_server(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``crossrank serve`` end to end: a child process on a free port, then SIGTERM."""
    out = tmp_path / "local.json"
    code, printed, _ = _run(
        ["bench", "--server", "local", "--model", str(tiny_model_dir), "--concurrency", "2",
         "--candidates", "3", "--repeats", "2", "--doc-tokens", "8", "--out", str(out),
         "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, printed
    report = json.loads(out.read_text())
    _check_report(report, pairs=12, burst=16)  # queue 2 x concurrency
    assert report["local_server_exit_code"] == 0  # drained and stopped on SIGTERM
    assert report["server"]["limits"]["max_queue"] == 4


def test_bench_server_local_needs_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["bench", "--server", "local"], capsys)
    assert code == 2 and "--server local needs --model" in err
