"""The procedural mini world: single-object scenes, their renderer, and instruction cases.

Every image holds one centred object (shape, colour, pattern, size) on a flat background. A :class:`Case` is an
instruction plus 1-4 input images and the scene the answer must show, in DreamOmni2's four groups:

* ``edit/concrete`` (kind ``replace``): put the object of image k into image 1 (image 1 keeps its background);
* ``edit/abstract`` (kinds ``color``, ``pattern``, ``size``, ``background``): give image 1 one attribute of image k;
* ``generate/concrete`` (kind ``place``): the object of image k on a background named in the text;
* ``generate/abstract`` (kind ``compose``): an object whose attributes come partly from the text and partly
  from several reference images.

The other images are distractors: they differ from the referenced image in the referenced attribute (in at least
two object attributes for concrete cases), so only the image number in the instruction decides the answer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

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
TASKS: tuple[str, ...] = ("edit", "generate")
CATEGORIES: tuple[str, ...] = ("concrete", "abstract")
KINDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("edit", "concrete"): ("replace",),
    ("edit", "abstract"): ("color", "pattern", "size", "background"),
    ("generate", "concrete"): ("place",),
    ("generate", "abstract"): ("compose",),
}
#: The group names ``task/category`` in the order :func:`make_cases` cycles through them.
GROUP_NAMES: tuple[str, ...] = tuple(f"{t}/{c}" for t in TASKS for c in CATEGORIES)
MAX_IMAGES = 4

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


# ----------------------------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    """One instruction case.

    ``images[0]`` is the source for edits. ``prompt`` is the canonical instruction (``image 1``, ``image 2``...),
    ``instruction`` the text given to the model (a paraphrase, or the prompt itself). ``refs`` maps what is taken
    from an input image (``object`` for concrete cases, else an attribute name) to its 1-based image number.
    """

    task: str
    category: str
    images: list[Scene]
    instruction: str
    prompt: str
    target: Scene
    kind: str
    refs: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (scenes as flat attribute dicts)."""
        return {
            "task": self.task,
            "category": self.category,
            "kind": self.kind,
            "images": [s.to_dict() for s in self.images],
            "instruction": self.instruction,
            "prompt": self.prompt,
            "target": self.target.to_dict(),
            "refs": dict(self.refs),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Case:
        """Build a case from :meth:`to_dict` output."""
        return cls(
            task=d["task"],
            category=d["category"],
            images=[Scene.from_dict(s) for s in d["images"]],
            instruction=d["instruction"],
            prompt=d["prompt"],
            target=Scene.from_dict(d["target"]),
            kind=d["kind"],
            refs={k: int(v) for k, v in d.get("refs", {}).items()},
        )


ATTR_WORD = {"shape": "shape", "color": "colour", "pattern": "pattern", "size": "size", "background": "background"}
PATTERN_ADJ = {"solid": "solid", "stripes": "striped", "checker": "checkered"}
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}

# Paraphrase vocabularies (the first entry of each list is the canonical word).
ATTR_SYNONYMS = {
    "shape": ["shape", "form", "outline"],
    "color": ["colour", "color", "hue"],
    "pattern": ["pattern", "texture", "surface pattern"],
    "size": ["size", "scale"],
}
VALUE_SYNONYMS: dict[str, dict[str, list[str]]] = {
    "shape": {
        "circle": ["circle", "disc", "disk"],
        "square": ["square", "box"],
        "triangle": ["triangle", "triangular shape"],
        "diamond": ["diamond", "rhombus"],
        "cross": ["cross", "plus sign"],
    },
    "color": {
        "red": ["red", "scarlet"],
        "green": ["green", "emerald"],
        "blue": ["blue", "royal blue"],
        "yellow": ["yellow", "lemon-yellow"],
        "magenta": ["magenta", "fuchsia"],
        "cyan": ["cyan", "turquoise"],
        "orange": ["orange", "tangerine"],
    },
    "pattern": {
        "solid": ["solid", "plain", "uniformly coloured"],
        "stripes": ["striped", "stripy", "banded"],
        "checker": ["checkered", "chequered", "checked"],
    },
    "size": {"small": ["small", "little", "tiny"], "large": ["large", "big"]},
    "background": {
        "light": ["light", "light grey", "pale grey"],
        "dark": ["dark", "dark grey", "charcoal"],
        "warm": ["warm", "beige", "sand-coloured"],
    },
}
REF_STYLES: list[Callable[[int], str]] = [
    lambda k: f"image {k}",
    lambda k: f"picture {k}",
    lambda k: f"photo {k}",
    lambda k: f"image #{k}",
    lambda k: f"the {ORDINALS[k]} image",
    lambda k: f"the {ORDINALS[k]} picture",
]


