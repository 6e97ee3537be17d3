"""Checkpoints: atomic folders (temporary name, then rename), keep-last-N, exact resume.

Everything is stored as safetensors + JSON (no pickle): trainable weights, optimizer state,
LR-schedule state, RNG states and the data position.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from dreamomni2.io import atomic_dir

logger = logging.getLogger(__name__)

__all__ = ["latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_NAME = re.compile(r"^step-(\d{8})$")


def _optimizer_to_flat(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, st in state["state"].items():
        meta["state"][str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
                meta["state"][str(idx)][k] = "tensor"
            else:
                meta["state"][str(idx)][k] = v
    return tensors, meta


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for idx, st in meta["state"].items():
        state[int(idx)] = {k: (tensors[f"{idx}.{k}"] if v == "tensor" else v) for k, v in st.items()}
    # JSON stores tuples as lists; give ``betas`` back its tuple form, as the optimizer built it
    groups = [
        {k: tuple(v) if k == "betas" and isinstance(v, list) else v for k, v in g.items()} for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    folder: str | os.PathLike,
    step: int,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generators: dict[str, torch.Generator],
    position: dict[str, int],
    keep_last: int = 2,
) -> Path:
    """Write ``folder/step-XXXXXXXX`` atomically (:func:`dreamomni2.io.atomic_dir`) and prune older checkpoints.

    A failure while writing leaves no ``step-*`` folder behind (and an earlier checkpoint of the same step
    untouched); ``keep_last`` complete checkpoints are kept, the oldest are removed.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    opt_tensors, opt_meta = _optimizer_to_flat(optimizer.state_dict())
    rng = {f"gen.{k}": g.get_state() for k, g in generators.items()}
    rng["torch_cpu"] = torch.random.get_rng_state()
    meta = {"step": step, "position": position, "optimizer": opt_meta, "scheduler": scheduler.state_dict()}
    text = json.dumps(meta, default=_json_default)
    with atomic_dir(final) as tmp:  # .step-XXXXXXXX.tmp, every file fsynced, then one rename
        save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        save_file(rng, tmp / "rng.safetensors")
        (tmp / "state.json").write_text(text)
    existing = sorted(p for p in root.iterdir() if _NAME.match(p.name))
    for old in existing[: max(0, len(existing) - keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _json_default(o: Any) -> Any:
    if isinstance(o, tuple):
        return list(o)
    if torch.is_tensor(o):
        return o.item() if o.numel() == 1 else o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} in a checkpoint")


def complete_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Every complete ``step-*`` folder, oldest first (temporary folders are ignored)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if _NAME.match(p.name) and (p / "state.json").is_file())


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest complete ``step-*`` folder (temporary folders are ignored)."""
    done = complete_checkpoints(folder)
    return done[-1] if done else None


def load_checkpoint(
    folder: str | os.PathLike,
    trainable_params: dict[str, torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generators: dict[str, torch.Generator],
) -> dict:
    """Restore everything :func:`save_checkpoint` wrote; returns ``{"step", "position"}``."""
    folder = Path(folder)
    meta = json.loads((folder / "state.json").read_text())
    weights = load_file(folder / "trainable.safetensors")
    missing = set(trainable_params) - set(weights)
    if missing:
        raise ValueError(f"{folder}: checkpoint lacks {len(missing)} trainable tensors, e.g. {sorted(missing)[0]}")
    with torch.no_grad():
        for name, p in trainable_params.items():
            p.copy_(weights[name])
    opt = _optimizer_from_flat(load_file(folder / "optimizer.safetensors"), meta["optimizer"])
    optimizer.load_state_dict(opt)
    scheduler.load_state_dict(meta["scheduler"])
    rng = load_file(folder / "rng.safetensors")
    for k, g in generators.items():
        g.set_state(rng[f"gen.{k}"])
    torch.random.set_rng_state(rng["torch_cpu"])
    return {"step": meta["step"], "position": meta["position"]}
