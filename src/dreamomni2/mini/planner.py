"""A deterministic rule-based planner for the mini world (backend ``"mini"``).

:class:`MiniPlanner` stands in for DreamOmni2's fine-tuned VLM planner on :mod:`dreamomni2.mini.world` cases: it
maps a canonical, paraphrased (:func:`~dreamomni2.mini.world.paraphrase_instruction`), irregular
(:func:`~dreamomni2.mini.world.irregular_instruction`) or hand-written instruction to exactly
:func:`~dreamomni2.mini.world.canonical_prompt` of the case it describes. It reads only the text and the number of
images (for ``the last image`` / ``the one on the right`` / ``the other image``), writes a wrapped reply
(``<edit>…</edit>`` or ``<gen>…</gen>``) and parses it with :func:`dreamomni2.planner.base.parse_reply`, like the
real planner.

It never guesses. Strict (the default), an instruction it does not understand raises :class:`PlanError` naming
what it understood, what is missing and an example phrasing it accepts; it never falls back to a different task.
Non-strict, the instruction itself becomes the prompt (``fell_back=True``, with a warning).

Parsing, in short (the word lists are in :mod:`dreamomni2.mini.planner_lexicon`): the lower-cased text has its
typos and short forms rewritten (``colur``, ``bg``, ``imgae``; ``background colour`` = background, ``as big as`` =
the same size as); image references (``image 3``, ``pic #3``, ``images 2 and 3``, ``the third photo``, ``the last
one``, ``the image on the left``, ``the other image``...), value words (``scarlet`` = red...) and attribute words
(``hue``, ``tint``, ``recolour``, ``shaped`` ...) are found; words inside ``keep the colour``/``don't change the
background``/``not its pattern`` clauses are set aside. Then it refuses choices and mixtures (``or``, ``between``),
negated requests, attribute nouns it does not know (``the brightness of image 2``) and, for edits, image 1 named as
the reference or another image named as the one edited. Image 1's own background (``on image 1's background``,
``the background of pic one should stay``) is the setting, never the background edit's source; a replace that keeps
one of image 1's object attributes (``but keep the original colour``) is a mixture and is refused. The vocabulary is
closed: a word the planner does not know (``into a star``, ``pink``, ``glowing``) is refused, named, after the more
specific checks (small typos of function words are accepted). Edits take image 1 as the source and the one other image
named as the reference, the attribute word deciding the kind (none: replace, which needs a replace word and an
object word); generations are ``compose`` when an object attribute word is present (each paired with the image
named in the same clause, or in order with ``respectively``) and ``place`` otherwise.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from dreamomni2.mini.planner_lexicon import (
    AMBIGUITY_WORDS,
    ATTRIBUTE_WORDS,
    EXAMPLES,
    FILLER_NOUNS,
    FUNCTION_WORDS,
    IMAGE_NOUNS,
    NEGATION_WORDS,
    NUMBER_WORDS,
    OBJECT_NOUNS,
    ORDINAL_WORDS,
    OWN_WORDS,
    PHRASE_REWRITES,
    TYPOS,
    UNSUPPORTED_WORDS,
    VALUE_WORDS,
)
from dreamomni2.mini.world import OBJ_ATTRS, VOCAB, Case, Obj, Scene, canonical_prompt
from dreamomni2.planner.base import PlannedPrompt, Planner, PlanRefused, build_user_text, normalize_task, parse_reply
from dreamomni2.planner.registry import PlannerBackend, register_planner

__all__ = ["MiniPlanner", "ParsedInstruction", "PlanError", "parse_instruction", "plan_text", "wrap_reply"]

logger = logging.getLogger(__name__)

#: Wrapper tag of the reply per task (``parse_reply`` knows both).
REPLY_TAGS: dict[str, str] = {"edit": "edit", "generate": "gen"}


class PlanError(PlanRefused):
    """The instruction could not be mapped to a canonical prompt (unknown wording, ambiguity, bad image number).

    The message names what was understood, what is missing and an example phrasing the planner accepts.
    """


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


# --- regexes, built from the lexicon ---------------------------------------------------------------------------


def _body(words: Sequence[str]) -> str:
    """A regex alternation of ``words``, longest first (so ``surface pattern`` beats ``pattern``)."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _alternation(words: Sequence[str]) -> re.Pattern[str]:
    """A whole-word regex matching any of ``words``."""
    return re.compile(rf"(?<![\w-])(?:{_body(words)})(?![\w-])")


_IMG = f"(?:{_body(IMAGE_NOUNS)})"
_NOUN = f"(?:{_IMG}|one)"
_ORD = f"(?:{_body(list(ORDINAL_WORDS))})"
_ATTR = f"(?:{_body(list(ATTRIBUTE_WORDS))})(?![\\w-])"
_OBJ = r"(?:objects|object|things|thing|items|item|one)"
#: ``the object in`` / ``the colour of the thing shown in``: what may stand between a preposition and a reference.
_OBJ_IN = rf"(?:(?:the\s+)?{_OBJ}\s+(?:shown\s+)?(?:in|of|from|on)\s+)?(?:the\s+)?"

