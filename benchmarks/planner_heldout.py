"""The mini planner on a held-out set of hand-written instructions vs on the world's own instructions.

Runs :func:`dreamomni2.mini.planner.parse_instruction` over ``tests/data/planner_heldout.jsonl`` (313 instructions
written the way people write them, independently of the world's templates and frozen before any rule work; an
``expected`` of null means a careful human could not tell what is asked, so the planner should refuse) and over
the world's own paraphrased and irregular instructions of ``make_cases(5, 1000)``. Each instruction is:

* exact: a prompt equal to the expected canonical prompt;
* refused: ``PlanError`` (correct when expected is null, otherwise a miss the user is told about);
* silently wrong: a prompt that differs from the expected one, or any prompt when expected is null.

Prints markdown tables: per kind on the held-out set (the kind is the id's prefix; ``other`` rows are
unanswerable instructions of no kind), then the totals of the three sources side by side.

The development set ``tests/data/planner_dev.jsonl`` (the instructions the rules were written against, so not a
measure of generalisation) is scored too and shown in the totals.

Usage: python benchmarks/planner_heldout.py [--data tests/data/planner_heldout.jsonl]
    [--dev tests/data/planner_dev.jsonl] [--seed 5] [--n 1000] [--show 10]
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from dreamomni2.mini.planner import PlanError, parse_instruction
from dreamomni2.mini.world import irregular_instruction, make_cases, paraphrase_instruction

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "planner_heldout.jsonl"
#: The development set the rules were written against (not held out; reported next to the held-out set).
DEV = DATA.with_name("planner_dev.jsonl")
KIND_ORDER = ("replace", "color", "pattern", "size", "background", "place", "compose", "other")


def load_rows(path: Path = DATA) -> list[dict]:
    """Return the rows of a held-out JSONL file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def outcome(instruction: str, task: str, n_images: int, expected: str | None) -> tuple[str, str | None]:
    """Classify one instruction: (``exact`` | ``refused_ok`` | ``refused_miss`` | ``wrong``, produced prompt)."""
    try:
        prompt = parse_instruction(instruction, task, n_images).prompt()
    except PlanError:
        return ("refused_ok" if expected is None else "refused_miss"), None
    return ("exact" if expected is not None and prompt == expected else "wrong"), prompt


def score(items: Iterable[tuple[str, str, str, int, str | None]]) -> tuple[dict[str, Counter], list[dict]]:
    """Score (group, instruction, task, n_images, expected) items; return per-group counters and wrong rows."""
    counts: dict[str, Counter] = {}
    wrong = []
    for group, instruction, task, n, expected in items:
        res, prompt = outcome(instruction, task, n, expected)
        c = counts.setdefault(group, Counter())
        c[res] += 1
        c["n"] += 1
        c["answerable"] += expected is not None
        if res == "wrong":
            wrong.append({"group": group, "instruction": instruction, "n_images": n, "expected": expected,
                          "got": prompt})  # fmt: skip
    return counts, wrong


def heldout_items(rows: list[dict]) -> list[tuple[str, str, str, int, str | None]]:
    """Items of the held-out rows, grouped by the kind prefix of their id."""
    return [(r["id"].rsplit("-", 1)[0], r["instruction"], r["task"], r["n_images"], r["expected"]) for r in rows]


def world_items(seed: int, n: int) -> tuple[list, list]:
    """Paraphrase and irregular items of ``make_cases(seed, n)``, grouped by case kind (fixed rng seeds)."""
    cases = make_cases(seed, n)
    rng_p, rng_i = random.Random(seed * 1000 + 1), random.Random(seed * 1000 + 2)
    para = [(c.kind, paraphrase_instruction(c, rng_p), c.task, len(c.images), c.prompt) for c in cases]
    irr = [(c.kind, irregular_instruction(c, rng_i), c.task, len(c.images), c.prompt) for c in cases]
    return para, irr


def total(counts: dict[str, Counter]) -> Counter:
    """Sum of per-group counters."""
    out: Counter = Counter()
    for c in counts.values():
        out.update(c)
    return out


def _rate(k: int, n: int) -> str:
    return f"{k} ({k / n:.1%})" if n else "0"


def row(name: str, c: Counter) -> str:
    """One markdown table row: n, answerable, exact (of answerable), refusals, silently wrong (of all)."""
    n, ans = c["n"], c["answerable"]
    return (f"| {name} | {n} | {ans} | {_rate(c['exact'], ans)} | {_rate(c['refused_ok'], n - ans)} "
            f"| {_rate(c['refused_miss'], ans)} | {_rate(c['wrong'], n)} |")  # fmt: skip


HEADER = (
    "| {first} | n | answerable | exact (of answerable) | refused, correctly (of unanswerable) "
    "| refused, answerable | silently wrong (of all) |\n|---|---|---|---|---|---|---|"
)


def table(first: str, counts: dict[str, Counter], order: Iterable[str]) -> str:
    """Markdown table of the groups in ``order`` (those present) and a total row."""
    lines = [HEADER.format(first=first)]
    lines += [row(g, counts[g]) for g in order if g in counts]
    lines.append(row("**all**", total(counts)))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--dev", type=Path, default=DEV, help="development set, reported in the totals")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--show", type=int, default=10, help="silently wrong held-out rows to list")
    args = ap.parse_args()

    held, held_wrong = score(heldout_items(load_rows(args.data)))
    dev, _ = score(heldout_items(load_rows(args.dev)))
    para_items, irr_items = world_items(args.seed, args.n)
    para, _ = score(para_items)
    irr, _ = score(irr_items)

    print(f"## Held-out instructions ({args.data.name}), by kind\n")
    print(table("kind", held, KIND_ORDER))
    print(f"\n## World's own instructions (make_cases({args.seed}, {args.n})), by kind\n")
    kinds = KIND_ORDER[:-1]
    print("paraphrase_instruction:\n")
    print(table("kind", para, kinds))
    print("\nirregular_instruction:\n")
    print(table("kind", irr, kinds))
    print("\n## Totals\n")
    print(HEADER.format(first="source"))
    print(row("held-out (hand-written)", total(held)))
    print(row("development set (rules written on it)", total(dev)))
    print(row("world paraphrases", total(para)))
    print(row("world irregular", total(irr)))
    if args.show and held_wrong:
        shown = min(args.show, len(held_wrong))
        print(f"\n## Silently wrong on the held-out set (first {shown} of {len(held_wrong)})\n")
        print("| kind | n | instruction | expected | planner |\n|---|---|---|---|---|")
        for w in held_wrong[: args.show]:
            print(f"| {w['group']} | {w['n_images']} | {w['instruction']} | {w['expected']} | {w['got']} |")


if __name__ == "__main__":
    main()
