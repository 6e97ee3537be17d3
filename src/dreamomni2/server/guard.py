"""ASGI middleware in front of the app: the body-bytes limit and the count of ``/v1`` requests by status.

A body whose ``Content-Length`` is above the limit is refused with 413 before a byte of it is read; a body sent
without one (chunked) is counted as it streams in, and the read that crosses the limit raises
:class:`BodyTooLarge` (a 413 :class:`~dreamomni2.server.errors.ApiError`, answered by the app's error handler).
"""

from __future__ import annotations

import json
from typing import Any

from dreamomni2.server.errors import ApiError
from dreamomni2.server.metrics import Metrics

__all__ = ["BodyTooLarge", "Guard"]


class BodyTooLarge(ApiError):
    """The request body is above the limit."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        got = f" ({size} bytes)" if size is not None else ""
        super().__init__(413, f"the request body{got} is above the limit of {limit} bytes", code="body_too_large")


class Guard:
    """Wrap an ASGI app: refuse bodies above ``max_body_bytes``, count ``/v1`` responses in ``metrics``."""

    def __init__(self, app: Any, max_body_bytes: int, metrics: Metrics) -> None:
        self.app, self.max_body_bytes, self.metrics = app, max_body_bytes, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        counted = scope.get("path", "").startswith("/v1/")

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start" and counted:
                self.metrics.count_status(message["status"])
            await send(message)

        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            return await _send_error(counting_send, BodyTooLarge(self.max_body_bytes, length))
        await self.app(scope, self._limited(receive), counting_send)

    def _limited(self, receive: Any) -> Any:
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return limited_receive


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Any, error: ApiError) -> None:
    body = json.dumps(error.body(), separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
