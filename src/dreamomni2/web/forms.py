"""The page's form values and the :class:`~dreamomni2.request.Request` they stand for (plain functions, no gradio).

A :class:`Form` holds what the page's controls say (as the browser sends them: numbers may be floats, blanks
``None`` or ``""``); :func:`build_request` turns it and the image list into a checked request, so a bad value is
reported by :func:`~dreamomni2.request.check_request` with the field's name, as the CLI and the server report it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from dreamomni2.request import Request, check_request
from dreamomni2.web.gallery import InputImage

__all__ = ["FORM_FIELDS", "Form", "as_int", "build_request", "parse_size"]


@dataclass
class Form:
    """The values of the page's controls.

    Attributes:
        task: ``edit`` or ``generate``.
        instruction: the instruction, in words.
        planner: the key of the chosen planner (:meth:`dreamomni2.web.controller.WebController.planner_choices`).
        steps, guidance: denoising steps and guidance (``None``: the model's defaults).
        seed: the seed (used unless ``random_seed``).
        random_seed: draw a random seed (reported in the result and the history).
        size: ``WIDTHxHEIGHT`` or blank (the first image's size for edits).
        n: images to draw.
        id_policy: reference id policy (blank: the model's default).
    """

    task: str = "edit"
    instruction: str = ""
    planner: str = "session"
    steps: Any = None
    guidance: Any = None
    seed: Any = 0
    random_seed: bool = False
    size: str | None = ""
    n: Any = 1
    id_policy: str | None = None

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Form:
        """A form from ``{field name: value}`` (unknown names are an error, missing ones keep their defaults)."""
        unknown = sorted(set(values) - set(FORM_FIELDS))
        if unknown:
            raise TypeError(f"unknown form field(s) {unknown}")
        return cls(**values)


#: The form's field names, in order.
FORM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Form))


def as_int(name: str, value: Any) -> int | None:
    """An integral number from the page (``20``, ``20.0``, ``"20"``) as an int; blank -> ``None``.

    Raises:
        ValueError: naming the field, for text or a fractional number.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _as_float(name: str, value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``WIDTHxHEIGHT`` (``x``, ``X``, ``*`` or ``×``) -> ``(width, height)``; blank -> ``None``.

    Raises:
        ValueError: anything else (the bounds are :func:`~dreamomni2.request.check_request`'s).
    """
    if text is None or not str(text).strip():
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX*×]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"size: expected WIDTHxHEIGHT such as 1024x768, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def build_request(
    form: Form,
    images: Sequence[InputImage],
    prompt: str | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> Request:
    """The checked request the form and the image list describe.

    Args:
        form: the page's values.
        images: the image list, in order (image 1 first).
        prompt: an already planned (or hand-written) prompt: the planner is skipped. ``None``: plan.
        progress: ``progress(step, total)`` after every denoising step.

    Raises:
        ValueError / TypeError: a bad value, naming the field.
    """
    seed = None if form.random_seed else as_int("seed", form.seed)
    n = as_int("n", form.n)
    request = Request(
        task=form.task or "edit",
        images=[item.image for item in images],
        instruction=form.instruction or "",
        prompt=prompt if prompt is None else prompt.strip(),
        steps=as_int("steps", form.steps),
        guidance=_as_float("guidance", form.guidance),
        seed=seed,
        size=parse_size(form.size),
        n=1 if n is None else n,
        id_policy=form.id_policy or None,
        progress=progress,
    )
    return check_request(request)
