"""A deterministic rule-based planner for the mini world (backend ``"mini"``).

:class:`MiniPlanner` stands in for DreamOmni2's fine-tuned VLM planner on :mod:`dreamomni2.mini.world` cases: it
maps a canonical, paraphrased (:func:`~dreamomni2.mini.world.paraphrase_instruction`) or irregular
(:func:`~dreamomni2.mini.world.irregular_instruction`) instruction to exactly
:func:`~dreamomni2.mini.world.canonical_prompt` of the case it describes. It reads only the text and the number of
images (for ``the last image`` / ``the one on the right``), writes a wrapped reply (``<edit>…</edit>`` or
``<gen>…</gen>``) and parses it with :func:`dreamomni2.planner.base.parse_reply`, like the real planner. When the
instruction cannot be understood the reply is an empty wrapper, so ``parse_reply`` falls back to the instruction
(``fell_back=True``, with a warning).

Parsing, in short: image references (``image 3``, ``pic #3``, ``the third photo``, ``the last one``, ``the image on
the left``, ``the middle picture``...), value words (``scarlet`` = red, ``chequered`` = checker...) and attribute
words (``hue`` = colour, ``print`` = pattern...) are found in the lower-cased text; edits take image 1 as the
source and the one other image named as the reference, the attribute word deciding the kind (none: replace the
object); generations are ``compose`` when an object attribute word is present (each paired with the image named in
the same clause) and ``place`` otherwise.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from dreamomni2.mini.world import (
    ATTR_SYNONYMS,
    IMAGE_WORDS,
    IRREGULAR_ATTR_SYNONYMS,
    OBJ_ATTRS,
    ORDINALS,
    VALUE_SYNONYMS,
    VOCAB,
    Case,
    Obj,
    Scene,
    canonical_prompt,
)
from dreamomni2.planner.base import PlannedPrompt, Planner, PlanRefused, build_user_text, normalize_task, parse_reply
from dreamomni2.planner.registry import PlannerBackend, register_planner

__all__ = ["MiniPlanner", "ParsedInstruction", "PlanError", "parse_instruction", "plan_text", "wrap_reply"]

logger = logging.getLogger(__name__)

#: Wrapper tag of the reply per task (``parse_reply`` knows both).
REPLY_TAGS: dict[str, str] = {"edit": "edit", "generate": "gen"}


class PlanError(PlanRefused):
    """The instruction could not be mapped to a canonical prompt (unknown wording, ambiguity, bad image number)."""


@dataclass
class ParsedInstruction:
    """What :func:`parse_instruction` understood.

    Attributes:
        task: ``edit`` or ``generate``.
        kind: a kind of :data:`dreamomni2.mini.world.KINDS` (``replace``, ``color``... ``place``, ``compose``).
        refs: what is taken from which 1-based image (as :attr:`dreamomni2.mini.world.Case.refs`).
        values: attribute values named in the text (``background`` for generations, object attributes for
            ``compose``), canonical names.
    """

    task: str
    kind: str
    refs: dict[str, int] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    def prompt(self) -> str:
        """Return the canonical prompt (via :func:`dreamomni2.mini.world.canonical_prompt`)."""
        filled = {a: self.values.get(a, VOCAB[a][0]) for a in (*OBJ_ATTRS, "background")}
        target = Scene(Obj(filled["shape"], filled["color"], filled["pattern"], filled["size"]), filled["background"])
        category = "concrete" if self.kind in ("replace", "place") else "abstract"
        case = Case(self.task, category, [], "", "", target, self.kind, dict(self.refs))
        return canonical_prompt(case)


# --- vocabulary ------------------------------------------------------------------------------------------------

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_ORDINAL_WORDS: dict[str, int] = {w: k for k, w in ORDINALS.items()}
_ORDINAL_WORDS.update({"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5})
_IMAGE_NOUNS = sorted({*IMAGE_WORDS, "image", "picture", "photo", "pic", "img", "photograph", "input"}, key=len)[::-1]
_IMG = "(?:" + "|".join(_IMAGE_NOUNS) + ")"
_NOUN = f"(?:{_IMG}|one)"
_ORD = "(?:" + "|".join(sorted(_ORDINAL_WORDS, key=len, reverse=True)) + ")"

# Image references; each alternative sets exactly one named group. Applied before values and attribute words.
_REF = re.compile(
    "|".join(
        [
            rf"\b{_IMG}s?\s*(?:#|no\.?\s*|number\s*)?(?P<num>[1-9])\b",
            rf"\b{_IMG}\s+(?P<word>one|two|three|four|five)\b(?!\s+of\b)",
            rf"\b(?P<ord>{_ORD})\s+(?:input\s+)?{_NOUN}\b",
            rf"\b(?P<last>last|final|rightmost|right-most|right-hand|right)\s+{_NOUN}\b",
            rf"\b(?P<first>leftmost|left-most|left-hand|left)\s+{_NOUN}\b",
            rf"\b(?P<middle>middle|centre|center|central)\s+{_NOUN}\b",
            rf"\b{_NOUN}\s+(?:on|at|to)\s+the\s+(?:far\s+)?(?P<side>right|left)\b",
            rf"\b{_NOUN}\s+in\s+the\s+(?P<mid>middle|centre|center)\b",
        ]
    )
)


def _build_values() -> dict[str, tuple[str, str]]:
    """Map every value word (canonical names and the paraphrasers' synonyms) to ``(attribute, value)``."""
    out: dict[str, tuple[str, str]] = {}
    for attr, table in VALUE_SYNONYMS.items():
        for value, words in table.items():
            for w in (value, *words):
                out[w] = (attr, value)
    for extra, av in {
        "light gray": ("background", "light"),
        "pale gray": ("background", "light"),
        "dark gray": ("background", "dark"),
        "sand-colored": ("background", "warm"),
        "uniformly colored": ("pattern", "solid"),
        "checked": ("pattern", "checker"),
        "checker": ("pattern", "checker"),
        "stripes": ("pattern", "stripes"),
        "lemon yellow": ("color", "yellow"),
    }.items():
        out.setdefault(extra, av)
    return out


def _build_attrs() -> dict[str, str]:
    """Map every attribute word (both paraphrasers' synonyms, plus ``background``) to the attribute."""
    out = {w: a for table in (ATTR_SYNONYMS, IRREGULAR_ATTR_SYNONYMS) for a, words in table.items() for w in words}
    out.update({"background": "background", "backdrop": "background", "backgrounds": "background"})
    return out


def _alternation(words: Sequence[str]) -> re.Pattern[str]:
    """A whole-word regex matching any of ``words``, longest first (so ``surface pattern`` beats ``pattern``)."""
    body = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w-])")


