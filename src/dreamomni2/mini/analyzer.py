"""Read mini-world images back into attributes and score outputs against a case (the mini VLM judge).

The analysis is deterministic and tolerant of the mild blur and noise a generated image has:

* background: per-channel median of a two-pixel border ring, nearest reference background;
* object mask: pixels far (in RGB) from the measured background, with isolated specks removed;
* shape: best overlap (IoU) with the rendered shape templates, centroids aligned;
* size: the chosen shape's template (small or large) whose area is closest in log scale;
* colour: a per-pixel vote inside the eroded mask, each pixel going to the nearest base or pattern colour;
* pattern: share of pattern-coloured pixels (solid when low), then stripes (horizontal bands: the label barely
  changes along rows) versus checker (it changes as often along rows as along columns).

Attributes that cannot be read (no object found) come back as ``"unknown"``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from dreamomni2.mini.cases import Case
from dreamomni2.mini.groups import group_name
from dreamomni2.mini.scene import BACKGROUNDS, COLORS, SCENE_ATTRS, SHAPES, SIZES, Obj, Scene, pattern_color, shape_mask

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
MASK_THRESHOLD = 40.0  # RGB distance from the background that counts as object
MIN_OBJECT_PIXELS = 6
EDGE_LEVEL = 0.5  # share of the median object contrast where the object edge is drawn
SOLID_MAX_FRACTION = 0.12  # pattern-coloured share below which an object is solid
STRIPE_RATIO = 0.4  # row-change rate below this share of the column-change rate means horizontal stripes


def to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Return a square float ``(S, S, 3)`` array in 0..255.

    Args:
        image: a PIL image (any mode) or an ``(H, W, 3)`` array, uint8 in 0..255 or float in 0..1.

    Returns:
        The image as float64; non-square inputs are resized to their shorter side.
    """
    if isinstance(image, np.ndarray):
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] < 3:
            raise ValueError(f"expected an (H, W, 3) array, got shape {arr.shape}")
        arr = arr[..., :3]
        if np.issubdtype(arr.dtype, np.floating) and arr.max(initial=0.0) <= 1.0:
            arr = arr * 255.0
        arr = arr.astype(np.float64)
        if arr.shape[0] == arr.shape[1]:
            return arr
        image = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8))
    image = image.convert("RGB")
    if image.width != image.height:
        side = min(image.size)
        image = image.resize((side, side), Image.BILINEAR)
    return np.asarray(image, dtype=np.float64)


@lru_cache(maxsize=16)
def _templates(size: int) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, int]]:
    """Return (mask, centroid, area) of every shape/size template at an image side."""
    out = {}
    for shape in SHAPES:
        for size_name in SIZES:
            mask = shape_mask(shape, size_name, size)
            ys, xs = np.nonzero(mask)
            out[(shape, size_name)] = (mask, np.array([ys.mean(), xs.mean()]), int(mask.sum()))
    return out


def _neighbour_count(mask: np.ndarray) -> np.ndarray:
    """Return the number of True pixels in each pixel's 8-neighbourhood."""
    p = np.pad(mask.astype(np.int32), 1)
    h, w = mask.shape
    return sum(p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)) - mask


def _erode(mask: np.ndarray) -> np.ndarray:
    """Return the mask eroded by one pixel (4-neighbourhood)."""
    p = np.pad(mask, 1)
    return mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift a mask by whole pixels, filling with False."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def _background(arr: np.ndarray) -> tuple[str, np.ndarray]:
    """Return the nearest background name and the measured background colour."""
    ring = np.concatenate(
        [arr[:2].reshape(-1, 3), arr[-2:].reshape(-1, 3), arr[:, :2].reshape(-1, 3), arr[:, -2:].reshape(-1, 3)]
    )
    rgb = np.median(ring, axis=0)
    names = list(BACKGROUNDS)
    d = [np.linalg.norm(rgb - np.asarray(BACKGROUNDS[n], dtype=np.float64)) for n in names]
    return names[int(np.argmin(d))], rgb


def object_mask(arr: np.ndarray, background_rgb: np.ndarray) -> np.ndarray:
    """Return the object mask: pixels far from the background colour, isolated specks removed.

    Args:
        arr: ``(S, S, 3)`` float image.
        background_rgb: measured background colour.

    Returns:
        A boolean ``(S, S)`` mask.
    """
    dist = np.linalg.norm(arr - background_rgb, axis=2)
    mask = dist > MASK_THRESHOLD
    if mask.any():  # blur spreads edges: cut at half the object's typical contrast
        mask = dist > max(MASK_THRESHOLD, EDGE_LEVEL * float(np.median(dist[mask])))
    return mask & (_neighbour_count(mask) >= 2)


