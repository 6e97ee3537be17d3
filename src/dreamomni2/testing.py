"""Tiny random FLUX.1-Kontext components, built offline, for tests, docs and examples.

Nothing here downloads: the tokenizers are built from small in-memory vocabularies
with the ``tokenizers`` backend of transformers, the models from small configs.
Component sizes follow diffusers' own Flux Kontext tests (tests/pipelines/flux).
"""

from __future__ import annotations

import math
import os
import string
from typing import Any

import torch

__all__ = [
    "build_tiny_components",
    "build_tiny_pipeline",
    "save_tiny_pipeline",
    "tiny_clip_tokenizer",
    "tiny_t5_tokenizer",
]


def _byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE maps bytes to (GPT-2's table)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_clip_tokenizer(model_max_length: int = 77):
    """A character-level CLIP tokenizer (byte-level BPE with no merges)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _byte_alphabet():
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def tiny_t5_tokenizer(model_max_length: int = 512):
    """A character-level T5 (Unigram) tokenizer without sentinel tokens."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += [("▁" + c, -2.5) for c in string.ascii_lowercase]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)


def _tiny_transformer(
    latent_channels: int, num_layers: int, num_single_layers: int, num_attention_heads: int, attention_head_dim: int
):
    """A tiny ``FluxTransformer2DModel`` (guidance embedding on, text width 32, RoPE axes from the head size)."""
    from diffusers import FluxTransformer2DModel

    rope_dims = attention_head_dim // 4
    axes = [rope_dims, rope_dims, attention_head_dim - 2 * rope_dims]
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=latent_channels * 4,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=attention_head_dim,
        num_attention_heads=num_attention_heads,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=axes,
    )


def _tiny_clip(clip_tok):
    """A tiny CLIP text encoder (width 32, 2 layers) matching ``clip_tok``'s vocabulary and special ids."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tok),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=clip_tok.bos_token_id,
            eos_token_id=clip_tok.eos_token_id,
            pad_token_id=clip_tok.pad_token_id,
            hidden_act="gelu",
        )
    )


def _tiny_t5(t5_tok):
    """A tiny T5 encoder (width 32, 2 layers) matching ``t5_tok``'s vocabulary."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tok),
            d_model=32,
            d_ff=37,
            d_kv=8,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )


def _tiny_vae(vae_scale_factor: int, latent_channels: int):
    """A tiny ``AutoencoderKL`` with ``log2(vae_scale_factor) + 1`` blocks (FLUX's shift and scaling factors)."""
    from diffusers import AutoencoderKL

    n_blocks = int(math.log2(vae_scale_factor)) + 1
    return AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        block_out_channels=(8,) * n_blocks,
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def _flux_scheduler():
    """FLUX.1-Kontext's flow-matching Euler scheduler (dynamic shifting, as in the release's config)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


def build_tiny_components(
    seed: int = 0,
    vae_scale_factor: int = 8,
    num_layers: int = 1,
    num_single_layers: int = 1,
    num_attention_heads: int = 2,
    attention_head_dim: int = 16,
    latent_channels: int = 4,
) -> dict[str, Any]:
    """All components of a FLUX.1-Kontext pipeline, tiny and randomly initialised.

    The models are built in a fixed order (transformer, CLIP, T5, VAE) from one seeded RNG, so a seed
    always gives the same weights.

    Args:
        seed: torch seed for the weights (the global RNG state is restored afterwards).
        vae_scale_factor: pixels per latent cell (power of two; 8 like the real VAE).
        num_layers, num_single_layers: double- and single-stream transformer blocks.
        num_attention_heads, attention_head_dim: transformer width.
        latent_channels: VAE latent channels (16 in the real model).

    Returns:
        keyword arguments for ``DreamOmni2Pipeline(**components)``.
    """
    if vae_scale_factor < 1 or vae_scale_factor & (vae_scale_factor - 1):
        raise ValueError(f"vae_scale_factor must be a power of two, got {vae_scale_factor}")
    clip_tok, t5_tok = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        transformer = _tiny_transformer(
            latent_channels, num_layers, num_single_layers, num_attention_heads, attention_head_dim
        )
        clip = _tiny_clip(clip_tok)
        t5 = _tiny_t5(t5_tok)
        vae = _tiny_vae(vae_scale_factor, latent_channels)
    finally:
        torch.random.set_rng_state(state)
    return {
        "scheduler": _flux_scheduler(),
        "vae": vae.eval(),
        "text_encoder": clip.eval(),
        "tokenizer": clip_tok,
        "text_encoder_2": t5.eval(),
        "tokenizer_2": t5_tok,
        "transformer": transformer.eval(),
    }


def build_tiny_pipeline(seed: int = 0, **kwargs: Any):
    """A :class:`~dreamomni2.pipeline.DreamOmni2Pipeline` of tiny random components (CPU, fp32)."""
    from dreamomni2.pipeline import DreamOmni2Pipeline

    pipe = DreamOmni2Pipeline(**build_tiny_components(seed=seed, **kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(path: str | os.PathLike, seed: int = 0, **kwargs: Any) -> str:
    """Write a tiny random pipeline as a diffusers folder (safetensors) and return its path."""
    pipe = build_tiny_pipeline(seed=seed, **kwargs)
    pipe.save_pretrained(os.fspath(path), safe_serialization=True)
    return os.fspath(path)
