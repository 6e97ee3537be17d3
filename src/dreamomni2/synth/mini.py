"""The synthesis stages on the mini world: ground-truth extraction pairs, the analyzer as the VLM, the mini editor.

At full scale the extraction model learns from feature-mixed pairs (``synth pairs``); the mini world can render
the ground truth directly: a scene and the same object (or attribute) in a canonical scene. What "extracting" means
here, like the paper's extracted references on a clean background:

* ``object`` -> the same object (shape, colour, pattern, size) on the ``light`` background;
* an attribute (``shape``, ``colour``, ``pattern``, ``size``, ``background``) -> the :data:`CARRIER` scene (a large
  solid blue square on ``light``) with that one attribute taken from the image.

:class:`MiniVLM` answers the stages' questions with the analyzer (the mini counterpart of a VLM, as the analyzer is
of the bench's VLM judge); :class:`MiniEditor` is the instruction-editing model: it changes a keyword's content
with the mini model itself (an edit with a rendered reference holding the new value, since the mini model edits
from references, not from words alone).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import Image

from dreamomni2.mini.scene import OBJ_ATTRS, VOCAB, Obj, Scene, render
from dreamomni2.mini.text import ATTR_WORD, canonical_prompt

__all__ = [
    "CARRIER", "EDIT_KEYWORDS", "EXTRACT_KEYWORDS", "GEN_ATTRIBUTE_KEYWORDS", "MiniEditor", "MiniVLM",
    "edit_chooser", "edit_instruction", "extraction_pairs", "extraction_target", "gen_chooser", "gen_instruction",
    "keyword_attr", "random_scenes", "score_extraction", "write_extraction_pairs",
]  # fmt: skip

#: The canonical scene an extracted attribute is drawn on.
CARRIER = Scene(Obj("square", "blue", "solid", "large"), "light")
#: What the mini extraction model extracts (the words of the instruction).
EXTRACT_KEYWORDS: tuple[str, ...] = ("object", "shape", "colour", "pattern", "size", "background")
#: What the mini editor can change (the mini model's edit kinds: no shape edit).
EDIT_KEYWORDS: tuple[str, ...] = ("object", "colour", "pattern", "size", "background")
#: The attributes a generation row may take from references (the compose kind's).
GEN_ATTRIBUTE_KEYWORDS: tuple[str, ...] = ("shape", "colour", "pattern", "size")
_WORD_ATTR = {**{w: a for a, w in ATTR_WORD.items()}, "color": "color", "object": "object"}


def keyword_attr(keyword: str) -> str:
    """``object`` or the scene attribute a keyword names (``colour``/``color`` -> ``color``).

    Raises:
        ValueError: a keyword the mini world does not know.
    """
    attr = _WORD_ATTR.get(str(keyword).strip().lower())
    if attr is None:
        raise ValueError(f"unknown mini-world keyword {keyword!r}; expected one of {', '.join(EXTRACT_KEYWORDS)}")
    return attr


def extraction_target(scene: Scene, keyword: str) -> Scene:
    """The ground-truth reference extracted from ``scene`` for ``keyword`` (see the module docstring)."""
    attr = keyword_attr(keyword)
    if attr == "object":
        return Scene(scene.obj, CARRIER.background)
    return CARRIER.replace(**{attr: scene.attr(attr)})


def random_scenes(seed: int, n: int) -> list[Scene]:
    """``n`` random scenes (every attribute uniform), deterministic in ``seed``."""
    rng = random.Random(seed)
    return [Scene(Obj(*(rng.choice(VOCAB[a]) for a in OBJ_ATTRS)), rng.choice(VOCAB["background"])) for _ in range(n)]


def extraction_pairs(n: int, seed: int = 0, keywords: Sequence[str] = EXTRACT_KEYWORDS) -> list[tuple]:
    """``n`` ground-truth pairs ``(source scene, keyword, extracted scene)``, keywords in turn."""
    for k in keywords:
        keyword_attr(k)
    return [(s, keywords[i % len(keywords)], extraction_target(s, keywords[i % len(keywords)]))
            for i, s in enumerate(random_scenes(seed, n))]  # fmt: skip


def write_extraction_pairs(
    folder: str | Path, n: int, seed: int = 0, keywords: Sequence[str] = EXTRACT_KEYWORDS, size: int = 32
) -> Path:
    """Render :func:`extraction_pairs` as a trainer manifest (generate rows: image 1 -> extracted reference).

    Returns:
        The ``manifest.jsonl`` path.
    """
    from dreamomni2.images import save_image
    from dreamomni2.io import atomic_write_text
    from dreamomni2.synth.extract import extraction_prompt

    folder = Path(folder)
    rows = []
    for i, (src, kw, tgt) in enumerate(extraction_pairs(n, seed, keywords)):
        save_image(render(src, size), folder / "images" / f"{i:06d}.png")
        save_image(render(tgt, size), folder / "targets" / f"{i:06d}.png")
        prompt = extraction_prompt(kw)
        rows.append({"id": i, "task": "generate", "images": [f"images/{i:06d}.png"], "instruction": prompt,
                     "prompt": prompt, "target": f"targets/{i:06d}.png", "keyword": kw,
                     "source_attributes": src.to_dict(), "target_attributes": tgt.to_dict()})  # fmt: skip
    return atomic_write_text(folder / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def score_extraction(image: Image.Image, source: Scene, keyword: str) -> dict[str, bool]:
    """``keyword``: the image carries the source's keyword (all four object attributes for ``object``);
    ``exact``: it is the whole ground-truth extraction (the attribute isolated on the carrier)."""
    from dreamomni2.mini.analyzer import analyze

    seen, want, attr = analyze(image), extraction_target(source, keyword), keyword_attr(keyword)
    attrs = OBJ_ATTRS if attr == "object" else (attr,)
    return {"keyword": all(seen.attr(a) == source.attr(a) for a in attrs), "exact": seen == want}


def edit_instruction(keyword: str) -> str:
    """The mini model's canonical edit prompt that gives image 1 the keyword's content of image 2."""
    attr = keyword_attr(keyword)
    kind = "replace" if attr == "object" else attr
    if kind == "shape":
        raise ValueError("the mini world has no shape edit; use one of " + ", ".join(EDIT_KEYWORDS))
    return canonical_prompt(SimpleNamespace(kind=kind, refs={attr: 2}, target=None))


def gen_instruction(keywords: Sequence[str], target: Scene) -> str:
    """The canonical generation prompt: ``object`` alone (place) or 1-3 object attributes (compose), image k
    holding keyword k; the rest of ``target`` is named in words."""
    attrs = [keyword_attr(k) for k in keywords]
    if attrs == ["object"]:
        return canonical_prompt(SimpleNamespace(kind="place", refs={"object": 1}, target=target))
    if not attrs or "object" in attrs or "background" in attrs or len(set(attrs)) != len(attrs):
        raise ValueError(f"mini generation keywords: 'object' alone or distinct object attributes, got {keywords}")
    return canonical_prompt(
        SimpleNamespace(kind="compose", refs={a: i + 1 for i, a in enumerate(attrs)}, target=target)
    )


_REF_Q = re.compile(r"^Does image 2 show the (.+) of image 1\?", re.IGNORECASE)
_SRC_Q = re.compile(r"^Does image 1 differ from image 2 in its (.+)\?", re.IGNORECASE)


class MiniVLM:
    """The analyzer as the stages' VLM: proposes keywords, describes an image, answers the stages' two questions
    (:data:`dreamomni2.synth.edit_data.REF_QUESTION`, :data:`~dreamomni2.synth.edit_data.SOURCE_QUESTION`)."""

    def describe(self, image: Image.Image) -> Scene:
        """The scene the analyzer reads from ``image``."""
        from dreamomni2.mini.analyzer import analyze

        return analyze(image)

    def keywords(self, image: Image.Image) -> list[str]:
        """Every keyword the image shows (an image without a readable object shows only its background)."""
        scene = self.describe(image)
        if any(scene.attr(a) == "unknown" for a in OBJ_ATTRS):
            return ["background"]
        return list(EXTRACT_KEYWORDS)

    def __call__(self, images: Sequence[Image.Image], question: str, keyword: str) -> bool:
        """Answer a yes/no question about two images (the :data:`~dreamomni2.synth.filters.Verifier` signature)."""
        attr = keyword_attr(keyword)
        attrs = OBJ_ATTRS if attr == "object" else (attr,)
        a, b = (self.describe(im) for im in images[:2])
        if _REF_Q.match(question):
            return all(a.attr(x) == b.attr(x) for x in attrs)
        if _SRC_Q.match(question):
            return any(a.attr(x) != b.attr(x) for x in attrs)
        raise ValueError(f"MiniVLM cannot answer {question!r}")


class MiniEditor:
    """Changes a keyword's content of an image with the mini model (an edit with a rendered new-value reference).

    Args:
        session: a Session on the mini model (the editing model).
        steps: denoising steps (``None``: the model's).
    """

    def __init__(self, session: Any, steps: int | None = None):
        self.session, self.steps = session, steps
        self.vlm = MiniVLM()

    def helper_scene(self, scene: Scene, keyword: str, rng: random.Random) -> Scene:
        """A scene holding a new value of the keyword (a new object differing in two attributes for ``object``)."""
        attr = keyword_attr(keyword)
        if attr == "object":
            changed = rng.sample(OBJ_ATTRS, 2)
            values = {a: rng.choice([v for v in VOCAB[a] if a not in changed or v != scene.attr(a)]) for a in OBJ_ATTRS}
            return Scene(Obj(**values), rng.choice(VOCAB["background"]))
        helper = random_scenes(rng.randrange(2**31), 1)[0]
        return helper.replace(**{attr: rng.choice([v for v in VOCAB[attr] if v != scene.attr(attr)])})

    def __call__(self, target: Image.Image, keyword: str, seed: int) -> tuple[Image.Image, dict]:
        """``(source, info)``: ``target`` with the keyword's content changed; info names the helper and prompt."""
        from dreamomni2.request import Request

        prompt = edit_instruction(keyword)
        helper = self.helper_scene(self.vlm.describe(target), keyword, random.Random(seed))
        req = Request("edit", [target, render(helper, target.size[0])], instruction=prompt, plan=False, seed=seed,
                      steps=self.steps, size=target.size)  # fmt: skip
        return self.session.run(req).image, {"editor_prompt": prompt, "helper": helper.to_dict()}


def edit_chooser(keywords: Sequence[str], rng: random.Random) -> list[str]:
    """One keyword the mini editor can change (``[]`` when none is)."""
    usable = [k for k in keywords if k in EDIT_KEYWORDS]
    return [rng.choice(usable)] if usable else []


def gen_chooser(keywords: Sequence[str], rng: random.Random) -> list[str]:
    """``object`` alone (a third of the items, when proposed), else 1-3 distinct object attributes."""
    attrs = [k for k in keywords if k in GEN_ATTRIBUTE_KEYWORDS]
    if "object" in keywords and (not attrs or rng.random() < 1 / 3):
        return ["object"]
    return rng.sample(attrs, rng.randint(1, min(3, len(attrs)))) if attrs else []
