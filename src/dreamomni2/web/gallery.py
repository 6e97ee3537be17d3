"""The page's ordered image list: add, remove, reorder, label (plain functions, no gradio).

The list is what a request's ``images`` will be, in order: the entry at index 0 is ``image 1`` (the image an edit
changes), and every label says the number the instruction uses for it. The functions return new lists; the page
keeps the list in its per-browser state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from dreamomni2.tasks import MAX_IMAGES

__all__ = [
    "InputImage",
    "add_images",
    "gallery_value",
    "image_label",
    "labels",
    "load_uploads",
    "move_image",
    "remove_image",
    "set_first",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputImage:
    """One image of the list and the name shown with its number (a file name, ``result 1``, ``example 2.1``...)."""

    image: Image.Image
    name: str


def image_label(index: int, item: InputImage | None = None) -> str:
    """``image 1`` for index 0 (``image 1 · cat.png`` with the item's name)."""
    label = f"image {index + 1}"
    return f"{label} · {item.name}" if item is not None and item.name else label


def labels(items: Sequence[InputImage]) -> list[str]:
    """The labels of the list, in order."""
    return [image_label(i, item) for i, item in enumerate(items)]


def gallery_value(items: Sequence[InputImage]) -> list[tuple[Image.Image, str]]:
    """``(image, label)`` pairs for a gallery."""
    return [(item.image, label) for item, label in zip(items, labels(items), strict=True)]


def add_images(items: Sequence[InputImage], new: Sequence[InputImage]) -> tuple[list[InputImage], int]:
    """Append ``new`` up to :data:`~dreamomni2.tasks.MAX_IMAGES`; returns the list and how many did not fit."""
    room = max(0, MAX_IMAGES - len(items))
    return [*items, *new[:room]], max(0, len(new) - room)


def _check_index(items: Sequence[InputImage], index: int | None) -> int:
    if index is None or not 0 <= int(index) < len(items):
        raise ValueError("select an image first" if items else "there are no images")
    return int(index)


def remove_image(items: Sequence[InputImage], index: int | None) -> list[InputImage]:
    """The list without the entry at ``index``; raises ``ValueError`` for a bad index."""
    index = _check_index(items, index)
    return [item for i, item in enumerate(items) if i != index]


def move_image(items: Sequence[InputImage], index: int | None, offset: int) -> tuple[list[InputImage], int]:
    """Move the entry at ``index`` by ``offset`` places (``-1``: towards image 1), clamped to the list.

    Returns:
        The new list and the entry's new index.
    """
    index = _check_index(items, index)
    target = min(max(index + offset, 0), len(items) - 1)
    out = list(items)
    out.insert(target, out.pop(index))
    return out, target


def set_first(items: Sequence[InputImage], item: InputImage) -> list[InputImage]:
    """Make ``item`` image 1, replacing the current image 1 (the other numbers stay as they are)."""
    return [item, *items[1:]]


def load_uploads(paths: Sequence[str | os.PathLike] | None, names: Sequence[str] | None = None) -> list[InputImage]:
    """Load uploaded files as RGB images (size-checked before decoding), named by ``names`` or their file names.

    Raises:
        dreamomni2.images.ImageLoadError: a file that is not an accepted image (the message names the file).
    """
    from dreamomni2.images import ImageLoadError, load_image

    out = []
    for i, path in enumerate(paths or ()):
        name = names[i] if names is not None else Path(path).name
        try:
            out.append(InputImage(load_image(path), name))
        except ImageLoadError as e:
            raise ImageLoadError(str(e).replace(str(path), name)) from None
    logger.debug("Loaded %d uploaded image(s)", len(out))
    return out
