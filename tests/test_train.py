"""``crossrank train``: a tiny-model run of a few steps on a small BEIR folder gives a model
crossrank loads, a calibration and a report; mining leaves the positives out; a run resumes
from its checkpoint; the dev split never meets the test split; bad input is refused before
training.

The full SciFact runs are documented commands (docs/training.md), not tests.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from crossrank.cli import main
from crossrank.train.base_model import check_base_model
from crossrank.train.data import load_training_data, split_dev
from crossrank.train.mining import hard_negatives, listwise_rows, pair_rows

TOPICS = ("cancer", "heart", "brain", "blood", "drug", "cell")
FILLER = ("the", "a", "of", "and", "in", "study", "patients", "treatment", "risk", "dose")


def build_beir(folder: Path, *, queries: int = 12, test: int = 3) -> Path:
    """A small BEIR folder: query i's positive mentions its topic with 'protein gene' (a
    cue a tiny model learns in a few steps), its three negatives mention the topic only."""
    rng = random.Random(0)
    corpus: list[dict[str, str]] = []
    for i in range(queries + test):
        topic = TOPICS[i % len(TOPICS)]
        corpus.append({"_id": f"p{i}", "title": topic, "text": f"{topic} protein gene increase"})
        for j in range(3):
            words = " ".join(rng.choice(FILLER) for _ in range(6))
            corpus.append({"_id": f"n{i}-{j}", "title": topic, "text": f"{topic} {words}"})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"q{i}", "text": f"what is the {TOPICS[i % len(TOPICS)]} effect"})
            + "\n"
            for i in range(queries + test)
        )
    )
    (folder / "qrels").mkdir(exist_ok=True)
    for name, ids in (("train", range(queries)), ("test", range(queries, queries + test))):
        rows = ["query-id\tcorpus-id\tscore"] + [f"q{i}\tp{i}\t1" for i in ids]
        (folder / "qrels" / f"{name}.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def beir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_beir(tmp_path_factory.mktemp("beir"))


_RUN: dict[str, Any] = {
    "negatives": 2, "batch_size": 8, "learning_rate": 3e-3, "dev_fraction": 0.25,
    "device": "cpu", "seed": 0,
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(
    beir_dir: Path, tiny_bi_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """One epoch (4 steps) from a plain encoder (a new head), checkpoints kept."""
    from crossrank.train import train

    out = tmp_path_factory.mktemp("trained") / "model"
    report = train(beir_dir, str(tiny_bi_encoder_dir), out, epochs=1, keep_checkpoints=True, **_RUN)
    return out, report


def test_a_tiny_run_writes_a_model_crossrank_loads_a_calibration_and_a_report(
    trained: tuple[Path, dict[str, Any]],
) -> None:
    from crossrank import CrossEncoderScorer
    from crossrank.calibration import CALIBRATION_FILE

    out, report = trained
    assert report["base_model_kind"] == "encoder"
    assert report["train"]["steps"] == report["train"]["steps_per_epoch"] == 4
    # 9 training queries x (1 positive + 2 negatives) in batches of 8; 3 dev queries.
    assert (report["train"]["queries"], report["train"]["pairs"]) == (9, 27)
    assert report["dev"]["queries"] == 3 and report["dev"]["best_step"] == 4
    assert [h["step"] for h in report["dev"]["history"]] == [4]
    assert 0.0 <= report["dev"]["first_stage"]["ndcg@10"] <= 1.0
    assert json.loads((out / "training_report.json").read_text()) == report
    assert (out / "training_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "dev_qrels.tsv").read_text().count("\n") == 1 + 3
    texts = ["cancer protein gene increase", "cancer the of study"]
    scorer = CrossEncoderScorer(out, device="cpu", activation="calibrated")
    probs = scorer.score("what is the cancer effect", texts)
    assert report["calibration"]["written"] == str(out / CALIBRATION_FILE)
    assert all(0.0 < p < 1.0 for p in probs)
    raw = CrossEncoderScorer(out, device="cpu", activation="raw").score(
        "what is the cancer effect", texts
    )
    assert raw[0] > raw[1]  # it learned the positives' cue
    # The dev scores it was calibrated on are the kept model's: re-scored, they agree.
    logged = report["dev"]["history"][0]
    assert report["dev"]["best"] == {k: logged[k] for k in ("ndcg@10", "mrr@10", "recall@10")}


def test_quiet_cli_run_prints_only_the_table_with_the_starting_models_dev_figure(
    beir_dir: Path, tiny_model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No --device: on a machine without an accelerator the trainer would pin memory and
    torch would warn (an error under this suite's warning filter); --quiet leaves stderr
    empty. The dev table starts with the starting model's own figure."""
    out = tmp_path / "model"
    code = main(["train", "--data", str(beir_dir), "--model", str(tiny_model_dir),
                 "--output", str(out), "--epochs", "1", "--negatives", "2", "--batch-size", "8",
                 "--dev-fraction", "0.25", "--quiet"])  # fmt: skip
    printed = capfd.readouterr()
    assert code == 0
    assert printed.err == ""
    report = json.loads((out / "training_report.json").read_text())
    start = report["dev"]["base_model"]
    assert set(start) == {"ndcg@10", "mrr@10", "recall@10"}
    row = next(line for line in printed.out.splitlines() if "the starting model" in line)
    assert row.split()[:3] == ["0", "0", f"{start['ndcg@10']:.4f}"]
    lines = printed.out.splitlines()
    assert lines.index(row) < next(i for i, x in enumerate(lines) if x.startswith("1 "))