_VALUES = _build_values()
_ATTRS = _build_attrs()
_VALUE_RE = _alternation(list(_VALUES))
_ATTR_RE = _alternation(list(_ATTRS))
_CLAUSE_BREAK = re.compile(r"[,;:.!?()]|\b(?:and|with|using|but|then|plus|while)\b")


@dataclass
class _Token:
    """A found reference, value or attribute word."""

    start: int
    kind: str  # "ref", "value" or "attr"
    attr: str = ""
    value: str = ""
    image: int = 0


def _ref_image(match: re.Match[str], n_images: int | None) -> int:
    """Resolve an image-reference match to a 1-based image number (raises PlanError when it cannot)."""
    groups = {k: v for k, v in match.groupdict().items() if v is not None}
    name, text = next(iter(groups.items()))
    if name == "num":
        return int(text)
    if name == "word":
        return _NUMBER_WORDS[text]
    if name == "ord":
        return _ORDINAL_WORDS[text]
    if name == "first" or (name == "side" and text == "left"):
        return 1
    if n_images is None:
        raise PlanError(f"{match.group(0)!r} needs the number of images")
    if name == "last" or name == "side":
        return n_images
    if n_images % 2 == 0:  # middle
        raise PlanError(f"{match.group(0)!r} is ambiguous with {n_images} images")
    return (n_images + 1) // 2


def _tokens(text: str, n_images: int | None) -> tuple[list[_Token], str]:
    """Find image references, then values, then attribute words (each pass blanks what it used).

    Returns:
        The tokens in text order, and the text with references and values blanked (for clause splitting).
    """
    chars = list(text)
    found: list[_Token] = []

    def blank(m: re.Match[str]) -> None:
        chars[m.start() : m.end()] = " " * (m.end() - m.start())

    for m in _REF.finditer(text):
        found.append(_Token(m.start(), "ref", image=_ref_image(m, n_images)))
        blank(m)
    for m in _VALUE_RE.finditer("".join(chars)):
        attr, value = _VALUES[m.group(0)]
        found.append(_Token(m.start(), "value", attr=attr, value=value))
        blank(m)
    for m in _ATTR_RE.finditer("".join(chars)):
        found.append(_Token(m.start(), "attr", attr=_ATTRS[m.group(0)]))
    return sorted(found, key=lambda t: t.start), "".join(chars)


def _normalize(instruction: str) -> str:
    """Lower-case, unify apostrophes, dashes and spaces."""
    text = instruction.lower().replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-")
    text = text.replace("\u2014", " - ").replace("colours", "colour").replace("colors", "color")
    return re.sub(r"\s+", " ", text).strip()


