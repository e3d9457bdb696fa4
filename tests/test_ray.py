"""Scale-out on Ray: ``crossrank.scale`` (Ray Data, ``crossrank eval --engine ray``) and
``crossrank.serve.ray_app`` (``crossrank serve --ray``, Ray Serve).

Real Ray, no mocks: one local Ray for the whole module (2 CPUs, node on 127.0.0.1, no
dashboard), started in a thread under a deadline so a stuck start fails the tests instead
of hanging them, and shut down at the end. Each Ray test has its own timeout. What needs no
cluster (the batch scorer the actors run, the argument checks) is tested in-process.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from serve_kit import QUERIES, TEXTS, request_query, request_texts, spread_model

from crossrank import Calibration, CrossEncoderScorer
from crossrank.cli import main as cli_main
from crossrank.scale import _ScoreBatches, rerank_dataset, score_runs
from crossrank.serve.ray_app import DEPLOYMENT_NAME, ReplicaSettings, app_builder, build_app

ROOT = Path(__file__).resolve().parents[1]

# Ray's own deprecation notices (e.g. DataContext.get_current() in Ray 2.60), not ours.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray(\..*)?")

RAY_START_S = 60  # ray.init usually takes 5-20 s on 2 busy cores
RAY_TEST_S = 240  # per test, the module's Ray start included for the first one

_WORDS = (
    "cell cells protein gene genes cancer risk study studies patients treatment effect "
    "increase decrease blood brain heart drug dose"
).split()


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """A local Ray for this module: 2 CPUs, 127.0.0.1, no dashboard, under a deadline."""
    import ray
    from ray.data import DataContext

    assert not ray.is_initialized(), "another test left Ray running"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    errors: list[BaseException] = []
    started, stop = threading.Event(), threading.Event()

    def start() -> None:
        try:
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                object_store_memory=256 * 1024**2,
                log_to_driver=False,
                configure_logging=False,
            )
        except BaseException as e:  # re-raised in the test's thread below
            errors.append(e)
            return
        finally:
            started.set()
        # Ray's processes die with the thread that started them (PR_SET_PDEATHSIG):
        # keep it alive until the module is done.
        stop.wait()

    thread = threading.Thread(target=start, name="ray-init", daemon=True)
    thread.start()
    if not started.wait(RAY_START_S):
        pytest.fail(f"ray.init did not finish within {RAY_START_S} s")
    if errors:
        raise errors[0]
    context = DataContext.get_current()
    bars = context.enable_progress_bars
    context.enable_progress_bars = False
    try:
        yield
    finally:
        context.enable_progress_bars = bars
        ray.shutdown()
        stop.set()
        thread.join(10)


def _pairs(n_queries: int, per_query: int, seed: int = 0) -> list[dict[str, Any]]:
    """Rows (qid, i, query, text); some texts are longer than the tiny model's 128 tokens."""
    rng = random.Random(seed)
    rows = []
    for q in range(n_queries):
        query = " ".join(rng.sample(_WORDS, 3))
        for i in range(per_query):
            words = rng.choices(_WORDS, k=rng.choice([4, 12, 40, 150]))
            rows.append({"qid": q, "i": i, "query": query, "text": " ".join(words)})
    return rows


def _local(scorer: CrossEncoderScorer, rows: list[dict[str, Any]]) -> dict[tuple[int, int], Any]:
    """{(qid, i): (score, truncated)} from one local score_details call per query."""
    out: dict[tuple[int, int], Any] = {}
    for qid in sorted({r["qid"] for r in rows}):
        mine = [r for r in rows if r["qid"] == qid and r["text"]]
        details = scorer.score_details(mine[0]["query"], [r["text"] for r in mine])
        for r, score, cut in zip(mine, details.scores, details.truncated, strict=True):
            out[(qid, r["i"])] = (score, cut)
    return out


# ---------------------------------------------------------------------- no cluster needed