def _article(phrase: str) -> str:
    """Prefix ``a`` or ``an``."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _join(parts: Sequence[str]) -> str:
    """Join clauses as ``A``, ``A and B``, ``A, B and C``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _sentence(text: str) -> str:
    """Capitalise the first letter."""
    return text[:1].upper() + text[1:]


def _noun_phrase(target: Scene, refs: dict[str, int], word: Callable[[str, str], str]) -> str:
    """Return 'a large striped red circle'-style text for the attributes not taken from images."""
    adjs = [word(a, target.attr(a)) for a in ("size", "pattern", "color") if a not in refs]
    noun = "object" if "shape" in refs else word("shape", target.obj.shape)
    return _article(" ".join([*adjs, noun]))


def _canonical_word(attr: str, value: str) -> str:
    """Return the canonical word for an attribute value."""
    return PATTERN_ADJ[value] if attr == "pattern" else value


def canonical_prompt(case: Case) -> str:
    """Return the canonical instruction of a case (uses ``image 1``, ``image 2``... and canonical words).

    Args:
        case: a case; only ``task``, ``kind``, ``refs`` and ``target`` are read.

    Returns:
        The canonical prompt text.
    """
    refs, target = case.refs, case.target
    if case.kind == "replace":
        return f"Replace the object in image 1 with the object from image {refs['object']}."
    if case.kind in ("color", "pattern", "size"):
        return f"Make the object in image 1 have the {ATTR_WORD[case.kind]} of the object in image {refs[case.kind]}."
    if case.kind == "background":
        return f"Give image 1 the background of image {refs['background']}."
    if case.kind == "place":
        return f"Generate the object from image {refs['object']} on a {target.background} background."
    if case.kind == "compose":
        clauses = [f"the {ATTR_WORD[a]} of image {refs[a]}" for a in OBJ_ATTRS if a in refs]
        np_ = _noun_phrase(target, refs, _canonical_word)
        return f"Generate {np_} with {_join(clauses)} on a {target.background} background."
    raise ValueError(f"unknown case kind {case.kind!r}")


def paraphrase_instruction(case: Case, rng: random.Random) -> str:
    """Return a random paraphrase of the case's instruction (same meaning, varied wording).

    Args:
        case: the case to describe.
        rng: random source.

    Returns:
        Instruction text; image references may use ``picture k``, ``photo k`` or ordinals.
    """
    style = rng.choice(REF_STYLES)
    refs, target = case.refs, case.target

    def word(attr: str, value: str) -> str:
        return rng.choice(VALUE_SYNONYMS[attr][value])

    if case.kind == "replace":
        src, ref = style(1), style(refs["object"])
        templates = [
            "replace the object in {src} with the object from {ref}.",
            "put the object from {ref} into {src}.",
            "swap the object in {src} for the one shown in {ref}.",
            "take the object from {ref} and place it in {src}, replacing what is there.",
            "in {src}, substitute the object with the object of {ref}.",
        ]
        return _sentence(rng.choice(templates).format(src=src, ref=ref))
    if case.kind in ("color", "pattern", "size"):
        src, ref = style(1), style(refs[case.kind])
        attr = rng.choice(ATTR_SYNONYMS[case.kind])
        templates = [
            "make the object in {src} have the {attr} of the object in {ref}.",
            "change the {attr} of the object in {src} to match {ref}.",
            "give the object in {src} the same {attr} as the object in {ref}.",
            "using {ref} as a reference, change the {attr} of the object in {src}.",
            "copy the {attr} of the object in {ref} onto the object in {src}.",
        ]
        return _sentence(rng.choice(templates).format(src=src, ref=ref, attr=attr))
    if case.kind == "background":
        src, ref = style(1), style(refs["background"])
        templates = [
            "give {src} the background of {ref}.",
            "change the background of {src} to match {ref}.",
            "replace the background in {src} with the background from {ref}.",
            "keep the object in {src} but use the background of {ref}.",
        ]
        return _sentence(rng.choice(templates).format(src=src, ref=ref))
    if case.kind == "place":
        ref, bg = style(refs["object"]), word("background", target.background)
        templates = [
            "generate the object from {ref} on a {bg} background.",
            "draw the object shown in {ref} against a {bg} background.",
            "create an image of the object in {ref}, placed on a {bg} background.",
            "on a {bg} background, show the object from {ref}.",
        ]
        return _sentence(rng.choice(templates).format(ref=ref, bg=bg))
    if case.kind == "compose":
        forms = ["the {attr} of {ref}", "the same {attr} as the object in {ref}", "the {attr} of the object in {ref}"]
        form = rng.choice(forms)
        attrs = [a for a in OBJ_ATTRS if a in refs]
        rng.shuffle(attrs)
        clauses = _join([form.format(attr=rng.choice(ATTR_SYNONYMS[a]), ref=style(refs[a])) for a in attrs])
        np_ = _noun_phrase(target, refs, word)
        bg = word("background", target.background)
        verb = rng.choice(["generate", "create", "draw", "make"])
        templates = [
            "{verb} {np} with {clauses} on a {bg} background.",
            "on a {bg} background, {verb} {np} with {clauses}.",
            "{verb} {np} on a {bg} background; it should have {clauses}.",
            "I want {np} that has {clauses}, shown on a {bg} background.",
        ]
        return _sentence(rng.choice(templates).format(verb=verb, np=np_, clauses=clauses, bg=bg))
    raise ValueError(f"unknown case kind {case.kind!r}")


