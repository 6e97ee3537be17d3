r"""The tensor-level FLUX model call, shared by the pipeline's denoising step and the trainer's loss.

Conventions (after black-forest-labs/flux ``sampling.py``: ``get_noise``, ``get_schedule``, ``denoise``; written
here, not copied):

* a noise level :math:`\sigma \in [0, 1]` mixes clean latents and noise, :math:`x_\sigma = (1 - \sigma) x_0 +
  \sigma \epsilon`; the transformer predicts the velocity :math:`v = \epsilon - x_0`;
* the transformer's ``timestep`` input **is** :math:`\sigma`. diffusers' ``FlowMatchEulerDiscreteScheduler``
  hands out ``timesteps = 1000 sigma``, so the pipeline converts with :func:`sigma_from_timestep`;
* the sequence is the target's packed tokens, then every reference's tokens in order; ``img_ids`` follows the same
  order, text ids are zeros; only the first ``N`` (target) rows of the prediction are kept.

Everything here is a pure function of its tensors; :func:`predict_velocity` is the one place the transformer is
called for denoising or training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from dreamomni2.packing import pack_latents

__all__ = [
    "noisy_latents",
    "packed_noise",
    "predict_velocity",
    "schedule_mu",
    "schedule_sigmas",
    "shift_sigmas",
    "sigma_from_timestep",
    "velocity_target",
]


def sigma_from_timestep(timestep: torch.Tensor, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """The scheduler's timestep (``1000 sigma``, a scalar tensor) as a ``[batch]`` sigma in ``dtype``.

    Casts to ``dtype`` before dividing, exactly as the release's pipeline does.
    """
    return timestep.expand(batch).to(dtype) / 1000


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``(1 - sigma) x0 + sigma noise`` for packed ``x0``/``noise`` ``[B, N, D]`` and ``sigma`` ``[B]``."""
    s = sigma.to(x0.dtype).view(-1, 1, 1)
    return (1 - s) * x0 + s * noise.to(x0.dtype)


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The flow-matching regression target ``noise - x0`` (``[B, N, D]``)."""
    return noise.to(x0.device) - x0


def packed_noise(
    batch: int,
    channels: int,
    latent_hw: tuple[int, int],
    generator: torch.Generator | list[torch.Generator] | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Gaussian noise ``[B, C, h, w]`` drawn as diffusers' ``randn_tensor`` draws it, packed to ``[B, h w / 4, 4C]``.

    A list of generators draws one row each (row ``i`` from ``generator[i]``), so a batch equals single calls.
    """
    from diffusers.utils.torch_utils import randn_tensor

    h, w = latent_hw
    return pack_latents(randn_tensor((batch, channels, h, w), generator=generator, device=device, dtype=dtype))


def schedule_sigmas(num_steps: int) -> np.ndarray:
    """The release's unshifted schedule: ``num_steps`` sigmas spaced linearly from 1 to ``1 / num_steps``."""
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    return np.linspace(1.0, 1 / num_steps, num_steps)


def schedule_mu(image_seq_len: int, config: Mapping[str, Any]) -> float:
    """The resolution-dependent shift ``mu``: linear in the target's token count between two anchors.

    ``config`` is a scheduler config (``base_image_seq_len`` 256, ``max_image_seq_len`` 4096, ``base_shift`` 0.5,
    ``max_shift`` 1.15 by default), as diffusers' ``calculate_shift``.
    """
    x1, x2 = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    y1, y2 = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    m = (y2 - y1) / (x2 - x1)
    return image_seq_len * m + (y1 - m * x1)


def shift_sigmas(sigmas: Sequence[float], mu: float) -> list[float]:
    """Exponential time shift ``e^mu / (e^mu + 1/sigma - 1)`` (what the FLUX scheduler applies with ``mu``)."""
    return [math.exp(mu) / (math.exp(mu) + (1 / s - 1)) for s in sigmas]


def _guidance_vector(guidance: torch.Tensor | float | None, rows: int, device: torch.device) -> torch.Tensor | None:
    if guidance is None:
        return None
    if not isinstance(guidance, torch.Tensor):
        guidance = torch.full([1], float(guidance), device=device, dtype=torch.float32)
    return guidance.expand(rows) if guidance.numel() == 1 else guidance


def predict_velocity(
    transformer: torch.nn.Module,
    latents: torch.Tensor,
    ref_tokens: torch.Tensor | None,
    img_ids: torch.Tensor,
    prompt_embeds: torch.Tensor,
    pooled_prompt_embeds: torch.Tensor,
    sigma: torch.Tensor,
    guidance: torch.Tensor | float | None = None,
    text_ids: torch.Tensor | None = None,
    joint_attention_kwargs: dict[str, Any] | None = None,
) -> torch.Tensor:
    """One transformer call on target + reference tokens; returns the velocity of the target tokens.

    Args:
        transformer: a ``FluxTransformer2DModel`` (possibly wrapped by peft / DDP).
        latents: ``[B, N, D]`` packed target tokens at noise level ``sigma``.
        ref_tokens: ``[B, M, D]`` packed reference tokens (all references, in order), or ``None``.
        img_ids: ``[N + M, 3]`` RoPE ids of the target then the references.
        prompt_embeds: ``[R B, L, E]`` T5 embeddings; ``R > 1`` stacks several prompt sets (e.g. cond and uncond
            for true CFG): the image tokens are repeated ``R`` times to match.
        pooled_prompt_embeds: ``[R B, P]`` CLIP pooled embeddings.
        sigma: ``[B]`` or ``[R B]`` noise levels (the transformer's ``timestep``), or a scalar tensor.
        guidance: distilled-guidance value (a float, a ``[1]`` or ``[R B]`` tensor) or ``None`` for models without a
            guidance embedding.
        text_ids: ``[L, 3]`` text ids (zeros when ``None``).
        joint_attention_kwargs: passed to the transformer (e.g. a LoRA ``scale``).

    Returns:
        ``[R B, N, D]`` predicted velocity of the target tokens.
    """
    reps = prompt_embeds.shape[0] // latents.shape[0]
    x = latents.repeat(reps, 1, 1) if reps > 1 else latents
    if ref_tokens is not None:
        refs = ref_tokens.repeat(reps, 1, 1) if reps > 1 else ref_tokens
        x = torch.cat([x, refs], dim=1)
    rows = x.shape[0]
    sigma = sigma.expand(rows) if sigma.numel() == 1 else sigma
    if text_ids is None:
        text_ids = torch.zeros(prompt_embeds.shape[1], 3, device=x.device, dtype=img_ids.dtype)
    out = transformer(
        hidden_states=x,
        timestep=sigma.to(x.device),
        guidance=_guidance_vector(guidance, rows, x.device),
        pooled_projections=pooled_prompt_embeds,
        encoder_hidden_states=prompt_embeds,
        txt_ids=text_ids,
        img_ids=img_ids,
        joint_attention_kwargs=joint_attention_kwargs,
        return_dict=False,
    )[0]
    return out[:, : latents.shape[1]]
