"""``DreamOmni2Pipeline``: FLUX.1-Kontext with 1-5 reference images (a drop-in for the release's pipeline).

Subclasses diffusers' ``FluxKontextPipeline`` (text encoding, VAE, LoRA loading, offload
hooks come from there) and replaces the single-image path with named stages:
``prepare_images`` -> ``encode_images`` -> ``prepare_reference_tokens`` (ids from
:mod:`dreamomni2.ids`) -> ``prepare_target`` -> ``prepare_timesteps`` -> ``denoise`` -> ``decode``.
Multi-image latent layout after the DreamOmni2 release (dvlab-research/DreamOmni2,
``pipeline_dreamomni2.py``); re-written here, not copied.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers.pipelines.flux.pipeline_flux_kontext import (
    FluxKontextPipeline,
    retrieve_latents,
    retrieve_timesteps,
)
from diffusers.pipelines.flux.pipeline_output import FluxPipelineOutput

from dreamomni2.flow import packed_noise, predict_velocity, schedule_mu, schedule_sigmas, sigma_from_timestep
from dreamomni2.ids import get_policy, target_ids
from dreamomni2.knobs import cache_context
from dreamomni2.packing import ReferenceTokens, pack_references, packed_size, unpack_latents
from dreamomni2.resize import reference_size, resize_image, target_size
from dreamomni2.tasks import MAX_IMAGES, TASKS, normalize_task

logger = logging.getLogger(__name__)

__all__ = ["TASKS", "DreamOmni2Pipeline", "ReferenceTokens"]


class DreamOmni2Pipeline(FluxKontextPipeline):
    r"""Multimodal instruction-based editing and generation on FLUX.1-Kontext components.

    Loads from any FLUX.1-Kontext-dev diffusers folder with ``from_pretrained``; the
    release's ``edit_lora/`` and ``gen_lora/`` load with ``load_lora_weights(dir, adapter_name=...)``.
    """

    #: Most reference images a call accepts (the release's benchmark uses up to 5).
    max_images: int = MAX_IMAGES

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> DreamOmni2Pipeline:
        """diffusers' ``from_pretrained`` with ``use_safetensors=True`` by default: pickle weights never load."""
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def load_lora_weights(self, pretrained_model_name_or_path_or_dict: Any, adapter_name: str | None = None,
                          **kwargs: Any) -> None:  # fmt: skip
        """diffusers' ``load_lora_weights`` with ``use_safetensors=True`` by default (no pickle LoRA files)."""
        kwargs.setdefault("use_safetensors", True)
        return super().load_lora_weights(pretrained_model_name_or_path_or_dict, adapter_name=adapter_name, **kwargs)

    @property
    def default_max_sequence_length(self) -> int:
        """``min(512, tokenizer_2.model_max_length)``: 512 for FLUX's T5 tokenizer."""
        limit = getattr(self.tokenizer_2, "model_max_length", 512) or 512
        return int(min(512, limit))

    # ------------------------------------------------------------------ checks
    def check_reference_inputs(
        self,
        images: Sequence[Any] | None,
        task: str | None,
        num_inference_steps: int,
        max_images: int,
    ) -> str | None:
        """Validate the DreamOmni2-specific arguments; returns the canonical task name."""
        if task is not None:
            task = normalize_task(task)
        n = len(images) if images is not None else 0
        if task == "edit" and n == 0:
            raise ValueError("task='edit' needs at least one image: the image to edit comes first.")
        if n > max_images:
            raise ValueError(f"Got {n} images but at most {max_images} are supported (max_images={max_images}).")
        if not isinstance(num_inference_steps, int) or num_inference_steps <= 0:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}.")
        return task

    # ------------------------------------------------------------------ images
    def _image_size(self, image: Any) -> tuple[int, int]:
        if isinstance(image, PIL.Image.Image):
            return image.size
        h, w = self.image_processor.get_default_height_width(image)
        return w, h

    def _is_latent(self, image: Any) -> bool:
        return isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[1] == self.latent_channels

    def prepare_images(
        self,
        images: Sequence[Any],
        auto_resize: bool = True,
        max_area: int | None = None,
    ) -> list[torch.Tensor]:
        """Resize each image on its own (release rule, :func:`dreamomni2.resize.reference_size`) and normalise.

        Returns:
            one ``[1, 3, h_i, w_i]`` tensor in [-1, 1] per image (latent tensors pass through).
        """
        multiple = self.vae_scale_factor * 2
        out = []
        for i, image in enumerate(images):
            if self._is_latent(image):
                out.append(image)
                continue
            if isinstance(image, (list, tuple)):
                raise ValueError(f"Image {i + 1} is a list; pass one image per reference.")
            if not isinstance(image, (PIL.Image.Image, np.ndarray, torch.Tensor)):
                raise TypeError(f"Image {i + 1} is a {type(image).__name__}; pass a PIL image, an array or a tensor.")
            w, h = self._image_size(image)
            if w < multiple or h < multiple:
                raise ValueError(f"Image {i + 1} is {w}x{h} px, smaller than one latent patch ({multiple} px).")
            size = reference_size(w, h, multiple_of=multiple, auto_resize=auto_resize, max_area=max_area)
            tensor = self.image_to_tensor(image, size)
            if tensor.shape[0] != 1:
                raise ValueError(f"Image {i + 1} holds a batch of {tensor.shape[0]}; pass one image per reference.")
            out.append(tensor)
        return out

    def image_to_tensor(self, image: Any, size: tuple[int, int]) -> torch.Tensor:
        """Resize (LANCZOS for PIL) to ``size = (w, h)`` and normalise to a ``[1, 3, h, w]`` tensor in [-1, 1]."""
        w, h = size
        if isinstance(image, PIL.Image.Image):
            image = resize_image(image.convert("RGB"), (w, h))
        else:
            image = self.image_processor.resize(image, h, w)
        return self.image_processor.preprocess(image, h, w)

    def encode_images(
        self, images: Sequence[torch.Tensor], device: torch.device, dtype: torch.dtype
    ) -> list[torch.Tensor]:
        """VAE-encode each prepared image once (distribution mode, as the release); ``[1, C, h, w]`` each.

        With a ``latent_cache`` attribute (a :class:`~dreamomni2.latent_cache.LatentCache`, set by the Session), an
        image already encoded at the same prepared size is not encoded again.
        """
        cache = getattr(self, "latent_cache", None)  # a Session's LatentCache (None: plain diffusers behaviour)
        latents = []
        for image in images:
            if self._is_latent(image):
                latents.append(image.to(device=device, dtype=dtype))
                continue
            key = None if cache is None else cache.key(image, self.vae.dtype, device, dtype)
            lat = None if key is None else cache.get(key)
            if lat is None:
                enc = self.vae.encode(image.to(device=device, dtype=self.vae.dtype))
                lat = retrieve_latents(enc, sample_mode="argmax")
                lat = ((lat - self.vae.config.shift_factor) * self.vae.config.scaling_factor).to(dtype)
                if key is not None:
                    cache.put(key, lat)
            latents.append(lat)
        return latents

    def prepare_reference_tokens(
        self,
        image_latents: Sequence[torch.Tensor],
        batch_size: int,
        id_policy: str,
        target_packed: tuple[int, int],
    ) -> ReferenceTokens | None:
        """Pack every reference latent, give it its ids, concatenate in order, expand to the batch."""
        return pack_references(image_latents, batch_size, id_policy, target_packed)

    # ------------------------------------------------------------------ target
    def resolve_output_size(
        self,
        height: int | None,
        width: int | None,
        task: str | None,
        first_image_size: tuple[int, int] | None,
        max_area: int,
    ) -> tuple[int, int]:
        """Output ``(height, width)``: edit defaults to the first image's prepared size, else 1024^2-like."""
        multiple = self.vae_scale_factor * 2
        for name, v in (("height", height), ("width", width)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < multiple):
                raise ValueError(f"{name} must be an integer of at least {multiple} px, got {v!r}.")
        if not isinstance(max_area, int) or isinstance(max_area, bool) or max_area < multiple * multiple:
            raise ValueError(f"max_area must be an integer of at least {multiple * multiple} px, got {max_area!r}.")
        default = self.default_sample_size * self.vae_scale_factor
        w, h = target_size(task, first_image_size, (width, height), max_area, self.vae_scale_factor * 2, default)
        if (h, w) != (height, width):
            logger.info("Output size %sx%s -> %dx%d (task=%s, max_area=%d).", width, height, w, h, task, max_area)
        return h, w

    def prepare_target(
        self,
        batch_size: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Noise (or the given latents) packed to ``[B, h*w/4, 4C]``, its ids and the latent size."""
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"Got {len(generator)} generators for an effective batch of {batch_size}.")
        lh, lw = 2 * (height // (self.vae_scale_factor * 2)), 2 * (width // (self.vae_scale_factor * 2))
        if latents is None:
            latents = packed_noise(batch_size, self.latent_channels, (lh, lw), generator, device, dtype)
        else:
            want = (batch_size, (lh // 2) * (lw // 2), self.latent_channels * 4)
            if tuple(latents.shape) != want:
                raise ValueError(f"latents has shape {tuple(latents.shape)}, expected {want} (packed [B, N, 4C]).")
            latents = latents.to(device=device, dtype=dtype)
        ids = target_ids(*packed_size(lh, lw)).to(device)
        return latents, ids, (lh, lw)

    def prepare_timesteps(
        self, num_inference_steps: int, sigmas: Sequence[float] | None, image_seq_len: int, device: torch.device
    ) -> torch.Tensor:
        """The release's schedule: linear sigmas 1 -> 1/N, shifted by the target's sequence length."""
        sigmas = schedule_sigmas(num_inference_steps) if sigmas is None else sigmas
        mu = schedule_mu(image_seq_len, self.scheduler.config)
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, device, sigmas=sigmas, mu=mu)
        return timesteps

    # ------------------------------------------------------------------ loop
    def _predict(
        self,
        latents: torch.Tensor,
        refs: ReferenceTokens | None,
        t: torch.Tensor,
        guidance: torch.Tensor | None,
        cond: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        img_ids: torch.Tensor,
    ) -> torch.Tensor:
        """The velocity at scheduler timestep ``t`` (``1000 sigma``): :func:`dreamomni2.flow.predict_velocity`."""
        prompt_embeds, pooled, text_ids = cond
        return predict_velocity(
            self.transformer,
            latents,
            None if refs is None else refs.tokens,
            img_ids,
            prompt_embeds,
            pooled,
            sigma=sigma_from_timestep(t, 1, latents.dtype),
            guidance=guidance,
            text_ids=text_ids,
            joint_attention_kwargs=getattr(self, "_joint_attention_kwargs", None),
        )

    def denoise(
        self,
        latents: torch.Tensor,
        refs: ReferenceTokens | None,
        img_ids: torch.Tensor,
        timesteps: torch.Tensor,
        guidance: torch.Tensor | None,
        cond: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        uncond: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
        true_cfg_scale: float,
        callback_on_step_end: Callable | None,
        callback_on_step_end_tensor_inputs: Sequence[str],
    ) -> torch.Tensor:
        """Euler flow-matching loop; true CFG runs cond and uncond in one batched forward when shapes allow."""
        batched_cfg = uncond is not None and all(a.shape == b.shape for a, b in zip(cond[:2], uncond[:2], strict=True))
        if batched_cfg:
            both = tuple(torch.cat([c, u], dim=0) for c, u in zip(cond[:2], uncond[:2], strict=True)) + (cond[2],)
        self.scheduler.set_begin_index(0)
        n = len(timesteps)
        if getattr(self, "step_cache", None) is not None:
            self.step_cache.begin(self, n)  # a dreamomni2.knobs.StepCache: its hook state starts fresh per call
        with self.progress_bar(total=n) as bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                if uncond is None:
                    with cache_context(self.transformer, "cond", i, n, t):
                        noise_pred = self._predict(latents, refs, t, guidance, cond, img_ids)
                else:
                    if batched_cfg:
                        with cache_context(self.transformer, "cond", i, n, t):
                            pos, neg = self._predict(latents, refs, t, guidance, both, img_ids).chunk(2)
                    else:
                        with cache_context(self.transformer, "cond", i, n, t):
                            pos = self._predict(latents, refs, t, guidance, cond, img_ids)
                        with cache_context(self.transformer, "uncond", i, n, t):
                            neg = self._predict(latents, refs, t, guidance, uncond, img_ids)
                    noise_pred = neg + true_cfg_scale * (pos - neg)
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                if callback_on_step_end is not None:
                    local = {"latents": latents, "prompt_embeds": cond[0]}
                    outputs = callback_on_step_end(
                        self, i, t, {k: local[k] for k in callback_on_step_end_tensor_inputs}
                    )
                    latents = outputs.pop("latents", latents)
                bar.update()
        self._current_timestep = None
        return latents

    def decode(self, latents: torch.Tensor, latent_size: tuple[int, int], output_type: str):
        """Unpack, unscale and VAE-decode; ``output_type`` as in diffusers (``pil``, ``np``, ``pt``, ``latent``)."""
        if output_type == "latent":
            return latents
        lat = unpack_latents(latents, *latent_size)
        lat = lat / self.vae.config.scaling_factor + self.vae.config.shift_factor
        image = self.vae.decode(lat.to(self.vae.dtype), return_dict=False)[0]
        return self.image_processor.postprocess(image, output_type=output_type)

    # ------------------------------------------------------------------ call
    # ------------------------------------------------------------------ call stages
    def prepare_call_images(
        self,
        images: Sequence[Any] | Any | None,
        task: str | None,
        num_inference_steps: int,
        max_images: int | None,
        id_policy: str,
        auto_resize: bool,
        reference_max_area: int | None,
    ) -> tuple[list[Any], str | None, tuple[int, int] | None]:
        """Check the call's image arguments and prepare every image: ``(prepared, task, first image (w, h))``."""
        if images is not None and not isinstance(images, (list, tuple)):
            images = [images]
        images = list(images) if images else []
        task = self.check_reference_inputs(images, task, num_inference_steps, max_images or self.max_images)
        get_policy(id_policy)  # unsupported policy -> ValueError before any work
        prepared = self.prepare_images(images, auto_resize=auto_resize, max_area=reference_max_area)
        first_size = None
        if prepared and not self._is_latent(prepared[0]):
            first_size = (prepared[0].shape[3], prepared[0].shape[2])
        return prepared, task, first_size

    def encode_call_prompts(
        self,
        prompts: dict[str, Any],
        true_cfg_scale: float,
        device: torch.device,
        num_images_per_prompt: int,
        max_sequence_length: int,
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...] | None]:
        """Encode the prompt, and the negative prompt when true CFG is on: ``(cond, uncond or None)``.

        ``prompts`` holds ``prompt``, ``prompt_2``, ``prompt_embeds``, ``pooled_prompt_embeds`` and their
        ``negative_`` counterparts, as the pipeline call received them.
        """
        p = prompts
        do_true_cfg = true_cfg_scale > 1 and (
            p["negative_prompt"] is not None
            or (p["negative_prompt_embeds"] is not None and p["negative_pooled_prompt_embeds"] is not None)
        )
        enc = dict(
            device=device,
            num_images_per_prompt=num_images_per_prompt,
            max_sequence_length=max_sequence_length,
            lora_scale=self._joint_attention_kwargs.get("scale"),
        )
        cond = self.encode_prompt(prompt=p["prompt"], prompt_2=p["prompt_2"], prompt_embeds=p["prompt_embeds"],
                                  pooled_prompt_embeds=p["pooled_prompt_embeds"], **enc)  # fmt: skip
        if not do_true_cfg:
            return cond, None
        uncond = self.encode_prompt(prompt=p["negative_prompt"], prompt_2=p["negative_prompt_2"],
                                    prompt_embeds=p["negative_prompt_embeds"],
                                    pooled_prompt_embeds=p["negative_pooled_prompt_embeds"], **enc)  # fmt: skip
        if uncond[0].shape[0] != cond[0].shape[0]:
            raise ValueError(f"negative prompt batch {uncond[0].shape[0]} != prompt batch {cond[0].shape[0]}.")
        return cond, uncond

    def _check_call(
        self, prompts: dict[str, Any], height: int, width: int, tensor_inputs, max_len: int, n: int, guidance: float
    ):
        """diffusers' prompt/size checks, plus ``num_images_per_prompt >= 1`` and a finite guidance."""
        self.check_inputs(
            prompts["prompt"], prompts["prompt_2"], height, width,
            negative_prompt=prompts["negative_prompt"], negative_prompt_2=prompts["negative_prompt_2"],
            prompt_embeds=prompts["prompt_embeds"], negative_prompt_embeds=prompts["negative_prompt_embeds"],
            pooled_prompt_embeds=prompts["pooled_prompt_embeds"],
            negative_pooled_prompt_embeds=prompts["negative_pooled_prompt_embeds"],
            callback_on_step_end_tensor_inputs=list(tensor_inputs), max_sequence_length=max_len,
        )  # fmt: skip
        if n < 1:
            raise ValueError(f"num_images_per_prompt must be >= 1, got {n}.")
        if not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance!r}.")

    def prepare_sequence(
        self,
        prepared: Sequence[torch.Tensor],
        batch_size: int,
        size: tuple[int, int],
        dtype: torch.dtype,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None,
        id_policy: str,
    ) -> tuple[torch.Tensor, ReferenceTokens | None, torch.Tensor, tuple[int, int]]:
        """Encode the references, draw the target noise: ``(latents, refs, img_ids, latent size)``.

        ``size`` is the output ``(height, width)``; ``img_ids`` is the target's ids then the references'.
        """
        device = self._execution_device
        image_latents = self.encode_images(prepared, device, dtype)
        latents, ids, latent_size = self.prepare_target(batch_size, *size, dtype, device, generator, latents)
        refs = self.prepare_reference_tokens(image_latents, batch_size, id_policy, packed_size(*latent_size))
        img_ids = ids if refs is None else torch.cat([ids, refs.ids], dim=0)
        return latents, refs, img_ids, latent_size

    @torch.no_grad()
    def __call__(
        self,
        images: Sequence[Any] | Any | None = None,
        prompt: str | list[str] | None = None, prompt_2: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None, negative_prompt_2: str | list[str] | None = None,
        true_cfg_scale: float = 1.0, height: int | None = None, width: int | None = None,
        num_inference_steps: int = 28, sigmas: list[float] | None = None, guidance_scale: float = 3.5,
        num_images_per_prompt: int = 1, generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None, pooled_prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None, negative_pooled_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil", return_dict: bool = True, joint_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable | None = None, callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        max_sequence_length: int | None = None, max_area: int = 1024**2, _auto_resize: bool = True,
        task: str | None = None, id_policy: str = "dreamomni2", max_images: int | None = None,
        reference_max_area: int | None = None,
    ) -> FluxPipelineOutput | tuple:  # fmt: skip
        r"""Edit or generate an image from a prompt and 0-5 images.

        Arguments mean what they mean in the release's ``DreamOmni2Pipeline`` (and diffusers'
        ``FluxKontextPipeline``), plus: ``task`` (``"edit"``: output size defaults to the first image's prepared
        size; ``"generate"``: ``height``/``width``, 1024^2 by default; ``None``: exactly the release's behaviour),
        ``id_policy`` (reference RoPE ids, :mod:`dreamomni2.ids`), ``max_images`` (default 5),
        ``reference_max_area`` (pixel cap on each input after snapping) and ``max_sequence_length`` (default
        ``min(512, tokenizer_2.model_max_length)``). ``images``: PIL images, arrays, tensors or latents, the image
        to edit first. Returns ``FluxPipelineOutput(images=...)`` or ``(images,)``.
        """
        prompts = dict(prompt=prompt, prompt_2=prompt_2, negative_prompt=negative_prompt,
                       negative_prompt_2=negative_prompt_2, prompt_embeds=prompt_embeds,
                       pooled_prompt_embeds=pooled_prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
                       negative_pooled_prompt_embeds=negative_pooled_prompt_embeds)  # fmt: skip
        prepared, task, first_size = self.prepare_call_images(
            images, task, num_inference_steps, max_images, id_policy, _auto_resize, reference_max_area
        )
        height, width = self.resolve_output_size(height, width, task, first_size, max_area)
        if max_sequence_length is None:
            max_sequence_length = self.default_max_sequence_length
        self._check_call(prompts, height, width, callback_on_step_end_tensor_inputs, max_sequence_length,
                         num_images_per_prompt, guidance_scale)  # fmt: skip
        self._guidance_scale, self._joint_attention_kwargs = guidance_scale, joint_attention_kwargs or {}
        self._current_timestep, self._interrupt = None, False
        device = self._execution_device
        cond, uncond = self.encode_call_prompts(prompts, true_cfg_scale, device, num_images_per_prompt,
                                                max_sequence_length)  # fmt: skip
        latents, refs, img_ids, latent_size = self.prepare_sequence(
            prepared, cond[0].shape[0], (height, width), cond[0].dtype, generator, latents, id_policy
        )
        timesteps = self.prepare_timesteps(num_inference_steps, sigmas, latents.shape[1], device)
        self._num_timesteps = len(timesteps)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full([1], guidance_scale, device=device, dtype=torch.float32)
        latents = self.denoise(latents, refs, img_ids, timesteps, guidance, cond, uncond, true_cfg_scale,
                               callback_on_step_end, callback_on_step_end_tensor_inputs)  # fmt: skip
        image = self.decode(latents, latent_size, output_type)
        self.maybe_free_model_hooks()
        return FluxPipelineOutput(images=image) if return_dict else (image,)
