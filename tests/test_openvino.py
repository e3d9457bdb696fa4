"""OpenVINO backends: scores against torch fp32, the conversion cache (content-keyed,
atomic, two processes at once), thread safety, and the missing-extra hint."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import build_tiny_model

from crossrank.families import load_family
from crossrank.families.source import resolve_source
from crossrank.runtimes import openvino as openvino_runtime
from crossrank.runtimes.cpu import cpu_class
from crossrank.runtimes.inputs import padded
from crossrank.runtimes.openvino import (
    export_openvino,
    make_openvino_forward,
    openvino_supports_bf16,
    require_openvino,
)
from crossrank.runtimes.probe import agreement, probe_cases

pytest.importorskip("openvino", reason='needs pip install "crossrank[openvino]"')

ROOT = Path(__file__).resolve().parents[1]
QUERY = "what is the effect of the drug on blood cells"
TEXTS = [
    "the drug increased blood cells in patients",
    "paris is the capital of france",
    "gene expression in cancer cells was measured after treatment",
    "a study of dose and risk in heart disease",
    "the cat and the dog",
    "protein levels in the brain decreased",
    "what is the capital of germany? berlin",
    "blood",
    "treatment effect on patients with cancer: a clinical study of the drug dose and "
    "its effect on blood cells, heart and brain",
    "cells cells cells cells",
    "an increase in risk",
    "who studies genes",
]


def family(model_dir: Path, max_length: int) -> tuple[Any, Any]:
    """The model's encoder and score net, as crossrank loads them."""
    loaded = load_family(
        resolve_source(str(model_dir)),
        hub_kwargs={"local_files_only": True},
        max_length=max_length,
    )
    return loaded.encoder, loaded.net


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    return family(tiny_model_dir, 128)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> np.ndarray:
    from crossrank import CrossEncoderScorer

    scorer = CrossEncoderScorer(tiny_model_dir, device="cpu", activation="raw")
    return np.array(scorer.score(QUERY, TEXTS))


def scores(path: Path, encoder: Any, precision: str = "f32") -> np.ndarray:
    forward, _, _ = make_openvino_forward(path, inference_precision=precision)
    batches = [padded(encoder, QUERY, TEXTS)]
    return np.concatenate([forward(b) for b in batches])


def test_fp32_equals_torch_and_is_cached(
    tiny: tuple[Any, Any], reference: np.ndarray, tmp_path: Path
) -> None:
    encoder, net = tiny
    path, converted = export_openvino(net, encoder, precision="fp32", cache_dir=tmp_path)
    assert converted and path.name == "model.xml" and path.with_suffix(".bin").is_file()
    np.testing.assert_allclose(scores(path, encoder), reference, atol=1e-4)
    again, converted = export_openvino(net, encoder, precision="fp32", cache_dir=tmp_path)
    assert (again, converted) == (path, False)
    # One pair at a time (no padding): the same scores as in a padded batch.
    forward, _, _ = make_openvino_forward(path)
    one = [forward([padded(encoder, QUERY, [t])][0])[0] for t in TEXTS]
    np.testing.assert_allclose(one, reference, atol=1e-4)
    assert not list(path.parent.parent.glob(".*.tmp"))  # no temporary folder left behind


