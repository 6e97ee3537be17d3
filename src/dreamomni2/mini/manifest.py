"""Mini-world cases on disk: rendered PNGs plus a ``manifest.jsonl`` (:func:`write_cases`), read back by
:func:`read_manifest` (the rows) and :func:`read_cases` (the cases). The trainer reads the same manifest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamomni2.mini.cases import Case
from dreamomni2.mini.scene import render

__all__ = ["read_cases", "read_manifest", "write_cases"]

logger = logging.getLogger(__name__)


def write_cases(cases: Sequence[Case], folder: str | Path, size: int = 32) -> Path:
    """Render cases to PNG files and write ``manifest.jsonl``.

    Each row holds ``task``, ``category``, ``kind``, ``images`` and ``target`` (paths relative to the manifest),
    ``instruction``, ``prompt``, ``target_attributes``, plus ``image_attributes``, ``refs`` and ``id`` so that
    :func:`read_cases` can rebuild the cases.

    Args:
        cases: cases to write.
        folder: output folder (created if needed).
        size: image side in pixels.

    Returns:
        The manifest path.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.jsonl"
    with manifest.open("w", encoding="utf-8") as f:
        for i, case in enumerate(cases):
            paths = []
            for j, scene in enumerate(case.images):
                rel = f"images/{i:06d}_{j + 1}.png"
                render(scene, size).save(folder / rel)
                paths.append(rel)
            target_rel = f"targets/{i:06d}.png"
            render(case.target, size).save(folder / target_rel)
            row = {
                "id": i,
                "task": case.task,
                "category": case.category,
                "kind": case.kind,
                "images": paths,
                "instruction": case.instruction,
                "prompt": case.prompt,
                "target": target_rel,
                "target_attributes": case.target.to_dict(),
                "image_attributes": [s.to_dict() for s in case.images],
                "refs": case.refs,
            }
            f.write(json.dumps(row) + "\n")
    logger.info("wrote %d cases (%d px) to %s", len(cases), size, manifest)
    return manifest


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Read manifest rows (a manifest file or the folder holding ``manifest.jsonl``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_cases(path: str | Path) -> list[Case]:
    """Rebuild the cases written by :func:`write_cases`.

    Args:
        path: the manifest file or its folder.

    Returns:
        The cases, in manifest order.
    """
    return [
        Case.from_dict({**row, "images": row["image_attributes"], "target": row["target_attributes"]})
        for row in read_manifest(path)
    ]
