"""``dreamomni2 data check MANIFEST``: list every bad row of a training manifest with its line number."""

from __future__ import annotations

import argparse

from dreamomni2.cli.errors import Parser, UsageError, positive_int

__all__ = ["add_parsers", "data_main"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` subcommand and its ``check``."""
    from dreamomni2.tasks import MAX_IMAGES

    data = sub.add_parser("data", help="data tools")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    check = data_sub.add_parser("check", help="list every bad row of a manifest with its line number")
    check.add_argument("manifest")
    check.add_argument("--max-images", type=positive_int, default=MAX_IMAGES)
    check.add_argument("--debug", action="store_true")


def data_main(args: argparse.Namespace) -> int:
    """Print every problem as ``MANIFEST:LINE: ...`` and a count; exit 1 when any row is bad."""
    from dreamomni2.train.data import read_manifest

    try:
        samples, problems = read_manifest(args.manifest, max_images=args.max_images)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    for p in problems:
        print(f"{args.manifest}:{p}")
    bad = len({p.line for p in problems})
    print(f"{len(samples)} good rows, {bad} bad rows of {len(samples) + bad}")
    return 1 if problems else 0
