import numpy as np
import pytest
import torch
from diffusers import FluxKontextPipeline
from diffusers.utils.torch_utils import randn_tensor

from dreamomni2.pipeline import DreamOmni2Pipeline
from tests.conftest import random_image

SMALL = 64 * 64


def run(pipe, images, seed=0, **kw):
    kw.setdefault("num_inference_steps", 2)
    kw.setdefault("max_area", SMALL)
    kw.setdefault("output_type", "np")
    return pipe(
        images=images, prompt=kw.pop("prompt", "a red cat"), generator=torch.Generator().manual_seed(seed), **kw
    ).images


class ReleaseReference(FluxKontextPipeline):
    """The release's multi-image algorithm, written for this test from its description:
    diffusers' Kontext ``__call__`` with ``prepare_latents`` looping over every image
    (index i + 1, column offset = sum of earlier packed widths, row offset unused)."""

    release_images: list = []

    def prepare_latents(
        self, image, batch_size, num_channels_latents, height, width, dtype, device, generator=None, latents=None
    ):
        height = 2 * (int(height) // (self.vae_scale_factor * 2))
        width = 2 * (int(width) // (self.vae_scale_factor * 2))
        all_latents, all_ids, w_offset = [], [], 0
        for i, img in enumerate(self.release_images):
            lat = self._encode_vae_image(img.to(device=device, dtype=dtype), generator=generator)
            lat = torch.cat([lat] * (batch_size // lat.shape[0]), dim=0)
            lh, lw = lat.shape[2:]
            all_latents.append(self._pack_latents(lat, batch_size, num_channels_latents, lh, lw))
            ids = self._prepare_latent_image_ids(batch_size, lh // 2, lw // 2, device, dtype)
            ids[..., 0] = i + 1
            ids[..., 2] += w_offset
            all_ids.append(ids)
            w_offset += lw // 2
        latent_ids = self._prepare_latent_image_ids(batch_size, height // 2, width // 2, device, dtype)
        noise = randn_tensor(
            (batch_size, num_channels_latents, height, width), generator=generator, device=device, dtype=dtype
        )
        noise = self._pack_latents(noise, batch_size, num_channels_latents, height, width)
        return noise, torch.cat(all_latents, dim=1), latent_ids, torch.cat(all_ids, dim=0)


def release_output(pipe, images, seed=0, auto_resize=True, **kw):
    ref = ReleaseReference(**pipe.components)
    ref.set_progress_bar_config(disable=True)
    multiple = pipe.vae_scale_factor * 2
    prepared = []
    for img in images:
        w, h = img.size
        if auto_resize:
            from diffusers.pipelines.flux.pipeline_flux_kontext import PREFERRED_KONTEXT_RESOLUTIONS

            w, h = w // multiple * multiple, h // multiple * multiple  # get_default_height_width floors first
            _, w, h = min((abs(w / h - a / b), a, b) for a, b in PREFERRED_KONTEXT_RESOLUTIONS)
        w, h = w // multiple * multiple, h // multiple * multiple
        prepared.append(ref.image_processor.preprocess(ref.image_processor.resize(img, h, w), h, w))
    ref.release_images = prepared
    return ref(
        image=None,
        prompt=kw.pop("prompt", "a red cat"),
        generator=torch.Generator().manual_seed(seed),
        num_inference_steps=2,
        max_area=SMALL,
        output_type="np",
        **kw,
    ).images


def test_one_image_matches_flux_kontext(tiny_pipe):
    img = random_image(48, 40, seed=1)
    kontext = FluxKontextPipeline(**tiny_pipe.components)
    kontext.set_progress_bar_config(disable=True)
    for auto in (False, True):
        want = kontext(
            image=img,
            prompt="a red cat",
            generator=torch.Generator().manual_seed(3),
            num_inference_steps=2,
            max_area=SMALL,
            output_type="np",
            _auto_resize=auto,
        ).images
        got = run(tiny_pipe, [img], seed=3, _auto_resize=auto)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_one_image_true_cfg_matches_flux_kontext(tiny_pipe):
    img = random_image(32, 32, seed=2)
    kontext = FluxKontextPipeline(**tiny_pipe.components)
    kontext.set_progress_bar_config(disable=True)
    want = kontext(
        image=img,
        prompt="a cat",
        negative_prompt="blurry",
        true_cfg_scale=4.0,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        max_area=SMALL,
        output_type="np",
        _auto_resize=False,
    ).images
    got = run(tiny_pipe, [img], prompt="a cat", negative_prompt="blurry", true_cfg_scale=4.0, _auto_resize=False)
    np.testing.assert_allclose(got, want, atol=1e-5)
    plain = run(tiny_pipe, [img], prompt="a cat", _auto_resize=False)
    assert np.abs(plain - got).max() > 1e-3  # CFG really did something


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_matches_release_algorithm_for_mixed_sizes(tiny_pipe, n):
    sizes = [(48, 32), (32, 64), (64, 48), (32, 32), (80, 48)][:n]
    imgs = [random_image(w, h, seed=10 + i) for i, (w, h) in enumerate(sizes)]
    want = release_output(tiny_pipe, imgs, auto_resize=False, _auto_resize=False)
    got = run(tiny_pipe, imgs, _auto_resize=False)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_matches_release_algorithm_with_auto_resize(tiny_pipe):
    imgs = [random_image(40, 60, seed=1), random_image(60, 40, seed=2)]
    np.testing.assert_allclose(run(tiny_pipe, imgs), release_output(tiny_pipe, imgs), atol=1e-5)


def test_id_policy_changes_output(tiny_pipe):
    imgs = [random_image(32, 32, seed=1), random_image(32, 32, seed=2)]
    a = run(tiny_pipe, imgs, _auto_resize=False)
    b = run(tiny_pipe, imgs, _auto_resize=False, id_policy="kontext")
    assert np.abs(a - b).max() > 1e-4
    np.testing.assert_array_equal(a, run(tiny_pipe, imgs, _auto_resize=False, id_policy="dreamomni2"))


def test_batch_equals_single(tiny_pipe):
    imgs = [random_image(32, 48, seed=4), random_image(48, 32, seed=5)]
    common = dict(images=imgs, num_inference_steps=2, max_area=SMALL, output_type="np", _auto_resize=False)
    batch = tiny_pipe(
        prompt=["a red cat", "a blue dog"],
        generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)],
        **common,
    ).images
    one = tiny_pipe(prompt="a red cat", generator=torch.Generator().manual_seed(1), **common).images
    two = tiny_pipe(prompt="a blue dog", generator=torch.Generator().manual_seed(2), **common).images
    np.testing.assert_allclose(batch[0], one[0], atol=1e-5)
    np.testing.assert_allclose(batch[1], two[0], atol=1e-5)
    per_prompt = tiny_pipe(
        prompt="a red cat",
        num_images_per_prompt=2,
        generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)],
        **common,
    ).images
    np.testing.assert_allclose(per_prompt[0], one[0], atol=1e-5)


def test_each_image_encoded_once_and_prompt_once(tiny_pipe):
    calls = {"vae": 0, "clip": 0, "t5": 0}

    def counter(key):
        def hook(*_):
            calls[key] += 1

        return hook

    hooks = [
        tiny_pipe.vae.encoder.register_forward_hook(counter("vae")),
        tiny_pipe.text_encoder.register_forward_hook(counter("clip")),
        tiny_pipe.text_encoder_2.register_forward_hook(counter("t5")),
    ]
    try:
        imgs = [random_image(32, 32, seed=i) for i in range(3)]
        run(tiny_pipe, imgs, num_images_per_prompt=2, _auto_resize=False, negative_prompt="x", true_cfg_scale=2.0)
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"vae": 3, "clip": 2, "t5": 2}  # prompt + negative prompt, each once


def test_task_sizes(tiny_pipe):
    img = random_image(96, 64, seed=0)
    assert run(tiny_pipe, [img], task="edit").shape == (1, 48, 64, 3)  # 1248x832 snapped, capped to 64*64 area
    assert run(tiny_pipe, [img], task="generate").shape == (1, 64, 64, 3)  # 1024^2 default at max_area
    assert run(tiny_pipe, [img], task="generate", width=128, height=64).shape == (1, 32, 80, 3)
    assert run(tiny_pipe, [img], task="edit", width=64, height=128).shape == (1, 80, 32, 3)
    assert run(tiny_pipe, [], task="generate").shape == (1, 64, 64, 3)


def test_callback_and_latent_output(tiny_pipe):
    seen = []

    def cb(pipe, i, t, kw):
        seen.append((i, kw["latents"].shape))
        return kw

    lat = run(tiny_pipe, [random_image(32, 32)], callback_on_step_end=cb, output_type="latent", _auto_resize=False)
    assert [i for i, _ in seen] == [0, 1]
    assert lat.shape == seen[0][1] == (1, 16, 16)  # 64x64 px -> 8x8 latent -> 16 tokens of 4*4 channels


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(images=[], task="edit"), "needs at least one image"),
        (dict(images=[random_image(32, 32)] * 6), "Got 6 images but at most 5"),
        (dict(images=[random_image(32, 32)] * 3, max_images=2), "at most 2"),
        (dict(images=[random_image(8, 40)], _auto_resize=False), "Image 1 is 8x40 px, smaller than one latent patch"),
        (dict(images=[random_image(32, 32)], num_inference_steps=0), "num_inference_steps must be a positive"),
        (dict(images=[random_image(32, 32)], id_policy="uno"), "Unsupported id policy 'uno'"),
        (dict(images=[random_image(32, 32)], task="inpaint"), "Unknown task 'inpaint'"),
        (
            dict(images=[random_image(32, 32)], generator=[torch.Generator()] * 3),
            "3 generators for an effective batch of 1",
        ),
        (dict(images=[random_image(32, 32)], prompt=["a", "b"], negative_prompt=["c"], true_cfg_scale=2.0), "batch"),
    ],
)
def test_bad_inputs_raise_value_error(tiny_pipe, kwargs, message):
    kwargs.setdefault("prompt", "a cat")
    kwargs.setdefault("num_inference_steps", 1)
    with pytest.raises(ValueError, match=message):
        tiny_pipe(max_area=SMALL, output_type="np", **kwargs)


