"""Benchmark tables of judged runs, in the paper's form: success by task x category per judge, with n and a 95% CI.

Pure functions over a suite's cases and each run's verdicts (``{run name: {judge: {case id: Verdict}}}``):

* :func:`wilson_interval` — the 95% Wilson score interval of ``k`` successes in ``n`` trials.
* :func:`build_tables` — for every *metric* (a judge's pass/fail answer, or one of a score judge's named scores)
  three :class:`Table` s: by task x category (DreamOmni2's benchmark columns: Editing concrete, Editing abstract,
  Generation concrete, Generation abstract; one row per run), by sub-category (one row per task and sub-category,
  one column per run: a real suite has many sub-categories) and by image count (one row per run). A pass/fail
  judge's side scores (the analyzer's per-attribute agreement) get one table of their means over all cases.
* :func:`to_markdown` — one table as markdown (the HTML report renders the same :class:`Table`).

A pass/fail cell is ``.585 [.431, .724] n=41``: the success rate over the *judged* cases, its Wilson interval and
the number judged; cases the judge could not decide (``judged`` False) or has no verdict for are **unjudged**: they
are counted separately (``+2 unjudged``) and left out of the rate, never counted as failures or successes. A score
cell is the mean of that score over the judged cases, ``0.812 n=41`` (for a pairwise judge, ``pairwise:...``, the
mean of 1 win / 0 loss / .5 tie: the row's win rate against the other run). Each table carries that rule as its
footnote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dreamomni2.bench.records import Verdict
from dreamomni2.bench.report import TASK_LABELS, format_rate
from dreamomni2.bench.suite import CATEGORIES, TASKS, SuiteCase

__all__ = [
    "MISSING",
    "SUCCESS",
    "Z95",
    "RateCell",
    "ScoreCell",
    "Table",
    "build_tables",
    "judge_metrics",
    "rate_cell",
    "score_cell",
    "tables_markdown",
    "to_markdown",
    "wilson_interval",
]

#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054
#: The metric name of a judge's pass/fail answer (score metrics are named by their score).
SUCCESS = "success"
#: How a pairwise judge's name starts (:mod:`dreamomni2.bench.judges.pairwise`).
PAIRWISE_PREFIX = "pairwise:"
#: A cell with no case in it.
MISSING = "-"
#: How a case counted by a judge's verdict: ``pass``, ``fail`` or ``unjudged`` (no verdict, or it could not judge).
OUTCOMES = ("pass", "fail", "unjudged")

RATE_NOTE = (
    "Rate = successes / judged cases, [95% Wilson interval], n = judged cases. Unjudged cases (no verdict, or the "
    "judge could not decide: a malformed, refused or timed-out reply) are counted separately and excluded from "
    "the rate. -: no case, or the judge has not judged that run."
)
SCORE_NOTE = (
    "Mean {name} over the judged cases, n = judged cases. Unjudged cases are counted separately and excluded. "
    "-: no case, or the judge has not judged that run."
)

Runs = Mapping[str, Mapping[str, Mapping[str, Verdict]]]


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (Wilson 1927; the interval DreamOmni2-style tables need
    at small n, where the normal approximation leaves [0, 1]).

    Args:
        successes: the number of successes, ``0 <= successes <= n``.
        n: the number of trials; ``0`` gives ``(0.0, 1.0)`` (nothing is known).
        z: the normal quantile (default: two-sided 95%).

    Returns:
        ``(low, high)`` within [0, 1], containing ``successes / n``.

    Raises:
        ValueError: when the counts are negative or ``successes > n``.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def outcome(verdict: Verdict | None) -> str:
    """``pass``, ``fail`` or ``unjudged`` for a pass/fail judge's verdict (None: no verdict)."""
    if verdict is None or not verdict.judged or verdict.success is None:
        return "unjudged"
    return "pass" if verdict.success else "fail"


