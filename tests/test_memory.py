"""Memory modes: the pure placement plans, CPU equivalence of every mode, peak-memory estimates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamomni2.memory import (
    COMPONENTS,
    MEMORY_MODES,
    PHASES,
    apply_memory_mode,
    estimate_peak_memory,
    estimate_phase_memory,
    memory_table_markdown,
    placement_plan,
    prepare_for_denoising,
    prepare_for_planning,
)
from tests.conftest import random_image

SMALL = 64 * 64
ALL_CPU = dict.fromkeys(COMPONENTS, "cpu")


def _row(vlm, te, te2, tr, vae):
    return {"vlm": vlm, "text_encoder": te, "text_encoder_2": te2, "transformer": tr, "vae": vae}


EXPECTED = {
    "full": {phase: _row("cuda", "cuda", "cuda", "cuda", "cuda") for phase in PHASES},
    "balanced": {
        "plan": _row("cuda", "cpu", "cpu", "cpu", "cpu"),
        "encode": _row("cpu", "cuda", "cuda", "cuda", "cuda"),
        "denoise": _row("cpu", "cuda", "cuda", "cuda", "cuda"),
        "decode": _row("cpu", "cuda", "cuda", "cuda", "cuda"),
    },
    "low": {
        "plan": _row("cuda", "cpu", "cpu", "cpu", "cpu"),
        "encode": _row("cpu", "cuda", "cuda", "cpu", "cuda"),
        "denoise": _row("cpu", "cpu", "cpu", "cuda", "cuda"),
        "decode": _row("cpu", "cpu", "cpu", "cpu", "cuda"),
    },
    "minimal": {
        "plan": _row("cuda", "cpu", "cpu", "cpu", "cpu"),
        "encode": _row("cpu", "streamed", "streamed", "cpu", "streamed"),
        "denoise": _row("cpu", "cpu", "cpu", "streamed", "cpu"),
        "decode": _row("cpu", "cpu", "cpu", "cpu", "streamed"),
    },
}
FLAGS = {  # offload, planner_offload, swap_pipeline, vae_slicing, vae_tiling
    "full": ("none", False, False, False, False),
    "balanced": ("none", True, True, True, True),
    "low": ("model", True, False, True, True),
    "minimal": ("group", True, False, True, True),
}


@pytest.mark.parametrize("mode", MEMORY_MODES)
def test_placement_plan_values(mode):
    plan = placement_plan(mode)
    assert plan.mode == mode and plan.accelerator == "cuda"
    assert plan.placement == EXPECTED[mode]
    assert (plan.offload, plan.planner_offload, plan.swap_pipeline, plan.vae_slicing, plan.vae_tiling) == FLAGS[mode]
    assert plan.device_of("transformer", "denoise") == EXPECTED[mode]["denoise"]["transformer"]
    # another accelerator name is carried through; on the CPU everything is on the CPU
    assert placement_plan(mode, "cuda:1").placement["plan"]["vlm"] == "cuda:1"
    assert placement_plan(mode, "cpu").placement == {phase: ALL_CPU for phase in PHASES}


def test_unknown_mode_lists_modes():
    for call in (lambda: placement_plan("tiny"), lambda: apply_memory_mode(object(), "tiny", "cpu")):
        with pytest.raises(ValueError, match="full, balanced, low, minimal"):
            call()
    with pytest.raises(ValueError, match="phase"):
        placement_plan("full").device_of("vae", "sample")
    assert placement_plan("LOW").mode == "low"


def _draw(pipe):
    return pipe(
        images=[random_image(64, 64, seed=3)],
        prompt="a red cat",
        task="edit",
        num_inference_steps=2,
        max_area=SMALL,
        reference_max_area=SMALL,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images


@pytest.fixture(scope="module")
def full_image():
    from dreamomni2.testing import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    apply_memory_mode(pipe, "full", "cpu")
    image = _draw(pipe)
    assert image.shape == (1, 64, 64, 3)
    return image


def _group_hooked(module):
    return any(hasattr(m, "_diffusers_hook") for m in module.modules())


@pytest.mark.parametrize(
    "mode,hooks", [("balanced", None), ("low", None), ("minimal", None), ("low", True), ("minimal", True)]
)
def test_every_mode_on_cpu_matches_full(full_image, mode, hooks):
    """On the CPU the plan is logical (no hooks, no tiling) by default; the real diffusers hooks
    (model offload, leaf-level group offload) also run on the CPU and give the same image."""
    from dreamomni2.testing import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    plan = apply_memory_mode(pipe, mode, "cpu", offload_hooks=hooks)
    assert plan.mode == mode and pipe.vae.use_slicing and not pipe.vae.use_tiling
    if hooks:
        if mode == "low":
            assert pipe._all_hooks and str(pipe._offload_device).startswith("cpu")
        else:
            assert _group_hooked(pipe.transformer)
    else:
        assert not getattr(pipe, "_all_hooks", None) and not _group_hooked(pipe.transformer)
    np.testing.assert_allclose(_draw(pipe), full_image, atol=1e-6)


def test_vae_tiling_can_be_forced():
    from dreamomni2.testing import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    apply_memory_mode(pipe, "balanced", "cpu", vae_tiling=True)
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    pipe = build_tiny_pipeline()
    apply_memory_mode(pipe, "full", "cpu", vae_tiling=True)  # full never tiles
    assert not pipe.vae.use_tiling and not pipe.vae.use_slicing


class _FakePipe:
    def __init__(self):
        self.moves = []

    def to(self, device):
        self.moves.append(str(device))
        return self


class _FakeVLM:
    def __init__(self, device):
        self.device = device
        self.offloads = 0

    def offload(self):
        self.offloads += 1
        return self


@pytest.mark.parametrize("mode", MEMORY_MODES)
def test_phase_moves(mode):
    """balanced swaps the FLUX models out while an accelerator VLM plans; all but full offload the VLM."""
    plan = placement_plan(mode, "cuda")
    pipe, vlm = _FakePipe(), _FakeVLM("cuda")
    prepare_for_planning(pipe, vlm, plan, "cuda")
    prepare_for_denoising(pipe, vlm, plan, "cuda")
    assert pipe.moves == (["cpu", "cuda"] if mode == "balanced" else [])
    assert vlm.offloads == (0 if mode == "full" else 1)
    # a CPU planner, no planner or a remote planner never moves the pipeline
    for planner in (_FakeVLM("cpu"), None, object()):
        pipe = _FakePipe()
        prepare_for_planning(pipe, planner, plan, "cuda")
        prepare_for_denoising(pipe, planner, plan, "cuda")
        assert pipe.moves == []


@pytest.mark.parametrize("num_refs", [0, 1, 2, 4])
@pytest.mark.parametrize("planner", [True, False])
def test_peak_estimates_monotone(num_refs, planner):
    peaks = [estimate_peak_memory(m, num_refs=num_refs, planner=planner) for m in MEMORY_MODES]
    assert all(a >= b for a, b in zip(peaks, peaks[1:], strict=False)), peaks
    if planner:
        assert all(a > b for a, b in zip(peaks, peaks[1:], strict=False)), peaks


def test_peak_estimate_values():
    weights = {"vlm": 8.3e9, "te": 123e6, "te2": 4.7e9, "tr": 12e9, "vae": 84e6}
    full = estimate_peak_memory("full", planner=True, overhead_gib=0)
    assert full > 2 * sum(weights.values()) / 1024**3  # all weights plus activations
    assert full < 2 * sum(weights.values()) / 1024**3 + 5
    low = estimate_phase_memory("low", num_refs=1, overhead_gib=0)
    assert set(low) == set(PHASES)
    assert 2 * weights["tr"] / 1024**3 < low["denoise"] < 2 * weights["tr"] / 1024**3 + 3
    # more references -> more transformer tokens -> more activation memory
    assert estimate_peak_memory("low", num_refs=4) > estimate_peak_memory("low", num_refs=1)
    # FP8 weights halve the weight term
    assert estimate_peak_memory("low", bytes_per_param=1) < 0.6 * estimate_peak_memory("low")


def test_memory_table():
    table = memory_table_markdown()
    lines = table.splitlines()
    assert lines[0].startswith("| Mode |") and "no local planner" in lines[0]
    for mode in MEMORY_MODES:
        assert any(line.startswith(f"| `{mode}` |") for line in lines)
    assert f"{estimate_peak_memory('full', num_refs=1):.1f} GiB" in table
