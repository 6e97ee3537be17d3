"""Judging run folders: one judge over a run (:func:`judge_run`), or two or more runs compared (:func:`compare_runs`).

Verdicts go to ``RUN_DIR/judgements/<judge name>.jsonl`` (:func:`dreamomni2.bench.records.judgement_path`), rewritten
atomically as cases finish (at most every :data:`SAVE_EVERY_S` seconds, and at the end, also after an interrupt).
A rerun skips the cases already judged and asks again about the unjudged ones (a timed-out reply may succeed later).

A case the run failed on (``status`` ``error``, no output) is a **failure** for a pass/fail judge (the model gave no
answer: ``judged`` True, ``success`` False, the run's error as the reason) and unjudged for a scoring judge. In a
comparison, the run with an output wins a case the other failed on, without asking the judge.

Pairwise verdicts of run A against run B are stored in run A's folder as ``<pairwise judge name> vs <B's folder
name>.jsonl``, from A's view (see :mod:`dreamomni2.bench.judges.pairwise`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamomni2.bench.judges.base import Judge, unjudged
from dreamomni2.bench.records import RunRecord, Verdict, judgement_path, read_records, read_run_meta, read_verdicts
from dreamomni2.bench.suite import SuiteCase, read_suite

__all__ = [
    "SAVE_EVERY_S",
    "RunFolder",
    "compare_runs",
    "judge_record",
    "judge_run",
    "load_images",
    "load_run",
    "run_label",
]

logger = logging.getLogger(__name__)

#: Longest time between two saves of a judgement file while judging.
SAVE_EVERY_S = 2.0


@dataclass
class RunFolder:
    """A run folder read back: its ``run.json``, its suite's cases by id, and its records in suite order."""

    path: Path
    meta: dict[str, Any]
    suite_dir: Path
    cases: dict[str, SuiteCase]
    records: list[RunRecord]


def load_run(run_dir: str | Path) -> RunFolder:
    """Read a run folder and its suite.

    Raises:
        FileNotFoundError: the folder, its ``run.json`` or its suite folder is missing (named).
        ValueError: a malformed ``run.json`` or records, or a run with no records.
    """
    path = Path(run_dir)
    meta = read_run_meta(path)
    suite_dir = Path(meta["suite"])
    if not suite_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: its suite folder {suite_dir} is gone")
    cases = {c.id: c for c in read_suite(suite_dir, check_files=False)}
    order = {cid: i for i, cid in enumerate(cases)}
    records = [r for r in read_records(path) if r.id in cases]
    if not records:
        raise ValueError(f"{run_dir}: the run has no records yet")
    records.sort(key=lambda r: order[r.id])
    return RunFolder(path, meta, suite_dir, cases, records)


def run_label(run: RunFolder) -> str:
    """A run's name in tables and pairwise file names: its folder's name."""
    return run.path.resolve().name


def load_images(run: RunFolder, record: RunRecord) -> tuple[Any, list[Any]]:
    """The record's output and the case's inputs (``load_image``; OSError/ValueError on a bad file)."""
    from dreamomni2.images import load_image

    case = run.cases[record.id]
    return _load_output(run, record), [load_image(p) for p in case.image_paths(run.suite_dir)]


def _load_output(run: RunFolder, record: RunRecord) -> Any:
    """The record's output image (``load_image``; ValueError when the record names none)."""
    from dreamomni2.images import load_image

    if not record.output:
        raise ValueError("the record names no output image")
    return load_image(run.path / record.output)


def _unreadable(case_id: str, judge_name: str, error: Exception) -> Verdict:
    return unjudged(case_id, judge_name, f"cannot read the images: {' '.join(str(error).split())[:300]}")


def judge_record(judge: Judge, run: RunFolder, record: RunRecord) -> Verdict:
    """One judge's verdict on one record (see the module docstring for failed cases)."""
    if record.status != "ok":
        why = f"no output: the run failed on this case ({record.error or record.status})"
        if judge.kind == "pass":
            return Verdict(id=record.id, judge=judge.name, judged=True, success=False, score=0.0, reason=why)
        return unjudged(record.id, judge.name, why)
    try:
        output, inputs = load_images(run, record)
    except (OSError, ValueError) as e:
        return _unreadable(record.id, judge.name, e)
    return judge.judge(run.cases[record.id], output, inputs)


