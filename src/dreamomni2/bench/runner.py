"""Run a pipeline over mini-world cases and score every output with the mini analyzer.

Cases of the same task and image count are run together: their prompts go in as a list and their input images as
one batch of VAE latents per image slot (each image prepared and encoded on its own, exactly as a single call does),
with one ``torch.Generator`` per case seeded ``seed + case index``. A batch therefore gives the same images as one
call per case (up to float rounding). Objects without ``prepare_images``/``encode_images`` (test stubs) are called
one case at a time with PIL images.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

from dreamomni2.mini.analyzer import score, summarize
from dreamomni2.mini.world import SCENE_ATTRS, Case, render

logger = logging.getLogger(__name__)

__all__ = ["BenchResult", "CaseRecord", "run_mini_bench"]


@dataclass
class CaseRecord:
    """The outcome of one case.

    Attributes:
        id: the case's index in the list given to :func:`run_mini_bench`.
        task, category, kind: the case's group and kind.
        n_images: number of input images.
        success: every attribute of the output matches the target.
        correct: attribute name -> whether it matches the target.
        predicted: the attributes read from the output (``"unknown"`` when no object was found).
        target: the attributes the output should have.
        instruction: the case's instruction.
        prompt: the prompt given to the pipeline (the instruction, or the planner's rewrite).
        seed: the generator seed used for this case.
    """

    id: int
    task: str
    category: str
    kind: str
    n_images: int
    success: bool
    correct: dict[str, bool]
    predicted: dict[str, str]
    target: dict[str, str]
    instruction: str
    prompt: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)

    def score_dict(self) -> dict[str, Any]:
        """Return the record in :func:`dreamomni2.mini.analyzer.score` form (input to ``summarize``)."""
        return {
            "task": self.task,
            "category": self.category,
            "kind": self.kind,
            **self.correct,
            "success": self.success,
            "predicted": dict(self.predicted),
        }


@dataclass
class BenchResult:
    """Per-case records, their summary and the run's settings.

    Attributes:
        records: one :class:`CaseRecord` per case, in case order.
        summary: :func:`dreamomni2.mini.analyzer.summarize` of the records.
        config: the run's settings (steps, guidance, seed, size, ...), for the results file.
        images: the output images in case order when ``keep_images`` was set, else empty.
    """

    records: list[CaseRecord]
    summary: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    images: list[Image.Image] = field(default_factory=list)


def _plan_prompts(cases: Sequence[Case], inputs: Sequence[list[Image.Image]], planner: Any) -> list[str]:
    """Return the prompt of every case: the instruction, or the planner's prompt."""
    if planner is None:
        return [case.instruction for case in cases]
    pairs = zip(cases, inputs, strict=True)
    return [planner.plan(images, case.instruction, case.task).prompt for case, images in pairs]


def _batches(cases: Sequence[Case], batch_size: int) -> list[list[int]]:
    """Group case indices by (task, image count), keeping order, and cut the groups into batches."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, case in enumerate(cases):
        groups.setdefault((case.task, len(case.images)), []).append(i)
    return [idx[s : s + batch_size] for idx in groups.values() for s in range(0, len(idx), batch_size)]


def _can_batch(pipe: Any) -> bool:
    """Whether the pipeline exposes the stages a latent batch needs."""
    return all(hasattr(pipe, name) for name in ("prepare_images", "encode_images", "_execution_device"))


def _encode_batch(pipe: Any, inputs: Sequence[list[Image.Image]]) -> list[Any]:
    """Prepare and VAE-encode every image on its own, then stack each image slot into one ``[B, C, h, w]`` latent."""
    import torch

    device, dtype = pipe._execution_device, pipe.vae.dtype
    slots = []
    for j in range(len(inputs[0])):
        prepared = pipe.prepare_images([images[j] for images in inputs], auto_resize=False)
        slots.append(torch.cat(pipe.encode_images(prepared, device, dtype), dim=0))
    return slots


def _generate(
    pipe: Any,
    cases: Sequence[Case],
    inputs: Sequence[list[Image.Image]],
    prompts: Sequence[str],
    seeds: Sequence[int],
    kwargs: dict[str, Any],
    batched: bool,
) -> list[Image.Image]:
    """Run one batch of cases that share task and image count; returns one PIL image per case."""
    import torch

    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    task = cases[0].task
    if not batched:
        out = []
        for images, prompt, gen in zip(inputs, prompts, generators, strict=True):
            result = pipe(images=list(images), prompt=prompt, task=task, generator=gen, **kwargs)
            out.append(result.images[0])
        return out
    latents = _encode_batch(pipe, inputs)
    result = pipe(images=latents, prompt=list(prompts), task=task, generator=generators, **kwargs)
    if len(result.images) != len(cases):
        raise RuntimeError(f"pipeline returned {len(result.images)} images for a batch of {len(cases)}")
    return list(result.images)


def run_mini_bench(
    pipe: Any,
    cases: Sequence[Case],
    planner: Any = None,
    steps: int = 20,
    guidance: float = 3.5,
    seed: int = 0,
    size: int = 32,
    batch_size: int = 8,
    id_policy: str | None = None,
    progress: bool = True,
    keep_images: bool = False,
) -> BenchResult:
    """Run a pipeline over mini-world cases and score each output against the case's target.

    Every case's scenes are rendered at ``size`` px, its prompt planned (``case.instruction`` without a planner,
    else ``planner.plan(images, case.instruction, case.task).prompt``), the pipeline called with
    ``_auto_resize=False``, ``max_area=size*size`` and ``width=height=size``, and the output judged with
    :func:`dreamomni2.mini.analyzer.score`.

    Args:
        pipe: a :class:`~dreamomni2.pipeline.DreamOmni2Pipeline` (or any callable with its call signature that
            returns an object with ``.images``; those without ``prepare_images``/``encode_images`` run unbatched).
        cases: the cases (e.g. :func:`dreamomni2.bench.suites.mini_suite`).
        planner: ``None`` or a :class:`~dreamomni2.planner.base.Planner`.
        steps: denoising steps.
        guidance: distilled guidance scale.
        seed: case ``i`` uses a CPU ``torch.Generator`` seeded ``seed + i`` (results do not depend on batching).
        size: image side in pixels (a multiple of the pipeline's 16-px patch; 32 for the mini world).
        batch_size: most cases per pipeline call (cases of one task and image count are batched together).
        id_policy: reference id policy for the pipeline; ``None`` keeps the pipeline's default.
        progress: show a tqdm progress bar over cases.
        keep_images: also return the output images (in case order).

    Returns:
        A :class:`BenchResult` with one record per case (in case order) and their summary.

    Raises:
        ValueError: on an empty case list or a bad ``batch_size``, ``steps`` or ``size``.
    """
    from tqdm.auto import tqdm

    if not cases:
        raise ValueError("no cases to run")
    if batch_size < 1 or steps < 1 or size < 16:
        raise ValueError(f"need batch_size >= 1, steps >= 1 and size >= 16; got {batch_size}, {steps}, {size}")
    kwargs: dict[str, Any] = {
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "width": size,
        "height": size,
        "max_area": size * size,
        "_auto_resize": False,
        "output_type": "pil",
    }
    if id_policy is not None:
        kwargs["id_policy"] = id_policy
    batched = batch_size > 1 and _can_batch(pipe)
    if batch_size > 1 and not batched:
        logger.info("pipeline %s has no latent stages; running one case per call", type(pipe).__name__)

    records: list[CaseRecord | None] = [None] * len(cases)
    images_out: list[Image.Image | None] = [None] * len(cases)
    start = time.perf_counter()
    with tqdm(total=len(cases), desc="mini bench", unit="case", disable=not progress) as bar:
        for idx in _batches(cases, batch_size):
            batch = [cases[i] for i in idx]
            inputs = [[render(scene, size) for scene in case.images] for case in batch]
            prompts = _plan_prompts(batch, inputs, planner)
            seeds = [seed + i for i in idx]
            outputs = _generate(pipe, batch, inputs, prompts, seeds, kwargs, batched)
            for i, case, prompt, s, image in zip(idx, batch, prompts, seeds, outputs, strict=True):
                r = score(case, image)
                records[i] = CaseRecord(
                    id=i,
                    task=case.task,
                    category=case.category,
                    kind=case.kind,
                    n_images=len(case.images),
                    success=bool(r["success"]),
                    correct={a: bool(r[a]) for a in SCENE_ATTRS},
                    predicted=dict(r["predicted"]),
                    target=case.target.to_dict(),
                    instruction=case.instruction,
                    prompt=prompt,
                    seed=s,
                )
                if keep_images:
                    images_out[i] = image
            bar.update(len(idx))
    done: list[CaseRecord] = [r for r in records if r is not None]
    summary = summarize(r.score_dict() for r in done)
    elapsed = time.perf_counter() - start
    logger.info("mini bench: %d cases, success %.3f, %.1fs", len(done), summary["success"], elapsed)
    config = {
        "n": len(cases),
        "steps": steps,
        "guidance": guidance,
        "seed": seed,
        "size": size,
        "batch_size": batch_size,
        "id_policy": id_policy,
        "planner": None if planner is None else getattr(planner, "backend", type(planner).__name__),
        "seconds": round(elapsed, 3),
    }
    kept = [im for im in images_out if im is not None] if keep_images else []
    return BenchResult(records=done, summary=summary, config=config, images=kept)
