"""The mini-model recipe end to end at toy size: one command builds a loadable, complete pipeline."""

import json
from collections import Counter

import pytest
import torch

from dreamomni2.mini.groups import GROUP_NAMES, group_name
from dreamomni2.mini.recipe import ABSTRACT_MIX, CONTINUATION, MODEL_DEFAULTS, Stage, build_mini_model
from dreamomni2.pipeline import DreamOmni2Pipeline


def test_recipe_builds_a_complete_pipeline(tmp_path, capsys):
    out = tmp_path / "model"
    stages = (Stage(2, cases=12), Stage(2, lr=5e-4, cases=12, mix={"edit/concrete": 0, "edit/abstract": 0,
                                                                      "generate/concrete": 0}))  # fmt: skip
    stats = build_mini_model(tmp_path / "work", out, steps=3, n_cases=12, vae_steps=2, lr=1e-3, stages=stages)
    assert stats["steps"] == 3 and stats["vae_steps"] == 2
    assert [st["steps"] for st in stats["stages"]] == [2, 2] and stats["stages"][1]["lr"] == 5e-4
    assert stats["stage1_seconds"] > 0 and stats["stage2_seconds"] > 0 and stats["stage3_seconds"] > 0
    assert stats["total_seconds"] >= stats["stage1_seconds"] + stats["stage2_seconds"] + stats["stage3_seconds"]
    saved = json.loads((out / "recipe_stats.json").read_text())
    assert saved["n_cases"] == 12 and saved["stages"][0] == {"steps": 2, "lr": 1e-3, "cases": 12, "mix": ABSTRACT_MIX}
    # each continuation stage trains on its own draw (seed + k - 1), mixed as it says
    from dreamomni2.mini.manifest import read_manifest

    def groups(folder):
        rows = read_manifest(tmp_path / "work" / folder / "manifest.jsonl")
        return Counter(group_name(r["task"], r["category"]) for r in rows)

    # one cycle is [edit/concrete, edit/abstract x3, generate/concrete, generate/abstract x5]; 12 = 10 + 2
    assert groups("data-s2-12-mix1-3-1-5") == {"edit/concrete": 2, "edit/abstract": 4, "generate/concrete": 1,
                                               "generate/abstract": 5}  # fmt: skip
    assert groups("data-s3-12-mix0-0-0-1") == {"generate/abstract": 12}
    run3 = tmp_path / "work" / "run-dreamomni2-3-s2-2-mix1-3-1-5-s3-2-mix0-0-0-1"
    assert (run3 / "final" / "model_index.json").is_file()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {row["stage"] for row in log} == {1, 2, 3} and all("loss" in row for row in log)
    assert json.loads((out / "dreamomni2.json").read_text()) == {**MODEL_DEFAULTS, "id_policy": "dreamomni2"}
    pipe = DreamOmni2Pipeline.from_pretrained(out, local_files_only=True)
    assert pipe.vae_scale_factor == 4  # 3 VAE blocks: 32 px -> 8x8 latents -> 16 tokens per image
    assert pipe.transformer.config.in_channels == 64
    pipe.set_progress_bar_config(disable=True)
    from dreamomni2.mini.scene import Obj, Scene, render

    img = render(Scene(Obj("circle", "red", "solid", "large"), "light"))
    with torch.no_grad():
        image = pipe(images=[img], prompt="Generate the object from image 1 on a dark background.", task="generate",
                     width=32, height=32, num_inference_steps=2, _auto_resize=False, max_area=1024,
                     generator=torch.Generator().manual_seed(0)).images[0]  # fmt: skip
    assert image.size == (32, 32)
    # a second run reuses every finished part (base, data, stage) and only copies the result
    again = build_mini_model(tmp_path / "work", out, steps=3, n_cases=12, vae_steps=2, lr=1e-3, stages=stages)
    assert not any(key.endswith("_seconds") and key.startswith("stage") for key in again)
    # a finished stage trained with other settings is refused, not silently reused
    with pytest.raises(ValueError, match="was trained with"):
        build_mini_model(tmp_path / "work", out, steps=3, n_cases=12, vae_steps=2, lr=1e-3,
                         stages=(Stage(2, lr=2e-4, cases=12), stages[1]))  # fmt: skip
    # a work folder whose base predates the order-aware T5 is refused, with a message (no silent reuse)
    from safetensors.torch import load_file, save_file

    from dreamomni2.mini.recipe import main as recipe_main

    t5_file = tmp_path / "work" / "base" / "text_encoder_2" / "model.safetensors"
    weights = load_file(t5_file)
    weights["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].normal_()
    save_file(weights, t5_file)
    argv = ["--work", str(tmp_path / "work"), "--out", str(out), "--steps", "3", "--cases", "12", "--vae-steps", "2",
            "--stage", "2:1e-3:1,3,1,5:12"]  # fmt: skip
    assert recipe_main(argv) == 2
    assert "built by an older recipe" in capsys.readouterr().err


def test_order_aware_t5_binds_numbers_to_attributes():
    """A random T5 is nearly a bag of words; the mini T5's position bias makes 'image 2' know what it is for."""
    from transformers import T5Config, T5EncoderModel

    from dreamomni2.mini.recipe import T5_HEAD_OFFSETS, make_order_aware, mini_t5_tokenizer

    tok = mini_t5_tokenizer()
    torch.manual_seed(0)
    t5 = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=16, pad_token_id=0, eos_token_id=1)).eval()  # fmt: skip
    one = "Generate a red object with the shape of image 2 and the pattern of image 3 on a dark background."
    swapped = one.replace("image 2", "image #").replace("image 3", "image 2").replace("image #", "image 3")

    def change_of_2() -> float:
        feats = []
        for text in (one, swapped):
            ids = tok(text, return_tensors="pt").input_ids
            with torch.no_grad():
                hidden = t5(ids).last_hidden_state[0]
            feats.append(hidden[tok.convert_ids_to_tokens(ids[0]).index("▁2")])
        return float((feats[0] - feats[1]).norm() / feats[0].norm())

    before = change_of_2()
    make_order_aware(t5)
    after = change_of_2()
    assert before < 0.15 < 0.5 < after, (before, after)
    bias = t5.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
    # exact buckets: offset -k (k < 4) is bucket k, offset +k is bucket 8 + k
    assert [int(bias[:, h].argmax()) for h in range(4)] == [1, 2, 3, 9] and len(T5_HEAD_OFFSETS) == 4
    assert int((bias != 0).sum()) == 4


