"""Word lists of the mini planner (:mod:`dreamomni2.mini.planner`): what it reads as which attribute, value or image.

Everything here is data: the world's own vocabularies (:mod:`dreamomni2.mini.text`) plus the ways people write the
same things (synonyms, abbreviations, verb forms, a few common typos). The lists were written from a development
set (``tests/data/planner_dev.jsonl``), never from the frozen held-out set; the closed vocabulary
(:data:`FUNCTION_WORDS`) was completed after the first two held-out sets had been measured, so those are development
data too. A word is only listed when it means one thing in the mini world: ``pink``, ``purple``, ``white`` or
``design`` are left out on purpose, so an instruction using them is refused instead of planned as a guess.
"""

from __future__ import annotations

from dreamomni2.mini.world import ATTR_SYNONYMS, IMAGE_WORDS, IRREGULAR_ATTR_SYNONYMS, ORDINALS, VALUE_SYNONYMS

__all__ = [
    "AMBIGUITY_WORDS",
    "FUNCTION_WORDS",
    "OWN_WORDS",
    "UNSUPPORTED_WORDS",
    "ATTRIBUTE_WORDS",
    "EXAMPLES",
    "FILLER_NOUNS",
    "IMAGE_NOUNS",
    "NEGATION_WORDS",
    "NUMBER_WORDS",
    "OBJECT_NOUNS",
    "ORDINAL_WORDS",
    "PHRASE_REWRITES",
    "TYPOS",
    "VALUE_WORDS",
]

#: Misspellings and short forms, rewritten word by word before anything else is read (whole words only).
TYPOS: dict[str, str] = {
    # colour
    "colur": "colour", "coulor": "colour", "colr": "colour", "clour": "colour", "collor": "colour",
    "colro": "colour", "coloor": "colour", "culour": "colour", "colout": "colour", "colors": "color",
    "colours": "colour", "colouring": "colour", "coloring": "colour", "hues": "hue", "shades": "shade",
    # pattern
    "patern": "pattern", "pattren": "pattern", "patten": "pattern", "pattetn": "pattern", "pattern's": "pattern",
    "texure": "texture", "textrue": "texture", "txture": "texture", "patterns": "pattern",
    # size
    "sise": "size", "szie": "size", "siez": "size", "sizee": "size", "dimensions": "size", "dimension": "size",
    # shape
    "shap": "shape", "shpae": "shape", "sahpe": "shape", "shapes": "shape", "silhouette": "outline",
    # background
    "bg": "background", "b/g": "background", "backround": "background", "bakground": "background",
    "backgroud": "background", "backgound": "background", "backgroung": "background", "bckground": "background",
    "backgrond": "background", "bacground": "background", "backgorund": "background",
    # image nouns
    "imgae": "image", "iamge": "image", "imge": "image", "imag": "image", "imgs": "images",
    "pics": "pictures", "pictrue": "picture", "pciture": "picture", "picure": "picture", "phot": "photo",
    "foto": "photo", "im": "image", "teh": "the", "hte": "the", "img.": "image", "imgae's": "image's",
    # object nouns
    "objcet": "object", "obejct": "object", "objet": "object", "oject": "object", "obj": "object",
    "objct": "object",
}  # fmt: skip

#: Phrases rewritten (regex -> replacement, applied in order, whole words) before values and attributes are read.
PHRASE_REWRITES: tuple[tuple[str, str], ...] = (
    (r"back ground", "background"),
    (r"background[- ](?:colou?r|hue|shade|tone|tint)", "background"),
    (r"as (?:big|large|small|tiny|little|huge) as", "the same size as"),
    (r"(?:big|large|small|tiny|little)ness", "size"),
    (r"how (?:big|large|small) (?:it|the object|the thing) is", "size"),
    (r"(colou?r|size|pattern|shape)-match(es|ed|ing)?", r"\1 match\2"),
    (r"shapes? in", "object in"),
    (r"and/or", "or"),
    (r",? ?(?:and )?nothing (?:else|more)", ""),
    (r"(?:i'd|i would|we'd|we would|would) like", "i want"),
)

#: Attribute words (after :data:`TYPOS`) -> attribute; nouns, verbs and participles alike.
ATTRIBUTE_WORDS: dict[str, str] = {
    **{w: a for table in (ATTR_SYNONYMS, IRREGULAR_ATTR_SYNONYMS) for a, words in table.items() for w in words},
    "tint": "color", "tone": "color", "recolour": "color", "recolor": "color", "recoloured": "color",
    "recolored": "color", "coloured": "color", "colored": "color", "colour": "color", "color": "color",
    "paint colour": "color",
    "motif": "pattern", "patterned": "pattern", "textured": "pattern", "surface pattern": "pattern",
    "resize": "size", "resized": "size", "rescale": "size", "rescaled": "size", "sized": "size",
    "scaled": "size", "scale": "size",
    "shaped": "shape", "reshape": "shape", "reshaped": "shape", "contour": "shape",
    "background": "background", "backgrounds": "background", "backdrop": "background",
    "backdrops": "background",
}  # fmt: skip


