"""Calibrate a judge against the mini world's ground truth: how far to trust it before using it on real images.

The judge sees mini-world outputs whose truth the analyzer knows, and its answers are compared with that truth:

* by default a built-in set, no model run needed (:func:`builtin_items`): for each of ``n`` held-out mini-suite cases
  the **correct** output (the target scene rendered) and one **wrong** one — alternately a *distractor* (an input
  image that differs from the target: for an edit, the unchanged image to edit) and a *one-attribute change* of the
  target (one attribute set to another value, chosen by a seeded random source);
* or the outputs of a mini-suite run folder (:func:`run_items`), truth = the analyzer's verdict on each output.

For a pass/fail judge :func:`calibrate` reports **agreement** (judge = truth, over the judged items), the
**false-accept** rate (judge yes among the judged wrong outputs) and the **false-reject** rate (judge no among the
judged correct outputs), each with its n and 95% Wilson interval, and the unjudged counts (never folded into a rate).
For a scoring judge (CLIP, DINO) it reports each score's mean over correct and over wrong outputs and the AUC of the
headline score (the chance a correct output scores above a wrong one, ties half).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dreamomni2.bench.judges.base import Judge
from dreamomni2.bench.records import Verdict
from dreamomni2.bench.suite import SuiteCase

__all__ = ["CalibrationItem", "builtin_items", "calibrate", "format_calibration", "run_items"]

logger = logging.getLogger(__name__)

#: Seed of the built-in set's case draw (the held-out suite's) and of its wrong-output choices.
DEFAULT_SEED = 1_000_003


@dataclass
class CalibrationItem:
    """One output to judge with its truth.

    Attributes:
        case: the suite case (its ``truth`` holds the mini world's case).
        output: the output image; ``inputs``: the case's input images.
        truth: whether the output is correct (the analyzer's verdict).
        label: ``correct``, ``distractor``, ``one-attribute change`` or ``run output``.
    """

    case: SuiteCase
    output: Image.Image
    inputs: list[Image.Image]
    truth: bool
    label: str = "run output"


def suite_case_of(mini: Any, case_id: str) -> SuiteCase:
    """A :class:`SuiteCase` for a mini-world case (virtual image paths; the truth is the case's dict)."""
    images = [f"images/{case_id}/{k}.png" for k in range(1, len(mini.images) + 1)]
    return SuiteCase(case_id, mini.task, mini.category, mini.kind, images, mini.instruction, None, mini.to_dict())


def _one_attribute_change(target: Any, rng: random.Random) -> Any:
    from dreamomni2.mini.scene import SCENE_ATTRS, VOCAB

    attr = rng.choice(SCENE_ATTRS)
    value = rng.choice([v for v in VOCAB[attr] if v != target.attr(attr)])
    return target.replace(**{attr: value})


def _wrong_scene(mini: Any, index: int, rng: random.Random) -> tuple[Any, str]:
    """A wrong output scene: even items a distractor input (when one differs from the target), else a change."""
    if index % 2 == 0:
        distractors = [s for s in mini.images if s != mini.target]
        if distractors:
            return distractors[0], "distractor"
    return _one_attribute_change(mini.target, rng), "one-attribute change"


def builtin_items(n: int = 40, seed: int = DEFAULT_SEED, size: int = 32) -> list[CalibrationItem]:
    """The built-in calibration set: ``n`` mini-suite cases, each with its correct and one wrong output.

    Args:
        n: number of cases (``2 n`` items), balanced over the four groups.
        seed: the case draw's seed (default the held-out suite's) and the wrong outputs' random source.
        size: image side in pixels.

    Returns:
        The items, correct then wrong for each case; ``truth`` is the analyzer's verdict (logged when it differs
        from the construction, which the rendered mini world should never cause).
    """
    from dreamomni2.bench.suites import mini_suite
    from dreamomni2.mini.analyzer import score
    from dreamomni2.mini.scene import render

    rng = random.Random(f"calibrate:{seed}")
    items = []
    for i, mini in enumerate(mini_suite(n=n, seed=seed, exclude=frozenset())):
        case = suite_case_of(mini, f"calibrate/{i}")
        inputs = [render(s, size) for s in mini.images]
        wrong, label = _wrong_scene(mini, i, rng)
        for scene, lab, expected in ((mini.target, "correct", True), (wrong, label, False)):
            image = render(scene, size)
            truth = bool(score(mini, image)["success"])
            if truth != expected:
                logger.warning("calibration item %s (%s): the analyzer says %s", case.id, lab, truth)
            items.append(CalibrationItem(case, image, inputs, truth, lab))
    return items


def run_items(run_dir: str | Path) -> list[CalibrationItem]:
    """The outputs of a mini-suite run folder, each with the analyzer's verdict as its truth.

    Raises:
        ValueError: a run whose suite has cases without mini-world truth, or with no output at all.
    """
    from dreamomni2.bench.judges.analyzer import AnalyzerJudge
    from dreamomni2.bench.judges.runs import load_images, load_run

    run = load_run(run_dir)
    analyzer = AnalyzerJudge()
    items = []
    for record in run.records:
        case = run.cases[record.id]
        if not case.truth:
            raise ValueError(f"{run_dir}: case {case.id!r} has no mini-world truth; calibrate on a mini-suite run")
        if record.status != "ok":
            continue
        output, inputs = load_images(run, record)
        truth = analyzer.judge(case, output, inputs)
        items.append(CalibrationItem(case, output, inputs, bool(truth.success)))
    if not items:
        raise ValueError(f"{run_dir}: no outputs to calibrate on")
    return items


@dataclass
class _Counts:
    tp: int = 0  # truth yes, judge yes
    fn: int = 0  # truth yes, judge no
    fp: int = 0  # truth no, judge yes
    tn: int = 0  # truth no, judge no
    unjudged_correct: int = 0
    unjudged_wrong: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, truth: bool, verdict: Verdict) -> None:
        if not verdict.judged or verdict.success is None:
            if truth:
                self.unjudged_correct += 1
            else:
                self.unjudged_wrong += 1
            key = verdict.reason.split(":", 1)[0][:60] or "unjudged"
            self.reasons[key] = self.reasons.get(key, 0) + 1
        elif truth:
            self.tp, self.fn = self.tp + verdict.success, self.fn + (not verdict.success)
        else:
            self.fp, self.tn = self.fp + verdict.success, self.tn + (not verdict.success)


def _rate(k: int, n: int) -> dict[str, Any]:
    from dreamomni2.bench.tables import wilson_interval

    return {"rate": k / n if n else None, "k": k, "n": n, "interval": list(wilson_interval(k, n))}


def _pass_summary(c: _Counts) -> dict[str, Any]:
    judged = c.tp + c.fn + c.fp + c.tn
    return {
        "kind": "pass",
        "agreement": _rate(c.tp + c.tn, judged),
        "false_accept": _rate(c.fp, c.fp + c.tn),
        "false_reject": _rate(c.fn, c.tp + c.fn),
        "judged": judged,
        "unjudged": {
            "correct": c.unjudged_correct,
            "wrong": c.unjudged_wrong,
            "reasons": dict(sorted(c.reasons.items())),
        },
        "confusion": {"tp": c.tp, "fn": c.fn, "fp": c.fp, "tn": c.tn},
    }


def _auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def _score_summary(items: Sequence[CalibrationItem], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    from dreamomni2.bench.tables import is_per_input

    pairs = list(zip(items, verdicts, strict=True))
    keys = sorted({k for v in verdicts if v.judged for k in v.scores if not is_per_input(k)})
    out: dict[str, Any] = {"kind": "score", "means": {}, "unjudged": sum(not v.judged for v in verdicts)}
    for key in keys:
        for truth, label in ((True, "correct"), (False, "wrong")):
            vals = [v.scores[key] for it, v in pairs if v.judged and it.truth == truth and key in v.scores]
            out["means"].setdefault(key, {})[label] = {"mean": sum(vals) / len(vals) if vals else None, "n": len(vals)}
    pos = [v.score for it, v in pairs if v.judged and v.score is not None and it.truth]
    neg = [v.score for it, v in pairs if v.judged and v.score is not None and not it.truth]
    out["auc"] = _auc(pos, neg)
    return out


def calibrate(judge: Judge, items: Sequence[CalibrationItem], progress: bool = True) -> dict[str, Any]:
    """Judge every item and compare with its truth.

    Args:
        judge: a prepared judge (pass/fail or scoring).
        items: from :func:`builtin_items` or :func:`run_items`.
        progress: show a progress bar.

    Returns:
        ``judge``, ``n`` (items), ``correct``/``wrong`` (items of each truth) and, for a pass/fail judge,
        ``agreement``, ``false_accept``, ``false_reject`` (each ``{"rate", "k", "n", "interval"}``), ``judged``,
        ``unjudged`` (counts by truth, and by reason) and ``confusion``; for a scoring judge ``means``
        (score -> correct/wrong -> mean, n), ``auc`` and ``unjudged``.
    """
    from tqdm.auto import tqdm

    verdicts = [
        judge.judge(it.case, it.output, it.inputs) for it in tqdm(items, desc="calibrate", disable=not progress)
    ]
    head = {"judge": judge.name, "n": len(items), "correct": sum(it.truth for it in items)}
    head["wrong"] = head["n"] - head["correct"]
    if judge.kind == "score":
        return {**head, **_score_summary(items, verdicts)}
    counts = _Counts()
    for it, v in zip(items, verdicts, strict=True):
        counts.add(it.truth, v)
    return {**head, **_pass_summary(counts)}


def _cell(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return f"- (n={r['n']})"
    lo, hi = r["interval"]
    return f"{r['rate']:.3f} [{lo:.3f}, {hi:.3f}] ({r['k']}/{r['n']})"


def format_calibration(result: dict[str, Any]) -> str:
    """A calibration result as a small markdown table."""
    lines = [f"Calibration of {result['judge']}: {result['n']} outputs ({result['correct']} correct, "
             f"{result['wrong']} wrong)", ""]  # fmt: skip
    if result["kind"] == "score":
        lines += ["| score | mean (correct) | mean (wrong) |", "|---|---|---|"]
        for key, m in result["means"].items():
            c, w = m["correct"], m["wrong"]
            fmt = lambda x: "-" if x["mean"] is None else f"{x['mean']:.4f} (n={x['n']})"  # noqa: E731
            lines.append(f"| {key} | {fmt(c)} | {fmt(w)} |")
        auc = result["auc"]
        lines += ["", f"AUC of the headline score (correct above wrong): {'-' if auc is None else f'{auc:.3f}'}; "
                      f"unjudged: {result['unjudged']}"]  # fmt: skip
        return "\n".join(lines)
    un = result["unjudged"]
    lines += [
        "| metric | rate [95% CI] (k/n) |",
        "|---|---|",
        f"| agreement | {_cell(result['agreement'])} |",
        f"| false accept (wrong judged correct) | {_cell(result['false_accept'])} |",
        f"| false reject (correct judged wrong) | {_cell(result['false_reject'])} |",
        f"| unjudged | {un['correct'] + un['wrong']} of {result['n']} ({un['correct']} correct, {un['wrong']} wrong) |",
    ]
    if un["reasons"]:
        lines += ["", "Unjudged by reason: " + ", ".join(f"{k} ({v})" for k, v in un["reasons"].items())]
    return "\n".join(lines)