class _Sink:
    """A judgement file kept up to date atomically: existing verdicts plus new ones, in the given id order."""

    def __init__(self, path: Path, existing: dict[str, Verdict], order: Sequence[str]) -> None:
        self.path, self.verdicts, self.order, self.saved = path, dict(existing), list(order), time.monotonic()

    def add(self, verdict: Verdict) -> None:
        self.verdicts[verdict.id] = verdict
        if time.monotonic() - self.saved >= SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        from dreamomni2.io import atomic_write_text

        rank = {cid: i for i, cid in enumerate(self.order)}
        rows = sorted(self.verdicts.values(), key=lambda v: rank.get(v.id, len(rank)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "".join(json.dumps(v.to_dict(), ensure_ascii=False) + "\n" for v in rows))
        self.saved = time.monotonic()


def _judge_into(path: Path, existing: dict[str, Verdict], ids: Sequence[str], work: Callable[[str], Verdict],
                progress: bool, desc: str) -> dict[str, Verdict]:  # fmt: skip
    """Judge the ids without a judged verdict into ``path``; returns every verdict by id."""
    from tqdm.auto import tqdm

    todo = [cid for cid in ids if not (cid in existing and existing[cid].judged)]
    if len(todo) < len(ids):
        logger.info("%s: %d of %d case(s) already judged; judging %d", path, len(ids) - len(todo), len(ids), len(todo))
    sink = _Sink(path, existing, ids)
    try:
        for cid in tqdm(todo, desc=desc, disable=not progress, dynamic_ncols=True):
            sink.add(work(cid))
    finally:
        sink.save()
    return sink.verdicts


def judge_run(judge: Judge, run_dir: str | Path, progress: bool = True) -> dict[str, Verdict]:
    """Judge every record of a run (resuming: judged cases are skipped) into its judgement file.

    Args:
        judge: a prepared judge.
        run_dir: the run folder.
        progress: show a progress bar.

    Returns:
        The verdicts by case id, in suite order.
    """
    run = load_run(run_dir)
    by_id = {r.id: r for r in run.records}
    path = judgement_path(run.path, judge.name)
    existing = read_verdicts(run.path, judge.name)
    work = lambda cid: judge_record(judge, run, by_id[cid])  # noqa: E731
    return _judge_into(path, existing, list(by_id), work, progress, f"judge {run_label(run)}")


def _compare_record(pjudge: Any, a: RunFolder, b: RunFolder, ra: RunRecord, rb: RunRecord) -> Verdict:
    cid = ra.id
    if ra.status != "ok" or rb.status != "ok":
        if ra.status != "ok" and rb.status != "ok":
            return unjudged(cid, pjudge.name, "both runs failed on this case")
        won = ra.status == "ok"
        return Verdict(id=cid, judge=pjudge.name, judged=True, success=won, score=float(won),
                       reason=f"{'second' if won else 'first'} run has no output")  # fmt: skip
    try:
        out_a, inputs = load_images(a, ra)
        out_b = _load_output(b, rb)  # the inputs are the suite's, already read for a
    except (OSError, ValueError) as e:
        return _unreadable(cid, pjudge.name, e)
    return pjudge.compare(a.cases[cid], out_a, out_b, inputs)


def _check_same_suite(runs: Sequence[RunFolder]) -> None:
    first = runs[0]
    for other in runs[1:]:
        if other.meta.get("suite_hash") != first.meta.get("suite_hash"):
            raise ValueError(f"{other.path}: a run of another suite than {first.path} (suite_hash differs); "
                             "pairwise judging needs runs of the same suite")  # fmt: skip
    labels = [run_label(r) for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"run folders must have distinct names to be compared, got {', '.join(labels)}")


def compare_runs(pjudge: Any, run_dirs: Sequence[str | Path], progress: bool = True) -> dict[str, Any]:
    """Compare every pair of runs of one suite with a pairwise judge (resuming per pair file).

    Args:
        pjudge: a prepared :class:`~dreamomni2.bench.judges.pairwise.PairwiseJudge`.
        run_dirs: two or more run folders of the same suite (distinct folder names).
        progress: show progress bars.

    Returns:
        ``{"pairs": [{"a", "b", **win_rate(a's verdicts)}], "bradley_terry": {run: strength}, "elo": {run: elo},
        "outcomes": n}``.

    Raises:
        ValueError: fewer than two runs, runs of different suites, or duplicate folder names.
    """
    from dreamomni2.bench.judges.pairwise import bradley_terry, elo_scores, win_rate

    if len(run_dirs) < 2:
        raise ValueError("pairwise judging needs at least two runs")
    runs = [load_run(d) for d in run_dirs]
    _check_same_suite(runs)
    pairs, outcomes = [], []
    by_id = [{r.id: r for r in run.records} for run in runs]
    for i, a in enumerate(runs):
        for j, b in enumerate(runs[i + 1 :], i + 1):
            ra, rb = by_id[i], by_id[j]
            ids = [cid for cid in ra if cid in rb]
            name = f"{pjudge.name} vs {run_label(b)}"
            path = judgement_path(a.path, name)
            existing = {k: v for k, v in read_verdicts(a.path, name).items() if k in rb and k in ra}
            work = lambda cid, a=a, b=b, ra=ra, rb=rb: _compare_record(pjudge, a, b, ra[cid], rb[cid])  # noqa: E731
            verdicts = _judge_into(path, existing, ids, work, progress, f"{run_label(a)} vs {run_label(b)}")
            pairs.append({"a": run_label(a), "b": run_label(b), **win_rate(verdicts.values())})
            outcomes += [
                (run_label(a), run_label(b), v.score) for v in verdicts.values() if v.judged and v.score is not None
            ]
    strengths = bradley_terry(outcomes) if outcomes else {}
    return {"pairs": pairs, "bradley_terry": strengths, "elo": elo_scores(strengths), "outcomes": len(outcomes)}
