"""``dreamomni2 serve``: the OpenAI-compatible REST server (:mod:`dreamomni2.server`) on one Session.

Order at start: check the options and the bind rule (a non-loopback host needs an API key), bind the port, load
the model once and warm it up, then print one ``ready`` line with the URL. Needs the ``[serve]`` extra.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dreamomni2.cli.errors import UsageError, positive_int

__all__ = ["API_KEY_ENV", "add_parsers", "serve_main"]

#: The environment variable the API key may come from (safer than ``--api-key``, which ``ps`` shows).
API_KEY_ENV = "DREAMOMNI2_API_KEY"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand."""
    from dreamomni2 import limits
    from dreamomni2.cli.run import add_session_arguments

    p = sub.add_parser("serve", help="serve the model over an OpenAI-compatible REST API (/v1/images/edits ...)")
    add_session_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a key)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--api-key", default=None, help=f"require 'Authorization: Bearer KEY' (or set {API_KEY_ENV})")
    p.add_argument("--queue", type=positive_int, default=16, help="requests that may wait for the model (default 16)")
    p.add_argument("--timeout", type=_positive_float, default=300.0,
                   help="per-request deadline in seconds, queueing included (default 300)")  # fmt: skip
    p.add_argument("--max-body-bytes", type=positive_int, default=limits.MAX_BODY_BYTES,
                   help=f"largest request body (default {limits.MAX_BODY_BYTES})")  # fmt: skip
    p.add_argument("--no-warmup", action="store_true", help="skip the one-step warm-up request at start")


def _model_id(args: argparse.Namespace) -> str:
    if args.release:
        return Path(args.release).resolve().name
    return Path(args.model).resolve().name if args.model else "dreamomni2-mini"


def _config(args: argparse.Namespace):
    from dreamomni2.server.config import ServerConfig
    from dreamomni2.server.security import check_bind

    key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    try:
        check_bind(args.host, key)
        return ServerConfig(model_id=_model_id(args), api_key=key, queue=args.queue, timeout=args.timeout,
                            max_body_bytes=args.max_body_bytes)  # fmt: skip
    except ValueError as e:
        raise UsageError(str(e)) from None


def serve_main(args: argparse.Namespace) -> int:
    """Run ``serve`` until SIGINT/SIGTERM."""
    try:
        import dreamomni2.server.app as server_app
        from dreamomni2.server import listen
    except ImportError as e:
        raise UsageError(f"dreamomni2 serve needs the server extra: pip install 'dreamomni2[serve]' ({e})") from None
    from dreamomni2.cli.run import session_from_args

    config = _config(args)
    try:
        sock = listen.bind(args.host, args.port)
    except OSError as e:
        raise UsageError(str(e)) from None
    session = session_from_args(args)
    session.load()
    warm = 0.0 if args.no_warmup else listen.warm_up(session)
    app = server_app.create_app(session, config)
    url = listen.url_of(sock)
    auth = "API key required" if config.api_key else "no API key"

    def ready() -> None:
        print(f"dreamomni2 serve: ready on {url} (model {config.model_id}, planner {session.planner.backend}, "
              f"{session.device}, loaded in {session.load_seconds:.1f}s + warm-up {warm:.1f}s, queue {config.queue}, "
              f"{auth})", flush=True)  # fmt: skip

    listen.run(app, sock, ready, access_log=args.debug)
    return 0
