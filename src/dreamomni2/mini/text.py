"""Instruction text of the mini world: canonical prompts, paraphrases and irregular instructions.

* :func:`canonical_prompt` — the one canonical wording of a case (``image 1``, ``image 2``...), what the mini
  model is trained on and what the mini planner must produce;
* :func:`paraphrase_instruction` — the same meaning in varied words (:data:`REF_STYLES`, :data:`ATTR_SYNONYMS`,
  :data:`VALUE_SYNONYMS`), drawn by :func:`dreamomni2.mini.cases.sample_case`;
* :func:`irregular_instruction` — reordered clauses, more synonyms and positions ("the last picture"), the
  kind of text DreamOmni2's planner normalises; never drawn by the sampler.

The writers read only a case's ``kind``, ``refs``, ``target`` and ``images`` (:class:`CaseLike`), so this module
does not import :mod:`dreamomni2.mini.cases` (which imports it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from dreamomni2.mini.scene import OBJ_ATTRS, Scene

__all__ = [
    "ATTR_SYNONYMS", "ATTR_WORD", "IMAGE_WORDS", "IRREGULAR_ATTR_SYNONYMS", "OBJECT_WORDS", "ORDINALS",
    "PATTERN_ADJ", "REF_STYLES", "VALUE_SYNONYMS", "CaseLike", "canonical_prompt", "irregular_instruction",
    "irregular_ref", "paraphrase_instruction",
]  # fmt: skip


class CaseLike(Protocol):
    """What the instruction writers read from a case (a :class:`dreamomni2.mini.cases.Case` is one)."""

    kind: str
    refs: dict[str, int]
    target: Scene
    images: list[Scene]


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


def canonical_prompt(case: CaseLike) -> str:
    """Return the canonical instruction of a case (uses ``image 1``, ``image 2``... and canonical words).

    Args:
        case: a case; only ``kind``, ``refs`` and ``target`` are read.

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


# ----------------------------------------------------------------------------------------------------------------
# Paraphrases


def _synonym(rng: random.Random, attr: str, value: str) -> str:
    """Draw a word for an attribute value from :data:`VALUE_SYNONYMS`."""
    return rng.choice(VALUE_SYNONYMS[attr][value])


def paraphrase_instruction(case: CaseLike, rng: random.Random) -> str:
    """Return a random paraphrase of the case's instruction (same meaning, varied wording).

    Args:
        case: the case to describe.
        rng: random source.

    Returns:
        Instruction text; image references may use ``picture k``, ``photo k`` or ordinals.
    """
    style = rng.choice(REF_STYLES)
    if case.kind == "replace":
        return _paraphrase_replace(case, rng, style)
    if case.kind in ("color", "pattern", "size"):
        return _paraphrase_attribute(case, rng, style)
    if case.kind == "background":
        return _paraphrase_background(case, rng, style)
    if case.kind == "place":
        return _paraphrase_place(case, rng, style)
    if case.kind == "compose":
        return _paraphrase_compose(case, rng, style)
    raise ValueError(f"unknown case kind {case.kind!r}")


def _paraphrase_replace(case: CaseLike, rng: random.Random, style: Callable[[int], str]) -> str:
    """Paraphrase a ``replace`` case (object of image k into image 1)."""
    src, ref = style(1), style(case.refs["object"])
    templates = [
        "replace the object in {src} with the object from {ref}.",
        "put the object from {ref} into {src}.",
        "swap the object in {src} for the one shown in {ref}.",
        "take the object from {ref} and place it in {src}, replacing what is there.",
        "in {src}, substitute the object with the object of {ref}.",
    ]
    return _sentence(rng.choice(templates).format(src=src, ref=ref))


def _paraphrase_attribute(case: CaseLike, rng: random.Random, style: Callable[[int], str]) -> str:
    """Paraphrase a ``color``/``pattern``/``size`` case (one object attribute of image k into image 1)."""
    src, ref = style(1), style(case.refs[case.kind])
    attr = rng.choice(ATTR_SYNONYMS[case.kind])
    templates = [
        "make the object in {src} have the {attr} of the object in {ref}.",
        "change the {attr} of the object in {src} to match {ref}.",
        "give the object in {src} the same {attr} as the object in {ref}.",
        "using {ref} as a reference, change the {attr} of the object in {src}.",
        "copy the {attr} of the object in {ref} onto the object in {src}.",
    ]
    return _sentence(rng.choice(templates).format(src=src, ref=ref, attr=attr))


