"""What ``openvino-int8`` quantizes on each CPU class: the int8 recipe.

NNCF's transformer preset (``nncf.quantize(model_type=TRANSFORMER)``) gives every matrix
multiplication int8 weights and activations, the query and key inputs of attention
included (so ``Q K^T`` runs in int8; attention's softmax and its product with the values
stay in float), applies SmoothQuant (alpha 0.95: activation outliers moved into the
weights' per-channel scales) and keeps softmax, layer norms, GELU and additions in float.
On top of that, a recipe names the layers kept in float (:attr:`Int8Recipe.float_layers`,
regular expressions over OpenVINO node names; patterns that match nothing are ignored):

- **``native-bf16``** CPUs (AVX512-BF16 or AMX), :data:`FFN_OUTPUT_IN_FLOAT`: the relevance
  head and each encoder layer's feed-forward output projection, whose input (after GELU)
  has the widest activation range. Float layers run in bf16 there, nearly as fast as
  int8, so the most sensitive layer can stay out of int8: on the shared model this raised
  the NDCG@10 of int8's order against fp32's from 0.960 to 0.989 on the bench case, and the
  SciFact guard passed (docs/backends.md).
- **``vnni``** CPUs (AVX512-VNNI or AVX-VNNI without native bf16, the usual cloud CPU),
  :data:`ALL_MATMULS`: only the head stays in float. Float layers run in fp32 there,
  several times slower than int8 dot products, so a projection left in float is the
  slowest part of the layer; every matrix multiplication but the head's is int8, and the
  probe's agreement check and the SciFact guard (docs/backends.md) decide whether it is
  accurate enough for a given model.
- **``avx2``** CPUs (and ``other``): no int8 dot-product instruction. Their int8 kernels
  (``vpmaddubsw``) add pairs of u8 x s8 products into 16 bits, which saturates; NNCF's
  overflow fix (``OverflowFix.ENABLE``: 7-bit weights in every layer, NNCF's answer for
  exactly these CPUs) avoids it, and :data:`AVX2_SEVEN_BIT` keeps the feed-forward output
  projections in float as well. Measured on an AVX2-only EPYC with the shared model on the
  probe's cases: NNCF's default (first layer only) fails the agreement check with either
  layer choice (top-10 overlap down to 8 of 10); the overflow fix with the feed-forward
  outputs in float passes it (NDCG@10 of int8's order against fp32's 0.989, top-10 overlap
  9-10 of 10).

The probe builds ``auto``'s int8 candidate with this machine's recipe
(:func:`int8_recipe`); the recipe is part of the export's cache key, so a cache shared
between CPU classes holds one file per recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from crossrank.runtimes import cpu

__all__ = ["ALL_MATMULS", "AVX2_SEVEN_BIT", "FFN_OUTPUT_IN_FLOAT", "Int8Recipe", "int8_recipe"]

_HEAD: tuple[str, ...] = (r".*classifier.*",)

#: Feed-forward output projections: ``encoder.layer.N.output.dense`` in BERT, RoBERTa,
#: XLM-R, ELECTRA and DeBERTa; ``mlp.Wo`` in ModernBERT.
_FFN_OUTPUT: tuple[str, ...] = (r".*layer\.\d+\.output\.dense.*", r".*layers\.\d+\.mlp\.Wo.*")


@dataclass(frozen=True)
class Int8Recipe:
    """Which layers of an int8 model stay in float.

    Attributes:
        name: A short name, recorded in the probe's decision and the export's cache key.
        float_layers: Regular expressions of OpenVINO node names kept in float (NNCF's
            ignored scope), besides what NNCF's transformer preset keeps.
        smooth_quant: NNCF's SmoothQuant alpha for matrix multiplications.
        overflow_fix: NNCF's ``OverflowFix`` value: ``"first_layer_only"`` (NNCF's default)
            or ``"enable"`` (7-bit weights everywhere, for CPUs without VNNI).
    """

    name: str
    float_layers: tuple[str, ...]
    smooth_quant: float = 0.95
    overflow_fix: str = "first_layer_only"


#: The recipe of CPUs with native bf16: the head and the feed-forward output projections
#: in float (run in bf16).
FFN_OUTPUT_IN_FLOAT = Int8Recipe("ffn-output-in-float", _HEAD + _FFN_OUTPUT)

#: The recipe of CPUs without native bf16: every matrix multiplication in int8 but the
#: head's.
ALL_MATMULS = Int8Recipe("all-matmuls", _HEAD)


#: The recipe of CPUs without int8 dot products (AVX2): 7-bit weights (no saturation in
#: ``vpmaddubsw``), the head and the feed-forward output projections in float.
AVX2_SEVEN_BIT = Int8Recipe("ffn-output-in-float-7bit", _HEAD + _FFN_OUTPUT, overflow_fix="enable")


def int8_recipe(cpu_class: str | None = None) -> Int8Recipe:
    """The recipe for ``cpu_class`` (default: this CPU's,
    :func:`crossrank.runtimes.cpu.cpu_class`)."""
    cls = cpu_class if cpu_class is not None else cpu.cpu_class()
    if cls == "native-bf16":
        return FFN_OUTPUT_IN_FLOAT
    return ALL_MATMULS if cls == "vnni" else AVX2_SEVEN_BIT
