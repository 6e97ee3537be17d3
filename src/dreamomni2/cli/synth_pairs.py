"""``dreamomni2 synth pairs``: image pairs sharing an object or attribute, by feature mixing.

A thin layer over :func:`dreamomni2.synth.pairs.make_pairs`: checks the prompts file and every flag before the
model loads, then draws the pairs not yet in ``-o DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamomni2.cli.errors import UsageError, parse_size, positive_int

__all__ = ["add_parsers", "pairs_main"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``pairs`` under ``synth``."""
    from dreamomni2.cli.run import add_session_arguments
    from dreamomni2.synth.mixing import ROPE_MODES

    p = sub.add_parser("pairs", help="text-to-image pairs sharing an object or attribute (feature mixing)")
    p.add_argument("prompts", metavar="PROMPTS.jsonl",
                   help='rows {"id", "source_prompt", "target_prompt", "keyword"?, "seed"?}')  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="pairs folder: <id>/source.png, target.png")
    add_session_arguments(p, planner_default="none")
    p.add_argument("--steps", type=positive_int, default=None, help="denoising steps (default: the model's, else 30)")
    p.add_argument("--guidance", type=float, default=None, help="distilled guidance (default: the model's, else 3.5)")
    p.add_argument("--size", type=parse_size, default=None, help="WIDTHxHEIGHT of both images (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="base seed of rows without one (source 2i, target 2i+1)")
    p.add_argument("--mix-blocks", default="both",
                   help="both, double, single, none, or e.g. double:0-9,single:0-18 (0-based, inclusive)")  # fmt: skip
    p.add_argument("--mix-steps", default="all",
                   help="all, none, step indices I or A-B (inclusive), or fractions F-G (e.g. 0.0-0.5)")  # fmt: skip
    p.add_argument("--rope", default="same", choices=list(ROPE_MODES),
                   help="source tokens' RoPE: same (the target's grid) or shifted (as a reference image)")  # fmt: skip
    p.add_argument("--no-mix", action="store_true", help="turn mixing off (plain text-to-image pairs, a baseline)")
    p.add_argument("--pairs-per-call", type=positive_int, default=4, help="pairs per pipeline call (default 4)")
    p.add_argument("--force", action="store_true", help="redraw pairs already in DIR (their folders are replaced)")
    p.set_defaults(synth_func=pairs_main)


def _settings(args: argparse.Namespace):
    from dreamomni2.synth.mixing import MixingConfig
    from dreamomni2.synth.pairs import PairSettings

    try:
        mixing = MixingConfig(blocks=args.mix_blocks, steps=args.mix_steps, rope=args.rope, enabled=not args.no_mix)
    except ValueError as e:
        flag = "--mix-blocks" if str(e).startswith("mix blocks") else "--mix-steps"
        raise UsageError(f"{flag}: {e}") from None
    if args.seed < 0:
        raise UsageError(f"--seed: must be >= 0, got {args.seed}")
    return PairSettings(steps=args.steps, guidance=args.guidance, size=args.size, seed=args.seed, mixing=mixing,
                        pairs_per_call=args.pairs_per_call)  # fmt: skip


def _rows(path: Path):
    from dreamomni2.synth.pairs import read_pair_rows

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        return read_pair_rows(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(str(e)) from None


def pairs_main(args: argparse.Namespace) -> int:
    """Run ``synth pairs``: check, load, draw the missing pairs, report."""
    from dreamomni2.cli.run import session_from_args
    from dreamomni2.synth.pairs import make_pairs, read_records

    rows = _rows(Path(args.prompts))
    settings = _settings(args)
    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"-o {out}: folder {out.parent} does not exist")
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a folder")
    session = session_from_args(args, planner="none")
    try:
        before = {r["id"] for r in read_records(out)} if out.is_dir() else set()
        records = make_pairs(session, rows, out, settings, force=args.force, progress=not args.quiet)
    except ValueError as e:
        raise UsageError(str(e)) from None
    skipped = 0 if args.force else sum(r["id"] in before for r in rows)
    print(f"wrote {len(records) - skipped} pairs to {out} ({skipped} already there)")
    return 0
