"""Hand-made suites, run folders and verdict files for the report tests, written straight from the shared formats
(:mod:`dreamomni2.bench.suite`, :mod:`dreamomni2.bench.records`), with small PIL images.

:func:`standard` builds the set the table tests check by hand: an 8-case suite (all four task x category groups,
sub-categories, 1-3 images), runs ``A`` and ``B``, a pass/fail judge ``analyzer`` (with one unjudged verdict and
one missing verdict in run A) and a score judge ``clip`` (``clip_i``, ``clip_t``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from dreamomni2.bench.records import RUN_FILE, RunRecord, Verdict, judgement_path, output_path
from dreamomni2.bench.suite import SuiteCase, case_folder_name, suite_hash, write_suite
from dreamomni2.images import save_image
from dreamomni2.io import atomic_write_text

#: (id, task, category, subcategory, number of images) of the standard suite.
CASES = [
    ("edit/replace/1", "edit", "concrete", "replace", 2),
    ("edit/replace/2", "edit", "concrete", "replace", 2),
    ("edit/color/1", "edit", "abstract", "color", 2),
    ("edit/color/2", "edit", "abstract", "color", 3),
    ("edit/pattern/1", "edit", "abstract", "pattern", 1),
    ("gen/place/1", "generate", "concrete", "place", 1),
    ("gen/place/2", "generate", "concrete", "place", 2),
    ("gen/compose/1", "generate", "abstract", "compose", 3),
]
#: Run A's analyzer verdicts: True/False, "unjudged" (judged False), or absent (no verdict).
A_ANALYZER = {
    "edit/replace/1": True,
    "edit/replace/2": False,
    "edit/color/1": True,
    "edit/color/2": "unjudged",
    "edit/pattern/1": True,
    "gen/place/1": True,
    "gen/compose/1": False,
}  # gen/place/2: no verdict
#: Run B's analyzer verdicts (all judged).
B_ANALYZER = {cid: i % 2 == 0 for i, (cid, *_) in enumerate(CASES)}
#: The clip judge's scores in run A: clip_i = 0.1 * (i + 1), clip_t = 0.2, except the last case unjudged.
PALETTE = [(220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 180, 30), (150, 50, 180), (30, 170, 170)]


def png(path: Path, colour: tuple[int, int, int], size: int = 32) -> Path:
    """A solid-colour image with a contrasting square (so thumbnails are not blank)."""
    image = Image.new("RGB", (size, size), colour)
    image.paste((255, 255, 255), (size // 4, size // 4, size // 2, size // 2))
    return save_image(image, path)


def make_suite(root: Path, rows=CASES, name: str = "fake", instructions: dict[str, str] | None = None) -> Path:
    """A suite folder under ``root`` with ``rows`` (id, task, category, subcategory, n images)."""
    suite_dir = root / name
    cases = []
    for i, (cid, task, category, sub, n) in enumerate(rows):
        folder = case_folder_name(cid)
        images = []
        for k in range(1, n + 1):
            png(suite_dir / "images" / folder / f"{k}.png", PALETTE[(i + k) % len(PALETTE)])
            images.append(f"images/{folder}/{k}.png")
        text = (instructions or {}).get(cid, f"Make image 1 like image {n} ({sub}).")
        cases.append(SuiteCase(cid, task, category, sub, images, text))
    write_suite(suite_dir, cases, name=name, source=f"test:{name}")
    return suite_dir


def verdict(cid: str, judge: str, answer, reason: str = "") -> Verdict:
    """A pass/fail verdict (``answer`` True/False) or an unjudged one (``answer == "unjudged"``)."""
    if answer == "unjudged":
        return Verdict(cid, judge, False, None, reason=reason or "malformed reply", raw="???")
    return Verdict(cid, judge, True, bool(answer), reason=reason or ("looks right" if answer else "wrong colour"))


def write_verdicts(run_dir: Path, judge: str, verdicts: list[Verdict]) -> Path:
    """``RUN_DIR/judgements/<judge>.jsonl``."""
    text = "".join(json.dumps(v.to_dict()) + "\n" for v in verdicts)
    return atomic_write_text(judgement_path(run_dir, judge), text)


def make_run(root: Path, name: str, suite_dir: Path, rows=CASES, colour_shift: int = 0, **meta) -> Path:
    """A finished run folder: ``run.json``, ``records.jsonl`` and one output image per case."""
    from dreamomni2.bench.suite import read_suite

    cases = read_suite(suite_dir)
    run_dir = root / name
    records = []
    for i, case in enumerate(cases):
        out = output_path(run_dir, case_folder_name(case.id))
        png(out, PALETTE[(i + colour_shift) % len(PALETTE)], size=32)
        records.append(RunRecord(case.id, "ok", str(out.relative_to(run_dir)), case.task, case.category,
                                 case.subcategory, case.instruction, case.images, prompt=f"planned: {case.instruction}",
                                 planned={"prompt": case.instruction}, settings={"seed": i, "steps": 4}))  # fmt: skip
    atomic_write_text(run_dir / "records.jsonl", "".join(json.dumps(r.to_dict()) + "\n" for r in records))
    head = {"format": 1, "suite": str(suite_dir), "suite_name": suite_dir.name, "suite_hash": suite_hash(cases),
            "settings": {"steps": 4, "seed": 0}, "model": {"path": f"models/{name}"}, **meta}  # fmt: skip
    atomic_write_text(run_dir / RUN_FILE, json.dumps(head, indent=2))
    return run_dir


@dataclass
class Standard:
    """The standard fixture's folders."""

    suite: Path
    a: Path
    b: Path


