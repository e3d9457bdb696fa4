"""``crossrank bench --server URL``: a scoring server under concurrent clients, against the
same pairs scored in this process by one ``score()`` call.

Method (see docs/serving.md):

1. ``GET /info`` gives the served model and its settings; this process loads the same model
   with the same backend, batch size and max length (``--model`` names it where the
   server's path is not readable here).
2. ``C x R x N`` distinct synthetic texts of ``--doc-tokens`` tokens, one query.
3. **In-process**: one untimed warm-up call, then all texts in one ``score()`` call, timed
   before and after the server phase; the mean is the reference.
4. **Server**: one untimed request per client, then ``C`` concurrent clients each send
   ``R`` TEI requests (``raw_scores``) of ``N`` texts, one after another. Throughput is all
   pairs over the wall time; latency percentiles are per request; every answer is checked
   against the in-process scores of its own texts. ``/metrics`` before and after gives the
   requests and pairs per forward pass.
5. **Overload**: ``4 x max_queue`` requests at once, no retries: each must be answered 200
   (with its own scores) or 429, none lost; then ``/health`` must still be 200.

``--server local`` starts ``crossrank serve`` on a free port of 127.0.0.1 in a child process
(``--model`` required; queue ``2 x C``), and stops it with SIGTERM afterwards.

The command's flags are in :mod:`crossrank.eval.bench_cli`, its table in
:mod:`crossrank.eval.bench_report`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from crossrank.eval.bench_texts import SYNTHETIC_QUERY, synthetic_texts, token_count
from crossrank.eval.progress import quiet_truncation_warnings
from crossrank.eval.report import machine_info
from crossrank.runtimes.cpu import cpu_flags, cpu_summary

__all__ = ["MIXED_UP_TOLERANCE", "metrics_snapshot", "server_benchmark"]

#: A score that differs from the in-process one by more than this is "mixed up".
MIXED_UP_TOLERANCE = 1e-3


# ---------------------------------------------------------------------- the server


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _LocalServer:
    """``crossrank serve`` in a child process on a free port of 127.0.0.1."""

    def __init__(self, model: str, *, queue: int, batch_size: int, device: str) -> None:
        self.port = _free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "crossrank", "serve", "--model", model,
            "--host", "127.0.0.1", "--port", str(self.port), "--max-queue", str(queue),
            "--batch-size", str(batch_size), "--device", device, "--quiet",
        ]  # fmt: skip
        env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error"}
        # The child's stderr goes to a file (a pipe nobody reads could fill and block it).
        self.log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=self.log, text=True, env=env
        )
        self.exit_code: int | None = None

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().strip()[-500:]

    def wait_ready(self, timeout: float = 300.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"crossrank serve exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"crossrank serve on {self.url} was not ready after {timeout:.0f} s")

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (a graceful drain), then wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.exit_code = self.process.returncode
        self.log.close()
        return self.exit_code


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt for a while, so that a bench stopped by ``timeout``
    or ``kill`` still stops the server it started (its ``finally`` runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------- measuring


def metrics_snapshot(text: str) -> dict[str, float]:
    """The ``crossrank_*`` samples of a ``/metrics`` text, by name (labels summed)."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("crossrank_"):
                values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def _per_pass(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, Any]:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    passes = delta("crossrank_pass_requests_count")
    return {
        "forward_passes": int(passes),
        "requests_per_pass": delta("crossrank_pass_requests_sum") / passes if passes else None,
        "pairs_per_pass": delta("crossrank_pass_pairs_sum") / passes if passes else None,
    }


async def _clients(
    url: str,
    headers: dict[str, str],
    query: str,
    batches: list[list[list[str]]],
) -> tuple[float, list[float], list[list[float] | None]]:
    """Each client sends its batches one after another; all clients at once."""
    import httpx

    latencies: list[float] = []
    answers: list[list[float] | None] = [None] * sum(len(b) for b in batches)
    limits = httpx.Limits(max_connections=len(batches), max_keepalive_connections=len(batches))
    async with httpx.AsyncClient(timeout=600.0, headers=headers, limits=limits) as client:

        async def one(client_id: int) -> None:
            base = sum(len(b) for b in batches[:client_id])
            for j, texts in enumerate(batches[client_id]):
                started = time.perf_counter()
                response = await client.post(
                    url + "/rerank", json={"query": query, "texts": texts, "raw_scores": True}
                )
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                answers[base + j] = _scores_in_order(response.json(), len(texts))

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(batches))))
        wall = time.perf_counter() - started
    return wall, latencies, answers