def test_the_actors_batch_scorer_groups_rows_by_query_and_skips_blank_texts(
    tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    rows = _pairs(3, 6)
    random.Random(1).shuffle(rows)  # queries interleaved in the batch
    rows[1]["text"], rows[4]["text"], rows[7]["text"] = "", None, "   "
    batch = pd.DataFrame(rows)
    batch.loc[9, "text"] = float("nan")  # pandas' other spelling of a missing string
    columns = {"query": "query", "text": "text", "score": "score", "truncated": "truncated",
               "windows": "windows"}  # fmt: skip
    scorer = _ScoreBatches({"model": str(tiny_model_dir), "device": "cpu"}, columns, "skip")
    out = scorer(batch)
    assert "score" not in batch.columns  # the batch passed in is left as it was
    assert list(out.columns) == [*batch.columns, "score", "truncated", "windows"]
    blank = {1, 4, 7, 9}
    for row in blank:
        assert math.isnan(out.loc[row, "score"])
        assert not out.loc[row, "truncated"] and out.loc[row, "windows"] == 0
    rows_left = [r for j, r in enumerate(rows) if j not in blank]
    expected = _local(tiny_scorer, rows_left)
    for j, r in enumerate(rows):
        if j in blank:
            continue
        score, cut = expected[(r["qid"], r["i"])]
        assert out.loc[j, "score"] == pytest.approx(score, abs=1e-5)
        assert bool(out.loc[j, "truncated"]) == cut
        assert out.loc[j, "windows"] == 1
    assert out["truncated"].any() and not out["truncated"].all()


def test_the_actors_batch_scorer_reads_each_rows_instruction(family_kit: Any) -> None:
    """With ``instruction_column``, rows are scored per (query, instruction), a null
    instruction being the scorer's (here the checkpoint's saved default prompt)."""
    from family_kit import DOCUMENTS, QUERY

    folder = family_kit.path("qwen3-causal")
    other = "Find the abstracts that contradict the claim"
    plan = [other, None, "", other, None, ""]
    rows = [
        {"query": QUERY, "text": DOCUMENTS[i], "task": plan[i % len(plan)]}
        for i in range(len(DOCUMENTS))
    ]
    columns = {"query": "query", "text": "text", "score": "score", "truncated": None,
               "windows": None, "instruction": "task"}  # fmt: skip
    options = {"model": str(folder), "device": "cpu", "activation": "raw"}
    out = _ScoreBatches(options, columns, "skip")(pd.DataFrame(rows))
    local = CrossEncoderScorer(**options)
    for instruction in (other, None, ""):
        picked = [i for i, r in enumerate(rows) if r["task"] == instruction]
        want = local.score(QUERY, [DOCUMENTS[i] for i in picked], instruction=instruction)
        assert out.loc[picked, "score"].tolist() == pytest.approx(want, abs=1e-5)
    assert out.loc[0, "score"] != pytest.approx(local.score(QUERY, [DOCUMENTS[0]])[0], abs=1e-3)
    with pytest.raises(ValueError, match="instruction_column='task' must hold strings or nulls"):
        _ScoreBatches(options, columns, "skip")(
            pd.DataFrame({"query": [QUERY], "text": ["a"], "task": [3]})
        )
    with pytest.raises(ValueError, match=r"instruction_column='task' is not a column"):
        _ScoreBatches(options, columns, "skip")(pd.DataFrame({"query": [QUERY], "text": ["a"]}))


def test_the_actors_batch_scorer_refuses_what_it_cannot_score(tiny_model_dir: Path) -> None:
    columns: dict[str, str | None] = {"query": "q", "text": "text", "score": "score",
                                      "truncated": None, "windows": None}  # fmt: skip
    options = {"model": str(tiny_model_dir), "device": "cpu"}
    strict = _ScoreBatches(options, columns, "error")
    with pytest.raises(ValueError, match=r"1 row\(s\) of query 'cell' have no text"):
        strict(pd.DataFrame({"q": ["cell", "cell"], "text": ["gene", ""]}))
    lenient = _ScoreBatches(options, columns, "skip")
    with pytest.raises(ValueError, match="query_column='q' must hold non-blank strings"):
        lenient(pd.DataFrame({"q": ["cell", " "], "text": ["gene", "dose"]}))
    with pytest.raises(ValueError, match=r"score_column='score' is already a column"):
        lenient(pd.DataFrame({"q": ["cell"], "text": ["gene"], "score": [1.0]}))
    with pytest.raises(ValueError, match=r"query_column='q' is not a column .* \['query'"):
        lenient(pd.DataFrame({"query": ["cell"], "text": ["gene"]}))


def test_score_runs_without_candidates_starts_no_ray(tiny_model_dir: Path) -> None:
    import ray

    assert score_runs({"q": ("cell", [])}, model=tiny_model_dir)["q"].scores == []
    assert not ray.is_initialized()
    with pytest.raises(TypeError, match=r"unknown CrossEncoderScorer option\(s\) \['top_k'\]"):
        score_runs({"q": ("cell", [])}, model=tiny_model_dir, top_k=3)


def test_without_ray_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ImportError, match=r'pip install "crossrank\[ray\]"') as info:
        rerank_dataset(object(), model=tiny_model_dir)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, ImportError)


