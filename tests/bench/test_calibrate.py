"""Calibration against the mini world's ground truth: an oracle agrees 1.0, a coin about 0.5."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from dreamomni2.bench.calibrate import builtin_items, calibrate, format_calibration, run_items
from dreamomni2.bench.judges import Judge, make_judge, unjudged
from dreamomni2.bench.records import Verdict
from dreamomni2.bench.suite import read_suite
from dreamomni2.cli import main
from tests.bench.fake_bench import make_fake_run, make_mini_suite


class _FromAnalyzer(Judge):
    """A stub judge answering what the analyzer answers (an oracle)."""

    name = "oracle"

    def __init__(self) -> None:
        self.inner = make_judge("analyzer")

    def judge(self, case, output, inputs) -> Verdict:
        v = self.inner.judge(case, output, inputs)
        return Verdict(case.id, self.name, True, success=v.success)


class _Coin(Judge):
    name = "coin"

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def judge(self, case, output, inputs) -> Verdict:
        return Verdict(case.id, self.name, True, success=self.rng.random() < 0.5)


class _Mute(Judge):
    name = "mute"

    def judge(self, case, output, inputs) -> Verdict:
        return unjudged(case.id, self.name, "malformed reply (no verdict found): blah")


class _Brightness(Judge):
    name, kind = "brightness", "score"

    def judge(self, case, output, inputs) -> Verdict:
        value = float(np.asarray(output.convert("L"), dtype=np.float64).mean() / 255)
        return Verdict(case.id, self.name, True, score=value, scores={"bright": value, "bright_1": value})


@pytest.fixture(scope="module")
def items():
    return builtin_items(100)


def test_builtin_items_pair_a_correct_and_a_wrong_output(items):
    assert len(items) == 200
    assert [it.truth for it in items[:4]] == [True, False, True, False]
    labels = {it.label for it in items}
    assert labels == {"correct", "distractor", "one-attribute change"}
    assert sum(it.label == "correct" for it in items) == 100
    groups = {(it.case.task, it.case.category) for it in items}
    assert len(groups) == 4
    assert all(it.case.truth and len(it.inputs) == it.case.n_images for it in items)


def test_an_oracle_agrees_fully(items):
    r = calibrate(_FromAnalyzer(), items, progress=False)
    assert (r["n"], r["correct"], r["wrong"], r["judged"]) == (200, 100, 100, 200)
    assert r["agreement"]["rate"] == 1.0 and r["agreement"]["interval"][0] > 0.98
    assert (r["false_accept"]["rate"], r["false_reject"]["rate"]) == (0.0, 0.0)
    assert r["confusion"] == {"tp": 100, "fn": 0, "fp": 0, "tn": 100}


def test_a_coin_agrees_about_half(items):
    r = calibrate(_Coin(seed=0), items, progress=False)
    assert abs(r["agreement"]["rate"] - 0.5) < 0.1
    lo, hi = r["agreement"]["interval"]
    assert lo < 0.5 < hi
    assert 0.3 < r["false_accept"]["rate"] < 0.7 and 0.3 < r["false_reject"]["rate"] < 0.7


def test_unjudged_outputs_are_counted_not_rated(items):
    r = calibrate(_Mute(), items[:10], progress=False)
    assert r["agreement"] == {"rate": None, "k": 0, "n": 0, "interval": [0.0, 1.0]}
    assert r["unjudged"] == {"correct": 5, "wrong": 5, "reasons": {"malformed reply (no verdict found)": 10}}
    text = format_calibration(r)
    assert "| agreement | - (n=0) |" in text and "| unjudged | 10 of 10 (5 correct, 5 wrong) |" in text


def test_a_scoring_judge_reports_means_and_auc(items):
    r = calibrate(_Brightness(), items[:20], progress=False)
    assert r["kind"] == "score" and set(r["means"]) == {"bright"}
    assert r["means"]["bright"]["correct"]["n"] == 10 and 0.0 <= r["auc"] <= 1.0
    assert "| bright |" in format_calibration(r)


def test_the_analyzer_calibrates_on_a_run(tmp_path: Path):
    suite = make_mini_suite(tmp_path / "suite", n=6)
    cases = read_suite(suite)
    make_fake_run(tmp_path / "run", suite, wrong=[cases[0].id], errors=[cases[1].id])
    its = run_items(tmp_path / "run")
    assert len(its) == 5 and [it.truth for it in its] == [False, True, True, True, True]
    assert calibrate(make_judge("analyzer"), its, progress=False)["agreement"]["rate"] == 1.0


def test_cli_calibrate(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "cal.json"
    assert main(["bench", "calibrate", "--judge", "analyzer", "--n", "8", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Calibration of analyzer: 16 outputs (8 correct, 8 wrong)" in text
    assert "| agreement | 1.000 [0.806, 1.000] (16/16) |" in text
    assert json.loads(out.read_text())["agreement"]["k"] == 16
    assert main(["bench", "calibrate", "--judge", "analyzer", "--n", "8", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err


def test_cli_calibrate_refuses_a_run_without_truth(tmp_path: Path, capsys: pytest.CaptureFixture):
    from dreamomni2.bench.importers import import_suite
    from tests.bench.fake_bench import make_fake_dreamomni2bench

    fake = make_fake_dreamomni2bench(tmp_path / "bench")
    import_suite("dreamomni2bench", fake["root"], tmp_path / "suite")
    make_fake_run(tmp_path / "run", tmp_path / "suite", outputs="first")
    assert main(["bench", "calibrate", "--judge", "analyzer", "--run", str(tmp_path / "run")]) == 2
    assert "has no mini-world truth; calibrate on a mini-suite run" in capsys.readouterr().err
