"""load_release on a fake release folder: tiny base, two random LoRAs, optionally a tiny Qwen2.5-VL."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamomni2.pipeline import DreamOmni2Pipeline
from dreamomni2.planner import parse_reply
from dreamomni2.release import LORA_FILES, check_release_folder, load_release
from tests.conftest import random_image

SMALL = 64 * 64
RUN_KW = dict(num_inference_steps=2, max_area=SMALL, reference_max_area=SMALL, output_type="np")


def _save_lora(folder, seed):
    from peft import LoraConfig, get_peft_model_state_dict

    from dreamomni2.testing import build_tiny_components

    tr = build_tiny_components()["transformer"]
    tr.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, p in tr.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.5)
    DreamOmni2Pipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(tr))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``(base, release)``: a tiny base pipeline and a release folder with edit/gen LoRAs and a tiny VLM."""
    from dreamomni2.planner.testing import build_tiny_qwen_vl
    from dreamomni2.testing import save_tiny_pipeline

    root = tmp_path_factory.mktemp("dreamomni2")
    base = save_tiny_pipeline(root / "base")
    release = root / "release"
    _save_lora(release / "edit_lora", seed=1)
    _save_lora(release / "gen_lora", seed=2)
    build_tiny_qwen_vl(release / "vlm-model")
    return base, release


@pytest.fixture(scope="module")
def loaded(folders):
    """A release loaded once (planner "none"), with counts of base loads and LoRA loads."""
    base, release = folders
    counts = {"from_pretrained": 0, "load_lora_weights": 0}
    orig_fp, orig_lora = DreamOmni2Pipeline.from_pretrained.__func__, DreamOmni2Pipeline.load_lora_weights

    def from_pretrained(cls, *args, **kwargs):
        counts["from_pretrained"] += 1
        return orig_fp(cls, *args, **kwargs)

    def load_lora_weights(self, *args, **kwargs):
        counts["load_lora_weights"] += 1
        return orig_lora(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DreamOmni2Pipeline, "from_pretrained", classmethod(from_pretrained))
        mp.setattr(DreamOmni2Pipeline, "load_lora_weights", load_lora_weights)
        rel = load_release(base, release, device="cpu", dtype=torch.float32, memory="full", planner="none")
        rel.pipe.set_progress_bar_config(disable=True)
        yield rel, counts


def _run(rel, task, seed=0):
    images = [random_image(64, 64, seed=5)]
    image, planned = rel.run(images, "make it red", task=task, generator=torch.Generator().manual_seed(seed), **RUN_KW)
    return image, planned


def test_loads_base_and_both_loras_once(loaded):
    rel, counts = loaded
    assert counts == {"from_pretrained": 1, "load_lora_weights": 2}
    assert rel.planner is None and rel.memory.mode == "full" and rel.active_task == "edit"
    assert sorted(rel.pipe.get_list_adapters()["transformer"]) == ["edit", "generate"]
    assert rel.pipe.get_active_adapters() == ["edit"]


def test_switching_adapters_without_reloading(loaded):
    rel, counts = loaded
    transformer = rel.pipe.transformer
    edit, planned = _run(rel, "edit")
    assert edit.shape == (64, 64, 3) and rel.active_task == "edit"
    assert planned.prompt == "make it red" and planned.backend == "none"
    gen, _ = _run(rel, "generate")
    assert rel.active_task == "generate" and rel.pipe.get_active_adapters() == ["generate"]
    assert np.abs(gen - edit).max() > 1e-3
    again, _ = _run(rel, "edit")
    np.testing.assert_allclose(again, edit, atol=1e-6)
    assert rel.pipe.transformer is transformer
    assert counts == {"from_pretrained": 1, "load_lora_weights": 2}


def test_adapter_alone_changes_the_output(loaded):
    """Same pipeline call (task="edit"), only the active adapter differs."""
    rel, _ = loaded
    kw = dict(images=[random_image(64, 64, seed=5)], prompt="make it red", task="edit", **RUN_KW)
    outs = {}
    for task in ("generate", "edit", "generate"):
        rel.use_task(task)
        out = rel.pipe(generator=torch.Generator().manual_seed(0), **kw).images[0]
        if task in outs:
            np.testing.assert_allclose(out, outs[task], atol=1e-6)
        outs[task] = out
    assert np.abs(outs["edit"] - outs["generate"]).max() > 1e-3


