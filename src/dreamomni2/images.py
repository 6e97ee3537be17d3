"""Safe image loading: the pixel limit is checked from the header, before decoding."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

__all__ = ["DEFAULT_MAX_PIXELS", "ImageLoadError", "load_image"]

#: Refuse images above this many pixels (about 8k x 8k) unless told otherwise.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024


class ImageLoadError(ValueError):
    """An input file is missing, unreadable, not an image or too large."""


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image, checking its size before the pixels are decoded.

    Raises:
        ImageLoadError: with a one-line message naming the file.
    """
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(f"{p}: no such file")
    if not p.is_file():
        raise ImageLoadError(f"{p}: not a file")
    try:
        with Image.open(p) as im:  # reads the header only
            w, h = im.size
            if w * h > max_pixels:
                raise ImageLoadError(f"{p}: {w}x{h} px is above the limit of {max_pixels} pixels")
            im.load()
            return im.convert("RGB")
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{p}: not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageLoadError(f"{p}: cannot read image ({e})") from None
