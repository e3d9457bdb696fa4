"""The scorer's options as flags, declared once for every command that builds a
:class:`crossrank.CrossEncoderScorer` (model, backend, device, batching, max length, activation
and calibration, fusion, long documents, loading): :func:`add_scorer_options` declares them,
:func:`scorer_kwargs` turns the parsed flags back into the scorer's keyword arguments.
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from crossrank._cli.argtypes import (
    calibration_file,
    fraction,
    json_object,
    positive_int,
    positive_ms,
)
from crossrank.runtimes.backends import BACKENDS

__all__ = ["SCORER_FLAGS", "add_scorer_options", "scorer_defaults", "scorer_kwargs"]

#: The :class:`crossrank.CrossEncoderScorer` keyword arguments :func:`add_scorer_options`
#: declares flags for (``--batch-size`` for ``batch_size`` ...), in help order.
SCORER_FLAGS: tuple[str, ...] = (
    "model",
    "backend",
    "device",
    "batch_size",
    "max_tokens_per_batch",
    "deadline_ms",
    "max_length",
    "family",
    "instruction",
    "prompt_name",
    "template",
    "true_token",
    "false_token",
    "activation",
    "calibration",
    "fusion",
    "fusion_weight",
    "fusion_normalization",
    "long_documents",
    "max_windows",
    "window_stride",
    "aggregation",
    "top_windows",
    "onnx_cache_dir",
    "int8_calibration",
    "cache_dir",
    "revision",
    "local_files_only",
    "trust_remote_code",
    "model_kwargs",
    "tokenizer_kwargs",
    "config_kwargs",
)


def scorer_defaults() -> dict[str, Any]:
    """The scorer's default for each option in ``SCORER_FLAGS``."""
    from crossrank.scorer import CrossEncoderScorer

    params = inspect.signature(CrossEncoderScorer.__init__).parameters
    return {name: p.default for name, p in params.items() if name in SCORER_FLAGS}


def add_scorer_options(
    parser: argparse.ArgumentParser,
    *,
    compare: bool = False,
    activation: bool = True,
    fusion: bool = True,
) -> argparse.ArgumentParser:
    """Declare the :class:`crossrank.CrossEncoderScorer` options as flags on ``parser``.

    Each flag is the option's name with dashes (``--batch-size``), with the scorer's own
    default, and is documented in the scorer's docstring. The flags are in one argument
    group, "scorer options". Read them back with :func:`scorer_kwargs`.

    Args:
        parser: The (sub)parser of a command that builds a scorer.
        compare: ``--model``, ``--backend`` and ``--deadline-ms`` may be repeated, to
            compare several (their values are then lists, or None when not given).
        activation: Declare ``--activation`` and ``--calibration`` (a command that reads
            raw logits or only ranks, such as ``eval`` and ``calibrate``, leaves them out).
        fusion: Declare ``--fusion``, ``--fusion-weight`` and ``--fusion-normalization``
            (``calibrate``, which fits the model's own logits, leaves them out).

    Returns:
        ``parser``.
    """
    defaults = scorer_defaults()
    group = parser.add_argument_group("scorer options", "see crossrank.CrossEncoderScorer")
    repeat: dict[str, Any] = {"action": "append"} if compare else {"default": None}
    group.add_argument(
        "--model",
        "-m",
        metavar="M",
        help="cross-encoder id or folder"
        + ("; repeat to compare several" if compare else "")
        + " (default: $CROSSRANK_MODEL, else cross-encoder/ms-marco-MiniLM-L6-v2)",
        **repeat,
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        metavar="B",
        help=f"inference backend{', repeat to compare' if compare else ''} "
        f"({', '.join(BACKENDS)}; default: {defaults['backend']})",
        **({"action": "append"} if compare else {"default": defaults["backend"]}),
    )
    group.add_argument(
        "--deadline-ms",
        type=positive_ms,
        metavar="MS",
        help="time budget of each rerank call: candidates are scored in the order given "
        "until it is spent, the rest follow unscored"
        + ("; repeat to compare several (a row each)" if compare else " (default: none)"),
        **({"action": "append"} if compare else {"default": defaults["deadline_ms"]}),
    )
    for name, help_text, kwargs in _option_specs(activation, fusion):
        kwargs.setdefault("default", defaults[name])
        group.add_argument("--" + name.replace("_", "-"), help=help_text, **kwargs)
    return parser


