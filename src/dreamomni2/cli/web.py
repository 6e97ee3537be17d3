"""``dreamomni2 web``: the gradio page (:mod:`dreamomni2.web`) on one Session, loaded once at start.

Served on loopback (``127.0.0.1:7860``) unless ``--host`` names another address, which prints a warning (the page
has no authentication); a public share link only with ``--share``.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from dreamomni2.cli.errors import UsageError
from dreamomni2.cli.run import add_session_arguments, session_from_args

__all__ = ["add_parsers", "check_listen", "exposure_warnings", "is_loopback", "web_main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warnings(host: str, share: bool) -> list[str]:
    """The warning lines for a page reachable from elsewhere (none on loopback without ``--share``)."""
    out = []
    if not is_loopback(host):
        out.append(f"warning: --host {host}: the page (no authentication) is reachable from other machines")
    if share:
        out.append("warning: --share: gradio opens a public link to this page through its share servers")
    return out


def check_listen(host: str, port: int) -> None:
    """Fail early (before the model loads) when ``host:port`` cannot be listened on; raises :class:`UsageError`."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(address)
    except OSError as e:
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return port


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``web`` subcommand."""
    p = sub.add_parser("web", help="serve the web UI (gradio) on one loaded model")
    add_session_arguments(p)
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--share", action="store_true", help="also open a public gradio share link (off by default)")


def web_main(args: argparse.Namespace) -> int:
    """Load the model, build the page, serve it until interrupted."""
    try:
        from dreamomni2.web import WebController, build_app, launch
        from dreamomni2.web.app import gr  # noqa: F401  (gradio present?)
    except ImportError as e:
        raise UsageError(f"the web UI needs gradio ({e}); install it with: pip install 'dreamomni2[web]'") from None
    check_listen(args.host, args.port)
    for line in exposure_warnings(args.host, args.share):
        print(f"dreamomni2: {line}", file=sys.stderr)
    session = session_from_args(args)
    print(f"loading {args.model or 'the mini model'} ...", flush=True)
    ctrl = WebController(session).load()
    demo = build_app(ctrl)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    try:
        launch(demo, host=args.host, port=args.port, share=args.share, block=False)
    except OSError as e:
        raise UsageError(f"--host {args.host} --port {args.port}: cannot listen ({e})") from None
    print(f"serving on http://{shown}:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()
    return 0