def standard(root: Path) -> Standard:
    """The standard suite, runs A and B, analyzer verdicts on both and clip scores on A (see the module docstring)."""
    suite = make_suite(root)
    a, b = make_run(root, "A", suite), make_run(root, "B", suite, colour_shift=1)
    write_verdicts(a, "analyzer", [verdict(cid, "analyzer", ans) for cid, ans in A_ANALYZER.items()])
    write_verdicts(b, "analyzer", [verdict(cid, "analyzer", ans) for cid, ans in B_ANALYZER.items()])
    clip = []
    for i, (cid, *_) in enumerate(CASES):
        if i == len(CASES) - 1:
            clip.append(Verdict(cid, "clip", False, reason="no output"))
        else:
            clip.append(
                Verdict(cid, "clip", True, score=0.1 * (i + 1), scores={"clip_i": 0.1 * (i + 1), "clip_t": 0.2})
            )
    write_verdicts(a, "clip", clip)
    return Standard(suite, a, b)


def _analyzer_verdict(cid: str, case, image) -> Verdict:
    """The mini analyzer's reading of an output, as a pass/fail verdict with the wrong attributes as its reason."""
    from dreamomni2.mini.analyzer import score
    from dreamomni2.mini.world import SCENE_ATTRS

    r = score(case, image)
    wrong = [f"{a}: {r['predicted'][a]} (want {getattr(case.target.obj, a, case.target.background)})"
             for a in SCENE_ATTRS if not r[a]]  # fmt: skip
    reason = "every attribute matches the target" if r["success"] else "; ".join(wrong)
    return Verdict(cid, "analyzer", True, bool(r["success"]), reason=reason, raw=json.dumps(r["predicted"]))


#: The mini runs' id policies: DreamOmni2's index encoding, and FLUX Kontext's shared ids (the paper's ablation).
MINI_POLICIES = ("dreamomni2", "kontext")


def _mini_suite(root: Path, n: int, seed: int) -> tuple[Path, list[SuiteCase], list]:
    from dreamomni2.mini.world import make_cases, render

    minis = make_cases(seed, n)
    rows, suite_dir = [], root / "mini"
    for i, c in enumerate(minis):
        cid = f"{c.task}/{c.kind}/{i}"
        images = []
        for k, scene in enumerate(c.images, 1):
            save_image(render(scene), suite_dir / "images" / case_folder_name(cid) / f"{k}.png")
            images.append(f"images/{case_folder_name(cid)}/{k}.png")
        rows.append(SuiteCase(cid, c.task, c.category, c.kind, images, c.instruction, truth=c.to_dict()))
    write_suite(suite_dir, rows, name="mini", source="test:mini")
    return suite_dir, rows, minis


def _mini_run(run_dir: Path, suite_dir: Path, rows: list[SuiteCase], minis: list, session, settings: dict) -> Path:
    from dataclasses import asdict

    from dreamomni2.mini.world import render
    from dreamomni2.request import Request

    records, verdicts = [], []
    for i, (row, c) in enumerate(zip(rows, minis, strict=True)):
        res = session.run(Request(c.task, [render(x) for x in c.images], c.instruction, seed=i, **settings))
        out = save_image(res.image, output_path(run_dir, case_folder_name(row.id)))
        rec = RunRecord(row.id, "ok", str(out.relative_to(run_dir)), row.task, row.category, row.subcategory,
                        row.instruction, row.images, prompt=res.prompt, planned=asdict(res.planned),
                        settings={"seed": i, **settings})  # fmt: skip
        records.append(rec)
        verdicts.append(_analyzer_verdict(row.id, c, res.image))
    atomic_write_text(run_dir / "records.jsonl", "".join(json.dumps(r.to_dict()) + "\n" for r in records))
    head = {"format": 1, "suite": str(suite_dir), "suite_name": "mini", "suite_hash": suite_hash(rows),
            "settings": settings, "model": {"path": "dreamomni2/mini/model"}}  # fmt: skip
    atomic_write_text(run_dir / RUN_FILE, json.dumps(head, indent=2))
    write_verdicts(run_dir, "analyzer", verdicts)
    return run_dir


def mini_runs(root: Path, session, policies=MINI_POLICIES, n: int = 8, seed: int = 7, steps: int = 20) -> list[Path]:
    """A suite of ``n`` mini-world cases and one real run of ``session`` (the mini model) per reference id policy,
    each output judged by the mini analyzer (judge ``analyzer``): what ``bench run`` + ``bench judge --judge
    analyzer`` make, built here without them."""
    suite_dir, rows, minis = _mini_suite(root, n, seed)
    return [_mini_run(root / f"{p}-ids", suite_dir, rows, minis, session, {"steps": steps, "id_policy": p})
            for p in policies]  # fmt: skip
