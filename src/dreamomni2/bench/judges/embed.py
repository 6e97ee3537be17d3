"""Embedding similarity judges from local weights: ``clip:DIR`` (CLIP-I, CLIP-T) and ``dino:DIR`` (DINOv2).

* ``clip:DIR`` loads ``CLIPModel`` and ``CLIPProcessor`` from a local folder (e.g. ``openai/clip-vit-large-patch14``
  downloaded beforehand) and scores ``clip_i_<k>`` = cosine(output, input image k) for every input,
  ``clip_i`` = their mean, and ``clip_t`` = cosine(output, instruction) (text cut to the model's 77 tokens).
* ``dino:DIR`` loads ``Dinov2Model`` and ``AutoImageProcessor`` (e.g. ``facebook/dinov2-base``) and scores
  ``dino_<k>`` = cosine of the pooled (CLS) features of output and input image k, and ``dino`` = their mean.

They are scores, not pass/fail: ``success`` is None, ``score`` the headline value (``clip_i`` / ``dino``). Both load
with ``local_files_only`` (nothing is downloaded) and safetensors only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from PIL import Image

from dreamomni2.bench.judges.base import Judge
from dreamomni2.bench.records import Verdict
from dreamomni2.bench.suite import SuiteCase

__all__ = ["ClipJudge", "DinoJudge", "cosine_rows"]

logger = logging.getLogger(__name__)


def cosine_rows(first: Any, others: Any) -> list[float]:
    """Cosine similarity of one feature row ``first`` (shape ``(1, D)`` or ``(D,)``) with each row of ``others``."""
    import torch

    a = torch.nn.functional.normalize(first.reshape(1, -1).double(), dim=-1)
    b = torch.nn.functional.normalize(others.reshape(others.shape[0], -1).double(), dim=-1)
    return [float(x) for x in (b @ a.T).reshape(-1).clamp(-1.0, 1.0)]


def _pooled(out: Any) -> Any:
    """Features from a ``get_*_features`` result: a tensor (older transformers) or an output's ``pooler_output``."""
    return out if hasattr(out, "reshape") else out.pooler_output


def _check_dir(folder: str, kind: str) -> str:
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FileNotFoundError(f"{kind} judge folder {folder!r} has no config.json (a local {kind} model folder)")
    return folder


class _EmbedJudge(Judge):
    kind = "score"
    label = "embed"

    def __init__(self, model_dir: str | os.PathLike, device: str = "cpu", dtype: Any = None) -> None:
        self.model_dir = _check_dir(os.fspath(model_dir), self.label)
        self.name = f"{self.label.lower()}:{self.model_dir}"
        self.device = str(device)
        self.dtype = dtype
        self.model: Any = None
        self.processor: Any = None

    def _load(self, model_cls: Any, processor_cls: Any) -> None:
        from dreamomni2.devices import resolve_dtype

        dtype = resolve_dtype(self.dtype, self.device)
        try:
            self.processor = processor_cls.from_pretrained(self.model_dir, local_files_only=True)
            model = model_cls.from_pretrained(self.model_dir, dtype=dtype, local_files_only=True, use_safetensors=True)
        except OSError as e:
            raise FileNotFoundError(f"cannot load the {self.label} judge from {self.model_dir!r}: {e}") from e
        self.model = model.to(self.device).eval()

    def _pixels(self, images: Sequence[Image.Image]) -> Any:
        rgb = [im.convert("RGB") if im.mode != "RGB" else im for im in images]
        pixels = self.processor(images=rgb, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.model.dtype)


class ClipJudge(_EmbedJudge):
    """CLIP-I (output vs each input image) and CLIP-T (output vs instruction) cosine similarities."""

    label = "CLIP"

    def prepare(self) -> ClipJudge:
        """Load ``CLIPModel`` and ``CLIPProcessor`` from the folder (once)."""
        if self.model is None:
            from transformers import CLIPModel, CLIPProcessor

            self._load(CLIPModel, CLIPProcessor)
        return self

    def judge(self, case: SuiteCase, output: Image.Image, inputs: Sequence[Image.Image]) -> Verdict:
        """Score ``output`` against ``inputs`` and the instruction.

        Returns:
            ``scores``: ``clip_i_1`` ... ``clip_i_<n>``, ``clip_i`` (their mean), ``clip_t``; ``score`` = ``clip_i``.
        """
        import torch

        self.prepare()
        with torch.inference_mode():
            feats = _pooled(self.model.get_image_features(pixel_values=self._pixels([output, *inputs])))
            tokens = self.processor.tokenizer([case.instruction], padding=True, truncation=True, return_tensors="pt")
            text = _pooled(self.model.get_text_features(**tokens.to(self.device)))
        sims = cosine_rows(feats[0], feats[1:])
        scores = {f"clip_i_{k}": s for k, s in enumerate(sims, 1)}
        scores["clip_i"] = sum(sims) / len(sims)
        scores["clip_t"] = cosine_rows(feats[0], text)[0]
        return Verdict(id=case.id, judge=self.name, judged=True, success=None, score=scores["clip_i"], scores=scores,
                       reason=f"CLIP-I {scores['clip_i']:.3f}, CLIP-T {scores['clip_t']:.3f}")  # fmt: skip


class DinoJudge(_EmbedJudge):
    """DINOv2 cosine similarity of the output with each input image (pooled CLS features)."""

    label = "DINO"

    def prepare(self) -> DinoJudge:
        """Load ``Dinov2Model`` and ``AutoImageProcessor`` from the folder (once)."""
        if self.model is None:
            from transformers import AutoImageProcessor, Dinov2Model

            self._load(Dinov2Model, AutoImageProcessor)
        return self

    def judge(self, case: SuiteCase, output: Image.Image, inputs: Sequence[Image.Image]) -> Verdict:
        """Score ``output`` against ``inputs``.

        Returns:
            ``scores``: ``dino_1`` ... ``dino_<n>`` and ``dino`` (their mean); ``score`` = ``dino``.
        """
        import torch

        self.prepare()
        with torch.inference_mode():
            feats = self.model(pixel_values=self._pixels([output, *inputs])).pooler_output
        sims = cosine_rows(feats[0], feats[1:])
        scores = {f"dino_{k}": s for k, s in enumerate(sims, 1)}
        scores["dino"] = sum(sims) / len(sims)
        return Verdict(id=case.id, judge=self.name, judged=True, success=None, score=scores["dino"], scores=scores,
                       reason=f"DINO {scores['dino']:.3f}")  # fmt: skip
