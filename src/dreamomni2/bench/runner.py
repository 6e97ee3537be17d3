"""Run mini-world cases through a :class:`~dreamomni2.session.Session` and score every output with the analyzer.

Each case becomes a :class:`~dreamomni2.request.Request` (seed ``seed + case index``); cases of the same task and
image count go to :meth:`Session.run_batch <dreamomni2.session.Session.run_batch>` together, which runs them as one
pipeline call (one latent batch per image slot, one generator per case), so a batch gives the images of one call
per case (up to float rounding). Objects without ``prepare_images``/``encode_images`` (test stubs) are called one
case at a time with PIL images.
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


def _batches(cases: Sequence[Case], batch_size: int) -> list[list[int]]:
    """Group case indices by (task, image count), keeping order, and cut the groups into batches."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, case in enumerate(cases):
        groups.setdefault((case.task, len(case.images)), []).append(i)
    return [idx[s : s + batch_size] for idx in groups.values() for s in range(0, len(idx), batch_size)]


def _session(pipe: Any, planner: Any) -> Any:
    """The Session to run on: ``pipe`` itself, or a Session wrapping a pipeline; ``planner`` overrides its planner."""
    from dreamomni2.session import Session

    if isinstance(pipe, Session):
        return pipe if planner is None else pipe.with_planner(planner)
    return Session.from_pipeline(pipe, planner="none" if planner is None else planner)


def _record(i: int, case: Case, prompt: str, seed: int, image: Image.Image) -> CaseRecord:
    r = score(case, image)
    return CaseRecord(
        id=i, task=case.task, category=case.category, kind=case.kind, n_images=len(case.images),
        success=bool(r["success"]), correct={a: bool(r[a]) for a in SCENE_ATTRS}, predicted=dict(r["predicted"]),
        target=case.target.to_dict(), instruction=case.instruction, prompt=prompt, seed=seed,
    )  # fmt: skip


def _requests(batch: Sequence[Case], idx: Sequence[int], settings: dict[str, Any]) -> list[Any]:
    from dreamomni2.request import Request

    size = settings["size"]
    return [
        Request(
            case.task,
            [render(scene, size) for scene in case.images],
            case.instruction,
            seed=settings["seed"] + i,
            steps=settings["steps"],
            guidance=settings["guidance"],
            size=(size, size),
            max_area=size * size,
            auto_resize=False,
            id_policy=settings["id_policy"] or "dreamomni2",
        )  # fmt: skip
        for i, case in zip(idx, batch, strict=True)
    ]


def _config(cases: Sequence[Case], settings: dict[str, Any], batch_size: int, planner: Any, elapsed: float) -> dict:
    return {"n": len(cases), **{k: settings[k] for k in ("steps", "guidance", "seed", "size")},
            "batch_size": batch_size, "id_policy": settings["id_policy"],
            "planner": None if planner is None else getattr(planner, "backend", type(planner).__name__),
            "seconds": round(elapsed, 3)}  # fmt: skip


def _check_run(cases: Sequence[Case], batch_size: int, steps: int, size: int) -> None:
    if not cases:
        raise ValueError("no cases to run")
    if batch_size < 1 or steps < 1 or size < 16:
        raise ValueError(f"need batch_size >= 1, steps >= 1 and size >= 16; got {batch_size}, {steps}, {size}")


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
    """Run mini-world cases through a Session and score each output against the case's target.

    Every case's scenes are rendered at ``size`` px, its prompt planned (the instruction without a planner), the
    image drawn at ``size`` x ``size`` with ``auto_resize=False`` and ``max_area=size*size``, and judged with
    :func:`dreamomni2.mini.analyzer.score`.

    Args:
        pipe: a :class:`~dreamomni2.session.Session` (its planner plans unless ``planner`` is given), or a
            :class:`~dreamomni2.pipeline.DreamOmni2Pipeline` (or any callable with its call signature), wrapped in one.
        cases: the cases (e.g. :func:`dreamomni2.bench.suites.mini_suite`).
        planner: ``None`` (the Session's planner; none for a bare pipeline) or a planner / planner spec.
        steps, guidance, id_policy: denoising steps, distilled guidance, reference ids (``None``: ``dreamomni2``).
        seed: case ``i`` uses a CPU ``torch.Generator`` seeded ``seed + i`` (results do not depend on batching).
        size: image side in pixels (a multiple of the 16-px patch; 32 for the mini world).
        batch_size: most cases per pipeline call (cases of one task and image count are batched together).
        progress, keep_images: a tqdm bar over cases; also return the output images (in case order).

    Returns:
        A :class:`BenchResult` with one record per case (in case order) and their summary.

    Raises:
        ValueError: on an empty case list or a bad ``batch_size``, ``steps`` or ``size``.
    """
    from tqdm.auto import tqdm

    _check_run(cases, batch_size, steps, size)
    session = _session(pipe, planner)
    settings = {"steps": steps, "guidance": guidance, "seed": seed, "size": size, "id_policy": id_policy}
    records: list[CaseRecord | None] = [None] * len(cases)
    images_out: list[Image.Image | None] = [None] * len(cases)
    start = time.perf_counter()
    with tqdm(total=len(cases), desc="mini bench", unit="case", disable=not progress) as bar:
        for idx in _batches(cases, batch_size):
            batch = [cases[i] for i in idx]
            results = session.run_batch(_requests(batch, idx, settings))
            for i, case, res in zip(idx, batch, results, strict=True):
                records[i] = _record(i, case, res.prompt, res.seed, res.image)
                images_out[i] = res.image if keep_images else None
            bar.update(len(idx))
    done: list[CaseRecord] = [r for r in records if r is not None]
    summary = summarize(r.score_dict() for r in done)
    elapsed = time.perf_counter() - start
    logger.info("mini bench: %d cases, success %.3f, %.1fs", len(done), summary["success"], elapsed)
    planner_used = _planner_of(session)
    kept = [im for im in images_out if im is not None] if keep_images else []
    return BenchResult(records=done, summary=summary, config=_config(cases, settings, batch_size, planner_used,
                       elapsed), images=kept)  # fmt: skip


def _planner_of(session: Any) -> Any:
    """The session's planner, or ``None`` when it plans nothing."""
    from dreamomni2.planner.base import NonePlanner

    planner = session.planner
    return None if isinstance(planner, NonePlanner) else planner
