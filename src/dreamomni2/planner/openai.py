"""Planner behind an OpenAI-compatible chat completions server (e.g. vLLM serving ``vlm-model``).

Standard library only. Sends the release's single user turn: one ``image_url`` part per image
(PNG data URLs, in order), then the text part ``instruction + task suffix``; ``temperature: 0``.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from PIL import Image

from dreamomni2.planner.base import Planner, PlannerError, build_user_text, normalize_task
from dreamomni2.planner.registry import PlannerBackend, register_planner

__all__ = ["MAX_REPLY_BYTES", "OpenAIPlanner", "image_data_url"]

#: Largest reply body read from an endpoint (a chat reply is a few KB).
MAX_REPLY_BYTES = 4 * 1024 * 1024


def _call_with_deadline(fn: Any, seconds: float, url: str) -> Any:
    """Run ``fn`` in a daemon thread and wait at most ``seconds`` for the whole call (connect, send, headers,
    body): a server that trickles bytes cannot hold the caller past the deadline. Exceptions propagate."""
    import threading

    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="planner-request").start()
    if not done.wait(seconds):
        raise PlannerError(f"Planner endpoint {url} sent no complete reply within {seconds:g}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


logger = logging.getLogger(__name__)


def image_data_url(image: Image.Image) -> str:
    """A ``data:image/png;base64,...`` URL of ``image``."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _content_text(content: Any) -> str:
    """The text of a message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


class OpenAIPlanner(Planner):
    """Planner that POSTs to ``{base_url}/chat/completions``.

    Args:
        base_url: server root including the API prefix, e.g. ``http://127.0.0.1:8000/v1`` (a URL that
            already ends with ``/chat/completions`` is used as is).
        model: the served model name.
        api_key: bearer token; defaults to the ``OPENAI_API_KEY`` environment variable (optional).
        timeout: seconds to wait for the server.
        max_tokens: generation budget for the rewritten prompt.
        max_area: optional pixel cap for the Kontext resize of the images (not in the release).
    """

    backend = "openai"

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 60,
        max_tokens: int = 256,
        max_area: int | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}.")
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self.timeout = timeout
        self.max_tokens = int(max_tokens)
        self.max_area = max_area

    def build_payload(self, images: Sequence[Image.Image], instruction: str, task: str) -> dict[str, Any]:
        """The JSON request body: one user turn, images (data URLs, in order) then the text.

        Args:
            images: the (already resized) images, in order.
            instruction: the user's instruction.
            task: ``"edit"`` or ``"generate"``.

        Returns:
            The chat completions request as a dict.
        """
        return self.chat_payload(images, build_user_text(instruction, normalize_task(task)))

    def chat_payload(self, images: Sequence[Image.Image], text: str, temperature: float = 0) -> dict[str, Any]:
        """The JSON request body of one user turn: the images (PNG data URLs, in order), then ``text``.

        Args:
            images: the images, in order.
            text: the text part.
            temperature: sampling temperature (0: greedy, as the release plans).

        Returns:
            The chat completions request as a dict.
        """
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(img)}} for img in images
        ]
        content.append({"type": "text", "text": text})
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": temperature,
            "max_tokens": self.max_tokens,
        }

    def _post(self, request: urllib.request.Request) -> bytes:
        """Send the request; read the reply in pieces, refusing one over :data:`MAX_REPLY_BYTES`."""
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            chunks, size = [], 0
            while True:
                chunk = response.read1(65536)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise PlannerError(f"Planner endpoint {self.url} sent more than {MAX_REPLY_BYTES} bytes")
                chunks.append(chunk)

    def generate_reply(self, images: list[Image.Image], instruction: str, task: str) -> str:
        """POST the request and return the first choice's message content (``""`` when absent)."""
        return self.chat(images, build_user_text(instruction, normalize_task(task)))

    def chat(self, images: Sequence[Image.Image], text: str, temperature: float = 0) -> str:
        """POST one user turn (the images, then ``text``) and return the first choice's message content.

        The whole call is bounded by ``timeout`` and the reply by :data:`MAX_REPLY_BYTES`; the bearer token goes only
        to this planner's own URL. Shared by the planner and the benchmark's VLM judges.

        Args:
            images: the images, in order.
            text: the text part of the turn.
            temperature: sampling temperature.

        Returns:
            The reply text (``""`` when the reply has no content).

        Raises:
            PlannerError: unreachable endpoint, HTTP error, timeout, oversized or malformed reply.
        """
        body = json.dumps(self.chat_payload(images, text, temperature)).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            raw = _call_with_deadline(lambda: self._post(request), self.timeout, self.url)
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace") if err.fp is not None else ""
            raise PlannerError(
                f"Planner endpoint {self.url} answered HTTP {err.code} {err.reason}: {_one_line(detail)}"
            ) from err
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            raise PlannerError(f"Cannot reach planner endpoint {self.url}: {_one_line(reason)}") from err
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PlannerError(f"Planner endpoint {self.url} sent malformed JSON: {_one_line(raw[:200])}") from err
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            error = data.get("error") if isinstance(data, dict) else None
            raise PlannerError(
                f"Planner endpoint {self.url} sent no 'choices'"
                + (f" (error: {_one_line(json.dumps(error))})" if error else f": {_one_line(json.dumps(data))}")
            )
        choices = data["choices"]
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = first.get("message") if isinstance(first.get("message"), dict) else {}
        text = _content_text(message.get("content"))
        if not text.strip():
            logger.debug("Planner endpoint %s sent a reply without content.", self.url)
        return text


def _build_openai(arg: str, **options: Any) -> OpenAIPlanner:
    """``openai:URL[#model]`` -> :class:`OpenAIPlanner` (``max_new_tokens`` stands in for ``max_tokens``)."""
    url, _, model = arg.partition("#")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"Planner spec 'openai:{arg}': the URL must start with http:// or https://.")
    max_new = options.pop("max_new_tokens", None)
    if "max_tokens" not in options and max_new is not None:
        options["max_tokens"] = max_new
    if model:
        options["model"] = model
    return OpenAIPlanner(url, **options)


register_planner(
    PlannerBackend(
        name="openai",
        usage="openai:URL[#model]",
        help="an OpenAI-compatible chat endpoint you name (vLLM, llama.cpp, a hosted API); images sent as data URLs",
        build=_build_openai,
        options=("model", "api_key", "timeout", "max_tokens", "max_new_tokens", "max_area"),
        takes_arg=True,
        network=True,
    )
)
