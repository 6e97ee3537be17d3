r"""Rectified-flow (flow-matching) training loss for FLUX-style transformers.

With target latents :math:`x_0`, noise :math:`\epsilon` and :math:`\sigma \in (0, 1)`:
:math:`x_\sigma = (1 - \sigma) x_0 + \sigma \epsilon`; the transformer predicts the velocity
:math:`v = \epsilon - x_0` (what ``FlowMatchEulerDiscreteScheduler`` integrates at inference,
where the pipeline passes ``timestep / 1000 = sigma``). The model call is
:func:`dreamomni2.flow.predict_velocity`, the one the pipeline's denoising step makes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dreamomni2.flow import noisy_latents, predict_velocity, velocity_target
from dreamomni2.ids import target_ids
from dreamomni2.packing import pack_latents, pack_references, packed_size

__all__ = ["flow_matching_loss", "sample_sigmas", "training_prediction"]


def sample_sigmas(
    n: int,
    generator: torch.Generator,
    method: str = "logit_normal",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    shift: float = 3.0,
) -> torch.Tensor:
    """``n`` noise levels in (0, 1): ``uniform``, ``logit_normal`` (SD3) or ``shifted`` (uniform, then
    :math:`s u / (1 + (s - 1) u)`). Drawn on the CPU from ``generator``."""
    if method == "uniform":
        return torch.rand(n, generator=generator)
    if method == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator) * logit_std + logit_mean)
    if method == "shifted":
        u = torch.rand(n, generator=generator)
        return shift * u / (1 + (shift - 1) * u)
    raise ValueError(f"unknown timestep sampling {method!r}; use uniform, logit_normal or shifted")


def training_prediction(
    transformer: torch.nn.Module,
    target_latents: torch.Tensor,
    reference_latents: Sequence[torch.Tensor],
    prompt_embeds: torch.Tensor,
    pooled_prompt_embeds: torch.Tensor,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    guidance: float | None,
    id_policy: str = "dreamomni2",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The transformer's velocity prediction on noised targets, and the velocity it should predict.

    Packs the targets, noises them to ``sigmas`` (:func:`dreamomni2.flow.noisy_latents`), packs the references with
    the pipeline's ids and calls :func:`dreamomni2.flow.predict_velocity` -- the same call the pipeline's
    denoising step makes (tested: ``tests/test_flow.py``).

    Args:
        transformer: a ``FluxTransformer2DModel`` (possibly wrapped by DDP / peft).
        target_latents: ``[B, C, H, W]`` scaled VAE latents of the targets.
        reference_latents: per reference, ``[B, C, h_i, w_i]``.
        prompt_embeds: ``[B, L, D]`` T5 embeddings; pooled_prompt_embeds: ``[B, P]`` CLIP.
        noise: ``[B, H*W/4, 4C]`` packed Gaussian noise.
        sigmas: ``[B]`` noise levels.
        guidance: distilled-guidance value, or ``None`` for models without a guidance embedding.
        id_policy: reference id policy (must match inference).

    Returns:
        ``(prediction, target)``, both ``[B, H*W/4, 4C]``.
    """
    b = target_latents.shape[0]
    x0 = pack_latents(target_latents)  # [B, N, 4C]
    x_t = noisy_latents(x0, noise, sigmas)
    tgt_packed = packed_size(*target_latents.shape[2:])
    refs = pack_references(list(reference_latents), b, id_policy, tgt_packed)
    ids = target_ids(*tgt_packed).to(x0.device)
    if refs is not None:
        ids = torch.cat([ids, refs.ids], dim=0)
    pred = predict_velocity(
        transformer,
        x_t,
        None if refs is None else refs.tokens,
        ids,
        prompt_embeds,
        pooled_prompt_embeds,
        sigma=sigmas.to(x0.device, x0.dtype),
        guidance=None if guidance is None else torch.full((b,), float(guidance), device=x0.device),
    )
    return pred, velocity_target(x0, noise)


def flow_matching_loss(
    transformer: torch.nn.Module,
    target_latents: torch.Tensor,
    reference_latents: Sequence[torch.Tensor],
    prompt_embeds: torch.Tensor,
    pooled_prompt_embeds: torch.Tensor,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    guidance: float | None,
    id_policy: str = "dreamomni2",
) -> torch.Tensor:
    """Mean squared velocity error over the target tokens (arguments as :func:`training_prediction`).

    Returns:
        scalar loss (float32).
    """
    pred, target = training_prediction(
        transformer, target_latents, reference_latents, prompt_embeds, pooled_prompt_embeds, noise, sigmas,
        guidance, id_policy,
    )  # fmt: skip
    return F.mse_loss(pred.float(), target.float())