def score_value(verdict: Verdict | None, name: str) -> float | None:
    """A verdict's value of score ``name`` (``score`` is the headline value), or None when it has none."""
    if verdict is None or not verdict.judged:
        return None
    value = verdict.scores.get(name) if name in verdict.scores else (verdict.score if name == "score" else None)
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class RateCell:
    """Successes among the judged cases of a group, and how many were unjudged."""

    successes: int = 0
    n: int = 0
    unjudged: int = 0

    @property
    def rate(self) -> float | None:
        """Successes / judged, or None when nothing was judged."""
        return self.successes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of :attr:`rate`."""
        return wilson_interval(self.successes, self.n)

    def text(self) -> str:
        """``.585 [.431, .724] n=41 +2 unjudged`` (``-`` for an empty group)."""
        if not self.n and not self.unjudged:
            return MISSING
        extra = f" +{self.unjudged} unjudged" if self.unjudged else ""
        if not self.n:
            return f"- n=0{extra}"
        lo, hi = self.interval
        return f"{format_rate(self.rate)} [{format_rate(lo)}, {format_rate(hi)}] n={self.n}{extra}"


@dataclass(frozen=True)
class ScoreCell:
    """The mean of one score over the judged cases of a group, and how many were unjudged."""

    mean: float | None = None
    n: int = 0
    unjudged: int = 0

    def text(self) -> str:
        """``0.812 n=41 +1 unjudged`` (``-`` for an empty group)."""
        if not self.n and not self.unjudged:
            return MISSING
        extra = f" +{self.unjudged} unjudged" if self.unjudged else ""
        return f"{self.mean:.3f} n={self.n}{extra}" if self.n else f"- n=0{extra}"


def rate_cell(verdicts: Iterable[Verdict | None]) -> RateCell:
    """Count a group's pass/fail verdicts (None: the case has no verdict, so it is unjudged)."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for v in verdicts:
        counts[outcome(v)] += 1
    return RateCell(counts["pass"], counts["pass"] + counts["fail"], counts["unjudged"])


def score_cell(verdicts: Iterable[Verdict | None], name: str) -> ScoreCell:
    """Average score ``name`` over a group's verdicts; those without it are unjudged."""
    values, unjudged = [], 0
    for v in verdicts:
        value = score_value(v, name)
        if value is None:
            unjudged += 1
        else:
            values.append(value)
    return ScoreCell(math.fsum(values) / len(values) if values else None, len(values), unjudged)


_PER_INPUT = re.compile(r"_\d+$")


def is_per_input(name: str) -> bool:
    """A score per input image (``clip_i_2``, ``dino_3``), as opposed to a headline score (``clip_i``, ``dino``)."""
    return _PER_INPUT.search(name) is not None


def judge_metrics(verdicts: Iterable[Verdict]) -> list[str]:
    """A judge's metrics: :data:`SUCCESS` when any verdict answers pass/fail, then its score names in first-seen
    order (``score`` for a headline value without named scores). A pairwise judge (``pairwise:...``, its verdicts
    stored in run A's folder as ``<judge> vs <run B>``) has one metric, ``score``: A's win rate, ties counted half.
    Per-input scores (``clip_i_2``, ``dino_3``: one per input image) are left to the HTML page: a case without that
    input has no such score, which a table would show as unjudged; their mean (``clip_i``, ``dino``) is tabled."""
    verdicts = list(verdicts)
    if any(v.judge.startswith(PAIRWISE_PREFIX) for v in verdicts):
        return ["score"]  # 1 win, 0 loss, .5 tie: its mean is the win rate against the other run
    names: list[str] = []
    has_success = False
    for v in verdicts:
        has_success |= v.success is not None
        for name in v.scores:
            if name not in names and not is_per_input(name):
                names.append(name)
        if v.score is not None and not v.scores and "score" not in names:
            names.append("score")
    return ([SUCCESS] if has_success else []) + names


@dataclass
class Table:
    """A titled table of strings (first column: labels), with its footnote; :func:`to_markdown` renders it."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    footnote: str = ""
    judge: str = ""
    metric: str = SUCCESS
    kind: str = "task"  # task (x category), subcategory, images or scores (a pass/fail judge's side scores)


def _cell(verdicts: Mapping[str, Verdict] | None, ids: Sequence[str], metric: str) -> str:
    """A group's cell; ``verdicts`` None: the judge has not judged that run at all (``-``)."""
    if verdicts is None:
        return MISSING
    picked = [verdicts.get(i) for i in ids]
    return (rate_cell(picked) if metric == SUCCESS else score_cell(picked, metric)).text()


def _task_columns() -> list[tuple[str, str, str]]:
    return [(f"{TASK_LABELS[t]} {c}", t, c) for t in TASKS for c in CATEGORIES]


def _by_task(cases: Sequence[SuiteCase], runs: Runs, judge: str, metric: str) -> list[list[str]]:
    groups = [[c.id for c in cases if (c.task, c.category) == (t, k)] for _, t, k in _task_columns()]
    groups.append([c.id for c in cases])  # the All column
    return [[run_name, *(_cell(judges.get(judge), ids, metric) for ids in groups)] for run_name, judges in runs.items()]


def _subgroups(cases: Sequence[SuiteCase]) -> dict[str, list[str]]:
    groups: dict[tuple[int, str, str], list[str]] = {}
    for c in cases:
        groups.setdefault((TASKS.index(c.task), c.category, c.subcategory or "(none)"), []).append(c.id)
    order = sorted(groups, key=lambda k: (k[0], CATEGORIES.index(k[1]), k[2]))
    return {f"{TASK_LABELS[TASKS[t]]} {cat} · {sub}": groups[(t, cat, sub)] for t, cat, sub in order}


