"""Device and dtype resolution: the one place ``auto``, ``cuda``, ``float32`` ... become torch objects.

Every surface (CLI, Session, bench, server) calls :func:`resolve_device` and :func:`resolve_dtype`. Errors are
``ValueError``s that name the option, so a CLI can print them as they are.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEVICE_CHOICES", "DTYPE_CHOICES", "resolve_device", "resolve_dtype"]

#: Accepted device names (``cuda:N`` is accepted too).
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
#: Accepted dtype names.
DTYPE_CHOICES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


def resolve_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, then ``mps``, then ``cpu``; an explicit name is checked.

    Raises:
        ValueError: an unknown name, or an accelerator that is not available (``--device cuda: ...``).
    """
    import torch

    name = str(name).strip().lower()
    base = name.split(":", 1)[0]
    if base not in DEVICE_CHOICES or (":" in name and base != "cuda"):
        raise ValueError(f"--device {name}: unknown device; use one of {', '.join(DEVICE_CHOICES)} or cuda:N")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available")
    if base == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: MPS is not available")
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(name: Any = "auto", device: str = "cpu") -> Any:
    """``auto``/``None`` -> ``bfloat16`` on CUDA, ``float32`` elsewhere; a name (``bf16``, ``fp16``, ``half`` and
    ``fp32`` too) or a ``torch.dtype`` passes through.

    Raises:
        ValueError: an unknown dtype name.
    """
    import torch

    if isinstance(name, torch.dtype):
        return name
    if name is None or name == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    key = _DTYPE_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in DTYPE_CHOICES:
        raise ValueError(f"--dtype {name}: unknown dtype; use one of {', '.join(DTYPE_CHOICES)}")
    return getattr(torch, key)
