"""The pairwise VLM judge: which of two runs' outputs is better, asked in both orders; win rates; Bradley–Terry.

For each case the VLM sees the inputs, then output A and output B, with :data:`PAIRWISE_PROMPTS` (the pointwise
criteria; in docs/judges.md verbatim) and answers ``{"winner": "A" | "B" | "tie", "reason": ...}``. It is asked
twice, the runs swapped between the two asks, to control position bias (as GenArena does): the case goes to a run
only when both orders pick it; orders that disagree (one of them a tie included) make a **tie**; when either order
gives no usable answer the case is **unjudged**. A judge that always prefers position A therefore yields only ties.

A pairwise verdict is written from the first run's view: ``success`` True (it won), False (it lost), None (a tie,
``judged`` True); ``score`` 1, 0 or 0.5; ``scores`` ``{"ab": ..., "ba": ...}`` the two orders' scores.

:func:`win_rate` gives a run's win rate over the judged cases, ties counted half, with a 95% Wilson interval;
:func:`bradley_terry` fits Bradley–Terry strengths to the outcomes of several runs by Hunter's MM algorithm
(Hunter 2004, "MM algorithms for generalized Bradley–Terry models"), ties counted as half a win each, and
:func:`elo_scores` puts them on the Elo scale (``1000 + 400 log10 strength``, the scale GenArena reports).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from string import Template
from typing import Any

from PIL import Image

from dreamomni2.bench.judges.base import unjudged
from dreamomni2.bench.judges.vlm import (
    CRITERIA,
    ChatBackend,
    Parsed,
    _instruction_text,
    ask,
    fit_image,
    images_phrase,
    load_backend,
    numbered,
    parse_answer,
    raw_text,
)
from dreamomni2.bench.records import Verdict
from dreamomni2.bench.suite import SuiteCase

__all__ = [
    "PAIRWISE_PROMPTS",
    "WINNER_WORDS",
    "PairwiseJudge",
    "bradley_terry",
    "combine_orders",
    "elo_scores",
    "pairwise_prompt",
    "win_rate",
]

_PAIRWISE = Template(
    "You are a strict judge comparing two results of $job.\n"
    "$inputs Image $a is result A. Image $b is result B.\n"
    "Instruction: $instruction\n\n"
    "Compare A and B on these criteria, in order of importance:\n"
    "$criteria\n"
    'Which result is better? Answer "tie" when they are equally good or equally bad.\n\n'
    "Reply with exactly one line of JSON and nothing else:\n"
    '{"winner": "A" or "B" or "tie", "reason": "at most 20 words"}'
)
_JOBS = {"edit": "the same image edit", "generate": "the same image generation"}

#: The pairwise prompts, per task, as templates (``$inputs``, ``$a``, ``$b``, ``$instruction``).
PAIRWISE_PROMPTS: dict[str, str] = {
    task: _PAIRWISE.safe_substitute(job=_JOBS[task], criteria=numbered(CRITERIA[task])) for task in _JOBS
}
#: Words accepted as a pairwise answer, and what they mean.
WINNER_WORDS: dict[str, str] = {
    "a": "A", "b": "B", "result a": "A", "result b": "B", "tie": "tie", "equal": "tie", "both": "tie", "neither": "tie",
}  # fmt: skip


def pairwise_prompt(task: str, n_inputs: int, instruction: str) -> str:
    """The text of a pairwise turn (images before it: the inputs, then result A, then result B)."""
    if task not in PAIRWISE_PROMPTS:
        raise ValueError(f"task {task!r}: expected edit or generate")
    return Template(PAIRWISE_PROMPTS[task]).substitute(
        inputs=images_phrase(task, n_inputs), a=n_inputs + 1, b=n_inputs + 2, instruction=_instruction_text(instruction)
    )


#: The first run's score from one ask's answer, when it is shown as A and when it is shown as B.
_AS_A = {"A": 1.0, "B": 0.0, "tie": 0.5}
_AS_B = {"A": 0.0, "B": 1.0, "tie": 0.5}


def combine_orders(first_order: str | None, second_order: str | None) -> float | None:
    """The first run's score from the two asks: ``first_order`` is the answer with the first run as A,
    ``second_order`` with it as B. 1 (both orders pick it), 0 (both pick the other), 0.5 (a tie, or the orders
    disagree), None (either ask unanswered)."""
    if first_order is None or second_order is None:
        return None
    a, b = _AS_A[first_order], _AS_B[second_order]
    return a if a == b else 0.5


class PairwiseJudge:
    """Compares two outputs of a case through a VLM backend, asked in both orders.

    Args:
        backend: anything with ``chat(images, text, temperature)``.
        name: the judge's name (``pairwise:`` + the VLM spec).
        max_area: images above this many pixels are shrunk before sending.
    """

    def __init__(self, backend: ChatBackend, name: str = "pairwise", max_area: int | None = 1024 * 1024) -> None:
        self.backend = backend
        self.name = name
        self.max_area = max_area

    def prepare(self) -> PairwiseJudge:
        """Load a local backend's model now."""
        load_backend(self.backend)
        return self

    def _ask(self, images: list[Image.Image], text: str) -> tuple[Parsed, str | None]:
        reply, failure = ask(self.backend, images, text, 0.0)
        return (parse_answer(reply, "winner", WINNER_WORDS) if reply is not None else Parsed(None, "", failure)), reply

    def compare(self, case: SuiteCase, first: Image.Image, second: Image.Image,
                inputs: Sequence[Image.Image]) -> Verdict:  # fmt: skip
        """Judge ``first`` against ``second`` (first as A, then first as B).

        Returns:
            The verdict from the first output's view (see the module docstring).
        """
        ins = [fit_image(im, self.max_area) for im in inputs]
        one, two = fit_image(first, self.max_area), fit_image(second, self.max_area)
        text = pairwise_prompt(case.task, len(inputs), case.instruction)
        p1, r1 = self._ask([*ins, one, two], text)
        p2, r2 = self._ask([*ins, two, one], text)
        raw = raw_text([r1, r2])
        score = combine_orders(p1.answer, p2.answer)
        if score is None:
            why = "; ".join(f"{o}: {p.problem}" for o, p in (("first as A", p1), ("first as B", p2)) if p.problem)
            return unjudged(case.id, self.name, why, raw)
        s1, s2 = _AS_A[p1.answer or "tie"], _AS_B[p2.answer or "tie"]
        word = {1.0: "first wins", 0.0: "second wins", 0.5: "tie"}[score]
        if score == 0.5 and s1 != s2:
            word = "tie (the two orders disagree)"
        reason = word + "".join(f"; {p.reason}" for p in (p1, p2) if p.reason)
        success = None if score == 0.5 else score == 1.0
        return Verdict(id=case.id, judge=self.name, judged=True, success=success, score=score,
                       scores={"ab": s1, "ba": s2}, reason=reason[:600], raw=raw)  # fmt: skip


