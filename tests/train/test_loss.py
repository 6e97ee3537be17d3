"""dreamomni2.train.loss: the flow-matching loss against a hand computation, and the sigma samplers.

Only the public functions are used (``flow_matching_loss``, ``sample_sigmas``), so these tests hold
whatever module the transformer call lives in.
"""

import pytest
import torch
import torch.nn.functional as F

from dreamomni2.packing import pack_latents
from dreamomni2.train.loss import flow_matching_loss, sample_sigmas


@pytest.fixture(scope="module")
def transformer():
    from dreamomni2.testing import build_tiny_components

    return build_tiny_components(seed=0)["transformer"]  # 4 latent channels: 16 values per packed token


def _inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "target_latents": torch.randn(batch, 4, 4, 6, generator=g),  # packed 2x3: 6 target tokens
        "reference_latents": [torch.randn(batch, 4, 2, 4, generator=g), torch.randn(1, 4, 4, 2, generator=g)],
        "prompt_embeds": torch.randn(batch, 5, 32, generator=g),
        "pooled_prompt_embeds": torch.randn(batch, 32, generator=g),
        "noise": torch.randn(batch, 6, 16, generator=g),
    }


# RoPE ids written out by hand: target (index 0) on its 2x3 grid, then reference 1 (index 1, packed 1x2),
# then reference 2 (index 2, packed 2x1, columns shifted by reference 1's width 2); text ids are zeros.
TARGET_IDS = [[0, r, c] for r in range(2) for c in range(3)]
REFERENCE_IDS = [[1, 0, 0], [1, 0, 1], [2, 0, 2], [2, 1, 2]]


def _by_hand(transformer, x, sigmas, guidance, with_refs=True):
    """The transformer's velocity prediction on the noisy target tokens, and the MSE to noise - x0."""
    b = x["target_latents"].shape[0]
    x0 = pack_latents(x["target_latents"])
    s = sigmas.view(b, 1, 1)
    x_t = (1 - s) * x0 + s * x["noise"]
    hidden, ids = x_t, TARGET_IDS
    if with_refs:
        r1 = pack_latents(x["reference_latents"][0])
        r2 = pack_latents(x["reference_latents"][1]).expand(b, -1, -1)
        hidden, ids = torch.cat([x_t, r1, r2], dim=1), TARGET_IDS + REFERENCE_IDS
    with torch.no_grad():
        out = transformer(
            hidden_states=hidden,
            timestep=sigmas,  # the training convention: sigma in (0, 1) (the pipeline passes timestep / 1000)
            guidance=torch.full((b,), guidance),
            pooled_projections=x["pooled_prompt_embeds"],
            encoder_hidden_states=x["prompt_embeds"],
            txt_ids=torch.zeros(x["prompt_embeds"].shape[1], 3),
            img_ids=torch.tensor(ids, dtype=torch.float32),
            return_dict=False,
        )[0]
    pred = out[:, :6]
    return ((pred - (x["noise"] - x0)) ** 2).mean()


@pytest.mark.parametrize("sigma", [[0.25, 0.75], [0.5, 0.5], [0.9, 0.05]])
def test_loss_equals_the_hand_computation(transformer, sigma):
    x = _inputs()
    sigmas = torch.tensor(sigma)
    with torch.no_grad():
        loss = flow_matching_loss(transformer, **x, sigmas=sigmas, guidance=3.5)
    expected = _by_hand(transformer, x, sigmas, 3.5)
    assert loss.dtype == torch.float32 and loss.shape == ()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)


def test_loss_without_references(transformer):
    x = _inputs(batch=1, seed=1)
    x["reference_latents"] = []
    sigmas = torch.tensor([0.3])
    with torch.no_grad():
        loss = flow_matching_loss(transformer, **x, sigmas=sigmas, guidance=1.0)
    torch.testing.assert_close(loss, _by_hand(transformer, x, sigmas, 1.0, with_refs=False), rtol=1e-5, atol=1e-7)


