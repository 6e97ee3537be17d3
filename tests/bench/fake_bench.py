"""Test fixtures for the benchmark harness: a fake DreamOmni2Bench folder, a mini suite, a fake run folder.

Nothing here runs a model:

- :func:`make_fake_dreamomni2bench` writes a small folder in DreamOmni2Bench's layout (both trees, cases with 1-5
  images, a few malformed folders) and returns what ``bench import dreamomni2bench`` should import and skip.
- :func:`make_mini_suite` imports ``n`` cases of the mini suite (images rendered from the mini world, the mini
  case in ``truth``).
- :func:`make_fake_run` writes a run folder in :mod:`dreamomni2.bench.records`' format (``run.json``, a shard,
  ``records.jsonl``, output PNGs) for a suite, each output chosen by a rule (the truth's target, the first input,
  noise) so judge and report tests know what to expect.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["COLORS", "make_fake_dreamomni2bench", "make_fake_run", "make_mini_suite"]

#: Solid colours the fake bench paints its images with (JPEG keeps a flat colour within a few levels).
COLORS = [(200, 30, 30), (30, 160, 40), (40, 60, 210), (220, 200, 40), (150, 40, 170), (30, 190, 190)]

# (tree, category, number, n_images, instruction): the good cases of the fake bench.
_GOOD = [
    ("editing_benchmark", "add", 1, 2, "Add the cat from the second image to the sofa in the first image."),
    ("editing_benchmark", "add", 2, 3, "Put the hat of image 2 and the scarf of image 3 on the man in image 1."),
    ("editing_benchmark", "replace", 1, 2, "Replace the lantern in the first image with the dog in the second."),
    ("editing_benchmark", "replace", 10, 4, "Replace the three fruits in image 1 with those of images 2, 3, 4."),
    ("editing_benchmark", "local_expression", 1, 2, "Give the girl in image 1 the expression of image 2."),
    ("editing_benchmark", "style", 1, 1, "Make the first image look like a watercolour."),
    ("editing_benchmark", "material", 3, 5, "Make the vase in image 1 of the materials of images 2 to 5."),
    ("generation_benchmark", "object", 1, 1, "The dog from image 1 running on a beach."),
    ("generation_benchmark", "object", 2, 3, "The people of images 1, 2 and 3 having dinner together."),
    ("generation_benchmark", "style", 1, 2, "A castle in the style of image 1 with the palette of image 2."),
    ("generation_benchmark", "pose", 4, 4, "The robot of image 1 in the poses of images 2, 3 and 4."),
    ("generation_benchmark", "texture", 1, 5, "A teapot with the textures of images 1 to 5."),
]
_CONCRETE = {"add", "replace", "object"}


def _paint(path: Path, color: tuple[int, int, int], size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=95)


def _image_names(tree: str, n: int) -> list[str]:
    """The file names of a case's images, in the order the importer must put them (see docs/bench.md)."""
    if tree == "editing_benchmark":  # the image to edit is src.jpg; one reference is ref.jpg, more ref_1.jpg ...
        refs = ["ref.jpg"] if n == 2 else [f"ref_{k}.jpg" for k in range(1, n)]
        return ["src.jpg", *refs]
    return [f"ref_{k}.jpg" for k in range(1, n + 1)]  # generation: references only (natural order: 1, 2, ... 10)


def _write_good(root: Path, tree: str, cat: str, num: int, n: int, text: str, i: int) -> dict[str, Any]:
    folder = root / tree / cat / str(num)
    names = _image_names(tree, n)
    colors = [COLORS[(i + k) % len(COLORS)] for k in range(n)]
    # written in reverse so the importer cannot rely on directory order; sizes differ per image
    for k in reversed(range(n)):
        _paint(folder / names[k], colors[k], (24 + 8 * k, 16 + 4 * (i % 3)))
    (folder / "instruction.txt").write_text(text + "\n", encoding="utf-8")
    task = "edit" if tree == "editing_benchmark" else "generate"
    return {"task": task, "category": "concrete" if cat in _CONCRETE else "abstract", "subcategory": cat,
            "instruction": text, "n_images": n, "colors": colors, "folder": f"{tree}/{cat}/{num}",
            "sizes": [(24 + 8 * k, 16 + 4 * (i % 3)) for k in range(n)]}  # fmt: skip