def win_rate(verdicts: Iterable[Verdict]) -> dict[str, Any]:
    """A run's pairwise record from its verdicts (its own view).

    Returns:
        ``wins``, ``losses``, ``ties``, ``unjudged``, ``n`` (judged), ``rate`` ((wins + ties / 2) / n, None when
        n is 0) and ``interval`` (95% Wilson interval of that rate, ties as half a success).
    """
    from dreamomni2.bench.tables import wilson_interval

    counts = {"wins": 0, "losses": 0, "ties": 0, "unjudged": 0}
    for v in verdicts:
        if not v.judged or v.score is None:
            counts["unjudged"] += 1
        else:
            counts["wins" if v.score == 1.0 else "losses" if v.score == 0.0 else "ties"] += 1
    n = counts["wins"] + counts["losses"] + counts["ties"]
    points = counts["wins"] + counts["ties"] / 2
    return {**counts, "n": n, "rate": points / n if n else None, "interval": wilson_interval(points, n)}


def bradley_terry(
    outcomes: Iterable[tuple[str, str, float]], prior: float = 0.5, iterations: int = 10_000, tol: float = 1e-10
) -> dict[str, float]:
    """Bradley–Terry strengths by Hunter's MM algorithm.

    Each outcome ``(i, j, s)`` is one comparison with ``s`` = 1 (i won), 0 (j won) or 0.5 (a tie: half a win each).
    ``prior`` virtual ties are added between every pair that met, so a run that never won keeps a finite strength.

    Args:
        outcomes: the comparisons.
        prior: virtual tied games per pair that met (0 for the plain maximum-likelihood fit).
        iterations, tol: MM iterations at most, and the relative change at which to stop.

    Returns:
        ``{player: strength}``, normalised to a geometric mean of 1 (higher is better).
    """
    wins: dict[str, float] = defaultdict(float)
    games: dict[tuple[str, str], float] = defaultdict(float)
    for i, j, s in outcomes:
        if i == j:
            raise ValueError(f"bradley_terry: {i!r} compared with itself")
        wins[i] += s
        wins[j] += 1.0 - s
        games[tuple(sorted((i, j)))] += 1.0  # type: ignore[index]
    for pair in games:
        wins[pair[0]] += prior / 2
        wins[pair[1]] += prior / 2
        games[pair] += prior
    players = sorted(wins)
    p = dict.fromkeys(players, 1.0)
    for _ in range(iterations):
        new = {}
        for i in players:
            denom = sum(n / (p[i] + p[b if a == i else a]) for (a, b), n in games.items() if i in (a, b))
            new[i] = wins[i] / denom if denom else 1.0
        log_mean = sum(math.log(max(v, 1e-300)) for v in new.values()) / len(new)
        new = {k: max(v, 1e-300) / math.exp(log_mean) for k, v in new.items()}
        change = max(abs(new[k] - p[k]) / p[k] for k in players)
        p = new
        if change < tol:
            break
    return p


def elo_scores(strengths: dict[str, float], base: float = 1000.0) -> dict[str, float]:
    """Bradley–Terry strengths on the Elo scale: ``base + 400 * log10(strength)``."""
    return {k: base + 400.0 * math.log10(v) for k, v in strengths.items()}


def make_pairwise_judge(spec: str, max_area: int | None = 1024 * 1024, max_new_tokens: int = 128,
                        **options: Any) -> PairwiseJudge:  # fmt: skip
    """``vlm:qwen:DIR`` / ``vlm:openai:URL[#model]`` -> a :class:`PairwiseJudge` named ``pairwise:<spec>``.

    Args:
        spec: a VLM judge spec.
        max_area: images above this many pixels are shrunk before sending.
        max_new_tokens: reply budget.
        **options: backend options (``device``, ``dtype``, ``timeout``, ``api_key``).

    Raises:
        ValueError: a spec that is not a ``vlm:`` one.
    """
    from dreamomni2.bench.judges.vlm import make_backend

    name, sep, arg = spec.strip().partition(":")
    if name != "vlm" or not sep:
        raise ValueError(
            f"pairwise judging needs a VLM judge spec (vlm:qwen:DIR or vlm:openai:URL[#model]), got {spec!r}"
        )
    backend = make_backend(arg, max_new_tokens=max_new_tokens, **options)
    return PairwiseJudge(backend, name=f"pairwise:{spec.strip()}", max_area=max_area)