# Irregular-instruction vocabularies (used by :func:`irregular_instruction` only; the paraphraser is unchanged).
IRREGULAR_ATTR_SYNONYMS: dict[str, list[str]] = {
    "shape": ["shape", "form", "outline"],
    "color": ["colour", "color", "hue", "shade"],
    "pattern": ["pattern", "texture", "print"],
    "size": ["size", "scale"],
}
OBJECT_WORDS: tuple[str, ...] = ("object", "thing", "item")
IMAGE_WORDS: tuple[str, ...] = ("image", "picture", "photo", "pic")


def irregular_ref(k: int, n: int, rng: random.Random, possessive: bool = False) -> str:
    """Return an irregular reference to image ``k`` of ``n``: a number, an ordinal or an unambiguous position.

    Positions are only used where they name one image: ``last``/``on the right`` is image ``n``,
    ``first``/``on the left`` is image 1 (both only with 2+ images), ``the middle image`` only with exactly 3.

    Args:
        k: 1-based image number.
        n: number of input images.
        rng: random source.
        possessive: the reference is followed by ``'s``: skip the forms ending in a position ("the one on the
            right's colour" reads badly).

    Returns:
        Text such as ``pic 3``, ``the second photo``, ``the third one``, ``the image on the right``.
    """
    noun = rng.choice(IMAGE_WORDS)
    forms = [f"{noun} {k}", f"{noun} #{k}", f"the {ORDINALS[k]} {noun}", f"the {ORDINALS[k]} one"]
    if n >= 2 and k == n:
        forms += [f"the last {noun}", f"the rightmost {noun}"]
        forms += [] if possessive else [f"the {noun} on the right", "the one on the right"]
    if n >= 2 and k == 1:
        forms += [f"the leftmost {noun}"] + ([] if possessive else [f"the {noun} on the left", "the one on the left"])
    if n == 3 and k == 2:
        forms += [f"the middle {noun}"] + ([] if possessive else ["the one in the middle"])
    return rng.choice(forms)