def _value_words() -> dict[str, tuple[str, str]]:
    """Every value word (the world's synonyms plus a few unambiguous others) -> ``(attribute, value)``."""
    out: dict[str, tuple[str, str]] = {}
    for attr, table in VALUE_SYNONYMS.items():
        for value, words in table.items():
            for w in (value, *words):
                out[w] = (attr, value)
    extra = {
        "background": {
            "light": ["light gray", "pale gray", "light-grey", "light-gray", "pale-grey", "pale", "pale grey"],
            "dark": ["dark gray", "dark-grey", "dark-gray", "charcoal grey", "charcoal-grey"],
            "warm": [
                "sand-colored",
                "sand coloured",
                "sand colored",
                "sand",
                "sandy",
                "warm-coloured",
                "warm-colored",
                "warm coloured",
                "warm colored",
                "sandy beige",
                "warm beige",
                "beige-coloured",
            ],
        },  # fmt: skip
        "pattern": {
            "solid": [
                "uniformly colored",
                "uniform",
                "plain-coloured",
                "single-coloured",
                "solid-coloured",
                "solid-colored",
                "solid coloured",
                "solid colored",
            ],
            "checker": ["checker", "checkerboard", "chequerboard", "checkered", "checkers", "checks"],
            "stripes": ["stripes", "stripey", "with stripes"],
        },
        "color": {"red": ["crimson"], "yellow": ["lemon yellow", "lemon"], "cyan": ["aqua"]},
        "shape": {"circle": ["round"], "diamond": ["lozenge"]},
        "size": {"large": ["huge"]},
    }
    for attr, table in extra.items():
        for value, words in table.items():
            for w in words:
                out.setdefault(w, (attr, value))
    return out


VALUE_WORDS: dict[str, tuple[str, str]] = _value_words()