def _by_images(cases: Sequence[SuiteCase]) -> dict[str, list[str]]:
    counts = sorted({c.n_images for c in cases})
    return {f"{k} image{'' if k == 1 else 's'}": [c.id for c in cases if c.n_images == k] for k in counts}


def _metric_tables(cases: Sequence[SuiteCase], runs: Runs, judge: str, metric: str) -> list[Table]:
    note = RATE_NOTE if metric == SUCCESS else SCORE_NOTE.format(name=metric)
    what = "success rate" if metric == SUCCESS else f"mean {metric}"
    main = Table(f"{judge}: {what} by task and category", ["Run", *(h for h, _, _ in _task_columns()), "All"],
                 _by_task(cases, runs, judge, metric), note, judge, metric)  # fmt: skip
    names = list(runs)
    subs = _subgroups(cases)
    sub_rows = [[g, str(len(ids)), *(_cell(runs[r].get(judge), ids, metric) for r in names)]
                for g, ids in subs.items()]  # fmt: skip
    by_sub = Table(f"{judge}: {what} by sub-category", ["Sub-category", "Cases", *names], sub_rows, note, judge, metric,
                   "subcategory")  # fmt: skip
    imgs = _by_images(cases)
    img_rows = [[r, *(_cell(runs[r].get(judge), ids, metric) for ids in imgs.values())] for r in names]
    by_img = Table(f"{judge}: {what} by image count", ["Run", *imgs], img_rows, note, judge, metric, "images")
    return [main, by_sub, by_img]


def build_tables(cases: Sequence[SuiteCase], runs: Runs) -> list[Table]:
    """Every table of a set of runs of one suite: three per metric of every judge (see the module docstring).

    Args:
        cases: the suite's cases (the denominators: a case a judge has no verdict for is unjudged).
        runs: ``{run name: {judge name: {case id: Verdict}}}``, rows in this order.

    Returns:
        The tables, judges in first-seen order, each judge's pass/fail tables before its score tables.
    """
    judges: dict[str, list[Verdict]] = {}
    for by_judge in runs.values():
        for judge, verdicts in by_judge.items():
            judges.setdefault(judge, []).extend(verdicts.values())
    tables: list[Table] = []
    for judge, verdicts in judges.items():
        metrics = judge_metrics(verdicts)
        if SUCCESS in metrics:
            tables += _metric_tables(cases, runs, judge, SUCCESS)
            if len(metrics) > 1:
                tables.append(_side_scores(cases, runs, judge, metrics[1:]))
        else:
            for metric in metrics:
                tables += _metric_tables(cases, runs, judge, metric)
    return tables


def _side_scores(cases: Sequence[SuiteCase], runs: Runs, judge: str, names: Sequence[str]) -> Table:
    """A pass/fail judge's side scores (e.g. the analyzer's per-attribute agreement): their means over all cases."""
    ids = [c.id for c in cases]
    rows = [[r, *(_cell(by_judge.get(judge), ids, n) for n in names)] for r, by_judge in runs.items()]
    note = SCORE_NOTE.format(name="of each score")
    return Table(f"{judge}: mean scores over all cases", ["Run", *names], rows, note, judge, names[0], "scores")


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def to_markdown(table: Table, footnote: bool = True) -> str:
    """Render one table as markdown: a bold title line, the table (labels left-aligned, cells right-aligned) and,
    with ``footnote``, its footnote in italics; no trailing newline. ``|`` in names and cells is escaped."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(_md_escape(c) for c in cells) + " |"

    lines = [f"**{_md_escape(table.title)}**", "", row(table.header)]
    lines.append("| " + " | ".join([":--"] + ["--:"] * (len(table.header) - 1)) + " |")
    lines += [row(cells) for cells in table.rows]
    if footnote and table.footnote:
        lines += ["", f"*{_md_escape(table.footnote)}*"]
    return "\n".join(lines)


def tables_markdown(tables: Sequence[Table]) -> str:
    """All tables as one markdown text (blank lines between; a footnote where it differs from the next table's),
    with a trailing newline; a note when there are none."""
    if not tables:
        return "No judgements yet: run `dreamomni2 bench judge RUN_DIR --judge SPEC` first.\n"
    parts = []
    for i, t in enumerate(tables):
        last = i == len(tables) - 1 or tables[i + 1].footnote != t.footnote
        parts.append(to_markdown(t, footnote=last))
    return "\n\n".join(parts) + "\n"