def _pair_refs(text: str, tokens: list[_Token]) -> dict[str, int]:
    """Pair each object-attribute word with the image named in the same clause (``compose``).

    ``text`` is the normalised text with references and values blanked. Clauses are split at punctuation and at
    ``and``/``with``/``using``/``but``/``then``; within a clause (and then among the leftovers of all clauses)
    attribute words and images pair up in order when their counts agree.
    """
    breaks = [m.start() for m in _CLAUSE_BREAK.finditer(text)]
    clauses: dict[int, tuple[list[str], list[int]]] = {}
    for t in tokens:
        if t.kind == "value" or (t.kind == "attr" and t.attr == "background"):
            continue
        attrs, images = clauses.setdefault(bisect.bisect(breaks, t.start), ([], []))
        if t.kind == "attr":
            attrs.append(t.attr)
        else:
            images.append(t.image)
    refs: dict[str, int] = {}
    left_attrs: list[str] = []
    left_images: list[int] = []
    for attrs, images in clauses.values():
        if len(attrs) == len(images):
            pairs = list(zip(attrs, images, strict=True))
        else:
            left_attrs += attrs
            left_images += images
            pairs = []
        for a, k in pairs:
            if refs.get(a, k) != k:
                raise PlanError(f"the {a} is taken from two images")
            refs[a] = k
    if len(left_attrs) != len(left_images):
        raise PlanError(f"cannot pair attributes {left_attrs} with images {left_images}")
    for a, k in zip(left_attrs, left_images, strict=True):
        if refs.get(a, k) != k:
            raise PlanError(f"the {a} is taken from two images")
        refs[a] = k
    return refs


#: Words that ask for the whole object to be replaced (an edit naming no attribute must say one of these: the
#: planner never guesses "replace" for an attribute word it does not know).
_REPLACE_CUE = re.compile(r"replac|swap|\bput|exchang|substitut|\buse\b|switch|instead|place|bring|\btake|move|insert")


def _parse_edit(
    instruction: str, text: str, images: list[int], obj_attrs: list[str], attr_words: set[str], values: dict
) -> ParsedInstruction:
    """The edit branch of :func:`parse_instruction`: one reference besides image 1, at most one attribute."""
    task = "edit"
    others = sorted(set(images) - {1})
    if len(others) != 1:
        raise PlanError(f"an edit needs exactly one reference image besides image 1, got {others}")
    if values:
        raise PlanError(f"an edit names no values, got {values}")
    if len(obj_attrs) > 1 or "shape" in obj_attrs:
        raise PlanError(f"cannot edit {obj_attrs} at once")
    kind = obj_attrs[0] if obj_attrs else "background" if "background" in attr_words else "replace"
    if kind == "replace" and not _REPLACE_CUE.search(text):
        raise PlanError(
            f"no attribute I know (shape, colour, pattern, size, background) and no replace word in {instruction!r}"
            "; say e.g. 'Make the object in image 1 have the colour of the object in image 2.' or "
            "'Replace the object in image 1 with the object in image 2.'"
        )
    return ParsedInstruction(task, kind, {"object" if kind == "replace" else kind: others[0]})


def parse_instruction(instruction: str, task: str, n_images: int | None = None) -> ParsedInstruction:
    """Understand a mini-world instruction.

    Args:
        instruction: canonical, paraphrased or irregular instruction text.
        task: ``edit`` or ``generate`` (``editing``/``generation`` accepted).
        n_images: number of input images; needed for ``last``/``right``/``middle`` references and to check image
            numbers (None: positional references other than ``first``/``left`` fail, numbers are not checked).

    Returns:
        The parsed instruction; :meth:`ParsedInstruction.prompt` gives the canonical prompt.

    Raises:
        PlanError: when the instruction is not understood or is ambiguous.
    """
    task = normalize_task(task)
    text = _normalize(instruction)
    tokens, blanked = _tokens(text, n_images)
    images = [t.image for t in tokens if t.kind == "ref"]
    if not images:
        raise PlanError("no image is referred to")
    if n_images is not None and any(not 1 <= k <= n_images for k in images):
        raise PlanError(f"image numbers {sorted(set(images))} outside 1..{n_images}")
    attr_words = {t.attr for t in tokens if t.kind == "attr"}
    obj_attrs = sorted(attr_words - {"background"}, key=OBJ_ATTRS.index)
    values: dict[str, str] = {}
    for t in tokens:
        if t.kind == "value":
            if values.get(t.attr, t.value) != t.value:
                raise PlanError(f"two {t.attr} values: {values[t.attr]!r} and {t.value!r}")
            values[t.attr] = t.value

    if task == "edit":
        return _parse_edit(instruction, text, images, obj_attrs, attr_words, values)
    if "background" not in values:
        raise PlanError("a generation needs a background value")
    if not obj_attrs:
        if len(set(images)) != 1:
            raise PlanError(f"placing one object, but images {sorted(set(images))} are named")
        if set(values) != {"background"}:
            raise PlanError(f"placing an object from an image names no object values, got {values}")
        return ParsedInstruction(task, "place", {"object": images[0]}, {"background": values["background"]})
    refs = _pair_refs(blanked, tokens)
    if len(set(refs.values())) != len(refs):
        raise PlanError(f"several attributes from one image: {refs}")
    missing = [a for a in OBJ_ATTRS if a not in refs and a not in values]
    clash = [a for a in refs if a in values]
    if missing or clash:
        raise PlanError(f"object attributes not given {missing} or given twice {clash}")
    refs = {a: refs[a] for a in OBJ_ATTRS if a in refs}
    return ParsedInstruction(task, "compose", refs, values)


