"""The flags of ``crossrank serve``: the server's (:func:`add_serve_arguments`), the scorer's
(:func:`crossrank._cli.options.add_scorer_options`) and Ray Serve's
(:func:`add_ray_arguments`), declared by :func:`add_serve_command`.

They sit below both runners: :mod:`crossrank.serve.cli` runs one process (or hands
``--ray`` over), and :func:`crossrank.serve.ray_app.app_builder` parses a ``serve run``
config's args with :func:`serve_parser`, the same flags, checks and error messages.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from crossrank._cli.argtypes import json_object, positive_int
from crossrank._cli.options import add_scorer_options
from crossrank._cli.parser import add_subcommand, command_parser
from crossrank._cli_checks import InputError
from crossrank.compose.flags import add_scorer_config_option
from crossrank.remote.flags import add_provider_options

__all__ = [
    "add_ray_arguments",
    "add_serve_arguments",
    "add_serve_command",
    "check_ray_flags",
    "serve_parser",
]

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


def add_serve_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``crossrank serve`` and its flags to the ``crossrank`` parser's subparsers; the
    caller sets what runs it (``func``)."""
    p = add_subcommand(
        subparsers,
        "serve",
        help="serve one scorer over HTTP (TEI- and Cohere-compatible; crossrank[serve])",
        description="Serve one cross-encoder over HTTP: POST /rerank (TEI), POST /v1/rerank "
        "(Cohere/Jina, crossrank's options in the 'crossrank' field), GET /health, /info and "
        "/metrics. Concurrent requests share forward passes. See docs/serving.md.",
    )
    add_serve_arguments(p)
    add_ray_arguments(p)  # --ray, --replicas, --autoscaling ... (crossrank[ray])
    return p


def serve_parser() -> argparse.ArgumentParser:
    """The ``crossrank`` parser with ``serve`` as its only subcommand (nothing to run)."""
    parser, subparsers = command_parser()
    add_serve_command(subparsers)
    return parser


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
    add_scorer_config_option(p)  # --scorer-config FILE: serve a saved scorer (an Ensemble...)
    return p


def add_ray_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``crossrank serve --ray`` flags to the serve parser and return it."""
    group = parser.add_argument_group(
        "Ray Serve", 'serve on Ray Serve, one model per replica (pip install "crossrank[ray]")'
    )
    group.add_argument(
        "--ray",
        action="store_true",
        help="deploy on Ray Serve (a local Ray, or --ray-address) instead of one process",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --ray: the Ray cluster to join (auto, ray://head:10001; default: a local Ray)",
    )
    group.add_argument(
        "--replicas",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --ray: replicas, each with its own model (default: 1)",
    )
    group.add_argument(
        "--autoscaling",
        type=json_object(),
        default=None,
        metavar="JSON",
        help='with --ray: Ray Serve autoscaling_config, e.g. \'{"min_replicas": 1, '
        '"max_replicas": 4, "target_ongoing_requests": 8}\' (instead of --replicas)',
    )
    group.add_argument(
        "--max-batch-requests",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --ray: @serve.batch max_batch_size, most requests scored together "
        "(default: 8); --max-wait-ms is its batch_wait_timeout_s",
    )
    group.add_argument(
        "--cpus-per-replica",
        type=float,
        default=None,
        metavar="N",
        help="with --ray: CPUs each replica reserves, and its torch threads (default: 1)",
    )
    group.add_argument(
        "--gpus-per-replica",
        type=float,
        default=None,
        metavar="N",
        help="with --ray: GPUs each replica reserves (use with --device cuda)",
    )
    return parser


def check_ray_flags(args: argparse.Namespace) -> None:
    """The Ray flags only with ``--ray``; ``--replicas`` or ``--autoscaling``."""
    ray_only = ("ray_address", "replicas", "autoscaling", "max_batch_requests",
                "cpus_per_replica", "gpus_per_replica")  # fmt: skip
    given = [n for n in ray_only if getattr(args, n, None) is not None]
    if not args.ray:
        if given:
            flags = ", ".join("--" + n.replace("_", "-") for n in given)
            raise InputError(f"{flags} {'need' if len(given) > 1 else 'needs'} --ray")
        return
    if args.replicas is not None and args.autoscaling is not None:
        raise InputError(
            "--replicas and --autoscaling are both given; the autoscaling range "
            "(min_replicas, max_replicas) replaces --replicas"
        )
    for name in ("cpus_per_replica", "gpus_per_replica"):
        value = getattr(args, name)
        if value is not None and not value >= 0:
            raise InputError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
