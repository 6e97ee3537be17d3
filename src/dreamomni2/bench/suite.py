"""The one on-disk case format of a benchmark suite: ``SUITE_DIR/suite.json`` + ``cases.jsonl`` + images.

Layout of a suite folder (written by ``dreamomni2 bench import``, read by ``bench run``, ``judge`` and ``report``)::

    SUITE_DIR/
      suite.json      {"format": 1, "name": ..., "source": ..., "n_cases": ..., "created": ...}
      cases.jsonl     one SuiteCase per line (see below)
      images/<id>/<k>.<ext>   the case's images, in order (for edits the image to edit first)

A row of ``cases.jsonl``::

    {"id": "edit/replace/3", "task": "edit", "category": "concrete", "subcategory": "replace",
     "images": ["images/edit_replace_3/1.png", ...], "instruction": "...", "notes": null, "truth": null}

``truth`` is optional ground truth a judge may use (the mini suite stores the mini world's case there, as
:meth:`dreamomni2.mini.cases.Case.to_dict` writes it, so the ``analyzer`` judge can score it). Image paths are
relative to the suite folder and must stay inside it. Case ids are unique, non-empty and at most 200 characters.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dreamomni2.io import atomic_write_text
from dreamomni2.tasks import MAX_IMAGES

__all__ = [
    "CASES_FILE",
    "CATEGORIES",
    "FORMAT_VERSION",
    "SUITE_FILE",
    "TASKS",
    "SuiteCase",
    "case_folder_name",
    "read_suite",
    "read_suite_meta",
    "suite_hash",
    "write_suite",
]

FORMAT_VERSION = 1
SUITE_FILE = "suite.json"
CASES_FILE = "cases.jsonl"
TASKS = ("edit", "generate")
CATEGORIES = ("concrete", "abstract")
_MAX_ID_CHARS = 200
_FIELDS = ("id", "task", "category", "subcategory", "images", "instruction", "notes", "truth")


@dataclass
class SuiteCase:
    """One benchmark case.

    Attributes:
        id: unique within the suite (e.g. ``"edit/replace/3"``).
        task: ``edit`` or ``generate``.
        category: ``concrete`` or ``abstract``.
        subcategory: e.g. ``replace``, ``local_expression``, ``color`` (free text; ``""`` when unknown).
        images: image paths relative to the suite folder, in order (for edits the image to edit first).
        instruction: the user's instruction.
        notes: optional free text.
        truth: optional ground truth for judges that know it (the mini world's case dict).
    """

    id: str
    task: str
    category: str
    subcategory: str
    images: list[str]
    instruction: str
    notes: str | None = None
    truth: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict in the field order of ``cases.jsonl``."""
        return asdict(self)

    def image_paths(self, suite_dir: str | Path) -> list[Path]:
        """The case's images as paths under ``suite_dir``."""
        return [Path(suite_dir) / p for p in self.images]

    @property
    def n_images(self) -> int:
        """How many input images the case has."""
        return len(self.images)


def case_folder_name(case_id: str) -> str:
    """A file-system-safe folder name for a case id (``edit/replace/3`` -> ``edit_replace_3``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", case_id).strip("._") or "case"


def _check_row(row: Any, where: str) -> SuiteCase:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object")
    missing = [k for k in ("id", "task", "category", "images", "instruction") if k not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(row) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    case_id, images, instruction = row["id"], row["images"], row["instruction"]
    if not isinstance(case_id, str) or not case_id.strip() or len(case_id) > _MAX_ID_CHARS:
        raise ValueError(f"{where}: id must be a non-empty string of at most {_MAX_ID_CHARS} characters")
    if row["task"] not in TASKS:
        raise ValueError(f"{where}: task {row['task']!r} is not one of {', '.join(TASKS)}")
    if row["category"] not in CATEGORIES:
        raise ValueError(f"{where}: category {row['category']!r} is not one of {', '.join(CATEGORIES)}")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"{where}: instruction must be a non-empty string")
    if not isinstance(images, list) or not images or not all(isinstance(p, str) and p for p in images):
        raise ValueError(f"{where}: images must be a non-empty list of relative paths")
    if len(images) > MAX_IMAGES:
        raise ValueError(f"{where}: {len(images)} images; at most {MAX_IMAGES}")
    for p in images:
        if Path(p).is_absolute() or ".." in Path(p).parts:
            raise ValueError(f"{where}: image path {p!r} must be relative and stay inside the suite folder")
    sub, notes, truth = row.get("subcategory") or "", row.get("notes"), row.get("truth")
    if not isinstance(sub, str) or (notes is not None and not isinstance(notes, str)):
        raise ValueError(f"{where}: subcategory and notes must be strings")
    if truth is not None and not isinstance(truth, dict):
        raise ValueError(f"{where}: truth must be an object or null")
    return SuiteCase(case_id, row["task"], row["category"], sub, list(images), instruction, notes, truth)


def read_suite_meta(suite_dir: str | Path) -> dict[str, Any]:
    """Read ``SUITE_DIR/suite.json``.

    Raises:
        FileNotFoundError: when the folder or its ``suite.json`` is missing.
        ValueError: when it is not a JSON object of a known format version.
    """
    path = Path(suite_dir) / SUITE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{suite_dir}: not a suite folder (no {SUITE_FILE}); make one with `bench import`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise ValueError(f'{path}: expected a JSON object with "format": {FORMAT_VERSION}')
    return meta


def read_suite(suite_dir: str | Path, check_files: bool = True) -> list[SuiteCase]:
    """Read a suite folder's cases, in file order.

    Args:
        suite_dir: the folder holding ``suite.json`` and ``cases.jsonl``.
        check_files: also require every image file to exist.

    Raises:
        FileNotFoundError: a missing folder, file or (with ``check_files``) image, named.
        ValueError: a malformed row or a duplicate id, naming the file and line.
    """
    suite_dir = Path(suite_dir)
    read_suite_meta(suite_dir)
    path = suite_dir / CASES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    cases: list[SuiteCase] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            case = _check_row(json.loads(line), where)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not JSON ({e.msg})") from None
        if case.id in seen:
            raise ValueError(f"{where}: duplicate id {case.id!r}")
        seen.add(case.id)
        if check_files:
            for p in case.image_paths(suite_dir):
                if not p.is_file():
                    raise FileNotFoundError(f"{where}: image {p} not found")
        cases.append(case)
    return cases


def suite_hash(cases: Sequence[SuiteCase]) -> str:
    """A sha256 over the cases' JSON (ids, instructions, image paths, truth): a run records it to refuse mixing."""
    h = hashlib.sha256()
    for case in cases:
        h.update(json.dumps(case.to_dict(), sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def write_suite(suite_dir: str | Path, cases: Iterable[SuiteCase], name: str, source: str, **meta: Any) -> Path:
    """Write ``suite.json`` and ``cases.jsonl`` (atomically) into an existing folder that holds the images.

    Args:
        suite_dir: the suite folder (images already copied under it).
        cases: the cases; ids must be unique.
        name: the suite's name; ``source``: where it came from (e.g. ``dreamomni2bench:/data/bench``).
        **meta: extra JSON-able fields for ``suite.json`` (e.g. ``skipped``).

    Returns:
        The path of ``cases.jsonl``.
    """
    suite_dir = Path(suite_dir)
    cases = list(cases)
    for i, case in enumerate(cases, 1):  # the same checks a reader applies
        _check_row(case.to_dict(), f"case {i} ({case.id!r})")
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError("write_suite: case ids must be unique")
    text = "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in cases)
    path = atomic_write_text(suite_dir / CASES_FILE, text)
    head = {"format": FORMAT_VERSION, "name": name, "source": source, "n_cases": len(cases), **meta}
    atomic_write_text(suite_dir / SUITE_FILE, json.dumps(head, indent=2, ensure_ascii=False) + "\n")
    return Path(path)
