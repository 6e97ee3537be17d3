"""The CLI's one usage-error type, its exit statuses, its argument parser class and argument types."""

from __future__ import annotations

import argparse
import re

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "Parser", "UsageError", "parse_size", "positive_int"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UsageError(Exception):
    """Bad user input: reported in one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage dump), exit status 2."""

    def error(self, message: str):  # one line, no usage dump
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (``x``, ``X`` or ``*``) -> ``(width, height)``, both positive."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise argparse.ArgumentTypeError(f"bad size {text!r}; expected WIDTHxHEIGHT, e.g. 1024x768")
    return int(m.group(1)), int(m.group(2))


def positive_int(text: str) -> int:
    """A positive integer argument."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v
