"""Benchmark tables (markdown, in the paper's layout) and results files.

:func:`format_table` lays success rates out like DreamOmni2's benchmark table: one row per method (or id policy,
planner...), columns Editing concrete / Editing abstract / Generation concrete / Generation abstract, rates written
``.xxx`` as in the paper, each with its case count.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dreamomni2.mini.groups import GROUPS, group_name
from dreamomni2.mini.scene import SCENE_ATTRS

logger = logging.getLogger(__name__)

__all__ = [
    "TABLE_COLUMNS",
    "TASK_LABELS",
    "format_attribute_table",
    "format_images_table",
    "format_kind_table",
    "format_rate",
    "format_table",
    "summary_path",
    "write_results",
]

#: The paper's word for each task in the table headers.
TASK_LABELS: dict[str, str] = {"edit": "Editing", "generate": "Generation"}
#: (header, summary group key) of the paper-style table, one column per group of :data:`dreamomni2.mini.groups.GROUPS`
#: in its order: ``("Editing concrete", "edit/concrete")``, ... ``("Generation abstract", "generate/abstract")``.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (f"{TASK_LABELS[task]} {category}", group_name(task, category)) for task, category in GROUPS
)
MISSING = "-"


def format_rate(rate: float) -> str:
    """Write a rate in [0, 1] the paper's way: three decimals, no leading zero.

    ``0.5`` -> ``.500``, ``1`` -> ``1.000``.

    Args:
        rate: a success rate or accuracy.

    Returns:
        The formatted rate.
    """
    text = f"{rate:.3f}"
    return text[1:] if text.startswith("0.") else text


def _rows(summary: Mapping[str, Any], name: str) -> dict[str, Mapping[str, Any]]:
    """Accept one summary (labelled ``name``) or a mapping of row name -> summary."""
    if "groups" in summary:
        return {name: summary}
    return dict(summary)


def _rate_rows(rows_in: Mapping[str, Mapping[str, Any]], section: str, keys: list[str]) -> list[list[str]]:
    """One row per summary: its name, then ``.xxx (n=N)`` (or ``-``) for each key of ``summary[section]``."""
    rows = []
    for row_name, s in rows_in.items():
        cells = [row_name]
        for key in keys:
            cell = s.get(section, {}).get(key)
            cells.append(f"{format_rate(cell['success'])} (n={cell['n']})" if cell and cell["n"] else MISSING)
        rows.append(cells)
    return rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    """Render a markdown table (first column left-aligned, the others right-aligned)."""
    align = [":--"] + ["--:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def format_table(summary: Mapping[str, Any], name: str = "model") -> str:
    """Return the paper-style success-rate table in markdown.

    Each cell is ``.xxx (n=N)``; a group with no cases is ``-``.

    Args:
        summary: one :func:`dreamomni2.mini.analyzer.summarize` result, or a mapping of row name (method, id policy,
            planner...) to such results, one row each, in order.
        name: the row name when ``summary`` is a single summary.

    Returns:
        The table, without a trailing newline.
    """
    rows = _rate_rows(_rows(summary, name), "groups", [key for _, key in TABLE_COLUMNS])
    return _markdown(["Method", *(h for h, _ in TABLE_COLUMNS)], rows)


def format_images_table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """Return a markdown table of success by number of input images, one row per named summary.

    Each summary needs a ``by_images`` mapping (``{"1": {"n": .., "success": ..}, ...}``, as
    :func:`dreamomni2.mini.ablation.success_by_images` writes); one-image cases need no image index, so
    this is where id policies differ.
    """
    counts = sorted({k for s in summaries.values() for k in s.get("by_images", {})}, key=int)
    rows = _rate_rows(summaries, "by_images", counts)
    return _markdown(["Method", *(f"{k} image{'' if k == '1' else 's'}" for k in counts)], rows)


def format_attribute_table(summary: Mapping[str, Any], name: str = "model") -> str:
    """Return per-attribute accuracy (shape, color, pattern, size, background) and overall success in markdown.

    Args:
        summary: one summary or a mapping of row name -> summary (as in :func:`format_table`).
        name: the row name when ``summary`` is a single summary.

    Returns:
        The table, without a trailing newline.
    """
    rows = []
    for row_name, s in _rows(summary, name).items():
        if not s.get("n"):
            rows.append([row_name, *([MISSING] * (len(SCENE_ATTRS) + 1)), "0"])
            continue
        attrs = [format_rate(s["attributes"][a]) for a in SCENE_ATTRS]
        rows.append([row_name, *attrs, format_rate(s["success"]), str(s["n"])])
    header = ["Method", *(a.capitalize() for a in SCENE_ATTRS), "All", "n"]
    return _markdown(header, rows)


def format_kind_table(summary: Mapping[str, Any], name: str = "model") -> str:
    """Return success per case kind (replace, color, ..., compose) in markdown, one column per kind.

    Args:
        summary: one summary or a mapping of row name -> summary (as in :func:`format_table`).
        name: the row name when ``summary`` is a single summary.

    Returns:
        The table, without a trailing newline.
    """
    rows_in = _rows(summary, name)
    kinds: list[str] = []
    for s in rows_in.values():
        kinds += [k for k in s.get("kinds", {}) if k not in kinds]
    return _markdown(["Method", *kinds], _rate_rows(rows_in, "kinds", kinds))


def summary_path(path: str | Path) -> Path:
    """Return where :func:`write_results` puts the summary: ``results.jsonl`` -> ``results.summary.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".summary.json")


def write_results(result: Any, path: str | Path) -> tuple[Path, Path]:
    """Write per-case records as JSONL and the summary (with the run's config) as JSON next to it.

    Args:
        result: a :class:`dreamomni2.bench.runner.BenchResult`.
        path: the JSONL file (its folder must exist); the summary goes to :func:`summary_path` of it.

    Returns:
        ``(records path, summary path)``.
    """
    from dreamomni2.io import atomic_write_text

    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(record.to_dict()) + "\n" for record in result.records))
    spath = summary_path(path)
    payload = {"config": dict(result.config), "summary": result.summary}
    atomic_write_text(spath, json.dumps(payload, indent=2) + "\n")
    logger.info("wrote %d records to %s and the summary to %s", len(result.records), path, spath)
    return path, spath
