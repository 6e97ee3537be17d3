"""The mini planner on its development set (tests/data/planner_dev.jsonl).

The development set is the one the planner's rules were written against (hand-written instructions covering the
failure classes of issue 12: keep clauses, ``bg``, ``background colour``, ``tint``, ``or``/``between``, image 1 as the
reference, ``respectively``, typos, verb forms, ``as big as``, ``the other image``...), kept separate from the
frozen held-out set (tests/data/planner_heldout.jsonl) that measures it. It is not frozen: add rows when a rule is
added. ``python benchmarks/planner_heldout.py --data tests/data/planner_dev.jsonl`` prints the full table.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from dreamomni2.mini.planner import PlanError, parse_instruction

DATA = Path(__file__).resolve().parents[1] / "data" / "planner_dev.jsonl"
EDIT_KINDS = ("replace", "color", "pattern", "size", "background")
KINDS = (*EDIT_KINDS, "place", "compose")
#: Measured on this set when the rules were written: 272 of 273 answerable rows planned exactly (the other one
#: refused), all 144 unanswerable rows refused. A regression floor: raise it when rules improve.
#: With the rows added for image 1's own background, replaces keeping an attribute and the closed vocabulary (443
#: rows): 284 of 286 answerable rows exact (``white-ish light`` is refused now: 'white' is not a word of the world),
#: all 157 unanswerable rows refused.
#: With the rows added for self-contradictory keeps and unlike-for-unlike replaces (447 rows): 284 of 286 exact,
#: all 161 unanswerable rows refused.
MIN_EXACT = 284


def load_rows() -> list[dict]:
    with open(DATA, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def kind_of(row: dict) -> str:
    return row["id"].rsplit("-", 1)[0]


def test_dev_set_is_well_formed():
    rows = load_rows()
    assert len(rows) >= 250
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"id", "instruction", "task", "n_images", "expected"}, r
        assert kind_of(r) in (*KINDS, "other"), r["id"]
        low = 2 if r["task"] == "edit" else 1
        assert isinstance(r["n_images"], int) and low <= r["n_images"] <= 4, r["id"]
        if kind_of(r) in KINDS:
            assert r["task"] == ("edit" if kind_of(r) in EDIT_KINDS else "generate"), r["id"]
        if r["expected"] is not None:  # a prompt the world writes, of the row's kind
            parsed = parse_instruction(r["expected"], r["task"], r["n_images"])
            assert (parsed.prompt(), parsed.kind) == (r["expected"], kind_of(r)), r["id"]
    per_kind = Counter(kind_of(r) for r in rows)
    assert all(per_kind[k] >= 30 for k in KINDS), per_kind
    assert all(any(r["expected"] is None for r in rows if kind_of(r) == k) for k in KINDS)


def test_dev_set_never_silently_wrong_and_exact_rate():
    counts: Counter = Counter()
    wrong = []
    for r in load_rows():
        try:
            prompt = parse_instruction(r["instruction"], r["task"], r["n_images"]).prompt()
        except PlanError as err:
            counts["refused" if r["expected"] is None else "refused_answerable"] += 1
            assert "; understood: " in str(err) and "; say e.g. '" in str(err), r["id"]
            continue
        if prompt == r["expected"]:
            counts["exact"] += 1
        else:
            wrong.append(f"{r['id']}: {r['instruction']!r} -> {prompt!r} (expected {r['expected']!r})")
    assert not wrong, "\n".join(wrong)
    assert counts["exact"] >= MIN_EXACT, counts
    assert counts["refused"] == sum(r["expected"] is None for r in load_rows())


def test_dev_set_without_the_image_count_is_never_wrong():
    """Without the image count, positional references are refused; an answerable row never becomes another prompt."""
    planned = 0
    for r in load_rows():
        if r["expected"] is None:
            continue
        try:
            prompt = parse_instruction(r["instruction"], r["task"], None).prompt()
        except PlanError:
            continue
        planned += 1
        assert prompt == r["expected"], r["id"]
    assert planned >= 200
