"""The page's examples: mini-world cases, rendered at 32 px, so the page works offline on a fresh machine.

The cases are :func:`~dreamomni2.mini.world.make_cases` draws (all four groups); their input images go into the
image list at their own 32 px size (the mini model's), and only the previews are upscaled, with hard edges.
"""

from __future__ import annotations

import functools

from PIL import Image

from dreamomni2.mini.world import Case, make_cases, render
from dreamomni2.web.gallery import InputImage

__all__ = ["DISPLAY_SCALE", "EXAMPLE_COUNT", "EXAMPLE_SEED", "example_caption", "example_cases", "example_gallery",
           "example_inputs", "example_preview", "upscale"]  # fmt: skip

#: ``make_cases`` seed and count of the examples (8 cases, two of each group; the mini model gets them right).
EXAMPLE_SEED = 2
EXAMPLE_COUNT = 8
#: Upscaling factor of the 32 px previews.
DISPLAY_SCALE = 4
_GAP = 4


@functools.lru_cache(maxsize=1)
def example_cases() -> tuple[Case, ...]:
    """The example cases (cached)."""
    return tuple(make_cases(EXAMPLE_SEED, EXAMPLE_COUNT))


def upscale(image: Image.Image, scale: int = DISPLAY_SCALE) -> Image.Image:
    """``image`` ``scale`` times larger, nearest neighbour (hard edges, as rendered)."""
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def example_preview(case: Case, scale: int = DISPLAY_SCALE) -> Image.Image:
    """The case's input images side by side, upscaled for display."""
    tiles = [upscale(render(scene), scale) for scene in case.images]
    width = sum(t.width for t in tiles) + _GAP * (len(tiles) - 1)
    strip = Image.new("RGB", (width, tiles[0].height), (255, 255, 255))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + _GAP
    return strip


def example_caption(case: Case) -> str:
    """``edit: <instruction>``."""
    return f"{case.task}: {case.instruction}"


def example_gallery() -> list[tuple[Image.Image, str]]:
    """``(preview, caption)`` for every example."""
    return [(example_preview(c), example_caption(c)) for c in example_cases()]


def example_inputs(index: int) -> tuple[str, list[InputImage], str]:
    """The task, the image list (32 px, named ``example 3.1``...) and the instruction of example ``index``."""
    cases = example_cases()
    if not 0 <= int(index) < len(cases):
        raise ValueError(f"no example {index}; there are {len(cases)}")
    case = cases[int(index)]
    images = [InputImage(render(scene), f"example {index + 1}.{i + 1}") for i, scene in enumerate(case.images)]
    return case.task, images, case.instruction
