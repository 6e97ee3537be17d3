"""HTTP fields -> a checked :class:`~dreamomni2.request.Request`, with errors that name the field.

The fields are OpenAI's (``prompt``, ``n``, ``size``, ``response_format``) plus DreamOmni2's extras (``task``,
``steps``, ``guidance``, ``seed``, ``planner``). Multipart values arrive as text and JSON values typed; both are
read the same way. The limits are the CLI's: the request goes through
:func:`~dreamomni2.request.check_request` here, before it is queued, and its messages come back naming the HTTP
field. OpenAI fields this server does not use are accepted where they ask for nothing (``model``, ``user``,
``output_format=png`` ...) and refused otherwise; unknown fields are refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from dreamomni2.request import Request, check_request
from dreamomni2.server.errors import ApiError, from_request_error

__all__ = ["DEFAULT_ONLY", "FIELDS", "IGNORED", "build_request"]

#: The fields a request may set.
FIELDS: tuple[str, ...] = ("prompt", "n", "size", "response_format", "task", "steps", "guidance", "seed", "planner")
#: OpenAI fields accepted and not used (the model name: one model is served).
IGNORED: tuple[str, ...] = ("model", "user", "safety_identifier")
#: OpenAI fields accepted only at the value this server gives anyway.
DEFAULT_ONLY: dict[str, str] = {"output_format": "png", "quality": "auto", "background": "auto",
                                "moderation": "auto", "stream": "false"}  # fmt: skip

_SIZE = re.compile(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*")


def _int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ApiError(400, f"{name} must be an integer, got {value!r}", param=name, code="invalid_type")


def _float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise ApiError(400, f"{name} must be a finite number, got {value!r}", param=name, code="invalid_type")
    return number


def _size(value: Any) -> tuple[int, int] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ApiError(400, f"size must be 'WIDTHxHEIGHT' (e.g. 1024x1024) or 'auto', got {value!r}", param="size",
                       code="invalid_value")  # fmt: skip
    return int(match.group(1)), int(match.group(2))


def _check_names(fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        if name in FIELDS or name in IGNORED:
            continue
        if name in DEFAULT_ONLY:
            if str(value).strip().lower() != DEFAULT_ONLY[name]:
                raise ApiError(400, f"{name} {value!r} is not supported; only {DEFAULT_ONLY[name]!r}", param=name,
                               code="unsupported_value")  # fmt: skip
            continue
        raise ApiError(400, f"unknown field {name!r}; known: {', '.join(FIELDS + IGNORED)}", param=name,
                       code="unknown_parameter")  # fmt: skip


def _response_format(value: Any) -> None:
    if value is None or value == "b64_json":
        return
    hint = " (this server returns images inline)" if value == "url" else ""
    raise ApiError(400, f"response_format {value!r} is not supported{hint}; use 'b64_json'",
                   param="response_format", code="unsupported_value")  # fmt: skip


def _plan(value: Any, planners: Collection[str]) -> bool:
    """Whether to plan: ``None`` (the server's planner), ``"none"`` (the prompt as is) or the server's own."""
    if value is None:
        return True
    if isinstance(value, str) and value.strip().lower() in planners:
        return value.strip().lower() != "none"
    offered = " or ".join(repr(p) for p in sorted(planners))
    raise ApiError(400, f"planner {value!r} is not offered by this server; use {offered}", param="planner",
                   code="unsupported_value")  # fmt: skip


def _task(value: Any) -> str:
    from dreamomni2.tasks import normalize_task

    try:
        return normalize_task(value)
    except ValueError as e:
        raise ApiError(400, str(e), param="task", code="invalid_value") from None


def build_request(fields: Mapping[str, Any], images: Sequence[Any], task: str, planners: Collection[str],
                  image_field: str = "image") -> Request:  # fmt: skip
    """A checked Request from HTTP fields and decoded images.

    Args:
        fields: the body's fields (text or JSON values).
        images: PIL images, in the order sent.
        task: the endpoint's task (``edit`` or ``generate``), unless the ``task`` field names another.
        planners: the planner names a request may ask for (``none`` and the server's own).
        image_field: the HTTP name of the image list (``image`` for multipart, ``images`` for JSON).

    Raises:
        ApiError: 400 naming the field.
    """
    _check_names(fields)
    if fields.get("prompt") is None:
        raise ApiError(400, "prompt is required: say what to do", param="prompt", code="missing_required_parameter")
    if not isinstance(fields["prompt"], str):
        raise ApiError(400, f"prompt must be a string, got {type(fields['prompt']).__name__}", param="prompt",
                       code="invalid_type")  # fmt: skip
    _response_format(fields.get("response_format"))
    n = _int("n", fields.get("n"))
    request = Request(
        _task(task if fields.get("task") is None else fields["task"]),
        list(images),
        fields["prompt"],
        plan=_plan(fields.get("planner"), planners),
        steps=_int("steps", fields.get("steps")),
        guidance=_float("guidance", fields.get("guidance")),
        seed=_int("seed", fields.get("seed")),
        size=_size(fields.get("size")),
        n=1 if n is None else n,
    )
    try:
        return check_request(request)
    except (ValueError, TypeError) as e:
        raise from_request_error(e, {"instruction": "prompt", "images": image_field}) from None