def test_resume_continues_from_the_checkpoint(
    trained: tuple[Path, dict[str, Any]], tmp_path: Path, beir_dir: Path, tiny_bi_encoder_dir: Path
) -> None:
    from crossrank.train import train

    first, _ = trained
    out = tmp_path / "model"
    shutil.copytree(first, out)
    report = train(beir_dir, str(tiny_bi_encoder_dir), out, epochs=2, resume=True, **_RUN)
    assert report["train"]["resumed_from"] == str(out / "checkpoints" / "checkpoint-4")
    assert report["train"]["steps"] == 8  # 4 restored + 4 trained, not 8 trained afresh
    # The first epoch's evaluation comes from the checkpoint's state, the second is new.
    assert [h["step"] for h in report["dev"]["history"]] == [4, 8]
    assert not (out / "checkpoints").exists()  # removed at the end without keep_checkpoints
    with pytest.raises(ValueError, match="holds no checkpoint"):
        train(beir_dir, str(tiny_bi_encoder_dir), out, epochs=3, resume=True, **_RUN)


def test_resume_refuses_other_training_data(
    trained: tuple[Path, dict[str, Any]], tmp_path: Path, beir_dir: Path, tiny_bi_encoder_dir: Path
) -> None:
    from crossrank.train import train

    out = tmp_path / "model"
    shutil.copytree(trained[0], out)
    with pytest.raises(ValueError, match=r"changed: negatives: 2 -> 3"):
        train(beir_dir, str(tiny_bi_encoder_dir), out, epochs=2, resume=True,
              **{**_RUN, "negatives": 3})  # fmt: skip


def test_mining_takes_the_first_stage_top_minus_the_positives() -> None:
    candidates = {"q1": ["a", "p1", "b", "c", "p2", "d"], "q2": ["p3", "e"]}
    qrels = {"q1": {"p1": 1, "p2": 2, "b": 0}, "q2": {"p3": 1}}
    mined = hard_negatives(candidates, qrels, num_negatives=10, depth=5, seed=0)
    # Judged-not-relevant "b" is a fine negative; "d" is below the depth.
    assert mined == {"q1": ["a", "b", "c"], "q2": ["e"]}
    for seed in range(20):
        some = hard_negatives(candidates, qrels, num_negatives=2, depth=6, seed=seed)["q1"]
        assert len(some) == 2 and not {"p1", "p2"} & set(some)
        assert some == [d for d in candidates["q1"] if d in some]  # first-stage order
    with pytest.raises(ValueError, match="must be >= 1"):
        hard_negatives(candidates, qrels, num_negatives=0, depth=5, seed=0)


