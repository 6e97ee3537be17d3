"""``dreamomni2 synth pairs``: image pairs sharing an object or attribute, by feature mixing."""

from __future__ import annotations

import argparse

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers"]


def _not_yet(args: argparse.Namespace) -> int:
    raise UsageError(f"synth {args.synth_command}: not implemented yet")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register pairs under ``synth``."""
    sub.add_parser("pairs", help="pairs").set_defaults(synth_func=_not_yet)
