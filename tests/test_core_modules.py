"""The leaf modules the scorer coordinates: padding, window rows, strides, relevance from
logits, activation and calibration resolution, option checks; and each module's ``__all__``."""

from __future__ import annotations

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
                               "reserved_load_kwargs", "resolve_device", "resolve_source"]),
        ("crossrank.families", ["LoadedFamily", "PairEncoder", "PairRows", "ScoreNet",
                                "load_family"]),
        ("crossrank.families.source", ["HUB_OPTIONS", "ModelSource", "export_key_options",
                                       "from_pretrained", "read_json", "reserved_load_kwargs",
                                       "resolve_source", "torch_dtype_names"]),
        ("crossrank.families.limits", ["position_limit", "resolve_max_length"]),
        ("crossrank.families.net", ["ScoreNet", "relevance"]),
        ("crossrank.families.seq_cls", ["SeqClsNet", "check_num_labels",
                                        "check_relevance_head", "is_seq_cls"]),
        ("crossrank.families.inputs", ["PairEncoder", "PairRows"]),
        ("crossrank.runtimes", ["Forward", "Runtime", "build_runtime"]),
        ("crossrank.runtimes.cpu", ["CPU_CLASSES", "RELEVANT_FLAGS", "cpu_class", "cpu_flags",
                                    "cpu_has_native_bf16", "cpu_has_vnni", "cpu_summary",
                                    "usable_cores"]),
        ("crossrank.runtimes.int8", ["ALL_MATMULS", "FFN_OUTPUT_IN_FLOAT", "Int8Recipe",
                                     "int8_recipe"]),
        ("crossrank.runtimes.cache", ["atomic_target", "cache_root", "folder_in_place",
                                      "model_fingerprint"]),
        ("crossrank.runtimes.devices", ["available_devices", "check_device",
                                        "resolve_device"]),
        ("crossrank.runtimes.inputs", ["Inputs", "example_batch", "padded"]),
        ("crossrank.runtimes.pytorch", ["DTYPES", "make_torch_forward"]),
        ("crossrank.validation", ["check_fraction", "check_load_kwargs", "check_positive_int",
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
                              "Normalization", "check_first_stage_scores", "fuse", "normalize",
                              "reciprocal_ranks", "resolve_fusion"]),
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
        ("crossrank.remote", ["PROTOCOLS", "RemoteRequestError", "RemoteScorer",
                              "RemoteScorerError"]),
        ("crossrank.serve", ["ApiKeys", "Batching", "Engine", "Limits", "Metrics", "RowBatcher",
                             "ScoreCall", "ScoreResult", "Server", "create_app",
                             "running_server"]),
        ("crossrank.serve.app", ["ENDPOINTS", "OPEN_PATHS", "create_app"]),
        ("crossrank.serve.auth", ["ApiKeys", "load_api_keys"]),
        ("crossrank.serve.batcher", ["BatcherClosedError", "PassStats", "RowBatcher"]),
        ("crossrank.serve.cli", ["add_serve_arguments", "run_serve"]),
        ("crossrank.serve.engine", ["Batching", "Engine", "FUSION_OPTIONS", "Overloaded",
                                    "ScoreCall", "ScoreResult", "Unavailable"]),
        ("crossrank.serve.limits", ["LimitExceeded", "Limits", "TokenAllowance",
                                    "token_allowance"]),
        ("crossrank.serve.metrics", ["CONTENT_TYPE", "ERROR_KINDS", "Metrics"]),
        ("crossrank.serve.models", ["CohereRequest", "CohereResponse", "CohereResult",
                                    "CrossrankOptions", "CrossrankResultFields", "ErrorBody",
                                    "HealthBody", "TEIRequest", "TEIResult", "TextDocument"]),
        ("crossrank.serve.server", ["RunningServer", "Server", "bind", "running_server"]),
        ("crossrank.eval.serve_bench", ["MIXED_UP_TOLERANCE", "add_server_bench_arguments",
                                        "format_server_table", "metrics_snapshot",
                                        "run_server_bench", "server_benchmark"]),
        ("crossrank.train", ["train"]),
        ("crossrank.train.base_model", ["BaseModelKind", "check_base_model"]),
        ("crossrank.train.cli", ["add_train_arguments", "format_train_summary", "run_train"]),
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
