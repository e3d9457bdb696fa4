"""``crossrank bench``: time reranking N candidates for one query with every backend
crossrank offers and with sentence-transformers' ``CrossEncoder.predict`` (the engine under
most peer rerankers), in one process.

Method (see ``docs/evaluation.md``):

- **Timing**, in this process: every variant is loaded and warmed up (one untimed call on
  the same candidates), then the variants take turns, one call each per repeat, the
  starting variant rotating between repeats (so none is always first). Median and p95 of
  the per-call seconds; ``ratio_vs_sentence_transformers`` is the reference's median over
  the variant's (> 1 means faster than sentence-transformers).
- **Cold start and peak memory**, one fresh child process per variant, run one after
  another before the timing: from before ``import`` to a loaded model (``cold_start_s``),
  the first call on the candidates (``first_score_s``) and the child's peak resident set
  size (``getrusage(RUSAGE_SELF).ru_maxrss``).
- **Peer variants** (sentence-transformers ``onnx`` and ``openvino``, whose optimum needs
  an older transformers) can run in another environment's Python (``--peer-python``): a
  :class:`PeerWorker` there (``peer_worker.py``, run by path) is their fresh process for
  the cold start and then takes its turns in the interleaved timing, each call timed
  inside the worker.

Variants are registered in :data:`VARIANTS` (name -> :class:`Variant`); a new backend adds
one with :func:`register_variant` at import time of this module, and every bench then
includes it.

The CLI wires it with :func:`register` (``add_bench_arguments``, ``run_bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from crossrank._cli.argtypes import positive_int
from crossrank._cli.parser import add_subcommand
from crossrank.eval.progress import hf_progress_bars, progress_bar, quiet_truncation_warnings
from crossrank.eval.report import align_table, machine_info, write_json
from crossrank.probe import cpu_flags, cpu_summary

__all__ = [
    "PEER_PYTHON_ENV",
    "REFERENCE",
    "VARIANTS",
    "BenchConfig",
    "PeerWorker",
    "PeerWorkerError",
    "ScorerLike",
    "Variant",
    "add_bench_arguments",
    "benchmark",
    "format_bench_table",
    "padding_waste",
    "register",
    "register_variant",
    "resolve_peer_python",
    "run_bench",
    "synthetic_texts",
]


class ScorerLike(Protocol):
    """What a bench variant must offer: one score per text, in order."""

    def score(self, query: str, texts: Sequence[str]) -> Sequence[float]:
        """Score each text against the query."""
        ...


@dataclass(frozen=True)
class BenchConfig:
    """What a variant factory receives.

    Attributes:
        model: Model id or folder.
        batch_size: Pairs per forward pass.
        device: Torch device string.
    """

    model: str
    batch_size: int
    device: str
    onnx_cache_dir: str | None = None


@dataclass(frozen=True)
class Variant:
    """One way of scoring, timed by the bench.

    Attributes:
        name: Short unique name, used in tables and JSON.
        description: One line: engine, precision, device handling.
        factory: Builds a loaded :class:`ScorerLike` (imports its heavy modules inside, so
            the cold-start figure includes them).
    """

    name: str
    description: str
    factory: Callable[[BenchConfig], ScorerLike]
    unavailable: Callable[[BenchConfig], str | None] | None = None
    """Returns why the variant cannot run with this config (then it is skipped), or None."""
    peer_backend: str | None = None
    """A sentence-transformers backend: with a peer Python (``--peer-python``) the variant
    runs as ``CrossEncoder(model, backend=peer_backend)`` in that environment's
    :class:`PeerWorker` instead of ``factory`` here (``unavailable`` is then not asked)."""


def _crossrank(backend: str) -> Callable[[BenchConfig], ScorerLike]:
    def factory(config: BenchConfig) -> ScorerLike:
        from crossrank.scorer import CrossEncoderScorer

        scorer = CrossEncoderScorer(
            config.model,
            device=config.device,
            batch_size=config.batch_size,
            backend=backend,  # type: ignore[arg-type]
            onnx_cache_dir=config.onnx_cache_dir,
        )
        scorer.warm_up()
        return scorer

    return factory


def _needs_onnx(config: BenchConfig) -> str | None:
    from crossrank.backends import onnx_available

    if not str(config.device).startswith("cpu"):
        return "the ONNX backends run on the CPU"
    return None if onnx_available() else 'needs pip install "crossrank[onnx]"'


def _needs_bf16(config: BenchConfig) -> str | None:
    from crossrank.backends import cpu_has_native_bf16

    if str(config.device).startswith("cpu") and not cpu_has_native_bf16():
        return "this CPU has no native bf16 (AVX512-BF16/AMX); emulated bf16 is far slower"
    return None


def _needs_cuda(config: BenchConfig) -> str | None:
    return None if str(config.device).startswith("cuda") else "needs a CUDA device"


def _needs_openvino(backend: str) -> Callable[[BenchConfig], str | None]:
    def check(config: BenchConfig) -> str | None:
        from crossrank.openvino_export import openvino_available, openvino_supports_bf16

        if not str(config.device).startswith("cpu"):
            return "the OpenVINO backends run on the CPU"
        if not openvino_available(backend):
            return 'needs pip install "crossrank[openvino]"'
        if backend == "openvino-bf16" and not openvino_supports_bf16():
            return "this CPU has no native bf16 (AVX512-BF16/AMX)"
        return None

    return check


def _needs_optimum(backend: str) -> Callable[[BenchConfig], str | None]:
    """sentence-transformers' ONNX and OpenVINO backends load through optimum (optimum-onnx,
    optimum-intel); they are skipped, with the import error, where those do not import."""
    module = "optimum.onnxruntime" if backend == "onnx" else "optimum.intel.openvino"
    package = "optimum-onnx[onnxruntime]" if backend == "onnx" else "optimum-intel[openvino]"

    def check(config: BenchConfig) -> str | None:
        import importlib

        if not str(config.device).startswith("cpu"):
            return f"sentence-transformers backend={backend!r} is timed on the CPU"
        try:
            importlib.import_module(module)
        except Exception as e:  # an incompatible optimum raises more than ImportError
            return (
                f"sentence-transformers backend={backend!r} needs {package}, which does not "
                f"import here ({type(e).__name__}: {str(e)[:120]}); run it in another "
                "environment with --peer-python (docs/backends.md)"
            )
        return None

    return check


class _SentenceTransformersScorer:
    """sentence-transformers ``CrossEncoder.predict``, as the peers call it.

    ``backend="onnx"`` and ``"openvino"`` are its fastest documented CPU paths: the model is
    exported on load by optimum (``export=True`` when the folder holds no exported file).
    """

    def __init__(self, config: BenchConfig, backend: str = "torch") -> None:
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(config.model, device=config.device, backend=backend)
        self._batch_size = config.batch_size

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        scores = self._model.predict(
            [(query, t) for t in texts], batch_size=self._batch_size, show_progress_bar=False
        )
        return [float(s) for s in scores]


def _sentence_transformers(backend: str) -> Callable[[BenchConfig], ScorerLike]:
    def factory(config: BenchConfig) -> ScorerLike:
        return _SentenceTransformersScorer(config, backend)

    return factory


#: Name of the reference variant that ratios are computed against.
REFERENCE = "sentence-transformers-fp32"

#: Every variant the bench times, in table order (the reference last).
VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> None:
    """Add a variant to :data:`VARIANTS` (before the reference); its name must be new."""
    if variant.name in VARIANTS:
        raise ValueError(f"a bench variant named {variant.name!r} is already registered")
    reference = VARIANTS.pop(REFERENCE, None)
    VARIANTS[variant.name] = variant
    if reference is not None:
        VARIANTS[REFERENCE] = reference


register_variant(
    Variant(
        "crossrank-torch-fp32",
        "crossrank core (CrossEncoderScorer), PyTorch fp32",
        _crossrank("torch"),
    )
)
register_variant(
    Variant(
        "crossrank-torch-bf16",
        "crossrank core, PyTorch bfloat16",
        _crossrank("torch-bf16"),
        _needs_bf16,
    )
)
register_variant(
    Variant(
        "crossrank-torch-fp16",
        "crossrank core, PyTorch float16",
        _crossrank("torch-fp16"),
        _needs_cuda,
    )
)
register_variant(
    Variant(
        "crossrank-onnx-fp32",
        "crossrank core, onnxruntime fp32 (exported, cached)",
        _crossrank("onnx"),
        _needs_onnx,
    )
)
register_variant(
    Variant(
        "crossrank-onnx-int8",
        "crossrank core, onnxruntime int8 dynamic quantization (per-channel)",
        _crossrank("onnx-int8"),
        _needs_onnx,
    )
)
register_variant(
    Variant(
        "crossrank-openvino-fp32",
        "crossrank core, OpenVINO fp32 (converted, cached)",
        _crossrank("openvino"),
        _needs_openvino("openvino"),
    )
)
register_variant(
    Variant(
        "crossrank-openvino-bf16",
        "crossrank core, OpenVINO with bf16 inference precision",
        _crossrank("openvino-bf16"),
        _needs_openvino("openvino-bf16"),
    )
)
register_variant(
    Variant(
        "crossrank-openvino-int8",
        "crossrank core, OpenVINO int8 (NNCF static quantization, built-in calibration)",
        _crossrank("openvino-int8"),
        _needs_openvino("openvino-int8"),
    )
)
register_variant(
    Variant(
        "crossrank-auto",
        "crossrank core, backend='auto' (the probe's choice on this machine)",
        _crossrank("auto"),
    )
)
register_variant(
    Variant(
        "sentence-transformers-onnx",
        "sentence-transformers CrossEncoder(backend='onnx'), exported by optimum",
        _sentence_transformers("onnx"),
        _needs_optimum("onnx"),
        peer_backend="onnx",
    )
)
register_variant(
    Variant(
        "sentence-transformers-openvino",
        "sentence-transformers CrossEncoder(backend='openvino'), exported by optimum-intel",
        _sentence_transformers("openvino"),
        _needs_optimum("openvino"),
        peer_backend="openvino",
    )
)
register_variant(
    Variant(
        REFERENCE,
        "sentence-transformers CrossEncoder.predict, fp32",
        _sentence_transformers("torch"),
    )
)


# ---------------------------------------------------------------------- candidates

#: Plain English words for synthetic documents (every one is at least one token).
_WORDS = (
    "the a of and to in is was for on that with as by at from are this be which or an "
    "it were has not have their also its these between after been more than other both "
    "cell cells protein gene genes expression patients study studies risk cancer effect "
    "increase decrease blood brain heart drug dose treatment clinical trial mice human "
    "levels activity function response disease therapy tissue tumor growth signal pathway "
    "receptor binding mutation infection immune virus bacteria muscle liver kidney lung "
    "sample data analysis model results evidence association higher lower significant "
    "reduced increased observed measured compared during within across population age "
    "women men children years week day time rate change role factor mechanism process"
).split()

_SYNTHETIC_QUERY = "what is the effect of the drug dose on blood cells in patients with cancer"


def _token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def _trim(tokenizer: Any, text: str, n_tokens: int) -> str:
    """Cut ``text`` after its first ``n_tokens`` tokens (at a token boundary)."""
    offsets = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
    )[
        "offset_mapping"
    ]
    if len(offsets) <= n_tokens:
        return text
    return text[: offsets[n_tokens - 1][1]]


def synthetic_texts(tokenizer: Any, n: int, n_tokens: int, *, seed: int = 0) -> list[str]:
    """``n`` deterministic documents of exactly ``n_tokens`` tokens each (for ``tokenizer``).

    Words are drawn with ``random.Random(seed)`` from a fixed list; each document is cut at
    a token boundary after ``n_tokens`` tokens.
    """
    rng = random.Random(seed)
    return [
        _trim(tokenizer, " ".join(rng.choice(_WORDS) for _ in range(n_tokens)), n_tokens)
        for _ in range(n)
    ]


def _corpus_texts(
    data: str | os.PathLike[str], split: str, tokenizer: Any, n: int, n_tokens: int
) -> tuple[str, list[str]]:
    """The first judged query (by id) and the first ``n`` corpus documents that reach
    ``n_tokens`` tokens (then shorter ones, in corpus order), each cut to ``n_tokens``."""
    from crossrank.eval.data import load_beir

    dataset = load_beir(Path(data), split)
    query = dataset.queries[sorted(dataset.queries)[0]]
    long_enough: list[str] = []
    short: list[str] = []
    for doc_id in dataset.corpus:
        text = _trim(tokenizer, dataset.doc_text(doc_id), n_tokens)
        if not text.strip():
            continue
        (long_enough if _token_count(tokenizer, text) >= n_tokens else short).append(text)
        if len(long_enough) >= n:
            break
    return query, (long_enough + short)[:n]


# ---------------------------------------------------------------------- measuring


def _stats(seconds: Sequence[float], pairs: int) -> dict[str, Any]:
    arr = np.asarray(seconds, dtype=np.float64)
    median = float(np.median(arr))
    return {
        "median_s": median,
        "p95_s": float(np.percentile(arr, 95)),
        "mean_s": float(arr.mean()),
        "min_s": float(arr.min()),
        "pairs_per_second": pairs / median if median > 0 else None,
        "times_s": [float(s) for s in arr],
    }


_CHILD_CODE = (
    "import time; _t0 = time.perf_counter()\n"
    "import sys\n"
    "from crossrank.eval.bench import _child_main\n"
    "_child_main(_t0, sys.argv[1])\n"
)
_CHILD_MARK = "CROSSRANK_BENCH_CHILD "


def _child_main(t0: float, job_path: str) -> None:
    """In a fresh process: load one variant, score once, print cold start and peak RSS."""
    import resource

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    config = BenchConfig(**job["config"])
    scorer = VARIANTS[job["variant"]].factory(config)
    loaded = time.perf_counter()
    with quiet_truncation_warnings():
        scorer.score(job["query"], job["texts"])
    done = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB
    result = {
        "cold_start_s": loaded - t0,
        "first_score_s": done - loaded,
        "peak_rss_mb": rss_bytes / 2**20,
    }
    print(_CHILD_MARK + json.dumps(result), flush=True)


def _measure_in_child(
    variant: str, config: BenchConfig, query: str, texts: list[str], folder: Path
) -> dict[str, Any]:
    job = folder / f"{variant}.json"
    job.write_text(
        json.dumps({"variant": variant, "config": vars(config), "query": query, "texts": texts}),
        encoding="utf-8",
    )
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD_CODE, str(job)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_CHILD_MARK):
            result: dict[str, Any] = json.loads(line[len(_CHILD_MARK) :])
            return result
    raise RuntimeError(
        f"the cold-start/memory child process for {variant!r} failed "
        f"(exit code {proc.returncode}):\n{proc.stderr[-2000:]}"
    )


# ---------------------------------------------------------------------- peer environment

#: Environment variable holding the default of ``--peer-python``.
PEER_PYTHON_ENV = "CROSSRANK_BENCH_PEER_PYTHON"

_PEER_WORKER = Path(__file__).with_name("peer_worker.py")
_PEER_MARK = "CROSSRANK_PEER "  # peer_worker.MARK (that file cannot import crossrank)


class PeerWorkerError(RuntimeError):
    """A peer worker answered with an error, stopped, or did not answer in time."""


class PeerWorker:
    """sentence-transformers in another Python environment: ``peer_worker.py`` run by path
    with that environment's interpreter, spoken to in JSON lines over its stdin and stdout.

    Every wait has a deadline (``timeout_s``): a worker that does not answer in time is
    killed and a :class:`PeerWorkerError` names the variant and the end of its stderr.
    :meth:`close` (also on ``with`` exit) always ends the process.

    Args:
        python: The peer environment's interpreter.
        variant: The bench variant it runs (named in errors).
        timeout_s: Seconds to wait for each answer (a load includes the export).
    """

    def __init__(self, python: str, variant: str, *, timeout_s: float = 600.0) -> None:
        self.python = python
        self.variant = variant
        self.timeout_s = timeout_s
        self.versions: dict[str, str | None] = {}
        self._stderr = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error")
        self._proc = subprocess.Popen(
            [python, str(_PEER_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=os.name == "posix",  # its own group: killed as a whole
        )
        self._answers: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"peer-{variant}", daemon=True)
        self._reader.start()
        self._closed = False

    def __enter__(self) -> PeerWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        mark = _PEER_MARK.encode()
        for line in stdout:
            if line.startswith(mark):  # libraries may print; only marked lines are answers
                self._answers.put(line[len(mark) :])
        self._answers.put(None)

    def stderr_tail(self, lines: int = 5, chars: int = 800) -> str:
        """The last lines of the worker's stderr, on one line (`` | `` between them)."""
        try:
            self._stderr.flush()
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 8192))
            text = self._stderr.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):  # already closed
            return ""
        tail = " | ".join(s.strip() for s in text.splitlines() if s.strip())
        tail = " | ".join(tail.split(" | ")[-lines:])
        return tail[-chars:]

    def _failure(self, what: str) -> PeerWorkerError:
        tail = self.stderr_tail()
        return PeerWorkerError(
            f"the peer worker for {self.variant!r} ({self.python}) {what}"
            + (f"; its stderr ends: {tail}" if tail else "; its stderr is empty")
        )

    def request(self, payload: Mapping[str, Any], what: str) -> dict[str, Any]:
        """Send one request and return its answer (``ok`` true), within ``timeout_s``."""
        if self._closed:
            raise PeerWorkerError(f"the peer worker for {self.variant!r} is closed")
        deadline = time.monotonic() + self.timeout_s
        data = (json.dumps(payload) + "\n").encode("utf-8")
        stdin = self._proc.stdin
        assert stdin is not None
        errors: list[BaseException] = []

        def write() -> None:  # in a thread: a worker that reads nothing fills the pipe
            try:
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError) as e:
                errors.append(e)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(self.timeout_s)
        try:
            if writer.is_alive():
                raise TimeoutError
            line = self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
        except (TimeoutError, queue.Empty):
            self.kill()
            raise self._failure(
                f"did not answer {what} within {self.timeout_s:g} s and was stopped"
            ) from None
        if line is None:
            code = self._proc.wait()
            raise self._failure(f"exited (code {code}) before answering {what}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            error = " ".join(str(answer.get("error", "unknown error")).split())
            raise PeerWorkerError(f"{what} failed in {self.python}: {error[:600]}")
        return answer

    def load(
        self, model: str, backend: str, *, batch_size: int, device: str, query: str,
        texts: Sequence[str],
    ) -> dict[str, Any]:  # fmt: skip
        """Load ``CrossEncoder(model, backend=backend)`` there and score ``texts`` once.

        Returns the cold start as the bench's cold-start children report it
        (``cold_start_s``: from the worker's start to a loaded model; ``first_score_s``;
        ``peak_rss_mb``); the worker's package versions are kept in :attr:`versions`.
        """
        answer = self.request(
            {
                "op": "load",
                "model": model,
                "backend": backend,
                "batch_size": batch_size,
                "device": device,
                "query": query,
                "texts": list(texts),
            },
            f"the load of {model} with backend={backend!r}",
        )
        self.versions = dict(answer.get("versions") or {})
        return {k: answer[k] for k in ("cold_start_s", "first_score_s", "peak_rss_mb")}

    def score(self, query: str, texts: Sequence[str]) -> tuple[list[float], float]:
        """The scores and the seconds the worker spent in ``predict`` (pipe not counted)."""
        answer = self.request({"op": "score", "query": query, "texts": list(texts)}, "a score")
        return [float(s) for s in answer["scores"]], float(answer["seconds"])

    def kill(self) -> None:
        """End the worker (and anything it started) now."""
        if self._proc.poll() is None:
            try:
                if os.name == "posix":
                    os.killpg(self._proc.pid, signal.SIGKILL)
                else:  # pragma: no cover
                    self._proc.kill()
            except ProcessLookupError:
                pass
        self._proc.wait()

    def close(self) -> None:
        """Ask the worker to quit; kill it if it has not within 5 s. Idempotent."""
        if self._closed:
            return
        self._closed = True
        stdin = self._proc.stdin
        try:
            if self._proc.poll() is None and stdin is not None:
                try:
                    stdin.write(b'{"op": "quit"}\n')
                    stdin.flush()
                    stdin.close()
                except (OSError, ValueError):
                    pass
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self.kill()
            if stdin is not None:
                try:
                    stdin.close()
                except (OSError, ValueError):  # a broken pipe, or a blocked writer's
                    pass
            self._reader.join(timeout=5)  # the pipe's end, now that the worker is gone
            if self._proc.stdout is not None and not self._reader.is_alive():
                self._proc.stdout.close()
            self._stderr.close()


class _PeerScorer:
    """A :class:`PeerWorker` as a bench scorer; ``last_seconds`` is the worker's own timing
    of the last call, which the bench records instead of the round trip."""

    def __init__(self, worker: PeerWorker) -> None:
        self.worker = worker
        self.last_seconds: float | None = None

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        scores, self.last_seconds = self.worker.score(query, texts)
        return scores


def resolve_peer_python(peer_python: str | os.PathLike[str] | None) -> str | None:
    """The peer interpreter to use: ``peer_python``, else ``$CROSSRANK_BENCH_PEER_PYTHON``,
    else None. A bare name is looked up on PATH.

    Raises:
        ValueError: It does not exist or is not an executable file.
    """
    given = "" if peer_python is None else os.fspath(peer_python)
    from_env = not given
    value = os.environ.get(PEER_PYTHON_ENV, "") if from_env else given
    if not value:
        return None
    where = f" (from ${PEER_PYTHON_ENV})" if from_env else ""
    path = os.path.expanduser(value)
    if os.sep not in path and not os.path.exists(path):
        path = shutil.which(path) or path
    if not os.path.exists(path):
        raise ValueError(
            f"peer_python{where} must be a Python interpreter; {value!r} does not exist"
        )
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ValueError(
            f"peer_python{where} must be a Python interpreter; {value!r} is not an "
            "executable file"
        )
    return os.path.abspath(path)


def _peer_unavailable(config: BenchConfig) -> str | None:
    if not str(config.device).startswith("cpu"):
        return "the sentence-transformers peer variants are timed on the CPU"
    return None


def _measure(
    names: list[str],
    config: BenchConfig,
    query: str,
    texts: list[str],
    repeats: int,
    progress: bool,
    peer: tuple[str, float] | None,
    workers: dict[str, PeerWorker],
    skip: Callable[[str, str], None],
) -> tuple[dict[str, dict[str, Any]], dict[str, list[float]], dict[str, list[float]], Any]:
    """Cold start of every variant, then the interleaved timing. With ``peer`` (its python
    and timeout), the variants with a ``peer_backend`` start a :class:`PeerWorker` each,
    which ``workers`` receives (the caller closes them); one that fails to load is passed
    to ``skip`` with the reason and left out."""
    # Cold start and peak RSS, one fresh process per variant, before any timing. The
    # children get an empty export cache, so their cold start includes the first export
    # (and for auto, the probe); auto then starts once more on the filled cache. A peer
    # variant's fresh process is its worker, which stays up for the timing.
    cold: dict[str, dict[str, Any]] = {}
    bar = progress_bar(len(names), "cold start", enabled=progress)
    with tempfile.TemporaryDirectory(prefix="crossrank-bench-") as tmp, bar:
        cold_config = BenchConfig(
            model=config.model,
            batch_size=config.batch_size,
            device=config.device,
            onnx_cache_dir=f"{tmp}/onnx",
        )
        for name in names:
            backend = VARIANTS[name].peer_backend
            if peer is not None and backend is not None:
                worker = workers[name] = PeerWorker(peer[0], name, timeout_s=peer[1])
                try:
                    cold[name] = worker.load(
                        config.model, backend, batch_size=config.batch_size,
                        device=config.device, query=query, texts=texts,
                    )  # fmt: skip
                except PeerWorkerError as e:
                    worker.close()
                    del workers[name]
                    skip(name, f"failed in the peer environment: {e}")
            else:
                cold[name] = _measure_in_child(name, cold_config, query, texts, Path(tmp))
            if name == "crossrank-auto":
                again = _measure_in_child(name, cold_config, query, texts, Path(tmp))
                cold[name]["second_start_s"] = again["cold_start_s"]
                # Its peak RSS without the probe (which holds every candidate backend).
                cold[name]["second_peak_rss_mb"] = again["peak_rss_mb"]
            bar.update(1)
    names = [n for n in names if n in cold]

    # Interleaved timing in this process, after an untimed warm-up call per variant. A peer
    # variant's call is timed by its worker (``last_seconds``: predict, not the pipe).
    scorers: dict[str, ScorerLike] = {
        name: _PeerScorer(workers[name]) if name in workers else VARIANTS[name].factory(config)
        for name in names
    }
    seconds: dict[str, list[float]] = {name: [] for name in names}
    scores: dict[str, list[float]] = {}
    bar = progress_bar(repeats * len(names), "timing", enabled=progress)
    with quiet_truncation_warnings(), bar:
        for name in names:
            scores[name] = [float(s) for s in scorers[name].score(query, texts)]
        for r in range(repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                t = time.perf_counter()
                scorers[name].score(query, texts)
                elapsed = time.perf_counter() - t
                own = getattr(scorers[name], "last_seconds", None)
                seconds[name].append(elapsed if own is None else own)
                bar.update(1)
    auto = scorers.get("crossrank-auto")
    decision = getattr(auto._model(), "decision", None) if auto is not None else None  # type: ignore[attr-defined]
    del scorers
    return cold, seconds, scores, decision


def benchmark(
    model: str | None = None,
    *,
    candidates: int = 100,
    doc_tokens: int = 256,
    repeats: int = 10,
    data: str | os.PathLike[str] | None = None,
    split: str = "test",
    batch_size: int = 32,
    device: str = "cpu",
    variants: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    peer_python: str | os.PathLike[str] | None = None,
    peer_timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Time reranking ``candidates`` texts for one query with every variant.

    Example:
        >>> from crossrank.eval.bench import benchmark, format_bench_table
        >>> print(format_bench_table(benchmark("cross-encoder/ms-marco-MiniLM-L6-v2")))

    Args:
        model: Cross-encoder id or folder (default: ``CROSSRANK_MODEL``, else the core's).
        candidates: Texts scored per call.
        doc_tokens: Tokens per text (synthetic texts have exactly this many; corpus texts
            are cut to it).
        repeats: Timed calls per variant.
        data: A BEIR folder to take the query and texts from instead of synthetic text.
        split: The qrels split whose first query (by id) is used with ``data``.
        batch_size: Pairs per forward pass, for every variant.
        device: Torch device for every variant.
        variants: Names from :data:`VARIANTS` to time (default: all); the reference is
            always included.
        seed: Seed of the synthetic text.
        progress: Show a progress bar on stderr.
        peer_python: Another environment's Python interpreter (default:
            ``$CROSSRANK_BENCH_PEER_PYTHON``) in which the variants with a ``peer_backend``
            (sentence-transformers' ``onnx`` and ``openvino``) run, each in a
            :class:`PeerWorker`: its cold start is the worker's, and its timed calls, in the
            same interleaved loop, are the seconds the worker spent in ``predict``.
        peer_timeout_s: Seconds to wait for each answer of a peer worker (a load includes
            the export).

    Returns:
        The report: ``settings``, ``machine``, ``input``, ``reference`` and ``variants``
        (one entry each, see ``docs/evaluation.md``).

    Raises:
        ValueError: On bad settings, an unknown variant, a ``peer_python`` that is not an
            executable file, a variant asked for that cannot run here (a peer one whose
            worker fails to load too), or texts that would not fit the model's
            ``max_length`` beside the query.
        PeerWorkerError: A peer worker failed or did not answer in time while timed.
    """
    from transformers import AutoTokenizer

    from crossrank.scorer import DEFAULT_MODEL, CrossEncoderScorer

    for name, value in (
        ("candidates", candidates),
        ("doc_tokens", doc_tokens),
        ("repeats", repeats),
        ("batch_size", batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not peer_timeout_s > 0:
        raise ValueError(f"peer_timeout_s must be > 0, got {peer_timeout_s!r}")
    peer = resolve_peer_python(peer_python)
    names = list(VARIANTS) if not variants else list(dict.fromkeys([*variants, REFERENCE]))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown bench variant(s) {unknown}; known: {list(VARIANTS)}")
    model = model or os.environ.get("CROSSRANK_MODEL") or DEFAULT_MODEL
    config = BenchConfig(model=model, batch_size=batch_size, device=device)
    skipped: dict[str, str] = {}

    def in_peer(name: str) -> bool:
        return peer is not None and VARIANTS[name].peer_backend is not None

    def skip(name: str, reason: str) -> None:
        if variants and name in variants:
            raise ValueError(f"bench variant {name!r} cannot run here: {reason}")
        skipped[name] = reason

    for name in names:
        check = _peer_unavailable if in_peer(name) else VARIANTS[name].unavailable
        reason = None if check is None else check(config)
        if reason is not None:
            skip(name, reason)
    names = [n for n in names if n not in skipped]

    # The model's pair limit, through the core (its errors name the model and what to do).
    probe = CrossEncoderScorer(model, device="cpu", backend="torch")  # no auto probe here
    limit = probe.max_length
    del probe
    tokenizer = AutoTokenizer.from_pretrained(model)
    if data is None:
        query = _SYNTHETIC_QUERY
        texts = synthetic_texts(tokenizer, candidates, doc_tokens, seed=seed)
    else:
        query, texts = _corpus_texts(data, split, tokenizer, candidates, doc_tokens)
    query_tokens = _token_count(tokenizer, query)
    special = int(tokenizer.num_special_tokens_to_add(pair=True))
    lengths = [_token_count(tokenizer, t) for t in texts]
    if query_tokens + max(lengths) + special > limit:
        raise ValueError(
            f"doc_tokens must leave the pair within the model's {limit} tokens: the query has "
            f"{query_tokens} tokens and there are {special} special tokens, so use "
            f"--doc-tokens <= {limit - query_tokens - special}, got {doc_tokens}"
        )
    # Peer workers (another environment) live until the timing is done, whatever happens.
    workers: dict[str, PeerWorker] = {}
    try:
        cold, seconds, scores, decision = _measure(
            names, config, query, texts, repeats, progress,
            None if peer is None else (peer, peer_timeout_s), workers, skip,
        )  # fmt: skip
    finally:
        for worker in workers.values():
            worker.close()
    names = [n for n in names if n not in skipped]
    peers = {
        name: {"python": peer, "versions": worker.versions} for name, worker in workers.items()
    }

    rows = []
    reference = _stats(seconds[REFERENCE], len(texts))
    ref_scores = np.asarray(scores[REFERENCE], dtype=np.float64)
    # sentence-transformers' predict applies sigmoid to one-logit models, as the core does.
    for name in names:
        stats = _stats(seconds[name], len(texts))
        mine = np.asarray(scores[name], dtype=np.float64)
        diff = float(np.max(np.abs(mine - ref_scores)))
        rows.append(
            {
                "name": name,
                "description": VARIANTS[name].description,
                **stats,
                "ratio_vs_sentence_transformers": reference["median_s"] / stats["median_s"],
                **cold[name],
                **({"peer": peers[name]} if name in peers else {}),
                "max_abs_score_diff_vs_reference": diff,
                "spearman_vs_reference": _spearman(mine, ref_scores),
                "top10_overlap_vs_reference": len(
                    set(np.argsort(-mine, kind="stable")[:10].tolist())
                    & set(np.argsort(-ref_scores, kind="stable")[:10].tolist())
                ),
            }
        )
    return {
        "command": "bench",
        "settings": {
            "model": model,
            "candidates": candidates,
            "doc_tokens": doc_tokens,
            "repeats": repeats,
            "batch_size": batch_size,
            "device": device,
            "data": None if data is None else str(data),
            "split": split if data is not None else None,
            "seed": seed,
            "peer_python": peer,
        },
        "machine": {**machine_info(device), "cpu": cpu_summary(), "cpu_flags": cpu_flags()},
        "auto": None if decision is None else decision.to_json() | {"source": decision.source},
        "input": {
            "source": "synthetic" if data is None else "corpus",
            "query": query,
            "query_tokens": query_tokens,
            "num_texts": len(texts),
            "text_tokens_min": min(lengths),
            "text_tokens_mean": sum(lengths) / len(lengths),
            "text_tokens_max": max(lengths),
            "model_max_length": limit,
            **padding_waste(
                [query_tokens + n + special for n in lengths], batch_size, max_tokens=None
            ),
        },
        "reference": REFERENCE,
        "variants": rows,
        "skipped": skipped,
    }


def padding_waste(
    pair_lengths: Sequence[int], batch_size: int, *, max_tokens: int | None = None
) -> dict[str, float]:
    """The share of padded token positions that are padding, for the core's length-sorted
    batches (:func:`crossrank.batching.plan_batches`) and for batches in input order (what
    an engine that does not sort pads)."""
    from crossrank.batching import plan_batches

    def waste(batches: list[list[int]]) -> float:
        padded = sum(len(b) * max(pair_lengths[i] for i in b) for b in batches)
        return 1.0 - sum(pair_lengths) / padded if padded else 0.0

    n = len(pair_lengths)
    in_order = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    return {
        "padding_waste_sorted": waste(plan_batches(pair_lengths, batch_size, max_tokens)),
        "padding_waste_input_order": waste(in_order),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation (average ranks for ties); None when undefined."""
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(spearmanr(a, b).statistic)


# ---------------------------------------------------------------------- output and CLI


def format_bench_table(report: Mapping[str, Any]) -> str:
    """The report's variants as an aligned plain-text table."""
    header = [
        "variant",
        "median ms",
        "p95 ms",
        "pairs/s",
        "vs ST",
        "cold start s",
        "peak RSS MB",
        "max |diff|",
        "spearman",
        "top10",
    ]
    lines = [header]
    for row in report["variants"]:
        pps = row["pairs_per_second"]
        lines.append(
            [
                row["name"],
                f"{row['median_s'] * 1000:.1f}",
                f"{row['p95_s'] * 1000:.1f}",
                "-" if pps is None else f"{pps:.1f}",
                f"{row['ratio_vs_sentence_transformers']:.2f}x",
                f"{row['cold_start_s']:.2f}",
                f"{row['peak_rss_mb']:.0f}",
                f"{row['max_abs_score_diff_vs_reference']:.2g}",
                "-"
                if row["spearman_vs_reference"] is None
                else f"{row['spearman_vs_reference']:.4f}",
                f"{row['top10_overlap_vs_reference']}/10",
            ]
        )
    s, i = report["settings"], report["input"]
    return align_table(
        lines,
        f"{i['num_texts']} {i['source']} texts of ~{i['text_tokens_mean']:.0f} tokens, one "
        f"query of {i['query_tokens']}; {s['repeats']} interleaved repeats on {s['device']}, "
        f"batch {s['batch_size']}. vs ST > 1 means faster than sentence-transformers; cold "
        "start = import + load (+ first ONNX export); max |diff| and spearman: scores against "
        "sentence-transformers fp32; top10: its top 10 shared with sentence-transformers'."
        + f"\nCPU: {report['machine'].get('cpu', '?')}"
        + f"\npadding: {i.get('padding_waste_sorted', 0):.1%} of padded tokens with "
        f"crossrank's length-sorted batches, {i.get('padding_waste_input_order', 0):.1%} in "
        "input order"
        + (
            f"\nauto -> {report['auto']['backend']} ({report['auto']['source']})"
            if report.get("auto")
            else ""
        )
        + "".join(
            f"\nauto started again on the filled cache in {row['second_start_s']:.2f} s"
            + (
                f" (peak RSS {row['second_peak_rss_mb']:.0f} MB)"
                if "second_peak_rss_mb" in row
                else ""
            )
            for row in report["variants"]
            if "second_start_s" in row
        )
        + "".join(
            f"\n{row['name']} ran in {row['peer']['python']} ({_peer_versions(row['peer'])})"
            for row in report["variants"]
            if row.get("peer")
        )
        + "".join(f"\nskipped {n}: {why}" for n, why in report.get("skipped", {}).items()),
    )


def _positive_seconds(value: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {value!r}")
    return number


def _peer_versions(peer: Mapping[str, Any]) -> str:
    versions = peer.get("versions") or {}
    return ", ".join(
        f"{package} {versions[package]}"
        for package in ("sentence-transformers", "transformers", "optimum", "optimum-onnx",
                        "optimum-intel", "onnxruntime", "openvino")
        if versions.get(package)
    )  # fmt: skip


def register(subparsers: Any) -> None:
    """Add ``crossrank bench`` to the ``crossrank`` parser's subparsers."""
    p = add_subcommand(
        subparsers,
        "bench",
        help="time crossrank's backends against sentence-transformers",
        description="Time reranking N candidates with each crossrank backend and with "
        "sentence-transformers CrossEncoder.predict (fp32), in one process.",
    )
    add_bench_arguments(p)
    p.set_defaults(func=run_bench)


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crossrank bench`` flags to ``parser`` (a subparser) and return it."""
    parser.description = parser.description or (
        "Time reranking N candidates for one query with each crossrank backend and with "
        "sentence-transformers, interleaved in one process; cold start and peak memory "
        "per backend in a fresh process."
    )
    parser.add_argument(
        "--model",
        "-m",
        metavar="M",
        help="cross-encoder id or folder (default: $CROSSRANK_MODEL or the core default)",
    )
    parser.add_argument(
        "--candidates",
        type=positive_int,
        default=None,
        metavar="N",
        help="texts scored per call (100; with --server, per request: 20)",
    )
    parser.add_argument(
        "--doc-tokens",
        type=positive_int,
        default=256,
        metavar="T",
        help="tokens per text (256)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=10,
        metavar="R",
        help="timed calls per variant (10)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="take the query and texts from this BEIR folder instead of synthetic text",
    )
    parser.add_argument("--split", default="test", help="qrels split used with --data (test)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        metavar="N",
        help="pairs per forward pass (32)",
    )
    parser.add_argument("--device", default="cpu", help="torch device for every variant (cpu)")
    parser.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        metavar="NAME",
        help=f"time only these variants (repeatable; the reference is always timed): "
        f"{', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--peer-python",
        metavar="PATH",
        default=None,
        help="another environment's Python interpreter in which the sentence-transformers "
        "onnx/openvino variants run (their optimum needs transformers<4.58; see "
        f"docs/backends.md) (default: ${PEER_PYTHON_ENV})",
    )
    parser.add_argument(
        "--peer-timeout",
        type=_positive_seconds,
        default=600.0,
        metavar="S",
        help="seconds to wait for each answer of a --peer-python worker; a load includes the "
        "export (600)",
    )
    parser.add_argument("--out", "-o", metavar="FILE", help="write the report as JSON")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, notes or warnings on stderr"
    )
    from crossrank.eval.serve_bench import add_server_bench_arguments

    add_server_bench_arguments(parser)
    return parser


def run_bench(args: argparse.Namespace) -> int:
    """Run ``crossrank bench`` from parsed arguments; print the table; return an exit code."""
    if getattr(args, "server", None):
        from crossrank.eval.serve_bench import run_server_bench

        return run_server_bench(args)
    with hf_progress_bars(not args.quiet):
        report = benchmark(
            args.model,
            candidates=args.candidates or 100,
            doc_tokens=args.doc_tokens,
            repeats=args.repeats,
            data=args.data,
            split=args.split,
            batch_size=args.batch_size,
            device=args.device,
            variants=args.variant,
            progress=not args.quiet,
            peer_python=args.peer_python,
            peer_timeout_s=args.peer_timeout,
        )
    print(format_bench_table(report))
    if args.out:
        print(f"wrote {write_json(report, args.out)}")
    return 0