def _paraphrase_background(case: CaseLike, rng: random.Random, style: Callable[[int], str]) -> str:
    """Paraphrase a ``background`` case (the background of image k for image 1)."""
    src, ref = style(1), style(case.refs["background"])
    templates = [
        "give {src} the background of {ref}.",
        "change the background of {src} to match {ref}.",
        "replace the background in {src} with the background from {ref}.",
        "keep the object in {src} but use the background of {ref}.",
    ]
    return _sentence(rng.choice(templates).format(src=src, ref=ref))


def _paraphrase_place(case: CaseLike, rng: random.Random, style: Callable[[int], str]) -> str:
    """Paraphrase a ``place`` case (the object of image k on a named background)."""
    ref, bg = style(case.refs["object"]), _synonym(rng, "background", case.target.background)
    templates = [
        "generate the object from {ref} on a {bg} background.",
        "draw the object shown in {ref} against a {bg} background.",
        "create an image of the object in {ref}, placed on a {bg} background.",
        "on a {bg} background, show the object from {ref}.",
    ]
    return _sentence(rng.choice(templates).format(ref=ref, bg=bg))


def _paraphrase_compose(case: CaseLike, rng: random.Random, style: Callable[[int], str]) -> str:
    """Paraphrase a ``compose`` case (attributes from several images, the rest named in the text)."""
    refs, target = case.refs, case.target

    def word(attr: str, value: str) -> str:
        return _synonym(rng, attr, value)

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


# ----------------------------------------------------------------------------------------------------------------
# Irregular instructions

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


def irregular_instruction(case: CaseLike, rng: random.Random) -> str:
    """Return an irregular instruction for a case, like those DreamOmni2's planner has to normalise.

    Compared with :func:`paraphrase_instruction` it reorders clauses ("From image 3, take the colour and apply it
    to the object in image 1"), uses more synonyms (picture/photo/pic, colour/color/hue/shade, pattern/texture/print,
    object/thing/item), ordinals ("the second picture", "the first one") and unambiguous positions ("the one on the
    right", "the last picture", "the middle image"; see :func:`irregular_ref`). It is never called by
    :func:`~dreamomni2.mini.cases.sample_case`, so :func:`~dreamomni2.mini.cases.make_cases` output does not depend
    on it.

    Args:
        case: the case to describe (``kind``, ``refs``, ``target`` and the number of ``images`` are read).
        rng: random source.

    Returns:
        Instruction text with the same meaning as :func:`canonical_prompt`.
    """
    if case.kind == "replace":
        text = _irregular_replace(case, rng)
    elif case.kind in ("color", "pattern", "size"):
        text = _irregular_attribute(case, rng)
    elif case.kind == "background":
        text = _irregular_background(case, rng)
    elif case.kind == "place":
        text = _irregular_place(case, rng)
    elif case.kind == "compose":
        text = _irregular_compose(case, rng)
    else:
        raise ValueError(f"unknown case kind {case.kind!r}")
    return _sentence(text)


def _fill(rng: random.Random, n: int, template: str, k: int, **values: str) -> str:
    """Format a template, drawing ``{src}`` (image 1) and ``{ref}`` (image ``k`` of ``n``) references on the way."""
    src = irregular_ref(1, n, rng, "{src}'s" in template)
    return template.format(src=src, ref=irregular_ref(k, n, rng, "{ref}'s" in template), **values)


def _object_word(rng: random.Random) -> str:
    """Draw a word for "object" from :data:`OBJECT_WORDS`."""
    return rng.choice(OBJECT_WORDS)


