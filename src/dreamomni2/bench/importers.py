"""Import benchmark suites into the one suite format (:mod:`dreamomni2.bench.suite`).

Four kinds of source (``dreamomni2 bench import KIND SRC -o SUITE_DIR``):

- ``dreamomni2bench``: a local copy of DreamOmni2Bench (``xiabs/DreamOmni2Bench``): ``editing_benchmark/<category>/
  <n>/`` and ``generation_benchmark/<category>/<n>/``, each with ``instruction.txt`` and the case's images. Tolerant:
  a folder that cannot be a case is skipped and reported with the reason. The layout found and the assumptions
  made (which image is the source, image order, concrete vs abstract) are in ``docs/bench.md``.
- ``release``: the release's example layout, a ``cases.jsonl`` read by :func:`dreamomni2.bench.suites.load_cases_jsonl`.
- ``manifest``: the trainer's ``manifest.jsonl`` (:func:`dreamomni2.train.data.read_manifest`); mini-world rows
  (with ``image_attributes``/``target_attributes``) keep their ground truth.
- ``mini``: the held-out mini suite by name (:func:`dreamomni2.bench.suites.mini_suite`), images rendered from the
  mini world, each mini case in ``truth`` so the ``analyzer`` judge can score it.

Every image is decoded by :func:`dreamomni2.images.load_image` and saved as PNG (RGB, same size) under
``SUITE_DIR/images/<case folder>/<k>.png`` with :func:`dreamomni2.images.save_image`; the whole suite folder is
built beside its destination and renamed into place (:func:`dreamomni2.io.atomic_dir`), so a failed import leaves
nothing half-written. A non-empty destination is refused unless ``force``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dreamomni2.bench.suite import CATEGORIES, SuiteCase, case_folder_name, write_suite

logger = logging.getLogger(__name__)

__all__ = ["CONCRETE_SUBCATEGORIES", "IMPORT_KINDS", "ImportReport", "import_suite", "natural_key"]

#: DreamOmni2Bench categories counted as ``concrete`` (objects, people); every other category is ``abstract``
#: (attributes: expression, style, material, pose ...). An assumption, see docs/bench.md; override with
#: ``concrete=`` / ``--concrete``.
CONCRETE_SUBCATEGORIES = frozenset({"add", "replace", "object", "objects", "subject", "subjects", "person", "people",
                                    "character", "identity", "concrete"})  # fmt: skip
#: File suffixes taken as images (anything else in a case folder is ignored).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
#: Image stems that name the image to edit (it goes first).
SOURCE_STEMS = ("src", "source", "input", "image", "img")
#: Image stems that are results or targets, not inputs (ignored, as the release's ``res.jpg``).
RESULT_STEMS = re.compile(r"^(res|result|results|output|out|target|gt|edi_res|gen_res)([_-]?\d+)?$", re.IGNORECASE)


@dataclass
class ImportReport:
    """What an import did.

    Attributes:
        kind: the source kind; ``source``: the source path; ``suite_dir``: the suite folder written.
        imported: the ids of the imported cases, in suite order.
        skipped: ``(where, why)`` for each folder or row left out.
        notes: other remarks (ignored files, defaults applied).
    """

    kind: str
    source: str
    suite_dir: Path
    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the terminal: counts, then each skipped folder and why."""
        lines = [f"imported {len(self.imported)} case(s) from {self.kind} {self.source} into {self.suite_dir}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {where}: {why}" for where, why in self.skipped]
        return "\n".join(lines)


class _Skip(Exception):
    """A case that cannot be imported (the message says why)."""


