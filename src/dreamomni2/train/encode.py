"""Turning manifest samples into model inputs with the pipeline's own preprocessing.

Sizes come from :func:`dreamomni2.resize.reference_size` / :func:`target_size`, pixels go
through ``DreamOmni2Pipeline.prepare_images`` and ``encode_images``, text through
``encode_prompt``: training sees exactly what inference sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from PIL import Image

from dreamomni2.images import load_image
from dreamomni2.resize import reference_size, target_size
from dreamomni2.train.cache import TensorCache, file_digest, module_identity
from dreamomni2.train.config import DataConfig
from dreamomni2.train.data import Sample

logger = logging.getLogger(__name__)

__all__ = ["EncodedSample", "SampleEncoder"]


@dataclass
class EncodedSample:
    """Latents ``[1, C, h, w]`` of the target and each reference, and the prompt embeddings."""

    target: torch.Tensor
    references: list[torch.Tensor]
    prompt_embeds: torch.Tensor  # [1, L, D]
    pooled: torch.Tensor  # [1, P]


class SampleEncoder:
    """Encodes samples with a pipeline's VAE and text encoders, optionally through a cache."""

    def __init__(self, pipe, data: DataConfig, cache: TensorCache | None = None, dtype=torch.float32):
        self.pipe, self.data, self.cache, self.dtype = pipe, data, cache, dtype
        self.multiple = pipe.vae_scale_factor * 2
        self._vae_id = self._text_id = None
        if cache is not None:
            self._vae_id = module_identity(pipe.vae)
            self._text_id = module_identity(pipe.text_encoder, pipe.text_encoder_2)

    # sizes -----------------------------------------------------------------
    def _header_size(self, path) -> tuple[int, int]:
        with Image.open(path) as im:
            return im.size

    def pixel_sizes(self, sample: Sample) -> tuple[tuple[int, int], list[tuple[int, int]]]:
        """``(target (w, h), [reference (w, h)])`` in pixels, from the image headers only."""
        d = self.data
        refs = [
            reference_size(*self._header_size(p), self.multiple, d.auto_resize, d.reference_max_area)
            for p in sample.images
        ]
        requested = (None, None) if sample.task == "edit" else self._header_size(sample.target)
        tgt = target_size(sample.task, refs[0] if refs else None, requested, d.max_area, self.multiple)
        return tgt, refs

    def bucket_key(self, sample: Sample) -> tuple:
        """Samples with equal keys have equal target and reference sizes (batchable without padding)."""
        tgt, refs = self.pixel_sizes(sample)
        return (tgt, tuple(refs))

    # encoding --------------------------------------------------------------
    def _latent(self, path, size: tuple[int, int], device) -> torch.Tensor:
        key = None
        if self.cache is not None:
            key = TensorCache.key("latent", self._vae_id, file_digest(path), size, self.dtype)
            hit = self.cache.get(key)
            if hit is not None:
                return hit["latent"].to(device)
        pixels = self.pipe.image_to_tensor(load_image(path), size)
        (lat,) = self.pipe.encode_images([pixels], device, self.dtype)
        if key is not None:
            self.cache.put(key, {"latent": lat})
        return lat

    def _text(self, text: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        key = None
        if self.cache is not None:
            key = TensorCache.key("text", self._text_id, text, self.data.max_sequence_length, self.dtype)
            hit = self.cache.get(key)
            if hit is not None:
                return hit["prompt_embeds"].to(device), hit["pooled"].to(device)
        embeds, pooled, _ = self.pipe.encode_prompt(
            prompt=text, prompt_2=None, device=device, max_sequence_length=self.data.max_sequence_length
        )
        embeds, pooled = embeds.to(self.dtype), pooled.to(self.dtype)
        if key is not None:
            self.cache.put(key, {"prompt_embeds": embeds, "pooled": pooled})
        return embeds, pooled

    @torch.no_grad()
    def encode(self, sample: Sample, text: str, order: list[int] | None = None, device="cpu") -> EncodedSample:
        """Encode one sample; ``order`` permutes its images (indices into ``sample.images``)."""
        tgt_size, ref_sizes = self.pixel_sizes(sample)
        order = order or list(range(len(sample.images)))
        refs = [self._latent(sample.images[i], ref_sizes[i], device) for i in order]
        target = self._latent(sample.target, tgt_size, device)
        embeds, pooled = self._text(text, device)
        return EncodedSample(target, refs, embeds, pooled)
