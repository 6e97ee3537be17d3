"""Servers started the way a user starts them: ``python -m dreamomni2.cli serve ...`` as a subprocess on loopback.

Two servers start at once for the whole folder (their model loads overlap): ``open_server`` (no key, the
default queue, a small body limit) for the happy paths, the bad requests and the load test; ``keyed_server``
(an API key, a queue of 1, a 4 s deadline) for auth, the full queue, a client disconnect and the deadline.
"""

from __future__ import annotations

import base64
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")
httpx = pytest.importorskip("httpx")

API_KEY = "test-key-123"
START_TIMEOUT = 120.0
#: The open server's body limit (small, so the 413 test sends little).
MAX_BODY = 1_000_000
#: The keyed server's queue bound and deadline.
KEYED_QUEUE, KEYED_TIMEOUT = 1, 4.0
_READY = re.compile(r"ready on (http://\S+)")


def server_env() -> dict[str, str]:
    """The subprocess environment: offline, one torch thread (two processes share a small CPU), no key."""
    env = {k: v for k, v in os.environ.items() if k != "DREAMOMNI2_API_KEY"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")  # fmt: skip
    return env


def serve_command(*args: str) -> list[str]:
    """The command line a user types, through this interpreter."""
    return [sys.executable, "-m", "dreamomni2.cli", "serve", "--quiet", *args]


@dataclass
class Server:
    """A running server subprocess (stderr goes to a file: a chatty server never blocks on a full pipe)."""

    proc: subprocess.Popen
    err: Any
    api_key: str | None = None
    url: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=timeout)

    def metrics(self) -> dict:
        return httpx.get(f"{self.url}/metrics", headers=self.headers(), timeout=10).raise_for_status().json()

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = _READY.search(line)
            if match:
                self.url = match.group(1)
                return
        self.stop()
        raise RuntimeError(f"the server did not start: {''.join(self.lines)}{self.stderr()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.close()


def start_server(*args: str, api_key: str | None = None) -> Server:
    """Start ``dreamomni2 serve --port 0 ARGS`` (without waiting for the ready line)."""
    cmd = serve_command("--port", "0", *args, *(["--api-key", api_key] if api_key else []))
    err = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=server_env())
    return Server(proc, err, api_key=api_key)


@pytest.fixture(scope="session")
def servers():
    keyed = ("--queue", str(KEYED_QUEUE), "--timeout", str(KEYED_TIMEOUT))
    started = [start_server("--max-body-bytes", str(MAX_BODY)), start_server(*keyed, api_key=API_KEY)]
    try:
        for s in started:
            s.wait_ready()
        yield started
    finally:
        for s in started:
            s.stop()


@pytest.fixture(scope="session")
def open_server(servers) -> Server:
    return servers[0]


@pytest.fixture(scope="session")
def keyed_server(servers) -> Server:
    return servers[1]


def png_bytes(image) -> bytes:
    """An image as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def data_url(image) -> str:
    """An image as a PNG data URL."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def decoded(b64: str):
    """A response's ``b64_json`` as a PIL image (checking it is a PNG)."""
    from PIL import Image

    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(raw)).convert("RGB")


def raw_send(server: Server, path: str, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    """Send a POST's head and ``body`` on a raw socket and return it unread (closing it is a client going away)."""
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in {**server.headers(), **headers}.items())]
    sock = socket.create_connection(server.host_port, timeout=30)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return sock


def read_response(sock: socket.socket) -> tuple[int, str]:
    """Read to the end of a ``Connection: close`` response: ``(status, the whole text)``."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    text = b"".join(chunks).decode(errors="replace")
    return int(text.split(" ", 2)[1]), text