def natural_key(name: str) -> tuple:
    """Sort key that puts ``ref_2`` before ``ref_10`` (digit runs compare as numbers)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t)


def _copy_images(paths: list[Path], tmp: Path, case_id: str) -> list[str]:
    """Decode each image (load_image) and save it as PNG under the suite; an unreadable one skips the case."""
    from dreamomni2.images import ImageLoadError, load_image
    from dreamomni2.tasks import MAX_IMAGES

    if not paths:
        raise _Skip("no image files")
    if len(paths) > MAX_IMAGES:
        raise _Skip(f"{len(paths)} images; a case takes at most {MAX_IMAGES}")
    images = []
    for p in paths:
        try:
            images.append(load_image(p))
        except ImageLoadError as e:
            raise _Skip(str(e)) from None
    return _save_images(images, tmp, case_id)


def _save_images(images: list[Any], tmp: Path, case_id: str) -> list[str]:
    """Save a case's images as ``images/<case folder>/<k>.png`` under the suite; returns those relative paths."""
    from dreamomni2.images import save_image

    rels = [f"images/{case_folder_name(case_id)}/{k}.png" for k in range(1, len(images) + 1)]
    for im, rel in zip(images, rels, strict=True):
        save_image(im, tmp / rel)
    return rels


def _check_instruction(text: str) -> str:
    from dreamomni2.limits import MAX_PROMPT_CHARS

    text = text.strip()
    if not text:
        raise _Skip("empty instruction")
    if len(text) > MAX_PROMPT_CHARS:
        raise _Skip(f"instruction of {len(text)} characters; at most {MAX_PROMPT_CHARS}")
    return text


# ------------------------------------------------------------------------------------------ DreamOmni2Bench


def _tree_task(name: str) -> str | None:
    """``edit`` for a folder named like ``editing_benchmark``, ``generate`` for ``generation_benchmark``."""
    name = name.lower()
    if "edit" in name:
        return "edit"
    return "generate" if name.startswith("gen") or "generation" in name else None


def _trees(root: Path) -> list[tuple[str, Path]]:
    """``(task, folder)`` of the editing and generation trees: ``root`` itself when it is named like one (SRC is
    one tree), else its sub-folders named like one (SRC is the dataset's root)."""
    task = _tree_task(root.name)
    if task is not None:
        return [(task, root)]
    found = [(t, d) for d in sorted(p for p in root.iterdir() if p.is_dir()) if (t := _tree_task(d.name))]
    if not found:
        raise ValueError(f"{root}: no editing_benchmark or generation_benchmark folder (is it DreamOmni2Bench?)")
    return sorted(found, key=lambda f: (f[0] != "edit", f[1].name))


