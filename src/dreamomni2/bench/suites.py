"""Benchmark suites: the held-out mini suite and a reader for release-style ``cases.jsonl`` files.

Seed convention: **training data uses seeds below** :data:`TRAIN_SEED_LIMIT` (1,000,000); seeds from there up are
reserved for evaluation. The mini suite is drawn from :data:`HELD_OUT_SEED` (1,000,003).

A different seed does not make the cases different: the mini world is small (a one-image ``place`` case has only
1,890 possible values), so some suite cases also turn up in training sets. :func:`mini_suite` therefore skips
cases whose :func:`case_key` is in ``exclude``, by default the keys of the standard training draw
``make_cases(0, 20000)`` (11 of the first 400 cases, all one-image ``generate/concrete`` ones). Train on other draws?
Pass their keys (:func:`training_keys`) and check with :func:`assert_disjoint`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from dreamomni2.mini.cases import Case, make_cases, sample_case
from dreamomni2.mini.groups import CATEGORIES, GROUPS, TASKS
from dreamomni2.mini.scene import Scene
from dreamomni2.mini.text import paraphrase_instruction

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TRAIN_CASES",
    "DEFAULT_TRAIN_SEED",
    "GROUPS",
    "HELD_OUT_SEED",
    "TRAIN_SEED_LIMIT",
    "CaseKey",
    "ExternalCase",
    "assert_disjoint",
    "case_key",
    "default_exclude",
    "load_cases_jsonl",
    "mini_suite",
    "overlapping",
    "training_keys",
]

#: Training sets are drawn from seeds below this; evaluation seeds are at or above it.
TRAIN_SEED_LIMIT = 1_000_000
#: The seed of the mini suite (reserved for evaluation; never train on it).
HELD_OUT_SEED = 1_000_003
#: The standard training draw the suite is kept disjoint from by default: ``make_cases(0, 20000)``.
DEFAULT_TRAIN_SEED = 0
DEFAULT_TRAIN_CASES = 20_000
# GROUPS, the four (task, category) groups in make_cases order, is re-exported from dreamomni2.mini.groups.

#: What makes two cases the same: the task, the input scenes (in order) and the target scene.
CaseKey = tuple[str, tuple[Scene, ...], Scene]


def case_key(case: Case) -> CaseKey:
    """Return the identity of a case for overlap checks (the instruction wording does not count).

    Args:
        case: a mini-world case.

    Returns:
        ``(task, input scenes in order, target scene)``, hashable.
    """
    return (case.task, tuple(case.images), case.target)


def training_keys(seed: int, n: int, paraphrase: bool = True) -> frozenset[CaseKey]:
    """Return the keys of the training cases ``make_cases(seed, n, paraphrase=paraphrase)``.

    Args:
        seed: the training seed.
        n: number of training cases.
        paraphrase: as given to ``make_cases`` (it changes which scenes are drawn, so it must match).

    Returns:
        The set of :func:`case_key` values.
    """
    return frozenset(case_key(c) for c in make_cases(seed, n, paraphrase=paraphrase))


@lru_cache(maxsize=1)
def default_exclude() -> frozenset[CaseKey]:
    """Return the keys of the standard training draw ``make_cases(0, 20000)`` (computed once, about a second)."""
    return training_keys(DEFAULT_TRAIN_SEED, DEFAULT_TRAIN_CASES)


def _quotas(n: int) -> dict[tuple[str, str], int]:
    """Split ``n`` over the groups as evenly as possible (earlier groups take the remainder)."""
    return {g: n // len(GROUPS) + (1 if i < n % len(GROUPS) else 0) for i, g in enumerate(GROUPS)}


def mini_suite(
    n: int = 400,
    seed: int = HELD_OUT_SEED,
    paraphrase: bool = False,
    exclude: Set[CaseKey] | None = None,
    max_draws: int | None = None,
) -> list[Case]:
    """Return the held-out mini suite: ``n`` cases balanced over the four (task, category) groups.

    Cases are drawn like ``make_cases(seed, ...)`` (cycling through the groups) without paraphrases; a case whose
    key is in ``exclude`` is skipped and its group drawn again on a later cycle. With an empty ``exclude`` the suite
    equals ``make_cases(seed, n, paraphrase=False)``. With ``paraphrase=True`` the cases are the same and only the
    ``instruction`` is reworded (by a per-case random source), so both variants score the same scenes.

    Args:
        n: number of cases (each group gets ``n // 4``, the first ``n % 4`` groups one more).
        seed: random seed; keep it >= :data:`TRAIN_SEED_LIMIT` (default :data:`HELD_OUT_SEED`).
        paraphrase: reword each instruction (``prompt`` stays canonical).
        exclude: case keys to leave out (see :func:`training_keys`); ``None`` means :func:`default_exclude`
            (the standard training draw), ``frozenset()`` means keep everything.
        max_draws: give up after this many draws (default ``100 * n + 100``).

    Returns:
        The cases, in draw order.

    Raises:
        ValueError: when ``n`` is negative, or when the draws run out because ``exclude`` covers too much.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if seed < TRAIN_SEED_LIMIT:
        logger.warning("mini suite seed %d is in the training range (< %d)", seed, TRAIN_SEED_LIMIT)
    exclude = default_exclude() if exclude is None else exclude
    quotas = _quotas(n)
    counts = dict.fromkeys(GROUPS, 0)
    limit = max_draws if max_draws is not None else 100 * n + 100
    rng = random.Random(seed)
    cases: list[Case] = []
    skipped = 0
    draws = 0
    while len(cases) < n:
        if draws >= limit:
            raise ValueError(f"only {len(cases)} of {n} cases after {draws} draws; exclude covers too much")
        group = GROUPS[draws % len(GROUPS)]
        draws += 1
        case = sample_case(rng, *group, paraphrase=False)
        if counts[group] >= quotas[group]:
            continue
        if case_key(case) in exclude:
            skipped += 1
            continue
        counts[group] += 1
        cases.append(case)
    if skipped:
        logger.info("mini suite: skipped %d case(s) found in the excluded (training) set", skipped)
    if paraphrase:
        for i, case in enumerate(cases):
            case.instruction = paraphrase_instruction(case, random.Random(f"mini-suite:{seed}:{i}"))
    return cases


def overlapping(train_cases: Iterable[Case], bench_cases: Sequence[Case]) -> list[int]:
    """Return the indices of bench cases that also occur in a training set (by :func:`case_key`).

    Args:
        train_cases: the training cases.
        bench_cases: the benchmark cases.

    Returns:
        Sorted indices into ``bench_cases``.
    """
    keys = {case_key(c) for c in train_cases}
    return [i for i, c in enumerate(bench_cases) if case_key(c) in keys]


def assert_disjoint(train_cases: Iterable[Case], bench_cases: Sequence[Case]) -> None:
    """Check that no benchmark case (same task, input scenes and target) appears in a training set.

    Args:
        train_cases: the training cases.
        bench_cases: the benchmark cases.

    Raises:
        AssertionError: naming how many bench cases overlap and the first few indices.
    """
    hits = overlapping(train_cases, bench_cases)
    if hits:
        raise AssertionError(
            f"{len(hits)} of {len(bench_cases)} bench cases also occur in the training set (indices {hits[:10]})"
        )


# ----------------------------------------------------------------------------------------------------------------
# Release-style cases (real images; no scoring yet)


@dataclass
class ExternalCase:
    """One row of a release-style ``cases.jsonl``.

    Attributes:
        task: ``edit`` or ``generate``.
        images: input image paths, resolved against the file's folder (the image to edit first).
        instruction: the user's instruction.
        category: ``concrete`` or ``abstract``.
        extra: the row's other fields (e.g. ``release_output``, ``sizes``), unchanged.
        line: 1-based line number in the file.
    """

    task: str
    images: list[Path]
    instruction: str
    category: str
    extra: dict[str, Any] = field(default_factory=dict)
    line: int = 0


def load_cases_jsonl(path: str | Path, check_files: bool = True) -> list[ExternalCase]:
    """Read a release-style ``cases.jsonl`` (``task``, ``images``, ``instruction``, ``category`` per row).

    Blank lines are skipped. Image paths are relative to the file's folder unless absolute.

    Args:
        path: the ``cases.jsonl`` file, or a folder holding one.
        check_files: raise when an image file is missing.

    Returns:
        The cases, in file order.

    Raises:
        FileNotFoundError: when the file (or, with ``check_files``, an image) is missing.
        ValueError: on a malformed row, naming its line number.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "cases.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    root = path.parent
    cases = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object")
            missing = [k for k in ("task", "images", "instruction", "category") if k not in row]
            if missing:
                raise ValueError(f"{where}: missing field(s) {missing}")
            task, category, images, instruction = row["task"], row["category"], row["images"], row["instruction"]
            if task not in TASKS:
                raise ValueError(f"{where}: task {task!r} is not one of {TASKS}")
            if category not in CATEGORIES:
                raise ValueError(f"{where}: category {category!r} is not one of {CATEGORIES}")
            if not isinstance(instruction, str) or not instruction.strip():
                raise ValueError(f"{where}: instruction must be a non-empty string")
            if not isinstance(images, list) or not images or not all(isinstance(p, str) for p in images):
                raise ValueError(f"{where}: images must be a non-empty list of paths")
            paths = [p if p.is_absolute() else root / p for p in map(Path, images)]
            if check_files:
                for p in paths:
                    if not p.is_file():
                        raise FileNotFoundError(f"{where}: image {p} not found")
            extra = {k: v for k, v in row.items() if k not in ("task", "images", "instruction", "category")}
            cases.append(ExternalCase(task, paths, instruction, category, extra, lineno))
    logger.info("read %d cases from %s", len(cases), path)
    return cases
