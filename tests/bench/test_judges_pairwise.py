"""The pairwise judge: both orders (position bias), ties, win rates, Bradley–Terry, comparing run folders."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from dreamomni2.bench.judges.pairwise import (
    PAIRWISE_PROMPTS,
    PairwiseJudge,
    bradley_terry,
    combine_orders,
    elo_scores,
    pairwise_prompt,
    win_rate,
)
from dreamomni2.bench.judges.runs import compare_runs
from dreamomni2.bench.records import Verdict, judgement_path, read_verdicts
from dreamomni2.bench.suite import SuiteCase
from dreamomni2.cli import main
from tests.bench.fake_bench import make_fake_run, make_mini_suite
from tests.bench.judge_fixtures import stub_judge_server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "judges.md"
CASE = SuiteCase("edit/x/1", "edit", "abstract", "x", ["a.png"], "Make image 1 brighter.")


def _grey(value: int) -> Image.Image:
    return Image.new("RGB", (32, 32), (value, value, value))


def _mean(image: Image.Image) -> float:
    return float(np.asarray(image, dtype=np.float64).mean())


class _PositionA:
    def chat(self, images, text, temperature=0):
        return '{"winner": "A", "reason": "first is best"}'


class _Brighter:
    """Prefers the brighter of result A and result B (the last two images), in both orders."""

    def __init__(self):
        self.calls = []

    def chat(self, images, text, temperature=0):
        a, b = _mean(images[-2]), _mean(images[-1])
        self.calls.append((a, b))
        return '{"winner": "%s"}' % ("tie" if a == b else "A" if a > b else "B")


class _Script:
    def __init__(self, replies):
        self.replies = list(replies)

    def chat(self, images, text, temperature=0):
        return self.replies.pop(0)


def test_pairwise_prompts_are_in_the_docs():
    text = DOCS.read_text(encoding="utf-8")
    for prompt in PAIRWISE_PROMPTS.values():
        assert prompt in text
    assert "Image 2 is result A. Image 3 is result B." in pairwise_prompt("edit", 1, "x")


def test_a_judge_that_always_prefers_position_a_gives_ties():
    v = PairwiseJudge(_PositionA(), name="pw").compare(CASE, _grey(200), _grey(20), [_grey(100)])
    assert (v.judged, v.success, v.score, v.scores) == (True, None, 0.5, {"ab": 1.0, "ba": 0.0})
    assert v.reason.startswith("tie (the two orders disagree)")


def test_a_consistent_judge_picks_the_better_output_in_both_orders():
    backend = _Brighter()
    judge = PairwiseJudge(backend, name="pw")
    win = judge.compare(CASE, _grey(200), _grey(20), [_grey(100)])
    assert (win.judged, win.success, win.score, win.scores) == (True, True, 1.0, {"ab": 1.0, "ba": 1.0})
    assert backend.calls == [(200.0, 20.0), (20.0, 200.0)]  # the order was swapped for the second ask
    loss = judge.compare(CASE, _grey(20), _grey(200), [_grey(100)])
    assert (loss.success, loss.score) == (False, 0.0)
    tie = judge.compare(CASE, _grey(50), _grey(50), [_grey(100)])
    assert (tie.judged, tie.success, tie.score) == (True, None, 0.5)


def test_an_unusable_order_makes_the_case_unjudged():
    v = PairwiseJudge(_Script(['{"winner": "A"}', "I'm sorry, I cannot compare these."])).compare(
        CASE, _grey(1), _grey(2), [_grey(3)]
    )
    assert (v.judged, v.success, v.score) == (False, None, None)
    assert v.reason == "first as B: refused: I'm sorry, I cannot compare these."


_ANSWERS = st.sampled_from(["A", "B", "tie", None])


@given(_ANSWERS, _ANSWERS)
def test_combine_orders_is_antisymmetric(first: str | None, second: str | None):
    mine, theirs = combine_orders(first, second), combine_orders(second, first)
    if first is None or second is None:
        assert mine is None and theirs is None
    else:
        assert mine + theirs == 1.0
        assert mine in (0.0, 0.5, 1.0)


def test_combine_orders_position_bias_is_a_tie():
    assert combine_orders("A", "A") == 0.5 and combine_orders("B", "B") == 0.5
    assert combine_orders("A", "B") == 1.0 and combine_orders("B", "A") == 0.0
    assert combine_orders("tie", "B") == 0.5


def test_win_rate_counts_ties_as_half():
    vs = [Verdict(str(i), "pw", True, score=s) for i, s in enumerate([1.0, 1.0, 1.0, 0.0, 0.5])]
    vs.append(Verdict("u", "pw", False))
    r = win_rate(vs)
    assert (r["wins"], r["losses"], r["ties"], r["unjudged"], r["n"]) == (3, 1, 1, 1, 5)
    assert r["rate"] == pytest.approx(0.7)
    lo, hi = r["interval"]
    assert 0.2 < lo < 0.7 < hi < 1.0


def test_bradley_terry_two_players_is_the_win_ratio():
    s = bradley_terry([("a", "b", 1.0)] * 3 + [("a", "b", 0.0)], prior=0.0)
    assert s["a"] / s["b"] == pytest.approx(3.0, rel=1e-6)
    assert math.sqrt(s["a"] * s["b"]) == pytest.approx(1.0)
    elo = elo_scores(s)
    assert elo["a"] - elo["b"] == pytest.approx(400 * math.log10(3.0), rel=1e-6)


def test_bradley_terry_recovers_the_order_of_a_synthetic_tournament():
    true = {"w": 8.0, "x": 4.0, "y": 1.0, "z": 0.25}
    rng = random.Random(0)
    games = []
    names = sorted(true)
    for _ in range(150):
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                games.append((a, b, 1.0 if rng.random() < true[a] / (true[a] + true[b]) else 0.0))
    fit = bradley_terry(games)
    assert sorted(fit, key=fit.get, reverse=True) == ["w", "x", "y", "z"]
    assert fit["w"] / fit["z"] == pytest.approx(32.0, rel=0.35)


def test_bradley_terry_never_winning_stays_finite():
    fit = bradley_terry([("a", "b", 1.0)] * 5)
    assert 0 < fit["b"] < fit["a"] < math.inf


# --- run folders -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pairwise")
    suite = make_mini_suite(root / "suite", n=4)
    other = make_mini_suite(root / "other-suite", n=5)
    make_fake_run(root / "bright", suite, outputs=lambda case, i: _grey(220), errors=["mini/0003"])
    make_fake_run(root / "dark", suite, outputs=lambda case, i: _grey(30))
    make_fake_run(root / "mid", suite, outputs=lambda case, i: _grey(120))
    make_fake_run(root / "elsewhere", other, outputs="truth")
    return {p.name: p for p in root.iterdir()}


def test_compare_runs_ranks_the_runs(runs: dict[str, Path]):
    result = compare_runs(PairwiseJudge(_Brighter(), name="pairwise:stub"), [runs["dark"], runs["bright"]], False)
    (pair,) = result["pairs"]
    # bright failed on mini/0003, so dark wins that one without asking
    assert (pair["a"], pair["b"], pair["wins"], pair["losses"], pair["ties"]) == ("dark", "bright", 1, 3, 0)
    verdicts = read_verdicts(runs["dark"], "pairwise:stub vs bright")
    assert verdicts["mini/0003"].reason == "second run has no output"
    assert result["elo"]["bright"] > result["elo"]["dark"]


def test_compare_runs_of_three_gives_the_bradley_terry_order(runs: dict[str, Path]):
    judge = PairwiseJudge(_Brighter(), name="pairwise:stub3")
    result = compare_runs(judge, [runs["mid"], runs["dark"], runs["bright"]], progress=False)
    assert len(result["pairs"]) == 3 and result["outcomes"] == 12
    order = sorted(result["bradley_terry"], key=result["bradley_terry"].get, reverse=True)
    assert order == ["bright", "mid", "dark"]


def test_compare_runs_resumes(runs: dict[str, Path]):
    backend = _Brighter()
    judge = PairwiseJudge(backend, name="pairwise:resume")
    compare_runs(judge, [runs["mid"], runs["dark"]], progress=False)
    assert len(backend.calls) == 8  # 4 cases x 2 orders
    compare_runs(judge, [runs["mid"], runs["dark"]], progress=False)
    assert len(backend.calls) == 8
    assert judgement_path(runs["mid"], "pairwise:resume vs dark").is_file()


def test_compare_runs_refuses_another_suite(runs: dict[str, Path]):
    with pytest.raises(ValueError, match="a run of another suite"):
        compare_runs(PairwiseJudge(_PositionA()), [runs["dark"], runs["elsewhere"]], progress=False)


def test_cli_pairwise_through_the_stub_endpoint(runs: dict[str, Path], capsys: pytest.CaptureFixture):
    with stub_judge_server() as (url, handler):
        spec = f"vlm:openai:{url}/brighter/v1#judge"
        assert (
            main(["bench", "judge", str(runs["dark"]), "--judge", spec, "--against", str(runs["mid"]), "--quiet"]) == 0
        )
        out = capsys.readouterr().out
        assert "| dark | mid | 0 | 4 | 0 | 0 | 0.000 [0.000, 0.490] |" in out
        assert len(handler.requests) == 8
        code = main(["bench", "judge", str(runs["dark"]), "--judge", spec, "--against", str(runs["elsewhere"])])
    assert code == 2
    assert "a run of another suite" in capsys.readouterr().err


def test_cli_pairwise_needs_a_vlm_spec(runs: dict[str, Path], capsys: pytest.CaptureFixture):
    assert main(["bench", "judge", str(runs["dark"]), "--judge", "analyzer", "--against", str(runs["mid"])]) == 2
    assert "pairwise judging needs a VLM judge spec" in capsys.readouterr().err
    args = ["bench", "judge", str(runs["dark"]), "--judge", "vlm:openai:http://127.0.0.1:9/v1", "--samples", "3"]
    assert main([*args, "--against", str(runs["mid"])]) == 2
    assert "pairwise judging asks once per order" in capsys.readouterr().err
