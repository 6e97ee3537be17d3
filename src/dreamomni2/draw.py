"""The drawing stage of a :class:`~dreamomni2.session.Session`: planned requests -> pipeline calls -> results.

Requests that share task, image count and settings (:meth:`~dreamomni2.request.Settings.batch_key`) go through
one pipeline call: their prompts as a list, each input image prepared and VAE-encoded on its own (exactly as a
single call does) and stacked per image slot into one latent batch, one CPU ``torch.Generator`` per request. A
batch therefore gives the images of single calls (up to float rounding). Pipelines without the latent stages
(``prepare_images``/``encode_images``, e.g. test stubs) are called once per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from dreamomni2.planner.base import PlannedPrompt
from dreamomni2.request import Request, Result, Settings

__all__ = ["can_batch", "draw", "group_batches"]


def can_batch(pipe: Any) -> bool:
    """Whether the pipeline exposes the stages a latent batch needs."""
    return all(hasattr(pipe, name) for name in ("prepare_images", "encode_images", "_execution_device"))


def group_batches(requests: Sequence[Request], settings: Sequence[Settings], batchable: bool) -> list[list[int]]:
    """Indices of requests that can share a call, in first-seen order (singletons when not ``batchable``)."""
    groups: dict[Any, list[int]] = {}
    for i, (r, s) in enumerate(zip(requests, settings, strict=True)):
        solo = not batchable or s.n != 1 or r.pipeline_kwargs or r.progress is not None
        key = ("solo", i) if solo else (s.batch_key(), len(r.images))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _progress_callback(callbacks: Sequence[Callable[[int, int], Any]], total: int) -> Callable:
    def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        for cb in callbacks:
            cb(step + 1, total)
        return tensors

    return on_step_end


def _generator(seed: int) -> Any:
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)


def _encode_slots(pipe: Any, requests: Sequence[Request], st: Settings) -> list[Any]:
    """Prepare and encode every image on its own, then stack each image slot into one ``[B, C, h, w]`` latent."""
    import torch

    device, dtype = pipe._execution_device, pipe.vae.dtype
    slots = []
    for j in range(len(requests[0].images)):
        prepared = pipe.prepare_images([r.images[j] for r in requests], auto_resize=st.auto_resize,
                                       max_area=st.reference_max_area)  # fmt: skip
        slots.append(torch.cat(pipe.encode_images(prepared, device, dtype), dim=0))
    return slots


def _call(pipe: Any, requests: Sequence[Request], prompts: Sequence[str], settings: Sequence[Settings]) -> list[Any]:
    """One pipeline call for the requests of one batch; returns each request's list of images."""
    st = settings[0]
    kw = st.pipeline_kwargs()
    callbacks = [r.progress for r in requests if r.progress is not None]
    if callbacks:
        kw["callback_on_step_end"] = _progress_callback(callbacks, st.steps)
    if len(requests) == 1:
        r = requests[0]
        if st.seed is not None:
            kw["generator"] = _generator(st.seed)
        out = pipe(images=list(r.images), prompt=prompts[0], **{**kw, **r.pipeline_kwargs}).images
        return [list(out)]
    images = _encode_slots(pipe, requests, st)
    generators = [_generator(s.seed) for s in settings]
    out = pipe(images=images, prompt=list(prompts), generator=generators, **kw).images
    if len(out) != len(requests):
        raise RuntimeError(f"pipeline returned {len(out)} images for a batch of {len(requests)}")
    return [[im] for im in out]


def draw(
    session: Any,
    requests: Sequence[Request],
    planned: Sequence[PlannedPrompt],
    settings: Sequence[Settings],
    timings: Sequence[dict[str, float]],
) -> list[Result]:
    """Draw every (checked, planned) request through the session's pipeline; results in request order."""
    pipe = session.pipe
    results: list[Result | None] = [None] * len(requests)
    for idx in group_batches(requests, settings, len(requests) > 1 and can_batch(pipe)):
        session.use_task(settings[idx[0]].task)
        start = time.perf_counter()
        outs = _call(pipe, [requests[i] for i in idx], [planned[i].prompt for i in idx], [settings[i] for i in idx])
        seconds = time.perf_counter() - start
        for i, images in zip(idx, outs, strict=True):
            t = dict(timings[i], draw=seconds, batch=float(len(idx)))
            results[i] = Result(images=images, prompt=planned[i].prompt, planned=planned[i], settings=settings[i],
                                timings=t)  # fmt: skip
    return [r for r in results if r is not None]