def test_stage_parsing_and_the_shipped_continuation(capsys):
    from dreamomni2.mini.recipe import main as recipe_main

    assert Stage.parse("2000") == Stage(2000)
    assert Stage.parse("2000:5e-4:1,0,1,8:9000") == Stage(
        2000, 5e-4, 9000, {"edit/concrete": 1, "edit/abstract": 0, "generate/concrete": 1, "generate/abstract": 8}
    )
    assert Stage.parse("10:1e-3:same").mix is None and Stage(10, mix=None).tag() == "same"
    assert ABSTRACT_MIX == {"edit/concrete": 1, "edit/abstract": 3, "generate/concrete": 1, "generate/abstract": 5}
    assert tuple(ABSTRACT_MIX) == GROUP_NAMES  # keyed in group order, as tags and --stage MIX read it
    assert Stage(10).tag() == "1-3-1-5" and Stage(10).mix == ABSTRACT_MIX
    assert Stage(10, mix={"edit/concrete": 2}).tag() == "2-1-1-1"  # a group not named keeps weight 1
    assert [st.steps for st in CONTINUATION] == [3000, 2000, 2000, 2000] and all(
        st.mix == ABSTRACT_MIX for st in CONTINUATION
    )
    with pytest.raises(ValueError, match="integer weights"):
        Stage(10, mix={"edit/concrete": 1.5})
    for bad in ("", "x", "100:fast", "100:1e-3:1,2,3", "0", "100:1e-3:0,0,0,0", "1:2:3:4:5"):
        with pytest.raises(ValueError, match="--stage wants|a stage"):
            Stage.parse(bad)
    with pytest.raises(SystemExit) as exit_info:  # bad stages fail at once, before any training
        recipe_main(["--work", "unused", "--stage", "100:1e-3:1,2,3"])
    assert exit_info.value.code == 2
    assert "--stage wants STEPS[:LR[:MIX[:CASES]]]" in capsys.readouterr().err


@pytest.mark.slow  # ~15 s: two trainer processes
def test_recipe_trains_a_stage_in_two_processes(tmp_path):
    """--workers 2 runs each stage as 2 CPU processes (torch.distributed.run) and still writes a whole pipeline."""
    out = tmp_path / "model"
    stats = build_mini_model(tmp_path / "work", out, steps=2, n_cases=8, vae_steps=2, stages=(), workers=2)
    assert stats["workers"] == 2 and stats["stage1_seconds"] > 0 and stats["stage1_samples_per_second"] > 0
    run = tmp_path / "work" / "run-dreamomni2-2"
    assert (run / "job.yaml").is_file() and (run / "final" / "model_index.json").is_file()
    assert (out / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    with pytest.raises(ValueError, match="workers must be >= 1 and divide the batch of 32"):
        build_mini_model(tmp_path / "work", out, steps=2, n_cases=8, vae_steps=2, stages=(), workers=0)
