"""``dreamomni2 bench report RUN_DIR [RUN_DIR ...] [-o report.html] [--md report.md] [--force]``.

Prints the paper-style markdown tables of the runs' judgements (success by task x category per judge with n and a
95% Wilson interval, by sub-category, by image count; mean scores for score judges), writes them to ``--md``, and
writes one self-contained HTML page (``-o``) with every case side by side (:mod:`dreamomni2.bench.html_report`).
Existing files are kept unless ``--force``; runs of different suites are refused, naming them; bad input is one
line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamomni2.cli.errors import UsageError

__all__ = ["add_parsers", "report_main"]


def _check_out(path: str | None, flag: str, force: bool) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name")
    if out.exists() and not force:
        raise UsageError(f"{flag} {path}: already exists (pass --force to overwrite)")
    if not out.parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {out.parent} does not exist")
    return out


def _check_args(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    for run_dir in args.run_dirs:
        if not Path(run_dir).is_dir():
            raise UsageError(f"RUN_DIR {run_dir}: no such folder")
    html_out = _check_out(args.html, "-o", args.force)
    md_out = _check_out(args.md, "--md", args.force)
    if html_out and md_out and html_out.resolve() == md_out.resolve():
        raise UsageError(f"-o and --md name the same file {args.html}")
    if args.name and len(args.name) != len(args.run_dirs):
        raise UsageError(f"--name: given {len(args.name)} times for {len(args.run_dirs)} runs; give one per RUN_DIR")
    return html_out, md_out


def report_main(args: argparse.Namespace) -> int:
    """Run ``bench report``: print the tables, write ``--md`` and the HTML page.

    Raises:
        UsageError: a missing run folder or suite, runs of different suites, an existing output without ``--force``,
            a malformed run or verdict file.
    """
    from dreamomni2.bench.html_report import load_report, render_html
    from dreamomni2.bench.tables import tables_markdown
    from dreamomni2.io import atomic_write_text

    html_out, md_out = _check_args(args)
    try:
        report = load_report(args.run_dirs, args.name)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    markdown = tables_markdown(report.tables)
    if md_out:
        atomic_write_text(md_out, markdown)
    if html_out:
        atomic_write_text(html_out, render_html(report, args.title))
    print(markdown, end="")
    for path in (md_out, html_out):
        if path:
            print(f"wrote {path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``report`` under ``bench``."""
    parser = sub.add_parser(
        "report",
        help="markdown tables and one self-contained HTML page of judged runs",
        description="Print the paper-style tables of judged runs of one suite; write them (--md) and an HTML page "
        "with every case's inputs, outputs, prompts and verdicts side by side (-o).",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders of the same suite (columns)")
    parser.add_argument("-o", "--output", dest="html", metavar="HTML", help="write the HTML report here")
    parser.add_argument("--md", metavar="MD", help="also write the markdown tables here")
    parser.add_argument("--name", action="append", help="a run's label (repeat, one per RUN_DIR; default: folder)")
    parser.add_argument("--title", help="the page title (default: suite and run names)")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.set_defaults(bench_func=report_main)