def _scores_in_order(results: Any, n: int) -> list[float] | None:
    try:
        by_index = {int(r["index"]): float(r["score"]) for r in results}
    except (TypeError, KeyError, ValueError):
        return None
    if sorted(by_index) != list(range(n)):
        return None
    return [by_index[i] for i in range(n)]


async def _burst(
    url: str, headers: dict[str, str], query: str, requests: list[list[str]]
) -> list[tuple[int | None, list[float] | None]]:
    """All requests at once, no retries: (status or None if lost, scores of a 200)."""
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=600.0, headers=headers, limits=limits) as client:

        async def one(texts: list[str]) -> tuple[int | None, list[float] | None]:
            try:
                response = await client.post(
                    url + "/rerank", json={"query": query, "texts": texts, "raw_scores": True}
                )
            except httpx.HTTPError:
                return None, None
            if response.status_code != 200:
                return response.status_code, None
            return 200, _scores_in_order(response.json(), len(texts))

        return list(await asyncio.gather(*(one(t) for t in requests)))


def _max_diff(answers: Sequence[list[float] | None], expected: Sequence[list[float]]) -> float:
    worst = 0.0
    for got, want in zip(answers, expected, strict=True):
        if got is None:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(np.asarray(got) - np.asarray(want)))))
    return worst


