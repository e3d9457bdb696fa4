"""``crossrank serve``: its flags and its runner.

The scorer's options are the same flags as everywhere else
(:func:`crossrank.cli.add_scorer_options`); the server's own are declared here. The model
is loaded before the server listens, so a model that does not load exits 1 with one line; a
port in use exits 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import sys
from collections.abc import Callable
from typing import Any

from crossrank._cli_checks import EXIT_FAILURE, InputError, require_modules
from crossrank.cli import add_scorer_options, positive_int, scorer_kwargs
from crossrank.remote import RemoteScorer
from crossrank.remote.flags import add_provider_options, remote_scorer

__all__ = ["add_serve_arguments", "run_serve"]

logger = logging.getLogger("crossrank")

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _bounded(cast: Callable[[str], float], low: float, high: float, what: str) -> Any:
    """An argparse type: a number from ``low`` to ``high``, else "must be ``what``"."""

    def parse(value: str) -> float:
        try:
            number = cast(value)
        except ValueError:
            number = math.nan
        if not low <= number <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be {what}, got {value!r}")
        return number

    return parse


_port = _bounded(int, 0, 65535, "a port number 0-65535")
_milliseconds = _bounded(float, 0, 60_000, "between 0 and 60000 ms")
_seconds = _bounded(float, 1e-3, math.inf, "a number of seconds > 0")


def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crossrank serve`` flags to ``parser`` (a subparser) and return it."""
    from crossrank.serve.engine import Batching
    from crossrank.serve.limits import Limits

    limits, batching = Limits(), Batching()
    p = parser
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 or :: "
        "listens on every interface: set an API key)",
    )
    p.add_argument("--port", type=_port, default=8080, help="TCP port (default: %(default)s)")
    auth = p.add_argument_group("API keys", "clients send 'Authorization: Bearer <key>'")
    auth.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the accepted key(s), comma-separated",
    )
    auth.add_argument(
        "--api-key-file", metavar="FILE", help="file with the accepted keys, one per line"
    )
    group = p.add_argument_group(
        "limits", "a request past a limit gets 413 naming it; past the queue, 429"
    )
    for name, what in (
        ("max_documents", "documents in one request"),
        ("max_chars", "characters in one request (query, documents, contents)"),
        ("max_tokens", "tokens the model reads for one request (all windows)"),
        ("max_body_bytes", "bytes of one request body, refused before parsing"),
        ("max_queue", "requests admitted at once; past it, 429 with Retry-After"),
        ("retry_after", "seconds a 429 or 503 asks the client to wait"),
    ):
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=positive_int,
            default=getattr(limits, name),
            metavar="N",
            help=f"{what} (default: %(default)s)",
        )
    group = p.add_argument_group("batching", "concurrent requests share forward passes")
    group.add_argument(
        "--max-wait-ms",
        type=_milliseconds,
        default=batching.max_wait_ms,
        metavar="MS",
        help="longest wait for more rows before a pass that is not full (default: %(default)s)",
    )
    group.add_argument(
        "--max-batch-tokens",
        type=positive_int,
        default=batching.max_batch_tokens,
        metavar="N",
        help="most padded tokens (pairs x longest pair) per pass (default: %(default)s)",
    )
    group.add_argument(
        "--max-batch-pairs",
        type=positive_int,
        default=None,
        metavar="N",
        help="most pairs per pass (default: --batch-size)",
    )
    group.add_argument(
        "--threads",
        type=positive_int,
        default=32,
        metavar="N",
        help="worker threads running the core for admitted requests (default: %(default)s)",
    )
    group = p.add_argument_group("server")
    group.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="on SIGTERM/SIGINT, longest wait for admitted requests while new ones get 503 "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="info", help="uvicorn's (default: info)"
    )
    group.add_argument(
        "--quiet", action="store_true", help="no access log, notes or warnings (errors print)"
    )
    add_scorer_options(p)
    add_provider_options(p)  # --provider NAME[:MODEL]: forward to a provider instead
    return p


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe(scorer: Any) -> str:
    """What the server serves, for its first line."""
    if isinstance(scorer, RemoteScorer):
        return f"{scorer.model_name} (forwarding to {scorer.provider} at {scorer.url})"
    return f"{scorer.model_name} ({scorer.active_backend}, max_length {scorer.max_length})"


def run_serve(args: argparse.Namespace) -> int:
    """Run ``crossrank serve`` from parsed arguments until it is stopped; an exit code."""
    require_modules(("fastapi", "uvicorn", "prometheus_client"), "crossrank serve", "serve")
    import uvicorn

    from crossrank.scorer import CrossEncoderScorer
    from crossrank.serve.app import create_app
    from crossrank.serve.auth import load_api_keys
    from crossrank.serve.engine import Batching
    from crossrank.serve.limits import Limits
    from crossrank.serve.server import Server, bind

    keys = load_api_keys(env=args.api_key_env, file=args.api_key_file)
    limits = Limits(
        max_documents=args.max_documents,
        max_chars=args.max_chars,
        max_tokens=args.max_tokens,
        max_body_bytes=args.max_body_bytes,
        max_queue=args.max_queue,
        retry_after=args.retry_after,
    )
    batching = Batching(
        max_wait_ms=args.max_wait_ms,
        max_batch_tokens=args.max_batch_tokens,
        max_batch_rows=args.max_batch_pairs,
    )
    options = scorer_kwargs(args)
    scorer = remote_scorer(args, options) or CrossEncoderScorer(**options)
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        raise InputError(
            f"--host {args.host} --port {args.port}: cannot listen there "
            f"({e.strerror or e}); choose another --port or stop what listens on it"
        ) from e
    with sock:
        scorer.warm_up()  # a model that does not load: exit 1 before serving anything
        # (a self-hosted provider that does not answer too; a hosted one is not called)
        if not keys and not _is_loopback(args.host):
            logger.warning(
                "crossrank serve: listening on %s without an API key: anyone who can reach "
                "it can use it (set --api-key-env or --api-key-file)",
                args.host,
            )
        app = create_app(
            scorer,
            limits=limits,
            batching=batching,
            api_keys=keys,
            threads=args.threads,
            load_in_background=False,
        )
        config = uvicorn.Config(
            app,
            log_level="warning" if args.quiet else args.log_level,
            access_log=not args.quiet,
            lifespan="on",
            timeout_graceful_shutdown=int(args.drain_timeout),
        )
        server = Server(config, engine=app.state.engine, drain_timeout=args.drain_timeout)
        host, port = sock.getsockname()[:2]
        if not args.quiet:
            shown = f"[{host}]" if ":" in host else host
            print(
                f"crossrank serve: {_describe(scorer)} on http://{shown}:{port} (POST /rerank, "
                f"/v1/rerank; GET /health, /info, /metrics){'; API key required' if keys else ''}",
                file=sys.stderr,
                flush=True,
            )
        server.run(sockets=[sock])
    return 0 if server.started else EXIT_FAILURE
