"""``dreamomni2 bench import, run``: import suites and run a model on them."""

from __future__ import annotations

import argparse

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers"]


def _not_yet(args: argparse.Namespace) -> int:
    raise UsageError(f"bench {args.bench_command}: not implemented yet")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register import, run under ``bench``."""
    sub.add_parser("import", help="import").set_defaults(bench_func=_not_yet)
    sub.add_parser("run", help="run").set_defaults(bench_func=_not_yet)
