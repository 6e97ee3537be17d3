"""Quality filters of the synthesis stages: image similarity and an optional VLM yes/no check.

A synthesized pair is rejected when its two images are near-identical (the edit did nothing, the extraction copied
its input) or unrelated (the edit redrew the whole image); each rejection carries a reason that the stage report
counts. The similarity here is a cheap pixel measure (both images on a common small grid, one minus the mean
absolute difference); the bench's embedding judges can replace it through :attr:`QualityFilter.measure`. A VLM
check asks a yes/no question about the images (any callable; :func:`planner_verifier` asks a planner backend).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "REASON_IDENTICAL",
    "REASON_UNRELATED",
    "REASON_VLM",
    "QualityFilter",
    "Verifier",
    "parse_yes_no",
    "pixel_similarity",
    "planner_verifier",
]

#: Rejection reasons (the keys of a stage report's ``rejected`` counts).
REASON_IDENTICAL = "near-identical"
REASON_UNRELATED = "unrelated"
REASON_VLM = "vlm-no"
#: Side of the grid both images are resized to before they are compared.
GRID = 32

#: ``verifier(images, question, keyword) -> bool``: True keeps the item.
Verifier = Callable[[Sequence[Image.Image], str, str], bool]


def _grid(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((GRID, GRID), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0


def pixel_similarity(a: Image.Image, b: Image.Image) -> float:
    """One minus the mean absolute RGB difference of the two images on a 32x32 grid, in [0, 1] (1: identical).

    Raises:
        TypeError: when an argument is not a PIL image.
    """
    if not isinstance(a, Image.Image) or not isinstance(b, Image.Image):
        raise TypeError(f"pixel_similarity wants two PIL images, got {type(a).__name__} and {type(b).__name__}")
    return float(1.0 - np.abs(_grid(a) - _grid(b)).mean())


@dataclass
class QualityFilter:
    """Reject near-identical and unrelated pairs; optionally ask a VLM.

    Attributes:
        identical: similarity at or above which a pair is near-identical.
        unrelated: similarity below which a pair is unrelated (0 turns the check off).
        measure: the similarity function (default :func:`pixel_similarity`).
        verifier: an optional VLM check (see :data:`Verifier`); ``None``: no VLM check.
    """

    identical: float = 0.995
    unrelated: float = 0.5
    measure: Callable[[Image.Image, Image.Image], float] = pixel_similarity
    verifier: Verifier | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.unrelated <= self.identical <= 1.0):
            raise ValueError(
                f"QualityFilter wants 0 <= unrelated <= identical <= 1, got unrelated={self.unrelated}, "
                f"identical={self.identical}"
            )

    def pair(self, a: Image.Image, b: Image.Image) -> tuple[str | None, float]:
        """``(reason or None, similarity)`` for one pair."""
        sim = self.measure(a, b)
        if sim >= self.identical:
            return REASON_IDENTICAL, sim
        if sim < self.unrelated:
            return REASON_UNRELATED, sim
        return None, sim

    def ask(self, images: Sequence[Image.Image], question: str, keyword: str) -> str | None:
        """``REASON_VLM`` when a verifier is configured and answers no, else ``None``."""
        if self.verifier is None:
            return None
        return None if self.verifier(list(images), question, keyword) else REASON_VLM


_YES = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def parse_yes_no(reply: str) -> bool | None:
    """``True``/``False`` for a reply starting with yes/no (any case, leading punctuation ignored), else ``None``."""
    m = _YES.match(reply or "")
    return None if m is None else m.group(1).lower() == "yes"


def planner_verifier(planner: Any, default: bool = False) -> Verifier:
    """A :data:`Verifier` that asks a planner backend (a VLM: ``qwen:DIR``, ``openai:URL``) the question.

    The planner's raw reply (``generate_reply``) is read as yes/no; an unreadable reply counts as ``default``.
    """

    def verify(images: Sequence[Image.Image], question: str, keyword: str) -> bool:
        reply = planner.generate_reply(list(images), f"{question} Answer yes or no.", "generate")
        answer = parse_yes_no(reply)
        if answer is None:
            logger.warning("VLM check: unreadable reply %r to %r", reply[:80], question)
            return default
        return answer

    return verify
