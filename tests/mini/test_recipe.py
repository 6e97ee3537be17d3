"""The mini-model recipe end to end at toy size: one command builds a loadable, complete pipeline."""

import json

import torch

from dreamomni2.mini.recipe import MODEL_DEFAULTS, build_mini_model
from dreamomni2.pipeline import DreamOmni2Pipeline


def test_recipe_builds_a_complete_pipeline(tmp_path):
    out = tmp_path / "model"
    stats = build_mini_model(tmp_path / "work", out, steps=3, n_cases=12, vae_steps=2, lr=1e-3, stage2_steps=2)
    assert stats["steps"] == 3 and stats["vae_steps"] == 2 and stats["stage2_steps"] == 2
    assert stats["stage1_seconds"] > 0 and stats["stage2_seconds"] > 0
    assert stats["total_seconds"] >= stats["stage1_seconds"] + stats["stage2_seconds"]
    saved = json.loads((out / "recipe_stats.json").read_text())
    assert saved["n_cases"] == 12
    assert json.loads((out / "dreamomni2.json").read_text()) == {**MODEL_DEFAULTS, "id_policy": "dreamomni2"}
    pipe = DreamOmni2Pipeline.from_pretrained(out, local_files_only=True)
    assert pipe.vae_scale_factor == 4  # 3 VAE blocks: 32 px -> 8x8 latents -> 16 tokens per image
    assert pipe.transformer.config.in_channels == 64
    pipe.set_progress_bar_config(disable=True)
    from dreamomni2.mini.world import Obj, Scene, render

    img = render(Scene(Obj("circle", "red", "solid", "large"), "light"))
    with torch.no_grad():
        image = pipe(images=[img], prompt="Generate the object from image 1 on a dark background.", task="generate",
                     width=32, height=32, num_inference_steps=2, _auto_resize=False, max_area=1024,
                     generator=torch.Generator().manual_seed(0)).images[0]  # fmt: skip
    assert image.size == (32, 32)
    # a second run reuses every finished part (base, data, stage) and only copies the result
    again = build_mini_model(tmp_path / "work", out, steps=3, n_cases=12, vae_steps=2, lr=1e-3, stage2_steps=2)
    assert "stage1_seconds" not in again and "stage2_seconds" not in again
