"""Inputs of the golden outputs in tests/data/golden (shared by make_golden.py and tests/test_session.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.conftest import random_image

SMALL = 64 * 64


def tiny_pics(work: Path) -> list[str]:
    """Three random PNGs of mixed sizes, and two mini-world renders, in ``work``."""
    from dreamomni2.mini.world import Obj, Scene, render

    paths = []
    for i, (w, h) in enumerate([(96, 64), (64, 64), (48, 80)]):
        p = work / f"im{i}.png"
        random_image(w, h, seed=i).save(p)
        paths.append(str(p))
    scenes = [
        Scene(Obj("circle", "red", "solid", "large"), "light"),
        Scene(Obj("square", "blue", "stripes", "small"), "dark"),
    ]
    for i, scene in enumerate(scenes):
        p = work / f"scene{i}.png"
        render(scene, 32).save(p)
        paths.append(str(p))
    return paths


def cli_cases(work: Path) -> dict[str, list[str]]:
    """Name -> CLI argv (without ``-o``) for the golden CLI outputs."""
    from dreamomni2.testing import save_tiny_pipeline

    tiny = work / "tiny"
    if not (tiny / "model_index.json").is_file():
        save_tiny_pipeline(tiny, seed=0)
    im = [str(work / f"im{i}.png") for i in range(3)]
    sc = [str(work / f"scene{i}.png") for i in range(2)]
    return {
        "mini_edit": ["edit", *sc, "-i", "Replace the object in the first image with the object in the second image."],
        "mini_generate": ["generate", sc[1], "-i", "The object in the first image on a warm background.",
                          "--seed", "3"],
        "mini_edit_planned": ["edit", *sc, "-i", "give the 1st pic the colour of the second picture"],
        "tiny_edit": ["edit", *im, "-i", "make it red", "--model", str(tiny), "--steps", "2", "--max-area", str(SMALL)],
        "tiny_generate": ["generate", *im[:2], "-i", "a cat", "--model", str(tiny), "--steps", "3", "--size", "64x48",
                          "--max-area", str(SMALL), "--seed", "7", "--id-policy", "diagonal"],
    }  # fmt: skip


def release_folders(work: Path) -> tuple[Path, Path]:
    """A tiny base pipeline folder and a release folder with two random LoRAs (no VLM)."""
    from peft import LoraConfig, get_peft_model_state_dict

    from dreamomni2.pipeline import DreamOmni2Pipeline
    from dreamomni2.testing import build_tiny_components, save_tiny_pipeline

    base = work / "base"
    if not (base / "model_index.json").is_file():
        save_tiny_pipeline(base)
    release = work / "release"
    for sub, seed in (("edit_lora", 1), ("gen_lora", 2)):
        tr = build_tiny_components()["transformer"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # lora_A's random init and lora_B's values both from this seed
            tr.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                      init_lora_weights=False))  # fmt: skip
            for name, p in tr.named_parameters():
                if "lora_B" in name:
                    p.data.normal_(0, 0.5)
        DreamOmni2Pipeline.save_lora_weights(release / sub, transformer_lora_layers=get_peft_model_state_dict(tr))
    return base, release


def release_runs() -> dict[str, tuple]:
    """Name -> (images, instruction, task, pipeline kwargs) for the golden release outputs."""
    kw = dict(num_inference_steps=2, max_area=SMALL, reference_max_area=SMALL, output_type="np")
    two = [random_image(64, 64, seed=5), random_image(48, 80, seed=6)]
    return {
        "edit": (two, "make it red", "edit", dict(kw, generator=torch.Generator().manual_seed(0))),
        "generate": (two[:1], "a dog", "generate",
                     dict(kw, height=48, width=64, generator=torch.Generator().manual_seed(1))),
    }  # fmt: skip
