"""``dreamomni2 bench judge, calibrate``: judge a run's outputs; calibrate a judge."""

from __future__ import annotations

import argparse

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers"]


def _not_yet(args: argparse.Namespace) -> int:
    raise UsageError(f"bench {args.bench_command}: not implemented yet")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register judge, calibrate under ``bench``."""
    sub.add_parser("judge", help="judge").set_defaults(bench_func=_not_yet)
    sub.add_parser("calibrate", help="calibrate").set_defaults(bench_func=_not_yet)