def irregular_instruction(case: Case, rng: random.Random) -> str:
    """Return an irregular instruction for a case, like those DreamOmni2's planner has to normalise.

    Compared with :func:`paraphrase_instruction` it reorders clauses ("From image 3, take the colour and apply it
    to the object in image 1"), uses more synonyms (picture/photo/pic, colour/color/hue/shade, pattern/texture/print,
    object/thing/item), ordinals ("the second picture", "the first one") and unambiguous positions ("the one on the
    right", "the last picture", "the middle image"; see :func:`irregular_ref`). It is never called by
    :func:`sample_case`, so :func:`make_cases` output does not depend on it.

    Args:
        case: the case to describe (``kind``, ``refs``, ``target`` and the number of ``images`` are read).
        rng: random source.

    Returns:
        Instruction text with the same meaning as :func:`canonical_prompt`.
    """
    refs, target, n = case.refs, case.target, len(case.images)

    def ref(k: int, possessive: bool = False) -> str:
        return irregular_ref(k, n, rng, possessive)

    def fill(template: str, **values: str) -> str:
        """Format a template, drawing ``{src}`` (image 1) and ``{ref}`` (image ``k``) references on the way."""
        k = values.pop("k")
        src = ref(1, "{src}'s" in template)
        return template.format(src=src, ref=ref(int(k), "{ref}'s" in template), **values)

    def obj() -> str:
        return rng.choice(OBJECT_WORDS)

    def word(attr: str, value: str) -> str:
        return rng.choice(VALUE_SYNONYMS[attr][value])

    if case.kind == "replace":
        templates = [
            "from {ref}, take the {obj} and put it into {src}.",
            "use the {obj} in {ref} to replace the {obj2} of {src}.",
            "put {ref}'s {obj} in place of the {obj2} in {src}.",
            "{src}: swap its {obj} for the {obj2} from {ref}.",
            "I'd like the {obj} from {ref} in {src} instead of the current {obj2}.",
        ]
        text = fill(rng.choice(templates), k=str(refs["object"]), obj=obj(), obj2=obj())
    elif case.kind in ("color", "pattern", "size"):
        attr = rng.choice(IRREGULAR_ATTR_SYNONYMS[case.kind])
        templates = [
            "from {ref}, take the {attr} and apply it to the {obj} in {src}.",
            "apply {ref}'s {attr} to the {obj} in {src}.",
            "the {obj} in {src} should get the {attr} of {ref}.",
            "in {src}, change the {obj}'s {attr} so that it matches {ref}.",
            "same {attr} as in {ref}, please, for the {obj} in {src}.",
            "{src}: give the {obj} the {attr} of the {obj2} in {ref}.",
        ]
        text = fill(rng.choice(templates), k=str(refs[case.kind]), attr=attr, obj=obj(), obj2=obj())
    elif case.kind == "background":
        templates = [
            "from {ref}, take the background and put it behind the {obj} in {src}.",
            "use {ref}'s background for {src}.",
            "{src} should have the same background as {ref}.",
            "swap the background of {src} for the one in {ref}.",
        ]
        text = fill(rng.choice(templates), k=str(refs["background"]), obj=obj())
    elif case.kind == "place":
        bg = word("background", target.background)
        templates = [
            "on a {bg} background, draw the {obj} from {ref}.",
            "take the {obj} in {ref} and put it on a {bg} background.",
            "{ref}'s {obj}, but on a {bg} background.",
            "I want the {obj} shown in {ref} against a {bg} backdrop.",
        ]
        text = fill(rng.choice(templates), k=str(refs["object"]), bg=bg, obj=obj())
    elif case.kind == "compose":
        forms = ["the {attr} of {ref}", "{ref}'s {attr}", "the same {attr} as {ref}", "the {attr} from {ref}"]
        attrs = [a for a in OBJ_ATTRS if a in refs]
        rng.shuffle(attrs)
        parts = []
        for a in attrs:
            form = rng.choice(forms)
            parts.append(form.format(attr=rng.choice(IRREGULAR_ATTR_SYNONYMS[a]), ref=ref(refs[a], "'s" in form)))
        adjs = [word(a, target.attr(a)) for a in ("size", "pattern", "color") if a not in refs]
        noun = obj() if "shape" in refs else word("shape", target.obj.shape)
        np_ = _article(" ".join([*adjs, noun]))
        bg = word("background", target.background)
        verb = rng.choice(["generate", "create", "draw", "make", "render"])
        templates = [
            "{verb} {np} on a {bg} background using {clauses}.",
            "using {clauses}, {verb} {np} on a {bg} background.",
            "{np} on a {bg} background, with {clauses}.",
            "take {clauses}; then {verb} {np} on a {bg} background.",
        ]
        text = rng.choice(templates).format(verb=verb, np=np_, clauses=_join(parts), bg=bg)
    else:
        raise ValueError(f"unknown case kind {case.kind!r}")
    return _sentence(text)


def _pick(rng: random.Random, attr: str, avoid: Iterable[str] = ()) -> str:
    """Pick a random value of an attribute outside ``avoid``."""
    options = [v for v in VOCAB[attr] if v not in set(avoid)]
    return rng.choice(options)


def _scene(rng: random.Random, fixed: dict[str, str], avoid: dict[str, set[str]]) -> Scene:
    """Sample a scene with some attributes fixed and others kept away from given values."""
    values = {a: fixed[a] if a in fixed else _pick(rng, a, avoid.get(a, ())) for a in SCENE_ATTRS}
    return Scene.from_dict(values)


