"""Every reranker family on every backend scores as sentence-transformers 6.x does.

For each family of the kit (tests/family_kit.py: tiny checkpoints saved as their Hub
checkpoints are, and sentence-transformers' raw scores and model inputs for 8 pairs of mixed
length, some longer than ``max_length``), crossrank's raw scores equal the reference within
1e-4 on torch and 1e-3 on the fp32 exports (ONNX, OpenVINO), in the same order, and for
templated families the model input crossrank builds, decoded, is the reference's.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
from family_kit import FAMILIES, PAIRS, PARITY_FAMILIES, QUERY

from crossrank import CrossEncoderScorer

DOCUMENTS = [d for _, d in PAIRS]
assert all(q == QUERY for q, _ in PAIRS)

_BACKENDS = {
    "torch": 1e-4,
    "onnx": 1e-3,
    "openvino": 1e-3,
}
_NEEDS = {"onnx": "onnxruntime", "openvino": "openvino"}


def scorer_for(family_kit: Any, name: str, backend: str = "torch", **kw: Any) -> CrossEncoderScorer:
    family = FAMILIES[name]
    options: dict[str, Any] = {"backend": backend, "activation": "raw", "device": "cpu"}
    if family.st_kwargs.get("trust_remote_code"):
        options["trust_remote_code"] = True
    if family.st_kwargs.get("max_length"):
        options["max_length"] = family.st_kwargs["max_length"]
    return CrossEncoderScorer(family_kit.path(name), **options, **kw)


def _relevance(scores: list[Any]) -> np.ndarray:
    """sentence-transformers' raw scores as one relevance per pair (two labels: the log-odds)."""
    arr = np.asarray(scores, dtype=np.float64)
    return arr[:, 1] - arr[:, 0] if arr.ndim == 2 else arr.reshape(-1)


@pytest.mark.parametrize("backend", list(_BACKENDS))
@pytest.mark.parametrize("name", PARITY_FAMILIES)
def test_raw_scores_equal_sentence_transformers(family_kit: Any, name: str, backend: str) -> None:
    if backend in _NEEDS and importlib.util.find_spec(_NEEDS[backend]) is None:
        pytest.skip(f"needs {_NEEDS[backend]}")
    reference = family_kit.reference(name)
    expected = _relevance(reference.scores)
    got = np.asarray(scorer_for(family_kit, name, backend).score(QUERY, DOCUMENTS))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, atol=_BACKENDS[backend], rtol=0)
    assert list(np.argsort(-got, kind="stable")) == list(np.argsort(-expected, kind="stable"))


@pytest.mark.parametrize("name", PARITY_FAMILIES)
def test_the_model_reads_what_sentence_transformers_builds(family_kit: Any, name: str) -> None:
    reference = family_kit.reference(name)
    scorer = scorer_for(family_kit, name)
    scorer.warm_up()
    encoder = scorer._model().encoder
    pairs = zip(PAIRS, reference.inputs, reference.input_ids, strict=True)
    for (query, text), expected, ids in pairs:
        row = encoder.encode(query, [text]).features["input_ids"][0]
        assert row == ids, (text[:40], encoder.decode(query, text), expected)
    if FAMILIES[name].suffix is not None:  # a template's closing part, truncated rows included
        for query, text in PAIRS:
            assert encoder.decode(query, text).endswith(FAMILIES[name].suffix)
