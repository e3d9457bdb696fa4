"""``auto``'s probe: agreement thresholds, the choice under stubbed timings, the decision
cache (across processes, per model, with two processes at once) and ``CROSSRANK_BACKEND``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from crossrank.families import load_family
from crossrank.families.source import resolve_source
from crossrank.runtimes import probe
from crossrank.runtimes.probe import (
    MIN_NDCG10,
    MIN_TOP10_OVERLAP,
    Decision,
    Trial,
    agreement,
    calibration_pairs,
    candidate_backends,
    decision_key,
    resolve_auto,
    run_probe,
)

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    """A clock that only moves when a stubbed backend says it worked."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    """The tiny model's encoder (max_length 128) and score net."""
    loaded = load_family(
        resolve_source(str(tiny_model_dir)), hub_kwargs={"local_files_only": True}, max_length=128
    )
    return loaded.encoder, loaded.net


def torch_forward(net: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    names = net.input_names

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            scores = net(*[torch.from_numpy(arrays[n]) for n in names])
        return scores.numpy().astype(np.float64)

    return forward


def stub_builder(
    net: object, clock: FakeClock, seconds_per_row: dict[str, float], wrong: set[str]
) -> Callable[[str], Callable[[dict[str, np.ndarray]], np.ndarray]]:
    """Backends that return the tiny model's scores (reversed for those in ``wrong``) and
    advance the fake clock by their stated cost per pair."""
    exact = torch_forward(net)

    def build(backend: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        if backend == "broken":
            raise RuntimeError("this backend cannot run here")

        def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
            clock.now += seconds_per_row[backend] * len(arrays["input_ids"])
            scores = exact(arrays)
            return -scores if backend in wrong else scores

        return forward

    return build


def probe_with(
    tiny: tuple[Any, Any], seconds: dict[str, float], wrong: set[str] = frozenset()
) -> Decision:
    encoder, net = tiny
    clock = FakeClock()
    return run_probe(
        stub_builder(net, clock, seconds, set(wrong)),
        list(seconds),
        inputs=encoder,
        clock=clock,
    )


# ---------------------------------------------------------------------- agreement


def test_agreement_is_perfect_against_itself_and_fails_a_reversed_order() -> None:
    rng = np.random.default_rng(0)
    ref = [rng.normal(size=24) for _ in range(3)]
    same = agreement(ref, ref)
    assert same["passed"] and same["ndcg10"] == 1.0 and same["top10_overlap_min"] == 10
    reversed_ = agreement(ref, [-r for r in ref])
    assert not reversed_["passed"]
    assert reversed_["ndcg10"] < 0.2 and reversed_["spearman"] == pytest.approx(-1.0)


def test_agreement_thresholds_at_the_top() -> None:
    ref = np.arange(24, 0, -1, dtype=np.float64)  # item 0 best
    swapped_top2 = ref.copy()
    swapped_top2[[0, 1]] = swapped_top2[[1, 0]]
    result = agreement([ref], [swapped_top2])
    assert result["top10_overlap_min"] == 10
    assert MIN_NDCG10 <= result["ndcg10"] < 1.0  # a swap of the two best costs about 1%
    assert result["passed"]
    # Items 9 and 10 of 24 traded for the two worst: 8 of 10 kept, below the threshold.
    two_lost = ref.copy()
    two_lost[[8, 9]] = -100.0
    result = agreement([ref], [two_lost])
    assert result["top10_overlap_min"] == 8 < MIN_TOP10_OVERLAP
    assert not result["passed"]


def test_agreement_fails_non_finite_scores() -> None:
    ref = np.arange(24, dtype=np.float64)
    got = ref.copy()
    got[3] = np.nan
    assert not agreement([ref], [got])["passed"]


# ---------------------------------------------------------------------- the choice


def test_probe_picks_the_fastest_backend_that_agrees(tiny: tuple[Any, Any]) -> None:
    decision = probe_with(tiny, {"torch": 1.0, "onnx": 0.6, "openvino": 0.5, "openvino-int8": 0.3})
    assert decision.backend == "openvino-int8"
    assert [t.backend for t in decision.trials] == ["torch", "onnx", "openvino", "openvino-int8"]
    by_name = {t.backend: t for t in decision.trials}
    # The reference and the choice were checked; slower backends could not be picked, so
    # their agreement was not measured (that is what keeps the probe short).
    assert by_name["torch"].passed and by_name["openvino-int8"].passed
    assert by_name["openvino-int8"].checked and by_name["openvino-int8"].agreement
    for slower in ("onnx", "openvino"):
        assert not by_name[slower].checked and not by_name[slower].passed
        assert by_name[slower].agreement == {}
        assert "not checked" in decision.summary()
    # Stubbed timing: the fake clock moved by cost per pair x 16 timing pairs.
    assert by_name["openvino"].seconds == pytest.approx(0.5 * 16)


def test_probe_checks_the_next_fastest_when_the_fastest_fails(
    tiny: tuple[Any, Any],
) -> None:
    decision = probe_with(
        tiny,
        {"torch": 1.0, "onnx": 0.6, "openvino": 0.5, "openvino-int8": 0.3},
        wrong={"openvino-int8"},
    )
    assert decision.backend == "openvino"
    by_name = {t.backend: t for t in decision.trials}
    assert by_name["openvino-int8"].checked and not by_name["openvino-int8"].passed
    assert by_name["openvino"].checked and by_name["openvino"].passed
    assert not by_name["onnx"].checked


def test_probe_times_a_parallel_backend_on_as_many_batches_as_it_runs(
    tiny: tuple[Any, Any],
) -> None:
    """A backend that runs two batches at once (OpenVINO's streams) is timed the way the
    scorer runs it: the 16 timing pairs split into two batches run together."""
    encoder, net = tiny
    exact = torch_forward(net)
    seen: list[int] = []

    def build(backend: str) -> object:
        if backend == "torch":
            return exact

        def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
            seen.append(len(arrays["input_ids"]))
            return exact(arrays)

        class Streams:  # runs its batches "at once", as StreamForward does
            parallel = 2

            def __call__(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
                return [forward(b) for b in batches]

        return forward, Streams()

    decision = run_probe(
        build, ["torch", "openvino"], inputs=encoder
    )
    assert set(seen[:2]) == {8}  # the warm-up pass: two batches of 8
    assert {t.backend: t for t in decision.trials}["openvino"].seconds is not None


def test_probe_never_picks_a_planted_inaccurate_backend(tiny: tuple[Any, Any]) -> None:
    decision = probe_with(
        tiny,
        {"torch": 1.0, "openvino": 0.5, "openvino-int8": 0.01},
        wrong={"openvino-int8"},
    )
    assert decision.backend == "openvino"
    planted = decision.trials[-1]
    assert planted.backend == "openvino-int8" and not planted.passed
    assert planted.checked  # the fastest, so checked first, and refused
    assert planted.agreement["top10_overlap_min"] < 9


def test_probe_falls_back_to_torch_when_nothing_else_passes(
    tiny: tuple[Any, Any],
) -> None:
    decision = probe_with(tiny, {"torch": 1.0, "onnx": 0.2, "broken": 0.1}, wrong={"onnx"})
    assert decision.backend == "torch"
    broken = decision.trials[-1]
    assert not broken.passed and "cannot run here" in (broken.error or "")


def test_probe_prefers_the_more_precise_backend_within_timing_noise(
    tiny: tuple[Any, Any],
) -> None:
    # int8 is 3% faster than fp32 OpenVINO: within the 5% margin, so fp32 wins.
    decision = probe_with(tiny, {"torch": 1.0, "openvino": 0.5, "openvino-int8": 0.485})
    assert decision.backend == "openvino"
    decision = probe_with(tiny, {"torch": 1.0, "openvino": 0.5, "openvino-int8": 0.3})
    assert decision.backend == "openvino-int8"


def test_decision_round_trips_through_json(tiny: tuple[Any, Any]) -> None:
    decision = probe_with(tiny, {"torch": 1.0, "openvino": 0.5})
    back = Decision.from_json(json.loads(json.dumps(decision.to_json())))
    assert back.backend == decision.backend and back.trials == decision.trials
    assert back.source == "cache"
    assert "openvino" in decision.summary() and "ndcg10" in decision.summary()


# ---------------------------------------------------------------------- candidates, key


def test_candidates_follow_what_the_machine_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossrank.runtimes import backends, cpu
    from crossrank.runtimes import openvino as openvino_export

    monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(backends, "onnx_available", lambda: False)
    monkeypatch.setattr(openvino_export, "openvino_available", lambda backend="openvino": False)
    assert candidate_backends("cpu") == ["torch"]

    monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(backends, "onnx_available", lambda: True)
    monkeypatch.setattr(openvino_export, "openvino_available", lambda backend="openvino": True)
    monkeypatch.setattr(openvino_export, "openvino_supports_bf16", lambda: True)
    found = candidate_backends("cpu")
    assert found == ["torch", "torch-bf16", "onnx", "openvino", "openvino-bf16", "openvino-int8"]
    assert "onnx-int8" not in found  # dynamic int8 failed the SciFact guard
    assert candidate_backends("cuda:0") == ["torch", "torch-fp16", "torch-bf16"]
    assert candidate_backends("mps") == ["torch"]


def test_decision_key_depends_on_model_and_device() -> None:
    assert decision_key("a" * 64, "cpu") == decision_key("a" * 64, "cpu")
    assert decision_key("a" * 64, "cpu") != decision_key("b" * 64, "cpu")
    assert decision_key("a" * 64, "cpu") != decision_key("a" * 64, "cuda:0")


def test_calibration_sample_is_fixed_and_varied() -> None:
    pairs = calibration_pairs()
    assert pairs == calibration_pairs() and len(pairs) == 48
    assert len({q for q, _ in pairs}) == 8
    lengths = sorted(len(t.split()) for _, t in pairs)
    assert lengths[0] < 80 and lengths[-1] > 300  # single passages up to six joined


# ---------------------------------------------------------------------- env and cache


def counting_probe(log: Path, backend: str = "openvino") -> Callable[[list[str], str], Decision]:
    def run(candidates: list[str], key: str) -> Decision:
        with log.open("a") as f:
            f.write("probed\n")
        return Decision(backend=backend, key=key, trials=(Trial("torch", True, 1.0),))

    return run


def test_env_names_the_backend_and_skips_the_probe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CROSSRANK_BACKEND", "onnx")
    log = tmp_path / "log"
    decision = resolve_auto("f" * 64, "cpu", counting_probe(log), cache_dir=tmp_path)
    assert decision.backend == "onnx" and decision.source == "env"
    assert not log.exists()
    monkeypatch.setenv("CROSSRANK_BACKEND", "fastest")
    with pytest.raises(ValueError, match=r"CROSSRANK_BACKEND must name a backend.*'fastest'"):
        resolve_auto("f" * 64, "cpu", counting_probe(log), cache_dir=tmp_path)


def test_decision_is_cached_and_invalidated_by_another_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CROSSRANK_BACKEND", raising=False)
    log = tmp_path / "log"
    first = resolve_auto("a" * 64, "cpu", counting_probe(log), cache_dir=tmp_path, candidates=[])
    again = resolve_auto("a" * 64, "cpu", counting_probe(log), cache_dir=tmp_path, candidates=[])
    assert (first.source, again.source) == ("probe", "cache")
    assert again.backend == first.backend == "openvino"
    other = resolve_auto("b" * 64, "cpu", counting_probe(log, "torch"), cache_dir=tmp_path)
    assert other.source == "probe" and other.backend == "torch"
    assert log.read_text().count("probed") == 2
    # An unreadable decision file is probed again and replaced.
    path = tmp_path / "auto" / f"{decision_key('a' * 64, 'cpu')}.json"
    path.write_text("{not json")
    redone = resolve_auto("a" * 64, "cpu", counting_probe(log), cache_dir=tmp_path, candidates=[])
    assert redone.source == "probe" and log.read_text().count("probed") == 3
    assert json.loads(path.read_text())["backend"] == "openvino"


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from crossrank.runtimes.probe import Decision, Trial, resolve_auto

    fingerprint, cache, log = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def probe(candidates, key):
        with log.open("a") as f:
            f.write("probed\\n")
        time.sleep(1.0)  # long enough for the other process to arrive meanwhile
        return Decision(backend="openvino", key=key, trials=(Trial("torch", True, 1.0),))

    decision = resolve_auto(fingerprint, "cpu", probe, cache_dir=cache, candidates=["torch"])
    print(decision.backend, decision.source)
    """
)


def run_children(tmp_path: Path, fingerprint: str, n: int) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {k: v for k, v in os.environ.items() if k != "CROSSRANK_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                fingerprint,
                str(tmp_path / "cache"),
                str(tmp_path / "log"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


def test_decision_is_reused_by_a_second_process(tmp_path: Path) -> None:
    assert run_children(tmp_path, "c" * 64, 1) == ["openvino probe"]
    assert run_children(tmp_path, "c" * 64, 1) == ["openvino cache"]
    assert (tmp_path / "log").read_text().count("probed") == 1


def test_two_processes_probing_at_once_both_succeed(tmp_path: Path) -> None:
    outputs = run_children(tmp_path, "d" * 64, 2)
    assert sorted(outputs) == ["openvino cache", "openvino probe"]  # the lock made one wait
    assert (tmp_path / "log").read_text().count("probed") == 1
    files = list((tmp_path / "cache" / "auto").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["backend"] == "openvino"
    assert not list((tmp_path / "cache" / "auto").glob(".*.tmp"))


def test_probe_module_names_no_missing_extra() -> None:
    # Every extra named in the probe's and OpenVINO module's messages exists in pyproject.
    import re

    pyproject = (ROOT / "pyproject.toml").read_text()
    import crossrank.runtimes.openvino

    for module in (probe, crossrank.runtimes.openvino):
        for extra in re.findall(r"crossrank\[(\w[\w-]*)\]", Path(module.__file__).read_text()):
            assert re.search(rf"^{re.escape(extra)} = \[", pyproject, re.M), extra


def test_a_model_too_slow_for_the_full_probe_gets_the_small_one(
    tiny: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the reference's measured speed the full probe would exceed the budget: the timing
    case has 4 texts and the agreement 3 queries of 12 passages; the decision says so."""
    from crossrank.runtimes.probe import run

    encoder, net = tiny
    exact = torch_forward(net)
    rows: list[int] = []

    def build(backend: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
            if backend == "onnx":
                rows.append(len(arrays["input_ids"]))
            else:  # torch clearly slower: onnx is timed faster, so its agreement is checked
                time.sleep(0.05)
            return exact(arrays)

        return forward

    monkeypatch.setattr(run, "BUDGET_S", 0.0)
    decision = run_probe(build, ["torch", "onnx"], inputs=encoder)
    assert decision.small and "the small probe" in decision.summary()
    # onnx: a warm-up and 3 timed passes of 4 texts, then 3 agreement cases of 12 passages
    # (in batches of one padded width each).
    assert rows[:4] == [4] * 4
    assert sum(rows[4:]) == 3 * 12
    assert Decision.from_json(decision.to_json()).small
    monkeypatch.setattr(run, "BUDGET_S", 1e9)
    assert not run_probe(build, ["torch"], inputs=encoder).small
