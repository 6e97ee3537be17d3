"""``dreamomni2 bench judge, calibrate``: judge a run's outputs (or compare runs); calibrate a judge.

``bench judge RUN_DIR --judge SPEC`` writes ``RUN_DIR/judgements/<judge>.jsonl`` (resumable: judged cases are
skipped) and prints a summary; with ``--against RUN_DIR2 [--against ...]`` the VLM judge compares the runs pairwise
instead (both orders, win rates, Bradley–Terry/Elo). ``bench calibrate --judge SPEC`` reports how often the judge
agrees with the mini world's ground truth. See docs/judges.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dreamomni2.cli.errors import UsageError, positive_int

__all__ = ["add_parsers", "calibrate_main", "judge_main"]


def _add_judge_options(p: argparse.ArgumentParser) -> None:
    from dreamomni2.bench.judges.base import judge_spec_help
    from dreamomni2.devices import DEVICE_CHOICES, DTYPE_CHOICES

    p.add_argument("--judge", required=True, metavar="SPEC", help=judge_spec_help())
    p.add_argument("--samples", type=positive_int, default=1, help="VLM answers per case, majority vote (default 1)")
    p.add_argument("--temperature", type=float, help="VLM sampling temperature (default 0; 0.7 with --samples > 1)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per VLM endpoint call, whole call (default 60)")
    p.add_argument("--max-new-tokens", type=positive_int, default=128, help="VLM reply budget (default 128)")
    p.add_argument("--device", default="auto", choices=list(DEVICE_CHOICES), help="device of local judge models")
    p.add_argument("--dtype", default="auto", choices=list(DTYPE_CHOICES), help="dtype of local judge models")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``judge`` and ``calibrate`` under ``bench``."""
    judge = sub.add_parser("judge", help="judge a run's outputs (or compare runs with --against)")
    judge.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `bench run`")
    judge.add_argument("--against", action="append", default=[], metavar="RUN_DIR2",
                       help="compare with this run of the same suite (pairwise VLM judge); repeatable")  # fmt: skip
    _add_judge_options(judge)
    judge.set_defaults(bench_func=judge_main)
    cal = sub.add_parser("calibrate", help="how often a judge agrees with the mini world's ground truth")
    cal.add_argument("--n", type=positive_int, default=40, help="built-in set: cases, two outputs each (default 40)")
    cal.add_argument("--seed", type=int, default=None, help="built-in set: seed of the case draw (default: held-out)")
    cal.add_argument("--run", metavar="RUN_DIR", help="calibrate on a mini-suite run's outputs instead")
    cal.add_argument("--out", metavar="JSON", help="also write the result as JSON here")
    cal.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    _add_judge_options(cal)
    cal.set_defaults(bench_func=calibrate_main)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    from dreamomni2 import limits
    from dreamomni2.devices import resolve_device

    if args.samples > limits.MAX_JUDGE_SAMPLES:
        raise UsageError(f"--samples {args.samples}: at most {limits.MAX_JUDGE_SAMPLES}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be positive")
    if args.temperature is not None and args.temperature < 0:
        raise UsageError(f"--temperature {args.temperature:g}: must be >= 0")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    dtype = None if args.dtype == "auto" else args.dtype
    return {"device": device, "dtype": dtype, "timeout": args.timeout, "samples": args.samples,
            "temperature": args.temperature, "max_new_tokens": args.max_new_tokens}  # fmt: skip


def _make(spec: str, options: dict[str, Any], pairwise: bool = False) -> Any:
    from dreamomni2.bench.judges.factory import make_judge
    from dreamomni2.bench.judges.pairwise import make_pairwise_judge

    try:
        if pairwise:
            kept = {k: v for k, v in options.items() if k not in ("samples", "temperature") and v is not None}
            return make_pairwise_judge(spec, **kept).prepare()
        return make_judge(spec, **options).prepare()
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(f"--judge {spec}: {e}") from None


