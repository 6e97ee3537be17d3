"""Editing data (paper section 2, stage 3): target -> keyword -> extracted reference; an editing model makes the source.

For every item (a real image, or a prompt drawn by text-to-image through the Session): keywords are given or
proposed by a VLM; the extraction model pulls each keyword into a reference; an instruction-editing model changes
the keyword's content in the target, which gives the source; the instruction comes from a template (or the VLM).
The row teaches the edit back: ``{"task": "edit", "images": [source, reference], "instruction", "target"}`` (the
image to edit first, the trainer's manifest format). Pairs are filtered
(:class:`~dreamomni2.synth.filters.QualityFilter`: source vs target near-identical or unrelated, a reference that
copies the target; the VLM asked whether the reference shows the keyword and whether the source changed it). The
stage machinery (resume, shards, report) is :mod:`dreamomni2.synth.orchestrate`.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dreamomni2.synth.filters import REASON_IDENTICAL, QualityFilter
from dreamomni2.synth.orchestrate import ItemResult, StageReport, item_folder, run_stage

logger = logging.getLogger(__name__)

__all__ = [
    "ABSTRACT_WORDS", "EDIT_TEMPLATES", "REF_QUESTION", "SOURCE_QUESTION", "EditDataParts", "choose_keywords",
    "edit_data", "edit_template", "is_abstract", "item_keywords", "item_target", "parse_keywords", "planner_proposer",
    "save_target", "session_editor", "session_extractor", "start_item",
]  # fmt: skip

#: The VLM questions of the filters (``{keyword}`` filled in); :class:`~dreamomni2.synth.mini.MiniVLM` answers them.
REF_QUESTION = "Does image 2 show the {keyword} of image 1?"
SOURCE_QUESTION = "Does image 1 differ from image 2 in its {keyword}?"
#: Keywords read as attributes (abstract); anything else is an object (concrete).
ABSTRACT_WORDS = frozenset(
    "colour color hue pattern texture material style shape size background lighting light pose expression "
    "hairstyle makeup fabric surface tone mood".split()
)
#: Instruction templates by category (``{keyword}``).
EDIT_TEMPLATES = {
    "concrete": "Replace the {keyword} in image 1 with the {keyword} from image 2.",
    "abstract": "Make the {keyword} of image 1 like the {keyword} of image 2.",
}

#: ``extractor(image, keyword, seed) -> reference``.
Extractor = Callable[[Image.Image, str, int], Image.Image]
#: ``editor(target, keyword, seed) -> (source, info)``.
Editor = Callable[[Image.Image, str, int], tuple[Image.Image, dict]]


def is_abstract(keyword: str) -> bool:
    """Whether a keyword names an attribute (its last word is in :data:`ABSTRACT_WORDS`)."""
    words = keyword.lower().split()
    return bool(words) and words[-1] in ABSTRACT_WORDS


def edit_template(keyword: str) -> str:
    """The template instruction that gives image 1 the keyword's content of image 2."""
    return EDIT_TEMPLATES["abstract" if is_abstract(keyword) else "concrete"].format(keyword=keyword)


def session_extractor(session: Any, steps: int | None = None, task: str = "generate") -> Extractor:
    """An :data:`Extractor` through :func:`dreamomni2.synth.extract.extract` on ``session``."""
    from dreamomni2.synth.extract import extract

    def run(image: Image.Image, keyword: str, seed: int) -> Image.Image:
        return extract(session, [image], [keyword], seed=seed, steps=steps, task=task)[0][0]

    return run


def session_editor(
    session: Any, template: str = "Change the {keyword} in image 1 to a different one.", steps: int | None = None
) -> Editor:
    """An :data:`Editor`: the instruction-editing model behind ``session`` asked ``template`` (no planner)."""
    from dreamomni2.request import Request

    def run(target: Image.Image, keyword: str, seed: int) -> tuple[Image.Image, dict]:
        prompt = template.format(keyword=keyword)
        req = Request("edit", [target], instruction=prompt, plan=False, seed=seed, steps=steps, size=target.size)
        return session.run(req).image, {"editor_prompt": prompt}

    return run


#: What a VLM proposing keywords is asked (its reply: keywords separated by commas).
PROPOSE_QUESTION = (
    "List the main objects and visual attributes (colour, pattern, texture, style, material, ...) of image 1 that "
    "could be taken into another image, as short keywords separated by commas."
)