def _case_dirs(tree: Path) -> Iterator[tuple[str | None, str, Path]]:
    """``(category or None, subcategory, case folder)``; a ``concrete/`` or ``abstract/`` level is honoured."""
    for sub in sorted((p for p in tree.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name):
        if sub.name.lower() in CATEGORIES:
            for inner in sorted(p for p in sub.iterdir() if p.is_dir() and not p.name.startswith(".")):
                for case in sorted((p for p in inner.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
                    yield sub.name.lower(), inner.name, case
            continue
        for case in sorted((p for p in sub.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
            yield None, sub.name, case


def _ordered_images(folder: Path, task: str) -> tuple[list[Path], list[str]]:
    """The case's input images in suite order (for edits the ``src`` image first) and the files ignored."""
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: natural_key(p.name))  # fmt: skip
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and not RESULT_STEMS.match(p.stem)]
    ignored = [p.name for p in files if p not in images and p.name != "instruction.txt"]
    if task == "edit":
        sources = [p for p in images if p.stem.lower() in SOURCE_STEMS]
        images = sources[:1] + [p for p in images if p not in sources[:1]]
    return images, ignored


def _bench_case(task: str, category: str | None, sub: str, folder: Path, images: list[Path], tmp: Path,
                concrete: frozenset) -> SuiteCase:  # fmt: skip
    text_file = folder / "instruction.txt"
    if not text_file.is_file():
        raise _Skip("no instruction.txt")
    try:
        instruction = _check_instruction(text_file.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise _Skip(f"instruction.txt is not UTF-8 text (byte {e.start})") from None
    case_id = f"{task}/{sub}/{folder.name}"
    rels = _copy_images(images, tmp, case_id)
    category = category or ("concrete" if sub.lower() in concrete else "abstract")
    return SuiteCase(case_id, task, category, sub, rels, instruction, notes=f"{folder.parent.parent.name}/{sub}/"
                     f"{folder.name}: " + ", ".join(p.name for p in images))  # fmt: skip


def _import_dreamomni2bench(src: Path, tmp: Path, report: ImportReport, concrete: frozenset | None = None,
                            **_: Any) -> list[SuiteCase]:  # fmt: skip
    concrete = frozenset(c.lower() for c in (concrete if concrete is not None else CONCRETE_SUBCATEGORIES))
    cases = []
    for task, tree in _trees(src):
        for category, sub, folder in _case_dirs(tree):
            where = folder.relative_to(src).as_posix() if folder != src else folder.name
            images, ignored = _ordered_images(folder, task)
            try:
                cases.append(_bench_case(task, category, sub, folder, images, tmp, concrete))
            except _Skip as e:
                report.skipped.append((where, str(e)))
                continue
            if ignored:
                report.notes.append(f"{where}: ignored {', '.join(ignored)}")
    return cases


# ------------------------------------------------------------------------------------------ release, manifest


def _import_release(src: Path, tmp: Path, report: ImportReport, **_: Any) -> list[SuiteCase]:
    from dreamomni2.bench.suites import load_cases_jsonl

    cases, counts = [], {"edit": 0, "generate": 0}
    for ext in load_cases_jsonl(src, check_files=False):
        counts[ext.task] += 1
        case_id = f"{ext.task}/{counts[ext.task]}"
        try:
            rels = _copy_images(list(ext.images), tmp, case_id)
            instruction = _check_instruction(ext.instruction)
        except _Skip as e:
            report.skipped.append((f"line {ext.line}", str(e)))
            continue
        out = ext.extra.get("release_output")
        notes = f"cases.jsonl line {ext.line}" + (f"; release output: {out}" if isinstance(out, str) else "")
        cases.append(SuiteCase(case_id, ext.task, ext.category, "", rels, instruction, notes=notes))
    return cases


def _manifest_truth(row: dict[str, Any]) -> dict[str, Any] | None:
    """The mini case a mini-world manifest row stands for (``None`` for other manifests)."""
    from dreamomni2.mini.cases import Case

    need = ("image_attributes", "target_attributes", "kind", "category", "prompt")
    if not all(k in row for k in need):
        return None
    try:
        d = {**row, "images": row["image_attributes"], "target": row["target_attributes"]}
        return Case.from_dict(d).to_dict()
    except (KeyError, TypeError, ValueError):
        return None


def _manifest_case(row: dict[str, Any], sample: Any, tmp: Path, default_category: str) -> SuiteCase:
    category = row.get("category") if row.get("category") in CATEGORIES else default_category
    raw_id = row.get("id")
    case_id = f"{sample.task}/{raw_id if isinstance(raw_id, (str, int)) and str(raw_id).strip() else sample.line}"
    if not sample.images:
        raise _Skip("no input images (a suite case needs at least one)")
    rels = _copy_images(list(sample.images), tmp, case_id)
    sub = row.get("kind") if isinstance(row.get("kind"), str) else ""
    return SuiteCase(case_id, sample.task, category, sub, rels, _check_instruction(sample.instruction),
                     notes=f"manifest line {sample.line}; target: {row.get('target')}",
                     truth=_manifest_truth(row))  # fmt: skip


def _import_manifest(src: Path, tmp: Path, report: ImportReport, category: str = "concrete",
                     **_: Any) -> list[SuiteCase]:  # fmt: skip
    from dreamomni2.train.data import read_manifest

    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} is not one of {', '.join(CATEGORIES)}")
    path = src / "manifest.jsonl" if src.is_dir() else src
    samples, problems = read_manifest(path, check_files=False)
    for p in problems:
        report.skipped.append((f"line {p.line}", p.message))
    lines = path.read_text(encoding="utf-8").splitlines()
    cases, seen = [], set()
    for sample in samples:
        row = json.loads(lines[sample.line - 1])
        if row.get("category") not in CATEGORIES:
            report.notes.append(f"line {sample.line}: no category; taken as {category}")
        try:
            case = _manifest_case(row, sample, tmp, category)
            if case.id in seen:
                raise _Skip(f"duplicate id {case.id!r}")
        except _Skip as e:
            report.skipped.append((f"line {sample.line}", str(e)))
            continue
        seen.add(case.id)
        cases.append(case)
    return cases


def _import_mini(src: Path, tmp: Path, report: ImportReport, n: int = 400, size: int = 32, paraphrase: bool = False,
                 **_: Any) -> list[SuiteCase]:  # fmt: skip
    from dreamomni2.bench.suites import mini_suite
    from dreamomni2.mini.scene import render

    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    cases = []
    for i, case in enumerate(mini_suite(n=n, paraphrase=paraphrase)):
        case_id = f"mini/{i:04d}"
        rels = _save_images([render(scene, size) for scene in case.images], tmp, case_id)
        cases.append(SuiteCase(case_id, case.task, case.category, case.kind, rels, case.instruction,
                               notes=f"mini suite case {i}, {size} px", truth=case.to_dict()))  # fmt: skip
    return cases


_IMPORTERS: dict[str, Callable[..., list[SuiteCase]]] = {
    "dreamomni2bench": _import_dreamomni2bench,
    "release": _import_release,
    "manifest": _import_manifest,
    "mini": _import_mini,
}
#: The source kinds :func:`import_suite` reads.
IMPORT_KINDS = tuple(_IMPORTERS)


def _check_source(kind: str, src: str | Path | None) -> Path:
    if kind not in _IMPORTERS:
        raise ValueError(f"unknown suite kind {kind!r}; choose one of {', '.join(IMPORT_KINDS)}")
    if kind == "mini":
        if src not in (None, "", "mini"):
            raise ValueError(f"mini: the source is the suite's name, 'mini' (got {src!r})")
        return Path("mini")
    if src is None:
        raise ValueError(f"{kind}: name the source folder or file")
    path = Path(src)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if kind == "dreamomni2bench" and not path.is_dir():
        raise ValueError(f"{path}: not a folder (DreamOmni2Bench is a folder with editing_benchmark/ ...)")
    return path


def _check_destination(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise FileExistsError(f"{out_dir}: the folder is not empty; pass --force (force=True) to replace it")
    if not out_dir.parent.is_dir():
        raise FileNotFoundError(f"{out_dir}: folder {out_dir.parent} does not exist")


def import_suite(
    kind: str, src: str | Path | None, out_dir: str | Path, force: bool = False, name: str | None = None, **options: Any
) -> ImportReport:
    """Import a suite into ``out_dir`` (see the module docstring for the kinds).

    Args:
        kind: ``dreamomni2bench``, ``release``, ``manifest`` or ``mini``.
        src: the source folder or file (``mini``: ``"mini"`` or ``None``).
        out_dir: the suite folder to write; refused when it holds anything, unless ``force`` (then replaced).
        force: replace a non-empty ``out_dir``.
        name: the suite's name in ``suite.json`` (default: the folder's name).
        **options: per kind: ``concrete`` (dreamomni2bench: the categories counted as concrete), ``category``
            (manifest: for rows without one, default ``concrete``), ``n``, ``size``, ``paraphrase`` (mini).

    Returns:
        The :class:`ImportReport` (imported ids, skipped folders and why).

    Raises:
        FileNotFoundError: a missing source or destination parent. FileExistsError: a non-empty ``out_dir``
        without ``force``. ValueError: an unknown kind, a source of the wrong shape, or nothing importable.
    """
    from dreamomni2.io import atomic_dir

    source = _check_source(kind, src)
    out_dir = Path(out_dir)
    _check_destination(out_dir, force)
    report = ImportReport(kind, str(source), out_dir)
    with atomic_dir(out_dir) as tmp:
        cases = _IMPORTERS[kind](source, tmp, report, **options)
        if not cases:
            why = "; ".join(f"{w}: {r}" for w, r in report.skipped[:3])
            raise ValueError(f"{source}: no case could be imported" + (f" ({why} ...)" if why else ""))
        write_suite(tmp, cases, name=name or out_dir.name, source=f"{kind}:{source}",
                    skipped=[{"where": w, "why": r} for w, r in report.skipped])  # fmt: skip
    report.imported = [c.id for c in cases]
    for where, why in report.skipped:
        logger.info("skipped %s: %s", where, why)
    return report
