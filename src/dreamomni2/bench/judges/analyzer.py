"""The ``analyzer`` judge: the mini world's ground truth (:func:`dreamomni2.mini.analyzer.score`) on ``case.truth``.

Only mini-suite cases carry a truth (the mini world's :class:`~dreamomni2.mini.cases.Case` as a dict); any other
case comes back unjudged with that reason. The verdict's ``scores`` hold one 0/1 per scene attribute, its ``raw``
the attributes read from the output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from PIL import Image

from dreamomni2.bench.judges.base import Judge, unjudged
from dreamomni2.bench.records import Verdict
from dreamomni2.bench.suite import SuiteCase

__all__ = ["AnalyzerJudge", "truth_case"]


def truth_case(case: SuiteCase):
    """The mini world's case stored in ``case.truth``.

    Returns:
        A :class:`dreamomni2.mini.cases.Case`.

    Raises:
        ValueError: when the case has no truth or it is malformed (naming the case and the problem).
    """
    from dreamomni2.mini.cases import Case

    if not case.truth:
        raise ValueError(f"case {case.id!r} has no mini-world truth (the analyzer judges mini-suite cases only)")
    try:
        return Case.from_dict(case.truth)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"case {case.id!r}: malformed mini-world truth ({type(e).__name__}: {e})") from None


class AnalyzerJudge(Judge):
    """Pass when every attribute the mini analyzer reads from the output equals the case's target scene."""

    name = "analyzer"
    kind = "pass"

    def judge(self, case: SuiteCase, output: Image.Image, inputs: Sequence[Image.Image]) -> Verdict:
        """Score ``output`` against ``case.truth``'s target (``inputs`` are not needed).

        Returns:
            ``success`` True when all attributes match; ``reason`` names each wrong attribute (wanted, read).
        """
        from dreamomni2.mini.analyzer import score
        from dreamomni2.mini.scene import SCENE_ATTRS

        try:
            mini = truth_case(case)
        except ValueError as e:
            return unjudged(case.id, self.name, str(e))
        result = score(mini, output)
        predicted = result["predicted"]
        wrong = [f"{a} (want {mini.target.attr(a)}, read {predicted[a]})" for a in SCENE_ATTRS if not result[a]]
        reason = "all attributes match the target" if not wrong else "wrong " + ", ".join(wrong)
        return Verdict(id=case.id, judge=self.name, judged=True, success=bool(result["success"]),
                       score=float(result["success"]), scores={a: float(result[a]) for a in SCENE_ATTRS},
                       reason=reason, raw=json.dumps(predicted, sort_keys=True))  # fmt: skip
