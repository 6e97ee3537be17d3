"""Extraction (paper section 2, stage 2): pull an object or an attribute out of an image into a new reference.

The extraction model is the generation model fine-tuned on pairs that share an object or attribute (feature-mixed
pairs at full scale, ``configs/extract_lora_mini.yaml`` on the mini world) with the instruction
``"Extract the <keyword> from image 1."``; as a separate LoRA (``--lora``) or folded into the generation LoRA (the
authors' choice, ``configs/extract_folded_mini.yaml``). :func:`extract` asks it through the
:class:`~dreamomni2.session.Session`, one request per (image, keyword), batched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "EXTRACT_TEMPLATE", "MAX_KEYWORD_CHARS", "check_keyword", "extract", "extract_requests", "extraction_prompt",
    "extraction_seed",
]  # fmt: skip

#: The instruction the extraction model is trained on (``{keyword}``: an object or an attribute, in words).
EXTRACT_TEMPLATE = "Extract the {keyword} from image 1."
#: Longest keyword accepted.
MAX_KEYWORD_CHARS = 200


def check_keyword(keyword: Any) -> str:
    """The keyword, stripped; raises ``ValueError``/``TypeError`` for an empty, multi-line or too long one."""
    if not isinstance(keyword, str):
        raise TypeError(f"a keyword must be a string, got {type(keyword).__name__}")
    text = keyword.strip()
    if not text or "\n" in text or len(text) > MAX_KEYWORD_CHARS:
        raise ValueError(f"bad keyword {keyword!r}: want one line of 1 to {MAX_KEYWORD_CHARS} characters")
    return text


def extraction_prompt(keyword: str, template: str = EXTRACT_TEMPLATE) -> str:
    """``"Extract the <keyword> from image 1."`` (or ``template`` filled with the keyword)."""
    return template.format(keyword=check_keyword(keyword))


def extraction_seed(seed: int, image_index: int, keyword_index: int, n_keywords: int) -> int:
    """The seed of image ``image_index``, keyword ``keyword_index`` of ``n_keywords``: ``seed + i * n + k``."""
    return seed + image_index * n_keywords + keyword_index


def extract_requests(
    images: Sequence[Image.Image],
    keywords: Sequence[str],
    *,
    seed: int = 0,
    task: str = "generate",
    steps: int | None = None,
    guidance: float | None = None,
    size: tuple[int, int] | None = None,
    template: str = EXTRACT_TEMPLATE,
) -> list[Any]:
    """The Session requests of :func:`extract`: image ``i``, keyword ``k`` -> seed ``seed + i * len(keywords) + k``.

    The prompt is the extraction instruction itself (no planner); the output has the input's size unless ``size``.
    """
    from dreamomni2.request import Request

    if isinstance(images, Image.Image) or not all(isinstance(im, Image.Image) for im in images):
        raise TypeError("images must be a list of PIL images")
    if isinstance(keywords, str) or not keywords:
        raise ValueError("keywords must be a non-empty list of strings")
    prompts = [extraction_prompt(k, template) for k in keywords]
    return [
        Request(
            task,
            [im],
            instruction=p,
            plan=False,
            seed=extraction_seed(seed, i, k, len(prompts)),
            steps=steps,
            guidance=guidance,
            size=size or im.size,
        )  # fmt: skip
        for i, im in enumerate(images)
        for k, p in enumerate(prompts)
    ]


def extract(
    session: Any,
    images: Sequence[Image.Image],
    keywords: Sequence[str],
    *,
    seed: int = 0,
    task: str = "generate",
    steps: int | None = None,
    guidance: float | None = None,
    size: tuple[int, int] | None = None,
    template: str = EXTRACT_TEMPLATE,
) -> list[list[Image.Image]]:
    """Extract every keyword from every image with the extraction model behind ``session``.

    Args:
        session: a :class:`~dreamomni2.session.Session` on the extraction model (base + extraction LoRA, or the
            generation model with the folded-in extraction ability).
        images: the images to extract from.
        keywords: objects or attributes in words (``"bag"``, ``"colour"``, ``"pattern"``).
        seed: first seed (see :func:`extract_requests`).
        task: ``generate`` (default: a new image with image 1 as its reference) or ``edit``.
        steps, guidance, size: as :class:`~dreamomni2.request.Request` (``None``: the model's defaults; size: the
            input's).
        template: the instruction template.

    Returns:
        ``references[i][k]``: keyword ``k`` extracted from image ``i``.

    Raises:
        ValueError / TypeError: bad images, keywords or settings.
    """
    requests = extract_requests(images, keywords, seed=seed, task=task, steps=steps, guidance=guidance, size=size,
                                template=template)  # fmt: skip
    results = session.run_batch(requests)
    n = len(keywords)
    return [[results[i * n + k].image for k in range(n)] for i in range(len(images))]
