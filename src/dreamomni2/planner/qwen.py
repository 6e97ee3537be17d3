"""Local Qwen2.5-VL planner (the release's ``vlm-model/``), run with transformers.

Follows the release's inference: one user turn with the images (each once, in order) then the
text ``instruction + task suffix``; ``processor.apply_chat_template(add_generation_prompt=True)``;
greedy ``generate``; only the new tokens are decoded (special tokens skipped). The release feeds
the images through ``qwen_vl_utils.process_vision_info`` first; here the processor's own image
processor does the Qwen resize (``min_pixels``/``max_pixels`` from the folder's processor config).
Greedy decoding still applies the folder's ``generation_config.json`` processors that are not
sampling ones (``repetition_penalty=1.05`` for Qwen2.5-VL-7B-Instruct), as the release's
``generate(do_sample=False)`` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from PIL import Image

from dreamomni2.devices import resolve_dtype
from dreamomni2.planner.base import Planner, build_user_text, normalize_task
from dreamomni2.planner.registry import PlannerBackend, register_planner

__all__ = ["QwenPlanner", "resolve_model_dir"]

logger = logging.getLogger(__name__)


def resolve_model_dir(model_dir: str | os.PathLike) -> str:
    """The folder holding the VLM's ``config.json`` (``model_dir`` itself, or its ``vlm-model/``).

    Args:
        model_dir: a local Qwen2.5-VL folder, or a release folder that contains ``vlm-model/``.

    Returns:
        The folder path as a string.

    Raises:
        FileNotFoundError: naming the folder, when it or its ``config.json`` is missing.
    """
    folder = os.fspath(model_dir)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Planner model folder {folder!r} does not exist (expected a local Qwen2.5-VL folder).")
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    nested = os.path.join(folder, "vlm-model")
    if os.path.isfile(os.path.join(nested, "config.json")):
        return nested
    raise FileNotFoundError(f"Planner model folder {folder!r} has no config.json (is it a Qwen2.5-VL model folder?).")


def _resolve_dtype(dtype: Any, device: str) -> Any:
    """A torch dtype from ``None`` (bf16 on CUDA, fp32 elsewhere), a name or a dtype; ``"auto"`` stays
    ``"auto"`` (transformers' own choice from the model's config). See :func:`dreamomni2.devices.resolve_dtype`."""
    if dtype == "auto":
        return "auto"
    return resolve_dtype(dtype, device)


class QwenPlanner(Planner):
    """Qwen2.5-VL instruction planner loaded lazily from a local folder (``local_files_only``).

    Args:
        model_dir: local folder with the VLM (the release's ``vlm-model/``, or its parent).
        device: where to run generation (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...).
        dtype: torch dtype or name; ``None`` means bfloat16 on CUDA, float32 elsewhere.
        max_new_tokens: generation budget for the rewritten prompt.
        max_area: optional pixel cap for the Kontext resize of the images (not in the release).
    """

    backend = "qwen"

    def __init__(
        self,
        model_dir: str | os.PathLike,
        device: str = "cpu",
        dtype: Any = None,
        max_new_tokens: int = 256,
        max_area: int | None = None,
    ) -> None:
        self.model_dir = resolve_model_dir(model_dir)
        self.device = str(device)
        self.dtype = dtype
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
        self.max_new_tokens = int(max_new_tokens)
        self.max_area = max_area
        self.model: Any = None
        self.processor: Any = None

    @property
    def loaded(self) -> bool:
        """Whether the model and processor are loaded."""
        return self.model is not None

    def load(self) -> QwenPlanner:
        """Load the processor and model from the local folder onto ``device`` (no-op when loaded).

        Returns:
            ``self``.
        """
        if self.loaded:
            return self
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        dtype = _resolve_dtype(self.dtype, self.device)
        logger.info("Loading the planner VLM from %s (%s, %s)", self.model_dir, self.device, dtype)
        try:
            processor = AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                self.model_dir, dtype=dtype, local_files_only=True, use_safetensors=True
            )
        except OSError as err:
            raise FileNotFoundError(f"Cannot load the planner VLM from {self.model_dir!r}: {err}") from err
        self.processor = processor
        self.model = model.to(self.device).eval()
        return self

    def offload(self) -> QwenPlanner:
        """Move the model to the CPU (frees accelerator memory); the next plan moves it back.

        Returns:
            ``self``.
        """
        if self.model is not None and self.model.device.type != "cpu":
            import torch

            self.model.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return self

    def unload(self) -> None:
        """Drop the model and processor (they reload on the next plan)."""
        self.offload()
        self.model = None
        self.processor = None

    def build_messages(self, images: Sequence[Image.Image], instruction: str, task: str) -> list[dict[str, Any]]:
        """The release's single user turn: one image part per image, in order, then the text part.

        Args:
            images: the (already resized) images, in order.
            instruction: the user's instruction.
            task: ``"edit"`` or ``"generate"``.

        Returns:
            ``[{"role": "user", "content": [{"type": "image", "image": img}, ..., {"type": "text", "text": ...}]}]``.
        """
        return QwenPlanner.chat_messages(images, build_user_text(instruction, normalize_task(task)))

    @staticmethod
    def chat_messages(images: Sequence[Image.Image], text: str) -> list[dict[str, Any]]:
        """One user turn: one image part per image, in order, then the text part ``text``."""
        content: list[dict[str, Any]] = [{"type": "image", "image": img} for img in images]
        content.append({"type": "text", "text": text})
        return [{"role": "user", "content": content}]

    def build_inputs(self, images: Sequence[Image.Image], instruction: str, task: str) -> Any:
        """Chat-template and process one request (loads the processor); tensors on the model's device.

        Args:
            images: the (already resized) images, in order.
            instruction: the user's instruction.
            task: ``"edit"`` or ``"generate"``.

        Returns:
            The processor's ``BatchFeature`` (``input_ids``, ``attention_mask``, ``pixel_values``,
            ``image_grid_thw`` ...), batch size 1.
        """
        return self._chat_inputs(images, build_user_text(instruction, normalize_task(task)))

    def _chat_inputs(self, images: Sequence[Image.Image], text: str) -> Any:
        self.load()
        messages = self.chat_messages(images, text)
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self.processor(text=[prompt], images=list(images) or None, padding=True, return_tensors="pt")
        return inputs.to(self.model.device)

    def generate_reply(self, images: list[Image.Image], instruction: str, task: str) -> str:
        """Greedy-decode the planner's reply (new tokens only, special tokens skipped)."""
        return self.chat(images, build_user_text(instruction, normalize_task(task)))

    def chat(self, images: Sequence[Image.Image], text: str, temperature: float = 0) -> str:
        """Decode the model's reply to one user turn (the images, then ``text``): new tokens only, special tokens
        skipped, at most ``max_new_tokens``. Shared by the planner and the benchmark's VLM judges.

        Args:
            images: the images, in order.
            text: the text part of the turn.
            temperature: 0 decodes greedily; above 0 samples at that temperature.

        Returns:
            The decoded reply.
        """
        import torch

        self.load()
        if self.model.device.type != torch.device(self.device).type:  # back from offload()
            self.model.to(self.device)
        inputs = self._chat_inputs(images, text)
        # sampling overrides the folder's near-greedy top_p/top_k (Qwen2.5-VL ships top_k=1)
        sampling = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": float(temperature), "top_p": 1.0, "top_k": 0}
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, **sampling)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        reply = self.processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return reply[0]


register_planner(
    PlannerBackend(
        name="qwen",
        usage="qwen:DIR",
        help="a local Qwen2.5-VL folder (e.g. the release's vlm-model/), via transformers",
        build=lambda arg, **options: QwenPlanner(arg, **options),
        options=("device", "dtype", "max_new_tokens", "max_area"),
        takes_arg=True,
    )
)