def test_training_rows_label_positives_and_negatives(beir_dir: Path) -> None:
    data = load_training_data(beir_dir)
    qid = data.train_ids[0]
    negatives = {qid: ["n0-0", "n0-1"]}
    rows = pair_rows(data.dataset, [qid], negatives)
    assert rows["label"] == [1.0, 0.0, 0.0]
    assert rows["document"][0] == data.dataset.doc_text(f"p{qid[1:]}")
    listwise = listwise_rows(data.dataset, [qid], negatives, seed=0)
    assert sorted(listwise["labels"][0]) == [0.0, 0.0, 1.0]
    assert len(listwise["documents"][0]) == 3


def test_the_dev_split_is_carved_from_training_queries_never_test(
    beir_dir: Path, tmp_path: Path
) -> None:
    data = load_training_data(beir_dir, dev_fraction=0.25, seed=0)
    assert len(data.dev_ids) == 3 and len(data.train_ids) == 9
    assert not set(data.dev_ids) & set(data.train_ids)
    test_ids = {f"q{i}" for i in range(12, 15)}
    assert not (set(data.dev_ids) | set(data.train_ids)) & test_ids
    assert load_training_data(beir_dir, dev_fraction=0.25, seed=0).dev_ids == data.dev_ids
    # Training judgments that also judge a test query: the query is left out of both.
    leaky = tmp_path / "leaky.tsv"
    leaky.write_text((beir_dir / "qrels" / "train.tsv").read_text() + "q13\tp13\t1\n")
    data = load_training_data(beir_dir, qrels=leaky, dev_fraction=0.25)
    assert data.excluded_test_ids == ["q13"]
    assert "q13" not in data.dev_ids + data.train_ids
    with pytest.raises(ValueError, match="split must not be 'test'"):
        load_training_data(beir_dir, split="test")
    with pytest.raises(ValueError, match="is the folder's test split"):
        load_training_data(beir_dir, qrels=beir_dir / "qrels" / "test.tsv")
    with pytest.raises(ValueError, match="cannot be split"):
        split_dev(["q1"], 0.5, seed=0)


