"""The command line with a provider: ``crossrank rerank --provider NAME[:MODEL] [--url]``
against the fake providers (tests/provider_kit.py), its one-line errors naming the flag (a
bad value, a missing key variable, a local model's flag beside a provider), and
``crossrank serve --provider`` run as a real process in front of a fake provider."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from provider_kit import KEY, FakeProviders
from serve_kit import QUERIES, TEXTS

from crossrank import CrossEncoderScorer, RemoteScorer
from crossrank.cli import main

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def candidates(tmp_path: Path) -> Path:
    path = tmp_path / "candidates.jsonl"
    rows = [{"id": f"d{i}", "text": t, "bm25": float(i % 3)} for i, t in enumerate(TEXTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_rerank_with_a_provider_writes_the_cores_ranking(
    fakes: FakeProviders,
    spread_scorer: CrossEncoderScorer,
    candidates: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", KEY)
    base = ["rerank", "-q", QUERIES[0], "-i", str(candidates), "--title-field", ""]
    code, out, err = _run(
        [*base, "--provider", "voyage:rerank-2.5-lite", "--url", fakes.url("voyage"), "-k", "3"],
        capsys,
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    want = spread_scorer.rerank(QUERIES[0], TEXTS, top_k=3)
    assert [r["id"] for r in rows] == [f"d{h.index}" for h in want.hits]
    np.testing.assert_allclose([r["score"] for r in rows], [h.score for h in want.hits], atol=1e-6)
    assert fakes.sent("voyage")[-1].body["model"] == "rerank-2.5-lite"
    # Fusion and the token budget run here, as with a local model.
    code, out, err = _run(
        [*base, "--provider", "voyage", "--url", fakes.url("voyage"), "--fusion", "rrf",
         "--first-stage-field", "bm25", "--token-budget", "12", "--tokenizer",
         spread_scorer.model_name],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    fused = spread_scorer.rerank(QUERIES[0], TEXTS, fusion="rrf", token_budget=12,
                         first_stage_scores=[float(i % 3) for i in range(len(TEXTS))])  # fmt: skip
    assert [json.loads(line)["id"] for line in out.splitlines()] == [
        f"d{h.index}" for h in fused.hits
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--provider", "openai"], "argument --provider: must be NAME[:MODEL] with NAME one of"),
        (["--provider", "cohere:"], "argument --provider: MODEL is empty in 'cohere:'"),
        (["--provider", "cohere"], "--provider cohere needs an API key: set the environment "
         "variable COHERE_API_KEY (or pass --provider-key-env VAR"),
        (["--provider", "voyage", "--provider-key-env", "NO_SUCH_KEY_VAR"],
         "the environment variable NO_SUCH_KEY_VAR is not set or empty"),
        (["--provider", "tei"], "--provider tei (text-embeddings-inference) is self-hosted: "
         "pass --url"),
        (["--provider", "jina", "--url", "http://127.0.0.1:1", "--max-length", "256"],
         "--max-length 256: --provider jina (Jina AI) takes no token limit"),
        (["--provider", "cohere", "--url", "http://127.0.0.1:1", "--route", "/v9"],
         "--route /v9 is not one of --provider cohere's routes"),
        (["--provider", "cohere", "--url", "127.0.0.1:1"], "--url must start with http://"),
        (["--provider", "cohere", "--url", "http://x", "-m", "my/model"],
         "--model is a local model's setting and does not apply with --provider cohere (name "
         "the model as --provider NAME:MODEL)"),
        (["--provider", "cohere", "--url", "http://x", "--batch-size", "8"],
         "--batch-size is a local model's setting"),
        (["--route", "/score"], "--route is only used with --provider or --url"),
        (["--provider", "voyage", "--url", "http://127.0.0.1:1", "--passage"],
         "--passage needs a crossrank serve (--url alone), which finds each text's best "
         "passage; --provider voyage returns one score per text"),
    ],
)  # fmt: skip
def test_bad_provider_flags_are_one_line_naming_the_flag(
    argv: list[str],
    message: str,
    candidates: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.setenv("VOYAGE_API_KEY", KEY)
    code, out, err = _run(["rerank", "-q", "q", "-i", str(candidates), *argv], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert KEY not in err


def test_serve_with_a_provider_forwards_to_it(
    fakes: FakeProviders, spread_scorer: CrossEncoderScorer, tmp_path: Path
) -> None:
    """``crossrank serve --provider cohere:rerank-v3.5 --url FAKE``, a real process on a free
    port: its clients get the provider's scores, the provider sees only the server's key."""
    env = {**os.environ, "COHERE_API_KEY": KEY, "CROSSRANK_SERVE_CLIENTS": "client-key"}
    argv = [sys.executable, "-m", "crossrank", "serve", "--provider", "cohere:rerank-v3.5",
            "--url", fakes.url("cohere"), "--port", "0", "--api-key-env",
            "CROSSRANK_SERVE_CLIENTS", "--log-level", "warning"]  # fmt: skip
    with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) as process:
        try:
            url = _wait_for_url(process, timeout=120)
            client = RemoteScorer(url, api_key_env="CROSSRANK_SERVE_CLIENTS_FOR_TEST", retries=0)
            scores = client.score(QUERIES[1], TEXTS)
            client.close()
            np.testing.assert_allclose(
                scores, spread_scorer.score(QUERIES[1], TEXTS), rtol=0, atol=1e-6
            )
            sent = {r.headers["authorization"] for r in fakes.sent("cohere")}
            assert sent == {f"Bearer {KEY}"}
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
    assert code == 0


def _wait_for_url(process: subprocess.Popen[str], timeout: float) -> str:
    """The address in ``crossrank serve``'s first stderr line."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            assert process.poll() is None, f"crossrank serve exited: {''.join(seen)}"
            continue
        seen.append(line)
        match = re.search(r"forwarding to cohere at \S+\) on (http://[\d.:]+)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"crossrank serve did not start in {timeout} s: {''.join(seen)}")


@pytest.fixture(autouse=True)
def _client_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSRANK_SERVE_CLIENTS_FOR_TEST", "client-key")
