"""The data-synthesis demonstration on the mini world (docs/results.md, "Data synthesis on the mini world").

    python benchmarks/synth_demo.py all --work runs/synth_demo       # everything below, in order (about 30 min)

Steps (each reuses what an earlier run left in ``--work``):

* ``extract-pairs``: ground-truth extraction pairs rendered by the mini world (at full scale: feature-mixed pairs);
* ``train-extract``: the extraction LoRA (``configs/extract_lora_mini.yaml``);
* ``train-folded``: the folded variant (``configs/extract_folded_mini.yaml``: extraction + generation in one LoRA);
* ``extract-eval``: extraction accuracy before/after (and folded) on held-out scenes (analyzer; Wilson intervals);
* ``folded-bench``: the folded LoRA on the mini suite's generation cases (does it still generate?);
* ``synth``: edit-data and gen-data over rendered target images, with the extraction LoRA as extractor, the mini
  model as editor and the analyzer as VLM (keywords, yes/no checks);
* ``row-quality``: how many kept rows the analyzer reads as exactly right;
* ``train-compare``: the same short LoRA fine-tune of the mini model on the synthesized rows and on as many
  ground-truth rows, scored with the baseline on a mini-suite subset.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

logger = logging.getLogger("synth_demo")

EVAL_SEED = 1_000_777  # extraction evaluation scenes (seeds >= 1_000_000 are never trained on)


def _json(path: Path, data: dict) -> None:
    from dreamomni2.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))
    print(json.dumps(data, indent=2, sort_keys=True))


def extract_pairs(out: Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` ground-truth extraction pairs (every keyword in turn) unless ``out`` has them."""
    from dreamomni2.synth.mini import write_extraction_pairs

    manifest = out / "manifest.jsonl"
    return manifest if manifest.is_file() else write_extraction_pairs(out, n, seed)


def folded_data(out: Path, n: int, seed: int = 0) -> Path:
    """Extraction pairs plus ``n`` mini-world generation cases in one manifest (configs/extract_folded_mini.yaml)."""
    from dreamomni2.io import atomic_write_text
    from dreamomni2.mini.recipe import write_training_data

    pairs = extract_pairs(out / "extract", n, seed)
    gen = write_training_data(out / "generate", n, seed=seed, weights={"edit/concrete": 0, "edit/abstract": 0})
    rows = []
    for sub, manifest in (("extract", pairs), ("generate", gen)):
        for line in manifest.read_text().splitlines():
            row = json.loads(line)
            row["images"] = [f"{sub}/{p}" for p in row["images"]]
            row["target"] = f"{sub}/{row['target']}"
            rows.append(json.dumps(row))
    return atomic_write_text(out / "manifest.jsonl", "\n".join(rows) + "\n")


def _train(job: dict, run_dir: Path) -> Path:
    from dreamomni2.train.config import load_config
    from dreamomni2.train.loop import Trainer

    final = run_dir / "final"
    if not (final / "pytorch_lora_weights.safetensors").is_file():
        start = time.perf_counter()
        Trainer(load_config(base=job)).train()
        logger.info("trained %s in %.0f s", run_dir, time.perf_counter() - start)
    return final


def train_extract(work: Path, steps: int) -> Path:
    """The extraction LoRA: configs/extract_lora_mini.yaml on ``work/extract_pairs``."""
    from dreamomni2.train.config import read_job_file

    job = read_job_file("configs/extract_lora_mini.yaml", [
        f"data.manifest={work / 'extract_pairs' / 'manifest.jsonl'}", f"train.output_dir={work / 'extract_lora'}",
        f"train.steps={steps}", f"train.cache_dir={work / 'cache'}"])  # fmt: skip
    return _train(job, work / "extract_lora")


def train_folded(work: Path, n: int, steps: int) -> Path:
    """The folded variant: configs/extract_folded_mini.yaml on extraction pairs plus as many generation cases."""
    from dreamomni2.train.config import read_job_file

    manifest = work / "folded_data" / "manifest.jsonl"
    if not manifest.is_file():
        folded_data(work / "folded_data", n)
    job = read_job_file("configs/extract_folded_mini.yaml", [
        f"data.manifest={manifest}", f"train.output_dir={work / 'extract_folded'}", f"train.steps={steps}",
        f"train.cache_dir={work / 'cache'}"])  # fmt: skip
    return _train(job, work / "extract_folded")


