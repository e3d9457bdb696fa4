"""sentence-transformers in another Python environment, for ``crossrank bench
--peer-python``: a :class:`PeerWorker` runs ``peer_worker.py`` (by path) with that
environment's interpreter and speaks JSON lines with it; :class:`PeerScorer` is one as a
bench scorer."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PEER_PYTHON_ENV", "PeerScorer", "PeerWorker", "PeerWorkerError", "resolve_peer_python"]

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


class PeerScorer:
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
