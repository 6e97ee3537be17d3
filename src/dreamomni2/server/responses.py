"""Session results and server facts in OpenAI's response shapes (``/v1/images/*``, ``/v1/models``)."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

__all__ = ["encode_png", "images_response", "models_response"]


def encode_png(image: Any) -> str:
    """A PIL image as base64 PNG text."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def images_response(result: Any) -> dict[str, Any]:
    """OpenAI's images response for a :class:`~dreamomni2.request.Result`, plus what DreamOmni2 adds.

    ``data[i].revised_prompt`` is the prompt the model was given (the planner's rewrite of the instruction);
    ``seed`` is the seed used (send it back to get the same image), ``settings`` every setting used, ``timings``
    the seconds per stage. Blocking (PNG encoding): call it in a worker thread.
    """
    first = result.images[0]
    return {
        "created": int(time.time()),
        "data": [{"b64_json": encode_png(im), "revised_prompt": result.prompt} for im in result.images],
        "output_format": "png",
        "size": f"{first.width}x{first.height}",
        "seed": result.seed,
        "planner": {"backend": result.planned.backend, "fell_back": result.planned.fell_back},
        "settings": result.settings.to_dict(),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
    }


def models_response(model_id: str, created: float, planner: str, device: str) -> dict[str, Any]:
    """``GET /v1/models``: the one model served."""
    model = {"id": model_id, "object": "model", "created": int(created), "owned_by": "dreamomni2",
             "tasks": ["edit", "generate"], "planner": planner, "device": device}  # fmt: skip
    return {"object": "list", "data": [model]}