def _write_malformed(root: Path) -> dict[str, str]:
    """The malformed case folders; returns ``{folder: a word the skip reason must contain}``."""
    e, g = root / "editing_benchmark", root / "generation_benchmark"
    _paint(e / "add" / "9" / "src.jpg", COLORS[0], (20, 20))  # no instruction.txt
    _paint(e / "add" / "9" / "ref.jpg", COLORS[1], (20, 20))
    (e / "replace" / "9").mkdir(parents=True)  # an instruction, no images
    (e / "replace" / "9" / "instruction.txt").write_text("Replace the cup.\n", encoding="utf-8")
    (e / "style" / "9").mkdir(parents=True)  # an image file that is not an image
    (e / "style" / "9" / "src.jpg").write_bytes(b"this is not a JPEG file at all")
    (e / "style" / "9" / "instruction.txt").write_text("Make it a sketch.\n", encoding="utf-8")
    _paint(g / "object" / "9" / "ref_1.jpg", COLORS[2], (20, 20))  # an empty instruction
    (g / "object" / "9" / "instruction.txt").write_text("  \n", encoding="utf-8")
    for k in range(1, 7):  # six images, one more than the model takes
        _paint(g / "style" / "9" / f"ref_{k}.jpg", COLORS[k % len(COLORS)], (20, 20))
    (g / "style" / "9" / "instruction.txt").write_text("Mix the six styles.\n", encoding="utf-8")
    return {"editing_benchmark/add/9": "instruction", "editing_benchmark/replace/9": "no image",
            "editing_benchmark/style/9": "src.jpg", "generation_benchmark/object/9": "empty",
            "generation_benchmark/style/9": "6 images"}  # fmt: skip


