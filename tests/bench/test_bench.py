import argparse
import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from dreamomni2.bench.report import (
    format_attribute_table,
    format_kind_table,
    format_rate,
    format_table,
    summary_path,
    write_results,
)
from dreamomni2.bench.runner import run_mini_bench
from dreamomni2.bench.suites import (
    GROUPS,
    HELD_OUT_SEED,
    TRAIN_SEED_LIMIT,
    assert_disjoint,
    case_key,
    load_cases_jsonl,
    mini_suite,
    overlapping,
)
from dreamomni2.cli.bench import add_bench_arguments, bench_main, parse_train_spec
from dreamomni2.mini.analyzer import summarize
from dreamomni2.mini.world import SCENE_ATTRS, make_cases, render
from dreamomni2.planner.base import PlannedPrompt

# ------------------------------------------------------------------------------------------------ suites


@pytest.fixture(scope="module")
def suite():
    return mini_suite()


@pytest.fixture(scope="module")
def train_cases():
    return make_cases(0, 20000)


def test_suite_deterministic_and_balanced(suite):
    assert HELD_OUT_SEED >= TRAIN_SEED_LIMIT
    assert len(suite) == 400
    assert [c.to_dict() for c in suite] == [c.to_dict() for c in mini_suite()]
    counts = Counter((c.task, c.category) for c in suite)
    assert set(counts) == set(GROUPS)
    assert all(v == 100 for v in counts.values())
    assert all(c.instruction == c.prompt for c in suite)


def test_suite_disjoint_from_training_seed0(suite, train_cases):
    assert_disjoint(train_cases, suite)
    # Without the exclusion the world is small enough for a few one-image `place` cases to repeat.
    raw = mini_suite(exclude=frozenset())
    assert [c.to_dict() for c in raw] == [c.to_dict() for c in make_cases(HELD_OUT_SEED, 400, paraphrase=False)]
    hits = overlapping(train_cases, raw)
    assert 0 < len(hits) < 40
    assert all(raw[i].kind == "place" for i in hits)
    with pytest.raises(AssertionError, match=f"{len(hits)} of 400"):
        assert_disjoint(train_cases, raw)


def test_suite_exclude_keeps_balance_and_paraphrase_keeps_cases():
    base = mini_suite(n=10, exclude=frozenset())
    assert [c.to_dict() for c in base] == [c.to_dict() for c in make_cases(HELD_OUT_SEED, 10, paraphrase=False)]
    filtered = mini_suite(n=10, exclude={case_key(base[0]), case_key(base[5])})
    assert len(filtered) == 10
    assert Counter((c.task, c.category) for c in filtered) == Counter((c.task, c.category) for c in base)
    assert case_key(base[0]) not in {case_key(c) for c in filtered}
    para = mini_suite(n=10, exclude=frozenset(), paraphrase=True)
    assert [case_key(c) for c in para] == [case_key(c) for c in base]
    assert [c.prompt for c in para] == [c.prompt for c in base]
    assert any(p.instruction != b.instruction for p, b in zip(para, base, strict=True))
    again = mini_suite(n=10, exclude=frozenset(), paraphrase=True)
    assert [c.instruction for c in para] == [c.instruction for c in again]
    with pytest.raises(ValueError, match="exclude covers too much"):
        mini_suite(n=4, exclude={case_key(c) for c in base}, max_draws=8)