def test_eval_engine_flags_need_the_ray_engine(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["eval", "--data", "nowhere", "--concurrency", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        "crossrank eval: error: --ray-address, --concurrency and --cpus-per-actor need "
        "--engine ray"
    )
    assert cli_main(["eval", "--data", "nowhere", "--engine", "spark"]) == 2
    assert "--engine: invalid choice: 'spark'" in capsys.readouterr().err


def test_app_builder_reads_the_documented_serve_run_config(tiny_model_dir: Path) -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((ROOT / "docs" / "ray_serve.yaml").read_text())
    ServeDeploySchema.model_validate(config)  # a valid `serve deploy` config
    (app,) = config["applications"]
    assert app["import_path"] == "crossrank.serve.ray_app:app_builder"
    assert app["deployments"][0]["name"] == DEPLOYMENT_NAME
    args = {**app["args"], "model": str(tiny_model_dir)}
    assert type(app_builder(args)).__name__ == "Application"
    with pytest.raises(ValueError, match="unrecognized arguments: --workers 2"):
        app_builder({**args, "workers": 2})
    with pytest.raises(ValueError, match="--max-batch-requests: must be an integer >= 1"):
        app_builder({**args, "max_batch_requests": 0})


def test_serve_ray_flags_are_checked_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import ray

    assert cli_main(["serve", "--ray", "-m", str(tmp_path / "missing")]) == 1
    assert "there is no folder at" in capsys.readouterr().err
    assert not ray.is_initialized()
    assert cli_main(["serve", "--replicas", "2"]) == 2
    assert capsys.readouterr().err.strip() == "crossrank serve: error: --replicas needs --ray"
    both = ["serve", "--ray", "--replicas", "2", "--autoscaling", '{"max_replicas": 3}']
    assert cli_main(both) == 2
    assert "--replicas and --autoscaling are both given" in capsys.readouterr().err
    assert cli_main(["serve", "--ray", "--autoscaling", "[1]"]) == 2
    assert "--autoscaling: must be a JSON object, got '[1]'" in capsys.readouterr().err


# ---------------------------------------------------------------------- Ray Data


@pytest.mark.timeout(RAY_TEST_S)
def test_rerank_dataset_checks_its_arguments_before_anything_runs(
    ray_session: None, tiny_model_dir: Path
) -> None:
    import ray

    ds = ray.data.from_items([{"query": "cell", "text": "gene"}])
    with pytest.raises(TypeError, match=r"ds must be a ray\.data\.Dataset, got list"):
        rerank_dataset([{"query": "cell"}], model=tiny_model_dir)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"unknown CrossEncoderScorer option\(s\) \['top_n'\]"):
        rerank_dataset(ds, model=tiny_model_dir, top_n=3)
    with pytest.raises(ValueError, match="batch_size must be"):
        rerank_dataset(ds, model=tiny_model_dir, batch_size=0)
    with pytest.raises(ValueError, match=r"concurrency must be .* got \(3, 1\)"):
        rerank_dataset(ds, model=tiny_model_dir, concurrency=(3, 1))
    with pytest.raises(ValueError, match="score_column and text_column are both 'text'"):
        rerank_dataset(ds, model=tiny_model_dir, score_column="text")
    with pytest.raises(ValueError, match="blank_text must be 'skip' or 'error'"):
        rerank_dataset(ds, model=tiny_model_dir, blank_text="zero")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ray_remote_args must not set \['compute'\]"):
        rerank_dataset(ds, model=tiny_model_dir, ray_remote_args={"compute": None})


@pytest.mark.timeout(RAY_TEST_S)
def test_rerank_dataset_equals_local_scoring_on_200_rows(
    ray_session: None, tiny_model_dir: Path, tiny_scorer: CrossEncoderScorer
) -> None:
    import ray

    rows = _pairs(10, 20, seed=2)
    rows[5]["text"] = ""
    ds = ray.data.from_items(rows, override_num_blocks=4)
    # 64-row batches: some queries are split between two batches, and two actors.
    scored = rerank_dataset(
        ds, model=tiny_model_dir, device="cpu", concurrency=2, rows_per_batch=64,
        windows_column="windows",
    ).take_all()  # fmt: skip
    assert len(scored) == 200
    expected = _local(tiny_scorer, rows)
    got = {(r["qid"], r["i"]): r for r in scored}
    assert got[(0, 5)]["score"] is None and got[(0, 5)]["windows"] == 0  # null: not scored
    del got[(0, 5)]
    assert got.keys() == expected.keys()
    for key, row in got.items():
        score, cut = expected[key]
        assert row["score"] == pytest.approx(score, abs=1e-5), key
        assert bool(row["truncated"]) == cut
        assert row["windows"] == 1
        assert row["text"] == rows[key[0] * 20 + key[1]]["text"]  # every column kept
    assert any(cut for _, cut in expected.values())