def make_fake_dreamomni2bench(root: str | Path) -> dict[str, Any]:
    """Write a small fake DreamOmni2Bench under ``root`` (created) and say what an import should give.

    Layout (as the real one, see docs/bench.md): ``editing_benchmark/<category>/<n>/`` with ``instruction.txt``,
    ``src.jpg`` (the image to edit) and ``ref.jpg`` or ``ref_1.jpg``, ``ref_2.jpg`` ...; the sibling
    ``generation_benchmark/<category>/<n>/`` with ``instruction.txt`` and ``ref_1.jpg`` ... Extra files that are
    not cases (a README, a ``.DS_Store``, notes beside the images) are ignored. Five malformed folders are skipped:
    no ``instruction.txt``, no images, an unreadable image, an empty instruction, six images.

    Args:
        root: the folder to write (the dataset's root).

    Returns:
        ``{"root": Path, "cases": {id: info}, "skipped": {folder: reason word}}`` where ``id`` is
        ``edit/<category>/<n>`` or ``generate/<category>/<n>`` and ``info`` has ``task``, ``category``
        (concrete for ``add``, ``replace``, ``object``), ``subcategory``, ``instruction``, ``n_images``,
        ``colors`` (each image's RGB, in suite order: for edits ``src`` first), ``sizes`` and ``folder``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases: dict[str, dict[str, Any]] = {}
    for i, (tree, cat, num, n, text) in enumerate(_GOOD):
        info = _write_good(root, tree, cat, num, n, text, i)
        cases[f"{info['task']}/{cat}/{num}"] = info
    (root / "editing_benchmark" / "add" / "1" / "notes.md").write_text("not an image\n", encoding="utf-8")
    (root / "editing_benchmark" / ".DS_Store").write_bytes(b"\0\0")
    (root / "README.md").write_text("# fake DreamOmni2Bench\n", encoding="utf-8")
    skipped = _write_malformed(root)
    return {"root": root, "cases": cases, "skipped": skipped}


def make_mini_suite(suite_dir: str | Path, n: int = 8, size: int = 32) -> Path:
    """Import ``n`` cases of the mini suite into ``suite_dir`` (must not exist or be empty).

    Returns:
        ``suite_dir`` as a Path.
    """
    from dreamomni2.bench.importers import import_suite

    import_suite("mini", "mini", suite_dir, n=n, size=size)
    return Path(suite_dir)


def _noise(case: Any, index: int) -> Image.Image:
    rng = np.random.default_rng(index)
    return Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), mode="RGB")


def _first_input(suite_dir: Path) -> Callable[[Any, int], Image.Image]:
    from dreamomni2.images import load_image

    return lambda case, index: load_image(suite_dir / case.images[0])


def _truth_target(suite_dir: Path) -> Callable[[Any, int], Image.Image]:
    from dreamomni2.mini.cases import Case
    from dreamomni2.mini.scene import render

    first = _first_input(suite_dir)

    def out(case: Any, index: int) -> Image.Image:
        if not case.truth:
            return first(case, index)
        size = first(case, index).size[0]
        return render(Case.from_dict(case.truth).target, size)

    return out


def _chooser(suite_dir: Path, outputs: str | Callable, wrong: set[str]) -> Callable[[Any, int], Image.Image]:
    rules = {"truth": _truth_target, "first": _first_input}
    if callable(outputs):
        good = outputs
    elif outputs == "noise":
        good = _noise
    elif outputs in rules:
        good = rules[outputs](suite_dir)
    else:
        raise ValueError(f"outputs {outputs!r}: use truth, first, noise or a function (case, index) -> image")
    first = _first_input(suite_dir)
    return lambda case, index: first(case, index) if case.id in wrong else good(case, index)


def make_fake_run(
    run_dir: str | Path,
    suite_dir: str | Path,
    outputs: str | Callable[[Any, int], Image.Image] = "truth",
    wrong: Iterable[str] = (),
    errors: Iterable[str] = (),
    settings: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    merged: bool = True,
) -> list[Any]:
    """Write a run folder for ``suite_dir`` without running a model.

    Args:
        run_dir: the run folder to write (created).
        suite_dir: a suite folder (e.g. from :func:`make_mini_suite` or an import of the fake bench).
        outputs: each output image: ``truth`` (the mini truth's target rendered at the input size, i.e. a perfect
            answer; cases without truth get their first input), ``first`` (the first input unchanged), ``noise``
            (seeded random pixels), or a function ``(case, index) -> PIL image``.
        wrong: ids whose output is the first input instead (a wrong answer for edits that change something).
        errors: ids recorded with ``status="error"`` and no output.
        settings, model: what ``run.json`` and every record carry (defaults: a 1-step fake with the keys
            :func:`dreamomni2.bench.harness.run_suite` records).
        merged: also write ``records.jsonl`` (else only the shard, as an unfinished or unmerged run).

    Returns:
        The :class:`~dreamomni2.bench.records.RunRecord` list, in suite order.
    """
    from dreamomni2.bench.records import MERGED_FILE, RUN_FILE, RunRecord, output_path, shard_path
    from dreamomni2.bench.suite import case_folder_name, read_suite, read_suite_meta, suite_hash
    from dreamomni2.images import save_image
    from dreamomni2.io import atomic_write_text

    run_dir, suite_dir = Path(run_dir), Path(suite_dir)
    cases = read_suite(suite_dir)
    settings = dict(settings or {"steps": 1, "guidance": None, "seed": 0, "size": None, "max_area": None,
                                 "id_policy": None, "batch_size": 1, "planner": "none"})  # fmt: skip
    model = dict(model or {"path": "fake", "loras": [], "weights": {}})
    choose, errors = _chooser(suite_dir, outputs, set(wrong)), set(errors)
    meta = {"format": 1, "suite": str(suite_dir.resolve()), "suite_name": read_suite_meta(suite_dir).get("name"),
            "suite_hash": suite_hash(cases), "n_cases": len(cases), "settings": settings, "model": model}  # fmt: skip
    atomic_write_text(run_dir / RUN_FILE, json.dumps(meta, indent=2) + "\n")
    records = []
    for i, case in enumerate(cases):
        rec = RunRecord(id=case.id, status="ok", output=None, task=case.task, category=case.category,
                        subcategory=case.subcategory, instruction=case.instruction, images=list(case.images),
                        prompt=case.instruction, settings={**settings, "seed": settings.get("seed", 0) + i},
                        model=model, timings={"plan": 0.0, "draw": 0.0, "total": 0.0})  # fmt: skip
        if case.id in errors:
            rec.status, rec.error = "error", "fake error"
        else:
            out = output_path(run_dir, case_folder_name(case.id))
            save_image(choose(case, i), out)
            rec.output = out.relative_to(run_dir).as_posix()
        records.append(rec)
    text = "".join(json.dumps(r.to_dict()) + "\n" for r in records)
    atomic_write_text(shard_path(run_dir, 0, 1), text)
    if merged:
        atomic_write_text(run_dir / MERGED_FILE, text)
    return records
