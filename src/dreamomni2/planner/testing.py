"""A tiny random Qwen2.5-VL planner folder, built offline, for tests and examples.

:func:`build_tiny_qwen_vl` writes a folder laid out like the release's ``vlm-model/``
(config, safetensors weights, generation config, tokenizer, image and video processor,
chat template) so that ``AutoProcessor.from_pretrained(folder)`` and
``Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)`` load it through the real
transformers code path. The weights are random, so its replies are garbage; the token
layout (special tokens, one vision span per image, image-pad expansion) is the real one.
"""

from __future__ import annotations

import logging
import os

__all__ = ["QWEN2_VL_CHAT_TEMPLATE", "QWEN_SPECIAL_TOKENS", "build_tiny_qwen_vl", "tiny_qwen_tokenizer"]

logger = logging.getLogger(__name__)

#: Qwen2.5-VL's special tokens, in the release's id order (151643 ... for the real vocabulary).
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Qwen2-VL's chat template (the one Qwen2.5-VL-7B-Instruct ships): one vision span per image.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_qwen_tokenizer():
    """A byte-level BPE tokenizer (256 byte tokens, no merges) plus Qwen2.5-VL's special tokens.

    Returns:
        A transformers fast tokenizer (``tokenizers`` backend) with ``<|endoftext|>`` as pad token and
        ``<|im_end|>`` as eos token, like Qwen2.5-VL-Instruct.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )


def _tiny_qwen_config(ids: dict[str, int], vocab_size: int, hidden_size: int, num_layers: int):
    """A ``Qwen2_5_VLConfig``: 2-head text model of ``hidden_size``, 2-block vision tower half as wide.

    Args:
        ids: special token -> id (from the tokenizer).
        vocab_size: embedding rows (the tokenizer's length rounded up).
        hidden_size: text hidden size.
        num_layers: text decoder layers.
    """
    from transformers import Qwen2_5_VLConfig

    num_heads = 2
    head_dim = hidden_size // num_heads
    quarter = head_dim // 2  # mrope splits head_dim / 2 rotary frequencies into (t, h, w) sections
    mrope_section = [quarter - 2 * (quarter * 3 // 8), quarter * 3 // 8, quarter * 3 // 8]
    vision_width = max(16, hidden_size // 2)
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": hidden_size,
            "intermediate_size": hidden_size * 2,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "num_key_value_heads": num_heads,
            "max_position_embeddings": 4096,
            "max_window_layers": num_layers,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope_section},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": vision_width,
            "intermediate_size": vision_width * 2,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "out_hidden_size": hidden_size,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def _qwen_generation_config(ids: dict[str, int]):
    """The generation config of Qwen2.5-VL-7B-Instruct's ``generation_config.json`` (same fields and values)."""
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=True,
        repetition_penalty=1.05,
        temperature=0.1,
        top_p=0.001,
        top_k=1,
    )


def _tiny_qwen_processor(tokenizer, min_pixels: int, max_pixels: int):
    """A ``Qwen2_5_VLProcessor`` (patch 14, merge 2, temporal patch 2) with the Qwen2-VL chat template."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    common = {"min_pixels": min_pixels, "max_pixels": max_pixels, "patch_size": 14, "merge_size": 2}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(temporal_patch_size=2, **common),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(temporal_patch_size=2, **common),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )


def build_tiny_qwen_vl(
    folder: str | os.PathLike,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    min_pixels: int = 28 * 28 * 4,
    max_pixels: int = 28 * 28 * 16,
) -> str:
    """Build and save a tiny random Qwen2.5-VL model and its processor, offline.

    Args:
        folder: where to save (created if missing); laid out like the release's ``vlm-model/``.
        seed: torch seed for the random weights (the global RNG state is restored afterwards).
        hidden_size: text hidden size (2 attention heads; the vision tower is half as wide).
        num_layers: number of text decoder layers (the vision tower has 2 blocks).
        min_pixels, max_pixels: the image processor's pixel budget; the defaults give 4 to 16
            ``<|image_pad|>`` tokens per image (patch 14, merge 2 as in the real model).

    Returns:
        ``str(folder)``.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    tokenizer = tiny_qwen_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    vocab_size = (len(tokenizer) + 63) // 64 * 64
    config = _tiny_qwen_config(ids, vocab_size, hidden_size, num_layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
    # the planner overrides do_sample
    model.generation_config = _qwen_generation_config(ids)
    model.save_pretrained(folder)
    _tiny_qwen_processor(tokenizer, min_pixels, max_pixels).save_pretrained(folder)
    logger.debug("Saved a tiny Qwen2.5-VL (%d params) to %s", sum(p.numel() for p in model.parameters()), folder)
    return folder