def _option_specs(activation: bool, fusion: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(scorer option, help, add_argument keywords) for every flag but --model/--backend."""
    from crossrank.calibration import ACTIVATIONS
    from crossrank.families.detect import FAMILIES
    from crossrank.fusion import FUSIONS, NORMALIZATIONS
    from crossrank.windows import AGGREGATIONS

    def count() -> dict[str, Any]:
        return {"type": positive_int, "metavar": "N"}

    def path(metavar: str) -> dict[str, Any]:
        return {"metavar": metavar}

    def switch() -> dict[str, Any]:
        return {"action": "store_true"}

    def json_kwargs() -> dict[str, Any]:
        return {"type": json_object('{"torch_dtype": "bfloat16"}'), "metavar": "JSON"}

    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("device", "cpu, cuda, cuda:1, mps (default: auto)", {}),
        ("batch_size", "most pairs per forward pass (default: %(default)s)", count()),
        (
            "max_tokens_per_batch",
            "most padded tokens per forward pass (default: %(default)s)",
            count(),
        ),
        ("max_length", "tokens per pair the model reads (default: the model's limit)", count()),
        (
            "family",
            "how the checkpoint is read (default: detected from its files)",
            {"choices": FAMILIES, "metavar": "F"},
        ),
        (
            "instruction",
            "task instruction (a sentence-transformers prompt; '' for none; default: the "
            "model's saved default prompt, else its template's default)",
            path("TEXT"),
        ),
        ("prompt_name", "one of the prompts the checkpoint saved", path("NAME")),
        (
            "template",
            "format string of the model's input, with {query} and {document} (and "
            "{instruction}), for a causal LM without its own",
            path("TEXT"),
        ),
        ("true_token", "causal LM without a LogitScore: the token scored (e.g. yes)", path("T")),
        ("false_token", "with --true-token: the token subtracted (e.g. no)", path("T")),
    ]
    if activation:
        specs += [
            (
                "activation",
                "how logits become scores (default: %(default)s)",
                {"choices": ACTIVATIONS},
            ),
            (
                "calibration",
                "with --activation calibrated: a file from `crossrank calibrate` "
                "(default: the one in the model's folder)",
                path("FILE"),
            ),
        ]
    if fusion:
        specs += [
            (
                "fusion",
                "mix the cross-encoder's score with each candidate's first-stage score, per "
                "query: linear (weighted sum of per-query normalised scores) or rrf "
                "(weighted reciprocal rank fusion) (default: off)",
                {"choices": FUSIONS},
            ),
            (
                "fusion_weight",
                "the cross-encoder's share of the fused score, in [0, 1] "
                "(default: %(default)s)",
                {"type": fraction, "metavar": "W"},
            ),
            (
                "fusion_normalization",
                "how linear fusion puts both scores on one scale per query "
                "(default: %(default)s)",
                {"choices": NORMALIZATIONS},
            ),
        ]
    specs += [
        (
            "long_documents",
            "cut long texts at max length (default) or score them in overlapping windows",
            {"choices": ("truncate", "chunk")},
        ),
        ("max_windows", "chunk mode: most windows per text (default: %(default)s)", count()),
        (
            "window_stride",
            "chunk mode: tokens shared by consecutive windows (default: a quarter of a window)",
            count(),
        ),
        (
            "aggregation",
            "chunk mode: how window scores become the text's (default: %(default)s)",
            {"choices": AGGREGATIONS},
        ),
        ("top_windows", "chunk mode: windows averaged by mean-top (default: %(default)s)", count()),
        (
            "onnx_cache_dir",
            "where exported ONNX files are cached (default: "
            "$CROSSRANK_CACHE/onnx, else ~/.cache/crossrank/onnx)",
            path("DIR"),
        ),
        (
            "int8_calibration",
            'JSONL file of {"query": ..., "text": ...} pairs from your data that calibrate '
            "openvino-int8 (default: a built-in sample)",
            {"type": calibration_file, "metavar": "FILE"},
        ),
        (
            "cache_dir",
            "folder for downloaded models (default: the Hugging Face cache)",
            path("DIR"),
        ),
        ("revision", "model revision (branch, tag or commit) on the Hub", path("REV")),
        ("local_files_only", "never contact the Hugging Face Hub", switch()),
        ("trust_remote_code", "allow models that ship their own modelling code", switch()),
    ]
    specs += [
        (name, f"JSON object of keyword arguments for {target} from_pretrained", json_kwargs())
        for name, target in (
            ("model_kwargs", "the model's"),
            ("tokenizer_kwargs", "the tokenizer's"),
            ("config_kwargs", "the config's"),
        )
    ]
    return specs


def scorer_kwargs(args: argparse.Namespace, *, changed_only: bool = False) -> dict[str, Any]:
    """The :class:`crossrank.CrossEncoderScorer` keyword arguments in parsed flags.

    Every option :func:`add_scorer_options` declared on the command's parser is returned
    (with its default when the flag was not given), so ``CrossEncoderScorer(**kwargs)``
    builds the scorer the flags describe. With ``compare=True``, ``model`` and ``backend``
    are lists (or None); the caller picks one of each.

    Args:
        args: The parsed flags.
        changed_only: Return only the options whose value differs from the scorer's
            default.

    Example:
        >>> parser = add_scorer_options(argparse.ArgumentParser())
        >>> scorer_kwargs(parser.parse_args(["-m", "my/model", "--batch-size", "8"]))["batch_size"]
        8
    """
    values = vars(args)
    kwargs = {name: values[name] for name in SCORER_FLAGS if name in values}
    if changed_only:
        defaults = scorer_defaults()
        kwargs = {k: v for k, v in kwargs.items() if v != defaults[k]}
    return kwargs

