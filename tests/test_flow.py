"""dreamomni2.flow: the one model call; the trainer's prediction at sigma equals the pipeline's at 1000 sigma."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from dreamomni2 import flow
from dreamomni2.packing import pack_latents, packed_size
from dreamomni2.pipeline import DreamOmni2Pipeline
from dreamomni2.train import loss
from tests.conftest import random_image


def _encode(pipe, images):
    prepared = pipe.prepare_images(images, auto_resize=False)
    return pipe.encode_images(prepared, torch.device("cpu"), torch.float32)


@pytest.mark.parametrize(
    ("ref_sizes", "sigma", "policy"),
    [
        ([(32, 32)], 0.8, "dreamomni2"),
        ([(64, 32), (32, 48)], 0.3, "dreamomni2"),
        ([(48, 32), (32, 32), (32, 64)], 0.55, "diagonal"),
        ([(32, 48), (64, 32)], 1.0, "kontext"),
    ],
)
def test_training_prediction_equals_pipeline_prediction(tiny_pipe, ref_sizes, sigma, policy):
    pipe = tiny_pipe
    refs = _encode(pipe, [random_image(w, h, seed=i) for i, (w, h) in enumerate(ref_sizes)])
    gen = torch.Generator().manual_seed(0)
    c = pipe.latent_channels
    target = torch.randn(2, c, 6, 4, generator=gen)  # [B, C, H, W] scaled latents of a 48x32 target
    ref_batch = [r.expand(2, -1, -1, -1).clone() for r in refs]
    noise = torch.randn(2, 6 * 4 // 4, 4 * c, generator=gen)
    cond = pipe.encode_prompt(prompt=["make it red", "a cat"], prompt_2=None, device="cpu", max_sequence_length=16)
    sigmas = torch.full((2,), sigma)

    pred_train, target_v = loss.training_prediction(
        pipe.transformer, target, ref_batch, cond[0], cond[1], noise, sigmas, guidance=3.5, id_policy=policy
    )
    x_t = (1 - sigma) * pack_latents(target) + sigma * noise
    ref_tokens = pipe.prepare_reference_tokens(refs, 2, policy, packed_size(6, 4))
    ids = torch.cat([pipe.prepare_target(2, 48, 32, torch.float32, "cpu", None, x_t)[1], ref_tokens.ids])
    guidance = torch.full([1], 3.5, dtype=torch.float32)
    with torch.no_grad():
        pred_pipe = pipe._predict(x_t, ref_tokens, torch.tensor(1000.0 * sigma), guidance, cond, ids)
    assert pred_train.shape == pred_pipe.shape == (2, 6, 4 * c)
    torch.testing.assert_close(pred_train.detach(), pred_pipe, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(target_v, noise - pack_latents(target))
    assert pred_pipe.abs().max() > 0.01  # not a vacuous comparison of zeros


def test_pipeline_and_loss_call_the_same_function():
    assert "predict_velocity(" in inspect.getsource(DreamOmni2Pipeline._predict)
    assert "predict_velocity(" in inspect.getsource(loss.training_prediction)
    assert loss.predict_velocity is flow.predict_velocity
    import dreamomni2.pipeline as pipeline_module

    assert pipeline_module.predict_velocity is flow.predict_velocity


def test_cfg_rows_repeat_image_tokens(tiny_pipe):
    """Two prompt sets (cond + uncond) for one latent batch give each set's single-set prediction."""
    pipe = tiny_pipe
    c = pipe.latent_channels
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 4 * c, generator=gen)
    ids = pipe.prepare_target(1, 32, 32, torch.float32, "cpu", None, x)[1]
    pos = pipe.encode_prompt(prompt="red", prompt_2=None, device="cpu", max_sequence_length=8)
    neg = pipe.encode_prompt(prompt="blue", prompt_2=None, device="cpu", max_sequence_length=8)
    both = (torch.cat([pos[0], neg[0]]), torch.cat([pos[1], neg[1]]))
    sigma = torch.tensor([0.5])
    with torch.no_grad():
        joint = flow.predict_velocity(pipe.transformer, x, None, ids, *both, sigma=sigma, guidance=2.0)
        single = [flow.predict_velocity(pipe.transformer, x, None, ids, p[0], p[1], sigma=sigma, guidance=2.0)
                  for p in (pos, neg)]  # fmt: skip
    torch.testing.assert_close(joint, torch.cat(single), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(single[0], single[1])


def test_noisy_latents_endpoints_and_target():
    x0, noise = torch.ones(2, 3, 4), torch.full((2, 3, 4), 3.0)
    torch.testing.assert_close(flow.noisy_latents(x0, noise, torch.tensor([0.0, 1.0]))[0], x0[0])
    torch.testing.assert_close(flow.noisy_latents(x0, noise, torch.tensor([0.0, 1.0]))[1], noise[1])
    torch.testing.assert_close(flow.noisy_latents(x0, noise, torch.tensor([0.25, 0.25])), torch.full((2, 3, 4), 1.5))
    torch.testing.assert_close(flow.velocity_target(x0, noise), torch.full((2, 3, 4), 2.0))


def test_schedule_matches_the_scheduler(tiny_pipe):
    """schedule_sigmas + schedule_mu + shift_sigmas give the timesteps the pipeline's scheduler uses."""
    seq_len, steps = 1024, 6
    timesteps = tiny_pipe.prepare_timesteps(steps, None, seq_len, torch.device("cpu"))
    mu = flow.schedule_mu(seq_len, tiny_pipe.scheduler.config)
    ours = np.array(flow.shift_sigmas(flow.schedule_sigmas(steps), mu)) * 1000
    np.testing.assert_allclose(timesteps.numpy(), ours, rtol=1e-5)
    assert flow.schedule_sigmas(4).tolist() == [1.0, 0.75, 0.5, 0.25]
    assert flow.schedule_mu(256, {}) == pytest.approx(0.5) and flow.schedule_mu(4096, {}) == pytest.approx(1.15)
    with pytest.raises(ValueError, match="positive integer"):
        flow.schedule_sigmas(0)


def test_packed_noise_rows_follow_their_generators():
    gens = [torch.Generator().manual_seed(s) for s in (4, 5)]
    both = flow.packed_noise(2, 16, (4, 6), gens, "cpu", torch.float32)
    assert both.shape == (2, 6, 64)
    one = flow.packed_noise(1, 16, (4, 6), torch.Generator().manual_seed(5), "cpu", torch.float32)
    torch.testing.assert_close(both[1:], one)
    torch.testing.assert_close(one, pack_latents(torch.randn(1, 16, 4, 6, generator=torch.Generator().manual_seed(5))))


def test_sigma_from_timestep_casts_before_dividing():
    t = torch.tensor(999.0)
    assert flow.sigma_from_timestep(t, 3, torch.float32).tolist() == pytest.approx([0.999] * 3)
    assert (
        flow.sigma_from_timestep(t, 1, torch.bfloat16).item() == (torch.tensor(999.0).to(torch.bfloat16) / 1000).item()
    )
