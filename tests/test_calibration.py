"""Calibrated scores: fitting, metrics, the calibration file, ``activation="calibrated"``
and ``crossrank calibrate``.

Unit tests use synthetic logits and the tiny model; the integration tests fit on SciFact
test pairs scored by the shared model and measure on held-out queries.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logit

from crossrank import CrossEncoderScorer
from crossrank.calibration import (
    CALIBRATION_FILE,
    Calibration,
    brier_score,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
    load_calibration,
    log_loss,
    save_calibration,
)
from crossrank.cli import main as cli_main

QUERY = "the effect of the drug on blood cells"
TEXTS = ["blood cells and the drug", "the cat and the dog", "cancer risk study", "capital city"]


def _synthetic(scale: float, bias: float, n: int = 20000, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.5, size=n)
    y = (rng.random(n) < expit(scale * x + bias)).astype(float)
    return x, y


# ---------------------------------------------------------------------- fitting


def test_platt_recovers_known_parameters() -> None:
    x, y = _synthetic(1.5, -2.0)
    fit = fit_platt(x, y)
    assert fit.method == "platt"
    assert fit.scale == pytest.approx(1.5, abs=0.08)
    assert fit.bias == pytest.approx(-2.0, abs=0.08)


def test_temperature_recovers_a_known_temperature() -> None:
    x, y = _synthetic(1 / 3, 0.0)
    fit = fit_temperature(x, y)
    assert fit.bias == 0.0
    assert fit.temperature == pytest.approx(3.0, rel=0.05)


def test_newton_matches_scipy_on_the_log_loss() -> None:
    x, y = _synthetic(0.7, 1.0, n=3000, seed=1)

    def nll(params: np.ndarray) -> float:
        z = params[0] * x + (params[1] if params.size > 1 else 0.0)
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    temperature = fit_temperature(x, y)
    ref = minimize(nll, np.array([1.0]), method="BFGS", options={"gtol": 1e-10})
    assert temperature.scale == pytest.approx(ref.x[0], abs=1e-4)
    # Platt's targets: (N+ + 1)/(N+ + 2) and 1/(N- + 2) instead of 1 and 0.
    n_pos, n_neg = y.sum(), y.size - y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def smoothed(params: np.ndarray) -> float:
        z = params[0] * x + params[1]
        return float(np.mean(np.logaddexp(0.0, z) - t * z))

    platt = fit_platt(x, y)
    ref = minimize(smoothed, np.array([1.0, 0.0]), method="BFGS", options={"gtol": 1e-10})
    assert (platt.scale, platt.bias) == (
        pytest.approx(ref.x[0], abs=1e-4),
        pytest.approx(ref.x[1], abs=1e-4),
    )


def test_platt_stays_finite_on_separable_labels() -> None:
    x = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    fit = fit_platt(x, y)
    assert math.isfinite(fit.scale) and fit.scale > 0
    assert 0.5 < fit.apply([3.0])[0] < 1.0


def test_calibration_keeps_the_order_of_scores() -> None:
    x, y = _synthetic(1.0, -1.0, n=500)
    for fit in (fit_platt(x, y), fit_temperature(x, y)):
        assert np.array_equal(np.argsort(fit.apply(x), kind="stable"), np.argsort(x, kind="stable"))


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        ([0.1, 0.2], [1, 1], "both relevant and non-relevant"),
        ([0.1, 0.2], [0, 1, 1], "2 scores but 3 labels"),
        ([], [], "no labelled pairs"),
        ([0.1, 0.2], [0, 2], "labels must be 0 or 1"),
        ([0.1, float("nan")], [0, 1], "finite"),
        # Higher logits for the non-relevant pairs: no monotone calibration exists.
        ([3.0, 2.0, 1.0, -1.0, -2.0, -3.0], [0, 0, 0, 1, 1, 1], "non-positive scale"),
    ],
)
def test_fitting_rejects_bad_pairs(logits: list[float], labels: list[int], message: str) -> None:
    for fit in (fit_platt, fit_temperature):
        with pytest.raises(ValueError, match=message):
            fit(logits, labels)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"method": "isotonic", "scale": 1.0}, ValueError, "method must be one of"),
        ({"method": "platt", "scale": 0.0}, ValueError, "scale must be positive"),
        ({"method": "platt", "scale": float("inf")}, ValueError, "must be finite"),
        ({"method": "platt", "scale": "1"}, TypeError, "must be a number"),
        ({"method": "temperature", "scale": 1.0, "bias": 0.5}, ValueError, "has no bias"),
    ],
)
def test_calibration_checks_its_parameters(
    kwargs: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        Calibration(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- metrics


def test_ece_by_hand() -> None:
    probs = [0.1, 0.2, 0.9, 0.8]
    # Two bins: (0, .5] holds 0.1, 0.2 (mean .15, none relevant), (.5, 1] holds .8, .9
    # (mean .85, all relevant): ECE = .5 * .15 + .5 * .15.
    assert expected_calibration_error(probs, [0, 0, 1, 1], bins=2) == pytest.approx(0.15)
    # 0 and 1 fall into the first and last bins.
    assert expected_calibration_error([0.0, 1.0], [0, 1], bins=10) == pytest.approx(0.0)
    assert expected_calibration_error([0.0, 1.0], [1, 0], bins=10) == pytest.approx(1.0)
    # A calibrated sample has a small ECE, an overconfident one a large ECE.
    rng = np.random.default_rng(0)
    p = rng.random(50000)
    y = (rng.random(50000) < p).astype(float)
    assert expected_calibration_error(p, y) < 0.01
    assert expected_calibration_error(np.sqrt(p), y) > 0.1


def test_log_loss_and_brier_by_hand() -> None:
    assert log_loss([0.8, 0.4], [1, 0]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert brier_score([0.8, 0.4], [1, 0]) == pytest.approx((0.04 + 0.16) / 2)
    assert math.isfinite(log_loss([0.0, 1.0], [1, 0]))  # clipped, not inf
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.5], [1])


# ---------------------------------------------------------------------- the file


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    fits = {
        "temperature": Calibration("temperature", 0.5),
        "platt": Calibration("platt", 2.0, -1.0),
    }
    path = save_calibration(tmp_path / "cal.json", fits, method="platt", model="m", report={"n": 1})
    payload = json.loads(path.read_text())
    assert payload["method"] == "platt" and payload["temperature"]["temperature"] == 2.0
    assert payload["report"] == {"n": 1}
    loaded = load_calibration(path)
    assert loaded == Calibration("platt", 2.0, -1.0, model="m")
    assert loaded.source == str(path)
    assert load_calibration(path, method="temperature") == Calibration(
        "temperature", 0.5, model="m"
    )
    # A folder means the file beside a model.
    folder = tmp_path / "model"
    folder.mkdir()
    assert save_calibration(folder, fits, method="temperature").name == CALIBRATION_FILE
    assert load_calibration(folder).method == "temperature"
    assert not list(folder.glob(".calibration-*"))  # no temporary file left


def test_load_rejects_what_is_not_a_calibration(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="crossrank calibrate"):
        load_calibration(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_calibration(bad)
    bad.write_text(json.dumps({"method": "platt"}))
    with pytest.raises(ValueError, match="not a crossrank calibration"):
        load_calibration(bad)
    bad.write_text(json.dumps({"format": "crossrank-calibration", "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        load_calibration(bad)
    fits = {"platt": Calibration("platt", 1.0, 0.0)}
    path = save_calibration(tmp_path / "only-platt.json", fits, method="platt")
    with pytest.raises(ValueError, match="no 'temperature' calibration"):
        load_calibration(path, method="temperature")
    with pytest.raises(ValueError, match="not among the fits"):
        save_calibration(tmp_path / "x.json", fits, method="temperature")


# ---------------------------------------------------------------------- the scorer


def test_calibrated_activation_applies_the_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = save_calibration(
        tmp_path / "cal.json", {"platt": Calibration("platt", 0.5, -2.0)}, method="platt"
    )
    raw = CrossEncoderScorer(tiny_model_dir, activation="raw").score(QUERY, TEXTS)
    calibrated = CrossEncoderScorer(tiny_model_dir, activation="calibrated", calibration=path)
    assert calibrated.score(QUERY, TEXTS) == pytest.approx(list(expit(0.5 * np.array(raw) - 2.0)))
    # The order is the raw order; selection works on probabilities.
    hits = calibrated.rank(QUERY, TEXTS, min_relative_score=0.5)
    assert [h.index for h in hits] == [
        i
        for i in np.argsort(-np.array(raw), kind="stable")
        if expit(0.5 * raw[i] - 2) >= 0.5 * hits[0].score
    ]
    # A Calibration object works too.
    obj = CrossEncoderScorer(
        tiny_model_dir, activation="calibrated", calibration=Calibration("temperature", 0.25)
    )
    assert obj.score(QUERY, TEXTS) == pytest.approx(list(expit(0.25 * np.array(raw))))


def test_calibrated_applies_after_window_aggregation(tiny_model_dir: Path) -> None:
    long_text = " ".join(["the cat and the dog"] * 60) + " the drug and blood cells"
    cal = Calibration("platt", 0.8, 0.3)
    raw = CrossEncoderScorer(tiny_model_dir, activation="raw", long_documents="chunk")
    calibrated = CrossEncoderScorer(
        tiny_model_dir, activation="calibrated", calibration=cal, long_documents="chunk"
    )
    expected = cal.apply(raw.score(QUERY, [long_text, "blood"]))
    assert calibrated.score(QUERY, [long_text, "blood"]) == pytest.approx(list(expected))


def test_calibration_beside_the_model_is_found(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    with pytest.raises(ValueError, match="crossrank calibrate"):
        CrossEncoderScorer(model, activation="calibrated")
    save_calibration(model, {"temperature": Calibration("temperature", 2.0)}, method="temperature")
    scorer = CrossEncoderScorer(model, activation="calibrated")
    assert scorer.calibration == Calibration("temperature", 2.0)


def test_calibration_misuse_is_an_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    cal = Calibration("platt", 1.0, 0.0)
    with pytest.raises(ValueError, match="only used with activation='calibrated'"):
        CrossEncoderScorer(tiny_model_dir, calibration=cal)
    with pytest.raises(TypeError, match="calibration must be a file path"):
        CrossEncoderScorer(tiny_model_dir, activation="calibrated", calibration=3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="calibration file"):
        CrossEncoderScorer(tiny_model_dir, activation="calibrated", calibration=tmp_path / "x")
    with pytest.raises(ValueError, match="activation must be one of"):
        CrossEncoderScorer(tiny_model_dir, activation="probability")  # type: ignore[arg-type]


def test_a_calibration_for_another_model_is_reported(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        CrossEncoderScorer(
            tiny_model_dir,
            activation="calibrated",
            calibration=Calibration("platt", 1.0, 0.0, model="/models/some-other-model"),
        )
    assert "was fitted for /models/some-other-model" in caplog.text


# ---------------------------------------------------------------------- the command


def test_calibrate_needs_somewhere_to_write(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A Hub id has no folder to write beside: the error comes before any scoring.
    code = cli_main(["calibrate", "--data", str(tmp_path), "--model", "org/some-model"])
    assert code == 2
    assert capsys.readouterr().err == (
        "crossrank calibrate: error: --model org/some-model is not a local folder, so the "
        "calibration cannot be stored beside it; pass --save FILE\n"
    )
    code = cli_main(["calibrate", "--data", str(tmp_path), "--model", str(tiny_model_dir),
                     "--save", str(tmp_path / "c.json")])
    assert code == 2  # no BEIR data there
    assert "corpus.jsonl" in capsys.readouterr().err
    assert cli_main(["calibrate", "--data", str(tmp_path), "--held-out", "1.5"]) == 2
    assert "argument --held-out: must be a number between 0 and 1" in capsys.readouterr().err


@pytest.mark.integration
def test_calibrate_command_on_scifact(
    shared_model_dir: Path, scifact_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cal.json"
    report_path = tmp_path / "report.json"
    code = cli_main(
        [
            "calibrate", "--data", str(scifact_dir), "--model", str(shared_model_dir),
            "--max-queries", "24", "--candidates", "6", "--held-out", "0.5", "--save", str(out),
            "--out", str(report_path), "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "sigmoid (uncalibrated)" in printed and f"wrote {out}" in printed
    report = json.loads(report_path.read_text())
    held = report["held_out"]
    assert held["queries"] == 12 and report["fit"]["queries"] == 12
    assert held["pairs"] == 72
    metrics = held["metrics"]
    assert metrics["platt"]["ece"] < metrics["sigmoid"]["ece"]
    # The written file drives activation="calibrated" with the fitted Platt parameters.
    cal = load_calibration(out)
    assert (cal.scale, cal.bias) == (
        pytest.approx(report["params"]["platt"]["scale"]),
        pytest.approx(report["params"]["platt"]["bias"]),
    )


@pytest.mark.integration
def test_calibration_lowers_ece_on_held_out_scifact(scifact, scifact_core_run) -> None:  # type: ignore[no-untyped-def]
    """Fit on half of the queries scored by the shared model; measure on the other half."""
    qids = sorted(scifact_core_run)
    fit_ids, held_ids = qids[::2], qids[1::2]

    def pairs(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        probs = [p for q in ids for p in scifact_core_run[q].values()]
        labels = [
            1.0 if scifact.qrels[q].get(d, 0) > 0 else 0.0 for q in ids for d in scifact_core_run[q]
        ]
        return logit(np.clip(probs, 1e-12, 1 - 1e-12)), np.array(labels)

    x_fit, y_fit = pairs(fit_ids)
    x_held, y_held = pairs(held_ids)
    assert 0 < y_held.sum() < y_held.size
    before_ece = expected_calibration_error(expit(x_held), y_held)
    before_nll = log_loss(expit(x_held), y_held)
    platt = fit_platt(x_fit, y_fit)
    temperature = fit_temperature(x_fit, y_fit)
    assert expected_calibration_error(platt.apply(x_held), y_held) < before_ece / 2
    assert log_loss(platt.apply(x_held), y_held) < before_nll
    assert log_loss(temperature.apply(x_held), y_held) < before_nll


def test_calibrate_passes_the_scorer_options_to_the_scorer(
    tiny_model_dir: Path, tmp_path: Path, scorers_built: list[CrossEncoderScorer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from test_eval_harness import write_tiny_beir

    from crossrank.eval.calibrate import calibrate

    built = scorers_built
    data = write_tiny_beir(tmp_path / "beir", n_queries=8)
    cli_main(
        [
            "calibrate", "--data", str(data), "--model", str(tiny_model_dir), "--candidates", "5",
            "--held-out", "0.5", "--save", str(tmp_path / "cal.json"), "--quiet",
            "--device", "cpu", "--long-documents", "chunk", "--max-length", "16",
            "--aggregation", "first-weighted", "--max-windows", "3", "--window-stride", "6",
        ]
    )  # fmt: skip  (the random model may not be calibratable; the scorer is built first)
    capsys.readouterr()
    (scorer,) = built
    assert scorer.activation == "raw"  # calibration reads logits
    assert (scorer.long_documents, scorer.aggregation) == ("chunk", "first-weighted")
    assert (scorer.max_windows, scorer.window_stride) == (3, 6)
    assert scorer.requested_max_length == 16 and scorer.device == "cpu"
    with pytest.raises(ValueError, match=r"scorer_options must not hold \['activation'\]"):
        calibrate(data, str(tiny_model_dir), scorer_options={"activation": "sigmoid"})