def _irregular_replace(case: CaseLike, rng: random.Random) -> str:
    """Irregular text of a ``replace`` case (not yet capitalised)."""
    templates = [
        "from {ref}, take the {obj} and put it into {src}.",
        "use the {obj} in {ref} to replace the {obj2} of {src}.",
        "put {ref}'s {obj} in place of the {obj2} in {src}.",
        "{src}: swap its {obj} for the {obj2} from {ref}.",
        "I'd like the {obj} from {ref} in {src} instead of the current {obj2}.",
    ]
    template = rng.choice(templates)
    obj, obj2 = _object_word(rng), _object_word(rng)
    return _fill(rng, len(case.images), template, case.refs["object"], obj=obj, obj2=obj2)


def _irregular_attribute(case: CaseLike, rng: random.Random) -> str:
    """Irregular text of a ``color``/``pattern``/``size`` case (not yet capitalised)."""
    attr = rng.choice(IRREGULAR_ATTR_SYNONYMS[case.kind])
    templates = [
        "from {ref}, take the {attr} and apply it to the {obj} in {src}.",
        "apply {ref}'s {attr} to the {obj} in {src}.",
        "the {obj} in {src} should get the {attr} of {ref}.",
        "in {src}, change the {obj}'s {attr} so that it matches {ref}.",
        "same {attr} as in {ref}, please, for the {obj} in {src}.",
        "{src}: give the {obj} the {attr} of the {obj2} in {ref}.",
    ]
    template = rng.choice(templates)
    obj, obj2 = _object_word(rng), _object_word(rng)
    return _fill(rng, len(case.images), template, case.refs[case.kind], attr=attr, obj=obj, obj2=obj2)


def _irregular_background(case: CaseLike, rng: random.Random) -> str:
    """Irregular text of a ``background`` case (not yet capitalised)."""
    templates = [
        "from {ref}, take the background and put it behind the {obj} in {src}.",
        "use {ref}'s background for {src}.",
        "{src} should have the same background as {ref}.",
        "swap the background of {src} for the one in {ref}.",
    ]
    template = rng.choice(templates)
    return _fill(rng, len(case.images), template, case.refs["background"], obj=_object_word(rng))


def _irregular_place(case: CaseLike, rng: random.Random) -> str:
    """Irregular text of a ``place`` case (not yet capitalised)."""
    bg = _synonym(rng, "background", case.target.background)
    templates = [
        "on a {bg} background, draw the {obj} from {ref}.",
        "take the {obj} in {ref} and put it on a {bg} background.",
        "{ref}'s {obj}, but on a {bg} background.",
        "I want the {obj} shown in {ref} against a {bg} backdrop.",
    ]
    template = rng.choice(templates)
    return _fill(rng, len(case.images), template, case.refs["object"], bg=bg, obj=_object_word(rng))


def _irregular_compose(case: CaseLike, rng: random.Random) -> str:
    """Irregular text of a ``compose`` case (not yet capitalised)."""
    refs, target, n = case.refs, case.target, len(case.images)
    forms = ["the {attr} of {ref}", "{ref}'s {attr}", "the same {attr} as {ref}", "the {attr} from {ref}"]
    attrs = [a for a in OBJ_ATTRS if a in refs]
    rng.shuffle(attrs)
    parts = []
    for a in attrs:
        form = rng.choice(forms)
        synonym = rng.choice(IRREGULAR_ATTR_SYNONYMS[a])
        parts.append(form.format(attr=synonym, ref=irregular_ref(refs[a], n, rng, "'s" in form)))
    adjs = [_synonym(rng, a, target.attr(a)) for a in ("size", "pattern", "color") if a not in refs]
    noun = _object_word(rng) if "shape" in refs else _synonym(rng, "shape", target.obj.shape)
    np_ = _article(" ".join([*adjs, noun]))
    bg = _synonym(rng, "background", target.background)
    verb = rng.choice(["generate", "create", "draw", "make", "render"])
    templates = [
        "{verb} {np} on a {bg} background using {clauses}.",
        "using {clauses}, {verb} {np} on a {bg} background.",
        "{np} on a {bg} background, with {clauses}.",
        "take {clauses}; then {verb} {np} on a {bg} background.",
    ]
    return rng.choice(templates).format(verb=verb, np=np_, clauses=_join(parts), bg=bg)