# Image references; each alternative sets exactly one named group. Applied before values and attribute words.
_REF = re.compile(
    "|".join(
        [
            rf"\b{_IMG}s?\s+(?P<list>[1-9](?:\s*,\s*[1-9])*\s*,?\s*(?:and|&)\s*[1-9])\b",
            rf"\b{_IMG}s?\s*(?:#|no\.?\s*|number\s*)?(?P<num>[1-9])\b",
            rf"\b{_IMG}\s+(?P<word>one|two|three|four|five)\b(?!\s+of\b)",
            rf"\b(?P<ord>{_ORD})\s+(?:input\s+)?{_NOUN}\b",
            rf"\b(?P<last>last|final|rightmost|right-most|right-hand|right)\s+{_NOUN}\b",
            rf"\b(?P<first>leftmost|left-most|left-hand|left)\s+{_NOUN}\b",
            rf"\b(?P<middle>middle|centre|center|central)\s+{_NOUN}\b",
            rf"\b(?P<other>other)\s+{_NOUN}\b",
            rf"\b{_NOUN}\s+(?:on|at|to)\s+the\s+(?:far\s+)?(?P<side>right|left)\b",
            rf"\b{_NOUN}\s+in\s+the\s+(?P<mid>middle|centre|center)\b",
            rf"\bthe\s+(?P<single>{_IMG})\b(?!\s*(?:#|no\b|number\b|[1-9])|\s+(?:one|two|three|four|five)\b"
            r"|\s+(?:on|in|at|to)\s+the\s+(?:far\s+)?(?:left|right|middle|centre|center)\b)",
        ]
    )
)
_VALUE_RE = _alternation(list(VALUE_WORDS))
_ATTR_RE = _alternation(list(ATTRIBUTE_WORDS))
_TYPO_RE = re.compile(rf"(?<![\w/])(?:{_body(list(TYPOS))})(?![\w/])")
_REWRITES = [(re.compile(rf"\b{p}\b"), r) for p, r in PHRASE_REWRITES]
_DIGIT = re.compile(r"[1-9]")
_SPACES = re.compile(r"\s+")
_COMMA_AFTER = re.compile(r"\s*[,:]")
_CLAUSE_BREAK = re.compile(r"[,;:.!?()]|\b(?:and|with|using|but|then|plus|while)\b")
_AMBIGUOUS = _alternation(AMBIGUITY_WORDS)
_UNSUPPORTED = _alternation(UNSUPPORTED_WORDS)
_NEGATED = re.compile(rf"(?<![\w-])(?:{_body(NEGATION_WORDS)})(?![\w-])|n't\b")
_MAX_REFS = 12  # more image references than any request needs: refused before the (windowed) role checks

# ``keep the colour``, ``without changing its size``, ``don't touch the background``, ``not its pattern``: the
# attribute words up to the clause's end are set aside (a list of attributes continues the clause).
_CHANGE = r"(?:chang|touch|alter|modify|affect|edit|mess)\w*"
_KEEP_CUE = re.compile(
    rf"\b(?:keep|keeps|keeping|kept|retain|retains|retaining|preserve|preserves|preserving|leave|leaves|leaving"
    rf"|(?:without|never|don't|dont|do not|doesn't|does not|shouldn't|should not|must not|mustn't)\s+{_CHANGE}"
    rf"|not\s+(?=(?:the\s+|its\s+|their\s+)?{_ATTR}))"
)
_KEEP_AFTER = re.compile(
    rf"(?:the\s+|its\s+|their\s+)?{_ATTR}\s+(?:(?:should|must|can|will|may)\s+)?(?:stays?|remains?|unchanged|untouched"
    r"|as (?:it is|they are|is|before)|the same(?!\s+as)|alone)\b"
)
_KEEP_END = re.compile(
    r"[.;:!?()]|,|\b(?:and|or|nor|but|except|apart|other than|while|then|however|instead|with|using|so|which"
    r"|because|also|plus|give|make|use|put|apply)\b"
)
_KEEP_MORE = re.compile(rf"(?:,\s*(?:and\s+|or\s+|nor\s+)?|(?:and|or|nor)\s+)(?:the\s+|its\s+|their\s+)?{_ATTR}")