def test_load_cases_jsonl(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    rows = [
        {"task": "edit", "images": ["a.png", "a.png"], "instruction": "Do it.", "category": "abstract", "sizes": [1]},
        {"task": "generate", "images": ["a.png"], "instruction": "Make it.", "category": "concrete"},
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    cases = load_cases_jsonl(tmp_path)
    assert [c.task for c in cases] == ["edit", "generate"]
    assert cases[0].images == [tmp_path / "a.png"] * 2
    assert cases[0].extra == {"sizes": [1]} and cases[1].line == 3
    path.write_text(json.dumps({**rows[1], "task": "paint"}) + "\n")
    with pytest.raises(ValueError, match=r"cases.jsonl:1: task 'paint'"):
        load_cases_jsonl(path)
    path.write_text(json.dumps({**rows[1], "images": ["b.png"]}) + "\n")
    with pytest.raises(FileNotFoundError, match="b.png"):
        load_cases_jsonl(path)
    assert load_cases_jsonl(path, check_files=False)[0].images == [tmp_path / "b.png"]


@pytest.mark.release_examples
def test_load_release_cases(release_examples):
    cases = load_cases_jsonl(release_examples / "cases.jsonl")
    assert cases and {c.task for c in cases} <= {"edit", "generate"}
    assert all(p.is_file() for c in cases for p in c.images)


# ------------------------------------------------------------------------------------------------ runner


def _key(images, prompt):
    return (prompt, tuple(np.asarray(im).tobytes() for im in images))


class PerfectPipe:
    """Returns each case's target, looked up by (prompt, input pixels)."""

    def __init__(self, cases, size=32):
        self.answers = {_key([render(s, size) for s in c.images], c.instruction): c.target for c in cases}
        self.size = size
        self.calls = []

    def __call__(self, images, prompt, task, generator, width, height, **kwargs):
        self.calls.append((task, width, height, kwargs))
        return SimpleNamespace(images=[render(self.answers[_key(images, prompt)], self.size)])


class CopyFirstPipe:
    """Returns the first input image unchanged."""

    def __call__(self, images, prompt, **kwargs):
        return SimpleNamespace(images=[images[0].copy()])


def test_perfect_pipe_scores_one_and_copy_scores_zero_on_edits():
    cases = mini_suite(n=24, exclude=frozenset())
    pipe = PerfectPipe(cases)
    result = run_mini_bench(pipe, cases, steps=3, batch_size=8, progress=False)
    assert result.summary["success"] == 1.0
    assert all(g["success"] == 1.0 and g["n"] == 6 for g in result.summary["groups"].values())
    assert len(pipe.calls) == 24  # stubs run one case per call
    task, w, h, kw = pipe.calls[0]
    assert (w, h, kw["max_area"], kw["_auto_resize"], kw["num_inference_steps"]) == (32, 32, 1024, False, 3)

    copy = run_mini_bench(CopyFirstPipe(), cases, progress=False)
    assert copy.summary["groups"]["edit/concrete"]["success"] == 0.0
    assert copy.summary["groups"]["edit/abstract"]["success"] == 0.0


def test_planner_prompt_is_used():
    class Upper:
        backend = "upper"

        def plan(self, images, instruction, task):
            assert len(images) >= 1 and task in ("edit", "generate")
            return PlannedPrompt(instruction.upper(), "", "upper", False)

    cases = mini_suite(n=4, exclude=frozenset())
    result = run_mini_bench(CopyFirstPipe(), cases, planner=Upper(), progress=False)
    assert [r.prompt for r in result.records] == [c.instruction.upper() for c in cases]
    assert [r.instruction for r in result.records] == [c.instruction for c in cases]
    assert result.config["planner"] == "upper"


@pytest.fixture(scope="module")
def tiny_runs(tiny_pipe):
    cases = make_cases(5, 8, paraphrase=False)  # all four groups, 1-4 images
    kw = dict(steps=2, seed=7, progress=False, keep_images=True)
    return (
        cases,
        run_mini_bench(tiny_pipe, cases, batch_size=4, **kw),
        run_mini_bench(tiny_pipe, cases, batch_size=1, **kw),
    )


def test_tiny_pipeline_records(tiny_runs):
    cases, result, _ = tiny_runs
    assert len(result.records) == len(cases) == len(result.images)
    for i, (rec, case) in enumerate(zip(result.records, cases, strict=True)):
        assert (rec.id, rec.task, rec.category, rec.kind) == (i, case.task, case.category, case.kind)
        assert rec.n_images == len(case.images) and rec.seed == 7 + i
        assert rec.prompt == case.instruction
        assert set(rec.correct) == set(SCENE_ATTRS) == set(rec.predicted)
        assert rec.success == all(rec.correct.values())
        assert rec.target == case.target.to_dict()
        assert result.images[i].size == (32, 32)
    s = result.summary
    assert s["n"] == len(cases)
    assert sum(g["n"] for g in s["groups"].values()) == len(cases)
    n_edit_concrete = sum(c.task == "edit" and c.category == "concrete" for c in cases)
    assert s["groups"]["edit/concrete"]["n"] == n_edit_concrete
    assert s == summarize(r.score_dict() for r in result.records)


def test_batched_equals_single(tiny_runs):
    _, batched, single = tiny_runs
    for a, b in zip(batched.images, single.images, strict=True):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 2
    assert [r.predicted for r in batched.records] == [r.predicted for r in single.records]
    assert batched.summary == single.summary


# ------------------------------------------------------------------------------------------------ report


SUMMARY = {
    "n": 7,
    "success": 3 / 7,
    "groups": {
        "edit/abstract": {"n": 3, "success": 2 / 3},
        "edit/concrete": {"n": 2, "success": 0.5},
        "generate/concrete": {"n": 2, "success": 0.0},
    },
    "kinds": {"color": {"n": 3, "success": 2 / 3}, "replace": {"n": 2, "success": 0.5}},
    "attributes": {"shape": 1.0, "color": 6 / 7, "pattern": 0.5, "size": 0.25, "background": 0.0},
}


def test_format_table_exact():
    assert format_rate(0.6125) == ".613" and format_rate(1.0) == "1.000" and format_rate(0.0) == ".000"
    assert format_table(SUMMARY, name="DreamOmni2") == (
        "| Method | Editing concrete | Editing abstract | Generation concrete | Generation abstract |\n"
        "| :-- | --: | --: | --: | --: |\n"
        "| DreamOmni2 | .500 (n=2) | .667 (n=3) | .000 (n=2) | - |"
    )
    two = format_table({"a": SUMMARY, "b": summarize([])})
    assert two.splitlines()[2].startswith("| a | .500 (n=2)")
    assert two.splitlines()[3] == "| b | - | - | - | - |"
    assert format_attribute_table(SUMMARY, name="m") == (
        "| Method | Shape | Color | Pattern | Size | Background | All | n |\n"
        "| :-- | --: | --: | --: | --: | --: | --: | --: |\n"
        "| m | 1.000 | .857 | .500 | .250 | .000 | .429 | 7 |"
    )
    assert format_kind_table(SUMMARY, name="m").splitlines()[2] == "| m | .667 (n=3) | .500 (n=2) |"


def test_write_results(tiny_runs, tmp_path):
    _, result, _ = tiny_runs
    path, spath = write_results(result, tmp_path / "res.jsonl")
    assert spath == summary_path(path) == tmp_path / "res.summary.json"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(len(result.records)))
    assert {"id", "task", "category", "kind", "success", "predicted", "prompt"} <= set(rows[0])
    saved = json.loads(spath.read_text())
    assert saved["summary"] == json.loads(json.dumps(result.summary))
    assert saved["config"]["steps"] == 2


# ------------------------------------------------------------------------------------------------ cli


def _args(argv):
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return parser.parse_args(argv)


def test_bench_cli(tmp_path, capsys, monkeypatch):
    import dreamomni2.mini
    from dreamomni2.cli import UsageError
    from dreamomni2.testing import save_tiny_pipeline

    assert parse_train_spec("3:100") == (3, 100)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_train_spec("3")
    with pytest.raises(UsageError, match="--size"):
        bench_main(_args(["--size", "40"]))
    with pytest.raises(UsageError, match="--planner"):
        bench_main(_args(["--planner", "bogus"]))
    monkeypatch.setattr(dreamomni2.mini, "MODEL_DIR", tmp_path / "no-model")  # no --model and no mini model
    with pytest.raises(UsageError, match="--model"):
        bench_main(_args(["--n", "4", "--no-exclude"]))
    monkeypatch.undo()

    model = save_tiny_pipeline(tmp_path / "tiny")
    out = tmp_path / "res.jsonl"
    argv = ["--model", model, "--n", "4", "--steps", "1", "--no-exclude", "--quiet", "--device", "cpu"]
    assert bench_main(_args([*argv, "--out", str(out), "--id-policy", "dreamomni2", "--id-policy", "kontext"])) == 0
    text = capsys.readouterr().out
    assert "| Method | Editing concrete | Editing abstract | Generation concrete | Generation abstract |" in text
    assert "| dreamomni2 | .000 (n=1) |" in text and "| kontext |" in text
    for policy in ("dreamomni2", "kontext"):
        assert len((tmp_path / f"res.{policy}.jsonl").read_text().splitlines()) == 4
        assert (tmp_path / f"res.{policy}.summary.json").is_file()


def test_mini_planner_through_runner():
    """The mini planner, named by spec, maps paraphrases back to the canonical prompts the suite expects."""
    from dreamomni2.mini.world import canonical_prompt

    cases = mini_suite(n=8, exclude=frozenset(), paraphrase=True)
    result = run_mini_bench(CopyFirstPipe(), cases, planner="mini", progress=False)
    assert result.config["planner"] == "mini"
    assert [r.prompt for r in result.records] == [canonical_prompt(c) for c in cases]
    assert any(r.prompt != r.instruction for r in result.records)  # the paraphrases were rewritten


def test_success_by_images_and_its_table():
    from types import SimpleNamespace

    from dreamomni2.bench.report import format_images_table
    from dreamomni2.mini.ablation import success_by_images

    recs = [SimpleNamespace(n_images=n, success=ok) for n, ok in [(1, True), (1, True), (2, False), (2, True), (4, 0)]]
    by = success_by_images(recs)
    assert by == {"1": {"n": 2, "success": 1.0}, "2": {"n": 2, "success": 0.5}, "4": {"n": 1, "success": 0.0}}
    table = format_images_table(
        {"kontext": {"by_images": by}, "index": {"by_images": {"1": {"n": 3, "success": 1 / 3}}}}
    )
    assert table.splitlines() == [
        "| Method | 1 image | 2 images | 4 images |",
        "| :-- | --: | --: | --: |",
        "| kontext | 1.000 (n=2) | .500 (n=2) | .000 (n=1) |",
        "| index | .333 (n=3) | - | - |",
    ]
