"""The choices that depend on the CPU class, on CPUs a developer's machine may not have:
``crossrank.runtimes.cpu._cpuinfo`` is stubbed with the flags of an AVX512-VNNI Xeon without
native bf16 (most cloud CPUs), an AMX Xeon and an AVX2-only EPYC. The int8 recipe follows
the class (every matrix multiplication but the head's in int8 where int8 is the only fast
path; the feed-forward output projections kept in float where bf16 is native), the int8
export really quantizes what the recipe says, the candidates follow the flags, and the
probe's decision records the class and the recipe."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossrank.runtimes import cpu
from crossrank.runtimes.int8 import ALL_MATMULS, AVX2_SEVEN_BIT, FFN_OUTPUT_IN_FLOAT, int8_recipe

VNNI_ONLY = frozenset({"avx2", "avx512f", "avx512_vnni"})
AMX = frozenset(
    {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8",
     "amx_bf16"}
)  # fmt: skip
AVX2_ONLY = frozenset({"avx2"})


@pytest.fixture
def stub_cpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[frozenset[str]], None]]:
    """Make this machine report ``flags`` (and forget the cached OpenVINO bf16 answer)."""
    from crossrank.runtimes.openvino import openvino_supports_bf16

    def stub(flags: frozenset[str]) -> None:
        monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("Stub CPU", flags))
        openvino_supports_bf16.cache_clear()

    yield stub
    openvino_supports_bf16.cache_clear()


@pytest.mark.parametrize(
    ("flags", "cls", "recipe"),
    [
        (VNNI_ONLY, "vnni", ALL_MATMULS),
        (AMX, "native-bf16", FFN_OUTPUT_IN_FLOAT),
        (AVX2_ONLY, "avx2", AVX2_SEVEN_BIT),
        (frozenset(), "other", AVX2_SEVEN_BIT),
    ],
)
def test_the_int8_recipe_follows_the_cpu_class(
    stub_cpu: Callable[[frozenset[str]], None], flags: frozenset[str], cls: str, recipe: Any
) -> None:
    stub_cpu(flags)
    assert cpu.cpu_class() == cls and cls in cpu.CPU_CLASSES
    assert int8_recipe() is recipe
    assert int8_recipe(cls) is recipe
    assert cpu.cpu_has_vnni() == bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def test_candidates_follow_the_flags(stub_cpu: Callable[[frozenset[str]], None]) -> None:
    from crossrank.runtimes.probe import candidate_backends

    stub_cpu(VNNI_ONLY)
    found = candidate_backends("cpu")
    assert "torch-bf16" not in found and "openvino-bf16" not in found  # bf16 is emulated
    assert "openvino-int8" in found  # the only fast path of this class
    stub_cpu(AMX)
    assert "torch-bf16" in candidate_backends("cpu")


def _int8_inputs(model: Any) -> dict[str, bool]:
    """For each matrix multiplication by a weight, whether its input is quantized to int8."""
    quantized = {}
    for op in model.get_ops():
        if op.get_type_name() != "MatMul":
            continue
        name = op.get_friendly_name()
        if not re.search(r"(dense|query|key|value|classifier)", name):
            continue
        quantized[name] = op.input(0).get_source_output().get_node().get_type_name() == (
            "FakeQuantize"
        )
    return quantized


def test_each_class_quantizes_what_its_recipe_says(
    stub_cpu: Callable[[frozenset[str]], None], tiny_model_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("nncf")
    import openvino as ov

    from crossrank.families import load_family
    from crossrank.families.source import resolve_source
    from crossrank.runtimes.openvino import export_openvino

    family = load_family(
        resolve_source(str(tiny_model_dir)),
        hub_kwargs={"local_files_only": True},
        max_length=None,
    )
    paths = {}
    for flags in (VNNI_ONLY, AMX, AVX2_ONLY):
        stub_cpu(flags)
        paths[cpu.cpu_class()], _ = export_openvino(
            family.net, family.encoder, precision="int8", cache_dir=tmp_path
        )
    assert len(set(paths.values())) == 3  # one cached file per recipe
    assert "all-matmuls" in str(paths["vnni"]) and "ffn-output-in-float" in str(
        paths["native-bf16"]
    )
    assert "ffn-output-in-float-7bit" in str(paths["avx2"])

    def ffn_output(name: str) -> bool:
        return bool(re.search(r"layer\.\d+\.output\.dense", name))

    for cls, path in paths.items():
        inputs = _int8_inputs(ov.Core().read_model(path))
        assert len(inputs) == 2 * 6 + 2  # 2 layers x (q, k, v, out, ffn in, ffn out) + 2
        head = [n for n in inputs if "classifier" in n]
        assert head and not any(inputs[n] for n in head)  # the head stays float everywhere
        rest = {n: q for n, q in inputs.items() if n not in head}
        if cls == "vnni":
            assert all(rest.values()), rest  # every other matrix multiplication is int8
        else:
            assert all(q != ffn_output(n) for n, q in rest.items()), rest
        # Without VNNI the weights are 7-bit (NNCF's overflow fix): no vpmaddubsw saturation.
        seven_bit = _seven_bit_weights(ov.Core().read_model(path))
        if cls == "avx2":
            assert seven_bit >= 2 * 4, seven_bit  # q, k, v, out and ffn in of both layers
        else:
            assert seven_bit == 0  # NNCF's default: 8-bit weights (first layer aside)


def _seven_bit_weights(model: Any) -> int:
    """How many int8 weight constants of ``model`` stay within [-64, 64] (7-bit)."""
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "i8":
            count += int(np.abs(op.get_data().astype(np.int32)).max() <= 64)
    return count


def test_the_probes_decision_records_the_class_and_the_recipe(
    stub_cpu: Callable[[frozenset[str]], None], tiny_model_dir: Path
) -> None:
    import torch

    from crossrank.families import load_family
    from crossrank.families.source import resolve_source
    from crossrank.runtimes.probe import Decision, run_probe
    from crossrank.runtimes.pytorch import make_torch_forward

    family = load_family(
        resolve_source(str(tiny_model_dir)), hub_kwargs={"local_files_only": True}, max_length=None
    )
    forward, _ = make_torch_forward(family.net, torch.device("cpu"))
    stub_cpu(VNNI_ONLY)
    decision = run_probe(lambda backend: forward, ["torch"], inputs=family.encoder)
    assert (decision.cpu_class, decision.int8_recipe) == ("vnni", "all-matmuls")
    assert "cpu class vnni; int8 recipe all-matmuls" in decision.summary()
    again = Decision.from_json(decision.to_json())
    assert (again.cpu_class, again.int8_recipe) == ("vnni", "all-matmuls")
    assert "flags: avx2 avx512f avx512_vnni" in decision.cpu
