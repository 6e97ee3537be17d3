"""Shared by the planner evaluation-set tests (test_planner_heldout*.py, test_planner_dev.py): reading a set and
scoring the mini planner on it (exact / refused / silently wrong)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from dreamomni2.mini.planner import PlanError, parse_instruction


def load_rows(path: Path) -> list[dict]:
    """The rows of a JSONL evaluation set."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def kind_of(row: dict) -> str:
    """A row's kind, from its id (``color-007`` -> ``color``)."""
    return row["id"].rsplit("-", 1)[0]


def score_planner(rows: list[dict]) -> tuple[Counter, list[str]]:
    """Plan every row: counts of ``exact``, ``refused`` and ``wrong``, and one line per silently wrong row."""
    counts: Counter = Counter()
    wrong = []
    for r in rows:
        try:
            prompt = parse_instruction(r["instruction"], r["task"], r["n_images"]).prompt()
        except PlanError:
            counts["refused"] += 1
            continue
        if prompt == r["expected"]:
            counts["exact"] += 1
        else:
            counts["wrong"] += 1
            wrong.append(f"{r['id']}: {r['instruction']!r} -> {prompt!r} (expected {r['expected']!r})")
    return counts, wrong