def test_save_load_round_trip(tiny_pipe, tmp_path):
    imgs = [random_image(32, 48, seed=1), random_image(48, 32, seed=2)]
    tiny_pipe.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model_index.json").is_file()
    assert not list(tmp_path.rglob("*.bin")) and list(tmp_path.rglob("*.safetensors"))
    loaded = DreamOmni2Pipeline.from_pretrained(tmp_path, local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(
        run(loaded, imgs, _auto_resize=False), run(tiny_pipe, imgs, _auto_resize=False), atol=1e-5
    )


def test_release_lora_layout_loads_and_switches(tmp_path):
    """edit_lora/ and gen_lora/ in diffusers LoRA format load as named adapters and change the output."""
    from peft import LoraConfig, get_peft_model_state_dict

    from dreamomni2.testing import build_tiny_components, build_tiny_pipeline

    for name, seed in (("edit_lora", 1), ("gen_lora", 2)):
        comps = build_tiny_components()
        tr = comps["transformer"]
        tr.add_adapter(
            LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
        )
        torch.manual_seed(seed)
        for n, p in tr.named_parameters():
            if "lora_B" in n:
                p.data.normal_(0, 0.5)
        DreamOmni2Pipeline.save_lora_weights(tmp_path / name, transformer_lora_layers=get_peft_model_state_dict(tr))
        assert (tmp_path / name / "pytorch_lora_weights.safetensors").is_file()

    pipe = build_tiny_pipeline()
    imgs = [random_image(32, 32, seed=1)]
    base = run(pipe, imgs, _auto_resize=False)
    pipe.load_lora_weights(tmp_path / "edit_lora", adapter_name="edit")
    pipe.load_lora_weights(tmp_path / "gen_lora", adapter_name="gen")
    pipe.set_adapters("edit")
    edit = run(pipe, imgs, _auto_resize=False)
    pipe.set_adapters("gen")
    gen = run(pipe, imgs, _auto_resize=False)
    assert np.abs(edit - base).max() > 1e-3 and np.abs(gen - edit).max() > 1e-3
    pipe.set_adapters("edit")
    np.testing.assert_allclose(run(pipe, imgs, _auto_resize=False), edit, atol=1e-6)
    pipe.disable_lora()
    np.testing.assert_allclose(run(pipe, imgs, _auto_resize=False), base, atol=1e-6)
