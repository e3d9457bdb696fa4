"""The leaf modules the scorer coordinates: padding, window rows, strides, relevance from
logits, activation and calibration resolution, option checks; each module's ``__all__``; and
the import graph of the command line (no circle, nothing below importing the command)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from crossrank.batching import pad_batch
from crossrank.calibration import (
    CALIBRATION_FILE,
    Calibration,
    activate,
    resolve_calibration,
    save_calibration,
)
from crossrank.families.net import relevance
from crossrank.families.source import reserved_load_kwargs, resolve_source
from crossrank.validation import check_load_kwargs
from crossrank.windows import pick_rows, resolve_stride


def test_pad_batch_pads_right_or_left_with_the_pad_id() -> None:
    rows = {"input_ids": [[5, 6, 7], [8]], "attention_mask": [[1, 1, 1], [1]]}
    right = pad_batch(rows, pad_token_id=9)
    np.testing.assert_array_equal(right["input_ids"], [[5, 6, 7], [8, 9, 9]])
    np.testing.assert_array_equal(right["attention_mask"], [[1, 1, 1], [1, 0, 0]])
    left = pad_batch(rows, pad_token_id=9, left=True)
    np.testing.assert_array_equal(left["input_ids"], [[5, 6, 7], [9, 9, 8]])
    np.testing.assert_array_equal(left["attention_mask"], [[1, 1, 1], [0, 0, 1]])
    assert right["input_ids"].dtype == np.int64
    assert rows["input_ids"] == [[5, 6, 7], [8]]  # the caller's rows are unchanged


def test_pick_rows_keeps_each_texts_first_rows_and_reports_the_rest() -> None:
    # Text 0 has 3 windows, text 1 has 1, text 2 has 2.
    sample_of_row = [0, 0, 0, 1, 2, 2]
    first = pick_rows(sample_of_row, 3, per_text=1)
    assert first.rows == [[0], [3], [4]]
    assert first.chosen == [0, 3, 4]
    assert first.truncated == [True, False, True]
    assert first.windows == [1, 1, 1]
    two = pick_rows(sample_of_row, 3, per_text=2)
    assert two.rows == [[0, 1], [3], [4, 5]]
    assert two.available == [3, 1, 2]
    assert two.truncated == [True, False, False]
    assert two.windows == [2, 1, 2]


def test_pick_rows_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="per_text must be >= 1, got 0"):
        pick_rows([0], 1, per_text=0)
    with pytest.raises(ValueError, match="row 1 belongs to text 2, but there are 2 texts"):
        pick_rows([0, 2], 2, per_text=1)


def test_resolve_stride_defaults_to_a_quarter_and_stays_below_the_room() -> None:
    assert resolve_stride(100, None) == 25
    assert resolve_stride(100, 10) == 10
    assert resolve_stride(100, 500) == 99  # each window moves by at least one token
    assert resolve_stride(0, None) == 0
    assert resolve_stride(-5, 3) == 0


def test_relevance_of_one_and_two_logit_outputs() -> None:
    one = relevance(torch.tensor([[1.5], [-2.0]], dtype=torch.bfloat16), 1)
    assert one.tolist() == [1.5, -2.0]
    assert one.dtype == torch.float32
    two = relevance(torch.tensor([[0.5, 2.0], [1.0, -1.0]]), 2)
    np.testing.assert_allclose(two.numpy(), [1.5, -2.0])
    with pytest.raises(ValueError, match="num_labels 1 or 2, got shape"):
        relevance(torch.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match=r"got shape \(2, 1\) and num_labels=2"):
        relevance(torch.zeros((2, 1)), 2)


def test_activate_each_activation() -> None:
    raw = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(activate(raw, "raw"), raw)
    np.testing.assert_allclose(activate(raw, "sigmoid"), 1 / (1 + np.exp(-raw)))
    cal = Calibration("platt", 2.0, -1.0)
    np.testing.assert_allclose(activate(raw, "calibrated", cal), 1 / (1 + np.exp(-(2 * raw - 1))))
    with pytest.raises(ValueError, match="activation='calibrated' needs a Calibration"):
        activate(raw, "calibrated")
    with pytest.raises(ValueError, match="activation must be one of"):
        activate(raw, "softmax")


def test_resolve_calibration(tmp_path: Path) -> None:
    assert resolve_calibration("sigmoid", None, "m") is None
    with pytest.raises(ValueError, match="only used with activation='calibrated'"):
        resolve_calibration("raw", tmp_path, "m")
    with pytest.raises(ValueError, match="activation must be one of"):
        resolve_calibration("softmax", None, "m")
    with pytest.raises(ValueError, match="needs a calibration: pass calibration=FILE"):
        resolve_calibration("calibrated", None, str(tmp_path))
    with pytest.raises(TypeError, match="calibration must be a file path, a folder or a"):
        resolve_calibration("calibrated", 3, "m")  # type: ignore[arg-type]
    fit = Calibration("temperature", 0.5)
    assert resolve_calibration("calibrated", fit, "m") is fit
    save_calibration(tmp_path / CALIBRATION_FILE, {"temperature": fit}, method="temperature")
    found = resolve_calibration("calibrated", None, str(tmp_path))  # beside the model
    assert found is not None and found.scale == 0.5


def test_check_load_kwargs() -> None:
    assert check_load_kwargs(None, name="x") is None
    given = {"a": 1}
    copy = check_load_kwargs(given, name="x")
    assert copy == given and copy is not given
    with pytest.raises(TypeError, match="x must be a dict of keyword arguments"):
        check_load_kwargs(["a"], name="x")
    with pytest.raises(ValueError, match="x must not set 'b', 'c'"):
        check_load_kwargs({"a": 1, "b": 2, "c": 3}, name="x", reserved={"b": "no", "c": "no"})
    assert set(reserved_load_kwargs("tokenizer_kwargs")) == {
        "token", "cache_dir", "revision", "local_files_only", "trust_remote_code"
    }
    assert {"config", "output_loading_info"} <= set(reserved_load_kwargs("model_kwargs"))
    with pytest.raises(ValueError, match="option must be 'model_kwargs'"):
        reserved_load_kwargs("kwargs")


def test_resolve_source(tiny_model_dir: Path) -> None:
    local = resolve_source(str(tiny_model_dir))
    assert local.is_local and local.folder == tiny_model_dir
    hub = resolve_source("org/model")
    assert not hub.is_local and hub.path == "org/model" and hub.folder is None


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("crossrank.batching", ["WIDTH_STEP", "pad_batch", "pad_rows", "padded_width",
                                "plan_batches", "run_batches", "run_pass"]),
        ("crossrank.truncation", ["TruncationLog"]),
        ("crossrank.windows", ["AGGREGATIONS", "Aggregation", "WindowRows", "aggregate",
                               "pick_rows", "resolve_stride"]),
        ("crossrank.loading", ["HUB_OPTIONS", "LoadedModel", "ModelSource", "load_model",
                               "model_family", "reserved_load_kwargs", "resolve_device",
                               "resolve_source"]),
        ("crossrank.families", ["Encoder", "FAMILIES", "FamilyOptions", "LoadedFamily",
                                "PairEncoder", "PairRows", "ScoreNet", "TemplateEncoder",
                                "check_family", "load_family"]),
        ("crossrank.families.source", ["HUB_OPTIONS", "ModelSource", "export_key_options",
                                       "from_pretrained", "read_json", "read_text",
                                       "reserved_load_kwargs", "resolve_source", "source_file",
                                       "torch_dtype_names"]),
        ("crossrank.families.detect", ["Detected", "FAMILIES", "check_family", "detect"]),
        ("crossrank.families.checkpoint", ["Checkpoint", "MODULE_KINDS", "Module",
                                           "read_checkpoint"]),
        ("crossrank.families.causal", ["CausalLogitNet", "DecoderHeadNet", "backbone_of",
                                       "check_head", "token_id"]),
        ("crossrank.families.known", ["KNOWN", "KnownReranker", "known_by_architecture"]),
        ("crossrank.families.templates", ["ChatTemplate", "FormatTemplate", "Template",
                                          "check_format_template"]),
        ("crossrank.families.prompts", ["Prompts", "check_instruction"]),
        ("crossrank.families.st_modules", ["ModulePipelineNet", "build_modules"]),
        ("crossrank.families.loader", ["FamilyOptions", "LoadedFamily", "detect_family",
                                       "load_family"]),
        ("crossrank.runtimes.guard", ["ForwardMany", "GuardedMany", "guard_forward",
                                      "hint_for"]),
        ("crossrank.families.limits", ["position_limit", "resolve_max_length"]),
        ("crossrank.families.net", ["ScoreNet", "relevance"]),
        ("crossrank.families.seq_cls", ["SeqClsNet", "check_num_labels",
                                        "check_relevance_head", "is_seq_cls"]),
        ("crossrank.families.inputs", ["Encoder", "PairEncoder", "PairRows",
                                       "TemplateEncoder"]),
        ("crossrank.runtimes", ["Forward", "Runtime", "build_runtime"]),
        ("crossrank.runtimes.cpu", ["CPU_CLASSES", "RELEVANT_FLAGS", "cpu_class", "cpu_flags",
                                    "cpu_has_native_bf16", "cpu_has_vnni", "cpu_summary",
                                    "usable_cores"]),
        ("crossrank.runtimes.int8", ["ALL_MATMULS", "AVX2_SEVEN_BIT", "FFN_OUTPUT_IN_FLOAT",
                                     "Int8Recipe", "int8_recipe"]),
        ("crossrank.runtimes.cache", ["atomic_target", "cache_root", "folder_in_place",
                                      "model_fingerprint"]),
        ("crossrank.runtimes.devices", ["available_devices", "check_device",
                                        "resolve_device"]),
        ("crossrank.runtimes.inputs", ["Inputs", "example_batch", "padded"]),
        ("crossrank.runtimes.pytorch", ["DTYPES", "make_torch_forward"]),
        ("crossrank.validation", ["check_deadline_ms", "check_fraction", "check_load_kwargs",
                                  "check_positive_int",
                                  "check_query", "check_relative_cut", "check_score_threshold",
                                  "check_texts", "check_top_k"]),
        ("crossrank.runtimes.backends", ["BACKENDS", "Backend", "check_backend",
                                         "choose_backend", "onnx_available"]),
        ("crossrank.runtimes.onnx", ["export_onnx", "make_onnx_forward"]),
        ("crossrank.calibration", ["ACTIVATIONS", "CALIBRATION_FILE", "METHODS", "Activation",
                                   "Calibration", "activate", "brier_score",
                                   "expected_calibration_error", "fit_platt", "fit_temperature",
                                   "load_calibration", "log_loss", "resolve_calibration",
                                   "save_calibration"]),
        ("crossrank.scorer", ["DEFAULT_MODEL", "CrossEncoderScorer", "Reranked", "ScoreDetails"]),
        ("crossrank.selection", ["Hit", "is_blank", "passage_span", "select", "split_blank"]),
        ("crossrank.fusion", ["FUSIONS", "NORMALIZATIONS", "RRF_K", "Fusion", "FusionMethod",
                              "Normalization", "check_first_stage_scores", "first_stage_of",
                              "fuse", "normalize", "reciprocal_ranks", "resolve_fusion"]),
        ("crossrank.cli", ["SCORER_FLAGS", "add_scorer_options", "main", "positive_int",
                           "scorer_kwargs"]),
        ("crossrank.cli.command", ["build_parser", "main"]),
        ("crossrank.cli.rerank", ["register", "run_rerank"]),
        ("crossrank._cli.argtypes", ["calibration_file", "fraction", "json_object",
                                     "open_fraction", "positive_int", "positive_ms"]),
        ("crossrank._cli.options", ["SCORER_FLAGS", "add_scorer_options", "scorer_defaults",
                                    "scorer_kwargs"]),
        ("crossrank._cli.parser", ["CommandParser", "HelpFormatter", "add_subcommand",
                                   "command_parser"]),
        ("crossrank._cli.candidates", ["read_candidates", "write_jsonl"]),
        ("crossrank.eval.metrics", ["CUTOFF", "Run", "evaluate", "mrr_at_k", "ndcg_at_k",
                                    "ranked_ids", "recall_at_k", "row_metrics"]),
        ("crossrank.eval.first_stage", ["BM25Retriever", "DenseRetriever", "dense_model",
                                        "first_stage_run"]),
        ("crossrank.eval.report", ["align_table", "cell", "machine_info", "write_json"]),
        ("crossrank.eval.progress", ["hf_progress_bars", "progress_bar",
                                     "quiet_truncation_warnings"]),
        ("crossrank.eval.harness", ["CUTOFF", "DEFAULT_KS", "DEFAULT_LATENCY_QUERIES",
                                    "check_scorer_options", "evaluate_models", "parse_ks"]),
        ("crossrank.eval.fused_rows", ["FusionPlan", "tune_set"]),
        ("crossrank.eval.harness_report", ["format_eval_table"]),
        ("crossrank.eval.harness_cli", ["add_eval_arguments", "register", "run_eval"]),
        ("crossrank.eval.bench", ["PEER_PYTHON_ENV", "REFERENCE", "VARIANTS", "BenchConfig",
                                  "PeerWorker", "PeerWorkerError", "ScorerLike", "Variant",
                                  "benchmark", "padding_waste", "register_variant",
                                  "resolve_peer_python", "synthetic_texts"]),
        ("crossrank.eval.bench_variants", ["BUILTIN_VARIANTS", "REFERENCE", "BenchConfig",
                                           "ScorerLike", "Variant"]),
        ("crossrank.eval.bench_texts", ["SYNTHETIC_QUERY", "corpus_texts", "synthetic_texts",
                                        "token_count"]),
        ("crossrank.eval.bench_peer", ["PEER_PYTHON_ENV", "PeerScorer", "PeerWorker",
                                       "PeerWorkerError", "resolve_peer_python"]),
        ("crossrank.eval.bench_report", ["format_bench_table", "format_server_table"]),
        ("crossrank.eval.bench_cli", ["add_bench_arguments", "add_server_bench_arguments",
                                      "register", "run_bench", "run_server_bench"]),
        ("crossrank.eval.calibrate", ["DEFAULT_HELD_OUT", "DEFAULT_TOP_K", "calibrate",
                                      "calibration_target", "format_calibration_table"]),
        ("crossrank.eval.calibrate_cli", ["add_calibrate_arguments", "register",
                                          "run_calibrate"]),
        ("crossrank.eval.tuning", ["DEFAULT_FOLDS", "TUNED_CUTOFF", "WEIGHT_GRID",
                                   "CrossValidation", "assign_folds", "best_weight",
                                   "cross_validate", "fused_run", "weight_table"]),
        ("crossrank.runtimes.probe", ["Decision", "ENV_BACKEND", "MIN_NDCG10",
                                      "MIN_TOP10_OVERLAP", "PROBE_QUERIES", "Planned",
                                      "RELEVANT_FLAGS", "Trial", "agreement",
                                      "backend_from_env", "calibration_pairs",
                                      "candidate_backends", "cpu_flags", "cpu_summary",
                                      "decision_key", "planned_batches", "probe_cases",
                                      "resolve_auto", "run_probe", "timing_case"]),
        ("crossrank.scale", ["BlankText", "init_ray", "rerank_dataset", "runs_from_dataset",
                             "runs_to_dataset", "score_runs", "worker_scorer_options"]),
        ("crossrank.serve.ray_app", ["DEPLOYMENT_NAME", "ReplicaSettings", "ServeBatchRows",
                                     "add_ray_arguments", "app_builder", "build_app",
                                     "check_ray_flags", "run_ray_serve"]),
        ("crossrank.runtimes.openvino", ["OPENVINO_BACKENDS",
                                       "PERFORMANCE_HINT", "StreamForward",
                                       "export_openvino", "make_openvino_forward",
                                       "openvino_available", "openvino_supports_bf16",
                                       "require_openvino"]),
        ("crossrank.remote", ["CONFIG_KEYS", "PROTOCOLS", "PROVIDERS", "Provider",
                              "RemoteRequestError", "RemoteScorer", "RemoteScorerError",
                              "make_provider"]),
        ("crossrank.remote.providers", ["PROVIDERS", "PROVIDER_CLASSES", "make_provider"]),
        ("crossrank.remote.wire", ["Provider", "Reply", "WireError", "WireOptions",
                                   "indexed_scores", "numbers", "results_of"]),
        ("crossrank.remote.calls", ["Ordering", "Plan", "Scoring", "chunks", "logits_of",
                                    "order", "scores_plan"]),
        ("crossrank.remote.errors", ["RemoteRequestError", "RemoteScorerError", "error_text",
                                     "redact"]),
        ("crossrank.remote.transport", ["CONCURRENT_REQUESTS", "RETRY_STATUSES", "Transport"]),
        ("crossrank.remote.settings", ["OLD_PROTOCOLS", "Resolved", "check_truncation",
                                       "resolve"]),
        ("crossrank.remote.flags", ["PROVIDER_FLAGS", "REMOTE_SCORER_OPTIONS",
                                    "add_provider_options", "remote_scorer"]),
        ("crossrank.serve", ["ApiKeys", "Batching", "Engine", "Limits", "Metrics", "RowBatcher",
                             "ScoreCall", "ScoreResult", "Server", "create_app",
                             "running_server"]),
        ("crossrank.serve.app", ["ENDPOINTS", "OPEN_PATHS", "create_app"]),
        ("crossrank.serve.auth", ["ApiKeys", "load_api_keys"]),
        ("crossrank.serve.batcher", ["BatcherClosedError", "PassStats", "RowBatcher"]),
        ("crossrank.serve.cli", ["add_serve_arguments", "register", "run_serve"]),
        ("crossrank.serve.flags", ["add_ray_arguments", "add_serve_arguments",
                                   "add_serve_command", "check_ray_flags", "serve_parser"]),
        ("crossrank.serve.engine", ["Batching", "Engine", "FUSION_OPTIONS", "Overloaded",
                                    "ScoreCall", "ScoreResult", "Unavailable"]),
        ("crossrank.serve.limits", ["LimitExceeded", "Limits", "TokenAllowance",
                                    "token_allowance"]),
        ("crossrank.serve.metrics", ["CONTENT_TYPE", "ERROR_KINDS", "Metrics"]),
        ("crossrank.serve.models", ["CohereRequest", "CohereResponse", "CohereResult",
                                    "CrossrankOptions", "CrossrankResultFields", "ErrorBody",
                                    "HealthBody", "TEIRequest", "TEIResult", "TextDocument"]),
        ("crossrank.serve.server", ["RunningServer", "Server", "bind", "running_server"]),
        ("crossrank.eval.serve_bench", ["MIXED_UP_TOLERANCE", "metrics_snapshot",
                                        "server_benchmark"]),
        ("crossrank.train", ["train"]),
        ("crossrank.train.base_model", ["BaseModelKind", "check_base_model"]),
        ("crossrank.train.cli", ["add_train_arguments", "format_train_summary", "register",
                                 "run_train"]),
        ("crossrank.train.data", ["TrainingData", "load_training_data", "split_dev",
                                  "write_qrels"]),
        ("crossrank.train.evaluator", ["DevRerankEvaluator"]),
        ("crossrank.train.mining", ["Candidates", "first_stage_candidates", "hard_negatives",
                                    "listwise_rows", "pair_rows"]),
        ("crossrank.train.report", ["plot_training"]),
        ("crossrank.train.run", ["CHECKPOINTS", "DEV_QRELS_FILE", "LOSSES", "REPORT_FILE",
                                 "REPORT_PLOT", "prepare_output", "train"]),
    ],
)
def test_module_all_is_pinned(module: str, names: list[str]) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(names)
    for name in mod.__all__:
        assert hasattr(mod, name)


# ---------------------------------------------------------------------- the import graph

#: The command line and the subcommands' packages: none may sit on an import circle.
COMMAND_MODULES = ("crossrank.cli", "crossrank._cli", "crossrank._cli_checks", "crossrank.eval",
                   "crossrank.serve", "crossrank.train")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules importing it runs: every
    ``import``/``from ... import`` of the package, at module level or in a function, and the
    ``__init__`` of each package entered on the way (not the importer's own packages)."""
    root = package_dir.parent
    paths = {_module_name(p, root): p for p in sorted(package_dir.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package up
                    above = package[: len(package) - node.level + 1]
                    base = ".".join([*above, base] if base else above)
                found = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base
                    for alias in node.names
                ]
            else:
                continue
            for target in found:
                while target and target not in paths:  # crossrank.x.Name -> crossrank.x
                    target = target.rpartition(".")[0]
                if not target:
                    continue  # another package
                targets.add(target)
                parts = target.split(".")
                for end in range(1, len(parts)):
                    entered = ".".join(parts[:end])
                    if not name.startswith(entered + "."):
                        targets.add(entered)
        graph[name] = targets - {name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = stack[stack.index(node):]
                del stack[stack.index(node):]
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def _is_command_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in COMMAND_MODULES)


def test_import_graph_sees_function_level_imports_and_packages_entered(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.top import main\n")
    (pkg / "sub" / "leaf.py").write_text("X = 1\n")
    (pkg / "top.py").write_text("def main():\n    from pkg.sub import leaf\n")
    (pkg / "user.py").write_text("from .sub.leaf import X\nimport json\n")
    (pkg / "sub" / "other.py").write_text("from pkg import sub\n")
    graph = _import_graph(pkg)
    assert graph["pkg.top"] == {"pkg.sub", "pkg.sub.leaf"}
    assert graph["pkg.user"] == {"pkg.sub", "pkg.sub.leaf"}  # entering pkg.sub runs its init
    assert graph["pkg.sub.leaf"] == set()
    assert graph["pkg.sub.other"] == {"pkg.sub"}  # its own package, named
    assert _circles(graph) == [["pkg.sub", "pkg.top"]]


def test_the_command_line_has_no_import_circle() -> None:
    """``crossrank.cli`` registers every subcommand; the subcommands and what they share
    (``crossrank._cli``: flags, argument types, parser) sit below it, so no import runs back
    up, at module level or in a function."""
    import crossrank

    graph = _import_graph(Path(crossrank.__file__).parent)
    assert "crossrank.cli" in graph and "crossrank.eval.harness" in graph
    circles = [c for c in _circles(graph) if any(map(_is_command_module, c))]
    assert circles == []
    up = {
        (name, target)
        for name, targets in graph.items()
        if not (name == "crossrank.cli" or name.startswith("crossrank.cli."))
        for target in targets
        if target == "crossrank.cli" or target.startswith("crossrank.cli.")
    }
    assert up == {("crossrank.__main__", "crossrank.cli")}