def _shape_and_size(mask: np.ndarray) -> tuple[str, str]:
    """Classify shape by template IoU and size by template area."""
    ys, xs = np.nonzero(mask)
    centroid = np.array([ys.mean(), xs.mean()])
    area = float(mask.sum())
    best: dict[str, float] = {}
    templates = _templates(mask.shape[0])
    for (shape, _), (tmpl, tc, _) in templates.items():
        dy, dx = (int(v) for v in np.round(centroid - tc))
        t = _shift(tmpl, dy, dx)
        iou = float((t & mask).sum()) / float((t | mask).sum())
        best[shape] = max(best.get(shape, 0.0), iou)
    shape = max(SHAPES, key=lambda s: best[s])
    size = min(SIZES, key=lambda z: abs(np.log(area / templates[(shape, z)][2])))
    return shape, size


@lru_cache(maxsize=8)
def _palette(background: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the base and pattern colours of every colour name (in COLORS order) on a background."""
    base = np.array([COLORS[n] for n in COLORS], dtype=np.float64)
    alt = np.array([pattern_color(n, background) for n in COLORS], dtype=np.float64)
    return base, alt


def _color_and_pattern(arr: np.ndarray, mask: np.ndarray, background: str) -> tuple[str, str]:
    """Classify colour by a per-pixel palette vote and pattern by the pattern-coloured pixels' layout."""
    core = _erode(mask)
    region = core if core.sum() >= MIN_OBJECT_PIXELS else mask
    names = list(COLORS)
    base, alt = _palette(background)
    pix = arr[region]
    d_base = ((pix[:, None, :] - base[None]) ** 2).sum(axis=2)
    d_alt = ((pix[:, None, :] - alt[None]) ** 2).sum(axis=2)
    nearest = np.argmin(np.concatenate([d_base, d_alt], axis=1), axis=1) % len(names)
    ci = int(np.argmax(np.bincount(nearest, minlength=len(names))))
    color = names[ci]

    is_alt = np.zeros(mask.shape, dtype=bool)
    is_alt[region] = d_alt[:, ci] < d_base[:, ci]
    if is_alt[region].mean() < SOLID_MAX_FRACTION:
        return color, "solid"
    row_pairs = region[:, 1:] & region[:, :-1]
    col_pairs = region[1:, :] & region[:-1, :]
    row_rate = float((is_alt[:, 1:] != is_alt[:, :-1])[row_pairs].mean()) if row_pairs.any() else 0.0
    col_rate = float((is_alt[1:, :] != is_alt[:-1, :])[col_pairs].mean()) if col_pairs.any() else 0.0
    return color, "stripes" if row_rate < STRIPE_RATIO * col_rate else "checker"


def analyze(image: Image.Image | np.ndarray) -> Scene:
    """Read an image of the mini world back into a scene.

    Args:
        image: a PIL image or ``(H, W, 3)`` array (uint8 0..255 or float 0..1), ideally square.

    Returns:
        The scene read from it; object attributes are ``"unknown"`` when no object is found.
    """
    arr = to_array(image)
    background, bg_rgb = _background(arr)
    mask = object_mask(arr, bg_rgb)
    if mask.sum() < MIN_OBJECT_PIXELS:
        return Scene(Obj(UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN), background)
    shape, size = _shape_and_size(mask)
    color, pattern = _color_and_pattern(arr, mask, background)
    return Scene(Obj(shape, color, pattern, size), background)


def score(case: Case, image: Image.Image | np.ndarray) -> dict[str, Any]:
    """Judge an output image against a case's target.

    Args:
        case: the case (its ``target`` is what the image must show).
        image: the model's output.

    Returns:
        ``task``, ``category``, ``kind``, one bool per attribute in SCENE_ATTRS, ``success`` (all of them right)
        and ``predicted`` (the attributes read from the image).
    """
    pred = analyze(image)
    result: dict[str, Any] = {"task": case.task, "category": case.category, "kind": case.kind}
    for name in SCENE_ATTRS:
        result[name] = pred.attr(name) == case.target.attr(name)
    result["success"] = all(result[name] for name in SCENE_ATTRS)
    result["predicted"] = pred.to_dict()
    return result


def summarize(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate :func:`score` results.

    Args:
        results: score dicts.

    Returns:
        ``n``, overall ``success`` rate, ``groups`` (group name, ``"task/category"`` as
        :func:`dreamomni2.mini.groups.group_name` writes it, -> ``{"n", "success"}``), ``kinds``
        (kind -> ``{"n", "success"}``) and ``attributes`` (attribute -> accuracy); rates are 0.0 when empty.
    """
    results = list(results)
    groups: dict[str, list[bool]] = defaultdict(list)
    kinds: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        groups[group_name(r["task"], r["category"])].append(bool(r["success"]))
        kinds[r["kind"]].append(bool(r["success"]))

    def rate(values: list[bool]) -> float:
        return float(np.mean(values)) if values else 0.0

    summary = {
        "n": len(results),
        "success": rate([bool(r["success"]) for r in results]),
        "groups": {k: {"n": len(v), "success": rate(v)} for k, v in sorted(groups.items())},
        "kinds": {k: {"n": len(v), "success": rate(v)} for k, v in sorted(kinds.items())},
        "attributes": {a: rate([bool(r[a]) for r in results]) for a in SCENE_ATTRS},
    }
    logger.debug("summary: %s", summary)
    return summary
