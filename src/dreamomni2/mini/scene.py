"""Scenes of the mini world: the vocabulary, :class:`Obj` and :class:`Scene`, and the deterministic renderer.

Every image holds one centred object (shape, colour, pattern, size) on a flat background, drawn with hard edges
and no antialiasing (:func:`render`, :func:`render_array`; the masks :func:`shape_mask` and :func:`pattern_mask`
are what the analyzer matches against).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "BACKGROUNDS", "BAND", "COLORS", "DARKEN", "LIGHTEN", "OBJ_ATTRS", "PATTERNS", "RADIUS", "SCENE_ATTRS", "SHAPES",
    "SIZES", "VOCAB", "Obj", "Scene", "pattern_color", "pattern_mask", "render", "render_array", "shape_mask",
    "validate_scene",
]  # fmt: skip

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 230),
    "yellow": (240, 220, 40),
    "magenta": (210, 50, 210),
    "cyan": (40, 210, 220),
    "orange": (245, 140, 30),
}
PATTERNS: tuple[str, ...] = ("solid", "stripes", "checker")
SIZES: tuple[str, ...] = ("small", "large")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "light": (215, 215, 215),
    "dark": (50, 50, 50),
    "warm": (230, 195, 140),
}
OBJ_ATTRS: tuple[str, ...] = ("shape", "color", "pattern", "size")
SCENE_ATTRS: tuple[str, ...] = (*OBJ_ATTRS, "background")
VOCAB: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "pattern": PATTERNS,
    "size": SIZES,
    "background": tuple(BACKGROUNDS),
}

# Geometry, as fractions of the image side: object "radius" per size, pattern band width.
RADIUS: dict[str, float] = {"small": 0.22, "large": 0.36}
BAND = 3 / 32
DARKEN = 0.45  # pattern colour on bright backgrounds: colour * DARKEN
LIGHTEN = 0.55  # pattern colour on dark backgrounds: colour + LIGHTEN * (255 - colour)


@dataclass(frozen=True)
class Obj:
    """One object: ``shape`` in SHAPES, ``color`` in COLORS, ``pattern`` in PATTERNS, ``size`` in SIZES."""

    shape: str
    color: str
    pattern: str
    size: str

    def to_dict(self) -> dict[str, str]:
        """Return the attributes as a plain dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Scene:
    """One image: an object centred on a background (a name in BACKGROUNDS)."""

    obj: Obj
    background: str

    def attr(self, name: str) -> str:
        """Return a scene attribute by name (one of SCENE_ATTRS)."""
        return self.background if name == "background" else getattr(self.obj, name)

    def replace(self, **changes: str) -> Scene:
        """Return a copy with some attributes (any of SCENE_ATTRS) changed."""
        bg = changes.pop("background", self.background)
        return Scene(dataclasses.replace(self.obj, **changes), bg)

    def to_dict(self) -> dict[str, str]:
        """Return the five attributes as a flat dict."""
        return {**self.obj.to_dict(), "background": self.background}

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> Scene:
        """Build a scene from :meth:`to_dict` output."""
        return cls(Obj(d["shape"], d["color"], d["pattern"], d["size"]), d["background"])


def validate_scene(scene: Scene) -> None:
    """Raise ValueError when an attribute is outside the vocabulary."""
    for name in SCENE_ATTRS:
        if scene.attr(name) not in VOCAB[name]:
            raise ValueError(f"unknown {name} {scene.attr(name)!r}; expected one of {VOCAB[name]}")


# ----------------------------------------------------------------------------------------------------------------
# Rendering


def pattern_color(color: str, background: str) -> tuple[int, int, int]:
    """Return the second colour of a patterned object: darker on bright backgrounds, lighter on dark ones."""
    c = np.asarray(COLORS[color], dtype=np.float64)
    if np.mean(BACKGROUNDS[background]) > 128:
        out = c * DARKEN
    else:
        out = c + LIGHTEN * (255.0 - c)
    return tuple(int(round(v)) for v in out)  # type: ignore[return-value]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return pixel-centre offsets (dx, dy) from the image centre."""
    coords = np.arange(size, dtype=np.float64) + 0.5 - size / 2
    return np.meshgrid(coords, coords)


def shape_mask(shape: str, size_name: str, size: int = 32) -> np.ndarray:
    """Return the boolean object mask of a centred shape.

    Args:
        shape: a name in SHAPES.
        size_name: a name in SIZES.
        size: image side in pixels.

    Returns:
        A ``(size, size)`` boolean array, True inside the object.
    """
    dx, dy = _grid(size)
    r = RADIUS[size_name] * size
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        h = 0.82 * r
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape == "triangle":
        top, bottom = -r, 0.8 * r
        half = r * (dy - top) / (bottom - top)
        return (dy >= top) & (dy <= bottom) & (np.abs(dx) <= half)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.05 * r
    if shape == "cross":
        a = 0.36 * r
        return ((np.abs(dx) <= a) & (np.abs(dy) <= r)) | ((np.abs(dy) <= a) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def pattern_mask(pattern: str, size: int = 32) -> np.ndarray:
    """Return where the pattern's second colour goes (all False for solid)."""
    dx, dy = _grid(size)
    band = max(2, round(BAND * size))
    if pattern == "solid":
        return np.zeros((size, size), dtype=bool)
    if pattern == "stripes":
        return np.floor(dy / band).astype(int) % 2 == 1
    if pattern == "checker":
        return (np.floor(dx / band).astype(int) + np.floor(dy / band).astype(int)) % 2 == 1
    raise ValueError(f"unknown pattern {pattern!r}; expected one of {PATTERNS}")


def render_array(scene: Scene, size: int = 32) -> np.ndarray:
    """Render a scene to a ``(size, size, 3)`` uint8 array (see :func:`render`)."""
    validate_scene(scene)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    out = np.empty((size, size, 3), dtype=np.uint8)
    out[:] = BACKGROUNDS[scene.background]
    obj = scene.obj
    mask = shape_mask(obj.shape, obj.size, size)
    out[mask] = COLORS[obj.color]
    out[mask & pattern_mask(obj.pattern, size)] = pattern_color(obj.color, scene.background)
    return out


def render(scene: Scene, size: int = 32) -> Image.Image:
    """Render a scene deterministically (hard edges, no antialiasing).

    Args:
        scene: the scene to draw.
        size: image side in pixels (>= 16; 32 and 64 are the tested sizes).

    Returns:
        An RGB ``size`` x ``size`` image.
    """
    return Image.fromarray(render_array(scene, size), mode="RGB")
