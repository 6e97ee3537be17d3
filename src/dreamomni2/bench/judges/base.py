"""The judge interface (:class:`Judge`, :func:`unjudged`); the spec parser is :mod:`~dreamomni2.bench.judges.factory`.

A :class:`Judge` answers one case at a time: ``judge(case, output, inputs) -> Verdict``. Pass/fail judges
(``analyzer``, ``vlm:...``) set ``success``; scoring judges (``clip:DIR``, ``dino:DIR``) set ``scores`` and leave
``success`` None. A judge that cannot decide returns a verdict with ``judged`` False and the reason (a malformed,
refused or timed-out reply is never a success).

Spec forms (see docs/judges.md)::

    analyzer                    the mini world's ground truth (mini-suite cases only)
    vlm:qwen:DIR                a local Qwen2.5-VL folder, through the planner's Qwen backend
    vlm:openai:URL[#model]      an OpenAI-compatible endpoint you name, through the planner's OpenAI backend
    clip:DIR                    CLIP-I / CLIP-T similarities from a local CLIP folder
    dino:DIR                    DINOv2 similarities from a local DINOv2 folder
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

from PIL import Image

from dreamomni2.bench.records import Verdict
from dreamomni2.bench.suite import SuiteCase

__all__ = ["JUDGE_SPECS", "Judge", "JudgeKind", "judge_spec_help", "unjudged"]

logger = logging.getLogger(__name__)

#: The spec forms :func:`make_judge` accepts (for help texts and error messages).
JUDGE_SPECS = ("analyzer", "vlm:qwen:DIR", "vlm:openai:URL[#model]", "clip:DIR", "dino:DIR")

JudgeKind = str  # "pass" (success True/False) or "score" (named scores, success None)


def judge_spec_help() -> str:
    """``"analyzer | vlm:qwen:DIR | ..."``."""
    return " | ".join(JUDGE_SPECS)


def unjudged(case_id: str, judge: str, reason: str, raw: str | None = None) -> Verdict:
    """A verdict for a case the judge could not decide (``judged`` False, ``success`` and ``score`` None)."""
    return Verdict(id=case_id, judge=judge, judged=False, success=None, score=None, reason=reason, raw=raw)


class Judge(ABC):
    """Judges one output of a case.

    Attributes:
        name: the judge's name, recorded in each verdict and naming its judgement file (usually the spec).
        kind: ``"pass"`` for pass/fail judges, ``"score"`` for scoring judges.
    """

    name: str = "judge"
    kind: JudgeKind = "pass"

    def prepare(self) -> Judge:
        """Load what the judge needs (models, processors) before the first case; errors here are fatal.

        Returns:
            ``self``.
        """
        return self

    @abstractmethod
    def judge(self, case: SuiteCase, output: Image.Image, inputs: Sequence[Image.Image]) -> Verdict:
        """Judge ``output`` for ``case``.

        Args:
            case: the suite case (instruction, task, truth ...).
            output: the model's output image.
            inputs: the case's input images, in order (for edits the image to edit first).

        Returns:
            The verdict; never raises for a bad reply (that is an unjudged verdict).
        """
