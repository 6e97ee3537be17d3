"""The page's history: one row per request drawn in the page, with its settings (plain functions, no gradio).

A row is a dict keyed by :data:`HISTORY_COLUMNS`; :func:`history_table` lays the rows out for a table, newest
first. The seed is the one actually used (a random seed is reported), so a row can be reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dreamomni2.request import Result

__all__ = ["HISTORY_COLUMNS", "add_row", "history_row", "history_table"]

#: The history table's columns, in order.
HISTORY_COLUMNS: tuple[str, ...] = (
    "#", "task", "prompt", "seed", "steps", "guidance", "size", "n", "id policy", "inputs", "seconds", "planner",
    "instruction",
)  # fmt: skip


def history_row(
    number: int, result: Result, *, instruction: str, planner: str, inputs: int, seconds: float
) -> dict[str, Any]:
    """The row of one request.

    Args:
        number: the request's number in the page (1, 2, ...).
        result: what the session returned.
        instruction: the instruction as typed.
        planner: the planner's label (the prompt may have been edited after planning).
        inputs: how many input images the request had.
        seconds: wall time of the request, planning included.
    """
    s = result.settings
    image = result.images[0] if result.images else None
    size = f"{image.width}x{image.height}" if image is not None else ""
    values = {"#": number, "task": s.task, "prompt": result.prompt, "seed": s.seed, "steps": s.steps,
              "guidance": s.guidance, "size": size, "n": s.n, "id policy": s.id_policy, "inputs": inputs,
              "seconds": round(float(seconds), 2), "planner": planner, "instruction": instruction}  # fmt: skip
    return {c: values[c] for c in HISTORY_COLUMNS}


def add_row(rows: Sequence[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """The history with ``row`` appended (a new list)."""
    return [*rows, row]


def history_table(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The rows as table rows in :data:`HISTORY_COLUMNS` order, newest first."""
    return [[row.get(c, "") for c in HISTORY_COLUMNS] for row in reversed(rows)]
