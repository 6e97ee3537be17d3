"""Glue overhead of DreamOmni2Pipeline: wall time per call vs time inside the model components.

Times whole pipeline calls with 1/2/3 references and, with forward hooks, the time spent in
the transformer, the VAE encoder/decoder and both text encoders. ratio = call / components
(1.00 = no glue). diffusers' FluxKontextPipeline with one image is timed the same way in the
same run, as the release's code path (the release's pipeline is a copy of it with a loop).

Usage: python benchmarks/pipeline_overhead.py [--steps 10] [--size 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict

import numpy as np
import torch


def build(args):
    from dreamomni2.testing import build_tiny_pipeline

    return build_tiny_pipeline(
        seed=0,
        num_layers=args.double,
        num_single_layers=args.single,
        num_attention_heads=args.heads,
        attention_head_dim=args.head_dim,
        latent_channels=16,
    )


class ComponentTimer:
    """Accumulates wall time inside the forward of the given modules (outermost calls only)."""

    def __init__(self, modules: dict[str, torch.nn.Module]):
        self.total = defaultdict(float)
        self._start = {}
        self.handles = []
        for name, mod in modules.items():
            self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self.handles.append(mod.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(*_):
            self._start[name] = time.perf_counter()

        return hook

    def _post(self, name):
        def hook(*_):
            self.total[name] += time.perf_counter() - self._start.pop(name)

        return hook

    def reset(self):
        self.total.clear()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=256, help="side of the target and of each reference, px")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--double", type=int, default=2)
    ap.add_argument("--single", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=32)
    args = ap.parse_args()
    torch.manual_seed(0)
    pipe = build(args)
    from diffusers import FluxKontextPipeline

    kontext = FluxKontextPipeline(**pipe.components)
    kontext.set_progress_bar_config(disable=True)
    timer = ComponentTimer(
        {
            "transformer": pipe.transformer,
            "vae_enc": pipe.vae.encoder,
            "vae_dec": pipe.vae.decoder,
            "clip": pipe.text_encoder,
            "t5": pipe.text_encoder_2,
        }
    )
    rng = np.random.default_rng(0)
    from PIL import Image

    refs = [Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)) for _ in range(3)]
    common = dict(
        prompt="put the lamp from image 2 on the table in image 1",
        num_inference_steps=args.steps,
        height=args.size,
        width=args.size,
        max_area=args.size**2,
        _auto_resize=False,
        output_type="pil",
    )

    def measure(fn):
        fn()  # warm-up
        walls, comps = [], []
        for _ in range(args.repeats):
            timer.reset()
            t0 = time.perf_counter()
            fn()
            walls.append(time.perf_counter() - t0)
            comps.append(sum(timer.total.values()))
        return float(np.median(walls)), float(np.median(comps))

    n_params = sum(p.numel() for p in pipe.transformer.parameters())
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"config: transformer {n_params / 1e6:.2f}M params ({args.double} double + {args.single} single blocks, "
        f"{args.heads}x{args.head_dim}), 16 latent ch, target and refs {args.size}x{args.size} px "
        f"({(args.size // 16) ** 2} tokens each), {args.steps} steps, fp32 CPU, median of {args.repeats}"
    )
    print("| pipeline | refs | call (s) | in components (s) | ratio |")
    print("|---|---|---|---|---|")
    for n in (1, 2, 3):
        wall, comp = measure(lambda n=n: pipe(images=refs[:n], generator=torch.Generator().manual_seed(0), **common))
        print(f"| DreamOmni2Pipeline | {n} | {wall:.3f} | {comp:.3f} | {wall / comp:.3f} |")
    wall, comp = measure(lambda: kontext(image=refs[0], generator=torch.Generator().manual_seed(0), **common))
    print(f"| diffusers FluxKontextPipeline | 1 | {wall:.3f} | {comp:.3f} | {wall / comp:.3f} |")


if __name__ == "__main__":
    main()
