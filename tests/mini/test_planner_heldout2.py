"""The second frozen held-out set of hand-written planner instructions (tests/data/planner_heldout2.jsonl).

The set was written from the mini world's vocabulary and canonical templates only (mini/text.py, scene.py,
cases.py, groups.py), without looking at the planner's rules, its lexicon, its tests or the other planner sets, and
is frozen: rules must not be tuned on it. Every non-null ``expected`` was rendered by
:func:`dreamomni2.mini.text.canonical_prompt` from hand-written (kind, refs, values) data; rows of kind ``other``
are the unanswerable ones (ambiguous, unsupported, out-of-range or missing references, values the world lacks) and
expect null. This file checks the format and scores the planner on the set (regression floors).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest

from dreamomni2.mini.cases import Case
from dreamomni2.mini.scene import COLORS, OBJ_ATTRS, SCENE_ATTRS, SHAPES, SIZES, VOCAB, Scene
from dreamomni2.mini.text import ATTR_WORD, PATTERN_ADJ, canonical_prompt
from tests.mini.heldout_common import kind_of, score_planner
from tests.mini.heldout_common import load_rows as read_rows

DATA = Path(__file__).resolve().parents[1] / "data" / "planner_heldout2.jsonl"
#: sha256 of the frozen file: the set must not change (a changed set no longer measures anything held out).
FROZEN_SHA256 = "e641b72b28e0e1c4315b2b83f1d02149c5f6ac82400565a15effd3326cdcf7ac"
EDIT_KINDS = ("replace", "color", "pattern", "size", "background")
GEN_KINDS = ("place", "compose")
KINDS = (*EDIT_KINDS, *GEN_KINDS)

# First measurement (once, on the planner of the rules rewritten on tests/data/planner_dev.jsonl, before the fixes
# below): 329 rows, 256 answerable; exact 234 (91.4% of answerable), refused 90 (71 correctly, 19 answerable),
# silently wrong 5 (1.5%: three replaces naming image 1's own background planned as background edits, a replace
# "but keep the original colour" and "into a star with the colour of image 3" planned as plain edits). The set has
# been seen since (development data now). After the general fixes (image 1's own background is the setting; a
# replace keeping an object attribute is refused; the closed vocabulary refuses unknown words, named): exact 238
# (93.0%), refused 91 (73 correctly, 18 answerable), silently wrong 0. Regression floors: raise them when rules
# improve.
MAX_SILENTLY_WRONG = 0
MIN_EXACT = 238

_ATTR_OF_WORD = {word: attr for attr, word in ATTR_WORD.items()}
_PATTERN_OF_ADJ = {adj: value for value, adj in PATTERN_ADJ.items()}
_FILLER = {a: VOCAB[a][0] for a in SCENE_ATTRS}
_BG = "(" + "|".join(VOCAB["background"]) + ")"
_SIMPLE = {
    "replace": re.compile(r"Replace the object in image 1 with the object from image (\d)\."),
    "color": re.compile(r"Make the object in image 1 have the colour of the object in image (\d)\."),
    "pattern": re.compile(r"Make the object in image 1 have the pattern of the object in image (\d)\."),
    "size": re.compile(r"Make the object in image 1 have the size of the object in image (\d)\."),
    "background": re.compile(r"Give image 1 the background of image (\d)\."),
    "place": re.compile(r"Generate the object from image (\d) on a " + _BG + r" background\."),
}
_COMPOSE = re.compile(r"Generate an? ([a-z ]+?) with (.+) on a " + _BG + r" background\.")
_CLAUSE = re.compile(r"the (shape|colour|pattern|size) of image (\d)")


def load_rows() -> list[dict]:
    return read_rows(DATA)


def _compose_values(noun_phrase: str, refs: dict[str, int]) -> dict[str, str]:
    """Read the attribute values a compose prompt names (adjectives size/pattern/colour, then the noun)."""
    *adjs, noun = noun_phrase.split()
    values = {}
    for adj in adjs:
        attr = "size" if adj in SIZES else "pattern" if adj in _PATTERN_OF_ADJ else "color" if adj in COLORS else None
        assert attr is not None and attr not in values, f"unknown or repeated adjective {adj!r}"
        values[attr] = _PATTERN_OF_ADJ.get(adj, adj)
    if noun != "object":
        assert noun in SHAPES, f"unknown shape {noun!r}"
        values["shape"] = noun
    assert set(values) == set(OBJ_ATTRS) - set(refs), f"{noun_phrase!r} does not name exactly the other attributes"
    return values


def parse_canonical(prompt: str) -> tuple[str, dict[str, int], Scene]:
    """Read (kind, refs, target) back from a canonical prompt; AssertionError when it is not one.

    The target holds the values the prompt names (the others are fillers, which canonical_prompt does not read).
    """
    for kind, pattern in _SIMPLE.items():
        m = pattern.fullmatch(prompt)
        if m:
            key = "object" if kind in ("replace", "place") else kind
            bg = m.group(2) if kind == "place" else _FILLER["background"]
            return kind, {key: int(m.group(1))}, Scene.from_dict({**_FILLER, "background": bg})
    m = _COMPOSE.fullmatch(prompt)
    assert m, f"not a canonical prompt: {prompt!r}"
    refs: dict[str, int] = {}
    for clause in re.split(r", | and ", m.group(2)):
        c = _CLAUSE.fullmatch(clause)
        assert c and _ATTR_OF_WORD[c.group(1)] not in refs, f"bad clause {clause!r} in {prompt!r}"
        refs[_ATTR_OF_WORD[c.group(1)]] = int(c.group(2))
    values = _compose_values(m.group(1), refs)
    return "compose", refs, Scene.from_dict({**_FILLER, **values, "background": m.group(3)})


def check_expected(expected: str, task: str, n_images: int) -> str:
    """Assert ``expected`` is a prompt the mini world makes for ``task`` with ``n_images`` images; return its kind."""
    kind, refs, target = parse_canonical(expected)
    case = Case(task, "", [target] * n_images, "", "", target, kind, refs)
    assert canonical_prompt(case) == expected, f"not in canonical form: {expected!r}"
    assert (kind in EDIT_KINDS) == (task == "edit"), f"{kind} prompt for task {task}: {expected!r}"
    low = 2 if task == "edit" else 1
    assert all(low <= k <= n_images for k in refs.values()), f"image number outside {low}..{n_images}: {expected!r}"
    assert len(set(refs.values())) == len(refs), f"two attributes from one image: {expected!r}"
    return kind


def test_heldout2_is_frozen():
    assert hashlib.sha256(DATA.read_bytes()).hexdigest() == FROZEN_SHA256


def test_heldout2_is_well_formed():
    rows = load_rows()
    assert len(rows) >= 320
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({(r["instruction"], r["task"], r["n_images"]) for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"id", "instruction", "task", "n_images", "expected"}, r
        assert re.fullmatch(r"[a-z]+-\d{3}", r["id"]) and kind_of(r) in (*KINDS, "other"), r["id"]
        assert isinstance(r["instruction"], str) and r["instruction"].strip(), r["id"]
        assert r["task"] in ("edit", "generate"), r["id"]
        low = 2 if r["task"] == "edit" else 1
        assert isinstance(r["n_images"], int) and low <= r["n_images"] <= 4, r["id"]
        assert (kind_of(r) == "other") == (r["expected"] is None), r["id"]
        if kind_of(r) != "other":
            assert r["task"] == ("edit" if kind_of(r) in EDIT_KINDS else "generate"), r["id"]


def test_heldout2_is_spread():
    rows = load_rows()
    kinds = Counter(kind_of(r) for r in rows)
    assert all(kinds[k] >= 30 for k in KINDS), kinds
    assert 0.15 <= kinds["other"] / len(rows) <= 0.30, kinds
    assert set(Counter(r["n_images"] for r in rows)) == {1, 2, 3, 4}
    assert {r["n_images"] for r in rows if kind_of(r) == "compose"} == {1, 2, 3, 4}


@pytest.mark.parametrize("row", [r for r in load_rows() if r["expected"] is not None], ids=lambda r: r["id"])
def test_heldout2_expected_is_a_canonical_prompt(row):
    assert check_expected(row["expected"], row["task"], row["n_images"]) == kind_of(row)


def test_check_expected_accepts_world_prompts():
    assert check_expected("Give image 1 the background of image 3.", "edit", 3) == "background"
    prompt = "Generate a striped circle with the colour of image 2 and the size of image 1 on a warm background."
    assert check_expected(prompt, "generate", 2) == "compose"


@pytest.mark.parametrize(
    ("prompt", "task", "n_images"),
    [
        ("Give image 1 the background of image 3.", "edit", 2),  # image 3 of 2
        ("Replace the object in image 1 with the object from image 1.", "edit", 2),  # edit from image 1
        ("Generate the object from image 1 on a blue background.", "generate", 1),  # no blue background
        ("Generate the object from image 1 on a dark background.", "edit", 2),  # generate prompt for an edit
        ("Make the object in image 1 have the shape of the object in image 2.", "edit", 2),  # no shape edit
        ("Generate a large circle with the colour of image 2 on a light background.", "generate", 2),  # no pattern
        ("Generate a red large solid object with the shape of image 1 on a dark background.", "generate", 1),  # order
        (
            "Generate a small solid object with the colour of image 1 and the shape of image 2 on a dark background.",
            "generate",
            2,
        ),  # clause order
        ("Generate a small solid red circle with the colour of image 1 on a dark background.", "generate", 1),  # twice
        (
            "Generate a small solid object with the shape of image 1 and the colour of image 1 on a dark background.",
            "generate",
            2,
        ),  # two attributes from one image
    ],
)
def test_check_expected_rejects_other_prompts(prompt, task, n_images):
    with pytest.raises(AssertionError):
        check_expected(prompt, task, n_images)


def test_silently_wrong_does_not_grow():
    counts, wrong = score_planner(load_rows())
    assert counts["wrong"] <= MAX_SILENTLY_WRONG, "\n".join(wrong)
    assert counts["exact"] >= MIN_EXACT, counts
