"""Instruction cases of the mini world: :class:`Case` and the seeded sampler (:func:`sample_case`, :func:`make_cases`).

A :class:`Case` is an instruction plus 1-4 input images and the scene the answer must show, in DreamOmni2's four
groups (:mod:`dreamomni2.mini.groups`):

* ``edit/concrete`` (kind ``replace``): put the object of image k into image 1 (image 1 keeps its background);
* ``edit/abstract`` (kinds ``color``, ``pattern``, ``size``, ``background``): give image 1 one attribute of image k;
* ``generate/concrete`` (kind ``place``): the object of image k on a background named in the text;
* ``generate/abstract`` (kind ``compose``): an object whose attributes come partly from the text and partly
  from several reference images.

The other images are distractors: they differ from the referenced image in the referenced attribute (in at least
two object attributes for concrete cases), so only the image number in the instruction decides the answer.

All randomness comes from the ``random.Random`` passed in, drawn in a fixed order: the shipped mini model's
training data and the held-out suite are ``make_cases`` draws, so that order must not change.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dreamomni2.mini.groups import CATEGORIES, KINDS, TASKS, group_name, group_weights
from dreamomni2.mini.scene import OBJ_ATTRS, SCENE_ATTRS, VOCAB, Obj, Scene
from dreamomni2.mini.text import canonical_prompt, paraphrase_instruction

__all__ = ["MAX_IMAGES", "Case", "make_cases", "sample_case"]

#: Most input images of a mini-world case (the sampler draws 1-4).
MAX_IMAGES = 4
#: What a sampling stage of :func:`sample_case` draws: the input scenes, the target scene and the refs.
_Draw = tuple[list[Scene], Scene, dict[str, int]]


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


def _check_compose_refs(compose_refs: tuple[int, int]) -> None:
    """Raise ValueError unless ``compose_refs`` is a (low, high) range within 1..4 object attributes."""
    low, high = compose_refs
    if not 1 <= low <= high <= len(OBJ_ATTRS):
        raise ValueError(f"compose_refs wants 1 <= low <= high <= {len(OBJ_ATTRS)}, got {compose_refs}")


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
        images, target, refs = _sample_object_case(rng, task, n_images)
    elif task == "edit":  # attribute transfer into image 1
        images, target, refs = _sample_transfer_case(rng, kind, n_images)
    else:  # compose
        images, target, refs = _sample_compose_case(rng, n_images, compose_refs)
    case = Case(task, category, images, "", "", target, kind, refs)
    case.prompt = canonical_prompt(case)
    case.instruction = paraphrase_instruction(case, rng) if paraphrase else case.prompt
    return case


def _sample_object_case(rng: random.Random, task: str, n_images: int | None) -> _Draw:
    """Draw the images, target and refs of a ``replace`` (edit) or ``place`` (generate) case."""
    n = _n_images(rng, n_images, 2 if task == "edit" else 1, MAX_IMAGES)
    k = rng.randint(2, n) if task == "edit" else rng.randint(1, n)
    ref = _scene(rng, {}, {})
    images = [ref if i == k - 1 else _distinct_obj_scene(rng, ref.obj) for i in range(n)]
    background = images[0].background if task == "edit" else _pick(rng, "background")
    target = Scene(ref.obj, background)
    return images, target, {"object": k}


def _sample_transfer_case(rng: random.Random, kind: str, n_images: int | None) -> _Draw:
    """Draw the images, target and refs of an attribute transfer into image 1 (kind = the attribute)."""
    n = _n_images(rng, n_images, 2, MAX_IMAGES)
    k = rng.randint(2, n)
    value = _pick(rng, kind)
    images = [_scene(rng, {kind: value} if i == k - 1 else {}, {kind: {value}}) for i in range(n)]
    target = images[0].replace(**{kind: value})
    return images, target, {kind: k}


def _sample_compose_case(rng: random.Random, n_images: int | None, compose_refs: tuple[int, int]) -> _Draw:
    """Draw the images, target and refs of a ``compose`` case (each referenced attribute from its own image)."""
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
    return images, target, refs


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
        full = group_weights(weights, [group_name(t, c) for t, c in groups])
        groups = [g for g in groups for _ in range(full[group_name(*g)])]
    if not groups:
        raise ValueError("tasks and categories must not be empty (and not every weight 0)")
    return [sample_case(rng, *groups[i % len(groups)], paraphrase=paraphrase, compose_refs=compose_refs)
            for i in range(n)]  # fmt: skip