def _wilson(k: int, n: int) -> list[float]:
    from dreamomni2.bench.tables import wilson_interval

    return [round(v, 3) for v in wilson_interval(k, n)]


def extract_eval(work: Path, n: int) -> dict:
    """Extraction accuracy (keyword carried; exact = the attribute isolated on the carrier) without and with the
    extraction LoRA, on ``n`` held-out scenes (every keyword in turn)."""
    from dreamomni2.mini.scene import render
    from dreamomni2.session import Session
    from dreamomni2.synth.extract import extract
    from dreamomni2.synth.mini import EXTRACT_KEYWORDS, extraction_pairs, score_extraction

    pairs = extraction_pairs(n, EVAL_SEED)
    out: dict = {"n": n, "keywords": list(EXTRACT_KEYWORDS)}
    variants = [("before", ()), ("after", (str(work / "extract_lora" / "final"),))]
    if (work / "extract_folded" / "final").is_dir():
        variants.append(("folded", (str(work / "extract_folded" / "final"),)))
    for name, loras in variants:
        session = Session(loras=loras, progress=False)
        scores = []
        for kw in EXTRACT_KEYWORDS:
            mine = [(i, p) for i, p in enumerate(pairs) if p[1] == kw]
            refs = extract(session, [render(p[0]) for _, p in mine], [kw], seed=EVAL_SEED)
            scores += [(kw, score_extraction(r[0], p[0], kw)) for r, (_, p) in zip(refs, mine, strict=True)]
        row: dict = {}
        for metric in ("keyword", "exact"):
            k = sum(s[metric] for _, s in scores)
            row[metric] = {"rate": round(k / len(scores), 3), "ci95": _wilson(k, len(scores))}
            row[f"{metric}_by_keyword"] = {kw: round(sum(s[metric] for w, s in scores if w == kw) /
                                                 max(1, sum(w == kw for w, _ in scores)), 3)
                                           for kw in EXTRACT_KEYWORDS}  # fmt: skip
        out[name] = row
    _json(work / "extract_eval.json", out)
    return out


def _targets(folder: Path, n: int, seed: int) -> Path:
    """``n`` rendered random scenes as the "real images" the stages start from."""
    from dreamomni2.images import save_image
    from dreamomni2.mini.scene import render
    from dreamomni2.synth.mini import random_scenes

    if not (folder / f"{n - 1:06d}.png").is_file():
        for i, scene in enumerate(random_scenes(seed, n)):
            save_image(render(scene), folder / f"{i:06d}.png")
    return folder


def synth(work: Path, n: int) -> dict:
    """edit-data and gen-data on ``n`` targets each, through the CLI (extraction LoRA, mini editor, analyzer VLM)."""
    from dreamomni2.cli import main

    lora = str(work / "extract_lora" / "final")
    reports = {}
    for stage, seed in (("edit-data", 100), ("gen-data", 200)):
        targets = _targets(work / f"targets-{stage}", n, seed)
        out = work / stage
        code = main(["synth", stage, str(targets), "-o", str(out), "--mini", "--extract-lora", lora, "--quiet",
                     "--seed", str(seed), "--dataset"])  # fmt: skip
        if code:
            raise SystemExit(code)
        reports[stage] = json.loads((out / "report.json").read_text())
    _json(work / "synth_reports.json", reports)
    return reports


def _combined(work: Path) -> tuple[Path, dict]:
    """One manifest of the kept edit-data and gen-data rows (paths rewritten from ``work``)."""
    from dreamomni2.io import atomic_write_text

    rows, counts = [], {}
    for stage in ("edit-data", "gen-data"):
        lines = (work / stage / "manifest.jsonl").read_text().splitlines()
        counts[stage] = len(lines)
        for line in lines:
            row = json.loads(line)
            row["images"] = [f"{stage}/{p}" for p in row["images"]]
            row["target"] = f"{stage}/{row['target']}"
            rows.append(json.dumps(row))
    return atomic_write_text(work / "synth_manifest.jsonl", "\n".join(rows) + "\n"), counts


