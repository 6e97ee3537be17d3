"""``dreamomni2 bench``: run the mini suite on a model and print the paper-style table.

Wire-up (in ``dreamomni2.cli``)::

    from dreamomni2.bench.cli import add_bench_arguments, bench_main
    add_bench_arguments(sub.add_parser("bench", help="score a model on a benchmark suite"))
    commands["bench"] = bench_main

Bad input raises ``dreamomni2.cli.UsageError`` (exit 2 through ``main``); the model is loaded with the CLI's own
loader, so ``--model``, ``--lora``, ``--device``, ``--dtype`` and ``--quiet`` mean what they mean for ``edit``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dreamomni2.cli import _positive_int  # one positive-int argument type for every subcommand

logger = logging.getLogger(__name__)

__all__ = ["SUITES", "add_bench_arguments", "bench_main", "make_bench_planner", "parse_train_spec"]

SUITES = ("mini",)


def parse_train_spec(text: str) -> tuple[int, int]:
    """Parse ``SEED:N`` (a training draw ``make_cases(SEED, N)``) for ``--exclude-train``.

    Args:
        text: e.g. ``"0:20000"``.

    Returns:
        ``(seed, n)``.
    """
    seed, sep, n = text.partition(":")
    try:
        out = int(seed), int(n)
    except ValueError:
        out = (0, -1)
    if not sep or out[1] < 0:
        raise argparse.ArgumentTypeError(f"bad training draw {text!r}; expected SEED:N, e.g. 0:20000")
    return out


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options to a (sub)parser.

    Args:
        parser: the ``bench`` subparser.
    """
    from dreamomni2.ids import ID_POLICIES

    parser.add_argument("--suite", default="mini", choices=SUITES, help="benchmark suite (default: mini)")
    parser.add_argument("--model", help="diffusers folder of a FLUX.1-Kontext-architecture model")
    parser.add_argument("--lora", action="append", default=[], help="LoRA folder (diffusers format); repeatable")
    parser.add_argument(
        "--planner",
        default="none",
        help="'none' (the instruction is the prompt), 'mini', 'qwen:DIR' or 'openai:URL[#model]' (default: none)",
    )
    parser.add_argument("--n", type=_positive_int, default=400, help="number of cases (default 400, 100 per group)")
    parser.add_argument("--steps", type=_positive_int, default=20, help="denoising steps (default 20)")
    parser.add_argument("--guidance", type=float, default=3.5, help="distilled guidance (default 3.5)")
    parser.add_argument("--seed", type=int, default=0, help="case i uses generator seed SEED + i (default 0)")
    parser.add_argument("--size", type=_positive_int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--batch-size", type=_positive_int, default=8, help="cases per pipeline call (default 8)")
    parser.add_argument(
        "--id-policy",
        action="append",
        choices=sorted(ID_POLICIES),
        help="reference id policy; repeat to compare several (one table row each; default: the pipeline's)",
    )
    parser.add_argument("--paraphrase", action="store_true", help="paraphrased instructions (same cases)")
    parser.add_argument(
        "--exclude-train",
        action="append",
        type=parse_train_spec,
        metavar="SEED:N",
        help="leave out cases found in make_cases(SEED, N); repeatable (default: 0:20000)",
    )
    parser.add_argument("--no-exclude", action="store_true", help="keep cases that also occur in training draws")
    parser.add_argument("--name", help="row label of the table (default: the id policy and planner)")
    parser.add_argument("--out", help="write per-case records (JSONL) here, and the summary next to it")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def make_bench_planner(spec: str) -> Any:
    """Build the planner named on the command line.

    Args:
        spec: ``none`` (returns ``None``: the instruction is the prompt), ``mini``
            (``dreamomni2.mini.planner.MiniPlanner``) or any :func:`dreamomni2.planner.base.make_planner` spec.

    Returns:
        The planner, or ``None``.

    Raises:
        ValueError: on an unknown spec; ImportError when the mini planner is not installed.
    """
    spec = spec.strip()
    if spec.lower() == "none":
        return None
    if spec.lower() == "mini":
        from dreamomni2.mini.planner import MiniPlanner  # added separately; ImportError when absent

        return MiniPlanner()
    from dreamomni2.planner.base import make_planner

    return make_planner(spec)


def _row_name(args: argparse.Namespace, policy: str | None, several: bool) -> str:
    base = args.name or (policy or "dreamomni2")
    if args.name and several:
        base = f"{args.name} ({policy})"
    return base if args.planner.strip().lower() == "none" else f"{base} + {args.planner.strip()} planner"


def _out_path(out: str, policy: str | None, several: bool) -> Path:
    path = Path(out)
    return path.with_name(f"{path.stem}.{policy}{path.suffix}") if several else path


def bench_main(args: argparse.Namespace) -> int:
    """Run ``dreamomni2 bench``: load the model, run the suite (once per id policy), print the tables.

    Args:
        args: parsed options from a parser set up with :func:`add_bench_arguments`.

    Returns:
        Exit status 0.

    Raises:
        dreamomni2.cli.UsageError: on bad input (missing model, bad size, unknown planner, bad output folder).
    """
    from dreamomni2.bench.report import format_attribute_table, format_kind_table, format_table, write_results
    from dreamomni2.bench.runner import run_mini_bench
    from dreamomni2.bench.suites import default_exclude, mini_suite, training_keys
    from dreamomni2.cli import UsageError, _load_pipeline

    if args.suite not in SUITES:
        raise UsageError(f"--suite {args.suite}: unknown suite; choose one of {', '.join(SUITES)}")
    if args.size < 16 or args.size % 16:
        raise UsageError(f"--size {args.size}: must be a multiple of 16 (the latent patch)")
    if args.out and not Path(args.out).parent.exists():
        raise UsageError(f"--out {args.out}: folder {Path(args.out).parent} does not exist")
    try:
        planner = make_bench_planner(args.planner)
    except ImportError:
        raise UsageError("--planner mini: dreamomni2.mini.planner is not available") from None
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(f"--planner {args.planner}: {e}") from None

    if args.no_exclude:
        exclude: frozenset = frozenset()
    elif args.exclude_train:
        exclude = frozenset().union(*(training_keys(seed, n) for seed, n in args.exclude_train))
    else:
        exclude = default_exclude()
    cases = mini_suite(n=args.n, paraphrase=args.paraphrase, exclude=exclude)

    pipe, device = _load_pipeline(args)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)  # one bar over cases instead of one per batch
    policies: list[str | None] = list(dict.fromkeys(args.id_policy)) if args.id_policy else [None]
    several = len(policies) > 1
    summaries: dict[str, dict[str, Any]] = {}
    for policy in policies:
        result = run_mini_bench(
            pipe,
            cases,
            planner=planner,
            steps=args.steps,
            guidance=args.guidance,
            seed=args.seed,
            size=args.size,
            batch_size=args.batch_size,
            id_policy=policy,
            progress=not args.quiet,
        )
        result.config.update(suite=args.suite, paraphrase=args.paraphrase, model=args.model, device=device)
        summaries[_row_name(args, policy, several)] = result.summary
        if args.out:
            write_results(result, _out_path(args.out, policy or "default", several))

    print(f"{args.suite} suite: {len(cases)} cases, {args.steps} steps, {args.size} px, planner {args.planner}\n")
    print(format_table(summaries))
    print()
    print(format_attribute_table(summaries))
    print()
    print(format_kind_table(summaries))
    return 0
