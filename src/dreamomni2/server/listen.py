"""Binding the socket, warming the model up and running uvicorn until a signal stops it."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["SHUTDOWN_GRACE_SECONDS", "bind", "run", "url_of", "warm_up"]

logger = logging.getLogger(__name__)

#: On SIGINT/SIGTERM, in-flight requests get this long to finish.
SHUTDOWN_GRACE_SECONDS: float = 10.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Raises:
        OSError: the address is taken or cannot be bound (the message names it).
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, family, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(f"--host {host}: {e.strerror}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(infos[0][4])
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def warm_up(session: Any) -> float:
    """Run one one-step request so the first real request does not pay for lazy initialisation; returns seconds."""
    import time

    from PIL import Image

    from dreamomni2.request import Request

    start = time.perf_counter()
    image = Image.new("RGB", (64, 64), (127, 127, 127))
    session.run(Request("edit", [image], "warm up", plan=False, steps=1, seed=0, size=(64, 64)))
    return time.perf_counter() - start


def run(app: Any, sock: socket.socket, on_ready: Callable[[], None], access_log: bool = False) -> None:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM; ``on_ready`` is called once the server accepts requests."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                on_ready()

    config = uvicorn.Config(app, log_config=None, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)  # fmt: skip
    _Server(config).run(sockets=[sock])
