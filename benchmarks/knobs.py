"""Speed vs quality of each knob (:mod:`dreamomni2.knobs`, token budget, steps) on the mini bench.

Every setting runs the same mini-bench cases with the same seeds through a :class:`~dreamomni2.session.Session` on
the shipped mini model, interleaved with the baseline in the same process: the cases are cut into chunks and each
chunk runs once with the baseline and once with the setting, back to back, so a busy shared CPU slows both alike.
Reported per setting: seconds per image as a ratio to the baseline of the same run, the success difference vs the
baseline with a 95% paired-bootstrap interval (same cases), the discordant cases, and the mean absolute pixel
difference of the outputs.

Run one setting per command (results merge into ``--results``), then write the table::

    flock /tmp/cpu.lock python benchmarks/knobs.py --only int8
    python benchmarks/knobs.py --list
    python benchmarks/knobs.py --write-doc      # the table between the knobs markers of docs/benchmarks.md

Usage: python benchmarks/knobs.py [--only SETTING ...] [--cases 200] [--steps 20] [--chunks 5] [--results PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "knobs.json"
DOC = HERE.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- knobs:begin -->", "<!-- knobs:end -->"

#: Setting name -> (Session keyword arguments, bench overrides, what it is).
SETTINGS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "int8": ({"quantize": "int8"}, {}, "torchao int8 weight-only, transformer + T5 (`--quantize int8`)"),
    "fbcache:0.05": ({"cache": "fbcache:0.05"}, {}, "First-Block-Cache, threshold 0.05"),
    "fbcache:0.2": ({"cache": "fbcache:0.2"}, {}, "First-Block-Cache, threshold 0.2"),
    "magcache:0.06": ({"cache": "magcache:0.06"}, {}, "MagCache (FLUX.1 ratios), threshold 0.06"),
    "magcache:0.2": ({"cache": "magcache:0.2"}, {}, "MagCache (FLUX.1 ratios), threshold 0.2"),
    "taylorseer:3": ({"cache": "taylorseer:3"}, {}, "TaylorSeer, full step every 3"),
    "taylorseer:6": ({"cache": "taylorseer:6"}, {}, "TaylorSeer, full step every 6"),
    "pab:2": ({"cache": "pab:2"}, {}, "Pyramid Attention Broadcast, attention reused 2 steps"),
    "pab:4": ({"cache": "pab:4"}, {}, "Pyramid Attention Broadcast, attention reused 4 steps"),
    "compile": ({"compile": True}, {"warm": True}, "regional torch.compile (`--compile`), after a warm-up pass"),
    "refs-16px": ({}, {"reference_max_area": 256}, "reference-token budget: inputs capped at 256 px (16x16)"),
    "steps-10": ({}, {"steps": 10}, "10 steps instead of 20"),
    "steps-14": ({}, {"steps": 14}, "14 steps instead of 20"),
}


def _session(kwargs: dict[str, Any], reference_max_area: int | None):
    from dreamomni2.session import Session

    class BudgetSession(Session):
        """The mini bench sets ``max_area`` on every request; this one caps the inputs only (the token budget)."""

        def run_batch(self, requests):
            return super().run_batch([dataclasses.replace(r, max_area=None) for r in requests])

    cls = Session if reference_max_area is None else BudgetSession
    session = cls(device="cpu", progress=False, planner="none", **kwargs)
    if reference_max_area is not None:
        session.defaults = dataclasses.replace(session.defaults, reference_max_area=reference_max_area)
    return session.load()


def _chunk_run(session, cases, start: int, steps: int, seed: int):
    """Run ``cases`` (which start at index ``start`` of the suite) with the suite's per-case seeds."""
    from dreamomni2.bench.runner import run_mini_bench

    t0 = time.perf_counter()
    result = run_mini_bench(session, cases, steps=steps, seed=seed + start, progress=False, keep_images=True)
    return time.perf_counter() - t0, result


