"""Time the Session's reference-latent cache saves: the same request with its references cached vs not.

Runs ``Session.run`` on a tiny random pipeline (``dreamomni2.testing``) with 1-4 references of ``--size`` px, once
with the cache off and once warm (every reference already encoded), ``--repeats`` times each, and prints a markdown
table of the median request times, the ratio and the VAE encoder time saved per request. The outputs are checked
to be pixel-identical.

Usage: python benchmarks/latent_cache.py [--size 512] [--steps 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np
import torch


def random_image(width: int, height: int, seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _median_time(session, request, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = session.run(request)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    from dreamomni2.request import Request
    from dreamomni2.session import Session
    from dreamomni2.testing import save_tiny_pipeline

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = save_tiny_pipeline(tempfile.mkdtemp() + "/tiny")
    cached = Session(folder, device="cpu", progress=False)
    plain = Session(folder, device="cpu", progress=False, latent_cache_bytes=0)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
          f"{args.size}px references, {args.steps} steps, median of {args.repeats}\n")  # fmt: skip
    print("| refs | no cache (s) | cached (s) | ratio | saved per request (ms) |\n|---|---|---|---|---|")
    for n in (1, 2, 4):
        refs = [random_image(args.size, args.size, seed=i) for i in range(n)]
        req = Request("edit", refs, "make it red", seed=0, steps=args.steps, size=(256, 256))
        cached.run(req)  # warm: every reference encoded once
        t_plain, a = _median_time(plain, req, args.repeats)
        t_cached, b = _median_time(cached, req, args.repeats)
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image)), "the cache changed the output"
        print(f"| {n} | {t_plain:.3f} | {t_cached:.3f} | {t_cached / t_plain:.2f} | {(t_plain - t_cached) * 1e3:.0f} |")


if __name__ == "__main__":
    main()
