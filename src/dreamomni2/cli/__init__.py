"""Command line: ``dreamomni2 edit|generate|train|train-planner|data|bench|synth|make-tiny|web|serve``, one module each.

A thin layer over the library: every command builds its objects from the Python API (``edit``/``generate`` and
``bench`` through :class:`dreamomni2.session.Session`). Bad input (missing or unreadable files, bad sizes or
flags) prints one line on stderr and exits with status 2 (:class:`~dreamomni2.cli.errors.UsageError`); other
failures print one line and exit 1. ``--debug`` shows tracebacks. No library module imports from here.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dreamomni2.cli import bench, data, run, serve, synth, tiny, train, web
from dreamomni2.cli.errors import EXIT_FAILURE, EXIT_USAGE, Parser, UsageError

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "UsageError", "build_parser", "main"]

_COMMANDS = {
    "edit": run.run_main,
    "generate": run.run_main,
    "train": train.train_main,
    "train-planner": train.train_planner_main,
    "data": data.data_main,
    "bench": bench.bench_main,
    "make-tiny": tiny.tiny_main,
    "web": web.web_main,
    "serve": serve.serve_main,
    "synth": synth.synth_main,
}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line's parser."""
    parser = Parser(prog="dreamomni2", description="DreamOmni2 multimodal instruction-based editing and generation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run.add_parsers(sub)
    train.add_parsers(sub)
    data.add_parsers(sub)
    bench.add_parsers(sub)
    tiny.add_parsers(sub)
    web.add_parsers(sub)
    serve.add_parsers(sub)
    synth.add_parsers(sub)
    return parser


#: Import-time chatter of optional packages (torchao, when installed, registers enums with torch's pytree and
#: diffusers reports torchao classes it cannot find): not about the user's command, shown only with --debug.
_NOISY_LOGGERS = ("torch.utils._pytree", "diffusers.quantizers.torchao.torchao_quantizer")


def _quiet_third_party() -> None:
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status (never raises, unless ``--debug``)."""
    args = build_parser().parse_args(argv)
    if not getattr(args, "debug", False):
        _quiet_third_party()
    logging.basicConfig(
        level=logging.INFO if getattr(args, "debug", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _COMMANDS[args.command](args)
    except UsageError as e:
        print(f"dreamomni2: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dreamomni2: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the CLI never shows a traceback unless asked
        if getattr(args, "debug", False):
            raise
        print(f"dreamomni2: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
