"""``dreamomni2 synth extract, edit-data, gen-data``: extraction, editing and generation data."""

from __future__ import annotations

import argparse

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers"]


def _not_yet(args: argparse.Namespace) -> int:
    raise UsageError(f"synth {args.synth_command}: not implemented yet")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register extract, edit-data, gen-data under ``synth``."""
    sub.add_parser("extract", help="extract").set_defaults(synth_func=_not_yet)
    sub.add_parser("edit-data", help="edit-data").set_defaults(synth_func=_not_yet)
    sub.add_parser("gen-data", help="gen-data").set_defaults(synth_func=_not_yet)
