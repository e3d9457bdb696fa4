"""``crossrank serve``: its runner, one process or Ray Serve with ``--ray``
(:func:`crossrank.serve.ray_app.run_ray_serve`).

The flags are declared in :mod:`crossrank.serve.flags` (the scorer's options are the same
flags as everywhere else, :func:`crossrank._cli.options.add_scorer_options`). The model is
loaded before the server listens, so a model that does not load exits 1 with one line; a
port in use exits 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from typing import Any

from crossrank._cli.options import scorer_kwargs
from crossrank._cli_checks import EXIT_FAILURE, InputError, require_modules
from crossrank.compose.flags import saved_scorer, with_deadline
from crossrank.remote import RemoteScorer
from crossrank.remote.flags import remote_scorer
from crossrank.scorer import CrossEncoderScorer
from crossrank.serve import ray_app
from crossrank.serve.flags import add_serve_arguments, add_serve_command, check_ray_flags

__all__ = ["add_serve_arguments", "register", "run_serve"]

logger = logging.getLogger("crossrank")


def register(subparsers: Any) -> None:
    """Add ``crossrank serve`` to the ``crossrank`` parser's subparsers."""
    add_serve_command(subparsers).set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    """``crossrank serve``: one process, or Ray Serve with ``--ray``."""
    if args.ray:
        given = [f for f in ("provider", "url", "scorer_config") if getattr(args, f, None)]
        if given:
            raise InputError(
                f"--ray serves local models; --{given[0].replace('_', '-')} is served by one "
                "process: leave out --ray"
            )
        return ray_app.run_ray_serve(args)
    check_ray_flags(args)  # a Ray flag without --ray is a usage error
    return run_serve(args)


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
    if not isinstance(scorer, CrossEncoderScorer):
        return f"{scorer.model_name} (a {type(scorer).__name__} from --scorer-config)"
    return (
        f"{scorer.model_name} ({scorer.active_family}, {scorer.active_backend}, max_length "
        f"{scorer.max_length})"
    )


def run_serve(args: argparse.Namespace) -> int:
    """Run ``crossrank serve`` from parsed arguments until it is stopped; an exit code."""
    require_modules(("fastapi", "uvicorn", "prometheus_client"), "crossrank serve", "serve")
    import uvicorn

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
    scorer = saved_scorer(args, options)
    if scorer is not None and options.get("deadline_ms") is not None:
        scorer = with_deadline(scorer, options["deadline_ms"])
    scorer = scorer or remote_scorer(args, options) or CrossEncoderScorer(**options)
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
            if isinstance(scorer, CrossEncoderScorer):
                print(
                    f"crossrank serve: {scorer.active_family} ({scorer.family_detail})",
                    file=sys.stderr,
                    flush=True,
                )
        server.run(sockets=[sock])
    return 0 if server.started else EXIT_FAILURE
