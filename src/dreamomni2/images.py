"""Safe image loading and atomic saving.

Loading: only an allowlist of formats is decoded (detected by content, never by file name: a PostScript file named
``.png`` is refused, not handed to Ghostscript); the pixel limit is checked from the header, before decoding; EXIF
orientation is applied; 16-bit and float images are scaled to 8 bits instead of clipping to white.
Saving: :func:`save_image` writes to a temporary name, fsyncs and renames (a crash never leaves half a file).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dreamomni2.limits import MAX_INPUT_PIXELS

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "OUTPUT_FORMATS",
    "ImageLoadError",
    "load_image",
    "load_image_bytes",
    "save_image",
]

#: The formats an input image may be in (Pillow format names); anything else is refused unread.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
#: Output file suffix -> Pillow format.
OUTPUT_FORMATS: dict[str, str] = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}

#: Refuse images above this many pixels (about 8k x 8k; :data:`dreamomni2.limits.MAX_INPUT_PIXELS`).
DEFAULT_MAX_PIXELS = MAX_INPUT_PIXELS


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
    return _decode(p, str(p), max_pixels)


def load_image_bytes(data: bytes, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image held in memory (an upload) with :func:`load_image`'s rules: allowlist, pixel check first.

    Args:
        data: the encoded file's bytes.
        name: what to call it in error messages (a field name such as ``image[1]``, or the upload's file name).
        max_pixels: refuse images above this many pixels (read from the header, before decoding).

    Raises:
        ImageLoadError: with a one-line message naming ``name``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageLoadError(f"{name}: expected the file's bytes, got {type(data).__name__}")
    return _decode(io.BytesIO(bytes(data)), name, max_pixels)


def _decode(source: Path | io.BytesIO, label: str, max_pixels: int) -> Image.Image:
    """Open ``source`` (a path or a byte stream) as RGB; errors are :class:`ImageLoadError` naming ``label``."""
    try:
        with Image.open(source, formats=ALLOWED_FORMATS) as im:  # reads the header only
            w, h = im.size
            if w * h > max_pixels:
                raise ImageLoadError(f"{label}: {w}x{h} px is above the limit of {max_pixels} pixels")
            im.load()
            return _to_rgb(ImageOps.exif_transpose(im))
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        formats = ", ".join(ALLOWED_FORMATS)
        raise ImageLoadError(f"{label}: not an image file in an accepted format ({formats})") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageLoadError(f"{label}: cannot read image ({e})") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB: 16-bit / 32-bit integer and float images scaled to 8 bits (Pillow's ``convert`` would clip); alpha
    composited over white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        peak = a.max(initial=0)
        if im.mode.startswith("I;16"):
            top = 65535.0
        elif im.mode == "F" and peak <= 1.0:
            top = 1.0
        else:
            top = 65535.0 if peak > 255 else 255.0
        a = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")  # transparent pixels over white, not whatever colour they happen to hold
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")  # palette, CMYK, L, 1, YCbCr: Pillow's conversions


def save_image(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save ``image`` atomically (temporary sibling, fsync, rename); the format comes from the suffix.

    Raises:
        ValueError: a suffix other than those of :data:`OUTPUT_FORMATS`.
    """
    from dreamomni2.io import atomic_path

    out = Path(path)
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"{out}: use a {', '.join(OUTPUT_FORMATS)} file name")
    with atomic_path(out) as tmp:
        image.save(tmp, format=fmt)
    return out