def _ground_truth(work: Path, counts: dict, seed: int = 5) -> Path:
    """As many procedural rows as were synthesized: edit cases for the edit rows, generation cases for the gen rows."""
    from dreamomni2.io import atomic_write_text
    from dreamomni2.mini.recipe import write_training_data

    folder = work / "ground_truth"
    if not (folder / "manifest.jsonl").is_file():
        edit = write_training_data(folder / "edit", counts["edit-data"], seed=seed,
                                   weights={"generate/concrete": 0, "generate/abstract": 0})  # fmt: skip
        gen = write_training_data(folder / "gen", counts["gen-data"], seed=seed + 1,
                                  weights={"edit/concrete": 0, "edit/abstract": 0})  # fmt: skip
        rows = []
        for sub, manifest in (("edit", edit), ("gen", gen)):
            for line in manifest.read_text().splitlines():
                row = json.loads(line)
                row["images"] = [f"{sub}/{p}" for p in row["images"]]
                row["target"] = f"{sub}/{row['target']}"
                rows.append(json.dumps(row))
        atomic_write_text(folder / "manifest.jsonl", "\n".join(rows) + "\n")
    return folder / "manifest.jsonl"


def _finetune_job(manifest: Path, out: Path, steps: int, cache: Path) -> dict:
    from dreamomni2.train.config import read_job_file

    return read_job_file("configs/extract_lora_mini.yaml", [
        f"data.manifest={manifest}", f"train.output_dir={out}", f"train.steps={steps}", f"train.cache_dir={cache}",
        "train.lr=1.0e-3"])  # fmt: skip


def train_compare(work: Path, steps: int, n_bench: int, which: str = "all") -> dict:
    """Fine-tune on synthesized vs ground-truth rows (same count, same steps), score on a mini-suite subset."""
    synth_manifest, counts = _combined(work)
    gt_manifest = _ground_truth(work, counts)
    runs = {"synthesized": synth_manifest, "ground_truth": gt_manifest}
    for name, manifest in runs.items():
        if which in ("all", "train", name):
            _train(_finetune_job(manifest, work / f"ft-{name}", steps, work / "cache"), work / f"ft-{name}")
    if which not in ("all", "bench"):
        return {}
    return _bench(work, counts, steps, n_bench)


def _bench(work: Path, counts: dict, steps: int, n_bench: int) -> dict:
    """Score the baseline and both fine-tunes on ``n_bench`` mini-suite cases (each model's result kept in ``work``,
    so an interrupted run goes on where it stopped)."""
    from dreamomni2.bench.runner import run_mini_bench
    from dreamomni2.bench.suites import mini_suite
    from dreamomni2.session import Session

    models = {"baseline (shipped mini model)": (), "+ synthesized rows": (str(work / "ft-synthesized" / "final"),),
              "+ ground-truth rows": (str(work / "ft-ground_truth" / "final"),)}  # fmt: skip
    out: dict = {"rows": counts, "steps": steps, "models": {}}
    cases = None
    for k, (name, loras) in enumerate(models.items()):
        saved = work / f"bench-{k}-{n_bench}.json"
        if not saved.is_file():
            if cases is None:
                suite = mini_suite()
                cases = random.Random(0).sample(suite, n_bench) if n_bench < len(suite) else suite
            res = run_mini_bench(Session(loras=loras, progress=False), cases, progress=False, batch_size=16)
            ok = sum(r.score_dict()["success"] for r in res.records)
            row = {"n": len(cases), "success": round(ok / len(cases), 3), "ci95": _wilson(ok, len(cases)),
                   "by_group": {g: round(v["success"], 3) for g, v in res.summary["groups"].items()},
                   "by_kind": {g: round(v["success"], 3) for g, v in res.summary["kinds"].items()}}  # fmt: skip
            _json(saved, row)
        out["models"][name] = json.loads(saved.read_text())
    _json(work / "train_compare.json", out)
    return out


