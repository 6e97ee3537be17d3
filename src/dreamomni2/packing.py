"""2x2 packing of VAE latents into transformer tokens and back (FLUX layout).

Same token order as diffusers' ``FluxPipeline._pack_latents`` / ``_unpack_latents``:
``[B, C, H, W] -> [B, (H/2)(W/2), 4C]`` with the 2x2 patch inner to the channel.
"""

from __future__ import annotations

import torch

__all__ = ["pack_latents", "packed_size", "unpack_latents"]


def packed_size(latent_height: int, latent_width: int) -> tuple[int, int]:
    """Packed token grid ``(H/2, W/2)`` of a latent of ``(H, W)``; both must be even."""
    if latent_height % 2 or latent_width % 2:
        raise ValueError(f"Latent size {latent_height}x{latent_width} is not divisible by the 2x2 patch.")
    return latent_height // 2, latent_width // 2


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, (H/2)*(W/2), C*4]``."""
    b, c, h, w = latents.shape
    ph, pw = packed_size(h, w)
    x = latents.view(b, c, ph, 2, pw, 2).permute(0, 2, 4, 1, 3, 5)  # b ph pw c 2 2
    return x.reshape(b, ph * pw, c * 4)


def unpack_latents(tokens: torch.Tensor, latent_height: int, latent_width: int) -> torch.Tensor:
    """``[B, (H/2)*(W/2), C*4] -> [B, C, H, W]``."""
    b, n, d = tokens.shape
    ph, pw = packed_size(latent_height, latent_width)
    if n != ph * pw:
        raise ValueError(f"{n} tokens do not form a {ph}x{pw} packed grid.")
    x = tokens.view(b, ph, pw, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)  # b c ph 2 pw 2
    return x.reshape(b, d // 4, latent_height, latent_width)
