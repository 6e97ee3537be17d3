"""Memory modes: where each model lives, and when, while DreamOmni2 plans and draws.

A request runs four phases: ``plan`` (the Qwen2.5-VL planner rewrites the instruction),
``encode`` (CLIP + T5 encode the prompt, the VAE encodes the reference images), ``denoise``
(the FLUX transformer) and ``decode`` (the VAE). The modes trade accelerator memory for speed:

* ``full``: every model stays on the accelerator (fastest; ~52 GiB of bf16 weights with the planner).
* ``balanced``: the planner and the FLUX pipeline take turns: the VLM plans on the accelerator while the
  FLUX models wait on the CPU, then the VLM leaves (``planner.offload()``) and the FLUX models come back
  for encode/denoise/decode. VAE slicing and tiling are on. Without a local VLM this is ``full`` plus VAE
  slicing/tiling.
* ``low``: diffusers' model CPU offload (``enable_model_cpu_offload``): one FLUX model on the accelerator
  at a time; the VLM plans on the accelerator, then is offloaded.
* ``minimal``: diffusers' leaf-level group offload (``enable_group_offload``): weights stream to the
  accelerator one layer at a time (slowest); the VLM plans on the accelerator, then is offloaded.

:func:`placement_plan` is the pure description of a mode (tested value by value),
:func:`apply_memory_mode` configures a pipeline, :func:`prepare_for_planning` /
:func:`prepare_for_denoising` move models between the phases, and :func:`estimate_peak_memory` /
:func:`memory_table_markdown` give the expected peak accelerator memory for the real models.

On the CPU (``device="cpu"``) there is nothing to offload to: by default the plan is applied
logically (every model on the CPU, no offload hooks, no VAE tiling, which changes pixels near tile
seams), so every mode gives exactly the image of ``full``. ``offload_hooks=True`` installs the real
diffusers hooks even on the CPU (used by the tests to run the hook code paths; same image too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COMPONENTS",
    "MEMORY_MODES",
    "PARAM_COUNTS",
    "PHASES",
    "MemoryPlan",
    "apply_memory_mode",
    "check_memory_mode",
    "estimate_peak_memory",
    "estimate_phase_memory",
    "memory_table_markdown",
    "placement_plan",
    "prepare_for_denoising",
    "prepare_for_planning",
]

logger = logging.getLogger(__name__)

#: Memory modes, from the most to the least accelerator memory.
MEMORY_MODES: tuple[str, ...] = ("full", "balanced", "low", "minimal")
#: Phases of one request, in order.
PHASES: tuple[str, ...] = ("plan", "encode", "denoise", "decode")
#: Components a plan places: the planner VLM and the FLUX.1-Kontext pipeline's models.
COMPONENTS: tuple[str, ...] = ("vlm", "text_encoder", "text_encoder_2", "transformer", "vae")
#: Placement value for weights kept on the CPU and moved to the accelerator one layer at a time while they run.
STREAMED = "streamed"

_MODE_INFO: dict[str, str] = {
    "full": "everything resident on the accelerator",
    "balanced": "VLM plans, then leaves; FLUX models resident while drawing; VAE sliced/tiled",
    "low": "model CPU offload: one model on the accelerator at a time; VAE sliced/tiled",
    "minimal": "leaf-level group offload: weights streamed layer by layer; VAE sliced/tiled",
}

# Phase -> components that run in it (the others are idle).
_RUNS_IN: dict[str, tuple[str, ...]] = {
    "plan": ("vlm",),
    "encode": ("text_encoder", "text_encoder_2", "vae"),
    "denoise": ("transformer",),
    "decode": ("vae",),
}


def check_memory_mode(mode: str) -> str:
    """Validate a memory mode name.

    Args:
        mode: one of :data:`MEMORY_MODES` (case-insensitive).

    Returns:
        The lower-case mode name.

    Raises:
        ValueError: listing the modes, for an unknown mode.
    """
    if not isinstance(mode, str) or mode.lower() not in MEMORY_MODES:
        raise ValueError(f"Unknown memory mode {mode!r}; use one of {', '.join(MEMORY_MODES)}.")
    return mode.lower()


@dataclass(frozen=True)
class MemoryPlan:
    """Where each component's weights are during each phase of a request, for one memory mode.

    Attributes:
        mode: the memory mode.
        accelerator: the accelerator device string (``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``).
        placement: ``{phase: {component: where}}`` for :data:`PHASES` x :data:`COMPONENTS`; ``where`` is
            the accelerator string (on it for the phase; with ``low``, while that model runs), ``"cpu"``
            (idle on the CPU) or ``"streamed"`` (on the CPU, moved to the accelerator layer by layer as it runs).
        offload: ``"none"``, ``"model"`` (``enable_model_cpu_offload``) or ``"group"`` (``enable_group_offload``).
        planner_offload: whether the VLM leaves the accelerator (``planner.offload()``) after planning.
        swap_pipeline: whether the FLUX models leave the accelerator while a local VLM plans (``balanced``).
        vae_slicing: whether VAE slicing is enabled.
        vae_tiling: whether VAE tiling is enabled.
        description: one line for tables and logs.
    """

    mode: str
    accelerator: str
    placement: dict[str, dict[str, str]] = field(repr=False)
    offload: str
    planner_offload: bool
    swap_pipeline: bool
    vae_slicing: bool
    vae_tiling: bool
    description: str

    def device_of(self, component: str, phase: str) -> str:
        """Where ``component`` is during ``phase`` (see :attr:`placement`)."""
        if phase not in self.placement:
            raise ValueError(f"Unknown phase {phase!r}; use one of {', '.join(PHASES)}.")
        if component not in self.placement[phase]:
            raise ValueError(f"Unknown component {component!r}; use one of {', '.join(COMPONENTS)}.")
        return self.placement[phase][component]


def placement_plan(mode: str, accelerator: str = "cuda") -> MemoryPlan:
    """Describe a memory mode (pure: no models, no devices touched).

    Args:
        mode: one of :data:`MEMORY_MODES`.
        accelerator: the device the models run on; with ``"cpu"`` every component is on the CPU in every phase.

    Returns:
        The :class:`MemoryPlan`.

    Raises:
        ValueError: for an unknown mode (the message lists the modes).
    """
    mode = check_memory_mode(mode)
    acc = str(accelerator)
    on_cpu = acc == "cpu" or acc.startswith("cpu:")
    placement: dict[str, dict[str, str]] = {}
    for phase in PHASES:
        running = _RUNS_IN[phase]
        row = {}
        for comp in COMPONENTS:
            if mode == "full":
                where = acc
            elif comp == "vlm":
                where = acc if phase == "plan" else "cpu"
            elif mode == "balanced":
                where = "cpu" if phase == "plan" else acc
            elif mode == "low":
                # Model offload: a model is onloaded when it runs; the VAE that encoded the references is only
                # offloaded when the next model in the chain (after the transformer) runs, so it stays for denoise.
                where = acc if comp in running or (comp == "vae" and phase == "denoise") else "cpu"
            else:  # minimal
                where = STREAMED if comp in running else "cpu"
            row[comp] = "cpu" if on_cpu else where
        placement[phase] = row
    return MemoryPlan(
        mode=mode,
        accelerator=acc,
        placement=placement,
        offload={"full": "none", "balanced": "none", "low": "model", "minimal": "group"}[mode],
        planner_offload=mode != "full",
        swap_pipeline=mode == "balanced",
        vae_slicing=mode != "full",
        vae_tiling=mode != "full",
        description=_MODE_INFO[mode],
    )


# --------------------------------------------------------------------------------------------- apply


def _is_cpu(device: Any) -> bool:
    return str(device) == "cpu" or str(device).startswith("cpu:")


def _has_local_model(planner: Any) -> bool:
    """Whether the planner runs a local model it can move off the accelerator (a QwenPlanner)."""
    return planner is not None and callable(getattr(planner, "offload", None))


def _vlm_on_accelerator(planner: Any) -> bool:
    """Whether the planner runs a local model on an accelerator (its ``device`` is not the CPU)."""
    return _has_local_model(planner) and not _is_cpu(getattr(planner, "device", "cpu"))


def apply_memory_mode(
    pipe: Any,
    mode: str,
    device: str = "cuda",
    offload_hooks: bool | None = None,
    vae_tiling: bool | None = None,
) -> MemoryPlan:
    """Configure a freshly loaded pipeline for a memory mode (call once, after loading the LoRAs).

    Args:
        pipe: a :class:`~dreamomni2.pipeline.DreamOmni2Pipeline` (any diffusers pipeline with a ``vae``).
        mode: one of :data:`MEMORY_MODES`.
        device: the accelerator (``"cuda"``, ``"cuda:1"`` ...) or ``"cpu"``.
        offload_hooks: install diffusers' offload hooks for ``low``/``minimal``; ``None`` means only when
            ``device`` is not the CPU (on the CPU the plan is applied logically: all models on the CPU).
        vae_tiling: enable VAE tiling when the mode asks for it; ``None`` means only when ``device`` is not
            the CPU (tiling blends tiles, so it changes pixels; on the CPU it saves nothing).

    Returns:
        The mode's :class:`MemoryPlan` (for ``device``).

    Raises:
        ValueError: for an unknown mode.
    """
    import torch

    plan = placement_plan(mode, accelerator=str(device))
    cpu = _is_cpu(device)
    hooks = (not cpu) if offload_hooks is None else bool(offload_hooks)
    tiling = plan.vae_tiling and ((not cpu) if vae_tiling is None else bool(vae_tiling))
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        if plan.vae_slicing:
            vae.enable_slicing()
        if tiling:
            vae.enable_tiling()
    if plan.offload == "model" and hooks:
        pipe.enable_model_cpu_offload(device=device)
    elif plan.offload == "group" and hooks:
        dev = torch.device(device)
        pipe.enable_group_offload(
            onload_device=dev,
            offload_device=torch.device("cpu"),
            offload_type="leaf_level",
            use_stream=dev.type == "cuda",
        )
    else:
        pipe.to(device)
    logger.info(
        "Memory mode %s on %s (offload=%s, hooks=%s, vae slicing=%s, tiling=%s)",
        plan.mode,
        device,
        plan.offload,
        hooks and plan.offload != "none",
        plan.vae_slicing,
        tiling,
    )
    return plan


def prepare_for_planning(pipe: Any, planner: Any, plan: MemoryPlan, device: str) -> None:
    """Before the planner runs: in ``balanced`` mode the FLUX models leave the accelerator for the VLM.

    Only when the planner runs a local model (has ``offload()``) on an accelerator; a no-op otherwise.

    Args:
        pipe: the pipeline.
        planner: the planner, or ``None``.
        plan: the active :class:`MemoryPlan`.
        device: the accelerator.
    """
    if plan.swap_pipeline and _vlm_on_accelerator(planner) and not _is_cpu(device):
        logger.debug("balanced: moving the FLUX models to the CPU while the VLM plans")
        pipe.to("cpu")
        _empty_cache(device)


def prepare_for_denoising(pipe: Any, planner: Any, plan: MemoryPlan, device: str) -> None:
    """After planning, before encode/denoise: the VLM leaves the accelerator (all modes but ``full``).

    In ``balanced`` mode the FLUX models then come back to the accelerator.

    Args:
        pipe: the pipeline.
        planner: the planner, or ``None``.
        plan: the active :class:`MemoryPlan`.
        device: the accelerator.
    """
    if plan.planner_offload and _has_local_model(planner):
        planner.offload()
    if plan.swap_pipeline and _vlm_on_accelerator(planner) and not _is_cpu(device):
        logger.debug("balanced: moving the FLUX models back to %s", device)
        pipe.to(device)


def _empty_cache(device: str) -> None:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------ estimates

#: Parameter counts of the real models (FLUX.1-Kontext-dev, T5-XXL encoder, CLIP-L, FLUX VAE, Qwen2.5-VL-7B).
PARAM_COUNTS: dict[str, float] = {
    "vlm": 8.3e9,
    "text_encoder": 123e6,
    "text_encoder_2": 4.7e9,
    "transformer": 12e9,
    "vae": 84e6,
}
#: Largest single layer of each model (what leaf-level group offload holds at once): CLIP-L token embedding
#: (49408 x 768), T5-XXL shared embedding (32128 x 4096), a FLUX single block's proj_out (15360 x 3072), a
#: 512-channel 3x3 VAE conv, the Qwen2.5-VL-7B lm_head (152064 x 3584).
LARGEST_LAYER_PARAMS: dict[str, float] = {
    "vlm": 152064 * 3584,
    "text_encoder": 49408 * 768,
    "text_encoder_2": 32128 * 4096,
    "transformer": 15360 * 3072,
    "vae": 512 * 512 * 9,
}
_FLUX_HIDDEN = 3072
_VLM_HIDDEN = 3584
_VIT_HIDDEN = 1280
_T5_HIDDEN = 4096
#: Live activation values per token inside one transformer block (inputs, norms, q/k/v + rotary copies,
#: attention output, 4x MLP), in multiples of the hidden size; attention itself is memory-efficient (SDPA).
_ACT_FACTOR = 16
#: Live activation bytes per pixel in the VAE at full resolution (~5 tensors of 256 channels, bf16).
_VAE_BYTES_PER_PIXEL = 256 * 5 * 2
#: Largest tile the FLUX VAE decodes at once when tiling is on (its sample_size, 1024 px).
_VAE_TILE_PIXELS = 1024 * 1024
_GIB = 1024**3


def _tokens(pixels: int, patch: int) -> int:
    return max(1, round(pixels / (patch * patch)))


def estimate_phase_memory(
    mode: str,
    num_refs: int = 1,
    target_pixels: int = 1024 * 1024,
    ref_pixels: int = 1024 * 1024,
    text_tokens: int = 512,
    planner: bool = True,
    batch: int = 1,
    bytes_per_param: float = 2.0,
    overhead_gib: float = 1.0,
) -> dict[str, float]:
    """Expected accelerator memory (GiB) in each phase for the real DreamOmni2 models.

    Weights: FLUX transformer 12B, T5-XXL encoder 4.7B, CLIP-L 123M, VAE 84M, Qwen2.5-VL-7B 8.3B at
    ``bytes_per_param`` (2 for bf16). Activations: the FLUX transformer sees ``target_pixels / 16^2`` target
    tokens (4096 at 1024^2) + as many per reference + ``text_tokens``, about ``16 x 3072`` bf16 values live per
    token per block; the VAE ~2.5 kB per pixel of its largest image (tiled: at most 1024^2 px); the VLM sees
    ``num_refs`` images of ``ref_pixels / 28^2`` tokens (ViT: 4x as many patches). ``overhead_gib`` stands for
    the CUDA context and allocator slack. Rough: measure before relying on a margin under ~2 GiB.

    Args:
        mode: one of :data:`MEMORY_MODES`.
        num_refs: number of input images (the image to edit counts).
        target_pixels: output pixels (1024 x 1024 by default).
        ref_pixels: pixels of each input image after the Kontext resize.
        text_tokens: T5 tokens (512, the release's max_sequence_length).
        planner: whether the local Qwen2.5-VL planner runs on the accelerator.
        batch: transformer batch (2 with true CFG, x num_images_per_prompt).
        bytes_per_param: 2 for bf16/fp16, 1 for FP8, ~0.55 for NF4.
        overhead_gib: fixed overhead added to every phase.

    Returns:
        ``{phase: GiB}`` for :data:`PHASES` (``plan`` is just the overhead without a planner).
    """
    plan = placement_plan(mode, accelerator="cuda")
    weights = {c: PARAM_COUNTS[c] * bytes_per_param for c in COMPONENTS}
    layer = {c: 2 * LARGEST_LAYER_PARAMS[c] * bytes_per_param for c in COMPONENTS}  # x2: the prefetched next one
    if not planner:
        weights["vlm"] = layer["vlm"] = 0.0
    act = _phase_activation_bytes(plan, num_refs, target_pixels, ref_pixels, text_tokens, planner, batch)
    out = {}
    for phase in PHASES:
        out[phase] = (_resident_weight_bytes(plan, phase, weights, layer) + act[phase]) / _GIB + overhead_gib
    return out


def _phase_activation_bytes(
    plan: MemoryPlan,
    num_refs: int,
    target_pixels: int,
    ref_pixels: int,
    text_tokens: int,
    planner: bool,
    batch: int,
) -> dict[str, float]:
    """Live activation bytes of each phase (see :func:`estimate_phase_memory` for the model of each term).

    Returns:
        ``{phase: bytes}`` for :data:`PHASES`.
    """
    act_b = 2.0  # activations in bf16
    flux_tokens = _tokens(target_pixels, 16) + num_refs * _tokens(ref_pixels, 16) + text_tokens
    vlm_tokens = num_refs * _tokens(ref_pixels, 28) + 128
    vit_patches = num_refs * _tokens(ref_pixels, 14)
    vae_enc_px = min(ref_pixels, _VAE_TILE_PIXELS) if plan.vae_tiling else ref_pixels
    vae_dec_px = min(target_pixels, _VAE_TILE_PIXELS) if plan.vae_tiling else target_pixels
    return {
        "plan": (
            max(vit_patches * _VIT_HIDDEN, vlm_tokens * _VLM_HIDDEN) * _ACT_FACTOR * act_b
            + vlm_tokens * 28 * 2 * 512 * act_b  # KV cache: 28 layers x (k, v) x 4 heads x 128
            if planner
            else 0.0
        ),
        "encode": max(
            text_tokens * _T5_HIDDEN * _ACT_FACTOR * act_b * batch,
            vae_enc_px * _VAE_BYTES_PER_PIXEL if num_refs else 0,
        ),
        "denoise": batch * flux_tokens * _FLUX_HIDDEN * _ACT_FACTOR * act_b,
        "decode": vae_dec_px * _VAE_BYTES_PER_PIXEL,
    }


def _resident_weight_bytes(plan: MemoryPlan, phase: str, weights: dict[str, float], layer: dict[str, float]) -> float:
    """Weight bytes on the accelerator during ``phase``: resident models plus the largest streamed layer pair.

    Args:
        plan: the mode's :class:`MemoryPlan` (for ``"cuda"``).
        phase: one of :data:`PHASES`.
        weights: bytes of each component's weights (0 for an absent planner).
        layer: bytes of each component's two largest layers (what group offload holds at once).
    """
    row = plan.placement[phase]
    if plan.mode == "low" and phase == "encode":
        # One text encoder at a time (the previous one is offloaded when the next runs); the VAE joins T5.
        return max(weights["text_encoder"], weights["text_encoder_2"]) + weights["vae"]
    resident = sum(weights[c] for c in COMPONENTS if row[c] == plan.accelerator)
    return resident + max((layer[c] for c in COMPONENTS if row[c] == STREAMED), default=0.0)


def estimate_peak_memory(mode: str, num_refs: int = 1, **kwargs: Any) -> float:
    """Expected peak accelerator memory (GiB) of one request; the max over :func:`estimate_phase_memory`.

    Args:
        mode: one of :data:`MEMORY_MODES`.
        num_refs: number of input images (the image to edit counts).
        **kwargs: the other options of :func:`estimate_phase_memory` (``target_pixels``, ``planner`` ...).

    Returns:
        Peak GiB.
    """
    return max(estimate_phase_memory(mode, num_refs=num_refs, **kwargs).values())


def memory_table_markdown(num_refs: tuple[int, ...] = (1, 2, 4), planner_column: bool = True, **kwargs: Any) -> str:
    """A markdown table of the modes with their estimated peak accelerator memory (for the README).

    Args:
        num_refs: input-image counts to give a column each (with the local planner; 1024^2 output and inputs).
        planner_column: add a column for one input image without a local planner (``planner="none"``/OpenAI).
        **kwargs: further options of :func:`estimate_phase_memory` (not ``planner``).

    Returns:
        The table, followed by a note line on the assumptions.
    """
    head = ["Mode", "What lives where"] + [f"Peak, {n} image{'s' if n > 1 else ''}" for n in num_refs]
    if planner_column:
        head.append("Peak, 1 image, no local planner")
    head.append("Source")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 3) + ["---"]) + "|"]
    for mode in MEMORY_MODES:
        peaks = [estimate_peak_memory(mode, num_refs=n, planner=True, **kwargs) for n in num_refs]
        if planner_column:
            peaks.append(estimate_peak_memory(mode, num_refs=1, planner=False, **kwargs))
        lines.append(f"| `{mode}` | {_MODE_INFO[mode]} | " + " | ".join(f"{p:.1f} GiB" for p in peaks) + " | formula |")
    lines.append("")
    lines.append(
        "Estimated peak accelerator memory (`dreamomni2.memory.estimate_peak_memory`): bf16 weights (FLUX 12B, "
        "T5-XXL 4.7B, CLIP-L 123M, VAE 84M, Qwen2.5-VL-7B planner 8.3B), 1024x1024 output and inputs, 512 text "
        "tokens, batch 1 (true CFG doubles the activations), +1 GiB CUDA context/slack. "
        "Rough: measure before relying on a margin under ~2 GiB. Rows marked `formula` are these estimates; "
        "`benchmarks/gpu_check.py` writes measured rows (a snippet in its `gpu_check.md`) to paste under the table."
    )
    return "\n".join(lines)