def parse_keywords(reply: str, limit: int = 8) -> list[str]:
    """The keywords of a VLM reply (comma, semicolon or newline separated; bullets, numbering, quotes stripped;
    duplicates and overlong entries dropped), at most ``limit``."""
    out: list[str] = []
    for part in re.split(r"[,;\n]", reply or ""):
        word = re.sub(r"^[\s\-*\d.)]+", "", part).strip(" \t\"'`.").lower()
        if word and len(word) <= 60 and word not in out:
            out.append(word)
    return out[:limit]


def planner_proposer(planner: Any) -> Callable[[Image.Image], list[str]]:
    """A keyword proposer that asks a planner backend (a VLM) :data:`PROPOSE_QUESTION` about the image."""

    def propose(image: Image.Image) -> list[str]:
        return parse_keywords(planner.generate_reply([image], PROPOSE_QUESTION, "generate"))

    return propose


def choose_keywords(keywords: Sequence[str], rng: random.Random, k: int = 1) -> list[str]:
    """``k`` of the keywords (all when fewer), drawn with ``rng``."""
    return rng.sample(list(keywords), min(k, len(keywords)))


@dataclass
class EditDataParts:
    """The models and rules of the editing-data stage.

    Attributes:
        extractor: the extraction model (:func:`session_extractor`).
        editor: the instruction-editing model (:func:`session_editor`; the mini world's
            :class:`~dreamomni2.synth.mini.MiniEditor`).
        instruction: ``instruction(keyword) -> text`` (default :func:`edit_template`).
        keywords: keywords for items that name none; empty: ask ``proposer``.
        proposer: ``proposer(target) -> keywords`` (a VLM; the mini world's ``MiniVLM().keywords``).
        chooser: ``chooser(keywords, rng) -> the item's keywords`` (default: one of them).
        target_session: the text-to-image Session for items with a ``prompt`` instead of an ``image``.
        size, steps: text-to-image output size and steps.
        filt: the quality filter.
        seed: item ``i`` uses seed ``seed + i`` (its extraction and edit seeds follow from it).
        model: what to record as the models (names, folders), stored with every item.
    """

    extractor: Extractor
    editor: Editor
    instruction: Callable[[str], str] = edit_template
    keywords: Sequence[str] = ()
    proposer: Callable[[Image.Image], list[str]] | None = None
    chooser: Callable[[Sequence[str], random.Random], list[str]] = choose_keywords
    target_session: Any = None
    size: tuple[int, int] | None = None
    steps: int | None = None
    filt: QualityFilter = field(default_factory=QualityFilter)
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The settings recorded in the stage report (and compared on resume)."""
        f = self.filt
        return {"seed": self.seed, "size": self.size, "steps": self.steps, "model": self.model,
                "keywords": list(self.keywords), "identical": f.identical, "unrelated": f.unrelated,
                "vlm": f.verifier is not None}  # fmt: skip


def item_target(item: dict, session: Any, seed: int, size: tuple[int, int] | None, steps: int | None) -> Image.Image:
    """The item's image (``image``: a path, loaded safely) or a text-to-image draw of its ``prompt``.

    Raises:
        ValueError: an item with neither (or an unreadable image), naming the item.
    """
    from dreamomni2.images import load_image
    from dreamomni2.request import Request

    if item.get("image"):
        return load_image(item["image"])
    if isinstance(item.get("prompt"), str) and item["prompt"].strip():
        if session is None:
            raise ValueError(f"item {item['id']!r}: a prompt item needs a text-to-image session")
        req = Request("generate", [], instruction=item["prompt"], plan=False, seed=seed, size=size, steps=steps)
        return session.run(req).image
    raise ValueError(f"item {item['id']!r}: needs an 'image' path or a 'prompt'")


def item_keywords(item: dict, parts: Any, target: Image.Image, rng: random.Random) -> list[str]:
    """The item's own ``keywords``, else the parts' keywords, else the proposer's; then the chooser's pick."""
    from dreamomni2.synth.extract import check_keyword

    given = item.get("keywords") or list(parts.keywords)
    if isinstance(given, str):
        given = [given]
    if not given and parts.proposer is not None:
        given = parts.proposer(target)
    return [check_keyword(k) for k in parts.chooser(list(given), rng)] if given else []


def _candidate(parts: EditDataParts, target: Image.Image, kw: str, seed: int) -> tuple[Any, dict]:
    """One keyword's (reference, source) or a rejection reason, and what made it."""
    ref = parts.extractor(target, kw, seed)
    source, einfo = parts.editor(target, kw, seed + 1)
    reason, sim = parts.filt.pair(source, target)
    if reason is None and parts.filt.pair(ref, target)[0] == REASON_IDENTICAL:
        reason = REASON_IDENTICAL  # a reference that is a copy of the target teaches copying
    reason = (reason or parts.filt.ask([target, ref], REF_QUESTION.format(keyword=kw), kw)
              or parts.filt.ask([source, target], SOURCE_QUESTION.format(keyword=kw), kw))  # fmt: skip
    info = {"keyword": kw, "seed": seed, "similarity": round(sim, 5), **einfo, "reason": reason}
    return (reason if reason else (ref, source)), info


