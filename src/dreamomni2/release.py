"""Load the DreamOmni2 release (``edit_lora/``, ``gen_lora/``, ``vlm-model/``) on a FLUX.1-Kontext base.

:func:`load_release` loads the base pipeline once, both LoRAs once as the named adapters ``"edit"``
and ``"generate"`` (switched with ``set_adapters``, never reloaded), the optional Qwen2.5-VL planner,
and configures a memory mode (:mod:`dreamomni2.memory`). :meth:`DreamOmni2Release.run` does one
request: plan the prompt, switch the adapter, draw. Nothing is ever downloaded: the base is a local
diffusers folder or a repo id already in the local Hugging Face cache (``local_files_only=True``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamomni2.memory import MemoryPlan, apply_memory_mode, prepare_for_denoising, prepare_for_planning
from dreamomni2.planner.base import NonePlanner, PlannedPrompt, Planner, make_planner, normalize_task

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

#: The file name of a diffusers-format LoRA.
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
#: Task -> the release's LoRA file, relative to the release folder.
LORA_FILES: dict[str, str] = {
    "edit": f"edit_lora/{LORA_WEIGHT_NAME}",
    "generate": f"gen_lora/{LORA_WEIGHT_NAME}",
}
#: Task -> adapter name on the pipeline.
ADAPTER_NAMES: dict[str, str] = {"edit": "edit", "generate": "generate"}
#: The release's planner folder (a Qwen2.5-VL in transformers format).
VLM_DIR = "vlm-model"


def check_release_folder(release: str | os.PathLike, require_vlm: bool = False) -> dict[str, Path | None]:
    """Check the release folder layout and return its parts.

    Args:
        release: the release folder (holding ``edit_lora/``, ``gen_lora/`` and optionally ``vlm-model/``).
        require_vlm: also require ``vlm-model/config.json`` (when the planner is requested).

    Returns:
        ``{"edit": Path, "generate": Path, "vlm": Path | None}``: the two LoRA folders and the VLM folder
        (``None`` when absent and not required).

    Raises:
        FileNotFoundError: naming the exact missing folder or file.
    """
    root = Path(release)
    if not root.is_dir():
        raise FileNotFoundError(f"DreamOmni2 release folder {str(root)!r} does not exist.")
    parts: dict[str, Path | None] = {}
    for task, rel in LORA_FILES.items():
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: a DreamOmni2 release folder needs {' and '.join(LORA_FILES.values())} "
                "(diffusers-format LoRAs)."
            )
        parts[task] = path.parent
    vlm = root / VLM_DIR
    if (vlm / "config.json").is_file():
        parts["vlm"] = vlm
    elif require_vlm:
        missing = vlm if not vlm.is_dir() else vlm / "config.json"
        raise FileNotFoundError(
            f"{missing} is missing: the planner needs the release's {VLM_DIR}/ (a Qwen2.5-VL folder); "
            "pass planner='none' to run without it."
        )
    else:
        parts["vlm"] = None
    return parts


@dataclass
class DreamOmni2Release:
    """A loaded DreamOmni2 release: the pipeline with both LoRAs, the planner and the memory plan.

    Attributes:
        pipe: the :class:`~dreamomni2.pipeline.DreamOmni2Pipeline` with adapters ``"edit"`` and ``"generate"``.
        planner: the instruction planner, or ``None`` (the instruction is the prompt).
        memory: the :class:`~dreamomni2.memory.MemoryPlan` in effect.
        device: the accelerator (or ``"cpu"``) the models run on.
        release_dir: the release folder.
        lora_scale: the adapter weight passed to ``set_adapters``.
        active_task: the task whose adapter is active (``None`` before the first :meth:`use_task`).
    """

    pipe: Any
    planner: Planner | None
    memory: MemoryPlan
    device: str
    release_dir: Path
    lora_scale: float = 1.0
    active_task: str | None = None

    def use_task(self, task: str) -> str:
        """Activate the task's LoRA (``set_adapters``; no reload, a no-op when it is already active).

        Args:
            task: ``"edit"`` or ``"generate"`` (``"editing"``/``"generation"`` accepted).

        Returns:
            The canonical task name.
        """
        task = normalize_task(task)
        if task != self.active_task:
            logger.debug("Switching the LoRA adapter to %r", ADAPTER_NAMES[task])
            self.pipe.set_adapters(ADAPTER_NAMES[task], adapter_weights=self.lora_scale)
            self.active_task = task
        return task

    def plan(self, images: Sequence[Any], instruction: str, task: str) -> PlannedPrompt:
        """Plan the prompt, moving models around the planning phase as the memory mode says.

        Args:
            images: PIL images, in order (the image to edit first for ``"edit"``).
            instruction: the user's instruction.
            task: ``"edit"`` or ``"generate"``.

        Returns:
            The :class:`~dreamomni2.planner.PlannedPrompt` (the instruction itself without a planner).
        """
        if self.planner is None:
            return NonePlanner().plan(list(images), instruction, task)
        prepare_for_planning(self.pipe, self.planner, self.memory, self.device)
        try:
            return self.planner.plan(list(images), instruction, task)
        finally:
            prepare_for_denoising(self.pipe, self.planner, self.memory, self.device)

    def run(
        self, images: Sequence[Any], instruction: str, task: str = "edit", **pipe_kwargs: Any
    ) -> tuple[Any, PlannedPrompt]:
        """One request: plan the prompt, switch the adapter, denoise.

        Args:
            images: PIL images, in order (the image to edit first for ``"edit"``); may be empty for ``"generate"``.
            instruction: the user's instruction.
            task: ``"edit"`` or ``"generate"``.
            **pipe_kwargs: passed to the pipeline (``num_inference_steps``, ``generator``, ``guidance_scale``,
                ``height``/``width``, ``max_area``, ``output_type`` ...); not ``prompt``, ``images`` or ``task``.

        Returns:
            ``(image, planned)``: the first output image (the whole list/array when
            ``num_images_per_prompt > 1``) and the :class:`~dreamomni2.planner.PlannedPrompt` used.
        """
        clash = sorted({"prompt", "images", "task"} & set(pipe_kwargs))
        if clash:
            raise TypeError(f"run() sets {clash} itself; pass the instruction and task instead.")
        task = normalize_task(task)
        planned = self.plan(images, instruction, task)
        logger.info("Prompt (%s): %s", planned.backend, planned.prompt)
        self.use_task(task)
        out = self.pipe(images=list(images), prompt=planned.prompt, task=task, **pipe_kwargs).images
        image = out[0] if len(out) == 1 else out
        return image, planned

    __call__ = run


def _make_release_planner(
    planner: str | Planner | None,
    vlm_dir: Path | None,
    device: str,
    dtype: Any,
    planner_kwargs: dict[str, Any],
) -> Planner | None:
    if planner is None or isinstance(planner, Planner):
        return planner
    spec = planner.strip()
    if spec.lower() == "none":
        return None
    if spec.lower() in ("auto", "release", "qwen"):
        if vlm_dir is None:  # only reachable for "auto" (the others require the folder)
            logger.info("No %s/ in the release folder: running without a planner.", VLM_DIR)
            return None
        spec = f"qwen:{vlm_dir}"
    kwargs = {"device": device, "dtype": dtype, **planner_kwargs}
    return make_planner(spec, **kwargs)


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

    from dreamomni2.memory import check_memory_mode
    from dreamomni2.pipeline import DreamOmni2Pipeline

    check_memory_mode(memory)
    dtype = torch.float32 if dtype is None else dtype
    want_vlm = isinstance(planner, str) and planner.strip().lower() in ("release", "qwen")
    parts = check_release_folder(release, require_vlm=want_vlm)
    planner_obj = _make_release_planner(
        planner,
        parts["vlm"],
        str(planner_device or device),
        dtype if planner_dtype is None else planner_dtype,
        dict(planner_kwargs or {}),
    )

    logger.info("Loading the base pipeline from %s (%s)", base, dtype)
    try:
        pipe = DreamOmni2Pipeline.from_pretrained(os.fspath(base), dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as err:
        if isinstance(err, ValueError) and os.path.isdir(os.fspath(base)):
            raise  # a real folder with a bad config: not a "missing" error
        raise FileNotFoundError(
            f"Cannot load the base model {os.fspath(base)!r} locally (a FLUX.1-Kontext-dev diffusers folder, or a "
            f"repo id already in the Hugging Face cache; nothing is downloaded): {err}"
        ) from err
    for task, folder in (("edit", parts["edit"]), ("generate", parts["generate"])):
        logger.info("Loading the %s LoRA from %s as adapter %r", task, folder, ADAPTER_NAMES[task])
        pipe.load_lora_weights(os.fspath(folder), weight_name=LORA_WEIGHT_NAME, adapter_name=ADAPTER_NAMES[task])
    plan = apply_memory_mode(pipe, memory, device=str(device), offload_hooks=offload_hooks, vae_tiling=vae_tiling)
    out = DreamOmni2Release(
        pipe=pipe,
        planner=planner_obj,
        memory=plan,
        device=str(device),
        release_dir=Path(release),
        lora_scale=float(lora_scale),
    )
    out.use_task(initial_task)
    return out
