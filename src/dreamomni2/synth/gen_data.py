"""Generation data (paper section 2, stage 4): extraction over the sources -> (references, instruction, target) rows.

For every item (an image, or a prompt drawn by text-to-image): its keywords (given, or proposed by a VLM) are each
extracted into a reference by the extraction model; the row asks to generate the item's image from those references:
``{"task": "generate", "images": [ref 1, ..., ref k], "instruction", "target": the image}``. A reference that
is a copy of the target (near-identical) or that the VLM says does not show its keyword is rejected.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dreamomni2.synth.edit_data import REF_QUESTION, Extractor, choose_keywords, save_target, start_item
from dreamomni2.synth.filters import REASON_IDENTICAL, QualityFilter
from dreamomni2.synth.orchestrate import ItemResult, StageReport, run_stage

logger = logging.getLogger(__name__)

__all__ = ["GenDataParts", "gen_data", "gen_template"]


def gen_template(keywords: Sequence[str], target: Image.Image | None = None) -> str:
    """``"Generate an image with the bag of image 1 and the pattern of image 2."``"""
    clauses = [f"the {kw} of image {i + 1}" for i, kw in enumerate(keywords)]
    joined = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return f"Generate an image with {joined}."


def _choose_two(keywords: Sequence[str], rng: random.Random) -> list[str]:
    return choose_keywords(keywords, rng, 2)


@dataclass
class GenDataParts:
    """The models and rules of the generation-data stage (see :class:`~dreamomni2.synth.edit_data.EditDataParts`).

    Attributes:
        extractor: the extraction model.
        instruction: ``instruction(keywords, target) -> text`` (default :func:`gen_template`).
        keywords, proposer, chooser: as for editing data (default chooser: two keywords).
        target_session, size, steps: text-to-image for prompt items.
        filt: the quality filter (references near-identical to the target are copies; the VLM check).
        seed, model: as for editing data.
    """

    extractor: Extractor
    instruction: Callable[[Sequence[str], Image.Image], str] = gen_template
    keywords: Sequence[str] = ()
    proposer: Callable[[Image.Image], list[str]] | None = None
    chooser: Callable[[Sequence[str], random.Random], list[str]] = _choose_two
    target_session: Any = None
    size: tuple[int, int] | None = None
    steps: int | None = None
    filt: QualityFilter = field(default_factory=QualityFilter)
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The settings recorded in the stage report (and compared on resume)."""
        return {"seed": self.seed, "size": self.size, "steps": self.steps, "model": self.model,
                "keywords": list(self.keywords), "identical": self.filt.identical,
                "vlm": self.filt.verifier is not None}  # fmt: skip


def _references(parts: GenDataParts, target: Image.Image, keywords: list[str], seed: int) -> tuple[Any, list]:
    """The extracted references, or the first rejection reason; with what made each."""
    refs, infos = [], []
    for k, kw in enumerate(keywords):
        ref = parts.extractor(target, kw, seed * 16 + k)
        reason, sim = parts.filt.pair(ref, target)
        reason = reason if reason == REASON_IDENTICAL else None  # a reference may well look unlike the target
        reason = reason or parts.filt.ask([target, ref], REF_QUESTION.format(keyword=kw), kw)
        infos.append({"keyword": kw, "seed": seed * 16 + k, "similarity": round(sim, 5), "reason": reason})
        if reason:
            return reason, infos
        refs.append(ref)
    return refs, infos


def _gen_item(parts: GenDataParts, item: dict, index: int, out: Path) -> ItemResult:
    from dreamomni2.images import save_image

    seed, target, keywords, info = start_item(parts, item, index)
    if not keywords:
        return ItemResult(rejections=["no-keyword"], info=info)
    refs, info["references"] = _references(parts, target, keywords, seed)
    if isinstance(refs, str):
        return ItemResult(rejections=[refs], info=info)
    folder, rel = save_target(out, index, item["id"], target)
    for k, ref in enumerate(refs):
        save_image(ref, folder / f"reference_{k}.png")
    row = {"id": item["id"], "task": "generate", "images": [f"{rel}/reference_{k}.png" for k in range(len(refs))],
           "instruction": parts.instruction(keywords, target), "target": f"{rel}/target.png",
           "keywords": keywords, "seed": seed}  # fmt: skip
    return ItemResult(rows=[row], info=info)


def gen_data(
    items: Sequence[dict],
    out_dir: str | Path,
    parts: GenDataParts,
    *,
    shard: Any = None,
    progress: bool = True,
    dataset: bool = False,
) -> StageReport | None:
    """Run the generation-data stage over ``items`` (see :func:`dreamomni2.synth.orchestrate.run_stage`).

    Args:
        items: dicts with an ``id`` and an ``image`` path or a ``prompt``, optionally ``keywords``.
        out_dir: the output folder.
        parts: the models and rules.
        shard, progress, dataset: as :func:`~dreamomni2.synth.orchestrate.run_stage`.

    Returns:
        The merged report, or ``None`` while other shards run.
    """
    process = functools.partial(_gen_item, parts)
    return run_stage("gen-data", items, process, out_dir, shard=shard, settings=parts.settings(), progress=progress,
                     dataset=dataset)  # fmt: skip
