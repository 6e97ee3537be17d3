"""The report tables: the Wilson interval (values and properties), cell counting, and every table of a hand-made
set of verdicts (two runs, a pass/fail judge with unjudged and missing verdicts, a score judge on one run)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dreamomni2.bench.records import Verdict
from dreamomni2.bench.suite import SuiteCase
from dreamomni2.bench.tables import (
    MISSING,
    SUCCESS,
    RateCell,
    ScoreCell,
    build_tables,
    judge_metrics,
    rate_cell,
    score_cell,
    tables_markdown,
    to_markdown,
    wilson_interval,
)
from tests.bench.report_fixtures import A_ANALYZER, B_ANALYZER, CASES, verdict

# ------------------------------------------------------------------------------------------------ Wilson


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (5, 10, 0.236593, 0.763407),  # the textbook example
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
        (1, 2, 0.094531, 0.905469),
        (24, 41, 0.433671, 0.722435),  # DreamOmni2's .585 on 41 edit/concrete cases
    ],
)
def test_wilson_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-6)


def test_wilson_no_trials_and_bad_counts():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k, n in [(3, 2), (-1, 4), (0, -1)]:
        with pytest.raises(ValueError, match=f"successes={k}, n={n}"):
            wilson_interval(k, n)


@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_within_unit_and_contains_rate(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert hi - lo > 0


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))), st.integers(2, 20))
def test_wilson_narrows_with_n(kn, m):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    lo_m, hi_m = wilson_interval(k * m, n * m)  # the same rate on m times the cases
    assert hi_m - lo_m < hi - lo


# ------------------------------------------------------------------------------------------------ cells


def test_rate_cell_counts_unjudged_apart():
    vs = [verdict("a", "j", True), verdict("b", "j", False), verdict("c", "j", "unjudged"), None]
    cell = rate_cell(vs)
    assert cell == RateCell(successes=1, n=2, unjudged=2)
    assert cell.rate == 0.5
    assert cell.text() == ".500 [.095, .905] n=2 +2 unjudged"
    assert RateCell().text() == MISSING and RateCell().rate is None
    assert RateCell(0, 0, 3).text() == "- n=0 +3 unjudged"
    # a judged verdict without an answer is unjudged, never a success or a failure
    assert rate_cell([Verdict("x", "j", True, None)]) == RateCell(0, 0, 1)


def test_score_cell_means_judged_finite_scores():
    vs = [
        Verdict("a", "clip", True, score=0.5, scores={"clip_i": 0.25}),
        Verdict("b", "clip", True, score=0.7, scores={"clip_i": 0.75}),
        Verdict("c", "clip", True, scores={"clip_i": float("nan")}),
        Verdict("d", "clip", False, reason="no output"),
        None,
    ]
    assert score_cell(vs, "clip_i") == ScoreCell(0.5, 2, 3)
    assert score_cell(vs, "clip_i").text() == "0.500 n=2 +3 unjudged"
    assert score_cell(vs[:2], "score") == ScoreCell(pytest.approx(0.6), 2, 0)


def test_judge_metrics():
    assert judge_metrics([verdict("a", "j", True), verdict("b", "j", "unjudged")]) == [SUCCESS]
    clip = [Verdict("a", "c", True, score=0.1, scores={"clip_i": 0.1, "clip_t": 0.2})]
    assert judge_metrics(clip) == ["clip_i", "clip_t"]
    assert judge_metrics([Verdict("a", "c", True, score=0.3)]) == ["score"]
    assert judge_metrics([Verdict("a", "v", True, True, scores={"overall": 7.0})]) == [SUCCESS, "overall"]
    pair = [Verdict("a", "pairwise:vlm:qwen:/m", True, True, 1.0, {"ab": 1.0, "ba": 1.0}),
            Verdict("b", "pairwise:vlm:qwen:/m", True, None, 0.5, {"ab": 1.0, "ba": 0.0})]  # fmt: skip
    assert judge_metrics(pair) == ["score"]
    assert score_cell(pair, "score").text() == "0.750 n=2"  # a win and a tie


# ------------------------------------------------------------------------------------------------ tables


def _cases() -> list[SuiteCase]:
    return [SuiteCase(cid, task, cat, sub, [f"i/{k}.png" for k in range(n)], f"do {cid}")
            for cid, task, cat, sub, n in CASES]  # fmt: skip


def _runs() -> dict:
    a = {cid: verdict(cid, "analyzer", ans) for cid, ans in A_ANALYZER.items()}
    b = {cid: verdict(cid, "analyzer", ans) for cid, ans in B_ANALYZER.items()}
    clip = {cid: Verdict(cid, "clip", True, scores={"clip_i": 0.1 * (i + 1)}) for i, (cid, *_) in enumerate(CASES)}
    clip.pop("gen/compose/1")
    return {"A": {"analyzer": a, "clip": clip}, "B": {"analyzer": b}}


def test_tables_by_task_and_category():
    tables = build_tables(_cases(), _runs())
    assert [(t.judge, t.metric, t.kind) for t in tables] == [
        ("analyzer", SUCCESS, "task"), ("analyzer", SUCCESS, "subcategory"), ("analyzer", SUCCESS, "images"),
        ("clip", "clip_i", "task"), ("clip", "clip_i", "subcategory"), ("clip", "clip_i", "images"),
    ]  # fmt: skip
    main = tables[0]
    assert main.header == ["Run", "Editing concrete", "Editing abstract", "Generation concrete",
                           "Generation abstract", "All"]  # fmt: skip
    assert main.rows == [
        ["A", ".500 [.095, .905] n=2", "1.000 [.342, 1.000] n=2 +1 unjudged", "1.000 [.207, 1.000] n=1 +1 unjudged",
         ".000 [.000, .793] n=1", ".667 [.300, .903] n=6 +2 unjudged"],
        ["B", ".500 [.095, .905] n=2", ".667 [.208, .939] n=3", ".500 [.095, .905] n=2", ".000 [.000, .793] n=1",
         ".500 [.215, .785] n=8"],
    ]  # fmt: skip
    assert "excluded from the rate" in main.footnote and "Wilson" in main.footnote


def test_tables_by_subcategory_and_images():
    _, by_sub, by_img, clip_main, _, clip_img = build_tables(_cases(), _runs())
    assert by_sub.header == ["Sub-category", "Cases", "A", "B"]
    assert [r[:2] for r in by_sub.rows] == [
        ["Editing concrete · replace", "2"], ["Editing abstract · color", "2"], ["Editing abstract · pattern", "1"],
        ["Generation concrete · place", "2"], ["Generation abstract · compose", "1"],
    ]  # fmt: skip
    assert by_sub.rows[1][2:] == ["1.000 [.207, 1.000] n=1 +1 unjudged", ".500 [.095, .905] n=2"]
    assert by_img.header == ["Run", "1 image", "2 images", "3 images"]
    assert by_img.rows[0] == ["A", "1.000 [.342, 1.000] n=2", ".667 [.208, .939] n=3 +1 unjudged",
                              ".000 [.000, .793] n=1 +1 unjudged"]  # fmt: skip
    # the score judge: means per group; run B was never scored by it, so its row is "-"
    assert clip_main.rows[0] == [
        "A",
        "0.150 n=2",
        "0.400 n=3",
        "0.650 n=2",
        "- n=0 +1 unjudged",
        "0.400 n=7 +1 unjudged",
    ]
    assert clip_main.rows[1] == ["B", *[MISSING] * 5]
    assert clip_img.rows[0] == ["A", "0.550 n=2", "0.325 n=4", "0.400 n=1 +1 unjudged"]
    assert "Mean clip_i" in clip_main.footnote


def test_markdown_rendering_and_escaping():
    cases = [SuiteCase("x", "edit", "concrete", "a|b", ["1.png"], "do x")]
    runs = {"run|1": {"j": {"x": verdict("x", "j", True)}}}
    tables = build_tables(cases, runs)
    md = to_markdown(tables[0])
    lines = md.splitlines()
    assert lines[0] == "**j: success rate by task and category**"
    assert lines[3] == "| :-- | --: | --: | --: | --: | --: |"
    assert lines[4] == "| run\\|1 | 1.000 [.207, 1.000] n=1 | - | - | - | 1.000 [.207, 1.000] n=1 |"
    assert "Editing concrete · a\\|b" in to_markdown(tables[1])
    text = tables_markdown(tables)
    assert text.count("Unjudged cases") == 1 and text.endswith("excluded from the rate. -: no case, or the judge "
                                                               "has not judged that run.*\n")  # fmt: skip
    assert tables_markdown([]).startswith("No judgements yet")


def test_side_scores_of_a_pass_fail_judge_in_one_table():
    cases = _cases()[:2]
    answers = [(True, {"shape": 1.0, "color": 1.0}), (False, {"shape": 0.0, "color": 1.0})]
    verdicts = {
        c.id: Verdict(c.id, "analyzer", True, ok, scores=sc) for c, (ok, sc) in zip(cases, answers, strict=True)
    }
    tables = build_tables(cases, {"A": {"analyzer": verdicts}})
    assert [t.kind for t in tables] == ["task", "subcategory", "images", "scores"]
    side = tables[-1]
    assert side.title == "analyzer: mean scores over all cases"
    assert side.header == ["Run", "shape", "color"] and side.rows == [["A", "0.500 n=2", "1.000 n=2"]]
