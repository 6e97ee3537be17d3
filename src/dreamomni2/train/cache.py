"""On-disk cache of VAE latents and text embeddings (safetensors), keyed by content.

An image entry's key hashes the file's bytes, the size it is resized to and the VAE's
identity; a text entry's key hashes the text, the sequence length and the text encoders'
identity. Changing any input therefore invalidates only its own entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from dreamomni2.io import atomic_save_file

logger = logging.getLogger(__name__)

__all__ = ["TensorCache", "file_digest", "module_identity"]


def file_digest(path: str | os.PathLike, _memo: dict = {}) -> str:  # noqa: B006 - deliberate per-process memo
    """sha256 of a file's bytes (memoised on path, size and mtime)."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_size, st.st_mtime_ns)
    if key not in _memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _memo[key] = h.hexdigest()
    return _memo[key]


@torch.no_grad()
def module_identity(*modules: torch.nn.Module) -> str:
    """A fingerprint of modules: class, config and per-tensor shape/sum/abs-sum of the weights."""
    h = hashlib.sha256()
    for m in modules:
        h.update(type(m).__name__.encode())
        cfg = getattr(m, "config", None)
        if cfg is not None:
            d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
            h.update(json.dumps(d, sort_keys=True, default=str).encode())
        for name, t in m.state_dict().items():
            t = t.detach().float()
            h.update(f"{name}{tuple(t.shape)}{t.sum().item():.6e}{t.abs().sum().item():.6e}".encode())
    return h.hexdigest()[:16]


class TensorCache:
    """A folder of ``<key>.safetensors`` files, written atomically."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    @staticmethod
    def key(*parts: object) -> str:
        """sha256 hex of the parts' ``str`` forms joined by a unit separator (order matters)."""
        return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        """The stored tensors (on the CPU), or ``None`` for a missing or unreadable entry (counted as a miss)."""
        p = self._path(key)
        if not p.is_file():
            self.misses += 1
            return None
        try:
            out = load_file(p)
        except Exception:  # a damaged entry is recomputed, never trusted
            logger.warning("cache entry %s is unreadable; recomputing", p)
            self.misses += 1
            return None
        self.hits += 1
        return out

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store ``tensors`` under ``key`` (CPU copies, written atomically: readers never see half a file)."""
        atomic_save_file(tensors, self._path(key))
