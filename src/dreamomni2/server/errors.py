"""The server's one error type and OpenAI's error shape.

Every refusal is ``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx status; ``param`` names the
HTTP field at fault. The Session's request check raises messages that start ``Request.<field>``
(``Request.steps must be between 1 and 150, got 0``): :func:`from_request_error` keeps the message and names the
HTTP field instead (``steps must be between 1 and 150, got 0``, param ``steps``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ERROR_TYPES", "ApiError", "error_body", "from_request_error"]

#: Status -> OpenAI error ``type`` (any other 4xx: ``invalid_request_error``; 5xx: ``server_error``).
ERROR_TYPES: dict[int, str] = {429: "rate_limit_error", 504: "timeout_error"}

_REQUEST_FIELD = re.compile(r"Request\.(\w+)")


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object for ``status``."""
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ApiError(Exception):
    """A request the server answers with an error status (4xx, or 5xx for its own failures).

    Args:
        status: the HTTP status.
        message: one line saying what is wrong and, where it helps, what to send instead.
        param: the HTTP field at fault (``None`` when no one field is).
        code: a short machine-readable code (``invalid_value``, ``queue_full`` ...).
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return error_body(self.status, self.message, self.param, self.code)


def from_request_error(err: Exception, fields: Mapping[str, str]) -> ApiError:
    """A 400 from the Session's ``ValueError``/``TypeError``, naming the HTTP field.

    Args:
        err: the error; a message starting ``Request.<name>`` names a Request field.
        fields: Request field -> HTTP field (``instruction`` -> ``prompt``, ``images`` -> ``image`` ...); fields
            not listed keep their name.
    """
    message = str(err)
    match = _REQUEST_FIELD.match(message)
    if match is None:
        return ApiError(400, message, code="invalid_value")
    param = fields.get(match.group(1), match.group(1))
    return ApiError(400, param + message[match.end() :], param=param, code="invalid_value")
