"""Uploaded image bytes and data URLs -> RGB PIL images, with the CLI's loading rules.

Decoding goes through :func:`dreamomni2.images.load_image_bytes`: the same format allowlist (by content, never by
name or declared type), the pixel check from the header before decoding, EXIF orientation, 16-bit scaling. A
refusal is a 400 :class:`~dreamomni2.server.errors.ApiError` naming the field (``image[1]``, ``images[0]``).
The server never fetches a URL: only ``data:`` URLs are read.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

from PIL import Image

from dreamomni2 import limits
from dreamomni2.images import ImageLoadError, load_image_bytes
from dreamomni2.server.errors import ApiError

__all__ = ["data_url_bytes", "decode_image", "decode_images"]

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)", re.DOTALL)


def decode_image(data: bytes, param: str, max_pixels: int | None = None) -> Image.Image:
    """Decode one upload; errors are a 400 naming ``param``."""
    limit = limits.MAX_INPUT_PIXELS if max_pixels is None else max_pixels
    try:
        return load_image_bytes(data, name=param, max_pixels=limit)
    except ImageLoadError as e:
        raise ApiError(400, str(e), param=param, code="invalid_image") from None


def decode_images(uploads: Sequence[tuple[str, bytes]]) -> list[Image.Image]:
    """Decode ``(param, bytes)`` pairs in order (blocking: call it in a worker thread)."""
    return [decode_image(data, param) for param, data in uploads]


def data_url_bytes(url: Any, param: str) -> bytes:
    """The bytes of a base64 ``data:`` URL (``data:image/png;base64,...``); anything else is a 400."""
    if not isinstance(url, str):
        raise ApiError(400, f"{param} must be a data URL string, got {type(url).__name__}", param=param)
    if re.match(r"\s*https?://", url, re.IGNORECASE):
        raise ApiError(400, f"{param}: only data: URLs are accepted (this server fetches nothing)", param=param,
                       code="invalid_image_url")  # fmt: skip
    match = _DATA_URL.fullmatch(url.strip())
    if match is None:
        raise ApiError(400, f"{param} must be a base64 data URL (data:image/png;base64,...)", param=param,
                       code="invalid_image_url")  # fmt: skip
    try:
        return base64.b64decode("".join(match.group("data").split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{param}: the data URL's base64 is malformed", param=param,
                       code="invalid_image_url") from None  # fmt: skip
