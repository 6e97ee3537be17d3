"""A bounded, content-keyed LRU cache of reference-image VAE latents (one per Session).

A request that reuses a reference image (the same pixels at the same prepared size) skips its VAE encoding: the
pipeline's :meth:`~dreamomni2.pipeline.DreamOmni2Pipeline.encode_images` looks the prepared image tensor up here
by a hash of its bytes, shape and dtype plus the VAE's dtype and device and the latent dtype. The latents are the
same tensors a fresh encoding gives (the encoder is deterministic: distribution mode), so outputs do not change.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["DEFAULT_MAX_BYTES", "LatentCache"]

#: Default bound on the cached latents' bytes (256 MiB: about 1,000 1024x1024 FLUX references in bf16).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class LatentCache:
    """LRU cache of latents, bounded by their total bytes; thread-safe.

    Args:
        max_bytes: most bytes of latents kept (0 disables the cache).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(image: Any, *context: Any) -> str:
        """A content key for a prepared image tensor and the encoding context (VAE dtype/device, latent dtype)."""
        h = hashlib.blake2b(digest_size=20)
        h.update(repr((tuple(image.shape), str(image.dtype), *map(str, context))).encode())
        h.update(image.detach().to("cpu").contiguous().numpy().tobytes())
        return h.hexdigest()

    def get(self, key: str) -> Any | None:
        """The cached latent (moved to the front), or ``None``."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, latent: Any) -> None:
        """Keep ``latent`` (a tensor), evicting the least recently used ones beyond :attr:`max_bytes`."""
        size = latent.numel() * latent.element_size()
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = latent.detach()
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= old.numel() * old.element_size()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Drop everything (e.g. after the VAE's weights change)."""
        with self._lock:
            self._items.clear()
            self.bytes = 0