def _distinct_obj_scene(rng: random.Random, ref: Obj) -> Scene:
    """Sample a scene whose object differs from ``ref`` in at least two object attributes."""
    changed = rng.sample(OBJ_ATTRS, 2)
    return _scene(rng, {}, {a: {getattr(ref, a)} for a in changed})


def _n_images(rng: random.Random, n_images: int | None, low: int, high: int) -> int:
    """Draw or check the number of input images."""
    if n_images is None:
        return rng.randint(low, high)
    if not low <= n_images <= MAX_IMAGES:
        raise ValueError(f"n_images must be in [{low}, {MAX_IMAGES}] for this case type, got {n_images}")
    return n_images


def sample_case(
    rng: random.Random,
    task: str,
    category: str,
    n_images: int | None = None,
    paraphrase: bool = True,
    kind: str | None = None,
    compose_refs: tuple[int, int] = (2, 3),
) -> Case:
    """Sample one case.

    Args:
        rng: random source (all randomness comes from it).
        task: ``edit`` or ``generate``.
        category: ``concrete`` or ``abstract``.
        n_images: number of input images (edit: 2-4, i.e. source + 1-3 references; generate: 1-4); drawn when None.
        paraphrase: if True ``instruction`` is a random paraphrase, else it equals the canonical ``prompt``.
        kind: force a kind from ``KINDS[(task, category)]``; drawn when None.
        compose_refs: (low, high) number of object attributes a compose case takes from its images (each from
            a different image; capped by the number of images). The held-out suite uses the default (2, 3);
            training draws may add single-attribute cases, (1, 3), that name one image attribute alone.

    Returns:
        The case, with distractor images and a target that differs from the source for edits.
    """
    if (task, category) not in KINDS:
        raise ValueError(f"unknown task/category {task!r}/{category!r}")
    _check_compose_refs(compose_refs)
    kind = kind or rng.choice(KINDS[(task, category)])
    if kind not in KINDS[(task, category)]:
        raise ValueError(f"kind {kind!r} is not one of {KINDS[(task, category)]} for {task}/{category}")
    if kind in ("replace", "place"):
        n = _n_images(rng, n_images, 2 if task == "edit" else 1, MAX_IMAGES)
        k = rng.randint(2, n) if task == "edit" else rng.randint(1, n)
        ref = _scene(rng, {}, {})
        images = [ref if i == k - 1 else _distinct_obj_scene(rng, ref.obj) for i in range(n)]
        background = images[0].background if task == "edit" else _pick(rng, "background")
        target = Scene(ref.obj, background)
        refs = {"object": k}
    elif task == "edit":  # attribute transfer into image 1
        n = _n_images(rng, n_images, 2, MAX_IMAGES)
        k = rng.randint(2, n)
        value = _pick(rng, kind)
        images = [_scene(rng, {kind: value} if i == k - 1 else {}, {kind: {value}}) for i in range(n)]
        target = images[0].replace(**{kind: value})
        refs = {kind: k}
    else:  # compose
        n = _n_images(rng, n_images, 1, MAX_IMAGES) if n_images is not None else rng.randint(2, MAX_IMAGES)
        m = rng.randint(min(compose_refs[0], n), min(compose_refs[1], n))
        attrs = rng.sample(OBJ_ATTRS, m)
        idxs = rng.sample(range(n), m)
        values = {a: _pick(rng, a) for a in attrs}
        owner = dict(zip(attrs, idxs, strict=True))
        images = []
        for i in range(n):
            fixed = {a: values[a] for a in attrs if owner[a] == i}
            avoid = {a: {values[a]} for a in attrs if owner[a] != i}
            images.append(_scene(rng, fixed, avoid))
        target_values = {a: values[a] if a in values else _pick(rng, a) for a in SCENE_ATTRS}
        target = Scene.from_dict(target_values)
        refs = {a: owner[a] + 1 for a in OBJ_ATTRS if a in owner}
    case = Case(task, category, images, "", "", target, kind, refs)
    case.prompt = canonical_prompt(case)
    case.instruction = paraphrase_instruction(case, rng) if paraphrase else case.prompt
    return case