def paired_bootstrap(a: np.ndarray, b: np.ndarray, reps: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``b - a`` over paired cases and its 95% percentile-bootstrap interval (resampling cases)."""
    d = b.astype(float) - a.astype(float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(reps, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _run_setting(name: str, n_cases: int, steps: int, chunks: int, seed: int) -> dict[str, Any]:
    """Baseline and setting, chunk by chunk back to back; returns the setting's record."""
    from dreamomni2.bench.suites import mini_suite

    kwargs, over, what = SETTINGS[name]
    cases = mini_suite(n_cases)
    base = _session({}, None)
    knob = _session(kwargs, over.get("reference_max_area"))
    knob_steps = over.get("steps", steps)
    warm = 0.0
    if over.get("warm"):  # compile: the first chunk once untimed (its shapes compile); recompiles later count
        warm = _chunk_run(knob, cases[: len(cases) // chunks], 0, knob_steps, seed)[0]
    edges = [int(e) for e in np.linspace(0, len(cases), chunks + 1)]
    t_base = t_knob = 0.0
    ok_base, ok_knob, pix = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        tb, rb = _chunk_run(base, cases[lo:hi], lo, steps, seed)
        tk, rk = _chunk_run(knob, cases[lo:hi], lo, knob_steps, seed)
        t_base, t_knob = t_base + tb, t_knob + tk
        ok_base += [r.success for r in rb.records]
        ok_knob += [r.success for r in rk.records]
        pix += [
            np.abs(np.asarray(x, float) - np.asarray(y, float)).mean()
            for x, y in zip(rb.images, rk.images, strict=True)
        ]
    a, b = np.array(ok_base), np.array(ok_knob)
    diff, lo95, hi95 = paired_bootstrap(a, b)
    return {
        "setting": name, "what": what, "n": len(cases), "steps": knob_steps, "baseline_steps": steps,
        "baseline_s_per_image": t_base / len(cases), "s_per_image": t_knob / len(cases),
        "speed_ratio": t_knob / t_base, "baseline_success": float(a.mean()), "success": float(b.mean()),
        "success_diff": diff, "diff_ci95": [lo95, hi95], "lost": int((a & ~b).sum()), "gained": int((~a & b).sum()),
        "mean_abs_pixel_diff": float(np.mean(pix)), "warmup_s": round(warm, 1), "machine": _machine(),
        "date": datetime.date.today().isoformat(),
    }  # fmt: skip


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(path: Path, results: dict[str, Any]) -> None:
    from dreamomni2.io import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=1, sort_keys=True) + "\n")


def markdown(results: dict[str, Any]) -> str:
    """The knobs table (settings in :data:`SETTINGS` order) and its notes."""
    rows = [results[k] for k in SETTINGS if k in results]
    if not rows:
        return "_No settings measured yet._"
    lines = [
        "| setting | what | s/image vs baseline | success (baseline) | difference, 95% CI | lost / gained | "
        "mean abs pixel diff |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lo, hi = r["diff_ci95"]
        lines.append(
            f"| `{r['setting']}` | {r['what']} | {r['speed_ratio']:.2f}x | {r['success']:.3f} "
            f"({r['baseline_success']:.3f}) | {100 * r['success_diff']:+.1f} pp [{100 * lo:+.1f}, {100 * hi:+.1f}] | "
            f"{r['lost']} / {r['gained']} | {r['mean_abs_pixel_diff']:.2f} |"
        )
    first = rows[0]
    dates = sorted({r["date"] for r in rows})
    base_ms = first["baseline_s_per_image"] * 1e3
    lines += ["", f"{first['n']} mini-bench cases, {first['baseline_steps']} steps (baseline), mini model, CPU; "
              f"{first['machine']}; {', '.join(dates)}. Baseline {base_ms:.0f} ms/image."]  # fmt: skip
    return "\n".join(lines)


def write_doc(results: dict[str, Any], doc: Path = DOC) -> None:
    """Replace the table between the knobs markers of ``doc`` (nothing else in the file changes)."""
    from dreamomni2.io import atomic_write_text

    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc}: no {BEGIN} ... {END} markers; add the section first")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(doc, f"{head}{BEGIN}\n{markdown(results)}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="SETTING", help=f"settings to run: {', '.join(SETTINGS)}")
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--chunks", type=int, default=5, help="baseline/setting alternations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON file the results merge into")
    ap.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    ap.add_argument("--list", action="store_true", help="print the table of the results so far")
    args = ap.parse_args(argv)
    unknown = [s for s in args.only or [] if s not in SETTINGS]
    if unknown:
        print(f"--only {' '.join(unknown)}: unknown setting; use {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    results = _load(args.results)
    for name in args.only or []:
        record = _run_setting(name, args.cases, args.steps, args.chunks, args.seed)
        results[name] = record
        _save(args.results, results)
        print(f"{name}: {record['speed_ratio']:.2f}x, success {record['success']:.3f} vs "
              f"{record['baseline_success']:.3f} ({100 * record['success_diff']:+.1f} pp)", flush=True)  # fmt: skip
    if args.list or not (args.only or args.write_doc):
        print(markdown(results))
    if args.write_doc:
        write_doc(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
