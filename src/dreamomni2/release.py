"""Load the DreamOmni2 release (``edit_lora/``, ``gen_lora/``, ``vlm-model/``) on a FLUX.1-Kontext base.

A thin way to build a :class:`~dreamomni2.session.Session` on the release layout, kept for its public API:
:func:`load_release` loads the base pipeline once, both LoRAs once as the named adapters ``"edit"`` and
``"generate"`` (switched with ``set_adapters``, never reloaded), the optional Qwen2.5-VL planner, and configures a
memory mode (:mod:`dreamomni2.memory`). :meth:`DreamOmni2Release.run` does one request through
:meth:`Session.run <dreamomni2.session.Session.run>`. Nothing is ever downloaded: the base is a local diffusers
folder or a repo id already in the local Hugging Face cache (``local_files_only=True``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamomni2.loading import LORA_FILES, LORA_WEIGHT_NAME, VLM_DIR, check_release_folder
from dreamomni2.planner.base import NonePlanner, PlannedPrompt, Planner
from dreamomni2.request import Request
from dreamomni2.session import Session

__all__ = [
    "ADAPTER_NAMES",
    "LORA_FILES",
    "LORA_WEIGHT_NAME",
    "VLM_DIR",
    "DreamOmni2Release",
    "check_release_folder",
    "load_release",
]

logger = logging.getLogger(__name__)

#: Task -> adapter name on the pipeline.
ADAPTER_NAMES: dict[str, str] = {"edit": "edit", "generate": "generate"}
#: ``run()`` keyword arguments that map onto :class:`~dreamomni2.request.Request` fields.
_REQUEST_FIELDS = {"num_inference_steps": "steps", "guidance_scale": "guidance", "id_policy": "id_policy"}


class DreamOmni2Release:
    """A loaded DreamOmni2 release: a :class:`~dreamomni2.session.Session` with both LoRAs and the planner.

    Attributes:
        session: the Session every request goes through.
        release_dir: the release folder.
    """

    def __init__(self, session: Session, release_dir: str | os.PathLike) -> None:
        self.session = session
        self.release_dir = Path(release_dir)

    @property
    def pipe(self) -> Any:
        """The :class:`~dreamomni2.pipeline.DreamOmni2Pipeline` with adapters ``"edit"`` and ``"generate"``."""
        return self.session.pipe

    @property
    def planner(self) -> Planner | None:
        """The instruction planner, or ``None`` (the instruction is the prompt)."""
        planner = self.session.planner
        return None if isinstance(planner, NonePlanner) else planner

    @property
    def memory(self) -> Any:
        """The :class:`~dreamomni2.memory.MemoryPlan` in effect."""
        return self.session.memory_plan

    @property
    def device(self) -> str:
        """The accelerator (or ``"cpu"``) the models run on."""
        return self.session.device

    @property
    def lora_scale(self) -> float:
        """The adapter weight passed to ``set_adapters``."""
        return self.session.lora_scale

    @property
    def active_task(self) -> str | None:
        """The task whose adapter is active."""
        return self.session.active_task

    def use_task(self, task: str) -> str:
        """Activate the task's LoRA (``set_adapters``; no reload, a no-op when it is already active)."""
        return self.session.use_task(task)

    def plan(self, images: Sequence[Any], instruction: str, task: str) -> PlannedPrompt:
        """Plan the prompt, moving models around the planning phase as the memory mode says."""
        return self.session.plan(images, instruction, task)

    def run(
        self, images: Sequence[Any], instruction: str, task: str = "edit", **pipe_kwargs: Any
    ) -> tuple[Any, PlannedPrompt]:
        """One request: plan the prompt, switch the adapter, denoise (through :meth:`Session.run`).

        Args:
            images: PIL images, in order (the image to edit first for ``"edit"``); may be empty for ``"generate"``.
            instruction: the user's instruction.
            task: ``"edit"`` or ``"generate"``.
            **pipe_kwargs: pipeline arguments (``num_inference_steps`` -- 30 when not given, as the release's app
                --, ``generator``, ``guidance_scale``, ``height``/``width``, ``max_area``, ``output_type`` ...); not
                ``prompt``, ``images`` or ``task``.

        Returns:
            ``(image, planned)``: the first output image (the whole list when ``num_images_per_prompt > 1``) and the
            :class:`~dreamomni2.planner.PlannedPrompt` used.
        """
        clash = sorted({"prompt", "images", "task"} & set(pipe_kwargs))
        if clash:
            raise TypeError(f"run() sets {clash} itself; pass the instruction and task instead.")
        extra = dict(pipe_kwargs)
        fields = {f: extra.pop(k) for k, f in _REQUEST_FIELDS.items() if k in extra}
        if "height" in extra and "width" in extra:
            fields["size"] = (extra.pop("width"), extra.pop("height"))
        request = Request(task, list(images), instruction, pipeline_kwargs=extra, **fields)
        result = self.session.run(request)
        logger.info("Prompt (%s): %s", result.planned.backend, result.prompt)
        return (result.images[0] if len(result.images) == 1 else result.images), result.planned

    __call__ = run


