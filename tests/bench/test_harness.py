"""bench run: records complete and valid, resume after a crash, shards equal one process, refusals, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dreamomni2.bench.harness import RunSettingsError, dist_rank_world, merge_run, run_suite
from dreamomni2.bench.records import MERGED_FILE, RUN_FILE, read_jsonl, read_records, shard_path
from dreamomni2.bench.suite import read_suite
from dreamomni2.cli import main
from dreamomni2.images import load_image
from tests.bench.fake_bench import make_mini_suite

N = 6
STEPS = 1


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    return make_mini_suite(tmp_path_factory.mktemp("suite") / "mini", n=N)


@pytest.fixture(scope="module")
def session():
    from dreamomni2.session import Session

    return Session(planner="none", progress=False).load()  # the shipped mini model


@pytest.fixture(scope="module")
def full_run(suite, session, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "full"
    outcome = run_suite(session, suite, run, steps=STEPS, seed=10, progress=False)
    assert outcome.merged and len(outcome.done) == N and outcome.errors == [] and outcome.skipped == []
    return run


def _pixels(run: Path) -> dict[str, np.ndarray]:
    return {r.id: np.asarray(load_image(run / r.output)) for r in read_records(run)}


def _essentials(run: Path) -> list[tuple]:
    return [(r.id, r.status, r.prompt, r.settings["seed"], r.output) for r in read_records(run)]


def test_records_are_complete_and_valid(full_run, suite):
    cases = read_suite(suite)
    records = read_records(full_run)
    assert [r.id for r in records] == [c.id for c in cases]  # merged in suite order
    meta = json.loads((full_run / RUN_FILE).read_text())
    assert meta["settings"]["steps"] == STEPS and meta["settings"]["seed"] == 10 and meta["n_cases"] == N
    assert meta["model"]["path"].endswith("mini/model") and meta["model"]["weights"]["model"]
    for i, (rec, case) in enumerate(zip(records, cases, strict=True)):
        assert rec.status == "ok" and rec.error is None
        assert (rec.task, rec.category, rec.subcategory, rec.images) == (
            case.task, case.category, case.subcategory, case.images)  # fmt: skip
        assert rec.settings["seed"] == 10 + i and rec.settings["steps"] == STEPS
        assert rec.prompt == case.instruction and rec.planned["backend"] == "none"
        assert rec.model == meta["model"] and set(rec.timings) >= {"plan", "draw", "total"}
        assert load_image(full_run / rec.output).size == (32, 32)


def test_resume_after_a_crash_redoes_only_the_missing_cases(full_run, suite, session, tmp_path):
    run = tmp_path / "run"

    class Crash(Exception):
        pass

    def crash_after_two(rec):
        if len(read_jsonl(shard_path(run, 0, 1))) == 2:
            raise Crash

    with pytest.raises(Crash):
        run_suite(session, suite, run, steps=STEPS, seed=10, progress=False, on_record=crash_after_two)
    first = [r["id"] for r in read_jsonl(shard_path(run, 0, 1))]
    assert len(first) == 2 and not (run / MERGED_FILE).exists()
    with shard_path(run, 0, 1).open("a") as f:
        f.write('{"id": "mini/0002", "sta')  # a torn last line, as a kill mid-append leaves
    seen = []
    outcome = run_suite(
        session, suite, run, steps=STEPS, seed=10, progress=False, on_record=lambda r: seen.append(r.id)
    )
    assert outcome.skipped == first and outcome.done == seen and seen == [f"mini/{i:04d}" for i in range(2, N)]
    assert outcome.merged and _essentials(run) == _essentials(full_run)
    want, got = _pixels(full_run), _pixels(run)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    again = run_suite(session, suite, run, steps=STEPS, seed=10, progress=False)  # finished: nothing drawn
    assert again.done == [] and len(again.skipped) == N and again.merged


def test_two_shards_give_the_records_of_one_process(full_run, suite, session, tmp_path):
    run = tmp_path / "sharded"
    one = run_suite(session, suite, run, steps=STEPS, seed=10, rank=1, world=2, progress=False)
    assert one.done == [f"mini/{i:04d}" for i in range(1, N, 2)] and not one.merged
    zero = run_suite(session, suite, run, steps=STEPS, seed=10, rank=0, world=2, progress=False)
    assert zero.done == [f"mini/{i:04d}" for i in range(0, N, 2)] and zero.merged
    assert _essentials(run) == _essentials(full_run)
    want, got = _pixels(full_run), _pixels(run)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_other_settings_are_refused_naming_the_keys(full_run, suite, session):
    with pytest.raises(RunSettingsError, match=r"\(settings\.seed, settings\.steps differ\)"):
        run_suite(session, suite, full_run, steps=STEPS + 1, seed=11, progress=False)


def test_finished_folder_only_merges(full_run, suite, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(full_run, run)
    (run / MERGED_FILE).unlink()
    assert merge_run(run) is True
    assert (run / MERGED_FILE).read_text() == (full_run / MERGED_FILE).read_text()
    lines = shard_path(run, 0, 1).read_text().splitlines()
    shard_path(run, 0, 1).write_text("\n".join(lines[:-1]) + "\n")
    (run / MERGED_FILE).unlink()
    assert merge_run(run) is False and not (run / MERGED_FILE).exists()


def test_dist_rank_world_reads_the_launcher_env(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert dist_rank_world() == (1, 3)
    assert dist_rank_world(0, 1) == (0, 1)
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="rank 3 of world 3"):
        dist_rank_world()


def test_cli_run_merges_a_finished_run_and_refuses_bad_input(full_run, suite, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(full_run, run)
    (run / MERGED_FILE).unlink()
    base = ["bench", "run", str(suite), "--planner", "none", "--steps", str(STEPS), "--seed", "10", "--quiet"]
    assert main([*base, "-o", str(run)]) == 0
    assert "drew 0, 0 error(s), 6 already done" in capsys.readouterr().out and (run / MERGED_FILE).is_file()
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other.txt").write_text("x")
    for argv, needle in [
        (["bench", "run", str(tmp_path / "nope"), "-o", str(tmp_path / "r")], "no such folder"),
        (["bench", "run", str(tmp_path), "-o", str(tmp_path / "r")], "not a suite folder"),
        ([*base, "-o", str(tmp_path / "file")], "is a file"),
        ([*base, "-o", str(tmp_path / "full")], "not a run folder"),
        ([*base[:-2], "11", "--quiet", "-o", str(run)], "settings.seed differ"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err


def _cli(args: list[str], env: dict, launcher: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*launcher, "-m", "dreamomni2.cli", *args], env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip


@pytest.mark.slow
def test_torchrun_two_processes_give_the_records_of_one(suite, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    args = ["bench", "run", str(suite), "--planner", "none", "--steps", str(STEPS), "--seed", "3", "--quiet"]
    one = _cli([*args, "-o", str(tmp_path / "one")], env, [sys.executable])
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = _cli([*args, "-o", str(tmp_path / "two")], env, torchrun)
    assert two.returncode == 0, two.stderr[-2000:]
    assert shard_path(tmp_path / "two", 0, 2).is_file() and shard_path(tmp_path / "two", 1, 2).is_file()
    assert _essentials(tmp_path / "two") == _essentials(tmp_path / "one")
    want, got = _pixels(tmp_path / "one"), _pixels(tmp_path / "two")
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_a_failing_case_is_recorded_as_an_error_and_retried(full_run, suite, session, tmp_path, monkeypatch):
    run, real = tmp_path / "err", session.run_batch

    def flaky(requests):
        if any(r.seed == 12 for r in requests):
            raise ValueError("Request.images: too large (test)")
        return real(requests)

    monkeypatch.setattr(session, "run_batch", flaky)
    outcome = run_suite(session, suite, run, steps=STEPS, seed=10, batch_size=2, progress=False)
    assert outcome.errors == ["mini/0002"] and len(outcome.done) == N - 1 and outcome.merged
    rec = {r.id: r for r in read_records(run)}["mini/0002"]
    assert (rec.status, rec.output, rec.error) == ("error", None, "ValueError: Request.images: too large (test)")
    monkeypatch.setattr(session, "run_batch", real)
    again = run_suite(session, suite, run, steps=STEPS, seed=10, batch_size=2, progress=False)
    assert again.done == ["mini/0002"] and again.errors == [] and again.merged
    assert _essentials(run) == _essentials(full_run)


def test_fake_run_fixture_matches_the_real_run_format(full_run, suite, tmp_path):
    from tests.bench.fake_bench import make_fake_run

    records = make_fake_run(tmp_path / "fake", suite, wrong=["mini/0001"], errors=["mini/0003"])
    real, fake = (json.loads((d / RUN_FILE).read_text()) for d in (full_run, tmp_path / "fake"))
    assert sorted(fake) == sorted(real) and sorted(fake["settings"]) == sorted(real["settings"])
    assert (
        [r.id for r in read_records(tmp_path / "fake")]
        == [r.id for r in records]
        == [r.id for r in read_records(full_run)]
    )
    assert [r.status for r in records].count("error") == 1 and records[3].output is None
    first = load_image(suite / read_suite(suite)[1].images[0])
    assert np.array_equal(np.asarray(load_image(tmp_path / "fake" / records[1].output)), np.asarray(first))
