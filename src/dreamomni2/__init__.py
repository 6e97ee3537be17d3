"""DreamOmni2: multimodal instruction-based image editing and generation.

Heavy modules (torch models, diffusers) load lazily on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Session": "dreamomni2.session",
    "Request": "dreamomni2.request",
    "Result": "dreamomni2.request",
    "DreamOmni2Pipeline": "dreamomni2.pipeline",
    "reference_ids": "dreamomni2.ids",
    "ID_POLICIES": "dreamomni2.ids",
    "reference_size": "dreamomni2.resize",
    "output_size": "dreamomni2.resize",
    "load_image": "dreamomni2.images",
    "build_tiny_pipeline": "dreamomni2.testing",
    "save_tiny_pipeline": "dreamomni2.testing",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dreamomni2' has no attribute {name!r}")
