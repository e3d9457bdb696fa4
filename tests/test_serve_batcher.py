"""The cross-request batcher (crossrank.serve.batcher) behind the scorer's row_forward hook:
callers share forward passes and each gets exactly its own rows' outputs; passes keep to
their budget; errors and closing reach every waiting caller. Real tiny model, no HTTP."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from serve_kit import QUERIES, TEXTS, request_texts, spread_model, wait_for

from crossrank import CrossEncoderScorer, ScoringError
from crossrank.batching import padded_width
from crossrank.serve.batcher import BatcherClosedError, PassStats, RowBatcher

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def spread_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_model(tmp_path_factory)


@pytest.fixture
def scorer(spread_dir: Path) -> CrossEncoderScorer:
    scorer = CrossEncoderScorer(spread_dir, device="cpu")
    scorer.warm_up()
    return scorer


def _rows(scorer: CrossEncoderScorer, query: str, texts: list[str]) -> list[list[int]]:
    """The token rows ``scorer`` runs for ``texts`` (every window it reads, in chunk mode)."""
    seen: list[list[int]] = []

    def record(loaded: object, features: dict[str, list[list[int]]]) -> list[float]:
        seen.extend(features["input_ids"])
        return [0.0] * len(features["input_ids"])

    scorer.row_forward = record
    try:
        scorer.score(query, texts)
    finally:
        scorer.row_forward = None
    return seen


def test_without_a_hook_the_scorer_batches_itself(scorer: CrossEncoderScorer) -> None:
    assert CrossEncoderScorer.row_forward is None and scorer.row_forward is None
    before = scorer.score(QUERIES[0], TEXTS)
    batcher = RowBatcher(max_wait_ms=0).start()
    scorer.row_forward = batcher.forward_rows
    try:
        hooked = scorer.score(QUERIES[0], TEXTS)
    finally:
        scorer.row_forward = None
        batcher.close()
    np.testing.assert_allclose(hooked, before, rtol=0, atol=1e-6)
    assert scorer.score(QUERIES[0], TEXTS) == before  # the default path, exactly as it was


@pytest.mark.parametrize("long_documents", ["truncate", "chunk"])
def test_concurrent_callers_share_passes_and_each_gets_its_own_rows(
    spread_dir: Path, long_documents: str
) -> None:
    kwargs = {
        "long_documents": long_documents,
        "max_length": 24 if long_documents == "chunk" else None,
    }
    reference = CrossEncoderScorer(spread_dir, device="cpu", **kwargs)  # type: ignore[arg-type]
    served = CrossEncoderScorer(spread_dir, device="cpu", **kwargs)  # type: ignore[arg-type]
    callers = 6
    queries = [f"{QUERIES[i]} {i}" for i in range(callers)]
    texts = [[*request_texts(i, 4), TEXTS[3] * 3] for i in range(callers)]
    expected = [reference.score(q, t) for q, t in zip(queries, texts, strict=True)]
    # Every caller's rows, and their padded widths: a pass holds rows of one width, and
    # waits (3 s here) for every caller's rows of that width.
    loaded = reference._model()
    widths = [
        {padded_width(len(r), loaded.max_length) for r in _rows(reference, q, t)}
        for q, t in zip(queries, texts, strict=True)
    ]
    rows = [reference.score_details(q, t).pairs for q, t in zip(queries, texts, strict=True)]
    passes: list[PassStats] = []
    batcher = RowBatcher(
        max_batch_rows=sum(rows), max_batch_tokens=None, max_wait_ms=3000, on_pass=passes.append
    ).start()
    served.warm_up()
    served.row_forward = batcher.forward_rows
    results: list[list[float] | None] = [None] * callers
    barrier = threading.Barrier(callers)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = served.score(queries[i], texts[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    batcher.close()
    # One pass per padded width, with every caller that has rows of that width.
    all_widths = set().union(*widths)
    assert len(passes) == len(all_widths)
    assert sorted(p.requests for p in passes) == sorted(
        sum(w in caller for caller in widths) for w in all_widths
    )
    assert max(p.requests for p in passes) > 1  # callers do share passes
    assert sum(p.rows for p in passes) == sum(rows)
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # type: ignore[arg-type]
    # The check could fail: each caller's scores differ from every other caller's.
    for i in range(callers):
        for j in range(i):
            assert np.max(np.abs(np.subtract(expected[i], expected[j]))) > 1e-4


def test_a_large_caller_is_spread_over_passes_within_the_budget(
    scorer: CrossEncoderScorer,
) -> None:
    loaded = scorer._model()
    texts = [request_texts(i, 1)[0] + " " + TEXTS[i % len(TEXTS)] for i in range(40)]
    enc = loaded.tokenizer([QUERIES[1]] * len(texts), texts, padding=False)
    features = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    longest = max(len(r) for r in features["input_ids"])
    passes: list[PassStats] = []
    batcher = RowBatcher(
        max_batch_rows=16, max_batch_tokens=8 * longest, max_wait_ms=0, on_pass=passes.append
    ).start()
    try:
        out = batcher.forward_rows(loaded, features)
    finally:
        batcher.close()
    assert len(passes) >= 3 and sum(p.rows for p in passes) == len(texts)
    assert all(p.rows <= 16 and p.padded_tokens <= 8 * longest for p in passes)
    np.testing.assert_allclose(
        out, scorer.score_details(QUERIES[1], texts, activation="raw").scores, atol=1e-5
    )


def test_a_failed_pass_reaches_its_callers_and_the_next_pass_runs(
    scorer: CrossEncoderScorer,
) -> None:
    loaded = scorer._model()
    vocab = loaded.tokenizer.vocab_size
    bad = {
        "input_ids": [[2, vocab + 50, 3]],
        "attention_mask": [[1, 1, 1]],
        "token_type_ids": [[0, 0, 0]],
    }
    batcher = RowBatcher(max_wait_ms=0).start()
    try:
        with pytest.raises(ScoringError) as info:  # torch's IndexError, as crossrank's error
            batcher.forward_rows(loaded, bad)
        assert isinstance(info.value.__cause__, IndexError)
        scorer.row_forward = batcher.forward_rows
        assert scorer.score(QUERIES[0], TEXTS[:2]) == pytest.approx(
            CrossEncoderScorer(scorer.model_name, device="cpu").score(QUERIES[0], TEXTS[:2]),
            abs=1e-6,
        )
    finally:
        scorer.row_forward = None
        batcher.close()


def test_closing_fails_waiting_callers_and_refuses_new_rows(scorer: CrossEncoderScorer) -> None:
    loaded = scorer._model()
    enc = loaded.tokenizer([QUERIES[0]], [TEXTS[0]], padding=False)
    features = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    # A pass that never fills and a wait of a minute: the caller waits until close().
    batcher = RowBatcher(max_batch_rows=1000, max_wait_ms=60_000).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            batcher.forward_rows(loaded, features)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=call)
    thread.start()
    wait_for(lambda: batcher.waiting_rows == 1, "the row to be queued")
    batcher.close()
    thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], BatcherClosedError)
    with pytest.raises(BatcherClosedError, match="not running"):
        batcher.forward_rows(loaded, features)
    assert batcher.forward_rows(loaded, {"input_ids": []}).shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_rows": 0}, "max_batch_rows must be >= 1"),
        ({"max_batch_rows": 2.5}, "max_batch_rows must be an int"),
        ({"max_batch_tokens": 0}, "max_batch_tokens must be an int >= 1 or None"),
        ({"max_wait_ms": -1}, "max_wait_ms must be between 0 and 60000"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        RowBatcher(**kwargs)  # type: ignore[arg-type]


def test_a_backend_with_streams_runs_each_pass_split_across_them(
    spread_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenVINO compiled for several streams: each pass is split into one batch per
    stream and run together; every caller still gets exactly its own rows."""
    pytest.importorskip("openvino", reason='needs pip install "crossrank[openvino]"')
    from crossrank.runtimes import openvino as openvino_export

    monkeypatch.setattr(openvino_export, "PERFORMANCE_HINT", "THROUGHPUT")
    reference = CrossEncoderScorer(spread_dir, device="cpu", backend="torch")
    served = CrossEncoderScorer(spread_dir, backend="openvino", onnx_cache_dir=tmp_path)
    if served._model().parallel < 2:
        pytest.skip("OpenVINO made one stream on this machine")
    passes: list[PassStats] = []
    batcher = RowBatcher(max_wait_ms=50, on_pass=passes.append).start()
    served.row_forward = batcher.forward_rows
    queries = [f"{QUERIES[i % len(QUERIES)]} {i}" for i in range(4)]
    texts = [request_texts(i, 5) for i in range(4)]
    got: dict[int, list[float]] = {}

    def call(i: int) -> None:
        got[i] = served.score(queries[i], texts[i])

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        served.row_forward = None
        batcher.close()
    for i in range(4):
        np.testing.assert_allclose(got[i], reference.score(queries[i], texts[i]), atol=1e-4)
    assert sum(p.rows for p in passes) == 20
