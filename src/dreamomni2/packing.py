"""2x2 packing of VAE latents into transformer tokens and back (FLUX layout).

Same token order as diffusers' ``FluxPipeline._pack_latents`` / ``_unpack_latents``:
``[B, C, H, W] -> [B, (H/2)(W/2), 4C]`` with the 2x2 patch inner to the channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dreamomni2.ids import IdPolicy, reference_ids

__all__ = ["ReferenceTokens", "pack_latents", "pack_references", "packed_size", "unpack_latents"]


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


@dataclass
class ReferenceTokens:
    """Packed reference latents and their RoPE ids.

    Attributes:
        tokens: ``[B, N_ref, 4C]`` packed latents of all references, in order.
        ids: ``[N_ref, 3]`` float32 ids (from :func:`dreamomni2.ids.reference_ids`).
        sizes: packed ``(h, w)`` of each reference.
    """

    tokens: torch.Tensor
    ids: torch.Tensor
    sizes: list[tuple[int, int]]


def pack_references(
    image_latents: Sequence[torch.Tensor],
    batch_size: int,
    id_policy: str | IdPolicy,
    target_packed: tuple[int, int],
) -> ReferenceTokens | None:
    """Pack every reference latent ``[1 or B, C, h_i, w_i]``, give it its ids, concatenate in order.

    The one implementation used by the pipeline and the trainer. Latents of batch 1 are
    expanded (not copied) to ``batch_size``.

    Returns:
        :class:`ReferenceTokens` or ``None`` when there are no references.
    """
    if not image_latents:
        return None
    tokens, sizes = [], []
    for lat in image_latents:
        if lat.shape[0] not in (1, batch_size):
            raise ValueError(f"Cannot expand an image batch of {lat.shape[0]} to a batch of {batch_size}.")
        sizes.append(packed_size(*lat.shape[2:]))
        tokens.append(pack_latents(lat).expand(batch_size, -1, -1))
    ids = reference_ids(sizes, id_policy, target=target_packed)
    return ReferenceTokens(torch.cat(tokens, dim=1), ids.to(tokens[0].device), sizes)
