"""``dreamomni2 synth pairs|extract|edit-data|gen-data``: the paper's data pipeline (section 2), one module per stage.

``synth pairs`` (feature mixing) is registered by :mod:`dreamomni2.cli.synth_pairs`; ``extract``, ``edit-data`` and
``gen-data`` by :mod:`dreamomni2.cli.synth_data`. Each sets ``synth_func``, which :func:`synth_main` calls.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parsers", "synth_main"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``synth`` command and its stages."""
    from dreamomni2.cli import synth_data, synth_pairs

    parser = sub.add_parser("synth", help="make training data: feature-mixed pairs, extraction, edit/gen data")
    stages = parser.add_subparsers(dest="synth_command", required=True, parser_class=type(parser))
    synth_pairs.add_parsers(stages)
    synth_data.add_parsers(stages)


def synth_main(args: argparse.Namespace) -> int:
    """Run the chosen ``synth`` stage."""
    return args.synth_func(args)
