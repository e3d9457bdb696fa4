"""Errors a user meets, in the core and in every ``crossrank`` subcommand: a device this
machine lacks, an ``--out`` that cannot be written, a missing extra, the Hub unreachable;
one line each, worded with the command's flags, and one exit-code convention."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from crossrank import CrossEncoderScorer, CrossrankError, HubUnreachableError
from crossrank._cli_checks import (
    EXIT_STATUS,
    InputError,
    check_output_path,
    cli_wording,
    exit_code,
)
from crossrank.cli import build_parser, main
from crossrank.errors import DeviceUnavailableError, ModelNotFoundError
from crossrank.runtimes.devices import available_devices, check_device

COMMANDS = ("rerank", "eval", "bench", "calibrate")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    path = tmp_path / "docs.txt"
    path.write_text("paris is the capital of france\nthe dog\n", encoding="utf-8")
    return path


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices[command]  # type: ignore[no-any-return]


# ------------------------------------------------------------------ devices


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with a CUDA build of torch but no GPU visible, and no MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize(
    ("device", "reason"),
    [
        ("cuda", "no CUDA GPU is visible (torch.cuda.is_available() is False)"),
        ("cuda:1", "no CUDA GPU is visible"),
        (torch.device("cuda", 0), "no CUDA GPU is visible"),
        ("mps", "MPS (the Apple GPU) is not available on this machine"),
    ],
)
def test_a_device_this_machine_lacks_is_named_with_the_ones_it_has(
    device: Any, reason: str
) -> None:
    with pytest.raises(DeviceUnavailableError) as info:
        check_device(device)
    error = info.value
    assert isinstance(error, CrossrankError) and isinstance(error, ValueError)
    assert error.device == str(device) and reason in error.reason
    assert "Pass one of the devices this machine has ('cpu')" in error.hint
    assert str(error).startswith(f"device={str(device)!r} is not available here: ")


def test_a_cpu_only_torch_build_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(DeviceUnavailableError, match=r"this PyTorch build \(.+\) has no CUDA"):
        check_device("cuda")


@pytest.mark.usefixtures("one_gpu")
def test_a_gpu_index_beyond_the_count_is_named() -> None:
    check_device("cuda")
    check_device("cuda:0")
    with pytest.raises(DeviceUnavailableError, match="has 1 CUDA device"):
        check_device("cuda:1")
    assert available_devices()[:2] == ["cpu", "cuda:0"]


def test_cpu_and_none_pass_and_a_malformed_name_is_a_value_error() -> None:
    check_device(None)
    check_device("cpu")
    check_device(torch.device("cpu"))
    with pytest.raises(ValueError, match="device must be like 'cpu', 'cuda'"):
        check_device("gpu-please")


@pytest.mark.usefixtures("no_gpu")
def test_loading_on_a_missing_device_fails_before_the_model_loads(tmp_path: Path) -> None:
    from crossrank.loading import load_model

    # No folder there: a load would fail with ModelNotFoundError; the device is checked first.
    with pytest.raises(DeviceUnavailableError):
        load_model(
            str(tmp_path / "no-model"),
            device="cuda",
            max_length=None,
            token=None,
            cache_dir=None,
            revision=None,
            local_files_only=True,
            trust_remote_code=False,
        )


@pytest.mark.usefixtures("no_gpu")
def test_the_scorer_checks_its_device_when_it_is_built(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailableError):
        CrossEncoderScorer(tmp_path / "no-model", device="cuda")


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_cli_device_error_is_one_line_before_loading(
    device: str, docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        ["rerank", "-q", "q", "-i", str(docs), "-m", str(tmp_path / "no-model"),
         "--device", device], capsys,
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.startswith(f"crossrank rerank: error: --device {device} is not available here")
    assert "or leave --device unset" in err and len(err.splitlines()) == 1


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("command", ["eval", "bench", "calibrate"])
def test_every_command_checks_the_device_first(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "--device", "cuda", "-m", str(tmp_path / "no-model")]
    if command != "bench":
        argv += ["--data", str(tmp_path)]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert err.startswith(f"crossrank {command}: error: --device cuda is not available here")


# ------------------------------------------------------------------ output paths


@pytest.mark.parametrize(
    ("command", "flag"),
    [("rerank", "--out"), ("rerank", "-o"), ("eval", "--out"), ("eval", "--plot"),
     ("bench", "-o"), ("calibrate", "--out"), ("calibrate", "--save")],
)  # fmt: skip
def test_an_output_path_that_is_a_directory_fails_before_scoring(
    command: str, flag: str, docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {
        "rerank": ["rerank", "-q", "q", "-i", str(docs)],
        "eval": ["eval", "--data", str(tmp_path)],
        "bench": ["bench"],
        "calibrate": ["calibrate", "--data", str(tmp_path)],
    }[command]
    # The model does not exist: getting that far would exit 1 with another message.
    code, out, err = _run([*argv, "-m", str(tmp_path / "no-model"), flag, str(tmp_path)],
                          capsys)
    assert code == 2 and out == ""
    long_flag = "--out" if flag == "-o" else flag
    assert err == (
        f"crossrank {command}: error: {long_flag} {tmp_path} is a directory; give a file "
        f"path, e.g. {tmp_path / 'out'}\n"
    )


def test_an_output_path_under_a_file_fails_before_scoring(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["rerank", "-q", "q", "-i", str(docs), "-o", str(docs / "out.jsonl")],
                        capsys)
    assert code == 2
    assert err == f"crossrank rerank: error: --out {docs / 'out.jsonl'}: {docs} is a file, " \
        "not a folder\n"


@pytest.mark.skipif(
    sys.platform == "win32" or (hasattr(__import__("os"), "geteuid") and
                                __import__("os").geteuid() == 0),
    reason="permissions do not stop root (or Windows ACLs differ)",
)  # fmt: skip
def test_an_unwritable_output_folder_fails_before_scoring(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InputError, match="cannot create files in"):
            check_output_path(str(locked / "sub" / "out.jsonl"), "--out")
    finally:
        locked.chmod(0o700)


def test_a_missing_output_folder_is_made(
    tmp_path: Path, tiny_model_dir: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "new" / "deeper" / "out.jsonl"
    code, out, _ = _run(["rerank", "-q", "q", "-i", str(docs), "-m", str(tiny_model_dir),
                         "-o", str(target)], capsys)
    assert code == 0 and out == ""
    assert len(target.read_text().splitlines()) == 2
    check_output_path("-", "--out")  # stdout
    check_output_path(None, "--out")


# ------------------------------------------------------------------ missing extras


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Make modules look uninstalled for the test (``import`` and ``find_spec`` fail)."""

    def _hide(*names: str) -> None:
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)

    return _hide