def test_base_models_an_encoder_a_cross_encoder_and_others(
    tiny_model_dir: Path, tiny_bi_encoder_dir: Path, tiny_two_logit_dir: Path, tmp_path: Path
) -> None:
    from transformers import GPT2Config

    assert check_base_model(str(tiny_model_dir)) == "cross-encoder"
    assert check_base_model(str(tiny_bi_encoder_dir)) == "encoder"
    with pytest.raises(ValueError, match="a classifier with 2 labels"):
        check_base_model(str(tiny_two_logit_dir))
    GPT2Config(n_layer=1).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match=r"is a decoder-only model \(model_type 'gpt2'\)"):
        check_base_model(str(tmp_path / "gpt2"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"has no config\.json"):
        check_base_model(str(tmp_path / "empty"))


def _bad_copy(beir_dir: Path, tmp_path: Path, qrels: str) -> Path:
    folder = tmp_path / "bad"
    shutil.copytree(beir_dir, folder)
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    return folder


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("q1\tp1\t1\nq2\tnowhere\t1\n", "judges 1 document(s) that are not in corpus.jsonl"),
        ("q1\tp1\t1\nq99\tp2\t1\n", "judges queries not in queries.jsonl: ['q99']"),
        ("q1\tp1\t0\nq2\tp2\t0\n", "holds no positive judgment"),
    ],
)
def test_bad_judgments_are_one_line_errors_before_training(
    beir_dir: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    qrels: str,
    message: str,
) -> None:
    folder = _bad_copy(beir_dir, tmp_path, qrels)
    out = tmp_path / "out"
    code = main(["train", "--data", str(folder), "--model", str(tiny_model_dir),
                 "--output", str(out), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("crossrank train: error: ") and message in err
    assert err.count("\n") == 1 and not out.exists()


def test_an_existing_output_or_a_non_encoder_is_refused_before_training(
    beir_dir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import GPT2Config

    out = tmp_path / "out"
    out.mkdir()
    argv = ["train", "--data", str(beir_dir), "--model", str(tiny_model_dir), "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already exists; replace it with overwrite (--overwrite)" in err
    assert err.count("\n") == 1
    GPT2Config(n_layer=1).save_pretrained(tmp_path / "gpt2")
    argv = ["train", "--data", str(beir_dir), "--model", str(tmp_path / "gpt2"),
            "--output", str(tmp_path / "new")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "not an encoder; crossrank train fine-tunes encoders" in err
    assert not (tmp_path / "new").exists()
    assert main([*argv[:-1], str(out), "--resume", "--overwrite"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


@pytest.mark.integration
def test_scifact_training_split_and_shared_models(
    scifact_dir: Path, shared_model_dir: Path, shared_bi_encoder_dir: Path
) -> None:
    """The documented SciFact runs start from these: the checks and the split they get."""
    from crossrank.eval.data import load_qrels

    assert check_base_model(str(shared_model_dir)) == "cross-encoder"
    assert check_base_model(str(shared_bi_encoder_dir)) == "encoder"
    data = load_training_data(scifact_dir, dev_fraction=0.04, seed=0)
    test_ids = set(load_qrels(scifact_dir / "qrels" / "test.tsv"))
    assert not set(data.dev_ids) & test_ids and not set(data.train_ids) & test_ids
    assert not set(data.dev_ids) & set(data.train_ids)
    assert len(data.dev_ids) == 32


def test_train_follows_the_cli_conventions(capsys: pytest.CaptureFixture[str]) -> None:
    """Exit codes in --help; -m is --model; --quiet; first-stage candidates are --candidates
    and there is no -k (keep the best K belongs to rerank). The model folder is --output,
    as the issue words it: there is no JSON report flag, the report goes in that folder."""
    from crossrank._cli_checks import EXIT_STATUS
    from crossrank.cli import build_parser

    assert main(["train", "--help"]) == 0
    assert EXIT_STATUS in capsys.readouterr().out
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    strings = {s: a for a in sub.choices["train"]._actions for s in a.option_strings}
    assert strings["-m"] is strings["--model"]
    assert {"--quiet", "--candidates", "--output", "--seed"} <= set(strings)
    assert not {"-k", "--top-k", "-o", "--out"} & set(strings)


def test_calibration_keeps_platt_when_temperature_cannot_fit(tmp_path: Path) -> None:
    """A young head can score every pair above 0 while few are relevant: no temperature
    maps that to low probabilities, but Platt's bias does; it is written and applied."""
    import numpy as np

    from crossrank.calibration import load_calibration
    from crossrank.train.run import _fit_calibration

    labels = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    logits = 2.0 + 0.5 * labels + np.linspace(0.0, 0.1, labels.size)
    result = _fit_calibration(logits, labels, tmp_path / "cal.json", "m", dev_queries=2)
    assert "temperature" in result["errors"] and result["method"] == "platt"
    fitted = load_calibration(tmp_path / "cal.json")
    assert fitted.method == "platt" and fitted.apply(np.array([2.0]))[0] < 0.5
    none = _fit_calibration(-logits, labels, tmp_path / "none.json", "m", dev_queries=2)
    assert none["written"] is None and not (tmp_path / "none.json").exists()


def test_dense_first_stage_gives_the_candidates(beir_dir: Path, tiny_bi_encoder_dir: Path) -> None:
    from crossrank.train.mining import first_stage_candidates

    data = load_training_data(beir_dir)
    label, ranked, scores = first_stage_candidates(
        data.dataset, data.dev_ids, first_stage=f"dense:{tiny_bi_encoder_dir}", depth=5
    )
    assert label == f"dense:{tiny_bi_encoder_dir}"
    for qid in data.dev_ids:
        assert len(ranked[qid]) == 5 and set(ranked[qid]) == set(scores[qid])
        assert [scores[qid][d] for d in ranked[qid]] == sorted(scores[qid].values(), reverse=True)
