"""The commands with every family: ``crossrank eval`` says each model's family (and what it was
recognised by) and passes the family flags on; ``crossrank calibrate`` passes them on;
``crossrank train`` refuses a causal LM reranker or a module pipeline with one line naming
``--model`` and still trains a sequence-classification decoder; a bad family flag is one line
naming the flag in every command that builds a scorer. (``crossrank bench``'s family is
checked in tests/test_bench.py, ``crossrank serve``'s in tests/test_families_serving.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_eval_harness import write_tiny_beir

from crossrank import CrossEncoderScorer
from crossrank.cli import main

OTHER = "Find the abstracts that contradict the claim"


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_beir(tmp_path_factory.mktemp("beir"), n_queries=8)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()  # what came before (the kit building a checkpoint) is not the command's
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------- eval


def test_eval_reports_each_models_family_and_reads_the_family_flags(
    family_kit: Any, beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    causal, ettin = family_kit.path("qwen3-causal"), family_kit.path("ettin")
    out = tmp_path / "eval.json"
    code, printed, err = _run(
        ["eval", "--data", str(beir), "--model", str(causal), "--model", str(ettin),
         "--candidates", "4", "--latency-queries", "1", "--device", "cpu", "--quiet",
         "--instruction", OTHER, "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out.read_text())
    rows = {r["model"]: r for r in report["rows"] if r["stage"] == "reranked"}
    assert rows[str(causal)]["family"] == "causal-lm"
    assert rows[str(ettin)]["family"] == "sentence-transformers"
    detail = rows[str(causal)]["family_detail"]
    assert "LogitScore" in detail and f"instruction {OTHER!r}" in detail  # the flag arrived
    assert "Pooling -> Dense -> LayerNorm -> Dense" in rows[str(ettin)]["family_detail"]
    assert report["settings"]["scorer_options"] == {"instruction": OTHER}
    for row in rows.values():  # printed under the table, once per system
        assert printed.count(f": {row['family']} ({row['family_detail']})") == 1


def test_eval_names_a_known_family_given_by_flag(
    family_kit: Any, beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = family_kit.path("qwen3-reranker-original")
    out = tmp_path / "eval.json"
    code, _, err = _run(
        ["eval", "--data", str(beir), "--model", str(original), "--family", "qwen3-reranker",
         "--candidates", "3", "--latency-queries", "1", "--device", "cpu", "--quiet",
         "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    (row,) = [r for r in json.loads(out.read_text())["rows"] if r["stage"] == "reranked"]
    assert row["family"] == "causal-lm" and "family='qwen3-reranker'" in row["family_detail"]


@pytest.mark.parametrize(
    ("name", "options"),
    [("qwen3-causal", {}), ("ettin", {}), ("qwen3-seq-cls", {}),
     ("qwen3-reranker-original", {"family": "qwen3-reranker"}),
     ("mxbai-v2", {"true_token": "1", "template": "{query} {document}"})],
)  # fmt: skip
def test_the_family_of_a_model_scored_elsewhere_is_read_from_its_files(
    family_kit: Any, name: str, options: dict[str, Any]
) -> None:
    """What ``crossrank eval --engine ray`` reports: the family the scorer will load, found
    without loading its weights."""
    from crossrank.loading import model_family

    scorer = CrossEncoderScorer(family_kit.path(name), device="cpu", **options)
    family, found = model_family(scorer)
    assert not scorer.is_loaded
    assert family == scorer.active_family and scorer.family_detail.startswith(found + ";")


def test_calibrate_hands_the_family_flags_to_its_scorer(
    family_kit: Any,
    beir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scorers_built: list[CrossEncoderScorer],
) -> None:
    _run(
        ["calibrate", "--data", str(beir), "--model", str(family_kit.path("qwen3-causal")),
         "--candidates", "5", "--held-out", "0.5", "--save", str(tmp_path / "cal.json"),
         "--quiet", "--device", "cpu", "--instruction", OTHER, "--family", "causal-lm",
         "--true-token", "yes", "--false-token", "no"],
        capsys,
    )  # fmt: skip  (the random model may not be calibratable; the scorer is built first)
    (scorer,) = scorers_built
    assert (scorer.family, scorer.instruction) == ("causal-lm", OTHER)
    assert (scorer.true_token, scorer.false_token) == ("yes", "no")
    assert scorer.is_loaded and f"instruction {OTHER!r}" in scorer.family_detail


# ---------------------------------------------------------------------- train


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("qwen3-causal", "a causal LM reranker scored by next-token logits"),
        ("bge-gemma", "a causal LM reranker scored by next-token logits"),
        ("ettin", "a sentence-transformers module pipeline"),
    ],
)
def test_train_refuses_a_causal_reranker_or_a_module_pipeline_naming_model(
    family_kit: Any,
    beir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    what: str,
) -> None:
    folder = family_kit.path(name)
    out = tmp_path / "out"
    code, _, err = _run(
        ["train", "--data", str(beir), "--model", str(folder), "--output", str(out)], capsys
    )
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"crossrank train: error: --model {folder} is {what}")
    assert "fine-tunes sequence-classification cross-encoders" in err
    assert not out.exists()


def test_train_fine_tunes_a_sequence_classification_decoder(
    family_kit: Any, tmp_path: Path
) -> None:
    """A Qwen3 seq-cls conversion trains as any cross-encoder and keeps its chat template."""
    from test_train import _RUN, build_beir

    from crossrank.train import train

    folder = family_kit.path("qwen3-seq-cls")
    out = tmp_path / "model"
    report = train(build_beir(tmp_path / "beir"), str(folder), out, epochs=1, **_RUN)
    assert report["base_model_kind"] == "cross-encoder"
    assert report["train"]["steps"] == 4
    trained = CrossEncoderScorer(out, device="cpu", activation="raw")
    assert trained.active_family == "sequence-classification"
    assert "chat template" in trained.family_detail
    before = CrossEncoderScorer(folder, device="cpu", activation="raw")
    texts = ["cancer protein gene increase", "cancer the of study"]
    assert trained.score("what is the cancer effect", texts) != before.score(
        "what is the cancer effect", texts
    )  # its weights were trained


# ---------------------------------------------------------------------- bad values


BAD = [
    (["--family", "nope"], "argument --family: invalid choice: 'nope'"),
    (["--false-token", "no"], "--false-token needs --true-token"),
    (["--template", "no fields"], "--template must contain {query} and {document}"),
    (["--prompt-name", "nope"], "--prompt-name must name one of the prompts"),
]


@pytest.mark.parametrize("command", ["rerank", "eval", "calibrate", "serve"])
@pytest.mark.parametrize(("flags", "message"), BAD, ids=[f[0] for f, _ in BAD])
def test_a_bad_family_flag_is_one_line_naming_it(
    family_kit: Any,
    beir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    flags: list[str],
    message: str,
) -> None:
    model = ["--model", str(family_kit.path("qwen3-causal")), "--device", "cpu"]
    texts = tmp_path / "texts.txt"
    texts.write_text("a text\n")
    required = {
        "rerank": ["-q", "a query", "-i", str(texts)],
        "eval": ["--data", str(beir), "--candidates", "3", "--quiet"],
        "calibrate": ["--data", str(beir), "--save", str(tmp_path / "c.json"), "--quiet"],
        "serve": ["--port", "0", "--quiet"],
    }[command]
    code, _, err = _run([command, *required, *model, *flags], capsys)
    assert code == 2, err
    assert err.startswith(f"crossrank {command}: error: ") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