def test_loss_depends_on_sigma_references_and_guidance(transformer):
    x = _inputs()
    with torch.no_grad():
        base = flow_matching_loss(transformer, **x, sigmas=torch.tensor([0.25, 0.75]), guidance=3.5)
        other_sigma = flow_matching_loss(transformer, **x, sigmas=torch.tensor([0.75, 0.25]), guidance=3.5)
        other_guidance = flow_matching_loss(transformer, **x, sigmas=torch.tensor([0.25, 0.75]), guidance=1.0)
        swapped = dict(x, reference_latents=x["reference_latents"][::-1])
        other_refs = flow_matching_loss(transformer, **swapped, sigmas=torch.tensor([0.25, 0.75]), guidance=3.5)
    for other in (other_sigma, other_guidance, other_refs):
        assert abs(other.item() - base.item()) > 1e-6


def test_loss_has_gradients_for_the_transformer(transformer):
    x = _inputs(batch=1)
    weight = transformer.proj_out.weight
    weight.grad = None
    loss = flow_matching_loss(transformer, **x, sigmas=torch.tensor([0.5]), guidance=3.5)
    loss.backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    weight.grad = None


def test_mse_is_mean_over_every_value():
    # the loss is plain MSE: with a prediction of zeros it is the mean of (noise - x0)^2
    class Zero(torch.nn.Module):
        def forward(self, *args, **kw):
            hidden = kw["hidden_states"] if "hidden_states" in kw else args[0]
            return (torch.zeros_like(hidden),)

    x = _inputs(batch=2)
    loss = flow_matching_loss(Zero(), **x, sigmas=torch.tensor([0.1, 0.9]), guidance=None)
    x0 = pack_latents(x["target_latents"])
    assert loss.item() == pytest.approx(F.mse_loss(torch.zeros_like(x0), x["noise"] - x0).item(), rel=1e-6)


def test_sample_sigmas_uniform_and_logit_normal():
    u = sample_sigmas(1000, torch.Generator().manual_seed(0), "uniform")
    torch.testing.assert_close(u, torch.rand(1000, generator=torch.Generator().manual_seed(0)))
    ln = sample_sigmas(1000, torch.Generator().manual_seed(1), "logit_normal", logit_mean=0.5, logit_std=2.0)
    z = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ln, torch.sigmoid(z * 2.0 + 0.5))
    for s in (u, ln):
        assert s.shape == (1000,) and s.dtype == torch.float32
        assert 0.0 < s.min() and s.max() < 1.0
    assert 0.45 < u.mean() < 0.55  # uniform on (0, 1)
    assert ln.median() == pytest.approx(torch.sigmoid(torch.tensor(0.5)).item(), abs=0.05)  # median sigmoid(mean)


def test_sample_sigmas_shifted_formula():
    n, shift = 500, 3.0
    s = sample_sigmas(n, torch.Generator().manual_seed(2), "shifted", shift=shift)
    u = torch.rand(n, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(s, shift * u / (1 + (shift - 1) * u))
    assert 0.0 < s.min() and s.max() < 1.0
    assert bool((s >= u).all())  # shift > 1 moves every level towards noise
    # a monotone map of u: the median moves from 0.5 to 3 * 0.5 / (1 + 2 * 0.5) = 0.75; shift 1 is the identity
    assert s.median().item() == pytest.approx(0.75, abs=0.04)
    one = sample_sigmas(n, torch.Generator().manual_seed(2), "shifted", shift=1.0)
    torch.testing.assert_close(one, u)


def test_sample_sigmas_unknown_method():
    with pytest.raises(ValueError) as e:
        sample_sigmas(4, torch.Generator().manual_seed(0), "cosine")
    assert str(e.value) == "unknown timestep sampling 'cosine'; use uniform, logit_normal or shifted"
