"""Instruction planner API: the prompt record, the base class and reply parsing (the factory is ``factory.py``).

DreamOmni2's release sends the user's instruction and all images to a fine-tuned
Qwen2.5-VL as ONE user turn: the images in the given order (each once, resized with the
Kontext rule), then the text ``instruction + " It is editing task."`` (or
``" It is generation task."``), decoded greedily. The reply is a wrapped, rewritten prompt
that the release unwraps by slicing 6 leading and 7 trailing characters (a ``<gen>…</gen>``-like
wrapper of unconfirmed form). :func:`parse_reply` unwraps it by pattern instead, never by
fixed character counts, and falls back to the instruction when nothing is left.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from dreamomni2.planner.registry import PlannerBackend, register_planner
from dreamomni2.resize import reference_size, resize_image
from dreamomni2.tasks import normalize_task

__all__ = [
    "TASK_SUFFIXES",
    "NonePlanner",
    "PlannedPrompt",
    "Planner",
    "PlanRefused",
    "PlannerError",
    "build_user_text",
    "normalize_task",
    "parse_reply",
    "prepare_planner_images",
]

logger = logging.getLogger(__name__)

#: The release's text suffixes, appended verbatim to the instruction (note the leading space).
TASK_SUFFIXES: dict[str, str] = {"edit": " It is editing task.", "generate": " It is generation task."}


class PlannerError(RuntimeError):
    """The planner backend failed (unreachable endpoint, HTTP error, malformed reply)."""


class PlanRefused(ValueError):
    """The planner did not understand the instruction and says so instead of guessing (the prompt is at fault)."""


@dataclass
class PlannedPrompt:
    """What a planner made of an instruction.

    Attributes:
        prompt: the prompt to give the diffusion model.
        raw_reply: the backend's reply before parsing (``""`` for :class:`NonePlanner`).
        backend: ``"none"``, ``"qwen"`` or ``"openai"``.
        fell_back: True when the reply held no usable prompt and ``prompt`` is the instruction.
    """

    prompt: str
    raw_reply: str
    backend: str
    fell_back: bool


def build_user_text(instruction: str, task: str) -> str:
    """The text part of the planner's user turn, exactly as the release builds it.

    The instruction is used verbatim (no stripping, like the release) followed by the task
    suffix, e.g. ``"Make it red." -> "Make it red. It is editing task."``.

    Args:
        instruction: the user's free-form instruction.
        task: ``"edit"`` or ``"generate"``.

    Returns:
        ``instruction + " It is editing task."`` or ``instruction + " It is generation task."``.
    """
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be a str, got {type(instruction).__name__}.")
    return instruction + TASK_SUFFIXES[normalize_task(task)]


def prepare_planner_images(images: Sequence[Image.Image], max_area: int | None = None) -> list[Image.Image]:
    """Resize images with the Kontext rule (as the release does before the VLM), in order.

    Args:
        images: PIL images, in the order the user gave them.
        max_area: optional pixel cap passed to :func:`dreamomni2.resize.reference_size` (small runs).

    Returns:
        New RGB images of ``reference_size(w, h, max_area=max_area)``.
    """
    if isinstance(images, Image.Image):
        raise TypeError("images must be a list of PIL images, not a single image.")
    out = []
    for i, img in enumerate(images):
        if not isinstance(img, Image.Image):
            raise TypeError(f"images[{i}] is a {type(img).__name__}, not a PIL image.")
        img = img.convert("RGB") if img.mode != "RGB" else img
        out.append(resize_image(img, reference_size(*img.size, max_area=max_area)))
    return out


# --- reply parsing ---------------------------------------------------------------------------

_KNOWN_TAGS = ("gen", "edit", "prompt", "answer", "generation", "editing", "output", "caption")
_TAG = r"[A-Za-z][\w-]*"
_ROLE_HEADER = re.compile(r"<\|im_start\|>\s*(?:assistant|user|system)?[ \t]*\n?")
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z0-9_]+\|>")
_KNOWN_OPEN = re.compile(rf"<({'|'.join(_KNOWN_TAGS)})>", re.IGNORECASE)
_KNOWN_CLOSE = {tag: re.compile(rf"</{tag}>", re.IGNORECASE) for tag in _KNOWN_TAGS}
#: Longest planner reply parsed (a longer one is unusable: the instruction is used, flagged ``fell_back``).
MAX_REPLY_CHARS = 65536
_WHOLE_PAIR = re.compile(rf"^<({_TAG})>(.*)</\1>$", re.DOTALL)
_LEADING_TAG = re.compile(rf"^</?{_TAG}>")
_TRAILING_TAG = re.compile(rf"</?{_TAG}>$")
_KNOWN_TAG_ANYWHERE = re.compile(rf"</?(?:{'|'.join(_KNOWN_TAGS)})>", re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^```[\w-]*[ \t]*\n?")
_FENCE_CLOSE = re.compile(r"\n?```$")
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"))


def _first_known_pair(text: str) -> str | None:
    """The content of the first ``<tag>...</tag>`` pair of a known tag (what a lazy regex search finds), in linear
    time: an opening tag counts when a closing tag of its name comes after it; the content ends at the first one."""
    last_close = {}
    for tag, pattern in _KNOWN_CLOSE.items():
        for m in pattern.finditer(text):
            last_close[tag] = m.start()
    for m in _KNOWN_OPEN.finditer(text):
        tag = m.group(1).lower()
        if last_close.get(tag, -1) >= m.end():
            close = _KNOWN_CLOSE[tag].search(text, m.end())
            return text[m.end() : close.start()]
    return None


def _unwrap_once(text: str) -> str:
    """One round of peeling whitespace, code fences, wrapper tags and quotes off ``text``."""
    text = text.strip()
    if text.startswith("```"):
        text = _FENCE_CLOSE.sub("", _FENCE_OPEN.sub("", text)).strip()
    match = _WHOLE_PAIR.match(text)
    if match:
        return match.group(2)
    text = _LEADING_TAG.sub("", text).strip()  # unclosed opening tag or stray closing tag at the start
    text = _TRAILING_TAG.sub("", text).strip()  # stray closing tag (or opening tag) at the end
    for left, right in _QUOTES:
        inner = text[len(left) : -len(right)]
        if len(text) >= 2 and text[0] == left and text[-1] == right and left not in inner and right not in inner:
            return inner
    return text


def parse_reply(reply: str | None, fallback: str) -> tuple[str, bool]:
    """Extract the rewritten prompt from a planner reply.

    Removes chat special tokens (``<|im_end|>``, ``<|endoftext|>``, ``<|im_start|>assistant`` ...), then
    takes the content of the first known wrapper pair found anywhere (``<gen>``, ``<edit>``, ``<prompt>``,
    ``<answer>`` ...), and repeatedly peels surrounding whitespace, code fences, any single ``<tag>…</tag>``
    pair wrapping the whole text, an unclosed opening tag, a stray closing tag and matching quotes.
    Leftover known wrapper tags inside the text are dropped. Never slices fixed character counts.

    Args:
        reply: the backend's decoded reply (``None`` is treated as empty).
        fallback: what to return when nothing usable is left (the user's instruction).

    Returns:
        ``(prompt, fell_back)``; ``fell_back`` is True (and a warning is logged) when the parsed
        reply was empty or whitespace-only and ``prompt`` is ``fallback``.
    """
    text = reply or ""
    if len(text) > MAX_REPLY_CHARS:
        logger.warning("Planner reply of %d characters is over the %d limit; using the instruction as the prompt.",
                       len(text), MAX_REPLY_CHARS)  # fmt: skip
        return fallback, True
    text = _SPECIAL_TOKEN.sub("", _ROLE_HEADER.sub("", text))
    inner = _first_known_pair(text)
    if inner is not None:
        text = inner
    for _ in range(16):
        new = _unwrap_once(text)
        if new == text:
            break
        text = new
    text = _KNOWN_TAG_ANYWHERE.sub("", text).strip()
    if not text:
        logger.warning("Planner reply %r holds no prompt; using the instruction as the prompt.", (reply or "")[:200])
        return fallback, True
    return text, False


# --- planners --------------------------------------------------------------------------------


class Planner(ABC):
    """Turns an instruction plus reference images into the diffusion prompt.

    Subclasses implement :meth:`generate_reply`; :meth:`plan` validates the task, resizes the
    images with the Kontext rule (``max_area`` caps them for small runs) and parses the reply.
    """

    backend: str = "base"
    max_area: int | None = None

    def plan(self, images: Sequence[Image.Image], instruction: str, task: str) -> PlannedPrompt:
        """Plan the prompt for one request.

        Args:
            images: the request's images, in order (the image to edit first for ``"edit"``).
            instruction: the user's free-form instruction.
            task: ``"edit"`` or ``"generate"``.

        Returns:
            A :class:`PlannedPrompt`; on an empty reply its prompt is the instruction (``fell_back``).
        """
        task = normalize_task(task)
        build_user_text(instruction, task)  # validates the instruction
        prepared = prepare_planner_images(images, max_area=self.max_area)
        raw = self.generate_reply(prepared, instruction, task)
        prompt, fell_back = parse_reply(raw, instruction)
        return PlannedPrompt(prompt=prompt, raw_reply=raw or "", backend=self.backend, fell_back=fell_back)

    @abstractmethod
    def generate_reply(self, images: list[Image.Image], instruction: str, task: str) -> str:
        """The backend's raw reply for already-resized images and a validated task."""


class NonePlanner(Planner):
    """No planner: the instruction itself is the prompt (images are not looked at)."""

    backend = "none"

    def plan(self, images: Sequence[Image.Image], instruction: str, task: str) -> PlannedPrompt:
        """Return the instruction unchanged (``raw_reply=""``, ``fell_back=False``).

        Args:
            images: ignored (checked to be a sequence).
            instruction: the user's instruction, used verbatim as the prompt.
            task: ``"edit"`` or ``"generate"`` (validated).

        Returns:
            ``PlannedPrompt(instruction, "", "none", False)``.
        """
        normalize_task(task)
        build_user_text(instruction, task)
        if isinstance(images, Image.Image):
            raise TypeError("images must be a list of PIL images, not a single image.")
        return PlannedPrompt(prompt=instruction, raw_reply="", backend=self.backend, fell_back=False)

    def generate_reply(self, images: list[Image.Image], instruction: str, task: str) -> str:
        """The instruction itself."""
        return instruction


register_planner(
    PlannerBackend(
        name="none",
        usage="none",
        help="no planner: the instruction is the prompt",
        build=lambda **_: NonePlanner(),
    )
)
