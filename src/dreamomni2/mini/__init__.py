"""A tiny procedural world for DreamOmni2-style multimodal editing and generation.

``dreamomni2.mini.world`` renders single-object scenes and samples instruction cases (edit / generate,
concrete / abstract); it re-exports the modules the world is split into: ``groups`` (task, category, kind and group
names), ``scene`` (vocabulary, scenes, renderer), ``text`` (canonical prompts, paraphrases, irregular
instructions), ``cases`` (cases and the seeded sampler) and ``manifest`` (cases on disk).
``dreamomni2.mini.analyzer`` reads rendered or generated images back into attributes and scores them against a
case's target (the mini counterpart of the paper's VLM judge). Only numpy and Pillow are needed; nothing is
imported here eagerly.
"""

from __future__ import annotations

from pathlib import Path

#: The shipped mini model (a diffusers folder inside the package), trained by ``python -m dreamomni2.mini.recipe``.
MODEL_DIR = Path(__file__).resolve().parent / "model"


def default_model_path() -> Path | None:
    """The shipped mini model's folder, or ``None`` when it is not there."""
    return MODEL_DIR if (MODEL_DIR / "model_index.json").is_file() else None
