"""``dreamomni2 make-tiny DIR``: write a tiny random pipeline folder (for trying the CLI offline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers", "tiny_main"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the ``make-tiny`` subcommand."""
    tiny = sub.add_parser("make-tiny", help="write a tiny random pipeline folder (for trying the CLI offline)")
    tiny.add_argument("folder")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--force", action="store_true", help="replace the folder if it is not empty")
    tiny.add_argument("--debug", action="store_true")


def tiny_main(args: argparse.Namespace) -> int:
    """Write the folder; an existing non-empty folder is refused without ``--force``."""
    from dreamomni2.testing import save_tiny_pipeline

    folder = Path(args.folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: is a file, not a folder")
    if folder.exists() and any(folder.iterdir()) and not args.force:
        raise UsageError(f"{folder}: exists and is not empty; pass --force to replace it")
    save_tiny_pipeline(folder, seed=args.seed)
    print(f"wrote a tiny random pipeline to {folder}")
    return 0