def start_item(parts: Any, item: dict, index: int) -> tuple[int, Image.Image, list[str], dict[str, Any]]:
    """What both data stages do first for item ``index``: ``(seed, target, keywords, info)``.

    The seed is ``parts.seed + index``; the target comes from :func:`item_target`, the keywords from
    :func:`item_keywords` (drawn with ``random.Random(seed)``); ``info`` starts the item's record.
    """
    seed = parts.seed + index
    target = item_target(item, parts.target_session, seed, parts.size, parts.steps)
    keywords = item_keywords(item, parts, target, random.Random(seed))
    return seed, target, keywords, {"seed": seed, "model": parts.model, "keywords": keywords}


def save_target(out: Path, index: int, item_id: str, target: Image.Image) -> tuple[Path, str]:
    """Save the item's ``target.png`` in its :func:`item_folder`; returns the folder and its path under ``out``."""
    from dreamomni2.images import save_image

    folder = item_folder(out, index, item_id)
    save_image(target, folder / "target.png")
    return folder, folder.relative_to(out).as_posix()


def _edit_item(parts: EditDataParts, item: dict, index: int, out: Path) -> ItemResult:
    from dreamomni2.images import save_image

    seed, target, keywords, info = start_item(parts, item, index)
    info["candidates"] = []
    if not keywords:
        return ItemResult(rejections=["no-keyword"], info=info)
    folder, rel = save_target(out, index, item["id"], target)
    rows, rejections = [], []
    for k, kw in enumerate(keywords):
        got, cinfo = _candidate(parts, target, kw, seed * 16 + 2 * k)
        info["candidates"].append(cinfo)
        if isinstance(got, str):
            rejections.append(got)
            continue
        ref, source = got
        save_image(source, folder / f"source_{k}.png")
        save_image(ref, folder / f"reference_{k}.png")
        text = parts.instruction(kw)
        rows.append({"id": f"{item['id']}/{k}", "task": "edit", "images": [f"{rel}/source_{k}.png",
                     f"{rel}/reference_{k}.png"], "instruction": text, "target": f"{rel}/target.png",
                     "keyword": kw, "seed": seed})  # fmt: skip
    return ItemResult(rows=rows, rejections=rejections, info=info)


def edit_data(
    items: Sequence[dict],
    out_dir: str | Path,
    parts: EditDataParts,
    *,
    shard: Any = None,
    progress: bool = True,
    dataset: bool = False,
) -> StageReport | None:
    """Run the editing-data stage over ``items`` (see :func:`dreamomni2.synth.orchestrate.run_stage`).

    Args:
        items: dicts with an ``id`` and an ``image`` path or a ``prompt``, optionally ``keywords``.
        out_dir: the output folder (``manifest.jsonl``, ``report.json``, ``items/``).
        parts: the models and rules.
        shard, progress, dataset: as :func:`~dreamomni2.synth.orchestrate.run_stage`.

    Returns:
        The merged report, or ``None`` while other shards run.
    """
    process = functools.partial(_edit_item, parts)
    return run_stage("edit-data", items, process, out_dir, shard=shard, settings=parts.settings(), progress=progress,
                     dataset=dataset)  # fmt: skip
