"""Training data: the JSONL manifest, row checks, and size buckets.

A manifest row::

    {"task": "edit"|"generate", "images": ["src.png", "ref1.png"], "instruction": "...",
     "prompt": "optional planned prompt", "target": "target.png"}

Paths are relative to the manifest. Edit rows put the image to edit first. Sizes come from
:mod:`dreamomni2.resize` (the same functions the pipeline uses).

A manifest may also be a Hugging Face ``datasets`` folder (written by ``save_to_disk``, one split) whose rows have
the same columns; its paths are relative to the folder holding it, and its "line numbers" are 1-based row numbers.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from dreamomni2.images import DEFAULT_MAX_PIXELS
from dreamomni2.tasks import MAX_IMAGES

logger = logging.getLogger(__name__)

__all__ = [
    "Problem", "Sample", "bucket_batches", "check_manifest", "dataset_rows", "is_dataset_folder", "read_manifest",
    "renumber_images",
]  # fmt: skip


@dataclass(frozen=True)
class Sample:
    """One training example (paths resolved)."""

    line: int
    task: str
    images: tuple[Path, ...]
    instruction: str
    target: Path
    prompt: str | None = None

    def text(self, use_prompt: bool = True) -> str:
        """The text to train on: the planned ``prompt`` when asked for and present, else the instruction."""
        return self.prompt if (use_prompt and self.prompt) else self.instruction


@dataclass(frozen=True)
class Problem:
    """A bad manifest row."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _check_image(path: Path, max_pixels: int) -> str | None:
    from dreamomni2.images import ALLOWED_FORMATS

    if not path.exists():
        return f"missing image {path}"
    if not path.is_file():
        return f"image {path} is not a regular file"
    try:
        with Image.open(path, formats=ALLOWED_FORMATS) as im:
            w, h = im.size
            if w * h > max_pixels:
                return f"image {path} is {w}x{h}, above {max_pixels} pixels"
            im.verify()
    except Exception as e:  # any decoder failure is a bad row, not a crash
        return f"unreadable image {path} ({type(e).__name__})"
    return None


def _outside_root(paths: list, root: Path, allowed: tuple[Path, ...] = ()) -> list[str]:
    """Errors for paths that leave the manifest's folder and the allowed roots (absolute, ``..``, symlinks out)."""
    bases = (root.resolve(), *(Path(a).resolve() for a in allowed))
    out = []
    for p in paths:
        if isinstance(p, str) and p and not any((root / p).resolve().is_relative_to(b) for b in bases):
            out.append(f"path {p!r} leaves the manifest's folder {root} (allow other folders with data.allowed_roots)")
    return out


def _parse_row(
    line_no: int, raw: str, root: Path, max_images: int, allowed: tuple[Path, ...] = ()
) -> tuple[Sample | None, list[str]]:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as e:
        return None, [f"not valid JSON ({e.msg})"]
    if not isinstance(row, dict):
        return None, ["row is not a JSON object"]
    errors = []
    task = row.get("task")
    if task not in ("edit", "generate"):
        errors.append(f"task must be 'edit' or 'generate', got {task!r}")
    images = row.get("images", [])
    if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
        errors.append("images must be a list of paths")
        images = []
    if task == "edit" and not images:
        errors.append("an edit row needs at least the image to edit")
    if len(images) > max_images:
        errors.append(f"{len(images)} images, more than max_images={max_images}")
    instruction = row.get("instruction")
    if not isinstance(instruction, str):
        errors.append(f"instruction must be a string, got {type(instruction).__name__}")
    elif not instruction.strip():
        errors.append("empty instruction")
    errors += _outside_root([*images, row.get("target")], root, allowed)
    prompt = row.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        errors.append("prompt must be a string")
    target = row.get("target")
    if not isinstance(target, str) or not target:
        errors.append("missing target")
    if errors:
        return None, errors
    sample = Sample(
        line=line_no,
        task=task,
        images=tuple(root / p for p in images),
        instruction=instruction,
        target=root / target,
        prompt=prompt or None,
    )
    return sample, []


