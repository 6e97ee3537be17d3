"""Trainer throughput on the tiny model: samples/s with and without the latent cache, and the
step cost with 1/2/3 reference images.

Usage: python benchmarks/train_throughput.py [--steps 20] [--batch 4] [--size 64]
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
import time
from pathlib import Path

import torch


def manifest_with_refs(folder: Path, n_images: int, n_cases: int, size: int) -> Path:
    from dreamomni2.mini.world import sample_case, write_cases

    rng = random.Random(n_images)
    cases = [sample_case(rng, "generate", "abstract", n_images=n_images) for _ in range(n_cases)]
    return write_cases(cases, folder, size=size)


def timed_run(manifest: Path, out: Path, steps: int, batch: int, size: int, cache: bool, cache_dir: Path | None):
    from dreamomni2.train.config import load_config
    from dreamomni2.train.loop import Trainer

    cfg = load_config(
        base={
            "model": {"tiny": {"num_layers": 2, "num_single_layers": 2, "num_attention_heads": 4}},
            "data": {"manifest": str(manifest), "auto_resize": False, "max_area": size * size},
            "network": {"rank": 16, "alpha": 16},
            "train": {"output_dir": str(out), "steps": steps, "batch_size": batch, "lr": 1e-4, "resume": None,
                      "cache": cache, "cache_dir": str(cache_dir) if cache_dir else None, "log_every": 1000},
        }
    )  # fmt: skip
    trainer = Trainer(cfg)
    start = time.perf_counter()
    trainer.train()
    return steps * batch / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"config: tiny model (2 double + 2 single blocks, 4x16), LoRA r16, {args.size}px images, "
          f"batch {args.batch}, {args.steps} steps per measurement")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m2 = manifest_with_refs(tmp / "d2", 2, 64, args.size)
        cache = tmp / "cache"
        timed_run(m2, tmp / "warm", args.steps, args.batch, args.size, True, cache)  # fills the cache
        rows = [("uncached (VAE + text encoders every step)", timed_run(m2, tmp / "u", args.steps, args.batch,
                                                                        args.size, False, None))]  # fmt: skip
        rows.append(("cached (latents + embeddings from disk)", timed_run(m2, tmp / "c", args.steps, args.batch,
                                                                          args.size, True, cache)))  # fmt: skip
        print("| data path (2 references) | samples/s |\n|---|---|")
        for name, rate in rows:
            print(f"| {name} | {rate:.1f} |")
        print(f"| speed-up | {rows[1][1] / rows[0][1]:.2f}x |")
        print(f"\n| references | samples/s (cached) | step time (ms, batch {args.batch}) |\n|---|---|---|")
        for n in (1, 2, 3):
            m = manifest_with_refs(tmp / f"r{n}", n, 64, args.size)
            c = tmp / f"cache{n}"
            timed_run(m, tmp / f"w{n}", args.steps, args.batch, args.size, True, c)
            rate = timed_run(m, tmp / f"m{n}", args.steps, args.batch, args.size, True, c)
            print(f"| {n} | {rate:.1f} | {1000 * args.batch / rate:.0f} |")


if __name__ == "__main__":
    main()
