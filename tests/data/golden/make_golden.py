"""Write the golden outputs that tests/test_session.py compares the Session-based surfaces against.

Run once with the code from BEFORE the Session refactor (commit f3ecbd9), from the repository root:

    PYTHONPATH=<old checkout>/src python tests/data/golden/make_golden.py tests/data/golden

It writes PNGs of the CLI (mini model and a tiny random model), the release loader (a tiny base with two random
LoRAs) and the bench runner (the first 16 suite cases, batched), all on the CPU in float32.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests.golden_inputs import cli_cases, release_folders, release_runs, tiny_pics  # noqa: E402


def _save(out: Path, name: str, image) -> None:
    if isinstance(image, np.ndarray):
        image = Image.fromarray((image.clip(0, 1) * 255).round().astype(np.uint8))
    image.save(out / f"{name}.png")


def cli(out: Path, work: Path) -> None:
    from dreamomni2.cli import main

    for name, argv in cli_cases(work).items():
        assert main([*argv, "-o", str(out / f"cli_{name}.png"), "--quiet"]) == 0, name


def release(out: Path, work: Path) -> None:
    from dreamomni2.release import load_release

    base, rel_dir = release_folders(work)
    rel = load_release(base, rel_dir, device="cpu", dtype=torch.float32, memory="full", planner="none")
    rel.pipe.set_progress_bar_config(disable=True)
    for name, (images, instruction, task, kw) in release_runs().items():
        image, _ = rel.run(images, instruction, task=task, **kw)
        _save(out, f"release_{name}", image)


def bench(out: Path) -> None:
    from dreamomni2.bench.runner import run_mini_bench
    from dreamomni2.bench.suites import mini_suite
    from dreamomni2.mini import default_model_path
    from dreamomni2.mini.planner import MiniPlanner
    from dreamomni2.pipeline import DreamOmni2Pipeline

    pipe = DreamOmni2Pipeline.from_pretrained(str(default_model_path()), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    cases = mini_suite(n=16, exclude=frozenset())
    res = run_mini_bench(pipe, cases, planner=MiniPlanner(), batch_size=4, keep_images=True, progress=False)
    for i, image in enumerate(res.images):
        _save(out, f"bench_{i:02d}", image)
    (out / "bench.json").write_text(json.dumps([r.success for r in res.records]) + "\n")


if __name__ == "__main__":
    import tempfile

    dest = Path(sys.argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tiny_pics(Path(tmp))
        cli(dest, Path(tmp))
        release(dest, Path(tmp))
    bench(dest)