# Roles of a reference in an edit (read in a window before and after it). Image 1 is the image edited: another
# image in the edited role, or image 1 in the reference role, is refused (the planner never swaps them silently).
_TARGET_VERB = re.compile(
    r"\b(?:give|make|recolou?r|paint|colou?r|resize|rescale|reshape|change|alter|modify|edit|update|adjust|fix|set"
    rf"|turn|replace|swap|exchange|switch)\s+(?:(?:the|its|their)\s+)?(?:(?:{_OBJ}|{_ATTR})\s+(?:in|of|from|on)\s+"
    r"(?:the\s+)?){0,2}$"
)
_TARGET_PREP = re.compile(
    r"(?:^|\b([\w']+)\s+)(?P<prep>to|onto|into|for|behind)\s+"
    r"(?:(?:the\s+)?(?:objects|object|things|thing|items|item)\s+(?:shown\s+)?(?:in|of|from|on)\s+)?(?:the\s+)?$"
)
_NOT_TARGET_BEFORE_PREP = frozenset(
    {"similar", "identical", "equal", "close", "according", "corresponding", "compared", "same", "match",
     "matching", "matches", "matched", "next"}
)  # fmt: skip
_MATCH_VERB = re.compile(r"\b(?:match|compare)\b")
_SWAP_VERB = re.compile(r"\b(?:swap|exchang|trade|substitut|switch)")
_TARGET_AFTER = re.compile(r"(?:'s\s+(?:object|thing|item)\s+)?\s*(?:should|must|needs|need|has to|is to|gets|will)\b")
_TARGET_START = re.compile(r"^(?:(?:please|pls|now|ok|okay|so)\s*,?\s*)?(?:in|for)?\s*(?:the\s+)?$")
_SOURCE_PREP = re.compile(
    rf"\b(?:from|like|as|matches|matching|resembling)\s+(?:in\s+|on\s+|that\s+(?:of|in)\s+)?{_OBJ_IN}$"
)
_SOURCE_OF = re.compile(
    r"\b(?:give|apply|copy|transfer|take|use|borrow|grab|have|get|with|same|want|put|place|bring|move)\b"
    rf"[^,;.:]*\b{_ATTR}\s+(?:of|from)\s+{_OBJ_IN}$"
)
# ``the NOUN of image k`` / ``image k's NOUN``: NOUN must be a word the planner knows (else it is an attribute it
# does not know, e.g. ``the brightness of image 2``, and it refuses).
_OF_NOUN = re.compile(rf"\b(?:the|its|their|a|an)\s+([a-z][\w'-]*)\s+(?:of|from|in|on)\s+{_OBJ_IN}$")
_POSSESSIVE = re.compile(r"'s\s+([a-z][\w'-]*)")
_KNOWN_NOUNS = frozenset(
    {w for phrase in ATTRIBUTE_WORDS for w in phrase.split()} | set(OBJECT_NOUNS) | FILLER_NOUNS | set(IMAGE_NOUNS)
)
_OBJECT_WORD = re.compile(r"\b(?:objects?|things?|items?|ones?|whatever|what's there|what is there)\b")

#: Words that ask for the whole object to be replaced (an edit naming no attribute must say one of these and name
#: an object: the planner never guesses "replace" for an attribute word it does not know).
_REPLACE_CUE = re.compile(r"replac|swap|\bput|exchang|substitut|\buse\b|switch|instead|place|bring|\btake|move|insert")


@dataclass
class _Token:
    """A found reference, value or attribute word (``end`` and ``listed`` for references)."""

    start: int
    kind: str  # "ref", "value" or "attr"
    attr: str = ""
    value: str = ""
    image: int = 0
    end: int = 0
    listed: bool = False
    other: bool = False  # "the other image"


@dataclass
class _Reading:
    """What has been understood so far (named in refusals)."""

    task: str
    n_images: int | None
    images: list[int] = field(default_factory=list)
    attrs: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # attributes of keep clauses (``keep the colour``)

    def describe(self) -> str:
        """One phrase: the task, images, attributes and values found."""
        n = "?" if self.n_images is None else self.n_images
        attrs = ", ".join(dict.fromkeys(self.attrs)) or "none"
        values = ", ".join(f"{a} {v}" for a, v in self.values.items()) or "none"
        return (
            f"{self.task} of {n} image(s); images named {sorted(set(self.images))}; attributes {attrs}; values {values}"
        )

    def example(self) -> str:
        """An accepted phrasing close to what was asked."""
        obj = [a for a in self.attrs if a in EXAMPLES]
        if self.task == "edit":
            return EXAMPLES[obj[0] if obj and obj[0] != "shape" else "replace"]
        return EXAMPLES["compose" if any(a in OBJ_ATTRS for a in self.attrs) else "place"]


def _ref_image(match: re.Match[str], n_images: int | None, task: str) -> int:
    """Resolve an image-reference match to a 1-based image number (raises PlanError when it cannot)."""
    groups = {k: v for k, v in match.groupdict().items() if v is not None}
    name, text = next(iter(groups.items()))
    if name == "num":
        return int(text)
    if name == "word":
        return NUMBER_WORDS[text]
    if name == "ord":
        return ORDINAL_WORDS[text]
    if name == "first" or (name == "side" and text == "left"):
        return 1
    if n_images is None:
        raise PlanError(f"{match.group(0)!r} needs the number of images")
    if name == "other":
        if task != "edit" or n_images != 2:
            raise PlanError(f"{match.group(0)!r} does not name one image (a {task} of {n_images} images)")
        return 2
    if name == "single":
        if n_images != 1:
            raise PlanError(f"{match.group(0)!r} does not say which of the {n_images} images")
        return 1
    if name == "last" or name == "side":
        return n_images
    if n_images % 2 == 0:  # middle
        raise PlanError(f"{match.group(0)!r} is ambiguous with {n_images} images")
    return (n_images + 1) // 2


def _ref_tokens(text: str, n_images: int | None, task: str) -> list[_Token]:
    """The image references of ``text`` (``images 2 and 3`` gives two, marked ``listed``)."""
    found = []
    for m in _REF.finditer(text):
        if m.group("list") is not None:
            base = m.start("list")
            for d in _DIGIT.finditer(m.group("list")):
                found.append(_Token(m.start(), "ref", image=int(d.group(0)), end=base + d.end(), listed=True))
        else:
            image = _ref_image(m, n_images, task)
            found.append(_Token(m.start(), "ref", image=image, end=m.end(), other=m.group("other") is not None))
        if len(found) > _MAX_REFS:
            raise PlanError(f"more than {_MAX_REFS} image references")
    return found


