"""What ``crossrank eval`` compares beside single models: the system flags' parsing, the
providers it knows, and each system's rows on a tiny judged set with real tiny models and
the fake hosted providers (tests/provider_kit.py), whose reported usage gives the cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from provider_kit import KEY, FakeProviders
from serve_kit import spread_model

from crossrank import CrossEncoderScorer, RemoteScorer
from crossrank.compose import BiEncoderScorer, Cascade, Ensemble
from crossrank.eval.choice import budget_summary, mark_within_budget
from crossrank.eval.ensemble_rows import ensemble_cv_row
from crossrank.eval.metrics import evaluate
from crossrank.eval.system_rows import cost_per_1000, system_rows
from crossrank.eval.systems import (
    System,
    is_hosted,
    paid_calls_notice,
    parse_cascade,
    parse_member,
    parse_prices,
    parse_provider,
    parse_provider_urls,
    provider_scorer,
    requests_needed,
)
from crossrank.remote import PROVIDERS

ISSUE_PROVIDERS = ["cohere", "crossrank", "infinity", "jina", "mixedbread", "pinecone", "tei",
                   "vllm", "voyage"]  # fmt: skip


def test_every_provider_of_the_issue_is_known_by_name() -> None:
    assert sorted(PROVIDERS) == ISSUE_PROVIDERS
    assert {n for n in PROVIDERS if is_hosted(n)} == {
        "cohere", "jina", "voyage", "mixedbread", "pinecone"
    }  # fmt: skip
    for name in ISSUE_PROVIDERS:
        assert parse_provider(f"{name}:some-model") == (name, "some-model")
    assert parse_provider("cohere") == ("cohere", None)  # the provider's default model


@pytest.mark.parametrize(
    ("value", "message"),
    [(":m", r"NAME\[:MODEL\]"), ("acme:m", "unknown provider 'acme'")],
)
def test_a_bad_provider_is_named(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_provider(value)


def test_provider_scorers_and_what_they_need(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="COHERE_API_KEY"):
        provider_scorer("cohere", "rerank-v3.5")
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    hosted = provider_scorer("cohere", "rerank-v3.5")
    assert isinstance(hosted, RemoteScorer) and hosted.provider == "cohere"
    assert hosted.api_key_env == "COHERE_API_KEY" and KEY not in repr(hosted)
    with pytest.raises(ValueError, match="url"):
        provider_scorer("vllm", "bge-reranker-v2-m3")
    assert provider_scorer("tei", "bge", url="http://127.0.0.1:9").provider == "tei"
    systems = [
        System("cohere:rerank-v3.5", "provider", lambda: None, provider="cohere"),
        System("tei:bge", "provider", lambda: None, provider="tei"),
    ]
    notice = paid_calls_notice(systems, 300, [20, 50])
    assert notice is not None and "601 paid request(s)" in notice and "tei" not in notice
    assert paid_calls_notice(systems[1:], 300, [20]) is None


def test_urls_prices_and_cascades_parse() -> None:
    assert parse_provider_urls(["vllm=http://h:8000", "cohere=https://proxy"]) == {
        "vllm": "http://h:8000", "cohere": "https://proxy"
    }  # fmt: skip
    with pytest.raises(ValueError, match="NAME=URL"):
        parse_provider_urls(["vllm:8000"])
    assert parse_prices(["cohere:search_units=0.002"]) == {"cohere": ("search_units", 0.002)}
    for bad in ("cohere=0.002", "cohere:search_units=-1", "acme:units=1", "cohere:u=x"):
        with pytest.raises(ValueError, match="NAME:UNIT=USD"):
            parse_prices([bad])
    assert parse_cascade("small:big@20") == ("small", "big", 20)
    assert parse_cascade("dense:/models/bi:/models/ce@5") == ("dense:/models/bi", "/models/ce", 5)
    assert parse_cascade("dense:bi:cohere:rerank-v3.5@30") == (
        "dense:bi", "cohere:rerank-v3.5", 30
    )  # fmt: skip
    for bad in ("a:b", "a:b@0", "a@3", "a:b:c@3"):
        with pytest.raises(ValueError, match="CHEAP:EXPENSIVE@M"):
            parse_cascade(bad)


def test_members_are_models_bi_encoders_or_providers(tiny_model_dir: Path) -> None:
    built = parse_member(str(tiny_model_dir), lambda m: CrossEncoderScorer(m), {})
    assert isinstance(built, CrossEncoderScorer)
    assert isinstance(parse_member("dense:some/bi-encoder", str, {}), BiEncoderScorer)
    remote = parse_member("vllm:bge", str, {"vllm": "http://127.0.0.1:9"})
    assert isinstance(remote, RemoteScorer) and remote.model == "bge"


# ---------------------------------------------------------------------- rows

QUERIES = {
    "q1": "cancer risk in patients",
    "q2": "capital of france",
    "q3": "dog and cat",
}
DOCS = {
    "d1": "a study of cancer risk in patients",
    "d2": "paris is the capital of france",
    "d3": "the cat and the dog",
    "d4": "cells and genes",
    "d5": "berlin is a city in germany",
}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
CANDIDATES = {q: ["d4", "d5", "d1", "d2", "d3"] for q in QUERIES}  # the first stage's order


def _rows(system: System, **kwargs: Any) -> list[dict[str, Any]]:
    rows, _ = system_rows(
        system,
        queries=QUERIES,
        query_ids=sorted(QUERIES),
        candidates=CANDIDATES,
        texts={q: [DOCS[d] for d in ids] for q, ids in CANDIDATES.items()},
        qrels=QRELS,
        ks=[3, 5],
        **kwargs,
    )
    return rows


def test_a_provider_row_has_its_cost_from_the_usage_it_reports(
    fakes: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes.reset()
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    system = System(
        "cohere:rerank-v3.5",
        "provider",
        lambda: provider_scorer("cohere", "rerank-v3.5", url=fakes.url("cohere")),
        provider="cohere",
    )
    rows = _rows(system, price=("search_units", 0.002))
    assert len(fakes.sent("cohere")) == requests_needed(system, 3, [3, 5]) == 7
    assert system.paid
    by_k = {row["k"]: row for row in rows}
    assert by_k[5]["usage"]["search_units"] == 3.0 and by_k[5]["requests"] == 3
    assert by_k[5]["cost_per_1000_queries"] == pytest.approx(2.0)  # 1 unit a query
    assert by_k[3]["recall@k"] <= by_k[5]["recall@k"]
    assert cost_per_1000({"total_tokens": 10.0}, 3, ("search_units", 1.0)) is None
    assert cost_per_1000(None, 3, ("search_units", 1.0)) is None


def test_composite_and_deadline_rows_rank_what_the_scorer_returns(
    tmp_path_factory: pytest.TempPathFactory, tiny_bi_encoder_dir: Path
) -> None:
    model = spread_model(tmp_path_factory)
    other = spread_model(tmp_path_factory, seed=11)
    ensemble = System(
        "ens", "ensemble", lambda: Ensemble([CrossEncoderScorer(model, device="cpu"),
                                             CrossEncoderScorer(other, device="cpu")])
    )  # fmt: skip
    rows = _rows(ensemble)
    assert [r["k"] for r in rows] == [3, 5]
    assert all(r["cost_per_1000_queries"] is None for r in rows)
    assert rows[1]["pairs_per_document"] == 2.0  # both members read every candidate
    cascade = System(
        "cas", "cascade", lambda: Cascade(BiEncoderScorer(str(tiny_bi_encoder_dir)),
                                          CrossEncoderScorer(model, device="cpu"), keep=2)
    )  # fmt: skip
    assert _rows(cascade)[1]["pairs_per_document"] == pytest.approx(1.4)  # 5 + 2 of 5
    late = System("m", "model", lambda: CrossEncoderScorer(model, device="cpu"), model=str(model))
    rows = _rows(late.with_deadline(1e-6))
    assert rows[1]["system"] == "m @1e-06ms" and rows[1]["unscored_fraction"] == 1.0
    given_order = {q: {d: float(-i) for i, d in enumerate(ids)} for q, ids in CANDIDATES.items()}
    first_stage = evaluate(given_order, QRELS, ["ndcg@10"])["ndcg@10"]
    assert rows[1]["ndcg@10"] == pytest.approx(first_stage)  # nothing scored: as given



def test_the_ensemble_weight_is_chosen_on_other_folds() -> None:
    queries = [f"q{i}" for i in range(10)]
    candidates = {q: ["a", "b", "c", "d"] for q in queries}
    qrels = {q: {"c": 1} for q in queries}
    good = {q: [0.1, 0.3, 2.0, 0.2] for q in queries}  # ranks the relevant "c" first
    poor = {q: [3.0, 2.0, 0.5, 1.0] for q in queries}  # ranks it third
    timed = {"latency_p50_ms": 12.0, "latency_p95_ms": 20.0, "pairs_per_second": 100.0,
             "latency_queries": 10}  # fmt: skip
    row = ensemble_cv_row(
        "ens", candidates=candidates, first=good, second=poor, qrels=qrels, k=4, folds=5,
        timed=timed,
    )  # fmt: skip
    assert row["system"] == "ens cv" and row["stage"] == "ensemble-cv"
    assert row["ndcg@10"] == pytest.approx(1.0)
    assert all(w > 0.5 for w in row["ensemble"]["fold_weights"])  # the good member leads
    assert row["latency_p95_ms"] == 20.0
    flipped = ensemble_cv_row("ens", candidates=candidates, first=poor, second=good,
                              qrels=qrels, k=4, folds=5)  # fmt: skip
    assert flipped["ndcg@10"] == pytest.approx(1.0)
    assert all(w < 0.5 for w in flipped["ensemble"]["fold_weights"])


def test_the_best_system_within_the_latency_budget_is_marked() -> None:
    def row(system: str, k: int, ndcg: float, p95: float | None, stage: str = "reranked") -> Any:
        return {"system": system, "k": k, "ndcg@10": ndcg, "latency_p95_ms": p95, "stage": stage}

    rows = [
        row("bm25", 20, 0.60, None, "first_stage"),
        row("big", 20, 0.70, 300.0),
        row("small", 20, 0.65, 80.0),
        row("tiny", 20, 0.62, 20.0),
        row("big", 50, 0.72, 900.0),
    ]
    mark_within_budget(rows, 100)
    assert [r["best_within_budget"] for r in rows] == [False, False, True, False, False]
    assert [r["within_budget"] for r in rows] == [None, False, True, True, False]
    summary = budget_summary(rows, 100)
    assert "K=20: best within p95 <= 100 ms: small (NDCG@10 0.6500, p95 80.0 ms)" in summary
    assert "K=50: no system reranks within p95 <= 100 ms" in summary
    with pytest.raises(ValueError, match="latency budget"):
        mark_within_budget(rows, 0)


# ---------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_eval_harness import write_tiny_beir

    return write_tiny_beir(tmp_path_factory.mktemp("tiny-beir-systems"))


def test_eval_compares_two_local_models_and_a_fake_provider_in_one_table(
    tiny_beir: Path,
    tiny_model_dir: Path,
    tiny_two_logit_dir: Path,
    fakes: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from crossrank.cli import main as cli_main

    fakes.reset()
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    out, plot = tmp_path / "report.json", tmp_path / "tradeoff.png"
    code = cli_main(
        [
            "eval", "--data", str(tiny_beir), "--candidates", "8,3", "--latency-queries", "2",
            "--batch-size", "4", "--device", "cpu", "--backend", "torch",
            "--model", str(tiny_model_dir), "--model", str(tiny_two_logit_dir),
            "--provider", "cohere:rerank-v3.5", "--provider-url", f"cohere={fakes.url('cohere')}",
            "--price", "cohere:search_units=0.002", "--deadline-ms", "60000",
            "--latency-budget-ms", "60000", "--yes", "--quiet", "--out", str(out),
            "--plot", str(plot),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert "11 paid request(s)" in printed.err and KEY not in printed.err + printed.out
    assert len(fakes.sent("cohere")) == 5 * 2 + 1  # 5 judged queries x 2 K + a warm-up
    header = printed.out.splitlines()[0]
    assert "$/1k q" in header and "p95<=60000" in header
    report = json.loads(out.read_text())
    rows = {(r["system"], r["k"]): r for r in report["rows"]}
    names = {system for system, _ in rows}
    for model in (tiny_model_dir.name, tiny_two_logit_dir.name):
        assert model in names and f"{model} @60000ms" in names
    assert "cohere:rerank-v3.5 @60000ms" not in names  # paid: no deadline rows
    provider = rows[("cohere:rerank-v3.5", 8)]
    assert provider["cost_per_1000_queries"] == pytest.approx(2.0)  # 1 search unit a query
    assert provider["usage"]["search_units"] == 5.0
    assert sum(bool(r.get("best_within_budget")) for r in report["rows"]) == 2  # one per K
    assert report["settings"]["prices"] == {"cohere": ["search_units", 0.002]}
    assert "cpu_count" in report["machine"] and plot.stat().st_size > 0
    late = rows[(f"{tiny_model_dir.name} @60000ms", 8)]
    assert late["unscored_fraction"] == 0.0 and late["batch_p99_ms"] > 0


def test_eval_asks_before_paid_calls_and_sends_nothing_unconfirmed(
    tiny_beir: Path,
    tiny_model_dir: Path,
    fakes: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from crossrank.cli import main as cli_main

    fakes.reset()
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    argv = ["eval", "--data", str(tiny_beir), "--candidates", "3", "--device", "cpu",
            "--provider", "cohere", "--provider-url", f"cohere={fakes.url('cohere')}",
            "--quiet"]  # fmt: skip
    assert cli_main(argv) == 2  # stdin is not a terminal here: --yes is needed
    err = capsys.readouterr().err
    assert "crossrank eval will send 6 paid request(s)" in err
    assert "pass --yes to send the requests above" in err and "Traceback" not in err
    assert fakes.sent("cohere") == []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda _: "n")
    assert cli_main(argv) == 2 and fakes.sent("cohere") == []
    assert "not confirmed" in capsys.readouterr().err


def test_eval_ensemble_cascade_and_tuned_weight_rows(
    tiny_beir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_bi_encoder_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from crossrank.cli import main as cli_main

    first, second = spread_model(tmp_path_factory), spread_model(tmp_path_factory, seed=11)
    out = tmp_path / "report.json"
    code = cli_main(
        [
            "eval", "--data", str(tiny_beir), "--candidates", "8", "--device", "cpu",
            "--backend", "torch", "--model", str(first), "--model", str(second),
            "--ensemble", f"{first},{second}", "--tune-ensemble", "--folds", "2",
            "--cascade", f"dense:{tiny_bi_encoder_dir}:{first}@3", "--quiet", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    ensemble = f"ensemble({first.name}+{second.name})"
    assert ensemble in printed and f"{ensemble} cv" in printed
    assert f"cascade(dense:{tiny_bi_encoder_dir.name}>{first.name}@3)" in printed
    report = json.loads(out.read_text())
    cv = next(r for r in report["rows"] if r["stage"] == "ensemble-cv")
    assert len(cv["ensemble"]["fold_weights"]) == 2
    assert "held-out figure" in printed
    for bad, message in (
        (["--ensemble", str(first)], "--ensemble: must name two or more members"),
        (["--cascade", "a:b"], "--cascade: must be CHEAP:EXPENSIVE@M"),
        (["--provider", "acme:x"], "--provider: unknown provider 'acme'"),
        (["--price", "cohere=1"], "--price: must be NAME:UNIT=USD"),
    ):
        assert cli_main(["eval", "--data", str(tiny_beir), *bad]) == 2
        assert message in capsys.readouterr().err
