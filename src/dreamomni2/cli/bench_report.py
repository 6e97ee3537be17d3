"""``dreamomni2 bench report``: HTML and markdown reports of runs."""

from __future__ import annotations

import argparse

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers"]


def _not_yet(args: argparse.Namespace) -> int:
    raise UsageError(f"bench {args.bench_command}: not implemented yet")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register report under ``bench``."""
    sub.add_parser("report", help="report").set_defaults(bench_func=_not_yet)