NUMBER_WORDS: dict[str, int] = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
ORDINAL_WORDS: dict[str, int] = {w: k for k, w in ORDINALS.items()}
ORDINAL_WORDS.update({"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5})
#: Words for an input image (longest first when used in a regex).
IMAGE_NOUNS: tuple[str, ...] = tuple(
    sorted({*IMAGE_WORDS, "image", "picture", "photo", "pic", "img", "photograph", "input", "frame"}, key=len)[::-1]
)
#: Words for the object of a scene.
OBJECT_NOUNS: tuple[str, ...] = ("objects", "object", "things", "thing", "items", "item", "shape thing", "one", "ones")
#: Nouns allowed in ``the NOUN of image k`` / ``image k's NOUN`` besides attribute and object words (any other noun
#: there is an attribute the planner does not know, and it refuses).
FILLER_NOUNS: frozenset[str] = frozenset(
    {
        "rest",
        "same",
        "left",
        "right",
        "middle",
        "centre",
        "center",
        "exact",
        "current",
        "whole",
        "entire",
        "original",
        "existing",
        "own",
        "main",
        "single",
        "new",
    }
)
#: Words that make a request a choice or a mixture the mini world cannot express (the planner refuses).
AMBIGUITY_WORDS: tuple[str, ...] = (
    "or", "either", "whichever", "between", "maybe", "perhaps", "possibly", "mix", "mixture", "blend", "average",
    "halfway", "somewhere", "latter", "former", "random", "randomly", "any", "something", "anything", "someone",
    "some", "whatever you",
)  # fmt: skip
#: Comparatives, relations and operations the mini world has no prompt for (``darker than``, ``twice as big``,
#: ``next to``, ``add a shadow``): an instruction using them is refused instead of planned without them.
UNSUPPORTED_WORDS: tuple[str, ...] = (
    "than", "twice", "half", "double", "triple", "times", "different", "differently", "similar", "similarly",
    "unlike", "opposite", "contrasting", "more", "less", "slightly", "somewhat", "bit", "warmer", "cooler",
    "darker", "lighter", "brighter", "paler", "bigger", "smaller", "larger", "tinier", "huger", "next", "beside",
    "alongside", "above", "below", "under", "underneath", "near", "around", "top", "bottom", "add", "adding",
    "added", "shadow", "shadows", "rotate", "rotated", "rotation", "flip", "flipped", "mirror", "mirrored", "tilt",
    "tilted", "position", "orientation", "both", "each", "all", "every", "everything", "unless", "if",
    "except for", "transparent", "transparency", "two", "three", "four", "five", "several", "many", "multiple",
    "copies", "pair", "couple", "remove", "delete", "erase", "crop", "blur", "zoom", "sharpen", "brighten",
    "darken", "lighten", "enlarge", "shrink", "grow", "invert", "inverted", "again",
)  # fmt: skip
#: Negations left after ``keep``/``not its colour`` clauses are taken out: the request itself is negated.
NEGATION_WORDS: tuple[str, ...] = ("not", "never", "don't", "dont", "do not", "doesn't", "shouldn't", "no longer",
                                   "without", "nor", "neither", "isn't", "won't", "can't", "cannot", "no",
                                   "none", "nothing")  # fmt: skip
#: Example phrasings the planner accepts, per kind (shown in every refusal).
EXAMPLES: dict[str, str] = {
    "replace": "Replace the object in image 1 with the object from image 2.",
    "color": "Make the object in image 1 have the colour of the object in image 2.",
    "pattern": "Make the object in image 1 have the pattern of the object in image 2.",
    "size": "Make the object in image 1 have the size of the object in image 2.",
    "background": "Give image 1 the background of image 2.",
    "place": "Generate the object from image 1 on a dark background.",
    "compose": "Generate a small striped red object with the shape of image 1 on a light background.",
}
#: Words that attribute an attribute to the edited image itself (``its original colour``, ``image 1's own
#: background``): such an attribute is never the edit's source.
OWN_WORDS: tuple[str, ...] = ("original", "own", "old", "previous", "current", "existing", "present", "usual")
#: The closed vocabulary's words besides the lists above (attribute, value, image and object words, numbers,
#: ordinals, refused words): articles, pronouns, auxiliaries, prepositions, conjunctions, politeness and chat
#: fillers, and the verbs and adjectives of asking for an edit that carry no attribute or value. Any other word is
#: unknown and the planner refuses naming it (``Turn the object into a star``: 'star'), so a word the mini world has
#: no meaning for is never planned around. Small typos of these words (one letter added, dropped, changed or two
#: swapped, words of 5+ letters) are accepted too.
FUNCTION_WORDS: frozenset[str] = frozenset(
    """
    a an the this that these those it its it's itself they them their theirs i me my mine we us our you your u ur
    yourself he she his her one ones myself who whom whose which what where when how here there
    is are was were be been being am do does did doing done have has had having will would shall should can could
    may might must need needs needed ought let lets let's i'm i'd i'll we'd we're you're you'd it'll that's there's
    what's
    of in on at to from by for with w within into onto upon over across through via per out off up down about like
    as so then also plus too well just only exactly simply now please pls plz kindly thanks thank thx ty cheers hi
    hello hey ok okay sure great cool awesome nice yes yeah right left here still already really very much lot
    lots instead actually basically quickly quick rather that's while whereas though although yet and but
    besides else otherwise even same exact identical matching matched
    make makes made making give gives gave given giving get gets got getting take takes took taken taking use uses
    used using put puts putting place places placed placing set sets setting apply applies applied applying copy
    copied copying transfer transfers transferred transferring borrow borrows borrowed borrowing grab grabs
    grabbed bring brings brought move moves moved moving insert inserts inserted inserting swap swaps swapped
    swapping replace replaces replaced replacing change changes changed changing alter alters altered altering
    modify modifies modified edit edits edited editing update updates updated adjust adjusts adjusted fix turn
    turns turned turning paint paints painted painting match matches want wants wanted wish love need try show
    shows showing shown look looks looking appear appears render renders rendered draw draws drawn drawing create
    creates created creating generate generates generated generating produce produces produced producing compose
    composed build built depict depicts depicting keep keeps kept keeping stay stays stayed remain remains
    remaining leave leaves leaving left preserve preserves preserved preserving retain retains retained retaining
    become becomes became go goes going come comes came sit sits sitting stick wear wears drop drops fill
    reproduce restyle combine combined swap exchange exchanges exchanged substitute substitutes substituted switch
    switches switched trade touch touched touching mess alone unchanged untouched intact same copy follow follows
    following carry carries carried sitting standing see taken pick picks picked
    last final rightmost leftmost most hand middle centre center central far side number behind against
    currently presently now there ignore way toned
    precisely completely entirely fully directly carefully since because therefore thus hence anyway i've you've
    we've it'd wanna gonna appreciate appreciated hopefully ensure sure dear folks guys task request
    resemble resembles resembling sits stand stands stuck sticks hold holds fills recreate reproduces redo
    greetings hiya yo ah oh um uh hmm
    new fresh whole entire main single other another given reference input output resulting result version final
    actual specific particular shown wise ish re gen pic pics scheme respective respectively
    """.split()
)