def load_release(
    base: str | os.PathLike,
    release: str | os.PathLike,
    device: str = "cpu",
    dtype: Any = None,
    memory: str = "full",
    planner: str | Planner | None = "auto",
    planner_device: str | None = None,
    planner_dtype: Any = None,
    planner_kwargs: dict[str, Any] | None = None,
    lora_scale: float = 1.0,
    offload_hooks: bool | None = None,
    vae_tiling: bool | None = None,
    initial_task: str = "edit",
) -> DreamOmni2Release:
    """Load the base model once, both release LoRAs once, the planner, and apply a memory mode.

    Args:
        base: FLUX.1-Kontext-dev in diffusers layout: a local folder, or a repo id already in the local
            Hugging Face cache (loaded with ``local_files_only=True``; never downloaded).
        release: the DreamOmni2 release folder (``edit_lora/``, ``gen_lora/``, optionally ``vlm-model/``).
        device: the accelerator (``"cuda"``, ``"cuda:1"`` ...) or ``"cpu"``.
        dtype: torch dtype of the pipeline (``None``: ``torch.float32``; use ``torch.bfloat16`` on GPUs).
        memory: memory mode, one of :data:`dreamomni2.memory.MEMORY_MODES`.
        planner: ``"auto"`` (the release's ``vlm-model/`` when present, else none), ``"release"``/``"qwen"``
            (the release's ``vlm-model/``, required), ``"none"``/``None`` (the instruction is the prompt),
            any :func:`~dreamomni2.planner.make_planner` spec (``"qwen:DIR"``, ``"openai:URL#model"``) or a
            :class:`~dreamomni2.planner.Planner` instance.
        planner_device: where a local planner runs (default ``device``; ``"cpu"`` keeps it off the accelerator).
        planner_dtype: the local planner's dtype (default ``dtype``).
        planner_kwargs: further :func:`~dreamomni2.planner.make_planner` options (``max_new_tokens``,
            ``max_area``, ``api_key`` ...).
        lora_scale: the adapter weight.
        offload_hooks: see :func:`dreamomni2.memory.apply_memory_mode` (``None``: only off the CPU).
        vae_tiling: see :func:`dreamomni2.memory.apply_memory_mode` (``None``: only off the CPU).
        initial_task: the adapter to activate after loading.

    Returns:
        The :class:`DreamOmni2Release`.

    Raises:
        FileNotFoundError: a release file (named in the message) or the base model is missing locally.
        ValueError: an unknown memory mode or planner spec.
    """
    import torch

    options = dict(planner_kwargs or {})
    options.setdefault("device", str(planner_device or device))
    if planner_dtype is not None:
        options.setdefault("dtype", planner_dtype)
    session = Session.from_release(
        base, release, planner=NonePlanner() if planner is None else planner, memory=memory, device=str(device),
        dtype=torch.float32 if dtype is None else dtype, lora_scale=lora_scale, planner_options=options,
        offload_hooks=offload_hooks, vae_tiling=vae_tiling,
    )  # fmt: skip
    session.planner  # noqa: B018  (build it now: a missing vlm-model/ is reported before the base loads)
    session.load()
    session.use_task(initial_task)
    return DreamOmni2Release(session, release)