def _tokens(text: str, n_images: int | None, task: str) -> tuple[list[_Token], str]:
    """Find image references, then values, then attribute words (each pass blanks what it used).

    Returns:
        The tokens in text order, and the text with references and values blanked (for clause splitting).
    """
    chars = list(text)

    def blank(start: int, end: int) -> None:
        chars[start:end] = " " * (end - start)

    found = _ref_tokens(text, n_images, task)
    for t in found:
        blank(t.start, t.end)
    for m in _VALUE_RE.finditer("".join(chars)):
        attr, value = VALUE_WORDS[m.group(0)]
        found.append(_Token(m.start(), "value", attr=attr, value=value))
        blank(m.start(), m.end())
    for m in _ATTR_RE.finditer("".join(chars)):
        found.append(_Token(m.start(), "attr", attr=ATTRIBUTE_WORDS[m.group(0)]))
    return sorted(found, key=lambda t: t.start), "".join(chars)


def _normalize(instruction: str) -> str:
    """Lower-case; unify apostrophes, dashes and spaces; rewrite typos, short forms and set phrases."""
    text = instruction.lower().replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-")
    text = _SPACES.sub(" ", text.replace("\u2014", " - ")).strip()
    text = _TYPO_RE.sub(lambda m: TYPOS[m.group(0)], text)
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


