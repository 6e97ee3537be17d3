"""Feature mixing on the mini world: does the target take the source's object when its prompt does not name it?

Draws ``--n`` pairs with the shipped mini model through :func:`dreamomni2.synth.pairs.make_pairs`, once per
setting (mixing off, then several mixing settings), with the same prompts and seeds in every setting. Source
prompt: a full mini-world description (``Generate a large striped red circle on a dark background.``); target
prompt: only another background (``Generate an object on a light background.``), so the object's shape, colour,
pattern and size can only come from the source through mixing. The analyzer
(:func:`dreamomni2.mini.analyzer.analyze`) reads both images; a pair *agrees* on an attribute when the target's
value equals the source's (as drawn, not as prompted: the mini model was trained on reference-image prompts and
draws from text alone only in part). Reported per setting: agreement per attribute and on all four at once, with
95% Wilson intervals; how often the target keeps its own prompt's background; and, as a check of the source, how
often the source shows its prompted attributes (identical in every setting: the source never reads the target).

Usage: python benchmarks/feature_mixing.py [--n 64] [--steps 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

ATTRS = ("shape", "color", "pattern", "size")
#: (name, MixingConfig fields); the first is the baseline.
SETTINGS = [
    ("off", {"enabled": False}),
    ("both, all steps, same", {}),
    ("both, all steps, shifted", {"rope": "shifted"}),
    ("double only, all steps", {"blocks": "double"}),
    ("single only, all steps", {"blocks": "single"}),
    ("both, first half of steps", {"steps": "0.0-0.5"}),
]


def prompt_rows(n: int, seed: int) -> list[dict]:
    """``n`` pairs: a random mini-world scene as the source, another background (object unnamed) as the target."""
    from dreamomni2.mini.scene import BACKGROUNDS, COLORS, PATTERNS, SHAPES, SIZES
    from dreamomni2.mini.text import PATTERN_ADJ

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        scene = {"shape": rng.choice(SHAPES), "color": rng.choice(list(COLORS)), "pattern": rng.choice(PATTERNS),
                 "size": rng.choice(SIZES), "background": rng.choice(list(BACKGROUNDS))}  # fmt: skip
        other = rng.choice([b for b in BACKGROUNDS if b != scene["background"]])
        words = f"{scene['size']} {PATTERN_ADJ[scene['pattern']]} {scene['color']} {scene['shape']}"
        rows.append({"id": f"p{i:04d}", "source_prompt": f"Generate a {words} on a {scene['background']} background.",
                     "target_prompt": f"Generate an object on a {other} background.", "keyword": "object",
                     "seed": 1000 + 2 * i, "scene": scene, "target_background": other})  # fmt: skip
    return rows


def rate(k: int, n: int) -> dict:
    from dreamomni2.bench.tables import wilson_interval

    lo, hi = wilson_interval(k, n)
    return {"rate": k / n, "k": k, "n": n, "interval": [round(lo, 3), round(hi, 3)]}


def measure(records: list[dict], folder: Path) -> dict:
    """Agreement of target with source per attribute, all four, target background, source prompt adherence."""
    from PIL import Image

    from dreamomni2.mini.analyzer import analyze

    counts = {a: 0 for a in (*ATTRS, "all four", "target background", "source as prompted")}
    for rec in records:
        with Image.open(folder / rec["source"]) as s, Image.open(folder / rec["target"]) as t:
            src, tgt = analyze(s).to_dict(), analyze(t).to_dict()
        same = [src[a] == tgt[a] and src[a] != "unknown" for a in ATTRS]
        for a, ok in zip(ATTRS, same, strict=True):
            counts[a] += ok
        counts["all four"] += all(same)
        counts["target background"] += tgt["background"] == rec["meta"]["target_background"]
        counts["source as prompted"] += all(src[a] == rec["meta"]["scene"][a] for a in ATTRS)
    return {k: rate(v, len(records)) for k, v in counts.items()}


def run(args: argparse.Namespace) -> dict:
    from dreamomni2.session import Session
    from dreamomni2.synth.mixing import MixingConfig
    from dreamomni2.synth.pairs import PairSettings, make_pairs

    session = Session(planner="none", progress=False).load()
    rows = prompt_rows(args.n, args.seed)
    out = {"n": args.n, "steps": args.steps, "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, fields) in enumerate(SETTINGS):
            start = time.perf_counter()
            settings = PairSettings(steps=args.steps, mixing=MixingConfig(**fields), pairs_per_call=args.batch)
            records = make_pairs(session, rows, Path(tmp) / str(i), settings, progress=False)
            result = measure(records, Path(tmp) / str(i))
            result["seconds"] = round(time.perf_counter() - start, 1)
            out["settings"][name] = result
            print(name, {k: round(v["rate"], 3) for k, v in result.items() if isinstance(v, dict)}, flush=True)
    return out


def table(result: dict) -> str:
    """A markdown table of the result."""
    cols = [*ATTRS, "all four", "target background"]
    lines = ["| setting | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in result["settings"].items():
        cells = [f"{r[c]['rate']:.2f} [{r[c]['interval'][0]:.2f}, {r[c]['interval'][1]:.2f}]" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="pairs per setting")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompt draw")
    parser.add_argument("--batch", type=int, default=16, help="pairs per pipeline call")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    start = time.perf_counter()
    result = run(args)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(table(result))
    print(f"{result['seconds']} s in all")
    if args.json:
        from dreamomni2.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