def row_quality(work: Path) -> dict:
    """How clean the kept synthesized rows are, read by the analyzer: an edit row is clean when its source differs
    from the target in the keyword only and its reference is the exact extraction; a generation row when every
    reference is the exact extraction of its keyword from the target."""
    from dreamomni2.images import load_image
    from dreamomni2.mini.analyzer import analyze
    from dreamomni2.mini.scene import OBJ_ATTRS, SCENE_ATTRS
    from dreamomni2.synth.mini import extraction_target, keyword_attr

    out: dict = {}
    for stage in ("edit-data", "gen-data"):
        rows = [json.loads(line) for line in (work / stage / "manifest.jsonl").read_text().splitlines()]
        clean = 0
        for row in rows:
            target = analyze(load_image(work / stage / row["target"]))
            seen = [analyze(load_image(work / stage / p)) for p in row["images"]]
            keywords = [row["keyword"]] if stage == "edit-data" else row["keywords"]
            refs = seen[1:] if stage == "edit-data" else seen
            ok = all(r == extraction_target(target, kw) for r, kw in zip(refs, keywords, strict=True))
            if stage == "edit-data":
                attr = keyword_attr(row["keyword"])
                changed = {a for a in SCENE_ATTRS if seen[0].attr(a) != target.attr(a)}
                ok = ok and bool(changed) and changed <= (set(OBJ_ATTRS) if attr == "object" else {attr})
            clean += ok
        out[stage] = {"rows": len(rows), "clean": clean, "rate": round(clean / max(1, len(rows)), 3),
                      "ci95": _wilson(clean, len(rows))}  # fmt: skip
    _json(work / "row_quality.json", out)
    return out


def folded_bench(work: Path) -> dict:
    """Does the folded LoRA still generate? The mini suite's generation cases with it (baseline: bench-0)."""
    from dreamomni2.bench.runner import run_mini_bench
    from dreamomni2.bench.suites import mini_suite
    from dreamomni2.session import Session

    cases = [c for c in mini_suite() if c.task == "generate"]
    res = run_mini_bench(Session(loras=(str(work / "extract_folded" / "final"),), progress=False), cases,
                         progress=False, batch_size=16)  # fmt: skip
    ok = sum(r.score_dict()["success"] for r in res.records)
    out = {"n": len(cases), "success": round(ok / len(cases), 3), "ci95": _wilson(ok, len(cases)),
           "by_group": {g: round(v["success"], 3) for g, v in res.summary["groups"].items()}}  # fmt: skip
    _json(work / "folded_bench.json", out)
    return out


def main(argv: list[str] | None = None) -> int:
    """The demonstration's steps (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = (
        "extract-pairs",
        "folded-data",
        "train-extract",
        "train-folded",
        "extract-eval",
        "folded-bench",
        "synth",
        "row-quality",
        "train-compare",
        "bench",
        "all",
    )
    ap.add_argument("step", choices=steps)
    ap.add_argument("--work", type=Path, default=Path("runs/synth_demo"))
    ap.add_argument("--out", type=Path, help="extract-pairs / folded-data: the data folder")
    ap.add_argument("--n", type=int, default=4000, help="extraction pairs")
    ap.add_argument("--extract-steps", type=int, default=600)
    ap.add_argument("--folded-steps", type=int, default=900)
    ap.add_argument("--eval-n", type=int, default=300, help="held-out extraction scenes")
    ap.add_argument("--synth-n", type=int, default=400, help="targets per stage (edit-data, gen-data)")
    ap.add_argument("--ft-steps", type=int, default=300, help="fine-tune steps of the comparison")
    ap.add_argument("--which", default="all", help="train-compare: all | train | synthesized | ground_truth | bench")
    ap.add_argument("--bench-n", type=int, default=200, help="mini-suite cases scored")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    w = args.work
    if args.step in ("extract-pairs", "folded-data"):
        fn = extract_pairs if args.step == "extract-pairs" else folded_data
        print(fn(args.out or w / "extract_pairs", args.n))
        return 0
    if args.step in ("train-extract", "all"):
        extract_pairs(w / "extract_pairs", args.n)
        train_extract(w, args.extract_steps)
    if args.step in ("train-folded", "all"):
        train_folded(w, args.n, args.folded_steps)
    if args.step in ("extract-eval", "all"):
        extract_eval(w, args.eval_n)
    if args.step in ("folded-bench", "all"):
        folded_bench(w)
    if args.step in ("synth", "all"):
        synth(w, args.synth_n)
    if args.step in ("row-quality", "all"):
        row_quality(w)
    if args.step in ("train-compare", "all"):
        train_compare(w, args.ft_steps, args.bench_n, args.which)
    if args.step == "bench":
        train_compare(w, args.ft_steps, args.bench_n, "bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