def group_weights(weights: Mapping[str, int], names: Sequence[str] = GROUP_NAMES) -> dict[str, int]:
    """Check a group mix and complete it: every name in ``names`` gets its weight (1 when not named).

    Raises:
        ValueError: a name outside ``names``, or a weight that is not an integer >= 0.
    """
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"unknown group(s) in weights: {unknown}; expected some of {sorted(names)}")
    bad = {k: w for k, w in weights.items() if not isinstance(w, int) or isinstance(w, bool) or w < 0}
    if bad:
        raise ValueError(f"weights must be integers >= 0, got {bad}")
    return {name: weights.get(name, 1) for name in names}


def _check_compose_refs(compose_refs: tuple[int, int]) -> None:
    low, high = compose_refs
    if not 1 <= low <= high <= len(OBJ_ATTRS):
        raise ValueError(f"compose_refs wants 1 <= low <= high <= {len(OBJ_ATTRS)}, got {compose_refs}")


def make_cases(
    seed: int,
    n: int,
    tasks: Sequence[str] = TASKS,
    categories: Sequence[str] = CATEGORIES,
    paraphrase: bool = True,
    weights: Mapping[str, int] | None = None,
    compose_refs: tuple[int, int] = (2, 3),
) -> list[Case]:
    """Sample ``n`` cases deterministically, cycling through every (task, category) pair for balance.

    Args:
        seed: random seed; the same seed and arguments give the same cases.
        n: number of cases.
        tasks: tasks to include.
        categories: categories to include.
        paraphrase: paraphrase instructions (see :func:`sample_case`).
        weights: integer weight per group name (``"edit/abstract"``...); a group of weight w appears w times in
            each cycle (0 leaves it out; a group not named keeps weight 1). None gives every group weight 1.
        compose_refs: how many object attributes a compose case takes from images (see :func:`sample_case`).

    Returns:
        The cases, in the order the (weighted) groups cycle.
    """
    rng = random.Random(seed)
    groups = [(t, c) for t in tasks for c in categories]
    if weights is not None:
        full = group_weights(weights, [f"{t}/{c}" for t, c in groups])
        groups = [g for g in groups for _ in range(full[f"{g[0]}/{g[1]}"])]
    if not groups:
        raise ValueError("tasks and categories must not be empty (and not every weight 0)")
    return [sample_case(rng, *groups[i % len(groups)], paraphrase=paraphrase, compose_refs=compose_refs)
            for i in range(n)]  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Serialisation


def write_cases(cases: Sequence[Case], folder: str | Path, size: int = 32) -> Path:
    """Render cases to PNG files and write ``manifest.jsonl``.

    Each row holds ``task``, ``category``, ``kind``, ``images`` and ``target`` (paths relative to the manifest),
    ``instruction``, ``prompt``, ``target_attributes``, plus ``image_attributes``, ``refs`` and ``id`` so that
    :func:`read_cases` can rebuild the cases.

    Args:
        cases: cases to write.
        folder: output folder (created if needed).
        size: image side in pixels.

    Returns:
        The manifest path.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.jsonl"
    with manifest.open("w", encoding="utf-8") as f:
        for i, case in enumerate(cases):
            paths = []
            for j, scene in enumerate(case.images):
                rel = f"images/{i:06d}_{j + 1}.png"
                render(scene, size).save(folder / rel)
                paths.append(rel)
            target_rel = f"targets/{i:06d}.png"
            render(case.target, size).save(folder / target_rel)
            row = {
                "id": i,
                "task": case.task,
                "category": case.category,
                "kind": case.kind,
                "images": paths,
                "instruction": case.instruction,
                "prompt": case.prompt,
                "target": target_rel,
                "target_attributes": case.target.to_dict(),
                "image_attributes": [s.to_dict() for s in case.images],
                "refs": case.refs,
            }
            f.write(json.dumps(row) + "\n")
    logger.info("wrote %d cases (%d px) to %s", len(cases), size, manifest)
    return manifest


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Read manifest rows (a manifest file or the folder holding ``manifest.jsonl``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_cases(path: str | Path) -> list[Case]:
    """Rebuild the cases written by :func:`write_cases`.

    Args:
        path: the manifest file or its folder.

    Returns:
        The cases, in manifest order.
    """
    return [
        Case(
            task=row["task"],
            category=row["category"],
            images=[Scene.from_dict(s) for s in row["image_attributes"]],
            instruction=row["instruction"],
            prompt=row["prompt"],
            target=Scene.from_dict(row["target_attributes"]),
            kind=row["kind"],
            refs={k: int(v) for k, v in row.get("refs", {}).items()},
        )
        for row in read_manifest(path)
    ]