@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_bm25_without_the_eval_extra_names_the_install(
    command: str, hide: Any, tmp_path: Path, tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hide("bm25s")
    code, out, err = _run([command, "--data", str(tmp_path), "-m", str(tiny_model_dir)], capsys)
    assert code == 2 and out == ""
    assert err == (
        f"crossrank {command}: error: crossrank {command}'s BM25 first stage needs an optional "
        'dependency that is not installed (bm25s). Install it with: pip install '
        '"crossrank[eval]"\n'
    )


def test_eval_plot_without_matplotlib_names_the_install(
    hide: Any, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hide("matplotlib")
    run = tmp_path / "my.run"  # a run file: no BM25 needed
    run.write_text("q1 Q0 d1 1 1.0 t\n", encoding="utf-8")
    code, _, err = _run(["eval", "--data", str(tmp_path), "-m", str(tiny_model_dir), "--run",
                         str(run), "--plot", str(tmp_path / "p.png")], capsys)
    assert code == 2
    assert 'crossrank eval --plot needs' in err and 'pip install "crossrank[eval]"' in err


@pytest.mark.parametrize(
    ("backend", "module", "extra"),
    [("onnx", "onnxruntime", "onnx"), ("onnx-int8", "onnx", "onnx"),
     ("openvino", "openvino", "openvino"), ("openvino-int8", "nncf", "openvino")],
)  # fmt: skip
def test_a_backend_without_its_extra_names_the_install_before_loading(
    backend: str, module: str, extra: str, hide: Any, docs: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hide(module)
    # The model does not exist: the extra is checked before any load.
    code, _, err = _run(["rerank", "-q", "q", "-i", str(docs), "-m", str(tmp_path / "none"),
                         "--backend", backend], capsys)
    assert code == 2
    assert err == (
        f"crossrank rerank: error: --backend {backend} needs an optional dependency that is not "
        f'installed ({module}). Install it with: pip install "crossrank[{extra}]"\n'
    )


def test_bench_needs_no_extra(
    hide: Any, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What docs/evaluation.md says: bench runs with crossrank's own dependencies."""
    hide("bm25s", "Stemmer", "matplotlib")
    out = tmp_path / "bench.json"
    code, printed, _ = _run(
        ["bench", "-m", str(tiny_model_dir), "--candidates", "4", "--doc-tokens", "8",
         "--repeats", "1", "--variant", "crossrank-torch-fp32", "-o", str(out), "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, printed
    assert {row["name"] for row in json.loads(out.read_text())["variants"]} >= {
        "crossrank-torch-fp32"
    }


# ------------------------------------------------------------------ the Hub unreachable


@pytest.fixture
def spy_config_loads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the keyword arguments of every AutoConfig.from_pretrained call."""
    from transformers import AutoConfig

    calls: list[dict[str, Any]] = []
    real = AutoConfig.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoConfig, "from_pretrained", spy)
    return calls


def _no_probe() -> str | None:
    raise AssertionError("the Hub was probed although offline mode is on")


def test_offline_mode_reads_only_the_cache_and_names_the_ways_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spy_config_loads: list[dict[str, Any]]
) -> None:
    import crossrank._hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(crossrank._hub, "hub_unreachable", _no_probe)
    scorer = CrossEncoderScorer("crossrank-test/not-cached", cache_dir=tmp_path / "cache")
    with pytest.raises(HubUnreachableError) as info:
        scorer.warm_up()
    assert [call["local_files_only"] for call in spy_config_loads] == [True]
    hint = info.value.hint
    assert "model=PATH" in hint and "CROSSRANK_MODEL=PATH" in hint
    assert "HF_HUB_OFFLINE=1" in hint


def test_a_hub_that_does_not_answer_once_is_not_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spy_config_loads: list[dict[str, Any]]
) -> None:
    import crossrank._hub

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    probes: list[int] = []

    def unreachable() -> str:
        probes.append(1)
        return "ConnectError: [Errno -2] Name or service not known"

    monkeypatch.setattr(crossrank._hub, "hub_unreachable", unreachable)
    scorer = CrossEncoderScorer("crossrank-test/not-cached", cache_dir=tmp_path / "cache")
    with pytest.raises(HubUnreachableError):
        scorer.warm_up()
    assert probes == [1]  # one request, then the cache only: no retries
    assert [call["local_files_only"] for call in spy_config_loads] == [True]


def test_a_local_folder_never_probes_the_hub(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    import crossrank._hub

    monkeypatch.setattr(crossrank._hub, "hub_unreachable", _no_probe)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    CrossEncoderScorer(tiny_model_dir, device="cpu").warm_up()


def test_hub_offline_reads_the_environment_now(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossrank._hub import hub_offline

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    assert not hub_offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")
    assert hub_offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline()


def test_hub_unreachable_makes_one_request_with_the_hub_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crossrank._hub import hub_unreachable

    requests: list[tuple[str, float]] = []

    class Session:
        def __init__(self, error: Exception | None) -> None:
            self.error = error

        def head(self, url: str, timeout: float) -> object:
            requests.append((url, timeout))
            if self.error is not None:
                raise self.error
            return object()

    monkeypatch.setattr("huggingface_hub.get_session", lambda: Session(None))
    assert hub_unreachable() is None
    monkeypatch.setattr("huggingface_hub.get_session",
                        lambda: Session(ConnectionError("name or service not known")))
    assert hub_unreachable() == "ConnectionError: name or service not known"
    from huggingface_hub import constants

    assert requests == [(constants.ENDPOINT, constants.HF_HUB_ETAG_TIMEOUT)] * 2


def test_cli_without_a_model_offline_fails_fast_naming_the_ways_out(
    monkeypatch: pytest.MonkeyPatch, docs: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import crossrank._hub

    monkeypatch.delenv("CROSSRANK_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(crossrank._hub, "hub_unreachable", _no_probe)
    code, out, err = _run(["rerank", "-q", "q", "-i", str(docs), "--cache-dir",
                           str(tmp_path / "cache")], capsys)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("crossrank rerank: error: Could not load cross-encoder "
                          "'cross-encoder/ms-marco-MiniLM-L6-v2': the Hugging Face Hub")
    for way_out in ("--model PATH", "CROSSRANK_MODEL=PATH", "HF_HUB_OFFLINE=1"):
        assert way_out in err


# ------------------------------------------------------------------ wording and exit codes


def test_cli_wording_uses_the_commands_flags() -> None:
    rerank = _subparser("rerank")
    cases = {
        "top_k must be >= 1, got 0": "--top-k must be >= 1, got 0",
        "max_length must be <= the model's limit of 512 tokens, got 999":
            "--max-length must be <= the model's limit of 512 tokens, got 999",
        "backend='onnx' runs on the CPU (onnxruntime), got device='cuda:1'; use device='cpu'":
            "--backend onnx runs on the CPU (onnxruntime), got --device cuda:1; use --device cpu",
        "Check model_kwargs (torch_dtype), passed to AutoModel.from_pretrained.":
            "Check --model-kwargs (torch_dtype), passed to AutoModel.from_pretrained.",
        "crossrank passes its own cache_dir; set CrossEncoderScorer(cache_dir=...) instead":
            "crossrank passes its own --cache-dir; set --cache-dir ... instead",
        "calibration is only used with activation='calibrated', got activation='raw'":
            "--calibration is only used with --activation calibrated, got --activation raw",
        # Plain words and other spellings stay as they are.
        "the model's limit; set CROSSRANK_MODEL=PATH; run `crossrank calibrate --model M`":
            "the model's limit; set CROSSRANK_MODEL=PATH; run `crossrank calibrate --model M`",
        "pass model=PATH, or leave device unset":
            "pass --model PATH, or leave --device unset",
    }  # fmt: skip
    for message, expected in cases.items():
        assert cli_wording(message, rerank) == expected
    # Each command's own names: calibrate's top_k is its --candidates.
    assert cli_wording("a larger top_k", _subparser("calibrate")) == "a larger --candidates"
    assert cli_wording("limit_queries must be >= 1", _subparser("eval")) == (
        "--limit-queries must be >= 1"
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InputError("x"), 2),
        (ValueError("x"), 2),
        (TypeError("x"), 2),
        (FileNotFoundError("x"), 2),
        (IsADirectoryError("x"), 2),
        (DeviceUnavailableError("cuda", "r", "h"), 2),
        (ImportError('feature needs it. Install it with: pip install "crossrank[eval]"'), 2),
        (ModelNotFoundError("m", "r", "h"), 1),
        (HubUnreachableError("m", "r", "h"), 1),
        (ImportError("cannot import name 'x' from 'y'"), 1),
        (RuntimeError("CUDA out of memory"), 1),
        (OSError("No space left on device"), 1),
        (KeyError("bug"), None),
        (AssertionError("bug"), None),
    ],
)
def test_one_exit_code_convention(error: BaseException, code: int | None) -> None:
    assert exit_code(error) == code


def test_a_runtime_failure_is_one_line_with_exit_1(
    monkeypatch: pytest.MonkeyPatch, docs: Path, tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def oom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(CrossEncoderScorer, "rerank", oom)
    code, _, err = _run(["rerank", "-q", "q", "-i", str(docs), "-m", str(tiny_model_dir)], capsys)
    assert code == 1
    assert err == ("crossrank rerank: error: RuntimeError: CUDA out of memory. Tried to "
                   "allocate 2.00 GiB\n")


def test_a_bug_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, docs: Path, tiny_model_dir: Path
) -> None:
    def bug(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(CrossEncoderScorer, "rerank", bug)
    with pytest.raises(KeyError):
        main(["rerank", "-q", "q", "-i", str(docs), "-m", str(tiny_model_dir)])


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_documents_the_exit_codes(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*([command] if command else []), "--help"]) == 0
    out = capsys.readouterr().out
    assert EXIT_STATUS in out
    assert "  1    the work failed" in out and "  2    usage or input error" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--data", "d", "--k", "5"],
         "--k was renamed --candidates: -k/--top-k means 'keep the best K' (crossrank rerank)"),
        (["calibrate", "--data", "d", "--top-k", "5"], "--top-k was renamed --candidates"),
        (["calibrate", "--data", "d", "--output", "c.json"],
         "--output was renamed --save: -o/--out writes the JSON report, as in eval and bench"),
    ],
)  # fmt: skip
def test_renamed_flags_say_their_new_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(argv, capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_short_flags_mean_the_same_in_every_command() -> None:
    """-o is --out, -m is --model wherever they exist; -k is --top-k (keep the best K) and
    only rerank has it; first-stage candidates are --candidates."""
    for command in COMMANDS:
        parser = _subparser(command)
        strings = {s: a for a in parser._actions for s in a.option_strings}
        assert strings["-o"] is strings["--out"], command
        assert strings["-m"] is strings["--model"], command
        assert "--quiet" in strings, command
        if command == "rerank":
            assert strings["-k"] is strings["--top-k"]
        else:
            assert "-k" not in strings and "--candidates" in strings, command
            visible = {s for s, a in strings.items() if a.help != argparse.SUPPRESS}
            assert not {"--k", "--top-k", "--output"} & visible, command


def test_library_messages_keep_python_names(tmp_path: Path) -> None:
    """Outside the CLI, messages name the Python arguments, not flags."""
    with pytest.raises(ValueError, match=r"^top_k must be >= 1, got 0$"):
        CrossEncoderScorer(tmp_path).rank("q", ["a"], top_k=0)
    from crossrank.eval.calibrate import calibration_target

    with pytest.raises(ValueError, match="pass save=FILE"):
        calibration_target("org/model", None)


def test_the_new_modules_pin_their_public_names() -> None:
    pinned = {
        "crossrank.runtimes.devices": ["available_devices", "check_device", "resolve_device"],
        "crossrank._quiet": ["drop_log_records", "quiet_transformers"],
        "crossrank._hub": ["UNREACHABLE_HINT", "cache_only", "hub_offline", "hub_unreachable"],
        "crossrank.errors": ["CrossrankError", "DeviceUnavailableError", "HubUnreachableError",
                             "ScoringError",
                             "ModelLoadError", "ModelNotFoundError", "UnsupportedModelError"],
    }  # fmt: skip
    for name, names in pinned.items():
        module = importlib.import_module(name)
        assert sorted(module.__all__) == sorted(names), name
        assert all(hasattr(module, n) for n in names)


def test_drop_log_records_leaves_other_threads_alone(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    from crossrank._quiet import drop_log_records

    log = logging.getLogger("crossrank")
    with caplog.at_level(logging.WARNING, logger="crossrank"), drop_log_records("dropped"):
        log.warning("crossrank: dropped here")
        log.warning("crossrank: kept here")
        other = threading.Thread(target=log.warning, args=("crossrank: dropped elsewhere",))
        other.start()
        other.join()
    log.warning("crossrank: dropped after")  # the filter is gone
    assert [r.getMessage() for r in caplog.records] == [
        "crossrank: kept here",
        "crossrank: dropped elsewhere",
        "crossrank: dropped after",
    ]
    assert log.filters == []
