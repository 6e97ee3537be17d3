"""``dreamomni2 bench``: run the mini suite on a model through the Session and print the paper-style tables.

Bad input raises :class:`~dreamomni2.cli.errors.UsageError` (exit 2 through ``main``); the model loads through
:class:`dreamomni2.session.Session`, so ``--model``, ``--lora``, ``--device``, ``--dtype`` and ``--quiet`` mean
what they mean for ``edit``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dreamomni2.cli.errors import UsageError, positive_int

logger = logging.getLogger(__name__)

__all__ = ["SUITES", "add_bench_arguments", "add_parsers", "bench_main", "parse_train_spec"]

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
    from dreamomni2.cli.run import add_session_arguments
    from dreamomni2.ids import ID_POLICIES

    parser.add_argument("--suite", default="mini", choices=SUITES, help="benchmark suite (default: mini)")
    add_session_arguments(parser, planner_default="none")
    parser.add_argument("--n", type=positive_int, default=400, help="number of cases (default 400, 100 per group)")
    parser.add_argument("--steps", type=positive_int, default=20, help="denoising steps (default 20)")
    parser.add_argument("--guidance", type=float, default=3.5, help="distilled guidance (default 3.5)")
    parser.add_argument("--seed", type=int, default=0, help="case i uses generator seed SEED + i (default 0)")
    parser.add_argument("--size", type=positive_int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="cases per pipeline call (default 8)")
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command: ``bench [--suite mini ...]`` and its subcommands (``import``, ``run``, ``judge``,
    ``calibrate``, ``report``), each registered by its own module and run through ``args.bench_func``."""
    from dreamomni2.cli import bench_judge, bench_report, bench_suite

    parser = sub.add_parser("bench", help="score a model on a benchmark suite (mini: the mini world)")
    add_bench_arguments(parser)
    bench_sub = parser.add_subparsers(dest="bench_command", required=False, parser_class=type(parser))
    bench_suite.add_parsers(bench_sub)
    bench_judge.add_parsers(bench_sub)
    bench_report.add_parsers(bench_sub)


def _row_name(args: argparse.Namespace, policy: str | None, several: bool) -> str:
    base = args.name or (policy or "dreamomni2")
    if args.name and several:
        base = f"{args.name} ({policy})"
    return base if args.planner.strip().lower() == "none" else f"{base} + {args.planner.strip()} planner"


def _out_path(out: str, policy: str | None, several: bool) -> Path:
    path = Path(out)
    return path.with_name(f"{path.stem}.{policy}{path.suffix}") if several else path


def _check_args(args: argparse.Namespace) -> None:
    if args.suite not in SUITES:
        raise UsageError(f"--suite {args.suite}: unknown suite; choose one of {', '.join(SUITES)}")
    if args.size < 16 or args.size % 16:
        raise UsageError(f"--size {args.size}: must be a multiple of 16 (the latent patch)")
    if args.out and not Path(args.out).parent.exists():
        raise UsageError(f"--out {args.out}: folder {Path(args.out).parent} does not exist")


def _cases(args: argparse.Namespace) -> list:
    from dreamomni2.bench.suites import default_exclude, mini_suite, training_keys

    if args.no_exclude:
        exclude: frozenset = frozenset()
    elif args.exclude_train:
        exclude = frozenset().union(*(training_keys(seed, n) for seed, n in args.exclude_train))
    else:
        exclude = default_exclude()
    return mini_suite(n=args.n, paraphrase=args.paraphrase, exclude=exclude)


def _print_tables(args: argparse.Namespace, n_cases: int, summaries: dict[str, dict[str, Any]]) -> None:
    from dreamomni2.bench.report import format_attribute_table, format_kind_table, format_table

    print(f"{args.suite} suite: {n_cases} cases, {args.steps} steps, {args.size} px, planner {args.planner}\n")
    print(format_table(summaries))
    print()
    print(format_attribute_table(summaries))
    print()
    print(format_kind_table(summaries))


def bench_main(args: argparse.Namespace) -> int:
    """Run ``dreamomni2 bench``: load the model, run the suite (once per id policy), print the tables.

    Raises:
        UsageError: on bad input (missing model, bad size, unknown planner, bad output folder).
    """
    if getattr(args, "bench_func", None) is not None:  # a subcommand: bench import|run|judge|calibrate|report
        return args.bench_func(args)
    from dreamomni2.bench.report import write_results
    from dreamomni2.bench.runner import run_mini_bench
    from dreamomni2.cli.run import session_from_args

    _check_args(args)
    session = session_from_args(args)
    session.progress = False  # one bar over cases instead of one per batch
    cases = _cases(args)
    policies: list[str | None] = list(dict.fromkeys(args.id_policy)) if args.id_policy else [None]
    several = len(policies) > 1
    summaries: dict[str, dict[str, Any]] = {}
    for policy in policies:
        result = run_mini_bench(session, cases, steps=args.steps, guidance=args.guidance, seed=args.seed,
                                size=args.size, batch_size=args.batch_size, id_policy=policy,
                                progress=not args.quiet)  # fmt: skip
        result.config.update(suite=args.suite, paraphrase=args.paraphrase, model=args.model, device=session.device)
        summaries[_row_name(args, policy, several)] = result.summary
        if args.out:
            write_results(result, _out_path(args.out, policy or "default", several))
    _print_tables(args, len(cases), summaries)
    return 0
