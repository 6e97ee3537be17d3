"""The typed request and result of :class:`dreamomni2.session.Session`, their checks and the settings resolution.

A :class:`Request` says what to do (task, images in order, instruction or an already-planned prompt) and how
(steps, guidance, seed, size, n, id policy ...); fields left ``None`` are filled by :func:`resolve_settings` from the
session, then the model folder's defaults, then :data:`LIBRARY_DEFAULTS`. Bad fields raise ``ValueError`` or
``TypeError`` naming the field.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from PIL import Image

from dreamomni2 import limits
from dreamomni2.model_config import ModelDefaults
from dreamomni2.planner.base import PlannedPrompt
from dreamomni2.tasks import MAX_IMAGES, normalize_task

__all__ = ["LIBRARY_DEFAULTS", "MAX_N", "Request", "Result", "Settings", "check_request", "resolve_settings"]

#: Used when neither the request, the session nor the model folder sets a value.
LIBRARY_DEFAULTS: dict[str, Any] = {"steps": 30, "guidance": 3.5, "id_policy": "dreamomni2", "auto_resize": True}
#: Most images one request may ask for (:data:`dreamomni2.limits.MAX_N`).
MAX_N = limits.MAX_N


@dataclass
class Request:
    """One edit or generation request.

    Attributes:
        task: ``"edit"`` (the image to edit first) or ``"generate"``.
        images: PIL images, in the order the instruction refers to them (1-5; 0-5 for ``generate``).
        instruction: what to do, in words (the planner rewrites it unless ``prompt`` is given or ``plan`` is off).
        prompt: an already-planned prompt: used as is, the planner is not called.
        plan: ``False``: the instruction itself is the prompt.
        steps, guidance: denoising steps and distilled guidance.
        seed: the generator seed; ``None`` draws a random one (reported in the result).
        size: output ``(width, height)``; ``None``: the first image's (edit) or 1024x1024-like (generate).
        n: images to draw (one generator, as ``num_images_per_prompt``).
        id_policy: reference id policy for this request (:mod:`dreamomni2.ids`).
        max_area: pixel cap of the output and every input.
        auto_resize: snap inputs to the preferred Kontext resolutions.
        progress: called as ``progress(step, total)`` after every denoising step.
        pipeline_kwargs: further keyword arguments for the pipeline call (``output_type``, ``negative_prompt``,
            ``true_cfg_scale``, ``generator`` -- which replaces the seed --, ``max_area`` ...); they override the
            resolved settings. Not ``images``, ``prompt`` or ``task``.
    """

    task: str
    images: Sequence[Image.Image] = ()
    instruction: str = ""
    prompt: str | None = None
    plan: bool = True
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    size: tuple[int, int] | None = None
    n: int = 1
    id_policy: str | None = None
    max_area: int | None = None
    auto_resize: bool | None = None
    progress: Callable[[int, int], Any] | None = field(default=None, repr=False, compare=False)
    pipeline_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Settings:
    """The settings a request actually ran with (after defaults); ``seed`` is the one used (``None`` when the
    caller passed its own ``generator`` in ``pipeline_kwargs``)."""

    task: str
    steps: int
    guidance: float
    seed: int | None
    width: int | None
    height: int | None
    n: int
    id_policy: str
    max_area: int | None
    reference_max_area: int | None
    auto_resize: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)

    def pipeline_kwargs(self) -> dict[str, Any]:
        """The pipeline keyword arguments these settings stand for (not images, prompt, generator)."""
        kw: dict[str, Any] = {"task": self.task, "num_inference_steps": self.steps, "guidance_scale": self.guidance,
                              "id_policy": self.id_policy, "_auto_resize": self.auto_resize}  # fmt: skip
        if self.width is not None:
            kw["width"], kw["height"] = self.width, self.height
        if self.max_area is not None:
            kw["max_area"] = self.max_area
        if self.reference_max_area is not None:
            kw["reference_max_area"] = self.reference_max_area
        if self.n != 1:
            kw["num_images_per_prompt"] = self.n
        return kw

    def batch_key(self) -> tuple:
        """Requests with equal keys can share one pipeline call (everything but the seed)."""
        return (self.task, self.steps, self.guidance, self.width, self.height, self.n, self.id_policy,
                self.max_area, self.reference_max_area, self.auto_resize)  # fmt: skip


@dataclass
class Result:
    """What a request produced.

    Attributes:
        images: the output images (``n`` of them).
        prompt: the prompt the model was given.
        planned: the planner's record (raw reply, backend, whether it fell back to the instruction).
        settings: the settings actually used, seed included.
        timings: seconds per stage: ``load`` (0 once loaded), ``plan``, ``draw``.
    """

    images: list[Any]
    prompt: str
    planned: PlannedPrompt
    settings: Settings
    timings: dict[str, float]

    @property
    def image(self) -> Any:
        """The first output image."""
        return self.images[0]

    @property
    def seed(self) -> int | None:
        """The seed used."""
        return self.settings.seed


def _check_int(name: str, value: Any, low: int = 1, high: int | None = None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"Request.{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"Request.{name} must be {bound}, got {value}")


def _check_images(task: str, images: Any) -> list[Image.Image]:
    if isinstance(images, Image.Image) or not isinstance(images, (list, tuple)):
        raise TypeError("Request.images must be a list of PIL images")
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise TypeError(f"Request.images[{i}] is a {type(im).__name__}, not a PIL image")
    if len(images) > MAX_IMAGES:
        raise ValueError(f"Request.images: got {len(images)} images; at most {MAX_IMAGES} are supported")
    if task == "edit" and not images:
        raise ValueError("Request.images: an edit needs at least one image (the image to edit comes first)")
    return list(images)


def check_request(request: Request) -> Request:
    """Validate a request; returns a copy with the task canonical and the images as a list.

    Raises:
        TypeError / ValueError: naming the field (``Request.steps must be >= 1, got 0``).
    """
    if not isinstance(request, Request):
        raise TypeError(f"expected a Request, got {type(request).__name__}")
    task = normalize_task(request.task)
    images = _check_images(task, request.images)
    text = request.instruction if request.prompt is None else request.prompt
    name = "instruction" if request.prompt is None else "prompt"
    if not isinstance(text, str):
        raise TypeError(f"Request.{name} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"Request.{name} is empty; say what to do")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"Request.{name} is not valid UTF-8 text") from None
    if len(text) > limits.MAX_PROMPT_CHARS:
        raise ValueError(f"Request.{name} has {len(text)} characters; the limit is {limits.MAX_PROMPT_CHARS}")
    bounds = (("steps", 1, limits.MAX_STEPS), ("seed", 0, limits.MAX_SEED), ("n", 1, limits.MAX_N),
              ("max_area", 256, limits.MAX_OUTPUT_PIXELS))  # fmt: skip
    for key, low, high in bounds:
        _check_int(key, getattr(request, key), low, high)
    g = request.guidance
    if g is not None and (not isinstance(g, (int, float)) or isinstance(g, bool)):
        raise TypeError(f"Request.guidance must be a number, got {type(g).__name__}")
    if g is not None and not math.isfinite(g):
        raise ValueError(f"Request.guidance must be a finite number, got {g!r}")
    if request.size is not None:
        if not (isinstance(request.size, (tuple, list)) and len(request.size) == 2):
            raise TypeError(f"Request.size must be (width, height), got {request.size!r}")
        for v in request.size:
            _check_int("size", v, limits.MIN_OUTPUT_SIDE, limits.MAX_OUTPUT_SIDE)
        if request.size[0] * request.size[1] > limits.MAX_OUTPUT_PIXELS:
            raise ValueError(f"Request.size {request.size[0]}x{request.size[1]} is above {limits.MAX_OUTPUT_PIXELS} px")
    clash = sorted({"images", "prompt", "task"} & set(request.pipeline_kwargs))
    if clash:
        raise TypeError(f"Request.pipeline_kwargs may not set {clash}; use the Request's own fields")
    return replace(request, task=task, images=images)


def _seed(request: Request) -> int | None:
    if "generator" in request.pipeline_kwargs:
        return None
    return request.seed if request.seed is not None else secrets.randbelow(2**31)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def resolve_settings(request: Request, defaults: ModelDefaults, options: Any = None) -> Settings:
    """Fill the request's unset fields: request, then session (``options``), then model folder, then library.

    ``max_area`` (request or session) caps the output and every input, overriding the model folder's two caps.
    """
    from dreamomni2.ids import get_policy

    session_policy = getattr(options, "id_policy", None)
    session_area = getattr(options, "max_area", None)
    id_policy = _first(request.id_policy, session_policy, defaults.id_policy, LIBRARY_DEFAULTS["id_policy"])
    get_policy(id_policy)
    area = _first(request.max_area, session_area)
    width, height = request.size if request.size is not None else (None, None)
    return Settings(
        task=request.task,
        steps=_first(request.steps, defaults.steps, LIBRARY_DEFAULTS["steps"]),
        guidance=float(_first(request.guidance, defaults.guidance, LIBRARY_DEFAULTS["guidance"])),
        seed=_seed(request),
        width=width,
        height=height,
        n=request.n,
        id_policy=id_policy,
        max_area=_first(area, defaults.max_area),
        reference_max_area=_first(area, defaults.reference_max_area),
        auto_resize=bool(_first(request.auto_resize, defaults.auto_resize, LIBRARY_DEFAULTS["auto_resize"])),
    )