def _check_run(path: str, flag: str) -> None:
    if not Path(path).is_dir():
        raise UsageError(f"{flag}{path}: no such run folder")
    if not (Path(path) / "run.json").is_file():
        raise UsageError(f"{flag}{path}: not a run folder (no run.json); make one with `bench run`")


def _print_summary(name: str, verdicts: dict[str, Any], kind: str) -> None:
    from dreamomni2.bench.tables import is_per_input, wilson_interval

    judged = [v for v in verdicts.values() if v.judged]
    print(f"{name}: {len(verdicts)} cases, {len(judged)} judged, {len(verdicts) - len(judged)} unjudged")
    if kind == "pass":
        passed = sum(bool(v.success) for v in judged)
        if judged:
            lo, hi = wilson_interval(passed, len(judged))
            print(f"success {passed}/{len(judged)} = {passed / len(judged):.3f} [{lo:.3f}, {hi:.3f}]")
        return
    keys = sorted({k for v in judged for k in v.scores if not is_per_input(k)})
    for key in keys:
        vals = [v.scores[key] for v in judged if key in v.scores]
        print(f"mean {key} {sum(vals) / len(vals):.4f} (n={len(vals)})")


def _print_comparison(result: dict[str, Any]) -> None:
    print("| A | B | A wins | B wins | ties | unjudged | A's win rate [95% CI] |")
    print("|---|---|---|---|---|---|---|")
    for p in result["pairs"]:
        rate = "-" if p["rate"] is None else f"{p['rate']:.3f} [{p['interval'][0]:.3f}, {p['interval'][1]:.3f}]"
        print(f"| {p['a']} | {p['b']} | {p['wins']} | {p['losses']} | {p['ties']} | {p['unjudged']} | {rate} |")
    if result["elo"]:
        print("\nBradley-Terry (MM) on the Elo scale:")
        for name, elo in sorted(result["elo"].items(), key=lambda kv: -kv[1]):
            print(f"  {name}: {elo:.0f} (strength {result['bradley_terry'][name]:.3f})")


def judge_main(args: argparse.Namespace) -> int:
    """Run ``bench judge``.

    Raises:
        UsageError: a bad spec, a missing run folder, or runs of another suite for pairwise judging.
    """
    from dreamomni2.bench.judges.runs import compare_runs, judge_run

    _check_run(args.run_dir, "")
    for other in args.against:
        _check_run(other, "--against ")
    if args.against and (args.samples > 1 or args.temperature is not None):
        raise UsageError("--samples/--temperature: pairwise judging asks once per order, greedily")
    options = _options(args)
    judge = _make(args.judge, options, pairwise=bool(args.against))
    try:
        if args.against:
            result = compare_runs(judge, [args.run_dir, *args.against], progress=not args.quiet)
            _print_comparison(result)
            return 0
        verdicts = judge_run(judge, args.run_dir, progress=not args.quiet)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    _print_summary(judge.name, verdicts, judge.kind)
    return 0


def calibrate_main(args: argparse.Namespace) -> int:
    """Run ``bench calibrate``.

    Raises:
        UsageError: a bad spec, a missing or non-mini run folder, or a bad ``--out`` folder.
    """
    from dreamomni2.bench.calibrate import DEFAULT_SEED, builtin_items, calibrate, format_calibration, run_items
    from dreamomni2.io import atomic_write_text

    if args.out and not Path(args.out).parent.is_dir():
        raise UsageError(f"--out {args.out}: folder {Path(args.out).parent} does not exist")
    if args.out and Path(args.out).exists() and not args.force:
        raise UsageError(f"--out {args.out}: exists; pass --force to overwrite it")
    if args.run:
        _check_run(args.run, "--run ")
    judge = _make(args.judge, _options(args))
    try:
        items = (
            run_items(args.run) if args.run else builtin_items(args.n, DEFAULT_SEED if args.seed is None else args.seed)
        )
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    result = calibrate(judge, items, progress=not args.quiet)
    print(format_calibration(result))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 0