def _keep_spans(text: str) -> list[tuple[int, int]]:
    """Spans of ``keep the colour (and size)`` / ``don't change the background`` / ``not its pattern`` clauses."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while (cue := _KEEP_CUE.search(text, pos)) is not None:
        end = cue.end()
        while (brk := _KEEP_END.search(text, end)) is not None:
            more = _KEEP_MORE.match(text, brk.start()) if brk.group(0) in (",", "and", "or", "nor") else None
            if more is None:
                end = brk.start()
                break
            end = more.end()
        else:
            end = len(text)
        spans.append((cue.start(), end))
        pos = max(end, cue.end())
    spans += [m.span() for m in _KEEP_AFTER.finditer(text)]
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def _set_aside(tokens: list[_Token], spans: list[tuple[int, int]], blanked: str) -> tuple[list[_Token], str]:
    """Drop attribute words inside keep clauses; return the kept tokens and ``blanked`` without those clauses."""
    if not spans:
        return tokens, blanked
    starts = [s for s, _ in spans]

    def span_of(t: _Token) -> int | None:
        i = bisect.bisect_right(starts, t.start) - 1
        return i if i >= 0 and t.start < spans[i][1] else None

    kept_attr_spans = {span_of(t) for t in tokens if t.kind == "attr"} - {None}
    for t in tokens:
        if t.kind == "ref" and t.image != 1 and span_of(t) in kept_attr_spans:
            raise PlanError(f"a 'keep'/'not' clause names image {t.image}: is its attribute wanted or not")
    chars = list(blanked)
    for s, e in spans:
        chars[s:e] = " " * (e - s)
    kept = [t for t in tokens if not (t.kind == "attr" and span_of(t) is not None)]
    return kept, "".join(chars)


# --- closed vocabulary ------------------------------------------------------------------------------------------


def _split_words(phrases: object) -> set[str]:
    return {w for phrase in phrases for w in re.split(r"[\s-]+", str(phrase)) if w}


#: Every word the planner knows: the world's vocabulary and its synonyms, references, the refused words, and the
#: function, politeness and request words of :data:`~dreamomni2.mini.planner_lexicon.FUNCTION_WORDS`.
_KNOWN_WORDS = frozenset(
    FUNCTION_WORDS
    | _split_words(ATTRIBUTE_WORDS)
    | _split_words(VALUE_WORDS)
    | _split_words((*IMAGE_NOUNS, *OBJECT_NOUNS, *FILLER_NOUNS, *NUMBER_WORDS, *ORDINAL_WORDS, *OWN_WORDS))
    | _split_words((*AMBIGUITY_WORDS, *UNSUPPORTED_WORDS, *NEGATION_WORDS, *TYPOS.values()))
)


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


#: The longer function, image and object words, and each of them with one letter dropped: a word one letter short
#: of one of them, one letter too long, or with two neighbouring letters swapped, is a typo of it (a changed letter
#: is not: ``stars`` is not ``stays``).
_TYPO_TARGETS = frozenset(w for w in FUNCTION_WORDS | set(IMAGE_NOUNS) | set(OBJECT_NOUNS) if len(w) >= 5)
_TYPO_SHORT = frozenset(d for w in _TYPO_TARGETS for d in _deletions(w))
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_MAX_TYPO_LEN = 24  # longer than any function word plus one letter


def _is_known(word: str) -> bool:
    """Whether ``word`` is in the closed vocabulary (or a small typo of a function word of 5+ letters)."""
    if word in _KNOWN_WORDS or any(c.isdigit() for c in word):
        return True
    if word.endswith("'s") and word[:-2] in _KNOWN_WORDS:
        return True
    if not 5 <= len(word) <= _MAX_TYPO_LEN:
        return False  # (a bound keeps the typo test linear in the text: no deletions of a 40 KB "word")
    swaps = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
    return word in _TYPO_SHORT or bool((_deletions(word) | swaps) & _TYPO_TARGETS)


def _check_vocabulary(text: str) -> None:
    """Refuse an instruction with a word the planner does not know (it never plans around a word it cannot read)."""
    for m in _WORD.finditer(text):
        if not _is_known(m.group(0)):
            raise PlanError(
                f"I don't know what {m.group(0)!r} means here; the mini world knows shapes, colours, patterns, "
                "sizes and backgrounds taken from images"
            )


def _check_wording(text: str, tokens: list[_Token], rest: str) -> None:
    """Refuse choices, mixtures, negated requests and attribute nouns the planner does not know.

    ``rest`` is the text with references, values and keep clauses blanked.
    """
    if (m := _AMBIGUOUS.search(rest)) is not None:
        raise PlanError(f"{m.group(0)!r} leaves a choice or a mixture open; name one image per attribute")
    if (m := _UNSUPPORTED.search(rest)) is not None:
        raise PlanError(f"{m.group(0)!r} asks for something the mini world has no prompt for")
    if (m := _NEGATED.search(rest)) is not None:
        raise PlanError(f"{m.group(0)!r} negates the request; say what to take from which image")
    for t in tokens:
        if t.kind != "ref" or t.listed:
            continue
        words = []
        if (m := _OF_NOUN.search(text, max(0, t.start - 60), t.start)) is not None:
            words.append(m.group(1))
        if (m := _POSSESSIVE.match(text, t.end)) is not None:
            words.append(m.group(1))
        unknown = [w for w in words if w not in _KNOWN_NOUNS]
        if unknown:
            raise PlanError(f"{unknown[0]!r} is not an attribute I know (shape, colour, pattern, size, background)")
    _check_vocabulary(text)


# --- attributes of image 1 itself ------------------------------------------------------------------------------

_OWN_POSSESSIVE = re.compile(rf"'s\s+(?:(?:{_body(OWN_WORDS)})\s+)?")
_OWN_OF = re.compile(rf"\s+(?:of|in|from|on)\s+{_OBJ_IN}")
_OWN_ADJ = re.compile(rf"\b(?:{_body(OWN_WORDS)})\s+$")
_OTHERS = re.compile(r"'s\s+$")
_OWN_VERB = re.compile(
    r"\b(?:replace|replacing|swap|swapping|change|changing|switch|exchange|substitute|alter|modify|edit|update"
    r"|adjust|recolou?r|paint|set|turn|make|resize|rescale|reshape|fix|match)\s+(?:the\s+|its\s+)?$"
)
_OWN_AFTER = re.compile(
    r"\s*(?:->|=|(?:should|must|needs to|need to|has to|is to|will|shall)\s+(?:be|become|match|look|turn|change|get"
    r"|take|come)\b(?!\s+(?:kept|left|unchanged|untouched|preserved|retained|the same|as it is|as is|intact)))"
    rf"|\s+(?:the\s+|a\s+|an\s+)?{_ATTR}"  # ``give image 1's background the colour of ...``: it is what is edited
)


def _word_end(text: str, start: int) -> int:
    """The end of the attribute word (or phrase) starting at ``start``."""
    m = _ATTR_RE.match(text, start)
    return m.end() if m is not None else start


def _own_span(text: str, tokens: list[_Token], i: int) -> tuple[int, int] | None:
    """The span of a phrase naming attribute token ``tokens[i]`` as image 1's own, or None.

    ``its original colour`` (any attribute); for the background also ``image 1's background`` and ``the background
    of/in image 1``.
    """
    t = tokens[i]
    if (m := _OWN_ADJ.search(text, max(0, t.start - 20), t.start)) is not None:
        return m.start(), _word_end(text, t.start)
    if t.attr != "background":
        return None  # ``the colour of the object in image 1`` names what is edited

    def is_image1(k: int) -> bool:
        return 0 <= k < len(tokens) and tokens[k].kind == "ref" and tokens[k].image == 1 and not tokens[k].listed

    if is_image1(i - 1) and not tokens[i - 1].other and _OWN_POSSESSIVE.fullmatch(text, tokens[i - 1].end, t.start):
        return tokens[i - 1].start, _word_end(text, t.start)
    if is_image1(i + 1) and not _OTHERS.search(text, max(0, t.start - 4), t.start):
        if _OWN_OF.fullmatch(text, _word_end(text, t.start), tokens[i + 1].start):
            return t.start, tokens[i + 1].end
    return None


def _own_attributes(text: str, tokens: list[_Token]) -> tuple[list[_Token], list[tuple[int, int]]]:
    """Drop the background of image 1 itself from an edit's tokens; refuse an object attribute kept as its own.

    Image 1 is the edited image, so an attribute named as its own (``on image 1's background``, ``the background
    of pic one should stay``, ``with its original colour``) is never the edit's source: its background is the
    setting (set aside, as a keep clause), and keeping an object attribute of its own while another image gives the
    change is a mixture the mini world cannot do (refused). Unless a verb acts on it (``change the background of
    image 1``, ``image 1's background should become``...): then it is what is edited, and stays.

    Returns:
        The tokens kept, and the spans of the backgrounds set aside (``the backdrop of image 1`` there does not
        name image 1 as the reference).
    """
    kept, spans = [], []
    for i, t in enumerate(tokens):
        span = _own_span(text, tokens, i) if t.kind == "attr" else None
        if span is None or _OWN_VERB.search(text, max(0, span[0] - 30), span[0]) or _OWN_AFTER.match(text, span[1]):
            kept.append(t)
        elif t.attr != "background":
            raise PlanError(
                f"the {t.attr} of image 1 itself is kept while another image gives the change: a mixture the mini "
                "world cannot do"
            )
        else:
            spans.append(span)
    return kept, spans


def _is_target(text: str, t: _Token) -> bool:
    """Whether an edit names the image of reference ``t`` as the one edited (``give the object in image 2 ...``)."""
    lo = max(0, t.start - 80)
    if _TARGET_VERB.search(text, lo, t.start) or _TARGET_AFTER.match(text, t.end):
        return True
    if t.start <= 40 and _TARGET_START.match(text, 0, t.start) and _COMMA_AFTER.match(text, t.end, t.end + 3):
        return True
    m = _TARGET_PREP.search(text, lo, t.start)
    if m is None or text.startswith("'s", t.end) or (m.group(1) or "") in _NOT_TARGET_BEFORE_PREP:
        return False
    if m.group("prep") == "to" and _MATCH_VERB.search(text, lo, t.start):
        return False  # "match the size of X to Y": Y is the reference
    return not (m.group("prep") == "for" and _SWAP_VERB.search(text))


def _is_source(text: str, t: _Token) -> bool:
    """Whether an edit names the image of reference ``t`` as the reference (``the colour of image 1``...)."""
    lo = max(0, t.start - 80)
    return bool(_SOURCE_PREP.search(text, lo, t.start) or _SOURCE_OF.search(text, lo, t.start))


_ALSO_OBJECT = re.compile(
    r"\b(?:and|plus|as well as)\s+(?:also\s+)?(?:the\s+|its\s+)?(?:object|thing|item)s?\s+(?:of|from)\b"
)
_JOINED = re.compile(r"\s*(?:,|and|&)?\s*")
_ODD = re.compile(rf"\bbackground\s+{_OBJ}\b")


def _check_roles(text: str, tokens: list[_Token], own: list[tuple[int, int]]) -> None:
    """Refuse an edit that names another image as the one edited, or image 1 as the reference.

    ``own`` are the spans of keep clauses and of image 1's own background (``onto the backdrop of image 1``):
    image 1 named there is not the reference.
    """
    refs = [t for t in tokens if t.kind == "ref"]
    for a, b in zip(refs, refs[1:], strict=False):
        if _JOINED.fullmatch(text, a.end, b.start):
            raise PlanError(f"images {a.image} and {b.image} are named together; say which one is edited")
    if (m := _ODD.search(text)) is not None:
        raise PlanError(f"{m.group(0)!r}: is the background or the object meant")
    for t in tokens:
        if t.kind != "ref":
            continue
        if t.listed:
            raise PlanError("an edit takes one attribute from one image; a list of images names several")
        if t.image != 1 and _is_target(text, t):
            raise PlanError(f"image {t.image} is named as the image to edit, but the edited image is image 1")
        if t.image == 1 and _is_source(text, t) and not any(s <= t.start < e for s, e in own):
            raise PlanError("image 1 is named as the reference, but it is the edited image; name another image")


_ATTR_NAME = {"color": "colour"}
_THING = r"(?:objects?|things?|items?)"
#: ``replace the background of image 1``: what a replace verb names as replaced (an attribute or the object).
_REPLACED = re.compile(
    rf"\b(?:replac|swap|exchang|substitut|switch)\w*\s+(?:out\s+)?(?:the\s+|its\s+)?(?:(?P<attr>{_ATTR})|(?P<obj>{_THING}))"
)
#: What is taken from a reference: ``the colour of (the object in) image 2`` (an attribute) or ``the object from
#: image 2`` / ``image 2's object`` (the object).
_TAKEN_ATTR = re.compile(rf"(?P<attr>{_ATTR})\s+(?:of|from|in|on)\s+{_OBJ_IN}$")
_TAKEN_OBJ = re.compile(rf"\b{_THING}\s+(?:shown\s+)?(?:of|from|in|on)\s+(?:the\s+)?$")
_TAKEN_POSSESSIVE = re.compile(rf"'s\s+(?:(?P<attr>{_ATTR})|(?P<obj>{_THING}))")


def _taken(text: str, t: _Token) -> str | None:
    """What an edit takes from reference ``t``: an attribute, ``object``, or None when the text does not say."""
    lo = max(0, t.start - 60)
    if (m := _TAKEN_ATTR.search(text, lo, t.start)) is not None:
        return ATTRIBUTE_WORDS[m.group("attr")]
    if _TAKEN_OBJ.search(text, lo, t.start) is not None:
        return "object"
    if (m := _TAKEN_POSSESSIVE.match(text, t.end)) is not None:
        return ATTRIBUTE_WORDS[m.group("attr")] if m.group("attr") else "object"
    return None


def _check_like_for_like(text: str, tokens: list[_Token]) -> None:
    """Refuse ``replace the background of image 1 with the object from image 2``: what is replaced and what is
    taken must be the same kind of thing (background for background, object for object, colour for colour)."""
    if (m := _REPLACED.search(text)) is None:
        return
    replaced = ATTRIBUTE_WORDS[m.group("attr")] if m.group("attr") else "object"
    for t in tokens:
        if t.kind == "ref" and t.image != 1 and (taken := _taken(text, t)) not in (None, replaced):
            raise PlanError(
                f"replaces the {_ATTR_NAME.get(replaced, replaced)} with the {_ATTR_NAME.get(taken, taken)} of "
                f"image {t.image}: an edit takes like for like (a background for a background, the object for the "
                "object, an attribute for the same attribute)"
            )


def _parse_edit(text: str, blanked: str, images: list[int], reading: _Reading) -> ParsedInstruction:
    """The edit branch of :func:`parse_instruction`: one reference besides image 1, at most one attribute."""
    others = sorted(set(images) - {1})
    if len(others) != 1:
        raise PlanError(f"an edit needs exactly one reference image besides image 1, got {others}")
    if reading.values:
        raise PlanError("an edit takes its change from a reference image, not from named values")
    attrs = set(reading.attrs)
    obj_attrs = sorted(attrs - {"background"}, key=OBJ_ATTRS.index)
    if len(attrs) > 1 or "shape" in attrs:
        raise PlanError(f"one edit changes one of colour, pattern, size, background or the object, not {sorted(attrs)}")
    kind = obj_attrs[0] if obj_attrs else "background" if attrs else "replace"
    if kind == "replace" and (kept := [a for a in reading.kept if a in OBJ_ATTRS]):
        raise PlanError(
            f"replacing the object but keeping its {kept[0]} mixes two objects; the mini world replaces all"
        )
    if kind == "replace" and not (_REPLACE_CUE.search(blanked) and _OBJECT_WORD.search(blanked)):
        raise PlanError("no attribute I know (shape, colour, pattern, size, background) and no replace word")
    if kind != "replace" and (m := _ALSO_OBJECT.search(text)) is not None:
        raise PlanError(f"{m.group(0)!r}: the {kind} and the object too? one edit changes one thing")
    return ParsedInstruction("edit", kind, {"object" if kind == "replace" else kind: others[0]})


def _pair_refs(text: str, tokens: list[_Token]) -> dict[str, int]:
    """Pair each object-attribute word with the image named in the same clause (``compose``).

    ``text`` is the normalised text with references and values blanked. With ``respectively`` all attribute words
    and images pair up in order. Otherwise clauses are split at punctuation and at ``and``/``with``/``using``/
    ``but``/``then``; within a clause (and then among the leftovers of all clauses) attribute words and images pair
    up in order when their counts agree.
    """
    used = [t for t in tokens if t.kind == "ref" or (t.kind == "attr" and t.attr != "background")]
    if "respectively" in text:
        attrs, images = [t.attr for t in used if t.kind == "attr"], [t.image for t in used if t.kind == "ref"]
        if len(attrs) != len(images):
            raise PlanError(f"'respectively' pairs {len(attrs)} attributes with {len(images)} images")
        groups = [(attrs, images)]
    else:
        if any(t.listed for t in used):
            raise PlanError("a list of images without 'respectively' does not say which attribute comes from which")
        breaks = [m.start() for m in _CLAUSE_BREAK.finditer(text)]
        clauses: dict[int, tuple[list[str], list[int]]] = {}
        for t in used:
            attrs, images = clauses.setdefault(bisect.bisect(breaks, t.start), ([], []))
            (attrs.append(t.attr) if t.kind == "attr" else images.append(t.image))
        groups, left_attrs, left_images = [], [], []
        for attrs, images in clauses.values():
            if len(attrs) == len(images):
                groups.append((attrs, images))
            else:
                left_attrs += attrs
                left_images += images
        if len(left_attrs) != len(left_images):
            raise PlanError(f"cannot pair attributes {left_attrs} with images {left_images}")
        groups.append((left_attrs, left_images))
    refs: dict[str, int] = {}
    for attrs, images in groups:
        for a, k in zip(attrs, images, strict=True):
            if refs.get(a, k) != k:
                raise PlanError(f"the {a} is taken from two images")
            refs[a] = k
    return refs


def _parse_generate(blanked: str, tokens: list[_Token], images: list[int], reading: _Reading) -> ParsedInstruction:
    """The generation branch of :func:`parse_instruction`: ``place`` or ``compose``."""
    values = reading.values
    if "background" not in values:
        raise PlanError("a generation needs a background value (light, dark or warm)")
    obj_attrs = sorted(set(reading.attrs) - {"background"}, key=OBJ_ATTRS.index)
    if not obj_attrs:
        if len(set(images)) != 1 or any(t.listed for t in tokens):
            raise PlanError(f"placing one object, but images {sorted(set(images))} are named")
        if set(values) != {"background"}:
            raise PlanError(f"placing an object from an image names no object values, got {values}")
        return ParsedInstruction("generate", "place", {"object": images[0]}, {"background": values["background"]})
    refs = _pair_refs(blanked, tokens)
    if len(set(refs.values())) != len(refs):
        raise PlanError(f"several attributes from one image: {refs}")
    missing = [a for a in OBJ_ATTRS if a not in refs and a not in values]
    clash = [a for a in refs if a in values]
    if missing or clash:
        raise PlanError(f"object attributes not given {missing} or given twice {clash}")
    refs = {a: refs[a] for a in OBJ_ATTRS if a in refs}
    return ParsedInstruction("generate", "compose", refs, values)


def _values(tokens: list[_Token]) -> dict[str, str]:
    """The values named (canonical names); two different values of one attribute are refused."""
    values: dict[str, str] = {}
    for t in tokens:
        if t.kind == "value":
            if values.get(t.attr, t.value) != t.value:
                raise PlanError(f"two {t.attr} values: {values[t.attr]!r} and {t.value!r}")
            values[t.attr] = t.value
    return values


def _parse(text: str, reading: _Reading) -> ParsedInstruction:
    """:func:`parse_instruction` on normalised text, filling ``reading`` on the way."""
    tokens, blanked = _tokens(text, reading.n_images, reading.task)
    reading.images = [t.image for t in tokens if t.kind == "ref"]
    reading.attrs = [t.attr for t in tokens if t.kind == "attr"]
    reading.values = _values(tokens)
    keep = _keep_spans(text)
    before = tokens
    tokens, rest = _set_aside(tokens, keep, blanked)
    remaining = {id(t) for t in tokens}
    reading.kept = [t.attr for t in before if t.kind == "attr" and id(t) not in remaining]
    if reading.task == "edit":
        tokens, own = _own_attributes(text, tokens)
        keep += own
    reading.attrs = [t.attr for t in tokens if t.kind == "attr"]
    if both := [a for a in dict.fromkeys(reading.attrs) if a in reading.kept]:
        word = _ATTR_NAME.get(both[0], both[0])
        raise PlanError(f"the instruction asks to change the {word} and to keep it; say which")
    if not reading.images:
        raise PlanError("no image is referred to")
    n = reading.n_images
    if n is not None and any(not 1 <= k <= n for k in reading.images):
        raise PlanError(f"image numbers {sorted(set(reading.images))} outside 1..{n}")
    if any(t.other for t in tokens) and not any(t.kind == "ref" and t.image == 1 and not t.other for t in tokens):
        raise PlanError("'the other image' is named, but not image 1 it is the other of")
    _check_wording(text, tokens, rest)
    if reading.task == "edit":
        _check_roles(text, tokens, keep)
        _check_like_for_like(text, tokens)
        return _parse_edit(text, blanked, reading.images, reading)
    return _parse_generate(blanked, tokens, reading.images, reading)


def parse_instruction(instruction: str, task: str, n_images: int | None = None) -> ParsedInstruction:
    """Understand a mini-world instruction.

    Args:
        instruction: canonical, paraphrased, irregular or hand-written instruction text.
        task: ``edit`` or ``generate`` (``editing``/``generation`` accepted).
        n_images: number of input images; needed for ``last``/``right``/``middle``/``other`` references and to
            check image numbers (None: positional references other than ``first``/``left`` fail, numbers are not
            checked).

    Returns:
        The parsed instruction; :meth:`ParsedInstruction.prompt` gives the canonical prompt.

    Raises:
        PlanError: when the instruction is not understood or is ambiguous; the message says what is missing, what
            was understood and an example phrasing that is accepted.
        TypeError: when ``instruction`` is not a string.
    """
    task = normalize_task(task)
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be a str, got {type(instruction).__name__}.")
    reading = _Reading(task, n_images)
    try:
        return _parse(_normalize(instruction), reading)
    except PlanError as err:
        raise PlanError(f"{err}; understood: {reading.describe()}; say e.g. {reading.example()!r}") from None


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
            instruction: the instruction (canonical, paraphrased, irregular or hand-written).
            task: ``"edit"`` or ``"generate"``.

        Returns:
            ``PlannedPrompt(canonical prompt, "<edit>…</edit>"/"<gen>…</gen>", "mini", False)``; non-strict, the
            instruction with ``fell_back=True`` (and a warning) when it cannot be parsed.

        Raises:
            PlanError: strict (the default), when the instruction is not understood: one line with what is missing,
                what was understood and an example phrasing (the CLI prints it and exits 2).
            TypeError: when ``images`` is not a list of PIL images.
        """
        task = normalize_task(task)
        build_user_text(instruction, task)
        if isinstance(images, Image.Image):
            raise TypeError("images must be a list of PIL images, not a single image.")
        for i, img in enumerate(images):
            if not isinstance(img, Image.Image):
                raise TypeError(f"images[{i}] is a {type(img).__name__}, not a PIL image.")
        if self.strict:  # parse once: the strict reply is the parsed prompt, wrapped as mini_reply wraps it
            try:
                raw = wrap_reply(parse_instruction(instruction, task, len(images)).prompt(), task)
            except PlanError as err:
                raise PlanError(f"the mini planner does not understand {instruction[:200]!r}: {err}") from None
        else:
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
