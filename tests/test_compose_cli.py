"""The composites and deadlines from the command line: ``crossrank rerank --scorer-config``
(a saved Ensemble or Cascade) and ``--deadline-ms`` (unscored records kept, in order), and
``crossrank serve --scorer-config`` refusing what does not go with it, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serve_kit import spread_model

from crossrank import CrossEncoderScorer
from crossrank.cli import main
from crossrank.compose import BiEncoderScorer, Cascade, Ensemble, scorer_to_config

DOCS = [
    {"id": "a", "text": "a study of cancer risk in patients"},
    {"id": "b", "text": "the dog"},
    {"id": "c", "text": "cells and genes"},
    {"id": "d", "text": "cancer patients and treatment"},
    {"id": "e", "text": "berlin is a city in germany"},
]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose-cli") / "docs.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n")
    return path


def _records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_rerank_with_a_saved_ensemble_and_cascade(
    docs: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_bi_encoder_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = spread_model(tmp_path_factory), spread_model(tmp_path_factory, seed=11)
    ensemble = Ensemble([CrossEncoderScorer(first, device="cpu"),
                         CrossEncoderScorer(second, device="cpu")])  # fmt: skip
    saved = tmp_path / "ensemble.json"
    saved.write_text(json.dumps(scorer_to_config(ensemble)))
    query = "cancer risk in patients"
    assert main(["rerank", "-q", query, "-i", str(docs), "--scorer-config", str(saved)]) == 0
    rows = _records(capsys.readouterr().out)
    want = ensemble.rerank(query, [d["text"] for d in DOCS])
    assert [r["id"] for r in rows] == [DOCS[h.index]["id"] for h in want.hits]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in want.hits])
    cascade = Cascade(BiEncoderScorer(str(tiny_bi_encoder_dir)), CrossEncoderScorer(first), keep=2)
    saved.write_text(json.dumps(scorer_to_config(cascade)))
    assert main(["rerank", "-q", query, "-i", str(docs), "--scorer-config", str(saved)]) == 0
    rows = _records(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]  # every record is written
    assert [r.get("unscored", False) for r in rows] == [False, False, True, True, True]
    assert all(r["score"] is None for r in rows[2:])


def test_rerank_deadline_keeps_the_unscored_records_in_order(
    docs: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    model = spread_model(tmp_path_factory)
    argv = ["rerank", "-q", "dog", "-i", str(docs), "-m", str(model), "--device", "cpu"]
    assert main([*argv, "--deadline-ms", "0.000001"]) == 0
    captured = capsys.readouterr()
    rows = _records(captured.out)
    assert [r["id"] for r in rows] == ["a", "b", "c", "d", "e"]  # the order given
    assert all(r["unscored"] and r["score"] is None for r in rows)
    assert "the deadline left 5 candidate(s) unscored" in captured.err
    assert main([*argv, "--deadline-ms", "60000"]) == 0
    assert all(isinstance(r["score"], float) for r in _records(capsys.readouterr().out))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scorer-config", "missing.json"], "--scorer-config: cannot read the scorer config"),
        (["--scorer-config", "{file}", "--batch-size", "4"],
         "--batch-size does not apply with --scorer-config"),
        (["--scorer-config", "{file}", "--url", "http://127.0.0.1:9"],
         "--scorer-config and --url exclude each other"),
    ],
)  # fmt: skip
def test_scorer_config_errors_are_one_line_naming_the_flag(
    docs: Path,
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    saved = tmp_path / "one.json"
    saved.write_text(json.dumps(scorer_to_config(CrossEncoderScorer(tiny_model_dir))))
    argv = ["rerank", "-q", "dog", "-i", str(docs), *[a.format(file=saved) for a in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_serve_refuses_a_saved_scorer_with_ray_and_a_deadline_it_cannot_keep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = tmp_path / "remote.json"
    saved.write_text(json.dumps({"type": "remote", "url": "http://127.0.0.1:9"}))
    assert main(["serve", "--ray", "--scorer-config", str(saved)]) == 2
    assert "--ray serves local models; --scorer-config" in capsys.readouterr().err
    argv = ["serve", "--scorer-config", str(saved), "--deadline-ms", "100", "--port", "0"]
    assert main(argv) == 2
    assert "--deadline-ms: the saved RemoteScorer keeps no deadline" in capsys.readouterr().err