def test_use_task_is_a_noop_when_active(loaded, monkeypatch):
    rel, _ = loaded
    rel.use_task("edit")
    calls = []
    monkeypatch.setattr(rel.pipe, "set_adapters", lambda *a, **k: calls.append(a))
    assert rel.use_task("editing") == "edit" and calls == []
    with pytest.raises(ValueError, match="task"):
        rel.use_task("inpaint")


def test_run_rejects_pipeline_prompt(loaded):
    rel, _ = loaded
    with pytest.raises(TypeError, match="prompt"):
        rel.run([random_image(64, 64)], "x", task="edit", prompt="y")


def _fake_layout(root, files):
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    return root


def test_missing_release_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_release_folder(tmp_path / "nowhere")
    only_edit = _fake_layout(tmp_path / "a", [LORA_FILES["edit"]])
    with pytest.raises(FileNotFoundError) as err:
        check_release_folder(only_edit)
    assert str(only_edit / "gen_lora" / "pytorch_lora_weights.safetensors") + " is missing" in str(err.value)
    only_gen = _fake_layout(tmp_path / "b", [LORA_FILES["generate"]])
    with pytest.raises(FileNotFoundError, match="edit_lora/pytorch_lora_weights.safetensors is missing"):
        load_release(tmp_path / "base", only_gen, planner="none")
    both = _fake_layout(tmp_path / "c", LORA_FILES.values())
    assert check_release_folder(both)["vlm"] is None  # the VLM is optional ...
    with pytest.raises(FileNotFoundError, match="vlm-model is missing"):  # ... unless the planner is requested
        load_release(tmp_path / "base", both, planner="release")
    (both / "vlm-model").mkdir()
    with pytest.raises(FileNotFoundError, match="vlm-model/config.json is missing"):
        check_release_folder(both, require_vlm=True)


def test_missing_base_is_a_clear_error(folders, tmp_path):
    _, release = folders
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_release(tmp_path / "no-base", release, planner="none")
    with pytest.raises(ValueError, match="memory mode"):
        load_release(tmp_path / "no-base", release, memory="huge")


def test_run_with_tiny_vlm_planner(folders, monkeypatch):
    """planner="auto" picks the release's vlm-model/; balanced mode offloads it before denoising."""
    from dreamomni2.planner import QwenPlanner

    base, release = folders
    rel = load_release(
        base,
        release,
        device="cpu",
        memory="balanced",
        planner="auto",
        planner_kwargs={"max_new_tokens": 6, "max_area": SMALL},
    )
    rel.pipe.set_progress_bar_config(disable=True)
    assert isinstance(rel.planner, QwenPlanner) and rel.planner.model_dir == str(release / "vlm-model")
    offloads = []
    orig = rel.planner.offload
    monkeypatch.setattr(rel.planner, "offload", lambda: offloads.append(1) or orig())
    image, planned = _run(rel, "generate")
    assert planned.backend == "qwen" and isinstance(planned.prompt, str) and planned.prompt
    assert (planned.prompt, planned.fell_back) == parse_reply(planned.raw_reply, "make it red")
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()
    assert offloads == [1] and rel.active_task == "generate"


@pytest.mark.parametrize("memory", ["low", "minimal"])
def test_offload_hooks_keep_adapters_and_outputs(folders, loaded, memory):
    """The real offload hooks (model / leaf-level group offload, run on the CPU) with both adapters loaded
    give the same images as ``full`` for each task, switching back and forth."""
    base, release = folders
    ref, _ = loaded
    rel = load_release(base, release, device="cpu", memory=memory, planner="none", offload_hooks=True)
    rel.pipe.set_progress_bar_config(disable=True)
    assert rel.memory.offload == {"low": "model", "minimal": "group"}[memory]
    for task in ("generate", "edit", "generate"):
        # two separately loaded pipelines: float32 round-off differs at the 1e-6 level
        np.testing.assert_allclose(_run(rel, task)[0], _run(ref, task)[0], atol=1e-5)