def test_cache_is_keyed_by_model_content(
    tiny: tuple[Any, Any], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    encoder, net = tiny
    path, _ = export_openvino(net, encoder, precision="fp32", cache_dir=tmp_path)
    other_dir = build_tiny_model(tmp_path_factory.mktemp("other-ce"), seed=7)
    _, other = family(other_dir, 128)
    other_path, converted = export_openvino(other, encoder, precision="fp32", cache_dir=tmp_path)
    assert converted and other_path != path


@pytest.mark.skipif(not openvino_supports_bf16(), reason="this CPU has no native bf16")
def test_bf16_agrees_with_torch(
    tiny: tuple[Any, Any], reference: np.ndarray, tmp_path: Path
) -> None:
    encoder, net = tiny
    path, _ = export_openvino(net, encoder, precision="fp32", cache_dir=tmp_path)
    got = scores(path, encoder, "bf16")
    assert np.abs(got - reference).max() <= 0.05
    assert not np.array_equal(got, scores(path, encoder, "f32"))  # really ran in bf16


def test_int8_is_calibrated_and_keyed_by_its_calibration(
    tiny: tuple[Any, Any], reference: np.ndarray, tmp_path: Path
) -> None:
    encoder, net = tiny
    path, converted = export_openvino(net, encoder, precision="int8", cache_dir=tmp_path)
    assert converted and "-int8-" in path.parent.name
    got = scores(path, encoder)
    assert np.abs(got - reference).max() <= 0.1
    assert not np.allclose(got, reference, atol=1e-5)  # really quantized
    # The fp32 model it was quantized from is cached too, and reused.
    assert len(list(path.parent.parent.glob("openvino-*-fp32-*"))) == 1
    own = [(QUERY, t) for t in TEXTS]
    mine, converted = export_openvino(
        net, encoder, precision="int8", cache_dir=tmp_path, calibration=own
    )
    assert converted and mine != path
    cached, converted = export_openvino(
        net, encoder, precision="int8", cache_dir=tmp_path, calibration=own
    )
    assert (cached, converted) == (mine, False)


def test_the_scorer_passes_its_own_int8_calibration(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``int8_calibration=`` on the scorer reaches the export: another cached int8 model,
    and scores that agree with fp32 as the built-in sample's do."""
    from crossrank import CrossEncoderScorer

    own = [(QUERY, t) for t in TEXTS]
    default = CrossEncoderScorer(tiny_model_dir, backend="openvino-int8", onnx_cache_dir=tmp_path)
    mine = CrossEncoderScorer(
        tiny_model_dir,
        backend="openvino-int8",
        onnx_cache_dir=tmp_path,
        int8_calibration=[list(p) for p in own],  # lists, as a saved pipeline holds them
    )
    exact = CrossEncoderScorer(tiny_model_dir, backend="torch")
    reference = np.asarray(exact.score(QUERY, TEXTS))
    for scorer in (default, mine):
        assert np.abs(np.asarray(scorer.score(QUERY, TEXTS)) - reference).max() <= 0.1
    assert mine.int8_calibration == own
    assert default._model().export_path != mine._model().export_path
    assert len(list(tmp_path.glob("*/openvino-*-int8-*"))) == 2


@pytest.mark.parametrize("bad", ["query text", [], [("only one",)], [("q", "")], [("q", 3)], 5])
def test_int8_calibration_must_be_pairs_of_text(tiny_model_dir: Path, bad: object) -> None:
    from crossrank import CrossEncoderScorer

    with pytest.raises(TypeError, match=r"int8_calibration"):
        CrossEncoderScorer(tiny_model_dir, backend="openvino-int8", int8_calibration=bad)  # type: ignore[arg-type]


def test_streams_run_batches_together_and_keep_their_order(
    tiny: tuple[Any, Any], reference: np.ndarray, tmp_path: Path
) -> None:
    """Compiled for streams (``THROUGHPUT``; the default is one ``LATENCY`` stream, which
    gives None), the model runs several batches at once (StreamForward),
    each result in its batch's place, equal to one-at-a-time."""
    encoder, net = tiny
    path, _ = export_openvino(net, encoder, precision="fp32", cache_dir=tmp_path)
    forward, _, many = make_openvino_forward(path, threads=2, hint="THROUGHPUT")
    if many is None:
        pytest.skip("OpenVINO made one stream here")
    assert many.parallel >= 2
    assert make_openvino_forward(path)[2] is None  # LATENCY: one stream
    batches = [b for t in TEXTS for b in [padded(encoder, QUERY, [t])]]
    together = np.concatenate(many(batches))
    one_by_one = np.concatenate([forward(b) for b in batches])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(together, reference, atol=1e-4)


def test_bad_arguments_say_what_to_do(tiny: tuple[Any, Any], tmp_path: Path) -> None:
    encoder, net = tiny
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'int8', got 'fp16'"):
        export_openvino(net, encoder, precision="fp16", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="calibration must hold at least one"):
        export_openvino(net, encoder, precision="int8", cache_dir=tmp_path, calibration=[])


def test_forward_is_safe_from_several_threads(
    tiny: tuple[Any, Any], reference: np.ndarray, tmp_path: Path
) -> None:
    encoder, net = tiny
    path, _ = export_openvino(net, encoder, precision="fp32", cache_dir=tmp_path)
    forward, _, _ = make_openvino_forward(path, threads=1)
    batches = [padded(encoder, QUERY, TEXTS)]
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(np.concatenate([forward(b) for b in batches]))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20
    for got in results:
        np.testing.assert_allclose(got, reference, atol=1e-4)


_CHILD = textwrap.dedent(
    """
    import sys
    from crossrank.families import load_family
    from crossrank.families.source import resolve_source
    from crossrank.runtimes.openvino import export_openvino, make_openvino_forward

    model, cache = sys.argv[1], sys.argv[2]
    loaded = load_family(resolve_source(model), hub_kwargs={}, max_length=128)
    path, converted = export_openvino(
        loaded.net, loaded.encoder, precision="fp32", cache_dir=cache
    )
    make_openvino_forward(path)
    print(path)
    """
)


def test_two_processes_converting_at_once_both_succeed(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tiny_model_dir), str(tmp_path / "cache")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    paths = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        paths.append(out.strip().splitlines()[-1])
    assert paths[0] == paths[1] and Path(paths[0]).is_file()
    assert not list((tmp_path / "cache").rglob(".*.tmp"))


def test_missing_extra_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "nncf" else real(name, *a),
    )
    assert openvino_runtime.openvino_available("openvino")
    assert not openvino_runtime.openvino_available("openvino-int8")
    with pytest.raises(ImportError) as info:
        require_openvino("openvino-int8")
    message = str(info.value)
    assert "\n" not in message
    assert "backend='openvino-int8'" in message and "(nncf)" in message
    assert 'pip install "crossrank[openvino]"' in message
    require_openvino("openvino")  # fp32 needs only openvino


@pytest.mark.integration
def test_shared_model_int8_keeps_the_top(shared_model_dir: Path, tmp_path: Path) -> None:
    """The shared cross-encoder in int8 and bf16 against fp32 on the probe's cases."""
    encoder, net = family(shared_model_dir, 512)
    fp32, _ = export_openvino(net, encoder, precision="fp32", cache_dir=tmp_path)
    int8, _ = export_openvino(net, encoder, precision="int8", cache_dir=tmp_path)
    cases = [[padded(encoder, q, t)] for q, t in probe_cases()]

    def run(path: Path, precision: str = "f32") -> list[np.ndarray]:
        forward, _, _ = make_openvino_forward(path, inference_precision=precision)
        return [np.concatenate([forward(b) for b in batches]) for batches in cases]

    reference = run(fp32)
    agreed = agreement(reference, run(int8))
    # A floor on every CPU class (a broken quantization falls far below it), and the probe's
    # own check where this class was measured: on AVX2 with its recipe (7-bit weights, the
    # feed-forward outputs in float) it passes (docs/backends.md). Elsewhere the probe decides.
    assert agreed["ndcg10"] >= 0.97 and agreed["top10_overlap_mean"] >= 9.0, agreed
    if cpu_class() == "avx2":
        assert agreed["passed"], agreed
    if openvino_supports_bf16():
        assert agreement(reference, run(fp32, "bf16"))["passed"]