def server_benchmark(
    server: str,
    *,
    model: str | None = None,
    concurrency: int = 16,
    candidates: int = 20,
    doc_tokens: int = 256,
    requests_per_client: int = 10,
    batch_size: int = 32,
    device: str = "cpu",
    api_key: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure a server (``server``: its URL, or ``"local"``); see the module's method.

    Returns:
        The report: ``settings``, ``machine`` (with the load average before and after),
        ``server`` (its ``/info``), ``in_process``, ``served``, ``ratio``, ``batching``
        (requests and pairs per forward pass) and ``overload``.
    """
    import httpx

    if server == "local":
        if not model:
            raise ValueError("--server local needs --model (the model the server loads)")
    elif not server.startswith(("http://", "https://")):
        raise ValueError(f"--server must be http(s)://HOST:PORT or 'local', got {server!r}")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    load_before = os.getloadavg()
    local = None
    with _sigterm_as_interrupt():
        try:
            if model and server == "local":
                local = _LocalServer(
                    model, queue=2 * concurrency, batch_size=batch_size, device=device
                )
                _note(progress, f"starting crossrank serve on {local.url} ...")
                local.wait_ready()
            url = local.url if local is not None else server.rstrip("/")
            with httpx.Client(timeout=60.0, headers=headers) as client:
                info = client.get(url + "/info")
                info.raise_for_status()
                report = _measure(
                    url, client, headers, info.json(), model, concurrency, candidates,
                    doc_tokens, requests_per_client, device, seed, progress,
                )  # fmt: skip
        finally:
            exit_code = local.stop() if local is not None else None
    report["machine"]["load_average_before"] = list(load_before)
    report["machine"]["load_average_after"] = list(os.getloadavg())
    report["settings"]["server"] = server
    if local is not None:
        report["local_server_exit_code"] = exit_code
    return report


def _note(progress: bool, message: str) -> None:
    if progress:
        print(f"crossrank bench: {message}", file=sys.stderr, flush=True)


def _measure(
    url: str,
    client: Any,
    headers: dict[str, str],
    info: dict[str, Any],
    model: str | None,
    concurrency: int,
    candidates: int,
    doc_tokens: int,
    requests_per_client: int,
    device: str,
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from crossrank.scorer import CrossEncoderScorer

    model = model or info["model"]
    tokenizer = AutoTokenizer.from_pretrained(model)
    n_requests = concurrency * requests_per_client
    query = SYNTHETIC_QUERY
    texts = synthetic_texts(tokenizer, n_requests * candidates, doc_tokens, seed=seed)
    special = int(tokenizer.num_special_tokens_to_add(pair=True))
    if token_count(tokenizer, query) + doc_tokens + special > int(info["max_length"]):
        raise ValueError(
            f"--doc-tokens {doc_tokens} does not fit beside the query in the server's "
            f"max_length={info['max_length']}; lower --doc-tokens"
        )
    chunks = [texts[i * candidates : (i + 1) * candidates] for i in range(n_requests)]
    batches = [
        chunks[c * requests_per_client : (c + 1) * requests_per_client] for c in range(concurrency)
    ]
    scorer = CrossEncoderScorer(
        model,
        device=device,
        backend=info.get("backend", "torch"),
        batch_size=int(info.get("batch_size", 32)),
        max_length=int(info["max_length"]),
        activation="raw",
    )

    def in_process() -> tuple[float, list[float]]:
        with quiet_truncation_warnings():
            started = time.perf_counter()
            scores = scorer.score(query, texts)
            return time.perf_counter() - started, scores

    _note(progress, f"in process: {len(texts)} pairs in one score() call ...")
    with quiet_truncation_warnings():
        scorer.score(query, texts[: min(len(texts), 64)])  # warm-up, untimed
    first, expected_all = in_process()
    expected = [expected_all[i * candidates : (i + 1) * candidates] for i in range(n_requests)]

    _note(progress, f"server: {concurrency} clients x {requests_per_client} requests ...")
    asyncio.run(_clients(url, headers, query, [[b[0]] for b in batches]))  # warm-up
    before = metrics_snapshot(client.get(url + "/metrics").text)
    wall, latencies, answers = asyncio.run(_clients(url, headers, query, batches))
    after = metrics_snapshot(client.get(url + "/metrics").text)
    second, _ = in_process()

    max_queue = int(info.get("limits", {}).get("max_queue", 128))
    burst = [chunks[i % n_requests] for i in range(4 * max_queue)]
    _note(progress, f"overload: {len(burst)} requests at once (4 x max_queue={max_queue}) ...")
    outcomes = asyncio.run(_burst(url, headers, query, burst))
    healthy = client.get(url + "/health").status_code == 200
    ok = [(i, s) for i, (code, s) in enumerate(outcomes) if code == 200]
    mixed = sum(
        1
        for i, got in ok
        if got is None
        or float(np.max(np.abs(np.asarray(got) - np.asarray(expected[i % n_requests]))))
        > MIXED_UP_TOLERANCE
    )

    pairs = len(texts)
    in_process_seconds = (first + second) / 2
    served_pps = pairs / wall
    inproc_pps = pairs / in_process_seconds
    lat = np.asarray(latencies) * 1000
    diff = _max_diff(answers, expected)
    return {
        "command": "bench --server",
        "settings": {
            "model": model,
            "concurrency": concurrency,
            "candidates": candidates,
            "doc_tokens": doc_tokens,
            "requests_per_client": requests_per_client,
            "device": device,
            "seed": seed,
        },
        "machine": {**machine_info(device), "cpu": cpu_summary(), "cpu_flags": cpu_flags()},
        "server": info,
        "in_process": {
            "pairs": pairs,
            "seconds": [first, second],
            "pairs_per_second": inproc_pps,
        },
        "served": {
            "pairs": pairs,
            "requests": n_requests,
            "wall_seconds": wall,
            "pairs_per_second": served_pps,
            "latency_p50_ms": float(np.percentile(lat, 50)),
            "latency_p95_ms": float(np.percentile(lat, 95)),
            "latency_p99_ms": float(np.percentile(lat, 99)),
            "max_abs_score_diff_vs_in_process": diff,
            "mixed_up": sum(
                1
                for got, want in zip(answers, expected, strict=True)
                if got is None
                or float(np.max(np.abs(np.asarray(got) - np.asarray(want)))) > MIXED_UP_TOLERANCE
            ),
        },
        "ratio_served_vs_in_process": served_pps / inproc_pps,
        "batching": _per_pass(before, after),
        "overload": {
            "requests": len(burst),
            "max_queue": max_queue,
            "ok": len(ok),
            "rejected_429": sum(1 for code, _ in outcomes if code == 429),
            "other_status": sorted({code for code, _ in outcomes if code not in (200, 429, None)}),
            "lost": sum(1 for code, _ in outcomes if code is None),
            "mixed_up": mixed,
            "healthy_after": healthy,
        },
    }
