"""The on-disk format of a benchmark run folder and of judges' verdicts (`bench run` writes, judge/report read).

Layout of a run folder::

    RUN_DIR/
      run.json                      {"format": 1, "suite": ABS_PATH, "suite_name": ..., "suite_hash": ...,
                                     "settings": {...}, "model": {...}}   refuses a rerun with other settings
      shards/records-<rank>-of-<world>.jsonl   each process appends one RunRecord per finished case
      records.jsonl                 all shards merged, in suite order (written when a run completes)
      outputs/<case folder>.png     each output image (case_folder_name(id))
      judgements/<judge name>.jsonl one Verdict per case per judge

A :class:`RunRecord` keeps everything needed to reproduce and inspect the case's output: its inputs (the suite's
image paths), the instruction, the planned prompt, the settings actually used (seed included), the model's identity
and the timings. A :class:`Verdict` is a judge's answer: ``success`` True/False, or ``None`` when the case could not
be judged (``judged`` False, ``reason`` says why: a malformed, refused or timed-out reply is never a success).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dreamomni2.runlog import read_jsonl  # the torn-tail tolerant reader; re-exported for the bench modules

__all__ = [
    "MERGED_FILE",
    "RUN_FILE",
    "RunRecord",
    "Verdict",
    "judgement_path",
    "output_path",
    "read_jsonl",
    "read_records",
    "read_run_meta",
    "read_verdicts",
    "shard_path",
]

RUN_FILE = "run.json"
MERGED_FILE = "records.jsonl"
SHARDS_DIR = "shards"
OUTPUTS_DIR = "outputs"
JUDGEMENTS_DIR = "judgements"


class _Record:
    """``to_dict`` / ``from_dict`` of the run folder's JSON rows (a dataclass's fields, unknown keys refused)."""

    _what = "row"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Build from :meth:`to_dict`'s output (unknown keys refused, naming them)."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))  # type: ignore[attr-defined]
        if unknown:
            raise ValueError(f"{cls._what}: unknown field(s) {', '.join(unknown)}")
        return cls(**d)


@dataclass
class RunRecord(_Record):
    """One finished case of a run.

    Attributes:
        id: the suite case's id.
        status: ``ok``, or ``error`` (then ``error`` says why and ``output`` is None).
        output: the output image's path relative to the run folder.
        task, category, subcategory, instruction, images: copied from the case (images relative to the suite).
        prompt: the prompt the model was given (the planned one when a planner ran).
        planned: the planner's record (``PlannedPrompt`` as a dict) or None.
        settings: the settings actually used (steps, guidance, size, seed, id policy ...).
        model: the model's identity (path, LoRAs, sha256 of the weights where known).
        timings: seconds (``plan``, ``draw``, ``total``).
        error: the error message when ``status`` is ``error``.
    """

    id: str
    status: str
    output: str | None
    task: str
    category: str
    subcategory: str
    instruction: str
    images: list[str]
    prompt: str | None = None
    planned: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    _what = "run record"  # not a field (no annotation): the name errors use


@dataclass
class Verdict(_Record):
    """A judge's answer for one case.

    Attributes:
        id: the case id.
        judge: the judge's name (e.g. ``analyzer``, ``vlm:openai:http://127.0.0.1:8000/v1#qwen``, ``clip``).
        judged: False when no verdict could be had (then ``success`` and ``score`` are None).
        success: the pass/fail answer, for judges that give one.
        score: a number, for scoring judges (e.g. CLIP similarities' headline value).
        scores: named numbers (e.g. ``{"clip_i": 0.81, "clip_t": 0.27}``).
        reason: why (the judge's explanation, or why it could not judge).
        raw: the judge's raw reply (bounded), for inspection.
    """

    id: str
    judge: str
    judged: bool
    success: bool | None = None
    score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    raw: str | None = None

    _what = "verdict"  # not a field (no annotation): the name errors use


def shard_path(run_dir: str | Path, rank: int, world: int) -> Path:
    """``RUN_DIR/shards/records-<rank>-of-<world>.jsonl``."""
    return Path(run_dir) / SHARDS_DIR / f"records-{rank}-of-{world}.jsonl"


def output_path(run_dir: str | Path, folder_name: str) -> Path:
    """``RUN_DIR/outputs/<folder_name>.png`` (``folder_name`` from :func:`dreamomni2.bench.suite.case_folder_name`)."""
    return Path(run_dir) / OUTPUTS_DIR / f"{folder_name}.png"


def judgement_path(run_dir: str | Path, judge_name: str) -> Path:
    """``RUN_DIR/judgements/<safe judge name>.jsonl``."""
    from dreamomni2.bench.suite import case_folder_name

    return Path(run_dir) / JUDGEMENTS_DIR / f"{case_folder_name(judge_name)}.jsonl"


def read_run_meta(run_dir: str | Path) -> dict[str, Any]:
    """Read ``RUN_DIR/run.json``.

    Raises:
        FileNotFoundError: no such folder, or no ``run.json`` in it.
        ValueError: not JSON, or not an object with a ``"suite"`` path.
    """
    meta_path = Path(run_dir) / RUN_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no {RUN_FILE}); make one with `bench run`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta_path}: not JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("suite"), str):
        raise ValueError(f'{meta_path}: expected a JSON object with a "suite" path')
    return meta


def read_records(run_dir: str | Path) -> list[RunRecord]:
    """A run's records: ``records.jsonl`` when merged, else every shard's (later lines win per id)."""
    run_dir = Path(run_dir)
    merged = run_dir / MERGED_FILE
    files: Iterable[Path] = [merged] if merged.is_file() else sorted((run_dir / SHARDS_DIR).glob("records-*.jsonl"))
    by_id: dict[str, RunRecord] = {}
    for f in files:
        for row in read_jsonl(f):
            rec = RunRecord.from_dict(row)
            by_id[rec.id] = rec
    return list(by_id.values())


def read_verdicts(run_dir: str | Path, judge_name: str) -> dict[str, Verdict]:
    """A judge's verdicts on a run, by case id (empty when that judge has not run)."""
    path = judgement_path(run_dir, judge_name)
    if not path.is_file():
        return {}
    return {v.id: v for v in (Verdict.from_dict(row) for row in read_jsonl(path))}