def wrap_reply(prompt: str, task: str) -> str:
    """Wrap a prompt like the planner's reply: ``<edit>…</edit>`` or ``<gen>…</gen>``."""
    tag = REPLY_TAGS[normalize_task(task)]
    return f"<{tag}>{prompt}</{tag}>"


def mini_reply(instruction: str, task: str, n_images: int | None) -> str:
    """The mini planner's raw reply: the wrapped canonical prompt, or an empty wrapper (with a warning)."""
    try:
        prompt = parse_instruction(instruction, task, n_images).prompt()
    except PlanError as err:
        logger.warning("Mini planner cannot parse %r (%s); falling back to the instruction.", instruction[:200], err)
        prompt = ""
    return wrap_reply(prompt, task)


def plan_text(instruction: str, task: str, n_images: int | None = None) -> str:
    """Plan without images: the canonical prompt, or the instruction itself when it cannot be parsed.

    Args:
        instruction: the instruction text.
        task: ``edit`` or ``generate``.
        n_images: number of input images (see :func:`parse_instruction`).

    Returns:
        The prompt, as :meth:`MiniPlanner.plan` would return it.
    """
    build_user_text(instruction, task)  # validates both
    prompt, _ = parse_reply(mini_reply(instruction, task, n_images), instruction)
    return prompt


class MiniPlanner(Planner):
    """Rule-based planner for mini-world instructions (``make_planner("mini")``).

    Only the number of images is used (for ``last``/``right``/``middle``), so, unlike the VLM planners, the images
    are checked but not resized.
    """

    backend = "mini"

    def __init__(self, strict: bool = True) -> None:
        #: ``True``: an instruction it does not understand raises :class:`PlanError` (it never guesses);
        #: ``False``: the instruction itself becomes the prompt, flagged ``fell_back`` (with a warning).
        self.strict = strict

    def plan(self, images: Sequence[Image.Image], instruction: str, task: str) -> PlannedPrompt:
        """Plan the prompt for one request.

        Args:
            images: the request's PIL images, in order (only their number is used).
            instruction: the instruction (canonical, paraphrased or irregular).
            task: ``"edit"`` or ``"generate"``.

        Returns:
            ``PlannedPrompt(canonical prompt, "<edit>…</edit>"/"<gen>…</gen>", "mini", False)``, or the instruction
            with ``fell_back=True`` (and a warning) when it cannot be parsed.
        """
        task = normalize_task(task)
        build_user_text(instruction, task)
        if isinstance(images, Image.Image):
            raise TypeError("images must be a list of PIL images, not a single image.")
        for i, img in enumerate(images):
            if not isinstance(img, Image.Image):
                raise TypeError(f"images[{i}] is a {type(img).__name__}, not a PIL image.")
        if self.strict:
            try:
                parse_instruction(instruction, task, len(images))
            except PlanError as err:
                raise PlanError(f"the mini planner does not understand {instruction[:200]!r}: {err}") from None
        raw = self.generate_reply(list(images), instruction, task)
        prompt, fell_back = parse_reply(raw, instruction)
        return PlannedPrompt(prompt=prompt, raw_reply=raw, backend=self.backend, fell_back=fell_back)

    def generate_reply(self, images: list[Image.Image], instruction: str, task: str) -> str:
        """The wrapped canonical prompt (an empty wrapper when the instruction is not understood)."""
        return mini_reply(instruction, normalize_task(task), len(images))


register_planner(
    PlannerBackend(
        name="mini",
        usage="mini",
        help="the rule-based planner of the mini world (dreamomni2.mini.planner)",
        build=lambda **_: MiniPlanner(),
    )
)
