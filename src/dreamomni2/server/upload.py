"""Reading a request body: multipart form (OpenAI's ``image[]`` uploads) or JSON (reference images as data URLs).

Both give an :class:`Upload`: the text fields by name and the image bytes in order, each with the field name an
error about it should carry (``image[0]`` for multipart, ``images[0]`` for JSON). Nothing is decoded here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from dreamomni2.server.decode import data_url_bytes
from dreamomni2.server.errors import ApiError

__all__ = ["MAX_FORM_FIELDS", "MAX_FORM_FILES", "MAX_TEXT_FIELD_BYTES", "Upload", "read_upload"]

#: Most file parts a form may carry (OpenAI's own limit); above the model's image limit they are still counted,
#: so the refusal says how many were sent.
MAX_FORM_FILES: int = 16
#: Most text parts a form may carry.
MAX_FORM_FIELDS: int = 64
#: Largest text part (a prompt at the character limit fits, in any UTF-8).
MAX_TEXT_FIELD_BYTES: int = 64 * 1024

_IMAGE_KEY = re.compile(r"image(\[\d*\])?")


@dataclass
class Upload:
    """A parsed body: ``fields`` (name -> str for multipart, JSON values for JSON), ``images`` as
    ``(param, bytes)`` in order, and ``image_field``, the name errors about the image list use."""

    fields: dict[str, Any] = field(default_factory=dict)
    images: list[tuple[str, bytes]] = field(default_factory=list)
    image_field: str = "image"


async def read_upload(request: Any) -> Upload:
    """Read a starlette request's body by its content type (``multipart/form-data`` or ``application/json``)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return await _read_form(request)
    if kind == "application/json":
        return _from_json(await request.body())
    raise ApiError(415, f"send multipart/form-data or application/json, not {kind or 'no content type'!r}",
                   code="unsupported_media_type")  # fmt: skip


async def _read_form(request: Any) -> Upload:
    from starlette.exceptions import HTTPException

    try:
        form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS,
                                  max_part_size=MAX_TEXT_FIELD_BYTES)  # fmt: skip
    except HTTPException as e:
        param = "image" if "files" in str(e.detail).lower() else None
        raise ApiError(400, f"malformed multipart body: {e.detail}", param=param, code="invalid_body") from None
    try:
        return await _form_upload(form)
    finally:
        await form.close()


async def _form_upload(form: Any) -> Upload:
    upload = Upload(image_field="image")
    for key, value in form.multi_items():
        if _IMAGE_KEY.fullmatch(key):
            param = f"image[{len(upload.images)}]"
            if isinstance(value, str):
                raise ApiError(400, f"{param} must be a file upload, not a text field", param="image")
            upload.images.append((param, await value.read()))
        elif not isinstance(value, str):
            raise ApiError(400, f"{key} must be a text field, not a file", param=key)
        elif key in upload.fields:
            raise ApiError(400, f"{key} is given more than once", param=key)
        else:
            upload.fields[key] = value
    return upload


def _from_json(raw: bytes) -> Upload:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(body).__name__}", code="invalid_json")
    images = body.pop("images", None)
    upload = Upload(fields=body, image_field="images")
    if images is None:
        return upload
    if not isinstance(images, list):
        raise ApiError(400, "images must be a list of data URLs", param="images")
    for i, item in enumerate(images):
        param = f"images[{i}]"
        url = item.get("image_url") if isinstance(item, dict) else item
        if isinstance(url, dict):  # {"image_url": {"url": ...}}, the chat API's shape
            url = url.get("url")
        upload.images.append((param, data_url_bytes(url, param)))
    return upload
