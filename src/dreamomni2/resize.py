"""Input and output sizes: the release's resize rule as pure functions.

The release snaps every input image to the FLUX.1-Kontext preferred resolution
closest in aspect ratio, floors it to the VAE x packing multiple (16 for the real
model) and resizes with LANCZOS; the output size is rescaled to ``max_area`` at the
requested aspect ratio. Pipeline, trainer and data tools all use these functions.
"""

from __future__ import annotations

import math

from PIL import Image

__all__ = [
    "PREFERRED_KONTEXT_RESOLUTIONS",
    "closest_preferred_resolution",
    "output_size",
    "reference_size",
    "resize_image",
    "target_size",
]

#: (width, height) pairs FLUX.1-Kontext was trained on (same list as diffusers' Kontext pipeline).
PREFERRED_KONTEXT_RESOLUTIONS: tuple[tuple[int, int], ...] = (
    (672, 1568),
    (688, 1504),
    (720, 1456),
    (752, 1392),
    (800, 1328),
    (832, 1248),
    (880, 1184),
    (944, 1104),
    (1024, 1024),
    (1104, 944),
    (1184, 880),
    (1248, 832),
    (1328, 800),
    (1392, 752),
    (1456, 720),
    (1504, 688),
    (1568, 672),
)


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"Image size must be positive, got {width}x{height}.")


def closest_preferred_resolution(width: int, height: int) -> tuple[int, int]:
    """The preferred ``(width, height)`` closest in aspect ratio (ties: the narrower one)."""
    _check_size(width, height)
    aspect = width / height
    _, w, h = min((abs(aspect - w / h), w, h) for w, h in PREFERRED_KONTEXT_RESOLUTIONS)
    return w, h


def _cap_area(width: int, height: int, max_area: int) -> tuple[int, int]:
    """Scale ``(width, height)`` down (never up) to at most ``max_area`` pixels, same aspect."""
    if width * height <= max_area:
        return width, height
    scale = math.sqrt(max_area / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def reference_size(
    width: int,
    height: int,
    multiple_of: int = 16,
    auto_resize: bool = True,
    max_area: int | None = None,
) -> tuple[int, int]:
    """Size an input image is resized to before VAE encoding.

    Args:
        width, height: the image's own size in pixels.
        multiple_of: VAE scale factor x 2 (16 for FLUX).
        auto_resize: snap to the preferred Kontext resolution closest in aspect ratio to the size
            floored to ``multiple_of`` (the release's default).
        max_area: optional pixel cap applied after snapping (for small-memory runs); not in the release.

    Returns:
        ``(width, height)``, both multiples of ``multiple_of``.
    """
    _check_size(width, height)
    if width < multiple_of or height < multiple_of:
        raise ValueError(f"Image of {width}x{height} px is smaller than one latent patch ({multiple_of} px).")
    if auto_resize:
        # Like the release (diffusers' get_default_height_width), the aspect ratio is taken
        # from the size floored to the multiple, not from the raw size.
        width, height = closest_preferred_resolution(
            width // multiple_of * multiple_of, height // multiple_of * multiple_of
        )
    if max_area is not None:
        width, height = _cap_area(width, height, max_area)
    w, h = width // multiple_of * multiple_of, height // multiple_of * multiple_of
    if w == 0 or h == 0:
        raise ValueError(f"Image of {width}x{height} px is smaller than one latent patch ({multiple_of} px).")
    return w, h


def output_size(width: int, height: int, max_area: int = 1024**2, multiple_of: int = 16) -> tuple[int, int]:
    """The release's output size: the aspect ratio of ``width x height`` at ``max_area`` pixels.

    Like the release (and diffusers' Kontext pipeline) it rescales up as well as down.
    """
    _check_size(width, height)
    aspect = width / height
    w = round((max_area * aspect) ** 0.5) // multiple_of * multiple_of
    h = round((max_area / aspect) ** 0.5) // multiple_of * multiple_of
    if w == 0 or h == 0:
        raise ValueError(f"max_area={max_area} is too small for a {width}x{height} output.")
    return w, h


def resize_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """LANCZOS resize to ``size = (width, height)`` (a copy when the size already matches)."""
    if image.size == tuple(size):
        return image.copy()
    return image.resize(tuple(size), resample=Image.Resampling.LANCZOS)


def target_size(
    task: str | None,
    first_image_size: tuple[int, int] | None,
    requested: tuple[int | None, int | None] = (None, None),
    max_area: int = 1024**2,
    multiple_of: int = 16,
    default: int = 1024,
) -> tuple[int, int]:
    """Output ``(width, height)`` of a call; the pipeline and the trainer both use it.

    Args:
        task: ``"edit"`` (missing sides come from the first image's prepared size),
            ``"generate"`` or ``None`` (missing sides default to ``default``, the release).
        first_image_size: prepared ``(width, height)`` of the first input image, if any.
        requested: ``(width, height)`` asked for; ``None`` for a side means "default".
        max_area, multiple_of: as in :func:`output_size`.
    """
    width, height = requested
    if task == "edit" and first_image_size is not None:
        width, height = width or first_image_size[0], height or first_image_size[1]
    return output_size(width or default, height or default, max_area=max_area, multiple_of=multiple_of)
