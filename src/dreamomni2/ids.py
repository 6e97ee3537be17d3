"""RoPE position ids of the target and reference tokens, with named policies.

Every id is a triple ``[index, row, col]`` on the packed (2x2 patch) latent grid.
Target and text tokens keep index 0; how reference images are told apart is the
*policy*. This module is the single source of these ids: the pipeline, the trainer
and the data tools all call :func:`reference_ids`.

Policies (image ``i`` is 0-based, ``(h_i, w_i)`` its packed size):

* ``dreamomni2`` — index ``i + 1``; columns shifted by ``sum(w_j for j < i)``
  (the release's scheme, DreamOmni2 paper §3; the release also accumulates a row
  offset but never applies it, so it is not applied here either).
* ``kontext`` — index 1 for every image, no offset (FLUX.1-Kontext).
* ``index`` — index ``i + 1``, no offset (ablation "index only").
* ``shift`` — index 1, cumulative column offset (ablation "shift only").
* ``diagonal`` — index 0; rows and columns offset from the target's packed size and
  accumulated over the references (idea from UNO, bytedance/UNO ``sampling.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where ids are built, so the policy registry stays light (CLI start-up)
    import torch

__all__ = [
    "ID_POLICIES",
    "IdPolicy",
    "get_policy",
    "grid_ids",
    "reference_ids",
    "reference_offsets",
    "target_ids",
]


@dataclass(frozen=True)
class IdPolicy:
    """How reference images are placed in RoPE space.

    Attributes:
        name: registry name.
        index: ``"per_image"`` (i + 1), ``"one"`` (always 1) or ``"zero"``.
        offset: ``"none"``, ``"columns"`` (cumulative packed widths) or
            ``"diagonal"`` (rows and columns from the target size on).
    """

    name: str
    index: str
    offset: str

    @property
    def needs_target(self) -> bool:
        return self.offset == "diagonal"


ID_POLICIES: dict[str, IdPolicy] = {
    p.name: p
    for p in (
        IdPolicy("dreamomni2", index="per_image", offset="columns"),
        IdPolicy("kontext", index="one", offset="none"),
        IdPolicy("index", index="per_image", offset="none"),
        IdPolicy("shift", index="one", offset="columns"),
        IdPolicy("diagonal", index="zero", offset="diagonal"),
    )
}


def get_policy(policy: str | IdPolicy) -> IdPolicy:
    """Look a policy up by name; raises ``ValueError`` naming the known ones."""
    if isinstance(policy, IdPolicy):
        return policy
    try:
        return ID_POLICIES[policy]
    except (KeyError, TypeError):
        known = ", ".join(ID_POLICIES)
        raise ValueError(f"Unsupported id policy {policy!r}; choose one of: {known}.") from None


def grid_ids(
    height: int,
    width: int,
    index: int = 0,
    row_offset: int = 0,
    col_offset: int = 0,
) -> torch.Tensor:
    """Ids of a ``height x width`` packed grid in row-major order.

    Returns:
        float32 tensor ``[height * width, 3]`` of ``[index, row + row_offset, col + col_offset]``.
    """
    import torch

    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    ids = torch.stack([torch.full_like(rows, float(index)), rows + row_offset, cols + col_offset], dim=-1)
    return ids.reshape(height * width, 3)


def target_ids(height: int, width: int) -> torch.Tensor:
    """Ids of the noisy target tokens (index 0, no offset); packed size ``(height, width)``."""
    return grid_ids(height, width)


def reference_offsets(
    sizes: Sequence[tuple[int, int]],
    policy: str | IdPolicy = "dreamomni2",
    target: tuple[int, int] | None = None,
) -> list[tuple[int, int, int]]:
    """Per-image ``(index, row_offset, col_offset)`` under ``policy``.

    Args:
        sizes: packed ``(height, width)`` of each reference image, in order.
        policy: a name from :data:`ID_POLICIES` or an :class:`IdPolicy`.
        target: packed ``(height, width)`` of the target; required by ``diagonal``.
    """
    pol = get_policy(policy)
    if pol.needs_target and target is None:
        raise ValueError(f"Id policy {pol.name!r} needs the target's packed size.")
    out = []
    row_acc, col_acc = target if pol.offset == "diagonal" else (0, 0)
    for i, (h, w) in enumerate(sizes):
        if h <= 0 or w <= 0:
            raise ValueError(f"Reference {i + 1} has an empty packed size {(h, w)}.")
        index = {"per_image": i + 1, "one": 1, "zero": 0}[pol.index]
        if pol.offset == "none":
            out.append((index, 0, 0))
            continue
        out.append((index, row_acc if pol.offset == "diagonal" else 0, col_acc))
        row_acc += h
        col_acc += w
    return out


def reference_ids(
    sizes: Sequence[tuple[int, int]],
    policy: str | IdPolicy = "dreamomni2",
    target: tuple[int, int] | None = None,
) -> torch.Tensor:
    """RoPE ids of all reference tokens, concatenated in image order.

    Args:
        sizes: packed ``(height, width)`` of each reference (latent size // 2).
        policy: id policy name or object.
        target: packed target ``(height, width)`` (only ``diagonal`` uses it).

    Returns:
        float32 tensor ``[sum(h_i * w_i), 3]``.
    """
    import torch

    offsets = reference_offsets(sizes, policy, target)
    if not offsets:
        return torch.zeros(0, 3)
    return torch.cat([grid_ids(h, w, *off) for (h, w), off in zip(sizes, offsets, strict=True)], dim=0)