def read_manifest(
    path: str | Path,
    max_images: int = MAX_IMAGES,
    check_files: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allowed_roots: tuple[str | Path, ...] = (),
) -> tuple[list[Sample], list[Problem]]:
    """Read a manifest (JSONL, or a ``datasets`` folder); returns the good samples and every problem (line
    numbers are 1-based).

    Image and target paths must resolve (after symlinks) inside the manifest's folder or one of ``allowed_roots``.

    Raises:
        FileNotFoundError: when the manifest itself is missing. ValueError: a manifest that is not UTF-8.
    """
    path = Path(path)
    root = path.parent
    samples, problems, seen = [], [], {}
    checked: dict[Path, str | None] = {}
    for line_no, raw in _manifest_lines(path):
        if not raw.strip():
            continue
        sample, errors = _parse_row(line_no, raw, root, max_images, tuple(Path(a) for a in allowed_roots))
        if sample is not None and check_files:
            for p in (*sample.images, sample.target):
                if p not in checked:
                    checked[p] = _check_image(p, max_pixels)
                if checked[p]:
                    errors.append(checked[p])
        if sample is not None and not errors:
            key = (sample.task, sample.images, sample.instruction, sample.prompt, sample.target)
            if key in seen:
                errors.append(f"duplicate of line {seen[key]}")
            else:
                seen[key] = line_no
        if errors:
            problems.extend(Problem(line_no, e) for e in errors)
        else:
            samples.append(sample)
    return samples, problems


def is_dataset_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict)."""
    p = Path(path)
    return p.is_dir() and any((p / name).is_file() for name in ("state.json", "dataset_dict.json"))


def dataset_rows(path: str | Path) -> list[dict]:
    """The rows of a ``datasets`` folder (``load_from_disk``; a DatasetDict must hold exactly one split).

    Raises:
        ValueError: ``datasets`` is not installed, or a DatasetDict has several splits (naming the folder).
    """
    try:
        import datasets
    except ImportError:
        raise ValueError(f"{path}: reading a datasets folder needs `pip install datasets`") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise ValueError(f"{path}: a DatasetDict with splits {sorted(ds)}; save one split")
        ds = next(iter(ds.values()))
    return [dict(row) for row in ds]


def _manifest_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, JSON text)`` of every line of a JSONL manifest, or of every row of a ``datasets`` folder."""
    if is_dataset_folder(path):
        return [(i, json.dumps(row, default=str)) for i, row in enumerate(dataset_rows(path), start=1)]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return list(enumerate(text.splitlines(), start=1))


def check_manifest(path: str | Path, max_images: int = MAX_IMAGES) -> list[Problem]:
    """Every problem of a manifest, with line numbers (empty list: all rows are good)."""
    return read_manifest(path, max_images=max_images)[1]


_IMAGE_REF = re.compile(r"\b(image|picture|photo|img)(\s*#?\s*)(\d+)\b", re.IGNORECASE)


def renumber_images(text: str, mapping: dict[int, int]) -> str:
    """Rewrite "image N" mentions (1-based) through ``mapping`` (old -> new number)."""

    def sub(m: re.Match) -> str:
        n = int(m.group(3))
        return f"{m.group(1)}{m.group(2)}{mapping.get(n, n)}"

    return _IMAGE_REF.sub(sub, text)


def bucket_batches(keys: Sequence[tuple], batch_size: int, seed: int, epoch: int) -> Iterator[list[int]]:
    """Batches of sample indices whose samples share a size bucket (no padding needed).

    Deterministic in ``(seed, epoch)``. Each bucket is shuffled and cut into full batches; the
    last batch of a bucket is filled by wrapping around the bucket, so every batch is full.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        buckets[k].append(i)
    batches = []
    for key in sorted(buckets, key=repr):
        idx = buckets[key][:]
        rng.shuffle(idx)
        n_batches = -(-len(idx) // batch_size)
        padded = [idx[j % len(idx)] for j in range(n_batches * batch_size)]
        batches += [padded[b * batch_size : (b + 1) * batch_size] for b in range(n_batches)]
    rng.shuffle(batches)
    yield from batches