@pytest.mark.integration
@pytest.mark.timeout(RAY_TEST_S)
def test_eval_engine_ray_equals_the_cores_scores_on_scifact(
    ray_session: None,
    scifact: Any,
    scifact_dir: Path,
    scifact_candidates: dict[str, list[tuple[str, float]]],
    shared_scorer: CrossEncoderScorer,
    shared_model_dir: Path,
    tmp_path: Path,
) -> None:
    from crossrank.eval.metrics import evaluate

    # The first 3 judged queries' BM25 top 10, as a TREC run: no BM25 index built here.
    qids = sorted(scifact_candidates)[:3]
    run = tmp_path / "bm25.run"
    run.write_text("".join(
        f"{q} Q0 {d} {rank} {score} bm25\n"
        for q in qids for rank, (d, score) in enumerate(scifact_candidates[q][:10], start=1)
    ))  # fmt: skip
    out = tmp_path / "ray.json"
    code = cli_main([
        "eval", "--data", str(scifact_dir), "--run", str(run), "--candidates", "10",
        "--limit-queries", "3", "-m", str(shared_model_dir), "--device", "cpu",
        "--engine", "ray", "--concurrency", "1", "--quiet", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["settings"]["engine"] == "ray"
    assert report["settings"]["engine_options"] == {"concurrency": 1, "num_cpus": 1}
    ray_row = report["rows"][1]
    assert ray_row["stage"] == "reranked" and ray_row["k"] == 10
    assert ray_row["backend"] == "torch" and ray_row["latency_p50_ms"] is None
    assert ray_row["pairs_per_second"] > 0
    # The same metrics as the core's own scores of those candidates.
    core = {}
    for q in qids:
        ids = [d for d, _ in scifact_candidates[q][:10]]
        scores = shared_scorer.score(scifact.queries[q], [scifact.doc_text(d) for d in ids])
        core[q] = dict(zip(ids, scores, strict=True))
    want = evaluate(core, {q: scifact.qrels[q] for q in qids}, ["ndcg@10", "mrr@10"])
    assert ray_row["ndcg@10"] == pytest.approx(want["ndcg@10"], abs=1e-9)
    assert ray_row["mrr@10"] == pytest.approx(want["mrr@10"], abs=1e-9)


# ---------------------------------------------------------------------- Ray Serve

#: The served settings (and the plain server's): chunk mode with short windows and
#: calibrated scores, as in test_serve_http.py, so those paths are the ones compared.
SERVE_SETTINGS: dict[str, Any] = {
    "device": "cpu",
    "long_documents": "chunk",
    "max_length": 40,
    "max_windows": 3,
    "activation": "calibrated",
    "calibration": Calibration("platt", 2.0, -1.0),
}
SERVE_LIMITS = {"max_documents": 50, "max_chars": 40_000, "max_tokens": 3000}
LONG = " ".join([TEXTS[3]] * 12)  # more windows than max_windows


@pytest.fixture(scope="module")
def spread_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_model(tmp_path_factory)


@pytest.fixture(scope="module")
def ray_served(ray_session: None, spread_model_dir: Path) -> Iterator[str]:
    """The app on Ray Serve (one replica), HTTP on 127.0.0.1 and a free port."""
    from ray import serve

    with socket.socket() as probe:  # a free port (Serve's proxy binds it itself)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ReplicaSettings(
        scorer_options={"model": str(spread_model_dir), **SERVE_SETTINGS},
        limits=SERVE_LIMITS,
        max_batch_requests=16,
        batch_wait_timeout_s=0.1,  # long enough that a burst of requests shares batches
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_app(settings=settings), name="crossrank-test", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def plain_served(spread_model_dir: Path) -> Iterator[str]:
    """The plain server (crossrank serve) with the same settings, for the comparison."""
    from crossrank.serve import Limits, create_app, running_server

    scorer = CrossEncoderScorer(spread_model_dir, **SERVE_SETTINGS)
    with running_server(create_app(scorer, limits=Limits(**SERVE_LIMITS))) as running:
        yield running.url


def _same(ray_answer: Any, plain_answer: Any, where: str = "") -> None:
    """Equal JSON, scores within 1e-6 (batching noise), the Cohere response id aside."""
    if isinstance(plain_answer, dict):
        assert isinstance(ray_answer, dict) and set(ray_answer) == set(plain_answer), where
        for key in plain_answer:
            if key != "id":
                _same(ray_answer[key], plain_answer[key], f"{where}.{key}")
    elif isinstance(plain_answer, list):
        assert isinstance(ray_answer, list) and len(ray_answer) == len(plain_answer), where
        for i, (a, b) in enumerate(zip(ray_answer, plain_answer, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(plain_answer, float):
        assert ray_answer == pytest.approx(plain_answer, abs=1e-6), where
    else:
        assert ray_answer == plain_answer, where


@pytest.mark.timeout(RAY_TEST_S)
def test_ray_serve_answers_both_protocols_as_the_plain_server(
    ray_served: str, plain_served: str
) -> None:
    documents: list[Any] = [TEXTS[0], {"text": TEXTS[1], "id": "d1"}, *TEXTS[2:6], "", LONG]
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/rerank", {"query": QUERIES[0], "texts": [*TEXTS, LONG]}),
        ("/rerank", {"query": QUERIES[1], "texts": TEXTS, "raw_scores": True,
                     "return_text": True, "crossrank": {}}),
        ("/v1/rerank", {"model": "rerank-v3.5", "query": QUERIES[2], "documents": documents,
                        "top_n": 3, "return_documents": True}),
        ("/v1/rerank", {"query": QUERIES[3], "documents": documents,
                        "crossrank": {"skip_blank": True, "passages": True, "token_budget": 40}}),
        ("/v1/rerank", {"query": " ", "documents": TEXTS}),  # 422, the same error body
        ("/rerank", {"query": QUERIES[4], "texts": TEXTS * 7}),  # 413: over max_documents
        # A request's task instruction, vLLM's top-level field or crossrank's own.
        ("/rerank", {"query": QUERIES[5], "texts": TEXTS, "instruction": "find gene studies"}),
        ("/v1/rerank", {"query": QUERIES[5], "documents": TEXTS,
                        "crossrank": {"instruction": "find gene studies"}}),
    ]  # fmt: skip
    with httpx.Client(timeout=60.0) as client:
        assert client.get(ray_served + "/health").json() == {"status": "ok"}
        for path, body in requests:
            ray_answer = client.post(ray_served + path, json=body)
            plain_answer = client.post(plain_served + path, json=body)
            assert ray_answer.status_code == plain_answer.status_code, (path, ray_answer.text)
            _same(ray_answer.json(), plain_answer.json(), path)
        statuses = [client.post(ray_served + p, json=b).status_code for p, b in requests]
        info = client.get(ray_served + "/info").json()
    assert statuses == [200, 200, 200, 200, 422, 413, 200, 200]
    assert info["activation"] == "calibrated" and info["long_documents"] == "chunk"


@pytest.mark.timeout(RAY_TEST_S)
def test_ray_serve_scores_concurrent_requests_together_with_the_cores_scores(
    ray_served: str, spread_model_dir: Path
) -> None:
    from crossrank.eval.serve_bench import metrics_snapshot

    reference = CrossEncoderScorer(spread_model_dir, **SERVE_SETTINGS)
    n = 24

    def ask(i: int) -> list[float]:
        body = {"query": request_query(i), "texts": request_texts(i)}
        answer = httpx.post(ray_served + "/rerank", json=body, timeout=60.0)
        assert answer.status_code == 200, answer.text
        return [r["score"] for r in sorted(answer.json(), key=lambda r: r["index"])]

    before = metrics_snapshot(httpx.get(ray_served + "/metrics").text)
    with ThreadPoolExecutor(max_workers=12) as pool:
        got = list(pool.map(ask, range(n)))
    after = metrics_snapshot(httpx.get(ray_served + "/metrics").text)
    for i, scores in enumerate(got):
        want = reference.score(request_query(i), request_texts(i))
        assert scores == pytest.approx(want, abs=1e-5), i
    passes = after["crossrank_pass_requests_count"] - before["crossrank_pass_requests_count"]
    shared = after["crossrank_pass_requests_sum"] - before["crossrank_pass_requests_sum"]
    assert passes >= 1 and shared / passes > 1.0  # @serve.batch put requests together
