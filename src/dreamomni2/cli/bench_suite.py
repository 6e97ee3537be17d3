"""``dreamomni2 bench import, run``: import suites and run a model on them.

``bench import KIND SRC -o SUITE_DIR`` (:func:`dreamomni2.bench.importers.import_suite`) and
``bench run SUITE_DIR -o RUN_DIR`` (:func:`dreamomni2.bench.harness.run_suite`; under ``torchrun`` or
``accelerate launch`` each process runs its shard). Bad input raises :class:`~dreamomni2.cli.errors.UsageError`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dreamomni2.cli.errors import UsageError, parse_size, positive_int

__all__ = ["add_parsers", "import_main", "run_main"]


def _add_import(sub: argparse._SubParsersAction) -> None:
    from dreamomni2.bench.importers import IMPORT_KINDS

    p = sub.add_parser(
        "import", help="import a benchmark into a suite folder (dreamomni2bench, release, manifest, mini)"
    )
    p.add_argument("kind", choices=IMPORT_KINDS, help="the source's layout")
    p.add_argument("src", nargs="?", help="the source folder or file (mini: 'mini' or nothing)")
    p.add_argument("-o", "--out", required=True, metavar="SUITE_DIR", help="the suite folder to write")
    p.add_argument("--force", action="store_true", help="replace SUITE_DIR if it is not empty")
    p.add_argument("--name", help="the suite's name (default: the folder's name)")
    p.add_argument("--n", type=positive_int, default=400, help="mini: number of cases (default 400)")
    p.add_argument("--size", type=positive_int, default=32, help="mini: image side in pixels (default 32)")
    p.add_argument("--paraphrase", action="store_true", help="mini: paraphrased instructions")
    p.add_argument("--concrete", metavar="CAT,CAT", help="dreamomni2bench: the categories counted as concrete")
    p.add_argument("--category", choices=("concrete", "abstract"), default="concrete",
                   help="manifest: category of rows without one (default concrete)")  # fmt: skip
    p.set_defaults(bench_func=import_main)


def _add_run(sub: argparse._SubParsersAction) -> None:
    from dreamomni2.cli.run import add_session_arguments
    from dreamomni2.ids import ID_POLICIES

    p = sub.add_parser("run", help="draw every case of a suite into a run folder (resumable, sharded)")
    p.add_argument("suite", metavar="SUITE_DIR", help="a suite folder (bench import)")
    p.add_argument("-o", "--out", required=True, metavar="RUN_DIR", help="the run folder (resumed if it exists)")
    add_session_arguments(p)
    p.add_argument("--steps", type=positive_int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="distilled guidance (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="case i uses seed SEED + i (default 0)")
    p.add_argument("--size", type=parse_size, default=None, help="output WIDTHxHEIGHT (default: per case)")
    p.add_argument("--max-area", type=positive_int, default=None, help="pixel cap of the output and every input")
    p.add_argument("--id-policy", default=None, choices=sorted(ID_POLICIES), help="reference ids")
    p.add_argument("--batch-size", type=positive_int, default=1, help="cases per pipeline call (default 1)")
    p.set_defaults(bench_func=run_main)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``import`` and ``run`` under ``bench``."""
    _add_import(sub)
    _add_run(sub)


def import_main(args: argparse.Namespace) -> int:
    """``bench import``: write the suite folder, print what was imported and what was skipped."""
    from dreamomni2.bench.importers import import_suite

    if args.kind != "mini" and not args.src:
        raise UsageError(f"bench import {args.kind}: name the source (SRC)")
    options: dict = {}
    if args.kind == "mini":
        options = {"n": args.n, "size": args.size, "paraphrase": args.paraphrase}
    elif args.kind == "dreamomni2bench" and args.concrete is not None:
        options = {"concrete": [c.strip() for c in args.concrete.split(",") if c.strip()]}
    elif args.kind == "manifest":
        options = {"category": args.category}
    try:
        report = import_suite(args.kind, args.src, args.out, force=args.force, name=args.name, **options)
    except FileExistsError as e:
        raise UsageError(f"-o {e}") from None
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    print(report.summary())
    return 0


def _local_device(args: argparse.Namespace) -> None:
    """Under torchrun / accelerate with ``--device auto``, put each process on its own GPU (``LOCAL_RANK``)."""
    local = os.environ.get("LOCAL_RANK")
    if args.device != "auto" or local is None or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return
    import torch

    if torch.cuda.is_available():
        args.device = f"cuda:{int(local) % torch.cuda.device_count()}"


def _check_paths(args: argparse.Namespace) -> None:
    from dreamomni2.bench.harness import check_run_dir
    from dreamomni2.bench.suite import read_suite

    if not Path(args.suite).is_dir():
        raise UsageError(f"SUITE_DIR {args.suite}: no such folder")
    try:
        read_suite(args.suite)
        check_run_dir(args.out)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    except ValueError as e:
        raise UsageError(f"-o {e}" if str(e).startswith(str(args.out)) else str(e)) from None


def run_main(args: argparse.Namespace) -> int:
    """``bench run``: draw this process's shard of the suite, merge when complete, print one summary line."""
    from dreamomni2.bench.harness import RunSettingsError, dist_rank_world, run_suite
    from dreamomni2.cli.run import session_from_args

    _check_paths(args)
    try:
        rank, world = dist_rank_world()
    except ValueError as e:
        raise UsageError(str(e)) from None
    _local_device(args)
    session = session_from_args(args)
    session.progress = False  # one bar over the cases instead of one per case
    try:
        outcome = run_suite(session, args.suite, args.out, steps=args.steps, guidance=args.guidance, seed=args.seed,
                            size=args.size, max_area=args.max_area, id_policy=args.id_policy,
                            batch_size=args.batch_size, rank=rank, world=world, progress=not args.quiet)  # fmt: skip
    except RunSettingsError as e:
        raise UsageError(f"-o {e}") from None
    state = "complete, records.jsonl written" if outcome.merged else "waiting for the other shards"
    print(f"bench run [{rank}/{world}]: drew {len(outcome.done)}, {len(outcome.errors)} error(s), "
          f"{len(outcome.skipped)} already done, {outcome.seconds:.1f}s; run {state} ({args.out})")  # fmt: skip
    return 1 if outcome.errors else 0
