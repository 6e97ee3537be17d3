"""The analyzer judge on mini-world renders, the judge spec parser, and ``bench judge`` on run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dreamomni2.bench.judges import Judge, make_judge
from dreamomni2.bench.judges.analyzer import AnalyzerJudge
from dreamomni2.bench.judges.runs import judge_run
from dreamomni2.bench.records import Verdict, judgement_path, read_verdicts
from dreamomni2.bench.suite import SuiteCase, read_suite
from dreamomni2.cli import main
from dreamomni2.mini.cases import Case
from dreamomni2.mini.scene import render
from tests.bench.fake_bench import make_fake_run, make_mini_suite


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mini_suite(tmp_path_factory.mktemp("suite") / "mini", n=8)


def test_analyzer_passes_the_target_and_names_what_is_wrong(suite: Path):
    judge = make_judge("analyzer")
    assert isinstance(judge, AnalyzerJudge) and judge.kind == "pass"
    for case in read_suite(suite):
        mini = Case.from_dict(case.truth)
        good = judge.judge(case, render(mini.target), [])
        assert (good.id, good.judge, good.judged, good.success) == (case.id, "analyzer", True, True)
        assert good.reason == "all attributes match the target"
        assert good.scores == {"shape": 1.0, "color": 1.0, "pattern": 1.0, "size": 1.0, "background": 1.0}
        colour = "red" if mini.target.obj.color != "red" else "blue"
        bad = judge.judge(case, render(mini.target.replace(color=colour)), [])
        assert (bad.judged, bad.success, bad.scores["color"]) == (True, False, 0.0)
        assert bad.reason == f"wrong color (want {mini.target.obj.color}, read {colour})"
        assert json.loads(bad.raw)["color"] == colour


def test_analyzer_without_truth_is_unjudged():
    case = SuiteCase("edit/replace/1", "edit", "concrete", "replace", ["a.png"], "Replace it.")
    v = AnalyzerJudge().judge(case, Image.new("RGB", (32, 32)), [])
    assert (v.judged, v.success) == (False, None)
    assert "has no mini-world truth" in v.reason
    broken = SuiteCase("x", "edit", "concrete", "replace", ["a.png"], "Replace it.", truth={"task": "edit"})
    assert (
        "malformed mini-world truth (KeyError" in AnalyzerJudge().judge(broken, Image.new("RGB", (32, 32)), []).reason
    )


def test_make_judge_refuses_unknown_options():
    with pytest.raises(TypeError, match="unknown judge option"):
        make_judge("analyzer", temprature=1)


class _Counting(Judge):
    name = "counting"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def judge(self, case, output, inputs) -> Verdict:
        self.seen.append(case.id)
        assert output.size == (32, 32) and len(inputs) == case.n_images
        return Verdict(
            case.id, self.name, judged=case.id != "mini/0002", success=True if case.id != "mini/0002" else None
        )


def test_judge_run_resumes_and_retries_unjudged(suite: Path, tmp_path: Path):
    make_fake_run(tmp_path / "run", suite, errors=["mini/0005"])
    judge = _Counting()
    verdicts = judge_run(judge, tmp_path / "run", progress=False)
    assert list(verdicts) == [f"mini/{i:04d}" for i in range(8)]
    assert "mini/0005" not in judge.seen  # a failed case is a failure, not asked
    assert (verdicts["mini/0005"].judged, verdicts["mini/0005"].success) == (True, False)
    judge.seen.clear()
    judge_run(judge, tmp_path / "run", progress=False)
    assert judge.seen == ["mini/0002"]  # only the unjudged case is asked again
    path = judgement_path(tmp_path / "run", "counting")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # torn last line, as after a crash
    judge.seen.clear()
    judge_run(judge, tmp_path / "run", progress=False)
    assert judge.seen == ["mini/0002", "mini/0003", "mini/0004", "mini/0006", "mini/0007"]
    assert len(read_verdicts(tmp_path / "run", "counting")) == 8


def test_cli_judge_with_the_analyzer(suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    cases = read_suite(suite)
    make_fake_run(tmp_path / "run", suite, wrong=[cases[0].id, cases[1].id])
    assert main(["bench", "judge", str(tmp_path / "run"), "--judge", "analyzer", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "analyzer: 8 cases, 8 judged, 0 unjudged" in out
    assert "success 6/8 = 0.750 [0.409, 0.929]" in out
    verdicts = read_verdicts(tmp_path / "run", "analyzer")
    assert [verdicts[c.id].success for c in cases] == [False, False] + [True] * 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--judge", "nonsense"], "--judge nonsense: bad judge spec 'nonsense'"),
        (["--judge", "clip:/no/such/folder"], "CLIP judge folder '/no/such/folder' has no config.json"),
        (["--judge", "analyzer", "--against", "/no/such/run"], "--against /no/such/run: no such run folder"),
        (["--judge", "analyzer", "--samples", "99"], "--samples 99: at most 15"),
    ],
)
def test_cli_judge_errors_are_one_line(suite: Path, tmp_path: Path, capsys, args: list[str], message: str):
    make_fake_run(tmp_path / "run", suite)
    assert main(["bench", "judge", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_judge_missing_run(tmp_path: Path, capsys):
    assert main(["bench", "judge", str(tmp_path / "nope"), "--judge", "analyzer"]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["bench", "judge", str(tmp_path / "empty"), "--judge", "analyzer"]) == 2
    assert "not a run folder (no run.json)" in capsys.readouterr().err
