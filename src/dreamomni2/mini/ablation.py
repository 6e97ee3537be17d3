"""Id-policy ablation on the mini world (the paper's Table 5, in miniature).

``python -m dreamomni2.mini.ablation --steps 2500`` trains one mini model per id policy with the same
budget (same base pipeline, data, seed and schedule; only ``model.id_policy`` differs), scores each on
the held-out mini suite and prints the table that goes into ``docs/results.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_POLICIES = ("kontext", "shift", "index", "dreamomni2", "diagonal")


def success_by_images(records) -> dict[str, dict[str, float]]:
    """Success rate per number of input images (``{"1": {"n": .., "success": ..}, ...}``)."""
    groups: dict[str, list[bool]] = {}
    for r in records:
        groups.setdefault(str(r.n_images), []).append(bool(r.success))
    return {k: {"n": len(v), "success": sum(v) / len(v)} for k, v in sorted(groups.items())}


def run_ablation(work: str | Path, steps: int, policies=DEFAULT_POLICIES, n_cases: int = 10000, bench_n: int = 400,
                 bench_steps: int = 20, seed: int = 0) -> dict:  # fmt: skip
    """Train and score one model per policy; returns ``{policy: summary}``."""
    import torch

    from dreamomni2.bench.runner import run_mini_bench
    from dreamomni2.bench.suites import mini_suite
    from dreamomni2.mini.recipe import build_mini_model
    from dreamomni2.pipeline import DreamOmni2Pipeline

    work = Path(work)
    cases = mini_suite(n=bench_n)
    summaries = {}
    for policy in policies:
        out = work / "ablation" / f"{policy}-{steps}"
        if not (out / "model_index.json").is_file():
            build_mini_model(work, out, steps=steps, n_cases=n_cases, id_policy=policy, seed=seed, stages=())
        scored = out / "bench_summary.json"
        settings = {"bench_n": bench_n, "bench_steps": bench_steps, "seed": seed}
        if scored.is_file():
            saved = json.loads(scored.read_text())
            if saved.get("settings") == settings:  # scored before with the same suite: reuse
                summaries[policy] = saved["summary"]
                continue
        pipe = DreamOmni2Pipeline.from_pretrained(out, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        with torch.no_grad():
            result = run_mini_bench(pipe, cases, steps=bench_steps, seed=seed, id_policy=policy)
        summaries[policy] = {**result.summary, "by_images": success_by_images(result.records)}
        scored.write_text(json.dumps({"settings": settings, "summary": summaries[policy]}, indent=2))
        logger.info("%s: %s", policy, result.summary["success"])
    return summaries


def main(argv: list[str] | None = None) -> int:
    from dreamomni2.bench.report import format_images_table, format_table

    ap = argparse.ArgumentParser(prog="python -m dreamomni2.mini.ablation", description=__doc__)
    ap.add_argument("--work", default="runs/mini")
    ap.add_argument("--steps", type=int, default=2500, help="training steps per policy (batch 32)")
    ap.add_argument("--policies", nargs="+", default=list(DEFAULT_POLICIES))
    ap.add_argument("--bench-n", type=int, default=400)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    summaries = run_ablation(args.work, args.steps, args.policies, bench_n=args.bench_n)
    print(format_table(summaries))
    print()
    print(format_images_table(summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
